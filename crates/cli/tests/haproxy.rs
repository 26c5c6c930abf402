//! `router: { kind: haproxy }` against a real HAProxy: the test writes a haproxy.cfg
//! with an admin stats socket in a temporary directory, starts `haproxy -db` on a free
//! port in front of two `liftoff demo-app`s, and stops it by PID. liftoff moves the
//! weights through the runtime API and judges HAProxy's own `show stat` numbers.

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{Daemon, Proc, demo_app, free_port, set_error_rate, stderr, window_requests};

/// A running HAProxy with backend `app`: servers `stable` (weight 100) and `candidate`
/// (weight 0), balanced by `X-User-Id` with consistent hashing.
struct Haproxy {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    port: u16,
    _proc: Proc,
}

impl Haproxy {
    fn start(stable: u16, candidate: u16) -> Haproxy {
        let found = Command::new("haproxy")
            .arg("-v")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "haproxy is not installed: apt-get install haproxy (./test.sh installs it)"
        );
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("admin.sock");
        let port = free_port();
        let cfg = format!(
            "global\n  stats socket {sock} mode 600 level admin\n\
             defaults\n  mode http\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n\
             frontend web\n  bind 127.0.0.1:{port}\n  default_backend app\n\
             backend app\n  balance hdr(X-User-Id)\n  hash-type consistent\n\
             \x20 server stable 127.0.0.1:{stable} weight 100\n\
             \x20 server candidate 127.0.0.1:{candidate} weight 0\n",
            sock = socket.display()
        );
        let cfg_path = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg_path, cfg).unwrap();
        let log = std::fs::File::create(dir.path().join("haproxy.log")).unwrap();
        let proc = Proc(
            Command::new("haproxy")
                .arg("-f")
                .arg(&cfg_path)
                .arg("-db")
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start haproxy"),
        );
        let haproxy = Haproxy {
            socket,
            port,
            _proc: proc,
            _dir: dir,
        };
        support::wait_until(Duration::from_secs(10), "haproxy to start", || {
            std::os::unix::net::UnixStream::connect(&haproxy.socket).is_ok()
                && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        haproxy
    }

    /// One runtime API command's answer.
    fn api(&self, command: &str) -> String {
        let mut s = std::os::unix::net::UnixStream::connect(&self.socket).unwrap();
        s.write_all(format!("{command}\n").as_bytes()).unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        answer
    }

    /// `get weight app/SERVER`: the current weight.
    fn weight(&self, server: &str) -> u32 {
        let answer = self.api(&format!("get weight app/{server}"));
        answer
            .split_whitespace()
            .next()
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("get weight app/{server}: {answer:?}"))
    }

    /// The body of a GET through HAProxy as `user`.
    fn get(&self, user: &str) -> String {
        let out = Command::new("curl")
            .args(["-s", "-H", &format!("X-User-Id: {user}")])
            .arg(format!("http://127.0.0.1:{}/checkout", self.port))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn plan(&self, candidate: &str, steps: &str, rollback: &str) -> String {
        format!(
            "version: 1\nname: through-haproxy\nservice: shop\nrouter:\n  kind: haproxy\n  socket: {}\n  backend: app\n  stable: stable\n  candidate: {candidate}\n  sticky: {{ header: X-User-Id }}\nsteps:\n{steps}{rollback}",
            self.socket.display()
        )
    }
}

