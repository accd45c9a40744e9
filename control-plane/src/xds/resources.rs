//! Envoy resources for a fleet of MCP services: one listener, one route
//! table, and a cluster plus a ClusterLoadAssignment per service.
//!
//! Naming: service `weather` is cluster `mcp_weather`, reached at
//! `/mcp/weather` on Envoy's listener, rewritten to the backends' MCP path.
//!
//! This file holds the inputs, the names and the assembly; each resource
//! kind is built in its own file: `listener`, `routes`, `clusters`,
//! `endpoints`, `ecds` (the Wasm filter) and `reports` (the cluster the
//! filters report to). They share this file's imports and helpers.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    ClusterDiscoveryType, CommonLbConfig, DiscoveryType, EdsClusterConfig, LbPolicy,
};
use envoy_types::pb::envoy::config::cluster::v3::{Cluster, OutlierDetection};
use envoy_types::pb::envoy::config::core::v3::{
    address, async_data_source, config_source, data_source, socket_address, Address, AggregatedConfigSource, ApiVersion,
    AsyncDataSource, ConfigSource, DataSource, ExtensionConfigSource, Metadata, SocketAddress,
    TypedExtensionConfig,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    cluster_load_assignment, lb_endpoint, ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints,
};
use envoy_types::pb::envoy::config::listener::v3::{filter, Filter, FilterChain, Listener};
use envoy_types::pb::envoy::config::route::v3::{
    retry_policy::{self as retry_host_predicate_mod, RetryHostPredicate},
    route, route_action, route_match, RetryPolicy, Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost,
};
use envoy_types::pb::envoy::extensions::filters::http::stateful_session::v3::{stateful_session_per_route, StatefulSessionPerRoute};
use envoy_types::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use retry_host_predicate_mod::retry_host_predicate;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::http::stateful_session::v3::StatefulSession;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    http_connection_manager::{CodecType, RouteSpecifier},
    http_filter, HttpConnectionManager, HttpFilter, Rds,
};
use envoy_types::pb::envoy::extensions::filters::http::wasm::v3::Wasm;
use envoy_types::pb::envoy::extensions::http::stateful_session::envelope::v3::{envelope_session_state, EnvelopeSessionState};
use envoy_types::pb::envoy::extensions::wasm::v3::{plugin_config, PluginConfig, VmConfig};
use envoy_types::pb::envoy::r#type::v3::Percent;
use envoy_types::pb::google::protobuf::{self as pbuf, value::Kind, StringValue, Struct, UInt32Value};
use envoy_types::util::pack_any;
use serde::Serialize;

use super::snapshot::{InconsistentSnapshot, References};
use super::{Resource, Snapshot, TypeUrl};
use crate::config::filter::FilterSettings;
use crate::config::policy::{LbPolicy as PolicyLb, Policy, PolicySet, RetryOn};
use crate::config::{Backend, EnvoySettings, ServiceName};
use crate::health::score as health_score;
use crate::health::{EdsVerdict, EndpointKey, HealthMap};
use crate::registry::{Fleet, Service};

mod clusters;
mod ecds;
mod endpoints;
mod listener;
mod reports;
mod routes;

use clusters::cluster;
use ecds::wasm_filter;
#[cfg(test)]
use endpoints::STANDBY_OVERPROVISIONING;
use endpoints::load_assignment;
use listener::listener;
use reports::{reports_cluster, reports_endpoints};
use routes::route_configuration;

pub const LISTENER_NAME: &str = "mcp_listener";
pub const ROUTE_CONFIG_NAME: &str = "mcp_routes";
/// The metadata namespace our endpoint labels live under.
pub const METADATA_NAMESPACE: &str = "only1mcp";
/// Legacy MCP sessions are pinned to the host that created them.
pub const SESSION_HEADER: &str = "mcp-session-id";

pub fn cluster_name(service: &ServiceName) -> String {
    format!("mcp_{service}")
}

pub fn route_prefix(service: &ServiceName) -> String {
    format!("/mcp/{service}")
}

/// The name of the Wasm filter in the HTTP filter chain and of its ECDS resource.
pub const FILTER_NAME: &str = "only1mcp";
/// The cluster the filter sends its reports to: the control plane's admin API.
pub const REPORTS_CLUSTER: &str = "only1mcp_control_plane";

/// Everything a snapshot is built from.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub envoy: &'a EnvoySettings,
    pub fleet: &'a Fleet,
    /// The Wasm filter, if enabled.
    pub filter: Option<&'a FilterSettings>,
    /// The filter's configuration (JSON) for the policy in force.
    pub filter_json: &'a str,
    /// Where the filters send reports (the control plane's admin address).
    pub reports_to: Option<SocketAddr>,
    /// Hosts a filter in some Envoy holds open: unhealthy in every Envoy.
    pub ejected: &'a BTreeSet<SocketAddr>,
    /// The active health checks' verdicts; missing endpoints are unknown.
    pub health: &'a HealthMap,
    /// The policy in force (load balancing, retries, affinity, breaker).
    pub policy: &'a Policy,
}

