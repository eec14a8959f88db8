//! What the loop publishes for the HTTP side: a heartbeat (`/healthz`), readiness (`/readyz`)
//! and a per-target status document (`/status`, and the gauges of `/metrics`). The loop writes,
//! handlers read; nothing here blocks the loop for longer than a clone.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::inventory::Status;
use crate::repair::RepairResult;
use crate::report::CheckReport;
use crate::watch::controller::jobs::JobKind;

/// `Option<i64>` Unix seconds as RFC 3339 (or null).
pub mod opt_rfc3339 {
    pub fn serialize<S: serde::Serializer>(ts: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match ts {
            Some(t) => s.serialize_str(&crate::timefmt::rfc3339(*t)),
            None => s.serialize_none(),
        }
    }
}

/// The next thing the loop will do about a target.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NextAction {
    #[serde(with = "crate::timefmt::rfc3339")]
    pub at: i64,
    /// `check` (a look, after which a repair may follow).
    pub action: &'static str,
    pub why: String,
}

/// How a repair ended: the ladder's result, or `error` when it could not run at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepairEnd {
    Ran(RepairResult),
    Error,
}

impl RepairEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            RepairEnd::Ran(r) => r.as_str(),
            RepairEnd::Error => "error",
        }
    }

    /// Healthy or repaired: nothing for a person to do.
    pub fn succeeded(self) -> bool {
        matches!(
            self,
            RepairEnd::Ran(RepairResult::Repaired | RepairResult::Healthy)
        )
    }
}

