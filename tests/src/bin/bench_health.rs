//! Benchmark: active health checks.
//!
//! 1. Detection and recovery, with no client traffic: one test backend is
//!    watched at once by our control plane (its verdict read from Envoy's
//!    EDS view, so the xDS push is included) and by Envoy's own active
//!    health checking on a static cluster in a second Envoy, with the same
//!    interval, timeout and thresholds and no jitter on either side. The
//!    Envoy check sends the same `server/discover` POST as raw bytes over
//!    its TCP checker and expects `HTTP/1.1 200`, so both see a hung
//!    backend the same way. Each round kills the backend (`refuse`), then
//!    restores it, then hangs it, then restores it; times run from the
//!    fault switch to each side's verdict.
//! 2. Cost: the control plane's CPU and memory while probing 1,000 real
//!    MCP endpoints (4 test backends x 250 ports), against the same fleet
//!    with probes off.
//!
//! cargo build --release --workspace --bins && target/release/bench-health [ROUNDS] [INTERVAL_MS]

use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use only1mcp_tests::harness::envoy::envoy_binary;
use only1mcp_tests::harness::process::http_get;
use only1mcp_tests::harness::{wait_until, Child, ControlPlane, Envoy, TestBackend, Workdir, XdsMode};
use serde_json::Value;

const DISCOVER: &str = r#"{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"envoy-hc","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}}}"#;

fn hex(s: &str) -> String {
    s.bytes().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// A second Envoy with a static cluster on the backend and Envoy's own
/// active health check, same timings as ours.
fn envoy_with_own_checks(dir: &std::path::Path, backend: &TestBackend, interval: Duration) -> (Child, String) {
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMcp-Protocol-Version: 2026-07-28\r\nMcp-Method: server/discover\r\nContent-Length: {}\r\n\r\n{DISCOVER}",
        DISCOVER.len()
    );
    let secs = |d: Duration| format!("{}s", d.as_secs_f64());
    let bootstrap = format!(
        r#"node: {{id: envoy-own-hc, cluster: bench}}
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
static_resources:
  clusters:
  - name: hc
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: hc
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}
    health_checks:
    - timeout: {timeout}
      interval: {interval}
      no_traffic_interval: {interval}
      unhealthy_threshold: 3
      healthy_threshold: 2
      tcp_health_check:
        send: {{text: "{send}"}}
        receive: [{{text: "{receive}"}}]
"#,
        port = backend.mcp.port(),
        timeout = secs(interval / 2),
        interval = secs(interval),
        send = hex(&request),
        receive = hex("HTTP/1.1 200"),
    );
    let bs = dir.join("envoy-own-hc.yaml");
    std::fs::write(&bs, bootstrap).expect("write bootstrap");
    let admin_file = dir.join("envoy-own-hc-admin.txt");
    let mut cmd = Command::new(envoy_binary());
    cmd.arg("-c").arg(&bs).arg("--disable-hot-restart").arg("--admin-address-path").arg(&admin_file).args(["-l", "warning", "--concurrency", "1"]);
    let mut child = Child::spawn("envoy-own-hc", &mut cmd, dir);
    let admin = wait_until("own-check Envoy admin", Duration::from_secs(30), || {
        child.assert_running();
        let a = std::fs::read_to_string(&admin_file).ok()?;
        (!a.trim().is_empty()).then(|| a.trim().to_string())
    });
    (child, admin)
}

/// Envoy's own verdict: whether the host fails its active health check.
fn own_check_failing(admin: &str) -> Option<bool> {
    let (_, body) = http_get(&format!("http://{admin}/clusters?format=json"))?;
    let v: Value = serde_json::from_str(&body).ok()?;
    let hosts = v["cluster_statuses"].as_array()?.iter().find(|c| c["name"] == "hc")?["host_statuses"].as_array()?.clone();
    Some(hosts.first()?["health_status"]["failed_active_health_check"].as_bool().unwrap_or(false))
}

/// Our verdict as Envoy sees it over EDS.
fn ours_unhealthy(envoy: &Envoy, addr: &str) -> Option<bool> {
    envoy.endpoints("mcp_bench").into_iter().find(|(a, _)| a == addr).map(|(_, h)| h == "UNHEALTHY")
}

