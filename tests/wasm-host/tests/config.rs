//! The filter's configuration through `proxy_on_configure`: defaults are
//! accepted, anything wrong is refused with an error that names the field.

use only1mcp_wasm_host::{artifact, Host};

fn vm() -> Host {
    Host::new(artifact::module()).expect("VM starts")
}

#[test]
fn empty_and_default_configs_are_accepted_and_start_the_tick() {
    for cfg in ["", "  ", "{}"] {
        let mut vm = vm();
        assert!(vm.configure(cfg).unwrap(), "config {cfg:?} refused; logs: {:?}", vm.logs());
        assert!(vm.errors().is_empty(), "{:?}", vm.errors());
        assert!(vm.tick_period_ms() > 0, "the filter asks for ticks once configured");
        vm.tick().unwrap();
    }
}

#[test]
fn bad_configs_are_refused_naming_the_field() {
    let cases = [
        (r#"{"breaker":{"failure_rate":2}}"#, "breaker.failure_rate"),
        (r#"{"breaker":{"colour":1}}"#, "colour"),
        (r#"{"brekaer":{}}"#, "brekaer"),
        (r#"{"window":0}"#, "window"),
        ("{not json", "filter configuration"),
        ("[1,2]", "filter configuration"),
    ];
    for (cfg, field) in cases {
        let mut vm = vm();
        assert!(!vm.configure(cfg).unwrap(), "config {cfg} accepted");
        let errors = vm.errors();
        assert!(errors.iter().any(|e| e.contains(field)), "config {cfg}: no error naming {field}: {errors:?}");
    }
}

#[test]
fn a_refused_config_keeps_the_previous_one() {
    let mut vm = vm();
    assert!(vm.configure(r#"{"breaker":{"consecutive_failures":2}}"#).unwrap());
    assert!(!vm.configure(r#"{"breaker":{"failure_rate":2}}"#).unwrap());
    // Two failures still trip: the good config stayed in force.
    use only1mcp_wasm_host::{Request, Response};
    for _ in 0..2 {
        vm.exchange(Request::to("c").upstream("10.0.0.1:80").jsonrpc("1", "ping"), Response::status(503)).unwrap();
    }
    let x = vm.exchange(Request::to("c").jsonrpc("2", "ping"), Response::status(200)).unwrap();
    assert_eq!(x.local_response.map(|r| r.status), Some(503));
}
