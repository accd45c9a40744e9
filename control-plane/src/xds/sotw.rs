//! The state-of-the-world ADS protocol for one stream, as a plain state
//! machine: requests go in (`on_request`), responses come out
//! (`next_responses`) for whatever snapshot is current. No I/O here.
//!
//! Rules it follows, per type URL:
//! - one response in flight at a time; the next waits for its ACK or NACK;
//! - a request whose nonce is not the last one sent is stale and ignored;
//! - a NACK (`error_detail` set) is remembered and that version is never
//!   sent again; a later, different version is;
//! - nothing is sent when nothing changed, except on a fresh request;
//! - after every CDS response the endpoints are resent, or an updated
//!   cluster would stay warming;
//! - a cluster that Envoy's accepted routes still point at is kept in CDS
//!   until the routes that drop it are ACKed (make before break).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};

use super::{Resource, Snapshot, TypeUrl};

/// What a request meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestKind {
    /// First request for the type on this stream (or a re-request with no nonce).
    Initial(TypeUrl),
    Ack { type_url: TypeUrl, version: String },
    Nack { type_url: TypeUrl, version: String, message: String },
    /// Answers a response that is no longer the latest; ignored.
    Stale(TypeUrl),
    /// A type we do not serve; ignored and logged.
    UnknownType(String),
}

#[derive(Debug, Clone)]
struct Sent {
    nonce: String,
    version: String,
    resources: BTreeMap<String, Arc<Resource>>,
    /// For RDS: the clusters those routes point at.
    route_clusters: BTreeSet<String>,
}

#[derive(Debug, Default)]
struct TypeState {
    /// Envoy has asked for this type on this stream.
    requested: bool,
    /// `None` means every resource of the type (wildcard).
    names: Option<BTreeSet<String>>,
    last_sent: Option<Sent>,
    awaiting_ack: bool,
    /// Respond even if the version did not change.
    force: bool,
    acked_version: Option<String>,
    nacked_version: Option<String>,
}

/// The per-stream SotW state for every type.
#[derive(Debug, Default)]
pub struct SotwStream {
    types: BTreeMap<TypeUrl, TypeState>,
    nonce: u64,
    /// Clusters that the routes Envoy last accepted point at.
    routed_clusters: BTreeSet<String>,
}

impl SotwStream {
    pub fn new() -> SotwStream {
        SotwStream::default()
    }

    pub fn on_request(&mut self, req: &DiscoveryRequest) -> RequestKind {
        let Some(t) = TypeUrl::parse(&req.type_url) else {
            return RequestKind::UnknownType(req.type_url.clone());
        };
        let state = self.types.entry(t).or_default();
        let kind = if req.response_nonce.is_empty() {
            state.force = true;
            state.awaiting_ack = false;
            RequestKind::Initial(t)
        } else {
            match &state.last_sent {
                Some(sent) if sent.nonce == req.response_nonce => {
                    state.awaiting_ack = false;
                    let version = sent.version.clone();
                    if let Some(err) = &req.error_detail {
                        state.nacked_version = Some(version.clone());
                        RequestKind::Nack { type_url: t, version, message: err.message.clone() }
                    } else {
                        state.acked_version = Some(version.clone());
                        if t == TypeUrl::RouteConfiguration {
                            self.routed_clusters = sent.route_clusters.clone();
                        }
                        RequestKind::Ack { type_url: t, version }
                    }
                }
                _ => return RequestKind::Stale(t),
            }
        };
        let state = self.types.entry(t).or_default();
        state.requested = true;
        let wildcard = req.resource_names.is_empty() && t.is_full_state() || req.resource_names.iter().any(|n| n == "*");
        state.names = if wildcard { None } else { Some(req.resource_names.iter().cloned().collect()) };
        kind
    }

