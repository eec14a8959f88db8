//! The loop's reactions to finished jobs: a listing, a look, a repair.

use tokio::time::Instant;

use super::jobs::{self, backoff, JobKey, JobOutcome};
use super::{Controller, Found, Observation, Runner};
use crate::error::Error;
use crate::repair::RepairReport;
use crate::watch::schedule::decide;
use crate::watch::state::{RepairEnd, RepairSummary};

impl<R: Runner> Controller<R> {
    /// A job panicked (debug builds; release aborts): free its target, look later.
    pub(super) fn on_lost(&mut self, lost: jobs::Lost) {
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

    pub(super) fn on_done(&mut self, outcome: JobOutcome) {
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

    pub(super) fn on_discovered(&mut self, r: Result<Vec<Found>, Error>) {
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

    pub(super) fn maybe_first_scan_done(&mut self) {
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

    pub(super) fn count_error(&self, e: &Error) {
        match e {
            Error::Refused(_) | Error::Failed(_) | Error::Invalid(_) | Error::Backup { .. } => {}
            other => self.metrics.docker_error(other.metric_label()),
        }
        if e.is_transient() {
            self.shared.set_docker_up(false);
        }
    }

    pub(super) fn on_checked(&mut self, name: &str, r: Result<Observation, Error>) {
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

    pub(super) fn on_repaired(
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
}
