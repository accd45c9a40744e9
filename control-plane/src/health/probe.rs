//! One health probe over real HTTP, speaking MCP the way real servers
//! expect it in both protocol eras.
//!
//! - 2026-07-28 servers are stateless and must answer `server/discover`;
//!   that is the first thing tried.
//! - Legacy servers (2025-11-25 and earlier) refuse it (HTTP 4xx or a
//!   JSON-RPC "invalid request"/"method not found"); they get `initialize`
//!   and `notifications/initialized` once, then a `ping` on that session
//!   per probe. The session is kept between probes (a fresh session per
//!   probe would leak server state), and renewed after a 404.
//! - A backend configured with `health_path` gets a plain `GET` instead.
//!
//! A 5xx, a JSON-RPC internal/server error (-32603, -32000..-32099), a
//! refused connection or a timeout is a failure and never a reason to
//! switch eras. Answers may be `application/json` or `text/event-stream`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use super::score::Resources;
use crate::config::Protocol;

pub const MODERN_VERSION: &str = "2026-07-28";
pub const LEGACY_VERSION: &str = "2025-11-25";
/// Larger answers are cut off: a probe needs only the envelope.
const MAX_BODY: usize = 256 * 1024;

/// What to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    pub path: String,
    pub protocol: Protocol,
    pub health_path: Option<String>,
}

/// Which way of probing worked last time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Discover,
    Ping,
    HttpGet,
}

/// What a probe remembers about an endpoint between probes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    /// The era that answered last; `None` tries modern first.
    pub legacy: Option<bool>,
    pub session_id: Option<String>,
    pub negotiated: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Success {
    pub method: Method,
    pub latency: Duration,
    pub resources: Resources,
}

/// Why a probe failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("HTTP {status} to {method}")]
    Status { method: &'static str, status: u16 },
    #[error("JSON-RPC error {code} to {method}: {message}")]
    JsonRpc { method: &'static str, code: i64, message: String },
    #[error("unreadable answer to {method}: {reason}")]
    Malformed { method: &'static str, reason: String },
    #[error("transport: {0}")]
    Transport(String),
}

impl ProbeError {
    /// A fixed label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            ProbeError::Timeout(_) => "timeout",
            ProbeError::Connect(_) => "connect",
            ProbeError::Status { .. } => "http_status",
            ProbeError::JsonRpc { .. } => "jsonrpc_error",
            ProbeError::Malformed { .. } => "malformed",
            ProbeError::Transport(_) => "transport",
        }
    }

    /// Whether this answer means "I do not speak that era" rather than
    /// "I am broken": the cue to try the other era.
    fn is_refusal(&self) -> bool {
        match self {
            ProbeError::Status { status, .. } => (400..500).contains(status) && *status != 408 && *status != 429,
            ProbeError::JsonRpc { code, .. } => (-32602..=-32600).contains(code),
            _ => false,
        }
    }
}

/// Probes endpoints; cheap to clone (one shared connection pool).
#[derive(Debug, Clone)]
pub struct Prober {
    client: reqwest::Client,
}

impl Prober {
    pub fn new() -> Result<Prober, reqwest::Error> {
        let client = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(1)
            .user_agent("only1mcp-health/0.1")
            .build()?;
        Ok(Prober { client })
    }

    /// Runs one probe within `timeout`; `session` is updated in place.
    pub async fn probe(&self, target: &Target, session: &mut Session, timeout: Duration) -> Result<Success, ProbeError> {
        let start = Instant::now();
        let work = async {
            if let Some(hp) = &target.health_path {
                return self.http_get(target.addr, hp).await.map(|r| (Method::HttpGet, r));
            }
            self.mcp(target, session).await
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(Ok((method, resources))) => Ok(Success { method, latency: start.elapsed(), resources }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ProbeError::Timeout(timeout)),
        }
    }

