//! Whatever Envoy hands the filter, it must not trap: a trap (a panic in
//! the filter aborts the VM) fails these tests through `run`'s `expect`.

mod common;
use common::*;
use only1mcp_wasm_host::{Phase, Request, Response};

#[test]
fn missing_properties() {
    let mut vm = vm("{}");
    // No cluster, no upstream, no response code or flags.
    let none = Response::status(200).code_bytes(None).flags_bytes(None);
    run(&mut vm, Request::new().jsonrpc("1", "ping"), none.clone());
    run(&mut vm, Request::new(), Response::client_cancel().code_bytes(None).flags_bytes(None));
    // Upstream without a cluster, cluster without an upstream.
    for _ in 0..6 {
        run(&mut vm, Request::new().upstream(HOST_A).jsonrpc("1", "ping"), Response::status(503));
        run(&mut vm, Request::to(CLUSTER).jsonrpc("1", "ping"), Response::status(503));
    }
    run(&mut vm, Request::to(CLUSTER).upstream(HOST_A), none);
    vm.run_for(1_000).unwrap();
}

#[test]
fn absurd_property_encodings() {
    let mut vm = vm("{}");
    let codes: [Option<&[u8]>; 6] = [Some(b""), Some(b"\x01"), Some(b"503"), Some(&[0xff; 8]), Some(&[0x7f; 100]), None];
    for code in codes {
        for flags in codes {
            let resp = Response::json(200, "{}").code_bytes(code).flags_bytes(flags);
            run(&mut vm, call(HOST_A, "1"), resp);
        }
    }
    let weird_hosts: [&[u8]; 4] = [b"", &[0xff, 0xfe, 0xfd], b"\0\0\0", &[b'h'; 100_000]];
    for host in weird_hosts {
        let req = Request::to(CLUSTER).upstream_at(host, Phase::RequestBody).jsonrpc("1", "ping");
        run(&mut vm, req, Response::status(503));
        let req = Request::new().property(&["xds", "cluster_name"], host, Phase::RequestHeaders).upstream(HOST_B).jsonrpc("1", "ping");
        run(&mut vm, req, Response::status(503));
    }
    vm.run_for(1_000).unwrap();
}

#[test]
fn odd_node_ids_do_not_break_start_or_reports() {
    use only1mcp_wasm_host::{artifact, Host, Options, Shared};
    for node in [None, Some(String::from_utf8_lossy(&[0xff, 0xfe]).into_owned()), Some("\"quoted\\node\"\n".to_string())] {
        let mut vm = Host::with(artifact::module(), &Shared::default(), Options { node_id: node, ..Options::default() }).unwrap();
        vm.set_time_ms(T0);
        assert!(vm.configure("{}").unwrap());
        fail(&mut vm, HOST_A, 5);
        vm.run_for(200).unwrap();
        let call = vm.http_calls().into_iter().next().expect("report");
        let _: serde_json::Value = serde_json::from_slice(&call.body).expect("report stays valid JSON");
    }
}

