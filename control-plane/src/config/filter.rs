//! The `filter:` section: where the Wasm filter is and the policy it runs
//! with. The policy is validated here by the filter's own parser (the same
//! code that runs in Envoy), so a config the control plane accepts is one
//! the filter accepts.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Number, Value as Json};

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
    /// The filter's configuration (JSON), already validated.
    pub policy_json: String,
}

impl FilterSettings {
    pub fn resolve(&mut self, base: &Path) {
        if self.wasm.is_relative() {
            self.wasm = base.join(&self.wasm);
        }
    }
}

const OWN_KEYS: &[&str] = &["wasm", "runtime", "enabled"];
const POLICY_KEYS: &[&str] = &["breaker", "phi", "latency", "window", "max_hosts", "inspect_body_bytes"];

pub(super) fn decode(dec: &mut Decoder, node: &Node) -> Option<FilterSettings> {
    let path = "filter";
    let Value::Map(entries) = &node.value else {
        dec.report(path, node.pos, format!("expected a mapping, found {}", node.kind()));
        return None;
    };
    let mut wasm = None;
    let mut runtime = Some(Runtime::V8);
    let mut enabled = Some(true);
    let mut policy = Map::new();
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
            k if POLICY_KEYS.contains(&k) => {
                policy.insert(key.clone(), to_json(v));
            }
            _ => {
                let mut allowed: Vec<&str> = OWN_KEYS.to_vec();
                allowed.extend_from_slice(POLICY_KEYS);
                dec.report(&p, k.pos, format!("unknown key {key:?}; expected one of: {}", allowed.join(", ")));
            }
        }
    }
    let policy_json = Json::Object(policy).to_string();
    if let Err(e) = only1mcp_filter::config::Config::from_json(policy_json.as_bytes()) {
        dec.report(path, node.pos, e);
        return None;
    }
    if wasm.is_none() {
        dec.report(&join(path, "wasm"), node.pos, "missing required key \"wasm\" (path of only1mcp_filter.wasm)");
    }
    if !enabled? {
        return None;
    }
    Some(FilterSettings { wasm: wasm?, runtime: runtime?, policy_json })
}

/// YAML to JSON with YAML's plain-scalar typing: unquoted numbers and
/// booleans are numbers and booleans; quoted values stay strings.
pub fn to_json(node: &Node) -> Json {
    match &node.value {
        Value::Null => Json::Null,
        Value::Seq(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .filter_map(|(k, v)| match &k.value {
                    Value::Scalar { text, .. } => Some((text.clone(), to_json(v))),
                    _ => None,
                })
                .collect(),
        ),
        Value::Scalar { text, quoted: true } => Json::String(text.clone()),
        Value::Scalar { text, quoted: false } => match text.as_str() {
            "true" => Json::Bool(true),
            "false" => Json::Bool(false),
            t => {
                if let Ok(i) = t.parse::<i64>() {
                    Json::Number(i.into())
                } else if let Some(n) = t.parse::<f64>().ok().and_then(Number::from_f64) {
                    Json::Number(n)
                } else {
                    Json::String(t.to_string())
                }
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn policy_is_passed_through_and_validated() {
        let cfg = Config::from_yaml("filter:\n  wasm: /opt/f.wasm\n  breaker: {consecutive_failures: 3}\n  window: 50\n").unwrap();
        let f = cfg.filter.unwrap();
        assert_eq!(f.wasm.to_str(), Some("/opt/f.wasm"));
        let json: serde_json::Value = serde_json::from_str(&f.policy_json).unwrap();
        assert_eq!(json["breaker"]["consecutive_failures"], 3);
        assert_eq!(json["window"], 50);
    }

    #[test]
    fn bad_policy_is_refused_with_the_filters_message() {
        let err = Config::from_yaml("filter:\n  wasm: f.wasm\n  breaker: {failure_rate: 2}\n  colour: red\n").unwrap_err();
        let problems = err.problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().any(|p| p.path == "filter.colour" && p.pos.line == 4));
        assert!(problems.iter().any(|p| p.message.contains("breaker.failure_rate")));
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
}
