//! `monitor` steps: checkpoints judged at their times after the step began, each
//! journaled and notified; kept across a kill -9; a failed checkpoint rolls back.

mod support;

#[path = "../../notify/tests/support/mod.rs"]
mod receivers;

use std::process::Command;
use std::time::Duration;

use receivers::HttpReceiver;
use support::{Daemon, demo_app, free_port, set_error_rate, spawn, stderr, stdout, workdir};

fn plan(listen: u16, stable: u16, candidate: u16, hook: &str) -> String {
    format!(
        "version: 1
name: watch
service: shop
router:
  kind: builtin
  listen: 127.0.0.1:{listen}
  stable: http://127.0.0.1:{stable}
  candidate: http://127.0.0.1:{candidate}
notify:
  channels:
    - name: ops
      webhook: {hook}
      events: [checkpoint]
steps:
  - traffic: 100%
  - monitor:
      checkpoints: [1s, 3s, 4s]
      gates: [\"error_rate < 10%\"]
      window: 1s
      min_requests: 5
"
    )
}

fn checkpoints(daemon: &Daemon, id: &str) -> Vec<String> {
    daemon
        .journal(id)
        .iter()
        .filter(|e| e["kind"] == "checkpoint")
        .map(|e| e["summary"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn checkpoints_are_judged_once_each_across_a_restart_and_a_bad_one_rolls_back() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hooks = rt.block_on(HttpReceiver::ok());
    let dir = workdir();
    let state = dir.path().join("state");
    let mut daemon = Daemon::start(&state);
    let (_stable, stable) = demo_app("1");
    let (_candidate, candidate) = demo_app("2");
    let listen = free_port();
    let _load = spawn(Command::new(support::BIN).args([
        "load",
        &format!("http://127.0.0.1:{listen}/"),
        "--concurrency",
        "2",
    ]));
    std::fs::write(
        dir.path().join("plan.yaml"),
        plan(listen, stable, candidate, &hooks.url("/hook")),
    )
    .unwrap();
    let out = daemon.cli(dir.path(), &["launch", "plan.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();

    // The first checkpoint passes; then the daemon dies.
    support::wait_until(Duration::from_secs(20), "the first checkpoint", || {
        !checkpoints(&daemon, &id).is_empty()
    });
    daemon.kill9();
    let daemon = Daemon::start(&state);
    // The candidate goes bad before the second checkpoint.
    set_error_rate(candidate, "0.5");
    let s = daemon.ended(dir.path(), &id, Duration::from_secs(30));
    assert_eq!(s["status"], "rolled-back", "{s:#}");
    let list = checkpoints(&daemon, &id);
    assert_eq!(list.len(), 2, "each checkpoint judged once: {list:#?}");
    assert!(
        list[0].contains("checkpoint 1 passed: T+1s: All systems healthy"),
        "{list:#?}"
    );
    assert!(list[1].contains("checkpoint 2 FAILED: T+3s"), "{list:#?}");
    assert!(list[1].contains("error_rate < 10%"), "{list:#?}");
    let reason = s["reason"].as_str().unwrap();
    assert!(reason.contains("checkpoint 2 failed"), "{reason}");

    // Each checkpoint was told, with its verdict and when the next one is due.
    support::wait_until(Duration::from_secs(10), "two checkpoint notices", || {
        hooks.requests().len() >= 2
    });
    let notices: Vec<serde_json::Value> = hooks.requests().iter().map(|r| r.json()).collect();
    assert_eq!(notices[0]["event"], "checkpoint");
    let first = notices[0].to_string();
    assert!(first.contains("All systems healthy"), "{first}");
    assert!(
        notices[1].to_string().contains("FAILED"),
        "{:#}",
        notices[1]
    );
}
