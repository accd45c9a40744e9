//! The cluster the filters post their reports to: the control plane's
//! own admin API.

use super::*;

/// A static cluster for the control plane's admin API, where filters post
/// their reports (`dispatch_http_call` needs a cluster Envoy knows).
pub(super) fn reports_cluster(addr: SocketAddr) -> Resource {
    let c = Cluster {
        name: REPORTS_CLUSTER.into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig { eds_config: Some(ads()), service_name: String::new() }),
        connect_timeout: Some(duration(Duration::from_secs(1))),
        ..Default::default()
    };
    Resource::new(REPORTS_CLUSTER, pack_any(c), &fingerprint(&addr))
}

pub(super) fn reports_endpoints(addr: SocketAddr) -> Resource {
    let cla = ClusterLoadAssignment {
        cluster_name: REPORTS_CLUSTER.into(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: vec![LbEndpoint {
                host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                    address: Some(socket_address(addr)),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    Resource::new(REPORTS_CLUSTER, pack_any(cla), &fingerprint(&addr))
}
