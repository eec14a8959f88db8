//! The fake Docker of the loop's tests, and a harness that runs the loop on paused time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::inventory::{Inventory, RenewBefore};
use crate::repair::{RepairReport, RepairResult};
use crate::report::CheckReport;
use crate::watch::controller::{ApiCommand, Clock, Config, Controller, Found, Observation, Runner};
use crate::watch::metrics::Metrics;
use crate::watch::schedule::{Findings, Pending, Policy};
use crate::watch::state::{Shared, StatusDoc};
use crate::watch::targets::{Selector, Trigger};

pub(super) const DAY: i64 = 86_400;
pub(super) const RENEW_BEFORE: i64 = 90 * DAY;
/// 2024-06-03 00:00 UTC, a Monday.
pub(super) const T0: i64 = 1_717_372_800;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RepairBehaviour {
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
pub(super) struct World {
    /// Earliest leaf expiry per container.
    pub(super) expiry: HashMap<String, i64>,
    pub(super) running: HashMap<String, bool>,
    pub(super) behaviour: RepairBehaviour,
    /// What an earlier run left, per container (cleared by a repair).
    pub(super) pending: HashMap<String, Pending>,
    /// (seconds since start, what).
    pub(super) calls: Vec<(u64, String)>,
}

pub(super) struct Fake {
    pub(super) clock: Clock,
    pub(super) start: Instant,
    pub(super) world: Mutex<World>,
}

impl Fake {
    pub(super) fn new(
        clock: Clock,
        containers: &[(&str, i64)],
        behaviour: RepairBehaviour,
    ) -> Arc<Self> {
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

    pub(super) fn log(&self, what: String) {
        let at = Instant::now().duration_since(self.start).as_secs();
        self.world.lock().unwrap().calls.push((at, what));
    }

    pub(super) fn calls(&self, prefix: &str) -> Vec<u64> {
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

pub(super) fn report(name: &str, result: RepairResult) -> RepairReport {
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

pub(super) struct Harness {
    pub(super) shared: Arc<Shared>,
    pub(super) triggers: mpsc::Sender<Trigger>,
    pub(super) commands: mpsc::Sender<ApiCommand>,
    pub(super) shutdown: CancellationToken,
    pub(super) task: tokio::task::JoinHandle<()>,
}

pub(super) fn start(fake: Arc<Fake>, clock: Clock, tune: impl FnOnce(&mut Config)) -> Harness {
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
pub(super) async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

/// Let `secs` seconds of paused time pass; tokio fires every timer at its exact instant.
pub(super) async fn run_for(secs: u64) {
    settle().await;
    tokio::time::sleep(Duration::from_secs(secs)).await;
    settle().await;
}
