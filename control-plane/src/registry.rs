//! The registry: every MCP backend known right now, merged from all
//! discovery sources, grouped by service.
//!
//! Discovery providers each own a slice of the registry (keyed by source),
//! so a provider that restarts or fails only replaces its own backends.

use std::collections::BTreeMap;

use crate::config::{Backend, ServiceName};

/// Which provider reported a backend.
pub type Source = &'static str;

/// The backends of one MCP service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: ServiceName,
    /// The MCP path every instance serves on.
    pub path: String,
    pub endpoints: Vec<Backend>,
}

/// All services, by name; the input of the xDS snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fleet {
    pub services: BTreeMap<ServiceName, Service>,
}

impl Fleet {
    pub fn endpoint_count(&self) -> usize {
        self.services.values().map(|s| s.endpoints.len()).sum()
    }
}

#[derive(Debug, Default)]
pub struct Registry {
    by_source: BTreeMap<Source, Vec<Backend>>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Replaces everything one source reported.
    pub fn set(&mut self, source: Source, backends: Vec<Backend>) {
        self.by_source.insert(source, backends);
    }

    /// The merged view. The first source (in name order) to report an
    /// address for a service wins; a service keeps the path its first
    /// instance declared and instances that disagree are left out (and
    /// logged), since one route cannot rewrite to two paths.
    pub fn fleet(&self) -> Fleet {
        let mut services: BTreeMap<ServiceName, Service> = BTreeMap::new();
        for (source, backends) in &self.by_source {
            for b in backends {
                let svc = services.entry(b.service.clone()).or_insert_with(|| Service {
                    name: b.service.clone(),
                    path: b.path.clone(),
                    endpoints: Vec::new(),
                });
                if svc.path != b.path {
                    tracing::warn!(source, service = %b.service, addr = %b.socket_addr(), path = %b.path, expected = %svc.path,
                        "backend serves a different MCP path than its service; left out");
                    continue;
                }
                if svc.endpoints.iter().any(|e| e.socket_addr() == b.socket_addr()) {
                    continue;
                }
                svc.endpoints.push(b.clone());
            }
        }
        for svc in services.values_mut() {
            svc.endpoints.sort_by_key(|e| e.socket_addr());
        }
        Fleet { services }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn backends(yaml: &str) -> Vec<Backend> {
        Config::from_yaml(yaml).unwrap().backends
    }

    #[test]
    fn merges_sources_without_duplicates() {
        let mut r = Registry::new();
        r.set("static", backends("backends:\n  - {service: a, address: 127.0.0.1, port: 2}\n  - {service: a, address: 127.0.0.1, port: 1}\n"));
        let mut other = backends("backends:\n  - {service: a, address: 127.0.0.1, port: 1}\n  - {service: a, address: 127.0.0.1, port: 3}\n  - {service: b, address: 127.0.0.1, port: 4}\n");
        other[1].path = "/x".into();
        r.set("zz", other);
        let f = r.fleet();
        assert_eq!(f.services.len(), 2);
        let a = &f.services[&ServiceName::new("a").unwrap()];
        let ports: Vec<u16> = a.endpoints.iter().map(|e| e.port).collect();
        assert_eq!(ports, vec![1, 2], "duplicate dropped, path mismatch left out, sorted");
        assert_eq!(f.endpoint_count(), 3);
        r.set("zz", Vec::new());
        assert_eq!(r.fleet().services.len(), 1);
    }
}
