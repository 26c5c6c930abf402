//! PromQL gates against a real Prometheus (Debian's), started here on a free port and
//! scraping the daemon's own `/metrics`.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{
    BIN, Daemon, Proc, demo_app as app, free_port, set_error_rate, spawn, stderr, wait_http,
};

/// Prometheus scraping `target` (host:port) every second.
fn prometheus(dir: &std::path::Path, target: &str) -> (Proc, String) {
    let port = free_port();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\nscrape_configs:\n  - job_name: liftoff\n    static_configs: [{{ targets: ['{target}'] }}]\n"
        ),
    )
    .unwrap();
    let p = spawn(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}")),
    );
    let url = format!("http://127.0.0.1:{port}");
    wait_http(&format!("{url}/-/ready"));
    (p, url)
}

const GATE: &str = r#"sum(rate(liftoff_router_errors_total{route="{{service}}",version="{{version}}",source!="client_abort"}[5s])) / sum(rate(liftoff_router_requests_total{route="{{service}}",version="{{version}}"}[5s]))"#;

fn plan(p1: u16, p2: u16, prom: &str, analyze: &str) -> String {
    format!(
        "version: 1\nname: promql\nservice: shop\nrouter: {{ kind: builtin, listen: '127.0.0.1:0', stable: 'http://127.0.0.1:{p1}', candidate: 'http://127.0.0.1:{p2}', sticky: {{ header: X-User-Id }} }}\nmetrics: {{ kind: prometheus, url: '{prom}', timeout: 2s }}\nsteps:\n  - traffic: 50%\n  - approve: {{ role: go }}\n  - analyze: {analyze}\n  - traffic: 100%\n"
    )
}

