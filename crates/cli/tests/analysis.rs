//! Gates and triggers against real traffic through the builtin router.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{Daemon, Proc, demo_app as app, set_error_rate, stderr};

/// Steady traffic from many sticky users through the router until dropped.
fn load(listen: &str) -> Proc {
    support::load_users(&format!("http://{listen}/checkout"), 4)
}

fn plan(p1: u16, p2: u16, steps: &str, rollback: &str) -> String {
    format!(
        "version: 1\nname: analysed\nservice: shop\nrouter:\n  kind: builtin\n  listen: 127.0.0.1:0\n  stable: http://127.0.0.1:{p1}\n  candidate: http://127.0.0.1:{p2}\n  sticky: {{ header: X-User-Id }}\nsteps:\n{steps}rollback:\n{rollback}"
    )
}

/// How many of the launch's journaled traffic samples (one each 2 s) saw the candidate
/// serve: two mean its triggers have judged at least 2 s of its traffic.
fn candidate_samples(daemon: &Daemon, id: &str) -> usize {
    daemon
        .journal(id)
        .iter()
        .filter(|e| {
            e["kind"] == "sampled"
                && e["summary"]
                    .as_str()
                    .is_some_and(|s| s.contains("candidate "))
        })
        .count()
}

/// Requests the candidate served in the last 10 s, as status shows them.
fn candidate_requests(status: &serde_json::Value) -> u64 {
    status["traffic"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["version"] == "candidate")
        .filter_map(|v| v["last_10s"]["requests"].as_u64())
        .sum()
}

