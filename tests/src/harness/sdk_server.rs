//! Real MCP SDK servers (PyPI `mcp`) as child processes: `tests/py/
//! server_modern.py` on mcp 2.x (`MCPServer`, 2026-07-28) from `.venv`,
//! `tests/py/server_legacy.py` on mcp 1.x (`FastMCP`, sessions) from
//! `.venv-legacy`. Each serves `/mcp` on 127.0.0.1 with a `whoami` tool.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use serde::Deserialize;

use super::process::{read_ready, Child};
use super::python::ClientKind;
use super::repo_root;

#[derive(Deserialize)]
struct Ready {
    port: u16,
}

pub struct SdkServer {
    pub child: Child,
    pub name: String,
    pub addr: SocketAddr,
}

impl SdkServer {
    /// Starts a server of that SDK generation named `name` on any free port.
    pub fn start(dir: &Path, kind: ClientKind, name: &str) -> SdkServer {
        let (venv, script) = match kind {
            ClientKind::Modern => (".venv", "tests/py/server_modern.py"),
            ClientKind::Legacy => (".venv-legacy", "tests/py/server_legacy.py"),
        };
        let python = repo_root().join(venv).join("bin/python");
        assert!(python.exists(), "{} missing: run scripts/setup.sh", python.display());
        let ready = dir.join(format!("{name}-ready.json"));
        let _ = std::fs::remove_file(&ready);
        let mut cmd = Command::new(python);
        cmd.arg(repo_root().join(script)).arg("0").arg(name).arg(&ready);
        let mut child = Child::spawn(name, &mut cmd, dir);
        let r: Ready = read_ready(&ready, &mut child);
        SdkServer { child, name: name.to_string(), addr: SocketAddr::from(([127, 0, 0, 1], r.port)) }
    }

    /// The YAML list item for this server in a control plane config.
    pub fn yaml(&self, service: &str) -> String {
        format!("  - {{service: {service}, address: {}, port: {}}}\n", self.addr.ip(), self.addr.port())
    }
}