/// Builds the complete, checked snapshot.
pub fn build_snapshot(inputs: &Inputs<'_>) -> Result<Snapshot, InconsistentSnapshot> {
    let mut resources = Vec::new();
    let mut refs = References::default();
    for svc in inputs.fleet.services.values() {
        resources.push((TypeUrl::Cluster, cluster(inputs, svc)));
        resources.push((TypeUrl::ClusterLoadAssignment, load_assignment(svc, inputs.ejected, inputs.health)));
        refs.route_clusters.insert(cluster_name(&svc.name));
    }
    if let (Some(_), Some(addr)) = (inputs.filter, inputs.reports_to) {
        resources.push((TypeUrl::Cluster, reports_cluster(addr)));
        resources.push((TypeUrl::ClusterLoadAssignment, reports_endpoints(addr)));
    }
    if let Some(f) = inputs.filter {
        resources.push((TypeUrl::ExtensionConfig, wasm_filter(f, inputs.filter_json)));
        refs.listener_extensions.insert(FILTER_NAME.to_string());
    }
    resources.push((TypeUrl::RouteConfiguration, route_configuration(inputs.fleet, inputs.policy)));
    resources.push((TypeUrl::Listener, listener(inputs.envoy, inputs.filter.is_some())));
    refs.listener_routes = BTreeSet::from([ROUTE_CONFIG_NAME.to_string()]);
    Snapshot::new(resources, refs)
}

fn fingerprint(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

fn ads() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..Default::default()
    }
}

fn duration(d: Duration) -> pbuf::Duration {
    pbuf::Duration { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }
}

