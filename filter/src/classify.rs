//! Whose fault was a finished request? Classifies it from what Envoy
//! reports at the end of the stream (response code, response flags) and,
//! for JSON answers, the JSON-RPC error code.
//!
//! MCP puts tool failures in a 200 result (`isError: true`): that is the
//! tool, not the backend. JSON-RPC -32603 (internal error) and -32000 to
//! -32099 (server errors) are the backend. 4xx and client cancels are not
//! the backend's fault either.

/// Envoy's response flag bits (`StreamInfo::ResponseFlag`), those we read.
pub mod flags {
    pub const NO_HEALTHY_UPSTREAM: u64 = 0x2;
    pub const UPSTREAM_REQUEST_TIMEOUT: u64 = 0x4;
    pub const LOCAL_RESET: u64 = 0x8;
    pub const UPSTREAM_REMOTE_RESET: u64 = 0x10;
    pub const UPSTREAM_CONNECTION_FAILURE: u64 = 0x20;
    pub const UPSTREAM_CONNECTION_TERMINATION: u64 = 0x40;
    pub const UPSTREAM_OVERFLOW: u64 = 0x80;
    pub const NO_ROUTE_FOUND: u64 = 0x100;
    pub const DOWNSTREAM_CONNECTION_TERMINATION: u64 = 0x4000;
    pub const STREAM_IDLE_TIMEOUT: u64 = 0x10000;
    pub const UPSTREAM_PROTOCOL_ERROR: u64 = 0x80_0000;
    pub const NO_CLUSTER_FOUND: u64 = 0x100_0000;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    ConnectFailure,
    Reset,
    Timeout,
    Http5xx,
    JsonRpcServerError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotBackend {
    /// The client went away or asked for something wrong (4xx, -32601, ...).
    Client,
    /// Answered by Envoy or this filter without a backend (no route, no
    /// healthy host, our own fast-fail).
    Local,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure(FailureKind),
    NotBackend(NotBackend),
}

impl Outcome {
    /// Label for metrics: a fixed set of strings.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure(FailureKind::ConnectFailure) => "connect_failure",
            Outcome::Failure(FailureKind::Reset) => "reset",
            Outcome::Failure(FailureKind::Timeout) => "timeout",
            Outcome::Failure(FailureKind::Http5xx) => "http_5xx",
            Outcome::Failure(FailureKind::JsonRpcServerError) => "jsonrpc_server_error",
            Outcome::NotBackend(NotBackend::Client) => "client",
            Outcome::NotBackend(NotBackend::Local) => "local",
        }
    }
}

/// What Envoy told us about a finished request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Finished {
    /// `response.code`; 0 when no response was sent.
    pub code: u32,
    /// `response.flags`.
    pub flags: u64,
    /// Whether a backend was chosen (`upstream.address` present).
    pub had_upstream: bool,
    /// JSON-RPC `error.code` in the response, if one was seen.
    pub jsonrpc_error: Option<i64>,
    /// The filter answered this request itself (fast-fail).
    pub local_reply: bool,
}

pub fn is_server_error(code: i64) -> bool {
    code == -32603 || (-32099..=-32000).contains(&code)
}

