//! What the loop of `watch` deals in: the [`Runner`] it asks of Docker, what a look found
//! ([`Observation`]), its tunables ([`Config`]), the API's commands and replies, and the wall
//! clock (real, or derived from tokio's paused clock in tests).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::repair::RepairReport;
use crate::report::CheckReport;
use crate::timefmt;
use crate::watch::gate::GateStore;
use crate::watch::schedule::{Findings, Policy};
use crate::watch::targets::Selector;

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
