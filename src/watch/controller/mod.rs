//! The loop of `watch`: one task that owns every target's state and reacts to four things —
//! its timers (a certificate entering the renewal window, a maintenance window opening, a
//! cooldown ending, the safety interval), Docker events, finished jobs and API requests.
//!
//! Work (a look at a container, a repair) runs in [`jobs`], at most one per container at a
//! time; the loop itself never awaits Docker, so it keeps ticking (`/healthz`) whatever a job
//! does. Each [`target::Target`] turns what a look found into its next look. Everything
//! Docker-facing goes through [`Runner`], so the loop is tested with a fake runner and paused
//! tokio time.

pub mod api;
mod finished;
pub mod jobs;
mod react;
pub mod target;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_util::sync::CancellationToken;

pub use api::{ApiCommand, ApiReply, Clock, Config, Found, Observation, Runner};
use jobs::{within, JobKey, JobKind, JobOutcome, Jobs};
use target::Target;

use super::gate::{GateRecord, GateStore, RepairGate};
use super::state::Shared;
use super::targets::Trigger;
use crate::error::Error;
use crate::watch::metrics::Metrics;

pub struct Controller<R: Runner> {
    cfg: Config,
    runner: Arc<R>,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    clock: Clock,
    targets: BTreeMap<String, Target>,
    jobs: Jobs,
    next_discovery: Instant,
    discovery_failures: u32,
    /// The first scan: discovery done and every target then known looked at.
    first_scan_pending: Option<Vec<String>>,
    /// Cancelled at shutdown: repairs in flight finish or roll forward their step and leave
    /// their container running.
    stop_repairs: CancellationToken,
    /// The gates recorded by an earlier run of the sidecar, taken back as targets appear.
    saved_gates: BTreeMap<String, GateRecord>,
}

impl<R: Runner> Controller<R> {
    pub fn new(
        cfg: Config,
        runner: Arc<R>,
        shared: Arc<Shared>,
        metrics: Arc<Metrics>,
        clock: Clock,
    ) -> Self {
        let next_discovery = Instant::now() + cfg.first_scan_fallback;
        let saved_gates = cfg
            .gate_store
            .as_ref()
            .map(GateStore::load)
            .unwrap_or_default();
        Self {
            cfg,
            runner,
            shared,
            metrics,
            clock,
            targets: BTreeMap::new(),
            jobs: Jobs::default(),
            next_discovery,
            discovery_failures: 0,
            first_scan_pending: None,
            stop_repairs: CancellationToken::new(),
            saved_gates,
        }
    }

