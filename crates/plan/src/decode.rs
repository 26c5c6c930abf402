//! Walks the YAML tree (with positions) into the typed model, collecting every error.
//!
//! serde's `deny_unknown_fields` stops at the first problem; an operator fixing a plan
//! wants all of them at once, each with `line:col`, so the walk is by hand.

use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use saphyr::{MarkedYaml, Scalar, YamlData};

use crate::Limits;
use crate::diag::{Diagnostic, did_you_mean};
use crate::lint::VariableUse;
use crate::model::{Location, Text, Variables, Weight};
use crate::schema::{RESERVED, Section};

pub(crate) type Node<'a> = MarkedYaml<'a>;

pub(crate) fn location(node: &Node<'_>) -> Location {
    Location {
        line: node.span.start.line(),
        col: node.span.start.col() + 1,
    }
}

pub(crate) struct Decoder<'s> {
    source_lines: Vec<SourceLine<'s>>,
    env: Env<'s>,
    pub limits: Limits,
    pub diags: Vec<Diagnostic>,
    pub variables: Variables,
    /// Every `${VAR}` read without an environment ([`Env::Unset`]), in file order.
    pub uses: Vec<VariableUse>,
}

/// Where `${VAR}` values come from.
#[derive(Clone, Copy)]
pub(crate) enum Env<'s> {
    /// From this function; a variable it does not know is an error.
    Strict(&'s dyn Fn(&str) -> Option<String>),
    /// Nowhere: every variable is left unset and recorded as a use. What depends on a
    /// value is checked only as far as the text before the first variable goes; the
    /// plan built this way holds placeholders and is never handed out (see `lint`).
    Unset,
}

/// How far into a node's text a search has read, in bytes and in characters.
#[derive(Clone, Copy, Default)]
struct Cursor {
    bytes: usize,
    chars: usize,
}

/// A line of the plan, for turning saphyr's character columns into byte offsets.
struct SourceLine<'s> {
    text: &'s str,
    ascii: bool,
    /// Byte offset of each character of a non-ASCII line, built on first use: a column
    /// costs one lookup even on a 1 MiB line that holds thousands of errors.
    char_starts: OnceCell<Vec<usize>>,
}

impl SourceLine<'_> {
    /// The byte offset of 0-based character column `col` (the line's end past it).
    fn byte_at(&self, col: usize) -> usize {
        if self.ascii {
            return col.min(self.text.len());
        }
        let starts = self
            .char_starts
            .get_or_init(|| self.text.char_indices().map(|(i, _)| i).collect());
        starts.get(col).copied().unwrap_or(self.text.len())
    }
}

impl<'s> Decoder<'s> {
    pub fn new(source: &'s str, env: Env<'s>, limits: Limits) -> Self {
        Self {
            source_lines: source
                .lines()
                .map(|text| SourceLine {
                    text,
                    ascii: text.is_ascii(),
                    char_starts: OnceCell::new(),
                })
                .collect(),
            env,
            limits,
            diags: Vec::new(),
            variables: Variables::default(),
            uses: Vec::new(),
        }
    }

