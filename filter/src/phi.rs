//! Phi-accrual failure detection (Hayashibara et al., 2004) for one host.
//!
//! Successful responses are heartbeats. The detector keeps the recent
//! intervals between them and answers: given how long it has been since
//! the last one, how unlikely is it that the host is still fine? `phi` is
//! `-log10` of that probability under a normal fit, so phi 8 means a one in
//! 10^8 chance of a false suspicion.
//!
//! Two adjustments from practice (Akka's detector): the std-dev has a floor,
//! so a perfectly regular host does not make every small jitter suspicious,
//! and an acceptable pause is added to the mean. Phi is computed from the
//! log of the normal tail directly, so it grows without bound and never
//! overflows or turns into infinity.
//!
//! A request/response host is not a heartbeat sender: an idle host sends
//! nothing and is not suspect. So the clock only runs while requests are
//! outstanding: see `elapsed_since`.

/// How many intervals the fit uses.
pub const WINDOW: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PhiSettings {
    /// Floor on the std-dev of intervals, ms.
    pub min_std_dev_ms: f64,
    /// Added to the mean interval, ms: pauses this long are normal.
    pub acceptable_pause_ms: f64,
    /// Intervals needed before phi is computed at all.
    pub min_samples: usize,
}

impl Default for PhiSettings {
    /// Tuned for "hung under load found in well under a second": a host
    /// answering every few ms crosses phi 8 about 0.6 s after it stops.
    /// Slow or heavy-tailed hosts get a longer pause from their own latency
    /// (see `PhiDetector::phi_adaptive`), not from these numbers.
    fn default() -> Self {
        PhiSettings { min_std_dev_ms: 50.0, acceptable_pause_ms: 300.0, min_samples: 20 }
    }
}

/// Heartbeat intervals of one host, in milliseconds, in a fixed ring.
#[derive(Debug, Clone, PartialEq)]
pub struct PhiDetector {
    intervals: [f64; WINDOW],
    len: usize,
    next: usize,
    last_heartbeat_ms: Option<u64>,
}

impl Default for PhiDetector {
    fn default() -> Self {
        PhiDetector { intervals: [0.0; WINDOW], len: 0, next: 0, last_heartbeat_ms: None }
    }
}

impl PhiDetector {
    /// Records a successful response at `now_ms`. `busy_since_ms` is when
    /// the host last went from no outstanding requests to some: an interval
    /// that spans idle time is measured from then, not from the previous
    /// heartbeat, so quiet periods do not inflate the mean.
    pub fn heartbeat(&mut self, now_ms: u64, busy_since_ms: Option<u64>) {
        if let Some(last) = self.last_heartbeat_ms {
            let from = busy_since_ms.map_or(last, |b| b.max(last));
            let interval = now_ms.saturating_sub(from) as f64;
            self.intervals[self.next] = interval;
            self.next = (self.next + 1) % WINDOW;
            self.len = (self.len + 1).min(WINDOW);
        }
        self.last_heartbeat_ms = Some(now_ms);
    }

    pub fn samples(&self) -> usize {
        self.len
    }

    pub fn last_heartbeat_ms(&self) -> Option<u64> {
        self.last_heartbeat_ms
    }

    fn mean_and_std(&self) -> (f64, f64) {
        let n = self.len as f64;
        let data = &self.intervals[..self.len];
        let mean = data.iter().sum::<f64>() / n;
        let var = data.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        (mean, var.sqrt())
    }

    /// Phi after `elapsed_ms` without a heartbeat. Zero until enough
    /// samples exist: a new host is given the benefit of the doubt.
    pub fn phi(&self, elapsed_ms: f64, s: &PhiSettings) -> f64 {
        self.phi_adaptive(elapsed_ms, s, 0.0)
    }

    /// Like `phi`, with the acceptable pause raised to at least
    /// `slow_call_ms` (the glue passes twice the host's recent p99.9
    /// latency): a host whose slow calls take a second is not suspect after
    /// half a second of silence, however regular its fast calls are.
    pub fn phi_adaptive(&self, elapsed_ms: f64, s: &PhiSettings, slow_call_ms: f64) -> f64 {
        if self.len < s.min_samples.max(1) {
            return 0.0;
        }
        let (mean, std) = self.mean_and_std();
        let pause = s.acceptable_pause_ms.max(slow_call_ms);
        phi(elapsed_ms, mean + pause, std.max(s.min_std_dev_ms))
    }
}

