//! The validated configuration types and the decoder that builds them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::Serialize;

use super::decode::{join, DecodeError, Decoder};
use super::yaml::Node;

/// An MCP service name. It becomes part of a URL path (`/mcp/<name>`) and of
/// Envoy cluster and stat names, so it is restricted to `[a-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ServiceName(String);

impl ServiceName {
    pub const MAX_LEN: usize = 63;

    pub fn new(name: &str) -> Result<ServiceName, String> {
        let ok_chars = name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if name.is_empty() || name.len() > Self::MAX_LEN || !ok_chars {
            return Err(format!(
                "service name {name:?} must be 1 to {} characters of a-z, 0-9, '-' or '_'",
                Self::MAX_LEN
            ));
        }
        Ok(ServiceName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which MCP protocol era a backend speaks, as a hint for probes and
/// session handling. `Auto` finds out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Auto,
    /// Spec 2025-11-25 and earlier: `initialize` creates an `mcp-session-id`.
    Legacy,
    /// Spec 2026-07-28: stateless, `server/discover`.
    Stateless,
}

/// One instance of an MCP service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Backend {
    pub service: ServiceName,
    pub address: IpAddr,
    pub port: u16,
    /// The path the backend serves MCP on, e.g. `/mcp`.
    pub path: String,
    pub protocol: Protocol,
    /// Envoy load-balancing weight, 1 to 128.
    pub weight: u32,
    /// Free-form labels, passed to Envoy as endpoint metadata.
    pub metadata: BTreeMap<String, String>,
    /// A standby takes traffic only when no primary of its service can
    /// (a lower EDS priority).
    pub standby: bool,
    /// Probe with a plain HTTP GET on this path instead of MCP messages.
    pub health_path: Option<String>,
}

impl Backend {
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port)
    }
}

/// Settings of the Envoy resources the control plane generates.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct EnvoySettings {
    /// Envoy's MCP listener.
    pub listener: SocketAddr,
    /// Connect timeout towards a backend.
    pub connect_timeout: Duration,
    /// How long an idle stream (an SSE stream between events) may stay open.
    pub stream_idle_timeout: Duration,
}

/// The policy: built-in defaults, inline in the config, or a file of its
/// own (watched; relative paths are from the config file's directory).
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub enum PolicySource {
    #[default]
    Default,
    Inline(Box<super::policy::Policy>),
    File(std::path::PathBuf),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    /// The ADS gRPC server Envoy connects to.
    pub xds: SocketAddr,
    /// The admin HTTP API (status, metrics).
    pub admin: SocketAddr,
    pub envoy: EnvoySettings,
    pub backends: Vec<Backend>,
    /// The Wasm filter; `None` runs Envoy without it.
    pub filter: Option<super::filter::FilterSettings>,
    /// Where the policy comes from.
    pub policy: PolicySource,
    /// Active health checks.
    pub health: super::health::HealthSettings,
}

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

impl Default for Config {
    fn default() -> Self {
        Config {
            xds: SocketAddr::new(LOCALHOST, 18000),
            admin: SocketAddr::new(LOCALHOST, 18001),
            envoy: EnvoySettings {
                listener: SocketAddr::new(LOCALHOST, 10000),
                connect_timeout: Duration::from_secs(1),
                stream_idle_timeout: Duration::from_secs(3600),
            },
            backends: Vec::new(),
            filter: None,
            policy: PolicySource::Default,
            health: Default::default(),
        }
    }
}

impl Config {
    /// Backends grouped by service, services in name order.
    pub fn services(&self) -> BTreeMap<&ServiceName, Vec<&Backend>> {
        let mut out: BTreeMap<&ServiceName, Vec<&Backend>> = BTreeMap::new();
        for b in &self.backends {
            out.entry(&b.service).or_default().push(b);
        }
        out
    }
}

const TOP_KEYS: &[&str] = &["xds", "admin", "envoy", "backends", "filter", "health", "policy"];
const ADDR_KEYS: &[&str] = &["address", "port"];
const ENVOY_KEYS: &[&str] = &["listener", "connect_timeout", "stream_idle_timeout"];
const BACKEND_KEYS: &[&str] =
    &["service", "address", "port", "path", "protocol", "weight", "metadata", "standby", "health_path"];

