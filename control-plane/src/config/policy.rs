//! The policy file: how detection, breaking, load balancing, retries and
//! session affinity behave, as defaults with per-service and per-endpoint
//! overrides. Validated here with every problem located (path, line,
//! column), resolved into one complete set per scope, then turned into the
//! filter's JSON (over ECDS) and into cluster and route settings (CDS, RDS).
//!
//! ```yaml
//! defaults:
//!   breaker: {consecutive_failures: 5, open_base: 2s}
//! services:
//!   weather:
//!     load_balancing: {policy: round_robin}
//!     endpoints:
//!       "10.0.0.5:9001": {breaker: {consecutive_failures: 2}}
//! health: {interval: 2s}        # the `health:` section, as in the config
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use super::decode::{join, DecodeError, Decoder, MapReader};
use super::health::HealthSettings;
use super::yaml::{parse, Node, Pos};
use super::ServiceName;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LbPolicy {
    LeastRequest,
    RoundRobin,
    Random,
}

/// What Envoy retries on (its `retry_on` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum RetryOn {
    ConnectFailure,
    Reset,
    RefusedStream,
    Http5xx,
}

impl RetryOn {
    pub fn envoy_name(self) -> &'static str {
        match self {
            RetryOn::ConnectFailure => "connect-failure",
            RetryOn::Reset => "reset",
            RetryOn::RefusedStream => "refused-stream",
            RetryOn::Http5xx => "5xx",
        }
    }
}

/// Every setting for one scope, complete (parents already applied).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicySet {
    pub consecutive_failures: u32,
    pub failure_rate: f64,
    pub slow_call_rate: f64,
    pub min_calls: u32,
    pub open_base: Duration,
    pub open_max: Duration,
    pub half_open_probes: u32,
    pub successes_to_close: u32,
    pub phi_threshold: f64,
    pub phi_min_std_dev: Duration,
    pub phi_acceptable_pause: Duration,
    pub phi_min_samples: u32,
    pub latency_k: f64,
    pub latency_min: Duration,
    pub latency_max: Duration,
    pub latency_min_samples: u32,
    pub latency_period: Duration,
    pub window: u32,
    pub inspect_body_bytes: u32,
    pub lb_policy: LbPolicy,
    pub retry_attempts: u32,
    pub retry_on: Vec<RetryOn>,
    pub per_try_timeout: Option<Duration>,
    pub session_affinity: bool,
}

impl Default for PolicySet {
    /// The filter's own defaults, so an empty policy changes nothing.
    fn default() -> Self {
        let f = only1mcp_filter::config::Settings::default();
        PolicySet {
            consecutive_failures: f.breaker.consecutive_failures,
            failure_rate: f.breaker.failure_rate,
            slow_call_rate: f.breaker.slow_call_rate,
            min_calls: f.breaker.min_calls,
            open_base: Duration::from_millis(f.breaker.open_base_ms),
            open_max: Duration::from_millis(f.breaker.open_max_ms),
            half_open_probes: f.breaker.half_open_probes,
            successes_to_close: f.breaker.successes_to_close,
            phi_threshold: f.breaker.phi_threshold,
            phi_min_std_dev: Duration::from_secs_f64(f.phi.min_std_dev_ms / 1000.0),
            phi_acceptable_pause: Duration::from_secs_f64(f.phi.acceptable_pause_ms / 1000.0),
            phi_min_samples: f.phi.min_samples as u32,
            latency_k: f.latency.k,
            latency_min: Duration::from_millis(f.latency.min_ms),
            latency_max: Duration::from_millis(f.latency.max_ms),
            latency_min_samples: f.latency.min_samples as u32,
            latency_period: Duration::from_millis(f.latency.period_ms),
            window: f.window,
            inspect_body_bytes: f.inspect_body_bytes,
            lb_policy: LbPolicy::LeastRequest,
            retry_attempts: 0,
            retry_on: vec![RetryOn::ConnectFailure, RetryOn::RefusedStream],
            per_try_timeout: None,
            session_affinity: true,
        }
    }
}

