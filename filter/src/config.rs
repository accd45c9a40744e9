//! The filter's configuration: JSON in the Wasm plugin configuration, every
//! field optional with a default, unknown keys and bad values refused with
//! a message that names the field (Envoy then NACKs the config and keeps
//! the previous one).
//!
//! The top level holds the default settings; `clusters` and `hosts` map a
//! cluster name or a host address to complete settings of their own (the
//! control plane resolves the policy file's per-service and per-endpoint
//! overrides into these), so the filter only has to pick one.

use std::collections::HashMap;

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
pub struct SettingsJson {
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

impl Default for SettingsJson {
    fn default() -> Self {
        SettingsJson { breaker: BreakerJson::default(), phi: PhiJson::default(), latency: LatencyJson::default(), window: 100, max_hosts: 1024, inspect_body_bytes: 8192 }
    }
}

/// Validated settings for one scope, ready for the algorithms.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub breaker: BreakerSettings,
    pub phi: PhiSettings,
    pub latency: LatencySettings,
    pub window: u32,
    pub max_hosts: u32,
    pub inspect_body_bytes: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings::from_raw(&SettingsJson::default(), "").unwrap_or_else(|_| unreachable_default())
    }
}

fn unreachable_default() -> Settings {
    // The defaults validate (tested); this keeps `Default` panic-free anyway.
    Settings {
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

/// The whole configuration: defaults and per-cluster and per-host settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    pub base: Settings,
    pub clusters: HashMap<String, Settings>,
    pub hosts: HashMap<String, Settings>,
}

impl std::ops::Deref for Config {
    type Target = Settings;
    fn deref(&self) -> &Settings {
        &self.base
    }
}

impl Config {
    /// Parses and validates; empty input means all defaults. The error
    /// lists every problem, each naming its field.
    pub fn from_json(bytes: &[u8]) -> Result<Config, String> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Config::default());
        }
        let mut top: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(bytes).map_err(|e| format!("filter configuration: {e}"))?;
        let mut errors = Vec::new();
        let mut scoped = |key: &str, errors: &mut Vec<String>| -> HashMap<String, Settings> {
            let mut out = HashMap::new();
            match top.remove(key) {
                None => {}
                Some(serde_json::Value::Object(m)) => {
                    for (name, v) in m {
                        let prefix = format!("{key}.{name}.");
                        match serde_json::from_value::<SettingsJson>(v) {
                            Ok(raw) => match Settings::from_raw(&raw, &prefix) {
                                Ok(s) => {
                                    out.insert(name, s);
                                }
                                Err(e) => errors.push(e),
                            },
                            Err(e) => errors.push(format!("{prefix}: {e}")),
                        }
                    }
                }
                Some(_) => errors.push(format!("{key} must be an object")),
            }
            out
        };
        let clusters = scoped("clusters", &mut errors);
        let hosts = scoped("hosts", &mut errors);
        let base = match serde_json::from_value::<SettingsJson>(serde_json::Value::Object(top)) {
            Ok(raw) => Settings::from_raw(&raw, "").map_err(|e| errors.push(e)).ok(),
            Err(e) => {
                errors.push(e.to_string());
                None
            }
        };
        match base {
            Some(base) if errors.is_empty() => Ok(Config { base, clusters, hosts }),
            _ => Err(format!("filter configuration: {}", errors.join("; "))),
        }
    }

    /// The settings for a request to `host` in `cluster`: the host's own,
    /// else the cluster's, else the defaults.
    pub fn for_target(&self, cluster: Option<&str>, host: Option<&str>) -> &Settings {
        host.and_then(|h| self.hosts.get(h))
            .or_else(|| cluster.and_then(|c| self.clusters.get(c)))
            .unwrap_or(&self.base)
    }
}

