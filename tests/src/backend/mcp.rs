//! The MCP side of the test backend: JSON-RPC over streamable HTTP for both
//! protocol eras, as real SDK servers answer it.
//!
//! Legacy (2025-11-25 and earlier): `initialize` creates a session returned
//! in `mcp-session-id`; later requests must carry it (unknown: 404, missing:
//! 400); `ping` answers `{}`. Modern (2026-07-28): stateless,
//! `server/discover`, every result carries `resultType`.

use std::collections::HashSet;
use std::sync::Mutex;

use serde_json::{json, Value};

pub const MODERN: &str = "2026-07-28";
pub const LEGACY_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// Which eras the backend speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Era {
    Both,
    Legacy,
    Modern,
}

/// An HTTP answer before faults and encoding are applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub session_id: Option<String>,
    /// `None` for 202 Accepted (notifications).
    pub body: Option<Value>,
}

impl Reply {
    fn ok(body: Value) -> Reply {
        Reply { status: 200, session_id: None, body: Some(body) }
    }
    fn error(status: u16, id: &Value, code: i64, message: &str) -> Reply {
        Reply { status, session_id: None, body: Some(json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})) }
    }
}

#[derive(Debug)]
pub struct Mcp {
    pub name: String,
    pub era: Era,
    sessions: Mutex<HashSet<String>>,
    next_session: std::sync::atomic::AtomicU64,
}

/// What the request was, for statistics.
pub fn method_of(body: &Value) -> &str {
    body.get("method").and_then(Value::as_str).unwrap_or("")
}

impl Mcp {
    pub fn new(name: String, era: Era) -> Mcp {
        Mcp { name, era, sessions: Mutex::new(HashSet::new()), next_session: 0.into() }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn session_count(&self) -> usize {
        self.sessions().len()
    }

    pub fn end_session(&self, id: &str) -> bool {
        self.sessions().remove(id)
    }

    /// Answers one JSON-RPC message.
    pub fn handle(&self, protocol_header: Option<&str>, session: Option<&str>, body: &Value) -> Reply {
        let null = Value::Null;
        let id = body.get("id").unwrap_or(&null);
        let method = method_of(body);
        if !body.is_object() || method.is_empty() && body.get("result").is_none() && body.get("error").is_none() {
            return Reply::error(400, id, -32600, "Invalid Request");
        }
        let modern = protocol_header == Some(MODERN) || method == "server/discover";
        if modern {
            if self.era == Era::Legacy {
                // What a legacy-only SDK server says to a request without a session.
                return Reply::error(400, id, -32600, "Bad Request: Missing session ID");
            }
            return self.modern(id, method, body);
        }
        if self.era == Era::Modern {
            return Reply::error(400, id, -32600, "Unsupported protocol version; use 2026-07-28");
        }
        if method == "initialize" {
            let requested = body.pointer("/params/protocolVersion").and_then(Value::as_str).unwrap_or("");
            let version = if LEGACY_VERSIONS.contains(&requested) { requested } else { LEGACY_VERSIONS[0] };
            let n = self.next_session.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let sid = format!("{}-{n}-{:08x}", self.name, std::process::id());
            self.sessions().insert(sid.clone());
            let mut r = Reply::ok(json!({"jsonrpc": "2.0", "id": id, "result": {
                "protocolVersion": version,
                "capabilities": {"tools": {}},
                "serverInfo": {"name": self.name, "version": "0.1.0"},
            }}));
            r.session_id = Some(sid);
            return r;
        }
        match session {
            None => return Reply::error(400, id, -32600, "Bad Request: Missing session ID"),
            Some(s) if !self.sessions().contains(s) => return Reply::error(404, id, -32600, "Session not found"),
            Some(_) => {}
        }
        if body.get("id").is_none() {
            return Reply { status: 202, session_id: None, body: None };
        }
        let result = match method {
            "ping" => json!({}),
            "tools/list" => json!({"tools": tools()}),
            "tools/call" => match self.call(body) {
                Ok(r) => r,
                Err(msg) => return Reply::error(200, id, -32602, &msg),
            },
            _ => return Reply::error(200, id, -32601, "Method not found"),
        };
        Reply::ok(json!({"jsonrpc": "2.0", "id": id, "result": result}))
    }

    fn modern(&self, id: &Value, method: &str, body: &Value) -> Reply {
        if body.get("id").is_none() {
            return Reply { status: 202, session_id: None, body: None };
        }
        let mut result = match method {
            "server/discover" => json!({
                "supportedVersions": [MODERN],
                "capabilities": {"tools": {}},
                "ttlMs": 0,
                "cacheScope": "private",
                "_meta": {"io.modelcontextprotocol/serverInfo": {"name": self.name, "version": "0.1.0"}},
            }),
            "tools/list" => json!({"tools": tools(), "ttlMs": 0, "cacheScope": "private"}),
            "tools/call" => match self.call(body) {
                Ok(r) => r,
                Err(msg) => return Reply::error(200, id, -32602, &msg),
            },
            _ => return Reply::error(200, id, -32601, "Method not found"),
        };
        result["resultType"] = json!("complete");
        Reply::ok(json!({"jsonrpc": "2.0", "id": id, "result": result}))
    }

    /// Runs a tool. `sleep` is handled by the server (it is async); here it
    /// only reports.
    fn call(&self, body: &Value) -> Result<Value, String> {
        let name = body.pointer("/params/name").and_then(Value::as_str).unwrap_or("");
        let text = |t: String| json!({"content": [{"type": "text", "text": t}]});
        match name {
            "whoami" => Ok(text(self.name.clone())),
            "echo" => Ok(text(body.pointer("/params/arguments/text").and_then(Value::as_str).unwrap_or("").to_string())),
            "sleep" => Ok(text(format!("{} slept {} ms", self.name, sleep_ms(body)))),
            "fail" => Ok(json!({"content": [{"type": "text", "text": "tool failed"}], "isError": true})),
            other => Err(format!("unknown tool {other:?}")),
        }
    }
}

/// The `ms` argument of a `sleep` tool call, bounded to a minute.
pub fn sleep_ms(body: &Value) -> u64 {
    if body.pointer("/params/name").and_then(Value::as_str) != Some("sleep") {
        return 0;
    }
    body.pointer("/params/arguments/ms").and_then(Value::as_u64).unwrap_or(0).min(60_000)
}

fn tools() -> Value {
    json!([
        {"name": "whoami", "description": "Name of the backend instance", "inputSchema": {"type": "object"}},
        {"name": "echo", "description": "Echoes text", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}},
        {"name": "sleep", "description": "Waits ms milliseconds", "inputSchema": {"type": "object", "properties": {"ms": {"type": "integer"}}}},
        {"name": "fail", "description": "A tool that reports an error", "inputSchema": {"type": "object"}},
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_session_lifecycle() {
        let m = Mcp::new("a".into(), Era::Both);
        let init = m.handle(None, None, &json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}));
        assert_eq!(init.status, 200);
        assert_eq!(init.body.as_ref().unwrap().pointer("/result/protocolVersion"), Some(&json!("2025-06-18")));
        let sid = init.session_id.unwrap();
        let note = m.handle(Some("2025-06-18"), Some(&sid), &json!({"jsonrpc":"2.0","method":"notifications/initialized"}));
        assert_eq!(note.status, 202);
        let ping = m.handle(Some("2025-06-18"), Some(&sid), &json!({"jsonrpc":"2.0","id":1,"method":"ping"}));
        assert_eq!(ping.body.unwrap()["result"], json!({}));
        assert_eq!(m.handle(None, Some("nope"), &json!({"jsonrpc":"2.0","id":2,"method":"ping"})).status, 404);
        assert_eq!(m.handle(None, None, &json!({"jsonrpc":"2.0","id":2,"method":"ping"})).status, 400);
        assert!(m.end_session(&sid));
        assert_eq!(m.handle(None, Some(&sid), &json!({"jsonrpc":"2.0","id":3,"method":"ping"})).status, 404);
    }

