//! A minimal proxy-wasm host on wasmtime for testing the filter's built
//! `.wasm` through the ABI (0.2.1, as the Rust SDK 0.2.5 uses it), with a
//! clock the test moves. No Envoy: the test plays Envoy's part, stream by
//! stream, and can run several worker VMs over one shared-data store.
//!
//! ```text
//! let mut vm = Host::new(artifact::module())?;
//! assert!(vm.configure("{}")?);
//! let x = vm.exchange(Request::to("mcp_a").upstream("10.0.0.1:80").jsonrpc("1", "ping"), Response::status(503))?;
//! vm.advance_ms(100);
//! vm.tick()?;
//! ```
//!
//! The host never panics on what the guest passes it: bad pointers and
//! malformed maps get an error status. A guest trap (a panic in the filter
//! aborts the VM) comes back as an `Err` from the driving call.

pub mod abi;
pub mod artifact;
pub mod host;
pub mod memory;
pub mod pairs;
pub mod shared;
pub mod state;
pub mod status;
pub mod stream;
pub mod wasi;

pub use host::{path, Host, Options};
pub use shared::Shared;
pub use state::{HttpCall, LocalResponse, LogLine, Phase};
pub use status::Action;
pub use stream::{Exchange, Pending, Request, Response, DOWNSTREAM_CONNECTION_TERMINATION};

/// The cluster the filter sends its reports to.
pub const REPORTS_CLUSTER: &str = "only1mcp_control_plane";
