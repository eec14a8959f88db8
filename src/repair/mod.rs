//! `repair`: back up, wipe what K3s regenerates, restart and verify — through the crash loop
//! and the unknown-authority loop — until the embedded certificates are fresh; and never leave
//! a Rancher install worse than it was found.
//!
//! The parts, in the order a repair meets them:
//! - [`container`]: the entry point — look (read-only), decide, take the locks, finish what an
//!   interrupted run left, back up, run the ladder, finish with the container running;
//! - [`plan`] (pure): when to act, and exactly which files K3s regenerates;
//! - [`backup`]: the verified archive taken before anything is deleted;
//! - [`lock`]: one run at a time per target (flock + a Docker-side lease);
//! - [`journal`]: the step in progress, so any run can finish a repair that was killed;
//! - [`ladder`]: the effectful steps (stop, wipe through a helper, start, verify, finish);
//! - [`machine`] (pure): the rules of what comes next, and how to resume;
//! - [`failure`]: every way a repair can stop short, with its diagnosis;
//! - [`engine`]: the Docker calls behind a trait, so every step is tested against faults;
//! - [`dir`]: `repair --dir`, the init-container use.

pub mod backup;
mod container;
mod dir;
pub mod engine;
pub mod evidence;
pub mod failure;
pub mod journal;
mod ladder;
pub mod lock;
pub mod machine;
mod options;
mod pending;
pub mod plan;
mod report;
mod resume;
pub mod wipe;

pub use container::repair_container;
pub use dir::repair_dir;
pub use options::{FaultPoint, RepairOptions};
pub use pending::{pending, Pending};
pub use report::{RepairReport, RepairResult, Step};

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::diagnose::clock::ClockSkew;
use crate::inventory::Inventory;
use plan::{plan_wipe, reasons_to_act};

/// Where Rancher keeps the kubeconfig K3s writes (backed up, never changed).
pub const KUBECONFIG_PATH: &str = "/etc/rancher/k3s/k3s.yaml";

/// Bookkeeping of one running repair.
struct Run<'a> {
    opts: &'a RepairOptions,
    report: RepairReport,
    started: Instant,
    step_started: Instant,
}

impl<'a> Run<'a> {
    fn new(opts: &'a RepairOptions, target: &str) -> Self {
        Self {
            opts,
            report: RepairReport::new(target),
            started: Instant::now(),
            step_started: Instant::now(),
        }
    }

    fn step(&mut self, step: &str, ok: bool, detail: impl Into<String>) {
        let detail = detail.into();
        let seconds = self.step_started.elapsed().as_secs_f64();
        self.step_started = Instant::now();
        if ok {
            tracing::info!(target: "repair", container = %self.report.target, step, seconds, "{detail}");
        } else {
            tracing::warn!(target: "repair", container = %self.report.target, step, seconds, "{detail}");
        }
        self.report.steps.push(Step {
            step: step.to_string(),
            ok,
            detail,
            seconds: (seconds * 100.0).round() / 100.0,
        });
    }

    fn finish(mut self, result: RepairResult, diagnosis: Option<String>) -> RepairReport {
        self.report.result = result;
        self.report.diagnosis = diagnosis;
        tracing::info!(target: "repair", container = %self.report.target, result = result.as_str(),
            restarts = self.report.restarts, seconds = self.started.elapsed().as_secs_f64(), "repair finished");
        self.report
    }

    /// The whole repair's deadline, as a tokio instant (paused in tests).
    fn deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.opts.timeout.saturating_sub(self.started.elapsed())
    }
}

/// What the decision both modes share says.
enum Decision {
    /// Nothing to do, or nothing allowed: the report is finished with this.
    Done(RepairResult, Option<String>),
    /// Act: wipe per `plan`, backing up into `backup_dir`.
    Act {
        plan: plan::WipePlan,
        backup_dir: PathBuf,
    },
}

/// Nothing due → healthy; the clocks disagree → refused (every verdict, and every certificate
/// K3s would mint, depends on them); `--dry-run` → the plan only; no usable backup directory →
/// refused.
fn decide(
    run: &mut Run<'_>,
    inv: &Inventory,
    sigs: &[plan::Signature],
    clock: Option<&ClockSkew>,
) -> Decision {
    run.report.reasons = reasons_to_act(inv, sigs, run.opts.force);
    if run.report.reasons.is_empty() {
        return Decision::Done(RepairResult::Healthy, None);
    }
    if let Some(skew) = clock {
        run.step("clock", false, skew.reason.clone());
        return Decision::Done(RepairResult::Refused, Some(skew.refusal()));
    }
    let plan = plan_wipe(inv);
    run.report.plan = Some(plan.clone());
    if run.opts.dry_run {
        return Decision::Done(RepairResult::DryRun, None);
    }
    let Some(backup_dir) = run.opts.backup_dir.clone() else {
        return Decision::Done(
            RepairResult::Refused,
            Some("no --backup-dir given: refusing to delete anything without a backup; nothing was changed".into()),
        );
    };
    if let Err(e) = backup::probe_writable(&backup_dir) {
        run.step("backup", false, e.to_string());
        return Decision::Done(RepairResult::Refused, Some(e.to_string()));
    }
    Decision::Act { plan, backup_dir }
}

/// One kubectl call as `kubectl` and as `k3s kubectl` (Rancher images ship one or the other),
/// with `--insecure-skip-tls-verify`: it must work while the serving certificate is expired.
pub(crate) fn kubectl_variants<'a>(args: &[&'a str]) -> [Vec<&'a str>; 2] {
    let mut plain = vec!["kubectl", "--insecure-skip-tls-verify"];
    plain.extend_from_slice(args);
    let mut k3s = vec!["k3s"];
    k3s.extend(plain.iter().copied());
    [plain, k3s]
}

/// How long a lease of one repair is honoured: the whole repair, one stop grace, a margin.
fn lease_validity(opts: &RepairOptions) -> Duration {
    opts.timeout + Duration::from_secs(u64::from(opts.stop_timeout) + 120)
}
