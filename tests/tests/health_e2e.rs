//! Active health checks end to end: the real control plane probes real
//! backends (the fault-switchable test backend and the Python MCP SDK
//! servers of both eras), and a real Envoy routes by what it publishes.
//! A killed or hung backend stops getting traffic, a recovered one gets it
//! back after `rise` good probes, standbys take over only when every
//! primary is down, and a dead backend of a service nobody calls is found
//! all the same.

use std::net::SocketAddr;
use std::time::Duration;

use only1mcp_tests::harness::python::whoami_answers;
use only1mcp_tests::harness::{run_client, wait_until, ClientKind, ControlPlane, Envoy, SdkServer, TestBackend, Workdir, XdsMode};
use serde_json::Value;

/// Short intervals so the tests run fast; rise 2 so recovery takes two probes.
const FAST: &str = "health:\n  interval: 200ms\n  timeout: 150ms\n  rise: 2\n  fall: 2\n  jitter: 0.1\n  backoff_max: 400ms\n";
const WAIT: Duration = Duration::from_secs(20);

fn config(health: &str, items: &[String]) -> String {
    let mut s = format!("xds: {{address: 127.0.0.1, port: 0}}\nadmin: {{address: 127.0.0.1, port: 0}}\nenvoy:\n  listener: {{address: 127.0.0.1, port: 0}}\n{health}backends:\n");
    for i in items {
        s.push_str(i);
    }
    s
}

fn standby_yaml(b: &TestBackend, service: &str) -> String {
    format!("  - {{service: {service}, address: {}, port: {}, standby: true}}\n", b.mcp.ip(), b.mcp.port())
}

/// Envoy's EDS health for one host (`HEALTHY`, `UNHEALTHY`, `DEGRADED`).
fn eds_health(envoy: &Envoy, cluster: &str, addr: SocketAddr) -> Option<String> {
    envoy.endpoints(cluster).into_iter().find(|(a, _)| *a == addr.to_string()).map(|(_, h)| h)
}

fn wait_eds(envoy: &Envoy, cluster: &str, addr: SocketAddr, want: &str) {
    wait_until(&format!("Envoy to see {addr} in {cluster} as {want}"), WAIT, || (eds_health(envoy, cluster, addr).as_deref() == Some(want)).then_some(()));
}

/// The control plane's view of one endpoint in `/status`.
fn endpoint_status(cp: &ControlPlane, service: &str, addr: SocketAddr) -> Value {
    let st = cp.status();
    let svc = st["services"].as_array().and_then(|a| a.iter().find(|s| s["name"] == service).cloned()).unwrap_or_default();
    svc["endpoints"].as_array().and_then(|a| a.iter().find(|e| e["address"] == addr.to_string()).cloned()).unwrap_or_default()
}

/// Waits until the control plane's probes rate the endpoint `want` (active health).
fn wait_probed(cp: &ControlPlane, service: &str, addr: SocketAddr, want: &str) -> Value {
    wait_until(&format!("probes to rate {service} {addr} {want}"), WAIT, || {
        let e = endpoint_status(cp, service, addr);
        (e["probe"]["verdict"]["health"] == want).then_some(e)
    })
}

fn calls(b: &TestBackend, method: &str) -> u64 {
    b.stats()["by_method"][method].as_u64().unwrap_or(0)
}