impl Serialize for RepairEnd {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The outcome of the last repair of a target.
#[derive(Debug, Clone, Serialize)]
pub struct RepairSummary {
    /// `repaired`, `healthy`, `failed`, `refused`, `busy`, `interrupted`, or `error` (the
    /// ladder could not run).
    pub result: RepairEnd,
    /// `schedule` or `api`.
    pub requested_by: &'static str,
    #[serde(with = "crate::timefmt::rfc3339")]
    pub started_at: i64,
    #[serde(with = "crate::timefmt::rfc3339")]
    pub finished_at: i64,
    pub restarts: u32,
    pub backup: Option<String>,
    pub reasons: Vec<String>,
    pub diagnosis: Option<String>,
}

/// Everything `/status` says about one target. Never key material: certificates are described
/// by their public fields, keys only named.
#[derive(Debug, Clone, Serialize, Default)]
pub struct TargetStatus {
    pub container: String,
    pub id: Option<String>,
    pub image: Option<String>,
    /// Docker's state (`running`, `restarting`, `exited`, …; `missing` when not found).
    pub state: Option<String>,
    /// The last look succeeded (container found, TLS tree read).
    pub up: bool,
    /// `check` or `repair` while one runs.
    pub in_progress: Option<JobKind>,
    #[serde(with = "opt_rfc3339")]
    pub last_check: Option<i64>,
    #[serde(with = "opt_rfc3339")]
    pub last_success: Option<i64>,
    pub last_error: Option<String>,
    /// Overall certificate status of the last inventory.
    pub status: Option<Status>,
    /// Why a repair is due (empty: nothing is).
    pub reasons: Vec<String>,
    /// The last decision, in words.
    pub decision: Option<String>,
    /// When the next renewable certificate enters the renewal window.
    #[serde(with = "opt_rfc3339")]
    pub renew_at: Option<i64>,
    /// The earliest expiry of a renewable certificate.
    #[serde(with = "opt_rfc3339")]
    pub earliest_expiry: Option<i64>,
    pub next_action: Option<NextAction>,
    pub last_repair: Option<RepairSummary>,
    pub repairs_last_24h: u32,
    /// The cooldown after the last repair ends then (null: not cooling down).
    #[serde(with = "opt_rfc3339")]
    pub cooldown_until: Option<i64>,
    /// The circuit breaker refuses repairs of this target right now (too many in 24 h).
    pub breaker_open: bool,
    /// The Rancher and K3s versions of the container, when its image says.
    pub era: Option<crate::repair::evidence::Era>,
    /// Why its logs could not be read (the decision then rests on the certificates alone).
    pub logs_unreadable: Option<String>,
    /// Why the clocks cannot be trusted (nothing is changed while they disagree).
    pub clock: Option<String>,
    /// The last inventory, in the shape of `check -o json`.
    pub inventory: Option<CheckReport>,
}

/// True when a path of the TLS tree lies in a backup directory (`tls-<unix>` that
/// `k3s certificate rotate` leaves — k3s-io/k3s `pkg/cli/cert/cert.go` `backupCertificates` —
/// and so does the `--cluster-reset` Rancher ≥ v2.6.3 runs at every start, rancher/rancher
/// `package/entrypoint.sh`): those certificates are history, never exported nor counted.
pub fn under_backup_dir(path: &str) -> bool {
    let mut parts: Vec<&str> = path.split('/').collect();
    parts.pop(); // the file name itself
    parts.iter().any(|d| d.starts_with("tls-"))
}

/// The `reason`s of `x509_source_errors_total` that exist from a target's first look (at 0,
/// so `increase()` sees the first error): the inventory's problem reasons, which share
/// x509-certificate-exporter v4's names where they overlap (`bad_pem`, `no_certificate_found`,
/// `decode_failed`, `read_failed`). A look that cannot read the tree at all counts as
/// `read_failed`. Reasons added later appear the first time they occur.
pub const SOURCE_ERROR_REASONS: &[&str] = &[
    "bad_pem",
    "decode_failed",
    "empty",
    "no_certificate_found",
    "not_regular_file",
    "read_failed",
    "too_large",
];

/// The `/status` document.
#[derive(Debug, Clone, Serialize, Default)]
pub struct StatusDoc {
    pub version: &'static str,
    pub selection: String,
    pub monitor_only: bool,
    pub window: Option<String>,
    pub renew_before_days: u32,
    pub tls_path: String,
    pub docker_host: String,
    pub docker_version: Option<String>,
    pub docker_reachable: bool,
    pub ready: bool,
    pub targets: BTreeMap<String, TargetStatus>,
}

/// Shared between the loop (writer) and the HTTP handlers (readers).
#[derive(Debug)]
pub struct Shared {
    /// Origin of the heartbeat clock.
    origin: Instant,
    /// Milliseconds after `origin` of the loop's last tick.
    last_tick_ms: AtomicU64,
    /// How often the loop ticks when idle; stalled after twice that.
    pub tick: Duration,
    docker_up: AtomicBool,
    first_scan_done: AtomicBool,
    doc: RwLock<StatusDoc>,
    /// Per (container, reason): files that could not be judged, counted at every finished
    /// look, and looks that failed. Kept here because [`Shared::publish`] sees every look.
    source_errors: Mutex<BTreeMap<(String, String), u64>>,
}

impl Shared {
    pub fn new(tick: Duration, doc: StatusDoc) -> Self {
        Self {
            origin: Instant::now(),
            last_tick_ms: AtomicU64::new(0),
            tick,
            docker_up: AtomicBool::new(false),
            first_scan_done: AtomicBool::new(false),
            doc: RwLock::new(doc),
            source_errors: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn tick(&self) {
        let ms = Instant::now().duration_since(self.origin).as_millis() as u64;
        self.last_tick_ms.store(ms, Ordering::Relaxed);
    }

    /// `Some(age)` when the loop has not ticked for more than twice its tick.
    pub fn stalled(&self) -> Option<Duration> {
        let now = Instant::now().duration_since(self.origin).as_millis() as u64;
        let age =
            Duration::from_millis(now.saturating_sub(self.last_tick_ms.load(Ordering::Relaxed)));
        (age > self.tick * 2).then_some(age)
    }

    pub fn set_docker_up(&self, up: bool) {
        self.docker_up.store(up, Ordering::Relaxed);
    }

    pub fn docker_up(&self) -> bool {
        self.docker_up.load(Ordering::Relaxed)
    }

    pub fn set_first_scan_done(&self) {
        self.first_scan_done.store(true, Ordering::Relaxed);
    }

    pub fn first_scan_done(&self) -> bool {
        self.first_scan_done.load(Ordering::Relaxed)
    }

    /// Why the service is not ready (empty: ready).
    pub fn not_ready(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if !self.docker_up() {
            v.push("the Docker daemon is not reachable");
        }
        if !self.first_scan_done() {
            v.push("the first scan is not done");
        }
        v
    }

    /// Replace the targets of the document (and count the errors of the looks that finished
    /// since the last publish).
    pub fn publish(&self, targets: BTreeMap<String, TargetStatus>) {
        let mut doc = self.doc.write().unwrap_or_else(|p| p.into_inner());
        self.count_source_errors(&doc.targets, &targets);
        doc.targets = targets;
    }

    /// A look finished when a target's `last_check` changed (seconds: a second look within
    /// the same second of the same target goes uncounted).
    fn count_source_errors(
        &self,
        old: &BTreeMap<String, TargetStatus>,
        new: &BTreeMap<String, TargetStatus>,
    ) {
        let mut counts = self.source_errors.lock().unwrap_or_else(|p| p.into_inner());
        for (name, t) in new {
            let Some(at) = t.last_check else { continue };
            if old.get(name).and_then(|o| o.last_check) == Some(at) {
                continue;
            }
            if !t.up {
                *counts
                    .entry((name.clone(), "read_failed".into()))
                    .or_default() += 1;
                continue;
            }
            let Some(inv) = &t.inventory else { continue };
            for p in inv.problems.iter().filter(|p| !under_backup_dir(&p.path)) {
                *counts
                    .entry((name.clone(), p.reason.as_str().to_string()))
                    .or_default() += 1;
            }
        }
    }

    /// `((container, reason), count)` for every current target, the reasons of
    /// [`SOURCE_ERROR_REASONS`] included at 0.
    pub fn source_errors(&self) -> Vec<((String, String), u64)> {
        let names: Vec<String> = self.read(|d| d.targets.keys().cloned().collect());
        let counts = self.source_errors.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = BTreeMap::new();
        for name in names {
            for r in SOURCE_ERROR_REASONS {
                out.insert((name.clone(), r.to_string()), 0);
            }
            for ((c, r), n) in counts.range((name.clone(), String::new())..) {
                if *c != name {
                    break;
                }
                out.insert((c.clone(), r.clone()), *n);
            }
        }
        out.into_iter().collect()
    }

    pub fn set_docker_version(&self, version: String) {
        let mut doc = self.doc.write().unwrap_or_else(|p| p.into_inner());
        doc.docker_version = Some(version);
    }

    /// Read the document (with readiness filled in).
    pub fn read<T>(&self, f: impl FnOnce(&StatusDoc) -> T) -> T {
        let doc = self.doc.read().unwrap_or_else(|p| p.into_inner());
        f(&doc)
    }

    /// A copy of the document for `/status`.
    pub fn snapshot(&self) -> StatusDoc {
        let mut doc = self.read(|d| d.clone());
        doc.docker_reachable = self.docker_up();
        doc.ready = self.not_ready().is_empty();
        doc
    }

    /// The `/status` everyone may read: what `/metrics` (and, for readiness, `/readyz`)
    /// already say, in the same shape as the full document (a subset of its fields), so one
    /// client reads both.
    pub fn summary(&self) -> StatusSummary {
        let ready = self.not_ready().is_empty();
        let docker_reachable = self.docker_up();
        self.read(|d| StatusSummary {
            view: "summary",
            full_view: "answered to loopback peers and with Authorization: Bearer <token>",
            version: d.version,
            ready,
            docker_reachable,
            renew_before_days: d.renew_before_days,
            targets: d
                .targets
                .iter()
                .map(|(k, t)| (k.clone(), TargetSummary::of(t)))
                .collect(),
        })
    }
}

/// `/status` for a peer that may not see the full document: nothing beyond `/metrics` and
/// `/readyz` (no container ids, images, Docker host, inventory, backup paths, errors, reasons
/// or log lines).
#[derive(Debug, Clone, Serialize)]
pub struct StatusSummary {
    /// `summary`.
    pub view: &'static str,
    /// Who gets the full document.
    pub full_view: &'static str,
    pub version: &'static str,
    pub ready: bool,
    pub docker_reachable: bool,
    pub renew_before_days: u32,
    pub targets: BTreeMap<String, TargetSummary>,
}

/// One target in [`StatusSummary`]: each field has a series in `/metrics`.
#[derive(Debug, Clone, Serialize)]
pub struct TargetSummary {
    pub container: String,
    pub up: bool,
    /// `repair` while one runs (`rancher_cert_guard_repair_in_progress`).
    pub in_progress: Option<JobKind>,
    #[serde(with = "opt_rfc3339")]
    pub last_check: Option<i64>,
    #[serde(with = "opt_rfc3339")]
    pub last_success: Option<i64>,
    pub status: Option<Status>,
    #[serde(with = "opt_rfc3339")]
    pub renew_at: Option<i64>,
    #[serde(with = "opt_rfc3339")]
    pub earliest_expiry: Option<i64>,
    pub next_action: Option<NextActionAt>,
    pub last_repair: Option<RepairOutcome>,
    pub repairs_last_24h: u32,
    pub breaker_open: bool,
}

impl TargetSummary {
    fn of(t: &TargetStatus) -> Self {
        Self {
            container: t.container.clone(),
            up: t.up,
            in_progress: t.in_progress.filter(|p| *p == JobKind::Repair),
            last_check: t.last_check,
            last_success: t.last_success,
            status: t.status,
            renew_at: t.renew_at,
            earliest_expiry: t.earliest_expiry,
            next_action: t.next_action.as_ref().map(|n| NextActionAt { at: n.at }),
            last_repair: t.last_repair.as_ref().map(|r| RepairOutcome {
                result: r.result,
                started_at: r.started_at,
                finished_at: r.finished_at,
                restarts: r.restarts,
            }),
            repairs_last_24h: t.repairs_last_24h,
            breaker_open: t.breaker_open,
        }
    }
}

/// When the next look is (not why: the reason can name files).
#[derive(Debug, Clone, Serialize)]
pub struct NextActionAt {
    #[serde(with = "crate::timefmt::rfc3339")]
    pub at: i64,
}

/// The last repair without its backup path, reasons and diagnosis.
#[derive(Debug, Clone, Serialize)]
pub struct RepairOutcome {
    pub result: RepairEnd,
    #[serde(with = "crate::timefmt::rfc3339")]
    pub started_at: i64,
    #[serde(with = "crate::timefmt::rfc3339")]
    pub finished_at: i64,
    pub restarts: u32,
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