    pub fn error(&mut self, location: Location, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            location,
            message: message.into(),
            hint: None,
        });
    }

    pub fn error_hint(
        &mut self,
        location: Location,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.diags.push(Diagnostic {
            location,
            message: message.into(),
            hint: Some(hint.into()),
        });
    }

    fn scalar<'n>(&mut self, node: &'n Node<'_>, what: &str) -> Option<&'n Scalar<'n>> {
        match &node.data {
            YamlData::Value(s) => Some(s),
            other => {
                self.error(
                    location(node),
                    format!("{what}: expected a value, found {}", describe(other)),
                );
                None
            }
        }
    }

    pub fn string(&mut self, node: &Node<'_>, what: &str) -> Option<String> {
        match self.scalar(node, what)? {
            Scalar::String(s) if !s.trim().is_empty() => Some(s.to_string()),
            Scalar::String(_) => {
                self.error(location(node), format!("{what}: must not be empty"));
                None
            }
            Scalar::Integer(i) => Some(i.to_string()),
            Scalar::FloatingPoint(f) => Some(f.to_string()),
            other => {
                self.error(
                    location(node),
                    format!(
                        "{what}: expected a string, found {}",
                        describe_scalar(other)
                    ),
                );
                None
            }
        }
    }

    /// A string with `${VAR}` interpolation. A missing variable is an error naming it.
    pub fn text(&mut self, node: &Node<'_>, what: &str) -> Option<Text> {
        let template = self.string(node, what)?;
        let (resolved, unset_from) = self.interpolate(&template, node)?;
        Some(match unset_from {
            None => Text::new(template, resolved),
            Some(at) => Text::partial(template, resolved, at),
        })
    }

    /// The template with its references resolved, and where the first one left unset
    /// begins (under [`Env::Unset`], which keeps each reference as written); `None`
    /// after reporting a variable [`Env::Strict`] does not know.
    fn interpolate(&mut self, template: &str, node: &Node<'_>) -> Option<(String, Option<usize>)> {
        let mut out = String::with_capacity(template.len());
        let mut unset_from = None;
        // References are found in the source in order, each after the one before.
        let mut cursor = Some(Cursor::default());
        let mut rest = template;
        let mut ok = true;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let tail = &rest[pos..];
            if let Some(after) = tail.strip_prefix("$${") {
                out.push_str("${");
                rest = after;
                continue;
            }
            let Some((name, len)) = parse_reference(tail) else {
                out.push('$');
                rest = &tail[1..];
                continue;
            };
            let reference = &tail[..len];
            rest = &tail[len..];
            let mut locate = |dec: &Self| {
                dec.find_next_in_node(node, reference, &mut cursor)
                    .unwrap_or_else(|| location(node))
            };
            let env = match self.env {
                Env::Strict(env) => env,
                Env::Unset => {
                    let location = locate(self);
                    self.uses.push(VariableUse {
                        name: name.to_string(),
                        location,
                    });
                    unset_from.get_or_insert(out.len());
                    out.push_str(reference);
                    continue;
                }
            };
            match env(name) {
                Some(value) => {
                    out.push_str(&value);
                    self.variables.insert(name.to_string(), value);
                }
                None => {
                    ok = false;
                    let location = locate(self);
                    self.error_hint(
                        location,
                        format!("environment variable `{name}` is not set"),
                        format!(
                            "export {name} before running liftoff, or write `$${{{name}}}` for a literal `${{{name}}}`"
                        ),
                    );
                }
            }
        }
        out.push_str(rest);
        ok.then_some((out, unset_from))
    }

    /// Where byte `offset` of a scalar's text is: exact when the scalar sits on one
    /// line as written (plain or quoted), the node's start otherwise.
    pub fn locate_offset(&self, node: &Node<'_>, text: &str, offset: usize) -> Location {
        match self.find_in_node(node, text) {
            Some(found) => Location {
                line: found.line,
                col: found.col + text[..offset.min(text.len())].chars().count(),
            },
            None => location(node),
        }
    }

    /// Where `needle` is in the node as written on its first line, if there. Only the
    /// node's own span is searched, so a lookup costs the node's length, never the line's.
    fn find_in_node(&self, node: &Node<'_>, needle: &str) -> Option<Location> {
        self.find_next_in_node(node, needle, &mut Some(Cursor::default()))
    }

    /// [`Self::find_in_node`] from byte `cursor` of the node on, moving `cursor` past
    /// what it finds. A miss ends the search in this node (`cursor` becomes `None`), so
    /// the lookups of one node's many references cost its length once.
    fn find_next_in_node(
        &self,
        node: &Node<'_>,
        needle: &str,
        cursor: &mut Option<Cursor>,
    ) -> Option<Location> {
        let past = cursor.take()?;
        let at = location(node);
        let line = self.source_lines.get(at.line.wrapping_sub(1))?;
        let from = line.byte_at(at.col - 1);
        let to = if node.span.end.line() == at.line {
            line.byte_at(node.span.end.col())
        } else {
            line.text.len()
        };
        let start = from + past.bytes;
        let offset = start + line.text.get(start..to)?.find(needle)?;
        let chars = past.chars + line.text[start..offset].chars().count();
        *cursor = Some(Cursor {
            bytes: offset + needle.len() - from,
            chars: chars + needle.chars().count(),
        });
        Some(Location {
            line: at.line,
            col: at.col + chars,
        })
    }

    pub fn duration(&mut self, node: &Node<'_>, what: &str) -> Option<Duration> {
        let hint = "write a duration with a unit, e.g. `500ms`, `90s`, `5m`, `24h`";
        match self.scalar(node, what)? {
            Scalar::String(s) => match humantime::parse_duration(s.trim()) {
                Ok(d) if !d.is_zero() => Some(d),
                Ok(_) => {
                    self.error(location(node), format!("{what}: must be longer than zero"));
                    None
                }
                Err(_) => {
                    self.error_hint(
                        location(node),
                        format!("{what}: `{s}` is not a duration"),
                        hint,
                    );
                    None
                }
            },
            other => {
                let shown = scalar_text(other);
                self.error_hint(
                    location(node),
                    format!("{what}: `{shown}` is not a duration"),
                    hint,
                );
                None
            }
        }
    }

    pub fn percent(&mut self, node: &Node<'_>, what: &str) -> Option<Weight> {
        let hint = "write a percentage between 0% and 100%, e.g. `5%` or `0.5%`";
        let raw = match self.scalar(node, what)? {
            Scalar::String(s) => s.trim().to_string(),
            other => {
                let shown = scalar_text(other);
                self.error_hint(
                    location(node),
                    format!("{what}: `{shown}` has no `%` sign"),
                    format!("write `{shown}%`: a bare number is ambiguous (is 0.5 half or 0.5%?)"),
                );
                return None;
            }
        };
        let parsed = raw
            .strip_suffix('%')
            .and_then(|n| parse_basis_points(n.trim()));
        match parsed.and_then(Weight::from_basis_points) {
            Some(w) => Some(w),
            None => {
                self.error_hint(
                    location(node),
                    format!("{what}: `{raw}` is not a percentage"),
                    hint,
                );
                None
            }
        }
    }

    pub fn boolean(&mut self, node: &Node<'_>, what: &str) -> Option<bool> {
        match self.scalar(node, what)? {
            Scalar::Boolean(b) => Some(*b),
            other => {
                let shown = scalar_text(other);
                self.error(
                    location(node),
                    format!("{what}: expected true or false, found `{shown}`"),
                );
                None
            }
        }
    }

    pub fn integer(&mut self, node: &Node<'_>, what: &str, min: i64, max: i64) -> Option<i64> {
        match self.scalar(node, what)? {
            Scalar::Integer(i) if (min..=max).contains(i) => Some(*i),
            other => {
                let shown = scalar_text(other);
                self.error(
                    location(node),
                    format!("{what}: expected a whole number from {min} to {max}, found `{shown}`"),
                );
                None
            }
        }
    }

    pub fn sequence<'n, 'a>(&mut self, node: &'n Node<'a>, what: &str) -> Option<&'n [Node<'a>]> {
        match &node.data {
            YamlData::Sequence(items) => Some(items),
            other => {
                self.error(
                    location(node),
                    format!("{what}: expected a list, found {}", describe(other)),
                );
                None
            }
        }
    }

    /// A value given as one item or as a list of them (`stable: URL` or
    /// `stable: [URL, ...]`): the items. An empty list is an error, `hint` saying what
    /// to give.
    pub fn one_or_more<'n, 'a>(
        &mut self,
        node: &'n Node<'a>,
        what: &str,
        hint: &str,
    ) -> Option<&'n [Node<'a>]> {
        let nodes = match &node.data {
            YamlData::Sequence(_) => self.sequence(node, what)?,
            _ => std::slice::from_ref(node),
        };
        if nodes.is_empty() {
            self.error_hint(location(node), format!("{what}: an empty list"), hint);
            return None;
        }
        Some(nodes)
    }

    pub fn fields<'n, 'a>(
        &mut self,
        node: &'n Node<'a>,
        section: &'static Section,
    ) -> Option<Fields<'n, 'a>> {
        let what = section.name;
        let YamlData::Mapping(map) = &node.data else {
            self.error(
                location(node),
                format!(
                    "{what}: expected a mapping of keys, found {}",
                    describe(&node.data)
                ),
            );
            return None;
        };
        let mut entries = Vec::with_capacity(map.len());
        for (key, value) in map {
            match &key.data {
                YamlData::Value(Scalar::String(k)) => entries.push(Entry {
                    key: k.to_string(),
                    at: location(key),
                    value,
                    used: false,
                }),
                other => self.error(
                    location(key),
                    format!("{what}: keys must be strings, found {}", describe(other)),
                ),
            }
        }
        Some(Fields {
            at: location(node),
            section,
            entries,
        })
    }
}

