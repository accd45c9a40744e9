//! Whose fault was it? Client errors, tool errors and client cancels never
//! trip a breaker; 5xx, transport failures and JSON-RPC server errors do,
//! in plain JSON and in SSE bodies.

mod common;
use common::*;
use only1mcp_wasm_host::{Response, DOWNSTREAM_CONNECTION_TERMINATION};

const TOOL_ERROR: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"boom"}],"isError":true}}"#;
const INTERNAL: &str = r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"internal"}}"#;
const SSE_INTERNAL: &str = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32603,\"message\":\"internal\"}}\n\n";

/// Sends 10 (twice the threshold) of `resp` and says whether the breaker opened.
fn trips(resp: Response) -> bool {
    let mut vm = vm("{}");
    for i in 0..10 {
        let x = run(&mut vm, call(HOST_A, &i.to_string()), resp.clone());
        if x.local_response.is_some() {
            break;
        }
    }
    let opened = metric(&vm, "only1mcp_breaker_opened_total");
    assert_eq!(opened > 0, fast_fails(&mut vm), "metric and behaviour agree");
    opened > 0
}

#[test]
fn client_side_outcomes_do_not_trip() {
    let cases = [
        ("404", Response::json(404, r#"{"error":"no session"}"#)),
        ("400", Response::status(400)),
        ("429", Response::status(429)),
        ("tool isError", Response::json(200, TOOL_ERROR)),
        ("tool isError over SSE", Response::sse(200, format!("event: message\ndata: {TOOL_ERROR}\n\n"))),
        ("method not found", Response::json(200, r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no"}}"#)),
        ("invalid params", Response::json(200, r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"no"}}"#)),
        ("client cancel", Response::client_cancel()),
        ("202 notification", Response::status(202)),
        // -32603 text in a non-JSON content type is not read.
        ("text/plain", Response::status(200).header("content-type", "text/plain").body(INTERNAL)),
    ];
    for (name, resp) in cases {
        assert!(!trips(resp), "{name} tripped the breaker");
    }
}

#[test]
fn client_cancel_counts_as_no_failure() {
    let mut vm = vm("{}");
    for i in 0..10 {
        run(&mut vm, call(HOST_A, &i.to_string()), Response::client_cancel());
    }
    assert_eq!(metric(&vm, "only1mcp_backend_failures_total"), 0);
    // The request counter is flushed to the metric on the worker's tick.
    vm.tick().unwrap();
    assert_eq!(metric(&vm, "only1mcp_requests_total"), 10);
    // A cancel with a 5xx already sent is still the backend's 5xx.
    assert!(trips(Response::status(503).flags(DOWNSTREAM_CONNECTION_TERMINATION)));
}

#[test]
fn backend_outcomes_trip() {
    let cases = [
        ("500", Response::status(500)),
        ("503", Response::status(503)),
        ("connect failure", Response::client_cancel().code_bytes(Some(&503u64.to_le_bytes())).flags(0x20)),
        ("upstream reset", Response::client_cancel().code_bytes(Some(&0u64.to_le_bytes())).flags(0x10)),
        ("upstream timeout", Response::status(504).flags(0x4)),
        ("-32603 in JSON", Response::json(200, INTERNAL)),
        ("-32000 in JSON", Response::json(200, r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"x"}}"#)),
        ("-32603 in SSE", Response::sse(200, SSE_INTERNAL)),
        ("-32603 in JSON with charset", Response::status(200).header("content-type", "application/json; charset=utf-8").body(INTERNAL)),
    ];
    for (name, resp) in cases {
        assert!(trips(resp), "{name} did not trip the breaker");
    }
}

#[test]
fn a_success_between_failures_resets_the_run() {
    let mut vm = vm("{}");
    for _ in 0..3 {
        fail(&mut vm, HOST_A, 4);
        succeed(&mut vm, HOST_A, 1);
    }
    assert_eq!(metric(&vm, "only1mcp_breaker_opened_total"), 0);
    assert_eq!(metric(&vm, "only1mcp_backend_failures_total"), 12);
}

#[test]
fn failure_rate_trips_over_the_minimum_volume() {
    // Every other call fails: never 5 in a row, but 50% over 20 calls.
    let mut vm = vm(r#"{"breaker":{"min_calls":20,"failure_rate":0.5}}"#);
    for _ in 0..10 {
        succeed(&mut vm, HOST_A, 1);
        fail(&mut vm, HOST_A, 1);
    }
    assert_eq!(metric(&vm, "only1mcp_breaker_opened_total"), 1);
    assert!(vm.logs().iter().any(|l| l.message.contains("failure_rate")), "{:?}", vm.logs());
}

#[test]
fn sse_error_split_across_body_chunks_trips() {
    let (a, b) = SSE_INTERNAL.split_at(15); // "event: message\n" | "data: {...}"
    let resp = Response::sse(200, "").chunks(vec![a.as_bytes().to_vec(), b.as_bytes().to_vec()]);
    assert!(trips(resp), "a -32603 in the second SSE chunk went unseen");
}
