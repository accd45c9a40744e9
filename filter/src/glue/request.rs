//! One HTTP stream: the fail-fast decisions on the way in, the upstream
//! host once Envoy picked it, the answer's JSON-RPC error, and the
//! outcome recorded at the end.

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use super::host_io::{base64_decode, header, now_ms, prop_string, prop_u64};
use super::shared::update_breaker;
use super::worker::{inc, Worker};
use crate::breaker::{Breaker, Decision, Signals, State};
use crate::classify::{classify, Finished, Outcome};
use crate::jsonrpc;

#[derive(Default)]
pub(super) struct Request {
    pub(super) worker: Rc<RefCell<Worker>>,
    pub(super) start_ms: u64,
    pub(super) cluster: Option<String>,
    pub(super) host: Option<String>,
    /// Set when the request is answered locally once its body (and id) is in.
    pub(super) fail_fast_retry_ms: Option<u64>,
    pub(super) local_reply: bool,
    pub(super) json_response: bool,
    pub(super) response_body: Vec<u8>,
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
            self.worker.borrow_mut().begin_call(&host, self.cluster.as_deref(), now_ms());
            self.host = Some(host);
        }
    }

    /// Answers with the fast-fail 503, echoing the JSON-RPC id from the
    /// (buffered, bounded) request body.
    fn reply_503_with_body(&mut self, body_size: usize, retry_ms: u64) {
        let limit = body_size.min(self.worker.borrow().config.inspect_body_bytes as usize);
        let body = hostcalls::get_buffer(proxy_wasm::types::BufferType::HttpRequestBody, 0, limit).ok().flatten().unwrap_or_default();
        self.reply_503(jsonrpc::request_id(&body), retry_ms);
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
            self.worker.borrow_mut().end_call(&host, now_ms());
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
            if matches!(b.state, State::Open { until_ms, .. } if self.start_ms < until_ms) {
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
            self.reply_503_with_body(size, retry);
            return Action::Pause;
        }
        if end_of_stream {
            self.note_upstream();
            if let Some(retry) = self.admit() {
                self.release_inflight();
                self.reply_503_with_body(size, retry);
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
        let (h, busy_since) = w.end_call(&host, now);
        let (failure, counts) = match outcome {
            Outcome::Success => (false, true),
            Outcome::Failure(_) => (true, true),
            Outcome::NotBackend(_) => (false, false),
        };
        let mut slow = false;
        if counts {
            slow = elapsed_us > h.latency.threshold_us(&cfg.latency);
            if !failure {
                h.phi.heartbeat(now, busy_since);
                h.latency.record(now, elapsed_us, &cfg.latency);
            }
            h.window.push(failure, slow, window_len);
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