fn socket_address(addr: SocketAddr) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: addr.ip().to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(addr.port()))),
            ..Default::default()
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::registry::Registry;
    use prost::Message;

    fn fleet(yaml: &str) -> (Config, Fleet) {
        let cfg = Config::from_yaml(yaml).unwrap();
        let mut r = Registry::new();
        r.set("static", cfg.backends.clone());
        let f = r.fleet();
        (cfg, f)
    }

    static NONE: BTreeSet<SocketAddr> = BTreeSet::new();
    static NO_HEALTH: HealthMap = HealthMap::new();
    use envoy_types::pb::envoy::config::core::v3::HealthStatus;

    static DEFAULT_POLICY: std::sync::LazyLock<Policy> = std::sync::LazyLock::new(Policy::default);

    fn inputs<'a>(cfg: &'a Config, fleet: &'a Fleet) -> Inputs<'a> {
        let policy = match &cfg.policy {
            crate::config::PolicySource::Inline(p) => p,
            _ => &*DEFAULT_POLICY,
        };
        Inputs { envoy: &cfg.envoy, fleet, filter: cfg.filter.as_ref(), filter_json: "{}", reports_to: None, ejected: &NONE, health: &NO_HEALTH, policy }
    }

    const TWO: &str = "backends:\n  - {service: weather, address: 127.0.0.1, port: 9001, weight: 2, metadata: {zone: a, rack: b}}\n  - {service: files, address: 127.0.0.2, port: 9002, path: /rpc}\n";

    #[test]
    fn snapshot_has_one_cluster_and_route_per_service() {
        let (cfg, f) = fleet(TWO);
        let s = build_snapshot(&inputs(&cfg, &f)).unwrap();
        let counts = s.counts();
        assert_eq!(counts[&TypeUrl::Cluster], 2);
        assert_eq!(counts[&TypeUrl::ClusterLoadAssignment], 2);
        assert_eq!(counts[&TypeUrl::Listener], 1);
        assert_eq!(counts[&TypeUrl::RouteConfiguration], 1);
        let rc = RouteConfiguration::decode(s.get(TypeUrl::RouteConfiguration, ROUTE_CONFIG_NAME).unwrap().body.value.as_slice()).unwrap();
        let routes = &rc.virtual_hosts[0].routes;
        let files = routes.iter().find(|r| r.name == "files").unwrap();
        let Some(route::Action::Route(action)) = &files.action else { panic!() };
        assert_eq!(action.prefix_rewrite, "/rpc");
        assert_eq!(action.timeout, Some(pbuf::Duration { seconds: 0, nanos: 0 }));
        assert_eq!(action.cluster_specifier, Some(route_action::ClusterSpecifier::Cluster("mcp_files".into())));
        let cla = ClusterLoadAssignment::decode(s.get(TypeUrl::ClusterLoadAssignment, "mcp_weather").unwrap().body.value.as_slice()).unwrap();
        let ep = &cla.endpoints[0].lb_endpoints[0];
        assert_eq!(ep.load_balancing_weight, Some(UInt32Value { value: 2 }));
        let md = &ep.metadata.as_ref().unwrap().filter_metadata[METADATA_NAMESPACE];
        assert_eq!(md.fields.len(), 3);
    }

    #[test]
    fn versions_are_stable_and_local() {
        let (cfg, f) = fleet(TWO);
        let a = build_snapshot(&inputs(&cfg, &f)).unwrap();
        let b = build_snapshot(&inputs(&cfg, &f)).unwrap();
        for t in TypeUrl::ALL {
            let va: Vec<&String> = a.of_type(t).values().map(|r| &r.version).collect();
            let vb: Vec<&String> = b.of_type(t).values().map(|r| &r.version).collect();
            assert_eq!(va, vb, "{t} versions must be deterministic");
        }
        // Changing one endpoint changes only that service's CLA.
        let (cfg2, f2) = fleet(&TWO.replace("port: 9001", "port: 9003"));
        let c = build_snapshot(&inputs(&cfg2, &f2)).unwrap();
        assert_ne!(a.get(TypeUrl::ClusterLoadAssignment, "mcp_weather").unwrap().version, c.get(TypeUrl::ClusterLoadAssignment, "mcp_weather").unwrap().version);
        assert_eq!(a.get(TypeUrl::ClusterLoadAssignment, "mcp_files").unwrap().version, c.get(TypeUrl::ClusterLoadAssignment, "mcp_files").unwrap().version);
        assert_eq!(a.get(TypeUrl::Cluster, "mcp_weather").unwrap().version, c.get(TypeUrl::Cluster, "mcp_weather").unwrap().version);
        assert_eq!(a.get(TypeUrl::RouteConfiguration, ROUTE_CONFIG_NAME).unwrap().version, c.get(TypeUrl::RouteConfiguration, ROUTE_CONFIG_NAME).unwrap().version);
    }

    #[test]
    fn empty_fleet_is_still_a_valid_snapshot() {
        let cfg = Config::default();
        let s = build_snapshot(&inputs(&cfg, &Fleet::default())).unwrap();
        assert_eq!(s.counts()[&TypeUrl::Listener], 1);
        assert_eq!(s.counts()[&TypeUrl::Cluster], 0);
        assert_eq!(s.counts()[&TypeUrl::ExtensionConfig], 0, "no filter configured");
    }

    #[test]
    fn filter_comes_over_ecds_with_a_reports_cluster() {
        let (cfg, f) = fleet(&format!(
            "{TWO}filter:\n  wasm: /opt/f.wasm\npolicy:\n  defaults:\n    breaker: {{consecutive_failures: 3, open_base: 1500ms}}\n  services:\n    files:\n      load_balancing: {{policy: round_robin}}\n      retries: {{attempts: 2, on: [5xx]}}\n      session_affinity: {{enabled: false}}\n"
        ));
        let mut inp = inputs(&cfg, &f);
        let json = inp.policy.filter_json(cluster_name);
        inp.filter_json = &json;
        inp.reports_to = Some("127.0.0.1:18001".parse().unwrap());
        let s = build_snapshot(&inp).unwrap();
        assert_eq!(s.counts()[&TypeUrl::ExtensionConfig], 1);
        assert!(s.get(TypeUrl::Cluster, REPORTS_CLUSTER).is_some());
        let ext = TypedExtensionConfig::decode(s.get(TypeUrl::ExtensionConfig, FILTER_NAME).unwrap().body.value.as_slice()).unwrap();
        let wasm = Wasm::decode(ext.typed_config.unwrap().value.as_slice()).unwrap();
        let plugin = wasm.config.unwrap();
        let conf = StringValue::decode(plugin.configuration.unwrap().value.as_slice()).unwrap();
        assert!(conf.value.contains("\"consecutive_failures\":3"), "{}", conf.value);
        let c = Cluster::decode(s.get(TypeUrl::Cluster, "mcp_weather").unwrap().body.value.as_slice()).unwrap();
        let od = c.outlier_detection.unwrap();
        assert_eq!(od.consecutive_5xx, Some(UInt32Value { value: 6 }), "outlier detection trips behind the breaker");
        assert_eq!(od.base_ejection_time, Some(pbuf::Duration { seconds: 1, nanos: 500_000_000 }));
        assert_eq!(c.lb_policy, LbPolicy::LeastRequest as i32);
        // Per-service policy: files uses round robin, retries, no affinity.
        let files = Cluster::decode(s.get(TypeUrl::Cluster, "mcp_files").unwrap().body.value.as_slice()).unwrap();
        assert_eq!(files.lb_policy, LbPolicy::RoundRobin as i32);
        let rc = RouteConfiguration::decode(s.get(TypeUrl::RouteConfiguration, ROUTE_CONFIG_NAME).unwrap().body.value.as_slice()).unwrap();
        let route_of = |name: &str| rc.virtual_hosts[0].routes.iter().find(|r| r.name == name).unwrap().clone();
        let Some(route::Action::Route(files_action)) = route_of("files").action else { panic!() };
        let retry = files_action.retry_policy.unwrap();
        assert_eq!((retry.retry_on.as_str(), retry.num_retries), ("5xx", Some(UInt32Value { value: 2 })));
        assert!(route_of("files").typed_per_filter_config.contains_key("envoy.filters.http.stateful_session"));
        let Some(route::Action::Route(weather_action)) = route_of("weather").action else { panic!() };
        assert!(weather_action.retry_policy.is_none());
        assert!(route_of("weather").typed_per_filter_config.is_empty());
    }

    #[test]
    fn health_verdicts_and_standbys_shape_the_load_assignment() {
        use crate::health::{ActiveVerdict, Health};
        let (cfg, f) = fleet(
            "backends:\n  - {service: a, address: 127.0.0.1, port: 1, weight: 4}\n  - {service: a, address: 127.0.0.1, port: 2}\n  - {service: a, address: 127.0.0.1, port: 3, standby: true}\n  - {service: b, address: 127.0.0.1, port: 4}\n",
        );
        let key = |svc: &str, port| EndpointKey { service: ServiceName::new(svc).unwrap(), addr: SocketAddr::from(([127, 0, 0, 1], port)) };
        let health: HealthMap = [
            (key("a", 1), ActiveVerdict { health: Health::Healthy, score: 2 }),
            (key("a", 2), ActiveVerdict { health: Health::Unhealthy, score: 4 }),
            (key("b", 4), ActiveVerdict { health: Health::Degraded, score: 4 }),
        ]
        .into();
        let mut inp = inputs(&cfg, &f);
        let before = build_snapshot(&inp).unwrap();
        inp.health = &health;
        let s = build_snapshot(&inp).unwrap();
        let cla = |snap: &Snapshot, name| ClusterLoadAssignment::decode(snap.get(TypeUrl::ClusterLoadAssignment, name).unwrap().body.value.as_slice()).unwrap();
        let a = cla(&s, "mcp_a");
        let summary: Vec<(u32, Vec<(i32, u32)>)> = a
            .endpoints
            .iter()
            .map(|l| (l.priority, l.lb_endpoints.iter().map(|e| (e.health_status, e.load_balancing_weight.unwrap().value)).collect()))
            .collect();
        let (h, u) = (HealthStatus::Healthy as i32, HealthStatus::Unhealthy as i32);
        assert_eq!(summary, vec![(0, vec![(h, 2), (u, 1)]), (1, vec![(h, 1)])], "weight 4 at half score is 2; the unprobed standby is healthy");
        assert_eq!(a.policy.unwrap().overprovisioning_factor.unwrap().value, STANDBY_OVERPROVISIONING);
        let b = cla(&s, "mcp_b");
        assert_eq!(b.endpoints.len(), 1, "no standby, no second priority");
        assert!(b.policy.is_none());
        assert_eq!(b.endpoints[0].lb_endpoints[0].health_status, HealthStatus::Degraded as i32);
        // A health change is a new EDS version for that cluster only.
        assert_ne!(before.get(TypeUrl::ClusterLoadAssignment, "mcp_a").unwrap().version, s.get(TypeUrl::ClusterLoadAssignment, "mcp_a").unwrap().version);
        assert_eq!(before.get(TypeUrl::Cluster, "mcp_a").unwrap().version, s.get(TypeUrl::Cluster, "mcp_a").unwrap().version);
    }

    #[test]
    fn ejected_hosts_are_unhealthy() {
        let (cfg, f) = fleet(TWO);
        let ejected: BTreeSet<SocketAddr> = ["127.0.0.1:9001".parse().unwrap()].into();
        let mut inp = inputs(&cfg, &f);
        inp.ejected = &ejected;
        let s = build_snapshot(&inp).unwrap();
        let before = build_snapshot(&inputs(&cfg, &f)).unwrap();
        let cla = ClusterLoadAssignment::decode(s.get(TypeUrl::ClusterLoadAssignment, "mcp_weather").unwrap().body.value.as_slice()).unwrap();
        assert_eq!(cla.endpoints[0].lb_endpoints[0].health_status, HealthStatus::Unhealthy as i32);
        assert_ne!(s.get(TypeUrl::ClusterLoadAssignment, "mcp_weather").unwrap().version, before.get(TypeUrl::ClusterLoadAssignment, "mcp_weather").unwrap().version);
        assert_eq!(s.get(TypeUrl::ClusterLoadAssignment, "mcp_files").unwrap().version, before.get(TypeUrl::ClusterLoadAssignment, "mcp_files").unwrap().version);
    }
}
