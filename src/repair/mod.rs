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
mod dir;
pub mod journal;
mod ladder;
pub mod plan;
mod report;

pub use dir::repair_dir;
pub use report::{RepairReport, RepairResult, Step, EXIT_FAILED, EXIT_REFUSED};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::docker::{parse_rfc3339_nanos, DockerClient};
use crate::error::Error;
use crate::inventory::{inventory, Inventory, RenewBefore};
use crate::report::CheckReport;
use crate::source::Tree;
use crate::timefmt;
use ladder::Ladder;
use plan::{plan_wipe, reasons_to_act, signatures};

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

/// The decision both modes share: nothing due → healthy; `--dry-run` → the plan only; no
/// usable backup directory → refused. `Ok` carries what to wipe and where the backup goes;
/// `Err` the finished report.
fn decide<'a>(
    mut run: Run<'a>,
    inv: &Inventory,
    sigs: &[plan::Signature],
) -> Result<(Run<'a>, plan::WipePlan, PathBuf), Box<RepairReport>> {
    run.report.reasons = reasons_to_act(inv, sigs, run.opts.force);
    if run.report.reasons.is_empty() {
        return Err(Box::new(run.finish(RepairResult::Healthy, None)));
    }
    let plan = plan_wipe(inv);
    run.report.plan = Some(plan.clone());
    if run.opts.dry_run {
        return Err(Box::new(run.finish(RepairResult::DryRun, None)));
    }
    let Some(backup_dir) = run.opts.backup_dir.clone() else {
        return Err(Box::new(run.finish(
            RepairResult::Refused,
            Some("no --backup-dir given: refusing to delete anything without a backup; nothing was changed".into()),
        )));
    };
    if let Err(e) = backup::probe_writable(&backup_dir) {
        run.step("backup", false, e.to_string());
        return Err(Box::new(
            run.finish(RepairResult::Refused, Some(e.to_string())),
        ));
    }
    Ok((run, plan, backup_dir))
}

/// What must be byte-identical after any step: CA certificates, CA keys, service keys.
fn protected_snapshot(tree: &Tree) -> Vec<(String, Vec<u8>)> {
    tree.files()
        .filter(|(p, _)| plan::is_protected(p))
        .map(|(p, b)| (p.to_string(), b.to_vec()))
        .collect()
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
    let (mut run, plan, backup_dir) = match decide(run, &inv, &sigs) {
        Ok(go) => go,
        Err(report) => return Ok(*report),
    };
    tracing::info!(container = %info.name, reasons = ?run.report.reasons, "repair needed");
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
    let pruned = backup::prune(&backup_dir, &info.name, opts.keep_backups, &archive);
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

/// One kubectl call as `kubectl` and as `k3s kubectl` (Rancher images ship one or the other),
/// with `--insecure-skip-tls-verify`: it must work while the serving certificate is expired.
pub(crate) fn kubectl_variants<'a>(args: &[&'a str]) -> [Vec<&'a str>; 2] {
    let mut plain = vec!["kubectl", "--insecure-skip-tls-verify"];
    plain.extend_from_slice(args);
    let mut k3s = vec!["k3s"];
    k3s.extend(plain.iter().copied());
    [plain, k3s]
}

async fn get_serving_secret(docker: &DockerClient, id: &str) -> Option<Vec<u8>> {
    for cmd in kubectl_variants(&[
        "get",
        "secret",
        "-n",
        "kube-system",
        "k3s-serving",
        "-o",
        "json",
    ]) {
        if let Ok((0, out)) = docker.exec(id, &cmd, Duration::from_secs(20)).await {
            if out.trim_start().starts_with('{') {
                return Some(out.into_bytes());
            }
        }
    }
    None
}
