//! A launch through liftoff's own router, end to end: real daemon, real backends.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{BIN, Daemon, demo_app as app, stderr};

/// Which version served each user: "1" or "2". One curl, one connection.
fn versions(listen: &str, users: std::ops::Range<usize>) -> Vec<String> {
    let mut cmd = Command::new("curl");
    cmd.arg("-s");
    for (n, i) in users.enumerate() {
        if n > 0 {
            cmd.arg("--next");
        }
        cmd.args([
            "-H",
            &format!("X-User-Id: user-{i}"),
            &format!("http://{listen}/checkout"),
        ]);
    }
    let out = cmd.output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.trim_start_matches("hello from v").to_string())
        .collect()
}

#[test]
fn a_launch_splits_real_traffic_sticky_and_the_split_survives_a_crash() {
    let (_v1, p1) = app("1");
    let (_v2, p2) = app("2");
    let work = support::workdir();
    let state = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(state.path());
    std::fs::write(
        work.path().join("plan.yaml"),
        format!(
            "version: 1\nname: shop-2\nservice: shop\nrouter:\n  kind: builtin\n  listen: 127.0.0.1:0\n  stable: http://127.0.0.1:{p1}\n  candidate: http://127.0.0.1:{p2}\n  sticky: {{ header: X-User-Id }}\n  health: {{ interval: 100ms }}\nsteps:\n  - traffic: 50%\n  - approve: {{ role: sre }}\n  - traffic: 100%\n"
        ),
    )
    .unwrap();
    let out = daemon.cli(work.path(), &["launch", "plan.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let s = daemon.wait_for(work.path(), &id, Duration::from_secs(10), |s| {
        s["status"] == "waiting-approval"
    });
    let listen = s["traffic"]["listen"].as_str().unwrap().to_string();
    assert_eq!(s["traffic"]["weight"], 50.0);

    let before = versions(&listen, 0..400);
    assert_eq!(before.len(), 400);
    let on_v2 = before.iter().filter(|v| *v == "2").count();
    assert!(
        (140..=260).contains(&on_v2),
        "about half the users on the candidate, got {on_v2}/400"
    );
    assert_eq!(
        versions(&listen, 0..400),
        before,
        "every user keeps their version"
    );

    let s = daemon.wait_for(work.path(), &id, Duration::from_secs(5), |s| {
        s["traffic"]["versions"][1]["health_checked"] == true
    });
    let figures = &s["traffic"]["versions"];
    assert_eq!(figures[0]["version"], "stable");
    assert_eq!(figures[1]["version"], "candidate");
    let total = figures[0]["last_60s"]["requests"].as_u64().unwrap()
        + figures[1]["last_60s"]["requests"].as_u64().unwrap();
    assert_eq!(total, 800, "{figures:#}");
    assert_eq!(figures[1]["last_60s"]["error_rate"], 0.0);
    assert!(figures[1]["last_60s"]["p95_ms"].as_f64().is_some());
    assert_eq!(figures[1]["healthy"], true);

    let text = String::from_utf8(daemon.cli(work.path(), &["status", &id]).stdout).unwrap();
    assert!(
        text.contains(&format!(
            "traffic: builtin router on {listen}, candidate 50%"
        )),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("candidate") && l.contains("healthy")),
        "{text}"
    );

    let metrics = Command::new("curl")
        .args(["-s", &format!("{}/metrics", daemon.url)])
        .output()
        .unwrap();
    let metrics = String::from_utf8(metrics.stdout).unwrap();
    assert!(
        metrics.contains("liftoff_router_candidate_weight_ratio{route=\"shop\"} 0.5"),
        "{metrics}"
    );

    // kill -9: the restarted daemon serves the same split to the same users.
    daemon.kill9();
    let daemon = Daemon::start(state.path());
    let s = daemon.status_json(work.path(), &id);
    assert_eq!(s["status"], "waiting-approval");
    let listen = s["traffic"]["listen"].as_str().unwrap().to_string();
    assert_eq!(s["traffic"]["weight"], 50.0);
    assert_eq!(
        versions(&listen, 0..400),
        before,
        "same users, same versions after a restart"
    );

    let ok = daemon.cli(work.path(), &["approve", &id, "--as", "sre", "--by", "ana"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    daemon.wait_for(work.path(), &id, Duration::from_secs(10), |s| {
        s["status"] == "succeeded"
    });
    assert!(
        versions(&listen, 0..50).iter().all(|v| v == "2"),
        "100% on the candidate"
    );
}

/// Status line and the headers/body we care about, for one GET.
fn fetch(listen: &str, headers: &[&str]) -> (String, String, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-i"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(format!("http://{listen}/")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    let status = text.lines().next().unwrap_or("").to_string();
    let retry_after = text
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("retry-after: ")
                .map(String::from)
        })
        .unwrap_or_default();
    let body = text
        .split_once("\n\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, retry_after, body)
}

