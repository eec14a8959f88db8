//! The loop's jobs — the listing of containers, a look at one, a repair of one — at most one
//! per key, each under a deadline. This set is the one source of truth for "is something
//! running for this target".

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use tokio::task::{AbortHandle, Id, JoinError, JoinSet};

use super::api::{Found, Observation};
use crate::error::Error;
use crate::repair::RepairReport;

/// What a job is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum JobKey {
    /// Listing the containers to watch.
    Discovery,
    /// One target, by name.
    Target(String),
}

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Discover,
    Check,
    Repair,
}

/// What a finished job brings back.
pub enum JobOutcome {
    Discovered(Result<Vec<Found>, Error>),
    Checked(String, Box<Result<Observation, Error>>),
    Repaired {
        name: String,
        result: Box<Result<RepairReport, Error>>,
        started_at: i64,
        requested_by: &'static str,
    },
}

/// A job that ended without an outcome (it panicked, or was aborted).
pub struct Lost {
    pub key: JobKey,
    pub kind: JobKind,
    pub error: JoinError,
}

/// The running jobs.
#[derive(Default)]
pub struct Jobs {
    set: JoinSet<JobOutcome>,
    running: HashMap<Id, (JobKey, JobKind, AbortHandle)>,
}

/// `fut`, or an error saying `what` took longer than `limit`.
pub async fn within<T>(
    limit: Duration,
    what: impl FnOnce() -> String,
    fut: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(Error::Failed(format!(
            "{} took longer than {}s",
            what(),
            limit.as_secs()
        ))),
    }
}

impl Jobs {
    pub fn spawn(
        &mut self,
        key: JobKey,
        kind: JobKind,
        fut: impl Future<Output = JobOutcome> + Send + 'static,
    ) {
        debug_assert!(self.busy(&key).is_none(), "two jobs for {key:?}");
        let h = self.set.spawn(fut);
        self.running.insert(h.id(), (key, kind, h));
    }

    /// What runs for `key`, if anything.
    pub fn busy(&self, key: &JobKey) -> Option<JobKind> {
        self.running
            .values()
            .find(|(k, _, _)| k == key)
            .map(|(_, kind, _)| *kind)
    }

    pub fn target_busy(&self, name: &str) -> Option<JobKind> {
        self.busy(&JobKey::Target(name.to_string()))
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// The next job to end (pending forever while there is none).
    pub async fn next(&mut self) -> Result<JobOutcome, Lost> {
        loop {
            match self.set.join_next_with_id().await {
                None => std::future::pending::<()>().await,
                Some(Ok((id, o))) => {
                    self.running.remove(&id);
                    return Ok(o);
                }
                Some(Err(error)) => {
                    if let Some((key, kind, _)) = self.running.remove(&error.id()) {
                        return Err(Lost { key, kind, error });
                    }
                }
            }
        }
    }

    /// Abort every job of a kind other than `keep`; returns the keys of those that remain.
    pub fn abort_all_but(&mut self, keep: JobKind) -> Vec<JobKey> {
        let mut left = vec![];
        for (key, kind, h) in self.running.values() {
            if *kind == keep {
                left.push(key.clone());
            } else {
                tracing::debug!(?key, ?kind, "shutdown: dropping");
                h.abort();
            }
        }
        left
    }

    /// Wait until every job has ended or `deadline` passed; `on_end` gets each outcome.
    pub async fn wait_until(
        &mut self,
        deadline: tokio::time::Instant,
        mut on_end: impl FnMut(JobOutcome),
    ) {
        while !self.set.is_empty() {
            tokio::select! {
                r = self.next() => if let Ok(o) = r { on_end(o) },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
    }

    /// Abort everything still running; returns what it was.
    pub fn abort_all(&mut self) -> Vec<(JobKey, JobKind)> {
        let cut = self
            .running
            .drain()
            .map(|(_, (key, kind, h))| {
                h.abort();
                (key, kind)
            })
            .collect();
        self.set.abort_all();
        cut
    }
}

/// Retry delays after consecutive failures: 5 s, 10 s, 20 s, … capped at `max`.
pub fn backoff(failures: u32, max: Duration) -> Duration {
    crate::backoff::doubling(Duration::from_secs(5), failures, max)
}
