//! A launch ramps a feature flag 5% → 25% → 100% through analysis gates, the way it
//! ramps traffic; a `disable_flag` trigger is the kill switch when errors appear, and
//! the flag's audit log shows who changed it and why.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{Daemon, demo_app, free_port, set_error_rate, spawn, stderr, stdout, workdir};

fn plan(listen: u16, stable: u16, candidate: u16) -> String {
    format!(
        "version: 1
name: new checkout behind a flag
service: shop
router:
  kind: builtin
  listen: 127.0.0.1:{listen}
  stable: http://127.0.0.1:{stable}
  candidate: http://127.0.0.1:{candidate}
steps:
  - traffic: 100%
  - flag: {{ name: new_checkout, percent: 5% }}
  - analyze: {{ for: 1s, interval: 500ms, gates: [\"error_rate < 5%\"], min_requests: 5 }}
  - flag: {{ name: new_checkout, percent: 25% }}
  - analyze: {{ for: 1s, interval: 500ms, gates: [\"error_rate < 5%\"], min_requests: 5 }}
  - flag: {{ name: new_checkout, percent: 100% }}
  - bake: {{ for: 3s }}
rollback:
  check_every: 100ms
  on:
    - {{ when: \"error_rate > 10% over 1s\", disable_flag: new_checkout }}
"
    )
}

fn flag(daemon: &Daemon, dir: &std::path::Path) -> serde_json::Value {
    let out = daemon.cli(dir, &["flags", "get", "new_checkout", "--output", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn history(daemon: &Daemon, dir: &std::path::Path) -> Vec<serde_json::Value> {
    let out = daemon.cli(
        dir,
        &["flags", "history", "new_checkout", "--output", "json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_launch_ramps_a_flag_and_a_trigger_kills_it_with_the_cause_audited() {
    let dir = workdir();
    let daemon = Daemon::start(&dir.path().join("state"));
    let (_stable, stable) = demo_app("1");
    let (_candidate, candidate) = demo_app("2");
    let listen = free_port();
    let _load = spawn(Command::new(support::BIN).args([
        "load",
        &format!("http://127.0.0.1:{listen}/"),
        "--concurrency",
        "4",
    ]));
    std::fs::write(
        dir.path().join("plan.yaml"),
        plan(listen, stable, candidate),
    )
    .unwrap();
    let out = daemon.cli(dir.path(), &["launch", "plan.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();

    // Ramped through its gates to 100%, then errors appear during the bake.
    daemon.wait_for(dir.path(), &id, Duration::from_secs(30), |s| {
        s["current_step"] == "bake 3s"
    });
    let f = flag(&daemon, dir.path());
    assert_eq!(f["definition"]["rollout"]["percent"], 100.0, "{f:#}");
    assert_eq!(f["definition"]["enabled"], true, "{f:#}");
    let ramp: Vec<f64> = history(&daemon, dir.path())
        .iter()
        .rev()
        .filter_map(|h| h["after"]["rollout"]["percent"].as_f64())
        .collect();
    assert_eq!(ramp, [5.0, 25.0, 100.0], "each step audited in order");

    let injected = Instant::now();
    set_error_rate(candidate, "0.5");
    support::wait_until(Duration::from_secs(10), "the kill switch", || {
        flag(&daemon, dir.path())["definition"]["enabled"] == false
    });
    let took = injected.elapsed();
    println!("errors injected → flag off: {took:?}");
    assert!(
        took < Duration::from_secs(2),
        "the flag was turned off {took:?} after the errors began"
    );

    let h = history(&daemon, dir.path());
    let kill = &h[0];
    assert_eq!(kill["actor"], format!("launch {id}"), "{kill:#}");
    let cause = kill["cause"].as_str().unwrap();
    assert!(
        cause.starts_with("trigger `error_rate > 10% over 1s` fired: candidate error_rate"),
        "the audit names the trigger and the values that crossed it: {cause}"
    );
    assert_eq!(kill["before"]["enabled"], true);
    assert_eq!(kill["after"]["enabled"], false);

    // The launch goes on (a kill switch instead of a rollback) and the journal says why.
    let s = daemon.ended(dir.path(), &id, Duration::from_secs(20));
    assert_eq!(s["status"], "succeeded", "{s:#}");
    let text = stdout(&daemon.cli(dir.path(), &["status", &id]));
    assert!(text.contains("fired (disable_flag)"), "{text}");
}
