//! End to end with a real Envoy, the real control plane and real MCP SDK
//! clients of both protocol eras: routing by path, legacy session
//! affinity, config edits reaching Envoy, invalid edits changing nothing.

use std::time::Duration;

use only1mcp_tests::harness::python::whoami_answers;
use only1mcp_tests::harness::{run_client, wait_until, ClientKind, ControlPlane, Envoy, TestBackend, Workdir, XdsMode};

const HEADER: &str = "xds: {address: 127.0.0.1, port: 0}\nadmin: {address: 127.0.0.1, port: 0}\nenvoy:\n  listener: {address: 127.0.0.1, port: 0}\nbackends:\n";

fn config(backends: &[(&TestBackend, &str)]) -> String {
    let mut s = HEADER.to_string();
    for (b, service) in backends {
        s.push_str(&b.yaml(service));
    }
    s
}

fn http_status(url: &str) -> u16 {
    let client = reqwest::blocking::Client::new();
    client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"server/discover"}"#)
        .header("mcp-protocol-version", "2026-07-28")
        .send()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[test]
fn both_protocol_eras_reach_the_right_backend_by_path() {
    let wd = Workdir::new("routing");
    let alpha = TestBackend::start(wd.path(), "alpha-1", &[]);
    let beta = TestBackend::start(wd.path(), "beta-1", &["--sse"]);
    let cp = ControlPlane::start(wd.path(), &config(&[(&alpha, "alpha"), (&beta, "beta")]));
    let envoy = Envoy::start(wd.path(), "envoy-routing", cp.xds.port(), XdsMode::Sotw);
    envoy.wait_endpoints("mcp_alpha", &[alpha.mcp.to_string()]);
    envoy.wait_endpoints("mcp_beta", &[beta.mcp.to_string()]);

    let modern = run_client(ClientKind::Modern, &envoy.url("alpha"), 3);
    assert_eq!(modern[0]["protocol_version"], "2026-07-28", "{modern:?}");
    assert_eq!(modern[1]["tools"], serde_json::json!(["echo", "fail", "sleep", "whoami"]));
    assert_eq!(whoami_answers(&modern), vec!["alpha-1"; 3]);

    let legacy = run_client(ClientKind::Legacy, &envoy.url("beta"), 3);
    assert_eq!(legacy[0]["protocol_version"], "2025-11-25", "{legacy:?}");
    assert_eq!(whoami_answers(&legacy), vec!["beta-1"; 3]);

    let modern_beta = run_client(ClientKind::Modern, &envoy.url("beta"), 1);
    assert_eq!(whoami_answers(&modern_beta), vec!["beta-1"]);

    assert_eq!(http_status(&envoy.url("nope")), 404, "unknown service");
    assert_eq!(alpha.stats()["by_method"]["tools/call"], 3);
}

#[test]
fn legacy_session_stays_on_its_instance() {
    let wd = Workdir::new("affinity");
    let g1 = TestBackend::start(wd.path(), "gamma-1", &["--sse"]);
    let g2 = TestBackend::start(wd.path(), "gamma-2", &["--sse"]);
    let cp = ControlPlane::start(wd.path(), &config(&[(&g1, "gamma"), (&g2, "gamma")]));
    let envoy = Envoy::start(wd.path(), "envoy-affinity", cp.xds.port(), XdsMode::Sotw);
    envoy.wait_endpoints("mcp_gamma", &[g1.mcp.to_string(), g2.mcp.to_string()]);

    // Without a session, requests spread over both instances...
    let modern = run_client(ClientKind::Modern, &envoy.url("gamma"), 30);
    let answers = whoami_answers(&modern);
    assert!(answers.contains(&"gamma-1".to_string()) && answers.contains(&"gamma-2".to_string()), "{answers:?}");

    // ...but every call of a legacy session lands where it was initialized.
    for _ in 0..4 {
        let legacy = run_client(ClientKind::Legacy, &envoy.url("gamma"), 15);
        let answers = whoami_answers(&legacy);
        assert_eq!(answers.len(), 15);
        assert!(answers.iter().all(|a| a == &answers[0]), "session moved between instances: {answers:?}");
        let sid = legacy[0]["session_id"].as_str().unwrap_or("");
        assert!(sid.contains(";UV:"), "session id is not Envoy's envelope: {sid}");
    }
}

