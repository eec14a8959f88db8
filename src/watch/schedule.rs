//! When `watch` acts: the maintenance window and the decision taken after every look at a
//! target. Pure: wall-clock time (Unix seconds) comes in as a parameter, durations go out.

use std::fmt;
use std::time::Duration;

use crate::timefmt;

const DAY: i64 = 86_400;
const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// A weekly maintenance window in UTC, e.g. `Sun 02:00-04:00`, `Sat,Sun 01:00-05:00`,
/// `Mon-Fri 22:00-02:00` (crosses midnight: the day is the day it opens) or `02:00-04:00`
/// (every day). Non-urgent repairs wait for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Days on which the window opens, Monday first.
    days: [bool; 7],
    /// Opening, minutes after midnight UTC.
    start: u32,
    /// Length in minutes (1..=1440).
    length: u32,
}

fn parse_hhmm(s: &str) -> Result<u32, String> {
    let (h, m) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not HH:MM"))?;
    let h: u32 = h.parse().map_err(|_| format!("{s:?} is not HH:MM"))?;
    let m: u32 = m.parse().map_err(|_| format!("{s:?} is not HH:MM"))?;
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(format!("{s:?} is not a time of day"));
    }
    Ok(h * 60 + m)
}

fn parse_day(s: &str) -> Result<usize, String> {
    const FULL: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let lower = s.to_ascii_lowercase();
    FULL.iter()
        .position(|f| lower.len() >= 3 && f.starts_with(&lower))
        .ok_or_else(|| format!("{s:?} is not a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun)"))
}

fn parse_days(s: &str) -> Result<[bool; 7], String> {
    let mut days = [false; 7];
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (parse_day(a.trim())?, parse_day(b.trim())?);
                let mut d = a;
                loop {
                    days[d] = true;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days[parse_day(part)?] = true,
        }
    }
    if days.iter().any(|d| *d) {
        Ok(days)
    } else {
        Err("no day given".into())
    }
}

/// Day of the week of a Unix time, Monday = 0 (1970-01-01 was a Thursday).
fn weekday(t: i64) -> usize {
    (t.div_euclid(DAY) + 3).rem_euclid(7) as usize
}

impl std::str::FromStr for Window {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let err = |why: String| {
            format!("invalid --window {spec:?}: {why} (want e.g. \"Sun 02:00-04:00\", \"Mon-Fri 22:00-02:00\" or \"02:00-04:00\", UTC)")
        };
        let mut s = spec.trim();
        if let Some(rest) = s.strip_suffix("UTC").or_else(|| s.strip_suffix("utc")) {
            s = rest.trim_end();
        }
        let (days, range) = match s.rsplit_once(char::is_whitespace) {
            Some((d, r)) => (parse_days(d).map_err(err)?, r),
            None => ([true; 7], s),
        };
        let (a, b) = range
            .split_once('-')
            .ok_or_else(|| err(format!("{range:?} is not HH:MM-HH:MM")))?;
        let start = parse_hhmm(a).map_err(err)?;
        let end = parse_hhmm(b).map_err(err)?;
        if start == 1440 {
            return Err(err("the window cannot open at 24:00".into()));
        }
        let length = match (end + 1440 - start) % 1440 {
            0 if start == 0 && end == 1440 => 1440,
            0 => {
                return Err(err(
                    "the window is empty (opens and closes at the same time)".into(),
                ))
            }
            l => l,
        };
        Ok(Window {
            days,
            start,
            length,
        })
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days: Vec<&str> = (0..7)
            .filter(|d| self.days[*d])
            .map(|d| DAY_NAMES[d])
            .collect();
        let end = match self.start + self.length {
            1440 => 1440,
            e => e % 1440,
        };
        if days.len() < 7 {
            write!(f, "{} ", days.join(","))?;
        }
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02} UTC",
            self.start / 60,
            self.start % 60,
            end / 60,
            end % 60
        )
    }
}