impl Settings {
    /// Validates one scope; `pre` prefixes field names in messages.
    fn from_raw(raw: &SettingsJson, pre: &str) -> Result<Settings, String> {
        let mut e = Vec::new();
        let b = &raw.breaker;
        check(&mut e, b.consecutive_failures >= 1, || format!("{pre}breaker.consecutive_failures must be at least 1"));
        check(&mut e, b.failure_rate > 0.0 && b.failure_rate <= 1.0, || format!("{pre}breaker.failure_rate must be in (0, 1], got {}", b.failure_rate));
        check(&mut e, b.slow_call_rate > 0.0 && b.slow_call_rate <= 1.0, || format!("{pre}breaker.slow_call_rate must be in (0, 1], got {}", b.slow_call_rate));
        check(&mut e, b.open_base_ms >= 1, || format!("{pre}breaker.open_base_ms must be at least 1"));
        check(&mut e, b.open_max_ms >= b.open_base_ms, || format!("{pre}breaker.open_max_ms ({}) is below breaker.open_base_ms ({})", b.open_max_ms, b.open_base_ms));
        check(&mut e, b.half_open_probes >= 1, || format!("{pre}breaker.half_open_probes must be at least 1"));
        check(&mut e, b.successes_to_close >= 1 && b.successes_to_close <= b.half_open_probes, || {
            format!("{pre}breaker.successes_to_close ({}) must be between 1 and breaker.half_open_probes ({})", b.successes_to_close, b.half_open_probes)
        });
        let p = &raw.phi;
        check(&mut e, p.threshold > 0.0 && p.threshold.is_finite(), || format!("{pre}phi.threshold must be positive, got {}", p.threshold));
        check(&mut e, p.min_std_dev_ms > 0.0 && p.min_std_dev_ms.is_finite(), || format!("{pre}phi.min_std_dev_ms must be positive, got {}", p.min_std_dev_ms));
        check(&mut e, p.acceptable_pause_ms >= 0.0 && p.acceptable_pause_ms.is_finite(), || format!("{pre}phi.acceptable_pause_ms must not be negative, got {}", p.acceptable_pause_ms));
        let l = &raw.latency;
        check(&mut e, l.k >= 0.0 && l.k.is_finite(), || format!("{pre}latency.k must not be negative, got {}", l.k));
        check(&mut e, l.max_ms >= l.min_ms, || format!("{pre}latency.max_ms ({}) is below latency.min_ms ({})", l.max_ms, l.min_ms));
        check(&mut e, l.period_ms >= 1, || format!("{pre}latency.period_ms must be at least 1"));
        check(&mut e, (1..=10_000).contains(&raw.window), || format!("{pre}window must be 1 to 10000, got {}", raw.window));
        check(&mut e, (1..=100_000).contains(&raw.max_hosts), || format!("{pre}max_hosts must be 1 to 100000, got {}", raw.max_hosts));
        check(&mut e, raw.inspect_body_bytes <= 1 << 20, || format!("{pre}inspect_body_bytes must be at most 1 MiB, got {}", raw.inspect_body_bytes));
        if !e.is_empty() {
            return Err(e.join("; "));
        }
        Ok(Settings {
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
        assert_eq!(c.base, Settings::default());
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
    fn overrides_by_cluster_and_host() {
        let c = Config::from_json(
            br#"{"breaker":{"consecutive_failures":4},
                 "clusters":{"mcp_a":{"breaker":{"consecutive_failures":2}}},
                 "hosts":{"127.0.0.1:1":{"breaker":{"consecutive_failures":9}}}}"#,
        )
        .unwrap();
        assert_eq!(c.for_target(None, None).breaker.consecutive_failures, 4);
        assert_eq!(c.for_target(Some("mcp_b"), Some("127.0.0.1:2")).breaker.consecutive_failures, 4);
        assert_eq!(c.for_target(Some("mcp_a"), Some("127.0.0.1:2")).breaker.consecutive_failures, 2);
        assert_eq!(c.for_target(Some("mcp_a"), Some("127.0.0.1:1")).breaker.consecutive_failures, 9);
        let err = Config::from_json(br#"{"clusters":{"mcp_a":{"breaker":{"failure_rate":3}}},"hosts":[1]}"#).unwrap_err();
        assert!(err.contains("clusters.mcp_a.breaker.failure_rate"), "{err}");
        assert!(err.contains("hosts must be an object"), "{err}");
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
