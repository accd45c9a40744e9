//! An immutable, internally consistent set of Envoy resources with
//! content-hash versions.
//!
//! Consistency is checked whenever a snapshot is built, not optionally: a
//! route that points at a missing cluster, or a cluster without its
//! endpoints, would make Envoy stall warming or 503, so such a snapshot
//! cannot exist.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;
use sha2::{Digest, Sha256};

use super::TypeUrl;

/// One named resource with the version of its content.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub name: String,
    pub version: String,
    pub body: Any,
}

impl Resource {
    /// `fingerprint` must change whenever the content does; it is hashed
    /// into the version. (Encoded protobuf is not usable for that: maps
    /// encode in random order.)
    pub fn new(name: impl Into<String>, body: Any, fingerprint: &[u8]) -> Resource {
        let name = name.into();
        let mut h = Sha256::new();
        h.update(body.type_url.as_bytes());
        h.update([0]);
        h.update(name.as_bytes());
        h.update([0]);
        h.update(fingerprint);
        Resource { name, version: hex16(&h.finalize()), body }
    }
}

fn hex16(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// What one type's resources refer to, for the consistency check.
#[derive(Debug, Clone, Default)]
pub struct References {
    /// Route configuration names each listener uses (via RDS).
    pub listener_routes: BTreeSet<String>,
    /// Cluster names the routes send traffic to.
    pub route_clusters: BTreeSet<String>,
    /// Extension config names the listeners use (via ECDS).
    pub listener_extensions: BTreeSet<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InconsistentSnapshot {
    #[error("route points at cluster {0:?}, which does not exist")]
    MissingCluster(String),
    #[error("cluster {0:?} has no ClusterLoadAssignment")]
    MissingEndpoints(String),
    #[error("ClusterLoadAssignment {0:?} has no cluster")]
    OrphanEndpoints(String),
    #[error("listener uses route configuration {0:?}, which does not exist")]
    MissingRoutes(String),
    #[error("listener uses extension config {0:?}, which does not exist")]
    MissingExtension(String),
    #[error("resource {1:?} has type {0}, expected {2}")]
    WrongType(String, String, TypeUrl),
}

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    resources: BTreeMap<TypeUrl, BTreeMap<String, Arc<Resource>>>,
    refs: References,
}

impl Snapshot {
    /// Builds a snapshot after checking that it is consistent.
    pub fn new(
        resources: impl IntoIterator<Item = (TypeUrl, Resource)>,
        refs: References,
    ) -> Result<Snapshot, InconsistentSnapshot> {
        let mut by_type: BTreeMap<TypeUrl, BTreeMap<String, Arc<Resource>>> = BTreeMap::new();
        for (t, r) in resources {
            if r.body.type_url != t.as_str() {
                return Err(InconsistentSnapshot::WrongType(r.body.type_url.clone(), r.name.clone(), t));
            }
            by_type.entry(t).or_default().insert(r.name.clone(), Arc::new(r));
        }
        let snap = Snapshot { resources: by_type, refs };
        snap.check()?;
        Ok(snap)
    }

    fn check(&self) -> Result<(), InconsistentSnapshot> {
        let clusters = self.names(TypeUrl::Cluster);
        let cla = self.names(TypeUrl::ClusterLoadAssignment);
        let routes = self.names(TypeUrl::RouteConfiguration);
        let extensions = self.names(TypeUrl::ExtensionConfig);
        if let Some(c) = self.refs.route_clusters.iter().find(|c| !clusters.contains(c.as_str())) {
            return Err(InconsistentSnapshot::MissingCluster(c.clone()));
        }
        if let Some(c) = clusters.iter().find(|c| !cla.contains(*c)) {
            return Err(InconsistentSnapshot::MissingEndpoints(c.to_string()));
        }
        if let Some(c) = cla.iter().find(|c| !clusters.contains(*c)) {
            return Err(InconsistentSnapshot::OrphanEndpoints(c.to_string()));
        }
        if let Some(r) = self.refs.listener_routes.iter().find(|r| !routes.contains(r.as_str())) {
            return Err(InconsistentSnapshot::MissingRoutes(r.clone()));
        }
        if let Some(e) = self.refs.listener_extensions.iter().find(|e| !extensions.contains(e.as_str())) {
            return Err(InconsistentSnapshot::MissingExtension(e.clone()));
        }
        Ok(())
    }

    fn names(&self, t: TypeUrl) -> BTreeSet<&str> {
        self.resources.get(&t).map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default()
    }

    /// All resources of a type, by name.
    pub fn of_type(&self, t: TypeUrl) -> &BTreeMap<String, Arc<Resource>> {
        static EMPTY: BTreeMap<String, Arc<Resource>> = BTreeMap::new();
        self.resources.get(&t).unwrap_or(&EMPTY)
    }

    pub fn get(&self, t: TypeUrl, name: &str) -> Option<&Arc<Resource>> {
        self.resources.get(&t).and_then(|m| m.get(name))
    }

    pub fn references(&self) -> &References {
        &self.refs
    }

    /// The combined version of a set of resources: what a state-of-the-world
    /// response carrying exactly these is called.
    pub fn version_of<'a>(resources: impl IntoIterator<Item = &'a Arc<Resource>>) -> String {
        let mut h = Sha256::new();
        for r in resources {
            h.update(r.name.as_bytes());
            h.update([0]);
            h.update(r.version.as_bytes());
            h.update([0]);
        }
        hex16(&h.finalize())
    }

    /// How many resources of each type, for status and logs.
    pub fn counts(&self) -> BTreeMap<TypeUrl, usize> {
        TypeUrl::ALL.into_iter().map(|t| (t, self.of_type(t).len())).collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn res(t: TypeUrl, name: &str, content: &str) -> (TypeUrl, Resource) {
        let body = Any { type_url: t.as_str().to_string(), value: content.as_bytes().to_vec() };
        (t, Resource::new(name, body, content.as_bytes()))
    }

    #[test]
    fn versions_follow_content() {
        let (_, a) = res(TypeUrl::Cluster, "a", "x");
        let (_, a2) = res(TypeUrl::Cluster, "a", "x");
        let (_, a3) = res(TypeUrl::Cluster, "a", "y");
        let (_, b) = res(TypeUrl::Cluster, "b", "x");
        assert_eq!(a.version, a2.version);
        assert_ne!(a.version, a3.version);
        assert_ne!(a.version, b.version);
    }

    #[test]
    fn consistency_is_enforced() {
        let refs = References { route_clusters: ["c1".into()].into(), ..Default::default() };
        let err = Snapshot::new([res(TypeUrl::RouteConfiguration, "r", "")], refs.clone()).unwrap_err();
        assert_eq!(err, InconsistentSnapshot::MissingCluster("c1".into()));
        let err = Snapshot::new([res(TypeUrl::Cluster, "c1", "")], refs.clone()).unwrap_err();
        assert_eq!(err, InconsistentSnapshot::MissingEndpoints("c1".into()));
        let err = Snapshot::new(
            [res(TypeUrl::Cluster, "c1", ""), res(TypeUrl::ClusterLoadAssignment, "c1", ""), res(TypeUrl::ClusterLoadAssignment, "c2", "")],
            refs.clone(),
        )
        .unwrap_err();
        assert_eq!(err, InconsistentSnapshot::OrphanEndpoints("c2".into()));
        let refs2 = References { listener_routes: ["r".into()].into(), ..Default::default() };
        assert_eq!(Snapshot::new([], refs2).unwrap_err(), InconsistentSnapshot::MissingRoutes("r".into()));
        let (_, mut wrong) = res(TypeUrl::Cluster, "c", "");
        wrong.body.type_url = TypeUrl::Listener.as_str().into();
        assert!(matches!(Snapshot::new([(TypeUrl::Cluster, wrong)], References::default()), Err(InconsistentSnapshot::WrongType(..))));
        let ok = Snapshot::new([res(TypeUrl::Cluster, "c1", ""), res(TypeUrl::ClusterLoadAssignment, "c1", "")], refs).unwrap();
        assert_eq!(ok.counts()[&TypeUrl::Cluster], 1);
    }
}
