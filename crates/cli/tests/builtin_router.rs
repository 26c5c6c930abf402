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

    // Routers report every 100 ms: the figures arrive within a report or two.
    let requests = |s: &serde_json::Value, i: usize| {
        s["traffic"]["versions"][i]["last_60s"]["requests"]
            .as_u64()
            .unwrap_or(0)
    };
    let s = daemon.wait_for(work.path(), &id, Duration::from_secs(5), |s| {
        s["traffic"]["versions"][1]["health_checked"] == true
            && requests(s, 0) + requests(s, 1) >= 800
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

/// `n` GETs through `listen` on one connection (curl), each with `headers`: the bodies.
fn get_many(listen: &str, n: usize, headers: &[&str]) -> Vec<String> {
    let mut cmd = Command::new("curl");
    cmd.arg("-s");
    for i in 0..n {
        if i > 0 {
            cmd.arg("--next");
        }
        for h in headers {
            cmd.args(["-H", h]);
        }
        cmd.arg(format!("http://{listen}/checkout"));
    }
    let out = cmd.output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn launch(daemon: &Daemon, work: &std::path::Path, file: &str, plan: &str) -> String {
    std::fs::write(work.join(file), plan).unwrap();
    let out = daemon.cli(work, &["launch", file]);
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Whether the trigger `subject` has crossed (or fired) in the launch's evaluations.
fn crossed(status: &serde_json::Value, subject: &str) -> bool {
    status["evaluations"].as_array().is_some_and(|all| {
        all.iter().any(|e| {
            e["subject"] == subject
                && e["verdict"]
                    .as_str()
                    .is_some_and(|v| v == "crossed" || v.starts_with("fired"))
        })
    })
}

/// The figures of the candidate over the last 60 s, from a launch's status.
fn candidate_60s(status: &serde_json::Value) -> &serde_json::Value {
    let versions = &status["traffic"]["versions"];
    assert_eq!(versions[1]["version"], "candidate", "{status:#}");
    &versions[1]["last_60s"]
}

#[test]
fn hostile_chunked_clients_cannot_roll_a_healthy_launch_back() {
    use std::io::{Read, Write};
    let (_v1, p1) = app("1");
    let (_v2, p2) = app("2");
    let work = support::workdir();
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path());
    // The second trigger is the witness: it crosses once the candidate's window holds
    // the honest requests sent after each round of hostile ones, so the evaluation that
    // sees it judges the first trigger on the hostile ones too. (Hostile requests are
    // the client's: they do not count as the candidate's requests either.)
    let witness = "requests >= 20 over 10s";
    let id = launch(
        &daemon,
        work.path(),
        "plan.yaml",
        &format!(
            "version: 1\nname: shop-hostile\nservice: shop\nrouter:\n  kind: builtin\n  listen: 127.0.0.1:0\n  stable: http://127.0.0.1:{p1}\n  candidate: http://127.0.0.1:{p2}\nsteps:\n  - traffic: 50%\n  - approve: {{ role: sre }}\n  - traffic: 100%\nrollback:\n  on:\n    - 'error_rate > 5% over 10s'\n    - {{ when: '{witness}', action: notify }}\n  check_every: 100ms\n"
        ),
    );
    let s = daemon.wait_for(work.path(), &id, Duration::from_secs(10), |s| {
        s["status"] == "waiting-approval"
    });
    let listen = s["traffic"]["listen"].as_str().unwrap().to_string();

    // The override header is not on unless the plan says so: these split 50/50.
    let asked = get_many(&listen, 100, &["X-Liftoff-Version: candidate"]);
    assert_eq!(asked.len(), 100, "{asked:?}");
    let on_candidate = asked.iter().filter(|b| *b == "hello from v2").count();
    assert!(
        (20..=80).contains(&on_candidate),
        "{on_candidate}/100 on the candidate"
    );

    // Windows leave out the second the triggers were armed in: rounds of hostile
    // requests until the witness has seen them.
    let addr: std::net::SocketAddr = listen.parse().unwrap();
    let mut sent = 0;
    support::wait_until(Duration::from_secs(20), "the witness trigger", || {
        for _ in 0..50 {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(
                b"POST / HTTP/1.1\r\nHost: x\r\nX-Liftoff-Version: candidate\r\n\
                  Transfer-Encoding: chunked\r\n\r\nZZ\r\n",
            )
            .unwrap();
            let mut reply = String::new();
            let _ = s.read_to_string(&mut reply);
            assert!(
                reply.starts_with("HTTP/1.1 400 Bad Request\r\n"),
                "hostile request {sent}: {reply}"
            );
            sent += 1;
        }
        get_many(&listen, 20, &[]);
        let s = daemon.status_json(work.path(), &id);
        crossed(&s, witness) || s["terminal"] == true
    });
    let s = daemon.status_json(work.path(), &id);
    assert_eq!(s["status"], "waiting-approval", "{s:#}");
    assert!(!crossed(&s, "error_rate > 5% over 10s"), "{s:#}");
    let cand = candidate_60s(&s);
    assert_eq!(cand["error_rate"], 0.0, "{cand:#}");
    assert_eq!(cand["errors_connect"], 0, "{cand:#}");
    // At least two rounds of 50, split with the weight: about half on the candidate.
    assert!(cand["client_aborts"].as_u64().unwrap() >= 20, "{cand:#}");

    let ok = daemon.cli(work.path(), &["approve", &id, "--as", "sre"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    daemon.wait_for(work.path(), &id, Duration::from_secs(10), |s| {
        s["status"] == "succeeded"
    });
}

#[test]
fn two_launches_sharing_a_candidate_url_keep_their_own_numbers() {
    let (_s1, shop_stable) = app("1");
    let (_s2, cart_stable) = app("3");
    let (_c, shared) = app("2");
    let work = support::workdir();
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path());
    let plan = |service: &str, stable: u16, extra: &str| {
        format!(
            "version: 1\nname: {service}-2\nservice: {service}\nrouter:\n  kind: builtin\n  listen: 127.0.0.1:0\n  stable: http://127.0.0.1:{stable}\n  candidate: http://127.0.0.1:{shared}\nsteps:\n  - traffic: 50%\n  - approve: {{ role: sre }}\nrollback:\n  on:\n    - 'error_rate > 5% over 5s'\n{extra}  check_every: 100ms\n"
        )
    };
    let witness = "requests >= 20 over 5s";
    let shop = launch(
        &daemon,
        work.path(),
        "shop.yaml",
        &plan("shop", shop_stable, ""),
    );
    let cart = launch(
        &daemon,
        work.path(),
        "cart.yaml",
        &plan(
            "cart",
            cart_stable,
            &format!("    - {{ when: '{witness}', action: notify }}\n"),
        ),
    );
    let listen = |id: &str| {
        let s = daemon.wait_for(work.path(), id, Duration::from_secs(10), |s| {
            s["status"] == "waiting-approval"
        });
        s["traffic"]["listen"].as_str().unwrap().to_string()
    };
    let (shop_at, cart_at) = (listen(&shop), listen(&cart));

    // The shared candidate fails everything shop sends it; cart sends it nothing.
    // (Windows leave out the second the triggers were armed in: traffic in rounds.)
    support::set_error_rate(shared, "1");
    support::wait_until(Duration::from_secs(20), "shop's rollback", || {
        get_many(&shop_at, 40, &[]);
        daemon.status_json(work.path(), &shop)["terminal"] == true
    });
    let s = daemon.status_json(work.path(), &shop);
    assert_eq!(s["status"], "rolled-back", "{s:#}");
    assert!(candidate_60s(&s)["errors_upstream_5xx"].as_u64().unwrap() > 0);
    let c = daemon.status_json(work.path(), &cart);
    assert_eq!(c["status"], "waiting-approval", "{c:#}");
    assert_eq!(
        candidate_60s(&c)["requests"],
        0,
        "shop's requests are not cart's"
    );

    // Cart's own traffic, to a candidate that works again, while shop's errors are
    // still inside cart's trigger window.
    support::set_error_rate(shared, "0");
    support::wait_until(Duration::from_secs(20), "cart's witness trigger", || {
        let got = get_many(&cart_at, 20, &[]);
        assert!(got.iter().all(|b| b.starts_with("hello from v")), "{got:?}");
        let c = daemon.status_json(work.path(), &cart);
        crossed(&c, witness) || c["terminal"] == true
    });
    let c = daemon.status_json(work.path(), &cart);
    assert_eq!(c["status"], "waiting-approval", "{c:#}");
    assert!(!crossed(&c, "error_rate > 5% over 5s"), "{c:#}");
    assert_eq!(candidate_60s(&c)["error_rate"], 0.0);

    let metrics = Command::new("curl")
        .args(["-s", &format!("{}/metrics", daemon.url)])
        .output()
        .unwrap();
    let metrics = String::from_utf8(metrics.stdout).unwrap();
    let failed = |route: &str| {
        let series = format!(
            "liftoff_router_requests_total{{route=\"{route}\",version=\"candidate\",upstream=\"http://127.0.0.1:{shared}\",class=\"5xx\"}} "
        );
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&series)?.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
    };
    assert!(failed("shop") > 0);
    assert_eq!(failed("cart"), 0);

    let ok = daemon.cli(work.path(), &["approve", &cart, "--as", "sre"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    daemon.wait_for(work.path(), &cart, Duration::from_secs(10), |s| {
        s["status"] == "succeeded"
    });
}
