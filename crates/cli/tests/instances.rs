//! A version of three instances behind the daemon's router, under bounded load: one
//! instance killed fails no request and moves no user, its ejection shows in `status`
//! and the daemon's `/metrics`, and once restarted it serves again.

mod support;

use std::process::Command;
use std::time::Duration;

use support::load::{Load, assert_clean};
use support::{BIN, Daemon, Proc, demo_app, stderr};

fn demo_app_on(version: &str, port: u16) -> Proc {
    let p = support::spawn(Command::new(BIN).args([
        "demo-app",
        "--port",
        &port.to_string(),
        "--version",
        version,
    ]));
    support::wait_http(&format!("http://127.0.0.1:{port}/health"));
    p
}

fn list(ports: &[u16]) -> String {
    let urls: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    format!("[{}]", urls.join(", "))
}

#[test]
fn an_instance_killed_under_load_is_ejected_fails_nothing_and_serves_again_once_back() {
    let mut stable: Vec<(Proc, u16)> = (0..3).map(|_| demo_app("1")).collect();
    let candidate: Vec<(Proc, u16)> = (0..3).map(|_| demo_app("2")).collect();
    let ports = |v: &[(Proc, u16)]| v.iter().map(|(_, p)| *p).collect::<Vec<_>>();
    let work = support::workdir();
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path());
    std::fs::write(
        work.path().join("plan.yaml"),
        format!(
            "version: 1\nname: shop-pool\nservice: shop\nrouter:\n  kind: builtin\n  listen: 127.0.0.1:0\n  stable: {}\n  candidate: {}\n  sticky: {{ header: X-User-Id }}\nsteps:\n  - traffic: 50%\n  - approve: {{ role: sre }}\n",
            list(&ports(&stable)),
            list(&ports(&candidate)),
        ),
    )
    .unwrap();
    let out = daemon.cli(work.path(), &["launch", "plan.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let s = daemon.wait_for(work.path(), &id, Duration::from_secs(10), |s| {
        s["status"] == "waiting-approval"
            && s["traffic"]["listen"]
                .as_str()
                .is_some_and(|l| !l.ends_with(":0"))
    });
    let listen = s["traffic"]["listen"].as_str().unwrap().parse().unwrap();

    let load = Load::start(listen, 16);
    load.wait_for(300);
    let dead_port = stable[1].1;
    let dead = format!("http://127.0.0.1:{dead_port}");
    drop(stable.remove(1));
    let instance = |s: &serde_json::Value| {
        s["traffic"]["versions"][0]["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["url"] == dead.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("{dead} in {s:#}"))
    };
    let s = daemon.wait_for(work.path(), &id, Duration::from_secs(20), |s| {
        instance(s)["ejected"] == true
    });
    assert!(instance(&s)["failures"].as_u64().unwrap() >= 5, "{s:#}");
    let shown = support::stdout(&daemon.cli(work.path(), &["status", &id]));
    assert!(
        shown
            .lines()
            .any(|l| l.contains(&dead) && l.contains("EJECTED")),
        "`liftoff status` shows the instance out of rotation:\n{shown}"
    );
    let metrics = Command::new("curl")
        .args(["-s", &format!("{}/metrics", daemon.url)])
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    let line = format!(
        "liftoff_router_instance_ejected{{route=\"shop\",version=\"stable\",instance=\"{dead}\"}} 1"
    );
    assert!(metrics.contains(&line), "{line} in\n{metrics}");
    load.wait_for(300);

    // Back on its port: once its ejection (10 s the first time) is over, it serves.
    stable.push((demo_app_on("1", dead_port), dead_port));
    let served = instance(&daemon.status_json(work.path(), &id))["requests"]
        .as_u64()
        .unwrap();
    let s = daemon.wait_for(work.path(), &id, Duration::from_secs(30), |s| {
        let i = instance(s);
        i["ejected"] == false && i["requests"].as_u64().unwrap() > served + 20
    });
    let (ok, failures, moved, _) = load.finish();
    assert_clean("one instance killed and restarted", ok, &failures, &moved);
    let stable_60s = &s["traffic"]["versions"][0]["last_60s"];
    assert_eq!(stable_60s["errors_connect"], 0, "{s:#}");
}