impl PolicySet {
    /// The filter's JSON for this scope (its `SettingsJson` shape).
    pub fn filter_json(&self) -> serde_json::Value {
        json!({
            "breaker": {
                "consecutive_failures": self.consecutive_failures,
                "failure_rate": self.failure_rate,
                "slow_call_rate": self.slow_call_rate,
                "min_calls": self.min_calls,
                "open_base_ms": self.open_base.as_millis() as u64,
                "open_max_ms": self.open_max.as_millis() as u64,
                "half_open_probes": self.half_open_probes,
                "successes_to_close": self.successes_to_close,
            },
            "phi": {
                "threshold": self.phi_threshold,
                "min_std_dev_ms": self.phi_min_std_dev.as_secs_f64() * 1000.0,
                "acceptable_pause_ms": self.phi_acceptable_pause.as_secs_f64() * 1000.0,
                "min_samples": self.phi_min_samples,
            },
            "latency": {
                "k": self.latency_k,
                "min_ms": self.latency_min.as_millis() as u64,
                "max_ms": self.latency_max.as_millis() as u64,
                "min_samples": self.latency_min_samples,
                "period_ms": self.latency_period.as_millis() as u64,
            },
            "window": self.window,
            "inspect_body_bytes": self.inspect_body_bytes,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServicePolicy {
    pub set: PolicySet,
    /// Endpoint overrides (filter settings only), resolved over the service.
    pub endpoints: BTreeMap<SocketAddr, PolicySet>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Policy {
    pub defaults: PolicySet,
    pub services: BTreeMap<ServiceName, ServicePolicy>,
    /// Active health checks, when the policy file sets them (they then
    /// replace the config file's `health:` section).
    #[serde(skip)]
    pub health: Option<HealthSettings>,
}

impl Policy {
    pub fn from_yaml(source: &str) -> Result<Policy, DecodeError> {
        let tree = parse(source)?;
        let mut dec = Decoder::default();
        let policy = decode(&mut dec, &tree, "");
        dec.finish(policy)
    }

    /// Reads and validates a policy file.
    pub fn load(path: &std::path::Path) -> Result<Policy, super::ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| super::ConfigError::Read { path: path.to_path_buf(), source })?;
        Policy::from_yaml(&text).map_err(|source| super::ConfigError::Decode { path: path.to_path_buf(), source })
    }

    /// The settings for one service (its own, else the defaults).
    pub fn for_service(&self, service: &ServiceName) -> &PolicySet {
        self.services.get(service).map(|s| &s.set).unwrap_or(&self.defaults)
    }

    /// The filter's whole configuration: defaults, then per cluster and
    /// per host, each complete.
    pub fn filter_json(&self, cluster_name: impl Fn(&ServiceName) -> String) -> String {
        let mut top = self.defaults.filter_json();
        let mut clusters = serde_json::Map::new();
        let mut hosts = serde_json::Map::new();
        for (name, svc) in &self.services {
            if svc.set.filter_json() != top {
                clusters.insert(cluster_name(name), svc.set.filter_json());
            }
            for (addr, set) in &svc.endpoints {
                hosts.insert(addr.to_string(), set.filter_json());
            }
        }
        if let Some(obj) = top.as_object_mut() {
            if !clusters.is_empty() {
                obj.insert("clusters".into(), clusters.into());
            }
            if !hosts.is_empty() {
                obj.insert("hosts".into(), hosts.into());
            }
        }
        top.to_string()
    }
}

const TOP_KEYS: &[&str] = &["defaults", "services", "health"];
const SECTION_KEYS: &[&str] = &["breaker", "phi", "latency", "passive", "load_balancing", "retries", "session_affinity"];
const ENDPOINT_SECTIONS: &[&str] = &["breaker", "phi", "latency", "passive"];

/// Decodes a policy document; `prefix` is its path (`policy` when inline
/// in the config file, empty in a file of its own).
pub(super) fn decode(dec: &mut Decoder, root: &Node, prefix: &str) -> Option<Policy> {
    let mut top = dec.map(root, prefix)?;
    let mut policy = Policy::default();
    if let Some(n) = top.get("defaults") {
        policy.defaults = decode_set(dec, n, &join(prefix, "defaults"), &PolicySet::default(), SECTION_KEYS);
    }
    if let Some(n) = top.get("services") {
        let sp = join(prefix, "services");
        if let Some(mut services) = dec.map(n, &sp) {
            for (k, v) in services.entries() {
                let Some(name) = dec.string(k, &sp) else { continue };
                let path = join(&sp, &name);
                let service = match ServiceName::new(&name) {
                    Ok(s) => s,
                    Err(msg) => {
                        dec.report(&path, k.pos, msg);
                        continue;
                    }
                };
                if let Some(sp) = decode_service(dec, v, &path, &policy.defaults) {
                    policy.services.insert(service, sp);
                }
            }
        }
    }
    if let Some(n) = top.get("health") {
        policy.health = Some(super::health::decode(dec, n));
    }
    top.finish(dec, TOP_KEYS);
    Some(policy)
}

fn decode_service(dec: &mut Decoder, node: &Node, path: &str, defaults: &PolicySet) -> Option<ServicePolicy> {
    let set = decode_set_with(dec, node, path, defaults, SECTION_KEYS, true);
    let mut endpoints = BTreeMap::new();
    if let Super::Map(entries) = classify(node) {
        for (k, v) in entries {
            if !matches!(&k.value, super::yaml::Value::Scalar { text, .. } if text == "endpoints") {
                continue;
            }
            let ep_path = join(path, "endpoints");
            let Some(mut eps) = dec.map(v, &ep_path) else { continue };
            for (ek, ev) in eps.entries() {
                let Some(text) = dec.string(ek, &ep_path) else { continue };
                let p = format!("{ep_path}[{text:?}]");
                match text.parse::<SocketAddr>() {
                    Ok(addr) => {
                        let s = decode_set(dec, ev, &p, &set, ENDPOINT_SECTIONS);
                        endpoints.insert(addr, s);
                    }
                    Err(_) => dec.report(&p, ek.pos, format!("expected an endpoint address such as 127.0.0.1:9001, found {text:?}")),
                }
            }
        }
    }
    Some(ServicePolicy { set, endpoints })
}

enum Super<'a> {
    Map(&'a [(Node, Node)]),
    Other,
}

fn classify(node: &Node) -> Super<'_> {
    match &node.value {
        super::yaml::Value::Map(e) => Super::Map(e),
        _ => Super::Other,
    }
}

fn decode_set(dec: &mut Decoder, node: &Node, path: &str, base: &PolicySet, allowed: &[&str]) -> PolicySet {
    decode_set_with(dec, node, path, base, allowed, false)
}

/// Reads the sections present in `node` over `base`. `endpoints_key`
/// allows (and skips) the `endpoints` key, read by the caller.
fn decode_set_with(dec: &mut Decoder, node: &Node, path: &str, base: &PolicySet, allowed: &[&str], endpoints_key: bool) -> PolicySet {
    let mut s = base.clone();
    let Some(mut m) = dec.map(node, path) else { return s };
    if endpoints_key {
        let _ = m.get("endpoints");
    }
    for section in SECTION_KEYS {
        let Some(n) = m.get(section) else { continue };
        let p = join(path, section);
        if !allowed.contains(section) {
            dec.report(&p, n.pos, format!("{section} can be set per service, not per endpoint"));
            continue;
        }
        match *section {
            "breaker" => breaker(dec, n, &p, &mut s),
            "phi" => phi(dec, n, &p, &mut s),
            "latency" => latency(dec, n, &p, &mut s),
            "passive" => passive(dec, n, &p, &mut s),
            "load_balancing" => load_balancing(dec, n, &p, &mut s),
            "retries" => retries(dec, n, &p, &mut s),
            "session_affinity" => {
                if let Some(mut a) = dec.map(n, &p) {
                    if let Some(v) = a.get("enabled").and_then(|v| dec.boolean(v, &join(&p, "enabled"))) {
                        s.session_affinity = v;
                    }
                    a.finish(dec, &["enabled"]);
                }
            }
            _ => {}
        }
    }
    let mut keys: Vec<&str> = allowed.to_vec();
    if endpoints_key {
        keys.push("endpoints");
    }
    let pos = m.pos();
    m.finish(dec, &keys);
    contradictions(dec, path, pos, &s, base);
    s
}

/// Settings that cannot hold together, as (field, message). Checked on
/// the resolved set, so an override that breaks an inherited value is
/// caught where it is made (and reported once, not again below it).
fn contradictions_of(s: &PolicySet) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if s.successes_to_close > s.half_open_probes {
        out.push((
            "breaker.successes_to_close",
            format!(
                "needs {} successes to close but only {} half-open probes are allowed (breaker.half_open_probes)",
                s.successes_to_close, s.half_open_probes
            ),
        ));
    }
    if s.open_max < s.open_base {
        out.push(("breaker.open_max", format!("{:?} is shorter than breaker.open_base {:?}", s.open_max, s.open_base)));
    }
    if s.latency_max < s.latency_min {
        out.push(("latency.max", format!("{:?} is below latency.min {:?}", s.latency_max, s.latency_min)));
    }
    if s.per_try_timeout.is_some_and(|t| !t.is_zero()) && s.retry_attempts == 0 {
        out.push(("retries.per_try_timeout", "is set but retries.attempts is 0".to_string()));
    }
    out
}

fn contradictions(dec: &mut Decoder, path: &str, pos: Pos, s: &PolicySet, base: &PolicySet) {
    let inherited = contradictions_of(base);
    for (field, message) in contradictions_of(s) {
        if !inherited.iter().any(|(f, _)| *f == field) {
            dec.report(&join(path, field), pos, message);
        }
    }
}

fn field<'a>(m: &mut MapReader<'a>, key: &str) -> Option<&'a Node> {
    m.get(key)
}

