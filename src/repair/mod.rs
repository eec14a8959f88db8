//! `repair`: back up, wipe what K3s regenerates, restart and verify — through the crash loop
//! and the unknown-authority loop — until the embedded certificates are fresh.
//!
//! The ladder, each step logged and recorded in the report:
//! 1. read and judge the tree, scan the logs since the last start; leave a healthy container alone;
//! 2. back up the whole tree (+ `k3s.yaml`, + the `k3s-serving` secret) and verify the archive;
//! 3. delete the `k3s-serving` secret while the API answers; stop the container;
//! 4. wipe, through a short-lived helper container from the target's own image that mounts the
//!    target's volumes (`--volumes-from`, no network): works running, crash-looping or stopped,
//!    needs nothing from this tool's FROM-scratch image, and never execs into a dying container;
//! 5. start, and verify: running without restarts for `--settle`, no failure signature, `pong`,
//!    leaves and serving cert beyond the window, CA fingerprints unchanged;
//! 6. loops: restart with backoff on the unknown-authority loop, then reset the serving pair,
//!    then give up with a diagnosis naming the backup. A journal makes all of it resumable.

pub mod backup;
pub mod journal;
pub mod plan;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::docker::{parse_rfc3339_nanos, ContainerInfo, DockerClient};
use crate::error::Error;
use crate::inventory::{inventory, Inventory, RenewBefore, Status};
use crate::report::CheckReport;
use crate::source::{dir::read_dir_tree, Tree};
use crate::{probe, timefmt};
use plan::{plan_wipe, reasons_to_act, signatures, Signature, WipePlan, REGENERATE_TRIGGER};

/// Where Rancher keeps the kubeconfig K3s writes (backed up, never changed).
pub const KUBECONFIG_PATH: &str = "/etc/rancher/k3s/k3s.yaml";

/// Settings of one repair, parsed once from the CLI (or the watch config).
#[derive(Debug, Clone)]
pub struct RepairOptions {
    pub renew_before: RenewBefore,
    pub backup_dir: Option<PathBuf>,
    pub keep_backups: usize,
    pub dry_run: bool,
    pub force: bool,
    pub max_restarts: u32,
    pub settle: Duration,
    pub timeout: Duration,
    pub health_url: Option<String>,
    pub stop_timeout: u32,
    /// Fault injection for tests: stop for an hour right after this step (`stop`, `wipe`).
    pub pause_after: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RepairResult {
    /// Nothing was due; nothing was touched.
    Healthy,
    /// Repaired and verified.
    Repaired,
    /// Tried and could not verify a healthy container; the backup is named in the diagnosis.
    Failed,
    /// Would not start (no backup possible, nothing to do safely); nothing was changed.
    Refused,
    /// `--dry-run`: the plan only.
    DryRun,
}

impl RepairResult {
    pub fn as_str(self) -> &'static str {
        match self {
            RepairResult::Healthy => "healthy",
            RepairResult::Repaired => "repaired",
            RepairResult::Failed => "failed",
            RepairResult::Refused => "refused",
            RepairResult::DryRun => "dry_run",
        }
    }
}

/// Exit code of a refused repair.
pub const EXIT_REFUSED: u8 = 4;
/// Exit code of a failed repair.
pub const EXIT_FAILED: u8 = 5;

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub step: String,
    pub ok: bool,
    pub detail: String,
    pub seconds: f64,
}

/// Everything a repair did, for people (table), scripts (JSON) and metrics.
#[derive(Debug, Clone, Serialize)]
pub struct RepairReport {
    pub result: RepairResult,
    pub target: String,
    pub restarts: u32,
    pub backup: Option<String>,
    pub wiped: Vec<String>,
    pub reasons: Vec<String>,
    pub plan: Option<WipePlan>,
    pub before: Option<CheckReport>,
    pub after: Option<CheckReport>,
    pub steps: Vec<Step>,
    pub diagnosis: Option<String>,
}

impl RepairReport {
    fn new(target: &str) -> Self {
        Self {
            result: RepairResult::Failed,
            target: target.to_string(),
            restarts: 0,
            backup: None,
            wiped: vec![],
            reasons: vec![],
            plan: None,
            before: None,
            after: None,
            steps: vec![],
            diagnosis: None,
        }
    }

