//! Turning a positioned YAML tree into typed values while collecting every
//! problem, each with its field path, line and column.
//!
//! The decoder never stops at the first error: a reader asks for a field,
//! gets `None` if it was missing or bad, and the problem is recorded. At the
//! end the caller either has a complete value or a full list of problems.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use super::yaml::{Node, Pos, SyntaxError, Value};

/// One thing wrong with a file, located precisely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Field path such as `backends[2].port`; empty for the document itself.
    pub path: String,
    pub pos: Pos,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() { "(document)" } else { &self.path };
        write!(f, "{path} at {}: {}", self.pos, self.message)
    }
}

/// Why a file could not be loaded: it is not YAML, or it is YAML with
/// problems (all of them, in source order).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    #[error("{} problem(s):\n{}", .0.len(), ProblemList(.0))]
    Invalid(Vec<Problem>),
}

impl DecodeError {
    /// Every problem, a syntax error counting as one.
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            DecodeError::Syntax(e) => vec![Problem { path: String::new(), pos: e.pos, message: e.message.clone() }],
            DecodeError::Invalid(p) => p.clone(),
        }
    }
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  - {p}")?;
        }
        Ok(())
    }
}

/// Collects problems while typed values are read out of a tree.
#[derive(Debug, Default)]
pub struct Decoder {
    problems: Vec<Problem>,
}

/// Joins a parent path and a key: `backends[0]` + `port`.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl Decoder {
    pub fn report(&mut self, path: &str, pos: Pos, message: impl Into<String>) {
        self.problems.push(Problem { path: path.to_string(), pos, message: message.into() });
    }

    /// Finishes decoding: the value if nothing was wrong, else every problem
    /// sorted by position.
    pub fn finish<T>(mut self, value: Option<T>) -> Result<T, DecodeError> {
        match value {
            Some(v) if self.problems.is_empty() => Ok(v),
            _ => {
                self.problems.sort_by_key(|p| (p.pos.line, p.pos.col));
                if self.problems.is_empty() {
                    self.problems.push(Problem {
                        path: String::new(),
                        pos: Pos { line: 1, col: 1 },
                        message: "document could not be decoded".into(),
                    });
                }
                Err(DecodeError::Invalid(self.problems))
            }
        }
    }

    pub fn has_problems(&self) -> bool {
        !self.problems.is_empty()
    }

    /// Opens a mapping. A missing (null) node reads as an empty mapping so
    /// that every section may be left out.
    pub fn map<'a>(&mut self, node: &'a Node, path: &str) -> Option<MapReader<'a>> {
        match &node.value {
            Value::Map(entries) => {
                let mut reader = MapReader { path: path.to_string(), pos: node.pos, entries, used: vec![false; entries.len()] };
                reader.check_keys(self);
                Some(reader)
            }
            Value::Null => Some(MapReader { path: path.to_string(), pos: node.pos, entries: &[], used: Vec::new() }),
            _ => {
                self.report(path, node.pos, format!("expected a mapping, found {}", node.kind()));
                None
            }
        }
    }

    /// Opens a list; null reads as empty.
    pub fn seq<'a>(&mut self, node: &'a Node, path: &str) -> Option<&'a [Node]> {
        match &node.value {
            Value::Seq(items) => Some(items),
            Value::Null => Some(&[]),
            _ => {
                self.report(path, node.pos, format!("expected a list, found {}", node.kind()));
                None
            }
        }
    }

    pub fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.value {
            Value::Scalar { text, .. } => Some(text.clone()),
            _ => {
                self.report(path, node.pos, format!("expected a string, found {}", node.kind()));
                None
            }
        }
    }

    fn plain_scalar<'n>(&mut self, node: &'n Node, path: &str, what: &str) -> Option<&'n str> {
        match &node.value {
            Value::Scalar { text, quoted: false } => Some(text),
            Value::Scalar { text, quoted: true } => {
                self.report(path, node.pos, format!("expected {what}, found the quoted string {text:?}"));
                None
            }
            _ => {
                self.report(path, node.pos, format!("expected {what}, found {}", node.kind()));
                None
            }
        }
    }

    /// An unsigned integer within `[min, max]`.
    pub fn uint(&mut self, node: &Node, path: &str, min: u64, max: u64) -> Option<u64> {
        let what = format!("an integer from {min} to {max}");
        let text = self.plain_scalar(node, path, &what)?;
        match text.replace('_', "").parse::<u64>() {
            Ok(v) if (min..=max).contains(&v) => Some(v),
            _ => {
                self.report(path, node.pos, format!("expected {what}, found {text:?}"));
                None
            }
        }
    }

    /// A real number within `[min, max]`.
    pub fn float(&mut self, node: &Node, path: &str, min: f64, max: f64) -> Option<f64> {
        let what = format!("a number from {min} to {max}");
        let text = self.plain_scalar(node, path, &what)?;
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= min && v <= max => Some(v),
            _ => {
                self.report(path, node.pos, format!("expected {what}, found {text:?}"));
                None
            }
        }
    }

    pub fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        let text = self.plain_scalar(node, path, "true or false")?;
        match text {
            "true" | "True" | "TRUE" => Some(true),
            "false" | "False" | "FALSE" => Some(false),
            _ => {
                self.report(path, node.pos, format!("expected true or false, found {text:?}"));
                None
            }
        }
    }

    pub fn ip(&mut self, node: &Node, path: &str) -> Option<IpAddr> {
        let text = self.string(node, path)?;
        match text.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.report(path, node.pos, format!("expected an IP address such as 127.0.0.1, found {text:?}"));
                None
            }
        }
    }

    /// A duration such as `250ms`, `3s`, `1m` or `1h`, within `[min, max]`.
    pub fn duration(&mut self, node: &Node, path: &str, min: Duration, max: Duration) -> Option<Duration> {
        let text = self.string(node, path)?;
        match parse_duration(&text) {
            Some(d) if d >= min && d <= max => Some(d),
            Some(_) => {
                self.report(path, node.pos, format!("{text} is out of range: allowed {min:?} to {max:?}"));
                None
            }
            None => {
                self.report(
                    path,
                    node.pos,
                    format!("expected a duration such as 250ms, 3s, 1m or 1h, found {text:?}"),
                );
                None
            }
        }
    }

    /// One of a fixed set of words.
    pub fn one_of<T: Copy>(&mut self, node: &Node, path: &str, choices: &[(&str, T)]) -> Option<T> {
        let text = self.string(node, path)?;
        if let Some((_, v)) = choices.iter().find(|(name, _)| *name == text) {
            return Some(*v);
        }
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        self.report(path, node.pos, format!("expected one of {}, found {text:?}", names.join(", ")));
        None
    }
}