fn u32_in(dec: &mut Decoder, m: &mut MapReader<'_>, path: &str, key: &str, min: u64, max: u64, out: &mut u32) {
    if let Some(v) = field(m, key).and_then(|n| dec.uint(n, &join(path, key), min, max)) {
        *out = v as u32;
    }
}

fn f64_in(dec: &mut Decoder, m: &mut MapReader<'_>, path: &str, key: &str, min: f64, max: f64, out: &mut f64) {
    if let Some(v) = field(m, key).and_then(|n| dec.float(n, &join(path, key), min, max)) {
        *out = v;
    }
}

fn dur_in(dec: &mut Decoder, m: &mut MapReader<'_>, path: &str, key: &str, min: Duration, max: Duration, out: &mut Duration) {
    if let Some(v) = field(m, key).and_then(|n| dec.duration(n, &join(path, key), min, max)) {
        *out = v;
    }
}

const MS: Duration = Duration::from_millis(1);
const HOUR: Duration = Duration::from_secs(3600);

fn breaker(dec: &mut Decoder, n: &Node, p: &str, s: &mut PolicySet) {
    let Some(mut m) = dec.map(n, p) else { return };
    u32_in(dec, &mut m, p, "consecutive_failures", 1, 1000, &mut s.consecutive_failures);
    f64_in(dec, &mut m, p, "failure_rate", 0.01, 1.0, &mut s.failure_rate);
    f64_in(dec, &mut m, p, "slow_call_rate", 0.01, 1.0, &mut s.slow_call_rate);
    u32_in(dec, &mut m, p, "min_calls", 1, 100_000, &mut s.min_calls);
    dur_in(dec, &mut m, p, "open_base", MS, HOUR, &mut s.open_base);
    dur_in(dec, &mut m, p, "open_max", MS, HOUR, &mut s.open_max);
    u32_in(dec, &mut m, p, "half_open_probes", 1, 1000, &mut s.half_open_probes);
    u32_in(dec, &mut m, p, "successes_to_close", 1, 1000, &mut s.successes_to_close);
    m.finish(dec, &["consecutive_failures", "failure_rate", "slow_call_rate", "min_calls", "open_base", "open_max", "half_open_probes", "successes_to_close"]);
}