    /// The responses to send now, in make-before-break order.
    pub fn next_responses(&mut self, snap: &Snapshot) -> Vec<DiscoveryResponse> {
        let mut out = Vec::new();
        for t in TypeUrl::ALL {
            let resources = self.select(t, snap);
            let Some(state) = self.types.get_mut(&t) else { continue };
            if !state.requested || state.awaiting_ack {
                continue;
            }
            let version = Snapshot::version_of(resources.values());
            let changed = state.last_sent.as_ref().map(|s| &s.version) != Some(&version)
                && state.nacked_version.as_ref() != Some(&version);
            if !(changed || state.force) {
                continue;
            }
            self.nonce += 1;
            let nonce = self.nonce.to_string();
            let response = DiscoveryResponse {
                version_info: version.clone(),
                resources: resources.values().map(|r| r.body.clone()).collect(),
                type_url: t.as_str().to_string(),
                nonce: nonce.clone(),
                ..Default::default()
            };
            let route_clusters = if t == TypeUrl::RouteConfiguration {
                snap.references().route_clusters.clone()
            } else {
                BTreeSet::new()
            };
            state.last_sent = Some(Sent { nonce, version, resources, route_clusters });
            state.awaiting_ack = true;
            state.force = false;
            out.push(response);
            if t == TypeUrl::Cluster {
                if let Some(eds) = self.types.get_mut(&TypeUrl::ClusterLoadAssignment) {
                    eds.force = true;
                }
            }
        }
        out
    }

    /// The resources a response of type `t` would carry now.
    fn select(&self, t: TypeUrl, snap: &Snapshot) -> BTreeMap<String, Arc<Resource>> {
        let Some(state) = self.types.get(&t) else { return BTreeMap::new() };
        let all = snap.of_type(t);
        let mut chosen: BTreeMap<String, Arc<Resource>> = match &state.names {
            None => all.clone(),
            Some(names) => names.iter().filter_map(|n| all.get(n).map(|r| (n.clone(), r.clone()))).collect(),
        };
        if t == TypeUrl::Cluster {
            // Keep a removed cluster while Envoy's accepted routes use it.
            if let Some(sent) = &state.last_sent {
                for (name, r) in &sent.resources {
                    if !chosen.contains_key(name) && self.routed_clusters.contains(name) {
                        chosen.insert(name.clone(), r.clone());
                    }
                }
            }
        }
        chosen
    }

