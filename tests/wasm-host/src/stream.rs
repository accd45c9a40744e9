//! One HTTP stream through the filter, in Envoy's order: context create,
//! request headers, request body chunks, then (unless the filter answered
//! locally) response headers and body chunks, then `on_log`, `on_done`,
//! `on_delete`. `begin` and `finish` are separate so a request can stay
//! outstanding while the clock moves (a hung backend).
//!
//! Body chunks are delivered as Envoy does: each callback sees the new
//! chunk, or everything since the filter last paused (Pause buffers).
//! Properties become visible in the phase Envoy knows them: the cluster from
//! request headers, the upstream host once the request went on (request
//! body), `response.*` only at `on_log`.

use crate::host::{path, Host};
use crate::state::{Headers, LocalResponse, Phase, Prop, StreamState};
use crate::status::Action;

/// `DOWNSTREAM_CONNECTION_TERMINATION`: the client went away.
pub const DOWNSTREAM_CONNECTION_TERMINATION: u64 = 0x4000;

#[derive(Debug, Clone, Default)]
pub struct Request {
    pub headers: Headers,
    pub chunks: Vec<Vec<u8>>,
    pub props: Vec<Prop>,
    /// `upstream.address` and the phase it becomes known in.
    pub upstream: Option<(Vec<u8>, Phase)>,
}

impl Request {
    /// A POST to `/mcp` with JSON content type, no cluster, no body.
    pub fn new() -> Request {
        Request::default().header(":method", "POST").header(":path", "/mcp").header(":authority", "only1mcp").header("content-type", "application/json")
    }

    /// A request routed to `cluster` (`xds.cluster_name`).
    pub fn to(cluster: &str) -> Request {
        Request::new().cluster(cluster)
    }

    pub fn cluster(self, cluster: &str) -> Request {
        self.property(&["xds", "cluster_name"], cluster.as_bytes(), Phase::RequestHeaders)
    }

    /// The host Envoy picks, known once the request went on upstream.
    pub fn upstream(self, addr: &str) -> Request {
        self.upstream_at(addr.as_bytes(), Phase::RequestBody)
    }

    pub fn upstream_at(mut self, addr: &[u8], from: Phase) -> Request {
        self.upstream = Some((addr.to_vec(), from));
        self
    }

    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Request {
        self.headers.push((name.to_ascii_lowercase(), value.as_ref().to_vec()));
        self
    }

    /// The body in one chunk (replaces any earlier body).
    pub fn body(mut self, body: impl AsRef<[u8]>) -> Request {
        self.chunks = vec![body.as_ref().to_vec()];
        self
    }

    pub fn chunks(mut self, chunks: Vec<Vec<u8>>) -> Request {
        self.chunks = chunks;
        self
    }

    /// A JSON-RPC request with this id (raw JSON: `7`, `"a"`).
    pub fn jsonrpc(self, id: &str, method: &str) -> Request {
        self.body(format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{{}}}}"#))
    }

    pub fn property(mut self, segments: &[&str], value: impl AsRef<[u8]>, from: Phase) -> Request {
        self.props.push(Prop { path: path(segments), value: value.as_ref().to_vec(), from });
        self
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    /// `None`: no response headers reached the filter (client cancel, reset).
    pub headers: Option<Headers>,
    pub chunks: Vec<Vec<u8>>,
    /// `response.code` / `response.flags` as raw property bytes; `None` = absent.
    pub code: Option<Vec<u8>>,
    pub flags: Option<Vec<u8>>,
    pub props: Vec<Prop>,
}

impl Response {
    /// A response with this status and no body.
    pub fn status(code: u32) -> Response {
        Response {
            headers: Some(vec![(":status".into(), code.to_string().into_bytes())]),
            chunks: Vec::new(),
            code: Some(u64::from(code).to_le_bytes().to_vec()),
            flags: Some(0u64.to_le_bytes().to_vec()),
            props: Vec::new(),
        }
    }

