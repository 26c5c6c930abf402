//! Notifications from real launches: Slack, a signed webhook, email (aiosmtpd) and
//! Statuspage receive the expected messages with live figures; a channel that is down is
//! retried and reported without holding the launch; a required one that is down stops
//! the launch before traffic moves; no secret reaches a log, journal, status or report.

mod support;

#[path = "../../notify/tests/support/mod.rs"]
mod receivers;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use receivers::{HttpReceiver, SmtpServer, assert_slack_shape, assert_statuspage_shape};
use support::{Daemon, demo_app, free_port, read, set_error_rate, spawn, stderr, stdout, workdir};

const SLACK_PATH: &str = "/services/T000/B000/SLACKSECRETPATH";
const WEBHOOK_SECRET: &str = "whsec-e2e-0123456789";
const SMTP_PASSWORD: &str = "hunter2-e2e-smtp";
const API_KEY: &str = "sp-e2e-api-key-0123";
const SECRETS: &[&str] = &["SLACKSECRETPATH", WEBHOOK_SECRET, SMTP_PASSWORD, API_KEY];

struct Receivers {
    _rt: tokio::runtime::Runtime,
    http: HttpReceiver,
    smtp: SmtpServer,
}

impl Receivers {
    fn start() -> Self {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let http = rt.block_on(HttpReceiver::start(|r, _| {
            if r.path.contains("/incidents") && r.method == "POST" {
                (201, r#"{"id":"inc42","status":"in_progress"}"#.into())
            } else {
                (200, r#"{"ok":true}"#.into())
            }
        }));
        let smtp = SmtpServer::start(Some(("liftoff", SMTP_PASSWORD)), None);
        Self {
            _rt: rt,
            http,
            smtp,
        }
    }

    /// Environment for the plan's `${VAR}`s.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SLACK_URL", self.http.url(SLACK_PATH)),
            ("HOOK_SECRET", WEBHOOK_SECRET.into()),
            ("SMTP_PASSWORD", SMTP_PASSWORD.into()),
            ("SP_KEY", API_KEY.into()),
        ]
    }

    fn slack(&self) -> Vec<String> {
        self.http
            .requests()
            .iter()
            .filter(|r| r.path == SLACK_PATH)
            .map(|r| assert_slack_shape(r)["text"].as_str().unwrap().to_string())
            .collect()
    }

    fn hooks(&self) -> Vec<serde_json::Value> {
        self.http
            .requests()
            .iter()
            .filter(|r| r.path == "/hook")
            .map(|r| {
                let sig = r.header("x-liftoff-signature").expect("signed");
                assert_eq!(
                    sig,
                    liftoff_notify::webhook_signature(WEBHOOK_SECRET.as_bytes(), &r.body),
                    "the signature verifies over the exact body"
                );
                r.json()
            })
            .collect()
    }
}

fn notify_section(http: &HttpReceiver, smtp_port: u16, events: &str) -> String {
    format!(
        "notify:
  retry: {{ attempts: 2, backoff: 10ms, timeout: 2s }}
  channels:
    - name: war-room
      slack: ${{SLACK_URL}}
      events: {events}
    - name: audit
      webhook: {hook}
      secret: ${{HOOK_SECRET}}
      events: {events}
    - name: stakeholders
      email:
        smtp: smtp://127.0.0.1:{smtp_port}
        starttls: false
        username: liftoff
        password: ${{SMTP_PASSWORD}}
        from: launches@example.com
        to: [cto@example.com]
      events: [succeeded, rollback_completed]
    - name: status
      statuspage:
        page_id: page1
        component_id: comp1
        api_key: ${{SP_KEY}}
        api_url: {api}
",
        hook = http.url("/hook"),
        api = http.url(""),
    )
}

