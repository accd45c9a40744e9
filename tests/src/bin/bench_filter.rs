//! Benchmarks for the Wasm filter, each against a baseline in the same run.
//!
//! 1. Overhead: the same backend and load through three Envoys: without a
//!    Wasm filter, with a bare filter that only reads two properties in
//!    `on_log` (the floor for any Wasm filter), and with ours. Rounds are
//!    interleaved so drift hits all three alike.
//! 2. Detection: a backend under load starts failing (HTTP 5xx, refusing
//!    connections, hanging); time to the first fast-fail reply and to the
//!    last request the backend received, for our filter and for Envoy's own
//!    outlier detection with its default settings.
//!
//! 3. Policy: saving the policy file until Envoy ACKs the filter's new
//!    config, against an endpoint change in the same run.
//!
//! scripts/setup.sh --release && target/release/bench-filter [overhead|detection|policy|all] [ROUNDS]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use only1mcp_tests::harness::{filter_wasm, wasm_artifact, ControlPlane, Envoy, TestBackend, Workdir, XdsMode};

const BODY: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami"}}"#;

fn config(b: &TestBackend, wasm: Option<&std::path::Path>) -> String {
    let filter = wasm.map(|w| format!("filter:\n  wasm: {}\n", w.display())).unwrap_or_default();
    format!("xds: {{port: 0}}\nadmin: {{port: 0}}\nenvoy:\n  listener: {{port: 0}}\nhealth: {{enabled: false}}\n{filter}backends:\n{}", b.yaml("alpha"))
}

struct Load {
    ok: u64,
    latencies_us: Vec<u64>,
    elapsed: Duration,
}

/// A closed loop of `conns` clients for `dur`.
fn run_load(url: &str, conns: usize, dur: Duration) -> Load {
    let start = Instant::now();
    let handles: Vec<_> = (0..conns)
        .map(|_| {
            let url = url.to_string();
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().expect("client");
                let mut lat = Vec::new();
                let t0 = Instant::now();
                while t0.elapsed() < dur {
                    let s = Instant::now();
                    let ok = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .header("mcp-protocol-version", "2026-07-28")
                        .body(BODY)
                        .send()
                        .map(|r| r.status().is_success())
                        .unwrap_or(false);
                    if ok {
                        lat.push(s.elapsed().as_micros() as u64);
                    }
                }
                lat
            })
        })
        .collect();
    let mut latencies_us: Vec<u64> = handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect();
    latencies_us.sort_unstable();
    Load { ok: latencies_us.len() as u64, latencies_us, elapsed: start.elapsed() }
}

fn pct(v: &[u64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize] as f64
}

fn overhead(wd: &Workdir, rounds: usize, conns: usize, secs: u64) {
    let backend = TestBackend::start(wd.path(), "bench-backend", &[]);
    let bare = wasm_artifact("only1mcp_bare_filter.wasm");
    let ours = filter_wasm();
    let variants: [(&str, Option<&std::path::Path>); 3] = [("no Wasm filter", None), ("bare Wasm filter", Some(&bare)), ("Only1MCP filter", Some(&ours))];
    let mut setups = Vec::new();
    for (i, (name, wasm)) in variants.iter().enumerate() {
        let sub = wd.path().join(format!("v{i}"));
        std::fs::create_dir_all(&sub).expect("dir");
        let cp = ControlPlane::start(&sub, &config(&backend, *wasm));
        let envoy = Envoy::start(&sub, &format!("bench-{i}"), cp.xds.port(), XdsMode::Sotw);
        envoy.wait_endpoints("mcp_alpha", &[backend.mcp.to_string()]);
        run_load(&envoy.url("alpha"), conns, Duration::from_millis(500)); // warm up
        setups.push((name.to_string(), cp, envoy, Vec::<u64>::new(), 0u64, Duration::ZERO));
    }
    for _ in 0..rounds {
        for s in setups.iter_mut() {
            let l = run_load(&s.2.url("alpha"), conns, Duration::from_secs(secs));
            s.3.extend(l.latencies_us);
            s.4 += l.ok;
            s.5 += l.elapsed;
        }
    }
    println!("\n### Filter overhead ({rounds} interleaved rounds x {secs} s, {conns} connections, closed loop)\n");
    println!("| variant | throughput | vs no filter | p50 | p99 | added p50 | added p99 |");
    println!("|---|---|---|---|---|---|---|");
    let mut base = (0.0, 0.0, 0.0);
    for (i, s) in setups.iter_mut().enumerate() {
        s.3.sort_unstable();
        let rps = s.4 as f64 / s.5.as_secs_f64();
        let (p50, p99) = (pct(&s.3, 0.5), pct(&s.3, 0.99));
        if i == 0 {
            base = (rps, p50, p99);
        }
        println!(
            "| {} | {rps:.0} req/s | {:.3}x | {:.0} µs | {:.0} µs | {:+.0} µs | {:+.0} µs |",
            s.0,
            rps / base.0,
            p50,
            p99,
            p50 - base.1,
            p99 - base.2
        );
    }
}

