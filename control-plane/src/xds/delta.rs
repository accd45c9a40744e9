//! The incremental (delta) ADS protocol for one stream, as a plain state
//! machine, the twin of `sotw.rs`.
//!
//! Per type URL it tracks what Envoy subscribed to (names, or wildcard) and
//! which version of each resource Envoy holds. A response carries only the
//! resources whose version differs and the names that went away. One
//! response is in flight per type; a NACK leaves Envoy's versions as they
//! were and marks the rejected versions so they are not sent again.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource as PbResource};

use super::{Snapshot, TypeUrl};
pub use super::sotw::RequestKind;

#[derive(Debug)]
struct InFlight {
    nonce: String,
    updated: BTreeMap<String, String>,
    removed: BTreeSet<String>,
}

#[derive(Debug, Default)]
struct TypeState {
    requested: bool,
    /// Send a response even if it is empty (the first one, so Envoy's
    /// initialisation does not wait for a timeout).
    must_answer: bool,
    wildcard: bool,
    names: BTreeSet<String>,
    /// Name -> version Envoy holds, as far as its ACKs tell.
    known: BTreeMap<String, String>,
    nacked: BTreeMap<String, String>,
    in_flight: Option<InFlight>,
}

#[derive(Debug, Default)]
pub struct DeltaStream {
    types: BTreeMap<TypeUrl, TypeState>,
    nonce: u64,
    /// Clusters that Envoy's accepted routes point at; their removal waits.
    routed_clusters: BTreeSet<String>,
    /// For the RDS response in flight: the clusters its routes point at.
    rds_in_flight_clusters: BTreeSet<String>,
}

impl DeltaStream {
    pub fn new() -> DeltaStream {
        DeltaStream::default()
    }

    pub fn on_request(&mut self, req: &DeltaDiscoveryRequest) -> RequestKind {
        let Some(t) = TypeUrl::parse(&req.type_url) else {
            return RequestKind::UnknownType(req.type_url.clone());
        };
        let state = self.types.entry(t).or_default();
        if !state.requested {
            state.requested = true;
            state.must_answer = true;
            state.known = req.initial_resource_versions.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            // An empty first subscription to a full-state type is the legacy wildcard.
            state.wildcard = t.is_full_state() && req.resource_names_subscribe.is_empty();
        }
        for name in &req.resource_names_subscribe {
            if name == "*" {
                state.wildcard = true;
            } else {
                state.names.insert(name.clone());
            }
        }
        for name in &req.resource_names_unsubscribe {
            if name == "*" {
                state.wildcard = false;
            } else {
                state.names.remove(name);
                state.known.remove(name);
            }
        }
        if req.response_nonce.is_empty() {
            return RequestKind::Initial(t);
        }
        match state.in_flight.take() {
            Some(f) if f.nonce == req.response_nonce => {
                if let Some(err) = &req.error_detail {
                    state.nacked.extend(f.updated);
                    RequestKind::Nack { type_url: t, version: f.nonce, message: err.message.clone() }
                } else {
                    for name in &f.removed {
                        state.known.remove(name);
                    }
                    for name in f.updated.keys() {
                        state.nacked.remove(name);
                    }
                    state.known.extend(f.updated);
                    if t == TypeUrl::RouteConfiguration {
                        self.routed_clusters = std::mem::take(&mut self.rds_in_flight_clusters);
                    }
                    RequestKind::Ack { type_url: t, version: f.nonce }
                }
            }
            other => {
                state.in_flight = other;
                RequestKind::Stale(t)
            }
        }
    }

