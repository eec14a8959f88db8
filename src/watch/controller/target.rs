//! One target of the loop, pure: when to look at it next and why, its repair gate, and the view
//! it publishes. [`Target::looked`] turns what a look found and what was decided into the next
//! look; no Docker, no clock of its own (instants and wall time come in).

use std::time::Duration;

use tokio::time::Instant;

use super::api::{Config, Observation};
use super::jobs::{backoff, JobKind};
use crate::error::Error;
use crate::timefmt;
use crate::watch::gate::RepairGate;
use crate::watch::schedule::{Decision, Gate};
use crate::watch::state::{NextAction, RepairSummary, TargetStatus};

#[derive(Debug)]
pub struct Target {
    pub name: String,
    /// Named with `--container`: kept (as missing) when the container goes away.
    pub pinned: bool,
    /// When to look next; `None`: only an event or a rescan will.
    pub next_check: Option<Instant>,
    pub next_why: String,
    /// Something happened during a job: look again when it ends.
    pub recheck: bool,
    pub last_look: Option<Instant>,
    /// Consecutive failed looks, for the retry backoff.
    pub failures: u32,
    pub gate: RepairGate,
    /// The published view.
    pub status: TargetStatus,
}

impl Target {
    pub fn new(name: &str, pinned: bool, cfg: &Config) -> Self {
        Self {
            name: name.to_string(),
            pinned,
            next_check: None,
            next_why: String::new(),
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
    pub fn look_by(&mut self, at: Instant, why: impl Into<String>) {
        if self.next_check.is_none_or(|n| at < n) {
            self.next_check = Some(at);
            self.next_why = why.into();
        }
    }

    /// Look at exactly `at` (replaces the schedule).
    pub fn look_at(&mut self, at: Instant, why: impl Into<String>) {
        self.next_check = Some(at);
        self.next_why = why.into();
    }

    /// A job starts for the target: nothing is scheduled while it runs.
    pub fn begin(&mut self, now: Instant, kind: JobKind) {
        self.next_check = None;
        self.recheck = false;
        match kind {
            JobKind::Check => self.last_look = Some(now),
            JobKind::Repair => self.gate.record_start(now),
            JobKind::Discover => {}
        }
    }

    /// A look failed (the container is there, the certificates could not be read): back off
    /// — 5 s, 10 s, 20 s … for a daemon that went away, from 80 s for a lasting problem.
    pub fn look_failed(&mut self, e: &Error, now_i: Instant, now: i64, cfg: &Config) -> Duration {
        self.status.last_check = Some(now);
        self.failures += 1;
        let retry = if e.is_transient() {
            backoff(self.failures, cfg.interval)
        } else {
            backoff(self.failures + 4, cfg.interval)
        };
        self.status.up = false;
        self.status.last_error = Some(e.to_string());
        self.status.decision = Some(format!(
            "look again in {}",
            timefmt::residual(retry.as_secs() as i64)
        ));
        self.look_at(now_i + retry, "retry after an error");
        self.after_job(now_i, cfg);
        retry
    }

    /// A look succeeded: record what it found. Call [`Target::decided`] next.
    pub fn looked(&mut self, obs: &Observation, now: i64) {
        let s = &mut self.status;
        self.failures = 0;
        s.last_check = Some(now);
        s.up = true;
        s.last_success = Some(now);
        s.last_error = None;
        s.id = Some(obs.id.clone());
        s.image = Some(obs.image.clone());
        s.state = Some(obs.state.clone());
        s.status = Some(obs.report.status);
        s.reasons = obs.findings.reasons.clone();
        s.renew_at = obs.findings.renew_at;
        s.earliest_expiry = obs.findings.earliest_expiry;
        s.inventory = Some(obs.report.clone());
        s.era = obs.era.clone();
        s.logs_unreadable = obs.logs_unreadable.clone();
        s.clock = obs.findings.clock.clone();
    }

    /// Schedule after a decision; `Some(why)` when a repair is to start now.
    pub fn decided(
        &mut self,
        decision: Decision,
        now: i64,
        now_i: Instant,
        cfg: &Config,
    ) -> Option<String> {
        let interval = cfg.interval;
        let repair = match decision {
            Decision::Healthy { renew_in } => {
                let (after, why) = match renew_in {
                    Some(d) if d < interval => (
                        d.max(Duration::from_secs(1)),
                        "the next certificate enters the renewal window",
                    ),
                    _ => (interval, "safety interval"),
                };
                let text = format!(
                    "nothing due; next look at {} ({why})",
                    timefmt::rfc3339(now + after.as_secs() as i64)
                );
                tracing::info!(container = %self.name, "{text}");
                self.status.decision = Some(text);
                self.look_at(now_i + after, why);
                None
            }
            Decision::Repair { why } => {
                tracing::warn!(container = %self.name, "repairing: {why}");
                self.status.decision = Some(format!("repair: {why}"));
                return Some(why);
            }
            Decision::Wait { after, why } => {
                tracing::info!(container = %self.name, "not repairing yet: {why}");
                self.status.decision = Some(why.clone());
                self.look_at(now_i + after.min(interval), why);
                None
            }
            Decision::Report { why } | Decision::Leave { why } => {
                tracing::warn!(container = %self.name, "{why}");
                self.status.decision = Some(why);
                self.look_at(now_i + interval, "safety interval");
                None
            }
        };
        self.after_job(now_i, cfg);
        repair
    }

    /// An event came during the job: look again soon after it.
    fn after_job(&mut self, now_i: Instant, cfg: &Config) {
        if std::mem::take(&mut self.recheck) {
            self.look_by(now_i + cfg.debounce, "container event during the look");
        }
    }

    /// A repair ended.
    pub fn repaired(&mut self, summary: RepairSummary, now_i: Instant) {
        self.recheck = false;
        self.gate.record_end(now_i);
        self.status.last_repair = Some(summary);
        self.look_at(now_i + Duration::from_secs(1), "after the repair");
    }

    /// The view to publish, with what runs for it now.
    pub fn view(&mut self, now: i64, now_i: Instant, busy: Option<JobKind>) -> TargetStatus {
        let s = &mut self.status;
        s.in_progress = busy.filter(|k| *k != JobKind::Discover);
        s.repairs_last_24h = self.gate.recent(now_i);
        s.cooldown_until = self
            .gate
            .cooldown_until(now_i)
            .map(|c| now + c.saturating_duration_since(now_i).as_secs() as i64);
        s.breaker_open = matches!(self.gate.verdict(now_i), Gate::Tripped { .. });
        s.next_action = self.next_check.map(|n| NextAction {
            at: now + n.saturating_duration_since(now_i).as_secs_f64().round() as i64,
            action: "check",
            why: self.next_why.clone(),
        });
        s.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{Inventory, RenewBefore};
    use crate::report::CheckReport;
    use crate::watch::schedule::{Findings, Policy};
    use crate::watch::targets::Selector;

    const S: Duration = Duration::from_secs(1);

    fn cfg() -> Config {
        Config::new(Selector::default(), Policy::default())
    }

    fn obs() -> Observation {
        Observation {
            id: "id".into(),
            image: "rancher/rancher".into(),
            state: "running".into(),
            findings: Findings::default(),
            report: CheckReport::new("c".into(), 0, RenewBefore::days(90), &Inventory::default()),
            era: None,
            logs_unreadable: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn decisions_become_the_next_look() {
        let c = cfg();
        let t0 = Instant::now();
        let mut t = Target::new("r", false, &c);
        t.looked(&obs(), 1000);
        // Healthy, the next certificate enters its window in 10 minutes: look exactly then.
        assert_eq!(
            t.decided(
                Decision::Healthy {
                    renew_in: Some(600 * S)
                },
                1000,
                t0,
                &c
            ),
            None
        );
        assert_eq!(t.next_check, Some(t0 + 600 * S));
        // Far off: the safety interval.
        t.decided(
            Decision::Healthy {
                renew_in: Some(86_400 * 30 * S),
            },
            1000,
            t0,
            &c,
        );
        assert_eq!(t.next_check, Some(t0 + c.interval));
        // Waiting (a window a week away) is capped by the interval.
        t.decided(
            Decision::Wait {
                after: 7 * 86_400 * S,
                why: "w".into(),
            },
            1000,
            t0,
            &c,
        );
        assert_eq!(t.next_check, Some(t0 + c.interval));
        // A repair: no look is scheduled while it runs.
        t.begin(t0, JobKind::Repair);
        assert_eq!(
            t.decided(Decision::Repair { why: "due".into() }, 1000, t0, &c),
            Some("due".into())
        );
        assert_eq!(t.next_check, None);
        // An event during the job: looked at again soon after it.
        t.recheck = true;
        t.decided(Decision::Report { why: "r".into() }, 1000, t0, &c);
        assert_eq!(t.next_check, Some(t0 + c.debounce));
    }

    #[tokio::test(start_paused = true)]
    async fn failed_looks_back_off() {
        let c = cfg();
        let t0 = Instant::now();
        let mut t = Target::new("r", false, &c);
        let gone = Error::DockerUnreachable {
            host: "h".into(),
            detail: "d".into(),
        };
        let got: Vec<u64> = (0..4)
            .map(|_| t.look_failed(&gone, t0, 0, &c).as_secs())
            .collect();
        assert_eq!(got, vec![5, 10, 20, 40]);
        assert!(!t.status.up);
        t.looked(&obs(), 1);
        let lasting = Error::Invalid("x".into());
        assert_eq!(
            t.look_failed(&lasting, t0, 0, &c),
            80 * S,
            "a lasting problem from 80 s"
        );
    }
}
