//! The loop against a fake Docker, on paused tokio time: when it looks, when it repairs, and
//! how it stops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{advance, Instant};
use tokio_util::sync::CancellationToken;

use super::{ApiCommand, ApiReply, Clock, Config, Controller, Found, Observation, Runner};
use crate::error::Error;
use crate::inventory::{Inventory, RenewBefore};
use crate::repair::{RepairReport, RepairResult};
use crate::report::CheckReport;
use crate::watch::metrics::Metrics;
use crate::watch::schedule::{Findings, Pending, Policy};
use crate::watch::state::{Shared, StatusDoc};
use crate::watch::targets::{Selector, Trigger};

const DAY: i64 = 86_400;
const RENEW_BEFORE: i64 = 90 * DAY;
/// 2024-06-03 00:00 UTC, a Monday.
const T0: i64 = 1_717_372_800;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RepairBehaviour {
    /// Renews: the leaf then expires in a year.
    Renew,
    /// Reports failed, changes nothing.
    Fail,
    /// Never returns.
    Hang,
    /// Stops the container, then waits; told to stop (shutdown), it rolls forward like the
    /// ladder: starts the container and returns `interrupted` after 3 s.
    RollForward,
}

#[derive(Debug)]
struct World {
    /// Earliest leaf expiry per container.
    expiry: HashMap<String, i64>,
    running: HashMap<String, bool>,
    behaviour: RepairBehaviour,
    /// What an earlier run left, per container (cleared by a repair).
    pending: HashMap<String, Pending>,
    /// (seconds since start, what).
    calls: Vec<(u64, String)>,
}

struct Fake {
    clock: Clock,
    start: Instant,
    world: Mutex<World>,
}

impl Fake {
    fn new(clock: Clock, containers: &[(&str, i64)], behaviour: RepairBehaviour) -> Arc<Self> {
        Arc::new(Self {
            clock,
            start: Instant::now(),
            world: Mutex::new(World {
                expiry: containers
                    .iter()
                    .map(|(n, e)| (n.to_string(), *e))
                    .collect(),
                running: containers
                    .iter()
                    .map(|(n, _)| (n.to_string(), true))
                    .collect(),
                behaviour,
                pending: HashMap::new(),
                calls: vec![],
            }),
        })
    }

    fn log(&self, what: String) {
        let at = Instant::now().duration_since(self.start).as_secs();
        self.world.lock().unwrap().calls.push((at, what));
    }

    fn calls(&self, prefix: &str) -> Vec<u64> {
        self.world
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|(_, w)| w.starts_with(prefix))
            .map(|(t, _)| *t)
            .collect()
    }
}

impl Runner for Fake {
    async fn discover(&self, _sel: &Selector) -> Result<Vec<Found>, Error> {
        self.log("discover".into());
        let w = self.world.lock().unwrap();
        let mut names: Vec<_> = w.expiry.keys().cloned().collect();
        names.sort();
        Ok(names
            .into_iter()
            .map(|name| Found {
                name,
                pinned: false,
            })
            .collect())
    }

    async fn check(&self, name: &str) -> Result<Observation, Error> {
        self.log(format!("check {name}"));
        let now = self.clock.now();
        let w = self.world.lock().unwrap();
        let Some(expiry) = w.expiry.get(name).copied() else {
            return Err(Error::ContainerNotFound {
                name: name.into(),
                running: vec![],
            });
        };
        let due = now >= expiry - RENEW_BEFORE;
        let findings = Findings {
            reasons: if due {
                vec![format!("client-admin.crt expires at {expiry}")]
            } else {
                vec![]
            },
            urgent: now >= expiry,
            earliest_expiry: Some(expiry),
            renew_at: (!due).then_some(expiry - RENEW_BEFORE),
            stopped: (!w.running.get(name).copied().unwrap_or(true)).then(|| "exited".to_string()),
            pending: w.pending.get(name).cloned(),
            clock: None,
        };
        Ok(Observation {
            id: format!("id-{name}"),
            image: "rancher/rancher:v2.5.7".into(),
            state: "running".into(),
            findings,
            report: CheckReport::new(
                format!("container:{name}"),
                now,
                RenewBefore::days(90),
                &Inventory::default(),
            ),
            era: None,
            logs_unreadable: None,
        })
    }

