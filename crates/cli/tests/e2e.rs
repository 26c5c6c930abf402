//! The acceptance flows of the foundation, through the real binary and real processes.

mod support;

use std::time::Duration;

use support::{BIN, Daemon, read, stderr, stdout, workdir};

const ROUTER: &str = "router: { kind: command, command: \"./set-weight.sh {weight}\" }\n";

#[test]
fn a_plan_with_three_errors_reports_all_of_them_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("bad.yaml");
    std::fs::write(
        &plan,
        "version: 1\nname: bad\nservice: s\nsteps:\n  - run: ./deploy.sh ${LIFTOFF_TEST_UNSET_TOKEN}\n    timout: 5m\n  - pause: 5 fortnights-ish\n",
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .arg("validate")
        .arg(&plan)
        .env_remove("LIFTOFF_TEST_UNSET_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    let p = plan.display();
    assert!(
        err.contains(&format!(
            "{p}:5:22: environment variable `LIFTOFF_TEST_UNSET_TOKEN` is not set"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{p}:6:5: step: unknown key `timout`")),
        "{err}"
    );
    assert!(err.contains("did you mean `timeout`?"), "{err}");
    assert!(
        err.contains(&format!(
            "{p}:7:12: pause: `5 fortnights-ish` is not a duration"
        )),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn validate_no_env_checks_a_plan_without_its_secrets_and_lists_what_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("ci.yaml");
    std::fs::write(
        &plan,
        "version: 1\nname: ci\nservice: s\nrouter: { kind: builtin, listen: 127.0.0.1:0, stable: http://127.0.0.1:9000, candidate: \"http://127.0.0.1:${LIFTOFF_TEST_PORT}\" }\nsteps:\n  - run: ./deploy.sh ${LIFTOFF_TEST_TOKEN} ${LIFTOFF_TEST_PORT}\n  - traffic: 5%\n",
    )
    .unwrap();
    let p = plan.display().to_string();
    // CI holds no secrets: only PATH.
    let validate = |args: &[&str]| {
        std::process::Command::new(BIN)
            .arg("validate")
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .output()
            .unwrap()
    };

    let out = validate(&["--no-env", &p]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "{p}: ok without variables (2 steps, 0 rollback steps); it needs 2 variables:"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("LIFTOFF_TEST_PORT   {p}:4:107, {p}:6:44")),
        "{text}"
    );
    assert!(
        text.contains(&format!("LIFTOFF_TEST_TOKEN  {p}:6:22")),
        "{text}"
    );

    let out = validate(&["--no-env", "--output", "json", &p]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        json[0]["variables"],
        serde_json::json!([
            { "name": "LIFTOFF_TEST_PORT", "uses": [{ "line": 4, "col": 107 }, { "line": 6, "col": 44 }] },
            { "name": "LIFTOFF_TEST_TOKEN", "uses": [{ "line": 6, "col": 22 }] },
        ])
    );

    // Strict by default, for `validate` and `launch` (which stops before any daemon).
    let out = validate(&[&p]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!(
            "{p}:6:22: environment variable `LIFTOFF_TEST_TOKEN` is not set"
        )),
        "{}",
        stderr(&out)
    );
    let out = std::process::Command::new(BIN)
        .args(["--server", "http://127.0.0.1:9", "launch", &p])
        .env_remove("LIFTOFF_TEST_PORT")
        .env_remove("LIFTOFF_TEST_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("environment variable `LIFTOFF_TEST_TOKEN` is not set"),
        "{}",
        stderr(&out)
    );

    // What does not depend on a value is still checked: exit 2, no word of variables.
    std::fs::write(
        &plan,
        "version: 1\nname: ci\nservice: s\nsteps:\n  - run: ./deploy.sh ${LIFTOFF_TEST_TOKEN}\n    timout: 5m\n  - wait: { http: \"localhost:${LIFTOFF_TEST_PORT}/ready\" }\n",
    )
    .unwrap();
    let out = validate(&["--no-env", &p]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{p}:6:5: step: unknown key `timout`")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{p}:7:19: wait.http: `localhost:${{LIFTOFF_TEST_PORT}}/ready` is not an http or https URL"
        )),
        "{err}"
    );
    assert!(!err.contains("is not set"), "{err}");
}

