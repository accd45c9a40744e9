//! The proxy-wasm glue: reads what Envoy knows about each request, feeds
//! the algorithms, shares breaker state across workers through shared data,
//! and fails fast when no host of a cluster may take traffic. Compiled for
//! `wasm32` only; everything it decides is computed by the plain modules.
//!
//! Per worker (one root context each): the hosts seen, their phi detector,
//! latency tracker and outcome window. Shared by all workers: each host's
//! breaker, under `only1mcp:breaker:<host>`, updated with CAS.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType};

use crate::breaker::{Breaker, Decision, Signals, State, Transition};
use crate::classify::{classify, Finished, Outcome};
use crate::config::Config;
use crate::latency::LatencyTracker;
use crate::phi::{elapsed_since, suspect, PhiDetector};
use crate::report::Reporter;
use crate::window::OutcomeWindow;
use crate::{encoding, jsonrpc};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

const KEY_PREFIX: &str = "only1mcp:breaker:";
const TICK: Duration = Duration::from_millis(100);
/// The control plane's admin API, as a cluster the control plane serves over CDS.
const REPORTS_CLUSTER: &str = "only1mcp_control_plane";

fn now_ms() -> u64 {
    hostcalls::get_current_time().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn prop_string(path: &[&str]) -> Option<String> {
    let bytes = hostcalls::get_property(path.to_vec()).ok()??;
    String::from_utf8(bytes).ok()
}

/// A header value, or `None` when absent or not UTF-8 (Envoy passes
/// obs-text bytes through; the SDK's string getter would panic on them).
fn header(map: proxy_wasm::types::MapType, name: &str) -> Option<String> {
    let bytes = hostcalls::get_map_value_bytes(map, name).ok()??;
    String::from_utf8(bytes).ok()
}

fn prop_u64(path: &[&str]) -> Option<u64> {
    let bytes = hostcalls::get_property(path.to_vec()).ok()??;
    let arr: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(arr))
}

/// Loads a host's shared breaker (default: closed) and its CAS token.
fn load_breaker(host: &str) -> (Breaker, Option<u32>) {
    match hostcalls::get_shared_data(&format!("{KEY_PREFIX}{host}")) {
        Ok((Some(bytes), cas)) => (encoding::decode(&bytes).unwrap_or_default(), cas),
        Ok((None, cas)) => (Breaker::default(), cas),
        Err(_) => (Breaker::default(), None),
    }
}

/// Applies `f` to a host's shared breaker with compare-and-swap, retrying
/// when another worker got there first. Returns the transition, if any,
/// and the breaker as it now stands.
fn update_breaker(host: &str, f: impl Fn(&mut Breaker) -> Option<Transition>) -> (Option<Transition>, Breaker) {
    let mut last = Breaker::default();
    for _ in 0..4 {
        let (mut b, cas) = load_breaker(host);
        let before = b;
        let t = f(&mut b);
        if b == before {
            return (t, b);
        }
        match hostcalls::set_shared_data(&format!("{KEY_PREFIX}{host}"), Some(&encoding::encode(&b)), cas) {
            Ok(()) => return (t, b),
            Err(_) => last = before, // CAS mismatch: reload and retry
        }
    }
    (None, last)
}

const MEMBERS_PREFIX: &str = "only1mcp:members:";
/// Hosts remembered per cluster (shared and per worker).
const MAX_MEMBERS: usize = 64;

/// The hosts any worker has seen for a cluster, and the CAS token.
fn load_members(cluster: &str) -> (Vec<String>, Option<u32>) {
    match hostcalls::get_shared_data(&format!("{MEMBERS_PREFIX}{cluster}")) {
        Ok((Some(bytes), cas)) => {
            let text = String::from_utf8_lossy(&bytes);
            (text.split('\n').filter(|h| !h.is_empty()).map(String::from).collect(), cas)
        }
        Ok((None, cas)) => (Vec::new(), cas),
        Err(_) => (Vec::new(), None),
    }
}

/// Adds a host to a cluster's shared list (bounded, CAS, best effort).
fn publish_member(cluster: &str, host: &str) {
    for _ in 0..4 {
        let (mut hosts, cas) = load_members(cluster);
        if hosts.iter().any(|h| h == host) || hosts.len() >= MAX_MEMBERS {
            return;
        }
        hosts.push(host.to_string());
        if hostcalls::set_shared_data(&format!("{MEMBERS_PREFIX}{cluster}"), Some(hosts.join("\n").as_bytes()), cas).is_ok() {
            return;
        }
    }
}

