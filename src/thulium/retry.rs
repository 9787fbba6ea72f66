//! Retry timing: capped exponential backoff with full jitter.
//!
//! Full jitter (a uniform delay between zero and the exponential ceiling) spreads the
//! retries of many mails that failed together, so a recovering API is not hit in waves.

use rand::Rng;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    /// The ceiling of the first retry's delay; doubled per further attempt.
    pub base: Duration,
    /// No delay is longer than this, not even one a `Retry-After` asks for.
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(300))
    }
}

impl Backoff {
    pub(crate) const fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff { base, cap }
    }

    /// The longest delay after `attempt` failed attempts (1 = the first try failed).
    pub(crate) fn ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.base
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.cap)
            .min(self.cap)
    }

    /// The delay before the next try, honouring the server's `Retry-After` (capped).
    pub(crate) fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        self.delay_with(attempt, retry_after, &mut rand::rng())
    }

    /// [`Backoff::delay`] with the random source given (seeded in tests).
    pub(crate) fn delay_with<R: Rng + ?Sized>(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        rng: &mut R,
    ) -> Duration {
        let ceiling = u64::try_from(self.ceiling(attempt).as_nanos()).unwrap_or(u64::MAX);
        let jittered = Duration::from_nanos(rng.random_range(0..=ceiling));
        jittered
            .max(retry_after.unwrap_or(Duration::ZERO))
            .min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const B: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));

    #[test]
    fn the_ceiling_doubles_per_attempt_up_to_the_cap() {
        let ms = |a| B.ceiling(a).as_millis();
        assert_eq!(
            [ms(0), ms(1), ms(2), ms(3), ms(4)],
            [500, 500, 1000, 2000, 4000]
        );
        assert_eq!(ms(8), 60_000);
        assert_eq!(ms(u32::MAX), 60_000);
        let huge = Backoff::new(Duration::from_secs(u64::MAX / 2), Duration::MAX);
        assert_eq!(huge.ceiling(40), Duration::MAX);
    }

    #[test]
    fn delays_are_jittered_within_the_ceiling() {
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in 1..=12 {
            let delays: Vec<Duration> = (0..200)
                .map(|_| B.delay_with(attempt, None, &mut rng))
                .collect();
            assert!(
                delays.iter().all(|d| *d <= B.ceiling(attempt)),
                "attempt {attempt}"
            );
            let distinct: std::collections::HashSet<_> = delays.iter().collect();
            assert!(
                distinct.len() > 150,
                "attempt {attempt}: jitter should spread the delays"
            );
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_delays() {
        let run = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (1..10)
                .map(|a| B.delay_with(a, None, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    #[test]
    fn retry_after_is_a_floor_but_the_cap_still_holds() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..100 {
            let d = B.delay_with(1, Some(Duration::from_secs(3)), &mut rng);
            assert_eq!(
                d,
                Duration::from_secs(3),
                "ceiling 0.5 s is below Retry-After: 3"
            );
            let d = B.delay_with(20, Some(Duration::from_secs(3)), &mut rng);
            assert!(d >= Duration::from_secs(3) && d <= B.cap);
            assert_eq!(
                B.delay_with(1, Some(Duration::from_secs(3600)), &mut rng),
                B.cap
            );
        }
    }

    #[test]
    fn a_zero_base_never_waits() {
        let b = Backoff::new(Duration::ZERO, Duration::from_secs(1));
        assert_eq!(b.delay(5, None), Duration::ZERO);
    }
}
