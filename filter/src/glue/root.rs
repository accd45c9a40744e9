//! The root context: configuration (a new policy replaces the settings,
//! not the state), the tick that runs phi and sends reports, and the
//! replies to those reports.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

use super::host_io::{header, now_ms, prop_string};
use super::request::Request;
use super::shared::update_breaker;
use super::worker::{Metrics, Worker};
use super::{REPORTS_CLUSTER, TICK};
use crate::breaker::Signals;
use crate::config::Config;
use crate::phi::{elapsed_since, suspect};

thread_local! {
    /// This VM's state. A new policy over ECDS creates a new root context
    /// in the same VM; it picks this up, so breakers, detectors and
    /// histograms survive a policy change.
    static WORKER: Rc<RefCell<Worker>> = Rc::new(RefCell::new(Worker::default()));
}

pub(super) struct Root {
    worker: Rc<RefCell<Worker>>,
}

impl Default for Root {
    fn default() -> Self {
        Root { worker: WORKER.with(Rc::clone) }
    }
}

impl Context for Root {
    fn on_http_call_response(&mut self, _token: u32, _headers: usize, _body: usize, _trailers: usize) {
        let status = header(proxy_wasm::types::MapType::HttpCallResponseHeaders, ":status");
        let mut w = self.worker.borrow_mut();
        match status.as_deref() {
            Some(s) if s.starts_with('2') => w.reporter.sent(),
            other => {
                log::debug!("report not accepted by the control plane (status {other:?}); retrying with backoff");
                w.reporter.failed(now_ms());
            }
        }
    }
}

impl RootContext for Root {
    fn on_vm_start(&mut self, _size: usize) -> bool {
        let mut w = self.worker.borrow_mut();
        if w.metrics.is_none() {
            w.metrics = Metrics::define();
        }
        w.node_id = prop_string(&["xds", "node", "id"]).or_else(|| prop_string(&["node", "id"])).unwrap_or_default();
        true
    }

    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = hostcalls::get_buffer(proxy_wasm::types::BufferType::PluginConfiguration, 0, usize::MAX).ok().flatten().unwrap_or_default();
        match Config::from_json(&bytes) {
            Ok(c) => {
                // New policy for new requests; breaker and detector state stay.
                self.worker.borrow_mut().config = Rc::new(c);
                let _ = hostcalls::set_tick_period(TICK);
                true
            }
            Err(e) => {
                log::error!("only1mcp filter: refusing configuration: {e}");
                false
            }
        }
    }

    /// Hung hosts: requests outstanding, nothing completing, phi climbing.
    fn on_tick(&mut self) {
        let now = now_ms();
        let mut w = self.worker.borrow_mut();
        if w.unflushed_requests > 0 {
            if let Some(id) = w.metric(|m| m.requests) {
                let _ = hostcalls::increment_metric(id, w.unflushed_requests);
            }
            w.unflushed_requests = 0;
        }
        let config = w.config.clone();
        let mut trips = Vec::new();
        for (host, h) in w.hosts.iter() {
            if h.inflight == 0 {
                continue;
            }
            let cfg = config.for_target(Some(&h.cluster), Some(host));
            let Some(elapsed) = elapsed_since(now, h.phi.last_heartbeat_ms(), h.busy_since_ms) else { continue };
            // Silence up to twice this host's p99.9 latency is normal for it
            // (a heavy tail stretches it; a lone slow call is excused by
            // `suspect` needing two outstanding calls).
            let slow_ms = h.latency.percentile(0.999).map_or(0.0, |us| 2.0 * us as f64 / 1000.0);
            let phi = h.phi.phi_adaptive(elapsed, &cfg.phi, slow_ms);
            let max_call_ms = cfg.latency.max_ms as f64;
            if suspect(phi, cfg.breaker.phi_threshold, h.inflight, elapsed, max_call_ms) {
                log::info!(
                    "{host}: phi {phi:.1} after {elapsed:.0} ms without a response, {} outstanding, {} samples, p99.9 latency {:.0} ms",
                    h.inflight,
                    h.phi.samples(),
                    slow_ms / 2.0
                );
                let sig = Signals { phi, ..Default::default() };
                let (t, b) = update_breaker(host, |b| b.assess(now, sig, &cfg.breaker));
                trips.push((host.clone(), t, b));
            }
        }
        for (host, t, b) in &trips {
            w.cache(host, *b, now);
            if let Some(t) = t {
                w.count_transition(host, t, now);
            }
        }
        let node = w.node_id.clone();
        if let Some(body) = w.reporter.next_batch(&node, now) {
            let headers = vec![(":method", "POST"), (":path", "/v1/reports"), (":authority", "only1mcp"), ("content-type", "application/json")];
            match self.dispatch_http_call(REPORTS_CLUSTER, headers, Some(body.as_bytes()), vec![], Duration::from_secs(1)) {
                Ok(_) => {}
                Err(e) => {
                    log::debug!("cannot reach the control plane for reports: {e:?}");
                    w.reporter.failed(now);
                }
            }
        }
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Request { worker: self.worker.clone(), ..Default::default() }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