/// Launch `plan` (written to `work/plan.yaml`); its id.
fn launch(daemon: &Daemon, work: &std::path::Path, plan: &str) -> String {
    std::fs::write(work.join("plan.yaml"), plan).unwrap();
    let out = daemon.cli(work, &["launch", "plan.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Launch, then once it waits for approval call `ready` (with its status), give
/// Prometheus `warm_up` to scrape its traffic, approve, and wait for the outcome.
fn run(
    daemon: &Daemon,
    work: &std::path::Path,
    plan: &str,
    warm_up: Duration,
    ready: impl FnOnce(&serde_json::Value),
) -> serde_json::Value {
    let id = launch(daemon, work, plan);
    let s = daemon.wait_for(work, &id, Duration::from_secs(10), |s| {
        s["status"] == "waiting-approval"
    });
    ready(&s);
    std::thread::sleep(warm_up);
    assert!(
        daemon
            .cli(work, &["approve", &id, "--as", "go"])
            .status
            .success()
    );
    daemon.wait_for(work, &id, Duration::from_secs(30), |s| {
        s["terminal"] == true || (s["status"] == "paused" && s["current_step"].is_null())
    })
}

#[test]
fn a_promql_gate_passes_a_good_candidate_fails_a_bad_one_and_never_passes_without_prometheus() {
    let (_s, p1) = app("1");
    let (_c, p2) = app("2");
    let work = support::workdir();
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path());
    let prom_dir = tempfile::tempdir().unwrap();
    let (prom, prom_url) = prometheus(prom_dir.path(), daemon.url.trim_start_matches("http://"));
    let analyze = format!(
        "{{ for: 3s, interval: 1s, inconclusive_limit: 1, on_inconclusive: pause, gates: [{{ name: candidate error ratio, query: '{GATE}', condition: '< 0.05' }}] }}"
    );
    let plan = plan(p1, p2, &prom_url, &analyze);

    // The route exists once the first launch applies a weight: start the load then.
    let mut load = None;
    let good = run(&daemon, work.path(), &plan, Duration::from_secs(6), |s| {
        let listen = s["traffic"]["listen"].as_str().unwrap();
        load = Some(spawn(Command::new(BIN).args([
            "load",
            &format!("http://{listen}/"),
            "--concurrency",
            "4",
        ])));
    });
    assert_eq!(good["status"], "succeeded", "{good:#}");

    set_error_rate(p2, "0.2");
    let bad = run(&daemon, work.path(), &plan, Duration::from_secs(6), |_| {});
    assert_eq!(bad["status"], "rolled-back", "{bad:#}");
    let reason = bad["reason"].as_str().unwrap();
    assert!(
        reason.contains("`candidate error ratio`") && reason.contains(">= 0.05"),
        "{reason}"
    );

    // Prometheus gone: every evaluation is inconclusive, and the launch holds instead
    // of going on as if the gate had passed.
    set_error_rate(p2, "0");
    drop(prom);
    let blind = run(
        &daemon,
        work.path(),
        &plan,
        Duration::from_millis(100),
        |_| {},
    );
    assert_eq!(blind["status"], "paused", "{blind:#}");
    assert_eq!(
        blind["steps"][3]["status"], "pending",
        "traffic 100% never started: {blind:#}"
    );
    let journal = Command::new("curl")
        .args([
            "-s",
            &format!(
                "{}/api/v1/launches/{}/journal",
                daemon.url,
                blind["id"].as_str().unwrap()
            ),
        ])
        .output()
        .unwrap();
    let journal = String::from_utf8(journal.stdout).unwrap();
    assert!(
        journal.contains("query failed: Prometheus is unreachable"),
        "{journal}"
    );
    drop(load);
}

#[test]
fn a_promql_trigger_rolls_back_when_its_query_crosses() {
    let (_s, p1) = app("1");
    let (_c, p2) = app("2");
    let work = support::workdir();
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path());
    let prom_dir = tempfile::tempdir().unwrap();
    let (_prom, prom_url) = prometheus(prom_dir.path(), daemon.url.trim_start_matches("http://"));
    let plan = format!(
        "version: 1\nname: promql-trigger\nservice: shop\nrouter: {{ kind: builtin, listen: '127.0.0.1:0', stable: 'http://127.0.0.1:{p1}', candidate: 'http://127.0.0.1:{p2}', sticky: {{ header: X-User-Id }} }}\nmetrics: {{ kind: prometheus, url: '{prom_url}', timeout: 2s }}\nsteps:\n  - traffic: 50%\n  - approve: {{ role: go }}\nrollback:\n  on:\n    - {{ name: candidate error ratio, query: '{GATE}', condition: '> 0.05', for: 1s }}\n  check_every: 250ms\n"
    );
    let id = launch(&daemon, work.path(), &plan);
    let s = daemon.wait_for(work.path(), &id, Duration::from_secs(10), |s| {
        s["status"] == "waiting-approval"
    });
    let listen = s["traffic"]["listen"].as_str().unwrap();
    let _load =
        spawn(Command::new(BIN).args(["load", &format!("http://{listen}/"), "--concurrency", "4"]));
    std::thread::sleep(Duration::from_secs(4)); // healthy and scraped: nothing fires
    assert_eq!(
        daemon.status_json(work.path(), &id)["status"],
        "waiting-approval"
    );

    set_error_rate(p2, "0.5");
    let s = daemon.ended(work.path(), &id, Duration::from_secs(20));
    assert_eq!(s["status"], "rolled-back", "{s:#}");
    let reason = s["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("trigger `candidate error ratio` fired: candidate = "),
        "{reason}"
    );
    assert_eq!(s["traffic"]["weight"], 0.0);
}

/// One client, one rule: a query that returns several series fails the checklist item
/// and makes the gate inconclusive with the same words (the item used to take the
/// first series, an arbitrary one).
#[test]
fn several_series_are_refused_alike_by_the_checklist_and_by_gates() {
    let work = support::workdir();
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path());
    let prom_dir = tempfile::tempdir().unwrap();
    let (_prom, prom_url) = prometheus(prom_dir.path(), daemon.url.trim_start_matches("http://"));
    // Two series, whatever Prometheus has scraped.
    let query = r#"label_replace(vector(1), "copy", "a", "", "") or vector(2)"#;
    let plan = format!(
        "version: 1\nname: several\nservice: shop\nmetrics: {{ kind: prometheus, url: '{prom_url}', timeout: 2s }}\nchecklist:\n  - {{ prometheus: '{query}', condition: '< 5', critical: false }}\nsteps:\n  - analyze: {{ for: 1s, interval: 500ms, inconclusive_limit: 0, on_inconclusive: fail, gates: [{{ name: many, query: '{query}', condition: '< 5' }}] }}\n"
    );
    let id = launch(&daemon, work.path(), &plan);
    let s = daemon.ended(work.path(), &id, Duration::from_secs(20));
    const SEVERAL: &str = "the query returned 2 series; aggregate it to one (e.g. with sum())";
    let item = &s["checklist"]["checks"][0];
    assert_eq!(item["result"], "failed", "{s:#}");
    let evidence = item["evidence"].as_str().unwrap();
    assert!(evidence.ends_with(&format!(": {SEVERAL}")), "{evidence}");
    let gate = &s["evaluations"][0];
    assert_eq!(gate["verdict"], "inconclusive", "{s:#}");
    assert_eq!(gate["reason"], format!("query failed: {SEVERAL}"), "{s:#}");
    assert_eq!(s["status"], "rolled-back", "{s:#}");
}