    /// The last version Envoy accepted for a type.
    pub fn acked_version(&self, t: TypeUrl) -> Option<&str> {
        self.types.get(&t).and_then(|s| s.acked_version.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::super::snapshot::tests::res;
    use super::super::snapshot::References;
    use super::*;
    use envoy_types::pb::google::rpc::Status;

    fn snap(clusters: &[(&str, &str)], routes: &[&str]) -> Snapshot {
        let mut rs = Vec::new();
        for (name, content) in clusters {
            rs.push(res(TypeUrl::Cluster, name, content));
            rs.push(res(TypeUrl::ClusterLoadAssignment, name, content));
        }
        rs.push(res(TypeUrl::RouteConfiguration, "routes", &routes.join(",")));
        rs.push(res(TypeUrl::Listener, "listener", "l"));
        let refs = References {
            listener_routes: ["routes".into()].into(),
            route_clusters: routes.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        Snapshot::new(rs, refs).unwrap()
    }

    fn req(t: TypeUrl, names: &[&str], nonce: &str, version: &str) -> DiscoveryRequest {
        DiscoveryRequest {
            type_url: t.as_str().into(),
            resource_names: names.iter().map(|s| s.to_string()).collect(),
            response_nonce: nonce.into(),
            version_info: version.into(),
            ..Default::default()
        }
    }

    fn nack(t: TypeUrl, nonce: &str) -> DiscoveryRequest {
        DiscoveryRequest {
            error_detail: Some(Status { code: 3, message: "bad cluster".into(), details: vec![] }),
            ..req(t, &[], nonce, "")
        }
    }

    fn names(r: &DiscoveryResponse) -> Vec<String> {
        // Test resources carry their content as the value; names come from the snapshot.
        r.resources.iter().map(|a| String::from_utf8_lossy(&a.value).to_string()).collect()
    }

    #[test]
    fn initial_request_is_answered_then_acked() {
        let s = snap(&[("a", "a1")], &["a"]);
        let mut st = SotwStream::new();
        assert_eq!(st.on_request(&req(TypeUrl::Cluster, &[], "", "")), RequestKind::Initial(TypeUrl::Cluster));
        let out = st.next_responses(&s);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].type_url, TypeUrl::Cluster.as_str());
        assert_eq!(names(&out[0]), vec!["a1"]);
        // Nothing more until the ACK, and nothing after it when nothing changed.
        assert!(st.next_responses(&s).is_empty());
        let kind = st.on_request(&req(TypeUrl::Cluster, &[], &out[0].nonce, &out[0].version_info));
        assert_eq!(kind, RequestKind::Ack { type_url: TypeUrl::Cluster, version: out[0].version_info.clone() });
        assert!(st.next_responses(&s).is_empty());
        assert_eq!(st.acked_version(TypeUrl::Cluster), Some(out[0].version_info.as_str()));
    }

    #[test]
    fn change_is_sent_only_after_ack() {
        let s1 = snap(&[("a", "a1")], &["a"]);
        let s2 = snap(&[("a", "a2")], &["a"]);
        let mut st = SotwStream::new();
        st.on_request(&req(TypeUrl::Cluster, &[], "", ""));
        let first = st.next_responses(&s1);
        assert!(st.next_responses(&s2).is_empty(), "must wait for the ACK");
        st.on_request(&req(TypeUrl::Cluster, &[], &first[0].nonce, &first[0].version_info));
        let second = st.next_responses(&s2);
        assert_eq!(second.len(), 1);
        assert_ne!(second[0].version_info, first[0].version_info);
        assert_ne!(second[0].nonce, first[0].nonce);
    }

    #[test]
    fn nack_is_not_resent_but_a_new_version_is() {
        let s1 = snap(&[("a", "a1")], &["a"]);
        let s2 = snap(&[("a", "a2")], &["a"]);
        let mut st = SotwStream::new();
        st.on_request(&req(TypeUrl::Cluster, &[], "", ""));
        let first = st.next_responses(&s1);
        let kind = st.on_request(&nack(TypeUrl::Cluster, &first[0].nonce));
        assert!(matches!(kind, RequestKind::Nack { ref message, .. } if message == "bad cluster"));
        assert!(st.next_responses(&s1).is_empty(), "a NACKed version must not be resent");
        assert!(st.next_responses(&s1).is_empty());
        assert_eq!(st.acked_version(TypeUrl::Cluster), None);
        let again = st.next_responses(&s2);
        assert_eq!(again.len(), 1);
    }

    #[test]
    fn stale_nonce_is_ignored() {
        let s1 = snap(&[("a", "a1")], &["a"]);
        let s2 = snap(&[("a", "a2")], &["a"]);
        let mut st = SotwStream::new();
        st.on_request(&req(TypeUrl::Cluster, &[], "", ""));
        let first = st.next_responses(&s1);
        st.on_request(&req(TypeUrl::Cluster, &[], &first[0].nonce, &first[0].version_info));
        let second = st.next_responses(&s2);
        // An old nonce (even a NACK with it) changes nothing.
        assert_eq!(st.on_request(&nack(TypeUrl::Cluster, &first[0].nonce)), RequestKind::Stale(TypeUrl::Cluster));
        assert_eq!(st.on_request(&req(TypeUrl::Cluster, &[], "999", "")), RequestKind::Stale(TypeUrl::Cluster));
        assert_eq!(st.acked_version(TypeUrl::Cluster), Some(first[0].version_info.as_str()));
        assert!(st.next_responses(&s2).is_empty(), "still waiting for the ACK of the second");
        st.on_request(&req(TypeUrl::Cluster, &[], &second[0].nonce, &second[0].version_info));
        assert_eq!(st.acked_version(TypeUrl::Cluster), Some(second[0].version_info.as_str()));
    }

    #[test]
    fn eds_follows_subscriptions_and_is_resent_after_cds() {
        let s1 = snap(&[("a", "a1"), ("b", "b1")], &["a", "b"]);
        let mut st = SotwStream::new();
        st.on_request(&req(TypeUrl::Cluster, &[], "", ""));
        st.on_request(&req(TypeUrl::ClusterLoadAssignment, &["a"], "", ""));
        let out = st.next_responses(&s1);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].type_url, TypeUrl::Cluster.as_str(), "CDS goes first");
        assert_eq!(names(&out[1]), vec!["a1"]);
        // Envoy subscribes to b as well: a new EDS response.
        st.on_request(&req(TypeUrl::ClusterLoadAssignment, &["a", "b"], &out[1].nonce, &out[1].version_info));
        let eds = st.next_responses(&s1);
        assert_eq!(eds.len(), 1);
        assert_eq!(names(&eds[0]), vec!["a1", "b1"]);
        st.on_request(&req(TypeUrl::ClusterLoadAssignment, &["a", "b"], &eds[0].nonce, &eds[0].version_info));
        st.on_request(&req(TypeUrl::Cluster, &[], &out[0].nonce, &out[0].version_info));
        // A cluster changes but its endpoints do not: EDS is still resent.
        let mut s2 = snap(&[("a", "a1"), ("b", "b1")], &["a", "b"]);
        let (_, changed) = res(TypeUrl::Cluster, "a", "a-new-timeout");
        let rs: Vec<(TypeUrl, Resource)> = TypeUrl::ALL
            .into_iter()
            .flat_map(|t| s2.of_type(t).values().map(move |r| (t, (**r).clone())).collect::<Vec<_>>())
            .map(|(t, r)| if t == TypeUrl::Cluster && r.name == "a" { (t, changed.clone()) } else { (t, r) })
            .collect();
        s2 = Snapshot::new(rs, s2.references().clone()).unwrap();
        let out2 = st.next_responses(&s2);
        let types: Vec<&str> = out2.iter().map(|r| r.type_url.as_str()).collect();
        assert_eq!(types, vec![TypeUrl::Cluster.as_str(), TypeUrl::ClusterLoadAssignment.as_str()]);
        assert_eq!(out2[1].version_info, eds[0].version_info, "same endpoints, resent with a new nonce");
        assert_ne!(out2[1].nonce, eds[0].nonce);
    }

    #[test]
    fn removed_cluster_outlives_the_routes_that_use_it() {
        let s1 = snap(&[("a", "a1"), ("b", "b1")], &["a", "b"]);
        let s2 = snap(&[("a", "a1")], &["a"]);
        let mut st = SotwStream::new();
        for t in [TypeUrl::Cluster, TypeUrl::Listener] {
            st.on_request(&req(t, &[], "", ""));
        }
        st.on_request(&req(TypeUrl::RouteConfiguration, &["routes"], "", ""));
        let out = st.next_responses(&s1);
        for r in &out {
            let t = TypeUrl::parse(&r.type_url).unwrap();
            let names: Vec<&str> = if t == TypeUrl::RouteConfiguration { vec!["routes"] } else { vec![] };
            st.on_request(&req(t, &names, &r.nonce, &r.version_info));
        }
        // b disappears: CDS keeps it while the accepted routes point at it,
        // so only the routes change first.
        let out = st.next_responses(&s2);
        let types: Vec<&str> = out.iter().map(|r| r.type_url.as_str()).collect();
        assert_eq!(types, vec![TypeUrl::RouteConfiguration.as_str()]);
        let rds = &out[0];
        assert!(st.next_responses(&s2).is_empty(), "CDS unchanged until the routes are ACKed");
        st.on_request(&req(TypeUrl::RouteConfiguration, &["routes"], &rds.nonce, &rds.version_info));
        let out = st.next_responses(&s2);
        assert_eq!(out.len(), 1);
        assert_eq!(names(&out[0]), vec!["a1"], "now b is removed");
    }

    #[test]
    fn unknown_types_are_reported() {
        let mut st = SotwStream::new();
        let kind = st.on_request(&DiscoveryRequest { type_url: "type.googleapis.com/x.Secret".into(), ..Default::default() });
        assert_eq!(kind, RequestKind::UnknownType("type.googleapis.com/x.Secret".into()));
        assert!(st.next_responses(&snap(&[], &[])).is_empty());
    }

    #[test]
    fn reconnect_gets_full_state_even_if_unchanged() {
        let s = snap(&[("a", "a1")], &["a"]);
        let mut st = SotwStream::new();
        st.on_request(&req(TypeUrl::Cluster, &[], "", ""));
        let first = st.next_responses(&s);
        // A new stream for the same Envoy starts from scratch with its old version.
        let mut st2 = SotwStream::new();
        st2.on_request(&req(TypeUrl::Cluster, &[], "", &first[0].version_info));
        let again = st2.next_responses(&s);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].version_info, first[0].version_info);
    }
}