    pub fn next_responses(&mut self, snap: &Snapshot) -> Vec<DeltaDiscoveryResponse> {
        let mut out = Vec::new();
        for t in TypeUrl::ALL {
            let routed = &self.routed_clusters;
            let Some(state) = self.types.get_mut(&t) else { continue };
            if !state.requested || state.in_flight.is_some() {
                continue;
            }
            let all = snap.of_type(t);
            let wanted = |name: &str| state.wildcard || state.names.contains(name);
            let mut resources = Vec::new();
            let mut updated = BTreeMap::new();
            for (name, r) in all.iter().filter(|(n, _)| wanted(n)) {
                let held = state.known.get(name) == Some(&r.version);
                let rejected = state.nacked.get(name) == Some(&r.version);
                if !held && !rejected {
                    updated.insert(name.clone(), r.version.clone());
                    resources.push(PbResource {
                        name: name.clone(),
                        version: r.version.clone(),
                        resource: Some(r.body.clone()),
                        ..Default::default()
                    });
                }
            }
            let removed: BTreeSet<String> = state
                .known
                .keys()
                .filter(|n| !all.contains_key(*n) || !wanted(n))
                .filter(|n| !(t == TypeUrl::Cluster && routed.contains(*n)))
                .cloned()
                .collect();
            if resources.is_empty() && removed.is_empty() && !state.must_answer {
                continue;
            }
            state.must_answer = false;
            self.nonce += 1;
            let nonce = self.nonce.to_string();
            if t == TypeUrl::RouteConfiguration {
                self.rds_in_flight_clusters = snap.references().route_clusters.clone();
            }
            let updated_clusters: Vec<String> =
                if t == TypeUrl::Cluster { updated.keys().cloned().collect() } else { Vec::new() };
            out.push(DeltaDiscoveryResponse {
                system_version_info: Snapshot::version_of(all.values()),
                resources,
                type_url: t.as_str().to_string(),
                removed_resources: removed.iter().cloned().collect(),
                nonce: nonce.clone(),
                ..Default::default()
            });
            if let Some(state) = self.types.get_mut(&t) {
                state.in_flight = Some(InFlight { nonce, updated, removed });
            }
            // An updated cluster warms again and needs its endpoints resent.
            if let Some(eds) = self.types.get_mut(&TypeUrl::ClusterLoadAssignment) {
                for c in updated_clusters {
                    eds.known.remove(&c);
                }
            }
        }
        out
    }

