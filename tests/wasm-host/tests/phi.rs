//! Hung backends: requests outstanding, nothing completing, the host clock
//! moving and `on_tick` running. Phi opens the breaker; an idle host (no
//! request outstanding) is never suspected, however long it stays quiet.

mod common;
use common::*;
use only1mcp_wasm_host::{Host, Response};

/// Phi settings fixed here so the timings below do not follow the defaults.
const PHI: &str = r#"{"phi":{"threshold":8,"min_std_dev_ms":100,"acceptable_pause_ms":1000,"min_samples":5}}"#;

/// 30 sequential successes, each taking `ms`, with idle gaps between them.
fn steady(vm: &mut Host, ms: u64) {
    for i in 0..30 {
        let p = vm.begin(call(HOST_A, &i.to_string())).unwrap();
        vm.advance_ms(ms);
        vm.finish(p, Response::json(200, r#"{"jsonrpc":"2.0","id":1,"result":{}}"#)).unwrap();
        vm.run_for(500).unwrap();
    }
    assert_eq!(metric(vm, "only1mcp_breaker_opened_total"), 0, "steady traffic is not suspect");
}

#[test]
fn a_hung_host_opens_the_breaker_from_phi() {
    let mut vm = vm(PHI);
    steady(&mut vm, 100);
    // A hung host under load: several calls outstanding, none answered.
    let hung: Vec<_> = (0..3).map(|i| vm.begin(call(HOST_A, &format!("hung{i}"))).unwrap()).collect();
    assert!(hung.iter().all(|p| p.continued()));
    // Intervals of 100 ms, pause 1 s, std floored at 100 ms: phi is 6.5 at
    // 1.6 s (z = 5) and 9.0 at 1.7 s (z = 6); the threshold is 8.
    vm.run_for(1_600).unwrap();
    assert_eq!(metric(&vm, "only1mcp_breaker_opened_total"), 0, "not yet suspect at 1.6 s");
    vm.run_for(100).unwrap();
    assert_eq!(metric(&vm, "only1mcp_breaker_opened_total"), 1, "suspect at 1.7 s");
    assert!(vm.logs().iter().any(|l| l.message.contains("closed -> open (phi)")), "{:?}", vm.logs());
    assert!(fast_fails(&mut vm), "the cluster's only host is open");
    // The clients give up: not backend failures on top.
    for p in hung {
        vm.finish(p, Response::client_cancel()).unwrap();
    }
    assert_eq!(metric(&vm, "only1mcp_backend_failures_total"), 0);
}

#[test]
fn two_hung_requests_trip_once() {
    let mut vm = vm(PHI);
    steady(&mut vm, 100);
    let a = vm.begin(call(HOST_A, "a")).unwrap();
    vm.run_for(300).unwrap();
    let b = vm.begin(call(HOST_A, "b")).unwrap();
    vm.run_for(5_000).unwrap();
    assert_eq!(metric(&vm, "only1mcp_breaker_opened_total"), 1);
    vm.finish(a, Response::client_cancel()).unwrap();
    vm.finish(b, Response::client_cancel()).unwrap();
}

#[test]
fn an_idle_host_never_trips() {
    let mut vm = vm(PHI);
    steady(&mut vm, 100);
    vm.run_for(120_000).unwrap();
    assert_eq!(metric(&vm, "only1mcp_breaker_opened_total"), 0);
    // After the long pause, a normal request is not suspect either.
    let p = vm.begin(call(HOST_A, "x")).unwrap();
    vm.run_for(300).unwrap();
    vm.finish(p, Response::json(200, "{}")).unwrap();
    vm.run_for(10_000).unwrap();
    assert_eq!(metric(&vm, "only1mcp_breaker_opened_total"), 0);
    assert!(!fast_fails(&mut vm));
}

#[test]
fn a_new_host_gets_the_benefit_of_the_doubt() {
    let mut vm = vm(PHI);
    // Too few samples for phi: a first slow request is not a trip.
    let p = vm.begin(call(HOST_A, "first")).unwrap();
    vm.run_for(30_000).unwrap();
    assert_eq!(metric(&vm, "only1mcp_breaker_opened_total"), 0);
    vm.finish(p, Response::json(200, "{}")).unwrap();
}

#[test]
fn a_heavy_tailed_host_is_not_suspected_within_twice_its_slowest_call() {
    // Default phi settings: pause stretches to twice the slowest recent call.
    let mut vm = vm("{}");
    for i in 0..30 {
        let p = vm.begin(call(HOST_A, &i.to_string())).unwrap();
        vm.advance_ms(if i % 10 == 9 { 2_000 } else { 50 });
        vm.finish(p, Response::json(200, "{}")).unwrap();
        vm.run_for(200).unwrap();
    }
    let p = vm.begin(call(HOST_A, "slow")).unwrap();
    vm.run_for(2_500).unwrap();
    assert_eq!(metric(&vm, "only1mcp_breaker_opened_total"), 0, "2.5 s is within twice the slowest (2 s) call");
    // Silence far beyond that, with calls piling up, is a hang.
    let q = vm.begin(call(HOST_A, "slow2")).unwrap();
    vm.run_for(20_000).unwrap();
    assert_eq!(metric(&vm, "only1mcp_breaker_opened_total"), 1, "but 22.5 s is not");
    vm.finish(p, Response::client_cancel()).unwrap();
    vm.finish(q, Response::client_cancel()).unwrap();
}