fn launch(daemon: &Daemon, work: &Path, plan: &str) -> String {
    std::fs::write(work.join("plan.yaml"), plan).unwrap();
    let out = daemon.cli(work, &["launch", "plan.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn a_launch_moves_haproxy_weights_5_25_100_and_users_stay_on_their_version() {
    let (_s, p1) = demo_app("1");
    let (_c, p2) = demo_app("2");
    let haproxy = Haproxy::start(p1, p2);
    let work = support::workdir();
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path());
    let steps = "  - traffic: 5%\n  - approve: { role: sre }\n  - traffic: 25%\n  - approve: { role: qa }\n  - traffic: 100%\n";
    let id = launch(&daemon, work.path(), &haproxy.plan("candidate", steps, ""));
    let held = |weights: (u32, u32)| {
        let s = daemon.wait_for(work.path(), &id, Duration::from_secs(15), |s| {
            s["status"] == "waiting-approval" || s["terminal"] == true
        });
        assert_eq!(s["status"], "waiting-approval", "{s:#}");
        assert_eq!(
            (haproxy.weight("stable"), haproxy.weight("candidate")),
            weights
        );
        // Which users the candidate serves; each user stays where they are.
        let served: Vec<bool> = (0..100)
            .map(|u| haproxy.get(&format!("user-{u}")).contains("v2"))
            .collect();
        for (u, on_candidate) in served.iter().enumerate() {
            let again = haproxy.get(&format!("user-{u}")).contains("v2");
            assert_eq!(again, *on_candidate, "user-{u} moved at {weights:?}");
        }
        served
    };
    let approve = |role: &str| daemon.cli_ok(work.path(), &["approve", &id, "--as", role]);
    let at_5 = held((95, 5));
    approve("sre");
    let at_25 = held((75, 25));
    // Consistent hashing: as the candidate's weight grows, its users stay on it.
    support::assert_sticky_growth(&at_5, &at_25);
    approve("qa");
    let s = daemon.ended(work.path(), &id, Duration::from_secs(15));
    assert_eq!(s["status"], "succeeded", "{s:#}");
    let message = s["steps"][4]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("HAProxy backend `app`: stable weight 0, candidate weight 100"),
        "{s:#}"
    );
    assert_eq!(
        (haproxy.weight("stable"), haproxy.weight("candidate")),
        (0, 100)
    );
    for u in 0..20 {
        let body = haproxy.get(&format!("user-{u}"));
        assert!(body.contains("hello from v2"), "user-{u}: {body:?}");
    }
}

/// Steady traffic from sticky users through HAProxy until dropped.
fn load(port: u16) -> Proc {
    support::load_users(&format!("http://127.0.0.1:{port}/checkout"), 4)
}

#[test]
fn a_failing_candidate_is_rolled_back_on_haproxys_own_numbers() {
    let (_s, p1) = demo_app("1");
    let (_c, p2) = demo_app("2");
    set_error_rate(p2, "0.3");
    let haproxy = Haproxy::start(p1, p2);
    let _traffic = load(haproxy.port);
    let work = support::workdir();
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path());
    let id = launch(
        &daemon,
        work.path(),
        &haproxy.plan(
            "candidate",
            "  - traffic: 50%\n  - approve: { role: sre }\n",
            "rollback:\n  on: ['error_rate > 10% over 5s']\n  check_every: 500ms\n",
        ),
    );
    let s = daemon.ended(work.path(), &id, Duration::from_secs(30));
    assert_eq!(s["status"], "rolled-back", "{s:#}");
    let reason = s["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("trigger `error_rate > 10% over 5s` fired: candidate error_rate"),
        "{reason}"
    );
    assert_eq!(
        (haproxy.weight("stable"), haproxy.weight("candidate")),
        (100, 0)
    );
    for u in 0..10 {
        let body = haproxy.get(&format!("user-{u}"));
        assert!(body.contains("v1"), "user-{u}: {body:?}");
    }
}

#[test]
fn a_wrong_server_name_fails_the_first_traffic_step_naming_backend_and_server() {
    let (_s, p1) = demo_app("1");
    let (_c, p2) = demo_app("2");
    let haproxy = Haproxy::start(p1, p2);
    let work = support::workdir();
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path());
    let id = launch(
        &daemon,
        work.path(),
        &haproxy.plan("canary", "  - traffic: 5%\n", ""),
    );
    let s = daemon.ended(work.path(), &id, Duration::from_secs(15));
    // The launch's first traffic change (its pin to stable) checks the backend.
    assert_eq!(s["status"], "failed", "{s:#}");
    assert_eq!(s["baseline"]["name"], "traffic pinned to stable", "{s:#}");
    assert_eq!(s["baseline"]["status"], "failed", "{s:#}");
    assert_eq!(
        s["baseline"]["message"],
        "HAProxy backend `app` has no server `canary` (router.candidate); its servers: stable, candidate",
        "{s:#}"
    );
    assert_eq!(s["steps"][0]["status"], "pending", "{s:#}");
    // Nothing moved.
    assert_eq!(
        (haproxy.weight("stable"), haproxy.weight("candidate")),
        (100, 0)
    );
}

