//! Legacy MCP sessions pinned to a host (Envoy's stateful-session envelope
//! `base64(host);UV:base64(id)`): when that host's breaker is open the
//! filter answers 404 so the client re-initializes on a healthy host.

mod common;
use common::*;
use only1mcp_wasm_host::{Request, Response};

fn pinned(host: &str) -> Request {
    Request::to(CLUSTER).header("mcp-session-id", session(host, "sid")).jsonrpc("5", "tools/call")
}

#[test]
fn a_session_pinned_to_an_open_host_gets_404() {
    let mut vm = vm("{}");
    let bad = "127.0.0.1:1234";
    succeed(&mut vm, HOST_B, 1); // the cluster has a healthy host
    fail(&mut vm, bad, 5);
    let x = run(&mut vm, pinned(bad), Response::status(200));
    assert!(!x.continued);
    let r = x.local_response.expect("local reply");
    assert_eq!(r.status, 404);
    let body: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
    assert_eq!(body["jsonrpc"], "2.0");
    assert!(body["error"]["message"].as_str().unwrap_or("").contains("re-initialize"), "{body}");
    assert_eq!(metric(&vm, "only1mcp_session_reinit_404_total"), 1);

    // A session on the healthy host, and a new session, go through.
    assert!(run(&mut vm, pinned(HOST_B).upstream(HOST_B), Response::json(200, "{}")).continued);
    assert!(run(&mut vm, Request::to(CLUSTER).upstream(HOST_B).jsonrpc("1", "initialize"), Response::json(200, "{}")).continued);

    // Once the open period is over the pinned session may try again.
    vm.advance_ms(2_000);
    assert!(run(&mut vm, pinned(bad).upstream(bad), Response::json(200, "{}")).continued);
}

#[test]
fn odd_session_ids_are_passed_through() {
    let mut vm = vm("{}");
    fail(&mut vm, "127.0.0.1:1234", 5);
    let odd = [
        "plain-session-id".to_string(),
        ";UV:".to_string(),
        "%%%;UV:%%%".to_string(),
        format!("{};UV:x", b64(&[0xff, 0xfe, 0x00])),
        format!("{};UV:", b64("127.0.0.1:1234".as_bytes()).trim_end_matches('=')),
        "A".repeat(100_000),
    ];
    for sid in odd {
        let x = run(&mut vm, Request::to("other").upstream(HOST_B).header("mcp-session-id", &sid).jsonrpc("1", "ping"), Response::json(200, "{}"));
        let status = x.local_response.as_ref().map(|r| r.status);
        assert!(status.is_none() || status == Some(404), "{status:?}");
    }
}
