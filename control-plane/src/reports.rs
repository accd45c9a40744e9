//! Passive health reports from the filters in every Envoy: which Envoy saw
//! which host's breaker open, and until when.
//!
//! A host that any Envoy's filter opened is ejected fleet-wide (marked
//! unhealthy in EDS for every Envoy) until the open period it reported
//! ends. Then it returns to rotation, the filters' half-open probes reach
//! it, and they either close the breaker (a `closed` report lifts the
//! ejection at once) or reopen it with a longer period (a new report).
//! Ejections expire on their own, so a lost `closed` report or a vanished
//! Envoy cannot keep a host out forever.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// What a filter reports about one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Open,
    HalfOpen,
    Closed,
}

/// One report line, as sent by the filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostReport {
    pub host: SocketAddr,
    #[serde(default)]
    pub cluster: String,
    pub state: BreakerState,
    /// Why it opened (`consecutive_failures`, `phi`, ...).
    #[serde(default)]
    pub reason: String,
    /// For `open`: how long the breaker stays open, ms.
    #[serde(default)]
    pub open_for_ms: u64,
}

/// A batch from one Envoy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportBatch {
    pub node: String,
    pub reports: Vec<HostReport>,
}

/// The latest word of one Envoy about one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeVerdict {
    pub state: BreakerState,
    pub reason: String,
    pub cluster: String,
    /// Unix ms the ejection ends (for `open`), or when the report came.
    pub until_unix_ms: u64,
    pub reported_unix_ms: u64,
}

/// Every Envoy's latest verdict per host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PassiveView {
    /// host -> node id -> verdict
    pub hosts: BTreeMap<SocketAddr, BTreeMap<String, NodeVerdict>>,
}

/// Ejections are bounded even if a filter reports a huge period.
pub const MAX_EJECTION_MS: u64 = 10 * 60 * 1000;

impl PassiveView {
    /// Applies a batch received at `now_ms`. Returns whether the set of
    /// ejected hosts may have changed.
    pub fn apply(&mut self, batch: &ReportBatch, now_ms: u64) -> bool {
        for r in &batch.reports {
            let until = match r.state {
                BreakerState::Open => now_ms.saturating_add(r.open_for_ms.min(MAX_EJECTION_MS)),
                _ => now_ms,
            };
            let verdict = NodeVerdict {
                state: r.state.clone(),
                reason: r.reason.clone(),
                cluster: r.cluster.clone(),
                until_unix_ms: until,
                reported_unix_ms: now_ms,
            };
            self.hosts.entry(r.host).or_default().insert(batch.node.clone(), verdict);
        }
        !batch.reports.is_empty()
    }

    /// Whether any Envoy's filter holds this host open right now.
    pub fn is_ejected(&self, host: &SocketAddr, now_ms: u64) -> bool {
        self.hosts
            .get(host)
            .is_some_and(|nodes| nodes.values().any(|v| v.state == BreakerState::Open && v.until_unix_ms > now_ms))
    }

    /// Hosts ejected now, with the Envoys that ejected them.
    pub fn ejected(&self, now_ms: u64) -> BTreeMap<SocketAddr, BTreeSet<String>> {
        let mut out = BTreeMap::new();
        for (host, nodes) in &self.hosts {
            let by: BTreeSet<String> = nodes
                .iter()
                .filter(|(_, v)| v.state == BreakerState::Open && v.until_unix_ms > now_ms)
                .map(|(n, _)| n.clone())
                .collect();
            if !by.is_empty() {
                out.insert(*host, by);
            }
        }
        out
    }

    /// When the next ejection ends, so the snapshot can be rebuilt then.
    pub fn next_expiry(&self, now_ms: u64) -> Option<u64> {
        self.hosts
            .values()
            .flat_map(|n| n.values())
            .filter(|v| v.state == BreakerState::Open && v.until_unix_ms > now_ms)
            .map(|v| v.until_unix_ms)
            .min()
    }

    /// Drops verdicts about hosts no longer in the fleet and stale ones, so
    /// memory stays bounded as hosts churn.
    pub fn prune(&mut self, known: &BTreeSet<SocketAddr>, now_ms: u64) {
        self.hosts.retain(|h, _| known.contains(h));
        for nodes in self.hosts.values_mut() {
            nodes.retain(|_, v| v.until_unix_ms.max(v.reported_unix_ms) + MAX_EJECTION_MS > now_ms);
        }
        self.hosts.retain(|_, n| !n.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(host: &str, state: BreakerState, open_for_ms: u64) -> HostReport {
        HostReport { host: host.parse().unwrap(), cluster: "mcp_a".into(), state, reason: "consecutive_failures".into(), open_for_ms }
    }

    fn batch(node: &str, reports: Vec<HostReport>) -> ReportBatch {
        ReportBatch { node: node.into(), reports }
    }

    #[test]
    fn open_ejects_until_its_period_ends() {
        let h: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut v = PassiveView::default();
        assert!(v.apply(&batch("e1", vec![report("127.0.0.1:1", BreakerState::Open, 2000)]), 1000));
        assert!(v.is_ejected(&h, 1000));
        assert!(v.is_ejected(&h, 2999));
        assert!(!v.is_ejected(&h, 3000));
        assert_eq!(v.next_expiry(1000), Some(3000));
        assert_eq!(v.next_expiry(3000), None);
    }

    #[test]
    fn closed_report_lifts_only_that_nodes_ejection() {
        let h: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut v = PassiveView::default();
        v.apply(&batch("e1", vec![report("127.0.0.1:1", BreakerState::Open, 5000)]), 0);
        v.apply(&batch("e2", vec![report("127.0.0.1:1", BreakerState::Open, 5000)]), 0);
        assert_eq!(v.ejected(10)[&h].len(), 2);
        v.apply(&batch("e1", vec![report("127.0.0.1:1", BreakerState::Closed, 0)]), 10);
        assert!(v.is_ejected(&h, 20), "e2 still holds it open");
        v.apply(&batch("e2", vec![report("127.0.0.1:1", BreakerState::HalfOpen, 0)]), 20);
        assert!(!v.is_ejected(&h, 30));
    }

    #[test]
    fn ejection_is_bounded_and_pruned() {
        let h: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut v = PassiveView::default();
        v.apply(&batch("e1", vec![report("127.0.0.1:1", BreakerState::Open, u64::MAX)]), 0);
        assert!(!v.is_ejected(&h, MAX_EJECTION_MS));
        v.prune(&BTreeSet::new(), 0);
        assert!(v.hosts.is_empty(), "hosts not in the fleet are forgotten");
        v.apply(&batch("e1", vec![report("127.0.0.1:1", BreakerState::Closed, 0)]), 0);
        v.prune(&[h].into(), 2 * MAX_EJECTION_MS);
        assert!(v.hosts.is_empty(), "stale verdicts are forgotten");
    }

    #[test]
    fn batch_json_shape() {
        let b: ReportBatch = serde_json::from_str(
            r#"{"node":"envoy-1","reports":[{"host":"127.0.0.1:9101","cluster":"mcp_alpha","state":"open","reason":"phi","open_for_ms":2000}]}"#,
        )
        .unwrap();
        assert_eq!(b.reports[0].state, BreakerState::Open);
        assert!(serde_json::from_str::<ReportBatch>(r#"{"node":"x","reports":[],"extra":1}"#).is_err());
    }
}
