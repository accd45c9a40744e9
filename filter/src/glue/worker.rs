//! One VM's (one Envoy worker's) state: the hosts it has seen with their
//! detectors, its copies of shared breakers, its metrics and reports.

use std::collections::HashMap;
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

use super::shared::{load_breaker, load_members, publish_member, CACHE_MS, MAX_MEMBERS};
use crate::breaker::{Breaker, State, Transition};
use crate::config::Config;
use crate::latency::LatencyTracker;
use crate::phi::PhiDetector;
use crate::report::Reporter;
use crate::window::OutcomeWindow;

#[derive(Default)]
pub(super) struct HostLocal {
    pub(super) phi: PhiDetector,
    pub(super) latency: LatencyTracker,
    /// Recent outcomes: (failure, slow).
    pub(super) window: OutcomeWindow,
    pub(super) inflight: u32,
    pub(super) busy_since_ms: Option<u64>,
    pub(super) last_seen_ms: u64,
    pub(super) cluster: String,
}

pub(super) struct Metrics {
    pub(super) requests: u32,
    pub(super) failures: u32,
    pub(super) slow: u32,
    pub(super) opened: u32,
    pub(super) closed: u32,
    pub(super) half_opened: u32,
    pub(super) fast_fail: u32,
    pub(super) reinit_404: u32,
}

impl Metrics {
    pub(super) fn define() -> Option<Metrics> {
        let c = |n: &str| hostcalls::define_metric(MetricType::Counter, n).ok();
        Some(Metrics {
            requests: c("only1mcp_requests_total")?,
            failures: c("only1mcp_backend_failures_total")?,
            slow: c("only1mcp_slow_calls_total")?,
            opened: c("only1mcp_breaker_opened_total")?,
            closed: c("only1mcp_breaker_closed_total")?,
            half_opened: c("only1mcp_breaker_half_opened_total")?,
            fast_fail: c("only1mcp_fast_fail_503_total")?,
            reinit_404: c("only1mcp_session_reinit_404_total")?,
        })
    }
}

pub(super) fn inc(id: Option<u32>) {
    if let Some(id) = id {
        let _ = hostcalls::increment_metric(id, 1);
    }
}

#[derive(Default)]
pub(super) struct Worker {
    pub(super) config: Rc<Config>,
    /// Each host's shared breaker as last read or written, and when.
    pub(super) breakers: HashMap<String, (Breaker, u64)>,
    /// When each cluster's shared host list was last read.
    pub(super) members_read: HashMap<String, u64>,
    pub(super) hosts: HashMap<String, HostLocal>,
    /// Hosts seen per cluster, for "no host may take traffic".
    pub(super) clusters: HashMap<String, Vec<String>>,
    pub(super) metrics: Option<Metrics>,
    pub(super) reporter: Reporter,
    pub(super) node_id: String,
    pub(super) unflushed_requests: i64,
}

impl Worker {
    pub(super) fn metric(&self, pick: impl Fn(&Metrics) -> u32) -> Option<u32> {
        self.metrics.as_ref().map(pick)
    }

    pub(super) fn count_transition(&mut self, host: &str, t: &Transition, now: u64) {
        let cluster = self.hosts.get(host).map(|h| h.cluster.clone()).unwrap_or_default();
        self.reporter.push(host, &cluster, t, now);
        let m = match t.to {
            State::Open { .. } => self.metric(|m| m.opened),
            State::HalfOpen { .. } => self.metric(|m| m.half_opened),
            State::Closed { .. } => self.metric(|m| m.closed),
        };
        inc(m);
        log::info!("breaker for {host}: {} -> {} ({})", t.from.name(), t.to.name(), t.reason.map(|r| r.name()).unwrap_or("recovered"));
    }

    pub(super) fn host(&mut self, host: &str, now: u64) -> &mut HostLocal {
        if !self.hosts.contains_key(host) && self.hosts.len() >= self.config.max_hosts as usize {
            // Forget the least recently seen idle host: memory stays bounded as hosts churn.
            if let Some(old) = self.hosts.iter().filter(|(_, h)| h.inflight == 0).min_by_key(|(_, h)| h.last_seen_ms).map(|(k, _)| k.clone()) {
                self.hosts.remove(&old);
                for hosts in self.clusters.values_mut() {
                    hosts.retain(|h| h != &old);
                }
            }
        }
        let h = self.hosts.entry(host.to_string()).or_default();
        h.last_seen_ms = now;
        h
    }

