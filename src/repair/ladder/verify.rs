//! After the start: verify through the known loops ([`crate::repair::machine::next`] decides),
//! and, whatever happened, finish with the container running.

use std::time::Duration;

use tokio::time::Instant;

use super::Ladder;
use crate::docker::{parse_rfc3339_nanos, ContainerInfo};
use crate::error::Error;
use crate::inventory::inventory;
use crate::repair::engine::Engine;
use crate::repair::failure::Failure;
use crate::repair::journal::{self, Phase};
use crate::repair::machine::{self, Action, Budget, Files, Limits, Observation};
use crate::repair::plan::signatures;
use crate::repair::wipe::protected_snapshot;
use crate::repair::Run;
use crate::report::CheckReport;

impl<E: Engine> Ladder<'_, E> {
    /// Wait for a verified healthy container, walking the known loops.
    pub async fn verify(&mut self, run: &mut Run<'_>) -> Result<CheckReport, Failure> {
        let limits = Limits {
            max_restarts: self.opts.max_restarts,
            settle: self.opts.settle,
            timeout: self.opts.timeout,
        };
        let mut budget = Budget::default();
        'attempt: loop {
            let first = self.inspect().await?;
            let nanos = |i: &ContainerInfo| {
                i.started_at
                    .as_deref()
                    .and_then(parse_rfc3339_nanos)
                    .unwrap_or(0)
            };
            let start_nanos = nanos(&first);
            let start_count = first.restart_count;
            let attempt_started = Instant::now();
            let mut files: Option<Files> = None;
            let mut fresh: Option<CheckReport> = None;
            let mut healthy_since: Option<Instant> = None;
            loop {
                self.check_cancel(Phase::Verifying)?;
                let i = self.inspect().await?;
                let restarted_by_itself =
                    i.restart_count != start_count || nanos(&i) != start_nanos;
                let logs = crate::repair::evidence::logs_since(self.engine, &i, start_nanos)
                    .await
                    .text;
                let sigs = signatures(&logs);
                let pong = i.running
                    && !i.restarting
                    && self
                        .engine
                        .ping(&self.info.id, self.opts.health_url.as_deref())
                        .await;
                if !pong {
                    healthy_since = None;
                }
                let o = Observation {
                    running: i.running,
                    restarted_by_itself,
                    signatures: sigs.clone(),
                    pong,
                    files: files.clone(),
                    healthy_for: healthy_since.map(|t| t.elapsed()).unwrap_or_default(),
                    time_left: self.time_left(),
                };
                let action = machine::next(&o, &budget, &limits);
                match action {
                    Action::Wait(d) => self.nap(d, Phase::Verifying).await?,
                    Action::JudgeFiles => {
                        let tree = self.read_tree("reading the regenerated tree").await?;
                        let now = self.engine.now();
                        let inv = inventory(&tree, now, self.opts.renew_before);
                        let verdict = machine::judge_files(
                            &self.protected,
                            &protected_snapshot(&tree),
                            &self.wiped,
                            |p| tree.get(p).is_some(),
                            &inv,
                        );
                        if verdict == Files::Fresh {
                            let source = format!("container:{}:{}", self.info.name, self.tls_path);
                            fresh =
                                Some(CheckReport::new(source, now, self.opts.renew_before, &inv));
                            healthy_since = Some(Instant::now());
                            run.step("verify", true, format!("pong after {:.1}s; every wiped file is back, fresh, issued by the unchanged CAs; CA fingerprints unchanged", attempt_started.elapsed().as_secs_f64()));
                        } else {
                            run.step("verify", false, format!("Rancher answers but {verdict:?}"));
                        }
                        files = Some(verdict);
                    }
                    Action::Restart { backoff, ref why } => {
                        run.step("verify", false, "x509: certificate signed by unknown authority (stale k3s.yaml or serving certificate)");
                        self.nap(backoff, Phase::Verifying).await?;
                        budget.spend(&action);
                        let why = why.clone();
                        self.restart(run, &why).await?;
                        continue 'attempt;
                    }
                    Action::ResetServing {
                        backoff, ref why, ..
                    } => {
                        run.step("verify", false, why.clone());
                        self.nap(backoff, Phase::Verifying).await?;
                        budget.spend(&action);
                        self.reset_serving(run).await?;
                        continue 'attempt;
                    }
                    Action::Succeed => {
                        run.step(
                            "settle",
                            true,
                            format!(
                                "running without restart or failure signature for {}s",
                                self.opts.settle.as_secs()
                            ),
                        );
                        return fresh.ok_or(Failure::Docker {
                            action: "verify".into(),
                            error: "internal: verified without a report".into(),
                        });
                    }
                    Action::Fail(Failure::ExitsAfterRepair { signatures, .. }) => {
                        let last_lines = logs.lines().rev().take(3).map(str::to_string).collect();
                        return Err(Failure::ExitsAfterRepair {
                            signatures,
                            last_lines,
                        });
                    }
                    Action::Fail(f) => return Err(f),
                }
            }
        }
    }

    /// Whatever happened: never leave the container stopped. Waits out a stop that may still be
    /// in flight, starts the container when it is down, and returns whether it was observed
    /// running (bounded by one stop grace and 15 s). The journal is cleared only then, and
    /// only when `keep_journal` is false.
    pub async fn finish(&mut self, run: &mut Run<'_>, keep_journal: bool) -> bool {
        let grace = Duration::from_secs(u64::from(self.opts.stop_timeout));
        let limit = Instant::now() + grace + Duration::from_secs(15);
        let mut started = false;
        loop {
            match self.engine.inspect(&self.info.id).await {
                Err(Error::ContainerNotFound { .. }) => {
                    run.step("ensure-started", false, "the container is gone");
                    journal::clear(&self.backup_dir, &self.info.id, &self.info.name);
                    return false;
                }
                Err(e) if Instant::now() >= limit => {
                    run.step("ensure-started", false, format!("cannot see the container: {e}; the journal stays, the next run (or watch's next look) finishes the job"));
                    return false;
                }
                Err(_) => {}
                Ok(i) if i.running && !i.restarting => {
                    let stopping = self
                        .stop_in_doubt
                        .is_some_and(|t| t.elapsed() < grace + Duration::from_secs(5));
                    if !stopping {
                        if started {
                            run.step(
                                "ensure-started",
                                true,
                                "started the container again so it is not left stopped",
                            );
                        }
                        if !keep_journal {
                            journal::clear(&self.backup_dir, &self.info.id, &self.info.name);
                        }
                        return true;
                    }
                }
                Ok(i) if i.restarting => {}
                Ok(_) => {
                    // exited, created, dead: start it (a stop in flight has ended now).
                    self.stop_in_doubt = None;
                    match self.engine.start(&self.info.id).await {
                        Ok(()) => started = true,
                        Err(e) if Instant::now() >= limit => {
                            run.step("ensure-started", false, format!("could not start the container: {e}; the journal stays, the next run finishes the job"));
                            return false;
                        }
                        Err(_) => {}
                    }
                }
            }
            if Instant::now() >= limit {
                run.step("ensure-started", false, "the container was not seen running in time; the journal stays, the next run finishes the job");
                return false;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
