//! docs/plan.md shows liftoff's default messages; this keeps them equal to the code's.

use liftoff_notify::{Event, default_template};

fn documented(event: Event, status_page: bool) -> String {
    let text = default_template(event, status_page).text();
    let mut block = format!("{}:\n", event.name());
    for line in text.lines() {
        block.push_str(&format!("  {line}\n"));
    }
    block
}

#[test]
fn the_plan_reference_shows_every_default_message() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/plan.md");
    let doc = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let mut missing = Vec::new();
    for event in Event::ALL {
        let team = documented(event, false);
        if !doc.contains(&team) {
            missing.push(team);
        }
    }
    for event in [
        Event::LaunchStarted,
        Event::RollbackStarted,
        Event::RollbackCompleted,
        Event::Succeeded,
        Event::Failed,
    ] {
        let public = documented(event, true);
        if !doc.contains(&public) {
            missing.push(public);
        }
    }
    assert!(
        missing.is_empty(),
        "docs/plan.md (Notifications, Templates) lacks these defaults, as written:\n{}",
        missing.join("\n")
    );
}