#[test]
fn killed_backend_leaves_rotation_and_a_restarted_one_returns_after_rise_probes() {
    let wd = Workdir::new("health-kill");
    let a1 = TestBackend::start(wd.path(), "alpha-1", &[]);
    let mut a2 = TestBackend::start(wd.path(), "alpha-2", &[]);
    let cp = ControlPlane::start(wd.path(), &config(FAST, &[a1.yaml("alpha"), a2.yaml("alpha")]));
    let envoy = Envoy::start(wd.path(), "envoy-health-kill", cp.xds.port(), XdsMode::Sotw);
    envoy.wait_endpoints("mcp_alpha", &[a1.mcp.to_string(), a2.mcp.to_string()]);
    wait_probed(&cp, "alpha", a1.mcp, "healthy");
    let e2 = wait_probed(&cp, "alpha", a2.mcp, "healthy");
    assert_eq!(e2["probe"]["method"], "discover", "a backend of both eras is probed with server/discover: {e2}");
    let answers = whoami_answers(&run_client(ClientKind::Modern, &envoy.url("alpha"), 30));
    assert!(answers.contains(&"alpha-2".to_string()), "both serve at first: {answers:?}");

    // Killed: out of rotation, and every call lands on the survivor.
    let a2_addr = a2.mcp;
    a2.child.kill();
    wait_eds(&envoy, "mcp_alpha", a2_addr, "UNHEALTHY");
    let e2 = endpoint_status(&cp, "alpha", a2_addr);
    assert!(e2["probe"]["last_error"].as_str().unwrap_or("").contains("cannot connect"), "{e2}");
    assert_eq!(e2["eds"]["health"], "unhealthy", "{e2}");
    assert_eq!(whoami_answers(&run_client(ClientKind::Modern, &envoy.url("alpha"), 20)), vec!["alpha-1"; 20]);
    assert!(cp.metrics().contains("only1mcp_health_endpoints{health=\"unhealthy\"} 1"), "{}", cp.metrics());

    // Restarted on the same port: back only after `rise` (2) good probes.
    let a2 = TestBackend::start_on(wd.path(), "alpha-2b", &a2_addr.to_string(), &[]);
    wait_eds(&envoy, "mcp_alpha", a2_addr, "HEALTHY");
    assert!(calls(&a2, "server/discover") >= 2, "back in rotation before 2 probes: {}", a2.stats());
    assert_eq!(calls(&a2, "tools/call"), 0, "no traffic while it was out");
    let answers = whoami_answers(&run_client(ClientKind::Modern, &envoy.url("alpha"), 30));
    assert!(answers.contains(&"alpha-2b".to_string()), "the recovered backend gets traffic again: {answers:?}");
    assert!(cp.metrics().contains("only1mcp_xds_nacks_total 0"), "{}", cp.metrics());
}