fn launch(daemon: &Daemon, work: &std::path::Path, plan: &str) -> String {
    std::fs::write(work.join("plan.yaml"), plan).unwrap();
    let out = daemon.cli(work, &["launch", "plan.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A launch of `rollback` holding at 50% for an approval, and users sending traffic
/// through its router (until the returned load is dropped).
fn held_at_half(
    daemon: &Daemon,
    work: &std::path::Path,
    (p1, p2): (u16, u16),
    rollback: &str,
) -> (String, Proc) {
    let steps = "  - traffic: 50%\n  - approve: { role: sre }\n";
    let id = launch(daemon, work, &plan(p1, p2, steps, rollback));
    let s = daemon.wait_for(work, &id, Duration::from_secs(10), |s| {
        s["status"] == "waiting-approval"
    });
    let traffic = load(s["traffic"]["listen"].as_str().unwrap());
    (id, traffic)
}

#[test]
fn a_trigger_rolls_back_within_four_seconds_of_the_error_onset() {
    let (_s, p1) = app("1");
    let (_c, p2) = app("2");
    let work = support::workdir();
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path());
    let (id, _traffic) = held_at_half(
        &daemon,
        work.path(),
        (p1, p2),
        "  on: ['error_rate > 5% over 2s for 3s']\n  check_every: 200ms\n  steps:\n    - run: touch rolled-back\n",
    );
    // Healthy traffic first, sampled while the triggers watch: no trigger.
    support::wait_until(
        Duration::from_secs(10),
        "a sample of healthy traffic",
        || candidate_samples(&daemon, &id) >= 1,
    );
    assert_eq!(
        daemon.status_json(work.path(), &id)["status"],
        "waiting-approval"
    );

    let onset = jiff::Timestamp::now();
    let started = Instant::now();
    set_error_rate(p2, "0.5");
    let s = daemon.ended(work.path(), &id, Duration::from_secs(10));
    assert_eq!(s["status"], "rolled-back", "{s:#}");
    let reason = s["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("trigger `error_rate > 5% over 2s for 3s` fired: candidate error_rate"),
        "{reason}"
    );
    let reverted: jiff::Timestamp = s["rollback"][0]["ended_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let reaction = reverted.duration_since(onset).as_secs_f64();
    println!(
        "error onset to 100% stable: {reaction:.2}s (test saw it after {:.2}s)",
        started.elapsed().as_secs_f64()
    );
    assert!(
        reaction <= 4.0,
        "rolled back {reaction:.2}s after the onset"
    );
    assert_eq!(s["traffic"]["weight"], 0.0);
    assert!(work.path().join("rolled-back").exists());

    // A new launch right after is judged on its own traffic, not on the errors that
    // rolled the last one back (they are still inside the 2 s window).
    set_error_rate(p2, "0");
    let next = launch(
        &daemon,
        work.path(),
        // No `for`: a single stale sample would fire it at once.
        &plan(
            p1,
            p2,
            "  - traffic: 50%\n  - approve: { role: sre }\n",
            "  on: ['error_rate > 5% over 2s']\n  check_every: 200ms\n  steps: []\n",
        ),
    );
    daemon.wait_for(work.path(), &next, Duration::from_secs(10), |s| {
        s["status"] == "waiting-approval"
    });
    // Its own traffic judged through the 2 s window the old errors were in.
    support::wait_until(
        Duration::from_secs(10),
        "two samples of its traffic",
        || candidate_samples(&daemon, &next) >= 2,
    );
    assert_eq!(
        daemon.status_json(work.path(), &next)["status"],
        "waiting-approval",
        "rolled back for the previous launch's errors"
    );
    assert!(daemon.cli(work.path(), &["abort", &next]).status.success());

    // Why: the journal has the crossing and the firing with their values.
    let journal = Command::new("curl")
        .args([
            "-s",
            &format!("{}/api/v1/launches/{id}/journal", daemon.url),
        ])
        .output()
        .unwrap();
    let journal = String::from_utf8(journal.stdout).unwrap();
    assert!(
        journal.contains("\"kind\":\"evaluated\"") && journal.contains("crossed"),
        "{journal}"
    );
    assert!(journal.contains("\"kind\":\"trigger_fired\""), "{journal}");
}

#[test]
fn a_rollback_in_the_first_second_of_traffic_reports_the_spike_the_trigger_judged() {
    // Issue 18: the demo's bad release was rolled back before the traffic sampler's
    // first sample, and its report said the plan had no builtin router.
    let (_s, p1) = app("1");
    let (_c, p2) = app("2");
    set_error_rate(p2, "1");
    let work = support::workdir();
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path());
    let (id, _traffic) = held_at_half(
        &daemon,
        work.path(),
        (p1, p2),
        "  on: ['error_rate > 5% over 2s']\n  check_every: 100ms\n  steps: []\n",
    );
    let s = daemon.ended(work.path(), &id, Duration::from_secs(10));
    assert_eq!(s["status"], "rolled-back", "{s:#}");

    let report = |format: &str| {
        let out = Command::new("curl")
            .args([
                "-s",
                &format!("{}/api/v1/launches/{id}/report?format={format}", daemon.url),
            ])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let json: serde_json::Value = serde_json::from_str(&report("json")).unwrap();
    let judged = json["rollback"]["trigger"]["judged"].as_array().unwrap();
    let candidate = judged
        .iter()
        .find(|w| w["version"] == "candidate")
        .unwrap_or_else(|| panic!("the candidate's window: {json:#}"));
    let requests = candidate["requests"].as_u64().unwrap();
    assert!(requests > 0, "{candidate}");
    assert_eq!(candidate["failed"].as_u64(), Some(requests), "{candidate}");
    assert_eq!(json["charts"]["no_samples_reason"], serde_json::Value::Null);

    let md = report("md");
    assert!(md.contains("What the trigger judged as it fired"), "{md}");
    assert!(md.contains("- Error rate, candidate: "), "{md}");
    assert!(!md.contains("No traffic samples"), "{md}");
    let html = report("html");
    assert!(html.contains("<figcaption>Error rate by version</figcaption>"));
}

#[test]
fn a_pause_trigger_holds_the_launch_and_keeps_traffic() {
    let (_s, p1) = app("1");
    let (_c, p2) = app("2");
    let work = support::workdir();
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path());
    let id = launch(
        &daemon,
        work.path(),
        &plan(
            p1,
            p2,
            "  - traffic: 50%\n  - pause: 2s\n  - traffic: 100%\n",
            "  on: [{ when: 'error_rate > 5% over 2s for 500ms', action: pause }]\n  check_every: 200ms\n",
        ),
    );
    let s = daemon.wait_for(work.path(), &id, Duration::from_secs(10), |s| {
        s["weight"] == 50.0
    });
    let _traffic = load(s["traffic"]["listen"].as_str().unwrap());
    set_error_rate(p2, "0.5");
    let s = daemon.wait_for(work.path(), &id, Duration::from_secs(10), |s| {
        s["status"] == "paused" && s["current_step"].is_null()
    });
    assert_eq!(
        s["weight"], 50.0,
        "a pause trigger leaves traffic where it is: {s:#}"
    );
    assert_eq!(
        s["steps"][2]["status"], "pending",
        "nothing new starts while held"
    );
    set_error_rate(p2, "0");
    let out = daemon.cli(work.path(), &["resume", &id, "--by", "ana"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = daemon.ended(work.path(), &id, Duration::from_secs(10));
    assert_eq!(s["status"], "succeeded", "{s:#}");
}

#[test]
fn an_analyze_step_passes_a_good_candidate_and_fails_a_bad_one() {
    let (_s, p1) = app("1");
    let (_c, p2) = app("2");
    let work = support::workdir();
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path());
    let steps = "  - traffic: 50%\n  - approve: { role: go }\n  - analyze: { for: 2s, interval: 500ms, min_requests: 5, gates: ['error_rate < 2%'], compare: { against: stable, confidence: 95% } }\n  - traffic: 100%\n";
    let good = launch(&daemon, work.path(), &plan(p1, p2, steps, "  steps: []\n"));
    let s = daemon.wait_for(work.path(), &good, Duration::from_secs(10), |s| {
        s["status"] == "waiting-approval"
    });
    let _traffic = load(s["traffic"]["listen"].as_str().unwrap());
    daemon.wait_for(work.path(), &good, Duration::from_secs(10), |s| {
        candidate_requests(s) >= 20
    });
    assert!(
        daemon
            .cli(work.path(), &["approve", &good, "--as", "go"])
            .status
            .success()
    );
    let s = daemon.ended(work.path(), &good, Duration::from_secs(15));
    assert_eq!(s["status"], "succeeded", "{s:#}");
    assert!(
        s["steps"][2]["message"]
            .as_str()
            .unwrap()
            .contains("0 failed"),
        "{s:#}"
    );

    set_error_rate(p2, "0.2");
    let bad = launch(&daemon, work.path(), &plan(p1, p2, steps, "  steps: []\n"));
    daemon.wait_for(work.path(), &bad, Duration::from_secs(10), |s| {
        s["status"] == "waiting-approval"
    });
    assert!(
        daemon
            .cli(work.path(), &["approve", &bad, "--as", "go"])
            .status
            .success()
    );
    let s = daemon.ended(work.path(), &bad, Duration::from_secs(15));
    assert_eq!(s["status"], "rolled-back", "{s:#}");
    let reason = s["reason"].as_str().unwrap();
    assert!(
        reason.contains("analyze 2s") && reason.contains("failed evaluation"),
        "{reason}"
    );
    // Status says why, with the values: the failing evaluation is among the latest.
    let why = s["evaluations"].as_array().unwrap();
    assert!(
        why.iter().any(|e| e["subject"] == "error_rate < 2%"
            && e["verdict"] == "failed"
            && e["value"].as_f64().unwrap() > 0.02),
        "{why:#?}"
    );
    let text = String::from_utf8(daemon.cli(work.path(), &["status", &bad]).stdout).unwrap();
    assert!(
        text.contains("latest evaluations:")
            && text.contains("`error_rate < 2%` failed: candidate error_rate"),
        "{text}"
    );
}

#[test]
fn too_little_traffic_is_inconclusive_and_holds_for_a_human() {
    let (_s, p1) = app("1");
    let (_c, p2) = app("2");
    let work = support::workdir();
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path());
    let id = launch(
        &daemon,
        work.path(),
        &plan(
            p1,
            p2,
            "  - traffic: 5%\n  - analyze: { for: 5s, interval: 200ms, gates: ['error_rate < 1%'], inconclusive_limit: 2 }\n  - traffic: 100%\n",
            "  steps: []\n",
        ),
    );
    // No traffic at all: never a pass.
    let s = daemon.wait_for(work.path(), &id, Duration::from_secs(10), |s| {
        s["status"] == "paused"
    });
    assert_eq!(s["steps"][2]["status"], "pending");
    assert_eq!(s["weight"], 5.0);
    assert!(daemon.cli(work.path(), &["abort", &id]).status.success());
}