    /// 0 healthy or repaired; dry run: what `check` would give (1 when only the logs call
    /// for a repair); 4 refused; 5 failed.
    pub fn exit_code(&self) -> u8 {
        match self.result {
            RepairResult::Healthy | RepairResult::Repaired => 0,
            RepairResult::DryRun => {
                let check = self
                    .before
                    .as_ref()
                    .map(|b| b.status.exit_code())
                    .unwrap_or(0);
                if check == 0 && !self.reasons.is_empty() {
                    1
                } else {
                    check
                }
            }
            RepairResult::Refused => EXIT_REFUSED,
            RepairResult::Failed => EXIT_FAILED,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    pub fn to_table(&self) -> String {
        let mut out = String::new();
        if let Some(b) = &self.before {
            out.push_str("BEFORE\n");
            out.push_str(&b.to_table());
        }
        if !self.reasons.is_empty() {
            out.push_str("\nWHY\n");
            for r in &self.reasons {
                out.push_str(&format!("  - {r}\n"));
            }
        }
        if let Some(p) = &self.plan {
            out.push_str("\nPLAN\n");
            out.push_str("  back up: the whole TLS tree, k3s.yaml, the k3s-serving secret\n");
            for d in &p.delete {
                out.push_str(&format!("  delete: {d}\n"));
            }
            if p.reset_serving {
                out.push_str("  delete: secret kube-system/k3s-serving (with dynamic-cert.json)\n");
                out.push_str(&format!("  create: {REGENERATE_TRIGGER} (newer K3s regenerates the :6443 certificate)\n"));
            }
            for (k, why) in &p.kept {
                out.push_str(&format!("  keep: {k} ({why})\n"));
            }
            out.push_str("  never: CA certificates and keys, service.key, anything outside the TLS directory\n");
            if self.result == RepairResult::DryRun {
                out.push_str(
                    "  then: stop the container, wipe through a helper container, start, verify\n",
                );
            }
        }
        if !self.steps.is_empty() {
            out.push_str("\nSTEPS\n");
            for s in &self.steps {
                out.push_str(&format!(
                    "  {:<4} {:<16} {:>7.2}s  {}\n",
                    if s.ok { "ok" } else { "FAIL" },
                    s.step,
                    s.seconds,
                    s.detail
                ));
            }
        }
        if let Some(a) = &self.after {
            out.push_str("\nAFTER\n");
            out.push_str(&a.to_table());
        }
        out.push_str(&format!(
            "\nresult: {}  restarts: {}  backup: {}\n",
            self.result.as_str(),
            self.restarts,
            self.backup.as_deref().unwrap_or("-")
        ));
        if let Some(d) = &self.diagnosis {
            out.push_str(&format!("diagnosis: {d}\n"));
        }
        out
    }
}

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

    fn time_left(&self) -> Duration {
        self.opts.timeout.saturating_sub(self.started.elapsed())
    }

    async fn pause_point(&self, step: &str) {
        if self.opts.pause_after.as_deref() == Some(step) {
            tracing::warn!("fault injection: pausing after step {step}");
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    }
}

fn ca_fingerprints(inv: &Inventory) -> Vec<(String, String)> {
    inv.ca_fingerprints()
}

/// Every protected file that existed before is still there, byte for byte. New ones may
/// appear: K3s mints a CA that was already missing before the repair.
fn protected_intact(before: &[(String, Vec<u8>)], after: &[(String, Vec<u8>)]) -> bool {
    before.iter().all(|b| after.contains(b))
}

fn file_bytes<'t>(tree: &'t Tree, path: &str) -> Option<&'t [u8]> {
    tree.files().find(|(p, _)| *p == path).map(|(_, b)| b)
}

/// What must be byte-identical after any step: CA certificates, CA keys, service keys.
fn protected_snapshot(tree: &Tree) -> Vec<(String, Vec<u8>)> {
    tree.files()
        .filter(|(p, _)| plan::is_protected(p))
        .map(|(p, b)| (p.to_string(), b.to_vec()))
        .collect()
}

// ---------------------------------------------------------------- directory mode

