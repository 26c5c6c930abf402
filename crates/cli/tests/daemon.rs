//! The daemon against clients and disks that misbehave, through the real binary: slow
//! and idle connections, a second daemon on one state directory, a lost or damaged
//! database, oversized and slow bodies, the one error shape, and what the open
//! endpoints show.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Daemon, Reply, demo_app, http, serve_refused, stderr, stdout, wait_until, workdir};

/// `GET /healthz`, giving up after `secs`: true if it answered 200.
fn healthy(url: &str, secs: f64) -> bool {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(["--max-time", &secs.to_string()])
        .arg(format!("{url}/healthz"))
        .output()
        .unwrap();
    out.stdout == b"200"
}

/// One request through the builtin router: its body, if it answered.
fn through_router(listen: &str) -> Option<String> {
    let out = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "5",
            &format!("http://{listen}/checkout"),
        ])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A client that sent part of a request head and waits.
fn slow_client(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(5))
        .expect("connect to the API");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: liftoff\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    s
}

/// Whether the daemon closed this connection (it reads EOF or a reset).
fn closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn api_addr(daemon: &Daemon) -> String {
    daemon.url.trim_start_matches("http://").to_string()
}

/// A launch through the builtin router, waiting for an approval at 50%, launched with
/// `env` (values for the plan's variables): its id and the router's address.
fn routed_launch(
    daemon: &Daemon,
    work: &Path,
    (stable, candidate): (&str, &str),
    env: &[(&str, &str)],
) -> (String, String) {
    std::fs::write(
        work.join("plan.yaml"),
        format!(
            "version: 1\nname: shop-2\nservice: shop\nrouter:\n  kind: builtin\n  listen: 127.0.0.1:0\n  stable: {stable}\n  candidate: {candidate}\nsteps:\n  - traffic: 50%\n  - approve: {{ role: sre }}\n"
        ),
    )
    .unwrap();
    let out = Command::new(support::BIN)
        .args(["launch", "plan.yaml"])
        .current_dir(work)
        .env("LIFTOFF_SERVER", &daemon.url)
        .env("LIFTOFF_STATE_DIR", &daemon.state_dir)
        .env_remove("LIFTOFF_TOKEN")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    let s = daemon.wait_for(work, &id, Duration::from_secs(15), |s| {
        s["status"] == "waiting-approval"
    });
    (id, s["traffic"]["listen"].as_str().unwrap().to_string())
}

fn sockets_of(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}

#[test]
fn slow_clients_cannot_take_the_daemons_descriptors_and_the_router_keeps_serving() {
    let (_v1, p1) = demo_app("1");
    let (_v2, p2) = demo_app("2");
    let work = workdir();
    // 256 descriptors in all; the API may hold 50 connections, and a head may take a
    // minute: room is made by closing the oldest idle connection, not by the timer.
    let daemon = Daemon::start_with(
        &work.path().join("state"),
        &[
            ("LIFTOFF_API_MAX_CONNECTIONS", "50"),
            ("LIFTOFF_API_HEADER_TIMEOUT", "60s"),
        ],
        Some(256),
    );
    let (stable, candidate) = (
        format!("http://127.0.0.1:{p1}"),
        format!("http://127.0.0.1:{p2}"),
    );
    let (_id, listen) = routed_launch(&daemon, work.path(), (&stable, &candidate), &[]);
    assert!(through_router(&listen).is_some_and(|b| b.starts_with("hello from v")));

    let addr = api_addr(&daemon);
    let mut slow: Vec<TcpStream> = (0..300).map(|_| slow_client(&addr)).collect();

    // An operator still gets an answer, and users still get through the router.
    wait_until(
        Duration::from_secs(15),
        "/healthz through 300 slow clients",
        || healthy(&daemon.url, 2.0),
    );
    assert!(
        through_router(&listen).is_some_and(|b| b.starts_with("hello from v")),
        "the builtin router must keep accepting while the API is flooded"
    );
    let sockets = sockets_of(daemon.pid());
    assert!(
        sockets <= 50 + 20,
        "the API holds at most its 50 connections; the daemon has {sockets} sockets open"
    );
    // The slow clients that were pushed out were closed, not left hanging.
    let gone = slow.iter_mut().map(closed).filter(|c| *c).count();
    assert!(gone >= 240, "only {gone} of 300 slow clients were closed");
}

