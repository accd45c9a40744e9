//! Only1MCP's proxy-wasm HTTP filter. The algorithms are plain Rust that
//! builds and is tested natively; the proxy-wasm glue is compiled only for
//! `wasm32` and stays thin.

pub mod breaker;
pub mod classify;
pub mod config;
pub mod encoding;
pub mod jsonrpc;
pub mod latency;
pub mod phi;
pub mod report;
pub mod window;

#[cfg(target_arch = "wasm32")]
mod glue;