#[test]
fn maintenance_mode_by_plan_step_and_by_hand_survives_a_crash() {
    let (_v1, p1) = app("1");
    let (_v2, p2) = app("2");
    let work = support::workdir();
    let state = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(state.path());
    std::fs::write(
        work.path().join("plan.yaml"),
        format!(
            "version: 1\nname: shop-3\nservice: shop\nrouter:\n  kind: builtin\n  listen: 127.0.0.1:0\n  stable: http://127.0.0.1:{p1}\n  candidate: http://127.0.0.1:{p2}\n  maintenance: {{ retry_after: 2m, page: '<h1>back soon</h1>', bypass_header: {{ name: X-Bypass, value: '${{LIFTOFF_TEST_BYPASS}}' }} }}\nsteps:\n  - maintenance: on\n  - approve: {{ role: dba }}\n  - maintenance: off\n"
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["launch", "plan.yaml"])
        .current_dir(work.path())
        .env("LIFTOFF_SERVER", &daemon.url)
        .env("LIFTOFF_STATE_DIR", state.path())
        .env("LIFTOFF_TEST_BYPASS", "let-me-in-42")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let s = daemon.wait_for(work.path(), &id, Duration::from_secs(10), |s| {
        s["status"] == "waiting-approval"
    });
    let listen = s["traffic"]["listen"].as_str().unwrap().to_string();
    assert_eq!(s["traffic"]["maintenance"], true);

    let (status, retry_after, body) = fetch(&listen, &[]);
    assert_eq!(
        (status.as_str(), retry_after.as_str(), body.as_str()),
        (
            "HTTP/1.1 503 Service Unavailable",
            "120",
            "<h1>back soon</h1>"
        )
    );
    assert_eq!(
        fetch(&listen, &["X-Bypass: let-me-in-42"]).0,
        "HTTP/1.1 200 OK",
        "the secret header goes through"
    );
    assert_eq!(
        fetch(&listen, &["X-Bypass: guess"]).0,
        "HTTP/1.1 503 Service Unavailable"
    );

    daemon.kill9();
    let daemon = Daemon::start(state.path());
    let listen = daemon.status_json(work.path(), &id)["traffic"]["listen"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        fetch(&listen, &[]).0,
        "HTTP/1.1 503 Service Unavailable",
        "still in maintenance after a restart"
    );

    let off = daemon.cli(work.path(), &["maintenance", "shop", "off", "--by", "ana"]);
    assert!(off.status.success(), "{}", stderr(&off));
    assert_eq!(fetch(&listen, &[]).0, "HTTP/1.1 200 OK");
    let on = daemon.cli(work.path(), &["maintenance", "shop", "on"]);
    assert!(on.status.success(), "{}", stderr(&on));
    assert_eq!(fetch(&listen, &[]).0, "HTTP/1.1 503 Service Unavailable");
    let missing = daemon.cli(work.path(), &["maintenance", "nope", "on"]);
    assert_eq!(missing.status.code(), Some(2));

    assert!(
        daemon
            .cli(work.path(), &["approve", &id, "--as", "dba"])
            .status
            .success()
    );
    daemon.wait_for(work.path(), &id, Duration::from_secs(10), |s| {
        s["status"] == "succeeded"
    });
    assert_eq!(
        fetch(&listen, &[]).0,
        "HTTP/1.1 200 OK",
        "the plan's `maintenance: off` step"
    );
}