#[test]
fn config_edits_add_and_remove_endpoints_and_services() {
    let wd = Workdir::new("edits");
    let a1 = TestBackend::start(wd.path(), "alpha-1", &[]);
    let a2 = TestBackend::start(wd.path(), "alpha-2", &[]);
    let d1 = TestBackend::start(wd.path(), "delta-1", &[]);
    let cp = ControlPlane::start(wd.path(), &config(&[(&a1, "alpha")]));
    let envoy = Envoy::start(wd.path(), "envoy-edits", cp.xds.port(), XdsMode::Sotw);
    envoy.wait_endpoints("mcp_alpha", &[a1.mcp.to_string()]);

    // Add an instance: Envoy gets it and traffic reaches it.
    cp.write_config(&config(&[(&a1, "alpha"), (&a2, "alpha")]));
    envoy.wait_endpoints("mcp_alpha", &[a1.mcp.to_string(), a2.mcp.to_string()]);
    let answers = whoami_answers(&run_client(ClientKind::Modern, &envoy.url("alpha"), 30));
    assert!(answers.contains(&"alpha-2".to_string()), "{answers:?}");

    // Remove the first: no more traffic to it.
    cp.write_config(&config(&[(&a2, "alpha")]));
    envoy.wait_endpoints("mcp_alpha", &[a2.mcp.to_string()]);
    let before = a1.requests();
    let answers = whoami_answers(&run_client(ClientKind::Modern, &envoy.url("alpha"), 10));
    assert_eq!(answers, vec!["alpha-2"; 10]);
    assert_eq!(a1.requests(), before, "a removed endpoint got traffic");

    // A new service gets a route; removing it takes the route and cluster away.
    cp.write_config(&config(&[(&a2, "alpha"), (&d1, "delta")]));
    envoy.wait_endpoints("mcp_delta", &[d1.mcp.to_string()]);
    assert_eq!(whoami_answers(&run_client(ClientKind::Legacy, &envoy.url("delta"), 1)), vec!["delta-1"]);
    cp.write_config(&config(&[(&a2, "alpha")]));
    wait_until("mcp_delta to be removed", Duration::from_secs(15), || (!envoy.cluster_names().contains(&"mcp_delta".to_string())).then_some(()));
    assert_eq!(http_status(&envoy.url("delta")), 404);
    assert_eq!(whoami_answers(&run_client(ClientKind::Modern, &envoy.url("alpha"), 1)), vec!["alpha-2"]);
    assert!(cp.metrics().contains("only1mcp_xds_nacks_total 0"), "Envoy rejected something:\n{}", cp.metrics());
}

#[test]
fn invalid_edit_changes_nothing() {
    let wd = Workdir::new("invalid");
    let a1 = TestBackend::start(wd.path(), "alpha-1", &[]);
    let a2 = TestBackend::start(wd.path(), "alpha-2", &[]);
    // Probes off: their verdicts would legitimately change EDS, and this
    // test checks that nothing changes at all.
    let good = config(&[(&a1, "alpha")]).replace("backends:\n", "health: {enabled: false}\nbackends:\n");
    let cp = ControlPlane::start(wd.path(), &good);
    let envoy = Envoy::start(wd.path(), "envoy-invalid", cp.xds.port(), XdsMode::Sotw);
    envoy.wait_endpoints("mcp_alpha", &[a1.mcp.to_string()]);
    let acked_before = cp.status()["streams"][0]["types"].clone();

    // Adds a second instance but also has a bad port: the whole edit is refused.
    let bad = format!("{}{}  - {{service: alpha, address: 127.0.0.1, port: 99999}}\n", good, a2.yaml("alpha"));
    cp.write_config(&bad);
    let rejected = cp.wait_rejected();
    assert_eq!(rejected[0]["path"], "backends[2].port", "{rejected}");
    assert_eq!(rejected[0]["line"], 9, "{rejected}");
    assert!(cp.metrics().contains("only1mcp_config_rejections_total 1"));
    assert!(cp.metrics().contains("only1mcp_config_valid 0"));

    // Envoy's state and traffic are exactly as before.
    assert_eq!(envoy.endpoints("mcp_alpha").len(), 1);
    assert_eq!(cp.status()["streams"][0]["types"], acked_before);
    assert_eq!(whoami_answers(&run_client(ClientKind::Modern, &envoy.url("alpha"), 5)), vec!["alpha-1"; 5]);

    // Fixing the file applies it.
    cp.write_config(&config(&[(&a1, "alpha"), (&a2, "alpha")]));
    envoy.wait_endpoints("mcp_alpha", &[a1.mcp.to_string(), a2.mcp.to_string()]);
    assert!(cp.status()["config"]["rejected"].is_null());
}

#[test]
fn delta_xds_envoy_routes_and_follows_edits() {
    let wd = Workdir::new("delta");
    let a1 = TestBackend::start(wd.path(), "alpha-1", &[]);
    let b1 = TestBackend::start(wd.path(), "beta-1", &[]);
    let cp = ControlPlane::start(wd.path(), &config(&[(&a1, "alpha")]));
    let envoy = Envoy::start(wd.path(), "envoy-delta", cp.xds.port(), XdsMode::Delta);
    envoy.wait_endpoints("mcp_alpha", &[a1.mcp.to_string()]);
    assert_eq!(cp.status()["streams"][0]["protocol"], "delta");
    assert_eq!(whoami_answers(&run_client(ClientKind::Modern, &envoy.url("alpha"), 2)), vec!["alpha-1"; 2]);

    cp.write_config(&config(&[(&b1, "beta")]));
    envoy.wait_endpoints("mcp_beta", &[b1.mcp.to_string()]);
    wait_until("mcp_alpha to be removed", Duration::from_secs(15), || (!envoy.cluster_names().contains(&"mcp_alpha".to_string())).then_some(()));
    assert_eq!(whoami_answers(&run_client(ClientKind::Legacy, &envoy.url("beta"), 2)), vec!["beta-1"; 2]);
    assert_eq!(http_status(&envoy.url("alpha")), 404);
    assert!(cp.metrics().contains("only1mcp_xds_nacks_total 0"), "{}", cp.metrics());
}