pub(crate) struct Entry<'n, 'a> {
    pub key: String,
    pub at: Location,
    pub value: &'n Node<'a>,
    used: bool,
}

/// The keys of one mapping, read against its [`Section`]. What is left at `finish` is
/// reported as unknown, with the closest key of the section as a hint.
pub(crate) struct Fields<'n, 'a> {
    pub at: Location,
    section: &'static Section,
    entries: Vec<Entry<'n, 'a>>,
}

impl<'n, 'a> Fields<'n, 'a> {
    pub fn take(&mut self, key: &'static str) -> Option<&'n Node<'a>> {
        debug_assert!(
            self.section.keys.contains(&key),
            "`{key}` is read but not declared in schema section `{}`",
            self.section.name
        );
        self.take_entry(key)
    }

    fn take_entry(&mut self, key: &str) -> Option<&'n Node<'a>> {
        let entry = self.entries.iter_mut().find(|e| e.key == key)?;
        entry.used = true;
        Some(entry.value)
    }

    pub fn require(&mut self, dec: &mut Decoder<'_>, key: &'static str) -> Option<&'n Node<'a>> {
        let found = self.take(key);
        if found.is_none() {
            dec.error(
                self.at,
                format!("{}: missing required key `{key}`", self.section.name),
            );
        }
        found
    }