/// How long the host has owed us a response: from the later of the last
/// heartbeat and the moment it became busy, or `None` when it has nothing
/// outstanding (an idle host is never suspect).
pub fn elapsed_since(now_ms: u64, last_heartbeat_ms: Option<u64>, busy_since_ms: Option<u64>) -> Option<f64> {
    let busy = busy_since_ms?;
    let from = last_heartbeat_ms.map_or(busy, |h| h.max(busy));
    Some(now_ms.saturating_sub(from) as f64)
}

/// Whether phi is evidence of a hung host. Phi's premise is a stream of
/// heartbeats that stopped; with a single call outstanding there is no
/// stream, just one call that is slow, and a heavy-tailed but healthy host
/// produces those. So phi counts only with two or more calls outstanding
/// (a hung host under load gathers many), or once a lone call has waited
/// longer than any call may (`max_call_ms`).
pub fn suspect(phi: f64, threshold: f64, outstanding: u32, elapsed_ms: f64, max_call_ms: f64) -> bool {
    phi >= threshold && (outstanding >= 2 || elapsed_ms >= max_call_ms)
}

/// `-log10 P(X > elapsed)` for X ~ Normal(mean, std).
pub fn phi(elapsed: f64, mean: f64, std: f64) -> f64 {
    let z = (elapsed - mean) / std;
    let p = -log10_normal_tail(z);
    if p.is_finite() {
        p.max(0.0)
    } else {
        0.0
    }
}

/// `log10 P(Z > z)` for a standard normal Z, accurate to about 1e-7
/// relative and finite for every finite z.
pub fn log10_normal_tail(z: f64) -> f64 {
    if z < 0.0 {
        // P(Z > z) = 1 - P(Z > -z); no underflow risk on this side.
        let upper = 0.5 * ln_erfc(-z / std::f64::consts::SQRT_2).exp();
        return (1.0 - upper).log10();
    }
    ((0.5f64).ln() + ln_erfc(z / std::f64::consts::SQRT_2)) / std::f64::consts::LN_10
}