    pub fn json(code: u32, body: impl AsRef<[u8]>) -> Response {
        Response::status(code).header("content-type", "application/json").body(body)
    }

    pub fn sse(code: u32, body: impl AsRef<[u8]>) -> Response {
        Response::status(code).header("content-type", "text/event-stream").body(body)
    }

    /// The client went away before any answer: code 0, downstream termination.
    pub fn client_cancel() -> Response {
        Response {
            headers: None,
            chunks: Vec::new(),
            code: Some(0u64.to_le_bytes().to_vec()),
            flags: Some(DOWNSTREAM_CONNECTION_TERMINATION.to_le_bytes().to_vec()),
            props: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Response {
        if let Some(h) = self.headers.as_mut() {
            h.push((name.to_ascii_lowercase(), value.as_ref().to_vec()));
        }
        self
    }

    pub fn body(mut self, body: impl AsRef<[u8]>) -> Response {
        self.chunks = vec![body.as_ref().to_vec()];
        self
    }

    pub fn chunks(mut self, chunks: Vec<Vec<u8>>) -> Response {
        self.chunks = chunks;
        self
    }

    pub fn flags(mut self, flags: u64) -> Response {
        self.flags = Some(flags.to_le_bytes().to_vec());
        self
    }

    /// Raw `response.code` bytes (`None`: the property is missing).
    pub fn code_bytes(mut self, raw: Option<&[u8]>) -> Response {
        self.code = raw.map(<[u8]>::to_vec);
        self
    }

    pub fn flags_bytes(mut self, raw: Option<&[u8]>) -> Response {
        self.flags = raw.map(<[u8]>::to_vec);
        self
    }
}

/// A stream whose request went through the filter and awaits its response.
#[derive(Debug)]
#[must_use = "finish the stream, or it stays outstanding"]
pub struct Pending {
    pub context_id: u32,
    pub request_headers: Action,
    pub request_body: Vec<Action>,
    /// The filter answered itself (fail fast, session 404).
    pub local_response: Option<LocalResponse>,
}

impl Pending {
    /// Whether the request went on to the upstream.
    pub fn continued(&self) -> bool {
        self.local_response.is_none() && self.request_headers == Action::Continue && self.request_body.iter().all(|a| *a == Action::Continue)
    }
}

/// What the filter did with a whole stream.
#[derive(Debug)]
pub struct Exchange {
    pub request_headers: Action,
    pub request_body: Vec<Action>,
    pub local_response: Option<LocalResponse>,
    pub continued: bool,
    pub response_headers: Option<Action>,
    pub response_body: Vec<Action>,
}

impl Host {
    fn with_stream<T>(&mut self, ctx: u32, f: impl FnOnce(&mut StreamState) -> T) -> wasmtime::Result<T> {
        match self.store.data_mut().streams.get_mut(&ctx) {
            Some(s) => Ok(f(s)),
            None => wasmtime::bail!("stream {ctx} is gone"),
        }
    }

    /// Delivers body chunks; returns the actions. `set` puts the visible
    /// buffer in place; Pause makes the next callback see everything since.
    fn body(&mut self, ctx: u32, export: &str, phase: Phase, chunks: &[Vec<u8>], set: fn(&mut StreamState, Vec<u8>)) -> wasmtime::Result<Vec<Action>> {
        let mut actions = Vec::new();
        let mut buffered: Vec<u8> = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            if self.with_stream(ctx, |s| s.local_response.is_some())? {
                break;
            }
            if actions.last() != Some(&Action::Pause) {
                buffered.clear();
            }
            buffered.extend_from_slice(chunk);
            let len = buffered.len() as u32;
            let data = buffered.clone();
            self.with_stream(ctx, |s| {
                s.phase = Some(phase);
                set(s, data)
            })?;
            let eos = u32::from(i + 1 == chunks.len());
            let a: u32 = self.call(ctx, export, (ctx, len, eos))?;
            actions.push(Action::from(a));
        }
        Ok(actions)
    }

    /// Runs the request half of a stream.
    pub fn begin(&mut self, req: Request) -> wasmtime::Result<Pending> {
        let ctx = self.next_context;
        self.next_context += 1;
        let root = self.store.data().root_id;
        let n = req.headers.len() as u32;
        let st = self.store.data_mut();
        st.contexts.insert(ctx);
        st.streams.insert(ctx, StreamState { phase: Some(Phase::RequestHeaders), request_headers: req.headers, props: req.props, ..Default::default() });
        self.call::<(u32, u32), ()>(ctx, "proxy_on_context_create", (ctx, root))?;
        let eos = u32::from(req.chunks.is_empty());
        let headers = Action::from(self.call::<(u32, u32, u32), u32>(ctx, "proxy_on_request_headers", (ctx, n, eos))?);
        let answered = self.with_stream(ctx, |s| s.local_response.is_some())?;
        if !answered && headers == Action::Continue {
            if let Some((addr, from)) = req.upstream {
                self.with_stream(ctx, |s| s.props.push(Prop { path: path(&["upstream", "address"]), value: addr, from }))?;
            }
        }
        let body = self.body(ctx, "proxy_on_request_body", Phase::RequestBody, &req.chunks, |s, b| s.request_body = Some(b))?;
        let local_response = self.with_stream(ctx, |s| s.local_response.clone())?;
        Ok(Pending { context_id: ctx, request_headers: headers, request_body: body, local_response })
    }

    /// Runs the response half (skipped after a local reply) and the end of the stream.
    pub fn finish(&mut self, p: Pending, resp: Response) -> wasmtime::Result<Exchange> {
        let ctx = p.context_id;
        let continued = p.continued();
        let mut response_headers = None;
        let mut response_body = Vec::new();
        let (code, flags) = match &p.local_response {
            Some(local) => (Some(u64::from(local.status).to_le_bytes().to_vec()), Some(0u64.to_le_bytes().to_vec())),
            None => (resp.code.clone(), resp.flags.clone()),
        };
        if p.local_response.is_none() {
            if let Some(h) = resp.headers {
                let n = h.len() as u32;
                self.with_stream(ctx, |s| {
                    s.phase = Some(Phase::ResponseHeaders);
                    s.response_headers = h;
                })?;
                let eos = u32::from(resp.chunks.is_empty());
                response_headers = Some(Action::from(self.call::<(u32, u32, u32), u32>(ctx, "proxy_on_response_headers", (ctx, n, eos))?));
                response_body = self.body(ctx, "proxy_on_response_body", Phase::ResponseBody, &resp.chunks, |s, b| s.response_body = Some(b))?;
            }
        }
        self.with_stream(ctx, |s| {
            s.phase = Some(Phase::Log);
            for (name, v) in [("code", code), ("flags", flags)] {
                if let Some(v) = v {
                    s.props.push(Prop { path: path(&["response", name]), value: v, from: Phase::Log });
                }
            }
            s.props.extend(resp.props);
        })?;
        // The ABI's order at the end of a stream: done, log, delete.
        let _done: u32 = self.call(ctx, "proxy_on_done", ctx)?;
        self.call::<u32, ()>(ctx, "proxy_on_log", ctx)?;
        self.call::<u32, ()>(ctx, "proxy_on_delete", ctx)?;
        let st = self.store.data_mut();
        st.streams.remove(&ctx);
        st.contexts.remove(&ctx);
        Ok(Exchange { request_headers: p.request_headers, request_body: p.request_body, local_response: p.local_response, continued, response_headers, response_body })
    }

    /// A whole stream.
    pub fn exchange(&mut self, req: Request, resp: Response) -> wasmtime::Result<Exchange> {
        let p = self.begin(req)?;
        self.finish(p, resp)
    }
}
