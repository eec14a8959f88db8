//! `repair --container`: the whole repair of one container.
//!
//! 1. Look, read-only: inspect, the TLS tree, the logs since the last start, and whether an
//!    interrupted repair left work (a journal, or the lease of a run that died). Nothing due
//!    and nothing pending: healthy, and not a single write.
//! 2. Take the locks ([`super::lock`]): another run acting on it → busy, nothing changed.
//! 3. Under the locks: finish what an interrupted run left ([`super::machine::resume`]), then
//!    look again (another run may have repaired it meanwhile) and decide again.
//! 4. Back up and verify the archive; run the ladder; finish with the container running.

use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::engine::Engine;
use super::evidence::{look, Look};
use super::failure::Failure;
use super::journal::{self, Phase};
use super::ladder::Ladder;
use super::lock::{self, Acquired, Holder};
use super::pending::{pending, Pending};
use super::plan;
use super::resume::{resume, Resumed};
use super::{
    backup, decide, kubectl_variants, lease_validity, Decision, RepairOptions, RepairReport,
    RepairResult, Run, KUBECONFIG_PATH,
};
use crate::docker::ContainerInfo;
use crate::error::Error;
use crate::report::CheckReport;

fn record_look(run: &mut Run<'_>, info: &ContainerInfo, tls_path: &str, l: &Look) {
    run.report.era = l.era.is_known().then(|| l.era.clone());
    if let Some(why) = &l.logs_unreadable {
        if !run.report.notes.contains(why) {
            run.report.notes.push(why.clone());
        }
    }
    run.report.before = Some(CheckReport::new(
        format!("container:{}:{tls_path}", info.name),
        l.now,
        run.opts.renew_before,
        &l.inv,
    ));
    run.step(
        "inspect",
        true,
        format!(
            "container {} is {}; {} certificates, {} problems; log signatures: {:?}",
            info.name,
            info.status,
            l.inv.certificates.len(),
            l.inv.problems.len(),
            l.sigs
        ),
    );
}

fn refuse_auto_remove(info: &ContainerInfo) -> Option<String> {
    info.auto_remove.then(|| {
        format!(
            "container {} was started with --rm (AutoRemove): `docker stop` would delete it and its anonymous volumes; recreate it without --rm (with --restart unless-stopped) and repair again; nothing was changed",
            info.name
        )
    })
}

/// `repair --container NAME|ID`. `cancel`: SIGINT/SIGTERM (one-shot) or `watch`'s shutdown —
/// the step in progress is finished or rolled forward and the container left running.
pub async fn repair_container<E: Engine>(
    engine: &E,
    name: &str,
    tls_path: &str,
    opts: &RepairOptions,
    cancel: &CancellationToken,
) -> Result<RepairReport, Error> {
    let mut run = Run::new(opts, name);
    let holder = Holder::new(opts.holder);
    let info = engine.inspect(name).await?;

    // 1. Read-only: is there anything to do at all?
    let pending = if opts.dry_run {
        None
    } else {
        pending(
            engine,
            opts.backup_dir.as_deref(),
            &info,
            tls_path,
            &holder.me,
        )
        .await
    };
    let first = look(engine, &info, tls_path, opts.renew_before).await?;
    record_look(&mut run, &info, tls_path, &first);
    match &pending {
        Some(Pending::Refused(why)) => {
            let why = format!("{why}; nothing was done — look at the journal in the backup directory, move it away, and run again");
            run.step("journal", false, why.clone());
            return Ok(run.finish(RepairResult::Refused, Some(why)));
        }
        Some(p @ Pending::Busy(_)) => {
            return Ok(run.finish(RepairResult::Busy, Some(p.describe())));
        }
        Some(p) => run.step("pending", true, p.describe()),
        None => match decide(&mut run, &first.inv, &first.sigs, first.clock.as_ref()) {
            Decision::Done(result, why) => return Ok(run.finish(result, why)),
            Decision::Act { .. } => {}
        },
    }
    if let Some(why) = refuse_auto_remove(&info) {
        return Ok(run.finish(RepairResult::Refused, Some(why)));
    }
    let Some(backup_dir) = opts.backup_dir.clone() else {
        return Ok(run.finish(
            RepairResult::Refused,
            Some("no --backup-dir given: nothing was changed".into()),
        ));
    };
    if let Err(e) = backup::ensure_private_dir(&backup_dir) {
        run.step("backup", false, e.to_string());
        return Ok(run.finish(RepairResult::Refused, Some(e.to_string())));
    }

    // 2. The locks.
    let held = match lock::acquire(
        engine,
        &backup_dir,
        &info,
        &holder,
        lease_validity(opts),
        opts.lock_wait,
    )
    .await?
    {
        Acquired::Held(h) => *h,
        Acquired::Busy(who) => {
            run.step("lock", false, who.clone());
            return Ok(run.finish(
                RepairResult::Busy,
                Some(format!("{who}; nothing was changed")),
            ));
        }
    };
    let took_over = held.took_over.clone();
    let outcome = locked(
        engine,
        run,
        &info.id,
        tls_path,
        &backup_dir,
        &holder,
        took_over,
        cancel,
    )
    .await;
    lock::release(engine, &info.id, held).await;
    outcome
}

