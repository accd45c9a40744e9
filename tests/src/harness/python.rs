//! Real MCP SDK clients (PyPI `mcp`) run from the project venvs: `.venv`
//! has mcp 2.x (2026-07-28, stateless), `.venv-legacy` has mcp 1.x
//! (sessions). Each prints one JSON object per line.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::repo_root;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// mcp 2.x, which negotiates 2026-07-28 with servers that offer it.
    Modern,
    /// mcp 1.x: initialize, session id, legacy protocol.
    Legacy,
}

/// Runs the client against `url`, calling `whoami` `calls` times. Returns
/// its JSON lines; panics with its output if it fails or hangs.
pub fn run_client(kind: ClientKind, url: &str, calls: u32) -> Vec<Value> {
    let (venv, script) = match kind {
        ClientKind::Modern => (".venv", "tests/py/client_modern.py"),
        ClientKind::Legacy => (".venv-legacy", "tests/py/client_legacy.py"),
    };
    let python = repo_root().join(venv).join("bin/python");
    assert!(python.exists(), "{} missing: run scripts/setup.sh", python.display());
    let mut cmd = Command::new(python);
    cmd.arg(repo_root().join(script)).arg(url).arg(calls.to_string());
    let output = run_with_timeout(cmd, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{kind:?} client failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}", output.status);
    stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn run_with_timeout(mut cmd: Command, timeout: Duration) -> std::process::Output {
    use std::process::Stdio;
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn python client");
    let start = std::time::Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().expect("client output"),
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("client output");
                panic!("client timed out after {timeout:?}; stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// The `whoami` answers in a client's output, in order.
pub fn whoami_answers(lines: &[Value]) -> Vec<String> {
    lines.iter().filter(|l| l["event"] == "call").filter_map(|l| l["text"].as_str().map(String::from)).collect()
}
