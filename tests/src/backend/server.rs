//! The test backend's HTTP servers: the MCP listener (with faults applied
//! around the MCP logic) and a control listener for setting faults and
//! reading statistics. The MCP listener has its own accept loop so that
//! `refuse` can really close the socket and every open connection.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Response, StatusCode};
use axum::routing::{any, get};
use axum::{Json, Router};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::fault::{Fault, Mode, Rng};
use super::mcp::{method_of, sleep_ms, Mcp};

#[derive(Debug, Default, Clone, Serialize)]
pub struct Stats {
    pub requests: u64,
    pub by_method: BTreeMap<String, u64>,
    /// Requests answered with a fault.
    pub faulted: u64,
    pub sessions: usize,
}

pub struct Backend {
    pub mcp: Mcp,
    pub path: String,
    pub sse: bool,
    fault: watch::Sender<Fault>,
    stats: Mutex<Stats>,
    rng: Rng,
}

impl Backend {
    pub fn new(mcp: Mcp, path: String, sse: bool, fault: Fault, seed: u64) -> Arc<Backend> {
        Arc::new(Backend { mcp, path, sse, fault: watch::channel(fault).0, stats: Mutex::default(), rng: Rng::new(seed) })
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Serves MCP on `listener` until the process ends, closing the socket
/// while the fault mode is `refuse` and rebinding the same address after.
pub async fn serve_mcp(backend: Arc<Backend>, mut listener: TcpListener) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let app = Router::new().fallback(any(mcp_handler)).with_state(backend.clone());
    let mut fault_rx = backend.fault.subscribe();
    loop {
        let refused = tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let svc = TowerToHyperService::new(app.clone());
                let mut refuse = backend.fault.subscribe();
                tokio::spawn(async move {
                    let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = refuse.wait_for(|f| f.mode == Mode::Refuse) => {}
                    }
                });
                false
            }
            _ = fault_rx.wait_for(|f| f.mode == Mode::Refuse) => true,
        };
        if refused {
            drop(listener);
            let _ = fault_rx.wait_for(|f| f.mode != Mode::Refuse).await;
            listener = loop {
                match TcpListener::bind(addr).await {
                    Ok(l) => break l,
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            };
        }
    }
}

async fn mcp_handler(State(b): State<Arc<Backend>>, method: Method, uri: axum::http::Uri, headers: HeaderMap, body: Bytes) -> Response<Body> {
    if uri.path() != b.path {
        return plain(StatusCode::NOT_FOUND, "not found");
    }
    let session = headers.get("mcp-session-id").and_then(|v| v.to_str().ok());
    match method {
        Method::POST => {}
        Method::GET => return plain(StatusCode::METHOD_NOT_ALLOWED, "no server-initiated stream"),
        Method::DELETE => {
            return match session {
                Some(s) if b.mcp.end_session(s) => plain(StatusCode::OK, ""),
                _ => plain(StatusCode::NOT_FOUND, "session not found"),
            }
        }
        _ => return plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
    }
    let msg: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return json_reply(StatusCode::BAD_REQUEST, &json!({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}), None, false),
    };
    {
        let mut s = b.stats();
        s.requests += 1;
        *s.by_method.entry(method_of(&msg).to_string()).or_default() += 1;
    }
    let fault = b.fault.borrow().clone();
    let delay = fault.latency.sample(&b.rng) + Duration::from_millis(sleep_ms(&msg));
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    if fault.applies(&b.rng) {
        b.stats().faulted += 1;
        match fault.mode {
            Mode::Ok | Mode::Refuse => {}
            Mode::Hang => std::future::pending::<()>().await,
            Mode::HttpStatus { status } => {
                let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                let body = json!({"jsonrpc":"2.0","id":id,"error":{"code":-32603,"message":format!("injected HTTP {status}")}});
                return json_reply(code, &body, None, false);
            }
            Mode::JsonrpcError { code } => {
                let body = json!({"jsonrpc":"2.0","id":id,"error":{"code":code,"message":"injected JSON-RPC error"}});
                return json_reply(StatusCode::OK, &body, None, b.sse);
            }
        }
    }
    let protocol = headers.get("mcp-protocol-version").and_then(|v| v.to_str().ok());
    let reply = b.mcp.handle(protocol, session, &msg);
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match reply.body {
        None => plain(status, ""),
        // Errors go out as plain JSON, as SDK servers send them.
        Some(body) => json_reply(status, &body, reply.session_id.as_deref(), b.sse && status == StatusCode::OK),
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(Body::from(text.to_string()));
    *r.status_mut() = status;
    r
}

fn json_reply(status: StatusCode, body: &Value, session: Option<&str>, sse: bool) -> Response<Body> {
    let text = body.to_string();
    let (content_type, payload) = if sse {
        ("text/event-stream", format!("event: message\ndata: {text}\n\n"))
    } else {
        ("application/json", text)
    };
    let mut builder = Response::builder().status(status).header("content-type", content_type);
    if let Some(s) = session {
        builder = builder.header("mcp-session-id", s);
    }
    builder.body(Body::from(payload)).unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "bad response"))
}

/// The control API: `GET/PUT /fault`, `GET /stats`, `POST /stats/reset`.
pub fn control_router(b: Arc<Backend>) -> Router {
    Router::new()
        .route("/fault", get(get_fault).put(put_fault).post(put_fault))
        .route("/stats", get(get_stats))
        .route("/stats/reset", axum::routing::post(reset_stats))
        .with_state(b)
}

async fn get_fault(State(b): State<Arc<Backend>>) -> Json<Fault> {
    Json(b.fault.borrow().clone())
}

async fn put_fault(State(b): State<Arc<Backend>>, body: Bytes) -> Response<Body> {
    match serde_json::from_slice::<Fault>(&body) {
        Ok(f) => {
            tracing::info!(fault = ?f, "fault set");
            b.fault.send_replace(f);
            plain(StatusCode::OK, "ok")
        }
        Err(e) => plain(StatusCode::BAD_REQUEST, &format!("bad fault: {e}")),
    }
}

async fn get_stats(State(b): State<Arc<Backend>>) -> Json<Stats> {
    let mut s = b.stats().clone();
    s.sessions = b.mcp.session_count();
    Json(s)
}

async fn reset_stats(State(b): State<Arc<Backend>>) -> &'static str {
    *b.stats() = Stats::default();
    "ok"
}

/// Addresses a started backend reports in its ready file.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Ready {
    pub mcp: SocketAddr,
    pub control: SocketAddr,
    /// More MCP listeners of the same backend (`--extra-listeners`).
    #[serde(default)]
    pub extra: Vec<SocketAddr>,
}