/// `repair --dir`: the init-container use, before Rancher starts. Same rules, no restart.
pub async fn repair_dir(dir: &Path, opts: &RepairOptions) -> Result<RepairReport, Error> {
    let target = format!("dir:{}", dir.display());
    let mut run = Run::new(opts, &target);
    let now = timefmt::now();
    let tree = read_blocking(dir).await?;
    let inv = inventory(&tree, now, opts.renew_before);
    run.report.before = Some(CheckReport::new(
        target.clone(),
        now,
        opts.renew_before,
        &inv,
    ));
    run.step(
        "inspect",
        true,
        format!(
            "{} certificates, {} problems",
            inv.certificates.len(),
            inv.problems.len()
        ),
    );
    run.report.reasons = reasons_to_act(&inv, &[], opts.force);
    if run.report.reasons.is_empty() {
        return Ok(run.finish(RepairResult::Healthy, None));
    }
    let plan = plan_wipe(&inv);
    run.report.plan = Some(plan.clone());
    if opts.dry_run {
        return Ok(run.finish(RepairResult::DryRun, None));
    }
    let Some(backup_dir) = opts.backup_dir.clone() else {
        return Ok(run.finish(RepairResult::Refused, Some("no --backup-dir given: refusing to delete anything without a backup; nothing was changed".into())));
    };
    let backup_name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("tls")
        .to_string();
    let archive = match backup::write_verified(
        &backup_dir,
        &format!("dir-{backup_name}"),
        &dir.display().to_string(),
        &tree,
        &backup::Extras::default(),
        now,
    ) {
        Ok(p) => p,
        Err(e) => {
            run.step("backup", false, e.to_string());
            return Ok(run.finish(RepairResult::Refused, Some(e.to_string())));
        }
    };
    run.report.backup = Some(archive.display().to_string());
    run.step("backup", true, format!("{} verified", archive.display()));
    backup::prune(
        &backup_dir,
        &format!("dir-{backup_name}"),
        opts.keep_backups,
    );

    let protected_before = protected_snapshot(&tree);
    let mut wiped = Vec::new();
    for rel in &plan.delete {
        let p = dir.join(rel);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_file() => match std::fs::remove_file(&p) {
                Ok(()) => wiped.push(rel.clone()),
                Err(e) => {
                    run.step("wipe", false, format!("{rel}: {e}"));
                    return Ok(run.finish(
                        RepairResult::Failed,
                        Some(format!(
                            "wipe failed at {rel}: {e}; restore from {}",
                            archive.display()
                        )),
                    ));
                }
            },
            _ => {}
        }
    }
    let _ = std::fs::write(dir.join(REGENERATE_TRIGGER), b"");
    run.report.wiped = wiped.clone();
    run.step(
        "wipe",
        true,
        format!(
            "deleted {} files; K3s regenerates them at its next start",
            wiped.len()
        ),
    );

    let after_tree = read_blocking(dir).await?;
    if !protected_intact(&protected_before, &protected_snapshot(&after_tree)) {
        run.step("verify", false, "CA or service-account material changed");
        return Ok(run.finish(
            RepairResult::Failed,
            Some(format!(
                "protected files changed; restore from {}",
                archive.display()
            )),
        ));
    }
    let now = timefmt::now();
    let after = inventory(&after_tree, now, opts.renew_before);
    run.report.after = Some(CheckReport::new(target, now, opts.renew_before, &after));
    run.step(
        "verify",
        true,
        "CA certificates and keys and service.key unchanged",
    );
    Ok(run.finish(RepairResult::Repaired, None))
}

async fn read_blocking(dir: &Path) -> Result<Tree, Error> {
    let d = dir.to_path_buf();
    tokio::task::spawn_blocking(move || read_dir_tree(&d))
        .await
        .map_err(|e| Error::Failed(e.to_string()))?
}

// ---------------------------------------------------------------- container mode

