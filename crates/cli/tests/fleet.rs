//! The data plane outlives the daemon: the router is a process of its own, adopted by
//! the next daemon, replaced without a failed request, and several of them form a
//! fleet whose figures are summed. Real processes: `liftoff serve`, `liftoff router`,
//! demo apps as upstreams, and keep-alive clients counting every failure.

mod support;

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::load::{Load, assert_clean, request};
use support::{BIN, Daemon, demo_app, stderr};

fn launch(daemon: &Daemon, work: &Path, plan: &str) -> String {
    std::fs::write(work.join("plan.yaml"), plan).unwrap();
    let out = daemon.cli(work, &["launch", "plan.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn plan(stable: u16, candidate: u16, steps: &str, rollback: &str) -> String {
    format!(
        "version: 1\nname: shop-2\nservice: shop\nrouter:\n  kind: builtin\n  listen: 127.0.0.1:0\n  stable: http://127.0.0.1:{stable}\n  candidate: http://127.0.0.1:{candidate}\n  sticky: {{ header: X-User-Id }}\nsteps:\n{steps}{rollback}"
    )
}

fn listen_of(daemon: &Daemon, work: &Path, id: &str) -> SocketAddr {
    let s = daemon.wait_for(work, id, Duration::from_secs(10), |s| {
        s["traffic"]["listen"]
            .as_str()
            .is_some_and(|l| !l.ends_with(":0"))
    });
    s["traffic"]["listen"].as_str().unwrap().parse().unwrap()
}

/// The binary at another path: what an upgrade installs. A hard link, not a copy: a
/// file just written can be "busy" to exec while another test thread forks with its
/// write descriptor inherited (ETXTBSY).
fn other_build(dir: &Path) -> std::path::PathBuf {
    let next = dir.join("liftoff-next");
    if std::fs::hard_link(BIN, &next).is_err() {
        std::fs::copy(BIN, &next).unwrap();
    }
    next
}

#[test]
fn the_daemon_stopped_killed_or_upgraded_under_load_fails_no_request_and_moves_no_user() {
    let (_v1, p1) = demo_app("1");
    let (_v2, p2) = demo_app("2");
    let work = support::workdir();
    let state = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(state.path());
    let id = launch(
        &daemon,
        work.path(),
        &plan(p1, p2, "  - traffic: 50%\n  - approve: { role: sre }\n", ""),
    );
    daemon.wait_for(work.path(), &id, Duration::from_secs(10), |s| {
        s["status"] == "waiting-approval"
    });
    let listen = listen_of(&daemon, work.path(), &id);
    let router = support::router_pid(state.path()).expect("a local router");
    let load = Load::start(listen, 24);
    load.wait_for(200);

    // SIGTERM, then start again.
    let status = daemon.stop();
    assert!(status.success(), "{status:?}");
    load.wait_for(200);
    let mut daemon = Daemon::start(state.path());
    load.wait_for(200);

    // kill -9, then start again.
    daemon.kill9();
    load.wait_for(200);
    let mut daemon = Daemon::start(state.path());
    load.wait_for(200);

    // Replaced by another build of the binary.
    daemon.stop();
    let next = other_build(work.path());
    let upgraded = support::spawn(
        Command::new(&next)
            .args(["serve", "--listen", "127.0.0.1:0", "--state-dir"])
            .arg(state.path()),
    );
    support::wait_until(Duration::from_secs(20), "the upgraded daemon", || {
        std::fs::read_to_string(state.path().join("serve.addr")).is_ok_and(|s| s.ends_with('\n'))
    });
    load.wait_for(200);
    drop(upgraded);
    let daemon = Daemon::start(state.path());
    load.wait_for(200);

    let (ok, failures, moved, versions) = load.finish();
    assert_clean("daemon restarts", ok, &failures, &moved);
    let on_candidate = versions
        .iter()
        .filter(|v| v.as_deref() == Some("hello from v2"))
        .count();
    assert!(
        (4..=20).contains(&on_candidate),
        "{on_candidate}/24 users on the candidate"
    );
    assert_eq!(
        support::router_pid(state.path()),
        Some(router),
        "one router served throughout: every daemon adopted it"
    );
    // The launch goes on.
    let ok = daemon.cli(work.path(), &["approve", &id, "--as", "sre"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    daemon.wait_for(work.path(), &id, Duration::from_secs(10), |s| {
        s["status"] == "succeeded"
    });
}

#[test]
fn the_router_restarted_and_upgraded_under_load_fails_no_request() {
    let (_v1, p1) = demo_app("1");
    let (_v2, p2) = demo_app("2");
    let work = support::workdir();
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path());
    let id = launch(
        &daemon,
        work.path(),
        &plan(p1, p2, "  - traffic: 50%\n  - approve: { role: sre }\n", ""),
    );
    daemon.wait_for(work.path(), &id, Duration::from_secs(10), |s| {
        s["status"] == "waiting-approval"
    });
    let listen = listen_of(&daemon, work.path(), &id);
    let router_dir = state.path().join("router");
    let first = support::router_pid(state.path()).unwrap();
    let load = Load::start(listen, 24);
    load.wait_for(200);

    let restart = |program: &Path| {
        let out = Command::new(program)
            .arg("--state-dir")
            .arg(&router_dir)
            .args(["router", "restart", "--timeout", "30s"])
            .output()
            .unwrap();
        assert!(out.status.success(), "restart: {}", stderr(&out));
    };
    restart(Path::new(BIN));
    load.wait_for(200);
    let second = support::router_pid(state.path()).unwrap();
    assert_ne!(first, second, "a new router process");
    restart(&other_build(work.path()));
    load.wait_for(200);
    let third = support::router_pid(state.path()).unwrap();
    assert_ne!(second, third);

    let (ok, failures, moved, _) = load.finish();
    assert_clean("router restarts", ok, &failures, &moved);
    // The daemon sees the new router, serving the current snapshot.
    let s = daemon.status_json(work.path(), &id);
    let routers = s["traffic"]["routers"].as_array().unwrap().clone();
    assert!(
        routers
            .iter()
            .any(|r| r["current"] == true && r["missing"] == false),
        "{routers:?}"
    );
}

#[test]
fn with_the_daemon_away_traffic_keeps_its_split_and_a_pending_rollback_applies_when_it_returns() {
    let (_v1, p1) = demo_app("1");
    let (_v2, p2) = demo_app("2");
    let work = support::workdir();
    let state = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(state.path());
    let id = launch(
        &daemon,
        work.path(),
        &plan(
            p1,
            p2,
            "  - traffic: 50%\n  - approve: { role: sre }\n",
            "rollback:\n  on: ['error_rate > 5% over 2s']\n  check_every: 100ms\n",
        ),
    );
    daemon.wait_for(work.path(), &id, Duration::from_secs(10), |s| {
        s["status"] == "waiting-approval"
    });
    let listen = listen_of(&daemon, work.path(), &id);
    let load = Load::start(listen, 16);
    load.wait_for(100);

    daemon.kill9();
    // Away for 30 s: the split holds (no user moves, nothing fails) all along, and the
    // router says it serves its last snapshot; meanwhile the candidate goes bad.
    let away = std::time::Instant::now();
    let log = state.path().join("router").join("router.log");
    while away.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_secs(1));
        let failed = load.failures.lock().unwrap().len();
        assert_eq!(
            failed,
            0,
            "requests failed {:?} into the outage",
            away.elapsed()
        );
    }
    load.wait_for(300);
    let said = support::read(&log);
    assert!(
        said.contains("daemon unreachable: serving the last snapshot"),
        "the router's log says the daemon is away: {said}"
    );
    let (ok, failures, moved, versions) = load.finish();
    assert_clean("daemon away", ok, &failures, &moved);
    let on_candidate: Vec<usize> = versions
        .iter()
        .enumerate()
        .filter(|(_, v)| v.as_deref() == Some("hello from v2"))
        .map(|(u, _)| u)
        .collect();
    assert!(!on_candidate.is_empty(), "{versions:?}");
    support::set_error_rate(p2, "1.0");

    // Back: the rollback it owes happens, and every router moves to stable.
    let daemon = Daemon::start(state.path());
    let bad = Load::start(listen, 16);
    daemon.wait_for(work.path(), &id, Duration::from_secs(20), |s| {
        s["status"] == "rolled-back"
    });
    drop(bad);
    let s = daemon.status_json(work.path(), &id);
    assert_eq!(s["traffic"]["weight"], 0.0, "{s:#}");
    let after = Load::start(listen, 16);
    after.wait_for(100);
    let (_, failures, _, versions) = after.finish();
    assert!(failures.is_empty(), "{failures:?}");
    assert!(
        versions.iter().flatten().all(|v| v == "hello from v1"),
        "every user on stable: {versions:?}"
    );
}

/// A router of the fleet, started by hand (`liftoff router --server URL ...`).
fn extra_router(daemon: &Daemon, dir: &Path, id: &str) -> support::Proc {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("router.log"))
        .unwrap();
    support::Proc(
        Command::new(BIN)
            .args(["--server", &daemon.url, "--state-dir"])
            .arg(dir)
            .args(["router", "--id", id, "--threads", "1", "--token-file"])
            .arg(daemon.state_dir.join("router.token"))
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

fn routers(daemon: &Daemon) -> Vec<serde_json::Value> {
    let out = Command::new("curl")
        .args(["-sf", &format!("{}/api/v1/routers", daemon.url)])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// Where router `id` listens for the route.
fn listening(daemon: &Daemon, id: &str) -> SocketAddr {
    let mut found = None;
    support::wait_until(Duration::from_secs(10), "the router's listener", || {
        found = routers(daemon)
            .iter()
            .find(|r| r["id"] == id && r["current"] == true)
            .and_then(|r| r["listening"][0].as_str().map(str::to_string));
        found.is_some()
    });
    found.unwrap().parse().unwrap()
}

fn get(listen: SocketAddr, user: usize) -> Result<String, String> {
    request(&mut None, listen, user)
}

#[test]
fn a_bad_candidate_spread_over_three_routers_is_caught_on_their_sum() {
    let (_v1, p1) = demo_app("1");
    let (_v2, p2) = demo_app("2");
    support::set_error_rate(p2, "0.3");
    let work = support::workdir();
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path());
    let r2_dir = tempfile::tempdir().unwrap();
    let r3_dir = tempfile::tempdir().unwrap();
    let _r2 = extra_router(&daemon, r2_dir.path(), "r2");
    let _r3 = extra_router(&daemon, r3_dir.path(), "r3");
    support::wait_until(Duration::from_secs(10), "three routers", || {
        routers(&daemon)
            .iter()
            .filter(|r| r["missing"] == false)
            .count()
            == 3
    });
    // At 100% every request is the candidate's. The trigger needs 20 requests in its
    // window: each router gets 15, too few alone; the fleet's 45 are enough (and ample
    // evidence that 30% is past 5%).
    let id = launch(
        &daemon,
        work.path(),
        &plan(
            p1,
            p2,
            "  - traffic: 100%\n  - approve: { role: sre }\n",
            "rollback:\n  min_requests: 20\n  on: ['error_rate > 5% over 10s']\n  check_every: 100ms\n",
        ),
    );
    let s = daemon.wait_for(work.path(), &id, Duration::from_secs(10), |s| {
        s["status"] == "waiting-approval"
    });
    let journal = daemon.journal(&id);
    assert!(
        journal.iter().any(|r| r["summary"]
            .as_str()
            .is_some_and(|t| t.contains("applied by 3 routers"))),
        "{journal:#?}"
    );
    assert_eq!(s["traffic"]["routers"].as_array().unwrap().len(), 3);
    // Windows leave out the second the triggers were armed in (before the launch
    // waited for approval): the requests go in a later one.
    let unix = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let armed_by = unix();
    support::wait_until(Duration::from_secs(2), "the next second", || {
        unix() > armed_by
    });
    let mut failed = 0;
    for id in ["local", "r2", "r3"] {
        let at = listening(&daemon, id);
        for user in 0..15 {
            match get(at, user) {
                Ok(v) => assert_eq!(v, "hello from v2", "router {id}"),
                Err(e) => {
                    assert!(e.starts_with("HTTP/1.1 500"), "router {id}: {e}");
                    failed += 1;
                }
            }
        }
    }
    assert!(failed >= 10, "the candidate fails 30%: {failed}/45");
    daemon.wait_for(work.path(), &id, Duration::from_secs(15), |s| {
        s["status"] == "rolled-back"
    });
    let journal = daemon.journal(&id);
    // The trigger fired on more requests than any one router saw.
    let judged: Vec<u64> = journal
        .iter()
        .filter_map(|r| r["summary"].as_str())
        .filter(|t| t.contains("error_rate > 5% over 10s") && t.contains(" requests)"))
        .filter_map(|t| {
            let head = &t[..t.find(" requests)")?];
            head.rsplit('(').next()?.trim().parse().ok()
        })
        .collect();
    assert!(judged.iter().any(|n| *n > 15), "{judged:?} in {journal:#?}");
    // Every router moved its users back.
    for id in ["local", "r2", "r3"] {
        let at = listening(&daemon, id);
        assert_eq!(get(at, 1).unwrap(), "hello from v1", "router {id}");
    }
}

#[test]
fn a_killed_router_shows_missing_the_launch_goes_on_and_it_returns_with_the_current_split() {
    let (_v1, p1) = demo_app("1");
    let (_v2, p2) = demo_app("2");
    let work = support::workdir();
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path());
    let r2_dir = tempfile::tempdir().unwrap();
    let mut r2 = extra_router(&daemon, r2_dir.path(), "r2");
    support::wait_until(Duration::from_secs(10), "two routers", || {
        routers(&daemon)
            .iter()
            .filter(|r| r["missing"] == false)
            .count()
            == 2
    });
    let id = launch(
        &daemon,
        work.path(),
        &plan(
            p1,
            p2,
            "  - traffic: 10%\n  - approve: { role: sre }\n  - traffic: 100%\n  - approve: { role: sre }\n",
            "",
        ),
    );
    daemon.wait_for(work.path(), &id, Duration::from_secs(10), |s| {
        s["status"] == "waiting-approval"
    });
    let at = listening(&daemon, "r2");

    let _ = r2.0.kill();
    let _ = r2.0.wait();
    let killed = Instant::now();
    support::wait_until(Duration::from_secs(5), "r2 to show as missing", || {
        routers(&daemon)
            .iter()
            .any(|r| r["id"] == "r2" && r["missing"] == true)
    });
    // Missing after 2 s without a report (the polls above take their share of time).
    assert!(
        killed.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        killed.elapsed()
    );

    // The launch goes on with the others; the journal names the missing one.
    let ok = daemon.cli(work.path(), &["approve", &id, "--as", "sre"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    daemon.wait_for(work.path(), &id, Duration::from_secs(10), |s| {
        s["steps"][2]["status"] == "succeeded" && s["status"] == "waiting-approval"
    });
    let journal = daemon.journal(&id);
    assert!(
        journal.iter().any(|r| r["summary"]
            .as_str()
            .is_some_and(|t| t.contains("weight set to 100%") && t.contains("missing: r2"))),
        "{journal:#?}"
    );

    // Back, on its old port, serving the current split (100%) before any traffic.
    let _r2 = extra_router(&daemon, r2_dir.path(), "r2");
    support::wait_until(Duration::from_secs(10), "r2 to listen again", || {
        TcpStream::connect(at).is_ok()
    });
    for user in 0..20 {
        match get(at, user) {
            Ok(v) => assert_eq!(v, "hello from v2", "user {user}"),
            Err(e) => panic!(
                "user {user}: {e}; r2 said: {}",
                std::fs::read_to_string(r2_dir.path().join("router.log")).unwrap_or_default()
            ),
        }
    }
}

#[test]
fn the_router_token_opens_no_admin_route_and_the_admin_token_no_router_route() {
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path());
    let router_token = std::fs::read_to_string(state.path().join("router.token")).unwrap();
    let router_token = router_token.trim();
    let call = |method: &str, path: &str, token: &str| -> u16 {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", method])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args(["-H", "Content-Type: application/json", "-d", "{}"])
            .arg(format!("{}{path}", daemon.url))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).parse().unwrap()
    };
    for path in [
        "/api/v1/launches",
        "/api/v1/checks",
        "/api/v1/launches/x/approve",
        "/api/v1/launches/x/abort",
        "/api/v1/launches/x/rollback",
        "/api/v1/launches/x/promote",
        "/api/v1/launches/x/resume",
        "/api/v1/routes/shop/maintenance",
        "/api/v1/schedules/x/cancel",
        "/api/v1/status/messages",
        "/api/v1/flags/new_checkout",
    ] {
        assert_eq!(call("POST", path, router_token), 401, "POST {path}");
    }
    assert_eq!(
        call(
            "GET",
            "/api/v1/router/snapshot?router=a&instance=b&have=0",
            &daemon.token()
        ),
        401
    );
    assert_eq!(call("POST", "/api/v1/router/report", &daemon.token()), 401);
    // And the router token does open its own routes.
    assert_eq!(
        call(
            "GET",
            "/api/v1/router/snapshot?router=a&instance=b&have=0",
            router_token
        ),
        200
    );
}
