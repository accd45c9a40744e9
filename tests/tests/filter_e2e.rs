//! The Wasm filter in a real Envoy, configured over ECDS by the control
//! plane: a failing backend trips its breaker and clients get a fast 503
//! JSON-RPC reply; recovery closes the breaker; a host ejected by one
//! Envoy's filter stops getting traffic from another Envoy.

use std::time::Duration;

use only1mcp_tests::harness::python::whoami_answers;
use only1mcp_tests::harness::{filter_wasm, run_client, wait_until, ClientKind, ControlPlane, Envoy, TestBackend, Workdir, XdsMode};

/// A config with the filter on; `policy` is the policy's `defaults:` body
/// (indented four spaces), or empty.
fn config(backends: &[(&TestBackend, &str)], policy: &str) -> String {
    let policy = if policy.is_empty() { String::new() } else { format!("policy:\n  defaults:\n{policy}") };
    let mut s = format!(
        "xds: {{port: 0}}\nadmin: {{port: 0}}\nenvoy:\n  listener: {{port: 0}}\nfilter:\n  wasm: {}\n{policy}backends:\n",
        filter_wasm().display()
    );
    for (b, svc) in backends {
        s.push_str(&b.yaml(svc));
    }
    s
}

const POLICY: &str = "    breaker: {consecutive_failures: 3, open_base: 1500ms, open_max: 3s, half_open_probes: 2, successes_to_close: 2}\n";

struct Reply {
    status: u16,
    retry_after: Option<String>,
    body: serde_json::Value,
}

fn call(url: &str, id: u64) -> Reply {
    try_call(url, id, Duration::from_secs(10)).expect("request through Envoy")
}

/// `None` if no answer came within `timeout` (a hung backend).
fn try_call(url: &str, id: u64, timeout: Duration) -> Option<Reply> {
    let client = reqwest::blocking::Client::builder().timeout(timeout).build().unwrap();
    let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"whoami"}}}}"#);
    let r = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .body(body)
        .send()
        .ok()?;
    let status = r.status().as_u16();
    let retry_after = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(String::from);
    let text = r.text().unwrap_or_default();
    Some(Reply { status, retry_after, body: serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)) })
}

