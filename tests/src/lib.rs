//! Test support for Only1MCP: the fault-injecting MCP test backend and the
//! harness that runs real processes (control plane, Envoy, backends,
//! Python MCP clients) for the end-to-end tests in `tests/`.

pub mod backend;
pub mod harness;