/// From now, polls both sides until each reports `want_failing`; returns
/// (ours, Envoy's own).
fn race(envoy: &Envoy, own_admin: &str, addr: &str, want_failing: bool) -> (Duration, Duration) {
    let start = Instant::now();
    let (mut ours, mut own) = (None, None);
    while ours.is_none() || own.is_none() {
        assert!(start.elapsed() < Duration::from_secs(120), "no verdict within 120 s (ours {ours:?}, Envoy's {own:?})");
        if ours.is_none() && ours_unhealthy(envoy, addr) == Some(want_failing) {
            ours = Some(start.elapsed());
        }
        if own.is_none() && own_check_failing(own_admin) == Some(want_failing) {
            own = Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    (ours.unwrap_or_default(), own.unwrap_or_default())
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

fn detection(rounds: usize, interval: Duration) {
    let wd = Workdir::new("bench-health");
    let backend = TestBackend::start(wd.path(), "target", &[]);
    // No jitter, no backoff (Envoy's unhealthy_interval = interval) and no
    // flap damping: Envoy has none, and the rounds flap on purpose.
    let cfg = format!(
        "xds: {{port: 0}}\nadmin: {{port: 0}}\nenvoy:\n  listener: {{port: 0}}\nhealth:\n  interval: {i}ms\n  timeout: {t}ms\n  rise: 2\n  fall: 3\n  jitter: 0\n  backoff_max: {i}ms\n  flap_window: 0s\nbackends:\n{b}",
        i = interval.as_millis(),
        t = (interval / 2).as_millis(),
        b = backend.yaml("bench")
    );
    let cp = ControlPlane::start(wd.path(), &cfg);
    let envoy = Envoy::start(wd.path(), "bench-ours", cp.xds.port(), XdsMode::Sotw);
    let (_own, own_admin) = envoy_with_own_checks(wd.path(), &backend, interval);
    let addr = backend.mcp.to_string();
    race(&envoy, &own_admin, &addr, false);

    let mut rows: Vec<(&str, Vec<Duration>, Vec<Duration>)> =
        vec![("dead (connection refused)", vec![], vec![]), ("recovery after dead", vec![], vec![]), ("hung (no answer)", vec![], vec![]), ("recovery after hung", vec![], vec![])];
    // Each verdict lands right after a probe; switching the fault at once
    // would always hit the same phase of both probe schedules. A random
    // wait of up to one interval spreads it (this is not a readiness wait).
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..rounds {
        for (i, fault) in [r#"{"mode":"refuse"}"#, r#"{"mode":"ok"}"#, r#"{"mode":"hang"}"#, r#"{"mode":"ok"}"#].iter().enumerate() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            std::thread::sleep(interval.mul_f64((seed >> 11) as f64 / (1u64 << 53) as f64));
            backend.set_fault(fault);
            let (ours, own) = race(&envoy, &own_admin, &addr, i % 2 == 0);
            rows[i].1.push(ours);
            rows[i].2.push(own);
        }
    }
    println!("\nDetection and recovery, no traffic: interval {}, timeout {}, fall 3, rise 2, no jitter, {rounds} rounds\n", ms(interval), ms(interval / 2));
    println!("| event | ours, median | ours, max | Envoy's own check, median | Envoy's, max | median ours / Envoy's |");
    println!("|---|---|---|---|---|---|");
    for (name, ours, own) in rows.iter_mut() {
        let (o, e) = (median(ours), median(own));
        let (omax, emax) = (ours.last().copied().unwrap_or_default(), own.last().copied().unwrap_or_default());
        println!("| {name} | {} | {} | {} | {} | {:.2}x |", ms(o), ms(omax), ms(e), ms(emax), o.as_secs_f64() / e.as_secs_f64());
    }
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here.
    f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn metric(cp: &ControlPlane, line_prefix: &str) -> u64 {
    cp.metrics().lines().find(|l| l.starts_with(line_prefix)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn cost(window: Duration) {
    let wd = Workdir::new("bench-health-cost");
    let backends: Vec<TestBackend> = (0..4).map(|i| TestBackend::start(wd.path(), &format!("fleet-{i}"), &["--extra-listeners", "249"])).collect();
    let addrs: Vec<std::net::SocketAddr> = backends.iter().flat_map(|b| std::iter::once(b.mcp).chain(b.extra.iter().copied())).collect();
    assert_eq!(addrs.len(), 1000);
    let mut fleet = String::new();
    for (i, a) in addrs.iter().enumerate() {
        let _ = writeln!(fleet, "  - {{service: svc{}, address: {}, port: {}}}", i / 10, a.ip(), a.port());
    }
    let tck: f64 = Command::new("getconf").arg("CLK_TCK").output().ok().and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok()).unwrap_or(100.0);
    println!("\nControl-plane cost, 1,000 endpoints (100 services x 10), {}s window\n", window.as_secs());
    println!("| probes | probes/s | CPU (of one core) | RSS |");
    println!("|---|---|---|---|");
    for (label, health) in [
        ("off (idle baseline)", "health: {enabled: false}\n"),
        ("every 5 s (default)", "health: {interval: 5s}\n"),
        ("every 1 s", "health: {interval: 1s, timeout: 500ms}\n"),
    ] {
        let cfg = format!("xds: {{port: 0}}\nadmin: {{port: 0}}\nenvoy:\n  listener: {{port: 0}}\n{health}backends:\n{fleet}");
        let cp = ControlPlane::start(wd.path(), &cfg);
        if !health.contains("false") {
            wait_until("1,000 healthy endpoints", Duration::from_secs(60), || {
                (metric(&cp, "only1mcp_health_endpoints{health=\"healthy\"}") == 1000).then_some(())
            });
        } else {
            std::thread::sleep(Duration::from_secs(2));
        }
        let pid = cp.child.pid();
        let (t0, p0, start) = (cpu_ticks(pid), metric(&cp, "only1mcp_health_probes_total{result=\"ok\"}"), Instant::now());
        std::thread::sleep(window);
        let (t1, p1, el) = (cpu_ticks(pid), metric(&cp, "only1mcp_health_probes_total{result=\"ok\"}"), start.elapsed().as_secs_f64());
        let failed: u64 = ["timeout", "connect", "http_status", "jsonrpc_error", "malformed", "transport"]
            .iter()
            .map(|l| metric(&cp, &format!("only1mcp_health_probes_total{{result=\"{l}\"}}")))
            .sum();
        println!(
            "| {label} | {:.0} | {:.1}% | {} KiB |",
            (p1 - p0) as f64 / el,
            (t1 - t0) as f64 / tck / el * 100.0,
            rss_kib(pid)
        );
        assert_eq!(failed, 0, "{label}: probes failed on a healthy fleet");
    }
}

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let interval = Duration::from_millis(std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(1000));
    detection(rounds, interval);
    cost(Duration::from_secs(20));
}