    /// Every entry, for mappings whose keys are data (e.g. `env`), not a schema.
    pub fn take_all(&mut self) -> Vec<(String, Location, &'n Node<'a>)> {
        self.entries
            .iter_mut()
            .map(|e| {
                e.used = true;
                (e.key.clone(), e.at, e.value)
            })
            .collect()
    }

    /// The one key of `kinds` the mapping has (an item's or a channel's kind), or `None`
    /// after reporting why: none given (then every other key is reported unknown, so a
    /// misspelt kind gets its did-you-mean) or two.
    pub fn one_kind(
        &mut self,
        dec: &mut Decoder<'_>,
        kinds: &[&'static str],
        what: &str,
        unit: &str,
    ) -> Option<&'static str> {
        let present: Vec<&'static str> = kinds.iter().copied().filter(|k| self.has(k)).collect();
        match present.as_slice() {
            [kind] => Some(*kind),
            [] => {
                dec.error_hint(
                    self.at,
                    format!("{what}: no kind given"),
                    format!("a {unit} has exactly one of: {}", kinds.join(", ")),
                );
                for key in self.section.keys {
                    self.take(key);
                }
                let rest = Fields {
                    at: self.at,
                    section: self.section,
                    entries: std::mem::take(&mut self.entries),
                };
                rest.finish(dec);
                None
            }
            [first, second, ..] => {
                dec.error_hint(
                    self.key_location(second).unwrap_or(self.at),
                    format!("{what}: has both `{first}` and `{second}`"),
                    format!("one kind per {unit}: split it into two {unit}s"),
                );
                None
            }
        }
    }

    pub fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|e| e.key == key)
    }

    /// The key's own position (for errors about the key rather than its value).
    pub fn key_location(&self, key: &str) -> Option<Location> {
        self.entries.iter().find(|e| e.key == key).map(|e| e.at)
    }

    /// Reject keys reserved for capabilities this build does not have yet: silently
    /// ignoring one could skip a safety check the operator relies on.
    pub fn reject_reserved(&mut self, dec: &mut Decoder<'_>) {
        for (path, what) in RESERVED {
            let Some(key) = path
                .strip_prefix(self.section.path)
                .filter(|k| !k.contains('.'))
            else {
                continue;
            };
            if self.take_entry(key).is_some() {
                let at = self.key_location(key).unwrap_or(self.at);
                dec.error_hint(
                    at,
                    format!("`{key}` ({what}) is not available in this version of liftoff"),
                    "remove it; liftoff never ignores a setting it cannot enforce",
                );
            }
        }
    }

    /// Whether a reserved key is present (it is reported by `reject_reserved`).
    pub fn has_reserved(&self) -> bool {
        RESERVED.iter().any(|(path, _)| {
            path.strip_prefix(self.section.path)
                .is_some_and(|k| !k.contains('.') && self.has(k))
        })
    }

    pub fn finish(self, dec: &mut Decoder<'_>) {
        for entry in self.entries.iter().filter(|e| !e.used) {
            let path = format!("{}{}", self.section.path, entry.key);
            if let Some((_, now)) = crate::schema::REPLACED.iter().find(|(p, _)| *p == path) {
                let message = format!(
                    "{}: `{}` is no longer accepted",
                    self.section.name, entry.key
                );
                dec.error_hint(entry.at, message, *now);
                continue;
            }
            let known = self.section.keys;
            let message = format!("{}: unknown key `{}`", self.section.name, entry.key);
            match did_you_mean(&entry.key, known) {
                Some(guess) => {
                    dec.error_hint(entry.at, message, format!("did you mean `{guess}`?"))
                }
                None => dec.error_hint(
                    entry.at,
                    message,
                    format!("known keys here: {}", known.join(", ")),
                ),
            }
        }
    }
}