    #[test]
    fn modern_is_stateless() {
        let m = Mcp::new("b".into(), Era::Both);
        let d = m.handle(Some(MODERN), None, &json!({"jsonrpc":"2.0","id":1,"method":"server/discover"}));
        assert_eq!(d.body.as_ref().unwrap().pointer("/result/supportedVersions/0"), Some(&json!(MODERN)));
        let c = m.handle(Some(MODERN), None, &json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami"}}));
        let body = c.body.unwrap();
        assert_eq!(body.pointer("/result/content/0/text"), Some(&json!("b")));
        assert_eq!(body.pointer("/result/resultType"), Some(&json!("complete")));
        let p = m.handle(Some(MODERN), None, &json!({"jsonrpc":"2.0","id":3,"method":"ping"}));
        assert_eq!(p.body.unwrap().pointer("/error/code"), Some(&json!(-32601)));
        let legacy_only = Mcp::new("c".into(), Era::Legacy);
        assert_eq!(legacy_only.handle(Some(MODERN), None, &json!({"jsonrpc":"2.0","id":1,"method":"server/discover"})).status, 400);
    }

    #[test]
    fn tool_errors_are_results() {
        let m = Mcp::new("a".into(), Era::Both);
        let r = m.handle(Some(MODERN), None, &json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fail"}}));
        assert_eq!(r.status, 200);
        assert_eq!(r.body.unwrap().pointer("/result/isError"), Some(&json!(true)));
        assert_eq!(sleep_ms(&json!({"params":{"name":"sleep","arguments":{"ms":999999}}})), 60_000);
    }
}