    async fn mcp(&self, target: &Target, session: &mut Session) -> Result<(Method, Resources), ProbeError> {
        let try_modern = match target.protocol {
            Protocol::Stateless => true,
            Protocol::Legacy => false,
            Protocol::Auto => session.legacy != Some(true),
        };
        if try_modern {
            match self.discover(target).await {
                Ok(res) => {
                    session.legacy = Some(false);
                    return Ok((Method::Discover, res));
                }
                Err(e) if target.protocol == Protocol::Auto && e.is_refusal() => {
                    tracing::debug!(addr = %target.addr, error = %e, "server/discover refused; trying the legacy handshake");
                }
                Err(e) => return Err(e),
            }
        }
        match self.legacy(target, session).await {
            Ok(res) => {
                session.legacy = Some(true);
                Ok((Method::Ping, res))
            }
            Err(e) => {
                if target.protocol == Protocol::Auto && e.is_refusal() {
                    // Neither era answered properly: start over next time.
                    *session = Session::default();
                }
                Err(e)
            }
        }
    }

    async fn discover(&self, target: &Target) -> Result<Resources, ProbeError> {
        let body = json!({
            "jsonrpc": "2.0", "id": 1, "method": "server/discover",
            "params": {"_meta": {
                "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
                "io.modelcontextprotocol/clientInfo": {"name": "only1mcp-health", "version": env!("CARGO_PKG_VERSION")},
                "io.modelcontextprotocol/clientCapabilities": {},
            }},
        });
        let headers = [("mcp-protocol-version", MODERN_VERSION), ("mcp-method", "server/discover")];
        let (_, answer) = self.rpc(target, "server/discover", &headers, &body).await?;
        let result = answer.map(|a| result_of(a, "server/discover")).transpose()?;
        Ok(result.map(|r| resources_in(r.get("_meta").unwrap_or(&Value::Null))).unwrap_or_default())
    }

    async fn legacy(&self, target: &Target, session: &mut Session) -> Result<Resources, ProbeError> {
        if session.session_id.is_some() {
            match self.ping(target, session).await {
                Err(ProbeError::Status { status: 404, .. }) => {
                    tracing::debug!(addr = %target.addr, "probe session expired; initializing a new one");
                    session.session_id = None;
                }
                other => return other,
            }
        }
        self.initialize(target, session).await?;
        self.ping(target, session).await
    }

    async fn initialize(&self, target: &Target, session: &mut Session) -> Result<(), ProbeError> {
        let body = json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {
                "protocolVersion": LEGACY_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "only1mcp-health", "version": env!("CARGO_PKG_VERSION")},
            },
        });
        let (sid, answer) = self.rpc(target, "initialize", &[], &body).await?;
        let result = result_of(answer.unwrap_or(Value::Null), "initialize")?;
        let negotiated = result.get("protocolVersion").and_then(Value::as_str).unwrap_or(LEGACY_VERSION).to_string();
        session.session_id = sid;
        session.negotiated = Some(negotiated.clone());
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let mut headers = vec![("mcp-protocol-version", negotiated.as_str())];
        if let Some(s) = &session.session_id {
            headers.push(("mcp-session-id", s.as_str()));
        }
        self.rpc(target, "notifications/initialized", &headers, &note).await?;
        Ok(())
    }

    async fn ping(&self, target: &Target, session: &Session) -> Result<Resources, ProbeError> {
        let version = session.negotiated.as_deref().unwrap_or(LEGACY_VERSION);
        let mut headers = vec![("mcp-protocol-version", version)];
        if let Some(s) = &session.session_id {
            headers.push(("mcp-session-id", s.as_str()));
        }
        let body = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"});
        let (_, answer) = self.rpc(target, "ping", &headers, &body).await?;
        let result = result_of(answer.unwrap_or(Value::Null), "ping")?;
        Ok(resources_in(result.get("_meta").unwrap_or(&Value::Null)))
    }

    /// POSTs one JSON-RPC message. Returns the session id header and the
    /// answer (`None` for 202 Accepted).
    async fn rpc(
        &self,
        target: &Target,
        method: &'static str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> Result<(Option<String>, Option<Value>), ProbeError> {
        let url = format!("http://{}{}", target.addr, target.path);
        let mut req = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut resp = req.send().await.map_err(transport_error)?;
        let status = resp.status().as_u16();
        let sid = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(String::from);
        let sse = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/event-stream"));
        if status == 202 {
            return Ok((sid, None));
        }
        let want_id = body.get("id").cloned();
        let mut buf = Vec::new();
        let mut answer = None;
        while let Some(chunk) = resp.chunk().await.map_err(transport_error)? {
            buf.extend_from_slice(&chunk);
            // An SSE stream may stay open after the answer: stop at it.
            if sse {
                answer = sse_answer(&buf, want_id.as_ref());
                if answer.is_some() {
                    break;
                }
            }
            if buf.len() > MAX_BODY {
                break;
            }
        }
        if !sse {
            answer = serde_json::from_slice::<Value>(&buf).ok();
        }
        if !(200..300).contains(&status) {
            // A JSON-RPC error body on a 4xx says more than the status.
            if let Some(err) = answer.as_ref().and_then(|a| a.get("error")) {
                if (400..500).contains(&status) && status != 404 {
                    return Err(jsonrpc_error(method, err));
                }
            }
            return Err(ProbeError::Status { method, status });
        }
        match answer {
            Some(a) => Ok((sid, Some(a))),
            None => Err(ProbeError::Malformed { method, reason: format!("HTTP {status} without a JSON-RPC message") }),
        }
    }

    async fn http_get(&self, addr: SocketAddr, path: &str) -> Result<Resources, ProbeError> {
        let mut resp = self.client.get(format!("http://{addr}{path}")).send().await.map_err(transport_error)?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(ProbeError::Status { method: "GET", status });
        }
        let mut buf = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport_error)? {
            buf.extend_from_slice(&chunk);
            if buf.len() > MAX_BODY {
                break;
            }
        }
        // Health bodies are often plain text; figures are optional.
        Ok(serde_json::from_slice::<Value>(&buf).map(|v| resources_in(&v)).unwrap_or_default())
    }
}

