//! Go/no-go checklists, smoke tests and migrations, through the real binary against the
//! machine's real PostgreSQL and Redis.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{
    BIN, Daemon, TestDb, demo_app, pg_url, psql, read, redis_url, set_error_rate, stderr, stdout,
    workdir,
};

const ROUTER: &str = "router: { kind: command, command: \"./set-weight.sh {weight}\" }\n";

/// Items against PostgreSQL, Redis, the disk and a file, all passing, plus `extra`.
fn checklist_plan(extra: &str, pass: &str) -> String {
    format!(
        "version: 1
name: checklist
service: shop
{ROUTER}checklist:
  pass: {pass}
  items:
    - name: primary is writable
      postgres: ${{CHECK_PG_URL}}
      query: select pg_is_in_recovery()
      expect: false
    - name: cache is the master
      redis: ${{CHECK_REDIS_URL}}
      info: role
      expect: master
    - name: disk has room
      disk: .
      min_free: 0%
    - name: backup is fresh
      file: backup.dump
      max_age: 1h
{extra}steps:
  - traffic: 100%
"
    )
}

fn check(dir: &Path, plan: &str, args: &[&str]) -> std::process::Output {
    std::fs::write(dir.join("plan.yaml"), plan).unwrap();
    std::fs::write(dir.join("backup.dump"), "x").unwrap();
    Command::new(BIN)
        .arg("check")
        .arg("plan.yaml")
        .args(args)
        .current_dir(dir)
        .env("CHECK_PG_URL", pg_url("postgres"))
        .env("CHECK_REDIS_URL", redis_url())
        .output()
        .unwrap()
}

fn closed_port() -> u16 {
    support::free_port()
}

