//! Benchmark: time from a config file change to Envoy routing a request to
//! the new endpoint, at several fleet sizes, and the control plane's memory.
//!
//! Each round adds a new service whose one instance is a real test backend
//! (the rest of the fleet are placeholder endpoints), then sends requests
//! through Envoy in a tight loop until one reaches the new backend. The
//! smallest fleet is the baseline the others are compared to.
//!
//! cargo build --release --workspace --bins && target/release/bench-propagation [ROUNDS]

use std::time::{Duration, Instant};

use only1mcp_tests::harness::{ControlPlane, Envoy, TestBackend, Workdir, XdsMode};

const SIZES: [usize; 3] = [1, 100, 1000];

fn config(fleet: usize, extra: Option<(&str, &TestBackend)>) -> String {
    // Health checks off: the placeholders would be probed, found dead and
    // pushed as EDS updates, which is not what this benchmark measures.
    let mut s = String::from("xds: {port: 0}\nadmin: {port: 0}\nenvoy:\n  listener: {port: 0}\nhealth: {enabled: false}\nbackends:\n");
    // Placeholder endpoints, ten per service, on addresses nobody listens on.
    for i in 0..fleet {
        s.push_str(&format!("  - {{service: svc{}, address: 127.0.1.{}, port: {}}}\n", i / 10, 1 + i % 250, 20000 + i));
    }
    if let Some((name, b)) = extra {
        s.push_str(&b.yaml(name));
    }
    s
}

fn routed(client: &reqwest::blocking::Client, url: &str) -> bool {
    client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"server/discover"}"#)
        .send()
        .map(|r| r.status().is_success())
        .unwrap_or(false)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(50);
    let wd = Workdir::new("bench-propagation");
    let backend = TestBackend::start(wd.path(), "target", &[]);
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(2)).pool_max_idle_per_host(4).build().expect("client");
    let mut medians = Vec::new();
    println!("| backends in fleet | rounds | median | p99 | median vs 1-backend fleet | control-plane RSS |");
    println!("|---|---|---|---|---|---|");
    for fleet in SIZES {
        let cp = ControlPlane::start(wd.path(), &config(fleet, None));
        let envoy = Envoy::start(wd.path(), &format!("bench-{fleet}"), cp.xds.port(), XdsMode::Sotw);
        let mut times = Vec::with_capacity(rounds);
        for round in 0..rounds {
            let name = format!("new{round}");
            let url = envoy.url(&name);
            let start = Instant::now();
            cp.write_config(&config(fleet, Some((&name, &backend))));
            while !routed(&client, &url) {
                assert!(start.elapsed() < Duration::from_secs(30), "fleet {fleet}: {name} never became routable");
            }
            times.push(start.elapsed());
        }
        times.sort();
        let median = percentile(&times, 0.5);
        medians.push(median);
        let ratio = median.as_secs_f64() / medians[0].as_secs_f64();
        println!(
            "| {fleet} | {rounds} | {:.1} ms | {:.1} ms | {ratio:.2}x | {} KiB |",
            median.as_secs_f64() * 1e3,
            percentile(&times, 0.99).as_secs_f64() * 1e3,
            rss_kib(cp.child.pid())
        );
        drop(envoy);
        drop(cp);
    }
}
