//! When to probe an endpoint next. Pure, with the random source passed in.
//!
//! - The base is the service's `interval`, or its longer `idle_interval`
//!   when no filter has reported traffic for the endpoint: idle endpoints
//!   cost less, and the filters watch busy ones passively anyway.
//! - An endpoint that keeps failing after it was taken out is probed less
//!   and less often (doubling per failure, capped at `backoff_max`): a
//!   fleet with many dead entries must not spend its probe budget on them.
//! - Every delay is spread by up to ±`jitter`, so endpoints added together
//!   do not probe in lockstep.

use std::time::Duration;

use crate::config::HealthTiming;

/// A small xorshift generator: deterministic per seed, so tests (and
/// replays) see the same delays.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The delay before the next probe, before jitter.
pub fn base_delay(t: &HealthTiming, consecutive_failures: u32, idle: bool) -> Duration {
    let base = if idle { t.idle_interval } else { t.interval };
    // Backoff starts once the endpoint is out (after `fall` failures), so
    // detection is never slowed down, only the re-checks of dead ones.
    let extra = consecutive_failures.saturating_sub(t.fall).min(20);
    if extra == 0 {
        return base;
    }
    let backed = t.interval.saturating_mul(1u32 << extra);
    base.max(backed.min(t.backoff_max))
}

/// Spreads `d` uniformly over `d ± d * jitter_permille / 1000`.
pub fn jittered(d: Duration, jitter_permille: u32, rng: &mut Rng) -> Duration {
    let j = f64::from(jitter_permille.min(1000)) / 1000.0;
    let factor = 1.0 + j * (2.0 * rng.next_f64() - 1.0);
    d.mul_f64(factor.max(0.0))
}

pub fn next_delay(t: &HealthTiming, consecutive_failures: u32, idle: bool, rng: &mut Rng) -> Duration {
    jittered(base_delay(t, consecutive_failures, idle), t.jitter_permille, rng)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing() -> HealthTiming {
        HealthTiming {
            interval: Duration::from_secs(1),
            idle_interval: Duration::from_secs(10),
            backoff_max: Duration::from_secs(30),
            fall: 3,
            jitter_permille: 100,
            ..HealthTiming::default()
        }
    }

    #[test]
    fn backoff_starts_after_fall_doubles_and_is_capped() {
        let t = timing();
        let secs: Vec<u64> = (0..12).map(|f| base_delay(&t, f, false).as_secs()).collect();
        assert_eq!(secs, [1, 1, 1, 1, 2, 4, 8, 16, 30, 30, 30, 30]);
        assert_eq!(base_delay(&t, u32::MAX, false), Duration::from_secs(30), "no overflow");
    }

    #[test]
    fn idle_endpoints_use_the_idle_interval_and_back_off_from_it() {
        let t = timing();
        assert_eq!(base_delay(&t, 0, true), Duration::from_secs(10));
        assert_eq!(base_delay(&t, 5, true), Duration::from_secs(10), "backoff below the idle interval changes nothing");
        assert_eq!(base_delay(&t, 8, true), Duration::from_secs(30));
    }

    #[test]
    fn jitter_stays_in_bounds_and_spreads() {
        let mut rng = Rng::new(7);
        let d = Duration::from_millis(1000);
        let samples: Vec<Duration> = (0..10_000).map(|_| jittered(d, 100, &mut rng)).collect();
        let (min, max) = (samples.iter().min().copied().unwrap_or_default(), samples.iter().max().copied().unwrap_or_default());
        assert!(min >= Duration::from_millis(900) && max <= Duration::from_millis(1100), "{min:?}..{max:?}");
        assert!(min < Duration::from_millis(910) && max > Duration::from_millis(1090), "spread too narrow: {min:?}..{max:?}");
        let mean = samples.iter().map(Duration::as_secs_f64).sum::<f64>() / samples.len() as f64;
        assert!((mean - 1.0).abs() < 0.01, "mean {mean}");
    }

    #[test]
    fn jitter_is_deterministic_per_seed_and_zero_jitter_is_exact() {
        let t = timing();
        let a: Vec<Duration> = { let mut r = Rng::new(42); (0..5).map(|_| next_delay(&t, 0, false, &mut r)).collect() };
        let b: Vec<Duration> = { let mut r = Rng::new(42); (0..5).map(|_| next_delay(&t, 0, false, &mut r)).collect() };
        assert_eq!(a, b);
        let mut r = Rng::new(1);
        assert_eq!(jittered(Duration::from_millis(200), 0, &mut r), Duration::from_millis(200));
    }
}
