//! Fault switches of the test MCP backend, set at start or at run time over
//! its control port. Everything later tests need to make a backend
//! misbehave the way real ones do.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the backend misbehaves. `Ok` is a healthy backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Ok,
    /// Close the listening socket and every open connection: connection refused.
    Refuse,
    /// Accept requests and never answer them.
    Hang,
    /// Answer with this HTTP status and a JSON-RPC error body.
    HttpStatus { status: u16 },
    /// Answer HTTP 200 with a JSON-RPC error of this code.
    JsonrpcError { code: i64 },
}

/// Extra latency before answering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Latency {
    #[default]
    None,
    Fixed { ms: u64 },
    /// Pareto with scale `min_ms` and shape `alpha` (heavy-tailed: most
    /// calls near `min_ms`, a few very slow), capped at `max_ms`.
    Pareto { min_ms: u64, alpha: f64, max_ms: u64 },
}

/// (`mode` is flattened in, which serde cannot combine with
/// `deny_unknown_fields`; unknown keys are ignored.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Fault {
    #[serde(flatten)]
    pub mode: Mode,
    #[serde(default)]
    pub latency: Latency,
    /// Fraction of requests the mode applies to (latency applies to all).
    #[serde(default = "one")]
    pub rate: f64,
}

fn one() -> f64 {
    1.0
}

/// A small xorshift generator: deterministic per seed, no dependency.
#[derive(Debug)]
pub struct Rng(AtomicU64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(AtomicU64::new(seed | 1))
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&self) -> f64 {
        let mut x = self.0.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0.store(x, Ordering::Relaxed);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl Latency {
    pub fn sample(&self, rng: &Rng) -> Duration {
        match self {
            Latency::None => Duration::ZERO,
            Latency::Fixed { ms } => Duration::from_millis(*ms),
            Latency::Pareto { min_ms, alpha, max_ms } => {
                let u = 1.0 - rng.next_f64(); // (0, 1]
                let v = (*min_ms as f64) / u.powf(1.0 / alpha.max(0.01));
                Duration::from_secs_f64(v.min(*max_ms as f64) / 1000.0)
            }
        }
    }
}

impl Fault {
    /// Whether the mode hits this request.
    pub fn applies(&self, rng: &Rng) -> bool {
        self.mode != Mode::Ok && (self.rate >= 1.0 || rng.next_f64() < self.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_modes() {
        let f: Fault = serde_json::from_str(r#"{"mode":"http_status","status":503}"#).unwrap();
        assert_eq!(f.mode, Mode::HttpStatus { status: 503 });
        assert_eq!(f.rate, 1.0);
        let f: Fault = serde_json::from_str(r#"{"mode":"ok","latency":{"kind":"pareto","min_ms":5,"alpha":1.5,"max_ms":2000}}"#).unwrap();
        assert!(matches!(f.latency, Latency::Pareto { .. }));
        assert!(serde_json::from_str::<Fault>(r#"{"mode":"explode"}"#).is_err());
    }

    #[test]
    fn pareto_is_heavy_tailed_and_capped() {
        let rng = Rng::new(42);
        let l = Latency::Pareto { min_ms: 10, alpha: 1.2, max_ms: 5000 };
        let mut v: Vec<Duration> = (0..10_000).map(|_| l.sample(&rng)).collect();
        v.sort();
        assert!(v[0] >= Duration::from_millis(10));
        assert!(v[5000] < Duration::from_millis(25), "median {:?}", v[5000]);
        assert!(v[9990] > Duration::from_millis(500), "p99.9 {:?}", v[9990]);
        assert!(*v.last().unwrap() <= Duration::from_millis(5000));
    }
}
