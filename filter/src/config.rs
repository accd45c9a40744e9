//! The filter's configuration: JSON in the Wasm plugin configuration, every
//! field optional with a default, unknown keys and bad values refused with
//! a message that names the field (Envoy then NACKs the config and keeps
//! the previous one).

use serde::Deserialize;

use crate::breaker::BreakerSettings;
use crate::latency::LatencySettings;
use crate::phi::PhiSettings;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerJson {
    pub consecutive_failures: u32,
    pub failure_rate: f64,
    pub slow_call_rate: f64,
    pub min_calls: u32,
    pub open_base_ms: u64,
    pub open_max_ms: u64,
    pub half_open_probes: u32,
    pub successes_to_close: u32,
}

impl Default for BreakerJson {
    fn default() -> Self {
        let d = BreakerSettings::default();
        BreakerJson {
            consecutive_failures: d.consecutive_failures,
            failure_rate: d.failure_rate,
            slow_call_rate: d.slow_call_rate,
            min_calls: d.min_calls,
            open_base_ms: d.open_base_ms,
            open_max_ms: d.open_max_ms,
            half_open_probes: d.half_open_probes,
            successes_to_close: d.successes_to_close,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PhiJson {
    pub threshold: f64,
    pub min_std_dev_ms: f64,
    pub acceptable_pause_ms: f64,
    pub min_samples: usize,
}

impl Default for PhiJson {
    fn default() -> Self {
        let d = PhiSettings::default();
        PhiJson { threshold: BreakerSettings::default().phi_threshold, min_std_dev_ms: d.min_std_dev_ms, acceptable_pause_ms: d.acceptable_pause_ms, min_samples: d.min_samples }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LatencyJson {
    pub k: f64,
    pub min_ms: u64,
    pub max_ms: u64,
    pub min_samples: u64,
    pub period_ms: u64,
}

impl Default for LatencyJson {
    fn default() -> Self {
        let d = LatencySettings::default();
        LatencyJson { k: d.k, min_ms: d.min_ms, max_ms: d.max_ms, min_samples: d.min_samples, period_ms: d.period_ms }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigJson {
    pub breaker: BreakerJson,
    pub phi: PhiJson,
    pub latency: LatencyJson,
    /// Outcomes kept per host for the failure and slow-call rates.
    pub window: u32,
    /// Hosts tracked per worker; the least recently seen is forgotten first.
    pub max_hosts: u32,
    /// How much of a JSON response is read looking for a JSON-RPC error.
    pub inspect_body_bytes: u32,
}

impl Default for ConfigJson {
    fn default() -> Self {
        ConfigJson { breaker: BreakerJson::default(), phi: PhiJson::default(), latency: LatencyJson::default(), window: 100, max_hosts: 1024, inspect_body_bytes: 8192 }
    }
}

/// Validated settings, ready for the algorithms.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub breaker: BreakerSettings,
    pub phi: PhiSettings,
    pub latency: LatencySettings,
    pub window: u32,
    pub max_hosts: u32,
    pub inspect_body_bytes: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config::from_json(b"").unwrap_or_else(|_| unreachable_default())
    }
}

fn unreachable_default() -> Config {
    // The defaults validate (tested); this keeps `Default` panic-free anyway.
    Config {
        breaker: BreakerSettings::default(),
        phi: PhiSettings::default(),
        latency: LatencySettings::default(),
        window: 100,
        max_hosts: 1024,
        inspect_body_bytes: 8192,
    }
}

fn check(errors: &mut Vec<String>, ok: bool, msg: impl FnOnce() -> String) {
    if !ok {
        errors.push(msg());
    }
}

impl Config {
    /// Parses and validates; empty input means all defaults. The error
    /// lists every problem, each naming its field.
    pub fn from_json(bytes: &[u8]) -> Result<Config, String> {
        let raw: ConfigJson = if bytes.iter().all(u8::is_ascii_whitespace) {
            ConfigJson::default()
        } else {
            serde_json::from_slice(bytes).map_err(|e| format!("filter configuration: {e}"))?
        };
        let mut e = Vec::new();
        let b = &raw.breaker;
        check(&mut e, b.consecutive_failures >= 1, || "breaker.consecutive_failures must be at least 1".into());
        check(&mut e, b.failure_rate > 0.0 && b.failure_rate <= 1.0, || format!("breaker.failure_rate must be in (0, 1], got {}", b.failure_rate));
        check(&mut e, b.slow_call_rate > 0.0 && b.slow_call_rate <= 1.0, || format!("breaker.slow_call_rate must be in (0, 1], got {}", b.slow_call_rate));
        check(&mut e, b.open_base_ms >= 1, || "breaker.open_base_ms must be at least 1".into());
        check(&mut e, b.open_max_ms >= b.open_base_ms, || format!("breaker.open_max_ms ({}) is below breaker.open_base_ms ({})", b.open_max_ms, b.open_base_ms));
        check(&mut e, b.half_open_probes >= 1, || "breaker.half_open_probes must be at least 1".into());
        check(&mut e, b.successes_to_close >= 1 && b.successes_to_close <= b.half_open_probes, || {
            format!("breaker.successes_to_close ({}) must be between 1 and breaker.half_open_probes ({})", b.successes_to_close, b.half_open_probes)
        });
        let p = &raw.phi;
        check(&mut e, p.threshold > 0.0 && p.threshold.is_finite(), || format!("phi.threshold must be positive, got {}", p.threshold));
        check(&mut e, p.min_std_dev_ms > 0.0 && p.min_std_dev_ms.is_finite(), || format!("phi.min_std_dev_ms must be positive, got {}", p.min_std_dev_ms));
        check(&mut e, p.acceptable_pause_ms >= 0.0 && p.acceptable_pause_ms.is_finite(), || format!("phi.acceptable_pause_ms must not be negative, got {}", p.acceptable_pause_ms));
        let l = &raw.latency;
        check(&mut e, l.k >= 0.0 && l.k.is_finite(), || format!("latency.k must not be negative, got {}", l.k));
        check(&mut e, l.max_ms >= l.min_ms, || format!("latency.max_ms ({}) is below latency.min_ms ({})", l.max_ms, l.min_ms));
        check(&mut e, l.period_ms >= 1, || "latency.period_ms must be at least 1".into());
        check(&mut e, (1..=10_000).contains(&raw.window), || format!("window must be 1 to 10000, got {}", raw.window));
        check(&mut e, (1..=100_000).contains(&raw.max_hosts), || format!("max_hosts must be 1 to 100000, got {}", raw.max_hosts));
        check(&mut e, raw.inspect_body_bytes <= 1 << 20, || format!("inspect_body_bytes must be at most 1 MiB, got {}", raw.inspect_body_bytes));
        if !e.is_empty() {
            return Err(format!("filter configuration: {}", e.join("; ")));
        }
        Ok(Config {
            breaker: BreakerSettings {
                consecutive_failures: b.consecutive_failures,
                failure_rate: b.failure_rate,
                slow_call_rate: b.slow_call_rate,
                min_calls: b.min_calls,
                phi_threshold: p.threshold,
                open_base_ms: b.open_base_ms,
                open_max_ms: b.open_max_ms,
                half_open_probes: b.half_open_probes,
                successes_to_close: b.successes_to_close,
            },
            phi: PhiSettings { min_std_dev_ms: p.min_std_dev_ms, acceptable_pause_ms: p.acceptable_pause_ms, min_samples: p.min_samples },
            latency: LatencySettings { k: l.k, min_ms: l.min_ms, max_ms: l.max_ms, min_samples: l.min_samples, period_ms: l.period_ms },
            window: raw.window,
            max_hosts: raw.max_hosts,
            inspect_body_bytes: raw.inspect_body_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        let c = Config::from_json(b"").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(Config::from_json(b"{}").unwrap(), c);
        assert_eq!(c.breaker, BreakerSettings::default());
    }

    #[test]
    fn overrides_apply() {
        let c = Config::from_json(br#"{"breaker":{"consecutive_failures":2},"phi":{"threshold":5},"window":20}"#).unwrap();
        assert_eq!(c.breaker.consecutive_failures, 2);
        assert_eq!(c.breaker.phi_threshold, 5.0);
        assert_eq!(c.window, 20);
        assert_eq!(c.breaker.open_base_ms, BreakerSettings::default().open_base_ms);
    }

    #[test]
    fn every_problem_is_named() {
        let err = Config::from_json(br#"{"breaker":{"failure_rate":1.5,"half_open_probes":1,"successes_to_close":3},"window":0}"#).unwrap_err();
        assert!(err.contains("breaker.failure_rate"), "{err}");
        assert!(err.contains("breaker.successes_to_close (3)"), "{err}");
        assert!(err.contains("window must be"), "{err}");
        let err = Config::from_json(br#"{"breaker":{"colour":1}}"#).unwrap_err();
        assert!(err.contains("unknown field `colour`"), "{err}");
        let err = Config::from_json(b"{not json").unwrap_err();
        assert!(err.starts_with("filter configuration:"), "{err}");
        let err = Config::from_json(br#"{"breaker":{"open_base_ms":-1}}"#).unwrap_err();
        assert!(err.contains("open_base_ms") || err.contains("invalid value"), "{err}");
    }
}