    /// The versions Envoy holds for a type, by name.
    pub fn known(&self, t: TypeUrl) -> BTreeMap<String, String> {
        self.types.get(&t).map(|s| s.known.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::snapshot::tests::res;
    use super::super::snapshot::References;
    use super::*;
    use envoy_types::pb::google::rpc::Status;

    fn snap(clusters: &[(&str, &str)]) -> Snapshot {
        let mut rs = Vec::new();
        for (name, content) in clusters {
            rs.push(res(TypeUrl::Cluster, name, content));
            rs.push(res(TypeUrl::ClusterLoadAssignment, name, content));
        }
        Snapshot::new(rs, References::default()).unwrap()
    }

    fn req(t: TypeUrl, sub: &[&str], unsub: &[&str], nonce: &str) -> DeltaDiscoveryRequest {
        DeltaDiscoveryRequest {
            type_url: t.as_str().into(),
            resource_names_subscribe: sub.iter().map(|s| s.to_string()).collect(),
            resource_names_unsubscribe: unsub.iter().map(|s| s.to_string()).collect(),
            response_nonce: nonce.into(),
            ..Default::default()
        }
    }

    fn names(r: &DeltaDiscoveryResponse) -> Vec<&str> {
        r.resources.iter().map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn wildcard_add_change_remove() {
        let mut st = DeltaStream::new();
        assert_eq!(st.on_request(&req(TypeUrl::Cluster, &[], &[], "")), RequestKind::Initial(TypeUrl::Cluster));
        let out = st.next_responses(&snap(&[("a", "1"), ("b", "1")]));
        assert_eq!(out.len(), 1);
        assert_eq!(names(&out[0]), vec!["a", "b"]);
        assert!(out[0].removed_resources.is_empty());
        assert!(matches!(st.on_request(&req(TypeUrl::Cluster, &[], &[], &out[0].nonce)), RequestKind::Ack { .. }));
        assert!(st.next_responses(&snap(&[("a", "1"), ("b", "1")])).is_empty(), "nothing changed");
        // a changes, b goes away, c arrives: only the difference is sent.
        let out = st.next_responses(&snap(&[("a", "2"), ("c", "1")]));
        assert_eq!(names(&out[0]), vec!["a", "c"]);
        assert_eq!(out[0].removed_resources, vec!["b".to_string()]);
        st.on_request(&req(TypeUrl::Cluster, &[], &[], &out[0].nonce));
        assert_eq!(st.known(TypeUrl::Cluster).keys().cloned().collect::<Vec<_>>(), vec!["a", "c"]);
    }

    #[test]
    fn explicit_subscribe_and_unsubscribe() {
        let s = snap(&[("a", "1"), ("b", "1")]);
        let mut st = DeltaStream::new();
        st.on_request(&req(TypeUrl::ClusterLoadAssignment, &["a"], &[], ""));
        let out = st.next_responses(&s);
        assert_eq!(names(&out[0]), vec!["a"]);
        st.on_request(&req(TypeUrl::ClusterLoadAssignment, &["b"], &[], &out[0].nonce));
        let out = st.next_responses(&s);
        assert_eq!(names(&out[0]), vec!["b"]);
        st.on_request(&req(TypeUrl::ClusterLoadAssignment, &[], &["a"], &out[0].nonce));
        assert!(st.next_responses(&s).is_empty(), "unsubscribing needs no response");
        assert_eq!(st.known(TypeUrl::ClusterLoadAssignment).keys().cloned().collect::<Vec<_>>(), vec!["b"]);
        // A subscribed resource that disappears is reported removed.
        let out = st.next_responses(&snap(&[("a", "1")]));
        assert_eq!(out[0].removed_resources, vec!["b".to_string()]);
    }

    #[test]
    fn nack_keeps_old_versions_and_is_not_resent() {
        let mut st = DeltaStream::new();
        st.on_request(&req(TypeUrl::Cluster, &["*"], &[], ""));
        let out = st.next_responses(&snap(&[("a", "1")]));
        st.on_request(&req(TypeUrl::Cluster, &[], &[], &out[0].nonce));
        let bad = st.next_responses(&snap(&[("a", "2")]));
        let nack = DeltaDiscoveryRequest {
            error_detail: Some(Status { code: 3, message: "rejected".into(), details: vec![] }),
            ..req(TypeUrl::Cluster, &[], &[], &bad[0].nonce)
        };
        assert!(matches!(st.on_request(&nack), RequestKind::Nack { ref message, .. } if message == "rejected"));
        let v1 = snap(&[("a", "1")]).of_type(TypeUrl::Cluster)["a"].version.clone();
        assert_eq!(st.known(TypeUrl::Cluster)["a"], v1, "Envoy still holds the old version");
        assert!(st.next_responses(&snap(&[("a", "2")])).is_empty(), "no resend loop");
        let fixed = st.next_responses(&snap(&[("a", "3")]));
        assert_eq!(names(&fixed[0]), vec!["a"]);
    }

    #[test]
    fn stale_nonce_and_reconnect_with_initial_versions() {
        let s = snap(&[("a", "1"), ("b", "1")]);
        let mut st = DeltaStream::new();
        st.on_request(&req(TypeUrl::Cluster, &[], &[], ""));
        let out = st.next_responses(&s);
        assert_eq!(st.on_request(&req(TypeUrl::Cluster, &[], &[], "nope")), RequestKind::Stale(TypeUrl::Cluster));
        assert!(st.next_responses(&s).is_empty(), "still in flight");
        st.on_request(&req(TypeUrl::Cluster, &[], &[], &out[0].nonce));

        // Envoy reconnects holding a's current version and a stale b.
        let mut st2 = DeltaStream::new();
        let mut r = req(TypeUrl::Cluster, &[], &[], "");
        r.initial_resource_versions.insert("a".into(), s.of_type(TypeUrl::Cluster)["a"].version.clone());
        r.initial_resource_versions.insert("b".into(), "old".into());
        r.initial_resource_versions.insert("gone".into(), "old".into());
        st2.on_request(&r);
        let out = st2.next_responses(&s);
        assert_eq!(names(&out[0]), vec!["b"]);
        assert_eq!(out[0].removed_resources, vec!["gone".to_string()]);
    }

    #[test]
    fn first_answer_is_sent_even_if_empty() {
        let mut st = DeltaStream::new();
        st.on_request(&req(TypeUrl::Listener, &[], &[], ""));
        let out = st.next_responses(&snap(&[]));
        assert_eq!(out.len(), 1);
        assert!(out[0].resources.is_empty());
        st.on_request(&req(TypeUrl::Listener, &[], &[], &out[0].nonce));
        assert!(st.next_responses(&snap(&[])).is_empty());
    }

    #[test]
    fn updated_cluster_resends_its_endpoints() {
        let mut st = DeltaStream::new();
        st.on_request(&req(TypeUrl::Cluster, &[], &[], ""));
        st.on_request(&req(TypeUrl::ClusterLoadAssignment, &["a"], &[], ""));
        let out = st.next_responses(&snap(&[("a", "1")]));
        for r in &out {
            st.on_request(&req(TypeUrl::parse(&r.type_url).unwrap(), &[], &[], &r.nonce));
        }
        // Change only the cluster (the CLA content stays "1").
        let mut rs = vec![res(TypeUrl::Cluster, "a", "2"), res(TypeUrl::ClusterLoadAssignment, "a", "1")];
        let s2 = Snapshot::new(rs.drain(..), References::default()).unwrap();
        let out = st.next_responses(&s2);
        let types: Vec<&str> = out.iter().map(|r| r.type_url.as_str()).collect();
        assert_eq!(types, vec![TypeUrl::Cluster.as_str(), TypeUrl::ClusterLoadAssignment.as_str()]);
    }
}
