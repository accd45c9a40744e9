//! Active health checks: the control plane probes every endpoint itself,
//! in the MCP dialect it speaks, and turns what it learns (together with
//! the filters' passive reports) into Envoy's view of each endpoint.
//!
//! - `state`: the rise/fall state machine per endpoint, with flap damping.
//! - `schedule`: when to probe next (interval, idle, backoff, jitter).
//! - `probe`: one probe over HTTP (`server/discover`, legacy `ping`, or GET).
//! - `score`: probe figures and passive ejections into EDS health and weight.
//! - `checker`: the task that probes the fleet and publishes the health map.
//! - `board`: probe details and counters for the admin API.

pub mod board;
pub mod checker;
pub mod probe;
pub mod schedule;
pub mod score;
pub mod state;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::Serialize;

use crate::config::ServiceName;

pub use board::Board;
pub use checker::Checker;
pub use score::{ActiveVerdict, EdsVerdict};
pub use state::Health;

/// One endpoint of one service. The same address may serve two services
/// (on different paths), so the service is part of the key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct EndpointKey {
    pub service: ServiceName,
    pub addr: SocketAddr,
}

/// The checker's verdicts. Endpoints missing from it are `Unknown`.
pub type HealthMap = BTreeMap<EndpointKey, ActiveVerdict>;