/// `repair --container`.
pub async fn repair_container(
    docker: &DockerClient,
    name: &str,
    tls_path: &str,
    opts: &RepairOptions,
) -> Result<RepairReport, Error> {
    let mut run = Run::new(opts, name);

    // A repair killed mid-way is finished first: its wipe completed, the container started
    // and verified exactly as if it had not been interrupted.
    if let Some(dir) = &opts.backup_dir {
        if !opts.dry_run {
            if let Some(j) = journal::load(dir, name) {
                if let Some(report) = resume(docker, run, dir, &j).await? {
                    return Ok(report);
                }
                run = Run::new(opts, name);
            }
        }
    }

    let info = docker.inspect(name).await?;
    let now = timefmt::now();
    let tree = docker.read_tree(&info.id, tls_path).await?;
    let inv = inventory(&tree, now, opts.renew_before);
    let source = format!("container:{}:{tls_path}", info.name);
    run.report.before = Some(CheckReport::new(
        source.clone(),
        now,
        opts.renew_before,
        &inv,
    ));
    let since = info
        .started_at
        .as_deref()
        .and_then(parse_rfc3339_nanos)
        .unwrap_or(0);
    let logs = docker
        .logs_since(&info.id, since, 2000)
        .await
        .unwrap_or_default();
    let sigs = signatures(&logs);
    run.step(
        "inspect",
        true,
        format!(
            "container {} is {}; {} certificates, {} problems; log signatures: {:?}",
            info.name,
            info.status,
            inv.certificates.len(),
            inv.problems.len(),
            sigs
        ),
    );
    run.report.reasons = reasons_to_act(&inv, &sigs, opts.force);
    if run.report.reasons.is_empty() {
        return Ok(run.finish(RepairResult::Healthy, None));
    }
    let plan = plan_wipe(&inv);
    run.report.plan = Some(plan.clone());
    if opts.dry_run {
        return Ok(run.finish(RepairResult::DryRun, None));
    }
    tracing::info!(container = %info.name, reasons = ?run.report.reasons, "repair needed");

    // Refuse early, before touching anything.
    let Some(backup_dir) = opts.backup_dir.clone() else {
        return Ok(run.finish(RepairResult::Refused, Some("no --backup-dir given: refusing to delete anything without a backup; nothing was changed".into())));
    };
    if let Err(e) = backup::probe_writable(&backup_dir) {
        run.step("backup", false, e.to_string());
        return Ok(run.finish(RepairResult::Refused, Some(e.to_string())));
    }
    if inv.ca_fingerprints().is_empty() {
        tracing::warn!(container = %info.name, "no CA certificate in the TLS tree: K3s will mint new CAs at start (unknown-authority loop likely; handled by restarts)");
    }

    // Backup of the live tree.
    let mut extras = backup::Extras {
        kubeconfig: docker
            .read_file(&info.id, KUBECONFIG_PATH)
            .await
            .unwrap_or(None),
        serving_secret: None,
    };
    if info.running && !info.restarting {
        extras.serving_secret = get_serving_secret(docker, &info.id).await;
    }
    let archive =
        match backup::write_verified(&backup_dir, &info.name, tls_path, &tree, &extras, now) {
            Ok(p) => p,
            Err(e) => {
                run.step("backup", false, e.to_string());
                return Ok(run.finish(RepairResult::Refused, Some(e.to_string())));
            }
        };
    let archive_s = archive.display().to_string();
    run.report.backup = Some(archive_s.clone());
    let pruned = backup::prune(&backup_dir, &info.name, opts.keep_backups);
    run.step(
        "backup",
        true,
        format!(
            "{archive_s} written and verified (sha256 manifest){}",
            if pruned.is_empty() {
                String::new()
            } else {
                format!("; pruned {} old", pruned.len())
            }
        ),
    );

    // From here on, the container is ours to bring back.
    let mut ctx = Ladder {
        docker,
        info: info.clone(),
        tls_path: tls_path.to_string(),
        backup_dir,
        archive: archive_s,
        protected: protected_snapshot(&tree),
        cas: ca_fingerprints(&inv),
    };
    let outcome = ctx.wipe_restart(&mut run, &tree, &plan).await;
    let outcome = match outcome {
        Ok(()) => ctx.verify_loop(&mut run).await,
        Err(e) => Err(e),
    };
    // Whatever happened, never leave the container stopped.
    ctx.ensure_started(&mut run).await;
    journal::clear(&ctx.backup_dir, &ctx.info.name);
    match outcome {
        Ok(after) => {
            run.report.after = Some(after);
            Ok(run.finish(RepairResult::Repaired, None))
        }
        Err(diag) => {
            let diag = format!(
                "{diag}; the certificates as they were are in {}",
                ctx.archive
            );
            Ok(run.finish(RepairResult::Failed, Some(diag)))
        }
    }
}