/// Everything done under the locks.
#[allow(clippy::too_many_arguments)]
async fn locked<E: Engine>(
    engine: &E,
    mut run: Run<'_>,
    id: &str,
    tls_path: &str,
    backup_dir: &Path,
    holder: &Holder,
    took_over: Option<(crate::docker::Lease, String)>,
    cancel: &CancellationToken,
) -> Result<RepairReport, Error> {
    let opts = run.opts;
    let info = match engine.inspect(id).await {
        Ok(i) => i,
        Err(Error::ContainerNotFound { .. }) => {
            let f = Failure::ContainerGone;
            return Ok(run.finish(RepairResult::Failed, Some(f.diagnosis())));
        }
        Err(e) => return Err(e),
    };

    // 3a. The journal of this very container: finish what it records.
    match journal::load(backup_dir, &info) {
        Err(r) => {
            let why = format!(
                "{r}; nothing was done — look at the journal in {}, move it away, and run again",
                backup_dir.display()
            );
            run.step("journal", false, why.clone());
            return Ok(run.finish(RepairResult::Refused, Some(why)));
        }
        Ok(Some(j)) => {
            if let Err(r) = j.validate(&info, tls_path) {
                let why = format!("{r}; nothing was done — look at the journal in {}, move it away, and run again", backup_dir.display());
                run.step("journal", false, why.clone());
                return Ok(run.finish(RepairResult::Refused, Some(why)));
            }
            match resume(engine, run, &info, tls_path, backup_dir, holder, &j, cancel).await? {
                Resumed::Done(report) => return Ok(*report),
                Resumed::LookAgain(r) => run = r,
            }
        }
        Ok(None) => {}
    }
    // 3b. Journals of a container that had this name before: never acted upon.
    for o in journal::orphans(backup_dir, &info.name, &info.id) {
        if let Some(to) = journal::set_aside(&o, engine.now()) {
            run.step("journal", true, format!("a journal of an earlier container named {} was set aside as {} (that container is gone; this one gets its own plan and backup)", info.name, to.display()));
        }
    }
    // 3c. A run died holding the lease and its journal is not here (another backup directory):
    //     starting the container is always safe (K3s regenerates what is missing at start).
    if let Some((lease, why)) = &took_over {
        if !info.running && !info.restarting {
            engine.start(&info.id).await?;
            run.report.restarts += 1;
            run.step(
                "resume-start",
                true,
                format!(
                    "started {}, which {} left stopped ({why})",
                    info.name, lease.holder
                ),
            );
            wait_running(engine, &info.id, opts).await;
        }
    }

    // 4. A fresh look under the locks, and a fresh decision.
    let info = engine.inspect(&info.id).await?;
    let l = look(engine, &info, tls_path, opts.renew_before).await?;
    record_look(&mut run, &info, tls_path, &l);
    let (plan, backup_dir) = match decide(&mut run, &l.inv, &l.sigs, l.clock.as_ref()) {
        Decision::Done(result, why) => {
            let report = run.finish(result, why);
            return Ok(report);
        }
        Decision::Act { plan, backup_dir } => (plan, backup_dir),
    };
    if let Some(why) = refuse_auto_remove(&info) {
        return Ok(run.finish(RepairResult::Refused, Some(why)));
    }
    tracing::info!(container = %info.name, reasons = ?run.report.reasons, "repair needed");
    if l.inv.ca_fingerprints().is_empty() {
        tracing::warn!(container = %info.name, "no CA certificate in the TLS tree: K3s will mint new CAs at start (unknown-authority loop likely; handled by restarts)");
    }
    fresh_repair(
        engine,
        run,
        info,
        tls_path,
        &backup_dir,
        holder,
        l,
        plan,
        cancel,
    )
    .await
}