    async fn repair(
        &self,
        name: &str,
        _force: bool,
        cancel: CancellationToken,
    ) -> Result<RepairReport, Error> {
        self.log(format!("repair {name}"));
        let behaviour = self.world.lock().unwrap().behaviour;
        if matches!(
            self.world.lock().unwrap().pending.remove(name),
            Some(Pending::Finish { .. })
        ) {
            // Finishing an interrupted repair: start, verify.
            tokio::time::sleep(Duration::from_secs(20)).await;
            self.world.lock().unwrap().running.insert(name.into(), true);
            return Ok(report(name, RepairResult::Repaired));
        }
        match behaviour {
            RepairBehaviour::RollForward => {
                self.world
                    .lock()
                    .unwrap()
                    .running
                    .insert(name.into(), false);
                cancel.cancelled().await;
                tokio::time::sleep(Duration::from_secs(3)).await;
                self.world.lock().unwrap().running.insert(name.into(), true);
                Ok(report(name, RepairResult::Interrupted))
            }
            RepairBehaviour::Hang => {
                self.world
                    .lock()
                    .unwrap()
                    .running
                    .insert(name.into(), false);
                std::future::pending::<()>().await;
                unreachable!()
            }
            RepairBehaviour::Renew => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                let now = self.clock.now();
                self.world
                    .lock()
                    .unwrap()
                    .expiry
                    .insert(name.into(), now + 365 * DAY);
                Ok(report(name, RepairResult::Repaired))
            }
            RepairBehaviour::Fail => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(report(name, RepairResult::Failed))
            }
        }
    }

    async fn ensure_started(&self, name: &str) -> Result<(), Error> {
        self.log(format!("ensure_started {name}"));
        self.world.lock().unwrap().running.insert(name.into(), true);
        Ok(())
    }
}

fn report(name: &str, result: RepairResult) -> RepairReport {
    RepairReport {
        result,
        target: name.into(),
        restarts: 0,
        backup: None,
        wiped: vec![],
        reasons: vec![],
        plan: None,
        before: None,
        after: None,
        steps: vec![],
        diagnosis: None,
        failure: None,
        era: None,
        notes: vec![],
    }
}