impl Window {
    /// Opening times of the windows that opened on the day of `t` and the day before.
    fn recent_openings(&self, t: i64) -> impl Iterator<Item = i64> + '_ {
        let midnight = t.div_euclid(DAY) * DAY;
        [midnight - DAY, midnight]
            .into_iter()
            .filter(|m| self.days[weekday(*m)])
            .map(|m| m + i64::from(self.start) * 60)
    }

    /// Is `t` inside the window?
    pub fn contains(&self, t: i64) -> bool {
        self.recent_openings(t)
            .any(|open| open <= t && t < open + i64::from(self.length) * 60)
    }

    /// The first opening strictly after `t`.
    pub fn next_open(&self, t: i64) -> i64 {
        let midnight = t.div_euclid(DAY) * DAY;
        (0..=7)
            .map(|k| midnight + k * DAY)
            .filter(|m| self.days[weekday(*m)])
            .map(|m| m + i64::from(self.start) * 60)
            .find(|open| *open > t)
            .unwrap_or(t + 7 * DAY)
    }
}

/// What the repair gate (cooldown and circuit breaker) allows right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// A repair ended recently; the next one may start after this long.
    Cooldown(Duration),
    /// `count` repairs started in the last 24 h, the maximum; the oldest ages out after this long.
    Tripped {
        remaining: Duration,
        count: u32,
    },
}

/// What the last look found, as far as deciding goes.
#[derive(Debug, Clone, Default)]
pub struct Findings {
    /// Why a repair is due (empty: nothing is due).
    pub reasons: Vec<String>,
    /// A renewable certificate has expired (or is not yet valid), or the logs show the
    /// certificate failure: waiting for a window would leave Rancher broken.
    pub urgent: bool,
    /// Earliest `not_after` of a renewable certificate.
    pub earliest_expiry: Option<i64>,
    /// When the next renewable certificate enters the renewal window.
    pub renew_at: Option<i64>,
    /// The container is stopped (exited, created, paused, dead) with no certificate failure in
    /// its logs: someone stopped it on purpose; `watch` does not start it.
    pub stopped: Option<String>,
    /// An interrupted repair left work, or another run acts on the container.
    pub pending: Option<Pending>,
    /// The clocks disagree (see `diagnose::clock`): nothing may be changed.
    pub clock: Option<String>,
}

/// What an earlier run left, as far as deciding goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    /// A repair was interrupted (its journal, or the lease of a run that died): finish it.
    /// With the container stopped, now — whatever the window, cooldown or breaker say; with it
    /// running (only the verification is left), at once too, but within the circuit breaker, so
    /// a verification that keeps failing cannot restart Rancher without end.
    Finish { why: String, stopped: bool },
    /// Another run acts on the container right now: look again later.
    Busy(String),
    /// A journal that is not acted upon: a person must look.
    Refused(String),
}

/// How soon to look again at a container another run acts on.
pub const BUSY_RECHECK: Duration = Duration::from_secs(30);

/// The settings that shape the decision.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub monitor_only: bool,
    pub window: Option<Window>,
    /// How long a repair may take: an expiry within this much of the window's opening cannot
    /// wait for it.
    pub repair_budget: Duration,
}

/// The decision after a look at a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing due; the next certificate enters its window after `renew_in` (`None`: no
    /// renewable certificate at all).
    Healthy { renew_in: Option<Duration> },
    /// Repair now.
    Repair { why: String },
    /// Due, but not now (maintenance window, cooldown, circuit breaker): look again after `after`.
    Wait { after: Duration, why: String },
    /// Due, and `--monitor-only`: report, change nothing.
    Report { why: String },
    /// Due, but the container was stopped on purpose: leave it alone.
    Leave { why: String },
}

fn secs_until(now: i64, t: i64) -> Duration {
    Duration::from_secs(t.saturating_sub(now).max(0) as u64)
}

fn human(d: Duration) -> String {
    timefmt::residual(d.as_secs() as i64)
}

