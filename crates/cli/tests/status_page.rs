//! The public status page follows launches: degraded while a rollback runs, a major
//! outage when the rollback fails, maintenance while the route serves its page.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{Daemon, demo_app, stderr, stdout, workdir};

const ROUTER: &str = "router: { kind: command, command: \"./set-weight.sh {weight}\" }\n";

fn page(daemon: &Daemon) -> serde_json::Value {
    let out = Command::new("curl")
        .args(["-sf", &format!("{}/status.json", daemon.url)])
        .output()
        .unwrap();
    assert!(out.status.success(), "the status page needs no token");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn service<'a>(page: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    page["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == name)
        .unwrap_or_else(|| panic!("no service {name}: {page:#}"))
}

fn launch(daemon: &Daemon, dir: &Path, name: &str, plan: &str) -> String {
    std::fs::write(dir.join(name), plan).unwrap();
    let out = daemon.cli(dir, &["launch", name]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).trim().to_string()
}

fn wait_state(daemon: &Daemon, name: &str, state: &str) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let p = page(daemon);
        if service(&p, name)["state"] == state {
            return p;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{name} never became {state}: {p:#}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_status_page_follows_rollbacks_failures_maintenance_and_messages() {
    let dir = workdir();
    let daemon = Daemon::start(&dir.path().join("state"));
    // A rollback that takes a moment, then succeeds: degraded, then operational.
    let id = launch(
        &daemon,
        dir.path(),
        "slow.yaml",
        &format!(
            "version: 1\nname: slow rollback\nservice: shop\n{ROUTER}steps:\n  - traffic: 10%\n  - run: exit 1\nrollback:\n  steps:\n    - run: sleep 1.5\n"
        ),
    );
    let p = wait_state(&daemon, "shop", "degraded");
    assert!(
        service(&p, "shop")["summary"]
            .as_str()
            .unwrap()
            .contains("rolling back"),
        "{p:#}"
    );
    assert_eq!(p["overall"], "degraded");
    daemon.ended(dir.path(), &id, Duration::from_secs(20));
    assert_eq!(service(&page(&daemon), "shop")["state"], "operational");

    // A rollback that fails: a major outage until someone acts.
    launch(
        &daemon,
        dir.path(),
        "broken.yaml",
        &format!(
            "version: 1\nname: broken rollback\nservice: payments\n{ROUTER}steps:\n  - run: exit 1\nrollback:\n  steps:\n    - run: exit 2\n"
        ),
    );
    let p = wait_state(&daemon, "payments", "major_outage");
    assert_eq!(p["overall"], "major_outage");
    assert_eq!(service(&p, "shop")["history"].as_array().unwrap().len(), 1);

    // Maintenance on a builtin route.
    let (_stable, stable) = demo_app("1");
    let (_candidate, candidate) = demo_app("2");
    let listen = support::free_port();
    let id = launch(
        &daemon,
        dir.path(),
        "hotel.yaml",
        &format!(
            "version: 1\nname: hotel\nservice: hotel\nrouter:\n  kind: builtin\n  listen: 127.0.0.1:{listen}\n  stable: http://127.0.0.1:{stable}\n  candidate: http://127.0.0.1:{candidate}\nsteps:\n  - traffic: 100%\n"
        ),
    );
    daemon.ended(dir.path(), &id, Duration::from_secs(20));
    let out = daemon.cli(dir.path(), &["maintenance", "hotel", "on"]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_state(&daemon, "hotel", "maintenance");

    // Messages, shown newest first, and escaped in the HTML page.
    let out = daemon.cli(
        dir.path(),
        &[
            "status-page",
            "post",
            "hotel",
            "Migrating <bookings>",
            "--by",
            "ana",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let p = page(&daemon);
    let msg = &service(&p, "hotel")["messages"][0];
    assert_eq!(msg["message"], "Migrating <bookings>");
    assert_eq!(msg["by"], "ana");
    let html = Command::new("curl")
        .args(["-sf", &format!("{}/status", daemon.url)])
        .output()
        .unwrap();
    let html = String::from_utf8_lossy(&html.stdout);
    assert!(html.contains("Migrating &lt;bookings&gt;"), "{html}");
    assert!(
        html.contains("class=\"badge major_outage\">Major outage"),
        "{html}"
    );
    let shown = stdout(&daemon.cli(dir.path(), &["status-page", "show"]));
    assert!(shown.contains("overall: major_outage"), "{shown}");
}