#[test]
fn hung_and_erroring_backends_are_caught_and_recover() {
    let wd = Workdir::new("health-hang");
    let a1 = TestBackend::start(wd.path(), "alpha-1", &[]);
    let a2 = TestBackend::start(wd.path(), "alpha-2", &["--sse"]);
    let cp = ControlPlane::start(wd.path(), &config(FAST, &[a1.yaml("alpha"), a2.yaml("alpha")]));
    let envoy = Envoy::start(wd.path(), "envoy-health-hang", cp.xds.port(), XdsMode::Sotw);
    envoy.wait_endpoints("mcp_alpha", &[a1.mcp.to_string(), a2.mcp.to_string()]);
    wait_probed(&cp, "alpha", a2.mcp, "healthy");

    // Hung: accepts, never answers. Only the probe timeout can tell.
    a2.set_fault(r#"{"mode":"hang"}"#);
    wait_eds(&envoy, "mcp_alpha", a2.mcp, "UNHEALTHY");
    let e2 = endpoint_status(&cp, "alpha", a2.mcp);
    assert!(e2["probe"]["last_error"].as_str().unwrap_or("").contains("no answer within"), "{e2}");
    // Calls routed to a hung host would hang the client; they all complete.
    assert_eq!(whoami_answers(&run_client(ClientKind::Modern, &envoy.url("alpha"), 20)), vec!["alpha-1"; 20]);
    assert!(cp.metrics().contains("only1mcp_health_probes_total{result=\"timeout\"}"), "{}", cp.metrics());

    a2.set_fault(r#"{"mode":"ok"}"#);
    wait_eds(&envoy, "mcp_alpha", a2.mcp, "HEALTHY");

    // A JSON-RPC internal error is the backend failing, not an era mismatch.
    a2.set_fault(r#"{"mode":"jsonrpc_error","code":-32603}"#);
    wait_eds(&envoy, "mcp_alpha", a2.mcp, "UNHEALTHY");
    let e2 = endpoint_status(&cp, "alpha", a2.mcp);
    assert!(e2["probe"]["last_error"].as_str().unwrap_or("").contains("-32603"), "{e2}");
    a2.set_fault(r#"{"mode":"ok"}"#);
    wait_eds(&envoy, "mcp_alpha", a2.mcp, "HEALTHY");

    // HTTP 503.
    a2.set_fault(r#"{"mode":"http_status","status":503}"#);
    wait_eds(&envoy, "mcp_alpha", a2.mcp, "UNHEALTHY");
    a2.set_fault(r#"{"mode":"ok"}"#);
    wait_eds(&envoy, "mcp_alpha", a2.mcp, "HEALTHY");
    let answers = whoami_answers(&run_client(ClientKind::Modern, &envoy.url("alpha"), 30));
    assert!(answers.contains(&"alpha-2".to_string()), "{answers:?}");
}

#[test]
fn idle_service_dead_backend_is_found_without_client_traffic() {
    let wd = Workdir::new("health-idle");
    let i1 = TestBackend::start(wd.path(), "idle-1", &[]);
    let mut i2 = TestBackend::start(wd.path(), "idle-2", &[]);
    // Nobody reports traffic for this service: it is probed at its idle interval.
    let health = format!("{FAST}  services:\n    idle: {{idle_interval: 400ms}}\n");
    let cp = ControlPlane::start(wd.path(), &config(&health, &[i1.yaml("idle"), i2.yaml("idle")]));
    let envoy = Envoy::start(wd.path(), "envoy-health-idle", cp.xds.port(), XdsMode::Sotw);
    envoy.wait_endpoints("mcp_idle", &[i1.mcp.to_string(), i2.mcp.to_string()]);
    let e2 = wait_probed(&cp, "idle", i2.mcp, "healthy");
    assert!(e2["probe"]["next_probe_in_ms"].as_u64().unwrap_or(0) > 200, "idle endpoints use the idle interval: {e2}");

    let addr = i2.mcp;
    i2.child.kill();
    wait_eds(&envoy, "mcp_idle", addr, "UNHEALTHY");
    assert_eq!(eds_health(&envoy, "mcp_idle", i1.mcp).as_deref(), Some("HEALTHY"));
    let by_method = i1.stats()["by_method"].clone();
    let methods: Vec<&String> = by_method.as_object().map(|m| m.keys().collect()).unwrap_or_default();
    assert_eq!(methods, vec!["server/discover"], "only probes reached the service, no client traffic: {by_method}");
}

#[test]
fn standby_takes_over_when_every_primary_is_down_and_hands_back() {
    let wd = Workdir::new("health-standby");
    let p1 = TestBackend::start(wd.path(), "omega-p1", &[]);
    let p2 = TestBackend::start(wd.path(), "omega-p2", &[]);
    let s1 = TestBackend::start(wd.path(), "omega-s1", &[]);
    let cp = ControlPlane::start(wd.path(), &config(FAST, &[p1.yaml("omega"), p2.yaml("omega"), standby_yaml(&s1, "omega")]));
    let envoy = Envoy::start(wd.path(), "envoy-health-standby", cp.xds.port(), XdsMode::Sotw);
    envoy.wait_endpoints("mcp_omega", &[p1.mcp.to_string(), p2.mcp.to_string(), s1.mcp.to_string()]);
    for b in [&p1, &p2, &s1] {
        wait_probed(&cp, "omega", b.mcp, "healthy");
    }
    assert_eq!(endpoint_status(&cp, "omega", s1.mcp)["standby"], true);

    // Primaries up: the standby gets nothing.
    let answers = whoami_answers(&run_client(ClientKind::Modern, &envoy.url("omega"), 30));
    assert!(!answers.contains(&"omega-s1".to_string()), "standby served while primaries were up: {answers:?}");

    // One primary down: the other carries everything, still no standby.
    p2.set_fault(r#"{"mode":"refuse"}"#);
    wait_eds(&envoy, "mcp_omega", p2.mcp, "UNHEALTHY");
    assert_eq!(whoami_answers(&run_client(ClientKind::Modern, &envoy.url("omega"), 20)), vec!["omega-p1"; 20]);

    // Every primary down: the standby takes over.
    p1.set_fault(r#"{"mode":"refuse"}"#);
    wait_eds(&envoy, "mcp_omega", p1.mcp, "UNHEALTHY");
    assert_eq!(whoami_answers(&run_client(ClientKind::Modern, &envoy.url("omega"), 10)), vec!["omega-s1"; 10]);

    // A primary returns: it takes the traffic back.
    p1.set_fault(r#"{"mode":"ok"}"#);
    wait_eds(&envoy, "mcp_omega", p1.mcp, "HEALTHY");
    assert_eq!(whoami_answers(&run_client(ClientKind::Modern, &envoy.url("omega"), 20)), vec!["omega-p1"; 20]);
    assert!(cp.metrics().contains("only1mcp_xds_nacks_total 0"), "{}", cp.metrics());
}

#[test]
fn legacy_backends_are_probed_with_ping_on_one_session_renewed_after_404() {
    let wd = Workdir::new("health-legacy");
    let legacy = TestBackend::start(wd.path(), "beta-legacy", &["--era", "legacy", "--sse"]);
    let modern = TestBackend::start(wd.path(), "beta-modern", &["--era", "modern"]);
    let cp = ControlPlane::start(wd.path(), &config(FAST, &[legacy.yaml("beta"), modern.yaml("beta")]));
    let e = wait_probed(&cp, "beta", legacy.mcp, "healthy");
    assert_eq!(e["probe"]["method"], "ping", "{e}");
    let e = wait_probed(&cp, "beta", modern.mcp, "healthy");
    assert_eq!(e["probe"]["method"], "discover", "{e}");

    // Many probes, one session.
    wait_until("several pings", WAIT, || (calls(&legacy, "ping") >= 5).then_some(()));
    assert_eq!(calls(&legacy, "initialize"), 1, "{}", legacy.stats());
    assert_eq!(legacy.stats()["sessions"], 1, "{}", legacy.stats());
    assert_eq!(calls(&modern, "initialize"), 0, "{}", modern.stats());

    // The server forgets its sessions (restart on the same port): the
    // probe gets 404 for its session and initializes a new one.
    let addr = legacy.mcp;
    drop(legacy);
    let legacy = TestBackend::start_on(wd.path(), "beta-legacy-2", &addr.to_string(), &["--era", "legacy"]);
    wait_until("a new probe session", WAIT, || (calls(&legacy, "initialize") == 1 && calls(&legacy, "ping") >= 3).then_some(()));
    assert_eq!(legacy.stats()["sessions"], 1, "{}", legacy.stats());
    wait_probed(&cp, "beta", addr, "healthy");
}

#[test]
fn python_sdk_servers_of_both_eras_are_probed_and_a_killed_one_is_marked_unhealthy() {
    let wd = Workdir::new("health-sdk");
    let modern = SdkServer::start(wd.path(), ClientKind::Modern, "sdk-modern");
    let mut legacy = SdkServer::start(wd.path(), ClientKind::Legacy, "sdk-legacy");
    // Python servers on a busy 2-core machine: a more patient timeout.
    let health = "health:\n  interval: 500ms\n  timeout: 450ms\n  rise: 1\n  fall: 2\n  backoff_max: 1s\n";
    let cp = ControlPlane::start(wd.path(), &config(health, &[modern.yaml("sdk"), legacy.yaml("sdk")]));
    let envoy = Envoy::start(wd.path(), "envoy-health-sdk", cp.xds.port(), XdsMode::Sotw);
    let e = wait_probed(&cp, "sdk", modern.addr, "healthy");
    assert_eq!(e["probe"]["method"], "discover", "mcp 2.x answers server/discover: {e}");
    let e = wait_probed(&cp, "sdk", legacy.addr, "healthy");
    assert_eq!(e["probe"]["method"], "ping", "mcp 1.x refuses server/discover and gets initialize + ping: {e}");
    wait_eds(&envoy, "mcp_sdk", modern.addr, "HEALTHY");
    wait_eds(&envoy, "mcp_sdk", legacy.addr, "HEALTHY");

    let addr = legacy.addr;
    legacy.child.kill();
    wait_eds(&envoy, "mcp_sdk", addr, "UNHEALTHY");
    let answers = whoami_answers(&run_client(ClientKind::Modern, &envoy.url("sdk"), 10));
    assert_eq!(answers, vec!["sdk-modern"; 10]);
    assert_eq!(endpoint_status(&cp, "sdk", modern.addr)["probe"]["verdict"]["health"], "healthy");
}