#[test]
fn heads_and_bodies_that_do_not_arrive_in_time_are_dropped() {
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_with(
        state.path(),
        &[
            ("LIFTOFF_API_HEADER_TIMEOUT", "1s"),
            ("LIFTOFF_API_REQUEST_TIMEOUT", "1s"),
        ],
        None,
    );
    let addr = api_addr(&daemon);

    // Half a head: closed once the header timeout passes.
    let mut half = slow_client(&addr);
    wait_until(
        Duration::from_secs(10),
        "a half-sent head to be closed",
        || closed(&mut half),
    );

    // A kept-alive connection that goes quiet after a request: closed too.
    let mut idle = TcpStream::connect(&addr).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: liftoff\r\n\r\n")
        .unwrap();
    idle.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    wait_until(
        Duration::from_secs(10),
        "an idle keep-alive connection to be closed",
        || closed(&mut idle),
    );

    // A body that stops halfway: 408, in the API's shape.
    let mut body = TcpStream::connect(&addr).unwrap();
    write!(
        body,
        "POST /api/v1/status/messages HTTP/1.1\r\nHost: liftoff\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"service\"",
        daemon.token()
    )
    .unwrap();
    body.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    let _ = body.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let json: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(json["error"]["code"], "request_timeout", "{json}");
}

#[test]
fn plans_are_decoded_off_the_async_workers() {
    let state = tempfile::tempdir().unwrap();
    // One async worker: a decode on it would hold every other request.
    let daemon = Daemon::start_with(state.path(), &[("TOKIO_WORKER_THREADS", "1")], None);
    // `${` over and over costs a decoder that rescans many times its length.
    let plan = format!(
        "version: 1\nname: slow\nservice: slow\nsteps:\n  - run: \"{}\"\nunknown_key: 1\n",
        "${".repeat(200_000)
    );
    let body = serde_json::json!({
        "plan": plan, "plan_path": "/p/plan.yaml", "workdir": "/tmp", "variables": {}
    });
    let file = state.path().join("body.json");
    std::fs::write(&file, body.to_string()).unwrap();
    let auth = format!("Authorization: Bearer {}", daemon.token());
    let posts: Vec<_> = (0..2)
        .map(|_| {
            let (url, auth, file) = (daemon.url.clone(), auth.clone(), file.clone());
            std::thread::spawn(move || {
                let data = format!("@{}", file.display());
                http(
                    "POST",
                    &format!("{url}/api/v1/launches"),
                    &[&auth, "Content-Type: application/json"],
                    Some(&data),
                )
            })
        })
        .collect();
    let started = Instant::now();
    let mut probes = 0;
    while !posts.iter().all(|p| p.is_finished()) {
        assert!(
            healthy(&daemon.url, 1.5),
            "/healthz did not answer within 1.5 s while plans were being decoded ({:?} in)",
            started.elapsed()
        );
        probes += 1;
    }
    for p in posts {
        let r: Reply = p.join().unwrap();
        assert_eq!(r.status, 422, "{}", r.body);
    }
    assert!(probes > 0);
    eprintln!("{probes} probes over {:?}", started.elapsed());
}

#[test]
fn a_second_daemon_on_a_state_directory_refuses_to_start_and_names_the_first() {
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path());
    let (status, said) = serve_refused(state.path());
    assert!(!status.success());
    assert!(
        said.contains(&format!(
            "another liftoff serve (pid {}, listening on {}) holds {}",
            daemon.pid(),
            daemon.url,
            state.path().join("lock").display()
        )),
        "{said}"
    );
    // The first one is untouched: same address, still answering.
    assert_eq!(
        std::fs::read_to_string(state.path().join("serve.addr"))
            .unwrap()
            .trim(),
        daemon.url
    );
    assert!(healthy(&daemon.url, 5.0));
}

