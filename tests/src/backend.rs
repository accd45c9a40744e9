//! A test MCP backend with fault injection: the MCP protocol (`mcp`), the
//! fault switches (`fault`) and the HTTP servers around them (`server`).
//! Built as the `mcp-test-backend` binary; the end-to-end tests and the demo
//! run it as a real process.

pub mod fault;
pub mod mcp;
pub mod server;