/// How long a worker trusts its copy of a host's shared breaker. Reading
/// shared data on every request costs more than the rest of the filter;
/// another worker's trip is seen within this long.
const CACHE_MS: u64 = 100;

#[derive(Default)]
struct HostLocal {
    phi: PhiDetector,
    latency: LatencyTracker,
    /// Recent outcomes: (failure, slow).
    window: OutcomeWindow,
    inflight: u32,
    busy_since_ms: Option<u64>,
    last_seen_ms: u64,
    cluster: String,
}

struct Metrics {
    requests: u32,
    failures: u32,
    slow: u32,
    opened: u32,
    closed: u32,
    half_opened: u32,
    fast_fail: u32,
    reinit_404: u32,
}

impl Metrics {
    fn define() -> Option<Metrics> {
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

fn inc(id: Option<u32>) {
    if let Some(id) = id {
        let _ = hostcalls::increment_metric(id, 1);
    }
}

#[derive(Default)]
struct Worker {
    config: Rc<Config>,
    /// Each host's shared breaker as last read or written, and when.
    breakers: HashMap<String, (Breaker, u64)>,
    /// When each cluster's shared host list was last read.
    members_read: HashMap<String, u64>,
    hosts: HashMap<String, HostLocal>,
    /// Hosts seen per cluster, for "no host may take traffic".
    clusters: HashMap<String, Vec<String>>,
    metrics: Option<Metrics>,
    reporter: Reporter,
    node_id: String,
    unflushed_requests: i64,
}

impl Worker {
    fn metric(&self, pick: impl Fn(&Metrics) -> u32) -> Option<u32> {
        self.metrics.as_ref().map(pick)
    }

    fn count_transition(&mut self, host: &str, t: &Transition, now: u64) {
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

    fn host(&mut self, host: &str, now: u64) -> &mut HostLocal {
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

    fn remember(&mut self, cluster: &str, host: &str) {
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
    fn breaker(&mut self, host: &str, now: u64) -> Breaker {
        if let Some((b, at)) = self.breakers.get(host) {
            if now.saturating_sub(*at) < CACHE_MS {
                return *b;
            }
        }
        let (b, _) = load_breaker(host);
        self.cache(host, b, now);
        b
    }

    fn cache(&mut self, host: &str, b: Breaker, now: u64) {
        if !self.breakers.contains_key(host) && self.breakers.len() >= self.config.max_hosts as usize {
            self.breakers.retain(|_, (_, at)| now.saturating_sub(*at) < CACHE_MS);
        }
        self.breakers.insert(host.to_string(), (b, now));
    }

    /// The hosts known for a cluster: this worker's, plus those any worker
    /// published (so a worker that never saw a host still knows it is open).
    fn cluster_hosts(&mut self, cluster: &str, now: u64) -> Vec<String> {
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
        self.clusters.get(cluster).cloned().unwrap_or_default()
    }

    /// Whether every known host of this cluster is unavailable; if so, when
    /// to retry (ms).
    fn cluster_down(&mut self, cluster: &str, now: u64) -> Option<u64> {
        let hosts = self.cluster_hosts(cluster, now);
        if hosts.is_empty() {
            return None;
        }
        let config = self.config.clone();
        let mut retry = u64::MAX;
        for h in &hosts {
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

thread_local! {
    /// This VM's state. A new policy over ECDS creates a new root context
    /// in the same VM; it picks this up, so breakers, detectors and
    /// histograms survive a policy change.
    static WORKER: Rc<RefCell<Worker>> = Rc::new(RefCell::new(Worker::default()));
}

struct Root {
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

#[derive(Default)]
struct Request {
    worker: Rc<RefCell<Worker>>,
    start_ms: u64,
    cluster: Option<String>,
    host: Option<String>,
    /// Set when the request is answered locally once its body (and id) is in.
    fail_fast_retry_ms: Option<u64>,
    local_reply: bool,
    json_response: bool,
    response_body: Vec<u8>,
}

impl Request {
    fn reply_503(&mut self, id: Option<String>, retry_ms: u64) {
        self.local_reply = true;
        inc(self.worker.borrow().metric(|m| m.fast_fail));
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":-32000,"message":"no healthy MCP backend for this service; retry later"}}}}"#,
            id.as_deref().unwrap_or("null")
        );
        let retry = retry_ms.div_ceil(1000).max(1).to_string();
        let _ = hostcalls::send_http_response(503, vec![("content-type", "application/json"), ("retry-after", retry.as_str())], Some(body.as_bytes()));
    }

    /// Host of a legacy session pinned by Envoy's envelope: `base64(host);UV:...`.
    fn session_host(&self) -> Option<String> {
        let sid = header(proxy_wasm::types::MapType::HttpRequestHeaders, "mcp-session-id")?;
        let (b64, _) = sid.split_once(";UV:")?;
        String::from_utf8(base64_decode(b64)?).ok()
    }

    fn note_upstream(&mut self) {
        if self.host.is_some() {
            return;
        }
        if let Some(host) = prop_string(&["upstream", "address"]) {
            let now = now_ms();
            let mut w = self.worker.borrow_mut();
            w.host(&host, now);
            if let Some(c) = &self.cluster {
                w.remember(c, &host);
            }
            let h = w.host(&host, now);
            if h.inflight == 0 {
                h.busy_since_ms = Some(now);
            }
            h.inflight += 1;
            self.host = Some(host);
        }
    }
}

impl Request {
    /// Half-open hosts take a limited number of probe requests. Once Envoy
    /// has picked the host, a request beyond the limit is answered here,
    /// before its last body chunk is forwarded. Returns the retry delay
    /// when the request must not go on.
    fn admit(&mut self) -> Option<u64> {
        let host = self.host.clone()?;
        let now = now_ms();
        let config = self.worker.borrow().config.clone();
        let s = config.for_target(self.cluster.as_deref(), Some(&host)).breaker;
        let cached = self.worker.borrow_mut().breaker(&host, now);
        match cached.state {
            State::Closed { .. } => return None,
            // Envoy chose an open host while others may take traffic (EDS has
            // not excluded it yet): pass it on untouched, as for any request
            // the cluster can serve.
            State::Open { until_ms, .. } if now < until_ms => return None,
            State::Open { .. } | State::HalfOpen { .. } => {}
        }
        let decision = std::cell::Cell::new(Decision::Allow);
        let (t, b) = update_breaker(&host, |b| {
            let (d, t) = b.decide(now, &s);
            decision.set(d);
            t
        });
        let mut w = self.worker.borrow_mut();
        w.cache(&host, b, now);
        if let Some(t) = t {
            w.count_transition(&host, &t, now);
        }
        match decision.get() {
            Decision::Reject { retry_after_ms } => Some(retry_after_ms),
            Decision::Allow | Decision::Probe => None,
        }
    }

    fn release_inflight(&mut self) {
        if let Some(host) = self.host.take() {
            let now = now_ms();
            let mut w = self.worker.borrow_mut();
            let h = w.host(&host, now);
            h.inflight = h.inflight.saturating_sub(1);
            if h.inflight == 0 {
                h.busy_since_ms = None;
            }
        }
    }
}

impl Context for Request {}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _n: usize, end_of_stream: bool) -> Action {
        self.start_ms = now_ms();
        // Counted here, added to the metric on the next tick (one host call
        // per tick instead of one per request).
        self.worker.borrow_mut().unflushed_requests += 1;
        self.cluster = prop_string(&["xds", "cluster_name"]);
        // A legacy session pinned to a host whose breaker is open: 404 makes
        // the client re-initialize, and Envoy picks a healthy host for it.
        if let Some(host) = self.session_host() {
            let b = self.worker.borrow_mut().breaker(&host, self.start_ms);
            let open = {
                let w = self.worker.borrow();
                !b.available(self.start_ms, &w.config.for_target(self.cluster.as_deref(), Some(&host)).breaker)
            };
            if matches!(b.state, State::Open { .. }) && open {
                self.local_reply = true;
                inc(self.worker.borrow().metric(|m| m.reinit_404));
                let body = r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Session not found: its backend is unavailable; re-initialize"}}"#;
                let _ = hostcalls::send_http_response(404, vec![("content-type", "application/json")], Some(body.as_bytes()));
                return Action::Pause;
            }
        }
        let down = self.cluster.as_deref().and_then(|c| self.worker.borrow_mut().cluster_down(c, self.start_ms));
        if let Some(retry_ms) = down {
            if end_of_stream {
                self.reply_503(None, retry_ms);
            } else {
                self.fail_fast_retry_ms = Some(retry_ms);
            }
            return Action::Pause;
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if let Some(retry) = self.fail_fast_retry_ms {
            if !end_of_stream {
                return Action::Pause;
            }
            let limit = size.min(self.worker.borrow().config.inspect_body_bytes as usize);
            let body = hostcalls::get_buffer(proxy_wasm::types::BufferType::HttpRequestBody, 0, limit).ok().flatten().unwrap_or_default();
            self.reply_503(jsonrpc::request_id(&body), retry);
            return Action::Pause;
        }
        if end_of_stream {
            self.note_upstream();
            if let Some(retry) = self.admit() {
                let limit = size.min(self.worker.borrow().config.inspect_body_bytes as usize);
                let body = hostcalls::get_buffer(proxy_wasm::types::BufferType::HttpRequestBody, 0, limit).ok().flatten().unwrap_or_default();
                self.release_inflight();
                self.reply_503(jsonrpc::request_id(&body), retry);
                return Action::Pause;
            }
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _n: usize, _eos: bool) -> Action {
        self.note_upstream();
        let ct = header(proxy_wasm::types::MapType::HttpResponseHeaders, "content-type").unwrap_or_default();
        self.json_response = ct.starts_with("application/json") || ct.starts_with("text/event-stream");
        Action::Continue
    }

    fn on_http_response_body(&mut self, size: usize, _eos: bool) -> Action {
        let limit = self.worker.borrow().config.inspect_body_bytes as usize;
        if self.json_response && self.response_body.len() < limit {
            let want = size.min(limit - self.response_body.len());
            // Each callback sees only its own chunk (we do not buffer).
            if let Ok(Some(chunk)) = hostcalls::get_buffer(proxy_wasm::types::BufferType::HttpResponseBody, 0, want) {
                self.response_body.extend_from_slice(&chunk);
            }
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        if self.local_reply {
            return;
        }
        self.note_upstream();
        let Some(host) = self.host.clone() else { return };
        let now = now_ms();
        let finished = Finished {
            code: prop_u64(&["response", "code"]).unwrap_or(0) as u32,
            flags: prop_u64(&["response", "flags"]).unwrap_or(0),
            had_upstream: true,
            jsonrpc_error: jsonrpc::error_code(&self.response_body),
            local_reply: false,
        };
        let outcome = classify(&finished);
        let mut w = self.worker.borrow_mut();
        let config = w.config.clone();
        let cfg = config.for_target(self.cluster.as_deref(), Some(&host));
        let elapsed_us = now.saturating_sub(self.start_ms) * 1000;
        let window_len = cfg.window as usize;
        let h = w.host(&host, now);
        h.inflight = h.inflight.saturating_sub(1);
        let (failure, counts) = match outcome {
            Outcome::Success => (false, true),
            Outcome::Failure(_) => (true, true),
            Outcome::NotBackend(_) => (false, false),
        };
        let mut slow = false;
        if counts {
            slow = elapsed_us > h.latency.threshold_us(&cfg.latency);
            if !failure {
                h.phi.heartbeat(now, h.busy_since_ms);
                h.latency.record(now, elapsed_us, &cfg.latency);
            }
            h.window.push(failure, slow, window_len);
        }
        if h.inflight == 0 {
            h.busy_since_ms = None;
        }
        let sig = Signals { calls: h.window.calls(), failure_rate: h.window.failure_rate(), slow_rate: h.window.slow_rate(), phi: 0.0 };
        if failure {
            inc(w.metric(|m| m.failures));
        }
        if slow {
            inc(w.metric(|m| m.slow));
        }
        if !counts {
            return;
        }
        let step = |b: &mut Breaker| {
            let t1 = b.poll(now);
            let t2 = b.record(now, failure, &cfg.breaker);
            let t3 = b.assess(now, sig, &cfg.breaker);
            t3.or(t2).or(t1)
        };
        // Always against the shared copy: a success on any worker must break
        // a run of failures seen by another (update_breaker only writes when
        // something changed, so a success on a closed breaker is one read).
        let (t, b) = update_breaker(&host, step);
        w.cache(&host, b, now);
        if let Some(t) = t {
            w.count_transition(&host, &t, now);
            if matches!(t.to, State::Open { .. }) {
                // Fresh window after a trip, so a recovered host is judged anew.
                if let Some(h) = w.hosts.get_mut(&host) {
                    h.window.clear();
                }
            }
        }
    }
}

/// Standard base64 (with or without padding); `None` on anything else.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}
