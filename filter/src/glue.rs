//! The proxy-wasm glue: reads what Envoy knows about each request, feeds
//! the algorithms, shares breaker state across workers through shared data,
//! and fails fast when no host of a cluster may take traffic. Compiled for
//! `wasm32` only; everything it decides is computed by the plain modules.
//!
//! Per worker (one root context each): the hosts seen, their phi detector,
//! latency tracker and outcome window. Shared by all workers: each host's
//! breaker, under `only1mcp:breaker:<host>`, updated with CAS.

//! Files: `host_io` (reading what Envoy knows), `shared` (breakers and
//! cluster membership in shared data), `worker` (one VM's state),
//! `root` (configuration, ticks, reports), `request` (one HTTP stream).

mod host_io;
mod request;
mod root;
mod shared;
mod worker;

use std::time::Duration;

use proxy_wasm::traits::RootContext;
use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(root::Root::default()) });
}}

pub(crate) const KEY_PREFIX: &str = "only1mcp:breaker:";
pub(crate) const TICK: Duration = Duration::from_millis(100);
/// The control plane's admin API, as a cluster the control plane serves over CDS.
pub(crate) const REPORTS_CLUSTER: &str = "only1mcp_control_plane";