pub(super) fn decode_config(root: &Node) -> Result<Config, DecodeError> {
    let mut dec = Decoder::default();
    let mut cfg = Config::default();
    if let Some(mut top) = dec.map(root, "") {
        if let Some(n) = top.get("xds") {
            cfg.xds = socket_addr(&mut dec, n, "xds", cfg.xds);
        }
        if let Some(n) = top.get("admin") {
            cfg.admin = socket_addr(&mut dec, n, "admin", cfg.admin);
        }
        if let Some(n) = top.get("envoy") {
            decode_envoy(&mut dec, n, &mut cfg.envoy);
        }
        if let Some(n) = top.get("backends") {
            cfg.backends = decode_backends(&mut dec, n);
        }
        if let Some(n) = top.get("policy") {
            cfg.policy = match &n.value {
                super::yaml::Value::Scalar { text, .. } => PolicySource::File(std::path::PathBuf::from(text)),
                _ => super::policy::decode(&mut dec, n, "policy").map(|p| PolicySource::Inline(Box::new(p))).unwrap_or_default(),
            };
        }
        if let Some(n) = top.get("filter") {
            cfg.filter = super::filter::decode(&mut dec, n);
        }
        if let Some(n) = top.get("health") {
            cfg.health = super::health::decode(&mut dec, n);
        }
        top.finish(&mut dec, TOP_KEYS);
        check_ports(&mut dec, root, &cfg);
    }
    dec.finish(Some(cfg))
}

fn socket_addr(dec: &mut Decoder, node: &Node, path: &str, default: SocketAddr) -> SocketAddr {
    let mut out = default;
    if let Some(mut m) = dec.map(node, path) {
        if let Some(ip) = m.get("address").and_then(|n| dec.ip(n, &join(path, "address"))) {
            out.set_ip(ip);
        }
        if let Some(port) = m.get("port").and_then(|n| dec.uint(n, &join(path, "port"), 0, 65535)) {
            out.set_port(port as u16);
        }
        m.finish(dec, ADDR_KEYS);
    }
    out
}

fn decode_envoy(dec: &mut Decoder, node: &Node, out: &mut EnvoySettings) {
    let Some(mut m) = dec.map(node, "envoy") else { return };
    if let Some(n) = m.get("listener") {
        out.listener = socket_addr(dec, n, "envoy.listener", out.listener);
    }
    if let Some(d) = m
        .get("connect_timeout")
        .and_then(|n| dec.duration(n, "envoy.connect_timeout", Duration::from_millis(1), Duration::from_secs(60)))
    {
        out.connect_timeout = d;
    }
    if let Some(d) = m.get("stream_idle_timeout").and_then(|n| {
        dec.duration(n, "envoy.stream_idle_timeout", Duration::from_secs(1), Duration::from_secs(7 * 24 * 3600))
    }) {
        out.stream_idle_timeout = d;
    }
    m.finish(dec, ENVOY_KEYS);
}

fn decode_backends(dec: &mut Decoder, node: &Node) -> Vec<Backend> {
    let Some(items) = dec.seq(node, "backends") else { return Vec::new() };
    let mut out = Vec::new();
    let mut seen: BTreeSet<(ServiceName, SocketAddr)> = BTreeSet::new();
    let mut paths: BTreeMap<ServiceName, String> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("backends[{i}]");
        let Some(b) = decode_backend(dec, item, &path) else { continue };
        if !seen.insert((b.service.clone(), b.socket_addr())) {
            dec.report(&path, item.pos, format!("service {} lists {} twice", b.service, b.socket_addr()));
            continue;
        }
        // Envoy rewrites `/mcp/<service>` to one path per service (the route
        // is per service, not per endpoint), so instances must agree.
        match paths.get(&b.service) {
            Some(p) if *p != b.path => {
                dec.report(
                    &join(&path, "path"),
                    item.pos,
                    format!("every instance of service {} must use the same path: {p:?} was given earlier", b.service),
                );
                continue;
            }
            Some(_) => {}
            None => {
                paths.insert(b.service.clone(), b.path.clone());
            }
        }
        out.push(b);
    }
    out
}