#[test]
fn huge_bodies() {
    let mut vm = vm("{}");
    let big = vec![b'x'; 8 << 20];
    let mut json = br#"{"jsonrpc":"2.0","id":1,"result":{"text":""#.to_vec();
    json.extend(std::iter::repeat_n(b'a', 4 << 20));
    json.extend(br#""}}"#);
    run(&mut vm, call(HOST_A, "1").body(&big), Response::json(200, &json));
    let chunks: Vec<Vec<u8>> = json.chunks(16 << 10).map(<[u8]>::to_vec).collect();
    run(&mut vm, call(HOST_A, "1").chunks(chunks.clone()), Response::json(200, "").chunks(chunks.clone()));
    // Fail fast while the breaker is open reads the (huge, chunked) request body.
    fail(&mut vm, HOST_A, 5);
    let mut req = br#"{"jsonrpc":"2.0","id":"big","method":"tools/call","params":{"x":""#.to_vec();
    req.extend(std::iter::repeat_n(b'b', 2 << 20));
    req.extend(br#""}}"#);
    let req_chunks: Vec<Vec<u8>> = req.chunks(64 << 10).map(<[u8]>::to_vec).collect();
    let x = run(&mut vm, Request::to(CLUSTER).chunks(req_chunks), Response::status(200));
    let body: serde_json::Value = serde_json::from_slice(&x.local_response.expect("fast fail").body).unwrap();
    assert_eq!(body["id"], "big");
}

#[test]
fn non_utf8_and_non_json_bodies() {
    let mut vm = vm("{}");
    let bodies: [&[u8]; 8] = [
        &[0xff, 0xfe, 0x00, 0x80],
        b"not json at all",
        b"{\"error\":{\"code\":-32603",
        b"{\"error\":{\"code\":-99999999999999999999999}}",
        b"data: {\"error\":{\"code\":\xff-32603}}\n\n",
        b"{\"id\":\"\xc3\"}",
        b"]]]]}}}}",
        b"",
    ];
    for b in bodies {
        run(&mut vm, call(HOST_A, "1").body(b), Response::json(200, b));
        run(&mut vm, call(HOST_A, "1").body(b), Response::sse(200, b));
    }
    fail(&mut vm, HOST_A, 5);
    for b in bodies {
        let x = run(&mut vm, Request::to(CLUSTER).body(b), Response::status(200));
        let r = x.local_response.expect("fast fail");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("fast-fail body for {b:?} is not JSON ({e}): {}", r.body_text()));
        assert_eq!(v["error"]["code"], -32000);
    }
}

#[test]
fn odd_json_rpc_ids_are_echoed_as_valid_json() {
    let mut vm = vm("{}");
    fail(&mut vm, HOST_A, 5);
    let ids = [r#""a\"b""#, "-3", "0", r#""""#, "18446744073709551616", r#""\u00e9""#, "null", "true", "[1]", "{}", "1.5", "1e3"];
    for id in ids {
        let x = run(&mut vm, Request::to(CLUSTER).jsonrpc(id, "ping"), Response::status(200));
        let r = x.local_response.expect("fast fail");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("id {id}: body not JSON ({e}): {}", r.body_text()));
        let sent: serde_json::Value = serde_json::from_str(id).unwrap();
        if sent.is_string() || sent.is_i64() || sent.is_u64() {
            assert_eq!(v["id"], sent, "id {id} echoed wrong");
        }
    }
}

#[test]
fn many_hosts_stay_bounded() {
    let mut vm = vm(r#"{"max_hosts":4}"#);
    for i in 0..50 {
        let host = format!("10.1.0.{i}:80");
        run(&mut vm, Request::to(CLUSTER).upstream(&host).jsonrpc("1", "ping"), Response::status(if i % 2 == 0 { 503 } else { 200 }));
    }
    vm.run_for(1_000).unwrap();
}

#[test]
fn stream_ends_in_odd_places() {
    let mut vm = vm("{}");
    // Request headers only, then the client is gone.
    let p = vm.begin(Request::to(CLUSTER).upstream(HOST_A)).unwrap();
    vm.finish(p, Response::client_cancel()).unwrap();
    // Response headers without body; body without content type.
    run(&mut vm, call(HOST_A, "1"), Response::status(200));
    run(&mut vm, call(HOST_A, "1"), Response::status(200).body(b"{\"error\":{\"code\":-32603}}"));
    // Ticks with requests outstanding on many hosts, then a config change.
    let pending: Vec<_> = (0..10).map(|i| vm.begin(Request::to(CLUSTER).upstream(&format!("10.2.0.{i}:80")).jsonrpc("1", "x")).unwrap()).collect();
    vm.run_for(3_000).unwrap();
    assert!(vm.configure(r#"{"window":5}"#).unwrap());
    for p in pending {
        vm.finish(p, Response::status(200)).unwrap();
    }
}

#[test]
fn non_utf8_session_header() {
    let mut vm = vm("{}");
    run(&mut vm, Request::to(CLUSTER).upstream(HOST_A).header("mcp-session-id", [0xff, 0xfe, b';']).jsonrpc("1", "ping"), Response::status(200));
}

#[test]
fn non_utf8_response_content_type() {
    let mut vm = vm("{}");
    run(&mut vm, call(HOST_A, "1"), Response::status(200).header("content-type", [b'a', 0xff]).body("{}"));
}
