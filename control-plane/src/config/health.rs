//! The `health:` section: how often and how patiently the control plane
//! probes endpoints, with per-service overrides.
//!
//! Every field may be left out; the defaults keep configs written before
//! health checks existed valid and probe every endpoint every 5 s. A
//! service override starts from the top-level values, so
//! `services: {alpha: {interval: 1s}}` changes only alpha's interval.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::decode::{join, Decoder, MapReader};
use super::model::ServiceName;
use super::yaml::{Node, Pos};

/// Probe timing and thresholds for one service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct HealthTiming {
    /// Time between probes of an endpoint that has traffic.
    pub interval: Duration,
    /// A probe that takes longer fails.
    pub timeout: Duration,
    /// Good probes in a row that bring an endpoint back.
    pub rise: u32,
    /// Failed probes in a row that take it out.
    pub fall: u32,
    /// Each delay is spread by up to this many thousandths either way, so
    /// a thousand endpoints do not probe in lockstep.
    pub jitter_permille: u32,
    /// Upper bound of the exponential backoff for endpoints that keep failing.
    pub backoff_max: Duration,
    /// Time between probes of an endpoint no filter has reported traffic for.
    pub idle_interval: Duration,
    /// Probe latency above this counts against the endpoint's score.
    pub acceptable_latency: Duration,
    /// An endpoint that came back more than once within this window must
    /// pass more probes (2x, then 4x `rise`) to come back again; 0 turns
    /// flap damping off.
    pub flap_window: Duration,
}

