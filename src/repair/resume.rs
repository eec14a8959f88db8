//! Finishing what an interrupted repair recorded in its journal (validated already): how is
//! [`super::machine::resume`]'s; this carries it out, through the same ladder.

use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::container::{conclude, wait_running};
use super::engine::Engine;
use super::failure::Failure;
use super::journal::{self, Journal, Phase};
use super::ladder::Ladder;
use super::lock::Holder;
use super::machine::{self, Resume};
use super::{backup, RepairReport, Run};
use crate::docker::ContainerInfo;
use crate::error::Error;
use crate::inventory::inventory;
use crate::report::CheckReport;

// The run's bookkeeping travels by value between the steps; it is not worth a box.
#[allow(clippy::large_enum_variant)]
pub(super) enum Resumed<'a> {
    Done(Box<RepairReport>),
    /// Nothing left to finish: go on with a fresh look.
    LookAgain(Run<'a>),
}

/// Finish what the journal `j` records (validated against `info` already).
#[allow(clippy::too_many_arguments)]
pub(super) async fn resume<'a, E: Engine>(
    engine: &E,
    mut run: Run<'a>,
    info: &ContainerInfo,
    tls_path: &str,
    backup_dir: &Path,
    holder: &Holder,
    j: &Journal,
    cancel: &CancellationToken,
) -> Result<Resumed<'a>, Error> {
    let opts = run.opts;
    tracing::warn!(container = %info.name, phase = j.phase.as_str(), backup = %j.backup, "resuming a repair that was interrupted");
    let backup_ok = match backup::read_archive(Path::new(&j.backup)) {
        Ok((m, _)) => backup::verify(Path::new(&j.backup), &m).is_ok(),
        Err(_) => false,
    };
    let action = machine::resume(j.phase, true, info.running, backup_ok);
    run.report.reasons = vec![format!(
        "resuming a repair interrupted at step `{}`",
        j.phase.as_str()
    )];
    if let Resume::Forget { start } = action {
        if start {
            engine.start(&info.id).await?;
            run.report.restarts += 1;
            run.step(
                "resume-start",
                true,
                format!(
                    "started {}, which an interrupted repair had stopped before deleting anything",
                    info.name
                ),
            );
            wait_running(engine, &info.id, opts).await;
        }
        journal::clear(backup_dir, &info.id, &info.name);
        return Ok(Resumed::LookAgain(run));
    }
    run.report.backup = Some(j.backup.clone());
    let tree = engine.read_tree(&info.id, tls_path).await?;
    let now = engine.now();
    let inv = inventory(&tree, now, opts.renew_before);
    run.report.before = Some(CheckReport::new(
        format!("container:{}:{tls_path}", info.name),
        now,
        opts.renew_before,
        &inv,
    ));
    let deadline = run.deadline();
    let mut ladder = Ladder::new(
        engine,
        opts,
        cancel,
        &holder.run_id,
        info.clone(),
        tls_path,
        backup_dir.to_path_buf(),
        j.backup.clone(),
        &tree,
        deadline,
    );
    // What the interrupted run deleted (or was deleting) must come back.
    ladder.wiped = j.delete.clone();
    run.report.wiped = j.delete.clone();
    let steps = async {
        match action {
            Resume::Wipe => {
                ladder.wiped.clear();
                ladder.wipe(&mut run, &j.delete, None).await?;
                ladder
                    .start(
                        &mut run,
                        "resume-start",
                        &format!("re-ran the interrupted wipe and started {}", info.name),
                    )
                    .await?;
            }
            Resume::Verify { start: true } => {
                if !backup_ok && j.phase == Phase::Wiping {
                    run.step("resume", false, format!("the archive {} of the interrupted repair does not verify: nothing is deleted again; starting lets K3s regenerate what is missing", j.backup));
                }
                ladder
                    .start(
                        &mut run,
                        "resume-start",
                        &format!(
                            "started {}, which an interrupted repair had stopped",
                            info.name
                        ),
                    )
                    .await?;
            }
            _ => {
                ladder.journal(Phase::Verifying, &j.delete)?;
                run.step(
                    "resume",
                    true,
                    "the container runs: verifying the interrupted repair",
                );
            }
        }
        ladder.verify(&mut run).await
    };
    let grace = Duration::from_secs(u64::from(opts.stop_timeout));
    let outcome = match tokio::time::timeout_at(deadline + grace, steps).await {
        Ok(o) => o,
        Err(_) => Err(Failure::Timeout {
            secs: opts.timeout.as_secs(),
        }),
    };
    Ok(Resumed::Done(Box::new(
        conclude(run, ladder, outcome).await?,
    )))
}
