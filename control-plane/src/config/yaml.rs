//! A YAML tree that remembers where every node came from.
//!
//! serde-based loaders stop at the first error and forget positions once a
//! value is built. Operators need every problem at once with its line and
//! column, so we parse into this small tree first and validate it by hand
//! (see `decode.rs`).

use std::fmt;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Where a node starts in the source: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.col)
    }
}

impl From<Marker> for Pos {
    fn from(m: Marker) -> Self {
        Pos { line: m.line(), col: m.col() + 1 }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A plain or quoted scalar; `quoted` keeps `"8080"` a string.
    Scalar { text: String, quoted: bool },
    Seq(Vec<Node>),
    /// Keys in source order; duplicates are kept so the decoder can report them.
    Map(Vec<(Node, Node)>),
    Null,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

impl Node {
    /// A short name for the node's kind, for "expected X, found Y" messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
            Value::Null => "nothing",
        }
    }
}

/// A syntax error: the document is not YAML at all.
#[derive(Debug, thiserror::Error)]
#[error("YAML syntax error at {pos}: {message}")]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Parses one YAML document. An empty document is `Value::Null`.
pub fn parse(source: &str) -> Result<Node, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(source);
    parser.load(&mut builder, false).map_err(|e| SyntaxError {
        pos: (*e.marker()).into(),
        message: e.info().to_string(),
    })?;
    if let Some(err) = builder.error {
        return Err(err);
    }
    Ok(builder.root.unwrap_or(Node { pos: Pos { line: 1, col: 1 }, value: Value::Null }))
}

enum Frame {
    Seq(Node),
    /// The mapping so far and a key waiting for its value.
    Map(Node, Option<Node>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Node>,
    error: Option<SyntaxError>,
}

impl Builder {
    fn push_node(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq(seq)) => {
                if let Value::Seq(items) = &mut seq.value {
                    items.push(node);
                }
            }
            Some(Frame::Map(map, pending)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => {
                    if let Value::Map(entries) = &mut map.value {
                        entries.push((key, node));
                    }
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = Pos::from(mark);
        match ev {
            Event::Scalar(text, style, _, _) => {
                let quoted = !matches!(style, TScalarStyle::Plain);
                let value = if !quoted && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL") {
                    Value::Null
                } else {
                    Value::Scalar { text, quoted }
                };
                self.push_node(Node { pos, value });
            }
            Event::SequenceStart(..) => self.stack.push(Frame::Seq(Node { pos, value: Value::Seq(Vec::new()) })),
            Event::MappingStart(..) => {
                self.stack.push(Frame::Map(Node { pos, value: Value::Map(Vec::new()) }, None))
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(frame) = self.stack.pop() {
                    let node = match frame {
                        Frame::Seq(n) => n,
                        // The parser marks a block mapping at its first
                        // value; its first key is where a reader looks.
                        Frame::Map(mut n, _) => {
                            if let Value::Map(entries) = &n.value {
                                if let Some((k, _)) = entries.first() {
                                    n.pos = k.pos;
                                }
                            }
                            n
                        }
                    };
                    self.push_node(node);
                }
            }
            Event::Alias(_) if self.error.is_none() => {
                self.error = Some(SyntaxError { pos, message: "YAML aliases are not supported; write the value out".into() });
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let n = parse("a: 1\nb:\n  - x\n  - \"2\"\n").unwrap();
        let Value::Map(entries) = &n.value else { panic!("not a map") };
        assert_eq!(entries[0].0.pos, Pos { line: 1, col: 1 });
        assert_eq!(entries[1].0.pos, Pos { line: 2, col: 1 });
        let Value::Seq(items) = &entries[1].1.value else { panic!("not a seq") };
        assert_eq!(items[0].pos, Pos { line: 3, col: 5 });
        assert_eq!(items[1].value, Value::Scalar { text: "2".into(), quoted: true });
    }

    #[test]
    fn empty_document_is_null() {
        assert_eq!(parse("").unwrap().value, Value::Null);
        assert_eq!(parse("# only a comment\n").unwrap().value, Value::Null);
    }

    #[test]
    fn syntax_error_has_position() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.pos.line >= 1, "{err}");
    }

    #[test]
    fn aliases_are_refused() {
        let err = parse("a: &x 1\nb: *x\n").unwrap_err();
        assert!(err.message.contains("aliases"), "{err}");
        assert_eq!(err.pos.line, 2);
    }
}
