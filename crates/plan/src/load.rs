//! YAML text to saphyr's tree, refusing nesting deeper than a limit before it is built.
//!
//! saphyr's `load_from_str` drives its parser with one recursive call per level, and the
//! tree it builds is dropped, cloned and hashed recursively: 5,000 nested `- ` overflow a
//! 2 MiB worker stack. Here the parser's events reach saphyr's loader one at a time while
//! the open lists and mappings are counted, so loading stops at the first one too deep.
//! An alias counts as deep as the anchored node it copies: otherwise a few aliases of
//! aliases would build the deep tree anyway.

use std::collections::HashMap;

use saphyr::{MarkedYaml, YamlLoader};
use saphyr_parser::{Event, Marker, Parser, ScanError, SpannedEventReceiver};

use crate::diag::Diagnostic;
use crate::model::Location;

/// The documents in `source`, or the first YAML error, or the first node nested more
/// than `max_depth` lists and mappings deep.
pub(crate) fn load(source: &str, max_depth: usize) -> Result<Vec<MarkedYaml<'_>>, Diagnostic> {
    let mut loader = YamlLoader::<MarkedYaml<'_>>::default();
    let mut nesting = Nesting::default();
    for event in Parser::new_from_str(source) {
        let (event, span) = event.map_err(|e| scan_error(&e, max_depth))?;
        if !nesting.admits(&event, max_depth) {
            return Err(too_deep(span.start, max_depth));
        }
        loader.on_event(event, span);
        if let Some(e) = loader.error() {
            return Err(scan_error(e, max_depth));
        }
    }
    Ok(loader.into_documents())
}

/// The lists and mappings open at the current event, and how deep each anchored node is.
#[derive(Default)]
struct Nesting {
    /// Per open collection: its anchor id (0: none) and the height of its deepest child.
    open: Vec<(usize, usize)>,
    /// Anchor id → height of the anchored node (a scalar is 0, `[x]` is 1).
    anchored: HashMap<usize, usize>,
}

impl Nesting {
    /// Takes `event` into account; false if it nests deeper than `max_depth`.
    fn admits(&mut self, event: &Event<'_>, max_depth: usize) -> bool {
        match event {
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if self.open.len() >= max_depth {
                    return false;
                }
                self.open.push((*anchor, 0));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((anchor, below)) = self.open.pop() {
                    self.child(anchor, below + 1);
                }
            }
            Event::Scalar(_, _, anchor, _) => self.child(*anchor, 0),
            Event::Alias(id) => {
                let height = self.anchored.get(id).copied().unwrap_or(0);
                if self.open.len() + height > max_depth {
                    return false;
                }
                self.child(0, height);
            }
            _ => {}
        }
        true
    }

    /// A node of `height` is complete: remember it if anchored, raise its parent.
    fn child(&mut self, anchor: usize, height: usize) {
        if anchor != 0 {
            self.anchored.insert(anchor, height);
        }
        if let Some((_, below)) = self.open.last_mut() {
            *below = (*below).max(height);
        }
    }
}

fn too_deep(at: Marker, max_depth: usize) -> Diagnostic {
    Diagnostic {
        location: location(at),
        message: format!("lists and mappings nested more than {max_depth} levels deep"),
        hint: Some(format!(
            "a plan needs a handful of levels; liftoff reads at most {max_depth}"
        )),
    }
}

/// saphyr's scanner refuses more than this many nested flow collections (`[[[...`).
const SCANNER_FLOW_LIMIT: usize = 255;

fn scan_error(e: &ScanError, max_depth: usize) -> Diagnostic {
    // The scanner reaches its own limit while looking ahead, before the parser has emitted
    // the event of the level past ours: same cause, same words.
    if e.info() == "recursion limit exceeded" && max_depth < SCANNER_FLOW_LIMIT {
        return too_deep(*e.marker(), max_depth);
    }
    Diagnostic {
        location: location(*e.marker()),
        message: format!("invalid YAML: {}", e.info()),
        hint: None,
    }
}

fn location(at: Marker) -> Location {
    Location {
        line: at.line(),
        col: at.col() + 1,
    }
}