#[test]
fn a_lost_or_unreadable_database_is_an_error_never_a_new_install() {
    let state = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(state.path());
    let token = daemon.token();
    daemon.stop();
    let db = state.path().join("liftoff.db");

    for damage in ["truncated", "removed", "overwritten"] {
        let saved = std::fs::read(&db).unwrap();
        match damage {
            "truncated" => std::fs::File::create(&db).map(drop).unwrap(),
            "removed" => std::fs::remove_file(&db).unwrap(),
            _ => std::fs::write(&db, vec![0x5a; saved.len()]).unwrap(),
        }
        let (status, said) = serve_refused(state.path());
        assert!(!status.success(), "{damage}: {said}");
        assert!(
            said.contains(&db.display().to_string()),
            "{damage}: the message names the file: {said}"
        );
        assert_eq!(daemon.token(), token, "{damage}: no new admin token");
        std::fs::write(&db, saved).unwrap();
    }
    // Put back, it is the same install.
    let daemon = Daemon::start(state.path());
    assert_eq!(daemon.token(), token);
}

/// Change the database under a stopped daemon (python3's sqlite3, like the router's
/// metrics test uses python3).
fn sql(db: &Path, statement: &str) {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()",
        ])
        .arg(db)
        .arg(statement)
        .output()
        .unwrap();
    assert!(out.status.success(), "{statement}: {}", stderr(&out));
}

#[test]
fn damaged_records_are_reported_as_corruption_naming_the_launch() {
    let work = workdir();
    let state = work.path().join("state");
    let mut daemon = Daemon::start(&state);
    let launch = |file: &str, plan: &str| {
        std::fs::write(work.path().join(file), plan).unwrap();
        let out = daemon.cli(work.path(), &["launch", file]);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out).trim().to_string()
    };
    let router = "router: { kind: command, command: \"./set-weight.sh {weight}\" }\n";
    let done = launch(
        "done.yaml",
        &format!(
            "version: 1\nname: marked\nservice: marked\n{router}steps:\n  - run: echo journal-marker\n"
        ),
    );
    let held = launch(
        "held.yaml",
        &format!(
            "version: 1\nname: held\nservice: held\n{router}steps:\n  - approve: {{ role: sre }}\n"
        ),
    );
    daemon.wait_for(work.path(), &done, Duration::from_secs(15), |s| {
        s["status"] == "succeeded"
    });
    daemon.wait_for(work.path(), &held, Duration::from_secs(15), |s| {
        s["status"] == "waiting-approval"
    });
    daemon.stop();

    // One byte of one record changed; the last record of an unfinished launch gone.
    let db = state.join("liftoff.db");
    sql(
        &db,
        "UPDATE journal SET payload = replace(payload, 'journal-marker', 'journal-markes') WHERE payload LIKE '%journal-marker%'",
    );
    sql(
        &db,
        &format!(
            "DELETE FROM journal WHERE launch_id = '{held}' AND seq = (SELECT MAX(seq) FROM journal WHERE launch_id = '{held}')"
        ),
    );
    // The damaged unfinished launch is not recovered, and does not keep the daemon down.
    let daemon = Daemon::start(&state);
    for (id, problem) in [(&done, "fails its checksum"), (&held, "is missing")] {
        let r = http(
            "GET",
            &format!("{}/api/v1/launches/{id}", daemon.url),
            &[],
            None,
        );
        assert_eq!(r.status, 500, "{}", r.body);
        let e = &r.json()["error"];
        assert_eq!(e["code"], "journal_corrupt", "{e}");
        let message = e["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("journal of launch {id}: record "))
                && message.ends_with(problem),
            "{message}"
        );
    }
    drop(daemon);

    // Bytes that are not text in the registry.
    sql(
        &db,
        &format!("UPDATE launches SET name = CAST(X'6D61726BFF6564' AS TEXT) WHERE id = '{done}'"),
    );
    let daemon = Daemon::start(&state);
    let r = http("GET", &format!("{}/api/v1/launches", daemon.url), &[], None);
    assert_eq!(r.status, 500, "{}", r.body);
    let e = &r.json()["error"];
    assert_eq!(e["code"], "state_corrupt", "{e}");
    assert_eq!(
        e["message"],
        format!("state database: launches row `{done}` is damaged: `name` is not valid text")
    );
    let log = support::read(&state.join("daemon.log"));
    assert!(
        log.contains("launch not recovered: its stored state is damaged")
            && log.contains("journal corrupt")
            && log.contains("state database damaged"),
        "{log}"
    );
}