#[test]
fn status_metrics_and_report_show_haproxys_per_version_figures() {
    let (_s, p1) = demo_app("1");
    let (_c, p2) = demo_app("2");
    let haproxy = Haproxy::start(p1, p2);
    let work = support::workdir();
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path());
    let steps = "  - traffic: 50%\n  - approve: { role: sre }\n";
    let id = launch(&daemon, work.path(), &haproxy.plan("candidate", steps, ""));
    let s = daemon.wait_for(work.path(), &id, Duration::from_secs(15), |s| {
        s["status"] == "waiting-approval" || s["terminal"] == true
    });
    assert_eq!(s["status"], "waiting-approval", "{s:#}");
    // 100 users, each once: HAProxy's counters, as `status` shows them, match.
    let on_candidate = (0..100)
        .filter(|u| haproxy.get(&format!("user-{u}")).contains("v2"))
        .count() as u64;
    assert!(
        (1..100).contains(&on_candidate),
        "{on_candidate} of 100 on v2"
    );
    let s = daemon.wait_for(work.path(), &id, Duration::from_secs(10), |s| {
        window_requests(s, 0) + window_requests(s, 1) >= 100
    });
    let t = &s["traffic"];
    assert_eq!(t["router"], "haproxy", "{t:#}");
    assert_eq!(t["weight"], 50.0, "the weight liftoff applied: {t:#}");
    assert_eq!(t["versions"][0]["version"], "stable", "{t:#}");
    assert_eq!(t["versions"][0]["upstream"], "stable", "{t:#}");
    assert_eq!(t["versions"][1]["version"], "candidate", "{t:#}");
    assert_eq!(
        (window_requests(&s, 0), window_requests(&s, 1)),
        (100 - on_candidate, on_candidate),
        "{t:#}"
    );
    assert_eq!(t["versions"][1]["last_60s"]["failed"], 0, "{t:#}");
    assert_eq!(t["versions"][1]["last_60s"]["error_rate"], 0.0, "{t:#}");
    // HAProxy keeps no latencies: null, and said so.
    assert!(t["versions"][1]["last_60s"]["p95_ms"].is_null(), "{t:#}");
    let not_measured = t["versions"][1]["not_measured"].to_string();
    assert!(
        not_measured.contains("\"p95_ms\"") && not_measured.contains("\"in_flight\""),
        "{t:#}"
    );
    let text = daemon.cli_ok(work.path(), &["status", &id]);
    assert!(
        text.contains("traffic: HAProxy backend `app` (runtime API at ")
            && text.contains("candidate 50%"),
        "{text}"
    );

    let metrics = daemon.metrics();
    let series = |version: &str| {
        format!(
            "liftoff_route_window_requests{{route=\"shop\",router=\"haproxy\",launch=\"{id}\",version=\"{version}\",window=\"60s\"}}"
        )
    };
    for (version, n) in [("stable", 100 - on_candidate), ("candidate", on_candidate)] {
        assert!(
            metrics.contains(&format!("{} {n}\n", series(version))),
            "{metrics}"
        );
    }
    assert!(
        metrics.contains(&format!(
            "liftoff_route_candidate_weight_ratio{{route=\"shop\",router=\"haproxy\",launch=\"{id}\"}} 0.5\n"
        )),
        "{metrics}"
    );
    assert!(
        !metrics.contains("liftoff_route_window_latency_seconds{"),
        "no latency series for HAProxy: {metrics}"
    );

    // The report's table comes from the journaled samples.
    let (report, md) = daemon.approve_and_report(work.path(), &id);
    let traffic = &report["traffic"];
    assert_eq!(traffic["router"], "haproxy", "{traffic:#}");
    assert_eq!(traffic["versions"][0]["version"], "stable", "{traffic:#}");
    assert_eq!(
        traffic["versions"][1]["version"], "candidate",
        "{traffic:#}"
    );
    for i in 0..2 {
        let n = traffic["versions"][i]["requests"].as_u64().unwrap_or(0);
        assert!(n > 0 && n <= 100, "{traffic:#}");
        assert!(
            traffic["versions"][i]["peak_p95_ms"].is_null(),
            "{traffic:#}"
        );
    }
    assert!(
        md.contains(
            "| Version | Requests | Failed | Error rate | Peak error rate | Peak p95 | Last p95 |"
        ),
        "{md}"
    );
    assert!(
        md.lines()
            .any(|l| l.starts_with("| candidate | ")
                && l.ends_with("| not measured | not measured |")),
        "{md}"
    );
}