#[test]
fn every_example_validates() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let mut plans: Vec<_> = std::fs::read_dir(examples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    plans.sort();
    assert!(!plans.is_empty());
    let out = std::process::Command::new(BIN)
        .arg("validate")
        .args(&plans)
        .envs(support::EXAMPLE_VARS.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(
        stdout(&out)
            .lines()
            .filter(|l| l.ends_with("rollback steps)"))
            .count(),
        plans.len()
    );
}

#[test]
fn run_traffic_approve_traffic_with_the_command_router() {
    let work = workdir();
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path());
    std::fs::write(
        work.path().join("plan.yaml"),
        format!(
            "version: 1\nname: shop-api-2.0\nservice: shop-api\n{ROUTER}steps:\n  - {{ name: deploy, run: \"echo deploying $LIFTOFF_SERVICE\" }}\n  - traffic: 50%\n  - approve: {{ role: sre, timeout: 1m }}\n  - traffic: 100%\nrollback:\n  steps:\n    - run: touch rolled-back\n"
        ),
    )
    .unwrap();
    let out = daemon.cli(work.path(), &["launch", "plan.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();

    daemon.wait_for(work.path(), &id, Duration::from_secs(20), |s| {
        s["status"] == "waiting-approval"
    });
    let wrong = daemon.cli(work.path(), &["approve", &id, "--as", "dev", "--by", "bob"]);
    assert_eq!(
        wrong.status.code(),
        Some(2),
        "a wrong role is refused: {}",
        stderr(&wrong)
    );
    assert!(stderr(&wrong).contains("wrong_role"));
    let ok = daemon.cli(
        work.path(),
        &[
            "approve",
            &id,
            "--as",
            "sre",
            "--by",
            "ana",
            "--comment",
            "dashboards green",
        ],
    );
    assert!(ok.status.success(), "{}", stderr(&ok));

    let s = daemon.ended(work.path(), &id, Duration::from_secs(20));
    assert_eq!(s["status"], "succeeded", "{s:#}");
    assert_eq!(read(&work.path().join("weights.log")), "0\n50\n100\n");
    assert!(!work.path().join("rolled-back").exists());
    for step in s["steps"].as_array().unwrap() {
        assert_eq!(step["status"], "succeeded", "{step:#}");
        let started: jiff::Timestamp = step["started_at"].as_str().unwrap().parse().unwrap();
        let ended: jiff::Timestamp = step["ended_at"].as_str().unwrap().parse().unwrap();
        assert!(started <= ended);
    }
    let approval = &s["steps"][2]["approval"];
    assert_eq!(approval["by"], "ana");
    assert_eq!(approval["role"], "sre");
    assert_eq!(approval["comment"], "dashboards green");
    assert_eq!(s["weight"], 100.0);
    assert!(
        s["steps"][0]["output"]
            .as_str()
            .unwrap()
            .contains("deploying shop-api")
    );
}

#[test]
fn a_failing_run_step_reverts_traffic_runs_rollback_steps_and_says_why() {
    let work = workdir();
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path());
    std::fs::write(
        work.path().join("plan.yaml"),
        format!(
            "version: 1\nname: shop-api-2.1\nservice: shop-api\n{ROUTER}steps:\n  - traffic: 25%\n  - {{ name: smoke, run: \"echo checking; echo 'disk full' >&2; exit 3\" }}\n  - traffic: 100%\nrollback:\n  steps:\n    - {{ name: page on-call, run: \"echo weight-was-$LIFTOFF_WEIGHT > rollback.log\" }}\n"
        ),
    )
    .unwrap();
    let out = daemon.cli(work.path(), &["launch", "plan.yaml", "--follow"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "--follow exits 1 on a rollback: {}",
        stderr(&out)
    );
    let followed = stdout(&out);
    assert!(
        followed.contains("rolling back: step `smoke` failed: exit status 3"),
        "{followed}"
    );
    assert!(followed.contains("result: rolled-back"), "{followed}");

    let id = followed
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("launch ")
        .to_string();
    let s = daemon.status_json(work.path(), &id);
    assert_eq!(s["status"], "rolled-back");
    assert_eq!(s["reason"], "step `smoke` failed: exit status 3");
    assert_eq!(s["steps"][1]["status"], "failed");
    assert_eq!(s["steps"][1]["output"], "checking\ndisk full\n");
    assert_eq!(
        s["steps"][2]["status"], "pending",
        "nothing after the failure ran"
    );
    assert_eq!(
        read(&work.path().join("weights.log")),
        "0\n25\n0\n",
        "traffic went back to stable"
    );
    assert_eq!(
        read(&work.path().join("rollback.log")),
        "weight-was-0\n",
        "rollback steps ran after traffic was back on stable"
    );
    let rollback: Vec<_> = s["rollback"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(rollback, ["traffic back to stable", "page on-call"]);

    let text = daemon.cli(work.path(), &["status", &id]);
    assert!(stdout(&text).contains("| disk full"), "{}", stdout(&text));
}

#[test]
fn the_api_refuses_mutations_without_the_token() {
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path());
    let work = workdir();
    let body = serde_json::json!({
        "plan": "version: 1\nname: n\nservice: s\nsteps:\n  - run: 'true'\n",
        "plan_path": "inline",
        "workdir": work.path().display().to_string(),
    });
    let post = |token: Option<&str>| {
        let mut cmd = std::process::Command::new("curl");
        cmd.args([
            "-s",
            "-w",
            "\n%{http_code}",
            "-H",
            "content-type: application/json",
            "-d",
        ])
        .arg(body.to_string())
        .arg(format!("{}/api/v1/launches", daemon.url));
        if let Some(t) = token {
            cmd.arg("-H").arg(format!("authorization: Bearer {t}"));
        }
        let out = cmd.output().expect("curl");
        let text = stdout(&out);
        let (json, code) = text.rsplit_once('\n').unwrap();
        (
            code.to_string(),
            serde_json::from_str::<serde_json::Value>(json).unwrap(),
        )
    };
    let (code, json) = post(None);
    assert_eq!(code, "401");
    assert_eq!(json["error"]["code"], "unauthorized");
    let (code, json) = post(Some("lft_not-the-token"));
    assert_eq!(code, "401");
    assert_eq!(json["error"]["code"], "unauthorized");
    let (code, json) = post(Some(&daemon.token()));
    assert_eq!(code, "201", "{json}");
    assert!(json["id"].as_str().is_some_and(|id| !id.is_empty()));

    // The token file is owner-only and the database stores only a hash of it.
    let mode = std::fs::metadata(state.path().join("admin.token"))
        .unwrap()
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    let db = std::fs::read(state.path().join("liftoff.db")).unwrap();
    let token = daemon.token();
    assert!(!db.windows(token.len()).any(|w| w == token.as_bytes()));

    // The CLI picks the token up from the state dir; a bad request is a JSON error too.
    let bad = daemon.cli(work.path(), &["approve", "nope", "--as", "sre"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("not_found"), "{}", stderr(&bad));
}

#[test]
fn an_unreachable_daemon_is_exit_code_3() {
    let out = std::process::Command::new(BIN)
        .args(["status", "abc", "--server", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}

#[test]
fn secrets_from_variables_stay_out_of_status_and_journal() {
    let work = workdir();
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path());
    std::fs::write(
        work.path().join("plan.yaml"),
        "version: 1\nname: n\nservice: s\nsteps:\n  - run: \"echo connecting to ${LIFTOFF_TEST_DB_URL}; test -n \\\"$LIFTOFF_TEST_DB_URL\\\"\"\n",
    )
    .unwrap();
    let secret = "postgres://app:s3cr3t-pa55@db/prod";
    let out = std::process::Command::new(BIN)
        .args(["launch", "plan.yaml", "--follow"])
        .current_dir(work.path())
        .env("LIFTOFF_SERVER", &daemon.url)
        .env("LIFTOFF_STATE_DIR", state.path())
        .env("LIFTOFF_TEST_DB_URL", secret)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let id = stdout(&out)
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("launch ")
        .to_string();
    let status = stdout(&daemon.cli(work.path(), &["status", &id, "--output", "json"]));
    assert!(
        status.contains("connecting to [redacted]"),
        "the command saw the value, output is redacted: {status}"
    );
    assert!(!status.contains("s3cr3t"), "{status}");
    let journal = std::process::Command::new("curl")
        .args([
            "-s",
            &format!("{}/api/v1/launches/{id}/journal", daemon.url),
        ])
        .output()
        .unwrap();
    assert!(!stdout(&journal).contains("s3cr3t"));
    let log = read(&state.path().join("daemon.log"));
    assert!(!log.contains("s3cr3t"), "{log}");
}

#[test]
fn sigterm_lets_the_running_command_finish_and_starts_nothing_new() {
    let work = workdir();
    let state = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(state.path());
    std::fs::write(
        work.path().join("plan.yaml"),
        "version: 1\nname: n\nservice: s\nsteps:\n  - { name: migrate, run: \"while [ ! -e go ]; do sleep 0.02; done; echo migrate >> out.log\" }\n  - { name: after, run: \"echo after >> out.log\" }\n",
    )
    .unwrap();
    let out = daemon.cli(work.path(), &["launch", "plan.yaml"]);
    let id = stdout(&out).trim().to_string();
    daemon.wait_for(work.path(), &id, Duration::from_secs(10), |s| {
        s["current_step"] == "migrate"
    });
    // SIGTERM while `migrate` runs; it finishes only after that.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.pid()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    support::wait_until(
        Duration::from_secs(5),
        "the daemon to begin its shutdown",
        || read(&state.path().join("daemon.log")).contains("shutting down"),
    );
    std::fs::write(work.path().join("go"), "").unwrap();
    assert!(daemon.stop().success(), "graceful exit");
    assert_eq!(
        read(&work.path().join("out.log")),
        "migrate\n",
        "the command finished; nothing new started"
    );

    let daemon = Daemon::start(state.path());
    let s = daemon.ended(work.path(), &id, Duration::from_secs(10));
    assert_eq!(s["status"], "succeeded", "{s:#}");
    assert_eq!(
        s["steps"][0]["attempts"], 1,
        "a drained step is not re-run or questioned"
    );
    assert_eq!(read(&work.path().join("out.log")), "migrate\nafter\n");
}

#[test]
fn the_demo_rolls_back_the_bad_release_and_promotes_the_good_one() {
    let out = std::process::Command::new(BIN)
        .arg("demo")
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    // Whichever sees it first, the trigger (every 250 ms) or the 5% gate (every second).
    let caught = [
        "rolled back — trigger `error_rate > 5% over 2s` fired: candidate error_rate",
        "rolled back — step `analyze 3s` failed",
    ];
    assert!(caught.iter().any(|c| text.contains(c)), "{text}");
    assert!(text.contains("all traffic back on stable"), "{text}");
    assert!(
        text.contains("good release v2: promoted 5% → 25% → 100% through its gates"),
        "{text}"
    );
    assert!(
        // Not necessarily 100/100: on a loaded machine latency noise may cost points.
        text.contains("`compare: stable` successful: score "),
        "{text}"
    );
    let dir = text
        .lines()
        .find_map(|l| l.strip_prefix("working in "))
        .unwrap();
    assert!(
        !std::path::Path::new(dir).exists(),
        "the demo cleans up after itself"
    );
    // Nothing listens on the router's port any more.
    let router = text
        .lines()
        .find_map(|l| l.strip_prefix("traffic: builtin router on "))
        .and_then(|l| l.split(',').next())
        .expect("the live split table names the router");
    assert!(
        std::net::TcpListener::bind(router).is_ok(),
        "{router} is free again"
    );
    // The reports stay, for the reader.
    let reports = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("reports: "))
        .and_then(|l| l.split("/{").next())
        .expect("the summary says where the reports are");
    let bad = std::fs::read_to_string(format!("{reports}/v3-bad.md")).unwrap();
    assert!(bad.contains("rolled-back"), "{bad}");
    // However fast the rollback, the report shows the errors that caused it.
    assert!(!bad.contains("No traffic samples"), "{bad}");
    assert!(bad.contains("- Error rate, candidate: "), "{bad}");
    if text.contains(caught[0]) {
        assert!(bad.contains("What the trigger judged as it fired"), "{bad}");
    }
    let good = std::fs::read_to_string(format!("{reports}/v2-good.html")).unwrap();
    assert!(good.contains("<svg"), "charts in the HTML report");
    std::fs::remove_dir_all(reports).unwrap();
}

#[test]
fn a_plan_without_a_router_rolls_back_cleanly_and_escaped_variables_stay_literal() {
    let work = workdir();
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path());
    std::fs::write(
        work.path().join("plan.yaml"),
        "version: 1\nname: n\nservice: s\nsteps:\n  - run: \"echo '$${NOT_EXPANDED}' $${ALSO_NOT} > literal.txt\"\n  - run: exit 4\nrollback:\n  steps:\n    - run: touch rolled-back\n",
    )
    .unwrap();
    let out = daemon.cli(work.path(), &["launch", "plan.yaml", "--follow"]);
    assert_eq!(out.status.code(), Some(1));
    let id = stdout(&out)
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("launch ")
        .to_string();
    let s = daemon.status_json(work.path(), &id);
    assert_eq!(s["status"], "rolled-back", "{s:#}");
    assert!(work.path().join("rolled-back").exists());
    assert_eq!(
        s["rollback"].as_array().unwrap().len(),
        1,
        "no traffic move without a router"
    );
    assert_eq!(
        read(&work.path().join("literal.txt")),
        "\\${NOT_EXPANDED} ${ALSO_NOT}\n"
    );
}

#[test]
fn one_launch_per_service_at_a_time() {
    let work = workdir();
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path());
    std::fs::write(
        work.path().join("plan.yaml"),
        "version: 1\nname: n\nservice: billing\nsteps:\n  - approve: { role: sre }\n",
    )
    .unwrap();
    let first = daemon.cli(work.path(), &["launch", "plan.yaml"]);
    assert!(first.status.success());
    let second = daemon.cli(work.path(), &["launch", "plan.yaml"]);
    assert_eq!(second.status.code(), Some(2));
    assert!(
        stderr(&second).contains("launch_in_progress"),
        "{}",
        stderr(&second)
    );
    let id = stdout(&first).trim().to_string();
    assert!(daemon.cli(work.path(), &["abort", &id]).status.success());
    daemon.ended(work.path(), &id, Duration::from_secs(5));
    assert!(
        daemon
            .cli(work.path(), &["launch", "plan.yaml"])
            .status
            .success(),
        "free again once it ended"
    );
}

