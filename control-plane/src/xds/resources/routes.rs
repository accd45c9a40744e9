//! The route table: `/mcp/<service>` to its cluster, with the policy's
//! retries and session affinity.

use super::*;

pub(super) fn route_configuration(fleet: &Fleet, policy: &Policy) -> Resource {
    let routes = fleet
        .services
        .values()
        .map(|svc| {
            let p = policy.for_service(&svc.name);
            Route {
            name: svc.name.to_string(),
            r#match: Some(RouteMatch {
                path_specifier: Some(route_match::PathSpecifier::PathSeparatedPrefix(route_prefix(&svc.name))),
                ..Default::default()
            }),
            action: Some(route::Action::Route(RouteAction {
                cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster_name(&svc.name))),
                prefix_rewrite: svc.path.clone(),
                // Long tool calls and SSE streams: no overall deadline (the
                // 15 s default breaks them); idle streams are bounded by the
                // connection manager's stream_idle_timeout instead.
                timeout: Some(duration(Duration::ZERO)),
                retry_policy: retry_policy(p),
                ..Default::default()
            })),
            typed_per_filter_config: if p.session_affinity {
                Default::default()
            } else {
                let off = StatefulSessionPerRoute { r#override: Some(stateful_session_per_route::Override::Disabled(true)) };
                [("envoy.filters.http.stateful_session".to_string(), pack_any(off))].into_iter().collect()
            },
            ..Default::default()
        }})
        .collect();
    let rc = RouteConfiguration {
        name: ROUTE_CONFIG_NAME.into(),
        virtual_hosts: vec![VirtualHost { name: "mcp".into(), domains: vec!["*".into()], routes, ..Default::default() }],
        ..Default::default()
    };
    // What the routes are made of: per service its path and the route
    // parts of its policy (a breaker change must not touch RDS).
    let fp: Vec<RouteFingerprint<'_>> = fleet
        .services
        .values()
        .map(|s| {
            let p = policy.for_service(&s.name);
            (&s.name, s.path.as_str(), p.retry_attempts, &p.retry_on, p.per_try_timeout, p.session_affinity)
        })
        .collect();
    Resource::new(ROUTE_CONFIG_NAME, pack_any(rc), &fingerprint(&fp))
}

type RouteFingerprint<'a> = (&'a ServiceName, &'a str, u32, &'a Vec<RetryOn>, Option<Duration>, bool);

/// Retries from the policy; none by default (MCP calls are not always
/// idempotent, so retrying is the operator's choice).
pub(super) fn retry_policy(p: &PolicySet) -> Option<RetryPolicy> {
    if p.retry_attempts == 0 {
        return None;
    }
    Some(RetryPolicy {
        retry_on: p.retry_on.iter().map(|r| r.envoy_name()).collect::<Vec<_>>().join(","),
        num_retries: Some(UInt32Value { value: p.retry_attempts }),
        per_try_timeout: p.per_try_timeout.map(duration),
        // Never retry on the host that just failed.
        retry_host_predicate: vec![RetryHostPredicate {
            name: "envoy.retry_host_predicates.previous_hosts".into(),
            config_type: Some(retry_host_predicate::ConfigType::TypedConfig(pack_any(PreviousHostsPredicate::default()))),
        }],
        host_selection_retry_max_attempts: 3,
        ..Default::default()
    })
}