pub(super) async fn wait_running<E: Engine>(engine: &E, id: &str, opts: &RepairOptions) {
    let limit =
        tokio::time::Instant::now() + Duration::from_secs(u64::from(opts.stop_timeout) + 15);
    while tokio::time::Instant::now() < limit {
        if matches!(engine.inspect(id).await, Ok(i) if i.running) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Backup, ladder, finish.
#[allow(clippy::too_many_arguments)]
async fn fresh_repair<E: Engine>(
    engine: &E,
    mut run: Run<'_>,
    info: ContainerInfo,
    tls_path: &str,
    backup_dir: &Path,
    holder: &Holder,
    l: Look,
    plan: plan::WipePlan,
    cancel: &CancellationToken,
) -> Result<RepairReport, Error> {
    let opts = run.opts;
    let mut extras = backup::Extras {
        kubeconfig: engine
            .read_file(&info.id, KUBECONFIG_PATH)
            .await
            .unwrap_or(None),
        serving_secret: None,
    };
    if info.running && !info.restarting {
        extras.serving_secret = get_serving_secret(engine, &info.id).await;
    }
    let archive =
        match backup::write_verified(backup_dir, &info.name, tls_path, &l.tree, &extras, l.now) {
            Ok(p) => p,
            Err(e) => {
                run.step("backup", false, e.to_string());
                return Ok(run.finish(RepairResult::Refused, Some(e.to_string())));
            }
        };
    let archive_s = archive.display().to_string();
    run.report.backup = Some(archive_s.clone());
    let pruned = backup::prune(backup_dir, &info.name, opts.keep_backups, &archive);
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

    let deadline = run.deadline();
    let mut ladder = Ladder::new(
        engine,
        opts,
        cancel,
        &holder.run_id,
        info.clone(),
        tls_path,
        backup_dir.to_path_buf(),
        archive_s,
        &l.tree,
        deadline,
    );
    ladder.fault("backup").await;
    let steps = async {
        ladder.check_cancel(Phase::Stopping)?;
        if plan.reset_serving {
            ladder.delete_serving_secret(&mut run).await;
        }
        ladder.check_cancel(Phase::Stopping)?;
        ladder.stop(&mut run, &plan.delete).await?;
        ladder.fault("stop").await;
        // Nothing deleted yet: an interrupt here rolls back (start, forget).
        ladder.check_cancel(Phase::Stopping)?;
        ladder.wipe(&mut run, &plan.delete, Some(&l.tree)).await?;
        ladder
            .start(&mut run, "start", &format!("started {}", info.name))
            .await?;
        ladder.fault("start").await;
        ladder.verify(&mut run).await
    };
    let grace = Duration::from_secs(u64::from(opts.stop_timeout));
    let outcome = match tokio::time::timeout_at(deadline + grace, steps).await {
        Ok(o) => o,
        Err(_) => Err(Failure::Timeout {
            secs: opts.timeout.as_secs(),
        }),
    };
    conclude(run, ladder, outcome).await
}

/// Finish with the container running, and write the result.
pub(super) async fn conclude<E: Engine>(
    mut run: Run<'_>,
    mut ladder: Ladder<'_, E>,
    outcome: Result<CheckReport, Failure>,
) -> Result<RepairReport, Error> {
    // Cut short after the wipe — a signal, the daemon gone, the deadline: the container is
    // started, and the journal stays at `verifying` so the next run (or watch's next look)
    // verifies what this one could not.
    let unverified = !ladder.wiped.is_empty()
        && matches!(
            outcome,
            Err(Failure::Interrupted { .. } | Failure::Docker { .. } | Failure::Timeout { .. })
        );
    if unverified {
        let wiped = ladder.wiped.clone();
        let _ = ladder.journal(Phase::Verifying, &wiped);
    }
    let running = ladder.finish(&mut run, unverified).await;
    let archive = ladder.archive.clone();
    Ok(match outcome {
        Ok(after) => {
            run.report.after = Some(after);
            run.finish(RepairResult::Repaired, None)
        }
        Err(f) => {
            run.report.failure = Some(f.label());
            let mut diag = format!("{f}; the certificates as they were are in {archive}");
            if !running {
                diag.push_str("; the container could not be seen running: the journal stays, and the next run (or watch's next look) finishes the job");
            }
            let result = if matches!(f, Failure::Interrupted { .. }) {
                RepairResult::Interrupted
            } else {
                RepairResult::Failed
            };
            run.finish(result, Some(diag))
        }
    })
}

async fn get_serving_secret<E: Engine>(engine: &E, id: &str) -> Option<Vec<u8>> {
    for cmd in kubectl_variants(&[
        "get",
        "secret",
        "-n",
        "kube-system",
        "k3s-serving",
        "-o",
        "json",
    ]) {
        if let Ok((0, out)) = engine.exec(id, &cmd, Duration::from_secs(20)).await {
            if out.trim_start().starts_with('{') {
                return Some(out.into_bytes());
            }
        }
    }
    None
}
