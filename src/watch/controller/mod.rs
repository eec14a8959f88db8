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
pub mod jobs;
pub mod target;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_util::sync::CancellationToken;

pub use api::{ApiCommand, ApiReply, Clock, Config, Found, Observation, Runner};
use jobs::{backoff, within, JobKey, JobKind, JobOutcome, Jobs};
use target::Target;

use super::gate::{GateRecord, GateStore, RepairGate};
use super::schedule::{decide, Gate};
use super::state::{RepairEnd, RepairSummary, Shared};
use super::targets::Trigger;
use crate::error::Error;
use crate::repair::RepairReport;
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

    /// The target an event is about: by id first (a `--container` given as an id), then by name.
    fn key_for(&self, name: &str, id: &str) -> String {
        self.targets
            .values()
            .find(|t| !id.is_empty() && t.status.id.as_deref() == Some(id))
            .map(|t| t.name.clone())
            .unwrap_or_else(|| name.to_string())
    }

    fn on_trigger(&mut self, t: Trigger) {
        let now = Instant::now();
        match t {
            Trigger::Resync => {
                self.shared.set_docker_up(true);
                self.next_discovery = now;
                for t in self.targets.values_mut() {
                    t.look_by(now, "the events stream reconnected");
                }
            }
            Trigger::StreamDown(why) => {
                self.shared.set_docker_up(false);
                tracing::debug!(%why, "events stream down");
            }
            Trigger::Changed { name, id, action } => {
                if name.is_empty() {
                    return;
                }
                let key = self.key_for(&name, &id);
                let (spacing, debounce) = (self.cfg.min_event_spacing, self.cfg.debounce);
                let busy = self.jobs.target_busy(&key).is_some();
                let t = self.ensure_target(&key, false);
                if busy {
                    t.recheck = true;
                    return;
                }
                let earliest = t.last_look.map(|l| l + spacing).unwrap_or(now);
                tracing::info!(container = %key, event = %action, "container event; looking at it");
                t.look_by(
                    (now + debounce).max(earliest),
                    format!("container event: {action}"),
                );
            }
            Trigger::Gone { name, id } => {
                let key = self.key_for(&name, &id);
                self.forget(&key, "the container was removed");
            }
        }
    }

    /// The container is gone: a pinned target stays (missing), any other is dropped.
    fn forget(&mut self, key: &str, why: &str) {
        let busy = self.jobs.target_busy(key).is_some();
        let interval = self.cfg.interval;
        let Some(t) = self.targets.get_mut(key) else {
            return;
        };
        if busy {
            t.recheck = true;
            return;
        }
        if t.pinned {
            tracing::warn!(container = %key, "{why}; waiting for it to come back");
            t.status.up = false;
            t.status.state = Some("missing".into());
            t.status.inventory = None;
            t.status.reasons.clear();
            t.status.next_action = None;
            t.look_at(Instant::now() + interval, "safety interval");
        } else {
            tracing::info!(container = %key, "{why}; no longer a target");
            self.targets.remove(key);
        }
    }

    fn on_command(&mut self, c: ApiCommand) {
        let ApiCommand::Repair {
            container,
            force,
            reply,
        } = c;
        let busy = self.jobs.target_busy(&container);
        let answer = match self.targets.get_mut(&container) {
            None => ApiReply::NotFound,
            Some(_) if self.cfg.policy.monitor_only => ApiReply::MonitorOnly,
            Some(_) if busy == Some(JobKind::Repair) => ApiReply::Busy,
            Some(t) => match t.gate.verdict(Instant::now()) {
                Gate::Tripped { remaining, .. } => ApiReply::Tripped(remaining),
                _ if busy.is_some() => ApiReply::Busy,
                _ => ApiReply::Accepted,
            },
        };
        if answer == ApiReply::Accepted {
            tracing::info!(container = %container, force, "repair requested through the API");
            self.spawn_repair(&container, force, "api");
        } else {
            tracing::info!(container = %container, answer = ?answer, "repair request through the API not accepted");
        }
        let _ = reply.send(answer);
    }

    /// A job panicked (debug builds; release aborts): free its target, look later.
    fn on_lost(&mut self, lost: jobs::Lost) {
        tracing::error!(key = ?lost.key, kind = ?lost.kind, error = %lost.error, "job failed");
        let later = Instant::now() + self.cfg.interval;
        match lost.key {
            JobKey::Discovery => self.next_discovery = later,
            JobKey::Target(name) => {
                if let Some(t) = self.targets.get_mut(&name) {
                    t.look_by(later, "safety interval");
                }
            }
        }
    }

    fn on_done(&mut self, outcome: JobOutcome) {
        match outcome {
            JobOutcome::Discovered(r) => self.on_discovered(r),
            JobOutcome::Checked(name, r) => self.on_checked(&name, *r),
            JobOutcome::Repaired {
                name,
                result,
                started_at,
                requested_by,
            } => self.on_repaired(&name, *result, started_at, requested_by),
        }
    }

    fn on_discovered(&mut self, r: Result<Vec<Found>, Error>) {
        let now = Instant::now();
        match r {
            Ok(found) => {
                self.discovery_failures = 0;
                self.next_discovery = now + self.cfg.interval;
                let names: Vec<String> = found.iter().map(|f| f.name.clone()).collect();
                for f in &found {
                    // Known targets keep their schedule; new ones are looked at now.
                    let new = !self.targets.contains_key(&f.name);
                    let t = self.ensure_target(&f.name, f.pinned);
                    if new || t.status.last_check.is_none() {
                        t.look_by(now, "new target");
                    }
                }
                let stale: Vec<String> = self
                    .targets
                    .values()
                    .filter(|t| !t.pinned && !names.contains(&t.name))
                    .map(|t| t.name.clone())
                    .collect();
                for s in stale {
                    self.forget(&s, "no longer matches the selection");
                }
                if self.targets.is_empty() {
                    tracing::warn!(selection = %self.cfg.selector.describe(), "no container to watch yet; waiting for one to appear");
                }
                if !self.shared.first_scan_done() && self.first_scan_pending.is_none() {
                    self.first_scan_pending = Some(names);
                    self.maybe_first_scan_done();
                }
            }
            Err(e) => {
                self.discovery_failures += 1;
                self.count_error(&e);
                let retry = backoff(self.discovery_failures, self.cfg.interval);
                tracing::warn!(error = %e, retry_in_s = retry.as_secs(), "cannot list the containers to watch");
                self.next_discovery = now + retry;
            }
        }
    }

    fn maybe_first_scan_done(&mut self) {
        if let Some(pending) = &self.first_scan_pending {
            let done = pending.iter().all(|n| {
                self.targets
                    .get(n)
                    .is_none_or(|t| t.status.last_check.is_some())
            });
            if done {
                self.first_scan_pending = None;
                self.shared.set_first_scan_done();
                tracing::info!(targets = self.targets.len(), "first scan done");
            }
        }
    }

    fn count_error(&self, e: &Error) {
        match e {
            Error::Refused(_) | Error::Failed(_) | Error::Invalid(_) | Error::Backup { .. } => {}
            other => self.metrics.docker_error(other.metric_label()),
        }
        if e.is_transient() {
            self.shared.set_docker_up(false);
        }
    }

    fn on_checked(&mut self, name: &str, r: Result<Observation, Error>) {
        let (now_i, now) = (Instant::now(), self.clock.now());
        if let Ok(obs) = &r {
            if self.cfg.selector.is_self(&obs.id) {
                tracing::warn!(container = %name, "this is the sidecar's own container; never a target");
                self.targets.remove(name);
                self.maybe_first_scan_done();
                return;
            }
        }
        self.metrics.check(name, r.is_ok());
        match &r {
            Err(e) => self.count_error(e),
            Ok(_) => self.shared.set_docker_up(true),
        }
        let Some(t) = self.targets.get_mut(name) else {
            return;
        };
        match r {
            Err(Error::ContainerNotFound { .. }) => {
                t.status.last_check = Some(now);
                t.status.last_error = Some(format!("container \"{name}\" not found"));
                self.forget(name, "the container is not there");
            }
            Err(e) => {
                let retry = t.look_failed(&e, now_i, now, &self.cfg);
                tracing::warn!(container = %name, error = %e, retry_in_s = retry.as_secs(), "cannot read the certificates");
            }
            Ok(obs) => {
                t.looked(&obs, now);
                let decision = decide(now, &obs.findings, &self.cfg.policy, t.gate.verdict(now_i));
                if t.decided(decision, now, now_i, &self.cfg).is_some() {
                    self.spawn_repair(name, false, "schedule");
                }
            }
        }
        self.maybe_first_scan_done();
    }

    fn on_repaired(
        &mut self,
        name: &str,
        result: Result<RepairReport, Error>,
        started_at: i64,
        requested_by: &'static str,
    ) {
        let (now_i, now) = (Instant::now(), self.clock.now());
        let summary = match &result {
            Ok(r) => RepairSummary {
                result: RepairEnd::Ran(r.result),
                requested_by,
                started_at,
                finished_at: now,
                restarts: r.restarts,
                backup: r.backup.clone(),
                reasons: r.reasons.clone(),
                diagnosis: r.diagnosis.clone(),
            },
            Err(e) => {
                self.count_error(e);
                RepairSummary {
                    result: RepairEnd::Error,
                    requested_by,
                    started_at,
                    finished_at: now,
                    restarts: 0,
                    backup: None,
                    reasons: vec![],
                    diagnosis: Some(e.to_string()),
                }
            }
        };
        self.metrics
            .repair(name, summary.result.as_str(), summary.restarts);
        if summary.result.succeeded() {
            tracing::info!(container = %name, result = summary.result.as_str(), restarts = summary.restarts,
                backup = summary.backup.as_deref().unwrap_or("-"), "repair finished");
        } else {
            tracing::error!(container = %name, result = summary.result.as_str(),
                diagnosis = summary.diagnosis.as_deref().unwrap_or("-"), "repair did not succeed; a person may be needed");
        }
        let Some(t) = self.targets.get_mut(name) else {
            return;
        };
        t.repaired(summary, now_i);
        self.persist_gate(name);
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