#[test]
fn failing_backend_trips_the_breaker_then_recovers() {
    let wd = Workdir::new("filter-trip");
    let a = TestBackend::start(wd.path(), "alpha-1", &[]);
    let cp = ControlPlane::start(wd.path(), &config(&[(&a, "alpha")], POLICY));
    let envoy = Envoy::start(wd.path(), "envoy-filter", cp.xds.port(), XdsMode::Sotw);
    envoy.wait_endpoints("mcp_alpha", &[a.mcp.to_string()]);
    assert_eq!(call(&envoy.url("alpha"), 1).status, 200);

    a.set_fault(r#"{"mode":"http_status","status":503}"#);
    let fast = wait_until("a fast-fail reply from the filter", Duration::from_secs(10), || {
        let r = call(&envoy.url("alpha"), 42);
        r.retry_after.is_some().then_some(r)
    });
    // A worker trusts its copy of the breaker for up to 100 ms, so a call or
    // two may still reach the backend right after the trip; Envoy's outlier
    // detection (twice the threshold) stops anything beyond.
    let faulted = a.stats()["faulted"].as_u64().unwrap_or(0);
    assert!((3..=6).contains(&faulted), "{faulted} failing calls reached the backend");
    assert_eq!(fast.status, 503);
    assert_eq!(fast.body["id"], 42, "the reply echoes the request id: {}", fast.body);
    assert_eq!(fast.body["error"]["code"], -32000);
    // Every worker sees the open breaker within its cache period; from
    // then on every request is failed fast without reaching the backend.
    wait_until("every worker to fail fast", Duration::from_secs(5), || {
        (0..5).all(|i| call(&envoy.url("alpha"), 100 + i).retry_after.is_some()).then_some(())
    });
    let seen = a.requests();
    for i in 0..5 {
        let r = call(&envoy.url("alpha"), 200 + i);
        assert_eq!((r.status, r.retry_after.is_some()), (503, true));
    }
    assert_eq!(a.requests(), seen, "fast-failed requests must not reach the backend");
    assert!(envoy.stat("wasmcustom.only1mcp_fast_fail_503_total").unwrap_or(0) >= 5);
    assert!(envoy.stat("wasmcustom.only1mcp_breaker_opened_total").unwrap_or(0) >= 1);
    let (_, prom) = only1mcp_tests::harness::process::http_get(&format!("http://{}/stats/prometheus", envoy.admin)).expect("prometheus");
    // Envoy lists custom-namespace stats under their own names in Prometheus.
    assert!(prom.lines().any(|l| l.starts_with("only1mcp_fast_fail_503_total")), "filter metrics missing from Envoy's Prometheus output");

    // The control plane heard about it and ejected the host in EDS.
    wait_until("the report to reach the control plane", Duration::from_secs(5), || {
        let st = cp.status();
        (!st["passive"]["hosts"].as_object().map(|m| m.is_empty()).unwrap_or(true)).then_some(())
    });

    // The backend recovers: after the open period the half-open probes close it.
    a.set_fault(r#"{"mode":"ok"}"#);
    wait_until("traffic to flow again", Duration::from_secs(15), || (call(&envoy.url("alpha"), 7).status == 200).then_some(()));
    wait_until("the half-open probes to close the breaker", Duration::from_secs(10), || {
        assert_eq!(call(&envoy.url("alpha"), 8).status, 200, "a recovered backend must not be failed");
        (envoy.stat("wasmcustom.only1mcp_breaker_closed_total").unwrap_or(0) >= 1).then_some(())
    });
    wait_until("the control plane to lift the ejection", Duration::from_secs(10), || {
        cp.metrics().contains("only1mcp_hosts_ejected 0").then_some(())
    });
    assert_eq!(whoami_answers(&run_client(ClientKind::Modern, &envoy.url("alpha"), 3)), vec!["alpha-1"; 3]);
}

#[test]
fn a_host_ejected_by_one_envoy_gets_no_traffic_from_another() {
    let wd = Workdir::new("filter-fleet");
    let bad = TestBackend::start(wd.path(), "alpha-bad", &[]);
    let good = TestBackend::start(wd.path(), "alpha-good", &[]);
    // A long open period: the ejection must outlast Envoy two's client run.
    let long = "    breaker: {consecutive_failures: 3, open_base: 30s, open_max: 60s}\n";
    let cp = ControlPlane::start(wd.path(), &config(&[(&bad, "alpha"), (&good, "alpha")], long));
    let e1 = Envoy::start(wd.path(), "envoy-one", cp.xds.port(), XdsMode::Sotw);
    let e2 = Envoy::start(wd.path(), "envoy-two", cp.xds.port(), XdsMode::Sotw);
    e1.wait_endpoints("mcp_alpha", &[bad.mcp.to_string(), good.mcp.to_string()]);
    e2.wait_endpoints("mcp_alpha", &[bad.mcp.to_string(), good.mcp.to_string()]);

    bad.set_fault(r#"{"mode":"jsonrpc_error","code":-32603}"#);
    // Only Envoy one sees traffic; JSON-RPC errors are invisible to Envoy's
    // own outlier detection, so only the filter can catch this host.
    wait_until("Envoy two to see the host unhealthy", Duration::from_secs(20), || {
        for i in 0..4 {
            call(&e1.url("alpha"), i);
        }
        let eps = e2.endpoints("mcp_alpha");
        eps.iter().any(|(addr, h)| addr == &bad.mcp.to_string() && h == "UNHEALTHY").then_some(())
    });
    let before = bad.requests();
    let answers = whoami_answers(&run_client(ClientKind::Modern, &e2.url("alpha"), 20));
    assert_eq!(answers, vec!["alpha-good"; 20]);
    assert_eq!(bad.requests(), before, "Envoy two sent traffic to the ejected host");
}

/// Runs `threads` clients in a closed loop against `url` until `stop` is
/// set; returns (ok, fast-failed, other) counts.
fn load(url: String, threads: usize, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> std::thread::JoinHandle<(u64, u64, u64)> {
    use std::sync::atomic::Ordering;
    std::thread::spawn(move || {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (url, stop) = (url.clone(), stop.clone());
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
                    let (mut ok, mut fast, mut other) = (0, 0, 0);
                    let mut id = (t as u64) << 32;
                    while !stop.load(Ordering::Relaxed) {
                        id += 1;
                        let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"whoami"}}}}"#);
                        match client.post(&url).header("content-type", "application/json").header("mcp-protocol-version", "2026-07-28").body(body).send() {
                            Ok(r) if r.status() == 200 => ok += 1,
                            Ok(r) if r.headers().contains_key("retry-after") => fast += 1,
                            _ => other += 1,
                        }
                    }
                    (ok, fast, other)
                })
            })
            .collect();
        workers.into_iter().filter_map(|w| w.join().ok()).fold((0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2))
    })
}

