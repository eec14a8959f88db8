//! The repair gate of one target: a cooldown after every repair and a circuit breaker that
//! allows at most N repairs in any 24 hours. Monotonic time (`tokio::time::Instant`), so a
//! wall-clock step cannot open it and tests drive it with `tokio::time::pause()`.

use std::collections::VecDeque;
use std::time::Duration;

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