#[test]
fn validate_reads_no_more_than_a_plan_may_hold() {
    // `/dev/zero` never ends: it is refused after 1 MiB, not read forever.
    let out = std::process::Command::new(support::BIN)
        .args(["validate", "/dev/zero"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("more than 1048576 bytes"), "{err}");
}

#[test]
fn a_reader_that_goes_away_ends_the_command_quietly() {
    // `liftoff ... | head -1`: the reader closes early. Unix tools end by SIGPIPE
    // without a word; a panic ("failed printing to stdout") with a backtrace is a bug.
    let work = workdir();
    let plan = work.path().join("p.yaml");
    std::fs::write(
        &plan,
        "version: 1\nname: n\nservice: s\nsteps:\n  - run: echo hi\n",
    )
    .unwrap();
    let plans: Vec<String> = (0..2000).map(|_| plan.display().to_string()).collect();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("\"$0\" validate \"$@\" | true")
        .arg(BIN)
        .args(&plans)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.is_empty(), "nothing said: {err}");
}

/// A bare container has no root certificates: the daemon still starts (it panicked
/// building its HTTP client) and runs launches; their https requests fail as requests.
#[test]
fn the_daemon_starts_on_a_host_without_root_certificates() {
    let state = tempfile::tempdir().unwrap();
    let nowhere = state.path().join("no-certificates");
    let nowhere = nowhere.to_str().unwrap();
    let daemon = Daemon::start_with(
        state.path(),
        &[("SSL_CERT_FILE", nowhere), ("SSL_CERT_DIR", nowhere)],
        None,
    );
    let log = read(&state.path().join("daemon.log"));
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        log.contains("no usable root certificates on this host"),
        "{log}"
    );
    let work = workdir();
    std::fs::write(
        work.path().join("plan.yaml"),
        "version: 1\nname: bare\nservice: s\nsteps:\n  - wait: { http: \"https://127.0.0.1:9/\", timeout: 1s, interval: 200ms }\n",
    )
    .unwrap();
    let out = daemon.cli(work.path(), &["launch", "plan.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    let s = daemon.ended(work.path(), &id, Duration::from_secs(15));
    assert_eq!(s["status"], "rolled-back", "{s:#}");
    assert!(
        s["reason"].as_str().unwrap().contains("did not answer 200"),
        "{s:#}"
    );
}
