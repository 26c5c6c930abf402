//! docs/plan.md is the plan format's reference: these tests fail when it stops matching
//! what the parser accepts (a key without a table row, a reserved key not mentioned, an
//! example that no longer parses or no longer shows every key).

use std::sync::LazyLock;

use liftoff_plan::schema::{RESERVED, SECTIONS};

static DOC: LazyLock<String> = LazyLock::new(|| {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/plan.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
});

/// The first ```yaml fenced block: the complete annotated example.
fn example() -> &'static str {
    let start = DOC
        .find("```yaml\n")
        .expect("docs/plan.md has a ```yaml block")
        + "```yaml\n".len();
    let len = DOC[start..]
        .find("\n```")
        .expect("the ```yaml block is closed");
    &DOC[start..start + len + 1]
}

#[test]
fn every_accepted_key_has_a_table_row() {
    let missing: Vec<String> = SECTIONS
        .iter()
        .flat_map(|s| s.keys.iter().map(move |k| format!("{}{k}", s.path)))
        .filter(|key| {
            let row = format!("| `{key}`");
            !DOC.lines().any(|line| {
                line.strip_prefix(&row)
                    .is_some_and(|rest| rest.starts_with(" |") || rest.starts_with('|'))
            })
        })
        .collect();
    assert!(
        missing.is_empty(),
        "docs/plan.md has no table row (`| `KEY` | ...`) for: {missing:?}"
    );
}

#[test]
fn every_reserved_key_is_documented() {
    let missing: Vec<&str> = RESERVED
        .iter()
        .map(|(key, _)| *key)
        .filter(|key| !DOC.contains(&format!("`{key}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/plan.md does not mention these reserved keys: {missing:?}"
    );
}

#[test]
fn the_example_plan_parses() {
    let env = |name: &str| Some(format!("value-of-{name}"));
    if let Err(e) = liftoff_plan::parse(example(), &env) {
        panic!(
            "the example in docs/plan.md does not parse:\n{}",
            e.render("docs/plan.md (first yaml block)")
        );
    }
}

#[test]
fn the_example_plan_uses_every_key() {
    let example = example();
    let unused: Vec<String> = SECTIONS
        .iter()
        .flat_map(|s| s.keys.iter().map(move |k| (s.path, *k)))
        .filter(|(_, key)| !example.contains(&format!("{key}:")))
        .map(|(path, key)| format!("{path}{key}"))
        .collect();
    assert!(
        unused.is_empty(),
        "the example in docs/plan.md does not use: {unused:?}"
    );
}
