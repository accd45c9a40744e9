//! Only1MCP control plane: finds MCP backends, and serves them to Envoy as
//! clusters and endpoints over ADS.
//!
//! Data flows one way: `discovery` → `registry` → `xds` (snapshot, then the
//! ADS streams) → Envoy. `config` parses and validates the YAML, `status`
//! and `admin` show what is going on, `app` wires it together.

pub mod admin;
pub mod app;
pub mod config;
pub mod discovery;
pub mod health;
pub mod registry;
pub mod reports;
pub mod status;
pub mod xds;