#[test]
fn a_hung_backend_is_caught_by_phi_long_before_any_timeout() {
    let wd = Workdir::new("filter-hung");
    let a = TestBackend::start(wd.path(), "alpha-1", &["--fault", r#"{"mode":"ok","latency":{"kind":"fixed","ms":5}}"#]);
    let cp = ControlPlane::start(wd.path(), &config(&[(&a, "alpha")], POLICY));
    let envoy = Envoy::start(wd.path(), "envoy-hung", cp.xds.port(), XdsMode::Sotw);
    envoy.wait_endpoints("mcp_alpha", &[a.mcp.to_string()]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loader = load(envoy.url("alpha"), 4, stop.clone());
    wait_until("steady traffic", Duration::from_secs(10), || (a.requests() > 200).then_some(()));

    // The backend stops answering; requests pile up with no timeout (MCP
    // routes have none). Phi must open the breaker and clients fail fast.
    a.set_fault(r#"{"mode":"hang"}"#);
    wait_until("fast-fail replies for the hung backend", Duration::from_secs(10), || {
        let r = try_call(&envoy.url("alpha"), 5, Duration::from_millis(500))?;
        (r.status == 503 && r.retry_after.is_some()).then_some(())
    });
    let st = cp.status();
    let verdicts = st["passive"]["hosts"][a.mcp.to_string()].clone();
    assert_eq!(verdicts["envoy-hung"]["reason"], "phi", "{st}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    a.set_fault(r#"{"mode":"ok"}"#);
    // The loader's own requests stay stuck on the hung backend until their
    // client timeout; only their count before the hang matters here.
    let (ok, _, _) = loader.join().unwrap();
    assert!(ok > 200, "ok {ok}");
}

#[test]
fn a_healthy_backend_with_heavy_tailed_latency_is_never_ejected() {
    let wd = Workdir::new("filter-heavy-tail");
    let fault = r#"{"mode":"ok","latency":{"kind":"pareto","min_ms":2,"alpha":1.2,"max_ms":1500}}"#;
    let a = TestBackend::start(wd.path(), "alpha-1", &["--fault", fault]);
    let cp = ControlPlane::start(wd.path(), &config(&[(&a, "alpha")], ""));
    let envoy = Envoy::start(wd.path(), "envoy-tail", cp.xds.port(), XdsMode::Sotw);
    envoy.wait_endpoints("mcp_alpha", &[a.mcp.to_string()]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loader = load(envoy.url("alpha"), 4, stop.clone());
    // A long run, by request count: the slowest calls (up to 1.5 s) are
    // hundreds of times the median (about 2 ms).
    wait_until("3000 requests", Duration::from_secs(120), || (a.requests() > 3000).then_some(()));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, fast, other) = loader.join().unwrap();
    assert_eq!((fast, other), (0, 0), "{ok} ok, {fast} fast-failed, {other} other");
    assert_eq!(envoy.stat("wasmcustom.only1mcp_breaker_opened_total").unwrap_or(0), 0);
    assert!(cp.metrics().contains("only1mcp_hosts_ejected 0"));
}
