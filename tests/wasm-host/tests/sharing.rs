//! Worker VMs of one process share breakers through shared data (CAS):
//! a breaker opened on one worker fails requests fast on another, once
//! that worker's copy is older than `SHARE_WITHIN_MS`.

mod common;
use common::*;
use only1mcp_filter::encoding::{encode_slot, slot_key};
use only1mcp_wasm_host::Host;

fn second(vm: &Host) -> Host {
    let mut w = vm.worker().expect("second worker starts");
    assert!(w.configure("{}").unwrap());
    w
}

#[test]
fn a_breaker_opened_on_one_worker_fails_fast_on_another_that_knows_the_host() {
    let mut one = vm("{}");
    let mut two = second(&one);
    succeed(&mut two, HOST_A, 1); // worker two has seen HOST_A serve CLUSTER
    fail(&mut one, HOST_A, 5);
    two.advance_ms(SHARE_WITHIN_MS);
    assert!(fast_fails(&mut two), "worker two must see the shared open breaker");
    // Metrics are process-wide, as Envoy's stats are.
    assert_eq!(metric(&two, "only1mcp_fast_fail_503_total"), 1);
    // Request counts are flushed on each worker's tick.
    one.tick().unwrap();
    two.tick().unwrap();
    assert_eq!(metric(&one, "only1mcp_requests_total"), 7);
}

#[test]
fn failures_on_two_workers_add_up_in_the_shared_breaker() {
    let mut one = vm("{}");
    let mut two = second(&one);
    fail(&mut one, HOST_A, 2);
    fail(&mut two, HOST_A, 2);
    assert!(!fast_fails(&mut one));
    // fast_fails above was a success: start the run again, split across workers.
    fail(&mut one, HOST_A, 3);
    fail(&mut two, HOST_A, 2);
    assert_eq!(metric(&one, "only1mcp_breaker_opened_total"), 1, "5 consecutive failures across both workers");
    one.advance_ms(SHARE_WITHIN_MS);
    assert!(fast_fails(&mut one));
    assert!(fast_fails(&mut two));
}

#[test]
fn recovery_on_one_worker_is_seen_by_the_other() {
    let mut one = vm("{}");
    let mut two = second(&one);
    succeed(&mut two, HOST_A, 1);
    fail(&mut one, HOST_A, 5);
    one.advance_ms(2_000);
    succeed(&mut one, HOST_A, 2);
    assert_eq!(metric(&one, "only1mcp_breaker_closed_total"), 1);
    one.advance_ms(SHARE_WITHIN_MS);
    assert!(!fast_fails(&mut two));
}

#[test]
fn the_breaker_lives_in_its_first_slot_with_its_host() {
    let mut one = vm("{}");
    fail(&mut one, HOST_A, 5);
    let key = slot_key("only1mcp:breaker:", HOST_A, 0);
    let (bytes, cas) = one.shared().shared_data(&key).expect("shared breaker");
    assert_ne!(cas, 0);
    assert_eq!(bytes.len(), 22 + HOST_A.len());
    assert_eq!(bytes[1], 1, "tag 1 = open");
    assert_eq!(&bytes[22..], HOST_A.as_bytes());
}

#[test]
fn a_slot_held_by_another_open_host_is_skipped() {
    let mut one = vm("{}");
    // Another host's live (open) breaker sits in HOST_A's first slot.
    let open = only1mcp_filter::breaker::Breaker { state: only1mcp_filter::breaker::State::Open { until_ms: u64::MAX, trips: 1 } };
    let first = slot_key("only1mcp:breaker:", HOST_A, 0);
    one.shared().lock().plant(first.as_bytes(), &encode_slot(&open, "10.9.9.9:1"));
    assert!(!fast_fails(&mut one), "the other host's breaker is not HOST_A's");
    fail(&mut one, HOST_A, 5);
    assert!(fast_fails(&mut one));
    let (bytes, _) = one.shared().shared_data(&slot_key("only1mcp:breaker:", HOST_A, 1)).expect("second slot");
    assert_eq!(&bytes[22..], HOST_A.as_bytes(), "HOST_A took its next slot");
    let (still, _) = one.shared().shared_data(&first).expect("first slot");
    assert_eq!(&still[22..], b"10.9.9.9:1", "the live breaker was left alone");
}

#[test]
fn foreign_bytes_under_the_key_are_ignored_not_trusted() {
    let mut one = vm("{}");
    one.shared().lock().plant(slot_key("only1mcp:breaker:", HOST_A, 0).as_bytes(), b"garbage from another version");
    fail(&mut one, HOST_A, 4);
    assert!(!fast_fails(&mut one));
    fail(&mut one, HOST_A, 5);
    assert!(fast_fails(&mut one));
}

#[test]
fn a_fresh_worker_fails_fast_for_a_cluster_opened_elsewhere() {
    let mut one = vm("{}");
    let mut two = second(&one);
    fail(&mut one, HOST_A, 5);
    two.advance_ms(SHARE_WITHIN_MS);
    assert!(fast_fails(&mut two), "worker two never saw HOST_A, but the cluster is down process-wide");
}

#[test]
fn a_worker_sees_another_workers_trip_within_the_cache_bound_not_before() {
    let mut one = vm("{}");
    let mut two = second(&one);
    succeed(&mut two, HOST_A, 1);
    fail(&mut one, HOST_A, 5);
    two.advance_ms(SHARE_WITHIN_MS - 1);
    // Inside the bound worker two may still use its copy; after it, it must not.
    let _ = fast_fails(&mut two);
    two.advance_ms(1);
    assert!(fast_fails(&mut two));
}

#[test]
fn a_success_on_one_worker_breaks_a_run_of_failures_on_another() {
    let mut one = vm("{}");
    let mut two = second(&one);
    succeed(&mut one, HOST_A, 1);
    fail(&mut two, HOST_A, 4);
    succeed(&mut one, HOST_A, 1);
    fail(&mut two, HOST_A, 1);
    assert_eq!(metric(&one, "only1mcp_breaker_opened_total"), 0, "4 failures, a success, 1 failure: no run of 5");
}
