//! The loop of `watch`: one task that owns every target's state and reacts to four things —
//! its timers (a certificate entering the renewal window, a maintenance window opening, a
//! cooldown ending, the safety interval), Docker events, finished jobs and API requests.
//!
//! Work (a look at a container, a repair) runs in jobs, at most one per container at a time;
//! the loop itself never awaits Docker, so it keeps ticking (`/healthz`) whatever a job does.
//! Everything Docker-facing goes through [`Runner`], so the loop is tested with a fake runner
//! and paused tokio time.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::{AbortHandle, Id, JoinSet};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_util::sync::CancellationToken;

use super::gate::{GateStore, RepairGate};
use super::schedule::{decide, Decision, Findings, Gate, Policy};
use super::state::{NextAction, RepairSummary, Shared, TargetStatus};
use super::targets::{Selector, Trigger};
use crate::error::Error;
use crate::repair::RepairReport;
use crate::report::CheckReport;
use crate::timefmt;
use crate::watch::metrics::Metrics;

/// A container found by discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub name: String,
    /// Named with `--container`: kept (as missing) when the container goes away.
    pub pinned: bool,
}

/// What a look at a container found.
#[derive(Debug, Clone)]
pub struct Observation {
    pub id: String,
    pub image: String,
    pub state: String,
    pub findings: Findings,
    pub report: CheckReport,
    /// The Rancher and K3s versions, when the image says.
    pub era: Option<crate::repair::evidence::Era>,
    /// Why the container's logs could not be read (decided on the certificates alone).
    pub logs_unreadable: Option<String>,
}

/// Everything the loop asks of Docker.
pub trait Runner: Send + Sync + 'static {
    /// The containers to watch now.
    fn discover(&self, sel: &Selector) -> impl Future<Output = Result<Vec<Found>, Error>> + Send;
    /// Read and judge a container (no change).
    fn check(&self, name: &str) -> impl Future<Output = Result<Observation, Error>> + Send;
    /// The repair ladder. `cancel`: the shutdown; the ladder finishes or rolls forward its
    /// step and leaves the container running.
    fn repair(
        &self,
        name: &str,
        force: bool,
        cancel: CancellationToken,
    ) -> impl Future<Output = Result<RepairReport, Error>> + Send;
    /// Start the container if it is stopped (after an interrupted repair).
    fn ensure_started(&self, name: &str) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Tunables of the loop.
#[derive(Debug, Clone)]
pub struct Config {
    pub selector: Arc<Selector>,
    pub policy: Policy,
    /// Safety re-check of every target and re-listing of the selection.
    pub interval: Duration,
    pub cooldown: Duration,
    pub max_repairs_per_day: u32,
    /// Idle heartbeat of the loop (`/healthz` is 503 after twice this without a tick).
    pub tick: Duration,
    /// Delay between a container event and the look it triggers (events come in bursts).
    pub debounce: Duration,
    /// Minimum spacing of event-triggered looks at one container (a crash loop fires many).
    pub min_event_spacing: Duration,
    /// The first scan starts at the latest this long after start, events stream or not.
    pub first_scan_fallback: Duration,
    pub check_timeout: Duration,
    pub repair_timeout: Duration,
    /// On shutdown, how long an in-flight repair may still run (finishing or rolling forward
    /// its step, starting the container) before it is cut: at least the stop grace.
    pub shutdown_grace: Duration,
    /// Where the cooldown and breaker of every target survive a restart (beside the backups).
    pub gate_store: Option<GateStore>,
}

impl Config {
    pub fn new(selector: Selector, policy: Policy) -> Self {
        Self {
            selector: Arc::new(selector),
            policy,
            interval: Duration::from_secs(3600),
            cooldown: Duration::from_secs(600),
            max_repairs_per_day: 3,
            tick: Duration::from_secs(15),
            debounce: Duration::from_millis(500),
            min_event_spacing: Duration::from_millis(1500),
            first_scan_fallback: Duration::from_secs(10),
            check_timeout: Duration::from_secs(60),
            repair_timeout: Duration::from_secs(1020),
            shutdown_grace: Duration::from_secs(6),
            gate_store: None,
        }
    }
}

