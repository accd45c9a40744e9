//! The xDS side of the control plane: Envoy resources built from the
//! registry (`resources`), immutable versioned snapshots of them
//! (`snapshot`), the snapshot everybody serves (`cache`), the per-stream
//! protocol state machines for state-of-the-world and delta ADS (`sotw`,
//! `delta`), and the tonic service that connects those to gRPC (`server`).

pub mod cache;
pub mod delta;
pub mod resources;
pub mod server;
pub mod snapshot;
pub mod sotw;
pub mod types;

pub use cache::SnapshotCache;
pub use snapshot::{Resource, Snapshot};
pub use types::TypeUrl;