/// Finish what an interrupted repair left: redo an unfinished wipe, start the container and
/// verify it. Returns the report when it did so; `None` when there was nothing to finish (the
/// caller then goes on with a fresh repair, handing back the consumed `run`).
async fn resume<'a>(
    docker: &DockerClient,
    mut run: Run<'a>,
    dir: &Path,
    j: &journal::Journal,
) -> Result<Option<RepairReport>, Error> {
    tracing::warn!(container = %j.target, step = %j.step, backup = %j.backup, "resuming a repair that was interrupted");
    let info = match docker.inspect(&j.container_id).await {
        Ok(i) => i,
        Err(Error::ContainerNotFound { .. }) => {
            tracing::warn!(container = %j.target, "the container of the interrupted repair is gone; journal dropped");
            journal::clear(dir, &j.target);
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    if !(j.stopped_by_us && !info.running && !info.restarting) {
        // It was brought back already (or never stopped): a fresh look decides.
        journal::clear(dir, &j.target);
        return Ok(None);
    }
    if j.step == "stopping" {
        // Stopped before anything was deleted: bring it back; a fresh look decides.
        docker.start(&info.id).await?;
        tracing::warn!(container = %info.name, "started the container an interrupted repair had stopped before its wipe");
        journal::clear(dir, &j.target);
        return Ok(None);
    }
    run.report.backup = Some(j.backup.clone());
    let backup_ok = backup::read_archive(Path::new(&j.backup)).is_ok();
    let tree = docker.read_tree(&info.id, &j.tls_path).await?;
    let now = timefmt::now();
    let inv = inventory(&tree, now, run.opts.renew_before);
    run.report.before = Some(CheckReport::new(
        format!("container:{}:{}", info.name, j.tls_path),
        now,
        run.opts.renew_before,
        &inv,
    ));
    run.report.reasons = vec![format!(
        "resuming a repair interrupted at step `{}`",
        j.step
    )];
    let mut ladder = Ladder {
        docker,
        info: info.clone(),
        tls_path: j.tls_path.clone(),
        backup_dir: dir.to_path_buf(),
        archive: j.backup.clone(),
        protected: protected_snapshot(&tree),
        cas: ca_fingerprints(&inv),
    };
    if j.step == "wiping" && backup_ok {
        let (code, out) = docker
            .run_helper(
                &info,
                wipe_command(&j.tls_path, &j.delete),
                Duration::from_secs(120),
            )
            .await?;
        run.step(
            "resume-wipe",
            code == 0,
            format!("re-ran the interrupted wipe (exit {code}) {}", out.trim()),
        );
        run.report.wiped = j.delete.clone();
    }
    docker.start(&info.id).await?;
    run.report.restarts += 1;
    ladder.journal("verifying", false, &j.delete);
    run.step(
        "resume-start",
        true,
        format!(
            "started {}, which an interrupted repair had stopped",
            info.name
        ),
    );
    let outcome = ladder.verify_loop(&mut run).await;
    ladder.ensure_started(&mut run).await;
    journal::clear(dir, &j.target);
    Ok(Some(match outcome {
        Ok(after) => {
            run.report.after = Some(after);
            run.finish(RepairResult::Repaired, None)
        }
        Err(diag) => {
            let diag = format!("{diag}; the certificates as they were are in {}", j.backup);
            run.finish(RepairResult::Failed, Some(diag))
        }
    }))
}

/// `sh -c` script of the helper container: delete the listed files (relative to the TLS dir,
/// passed as arguments — no shell parsing of names) and write the regenerate trigger.
fn wipe_command(tls_path: &str, delete: &[String]) -> Vec<String> {
    let script = "set -e; d=\"$1\"; shift; cd \"$d\"; for f in \"$@\"; do rm -f -- \"$f\"; done; : > dynamic-cert-regenerate; echo wiped $#";
    let mut cmd = vec![
        "/bin/sh".to_string(),
        "-c".into(),
        script.into(),
        "rancher-cert-guard-wipe".into(),
        tls_path.to_string(),
    ];
    cmd.extend(delete.iter().cloned());
    cmd
}

async fn get_serving_secret(docker: &DockerClient, id: &str) -> Option<Vec<u8>> {
    for cmd in [
        vec![
            "kubectl",
            "--insecure-skip-tls-verify",
            "get",
            "secret",
            "-n",
            "kube-system",
            "k3s-serving",
            "-o",
            "json",
        ],
        vec![
            "k3s",
            "kubectl",
            "--insecure-skip-tls-verify",
            "get",
            "secret",
            "-n",
            "kube-system",
            "k3s-serving",
            "-o",
            "json",
        ],
    ] {
        if let Ok((0, out)) = docker.exec(id, &cmd, Duration::from_secs(20)).await {
            if out.trim_start().starts_with('{') {
                return Some(out.into_bytes());
            }
        }
    }
    None
}

/// The state of one container repair once the backup exists.
struct Ladder<'d> {
    docker: &'d DockerClient,
    info: ContainerInfo,
    tls_path: String,
    backup_dir: PathBuf,
    archive: String,
    /// CA and service-account files, byte for byte, before anything changed.
    protected: Vec<(String, Vec<u8>)>,
    cas: Vec<(String, String)>,
}

impl Ladder<'_> {
    fn journal(&self, step: &str, stopped_by_us: bool, delete: &[String]) {
        let j = journal::Journal {
            target: self.info.name.clone(),
            container_id: self.info.id.clone(),
            tls_path: self.tls_path.clone(),
            step: step.to_string(),
            stopped_by_us,
            backup: self.archive.clone(),
            delete: delete.to_vec(),
            started_at: timefmt::rfc3339(timefmt::now()),
        };
        if let Err(e) = journal::save(&self.backup_dir, &j) {
            tracing::warn!(container = %self.info.name, "cannot write the journal: {e}");
        }
    }

    /// Delete the `k3s-serving` secret through the container's own kubectl, while its API
    /// answers. Returns whether it is gone.
    async fn delete_serving_secret(&self, run: &mut Run<'_>) -> bool {
        let info = match self.docker.inspect(&self.info.id).await {
            Ok(i) => i,
            Err(_) => return false,
        };
        if !info.running || info.restarting {
            run.step("reset-secret", false, "container not running: the k3s-serving secret cannot be deleted now (K3s may restore the old :6443 certificate from it; a later step retries while the API answers)");
            return false;
        }
        let mut last = String::new();
        for cmd in [
            vec![
                "kubectl",
                "--insecure-skip-tls-verify",
                "delete",
                "secret",
                "-n",
                "kube-system",
                "k3s-serving",
            ],
            vec![
                "k3s",
                "kubectl",
                "--insecure-skip-tls-verify",
                "delete",
                "secret",
                "-n",
                "kube-system",
                "k3s-serving",
            ],
        ] {
            match self
                .docker
                .exec(&self.info.id, &cmd, Duration::from_secs(30))
                .await
            {
                Ok((0, out)) => {
                    run.step(
                        "reset-secret",
                        true,
                        format!("{} ({})", out.trim(), cmd[..2].join(" ")),
                    );
                    return true;
                }
                Ok((_, out))
                    if out.contains("NotFound")
                        || out.contains("not found") && out.contains("k3s-serving") =>
                {
                    run.step(
                        "reset-secret",
                        true,
                        "secret kube-system/k3s-serving already absent",
                    );
                    return true;
                }
                Ok((code, out)) => last = format!("exit {code}: {}", out.trim()),
                Err(e) => last = e.to_string(),
            }
        }
        run.step(
            "reset-secret",
            false,
            format!("could not delete secret kube-system/k3s-serving: {last}"),
        );
        false
    }

    /// Secret, stop, (re-backup if the tree moved), wipe, verify the wipe, start.
    async fn wipe_restart(
        &mut self,
        run: &mut Run<'_>,
        live_tree: &Tree,
        plan: &WipePlan,
    ) -> Result<(), String> {
        if plan.reset_serving {
            self.delete_serving_secret(run).await;
        }
        self.journal("stopping", true, &plan.delete);
        self.docker
            .stop(&self.info.id, self.opts_stop(run))
            .await
            .map_err(|e| format!("stop failed: {e}"))?;
        run.step("stop", true, format!("stopped {}", self.info.name));
        run.pause_point("stop").await;

        // Files may have moved between the live backup and the stop: read again, re-plan,
        // and back up once more if anything differs.
        let tree = self
            .docker
            .read_tree(&self.info.id, &self.tls_path)
            .await
            .map_err(|e| format!("re-reading the stopped container failed: {e}"))?;
        let inv = inventory(&tree, timefmt::now(), run.opts.renew_before);
        let plan = plan_wipe(&inv);
        if &tree != live_tree {
            let kube = self
                .docker
                .read_file(&self.info.id, KUBECONFIG_PATH)
                .await
                .unwrap_or(None);
            let extras = backup::Extras {
                kubeconfig: kube,
                serving_secret: None,
            };
            match backup::write_verified(
                &self.backup_dir,
                &self.info.name,
                &self.tls_path,
                &tree,
                &extras,
                timefmt::now(),
            ) {
                Ok(p) => {
                    run.step(
                        "backup",
                        true,
                        format!(
                            "the tree changed while stopping: second archive {} verified",
                            p.display()
                        ),
                    );
                    self.archive = p.display().to_string();
                    run.report.backup = Some(self.archive.clone());
                }
                Err(e) => return Err(format!("second backup failed, nothing was deleted: {e}")),
            }
            self.protected = protected_snapshot(&tree);
            self.cas = ca_fingerprints(&inv);
        }

        self.journal("wiping", true, &plan.delete);
        let (code, out) = self
            .docker
            .run_helper(
                &self.info,
                wipe_command(&self.tls_path, &plan.delete),
                Duration::from_secs(120),
            )
            .await
            .map_err(|e| format!("wipe helper failed: {e}"))?;
        if code != 0 {
            return Err(format!("wipe helper exited {code}: {}", out.trim()));
        }
        run.pause_point("wipe").await;
        let after = self
            .docker
            .read_tree(&self.info.id, &self.tls_path)
            .await
            .map_err(|e| format!("re-reading after the wipe failed: {e}"))?;
        let still: Vec<&String> = plan
            .delete
            .iter()
            .filter(|p| file_bytes(&after, p).is_some())
            .collect();
        if !still.is_empty() {
            return Err(format!(
                "the wipe did not reach the TLS directory (still present: {still:?}); is {} on a volume of the container?",
                self.tls_path
            ));
        }
        if !protected_intact(&self.protected, &protected_snapshot(&after)) {
            return Err("CA or service-account material changed during the wipe — stop and restore the backup".into());
        }
        run.report.wiped = plan.delete.clone();
        run.step("wipe", true, format!("deleted {} files through a helper container; CA files and service.key byte-identical", plan.delete.len()));

        self.journal("starting", true, &plan.delete);
        self.docker
            .start(&self.info.id)
            .await
            .map_err(|e| format!("start failed: {e}"))?;
        run.report.restarts += 1;
        self.journal("verifying", false, &plan.delete);
        run.step("start", true, format!("started {}", self.info.name));
        Ok(())
    }

    fn opts_stop(&self, run: &Run<'_>) -> i32 {
        run.opts.stop_timeout.min(i32::MAX as u32) as i32
    }

    /// Delete the serving pair (secret while the API answers, file through the helper) and
    /// restart.
    async fn reset_serving_and_restart(&mut self, run: &mut Run<'_>) -> Result<(), String> {
        self.delete_serving_secret(run).await;
        let delete = vec![crate::inventory::SERVING_FILE.to_string()];
        self.journal("stopping", true, &delete);
        self.docker
            .stop(&self.info.id, self.opts_stop(run))
            .await
            .map_err(|e| format!("stop failed: {e}"))?;
        self.journal("wiping", true, &delete);
        let (code, out) = self
            .docker
            .run_helper(
                &self.info,
                wipe_command(&self.tls_path, &delete),
                Duration::from_secs(120),
            )
            .await
            .map_err(|e| format!("wipe helper failed: {e}"))?;
        if code != 0 {
            return Err(format!("wipe helper exited {code}: {}", out.trim()));
        }
        if !run.report.wiped.contains(&delete[0]) {
            run.report.wiped.push(delete[0].clone());
        }
        self.docker
            .start(&self.info.id)
            .await
            .map_err(|e| format!("start failed: {e}"))?;
        self.journal("verifying", false, &delete);
        run.report.restarts += 1;
        run.step(
            "reset-serving",
            true,
            "deleted dynamic-cert.json and the k3s-serving secret, restarted",
        );
        Ok(())
    }

    async fn plain_restart(&mut self, run: &mut Run<'_>, why: &str) -> Result<(), String> {
        self.docker
            .restart(&self.info.id, self.opts_stop(run))
            .await
            .map_err(|e| format!("restart failed: {e}"))?;
        run.report.restarts += 1;
        run.step("restart", true, why.to_string());
        Ok(())
    }

    async fn ensure_started(&self, run: &mut Run<'_>) {
        if let Ok(i) = self.docker.inspect(&self.info.id).await {
            if !i.running && !i.restarting {
                match self.docker.start(&self.info.id).await {
                    Ok(()) => run.step(
                        "ensure-started",
                        true,
                        "started the container again so it is not left stopped",
                    ),
                    Err(e) => run.step(
                        "ensure-started",
                        false,
                        format!("could not start the container: {e}"),
                    ),
                }
            }
        }
    }

    /// Wait for a verified healthy container, walking the known loops.
    async fn verify_loop(&mut self, run: &mut Run<'_>) -> Result<CheckReport, String> {
        let poll = Duration::from_millis(250);
        let mut extra_restarts = 0u32;
        let mut ua_attempts = 0u32;
        let mut serving_resets = 0u32;
        'attempt: loop {
            let info = self
                .docker
                .inspect(&self.info.id)
                .await
                .map_err(|e| e.to_string())?;
            let start_nanos = info
                .started_at
                .as_deref()
                .and_then(parse_rfc3339_nanos)
                .unwrap_or(0);
            let start_count = info.restart_count;
            let attempt_started = Instant::now();
            let mut healthy_since: Option<Instant> = None;
            let mut fresh: Option<CheckReport> = None;
            loop {
                if run.time_left().is_zero() {
                    return Err(format!(
                        "not healthy within --timeout {}s",
                        run.opts.timeout.as_secs()
                    ));
                }
                let i = self
                    .docker
                    .inspect(&self.info.id)
                    .await
                    .map_err(|e| e.to_string())?;
                let restarted_by_itself = i.restart_count != start_count
                    || i.started_at
                        .as_deref()
                        .and_then(parse_rfc3339_nanos)
                        .unwrap_or(0)
                        != start_nanos;
                let logs = self
                    .docker
                    .logs_since(&self.info.id, start_nanos, 2000)
                    .await
                    .unwrap_or_default();
                let sigs = signatures(&logs);
                let crashed =
                    !i.running || restarted_by_itself || sigs.contains(&Signature::K3sExited);
                if crashed && !sigs.contains(&Signature::UnknownAuthority) {
                    let last: Vec<&str> = logs.lines().rev().take(3).collect();
                    return Err(format!(
                        "the container exits after the repair ({}); last log lines: {:?}",
                        if sigs.is_empty() {
                            "no known signature".to_string()
                        } else {
                            format!("{sigs:?}")
                        },
                        last
                    ));
                }
                if sigs.contains(&Signature::UnknownAuthority) {
                    run.step("verify", false, "x509: certificate signed by unknown authority (stale k3s.yaml or serving certificate)");
                    if extra_restarts >= run.opts.max_restarts {
                        return Err(format!("still `signed by unknown authority` after {extra_restarts} extra restarts (--max-restarts)"));
                    }
                    let backoff = Duration::from_secs(1 << ua_attempts.min(5));
                    tokio::time::sleep(backoff.min(run.time_left())).await;
                    if ua_attempts == 1 {
                        self.reset_serving_and_restart(run).await?;
                    } else {
                        self.plain_restart(run, &format!("unknown-authority loop: restart after {}s backoff (Rancher reads k3s.yaml before K3s rewrites it)", backoff.as_secs())).await?;
                    }
                    ua_attempts += 1;
                    extra_restarts += 1;
                    continue 'attempt;
                }
                if sigs.contains(&Signature::Expired) || sigs.contains(&Signature::WaitingX509) {
                    run.step(
                        "verify",
                        false,
                        format!("{sigs:?} after the restart: the old :6443 certificate came back"),
                    );
                    if extra_restarts >= run.opts.max_restarts || serving_resets >= 2 {
                        return Err(format!(
                            "the serving certificate is still rejected ({sigs:?})"
                        ));
                    }
                    self.reset_serving_and_restart(run).await?;
                    serving_resets += 1;
                    extra_restarts += 1;
                    continue 'attempt;
                }
                if probe::rancher_ping(self.docker, &self.info.id, run.opts.health_url.as_deref())
                    .await
                {
                    if fresh.is_none() {
                        let tree = self
                            .docker
                            .read_tree(&self.info.id, &self.tls_path)
                            .await
                            .map_err(|e| e.to_string())?;
                        let now = timefmt::now();
                        let inv = inventory(&tree, now, run.opts.renew_before);
                        let cas_now = ca_fingerprints(&inv);
                        if !protected_intact(&self.protected, &protected_snapshot(&tree))
                            || !self.cas.iter().all(|c| cas_now.contains(c))
                        {
                            return Err("CA certificates or keys changed after the restart".into());
                        }
                        let stale: Vec<String> = inv
                            .renewable()
                            .filter(|c| c.index == 0 && c.status != Status::Ok)
                            .map(|c| format!("{} ({})", c.path, c.status.as_str()))
                            .collect();
                        if !stale.is_empty() {
                            run.step(
                                "verify",
                                false,
                                format!(
                                    "Rancher answers but certificates are still due: {stale:?}"
                                ),
                            );
                            let only_serving = inv
                                .renewable()
                                .filter(|c| c.index == 0 && c.status != Status::Ok)
                                .all(|c| c.path == crate::inventory::SERVING_FILE);
                            if only_serving
                                && extra_restarts < run.opts.max_restarts
                                && serving_resets < 2
                            {
                                self.reset_serving_and_restart(run).await?;
                                serving_resets += 1;
                                extra_restarts += 1;
                                continue 'attempt;
                            }
                            return Err(format!("K3s did not regenerate {stale:?}"));
                        }
                        let source = format!("container:{}:{}", self.info.name, self.tls_path);
                        fresh = Some(CheckReport::new(source, now, run.opts.renew_before, &inv));
                        run.step("verify", true, format!("pong after {:.1}s; leaves and serving certificate fresh; CA fingerprints unchanged", attempt_started.elapsed().as_secs_f64()));
                    }
                    let since = *healthy_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= run.opts.settle {
                        run.step(
                            "settle",
                            true,
                            format!(
                                "running without restart or failure signature for {}s",
                                run.opts.settle.as_secs()
                            ),
                        );
                        return fresh.take().ok_or_else(|| "internal: verified without a report".to_string());
                    }
                } else {
                    healthy_since = None;
                }
                tokio::time::sleep(poll.min(run.time_left())).await;
            }
        }
    }
}