fn decode_backend(dec: &mut Decoder, node: &Node, path: &str) -> Option<Backend> {
    let mut m = dec.map(node, path)?;
    let p = |k: &str| join(path, k);
    let service = match m.get("service") {
        Some(n) => dec.string(n, &p("service")).and_then(|s| match ServiceName::new(&s) {
            Ok(name) => Some(name),
            Err(msg) => {
                dec.report(&p("service"), n.pos, msg);
                None
            }
        }),
        None => {
            dec.report(&p("service"), m.pos(), "missing required key \"service\"");
            None
        }
    };
    let address = match m.get("address") {
        Some(n) => dec.ip(n, &p("address")),
        None => {
            dec.report(&p("address"), m.pos(), "missing required key \"address\"");
            None
        }
    };
    let port = match m.get("port") {
        Some(n) => dec.uint(n, &p("port"), 1, 65535).map(|v| v as u16),
        None => {
            dec.report(&p("port"), m.pos(), "missing required key \"port\"");
            None
        }
    };
    let mcp_path = match m.get("path") {
        Some(n) => dec.string(n, &p("path")).and_then(|s| {
            if s.starts_with('/') && !s.contains(char::is_whitespace) && !s.contains(['?', '#']) {
                Some(s)
            } else {
                dec.report(&p("path"), n.pos, format!("path must start with '/' and hold no spaces, '?' or '#', found {s:?}"));
                None
            }
        }),
        None => Some("/mcp".to_string()),
    };
    let protocol = match m.get("protocol") {
        Some(n) => dec.one_of(
            n,
            &p("protocol"),
            &[("auto", Protocol::Auto), ("legacy", Protocol::Legacy), ("stateless", Protocol::Stateless)],
        ),
        None => Some(Protocol::Auto),
    };
    let weight = match m.get("weight") {
        Some(n) => dec.uint(n, &p("weight"), 1, 128).map(|v| v as u32),
        None => Some(1),
    };
    let standby = match m.get("standby") {
        Some(n) => dec.boolean(n, &p("standby")),
        None => Some(false),
    };
    let health_path = match m.get("health_path") {
        Some(n) => dec.string(n, &p("health_path")).and_then(|s| {
            if s.starts_with('/') && !s.contains(char::is_whitespace) && !s.contains('#') {
                Some(Some(s))
            } else {
                dec.report(&p("health_path"), n.pos, format!("health_path must start with '/' and hold no spaces or '#', found {s:?}"));
                None
            }
        }),
        None => Some(None),
    };
    let mut metadata = BTreeMap::new();
    if let Some(n) = m.get("metadata") {
        if let Some(mut md) = dec.map(n, &p("metadata")) {
            for (k, v) in md.entries() {
                let key_path = p("metadata");
                if let (Some(k), Some(v)) = (dec.string(k, &key_path), dec.string(v, &join(&key_path, "value"))) {
                    metadata.insert(k, v);
                }
            }
        }
    }
    m.finish(dec, BACKEND_KEYS);
    Some(Backend {
        service: service?,
        address: address?,
        port: port?,
        path: mcp_path?,
        protocol: protocol?,
        weight: weight?,
        metadata,
        standby: standby?,
        health_path: health_path?,
    })
}