/// Envoy with its own outlier detection at default settings, on a static
/// cluster: the baseline for detection.
fn baseline_bootstrap(backend: &TestBackend) -> String {
    format!(
        r#"node: {{id: baseline, cluster: only1mcp}}
admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}}}
static_resources:
  listeners:
    - name: mcp_listener
      address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: mcp
                route_config:
                  virtual_hosts:
                    - name: mcp
                      domains: ["*"]
                      routes:
                        - match: {{path_separated_prefix: /mcp/alpha}}
                          route: {{cluster: mcp_alpha, prefix_rewrite: /mcp, timeout: 0s}}
                http_filters:
                  - name: envoy.filters.http.router
                    typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
  clusters:
    - name: mcp_alpha
      type: STATIC
      connect_timeout: 1s
      outlier_detection: {{}}
      load_assignment:
        cluster_name: mcp_alpha
        endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: {}, port_value: {}}}}}}}}}]}}]
"#,
        backend.mcp.ip(),
        backend.mcp.port()
    )
}

struct Detection {
    first_fast_fail: Option<Duration>,
    last_backend_request: Option<Duration>,
}

/// Drives load at `url`, breaks the backend with `fault`, and watches for
/// local replies (a 503 that Envoy or the filter made) and the backend's
/// request count.
/// `is_local(status, has_retry_after, body)`: was this reply made without a backend?
fn detect(url: &str, backend: &TestBackend, fault: &str, is_local: fn(u16, bool, &str) -> bool, limit: Duration) -> Detection {
    let stop = Arc::new(AtomicBool::new(false));
    let first_local_ns = Arc::new(AtomicU64::new(u64::MAX));
    let t0 = Arc::new(std::sync::Mutex::new(None::<Instant>));
    // Four clients keep the backend busy; a fifth asks every 10 ms with a
    // short timeout, so a hung request does not hide the first fast-fail.
    let workers: Vec<_> = (0..5)
        .map(|i| {
            let (url, stop, first, t0) = (url.to_string(), stop.clone(), first_local_ns.clone(), t0.clone());
            std::thread::spawn(move || {
                let prober = i == 4;
                let timeout = if prober { Duration::from_millis(100) } else { Duration::from_secs(2) };
                let client = reqwest::blocking::Client::builder().timeout(timeout).build().expect("client");
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(r) = client.post(&url).header("content-type", "application/json").header("mcp-protocol-version", "2026-07-28").body(BODY).send() {
                        let status = r.status().as_u16();
                        let retry_after = r.headers().contains_key("retry-after");
                        let body = r.text().unwrap_or_default();
                        if prober && is_local(status, retry_after, &body) {
                            if let Some(start) = *t0.lock().unwrap_or_else(|e| e.into_inner()) {
                                first.fetch_min(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
                            }
                        }
                    }
                    if prober {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2)); // steady state
    let start = Instant::now();
    backend.set_fault(fault);
    *t0.lock().unwrap_or_else(|e| e.into_inner()) = Some(start);
    let mut last_count = backend.requests();
    let mut last_change = None;
    while start.elapsed() < limit {
        let c = backend.requests();
        if c != last_count {
            last_count = c;
            last_change = Some(start.elapsed());
        }
        if first_local_ns.load(Ordering::Relaxed) != u64::MAX && last_change.is_some_and(|t| start.elapsed() - t > Duration::from_secs(2)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    backend.set_fault(r#"{"mode":"ok"}"#);
    let f = first_local_ns.load(Ordering::Relaxed);
    Detection { first_fast_fail: (f != u64::MAX).then(|| Duration::from_nanos(f)), last_backend_request: last_change }
}

fn ms(d: Option<Duration>, limit: Duration) -> String {
    d.map(|d| format!("{:.0} ms", d.as_secs_f64() * 1e3)).unwrap_or_else(|| format!("none in {} s", limit.as_secs()))
}

fn detection(wd: &Workdir) {
    let limit = Duration::from_secs(20);
    println!("\n### Detection: backend starts failing under load (4 connections, plus a prober every 10 ms), single backend\n");
    println!("| failure | filter: first fast-fail | filter: last request to backend | Envoy outlier detection (defaults): first local 503 | last request to backend |");
    println!("|---|---|---|---|---|");
    let modes = [("HTTP 503", r#"{"mode":"http_status","status":503}"#), ("connection refused", r#"{"mode":"refuse"}"#), ("hung", r#"{"mode":"hang"}"#)];
    for (i, (name, fault)) in modes.iter().enumerate() {
        let sub = wd.path().join(format!("d{i}"));
        std::fs::create_dir_all(&sub).expect("dir");
        let b = TestBackend::start(&sub, &format!("detect-{i}"), &["--fault", r#"{"mode":"ok","latency":{"kind":"fixed","ms":2}}"#]);
        let ours = {
            let cp = ControlPlane::start(&sub, &config(&b, Some(&filter_wasm())));
            let envoy = Envoy::start(&sub, &format!("ours-{i}"), cp.xds.port(), XdsMode::Sotw);
            envoy.wait_endpoints("mcp_alpha", &[b.mcp.to_string()]);
            detect(&envoy.url("alpha"), &b, fault, |_, retry_after, _| retry_after, limit)
        };
        b.set_fault(r#"{"mode":"ok","latency":{"kind":"fixed","ms":2}}"#);
        let base = {
            let envoy = Envoy::start_with_bootstrap(&sub, &format!("baseline-{i}"), &baseline_bootstrap(&b));
            // An ejected host: Envoy answers "no healthy upstream" itself.
            detect(&envoy.url("alpha"), &b, fault, |status, _, body| status == 503 && body.contains("no healthy upstream"), limit)
        };
        println!(
            "| {name} | {} | {} | {} | {} |",
            ms(ours.first_fast_fail, limit),
            ms(ours.last_backend_request, limit),
            ms(base.first_fast_fail, limit),
            ms(base.last_backend_request, limit)
        );
    }
}

/// The ECDS (or EDS) version Envoy `node` last ACKed, per the control plane.
fn acked(cp: &ControlPlane, node: &str, t: &str) -> Option<String> {
    let st = cp.status();
    st["streams"].as_array()?.iter().find(|s| s["node_id"] == node)?["types"][t]["acked_version"].as_str().map(String::from)
}

/// Saving the policy file until Envoy ACKs the new filter config (ECDS),
/// against saving the config file with a new endpoint weight until Envoy
/// ACKs the new endpoints (EDS), in the same run.
fn policy_propagation(wd: &Workdir, rounds: usize) {
    let sub = wd.path().join("policy");
    std::fs::create_dir_all(&sub).expect("dir");
    let b = TestBackend::start(&sub, "policy-backend", &[]);
    let cfg = |weight: u32| {
        format!(
            "xds: {{port: 0}}\nadmin: {{port: 0}}\nenvoy:\n  listener: {{port: 0}}\nhealth: {{enabled: false}}\nfilter:\n  wasm: {}\npolicy: policy.yaml\nbackends:\n  - {{service: alpha, address: {}, port: {}, weight: {weight}}}\n",
            filter_wasm().display(),
            b.mcp.ip(),
            b.mcp.port()
        )
    };
    let policy_path = sub.join("policy.yaml");
    let write = |path: &std::path::Path, text: String| {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, path).expect("rename");
    };
    write(&policy_path, "defaults: {breaker: {consecutive_failures: 5}}\n".into());
    let cp = ControlPlane::start(&sub, &cfg(1));
    let envoy = Envoy::start(&sub, "policy-envoy", cp.xds.port(), XdsMode::Sotw);
    envoy.wait_endpoints("mcp_alpha", &[b.mcp.to_string()]);
    let measure = |what: &str, t: &str, change: &dyn Fn(usize)| -> Vec<Duration> {
        let mut times = Vec::new();
        for round in 0..rounds {
            let before = loop {
                if let Some(v) = acked(&cp, "policy-envoy", t) {
                    break v;
                }
            };
            let start = Instant::now();
            change(round);
            loop {
                if acked(&cp, "policy-envoy", t).is_some_and(|v| v != before) {
                    break;
                }
                assert!(start.elapsed() < Duration::from_secs(20), "{what}: no ACK");
                std::thread::sleep(Duration::from_millis(1));
            }
            times.push(start.elapsed());
        }
        times.sort();
        times
    };
    let policy_times = measure("policy", "ECDS", &|r| write(&policy_path, format!("defaults: {{breaker: {{consecutive_failures: {}}}}}\n", 6 + r)));
    let config_times = measure("config", "EDS", &|r| cp.write_config(&cfg(2 + r as u32)));
    let med = |v: &[Duration]| v[v.len() / 2].as_secs_f64() * 1e3;
    let p99 = |v: &[Duration]| v[((v.len() - 1) as f64 * 0.99).round() as usize].as_secs_f64() * 1e3;
    println!("\n### Policy edit to Envoy ({rounds} rounds each, file saved by rename, until Envoy's ACK)\n");
    println!("| change | median | p99 | vs endpoint change |");
    println!("|---|---|---|---|");
    println!("| endpoint weight in the config file (EDS) | {:.1} ms | {:.1} ms | 1.00x |", med(&config_times), p99(&config_times));
    println!("| breaker threshold in the policy file (ECDS) | {:.1} ms | {:.1} ms | {:.2}x |", med(&policy_times), p99(&policy_times), med(&policy_times) / med(&config_times));
}

/// `bench-filter [overhead|detection|policy|all] [ROUNDS]`
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map(String::as_str).unwrap_or("all");
    let rounds = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3);
    let wd = Workdir::new("bench-filter");
    if matches!(what, "overhead" | "all") {
        overhead(&wd, rounds, 8, 5);
    }
    if matches!(what, "detection" | "all") {
        detection(&wd);
    }
    if matches!(what, "policy" | "all") {
        policy_propagation(&wd, 20);
    }
}
