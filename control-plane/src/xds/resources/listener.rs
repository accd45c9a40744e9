//! The one listener: HTTP connection manager with session affinity, the
//! Wasm filter's ECDS slot and the router.

use super::*;

pub(super) fn listener(settings: &EnvoySettings, with_filter: bool) -> Resource {
    let mut http_filters = vec![session_filter()];
    if with_filter {
        http_filters.push(wasm_filter_slot());
    }
    http_filters.push(router_filter());
    let hcm = HttpConnectionManager {
        stat_prefix: "mcp".into(),
        codec_type: CodecType::Auto as i32,
        route_specifier: Some(RouteSpecifier::Rds(Rds { config_source: Some(ads()), route_config_name: ROUTE_CONFIG_NAME.into() })),
        // SSE streams sit idle between events; Envoy's 5 min default would cut them.
        stream_idle_timeout: Some(duration(settings.stream_idle_timeout)),
        http_filters,
        ..Default::default()
    };
    let l = Listener {
        name: LISTENER_NAME.into(),
        address: Some(socket_address(settings.listener)),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    Resource::new(LISTENER_NAME, pack_any(l), &fingerprint(&(settings.listener, settings.stream_idle_timeout, with_filter)))
}

/// Pins a legacy session to its host. The server creates `mcp-session-id`
/// only after Envoy chose the host, so hashing cannot work; the envelope
/// mode wraps the host address into the id the client sees.
pub(super) fn session_filter() -> HttpFilter {
    let state = EnvelopeSessionState { header: Some(envelope_session_state::Header { name: SESSION_HEADER.into() }) };
    let filter = StatefulSession {
        session_state: Some(TypedExtensionConfig {
            name: "envoy.http.stateful_session.envelope".into(),
            typed_config: Some(pack_any(state)),
        }),
        ..Default::default()
    };
    HttpFilter {
        name: "envoy.filters.http.stateful_session".into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(filter))),
        ..Default::default()
    }
}

/// The Wasm filter's place in the chain. Its configuration comes over ECDS,
/// so a policy change replaces the filter config without draining the
/// listener; until the first config arrives the listener keeps warming.
pub(super) fn wasm_filter_slot() -> HttpFilter {
    HttpFilter {
        name: FILTER_NAME.into(),
        config_type: Some(http_filter::ConfigType::ConfigDiscovery(ExtensionConfigSource {
            config_source: Some(ads()),
            type_urls: vec![<Wasm as prost::Name>::type_url()],
            ..Default::default()
        })),
        ..Default::default()
    }
}

pub(super) fn router_filter() -> HttpFilter {
    HttpFilter {
        name: "envoy.filters.http.router".into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(Router::default()))),
        ..Default::default()
    }
}