/// The control plane's own listeners must not collide with each other or
/// with Envoy's listener on the same machine. Port 0 means "any free port"
/// (the OS picks; tests use it) and never collides.
fn check_ports(dec: &mut Decoder, root: &Node, cfg: &Config) {
    let named = [("xds", cfg.xds), ("admin", cfg.admin), ("envoy.listener", cfg.envoy.listener)];
    for (i, (a_name, a)) in named.iter().enumerate() {
        for (b_name, b) in &named[i + 1..] {
            if a.port() != 0 && a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified()) {
                dec.report(b_name, root.pos, format!("{b_name} uses port {} which {a_name} already uses", b.port()));
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::Config;
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(Config::from_yaml("").unwrap(), Config::default());
    }

    #[test]
    fn full_config() {
        let cfg = Config::from_yaml(
            r#"
xds: {address: 127.0.0.1, port: 19000}
admin: {port: 19001}
envoy:
  listener: {address: 0.0.0.0, port: 8080}
  connect_timeout: 250ms
  stream_idle_timeout: 2h
backends:
  - service: weather
    address: 10.0.0.5
    port: 9001
    protocol: stateless
    weight: 3
    metadata: {region: eu, tier: "1"}
  - service: weather
    address: 10.0.0.6
    port: 9001
"#,
        )
        .unwrap();
        assert_eq!(cfg.xds.port(), 19000);
        assert_eq!(cfg.admin, "127.0.0.1:19001".parse().unwrap());
        assert_eq!(cfg.envoy.listener, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(cfg.envoy.connect_timeout, Duration::from_millis(250));
        assert_eq!(cfg.envoy.stream_idle_timeout, Duration::from_secs(7200));
        assert_eq!(cfg.backends.len(), 2);
        let b = &cfg.backends[0];
        assert_eq!((b.path.as_str(), b.protocol, b.weight), ("/mcp", Protocol::Stateless, 3));
        assert_eq!(b.metadata.get("tier").map(String::as_str), Some("1"));
        assert_eq!(cfg.backends[1].weight, 1);
        assert_eq!(cfg.services().len(), 1);
    }

    /// Every problem of an invalid config, as `path@line:col message`.
    pub(in crate::config) fn problems(src: &str) -> Vec<String> {
        Config::from_yaml(src)
            .unwrap_err()
            .problems()
            .iter()
            .map(|p| format!("{}@{}:{} {}", p.path, p.pos.line, p.pos.col, p.message))
            .collect()
    }

    /// Asserts the problems start with these prefixes, in order.
    pub(in crate::config) fn assert_problems(got: &[String], prefixes: &[&str]) {
        assert_eq!(got.len(), prefixes.len(), "{got:#?}");
        for (g, e) in got.iter().zip(prefixes) {
            assert!(g.starts_with(e), "{g} does not start with {e}");
        }
    }

    #[test]
    fn every_problem_is_reported_with_path_and_line() {
        let got = problems(
            "backends:\n  - service: Bad Name\n    address: nowhere\n    port: 0\n    weight: 0\n    colour: red\n  - address: 127.0.0.1\n    port: 1\n",
        );
        let expected_prefixes = [
            "backends[0].service@2:14 service name",
            "backends[0].address@3:14 expected an IP",
            "backends[0].port@4:11 expected an integer from 1 to 65535",
            "backends[0].weight@5:13 expected an integer from 1 to 128",
            "backends[0].colour@6:5 unknown key",
            "backends[1].service@7:5 missing required key",
        ];
        assert_problems(&got, &expected_prefixes);
    }

    #[test]
    fn duplicates_and_path_mismatch() {
        let got = problems(
            "backends:\n  - {service: a, address: 127.0.0.1, port: 1}\n  - {service: a, address: 127.0.0.1, port: 1}\n  - {service: a, address: 127.0.0.1, port: 2, path: /other}\n",
        );
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(got[0].contains("twice"), "{}", got[0]);
        assert!(got[1].starts_with("backends[2].path"), "{}", got[1]);
    }

    #[test]
    fn port_collisions() {
        let got = problems("xds: {port: 10000}\n");
        assert_eq!(got.len(), 1, "{got:#?}");
        assert!(got[0].contains("envoy.listener uses port 10000"), "{}", got[0]);
    }

    #[test]
    fn wrong_shapes() {
        let got = problems("backends: {a: 1}\nenvoy: [1]\n");
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(got[0].contains("expected a list"));
        assert!(got[1].contains("expected a mapping"));
    }

    #[test]
    fn standby_and_health_path() {
        let cfg = Config::from_yaml(
            "backends:\n  - {service: a, address: 127.0.0.1, port: 1, standby: true, health_path: /healthz}\n  - {service: a, address: 127.0.0.1, port: 2}\n",
        )
        .unwrap();
        assert!(cfg.backends[0].standby);
        assert_eq!(cfg.backends[0].health_path.as_deref(), Some("/healthz"));
        assert!(!cfg.backends[1].standby);
        assert_eq!(cfg.backends[1].health_path, None);
        let got = problems("backends:\n  - {service: a, address: 127.0.0.1, port: 1, standby: maybe, health_path: healthz}\n");
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(got[0].starts_with("backends[0].standby@2:56 expected true or false"), "{}", got[0]);
        assert!(got[1].starts_with("backends[0].health_path@2:76 health_path must start"), "{}", got[1]);
    }

    #[test]
    fn bad_paths_and_protocols() {
        let got = problems("backends:\n  - {service: a, address: ::1, port: 1, path: mcp, protocol: sse}\n");
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(got[0].contains("path must start"));
        assert!(got[1].contains("expected one of auto, legacy, stateless"));
    }
}
