//! Finds the line and column of a key path (`virtual_servers[0].real_servers[1].port`) in the
//! YAML text, so validation errors point where the user has to look. serde_yaml has no spans,
//! so this walks the text once with yaml-rust2's event parser.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Line and column, both 1-based.
pub type Pos = (usize, usize);

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

#[derive(Default)]
struct Walker {
    stack: Vec<Frame>,
    found: HashMap<String, Pos>,
}

fn join(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_owned()
    } else {
        format!("{base}.{key}")
    }
}

impl Walker {
    /// Path of the node starting now, or None if it is a mapping key.
    /// A mapping is located at its first key (its start marker points past it).
    fn node(&mut self, scalar: Option<&str>, is_map: bool, mark: Marker) -> Option<String> {
        // yaml-rust2 columns are 0-based; editors count from 1.
        let pos = (mark.line(), mark.col() + 1);
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Map { path, key }) => match key.take() {
                None => {
                    let k = scalar.unwrap_or("?").to_owned();
                    self.found.entry(path.clone()).or_insert(pos);
                    self.found.entry(join(path, &k)).or_insert(pos);
                    *key = Some(k);
                    None
                }
                Some(k) => Some(join(path, &k)),
            },
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                if !is_map {
                    self.found.entry(p.clone()).or_insert(pos);
                }
                Some(p)
            }
        }
    }
}

impl MarkedEventReceiver for Walker {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, ..) => {
                self.node(Some(&value), false, mark);
            }
            Event::Alias(_) => {
                self.node(None, false, mark);
            }
            Event::MappingStart(..) => {
                if let Some(path) = self.node(None, true, mark) {
                    self.stack.push(Frame::Map { path, key: None });
                } else {
                    // A complex key: walk it as an anonymous map so events stay balanced.
                    self.stack.push(Frame::Map {
                        path: "?".into(),
                        key: None,
                    });
                }
            }
            Event::SequenceStart(..) => {
                let path = self.node(None, false, mark).unwrap_or_else(|| "?".into());
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

/// All key and item positions of `text` (empty if it does not parse).
pub struct Positions(HashMap<String, Pos>);

impl Positions {
    pub fn of(text: &str) -> Self {
        let mut w = Walker::default();
        let mut parser = Parser::new_from_str(text);
        let _ = parser.load(&mut w, false);
        Positions(w.found)
    }

    /// The position of `path`, or of its nearest ancestor that is in the file (a missing key
    /// points at the mapping that should hold it).
    pub fn locate(&self, path: &str) -> Option<Pos> {
        let mut p = path;
        loop {
            if let Some(pos) = self.0.get(p) {
                return Some(*pos);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_and_items() {
        let text = "global_defs:\n  router_id: a\nvirtual_servers:\n  - address: 10.0.0.1\n    port: 80\n    real_servers:\n      - { address: 10.0.0.2, port: 81 }\n";
        let p = Positions::of(text);
        assert_eq!(p.locate("global_defs.router_id"), Some((2, 3)));
        assert_eq!(p.locate("virtual_servers[0].port"), Some((5, 5)));
        assert_eq!(
            p.locate("virtual_servers[0].real_servers[0].port"),
            Some((7, 30))
        );
        // Missing key: the enclosing item.
        assert_eq!(p.locate("virtual_servers[0].protocol"), Some((4, 5)));
        assert_eq!(p.locate("nothing.here"), None);
    }
}
