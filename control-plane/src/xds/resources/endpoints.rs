//! Each service's ClusterLoadAssignment: endpoints with health, weight
//! and metadata, standbys at a lower priority.

use super::*;

/// Primaries at priority 0, standbys (if any) at priority 1. Envoy moves
/// load to a lower priority as the higher one loses healthy hosts, by
/// default already when it is below 100/1.4 = 71% healthy. With standbys
/// the overprovisioning factor is raised so that one healthy (or degraded)
/// primary keeps all the traffic: standbys take over only when no primary
/// can serve, and hand back as soon as one returns.
pub(super) fn load_assignment(svc: &Service, ejected: &BTreeSet<SocketAddr>, health: &HealthMap) -> Resource {
    let name = cluster_name(&svc.name);
    let verdicts: Vec<EdsVerdict> = svc
        .endpoints
        .iter()
        .map(|b| {
            let key = EndpointKey { service: svc.name.clone(), addr: b.socket_addr() };
            let active = health.get(&key).copied().unwrap_or_default();
            health_score::verdict(active, ejected.contains(&b.socket_addr()), b.weight)
        })
        .collect();
    let mut primaries = Vec::new();
    let mut standbys = Vec::new();
    for (b, v) in svc.endpoints.iter().zip(&verdicts) {
        if b.standby { &mut standbys } else { &mut primaries }.push(lb_endpoint(b, *v));
    }
    let mut endpoints = vec![LocalityLbEndpoints { lb_endpoints: primaries, priority: 0, ..Default::default() }];
    let mut policy = None;
    if !standbys.is_empty() {
        endpoints.push(LocalityLbEndpoints { lb_endpoints: standbys, priority: 1, ..Default::default() });
        policy = Some(cluster_load_assignment::Policy {
            overprovisioning_factor: Some(UInt32Value { value: STANDBY_OVERPROVISIONING }),
            ..Default::default()
        });
    }
    let cla = ClusterLoadAssignment { cluster_name: name.clone(), endpoints, policy, ..Default::default() };
    Resource::new(name, pack_any(cla), &fingerprint(&(&svc.endpoints, verdicts)))
}

/// Percent: a priority with 1 healthy host in 1,000 still counts as fully
/// healthy, so nothing spills to standbys while a primary serves.
pub(super) const STANDBY_OVERPROVISIONING: u32 = 100_000;

pub(super) fn lb_endpoint(b: &Backend, v: EdsVerdict) -> LbEndpoint {
    let mut fields = std::collections::HashMap::new();
    for (k, v) in &b.metadata {
        fields.insert(k.clone(), pbuf::Value { kind: Some(Kind::StringValue(v.clone())) });
    }
    fields.insert("service".into(), pbuf::Value { kind: Some(Kind::StringValue(b.service.to_string())) });
    let metadata = Metadata {
        filter_metadata: [(METADATA_NAMESPACE.to_string(), Struct { fields })].into_iter().collect(),
        ..Default::default()
    };
    LbEndpoint {
        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
            address: Some(socket_address(b.socket_addr())),
            ..Default::default()
        })),
        // UNHEALTHY overrides any Envoy-side check: the host gets no
        // traffic. DEGRADED gets traffic only when too few are healthy.
        health_status: v.eds_status() as i32,
        // The configured weight scaled by the probe score, at least 1.
        load_balancing_weight: Some(UInt32Value { value: v.weight }),
        metadata: Some(metadata),
    }
}