/// Parses `250ms`, `3s`, `1.5s`, `2m`, `1h`. A bare number is refused: the
/// unit is where misconfigurations hide.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = text.split_at(split);
    let value: f64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return None,
    };
    if !secs.is_finite() || !(0.0..=1.0e9).contains(&secs) {
        return None;
    }
    Some(Duration::from_secs_f64(secs))
}

/// Reads the fields of one mapping, remembering which were used so that
/// unknown keys can be reported (they are usually typos).
#[derive(Debug)]
pub struct MapReader<'a> {
    path: String,
    pos: Pos,
    entries: &'a [(Node, Node)],
    used: Vec<bool>,
}

impl<'a> MapReader<'a> {
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn pos(&self) -> Pos {
        self.pos
    }

    pub fn field_path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    fn check_keys(&mut self, dec: &mut Decoder) {
        for (i, (key, _)) in self.entries.iter().enumerate() {
            match &key.value {
                Value::Scalar { text, .. } => {
                    if self.entries[..i].iter().any(|(k, _)| matches!(&k.value, Value::Scalar { text: t, .. } if t == text)) {
                        dec.report(&join(&self.path, text), key.pos, "duplicate key");
                        self.used[i] = true;
                    }
                }
                _ => {
                    dec.report(&self.path, key.pos, format!("keys must be strings, found {}", key.kind()));
                    self.used[i] = true;
                }
            }
        }
    }

    /// The value under `key`, if present (null counts as absent).
    pub fn get(&mut self, key: &str) -> Option<&'a Node> {
        let idx = self
            .entries
            .iter()
            .position(|(k, _)| matches!(&k.value, Value::Scalar { text, .. } if text == key))?;
        self.used[idx] = true;
        let node = &self.entries[idx].1;
        if node.value == Value::Null {
            None
        } else {
            Some(node)
        }
    }

    /// Every entry, for free-form maps such as metadata.
    pub fn entries(&mut self) -> impl Iterator<Item = (&'a Node, &'a Node)> + '_ {
        self.used.iter_mut().for_each(|u| *u = true);
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// Reports every key that no `get` asked for.
    pub fn finish(self, dec: &mut Decoder, allowed: &[&str]) {
        for ((key, _), used) in self.entries.iter().zip(&self.used) {
            if !used {
                if let Value::Scalar { text, .. } = &key.value {
                    dec.report(
                        &join(&self.path, text),
                        key.pos,
                        format!("unknown key {text:?}; expected one of: {}", allowed.join(", ")),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::yaml::parse;
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("3 days"), None);
    }

    #[test]
    fn collects_every_problem_with_positions() {
        let doc = parse("a: x\nb: \"7\"\nc: 70000\nzz: 1\n").unwrap();
        let mut dec = Decoder::default();
        let mut m = dec.map(&doc, "").unwrap();
        let a = m.get("a").and_then(|n| dec.uint(n, "a", 0, 10));
        let b = m.get("b").and_then(|n| dec.uint(n, "b", 0, 10));
        let c = m.get("c").and_then(|n| dec.uint(n, "c", 1, 65535));
        m.finish(&mut dec, &["a", "b", "c"]);
        assert_eq!((a, b, c), (None, None, None));
        let problems = dec.finish(Some(())).unwrap_err().problems();
        let summary: Vec<(String, usize, usize)> =
            problems.iter().map(|p| (p.path.clone(), p.pos.line, p.pos.col)).collect();
        assert_eq!(
            summary,
            vec![("a".into(), 1, 4), ("b".into(), 2, 4), ("c".into(), 3, 4), ("zz".into(), 4, 1)]
        );
        assert!(problems[1].message.contains("quoted"), "{}", problems[1]);
        assert!(problems[3].message.contains("unknown key"), "{}", problems[3]);
    }

    #[test]
    fn duplicate_keys_are_reported() {
        let doc = parse("a: 1\na: 2\n").unwrap();
        let mut dec = Decoder::default();
        let mut m = dec.map(&doc, "").unwrap();
        let _ = m.get("a");
        m.finish(&mut dec, &["a"]);
        let problems = dec.finish(Some(())).unwrap_err().problems();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].message, "duplicate key");
        assert_eq!(problems[0].pos.line, 2);
    }

    #[test]
    fn floats_and_bools() {
        let doc = parse("r: 1.5\nok: yes\n").unwrap();
        let mut dec = Decoder::default();
        let mut m = dec.map(&doc, "").unwrap();
        assert_eq!(m.get("r").and_then(|n| dec.float(n, "r", 0.0, 1.0)), None);
        assert_eq!(m.get("ok").and_then(|n| dec.boolean(n, "ok")), None);
        assert_eq!(dec.finish(Some(())).unwrap_err().problems().len(), 2);
    }
}