/// Names that tell a list's entries apart (steps, checklist items): given names are
/// claimed as they are; a derived name that repeats becomes `NAME #2`, `NAME #3`, ...
#[derive(Default)]
pub(crate) struct UniqueNames {
    taken: HashSet<String>,
    /// The last number given to each derived name: the next repeat counts on from there,
    /// so numbering n repeats costs O(n), not O(n²).
    last: HashMap<String, usize>,
}

impl UniqueNames {
    /// Claims a given name; false when it is already taken.
    pub fn claim(&mut self, name: &str) -> bool {
        self.taken.insert(name.to_string())
    }

    /// `base`, or `base #N` with the smallest N (from 2) not taken yet.
    pub fn derive(&mut self, base: String) -> String {
        if !self.taken.contains(&base) {
            self.taken.insert(base.clone());
            return base;
        }
        let n = self.last.entry(base.clone()).or_insert(1);
        loop {
            *n += 1;
            let name = format!("{base} #{n}");
            if !self.taken.contains(&name) {
                self.taken.insert(name.clone());
                return name;
            }
        }
    }
}

/// `${NAME}` at the start of `s`: the name and the reference's length in bytes. Reads
/// no further than the name, so scanning a string of many `${` stays linear.
pub(crate) fn parse_reference(s: &str) -> Option<(&str, usize)> {
    let body = s.strip_prefix("${")?;
    let end = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(body.len());
    let name = &body[..end];
    let valid = body[end..].starts_with('}')
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    valid.then_some((name, end + 3))
}

/// An `http://` or `https://` URL (https verified against the system's roots).
pub(crate) fn check_http_url(
    dec: &mut Decoder<'_>,
    node: &Node<'_>,
    what: &str,
    url: &Text,
    example: &str,
) -> bool {
    if url.known().may_start_with(crate::checks::HTTP_SCHEMES) {
        return true;
    }
    dec.error_hint(
        location(node),
        format!("{what}: `{url}` is not an http or https URL"),
        format!("e.g. `{example}`"),
    );
    false
}

/// `"5"` → 500, `"0.5"` → 50, `"12.25"` → 1225; at most two decimals.
fn parse_basis_points(number: &str) -> Option<u16> {
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || frac.len() > 2 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u32 = whole.parse().ok()?;
    let frac: u32 = format!("{frac:0<2}").parse().ok()?;
    u16::try_from(whole.checked_mul(100)?.checked_add(frac)?).ok()
}

fn describe<'a>(data: &YamlData<'a, Node<'a>>) -> &'static str {
    match data {
        YamlData::Value(s) => describe_scalar(s),
        YamlData::Sequence(_) => "a list",
        YamlData::Mapping(_) => "a mapping",
        YamlData::Alias(_) => "an alias",
        _ => "an unsupported value",
    }
}

fn describe_scalar(s: &Scalar<'_>) -> &'static str {
    match s {
        Scalar::Null => "nothing (null)",
        Scalar::Boolean(_) => "a boolean",
        Scalar::Integer(_) => "a number",
        Scalar::FloatingPoint(_) => "a number",
        Scalar::String(_) => "a string",
    }
}

fn scalar_text(s: &Scalar<'_>) -> String {
    match s {
        Scalar::Null => "null".into(),
        Scalar::Boolean(b) => b.to_string(),
        Scalar::Integer(i) => i.to_string(),
        Scalar::FloatingPoint(f) => f.to_string(),
        Scalar::String(s) => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basis_points() {
        assert_eq!(parse_basis_points("5"), Some(500));
        assert_eq!(parse_basis_points("0.5"), Some(50));
        assert_eq!(parse_basis_points("12.25"), Some(1225));
        assert_eq!(parse_basis_points("100"), Some(10_000));
        assert_eq!(parse_basis_points("0.001"), None);
        assert_eq!(parse_basis_points("-1"), None);
        assert_eq!(parse_basis_points(".5"), None);
        assert_eq!(parse_basis_points("abc"), None);
    }

    #[test]
    fn references() {
        assert_eq!(parse_reference("${DB_URL} rest"), Some(("DB_URL", 9)));
        assert_eq!(parse_reference("${1X}"), None);
        assert_eq!(parse_reference("${X:-default}"), None);
        assert_eq!(parse_reference("$HOME"), None);
    }
}