fn transport_error(e: reqwest::Error) -> ProbeError {
    if e.is_connect() {
        ProbeError::Connect(root_cause(&e))
    } else {
        ProbeError::Transport(root_cause(&e))
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

fn jsonrpc_error(method: &'static str, err: &Value) -> ProbeError {
    ProbeError::JsonRpc {
        method,
        code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
        message: err.get("message").and_then(Value::as_str).unwrap_or("").chars().take(200).collect(),
    }
}

/// The `result` of a JSON-RPC answer, or its `error` as a failure.
fn result_of(answer: Value, method: &'static str) -> Result<Value, ProbeError> {
    if let Some(err) = answer.get("error") {
        return Err(jsonrpc_error(method, err));
    }
    match answer {
        Value::Object(mut m) => m
            .remove("result")
            .ok_or_else(|| ProbeError::Malformed { method, reason: "neither result nor error".into() }),
        _ => Err(ProbeError::Malformed { method, reason: "not a JSON object".into() }),
    }
}

/// The JSON-RPC message with id `want` in an SSE body (`event: message` /
/// `data: {...}`, data lines of one event joined), if it has arrived.
pub fn sse_answer(buf: &[u8], want: Option<&Value>) -> Option<Value> {
    let text = String::from_utf8_lossy(buf);
    let text = text.replace("\r\n", "\n");
    // Only complete events (terminated by a blank line) count.
    let complete = text.rfind("\n\n").map(|i| &text[..i])?;
    for event in complete.split("\n\n") {
        let data: Vec<&str> = event
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect();
        if data.is_empty() {
            continue;
        }
        let Ok(msg) = serde_json::from_str::<Value>(&data.join("\n")) else { continue };
        let is_answer = msg.get("result").is_some() || msg.get("error").is_some();
        if is_answer && (want.is_none() || msg.get("id") == want) {
            return Some(msg);
        }
    }
    None
}

/// Resource figures under `cpu` and `memory` (fractions, or percentages
/// above 1), at the top level or under an `only1mcp/resources` object.
pub fn resources_in(v: &Value) -> Resources {
    let obj = v.get("only1mcp/resources").unwrap_or(v);
    let fig = |k: &str| {
        obj.get(k).and_then(Value::as_f64).filter(|x| x.is_finite() && *x >= 0.0).map(|x| if x > 1.0 { (x / 100.0).min(1.0) } else { x })
    };
    Resources { cpu: fig("cpu"), memory: fig("memory") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_answers_are_found_by_id_and_only_when_complete() {
        let body = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}\n\n";
        assert_eq!(sse_answer(body, Some(&json!(2))), Some(json!({"jsonrpc":"2.0","id":2,"result":{}})));
        assert_eq!(sse_answer(body, Some(&json!(3))), None);
        assert_eq!(sse_answer(&body[..body.len() - 1], Some(&json!(2))), None, "event not terminated yet");
        let crlf = b"event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\r\ndata: \"result\":{}}\r\n\r\n";
        assert_eq!(sse_answer(crlf, Some(&json!(1))), Some(json!({"jsonrpc":"2.0","id":1,"result":{}})));
    }

    #[test]
    fn results_and_errors() {
        assert_eq!(result_of(json!({"id":1,"result":{"a":1}}), "ping"), Ok(json!({"a":1})));
        let e = result_of(json!({"id":1,"error":{"code":-32603,"message":"boom"}}), "ping").unwrap_err();
        assert_eq!(e, ProbeError::JsonRpc { method: "ping", code: -32603, message: "boom".into() });
        assert!(!e.is_refusal(), "an internal error is the backend failing, not an era mismatch");
        assert!(jsonrpc_error("x", &json!({"code":-32601})).is_refusal());
        assert!(ProbeError::Status { method: "x", status: 400 }.is_refusal());
        assert!(!ProbeError::Status { method: "x", status: 503 }.is_refusal());
        assert!(!ProbeError::Status { method: "x", status: 429 }.is_refusal());
        assert!(matches!(result_of(json!([1]), "ping"), Err(ProbeError::Malformed { .. })));
    }

    /// A real HTTP server on loopback answering the health path with what
    /// `state` holds: 0 = 200 with figures, 1 = 503, 2 = never.
    async fn health_server(state: std::sync::Arc<std::sync::atomic::AtomicU8>) -> SocketAddr {
        use axum::routing::get;
        let app = axum::Router::new().route(
            "/healthz",
            get(move || {
                let state = state.clone();
                async move {
                    match state.load(std::sync::atomic::Ordering::SeqCst) {
                        0 => (axum::http::StatusCode::OK, r#"{"status":"ok","cpu":0.5,"memory":92}"#),
                        1 => (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down"),
                        _ => std::future::pending().await,
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    #[tokio::test]
    async fn health_path_get_reads_figures_and_fails_on_5xx_and_timeout() {
        let state = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(0));
        let addr = health_server(state.clone()).await;
        let target = Target { addr, path: "/mcp".into(), protocol: Protocol::Auto, health_path: Some("/healthz".into()) };
        let prober = Prober::new().unwrap();
        let mut session = Session::default();
        let ok = prober.probe(&target, &mut session, Duration::from_secs(5)).await.unwrap();
        assert_eq!(ok.method, Method::HttpGet);
        assert_eq!(ok.resources, Resources { cpu: Some(0.5), memory: Some(0.92) });
        state.store(1, std::sync::atomic::Ordering::SeqCst);
        let err = prober.probe(&target, &mut session, Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(err, ProbeError::Status { method: "GET", status: 503 });
        state.store(2, std::sync::atomic::Ordering::SeqCst);
        let err = prober.probe(&target, &mut session, Duration::from_millis(100)).await.unwrap_err();
        assert_eq!(err, ProbeError::Timeout(Duration::from_millis(100)));
        // Nothing listening: a connect error, not a timeout.
        let closed = Target { addr: "127.0.0.1:1".parse().unwrap(), ..target };
        assert_eq!(prober.probe(&closed, &mut session, Duration::from_secs(5)).await.unwrap_err().label(), "connect");
    }

    #[test]
    fn resource_figures() {
        assert_eq!(resources_in(&json!({"cpu":0.5,"memory":85})), Resources { cpu: Some(0.5), memory: Some(0.85) });
        assert_eq!(resources_in(&json!({"only1mcp/resources":{"cpu":250}})), Resources { cpu: Some(1.0), memory: None });
        assert_eq!(resources_in(&json!({"cpu":"high","memory":-1})), Resources::default());
        assert_eq!(resources_in(&Value::Null), Resources::default());
    }
}