    /// A call to `host` (of `cluster`) has started: it is now outstanding.
    pub(super) fn begin_call(&mut self, host: &str, cluster: Option<&str>, now: u64) {
        self.host(host, now);
        if let Some(c) = cluster {
            self.remember(c, host);
        }
        let h = self.host(host, now);
        if h.inflight == 0 {
            h.busy_since_ms = Some(now);
        }
        h.inflight += 1;
    }

    /// A call to `host` has ended. Returns the host and when it had become
    /// busy (phi measures an interval that spans idle time from then).
    pub(super) fn end_call(&mut self, host: &str, now: u64) -> (&mut HostLocal, Option<u64>) {
        let h = self.host(host, now);
        let busy_since = h.busy_since_ms;
        h.inflight = h.inflight.saturating_sub(1);
        if h.inflight == 0 {
            h.busy_since_ms = None;
        }
        (h, busy_since)
    }

    pub(super) fn remember(&mut self, cluster: &str, host: &str) {
        if let Some(h) = self.hosts.get_mut(host) {
            if h.cluster != cluster {
                h.cluster = cluster.to_string();
            }
        }
        let hosts = self.clusters.entry(cluster.to_string()).or_default();
        if !hosts.iter().any(|h| h == host) && hosts.len() < MAX_MEMBERS {
            hosts.push(host.to_string());
            publish_member(cluster, host);
        }
    }

    /// A host's shared breaker, from this worker's copy if it is fresh.
    pub(super) fn breaker(&mut self, host: &str, now: u64) -> Breaker {
        if let Some((b, at)) = self.breakers.get(host) {
            if now.saturating_sub(*at) < CACHE_MS {
                return *b;
            }
        }
        let (b, _) = load_breaker(host);
        self.cache(host, b, now);
        b
    }

    pub(super) fn cache(&mut self, host: &str, b: Breaker, now: u64) {
        if !self.breakers.contains_key(host) && self.breakers.len() >= self.config.max_hosts as usize {
            self.breakers.retain(|_, (_, at)| now.saturating_sub(*at) < CACHE_MS);
        }
        self.breakers.insert(host.to_string(), (b, now));
    }

    /// Adds the hosts other workers published for a cluster to this
    /// worker's list (so a worker that never saw a host still knows it is
    /// open); shared data is read at most every `CACHE_MS`.
    fn refresh_members(&mut self, cluster: &str, now: u64) {
        let fresh = self.members_read.get(cluster).is_some_and(|at| now.saturating_sub(*at) < CACHE_MS);
        if !fresh {
            let (shared, _) = load_members(cluster);
            let local = self.clusters.entry(cluster.to_string()).or_default();
            for h in shared {
                if !local.contains(&h) && local.len() < MAX_MEMBERS {
                    local.push(h);
                }
            }
            self.members_read.insert(cluster.to_string(), now);
        }
    }

    /// Whether every known host of this cluster is unavailable; if so, when
    /// to retry (ms).
    /// This runs on every request: the host list is borrowed, not copied.
    pub(super) fn cluster_down(&mut self, cluster: &str, now: u64) -> Option<u64> {
        self.refresh_members(cluster, now);
        let hosts = std::mem::take(self.clusters.get_mut(cluster)?);
        let down = self.all_unavailable(cluster, &hosts, now);
        if let Some(slot) = self.clusters.get_mut(cluster) {
            *slot = hosts;
        }
        down
    }

    fn all_unavailable(&mut self, cluster: &str, hosts: &[String], now: u64) -> Option<u64> {
        if hosts.is_empty() {
            return None;
        }
        let config = self.config.clone();
        let mut retry = u64::MAX;
        for h in hosts {
            let b = self.breaker(h, now);
            let s = &config.for_target(Some(cluster), Some(h)).breaker;
            if b.available(now, s) {
                return None;
            }
            if let State::Open { until_ms, .. } = b.state {
                retry = retry.min(until_ms.saturating_sub(now));
            }
        }
        Some(if retry == u64::MAX { config.breaker.open_base_ms } else { retry })
    }
}

