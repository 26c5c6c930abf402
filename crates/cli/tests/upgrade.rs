//! Today's daemon on a state directory the first release wrote and was killed in
//! (`crates/store/tests/fixtures/first-release/`, see its README): the database is
//! migrated once, the finished launches read back, and the three launches the first
//! release left in flight carry on to the end.

mod support;

use std::path::Path;
use std::time::Duration;

use support::{Daemon, read, stderr, stdout};

const DONE: &str = "69fc347739";
const ROLLED_BACK: &str = "0dfd6edc17";
const APPROVAL: &str = "92e83af266";
const PAUSED: &str = "edfcd42827";
const RUNNING: &str = "07389f7f9c";

const UPGRADED: &str = "state database upgraded to a new schema version";

/// A copy of the fixture, with the modes a state directory has (git keeps neither).
fn first_release_state() -> tempfile::TempDir {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../store/tests/fixtures/first-release");
    let dir = tempfile::tempdir().unwrap();
    for file in ["liftoff.db", "liftoff.db-wal", "admin.token"] {
        let to = dir.path().join(file);
        std::fs::copy(from.join(file), &to).unwrap();
        std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    dir
}

/// `(item[a], item[b])` for each item of a JSON array.
fn columns(list: &serde_json::Value, a: &str, b: &str) -> Vec<(String, String)> {
    let text = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    list.as_array()
        .unwrap()
        .iter()
        .map(|item| (text(item, a), text(item, b)))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Wait until the launch ends; it must succeed with its steps as `steps` says.
fn succeeds(daemon: &Daemon, cwd: &Path, id: &str, steps: &[(&str, &str)]) -> serde_json::Value {
    let s = daemon.ended(cwd, id, Duration::from_secs(20));
    assert_eq!(s["status"], "succeeded", "{s:#}");
    assert_eq!(columns(&s["steps"], "name", "status"), pairs(steps));
    s
}

#[test]
fn the_first_releases_launches_carry_on_under_todays_daemon() {
    let state = first_release_state();
    let work = tempfile::tempdir().unwrap();
    let cwd = work.path();
    let mut daemon = Daemon::start(state.path());
    let log = || read(&state.path().join("daemon.log"));
    assert_eq!(log().matches(UPGRADED).count(), 1, "{}", log());

    // What ended under the first release reads back as it was.
    let done = daemon.status_json(cwd, DONE);
    assert_eq!(done["status"], "succeeded", "{done:#}");
    assert_eq!(done["weight"], 100.0, "{done:#}");
    let rolled_back = daemon.status_json(cwd, ROLLED_BACK);
    assert_eq!(rolled_back["status"], "rolled-back", "{rolled_back:#}");
    assert_eq!(rolled_back["rollback"][0]["status"], "succeeded");

    // Its pause ended long ago (the first release journaled the deadline): it goes on.
    let steps = [
        ("warm caches", "succeeded"),
        ("pause 20s", "succeeded"),
        ("after pause", "succeeded"),
    ];
    succeeds(&daemon, cwd, PAUSED, &steps);

    // Still waiting for its approval, which today's CLI gives.
    let s = daemon.wait_for(cwd, APPROVAL, Duration::from_secs(20), |s| {
        s["status"] == "waiting-approval"
    });
    assert_eq!(s["current_step"], "sre sign-off", "{s:#}");
    let out = daemon.cli(
        cwd,
        &["approve", APPROVAL, "--as", "sre", "--by", "upgrade-test"],
    );
    assert!(out.status.success(), "approve: {}", stderr(&out));
    let steps = [
        ("traffic 10%", "succeeded"),
        ("sre sign-off", "succeeded"),
        ("after approval", "succeeded"),
        ("traffic 100%", "succeeded"),
    ];
    let approved = succeeds(&daemon, cwd, APPROVAL, &steps);
    assert_eq!(approved["weight"], 100.0, "{approved:#}");

    // Killed in a command that is not idempotent: a human says what happened.
    let s = daemon.wait_for(cwd, RUNNING, Duration::from_secs(20), |s| {
        s["status"] == "needs-decision"
    });
    assert!(
        s["decision_needed"]
            .as_str()
            .unwrap()
            .contains("`long migration`"),
        "{s:#}"
    );
    let out = daemon.cli(
        cwd,
        &["resume", RUNNING, "--skip-step", "--by", "upgrade-test"],
    );
    assert!(out.status.success(), "resume: {}", stderr(&out));
    let steps = [
        ("prepare", "succeeded"),
        ("long migration", "skipped"),
        ("after migration", "succeeded"),
    ];
    succeeds(&daemon, cwd, RUNNING, &steps);

    // A restart finds the database current: no second upgrade, the same history.
    assert!(daemon.stop().success());
    let daemon = Daemon::start(state.path());
    assert_eq!(log().matches(UPGRADED).count(), 1, "{}", log());
    let out = daemon.cli(cwd, &["history", "--output", "json"]);
    assert!(out.status.success(), "history: {}", stderr(&out));
    let history: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let mut statuses = columns(&history, "id", "status");
    statuses.sort();
    assert_eq!(
        statuses,
        pairs(&[
            (RUNNING, "succeeded"),
            (ROLLED_BACK, "rolled-back"),
            (DONE, "succeeded"),
            (APPROVAL, "succeeded"),
            (PAUSED, "succeeded"),
        ])
    );
}
