//! One VM's host-side state (the wasmtime `Store` data): its contexts, the
//! streams in flight with their headers, bodies and properties, the callouts
//! the filter made, its logs and metric ids. What all VMs share lives in
//! `Shared`.

use std::collections::{BTreeSet, HashMap};

use crate::shared::Shared;

/// Where a stream is; a property is visible from its phase on (Envoy
/// knows `response.code` only once the stream is done, for instance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    RequestHeaders,
    RequestBody,
    ResponseHeaders,
    ResponseBody,
    Log,
}

/// A header list in order; names are lower case, values raw bytes (Envoy
/// lets non-UTF-8 bytes through).
pub type Headers = Vec<(String, Vec<u8>)>;

pub fn header<'a>(h: &'a Headers, name: &str) -> Option<&'a [u8]> {
    h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
}

/// A property: NUL-separated path, raw value, first phase it is visible in.
#[derive(Debug, Clone)]
pub struct Prop {
    pub path: Vec<u8>,
    pub value: Vec<u8>,
    pub from: Phase,
}

/// What `proxy_send_local_response` asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalResponse {
    pub status: u32,
    pub details: Vec<u8>,
    pub body: Vec<u8>,
    pub headers: Headers,
    pub grpc_status: i32,
}

impl LocalResponse {
    pub fn header(&self, name: &str) -> Option<String> {
        header(&self.headers, name).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Debug, Default)]
pub struct StreamState {
    pub phase: Option<Phase>,
    pub request_headers: Headers,
    pub request_trailers: Headers,
    pub response_headers: Headers,
    pub response_trailers: Headers,
    /// The body buffer the current callback sees.
    pub request_body: Option<Vec<u8>>,
    pub response_body: Option<Vec<u8>>,
    pub props: Vec<Prop>,
    pub local_response: Option<LocalResponse>,
    /// `proxy_continue_stream` calls: (stream type, phase).
    pub resumed: Vec<u32>,
    /// `proxy_close_stream` calls.
    pub closed: Vec<u32>,
}

/// An HTTP callout the filter dispatched (`proxy_http_call`).
#[derive(Debug, Clone)]
pub struct HttpCall {
    pub token: u32,
    pub cluster: String,
    pub headers: Headers,
    pub body: Vec<u8>,
    pub trailers: Headers,
    pub timeout_ms: u32,
    /// Host clock when it was dispatched.
    pub at_ms: u64,
}

impl HttpCall {
    pub fn header(&self, name: &str) -> Option<String> {
        header(&self.headers, name).map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: u32,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// The response to an HTTP callout, visible while `proxy_on_http_call_response` runs.
#[derive(Debug, Default)]
pub struct CallResponse {
    pub headers: Headers,
    pub body: Vec<u8>,
    pub trailers: Headers,
}

pub struct VmState {
    pub shared: Shared,
    pub root_id: u32,
    /// The context the host called into.
    pub current: u32,
    /// Set by `proxy_set_effective_context` for the rest of the callback.
    pub effective: Option<u32>,
    pub contexts: BTreeSet<u32>,
    pub vm_configuration: Vec<u8>,
    pub plugin_configuration: Vec<u8>,
    /// Properties every context sees (node id, plugin name...).
    pub global_props: Vec<Prop>,
    pub streams: HashMap<u32, StreamState>,
    pub tick_period_ms: u32,
    pub logs: Vec<LogLine>,
    /// Metric id - 1 indexes this: name and kind.
    pub metrics: Vec<(String, MetricKind)>,
    /// Callouts not answered yet.
    pub http_calls: Vec<HttpCall>,
    pub next_token: u32,
    pub call_response: Option<CallResponse>,
    /// Clusters `proxy_http_call` may target (Envoy refuses unknown ones).
    pub clusters: BTreeSet<String>,
    /// Deterministic state for `random_get`.
    pub rng: u64,
    /// Label for log lines echoed to stderr (shown when a test fails).
    pub label: String,
}

impl VmState {
    /// The context a host call acts on.
    pub fn context(&self) -> u32 {
        self.effective.unwrap_or(self.current)
    }

    pub fn stream(&self) -> Option<&StreamState> {
        self.streams.get(&self.context())
    }

    pub fn stream_mut(&mut self) -> Option<&mut StreamState> {
        let id = self.context();
        self.streams.get_mut(&id)
    }

    pub fn log(&mut self, level: u32, message: String) {
        eprintln!("[{} wasm level {level}] {message}", self.label);
        self.logs.push(LogLine { level, message });
    }

    /// A property as the current context sees it.
    pub fn property(&self, path: &[u8]) -> Option<Vec<u8>> {
        if let Some(s) = self.stream() {
            let phase = s.phase?;
            if let Some(p) = s.props.iter().rev().find(|p| p.path == path && p.from <= phase) {
                return Some(p.value.clone());
            }
        }
        self.global_props.iter().rev().find(|p| p.path == path).map(|p| p.value.clone())
    }
}
