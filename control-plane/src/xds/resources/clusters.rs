//! One EDS cluster per service: load balancing, health handling and
//! Envoy's own outlier detection as the safety net.

use super::*;

pub(super) fn cluster(inputs: &Inputs<'_>, svc: &Service) -> Resource {
    let settings = inputs.envoy;
    let name = cluster_name(&svc.name);
    let c = Cluster {
        name: name.clone(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig { eds_config: Some(ads()), service_name: String::new() }),
        connect_timeout: Some(duration(settings.connect_timeout)),
        // Least request (power of two choices on outstanding requests) by
        // default: MCP calls vary wildly in length, so request counts say
        // more than round robin. The policy may choose otherwise.
        lb_policy: match inputs.policy.for_service(&svc.name).lb_policy {
            PolicyLb::LeastRequest => LbPolicy::LeastRequest,
            PolicyLb::RoundRobin => LbPolicy::RoundRobin,
            PolicyLb::Random => LbPolicy::Random,
        } as i32,
        common_lb_config: Some(CommonLbConfig {
            // Envoy delays health and weight changes by 1 s by default to
            // batch them; our control plane already batches, and health
            // verdicts must land fast, so apply them at once.
            update_merge_window: Some(duration(Duration::ZERO)),
            // Envoy's default panic mode (ignore health once 50% of hosts are
            // unhealthy) would send traffic to hosts we know are dead; our
            // verdicts are deliberate, so honour them down to zero.
            healthy_panic_threshold: Some(Percent { value: 0.0 }),
            ..Default::default()
        }),
        outlier_detection: Some(outlier_detection(inputs.policy.for_service(&svc.name), inputs.filter.is_some())),
        ..Default::default()
    };
    let p = inputs.policy.for_service(&svc.name);
    let fp = (settings.connect_timeout, &svc.name, p.lb_policy, p.consecutive_failures, p.open_base, p.open_max, inputs.filter.is_some());
    Resource::new(name, pack_any(c), &fingerprint(&fp))
}

/// Envoy's own outlier detection, set from the filter's breaker thresholds:
/// the local safety net while the control plane is unreachable, and the
/// only passive check when the filter is off. It sees HTTP 5xx and
/// connection failures, not hung hosts or JSON-RPC errors.
pub(super) fn outlier_detection(p: &PolicySet, with_filter: bool) -> OutlierDetection {
    let u32v = |v: u32| Some(UInt32Value { value: v });
    // Twice the breaker's count: with the filter on, its breaker trips
    // first (so its verdict, report and JSON-RPC fast-fail come first, and
    // the failures it counts are not hidden behind Envoy's plain "no
    // healthy upstream"); Envoy's ejection follows only if the filter or
    // its reports are not working.
    let n = p.consecutive_failures.saturating_mul(if with_filter { 2 } else { 1 });
    OutlierDetection {
        consecutive_5xx: u32v(n),
        consecutive_gateway_failure: u32v(n),
        consecutive_local_origin_failure: u32v(n),
        split_external_local_origin_errors: true,
        interval: Some(duration(Duration::from_secs(1))),
        base_ejection_time: Some(duration(p.open_base)),
        max_ejection_time: Some(duration(p.open_max)),
        // Every host may be ejected: the panic threshold is 0 as well.
        max_ejection_percent: u32v(100),
        // Rate-based ejection needs more hosts than MCP services usually have.
        enforcing_success_rate: u32v(0),
        ..Default::default()
    }
}
