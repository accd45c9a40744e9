//! Latency per host: a log-linear histogram with bounded memory, and the
//! adaptive "slow" threshold derived from it.
//!
//! Buckets: values below 32 µs are exact; above, each power of two is split
//! into 32 equal sub-buckets, so any reported percentile is within 1/32
//! (about 3%) of a value actually seen. Two histograms rotate (current and
//! previous period) so percentiles follow the recent past without a
//! per-sample timestamp.

const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Up to 2^36 µs (about 19 hours); larger values land in the last bucket.
const MAX_EXP: u32 = 36;
pub const BUCKETS: usize = SUB + (MAX_EXP - SUB_BITS) as usize * SUB;

fn bucket_of(us: u64) -> usize {
    if us < SUB as u64 {
        return us as usize;
    }
    let exp = 63 - us.leading_zeros(); // >= SUB_BITS
    if exp >= MAX_EXP {
        return BUCKETS - 1;
    }
    let sub = ((us >> (exp - SUB_BITS)) as usize) & (SUB - 1);
    SUB + (exp - SUB_BITS) as usize * SUB + sub
}

/// The largest value a bucket holds (what percentiles report).
fn bucket_high(idx: usize) -> u64 {
    if idx < SUB {
        return idx as u64;
    }
    let exp = (idx - SUB) / SUB + SUB_BITS as usize;
    let sub = ((idx - SUB) % SUB) as u64;
    let low = (1u64 << exp) + (sub << (exp - SUB_BITS as usize));
    low + (1u64 << (exp - SUB_BITS as usize)) - 1
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: Vec<u32>,
    total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: vec![0; BUCKETS], total: 0 }
    }
}

impl Histogram {
    pub fn record(&mut self, us: u64) {
        let b = bucket_of(us);
        self.counts[b] = self.counts[b].saturating_add(1);
        self.total += 1;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn clear(&mut self) {
        self.counts.iter_mut().for_each(|c| *c = 0);
        self.total = 0;
    }
}

/// Percentile over several histograms, in µs; `None` if they are empty.
pub fn percentile(hists: &[&Histogram], q: f64) -> Option<u64> {
    let total: u64 = hists.iter().map(|h| h.total).sum();
    if total == 0 {
        return None;
    }
    let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
    let mut seen = 0u64;
    for idx in 0..BUCKETS {
        seen += hists.iter().map(|h| u64::from(h.counts[idx])).sum::<u64>();
        if seen >= rank {
            return Some(bucket_high(idx));
        }
    }
    Some(bucket_high(BUCKETS - 1))
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencySettings {
    /// `threshold = p95 + k * (p99 - p95)`.
    pub k: f64,
    /// Bounds on the threshold, ms.
    pub min_ms: u64,
    pub max_ms: u64,
    /// Samples needed before the adaptive threshold is used (until then: max).
    pub min_samples: u64,
    /// Length of one histogram period, ms.
    pub period_ms: u64,
}

impl Default for LatencySettings {
    fn default() -> Self {
        LatencySettings { k: 1.5, min_ms: 100, max_ms: 30_000, min_samples: 50, period_ms: 30_000 }
    }
}

/// Two rotating histograms and the threshold they give.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LatencyTracker {
    current: Histogram,
    previous: Histogram,
    period_start_ms: u64,
}

impl LatencyTracker {
    pub fn record(&mut self, now_ms: u64, us: u64, s: &LatencySettings) {
        if now_ms.saturating_sub(self.period_start_ms) >= s.period_ms {
            std::mem::swap(&mut self.current, &mut self.previous);
            self.current.clear();
            self.period_start_ms = now_ms;
        }
        self.current.record(us);
    }

    pub fn percentile(&self, q: f64) -> Option<u64> {
        percentile(&[&self.current, &self.previous], q)
    }

    pub fn samples(&self) -> u64 {
        self.current.count() + self.previous.count()
    }

    /// Calls slower than this (µs) count as slow.
    pub fn threshold_us(&self, s: &LatencySettings) -> u64 {
        let (min, max) = (s.min_ms.saturating_mul(1000), s.max_ms.saturating_mul(1000).max(s.min_ms * 1000));
        if self.samples() < s.min_samples {
            return max;
        }
        match (self.percentile(0.95), self.percentile(0.99)) {
            (Some(p95), Some(p99)) => {
                let t = p95 as f64 + s.k * p99.saturating_sub(p95) as f64;
                (t as u64).clamp(min, max)
            }
            _ => max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_values_with_bounded_error() {
        for v in [0u64, 1, 31, 32, 33, 63, 64, 100, 1000, 12_345, 1_000_000, 123_456_789, (1 << 36) - 1] {
            let b = bucket_of(v);
            let high = bucket_high(b);
            assert!(high >= v, "v={v} high={high}");
            assert!((high - v) as f64 <= v as f64 / 32.0 + 1.0, "v={v} high={high}");
            if b > 0 {
                assert!(bucket_high(b - 1) < v, "v={v} belongs above bucket {}", b - 1);
            }
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_are_accurate_within_bucket_width() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v * 100); // 100 µs .. 1 s uniform
        }
        for (q, exact) in [(0.5, 500_000.0), (0.95, 950_000.0), (0.99, 990_000.0)] {
            let got = percentile(&[&h], q).unwrap() as f64;
            assert!((got - exact).abs() / exact < 1.0 / 32.0 + 1e-3, "q={q}: {got} vs {exact}");
        }
        assert_eq!(percentile(&[&Histogram::default()], 0.5), None);
    }

    #[test]
    fn threshold_is_adaptive_and_bounded() {
        let s = LatencySettings { k: 2.0, min_ms: 10, max_ms: 1000, min_samples: 10, period_ms: 1000 };
        let mut t = LatencyTracker::default();
        assert_eq!(t.threshold_us(&s), 1_000_000, "no data: the max");
        // 95% at 20 ms, 5% at 40 ms: p95 = 20, p99 = 40 -> 20 + 2*20 = 60 ms.
        for i in 0..100u64 {
            t.record(0, if i < 95 { 20_000 } else { 40_000 }, &s);
        }
        let th = t.threshold_us(&s);
        assert!((59_000..=63_000).contains(&th), "{th}");
        // Very fast hosts are floored; pathological ones capped.
        let mut fast = LatencyTracker::default();
        for _ in 0..100 {
            fast.record(0, 100, &s);
        }
        assert_eq!(fast.threshold_us(&s), 10_000);
        let mut slow = LatencyTracker::default();
        for _ in 0..100 {
            slow.record(0, 5_000_000, &s);
        }
        assert_eq!(slow.threshold_us(&s), 1_000_000);
    }

    #[test]
    fn old_periods_are_forgotten() {
        let s = LatencySettings { period_ms: 1000, min_samples: 1, ..Default::default() };
        let mut t = LatencyTracker::default();
        for _ in 0..100 {
            t.record(0, 1_000_000, &s);
        }
        t.record(1000, 10_000, &s); // rotates: old data is now "previous"
        assert_eq!(t.samples(), 101);
        t.record(2000, 10_000, &s); // rotates again: the 1 s samples are gone
        assert_eq!(t.samples(), 2);
        assert!(t.percentile(0.99).unwrap() < 11_000);
    }
}