fn phi(dec: &mut Decoder, n: &Node, p: &str, s: &mut PolicySet) {
    let Some(mut m) = dec.map(n, p) else { return };
    f64_in(dec, &mut m, p, "threshold", 0.5, 100.0, &mut s.phi_threshold);
    dur_in(dec, &mut m, p, "min_std_dev", MS, Duration::from_secs(60), &mut s.phi_min_std_dev);
    dur_in(dec, &mut m, p, "acceptable_pause", Duration::ZERO, HOUR, &mut s.phi_acceptable_pause);
    u32_in(dec, &mut m, p, "min_samples", 1, 10_000, &mut s.phi_min_samples);
    m.finish(dec, &["threshold", "min_std_dev", "acceptable_pause", "min_samples"]);
}

fn latency(dec: &mut Decoder, n: &Node, p: &str, s: &mut PolicySet) {
    let Some(mut m) = dec.map(n, p) else { return };
    f64_in(dec, &mut m, p, "k", 0.0, 100.0, &mut s.latency_k);
    dur_in(dec, &mut m, p, "min", Duration::ZERO, HOUR, &mut s.latency_min);
    dur_in(dec, &mut m, p, "max", MS, HOUR, &mut s.latency_max);
    u32_in(dec, &mut m, p, "min_samples", 0, 1_000_000, &mut s.latency_min_samples);
    dur_in(dec, &mut m, p, "period", Duration::from_secs(1), HOUR, &mut s.latency_period);
    m.finish(dec, &["k", "min", "max", "min_samples", "period"]);
}