#[test]
fn errors_are_json_everywhere_and_ofrep_keeps_its_own_shape() {
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path());
    let url = |p: &str| format!("{}{p}", daemon.url);
    let auth = format!("Authorization: Bearer {}", daemon.token());
    let api_error = |r: &Reply, status: u16, code: &str| {
        assert_eq!(r.status, status, "{}", r.body);
        assert!(
            r.header("content-type")
                .unwrap()
                .starts_with("application/json")
        );
        assert_eq!(r.json()["error"]["code"], code, "{}", r.body);
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    };

    // Extractor rejections and methods a route does not take.
    let r = http("GET", &url("/api/v1/flags/f/history?limit=many"), &[], None);
    api_error(&r, 400, "bad_request");
    let r = http("DELETE", &url("/api/v1/launches"), &[], None);
    api_error(&r, 405, "method_not_allowed");
    assert!(r.header("allow").is_some_and(|a| a.contains("GET")));
    let r = http("PATCH", &url("/api/admin/feature-flags"), &[&auth], None);
    api_error(&r, 405, "method_not_allowed");

    // A body over the limit: refused before it is decoded.
    let big = state.path().join("big.json");
    std::fs::write(&big, format!("{{\"plan\": \"{}\"}}", "x".repeat(1_500_000))).unwrap();
    let data = format!("@{}", big.display());
    let r = http(
        "POST",
        &url("/api/v1/launches"),
        &[&auth, "Content-Type: application/json"],
        Some(&data),
    );
    api_error(&r, 413, "payload_too_large");

    // OFREP: its own shape, with the key where the spec has one.
    let key = String::from_utf8(
        daemon
            .cli(state.path(), &["flags", "keys", "create", "web"])
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let key_header = format!("X-API-Key: {key}");
    let r = http(
        "GET",
        &url("/ofrep/v1/evaluate/flags/theme"),
        &[&key_header],
        None,
    );
    assert_eq!(r.status, 405, "{}", r.body);
    let b = r.json();
    assert_eq!(
        (b["key"].as_str(), b["errorCode"].as_str()),
        (Some("theme"), Some("GENERAL")),
        "{b}"
    );
    assert!(b["errorDetails"].is_string());
    let r = http(
        "POST",
        &url("/ofrep/v1/evaluate/flags"),
        &[&key_header, "Content-Type: application/json"],
        Some(&data),
    );
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.json()["errorCode"], "GENERAL", "{}", r.body);
    assert!(r.json()["errorDetails"].is_string());
}

#[test]
fn the_bearer_scheme_is_case_insensitive() {
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path());
    let token = daemon.token();
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let auth = format!("Authorization: {scheme} {token}");
        let r = http(
            "POST",
            &format!("{}/api/v1/status/messages", daemon.url),
            &[&auth, "Content-Type: application/json"],
            Some(r#"{"service": "shop", "message": "hello", "by": "ana"}"#),
        );
        assert_eq!(r.status, 200, "{scheme}: {}", r.body);
        let r = http(
            "POST",
            &format!("{}/api/admin/feature-flags", daemon.url),
            &[&auth],
            Some(r#"{"flag": "f", "enabled": true}"#),
        );
        assert!(r.status == 200 || r.status == 201, "{scheme}: {}", r.body);
    }
}

