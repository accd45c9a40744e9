//! The resource types we serve and the order they are sent in.

use std::fmt;

/// A resource type served over ADS.
///
/// The declaration order is the make-before-break order in which updates are
/// sent: clusters before their endpoints, both before the listener and routes
/// that point at them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TypeUrl {
    Cluster,
    ClusterLoadAssignment,
    ExtensionConfig,
    Listener,
    RouteConfiguration,
}

impl TypeUrl {
    pub const ALL: [TypeUrl; 5] = [
        TypeUrl::Cluster,
        TypeUrl::ClusterLoadAssignment,
        TypeUrl::ExtensionConfig,
        TypeUrl::Listener,
        TypeUrl::RouteConfiguration,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TypeUrl::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            TypeUrl::ClusterLoadAssignment => "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
            TypeUrl::ExtensionConfig => "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
            TypeUrl::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            TypeUrl::RouteConfiguration => "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
        }
    }

    pub fn parse(url: &str) -> Option<TypeUrl> {
        TypeUrl::ALL.into_iter().find(|t| t.as_str() == url)
    }

    /// Short name for logs and status: `CDS`, `EDS`, ...
    pub fn short(self) -> &'static str {
        match self {
            TypeUrl::Cluster => "CDS",
            TypeUrl::ClusterLoadAssignment => "EDS",
            TypeUrl::ExtensionConfig => "ECDS",
            TypeUrl::Listener => "LDS",
            TypeUrl::RouteConfiguration => "RDS",
        }
    }

    /// Listeners and clusters are "full state" types: every response carries
    /// all of them and a missing one is deleted. The others are only sent
    /// for the names Envoy asked for.
    pub fn is_full_state(self) -> bool {
        matches!(self, TypeUrl::Cluster | TypeUrl::Listener)
    }
}

impl fmt::Display for TypeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_order() {
        for t in TypeUrl::ALL {
            assert_eq!(TypeUrl::parse(t.as_str()), Some(t));
        }
        assert_eq!(TypeUrl::parse("type.googleapis.com/envoy.config.core.v3.Secret"), None);
        let mut sorted = TypeUrl::ALL;
        sorted.sort();
        assert_eq!(sorted, TypeUrl::ALL);
        assert!(TypeUrl::Cluster < TypeUrl::ClusterLoadAssignment);
        assert!(TypeUrl::ClusterLoadAssignment < TypeUrl::Listener);
        assert!(TypeUrl::Listener < TypeUrl::RouteConfiguration);
    }
}