fn passive(dec: &mut Decoder, n: &Node, p: &str, s: &mut PolicySet) {
    let Some(mut m) = dec.map(n, p) else { return };
    u32_in(dec, &mut m, p, "window", 1, 10_000, &mut s.window);
    u32_in(dec, &mut m, p, "inspect_body_bytes", 0, 1 << 20, &mut s.inspect_body_bytes);
    m.finish(dec, &["window", "inspect_body_bytes"]);
}

fn load_balancing(dec: &mut Decoder, n: &Node, p: &str, s: &mut PolicySet) {
    let Some(mut m) = dec.map(n, p) else { return };
    if let Some(v) = m.get("policy").and_then(|v| {
        dec.one_of(v, &join(p, "policy"), &[("least_request", LbPolicy::LeastRequest), ("round_robin", LbPolicy::RoundRobin), ("random", LbPolicy::Random)])
    }) {
        s.lb_policy = v;
    }
    m.finish(dec, &["policy"]);
}

fn retries(dec: &mut Decoder, n: &Node, p: &str, s: &mut PolicySet) {
    let Some(mut m) = dec.map(n, p) else { return };
    u32_in(dec, &mut m, p, "attempts", 0, 10, &mut s.retry_attempts);
    if let Some(list) = m.get("on") {
        let lp = join(p, "on");
        if let Some(items) = dec.seq(list, &lp) {
            let mut on = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let choices = [("connect-failure", RetryOn::ConnectFailure), ("reset", RetryOn::Reset), ("refused-stream", RetryOn::RefusedStream), ("5xx", RetryOn::Http5xx)];
                if let Some(r) = dec.one_of(item, &format!("{lp}[{i}]"), &choices) {
                    on.push(r);
                }
            }
            on.sort();
            on.dedup();
            s.retry_on = on;
        }
    }
    if let Some(v) = m.get("per_try_timeout").and_then(|v| dec.duration(v, &join(p, "per_try_timeout"), Duration::ZERO, HOUR)) {
        s.per_try_timeout = Some(v);
    }
    m.finish(dec, &["attempts", "on", "per_try_timeout"]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(src: &str) -> Vec<(String, usize, usize, String)> {
        Policy::from_yaml(src).unwrap_err().problems().into_iter().map(|p| (p.path, p.pos.line, p.pos.col, p.message)).collect()
    }

    #[test]
    fn empty_policy_is_the_filter_defaults() {
        let p = Policy::from_yaml("").unwrap();
        assert_eq!(p.defaults, PolicySet::default());
        let json: serde_json::Value = serde_json::from_str(&p.filter_json(|s| format!("mcp_{s}"))).unwrap();
        let parsed = only1mcp_filter::config::Config::from_json(json.to_string().as_bytes()).unwrap();
        assert_eq!(parsed.base, only1mcp_filter::config::Settings::default());
    }

    #[test]
    fn overrides_resolve_defaults_then_service_then_endpoint() {
        let p = Policy::from_yaml(
            r#"
defaults:
  breaker: {consecutive_failures: 4, open_base: 1s}
  retries: {attempts: 2, on: [5xx, connect-failure]}
services:
  alpha:
    breaker: {consecutive_failures: 2}
    load_balancing: {policy: round_robin}
    session_affinity: {enabled: false}
    endpoints:
      "127.0.0.1:9001": {breaker: {open_base: 5s}}
  beta: {}
"#,
        )
        .unwrap();
        let alpha = &p.services[&ServiceName::new("alpha").unwrap()];
        assert_eq!(alpha.set.consecutive_failures, 2);
        assert_eq!(alpha.set.open_base, Duration::from_secs(1), "inherited from defaults");
        assert_eq!(alpha.set.lb_policy, LbPolicy::RoundRobin);
        assert!(!alpha.set.session_affinity);
        assert_eq!(alpha.set.retry_on, vec![RetryOn::ConnectFailure, RetryOn::Http5xx]);
        let ep = &alpha.endpoints[&"127.0.0.1:9001".parse().unwrap()];
        assert_eq!((ep.consecutive_failures, ep.open_base), (2, Duration::from_secs(5)));
        assert_eq!(p.for_service(&ServiceName::new("beta").unwrap()).consecutive_failures, 4);
        assert_eq!(p.for_service(&ServiceName::new("gamma").unwrap()).consecutive_failures, 4);
        let json = p.filter_json(|s| format!("mcp_{s}"));
        let c = only1mcp_filter::config::Config::from_json(json.as_bytes()).unwrap();
        assert_eq!(c.for_target(Some("mcp_alpha"), None).breaker.consecutive_failures, 2);
        assert_eq!(c.for_target(Some("mcp_alpha"), Some("127.0.0.1:9001")).breaker.open_base_ms, 5000);
        assert_eq!(c.for_target(Some("mcp_beta"), None).breaker.consecutive_failures, 4);
        assert!(!json.contains("mcp_beta"), "a service with no own settings adds nothing: {json}");
    }

    #[test]
    fn every_kind_of_error_with_line_and_column() {
        let got = problems(
            "defaults:\n  breaker:\n    open_base: -1s\n    failure_rate: 1.5\n    colour: red\n  phi: {threshold: high}\nservices:\n  alpha:\n    breaker: {half_open_probes: 1, successes_to_close: 3}\n    endpoints:\n      nowhere: {}\n      \"127.0.0.1:1\": {retries: {attempts: 1}}\n",
        );
        let want: Vec<(&str, usize, usize)> = vec![
            ("defaults.breaker.open_base", 3, 16),
            ("defaults.breaker.failure_rate", 4, 19),
            ("defaults.breaker.colour", 5, 5),
            ("defaults.phi.threshold", 6, 20),
            ("services.alpha.breaker.successes_to_close", 9, 5),
            ("services.alpha.endpoints[\"nowhere\"]", 11, 7),
            ("services.alpha.endpoints[\"127.0.0.1:1\"].retries", 12, 33),
        ];
        let summary: Vec<(&str, usize, usize)> = got.iter().map(|(p, l, c, _)| (p.as_str(), *l, *c)).collect();
        assert_eq!(summary, want, "{got:#?}");
        assert!(got[4].3.contains("only 1 half-open probes"), "{}", got[4].3);
        assert!(got[6].3.contains("per service, not per endpoint"), "{}", got[6].3);
    }

    #[test]
    fn contradictions_and_ranges() {
        let got = problems("defaults:\n  breaker: {open_base: 10s, open_max: 5s}\n  latency: {min: 2s, max: 1s}\n  retries: {per_try_timeout: 1s}\n");
        let paths: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
        assert_eq!(paths, vec!["defaults.breaker.open_max", "defaults.latency.max", "defaults.retries.per_try_timeout"], "{got:#?}");
        let got = problems("defaults:\n  retries: {attempts: 11, on: [teapot]}\n  load_balancing: {policy: maglev}\nunknown: 1\n");
        assert_eq!(got.len(), 4, "{got:#?}");
    }

    #[test]
    fn health_section_is_accepted() {
        let p = Policy::from_yaml("health: {interval: 2s}\n").unwrap();
        assert!(p.health.is_some());
    }
}