/// `ln erfc(x)` for x >= 0, from the Chebyshev fit in Numerical Recipes
/// (erfcc), kept in log form so large x never underflows.
fn ln_erfc(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.5 * x);
    let poly = -1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07 + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    t.ln() - x * x + poly
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn normal_tail_against_known_values() {
        // P(Z > z) from standard tables.
        let cases = [(0.0, 0.5), (1.0, 0.158_655_25), (2.0, 0.022_750_13), (3.0, 0.001_349_898), (5.0, 2.866_515_7e-7)];
        for (z, p) in cases {
            let got = 10f64.powf(log10_normal_tail(z));
            assert!(close(got / p, 1.0, 1e-6), "z={z}: got {got}, want {p}");
        }
        assert!(close(10f64.powf(log10_normal_tail(-1.0)), 1.0 - 0.158_655_25, 1e-7));
    }

    #[test]
    fn phi_by_hand() {
        // mean 100, std 10: at 100 the tail is 1/2, phi = log10(2).
        assert!(close(phi(100.0, 100.0, 10.0), 2f64.log10(), 1e-7));
        // At mean + 3 std: P = 0.001349898, phi = 2.8697.
        assert!(close(phi(130.0, 100.0, 10.0), -(0.001_349_898f64).log10(), 1e-5));
        // Far below the mean phi is ~0, never negative.
        assert!(phi(0.0, 100.0, 10.0) < 1e-6);
        assert!(phi(0.0, 100.0, 10.0) >= 0.0);
    }

    #[test]
    fn phi_never_overflows() {
        let mut last = 0.0;
        for k in [10.0, 40.0, 100.0, 1e3, 1e6, 1e12] {
            let p = phi(100.0 + k * 10.0, 100.0, 10.0);
            assert!(p.is_finite() && p > last, "k={k}: {p}");
            last = p;
        }
        // z = 40: P ~ 3.7e-350 underflows f64, phi is still ~349.4.
        assert!(close(phi(500.0, 100.0, 10.0), 349.4, 0.5));
    }

    #[test]
    fn detector_uses_floor_and_pause() {
        let s = PhiSettings { min_std_dev_ms: 100.0, acceptable_pause_ms: 0.0, min_samples: 3 };
        let mut d = PhiDetector::default();
        for t in (0..=1000).step_by(100) {
            d.heartbeat(t, None);
        }
        assert_eq!(d.samples(), 10);
        // Intervals are all 100 ms, std 0 -> floored to 100.
        assert!(close(d.phi(100.0, &s), 2f64.log10(), 1e-7));
        assert!(close(d.phi(400.0, &s), -(0.001_349_898f64).log10(), 1e-5));
        let with_pause = PhiSettings { acceptable_pause_ms: 300.0, ..s };
        assert!(close(d.phi(400.0, &with_pause), 2f64.log10(), 1e-7));
    }

    #[test]
    fn too_few_samples_means_no_suspicion() {
        let s = PhiSettings::default();
        let mut d = PhiDetector::default();
        d.heartbeat(0, None);
        d.heartbeat(10, None);
        assert_eq!(d.phi(1e9, &s), 0.0);
    }

    #[test]
    fn idle_time_is_not_an_interval_and_window_is_bounded() {
        let mut d = PhiDetector::default();
        d.heartbeat(0, None);
        // Idle for a minute, then busy at 60_000 and answered at 60_050.
        d.heartbeat(60_050, Some(60_000));
        assert_eq!(d.intervals[0], 50.0);
        for i in 0..1000u64 {
            d.heartbeat(61_000 + i * 10, None);
        }
        assert_eq!(d.samples(), WINDOW);
    }

    #[test]
    fn elapsed_only_counts_while_busy() {
        assert_eq!(elapsed_since(5000, Some(1000), None), None);
        assert_eq!(elapsed_since(5000, Some(1000), Some(4000)), Some(1000.0));
        assert_eq!(elapsed_since(5000, Some(4500), Some(4000)), Some(500.0));
        assert_eq!(elapsed_since(5000, None, Some(2000)), Some(3000.0));
    }

    #[test]
    fn a_lone_slow_call_is_not_a_hang() {
        assert!(!suspect(9.0, 8.0, 1, 600.0, 30_000.0));
        assert!(suspect(9.0, 8.0, 2, 600.0, 30_000.0));
        assert!(suspect(9.0, 8.0, 1, 30_000.0, 30_000.0));
        assert!(!suspect(7.9, 8.0, 5, 600.0, 30_000.0));
        assert!(!suspect(0.0, 8.0, 0, 0.0, 0.0) || 0.0 >= 8.0);
    }

    #[test]
    fn slow_calls_stretch_the_pause() {
        let s = PhiSettings { min_std_dev_ms: 50.0, acceptable_pause_ms: 300.0, min_samples: 3 };
        let mut d = PhiDetector::default();
        for t in (0..=1000).step_by(10) {
            d.heartbeat(t, None);
        }
        // 1 s of silence: suspicious for a host of 10 ms calls...
        assert!(d.phi(1000.0, &s) > 8.0);
        // ...not for one whose p99 is 600 ms (pause 1.2 s).
        assert!(d.phi_adaptive(1000.0, &s, 1200.0) < 1.0);
        assert_eq!(d.phi_adaptive(1000.0, &s, 0.0), d.phi(1000.0, &s));
    }

    #[test]
    fn default_settings_detect_a_hung_busy_host_within_a_second() {
        let s = PhiSettings::default();
        let mut d = PhiDetector::default();
        for i in 0..200u64 {
            d.heartbeat(i * 5, Some(0));
        }
        let t8 = (0..10_000u64).find(|ms| d.phi(*ms as f64, &s) > 8.0).unwrap();
        assert!((300..1000).contains(&t8), "crossed 8 after {t8} ms");
    }

    #[test]
    fn hung_host_is_caught_quickly_under_load() {
        // 20 ms responses, then nothing: phi passes 8 within a few hundred ms
        // with a small floor, long before any request timeout.
        let s = PhiSettings { min_std_dev_ms: 20.0, acceptable_pause_ms: 100.0, min_samples: 5 };
        let mut d = PhiDetector::default();
        for i in 0..100u64 {
            d.heartbeat(i * 20, Some(0));
        }
        let last = d.last_heartbeat_ms().unwrap();
        let t8 = (0..10_000u64).find(|ms| d.phi(*ms as f64, &s) > 8.0).unwrap();
        assert!(t8 < 400, "phi crossed 8 only after {t8} ms");
        assert!(d.phi(elapsed_since(last + 60, Some(last), Some(0)).unwrap(), &s) < 1.0);
    }
}