    /// Run until `shutdown`, then stop at a safe point (see [`Controller::drain`]).
    pub async fn run(
        mut self,
        mut triggers: mpsc::Receiver<Trigger>,
        mut commands: mpsc::Receiver<ApiCommand>,
        shutdown: CancellationToken,
    ) {
        tracing::info!(selection = %self.cfg.selector.describe(), "watching");
        loop {
            self.shared.tick();
            self.start_due_work();
            self.publish();
            let wake = self.next_wake();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                done = self.jobs.next(), if !self.jobs.is_empty() => match done {
                    Ok(o) => self.on_done(o),
                    Err(lost) => self.on_lost(lost),
                },
                Some(t) = triggers.recv() => self.on_trigger(t),
                Some(c) = commands.recv() => self.on_command(c),
                _ = sleep_until(wake) => {}
            }
        }
        self.drain().await;
        self.publish();
    }

    fn next_wake(&self) -> Instant {
        let mut wake = Instant::now() + self.cfg.tick;
        if self.jobs.busy(&JobKey::Discovery).is_none() {
            wake = wake.min(self.next_discovery);
        }
        for t in self.targets.values() {
            if let (Some(n), None) = (t.next_check, self.jobs.target_busy(&t.name)) {
                wake = wake.min(n);
            }
        }
        wake
    }

    fn start_due_work(&mut self) {
        let now = Instant::now();
        if self.jobs.busy(&JobKey::Discovery).is_none() && self.next_discovery <= now {
            self.spawn_discovery();
        }
        let due: Vec<String> = self
            .targets
            .values()
            .filter(|t| t.next_check.is_some_and(|n| n <= now))
            .filter(|t| self.jobs.target_busy(&t.name).is_none())
            .map(|t| t.name.clone())
            .collect();
        for name in due {
            self.spawn_check(&name);
        }
    }

    fn spawn_discovery(&mut self) {
        let runner = self.runner.clone();
        let sel = self.cfg.selector.clone();
        let limit = self.cfg.check_timeout;
        self.jobs
            .spawn(JobKey::Discovery, JobKind::Discover, async move {
                let r = within(limit, || "listing containers".into(), runner.discover(&sel)).await;
                JobOutcome::Discovered(r)
            });
    }

    fn spawn_check(&mut self, name: &str) {
        let Some(t) = self.targets.get_mut(name) else {
            return;
        };
        tracing::debug!(container = %name, why = %t.next_why, "looking at the container");
        t.begin(Instant::now(), JobKind::Check);
        let runner = self.runner.clone();
        let n = name.to_string();
        let limit = self.cfg.check_timeout;
        self.jobs
            .spawn(JobKey::Target(n.clone()), JobKind::Check, async move {
                let what = || format!("reading the certificates of \"{n}\"");
                let r = within(limit, what, runner.check(&n)).await;
                JobOutcome::Checked(n, Box::new(r))
            });
    }

    fn spawn_repair(&mut self, name: &str, force: bool, requested_by: &'static str) {
        let Some(t) = self.targets.get_mut(name) else {
            return;
        };
        t.begin(Instant::now(), JobKind::Repair);
        self.persist_gate(name);
        let runner = self.runner.clone();
        let n = name.to_string();
        let limit = self.cfg.repair_timeout;
        let started_at = self.clock.now();
        let cancel = self.stop_repairs.clone();
        self.jobs
            .spawn(JobKey::Target(n.clone()), JobKind::Repair, async move {
                let what = || format!("the repair of \"{n}\"");
                let result = match within(limit, what, runner.repair(&n, force, cancel)).await {
                    // The ladder overran its own --timeout by far: it was cut; make sure the
                    // container is not left stopped.
                    Err(Error::Failed(why)) if why.contains("took longer than") => {
                        let started = runner.ensure_started(&n).await;
                        Err(Error::Failed(format!(
                            "{why} and was cut; {}",
                            match started {
                                Ok(()) => "the container is running".to_string(),
                                Err(e) => format!("starting it failed: {e}"),
                            }
                        )))
                    }
                    r => r,
                };
                JobOutcome::Repaired {
                    name: n,
                    result: Box::new(result),
                    started_at,
                    requested_by,
                }
            });
    }

    /// Record a target's gate beside the backups, so a restarted sidecar keeps it.
    fn persist_gate(&self, name: &str) {
        if let (Some(store), Some(t)) = (&self.cfg.gate_store, self.targets.get(name)) {
            store.save(name, &t.gate.to_record(Instant::now(), self.clock.now()));
        }
    }

    fn ensure_target(&mut self, name: &str, pinned: bool) -> &mut Target {
        if !self.targets.contains_key(name) {
            tracing::info!(container = %name, "new target");
            self.metrics.init_target(name);
            let mut t = Target::new(name, pinned, &self.cfg);
            if let Some(r) = self.saved_gates.remove(name) {
                t.gate = RepairGate::from_record(
                    self.cfg.cooldown,
                    self.cfg.max_repairs_per_day,
                    &r,
                    Instant::now(),
                    self.clock.now(),
                );
                tracing::info!(container = %name, repairs_last_24h = r.starts.len(), "repair gate taken back from the last run");
            }
            self.targets.insert(name.to_string(), t);
        }
        let t = self.targets.get_mut(name).expect("just inserted");
        t.pinned |= pinned;
        t
    }

    /// Publish every target's view (with its next action) for `/status` and `/metrics`.
    fn publish(&mut self) {
        let (now_i, now) = (Instant::now(), self.clock.now());
        let out = self
            .targets
            .values_mut()
            .map(|t| {
                let busy = self.jobs.target_busy(&t.name);
                (t.name.clone(), t.view(now, now_i, busy))
            })
            .collect();
        self.shared.publish(out);
    }

    /// Shutdown at a safe point: looks are dropped at once (they change nothing); a repair in
    /// flight is told to stop (it finishes or rolls forward its step and starts its container)
    /// and gets `shutdown_grace` for that, then is cut and its container started if the
    /// ladder had stopped it. The repair journal lets the next run finish what was cut.
    async fn drain(&mut self) {
        self.stop_repairs.cancel();
        let repairs = self.jobs.abort_all_but(JobKind::Repair);
        if repairs.is_empty() {
            tracing::info!("shutting down; nothing in flight");
        } else {
            tracing::warn!(repairs = ?repairs, grace_s = self.cfg.shutdown_grace.as_secs(), "shutting down; waiting for the repairs in flight");
        }
        let deadline = Instant::now() + self.cfg.shutdown_grace;
        let mut ended = vec![];
        self.jobs.wait_until(deadline, |o| ended.push(o)).await;
        for o in ended {
            self.on_done(o);
        }
        for (key, kind) in self.jobs.abort_all() {
            let (JobKey::Target(name), JobKind::Repair) = (key, kind) else {
                continue;
            };
            tracing::error!(container = %name, "shutdown: the repair did not finish within the grace period and was cut; the next run resumes it from its journal");
            match timeout(self.cfg.shutdown_grace, self.runner.ensure_started(&name)).await {
                Ok(Ok(())) => tracing::info!(container = %name, "the container is running"),
                Ok(Err(e)) => {
                    tracing::error!(container = %name, error = %e, "could not make sure the container runs")
                }
                Err(_) => {
                    tracing::error!(container = %name, "could not make sure the container runs (timeout)")
                }
            }
        }
    }
}
