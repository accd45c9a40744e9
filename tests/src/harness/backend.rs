//! The test MCP backend (`mcp-test-backend`) as a child process.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::process::{http_get, http_put, read_ready, Child};
use super::workspace_bin;
use crate::backend::server::Ready;

pub struct TestBackend {
    pub child: Child,
    pub name: String,
    pub mcp: SocketAddr,
    pub control: SocketAddr,
    /// More MCP ports of the same process (`--extra-listeners N`).
    pub extra: Vec<SocketAddr>,
}

impl TestBackend {
    /// Starts a backend named `name` on any free port; `extra` are more
    /// command-line arguments (`--era legacy`, `--sse`, `--fault ...`).
    pub fn start(dir: &Path, name: &str, extra: &[&str]) -> TestBackend {
        Self::start_on(dir, name, "127.0.0.1:0", extra)
    }

    pub fn start_on(dir: &Path, name: &str, listen: &str, extra: &[&str]) -> TestBackend {
        let ready = dir.join(format!("{name}-ready.json"));
        let _ = std::fs::remove_file(&ready);
        let mut cmd = Command::new(workspace_bin("mcp-test-backend"));
        cmd.args(["--name", name, "--listen", listen, "--ready-file"]).arg(&ready).args(extra);
        let mut child = Child::spawn(name, &mut cmd, dir);
        let r: Ready = read_ready(&ready, &mut child);
        TestBackend { child, name: name.to_string(), mcp: r.mcp, control: r.control, extra: r.extra }
    }

    /// The YAML list item for this backend in a control plane config.
    pub fn yaml(&self, service: &str) -> String {
        format!("  - {{service: {service}, address: {}, port: {}}}\n", self.mcp.ip(), self.mcp.port())
    }

    pub fn set_fault(&self, fault: &str) {
        let (code, body) = http_put(&format!("http://{}/fault", self.control), fault).expect("set fault");
        assert_eq!(code, 200, "set fault {fault}: {body}");
    }

    pub fn stats(&self) -> Value {
        let (_, body) = http_get(&format!("http://{}/stats", self.control)).expect("backend stats");
        serde_json::from_str(&body).expect("stats json")
    }

    pub fn requests(&self) -> u64 {
        self.stats()["requests"].as_u64().unwrap_or(0)
    }
}
