//! The repair gate of one target: a cooldown after every repair and a circuit breaker that
//! allows at most N repairs in any 24 hours. Monotonic time (`tokio::time::Instant`), so a
//! wall-clock step cannot open it and tests drive it with `tokio::time::pause()`.
//!
//! It survives a restart of the sidecar (a sidecar that crash-loops must not repair without
//! limit): [`GateStore`] keeps every target's repair times beside the backups, as wall-clock
//! seconds, and a restarted sidecar takes them back. A clock that went back counts the
//! records as recent — the safe side.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::schedule::Gate;

const DAY: Duration = Duration::from_secs(86_400);

#[derive(Debug, Clone)]
pub struct RepairGate {
    /// Pause after a repair ends before the next may start: lets the container settle and
    /// keeps a failing ladder from hammering it.
    cooldown: Duration,
    /// At most this many repair starts in any 24 h: a repair that keeps "succeeding" without
    /// fixing anything must stop and call for a person.
    max_per_day: u32,
    /// Start times of the repairs of the last 24 h, oldest first.
    starts: VecDeque<Instant>,
    /// End of the last repair, for the cooldown.
    last_end: Option<Instant>,
}

impl RepairGate {
    pub fn new(cooldown: Duration, max_per_day: u32) -> Self {
        Self {
            cooldown,
            max_per_day,
            starts: VecDeque::new(),
            last_end: None,
        }
    }

    fn expire(&mut self, now: Instant) {
        while self
            .starts
            .front()
            .is_some_and(|s| now.saturating_duration_since(*s) >= DAY)
        {
            self.starts.pop_front();
        }
    }

    /// What the gate allows at `now`.
    pub fn verdict(&mut self, now: Instant) -> Gate {
        self.expire(now);
        let count = self.starts.len() as u32;
        if count >= self.max_per_day {
            let oldest = self.starts.front().copied().unwrap_or(now);
            return Gate::Tripped {
                remaining: (oldest + DAY).saturating_duration_since(now),
                count,
            };
        }
        if let Some(end) = self.last_end {
            let open_at = end + self.cooldown;
            if now < open_at {
                return Gate::Cooldown(open_at - now);
            }
        }
        Gate::Open
    }

    pub fn record_start(&mut self, now: Instant) {
        self.expire(now);
        self.starts.push_back(now);
    }

    pub fn record_end(&mut self, now: Instant) {
        self.last_end = Some(now);
    }

    /// Repairs started in the last 24 h.
    pub fn recent(&mut self, now: Instant) -> u32 {
        self.expire(now);
        self.starts.len() as u32
    }

    /// When the cooldown ends, if it is running.
    pub fn cooldown_until(&self, now: Instant) -> Option<Instant> {
        self.last_end
            .map(|e| e + self.cooldown)
            .filter(|open| *open > now)
    }

    /// The gate as wall-clock seconds, `now` being both `now_i` and `now_wall`.
    pub fn to_record(&self, now_i: Instant, now_wall: i64) -> GateRecord {
        let wall = |i: Instant| now_wall - now_i.saturating_duration_since(i).as_secs() as i64;
        GateRecord {
            starts: self.starts.iter().map(|i| wall(*i)).collect(),
            last_end: self.last_end.map(wall),
        }
    }

    /// A gate from its record. Records in the future (the clock went back) count as now.
    pub fn from_record(
        cooldown: Duration,
        max_per_day: u32,
        r: &GateRecord,
        now_i: Instant,
        now_wall: i64,
    ) -> Self {
        let inst = |w: i64| {
            let ago = Duration::from_secs(now_wall.saturating_sub(w).max(0) as u64);
            now_i.checked_sub(ago.min(DAY)).unwrap_or(now_i)
        };
        let mut starts: Vec<Instant> = r
            .starts
            .iter()
            .filter(|w| now_wall - **w < DAY.as_secs() as i64)
            .map(|w| inst(*w))
            .collect();
        starts.sort();
        let mut g = Self::new(cooldown, max_per_day);
        g.starts = starts.into();
        g.last_end = r.last_end.map(inst);
        g
    }
}

/// One target's gate on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateRecord {
    /// Wall-clock seconds of the repair starts of the last 24 h.
    pub starts: Vec<i64>,
    pub last_end: Option<i64>,
}

/// Every target's gate, in `<backup-dir>/rancher-cert-guard.gates.json`.
#[derive(Debug, Clone)]
pub struct GateStore {
    path: PathBuf,
}

impl GateStore {
    pub const FILE: &'static str = "rancher-cert-guard.gates.json";