/// What an API client may ask of the loop.
#[derive(Debug)]
pub enum ApiCommand {
    Repair {
        container: String,
        force: bool,
        reply: oneshot::Sender<ApiReply>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiReply {
    Accepted,
    NotFound,
    Busy,
    MonitorOnly,
    Tripped(Duration),
}

/// Wall-clock time: the system's, or (tests) derived from tokio's paused clock.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    System,
    Fake { base_wall: i64, base: Instant },
}

impl Clock {
    pub fn fake(base_wall: i64) -> Self {
        Clock::Fake {
            base_wall,
            base: Instant::now(),
        }
    }
    pub fn now(&self) -> i64 {
        match self {
            Clock::System => timefmt::now(),
            Clock::Fake { base_wall, base } => {
                base_wall + Instant::now().duration_since(*base).as_secs() as i64
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobKind {
    Discover,
    Check,
    Repair,
}

enum Outcome {
    Discovered(Result<Vec<Found>, Error>),
    Checked(String, Box<Result<Observation, Error>>),
    Repaired {
        name: String,
        result: Box<Result<RepairReport, Error>>,
        started_at: i64,
        requested_by: &'static str,
    },
}

#[derive(Debug)]
struct Target {
    name: String,
    pinned: bool,
    /// When to look next; `None`: only an event or a rescan will.
    next_check: Option<Instant>,
    next_why: String,
    job: Option<JobKind>,
    /// Something happened during the job: look again when it ends.
    recheck: bool,
    last_look: Option<Instant>,
    /// Consecutive failed looks, for the retry backoff.
    failures: u32,
    gate: RepairGate,
    /// The published view.
    status: TargetStatus,
}

impl Target {
    fn new(name: &str, pinned: bool, cfg: &Config) -> Self {
        Self {
            name: name.to_string(),
            pinned,
            next_check: None,
            next_why: String::new(),
            job: None,
            recheck: false,
            last_look: None,
            failures: 0,
            gate: RepairGate::new(cfg.cooldown, cfg.max_repairs_per_day),
            status: TargetStatus {
                container: name.to_string(),
                ..TargetStatus::default()
            },
        }
    }

    /// Look no later than `at`.
    fn look_by(&mut self, at: Instant, why: impl Into<String>) {
        if self.next_check.is_none_or(|n| at < n) {
            self.next_check = Some(at);
            self.next_why = why.into();
        }
    }

    /// Look at exactly `at` (replaces the schedule).
    fn look_at(&mut self, at: Instant, why: impl Into<String>) {
        self.next_check = Some(at);
        self.next_why = why.into();
    }
}

pub struct Controller<R: Runner> {
    cfg: Config,
    runner: Arc<R>,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    clock: Clock,
    targets: BTreeMap<String, Target>,
    jobs: JoinSet<Outcome>,
    /// Running jobs: task id → (target name, kind, handle).
    running: HashMap<Id, (String, JobKind, AbortHandle)>,
    discovery_running: bool,
    next_discovery: Instant,
    discovery_failures: u32,
    /// The first scan: discovery done and every target then known looked at.
    first_scan_pending: Option<Vec<String>>,
    /// Cancelled at shutdown: repairs in flight finish or roll forward their step and leave
    /// their container running.
    stop_repairs: CancellationToken,
    /// The gates recorded by an earlier run of the sidecar, taken back as targets appear.
    saved_gates: BTreeMap<String, super::gate::GateRecord>,
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
            jobs: JoinSet::new(),
            running: HashMap::new(),
            discovery_running: false,
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
                Some(done) = self.jobs.join_next_with_id(), if !self.jobs.is_empty() => self.on_joined(done),
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
        if !self.discovery_running {
            wake = wake.min(self.next_discovery);
        }
        for t in self.targets.values().filter(|t| t.job.is_none()) {
            if let Some(n) = t.next_check {
                wake = wake.min(n);
            }
        }
        wake
    }

    fn start_due_work(&mut self) {
        let now = Instant::now();
        if !self.discovery_running && self.next_discovery <= now {
            self.spawn_discovery();
        }
        let due: Vec<String> = self
            .targets
            .values()
            .filter(|t| t.job.is_none() && t.next_check.is_some_and(|n| n <= now))
            .map(|t| t.name.clone())
            .collect();
        for name in due {
            self.spawn_check(&name);
        }
    }

    fn track(&mut self, handle: AbortHandle, name: &str, kind: JobKind) {
        self.running
            .insert(handle.id(), (name.to_string(), kind, handle));
    }

    fn spawn_discovery(&mut self) {
        self.discovery_running = true;
        let runner = self.runner.clone();
        let sel = self.cfg.selector.clone();
        let limit = self.cfg.check_timeout;
        let h = self.jobs.spawn(async move {
            let r = match timeout(limit, runner.discover(&sel)).await {
                Ok(r) => r,
                Err(_) => Err(Error::Failed(format!(
                    "listing containers took longer than {}s",
                    limit.as_secs()
                ))),
            };
            Outcome::Discovered(r)
        });
        self.track(h, "", JobKind::Discover);
    }

    fn spawn_check(&mut self, name: &str) {
        let Some(t) = self.targets.get_mut(name) else {
            return;
        };
        tracing::debug!(container = %name, why = %t.next_why, "looking at the container");
        t.job = Some(JobKind::Check);
        t.next_check = None;
        t.recheck = false;
        t.last_look = Some(Instant::now());
        let runner = self.runner.clone();
        let n = name.to_string();
        let limit = self.cfg.check_timeout;
        let h = self.jobs.spawn(async move {
            let r = match timeout(limit, runner.check(&n)).await {
                Ok(r) => r,
                Err(_) => Err(Error::Failed(format!(
                    "reading the certificates of \"{n}\" took longer than {}s",
                    limit.as_secs()
                ))),
            };
            Outcome::Checked(n, Box::new(r))
        });
        self.track(h, name, JobKind::Check);
    }

    fn spawn_repair(&mut self, name: &str, force: bool, requested_by: &'static str) {
        let Some(t) = self.targets.get_mut(name) else {
            return;
        };
        t.job = Some(JobKind::Repair);
        t.next_check = None;
        t.recheck = false;
        t.gate.record_start(Instant::now());
        self.persist_gate(name);
        let runner = self.runner.clone();
        let n = name.to_string();
        let limit = self.cfg.repair_timeout;
        let started_at = self.clock.now();
        let cancel = self.stop_repairs.clone();
        let h = self.jobs.spawn(async move {
            let result = match timeout(limit, runner.repair(&n, force, cancel)).await {
                Ok(r) => r,
                Err(_) => {
                    // The ladder overran its own --timeout by far: cut it, and make sure the
                    // container is not left stopped.
                    let started = runner.ensure_started(&n).await;
                    Err(Error::Failed(format!(
                        "the repair of \"{n}\" did not finish within {}s and was cut; {}",
                        limit.as_secs(),
                        match started {
                            Ok(()) => "the container is running".to_string(),
                            Err(e) => format!("starting it failed: {e}"),
                        }
                    )))
                }
            };
            Outcome::Repaired {
                name: n,
                result: Box::new(result),
                started_at,
                requested_by,
            }
        });
        self.track(h, name, JobKind::Repair);
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
                let spacing = self.cfg.min_event_spacing;
                let debounce = self.cfg.debounce;
                let t = self.ensure_target(&key, false);
                if t.job.is_some() {
                    t.recheck = true;
                    return;
                }
                let earliest = t.last_look.map(|l| l + spacing).unwrap_or(now);
                let at = (now + debounce).max(earliest);
                tracing::info!(container = %key, event = %action, "container event; looking at it");
                t.look_by(at, format!("container event: {action}"));
            }
            Trigger::Gone { name, id } => {
                let key = self.key_for(&name, &id);
                self.forget(&key, "the container was removed");
            }
        }
    }

    /// The container is gone: a pinned target stays (missing), any other is dropped.
    fn forget(&mut self, key: &str, why: &str) {
        let Some(t) = self.targets.get_mut(key) else {
            return;
        };
        if t.job.is_some() {
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
            t.next_check = Some(Instant::now() + self.cfg.interval);
            t.next_why = "safety interval".into();
        } else {
            tracing::info!(container = %key, "{why}; no longer a target");
            self.targets.remove(key);
        }
    }

    fn on_command(&mut self, c: ApiCommand) {
        match c {
            ApiCommand::Repair {
                container,
                force,
                reply,
            } => {
                let now = Instant::now();
                let monitor_only = self.cfg.policy.monitor_only;
                let answer = match self.targets.get_mut(&container) {
                    None => ApiReply::NotFound,
                    Some(_) if monitor_only => ApiReply::MonitorOnly,
                    Some(t) if t.job == Some(JobKind::Repair) => ApiReply::Busy,
                    Some(t) => match t.gate.verdict(now) {
                        Gate::Tripped { remaining, .. } => ApiReply::Tripped(remaining),
                        _ if t.job.is_some() => ApiReply::Busy,
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
        }
    }

    fn on_joined(&mut self, done: Result<(Id, Outcome), tokio::task::JoinError>) {
        let outcome = match done {
            Ok((id, o)) => {
                self.running.remove(&id);
                o
            }
            Err(e) => {
                // A job panicked (debug builds; release aborts): free its target.
                let (name, kind) = match self.running.remove(&e.id()) {
                    Some((n, k, _)) => (n, Some(k)),
                    None => (String::new(), None),
                };
                tracing::error!(container = %name, ?kind, error = %e, "job failed");
                if kind == Some(JobKind::Discover) {
                    self.discovery_running = false;
                    self.next_discovery = Instant::now() + self.cfg.interval;
                } else if let Some(t) = self.targets.get_mut(&name) {
                    t.job = None;
                    t.look_by(Instant::now() + self.cfg.interval, "safety interval");
                }
                return;
            }
        };
        match outcome {
            Outcome::Discovered(r) => self.on_discovered(r),
            Outcome::Checked(name, r) => self.on_checked(&name, *r),
            Outcome::Repaired {
                name,
                result,
                started_at,
                requested_by,
            } => self.on_repaired(&name, *result, started_at, requested_by),
        }
    }

    fn on_discovered(&mut self, r: Result<Vec<Found>, Error>) {
        self.discovery_running = false;
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
        let now_i = Instant::now();
        let now = self.clock.now();
        let interval = self.cfg.interval;
        let selector = self.cfg.selector.clone();
        if let Ok(obs) = &r {
            if selector.is_self(&obs.id) {
                tracing::warn!(container = %name, "this is the sidecar's own container; never a target");
                self.targets.remove(name);
                self.maybe_first_scan_done();
                return;
            }
        }
        self.metrics.check(name, r.is_ok());
        if let Err(e) = &r {
            self.count_error(e);
        } else {
            self.shared.set_docker_up(true);
        }
        let Some(t) = self.targets.get_mut(name) else {
            return;
        };
        t.job = None;
        t.status.last_check = Some(now);
        let recheck = std::mem::take(&mut t.recheck);
        let obs = match r {
            Ok(obs) => obs,
            Err(Error::ContainerNotFound { .. }) => {
                t.status.last_error = Some(format!("container \"{name}\" not found"));
                self.forget(name, "the container is not there");
                self.maybe_first_scan_done();
                return;
            }
            Err(e) => {
                t.failures += 1;
                let retry = if e.is_transient() {
                    backoff(t.failures, interval)
                } else {
                    backoff(t.failures + 4, interval) // 80 s, 160 s, … for lasting problems
                };
                tracing::warn!(container = %name, error = %e, retry_in_s = retry.as_secs(), "cannot read the certificates");
                t.status.up = false;
                t.status.last_error = Some(e.to_string());
                t.status.decision = Some(format!(
                    "look again in {}",
                    timefmt::residual(retry.as_secs() as i64)
                ));
                t.look_at(now_i + retry, "retry after an error");
                if recheck {
                    t.look_by(now_i + self.cfg.debounce, "container event during the look");
                }
                self.maybe_first_scan_done();
                return;
            }
        };
        t.failures = 0;
        t.status.up = true;
        t.status.last_success = Some(now);
        t.status.last_error = None;
        t.status.id = Some(obs.id.clone());
        t.status.image = Some(obs.image.clone());
        t.status.state = Some(obs.state.clone());
        t.status.status = Some(obs.report.status);
        t.status.reasons = obs.findings.reasons.clone();
        t.status.renew_at = obs.findings.renew_at;
        t.status.earliest_expiry = obs.findings.earliest_expiry;
        t.status.inventory = Some(obs.report.clone());
        t.status.era = obs.era.clone();
        t.status.logs_unreadable = obs.logs_unreadable.clone();
        t.status.clock = obs.findings.clock.clone();
        let gate = t.gate.verdict(now_i);
        let decision = decide(now, &obs.findings, &self.cfg.policy, gate);
        let cap = |d: Duration| d.min(interval);
        match decision {
            Decision::Healthy { renew_in } => {
                let (after, why) = match renew_in {
                    Some(d) if d < interval => (
                        d.max(Duration::from_secs(1)),
                        "the next certificate enters the renewal window".to_string(),
                    ),
                    _ => (interval, "safety interval".to_string()),
                };
                let text = format!(
                    "nothing due; next look at {} ({why})",
                    timefmt::rfc3339(now + after.as_secs() as i64)
                );
                tracing::info!(container = %name, status = obs.report.status.as_str(), "{text}");
                t.status.decision = Some(text);
                t.look_at(now_i + after, why);
            }
            Decision::Repair { why } => {
                tracing::warn!(container = %name, "repairing: {why}");
                t.status.decision = Some(format!("repair: {why}"));
                self.spawn_repair(name, false, "schedule");
                self.maybe_first_scan_done();
                return;
            }
            Decision::Wait { after, why } => {
                tracing::info!(container = %name, "not repairing yet: {why}");
                t.status.decision = Some(why.clone());
                t.look_at(now_i + cap(after), why);
            }
            Decision::Report { why } => {
                tracing::warn!(container = %name, "{why}");
                t.status.decision = Some(why);
                t.look_at(now_i + interval, "safety interval");
            }
            Decision::Leave { why } => {
                tracing::warn!(container = %name, "{why}");
                t.status.decision = Some(why);
                t.look_at(now_i + interval, "safety interval");
            }
        }
        if recheck {
            t.look_by(now_i + self.cfg.debounce, "container event during the look");
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
        let now_i = Instant::now();
        let now = self.clock.now();
        let summary = match &result {
            Ok(r) => RepairSummary {
                result: r.result.as_str().to_string(),
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
                    result: "error".into(),
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
        self.metrics.repair(name, &summary.result, summary.restarts);
        match summary.result.as_str() {
            "repaired" | "healthy" => tracing::info!(
                container = %name,
                result = %summary.result,
                restarts = summary.restarts,
                backup = summary.backup.as_deref().unwrap_or("-"),
                "repair finished"
            ),
            _ => tracing::error!(
                container = %name,
                result = %summary.result,
                diagnosis = summary.diagnosis.as_deref().unwrap_or("-"),
                "repair did not succeed; a person may be needed"
            ),
        }
        let Some(t) = self.targets.get_mut(name) else {
            return;
        };
        t.job = None;
        t.recheck = false;
        t.gate.record_end(now_i);
        t.status.last_repair = Some(summary);
        t.look_at(now_i + Duration::from_secs(1), "after the repair");
        self.persist_gate(name);
    }

    /// Publish every target's view (with its next action) for `/status` and `/metrics`.
    fn publish(&mut self) {
        let now_i = Instant::now();
        let now = self.clock.now();
        let mut out = BTreeMap::new();
        for t in self.targets.values_mut() {
            t.status.in_progress = match t.job {
                Some(JobKind::Check) => Some("check"),
                Some(JobKind::Repair) => Some("repair"),
                _ => None,
            };
            t.status.repairs_last_24h = t.gate.recent(now_i);
            t.status.cooldown_until = t
                .gate
                .cooldown_until(now_i)
                .map(|c| now + c.saturating_duration_since(now_i).as_secs() as i64);
            t.status.breaker_open = matches!(t.gate.verdict(now_i), Gate::Tripped { .. });
            t.status.next_action = t.next_check.map(|n| NextAction {
                at: now + n.saturating_duration_since(now_i).as_secs_f64().round() as i64,
                action: "check",
                why: t.next_why.clone(),
            });
            out.insert(t.name.clone(), t.status.clone());
        }
        self.shared.publish(out);
    }

    /// Shutdown at a safe point: looks are dropped at once (they change nothing); a repair in
    /// flight is told to stop (it finishes or rolls forward its step and starts its container)
    /// and gets `shutdown_grace` for that, then is cut and its container started if the
    /// ladder had stopped it. The repair journal lets the next run finish what was cut.
    async fn drain(&mut self) {
        self.stop_repairs.cancel();
        for (name, kind, h) in self.running.values() {
            if *kind != JobKind::Repair {
                tracing::debug!(container = %name, ?kind, "shutdown: dropping");
                h.abort();
            }
        }
        let repairs: Vec<String> = self
            .running
            .values()
            .filter(|(_, k, _)| *k == JobKind::Repair)
            .map(|(n, _, _)| n.clone())
            .collect();
        if repairs.is_empty() {
            tracing::info!("shutting down; nothing in flight");
        } else {
            tracing::warn!(containers = ?repairs, grace_s = self.cfg.shutdown_grace.as_secs(), "shutting down; waiting for the repairs in flight");
        }
        let deadline = Instant::now() + self.cfg.shutdown_grace;
        loop {
            tokio::select! {
                done = self.jobs.join_next_with_id() => match done {
                    None => break,
                    Some(Err(e)) if e.is_cancelled() => {
                        self.running.remove(&e.id());
                    }
                    Some(d) => self.on_joined(d),
                },
                _ = sleep_until(deadline) => break,
            }
        }
        let cut: Vec<String> = self
            .running
            .values()
            .map(|(n, _, h)| {
                h.abort();
                n.clone()
            })
            .collect();
        self.jobs.abort_all();
        for name in cut {
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
            if let Some(t) = self.targets.get_mut(&name) {
                t.job = None;
            }
        }
        self.running.clear();
    }
}

/// 5 s, 10 s, 20 s, … capped at `max`.
fn backoff(failures: u32, max: Duration) -> Duration {
    let secs = 5u64.saturating_mul(1u64 << failures.saturating_sub(1).min(16));
    Duration::from_secs(secs).min(max)
}