#[test]
fn only_a_critical_failure_is_no_go_and_a_tolerated_one_is_go() {
    let dir = workdir();
    let port = closed_port();
    let failing = |critical: bool| {
        format!(
            "    - name: payments reachable\n      tcp: 127.0.0.1:{port}\n      critical: {critical}\n"
        )
    };
    let rule = "{ critical: 100%, overall: 80% }";

    let out = check(dir.path(), &checklist_plan(&failing(true), rule), &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(text.contains("NO-GO: 4/5 critical passed"), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("payments reachable")
            && l.contains("failed")
            && l.contains(&format!("127.0.0.1:{port}"))),
        "the failing item and its evidence: {text}"
    );
    for item in [
        "primary is writable",
        "cache is the master",
        "disk has room",
        "backup is fresh",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(item) && l.contains("passed")),
            "{item} passes against the real service: {text}"
        );
    }

    // The same failure on a non-critical item, 4/5 = 80% overall: GO.
    let out = check(
        dir.path(),
        &checklist_plan(&failing(false), rule),
        &["--output", "json"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verdict"], "GO");
    assert_eq!(report["passed"], 4);
    let item = &report["items"][4];
    assert_eq!(item["item"], "payments reachable");
    assert_eq!(item["result"], "failed");
    assert!(
        item["evidence"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{item}"
    );

    // Stricter overall rule: the same non-critical failure is NO-GO.
    let strict = "{ critical: 100%, overall: 95% }";
    let out = check(dir.path(), &checklist_plan(&failing(false), strict), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
}

#[test]
fn check_through_the_daemon_and_a_bad_plan_is_exit_two() {
    let dir = workdir();
    let daemon = Daemon::start(&dir.path().join("state"));
    let out = check(
        dir.path(),
        &checklist_plan("", "{ critical: 100% }"),
        &[
            "--server",
            &daemon.url,
            "--state-dir",
            daemon.state_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("GO: 4/4 critical passed"),
        "{}",
        stdout(&out)
    );

    let bad = checklist_plan("    - tls: nowhere\n", "{ critical: 100% }");
    let out = check(dir.path(), &bad, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("plan.yaml:22:12: tls: `nowhere` is not `host:port`"),
        "{}",
        stderr(&out)
    );
}

fn launch(daemon: &Daemon, dir: &Path, plan: &str, env: &[(&str, String)]) -> String {
    std::fs::write(dir.join("plan.yaml"), plan).unwrap();
    std::fs::write(dir.join("backup.dump"), "x").unwrap();
    let out = Command::new(BIN)
        .args(["launch", "plan.yaml"])
        .current_dir(dir)
        .env("LIFTOFF_SERVER", &daemon.url)
        .env("LIFTOFF_STATE_DIR", &daemon.state_dir)
        .env("CHECK_PG_URL", pg_url("postgres"))
        .env("CHECK_REDIS_URL", redis_url())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(out.status.success(), "launch: {}", stderr(&out));
    stdout(&out).trim().to_string()
}

#[test]
fn a_launch_waits_for_the_sign_off_and_stops_on_no_go_without_moving_traffic() {
    let dir = workdir();
    let daemon = Daemon::start(&dir.path().join("state"));
    let signed = checklist_plan(
        "    - name: release manager signs\n      approval: release-manager\n",
        "{ critical: 100% }",
    );
    let id = launch(&daemon, dir.path(), &signed, &[]);
    let s = daemon.wait_for(dir.path(), &id, Duration::from_secs(20), |s| {
        s["status"] == "waiting-approval"
    });
    assert_eq!(s["checklist"]["waiting_for"][0], "release-manager", "{s:#}");
    assert_eq!(
        read(&dir.path().join("weights.log")),
        "",
        "no traffic before GO"
    );
    let wrong = daemon.cli(dir.path(), &["approve", &id, "--as", "sre"]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(
        stderr(&wrong).contains("`release-manager`"),
        "{}",
        stderr(&wrong)
    );
    let ok = daemon.cli(
        dir.path(),
        &[
            "approve",
            &id,
            "--as",
            "release-manager",
            "--by",
            "ana",
            "--comment",
            "go",
        ],
    );
    assert!(ok.status.success(), "{}", stderr(&ok));
    let s = daemon.ended(dir.path(), &id, Duration::from_secs(20));
    assert_eq!(s["status"], "succeeded", "{s:#}");
    assert_eq!(read(&dir.path().join("weights.log")), "0\n100\n");
    let checks = s["checklist"]["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 5);
    assert!(
        checks.iter().all(|c| c["result"] == "passed"),
        "{checks:#?}"
    );
    assert_eq!(
        checks[4]["evidence"],
        "approved by ana as release-manager: go"
    );
    let checked = daemon
        .journal(&id)
        .iter()
        .filter(|e| e["kind"] == "checked")
        .count();
    assert_eq!(checked, 5, "every result is journaled");

    // NO-GO: the launch ends without touching traffic or running rollback steps.
    std::fs::remove_file(dir.path().join("weights.log")).unwrap();
    let port = closed_port();
    let no_go = checklist_plan(
        &format!("    - name: payments reachable\n      tcp: 127.0.0.1:{port}\n"),
        "{ critical: 100% }",
    );
    let id = launch(&daemon, dir.path(), &no_go, &[]);
    let s = daemon.ended(dir.path(), &id, Duration::from_secs(20));
    assert_eq!(s["status"], "no-go", "{s:#}");
    let reason = s["reason"].as_str().unwrap();
    assert!(reason.contains("NO-GO: 4/5 critical"), "{reason}");
    assert!(
        reason.contains("`payments reachable` (critical)"),
        "{reason}"
    );
    assert_eq!(read(&dir.path().join("weights.log")), "");
    let text = stdout(&daemon.cli(dir.path(), &["status", &id]));
    assert!(
        text.contains("✗ payments reachable: cannot connect"),
        "{text}"
    );
}

#[test]
fn a_failing_smoke_request_rolls_back_and_status_shows_what_was_expected() {
    let dir = workdir();
    let daemon = Daemon::start(&dir.path().join("state"));
    let (_app, port) = demo_app("2");
    set_error_rate(port, "1.0");
    let plan = format!(
        "version: 1
name: smoke
service: shop
{ROUTER}steps:
  - traffic: 10%
  - name: smoke candidate
    smoke:
      base_url: http://127.0.0.1:{port}
      requests:
        - name: health
          url: /health
          body_contains: ok
        - name: home
          url: /
          status: 200
          max_latency: 2s
  - traffic: 100%
"
    );
    let id = launch(&daemon, dir.path(), &plan, &[]);
    let s = daemon.ended(dir.path(), &id, Duration::from_secs(20));
    assert_eq!(s["status"], "rolled-back", "{s:#}");
    assert_eq!(read(&dir.path().join("weights.log")), "0\n10\n0\n");
    let step = &s["steps"][1];
    assert_eq!(step["status"], "failed");
    let checks = step["checks"].as_array().unwrap();
    assert_eq!(checks[0]["result"], "passed", "{checks:#?}");
    let home = &checks[1];
    assert_eq!(home["result"], "failed");
    assert_eq!(home["request"], format!("GET http://127.0.0.1:{port}/"));
    assert!(
        home["expected"].as_str().unwrap().contains("status 200"),
        "{home}"
    );
    assert!(
        home["actual"].as_str().unwrap().contains("status 500"),
        "{home}"
    );
    let text = stdout(&daemon.cli(dir.path(), &["status", &id]));
    assert!(text.contains("expected status 200"), "{text}");
    assert!(text.contains("actual   status 500"), "{text}");
}

#[test]
fn a_rollback_restores_the_database_to_its_state_before_the_migration() {
    let dir = workdir();
    let db = TestDb::create(
        "restore",
        "CREATE TABLE bookings (id int primary key, guest text, nights int);
         INSERT INTO bookings VALUES (1, 'ana', 2), (2, 'bo', 5);",
    );
    let url = db.url();
    let schema_sql = "SELECT table_name || '.' || column_name || ':' || data_type \
         FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1";
    let rows_sql = "SELECT id || ',' || guest || ',' || nights FROM bookings ORDER BY id";
    let (schema_before, rows_before) = (psql(&url, schema_sql), psql(&url, rows_sql));

    let daemon = Daemon::start(&dir.path().join("state"));
    let plan = format!(
        "version: 1
name: migrate
service: hotel
{ROUTER}steps:
  - name: migrate schema
    migrate:
      database: ${{E2E_DB_URL}}
      command: >-
        psql -X -v ON_ERROR_STOP=1 \"$LIFTOFF_DATABASE\"
        -c 'CREATE TABLE payments (id int, amount numeric)'
        -c 'ALTER TABLE bookings ADD COLUMN channel text'
        -c \"UPDATE bookings SET nights = nights + 10, channel = 'web'\"
      verify:
        - query: select count(*) from payments
          expect: 0
        - query: select max(nights) from bookings
          expect: \">= 15\"
      restore_on_rollback: true
      terminate_sessions: true
      restore_verify:
        - query: select max(nights) from bookings
          expect: 5
  - traffic: 10%
  - name: smoke fails
    run: echo 'smoke failed' && exit 3
  - traffic: 100%
"
    );
    let id = launch(&daemon, dir.path(), &plan, &[("E2E_DB_URL", url.clone())]);
    let s = daemon.ended(dir.path(), &id, Duration::from_secs(60));
    assert_eq!(s["status"], "rolled-back", "{s:#}");
    assert_eq!(psql(&url, schema_sql), schema_before, "schema restored");
    assert_eq!(psql(&url, rows_sql), rows_before, "rows restored");

    let migrate = &s["steps"][0];
    assert_eq!(migrate["status"], "succeeded", "{migrate:#}");
    let backup = &migrate["backup"];
    let path = backup["path"].as_str().unwrap();
    assert!(
        path.starts_with(daemon.state_dir.join("backups").to_str().unwrap()),
        "{path}"
    );
    assert!(backup["bytes"].as_u64().unwrap() > 0);
    let restore = s["rollback"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "restore")
        .expect("a restore step in the rollback");
    assert_eq!(restore["status"], "succeeded", "{restore:#}");
    assert_eq!(restore["checks"][0]["result"], "passed", "{restore:#}");

    let kinds: Vec<String> = daemon
        .journal(&id)
        .iter()
        .map(|e| format!("{}: {}", e["kind"], e["summary"]))
        .collect();
    let backup_at = kinds
        .iter()
        .position(|k| k.starts_with("\"backup_taken\"") && k.contains(path))
        .expect("the backup is journaled");
    let restored_at = kinds
        .iter()
        .position(|k| k.contains("`restore backup of `migrate schema`` succeeded"))
        .unwrap_or_else(|| panic!("the restore is journaled: {kinds:#?}"));
    assert!(backup_at < restored_at);
    assert!(
        !kinds.iter().any(|k| k.contains(&url)),
        "the connection string is a secret"
    );
}
