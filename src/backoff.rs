//! Retry delays, one rule for every retry of the program: the first delay, doubled after each
//! further failure, capped.

use std::time::Duration;

/// The delay before retry number `attempt` (1 for the first): `first`, `2 × first`, `4 × first`
/// … never more than `max`.
pub fn doubling(first: Duration, attempt: u32, max: Duration) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(16);
    first.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_first_and_caps() {
        let s = Duration::from_secs;
        let got: Vec<u64> = (1..=8)
            .map(|a| doubling(s(5), a, s(300)).as_secs())
            .collect();
        assert_eq!(got, vec![5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(doubling(s(1), 0, s(32)), s(1));
        assert_eq!(doubling(s(1), u32::MAX, s(32)), s(32));
    }
}
