//! What the checker shows the admin API: per-endpoint probe details (which
//! change every probe, unlike the verdicts it publishes) and counters with
//! fixed labels for metrics.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;

use super::probe::{Method, ProbeError, Success};
use super::score::{ActiveVerdict, Resources};
use super::state::Health;
use super::EndpointKey;

/// The latest probe figures of one endpoint.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Detail {
    pub verdict: ActiveVerdict,
    /// How the last good probe got its answer.
    pub method: Option<Method>,
    /// Smoothed probe latency.
    pub latency_ms: Option<f64>,
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    pub resources: Resources,
    pub probes: u64,
    /// Delay chosen before the next probe (backoff and idle show here).
    pub next_probe_in_ms: u64,
}

/// Probe results by fixed label: `ok` or a `ProbeError::label`.
pub const RESULT_LABELS: [&str; 7] = ["ok", "timeout", "connect", "http_status", "jsonrpc_error", "malformed", "transport"];

#[derive(Debug, Default)]
struct Inner {
    endpoints: BTreeMap<EndpointKey, Detail>,
    results: [u64; RESULT_LABELS.len()],
    transitions: u64,
}

/// Shared, cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Board {
    inner: Arc<Mutex<Inner>>,
}

impl Board {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Plain figures: still worth showing after a panic elsewhere.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set(&self, key: &EndpointKey, d: Detail) {
        self.lock().endpoints.insert(key.clone(), d);
    }

    pub fn remove(&self, key: &EndpointKey) {
        self.lock().endpoints.remove(key);
    }

    pub fn transition(&self) {
        self.lock().transitions += 1;
    }

    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        key: &EndpointKey,
        result: &Result<Success, ProbeError>,
        verdict: ActiveVerdict,
        consecutive_failures: u32,
        latency: Option<Duration>,
        resources: Resources,
        next: Duration,
    ) {
        let label = match result {
            Ok(_) => "ok",
            Err(e) => e.label(),
        };
        let mut g = self.lock();
        if let Some(i) = RESULT_LABELS.iter().position(|l| *l == label) {
            g.results[i] += 1;
        }
        let d = g.endpoints.entry(key.clone()).or_default();
        d.verdict = verdict;
        d.consecutive_failures = consecutive_failures;
        d.latency_ms = latency.map(|l| l.as_secs_f64() * 1e3);
        d.resources = resources;
        d.probes += 1;
        d.next_probe_in_ms = next.as_millis() as u64;
        match result {
            Ok(s) => {
                d.method = Some(s.method);
                d.last_error = None;
            }
            Err(e) => d.last_error = Some(e.to_string()),
        }
    }

    pub fn detail(&self, key: &EndpointKey) -> Option<Detail> {
        self.lock().endpoints.get(key).cloned()
    }

    /// Probe results by label, in `RESULT_LABELS` order.
    pub fn results(&self) -> Vec<(&'static str, u64)> {
        let g = self.lock();
        RESULT_LABELS.iter().copied().zip(g.results.iter().copied()).collect()
    }

    pub fn transitions(&self) -> u64 {
        self.lock().transitions
    }

    /// Endpoints per health state, every state listed.
    pub fn by_health(&self) -> Vec<(&'static str, usize)> {
        let g = self.lock();
        Health::ALL.iter().map(|h| (h.label(), g.endpoints.values().filter(|d| d.verdict.health == *h).count())).collect()
    }
}