struct Harness {
    shared: Arc<Shared>,
    triggers: mpsc::Sender<Trigger>,
    commands: mpsc::Sender<ApiCommand>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn start(fake: Arc<Fake>, clock: Clock, tune: impl FnOnce(&mut Config)) -> Harness {
    let mut cfg = Config::new(
        Selector::parse(&[], &[]).unwrap(),
        Policy {
            monitor_only: false,
            window: None,
            repair_budget: Duration::from_secs(900),
        },
    );
    tune(&mut cfg);
    let shared = Arc::new(Shared::new(cfg.tick, StatusDoc::default()));
    let metrics = Arc::new(Metrics::new(shared.clone()));
    let (ttx, trx) = mpsc::channel(16);
    let (ctx, crx) = mpsc::channel(4);
    let shutdown = CancellationToken::new();
    let c = Controller::new(cfg, fake.clone(), shared.clone(), metrics, clock);
    let task = tokio::spawn(c.run(trx, crx, shutdown.clone()));
    Harness {
        shared,
        triggers: ttx,
        commands: ctx,
        shutdown,
        task,
    }
}

/// Let the loop and its jobs run until they wait on time.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

/// Let `secs` seconds of paused time pass; tokio fires every timer at its exact instant.
async fn run_for(secs: u64) {
    settle().await;
    tokio::time::sleep(Duration::from_secs(secs)).await;
    settle().await;
}

#[tokio::test(start_paused = true)]
async fn looks_at_start_and_repairs_exactly_when_the_window_is_entered() {
    let clock = Clock::fake(T0);
    // Enters its renewal window 1000 s after start.
    let fake = Fake::new(
        clock,
        &[("rancher", T0 + RENEW_BEFORE + 1000)],
        RepairBehaviour::Renew,
    );
    let h = start(fake.clone(), clock, |_| {});
    h.triggers.send(Trigger::Resync).await.unwrap();
    run_for(5).await;
    assert_eq!(fake.calls("discover"), vec![0]);
    assert_eq!(fake.calls("check"), vec![0], "looked at start");
    assert!(h.shared.first_scan_done());
    run_for(990).await;
    assert!(
        fake.calls("repair").is_empty(),
        "nothing due before the window"
    );
    run_for(10).await;
    assert_eq!(
        fake.calls("check"),
        vec![0, 1000],
        "looked exactly at the window"
    );
    assert_eq!(fake.calls("repair"), vec![1000]);
    run_for(40).await;
    // After the repair: a fresh look finds a certificate a year away; next look is the safety
    // interval (1 h), not a poll.
    assert_eq!(fake.calls("check"), vec![0, 1000, 1031]);
    run_for(3500).await;
    assert_eq!(fake.calls("check"), vec![0, 1000, 1031]);
    run_for(200).await;
    assert_eq!(fake.calls("check"), vec![0, 1000, 1031, 4631]);
    assert_eq!(fake.calls("repair"), vec![1000]);
    h.shutdown.cancel();
    h.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn first_scan_starts_even_without_an_events_stream() {
    let clock = Clock::fake(T0);
    let fake = Fake::new(
        clock,
        &[("rancher", T0 + 365 * DAY)],
        RepairBehaviour::Renew,
    );
    let h = start(fake.clone(), clock, |_| {});
    run_for(9).await;
    assert!(
        fake.calls("discover").is_empty(),
        "waits for the events stream first"
    );
    run_for(2).await;
    assert_eq!(fake.calls("discover"), vec![10]);
    assert_eq!(fake.calls("check"), vec![10]);
    h.shutdown.cancel();
    h.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_container_event_is_looked_at_within_a_second() {
    let clock = Clock::fake(T0);
    let fake = Fake::new(
        clock,
        &[("rancher", T0 + 365 * DAY)],
        RepairBehaviour::Renew,
    );
    let h = start(fake.clone(), clock, |_| {});
    h.triggers.send(Trigger::Resync).await.unwrap();
    run_for(100).await;
    h.triggers
        .send(Trigger::Changed {
            name: "rancher".into(),
            id: "id-rancher".into(),
            action: "restart".into(),
        })
        .await
        .unwrap();
    run_for(2).await;
    assert_eq!(fake.calls("check"), vec![0, 100]);
    // A new container under a watched name (recreated) is picked up the same way.
    fake.world
        .lock()
        .unwrap()
        .expiry
        .insert("rancher2".into(), T0 + 20 * DAY);
    h.triggers
        .send(Trigger::Changed {
            name: "rancher2".into(),
            id: "id-rancher2".into(),
            action: "create".into(),
        })
        .await
        .unwrap();
    run_for(2).await;
    assert_eq!(fake.calls("check rancher2"), vec![102]);
    assert_eq!(fake.calls("repair rancher2"), vec![102], "due: repaired");
    h.shutdown.cancel();
    h.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_window_delays_a_repair_until_it_opens() {
    // Monday 00:00; the window opens Sunday 02:00, 6 days 2 hours later.
    let clock = Clock::fake(T0);
    let fake = Fake::new(clock, &[("rancher", T0 + 30 * DAY)], RepairBehaviour::Renew);
    let h = start(fake.clone(), clock, |c| {
        c.policy.window = Some("Sun 02:00-04:00".parse().unwrap());
        c.interval = Duration::from_secs(7 * DAY as u64);
    });
    h.triggers.send(Trigger::Resync).await.unwrap();
    run_for(2).await;
    assert!(fake.calls("repair").is_empty());
    let doc = h.shared.snapshot();
    let next = doc.targets["rancher"].next_action.clone().unwrap();
    assert_eq!(next.at, T0 + 6 * DAY + 2 * 3600);
    assert!(next.why.contains("maintenance window"), "{}", next.why);
    // Jump close to the opening, then step through it.
    advance(Duration::from_secs((6 * DAY + 2 * 3600 - 10) as u64)).await;
    run_for(12).await;
    assert_eq!(fake.calls("repair"), vec![(6 * DAY + 2 * 3600) as u64]);
    h.shutdown.cancel();
    h.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn monitor_only_never_repairs() {
    let clock = Clock::fake(T0);
    let fake = Fake::new(clock, &[("rancher", T0 - DAY)], RepairBehaviour::Renew);
    let h = start(fake.clone(), clock, |c| c.policy.monitor_only = true);
    h.triggers.send(Trigger::Resync).await.unwrap();
    run_for(2).await;
    let (tx, rx) = oneshot::channel();
    h.commands
        .send(ApiCommand::Repair {
            container: "rancher".into(),
            force: false,
            reply: tx,
        })
        .await
        .unwrap();
    run_for(1).await;
    assert_eq!(rx.await.unwrap(), ApiReply::MonitorOnly);
    run_for(7200).await;
    assert!(fake.calls("repair").is_empty());
    assert_eq!(fake.calls("check"), vec![0, 3600, 7200]);
    h.shutdown.cancel();
    h.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn cooldown_and_breaker_bound_failing_repairs() {
    let clock = Clock::fake(T0);
    let fake = Fake::new(clock, &[("rancher", T0 + 10 * DAY)], RepairBehaviour::Fail);
    let h = start(fake.clone(), clock, |c| {
        c.cooldown = Duration::from_secs(600);
        c.max_repairs_per_day = 3;
    });
    h.triggers.send(Trigger::Resync).await.unwrap();
    // Each failed repair takes 30 s, then 600 s of cooldown.
    run_for(3 * 3600).await;
    assert_eq!(
        fake.calls("repair"),
        vec![0, 630, 1260],
        "three, spaced by the cooldown"
    );
    // The breaker holds for the rest of the day, however many events come.
    for _ in 0..5 {
        h.triggers
            .send(Trigger::Changed {
                name: "rancher".into(),
                id: "id-rancher".into(),
                action: "die".into(),
            })
            .await
            .unwrap();
        run_for(10).await;
    }
    assert_eq!(fake.calls("repair").len(), 3);
    let doc = h.shared.snapshot();
    let t = &doc.targets["rancher"];
    assert_eq!(t.repairs_last_24h, 3);
    assert_eq!(t.last_repair.as_ref().unwrap().result.as_str(), "failed");
    assert!(t.decision.as_deref().unwrap().contains("circuit breaker"));
    // The window rolls: each repair ages out 24 h after it started, and frees one slot.
    advance(Duration::from_secs((DAY - 3 * 3600 - 50 - 60) as u64)).await;
    run_for(3700).await;
    let day = DAY as u64;
    assert_eq!(
        fake.calls("repair"),
        vec![0, 630, 1260, day, day + 630, day + 1260]
    );
    h.shutdown.cancel();
    h.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn shutdown_cuts_a_hung_repair_and_starts_its_container_within_ten_seconds() {
    let clock = Clock::fake(T0);
    let fake = Fake::new(clock, &[("rancher", T0 - DAY)], RepairBehaviour::Hang);
    let h = start(fake.clone(), clock, |_| {});
    h.triggers.send(Trigger::Resync).await.unwrap();
    run_for(5).await;
    assert_eq!(fake.calls("repair"), vec![0]);
    assert!(
        !fake.world.lock().unwrap().running["rancher"],
        "the ladder stopped it"
    );
    let t = Instant::now();
    h.shutdown.cancel();
    h.task.await.unwrap();
    let took = Instant::now() - t;
    assert!(took <= Duration::from_secs(10), "{took:?}");
    assert!(
        took >= Duration::from_secs(6),
        "the repair got its grace: {took:?}"
    );
    assert_eq!(fake.calls("ensure_started rancher").len(), 1);
    assert!(
        fake.world.lock().unwrap().running["rancher"],
        "never left stopped"
    );
}

#[tokio::test(start_paused = true)]
async fn api_repair_runs_once_at_a_time() {
    let clock = Clock::fake(T0);
    let fake = Fake::new(
        clock,
        &[("rancher", T0 + 365 * DAY)],
        RepairBehaviour::Renew,
    );
    let h = start(fake.clone(), clock, |_| {});
    h.triggers.send(Trigger::Resync).await.unwrap();
    run_for(2).await;
    let ask = |name: &str| {
        let (tx, rx) = oneshot::channel();
        (
            ApiCommand::Repair {
                container: name.into(),
                force: true,
                reply: tx,
            },
            rx,
        )
    };
    let (c, rx) = ask("rancher");
    h.commands.send(c).await.unwrap();
    run_for(1).await;
    assert_eq!(rx.await.unwrap(), ApiReply::Accepted);
    let (c, rx) = ask("rancher");
    h.commands.send(c).await.unwrap();
    run_for(1).await;
    assert_eq!(rx.await.unwrap(), ApiReply::Busy);
    let (c, rx) = ask("nope");
    h.commands.send(c).await.unwrap();
    run_for(1).await;
    assert_eq!(rx.await.unwrap(), ApiReply::NotFound);
    run_for(40).await;
    assert_eq!(fake.calls("repair").len(), 1);
    let doc = h.shared.snapshot();
    assert_eq!(
        doc.targets["rancher"]
            .last_repair
            .as_ref()
            .unwrap()
            .requested_by,
        "api"
    );
    h.shutdown.cancel();
    h.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_removed_container_is_dropped() {
    let clock = Clock::fake(T0);
    let fake = Fake::new(
        clock,
        &[("rancher", T0 + 365 * DAY)],
        RepairBehaviour::Renew,
    );
    let h = start(fake.clone(), clock, |_| {});
    h.triggers.send(Trigger::Resync).await.unwrap();
    run_for(2).await;
    assert!(h.shared.snapshot().targets.contains_key("rancher"));
    fake.world.lock().unwrap().expiry.remove("rancher");
    h.triggers
        .send(Trigger::Gone {
            name: "rancher".into(),
            id: "id-rancher".into(),
        })
        .await
        .unwrap();
    run_for(1).await;
    assert!(!h.shared.snapshot().targets.contains_key("rancher"));
    h.shutdown.cancel();
    h.task.await.unwrap();
}

/// A sidecar killed mid-repair left a journal and a stopped container: the first look of the
/// next sidecar finishes it — whatever the maintenance window, the cooldown or the breaker say.
#[tokio::test(start_paused = true)]
async fn an_interrupted_repair_is_finished_at_the_first_look_whatever_the_window() {
    let clock = Clock::fake(T0);
    let fake = Fake::new(
        clock,
        &[("rancher", T0 + 300 * DAY)],
        RepairBehaviour::Renew,
    );
    {
        let mut w = fake.world.lock().unwrap();
        w.running.insert("rancher".into(), false);
        w.pending.insert(
            "rancher".into(),
            Pending::Finish {
                why: "a repair was interrupted at step `wiping`: finishing it".into(),
                stopped: true,
            },
        );
    }
    let h = start(fake.clone(), clock, |c| {
        c.policy.window = Some("Sun 02:00-04:00".parse().unwrap());
        c.max_repairs_per_day = 1;
    });
    h.triggers.send(Trigger::Resync).await.unwrap();
    run_for(25).await;
    assert_eq!(
        fake.calls("repair"),
        vec![0],
        "finished at once, outside the window"
    );
    assert!(fake.world.lock().unwrap().running["rancher"]);
    let doc = h.shared.snapshot();
    assert_eq!(
        doc.targets["rancher"]
            .last_repair
            .as_ref()
            .unwrap()
            .result
            .as_str(),
        "repaired"
    );
    h.shutdown.cancel();
    h.task.await.unwrap();
}

/// Another run (a one-shot `repair`) acts on the container: the sidecar does not, and looks
/// again later.
#[tokio::test(start_paused = true)]
async fn a_container_another_run_acts_on_is_left_to_it() {
    let clock = Clock::fake(T0);
    let fake = Fake::new(clock, &[("rancher", T0 - DAY)], RepairBehaviour::Renew);
    fake.world.lock().unwrap().pending.insert(
        "rancher".into(),
        Pending::Busy("another run acts on rancher: repair (pid 7 on host vm)".into()),
    );
    let h = start(fake.clone(), clock, |_| {});
    h.triggers.send(Trigger::Resync).await.unwrap();
    run_for(2).await;
    assert!(fake.calls("repair").is_empty());
    let doc = h.shared.snapshot();
    assert!(
        doc.targets["rancher"]
            .decision
            .as_deref()
            .unwrap()
            .contains("another run acts on rancher"),
        "{:?}",
        doc.targets["rancher"].decision
    );
    fake.world.lock().unwrap().pending.clear();
    run_for(30).await;
    assert_eq!(fake.calls("check"), vec![0, 30], "looked again after 30 s");
    assert_eq!(fake.calls("repair"), vec![30]);
    h.shutdown.cancel();
    h.task.await.unwrap();
}

/// SIGTERM during a repair: the ladder is told to stop, rolls forward (starts the container)
/// within the grace, and nothing needs cutting.
#[tokio::test(start_paused = true)]
async fn shutdown_lets_a_repair_roll_forward_and_start_its_container() {
    let clock = Clock::fake(T0);
    let fake = Fake::new(
        clock,
        &[("rancher", T0 - DAY)],
        RepairBehaviour::RollForward,
    );
    let h = start(fake.clone(), clock, |c| {
        c.shutdown_grace = Duration::from_secs(45)
    });
    h.triggers.send(Trigger::Resync).await.unwrap();
    run_for(5).await;
    assert_eq!(fake.calls("repair"), vec![0]);
    assert!(!fake.world.lock().unwrap().running["rancher"]);
    let t = Instant::now();
    h.shutdown.cancel();
    h.task.await.unwrap();
    let took = Instant::now() - t;
    assert!(
        took < Duration::from_secs(5),
        "rolled forward, not cut: {took:?}"
    );
    assert!(fake.calls("ensure_started").is_empty());
    assert!(
        fake.world.lock().unwrap().running["rancher"],
        "never left stopped"
    );
}
