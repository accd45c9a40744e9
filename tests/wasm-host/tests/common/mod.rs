//! Helpers shared by the scenario tests.
#![allow(dead_code)]

use only1mcp_wasm_host::{artifact, Exchange, Host, Request, Response};

/// A plausible wall clock to start from (ms since the epoch).
pub const T0: u64 = 1_765_000_000_000;
pub const HOST_A: &str = "10.0.0.1:8080";
pub const HOST_B: &str = "10.0.0.2:8080";
pub const CLUSTER: &str = "mcp_a";
/// A worker trusts its copy of a shared breaker this long (`CACHE_MS` in
/// glue.rs): another worker's change is seen after it.
pub const SHARE_WITHIN_MS: u64 = 100;

/// A started, configured VM at `T0`.
pub fn vm(config: &str) -> Host {
    let mut vm = Host::new(artifact::module()).expect("VM starts");
    vm.set_time_ms(T0);
    assert!(vm.configure(config).expect("on_configure"), "config refused: {:?}", vm.errors());
    vm
}

/// A request to `CLUSTER` that Envoy sends to `host`.
pub fn call(host: &str, id: &str) -> Request {
    Request::to(CLUSTER).upstream(host).jsonrpc(id, "tools/call")
}

pub fn run(vm: &mut Host, req: Request, resp: Response) -> Exchange {
    vm.exchange(req, resp).expect("no trap")
}

/// `n` backend failures (503 from `host`).
pub fn fail(vm: &mut Host, host: &str, n: usize) {
    for i in 0..n {
        let x = run(vm, call(host, &i.to_string()), Response::status(503));
        assert!(x.continued, "failure {i} was not sent upstream: {x:?}");
    }
}

pub fn succeed(vm: &mut Host, host: &str, n: usize) {
    for i in 0..n {
        let x = run(vm, call(host, &i.to_string()), Response::json(200, r#"{"jsonrpc":"2.0","id":1,"result":{}}"#));
        assert!(x.continued, "success {i} was not sent upstream: {x:?}");
    }
}

/// Whether the next request to `CLUSTER` is answered locally with 503.
pub fn fast_fails(vm: &mut Host) -> bool {
    let x = run(vm, Request::to(CLUSTER).upstream(HOST_A).jsonrpc("99", "ping"), Response::json(200, "{}"));
    match &x.local_response {
        Some(r) => {
            assert_eq!(r.status, 503, "{x:?}");
            assert!(!x.continued);
            true
        }
        None => false,
    }
}

pub fn metric(vm: &Host, name: &str) -> u64 {
    vm.metric(name).unwrap_or_else(|| panic!("metric {name} not defined"))
}

pub fn b64(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Envoy's stateful-session envelope: `base64(host);UV:base64(id)`.
pub fn session(host: &str, sid: &str) -> String {
    format!("{};UV:{}", b64(host.as_bytes()), b64(sid.as_bytes()))
}
