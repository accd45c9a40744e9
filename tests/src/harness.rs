//! Runs the real pieces as child processes for end-to-end tests: the
//! control plane, Envoy, test backends and the Python MCP SDK clients.
//!
//! Every child is killed when its guard drops, so a failing test leaves
//! nothing behind. Ports come from the OS (port 0) and are read back from
//! ready files or Envoy's admin API. Anything missing (Envoy, the venvs, a
//! built binary) is a loud failure that says how to fix it, never a skip.

pub mod backend;
pub mod control_plane;
pub mod envoy;
pub mod process;
pub mod python;
pub mod sdk_server;

use std::path::PathBuf;

pub use backend::TestBackend;
pub use control_plane::ControlPlane;
pub use envoy::{Envoy, XdsMode};
pub use process::{wait_until, Child, Workdir};
pub use python::{run_client, ClientKind};
pub use sdk_server::SdkServer;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The filter's `.wasm`, built by `scripts/setup.sh`
/// (`cargo build -p only1mcp-filter --target wasm32-wasip1 --profile wasm`).
pub fn filter_wasm() -> PathBuf {
    wasm_artifact("only1mcp_filter.wasm")
}

/// A `.wasm` built by `scripts/setup.sh` (the filter, or the bare baseline).
pub fn wasm_artifact(name: &str) -> PathBuf {
    let p = repo_root().join("target/wasm32-wasip1/wasm").join(name);
    assert!(p.exists(), "{} is not built: run scripts/setup.sh", p.display());
    std::fs::canonicalize(&p).unwrap_or(p)
}

/// A binary of this workspace, built by `cargo build --workspace --bins`
/// (which `scripts/test.sh` runs before the tests).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // A test binary sits in target/<profile>/deps, a bench binary in
    // target/<profile>; the workspace binaries are in target/<profile>.
    let exe_dir = exe.parent().expect("exe dir");
    let candidates = [exe_dir.join(name), exe_dir.parent().map(|d| d.join(name)).unwrap_or_default()];
    let found = candidates.iter().find(|p| p.is_file()).cloned();
    found.unwrap_or_else(|| panic!("{name} is not built next to {}: run `cargo build --workspace --bins` (scripts/test.sh does)", exe.display()))
}