pub fn classify(f: &Finished) -> Outcome {
    use flags::*;
    if f.local_reply || f.flags & (NO_HEALTHY_UPSTREAM | NO_ROUTE_FOUND | NO_CLUSTER_FOUND | UPSTREAM_OVERFLOW) != 0 {
        return Outcome::NotBackend(NotBackend::Local);
    }
    if f.flags & UPSTREAM_CONNECTION_FAILURE != 0 {
        return Outcome::Failure(FailureKind::ConnectFailure);
    }
    if f.flags & UPSTREAM_REQUEST_TIMEOUT != 0 {
        return Outcome::Failure(FailureKind::Timeout);
    }
    if f.flags & (UPSTREAM_REMOTE_RESET | UPSTREAM_CONNECTION_TERMINATION | UPSTREAM_PROTOCOL_ERROR) != 0 {
        return Outcome::Failure(FailureKind::Reset);
    }
    if f.flags & (DOWNSTREAM_CONNECTION_TERMINATION | LOCAL_RESET | STREAM_IDLE_TIMEOUT) != 0 && f.code == 0 {
        // The client left (or the stream idled out) before an answer: a hung
        // backend shows up through phi, not as a failed call.
        return Outcome::NotBackend(NotBackend::Client);
    }
    if !f.had_upstream {
        return Outcome::NotBackend(NotBackend::Local);
    }
    match f.code {
        500..=599 => Outcome::Failure(FailureKind::Http5xx),
        400..=499 => Outcome::NotBackend(NotBackend::Client),
        _ => match f.jsonrpc_error {
            Some(c) if is_server_error(c) => Outcome::Failure(FailureKind::JsonRpcServerError),
            Some(_) => Outcome::NotBackend(NotBackend::Client),
            None => Outcome::Success,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::flags::*;
    use super::*;

    fn up(code: u32) -> Finished {
        Finished { code, had_upstream: true, ..Default::default() }
    }

    #[test]
    fn table() {
        let cases: Vec<(Finished, Outcome)> = vec![
            (up(200), Outcome::Success),
            (up(202), Outcome::Success),
            (Finished { jsonrpc_error: Some(-32603), ..up(200) }, Outcome::Failure(FailureKind::JsonRpcServerError)),
            (Finished { jsonrpc_error: Some(-32000), ..up(200) }, Outcome::Failure(FailureKind::JsonRpcServerError)),
            (Finished { jsonrpc_error: Some(-32099), ..up(200) }, Outcome::Failure(FailureKind::JsonRpcServerError)),
            (Finished { jsonrpc_error: Some(-32100), ..up(200) }, Outcome::NotBackend(NotBackend::Client)),
            (Finished { jsonrpc_error: Some(-32601), ..up(200) }, Outcome::NotBackend(NotBackend::Client)),
            (Finished { jsonrpc_error: Some(-32602), ..up(200) }, Outcome::NotBackend(NotBackend::Client)),
            (up(500), Outcome::Failure(FailureKind::Http5xx)),
            (up(503), Outcome::Failure(FailureKind::Http5xx)),
            (up(404), Outcome::NotBackend(NotBackend::Client)),
            (up(400), Outcome::NotBackend(NotBackend::Client)),
            (Finished { code: 503, flags: UPSTREAM_CONNECTION_FAILURE, had_upstream: true, ..Default::default() }, Outcome::Failure(FailureKind::ConnectFailure)),
            (Finished { code: 503, flags: UPSTREAM_REMOTE_RESET, had_upstream: true, ..Default::default() }, Outcome::Failure(FailureKind::Reset)),
            (Finished { code: 503, flags: UPSTREAM_CONNECTION_TERMINATION, had_upstream: true, ..Default::default() }, Outcome::Failure(FailureKind::Reset)),
            (Finished { code: 504, flags: UPSTREAM_REQUEST_TIMEOUT, had_upstream: true, ..Default::default() }, Outcome::Failure(FailureKind::Timeout)),
            (Finished { code: 0, flags: DOWNSTREAM_CONNECTION_TERMINATION, had_upstream: true, ..Default::default() }, Outcome::NotBackend(NotBackend::Client)),
            (Finished { code: 503, flags: NO_HEALTHY_UPSTREAM, ..Default::default() }, Outcome::NotBackend(NotBackend::Local)),
            (Finished { code: 404, flags: NO_ROUTE_FOUND, ..Default::default() }, Outcome::NotBackend(NotBackend::Local)),
            (Finished { code: 503, local_reply: true, ..Default::default() }, Outcome::NotBackend(NotBackend::Local)),
            (Finished { code: 200, ..Default::default() }, Outcome::NotBackend(NotBackend::Local)),
        ];
        for (i, (f, want)) in cases.iter().enumerate() {
            assert_eq!(classify(f), *want, "case {i}: {f:?}");
        }
    }

    #[test]
    fn labels_are_distinct() {
        let all = [
            Outcome::Success,
            Outcome::Failure(FailureKind::ConnectFailure),
            Outcome::Failure(FailureKind::Reset),
            Outcome::Failure(FailureKind::Timeout),
            Outcome::Failure(FailureKind::Http5xx),
            Outcome::Failure(FailureKind::JsonRpcServerError),
            Outcome::NotBackend(NotBackend::Client),
            Outcome::NotBackend(NotBackend::Local),
        ];
        let labels: std::collections::BTreeSet<&str> = all.iter().map(|o| o.label()).collect();
        assert_eq!(labels.len(), all.len());
    }
}