/// The reasons in one line: the first two, then how many more.
pub fn summarize(reasons: &[String]) -> String {
    match reasons.len() {
        0..=2 => reasons.join("; "),
        n => format!("{}; {}; and {} more", reasons[0], reasons[1], n - 2),
    }
}

/// Decide what to do about a target at wall-clock `now`.
pub fn decide(now: i64, f: &Findings, policy: &Policy, gate: Gate) -> Decision {
    match &f.pending {
        Some(Pending::Finish { why, .. }) if policy.monitor_only => {
            return Decision::Report {
                why: format!(
                    "{why}; --monitor-only: nothing is changed (run `repair` to finish it)"
                ),
            }
        }
        Some(Pending::Finish { why, stopped: true }) => {
            return Decision::Repair { why: why.clone() }
        }
        Some(Pending::Finish {
            why,
            stopped: false,
        }) => {
            return match gate {
                Gate::Open | Gate::Cooldown(_) => Decision::Repair { why: why.clone() },
                Gate::Tripped { remaining, .. } => Decision::Wait {
                    after: remaining,
                    why: format!(
                        "{why}; the container runs, so within the circuit breaker: in {}",
                        human(remaining)
                    ),
                },
            };
        }
        Some(Pending::Busy(who)) => {
            return Decision::Wait {
                after: BUSY_RECHECK,
                why: format!("{who}; looking again in {}", human(BUSY_RECHECK)),
            }
        }
        Some(Pending::Refused(why)) => return Decision::Report { why: why.clone() },
        None => {}
    }
    if let (Some(clock), false) = (&f.clock, f.reasons.is_empty()) {
        return Decision::Report {
            why: format!(
                "due ({}) but the clock looks wrong: {clock}; nothing is changed",
                summarize(&f.reasons)
            ),
        };
    }
    if f.reasons.is_empty() {
        return Decision::Healthy {
            renew_in: f.renew_at.map(|t| secs_until(now, t)),
        };
    }
    let reasons = summarize(&f.reasons);
    if let Some(state) = &f.stopped {
        return Decision::Leave {
            why: format!("due ({reasons}) but the container is {state}: a stopped container is left alone (start it, or run `repair`)"),
        };
    }
    if policy.monitor_only {
        return Decision::Report {
            why: format!("due ({reasons}); --monitor-only: nothing is changed"),
        };
    }
    match gate {
        Gate::Tripped { remaining, count } => {
            return Decision::Wait {
                after: remaining,
                why: format!("due ({reasons}) but the circuit breaker is open: {count} repairs in the last 24 h; the next is allowed in {}", human(remaining)),
            }
        }
        Gate::Cooldown(remaining) => {
            return Decision::Wait {
                after: remaining,
                why: format!(
                    "due ({reasons}); cooling down after the last repair for {}",
                    human(remaining)
                ),
            }
        }
        Gate::Open => {}
    }
    if let Some(w) = &policy.window {
        if !w.contains(now) {
            let open = w.next_open(now);
            let budget = policy.repair_budget.as_secs() as i64;
            let expiry_first = f.earliest_expiry.is_some_and(|e| e <= open + budget);
            if f.urgent {
                return Decision::Repair {
                    why: format!("{reasons}; urgent, so not waiting for the window {w}"),
                };
            }
            if expiry_first {
                return Decision::Repair {
                    why: format!(
                        "{reasons}; a certificate expires at {}, before a repair in the window {w} (opens {}) could finish",
                        timefmt::rfc3339(f.earliest_expiry.unwrap_or(now)),
                        timefmt::rfc3339(open)
                    ),
                };
            }
            return Decision::Wait {
                after: secs_until(now, open),
                why: format!(
                    "due ({reasons}); waiting for the maintenance window {w}, which opens at {}",
                    timefmt::rfc3339(open)
                ),
            };
        }
    }
    Decision::Repair { why: reasons }
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