impl Default for HealthTiming {
    fn default() -> Self {
        HealthTiming {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            rise: 2,
            fall: 3,
            jitter_permille: 100,
            backoff_max: Duration::from_secs(30),
            idle_interval: Duration::from_secs(5),
            acceptable_latency: Duration::from_secs(1),
            flap_window: Duration::from_secs(120),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct HealthSettings {
    /// Off: no probes; every endpoint is published healthy unless a filter
    /// ejected it.
    pub enabled: bool,
    /// Probes in flight at once, across all endpoints.
    pub concurrency: u32,
    pub defaults: HealthTiming,
    /// Fully resolved timing for services that override something.
    pub services: BTreeMap<ServiceName, HealthTiming>,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings { enabled: true, concurrency: 64, defaults: HealthTiming::default(), services: BTreeMap::new() }
    }
}

impl HealthSettings {
    pub fn for_service(&self, service: &ServiceName) -> &HealthTiming {
        self.services.get(service).unwrap_or(&self.defaults)
    }
}

const TOP_KEYS: &[&str] = &[
    "enabled", "concurrency", "interval", "timeout", "rise", "fall", "jitter", "backoff_max", "idle_interval",
    "acceptable_latency", "flap_window", "services",
];
const TIMING_KEYS: &[&str] =
    &["interval", "timeout", "rise", "fall", "jitter", "backoff_max", "idle_interval", "acceptable_latency", "flap_window"];

const MIN_INTERVAL: Duration = Duration::from_millis(10);
const MAX_INTERVAL: Duration = Duration::from_secs(3600);

pub(super) fn decode(dec: &mut Decoder, node: &Node) -> HealthSettings {
    let mut out = HealthSettings::default();
    let Some(mut m) = dec.map(node, "health") else { return out };
    if let Some(b) = m.get("enabled").and_then(|n| dec.boolean(n, "health.enabled")) {
        out.enabled = b;
    }
    if let Some(c) = m.get("concurrency").and_then(|n| dec.uint(n, "health.concurrency", 1, 10_000)) {
        out.concurrency = c as u32;
    }
    out.defaults = timing(dec, &mut m, "health", &HealthTiming::default());
    if let Some(n) = m.get("services") {
        if let Some(mut svcs) = dec.map(n, "health.services") {
            for (k, v) in svcs.entries() {
                let Some(name) = dec.string(k, "health.services") else { continue };
                let path = join("health.services", &name);
                let service = match ServiceName::new(&name) {
                    Ok(s) => s,
                    Err(msg) => {
                        dec.report(&path, k.pos, msg);
                        continue;
                    }
                };
                if let Some(mut sm) = dec.map(v, &path) {
                    let t = timing(dec, &mut sm, &path, &out.defaults);
                    sm.finish(dec, TIMING_KEYS);
                    out.services.insert(service, t);
                }
            }
        }
    }
    m.finish(dec, TOP_KEYS);
    out
}

/// Reads the timing keys of one mapping on top of `base`, then checks that
/// they make sense together.
fn timing(dec: &mut Decoder, m: &mut MapReader<'_>, path: &str, base: &HealthTiming) -> HealthTiming {
    let mut t = base.clone();
    let p = |k: &str| join(path, k);
    // Fields given at this level, to place cross-field problems on them.
    let mut given: BTreeMap<&str, Pos> = BTreeMap::new();
    let mut dur = |dec: &mut Decoder, m: &mut MapReader<'_>, key: &'static str, min: Duration, max: Duration| {
        let n = m.get(key)?;
        given.insert(key, n.pos);
        dec.duration(n, &p(key), min, max)
    };
    if let Some(d) = dur(dec, m, "interval", MIN_INTERVAL, MAX_INTERVAL) {
        t.interval = d;
        // The idle interval follows the interval, unless the level above
        // set a longer one (then that stays, if it is still longer).
        t.idle_interval = if base.idle_interval > base.interval { base.idle_interval.max(d) } else { d };
    }
    if let Some(d) = dur(dec, m, "timeout", Duration::from_millis(1), Duration::from_secs(60)) {
        t.timeout = d;
    }
    if let Some(d) = dur(dec, m, "backoff_max", MIN_INTERVAL, MAX_INTERVAL) {
        t.backoff_max = d;
    }
    if let Some(d) = dur(dec, m, "idle_interval", MIN_INTERVAL, MAX_INTERVAL) {
        t.idle_interval = d;
    }
    if let Some(d) = dur(dec, m, "acceptable_latency", Duration::from_millis(1), Duration::from_secs(60)) {
        t.acceptable_latency = d;
    }
    if let Some(d) = dur(dec, m, "flap_window", Duration::ZERO, Duration::from_secs(24 * 3600)) {
        t.flap_window = d;
    }
    if let Some(v) = m.get("rise").and_then(|n| dec.uint(n, &p("rise"), 1, 100)) {
        t.rise = v as u32;
    }
    if let Some(v) = m.get("fall").and_then(|n| dec.uint(n, &p("fall"), 1, 100)) {
        t.fall = v as u32;
    }
    if let Some(v) = m.get("jitter").and_then(|n| dec.float(n, &p("jitter"), 0.0, 0.5)) {
        t.jitter_permille = (v * 1000.0).round() as u32;
    }
    // Inherited values (or defaults) adapt to an interval set here: a
    // shorter interval caps the timeout, a longer one raises backoff_max.
    if !given.contains_key("timeout") {
        t.timeout = t.timeout.min(t.interval);
    }
    if !given.contains_key("backoff_max") {
        t.backoff_max = t.backoff_max.max(t.interval);
    }
    // Each rule is checked where one of its fields is set, and reported on
    // that field (an inherited conflict was reported at its own level).
    let rule = |dec: &mut Decoder, broken: bool, field: &str, other: &str, message: String| {
        if !broken {
            return;
        }
        if let Some(pos) = given.get(field).or_else(|| given.get(other)) {
            dec.report(&p(field), *pos, message);
        }
    };
    // Only one probe per endpoint is in flight, so a timeout longer than
    // the interval would silently stretch the interval.
    rule(dec, t.timeout > t.interval, "timeout", "interval", format!("timeout {:?} must not exceed interval {:?}", t.timeout, t.interval));
    rule(
        dec,
        t.idle_interval < t.interval,
        "idle_interval",
        "interval",
        format!("idle_interval {:?} must not be shorter than interval {:?}", t.idle_interval, t.interval),
    );
    rule(
        dec,
        t.backoff_max < t.interval,
        "backoff_max",
        "interval",
        format!("backoff_max {:?} must not be shorter than interval {:?}", t.backoff_max, t.interval),
    );
    t
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    use super::*;

    use crate::config::model::tests::{assert_problems, problems};

    #[test]
    fn defaults_when_absent() {
        let cfg = Config::from_yaml("backends: []\n").unwrap();
        assert_eq!(cfg.health, HealthSettings::default());
        assert!(cfg.health.enabled);
        let alpha = ServiceName::new("alpha").unwrap();
        assert_eq!(cfg.health.for_service(&alpha).interval, Duration::from_secs(5));
    }

    #[test]
    fn top_level_and_per_service_overrides() {
        let cfg = Config::from_yaml(
            "health:\n  interval: 200ms\n  timeout: 100ms\n  rise: 3\n  fall: 2\n  jitter: 0.2\n  backoff_max: 2s\n  flap_window: 0s\n  concurrency: 8\n  services:\n    alpha: {interval: 1s, rise: 1}\n    beta: {idle_interval: 10s}\n",
        )
        .unwrap();
        let h = &cfg.health;
        assert_eq!(h.concurrency, 8);
        assert_eq!(h.defaults.interval, Duration::from_millis(200));
        assert_eq!(h.defaults.idle_interval, Duration::from_millis(200), "idle follows the interval");
        assert_eq!((h.defaults.rise, h.defaults.fall, h.defaults.jitter_permille), (3, 2, 200));
        assert_eq!(h.defaults.flap_window, Duration::ZERO);
        let alpha = h.for_service(&ServiceName::new("alpha").unwrap());
        assert_eq!((alpha.interval, alpha.rise, alpha.fall, alpha.timeout), (Duration::from_secs(1), 1, 2, Duration::from_millis(100)));
        let beta = h.for_service(&ServiceName::new("beta").unwrap());
        assert_eq!((beta.interval, beta.idle_interval), (Duration::from_millis(200), Duration::from_secs(10)));
        let gamma = h.for_service(&ServiceName::new("gamma").unwrap());
        assert_eq!(gamma, &h.defaults);
    }

    #[test]
    fn problems_have_paths_and_lines() {
        let got = problems(
            "health:\n  interval: 1s\n  timeout: 2s\n  rise: 0\n  colour: red\n  services:\n    Bad: {}\n    alpha: {fall: x, enabled: true}\n",
        );
        let expected = [
            "health.timeout@3:12 timeout 2s must not exceed",
            "health.rise@4:9 expected an integer from 1 to 100",
            "health.colour@5:3 unknown key",
            "health.services.Bad@7:5 service name",
            "health.services.alpha.fall@8:19 expected an integer",
            "health.services.alpha.enabled@8:22 unknown key",
        ];
        assert_problems(&got, &expected);
    }

    #[test]
    fn inherited_timeout_and_backoff_follow_a_new_interval() {
        let cfg = Config::from_yaml("health:\n  interval: 1s\n  services:\n    a: {interval: 200ms}\n    b: {interval: 1m}\n").unwrap();
        let h = &cfg.health;
        assert_eq!((h.defaults.timeout, h.defaults.backoff_max), (Duration::from_secs(1), Duration::from_secs(30)));
        let a = h.for_service(&ServiceName::new("a").unwrap());
        assert_eq!(a.timeout, Duration::from_millis(200));
        let b = h.for_service(&ServiceName::new("b").unwrap());
        assert_eq!((b.timeout, b.backoff_max, b.idle_interval), (Duration::from_secs(1), Duration::from_secs(60), Duration::from_secs(60)));
    }

    #[test]
    fn idle_interval_and_jitter_bounds() {
        let got = problems("health:\n  interval: 2s\n  idle_interval: 1s\n  jitter: 0.9\n");
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(got[0].starts_with("health.idle_interval@3:18 idle_interval 1s must not be shorter"), "{}", got[0]);
        assert!(got[1].starts_with("health.jitter@4:11"), "{}", got[1]);
    }
}