#[test]
fn status_messages_are_capped() {
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path());
    let auth = format!("Authorization: Bearer {}", daemon.token());
    let post = |message: &str| {
        http(
            "POST",
            &format!("{}/api/v1/status/messages", daemon.url),
            &[&auth, "Content-Type: application/json"],
            Some(
                &serde_json::json!({"service": "shop", "message": message, "by": "ana"})
                    .to_string(),
            ),
        )
    };
    assert_eq!(post(&"m".repeat(4096)).status, 200);
    let r = post(&"m".repeat(4097));
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "too_long");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`message` is 4097 bytes long")
    );
}

#[test]
fn an_upstream_from_a_variable_is_shown_as_the_plan_wrote_it() {
    let (_v1, p1) = demo_app("1");
    let (_v2, p2) = demo_app("2");
    let work = workdir();
    let daemon = Daemon::start(&work.path().join("state"));
    let stable = format!("http://127.0.0.1:{p1}");
    let candidate = format!("http://127.0.0.1:{p2}");
    let (id, _) = routed_launch(
        &daemon,
        work.path(),
        (&stable, "${CANDIDATE_URL}"),
        &[("CANDIDATE_URL", candidate.as_str())],
    );
    let s = daemon.status_json(work.path(), &id);
    let versions = &s["traffic"]["versions"];
    assert_eq!(versions[0]["upstream"], stable.as_str(), "a literal stays");
    assert_eq!(versions[1]["upstream"], "${CANDIDATE_URL}", "{versions:#}");
    let r = http("GET", &format!("{}/api/v1/routes", daemon.url), &[], None);
    assert_eq!(
        r.json()[0]["versions"][1]["upstream"],
        "${CANDIDATE_URL}",
        "{}",
        r.body
    );
    assert!(!r.body.contains(&candidate), "{}", r.body);
    let text = stdout(&daemon.cli(work.path(), &["status", &id]));
    assert!(!text.contains(&candidate), "{text}");
}

/// POST a plan to the real daemon; the reply.
fn post_plan(daemon: &Daemon, dir: &Path, plan: &str) -> Reply {
    let body = serde_json::json!({
        "plan": plan, "plan_path": "/p/plan.yaml", "workdir": "/tmp", "variables": {}
    });
    let file = dir.join("body.json");
    std::fs::write(&file, body.to_string()).unwrap();
    http(
        "POST",
        &format!("{}/api/v1/launches", daemon.url),
        &[
            &format!("Authorization: Bearer {}", daemon.token()),
            "Content-Type: application/json",
        ],
        Some(&format!("@{}", file.display())),
    )
}

#[test]
fn a_deeply_nested_plan_is_refused_and_the_daemon_stays_up() {
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path());
    // 5,000 nested sequences in 10 KB: this overflowed a worker's stack and aborted
    // the daemon (every launch and route with it).
    let plan = format!(
        "version: 1\nname: deep\nservice: deep\nsteps:\n  - run: t\nx:\n{}x\n",
        "- ".repeat(5_000)
    );
    let r = post_plan(&daemon, state.path(), &plan);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("nested more than 64 levels"), "{}", r.body);
    assert!(r.body.contains("\"line\":7"), "the position: {}", r.body);
    assert!(healthy(&daemon.url, 2.0), "the daemon is still up");
}

#[test]
fn plans_over_the_caps_are_refused_with_a_clear_error() {
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path());
    let steps = "  - run: t\n".repeat(1_001);
    let r = post_plan(
        &daemon,
        state.path(),
        &format!("version: 1\nname: many\nservice: many\nsteps:\n{steps}"),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body.contains("more than the 1000 a plan may hold"),
        "{}",
        r.body
    );
    // Over a mebibyte: refused before anything decodes it.
    let big = format!(
        "version: 1\nname: big\nservice: big\nsteps:\n  - run: t\n# {}\n",
        "x".repeat(1 << 20)
    );
    let r = post_plan(&daemon, state.path(), &big);
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.body.contains("payload_too_large"), "{}", r.body);
    assert!(healthy(&daemon.url, 2.0));
}
