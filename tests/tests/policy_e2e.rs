//! Policies end to end: an edit to the policy file reaches Envoy's filter
//! over ECDS without draining the listener (a long call in flight
//! survives), the filter acts on the new threshold, a broken edit changes
//! nothing, and a fresh Envoy starts with the current policy.

use std::time::Duration;

use only1mcp_tests::harness::{filter_wasm, wait_until, ControlPlane, Envoy, TestBackend, Workdir, XdsMode};

fn config(b: &TestBackend) -> String {
    format!(
        "xds: {{port: 0}}\nadmin: {{port: 0}}\nenvoy:\n  listener: {{port: 0}}\nhealth: {{enabled: false}}\nfilter:\n  wasm: {}\npolicy: policy.yaml\nbackends:\n{}",
        filter_wasm().display(),
        b.yaml("alpha")
    )
}

fn policy(consecutive_failures: u32) -> String {
    format!("defaults:\n  breaker: {{consecutive_failures: {consecutive_failures}, open_base: 30s, open_max: 60s}}\n")
}

fn post(url: &str, body: &str, timeout: Duration) -> Option<(u16, bool, String)> {
    let client = reqwest::blocking::Client::builder().timeout(timeout).build().ok()?;
    let r = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .body(body.to_string())
        .send()
        .ok()?;
    let status = r.status().as_u16();
    let fast = r.headers().contains_key("retry-after");
    Some((status, fast, r.text().unwrap_or_default()))
}

fn ecds_acked(cp: &ControlPlane, node: &str) -> Option<String> {
    let st = cp.status();
    st["streams"].as_array()?.iter().find(|s| s["node_id"] == node)?["types"]["ECDS"]["acked_version"].as_str().map(String::from)
}

#[test]
fn policy_edits_reach_the_filter_without_a_drain_and_bad_edits_change_nothing() {
    let wd = Workdir::new("policy");
    std::fs::write(wd.path().join("policy.yaml"), policy(50)).unwrap();
    let b = TestBackend::start(wd.path(), "alpha-1", &["--sse"]);
    let cp = ControlPlane::start(wd.path(), &config(&b));
    let envoy = Envoy::start(wd.path(), "envoy-policy", cp.xds.port(), XdsMode::Sotw);
    envoy.wait_endpoints("mcp_alpha", &[b.mcp.to_string()]);
    let v1 = wait_until("ECDS acked", Duration::from_secs(10), || ecds_acked(&cp, "envoy-policy"));
    let listener_updates = envoy.stat("listener_manager.lds.update_success").unwrap_or(0);
    let modified = envoy.stat("listener_manager.listener_modified").unwrap_or(0);

    // A long tool call (an SSE answer after 3 s) is in flight across the change.
    let url = envoy.url("alpha");
    let long = {
        let url = url.clone();
        std::thread::spawn(move || {
            post(&url, r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"sleep","arguments":{"ms":3000}}}"#, Duration::from_secs(20))
        })
    };
    wait_until("the long call to reach the backend", Duration::from_secs(5), || (b.stats()["by_method"]["tools/call"] == 1).then_some(()));

    // Lower the threshold from 50 to 2.
    let path = wd.path().join("policy.yaml");
    std::fs::write(path.with_extension("tmp"), policy(2)).unwrap();
    std::fs::rename(path.with_extension("tmp"), &path).unwrap();
    let v2 = wait_until("the new policy acked by Envoy", Duration::from_secs(10), || ecds_acked(&cp, "envoy-policy").filter(|v| *v != v1));
    assert_ne!(v1, v2);

    // No listener drain: LDS untouched, the in-flight call completes.
    assert_eq!(envoy.stat("listener_manager.listener_modified").unwrap_or(0), modified, "the listener was modified");
    assert_eq!(envoy.stat("listener_manager.lds.update_success").unwrap_or(0), listener_updates, "LDS changed");
    let (status, _, body) = long.join().unwrap().expect("the long call survives the policy change");
    assert_eq!(status, 200);
    assert!(body.contains("slept 3000 ms"), "{body}");

    // The filter acts on the new threshold: two failures open the breaker.
    b.set_fault(r#"{"mode":"http_status","status":503}"#);
    let discover = r#"{"jsonrpc":"2.0","id":1,"method":"server/discover"}"#;
    let mut failures = 0;
    wait_until("a fast-fail after two failures", Duration::from_secs(10), || {
        let (_, fast, _) = post(&url, discover, Duration::from_secs(5))?;
        if !fast {
            failures += 1;
        }
        fast.then_some(())
    });
    assert!((2..10).contains(&failures), "{failures} failures before the breaker opened (threshold 2, was 50)");

    // A broken edit is refused: reported, and nothing changes anywhere.
    std::fs::write(&path, "defaults:\n  breaker: {consecutive_failures: 0, colour: red}\n").unwrap();
    let rejected = wait_until("the bad policy to be refused", Duration::from_secs(10), || {
        let r = cp.status()["policy"]["rejected"].clone();
        (!r.is_null()).then_some(r)
    });
    assert_eq!(rejected.as_array().map(|a| a.len()), Some(2), "{rejected}");
    assert_eq!(rejected[0]["path"], "defaults.breaker.consecutive_failures");
    assert_eq!(rejected[0]["line"], 2);
    assert!(cp.metrics().contains("only1mcp_policy_valid 0"));
    assert!(cp.metrics().contains("only1mcp_policy_rejections_total 1"));
    assert_eq!(ecds_acked(&cp, "envoy-policy").as_deref(), Some(v2.as_str()), "Envoy's policy changed");

    // A fresh Envoy gets the last good policy before it serves.
    let fresh = Envoy::start(wd.path(), "envoy-fresh", cp.xds.port(), XdsMode::Sotw);
    let acked = wait_until("the fresh Envoy's ECDS", Duration::from_secs(10), || ecds_acked(&cp, "envoy-fresh"));
    assert_eq!(acked, v2, "a new Envoy gets the current policy");
    let dump = fresh.admin_json("/config_dump?resource=ecds_filters").expect("config dump");
    assert!(dump.to_string().contains("consecutive_failures\\\":2"), "{dump}");
}
