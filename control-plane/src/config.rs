//! The control plane's own configuration: where it listens, what Envoy's
//! listener looks like, and the static MCP backends.
//!
//! Loading is two steps: YAML into a positioned tree (`yaml`), then the tree
//! into validated types (`model`) with every problem reported at once
//! (`decode`). A `Config` that exists is valid.

pub mod decode;
pub mod filter;
pub mod policy;
pub mod health;
mod model;
pub mod yaml;

use std::path::{Path, PathBuf};

pub use decode::{DecodeError, Problem};
pub use health::{HealthSettings, HealthTiming};
pub use model::{Backend, Config, EnvoySettings, PolicySource, Protocol, ServiceName};

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Decode {
        path: PathBuf,
        #[source]
        source: DecodeError,
    },
}

impl ConfigError {
    /// Every problem in the file, for the status API and `validate`.
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            ConfigError::Read { source, .. } => vec![Problem {
                path: String::new(),
                pos: yaml::Pos::default(),
                message: source.to_string(),
            }],
            ConfigError::Decode { source, .. } => source.problems(),
        }
    }
}

impl Config {
    /// Parses and validates a config document.
    pub fn from_yaml(source: &str) -> Result<Config, DecodeError> {
        let tree = yaml::parse(source)?;
        model::decode_config(&tree)
    }

    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Config::from_yaml(&text).map_err(|source| ConfigError::Decode { path: path.to_path_buf(), source })
    }
}
