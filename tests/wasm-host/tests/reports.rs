//! Breaker changes reported to the control plane over `proxy_http_call`,
//! batched from the tick, retried with backoff until a 2xx.

mod common;
use common::*;
use only1mcp_wasm_host::{artifact, Host, HttpCall, Options, Shared, REPORTS_CLUSTER};

fn report(call: &HttpCall) -> serde_json::Value {
    serde_json::from_slice(&call.body).unwrap_or_else(|e| panic!("report body is not JSON ({e}): {}", String::from_utf8_lossy(&call.body)))
}

/// Ticks until a callout is pending (at most `ms`); returns it.
fn next_call(vm: &mut Host, ms: u64) -> Option<HttpCall> {
    let mut waited = 0;
    while waited <= ms {
        if let Some(c) = vm.http_calls().into_iter().next() {
            return Some(c);
        }
        vm.run_for(10).unwrap();
        waited += 10;
    }
    None
}

fn tick_for(vm: &mut Host, ms: u64) {
    for _ in 0..ms / 10 {
        vm.run_for(10).unwrap();
    }
}

#[test]
fn a_trip_is_reported_and_retried_with_backoff_until_accepted() {
    let mut vm = vm("{}");
    fail(&mut vm, HOST_A, 5);
    vm.tick().unwrap();
    let call = next_call(&mut vm, 0).expect("a report right at the next tick");
    assert_eq!(call.cluster, REPORTS_CLUSTER);
    assert_eq!(call.header(":method").as_deref(), Some("POST"));
    assert_eq!(call.header(":path").as_deref(), Some("/v1/reports"));
    assert!(call.header(":authority").is_some());
    let body = report(&call);
    assert_eq!(body["node"], "test-node");
    let reports = body["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["host"], HOST_A);
    assert_eq!(reports[0]["cluster"], CLUSTER);
    assert_eq!(reports[0]["state"], "open");
    assert_eq!(reports[0]["reason"], "consecutive_failures");
    assert_eq!(reports[0]["open_for_ms"], 2000);

    // One in flight at a time.
    tick_for(&mut vm, 1000);
    assert_eq!(vm.http_calls().len(), 1);

    // 503: the same report again, after a backoff that grows.
    let t1 = vm.now_ms();
    vm.answer_http_call(call.token, 503, b"").unwrap();
    let again = next_call(&mut vm, 5_000).expect("retried");
    let first_wait = again.at_ms - t1;
    assert!(first_wait >= 100, "retried after {first_wait} ms: no backoff");
    assert_eq!(report(&again)["reports"][0]["host"], HOST_A);
    let t2 = vm.now_ms();
    vm.answer_http_call(again.token, 503, b"").unwrap();
    let third = next_call(&mut vm, 20_000).expect("retried again");
    assert!(third.at_ms - t2 > first_wait, "backoff grows: {} then {}", first_wait, third.at_ms - t2);

    // 202: done, nothing more to send.
    vm.answer_http_call(third.token, 202, b"").unwrap();
    tick_for(&mut vm, 30_000);
    assert!(vm.http_calls().is_empty(), "nothing left to report: {:?}", vm.http_calls());
}

#[test]
fn a_failed_callout_is_retried_too() {
    let mut vm = vm("{}");
    fail(&mut vm, HOST_A, 5);
    let call = next_call(&mut vm, 200).expect("report");
    vm.fail_http_call(call.token).unwrap();
    let again = next_call(&mut vm, 5_000).expect("retried after a reset");
    assert_eq!(report(&again)["reports"][0]["state"], "open");
    vm.answer_http_call(again.token, 200, b"").unwrap();
}

#[test]
fn the_latest_change_per_host_wins_in_a_batch() {
    let mut vm = vm("{}");
    fail(&mut vm, HOST_A, 5);
    let call = next_call(&mut vm, 200).expect("open report");
    vm.answer_http_call(call.token, 503, b"").unwrap();
    // While backing off, the host recovers: the retry carries the newest state.
    vm.advance_ms(2_000);
    succeed(&mut vm, HOST_A, 2);
    let mut states = Vec::new();
    for _ in 0..5 {
        let Some(c) = next_call(&mut vm, 20_000) else { break };
        states.extend(report(&c)["reports"].as_array().unwrap().iter().map(|r| r["state"].as_str().unwrap_or("").to_string()));
        vm.answer_http_call(c.token, 202, b"").unwrap();
    }
    assert_eq!(states.last().map(String::as_str), Some("closed"), "{states:?}");
    assert!(!states.iter().any(|s| s == "open"), "a stale open report was sent after the host closed: {states:?}");
}

#[test]
fn an_unknown_reports_cluster_is_not_fatal() {
    // Envoy refuses a callout to a cluster it does not know (BadArgument).
    let opts = Options { clusters: vec![], ..Options::default() };
    let mut vm = Host::with(artifact::module(), &Shared::default(), opts).unwrap();
    vm.set_time_ms(T0);
    assert!(vm.configure("{}").unwrap());
    fail(&mut vm, HOST_A, 5);
    tick_for(&mut vm, 1_000);
    assert!(vm.http_calls().is_empty());
    assert!(fast_fails(&mut vm), "the VM lives on and still fails fast");
}