fn launch(daemon: &Daemon, dir: &Path, plan: &str, env: &[(&'static str, String)]) -> String {
    std::fs::write(dir.join("plan.yaml"), plan).unwrap();
    let out = Command::new(support::BIN)
        .args(["launch", "plan.yaml"])
        .current_dir(dir)
        .env("LIFTOFF_SERVER", &daemon.url)
        .env("LIFTOFF_STATE_DIR", &daemon.state_dir)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(out.status.success(), "launch: {}", stderr(&out));
    stdout(&out).trim().to_string()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn events_of(texts: &[String], needles: &[&str]) -> Vec<String> {
    texts
        .iter()
        .filter_map(|t| {
            needles
                .iter()
                .find(|n| t.contains(**n))
                .map(|n| n.to_string())
        })
        .collect()
}

#[test]
fn a_good_and_a_bad_launch_tell_every_channel_with_live_figures() {
    let rx = Receivers::start();
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
    let events = "[launch_started, rollback_started, rollback_completed, succeeded, failed]";
    let plan = |name: &str| {
        format!(
            "version: 1
name: {name}
service: shop
router:
  kind: builtin
  listen: 127.0.0.1:{listen}
  stable: http://127.0.0.1:{stable}
  candidate: http://127.0.0.1:{candidate}
  sticky: {{ header: X-User-Id }}
{notify}steps:
  - traffic: 50%
  - bake: {{ for: 2s }}
  - traffic: 100%
rollback:
  check_every: 250ms
  on: [\"error_rate > 20% over 2s\"]
",
            notify = notify_section(&rx.http, rx.smtp.port, events)
        )
    };

    // The good release.
    let id = launch(&daemon, dir.path(), &plan("v2 good"), &rx.env());
    let s = daemon.ended(dir.path(), &id, Duration::from_secs(30));
    assert_eq!(s["status"], "succeeded", "{s:#}");
    wait_until("the success message", || {
        rx.slack()
            .iter()
            .any(|t| t.contains("launch v2 good complete"))
    });
    let slack = rx.slack();
    assert_eq!(
        events_of(
            &slack,
            &["launch v2 good started", "launch v2 good complete"]
        ),
        ["launch v2 good started", "launch v2 good complete"]
    );
    let done = slack.iter().find(|t| t.contains("complete")).unwrap();
    assert!(done.contains("Candidate weight: 100%"), "{done}");
    assert!(done.contains("0.00% errors"), "live figures: {done}");
    let hooks = rx.hooks();
    let names: Vec<&str> = hooks.iter().map(|h| h["event"].as_str().unwrap()).collect();
    assert_eq!(names, ["launch_started", "succeeded"], "{hooks:#?}");
    assert_eq!(hooks[1]["launch"]["id"], id.as_str(), "{:#}", hooks[1]);

    // The bad release: the trigger rolls it back.
    set_error_rate(candidate, "0.6");
    let id = launch(&daemon, dir.path(), &plan("v3 bad"), &rx.env());
    let s = daemon.ended(dir.path(), &id, Duration::from_secs(30));
    assert_eq!(s["status"], "rolled-back", "{s:#}");
    wait_until("the rollback messages", || {
        rx.slack().iter().any(|t| t.contains("ROLLBACK COMPLETE"))
    });
    let slack = rx.slack();
    let bad: Vec<&String> = slack.iter().filter(|t| !t.contains("v2 good")).collect();
    let started = bad
        .iter()
        .find(|t| t.contains("ROLLBACK INITIATED"))
        .unwrap();
    assert!(
        // Slack's mrkdwn escapes `>` as `&gt;`, as its documentation requires.
        started.contains("Reason: trigger `error_rate &gt; 20% over 2s` fired"),
        "{started}"
    );
    assert!(started.contains("Candidate weight: 50%"), "{started}");
    let rate: f64 = started
        .split("Error rate: ")
        .nth(1)
        .and_then(|s| s.split('%').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("a candidate error rate in {started}"));
    assert!(rate > 20.0, "the live candidate error rate: {started}");
    let hooks: Vec<String> = rx
        .hooks()
        .iter()
        .map(|h| h["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        hooks[2..],
        ["launch_started", "rollback_started", "rollback_completed"]
    );

    // Email: one for the success, one for the rollback, through SMTP auth.
    wait_until("two emails", || rx.smtp.messages().len() >= 2);
    let mails = rx.smtp.messages();
    let subjects: Vec<String> = mails.iter().map(|m| m.to_string()).collect();
    assert!(subjects[0].contains("complete"), "{subjects:?}");
    assert!(
        subjects[1].contains("ROLLBACK COMPLETE") || subjects[1].contains("back"),
        "{subjects:?}"
    );

    // Statuspage: a maintenance opened and completed per launch, component states.
    let calls: Vec<String> = rx
        .http
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v1/pages/"))
        .map(|r| {
            let call = assert_statuspage_shape(r, "page1", API_KEY);
            format!("{:?}", call)
        })
        .collect();
    assert!(
        calls
            .iter()
            .filter(|c| c.starts_with("OpenIncident"))
            .count()
            >= 2,
        "a maintenance per launch: {calls:#?}"
    );
    assert!(
        calls.iter().filter(|c| c.contains("\"completed\"")).count() >= 2,
        "both completed: {calls:#?}"
    );

    // The report names the trigger, the values that crossed it and how long the
    // rollback took, and lists the notifications.
    let md = daemon.cli(dir.path(), &["report", &id, "--format", "md"]);
    assert!(md.status.success(), "{}", stderr(&md));
    let md = stdout(&md);
    assert!(md.contains("error_rate > 20% over 2s"), "{md}");
    assert!(
        md.contains("candidate error_rate"),
        "the crossing values: {md}"
    );
    assert!(md.contains("war-room"), "notifications: {md}");
    let html_file = dir.path().join("report.html");
    let out = daemon.cli(
        dir.path(),
        &[
            "report",
            &id,
            "--format",
            "html",
            "--out",
            html_file.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let html = read(&html_file);
    assert!(html.contains("<svg"), "charts inline");

    // Secrets stay out of the journal, status, report, deployment log and daemon log.
    let mut seen = md.clone();
    seen.push_str(&html);
    // (The state database itself holds the variables' values, by design.)
    for file in walk(&daemon.state_dir) {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("liftoff.db") {
            seen.push_str(&read(&file));
        }
    }
    seen.push_str(&serde_json::to_string(&daemon.journal(&id)).unwrap());
    seen.push_str(&stdout(
        &daemon.cli(dir.path(), &["status", &id, "--output", "json"]),
    ));
    for secret in SECRETS {
        assert!(!seen.contains(secret), "`{secret}` leaked");
    }
}

#[test]
fn a_channel_that_is_down_does_not_hold_the_launch_but_a_required_one_stops_it() {
    let dir = workdir();
    let daemon = Daemon::start(&dir.path().join("state"));
    let down = free_port();
    let plan = |required: bool| {
        format!(
            "version: 1
name: notify down
service: shop
router: {{ kind: command, command: \"./set-weight.sh {{weight}}\" }}
notify:
  retry: {{ attempts: 3, backoff: 10ms, timeout: 1s }}
  channels:
    - name: ops
      webhook: http://127.0.0.1:{down}/hook
      required: {required}
steps:
  - traffic: 100%
"
        )
    };
    let id = launch(&daemon, dir.path(), &plan(false), &[]);
    let s = daemon.ended(dir.path(), &id, Duration::from_secs(20));
    assert_eq!(s["status"], "succeeded", "{s:#}");
    wait_until("the failed deliveries in status", || {
        let s = daemon.status_json(dir.path(), &id);
        s["notifications"]
            .as_array()
            .is_some_and(|n| n.iter().filter(|n| n["delivered"] == false).count() >= 2)
    });
    let s = daemon.status_json(dir.path(), &id);
    let failed = &s["notifications"][0];
    assert_eq!(failed["channel"], "ops");
    assert_eq!(failed["attempts"], 3, "{failed}");
    assert!(
        failed["detail"]
            .as_str()
            .unwrap()
            .contains("could not connect"),
        "{failed}"
    );
    assert_eq!(read(&dir.path().join("weights.log")), "0\n100\n");

    // Required: the launch fails before any traffic moves.
    std::fs::remove_file(dir.path().join("weights.log")).unwrap();
    let id = launch(&daemon, dir.path(), &plan(true), &[]);
    let s = daemon.ended(dir.path(), &id, Duration::from_secs(20));
    assert_eq!(s["status"], "failed", "{s:#}");
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("required channel `ops` could not be told"),
        "{s:#}"
    );
    assert_eq!(
        read(&dir.path().join("weights.log")),
        "",
        "no traffic moved"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
