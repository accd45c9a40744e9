//! The control plane as a child process, with its config file in the
//! test's work directory so tests can edit it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::process::{http_get, read_ready, wait_until, Child};
use super::workspace_bin;

#[derive(Debug, Deserialize)]
struct Ready {
    xds: SocketAddr,
    admin: SocketAddr,
}

pub struct ControlPlane {
    pub child: Child,
    pub xds: SocketAddr,
    pub admin: SocketAddr,
    pub config_path: PathBuf,
}

impl ControlPlane {
    /// Starts `only1mcp serve` on `config` (YAML). Use `port: 0` for the
    /// xds and admin addresses; the bound ones are read back.
    pub fn start(dir: &Path, config: &str) -> ControlPlane {
        let config_path = dir.join("only1mcp.yaml");
        std::fs::write(&config_path, config).expect("write config");
        let ready = dir.join("cp-ready.json");
        let _ = std::fs::remove_file(&ready);
        let mut cmd = Command::new(workspace_bin("only1mcp"));
        cmd.arg("serve").arg("--config").arg(&config_path).arg("--ready-file").arg(&ready);
        cmd.env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info,only1mcp_control_plane=debug".into()));
        let mut child = Child::spawn("control-plane", &mut cmd, dir);
        let r: Ready = read_ready(&ready, &mut child);
        ControlPlane { child, xds: r.xds, admin: r.admin, config_path }
    }

    /// Replaces the config file the way editors do (write a new file, rename over).
    pub fn write_config(&self, config: &str) {
        let tmp = self.config_path.with_extension("yaml.tmp");
        std::fs::write(&tmp, config).expect("write config");
        std::fs::rename(&tmp, &self.config_path).expect("rename config");
    }

    pub fn status(&self) -> Value {
        let (code, body) = http_get(&format!("http://{}/status", self.admin)).expect("control plane status");
        assert_eq!(code, 200);
        serde_json::from_str(&body).expect("status json")
    }

    pub fn metrics(&self) -> String {
        http_get(&format!("http://{}/metrics", self.admin)).expect("metrics").1
    }

    pub fn config_generation(&self) -> u64 {
        self.status()["config"]["generation"].as_u64().unwrap_or(0)
    }

    /// Waits until the control plane reports the config as rejected.
    pub fn wait_rejected(&self) -> Value {
        wait_until("config rejection", Duration::from_secs(10), || {
            let s = self.status();
            let r = s["config"]["rejected"].clone();
            (!r.is_null()).then_some(r)
        })
    }
}
