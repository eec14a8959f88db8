//! What the loop publishes for the HTTP side: a heartbeat (`/healthz`), readiness (`/readyz`)
//! and a per-target status document (`/status`, and the gauges of `/metrics`). The loop writes,
//! handlers read; nothing here blocks the loop for longer than a clone.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::inventory::Status;
use crate::report::CheckReport;

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

/// The outcome of the last repair of a target.
#[derive(Debug, Clone, Serialize)]
pub struct RepairSummary {
    /// `repaired`, `healthy`, `failed`, `refused`, `dry_run`, or `error` (the ladder could not run).
    pub result: String,
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
    pub in_progress: Option<&'static str>,
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
    /// The circuit breaker is open: `--max-repairs-per-day` repairs in the last 24 h.
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

    /// Replace the targets of the document.
    pub fn publish(&self, targets: BTreeMap<String, TargetStatus>) {
        let mut doc = self.doc.write().unwrap_or_else(|p| p.into_inner());
        doc.targets = targets;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn stalls_after_two_ticks() {
        let s = Shared::new(Duration::from_secs(30), StatusDoc::default());
        s.tick();
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(s.stalled(), None);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(s.stalled(), Some(Duration::from_secs(61)));
        s.tick();
        assert_eq!(s.stalled(), None);
    }

    #[test]
    fn readiness_needs_docker_and_a_first_scan() {
        let s = Shared::new(Duration::from_secs(30), StatusDoc::default());
        assert_eq!(s.not_ready().len(), 2);
        s.set_docker_up(true);
        assert_eq!(s.not_ready(), vec!["the first scan is not done"]);
        s.set_first_scan_done();
        assert!(s.not_ready().is_empty());
        assert!(s.snapshot().ready);
    }
}
