//! The `filter:` section: where the Wasm filter is and the policy it runs
//! with. The policy is validated here by the filter's own parser (the same
//! code that runs in Envoy), so a config the control plane accepts is one
//! the filter accepts.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::decode::{join, Decoder};
use super::yaml::{Node, Value};

/// Which Wasm runtime Envoy runs the filter in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    V8,
    Wamr,
    Wasmtime,
}

impl Runtime {
    pub fn envoy_name(self) -> &'static str {
        match self {
            Runtime::V8 => "envoy.wasm.runtime.v8",
            Runtime::Wamr => "envoy.wasm.runtime.wamr",
            Runtime::Wasmtime => "envoy.wasm.runtime.wasmtime",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct FilterSettings {
    /// The `.wasm` file, as Envoy will open it. Relative paths are resolved
    /// against the config file's directory.
    pub wasm: PathBuf,
    pub runtime: Runtime,
}

impl FilterSettings {
    pub fn resolve(&mut self, base: &Path) {
        if self.wasm.is_relative() {
            self.wasm = base.join(&self.wasm);
        }
    }
}

const OWN_KEYS: &[&str] = &["wasm", "runtime", "enabled"];

pub(super) fn decode(dec: &mut Decoder, node: &Node) -> Option<FilterSettings> {
    let path = "filter";
    let Value::Map(entries) = &node.value else {
        dec.report(path, node.pos, format!("expected a mapping, found {}", node.kind()));
        return None;
    };
    let mut wasm = None;
    let mut runtime = Some(Runtime::V8);
    let mut enabled = Some(true);
    for (k, v) in entries {
        let Value::Scalar { text: key, .. } = &k.value else {
            dec.report(path, k.pos, "keys must be strings");
            continue;
        };
        let p = join(path, key);
        match key.as_str() {
            "wasm" => wasm = dec.string(v, &p).map(PathBuf::from),
            "runtime" => runtime = dec.one_of(v, &p, &[("v8", Runtime::V8), ("wamr", Runtime::Wamr), ("wasmtime", Runtime::Wasmtime)]),
            "enabled" => enabled = dec.boolean(v, &p),
            "breaker" | "phi" | "latency" | "window" | "max_hosts" | "inspect_body_bytes" => {
                dec.report(&p, k.pos, format!("{key:?} belongs in the policy (`policy:` in this file, or a policy file)"));
            }
            _ => dec.report(&p, k.pos, format!("unknown key {key:?}; expected one of: {}", OWN_KEYS.join(", "))),
        }
    }
    if wasm.is_none() {
        dec.report(&join(path, "wasm"), node.pos, "missing required key \"wasm\" (path of only1mcp_filter.wasm)");
    }
    if !enabled? {
        return None;
    }
    Some(FilterSettings { wasm: wasm?, runtime: runtime? })
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn wasm_and_runtime() {
        let cfg = Config::from_yaml("filter:\n  wasm: /opt/f.wasm\n  runtime: v8\n").unwrap();
        let f = cfg.filter.unwrap();
        assert_eq!(f.wasm.to_str(), Some("/opt/f.wasm"));
    }

    #[test]
    fn policy_keys_point_to_the_policy() {
        let err = Config::from_yaml("filter:\n  wasm: f.wasm\n  breaker: {failure_rate: 0.5}\n  colour: red\n").unwrap_err();
        let problems = err.problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().any(|p| p.path == "filter.breaker" && p.message.contains("policy")));
        assert!(problems.iter().any(|p| p.path == "filter.colour" && p.pos.line == 4));
    }

    #[test]
    fn disabled_or_missing_wasm() {
        assert_eq!(Config::from_yaml("filter: {wasm: /x.wasm, enabled: false}\n").unwrap().filter, None);
        let err = Config::from_yaml("filter: {runtime: v8}\n").unwrap_err();
        assert!(err.problems()[0].message.contains("wasm"));
    }

    #[test]
    fn relative_paths_resolve_against_the_config_dir() {
        let mut f = Config::from_yaml("filter: {wasm: ../target/f.wasm}\n").unwrap().filter.unwrap();
        f.resolve(std::path::Path::new("/srv/only1mcp/config"));
        assert_eq!(f.wasm.to_str(), Some("/srv/only1mcp/config/../target/f.wasm"));
    }

    #[test]
    fn inline_policy_errors_carry_the_policy_prefix() {
        let err = Config::from_yaml("policy:\n  defaults:\n    breaker: {failure_rate: 2}\n").unwrap_err();
        assert_eq!(err.problems()[0].path, "policy.defaults.breaker.failure_rate");
        assert_eq!(err.problems()[0].pos.line, 3);
        let cfg = Config::from_yaml("policy: policy.yaml\n").unwrap();
        assert_eq!(cfg.policy, crate::config::PolicySource::File("policy.yaml".into()));
    }
}
