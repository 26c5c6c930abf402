//! docs/plan.md is the plan format's reference: these tests fail when it stops matching
//! what the parser accepts (a key without a table row, a reserved key not mentioned, an
//! example that no longer parses, or keys no example shows).

use std::sync::LazyLock;

use liftoff_plan::schema::{REPLACED, RESERVED, SECTIONS};

static DOC: LazyLock<String> = LazyLock::new(|| {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/plan.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
});

/// Every ```yaml block that is a whole plan (starts with `version:`): the examples.
fn examples() -> Vec<&'static str> {
    DOC.split("```yaml\n")
        .skip(1)
        .filter_map(|block| block.split_once("\n```").map(|(body, _)| body))
        .filter(|body| body.lines().any(|l| l.starts_with("version:")))
        .collect()
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
fn every_replaced_key_says_what_replaced_it() {
    let missing: Vec<&str> = REPLACED
        .iter()
        .map(|(key, _)| *key)
        .filter(|key| !DOC.contains(&format!("`{key}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/plan.md does not mention these replaced keys: {missing:?}"
    );
}

#[test]
fn every_example_plan_parses() {
    let env = |name: &str| Some(format!("value-of-{name}"));
    let examples = examples();
    assert!(
        examples.len() >= 2,
        "docs/plan.md should show a command-router and a builtin-router plan"
    );
    for (i, example) in examples.iter().enumerate() {
        if let Err(e) = liftoff_plan::parse(example, &env) {
            panic!(
                "example {} in docs/plan.md does not parse:\n{}",
                i + 1,
                e.render("docs/plan.md")
            );
        }
    }
}

#[test]
fn the_examples_together_use_every_key() {
    let examples = examples();
    let unused: Vec<String> = SECTIONS
        .iter()
        .flat_map(|s| s.keys.iter().map(move |k| (s.path, *k)))
        .filter(|(_, key)| !examples.iter().any(|e| e.contains(&format!("{key}:"))))
        .map(|(path, key)| format!("{path}{key}"))
        .collect();
    assert!(
        unused.is_empty(),
        "no example in docs/plan.md uses: {unused:?}"
    );
}