    pub fn new(dir: &Path) -> Self {
        Self {
            path: dir.join(Self::FILE),
        }
    }

    pub fn load(&self) -> BTreeMap<String, GateRecord> {
        crate::repair::backup::read_private(&self.path, 1 << 20)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Record one target's gate (the others are kept as they are).
    pub fn save(&self, target: &str, r: &GateRecord) {
        let mut all = self.load();
        if r.starts.is_empty() && r.last_end.is_none() {
            all.remove(target);
        } else {
            all.insert(target.to_string(), r.clone());
        }
        let Some(dir) = self.path.parent() else {
            return;
        };
        let written = serde_json::to_vec_pretty(&all)
            .map_err(std::io::Error::other)
            .and_then(|b| crate::repair::backup::write_private_atomic(dir, Self::FILE, &b));
        if let Err(e) = written {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot record the repair gate; it will not survive a restart");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::advance;

    const MIN: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn cooldown_after_each_repair() {
        let mut g = RepairGate::new(10 * MIN, 3);
        assert_eq!(g.verdict(Instant::now()), Gate::Open);
        g.record_start(Instant::now());
        advance(5 * MIN).await;
        g.record_end(Instant::now());
        advance(4 * MIN).await;
        assert_eq!(g.verdict(Instant::now()), Gate::Cooldown(6 * MIN));
        advance(6 * MIN).await;
        assert_eq!(g.verdict(Instant::now()), Gate::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn breaker_opens_after_max_per_day_and_closes_as_they_age_out() {
        let mut g = RepairGate::new(MIN, 3);
        for _ in 0..3 {
            assert_eq!(g.verdict(Instant::now()), Gate::Open);
            g.record_start(Instant::now());
            advance(MIN).await;
            g.record_end(Instant::now());
            advance(2 * 3600 * MIN / 60).await; // 2 h apart
        }
        // Starts at 0 h, 2 h 1 min, 4 h 2 min; now 6 h 3 min.
        assert_eq!(g.recent(Instant::now()), 3);
        match g.verdict(Instant::now()) {
            Gate::Tripped { remaining, count } => {
                assert_eq!(count, 3);
                assert_eq!(remaining, DAY - (6 * 60 + 3) * MIN);
            }
            other => panic!("{other:?}"),
        }
        advance(DAY - (6 * 60 + 3) * MIN - Duration::from_secs(1)).await;
        assert!(matches!(g.verdict(Instant::now()), Gate::Tripped { .. }));
        advance(Duration::from_secs(1)).await;
        assert_eq!(g.verdict(Instant::now()), Gate::Open);
        assert_eq!(g.recent(Instant::now()), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_gate_survives_a_restart_through_its_record() {
        let wall = 1_700_000_000;
        let mut g = RepairGate::new(10 * MIN, 2);
        g.record_start(Instant::now());
        advance(5 * MIN).await;
        g.record_end(Instant::now());
        advance(MIN).await;
        g.record_start(Instant::now());
        let rec = g.to_record(Instant::now(), wall);
        assert_eq!(rec.starts, vec![wall - 6 * 60, wall]);
        assert_eq!(rec.last_end, Some(wall - 60));
        let d = tempfile::tempdir().unwrap();
        let store = GateStore::new(d.path());
        store.save("rancher", &rec);
        // A new process, a minute later (its monotonic clock starts anew).
        advance(MIN).await;
        let back = store.load();
        let mut g2 =
            RepairGate::from_record(10 * MIN, 2, &back["rancher"], Instant::now(), wall + 60);
        assert_eq!(g2.recent(Instant::now()), 2);
        assert!(matches!(
            g2.verdict(Instant::now()),
            Gate::Tripped { count: 2, .. }
        ));
        // Records from a clock that has since gone back count as now; older than a day, gone.
        let future = GateRecord {
            starts: vec![wall + 3600],
            last_end: None,
        };
        let mut g3 = RepairGate::from_record(MIN, 1, &future, Instant::now(), wall);
        assert!(matches!(g3.verdict(Instant::now()), Gate::Tripped { .. }));
        let old = GateRecord {
            starts: vec![wall - 2 * 86_400],
            last_end: Some(wall - 2 * 86_400),
        };
        let mut g4 = RepairGate::from_record(MIN, 1, &old, Instant::now(), wall);
        assert_eq!(g4.verdict(Instant::now()), Gate::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn breaker_wins_over_cooldown() {
        let mut g = RepairGate::new(10 * MIN, 1);
        g.record_start(Instant::now());
        g.record_end(Instant::now());
        assert!(matches!(
            g.verdict(Instant::now()),
            Gate::Tripped { count: 1, .. }
        ));
    }
}
