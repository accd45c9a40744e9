//! The filter artifact under test: found in the workspace target directory
//! (or `ONLY1MCP_FILTER_WASM`), refused if older than the filter's sources,
//! compiled once per test binary.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::SystemTime;

use wasmtime::{Config, Engine, Module, OptLevel};

const BUILD: &str = "cargo build -p only1mcp-filter --target wasm32-wasip1 --profile wasm";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where the built filter is.
pub fn path() -> PathBuf {
    if let Some(p) = std::env::var_os("ONLY1MCP_FILTER_WASM") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace().join("target"));
    target.join("wasm32-wasip1/wasm/only1mcp_filter.wasm")
}

fn newest_source(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let p = entry.path();
        let t = if p.is_dir() { newest_source(&p) } else { entry.metadata().ok()?.modified().ok() };
        newest = newest.max(t);
    }
    newest
}

/// The artifact's bytes; panics (failing the test) when it is missing or
/// older than `filter/src` or `filter/Cargo.toml`, saying how to build it.
pub fn bytes() -> Vec<u8> {
    let p = path();
    let built = std::fs::metadata(&p).and_then(|m| m.modified()).unwrap_or_else(|e| panic!("{}: {e}; build it with `{BUILD}`", p.display()));
    if std::env::var_os("ONLY1MCP_FILTER_WASM").is_none() {
        let filter = workspace().join("filter");
        let src = newest_source(&filter.join("src")).max(std::fs::metadata(filter.join("Cargo.toml")).and_then(|m| m.modified()).ok());
        if let Some(src) = src {
            assert!(built >= src, "{} is older than the filter's sources: rebuild it with `{BUILD}`", p.display());
        }
    }
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The filter module, compiled on first use.
pub fn module() -> &'static Module {
    static MODULE: OnceLock<Module> = OnceLock::new();
    MODULE.get_or_init(|| {
        // The tests run little code and compile a 300 KB module per binary:
        // an unoptimised compile is the faster trade.
        let mut config = Config::new();
        config.cranelift_opt_level(OptLevel::None);
        let engine = Engine::new(&config).unwrap_or_else(|e| panic!("wasmtime engine: {e:?}"));
        Module::new(&engine, bytes()).unwrap_or_else(|e| panic!("compiling {}: {e:?}", path().display()))
    })
}
