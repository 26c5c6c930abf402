//! `after:` follow-ups: scheduled when their step succeeds, run by the daemon when due
//! (after the launch ended, across a kill -9), cancellable, cancelled by a rollback.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{Daemon, stderr, stdout, workdir};

const ROUTER: &str = "router: { kind: command, command: \"./set-weight.sh {weight}\" }\n";

fn plan(delay: &str, fail_later: bool) -> String {
    let failing = if fail_later {
        "  - name: smoke\n    run: exit 4\n"
    } else {
        ""
    };
    format!(
        "version: 1
name: follow-ups
service: shop
{ROUTER}steps:
  - name: go live
    run: echo live
    after:
      delay: {delay}
      run: echo \"old version stopped for $LIFTOFF_SERVICE\" > stopped.txt
      timeout: 10s
  - traffic: 100%
{failing}"
    )
}

fn launch(daemon: &Daemon, dir: &Path, plan: &str) -> String {
    std::fs::write(dir.join("plan.yaml"), plan).unwrap();
    let out = daemon.cli(dir, &["launch", "plan.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).trim().to_string()
}

fn schedules(daemon: &Daemon, dir: &Path, id: &str) -> Vec<serde_json::Value> {
    let out = daemon.cli(
        dir,
        &["schedule", "list", "--launch", id, "--output", "json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_follow_up_runs_when_due_after_the_launch_ended_even_across_a_kill_dash_nine() {
    let dir = workdir();
    let state = dir.path().join("state");
    let mut daemon = Daemon::start(&state);
    let id = launch(&daemon, dir.path(), &plan("2s", false));
    let s = daemon.ended(dir.path(), &id, Duration::from_secs(20));
    assert_eq!(s["status"], "succeeded");
    // The deployment log: a line per event, UTC times, named after service, id and time.
    let log = std::path::PathBuf::from(s["deployment_log"].as_str().unwrap());
    let name = log.file_name().unwrap().to_str().unwrap();
    assert!(log.starts_with(state.join("logs/deployment")), "{log:?}");
    assert!(
        name.starts_with(&format!("shop-{id}-20")) && name.ends_with(".log"),
        "{name}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].ends_with("Z  launch started"), "{text}");
    assert!(
        text.contains("`go live` scheduled its follow-up for"),
        "{text}"
    );
    assert!(
        lines
            .last()
            .unwrap()
            .ends_with("launch succeeded: all steps succeeded"),
        "{text}"
    );
    let list = schedules(&daemon, dir.path(), &id);
    assert_eq!(list.len(), 1, "{list:#?}");
    assert_eq!(list[0]["status"], "pending");
    assert_eq!(list[0]["step"], "go live");
    assert!(
        !dir.path().join("stopped.txt").exists(),
        "not before it is due"
    );

    // The daemon dies before it is due; the next one runs it.
    daemon.kill9();
    let daemon = Daemon::start(&state);
    wait_until(Duration::from_secs(20), "the follow-up", || {
        schedules(&daemon, dir.path(), &id)[0]["status"] == "succeeded"
    });
    assert_eq!(
        std::fs::read_to_string(dir.path().join("stopped.txt")).unwrap(),
        "old version stopped for shop\n",
        "run in the plan's directory with the launch's environment"
    );
}

#[test]
fn a_follow_up_can_be_cancelled_and_a_rollback_cancels_them() {
    let dir = workdir();
    let daemon = Daemon::start(&dir.path().join("state"));
    let id = launch(&daemon, dir.path(), &plan("1h", false));
    daemon.ended(dir.path(), &id, Duration::from_secs(20));
    let follow_up = schedules(&daemon, dir.path(), &id)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = daemon.cli(
        dir.path(),
        &["schedule", "cancel", &follow_up, "--by", "ana"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let row = &schedules(&daemon, dir.path(), &id)[0];
    assert_eq!(row["status"], "cancelled");
    assert_eq!(row["result"], "cancelled by ana");
    let again = daemon.cli(dir.path(), &["schedule", "cancel", &follow_up]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "only a pending follow-up can be cancelled"
    );
    assert!(
        stderr(&again).contains("is cancelled, not pending"),
        "{}",
        stderr(&again)
    );

    // The step succeeded, then the launch rolled back: stopping the old version must not
    // happen.
    let id = launch(&daemon, dir.path(), &plan("1s", true));
    let s = daemon.ended(dir.path(), &id, Duration::from_secs(20));
    assert_eq!(s["status"], "rolled-back");
    let row = &schedules(&daemon, dir.path(), &id)[0];
    assert_eq!(row["status"], "cancelled", "{row:#}");
    assert_eq!(row["result"], "cancelled: the launch ended rolled-back");
}
