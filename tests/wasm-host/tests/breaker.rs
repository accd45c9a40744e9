//! The circuit breaker through the real artifact: trip on consecutive
//! backend failures, fail fast with the request's JSON-RPC id, recover
//! after the open period, reopen on a failed probe.

mod common;
use common::*;
use only1mcp_wasm_host::{Action, Request, Response};

#[test]
fn failures_open_the_breaker_and_the_cluster_fails_fast_with_the_request_id() {
    let mut vm = vm("{}");
    fail(&mut vm, HOST_A, 4);
    assert!(!fast_fails(&mut vm), "4 failures are below the default 5");
    // That request succeeded (200 JSON): the count starts over.
    fail(&mut vm, HOST_A, 5);
    assert_eq!(metric(&vm, "only1mcp_breaker_opened_total"), 1);
    assert_eq!(metric(&vm, "only1mcp_backend_failures_total"), 9);

    let x = run(&mut vm, Request::to(CLUSTER).jsonrpc(r#""req-7""#, "tools/call"), Response::status(200));
    assert_eq!(x.request_headers, Action::Pause, "held until the body (and its id) is in");
    assert!(!x.continued, "a fast-failed request must not reach the upstream");
    let r = x.local_response.expect("local reply");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("content-type").as_deref(), Some("application/json"));
    assert_eq!(r.header("retry-after").as_deref(), Some("2"), "default open period 2 s");
    let body: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON body");
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["id"], "req-7");
    assert_eq!(body["error"]["code"], -32000);
    assert_eq!(metric(&vm, "only1mcp_fast_fail_503_total"), 1);

    // Numeric ids are echoed as numbers; a request without a body gets id null.
    let x = run(&mut vm, Request::to(CLUSTER).jsonrpc("42", "ping"), Response::status(200));
    let body: serde_json::Value = serde_json::from_slice(&x.local_response.unwrap().body).unwrap();
    assert_eq!(body["id"], 42);
    let x = run(&mut vm, Request::to(CLUSTER), Response::status(200));
    let r = x.local_response.expect("local reply without a body");
    assert_eq!(x.request_headers, Action::Pause);
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(body["id"].is_null());
    assert_eq!(metric(&vm, "only1mcp_fast_fail_503_total"), 3);

    // Another cluster is not affected.
    let x = run(&mut vm, Request::to("mcp_b").upstream(HOST_B).jsonrpc("1", "ping"), Response::status(200));
    assert!(x.continued && x.local_response.is_none());
}

#[test]
fn retry_after_counts_down_with_the_clock() {
    let mut vm = vm(r#"{"breaker":{"open_base_ms":10000,"open_max_ms":60000}}"#);
    fail(&mut vm, HOST_A, 5);
    vm.advance_ms(6_500);
    let x = run(&mut vm, Request::to(CLUSTER).jsonrpc("1", "ping"), Response::status(200));
    assert_eq!(x.local_response.unwrap().header("retry-after").as_deref(), Some("4"), "3.5 s left rounds up");
}

#[test]
fn after_the_open_period_traffic_passes_and_successes_close() {
    let mut vm = vm("{}");
    fail(&mut vm, HOST_A, 5);
    assert!(fast_fails(&mut vm));
    vm.advance_ms(1_999);
    assert!(fast_fails(&mut vm), "still open 1 ms before the end");
    vm.advance_ms(1);
    succeed(&mut vm, HOST_A, 1);
    assert_eq!(metric(&vm, "only1mcp_breaker_half_opened_total"), 1);
    assert_eq!(metric(&vm, "only1mcp_breaker_closed_total"), 0, "one success of the two needed");
    succeed(&mut vm, HOST_A, 1);
    assert_eq!(metric(&vm, "only1mcp_breaker_closed_total"), 1);
    // Closed again: it takes a full run of failures to reopen.
    fail(&mut vm, HOST_A, 4);
    assert!(!fast_fails(&mut vm));
}

#[test]
fn a_failed_probe_reopens_with_a_doubled_open_period() {
    let mut vm = vm("{}");
    fail(&mut vm, HOST_A, 5);
    vm.advance_ms(2_000);
    fail(&mut vm, HOST_A, 1);
    assert_eq!(metric(&vm, "only1mcp_breaker_opened_total"), 2);
    let x = run(&mut vm, Request::to(CLUSTER).jsonrpc("1", "ping"), Response::status(200));
    assert_eq!(x.local_response.unwrap().header("retry-after").as_deref(), Some("4"), "2 s doubled");
    vm.advance_ms(3_999);
    assert!(fast_fails(&mut vm));
    vm.advance_ms(1);
    succeed(&mut vm, HOST_A, 2);
    assert_eq!(metric(&vm, "only1mcp_breaker_closed_total"), 1);
}

#[test]
fn one_bad_host_of_two_does_not_fail_the_cluster() {
    let mut vm = vm("{}");
    succeed(&mut vm, HOST_B, 1);
    fail(&mut vm, HOST_A, 5);
    assert_eq!(metric(&vm, "only1mcp_breaker_opened_total"), 1);
    assert!(!fast_fails(&mut vm), "HOST_B can still take traffic; Envoy picks the host");
    fail(&mut vm, HOST_B, 5);
    assert!(fast_fails(&mut vm), "now no host of the cluster may take traffic");
}

#[test]
fn late_results_of_an_open_host_change_nothing() {
    let mut vm = vm("{}");
    let slow = vm.begin(call(HOST_A, "1")).unwrap();
    fail(&mut vm, HOST_A, 5);
    vm.finish(slow, Response::json(200, "{}")).unwrap();
    assert!(fast_fails(&mut vm), "a success that started before the trip does not close it");
}

#[test]
fn half_open_admits_only_the_configured_probes() {
    let mut vm = vm(r#"{"breaker":{"half_open_probes":2,"successes_to_close":1}}"#);
    fail(&mut vm, HOST_A, 5);
    vm.advance_ms(2_000);
    let pending: Vec<_> = (0..5).map(|i| vm.begin(call(HOST_A, &i.to_string())).unwrap()).collect();
    let admitted = pending.iter().filter(|p| p.continued()).count();
    let rejected = pending.iter().filter(|p| p.local_response.as_ref().map(|r| r.status) == Some(503)).count();
    for p in pending {
        vm.finish(p, Response::json(200, "{}")).unwrap();
    }
    assert_eq!((admitted, rejected), (2, 3), "half-open lets exactly half_open_probes through");
}
