//! Checklist items against real peers: HTTP and TLS servers started here on port 0, the
//! machine's disk, `sh`, and the PostgreSQL and Redis the test machine runs
//! (`LIFTOFF_TEST_PG_URL`, `LIFTOFF_TEST_REDIS_URL` to point elsewhere).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use liftoff_checks::{Env, ItemResult, Redactor, run_item, run_items};
use liftoff_plan::checks::CheckItem;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

// --- harness ------------------------------------------------------------------------

/// Items from a plan's `checklist:`; each a YAML mapping without the leading `- `.
fn items_with_vars(items: &[&str], vars: &[(&str, &str)]) -> Vec<CheckItem> {
    let mut source = String::from("version: 1\nname: t\nservice: s\nchecklist:\n");
    for item in items {
        for (i, line) in item.lines().enumerate() {
            let lead = if i == 0 { "  - " } else { "    " };
            source.push_str(&format!("{lead}{line}\n"));
        }
    }
    source.push_str("steps:\n  - pause: 1s\n");
    let lookup = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    match liftoff_plan::parse(&source, &lookup) {
        Ok(plan) => plan.checklist.expect("the plan has a checklist").items,
        Err(e) => panic!("{}\n{source}", e.render("plan.yaml")),
    }
}

fn item(yaml: &str) -> CheckItem {
    items_with_vars(&[yaml], &[]).remove(0)
}

fn env(workdir: &Path) -> Env {
    Env {
        workdir: workdir.to_path_buf(),
        vars: vec![],
        prometheus: None,
        redactor: Redactor::default(),
    }
}

fn assert_passed(r: &ItemResult) {
    assert!(r.passed, "expected a pass: {r:#?}");
}

fn assert_failed(r: &ItemResult, evidence_has: &str) {
    assert!(!r.passed, "expected a failure: {r:#?}");
    assert!(
        r.evidence.contains(evidence_has),
        "evidence lacks {evidence_has:?}: {r:#?}"
    );
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// An HTTP/1.1 server answering every request with `status` and `body(request line)`,
/// after `delay`. Lives as long as the test's runtime.
async fn serve_http(
    status: u16,
    delay: Duration,
    body: impl Fn(&str) -> String + Send + Sync + 'static,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = Arc::new(body);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let body = body(head.lines().next().unwrap_or_default());
                tokio::time::sleep(delay).await;
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    addr
}

async fn serve_body(status: u16, body: &'static str) -> SocketAddr {
    serve_http(status, Duration::ZERO, move |_| body.to_string()).await
}

// --- http ---------------------------------------------------------------------------

#[tokio::test]
async fn http_passes_on_expected_status_body_and_json() {
    let addr = serve_body(200, r#"{"status": "ok", "replicas": 3, "ready": true}"#).await;
    let dir = tempfile::tempdir().unwrap();
    let check = item(&format!(
        "http: http://{addr}/health\nbody_contains: ok\njson: {{\"/status\": ok, \"/replicas\": \">= 2\", \"/ready\": true}}\nmax_latency: 5s"
    ));
    let r = run_item(&check, &env(dir.path())).await;
    assert_passed(&r);
    assert!(
        r.evidence
            .starts_with(&format!("GET http://{addr}/health → 200 in ")),
        "{r:#?}"
    );
    assert_eq!(
        r.request.as_deref(),
        Some(format!("GET http://{addr}/health").as_str())
    );
    assert_eq!(
        r.expected.as_deref(),
        Some(
            r#"status 200, body contains "ok", /status = "ok", /replicas >= 2, /ready = true, within 5s"#
        )
    );
    assert!(
        r.actual
            .as_deref()
            .unwrap()
            .contains(r#"body: {"status": "ok""#),
        "{r:#?}"
    );
}

#[tokio::test]
async fn http_wrong_status_fails_naming_the_actual_status() {
    let addr = serve_body(503, "down\nfor maintenance").await;
    let dir = tempfile::tempdir().unwrap();
    let r = run_item(
        &item(&format!("http: http://{addr}/health")),
        &env(dir.path()),
    )
    .await;
    assert_failed(&r, "→ 503 in ");
    assert!(r.evidence.ends_with("expected status 200"), "{r:#?}");
    let actual = r.actual.unwrap();
    assert!(actual.starts_with("status 503 in "), "{actual}");
    assert!(actual.ends_with("body: down for maintenance"), "{actual}");
}

#[tokio::test]
async fn http_json_value_of_another_type_fails() {
    let addr = serve_body(200, r#"{"status": "degraded", "replicas": "3"}"#).await;
    let dir = tempfile::tempdir().unwrap();
    let check = item(&format!(
        "http: http://{addr}/health\njson: {{\"/status\": ok, \"/replicas\": 3, \"/missing\": null}}"
    ));
    let r = run_item(&check, &env(dir.path())).await;
    assert_failed(&r, r#"/status is "degraded", expected = "ok""#);
    assert!(
        r.evidence.contains(r#"/replicas is "3", expected = 3"#),
        "{r:#?}"
    );
    assert!(r.evidence.contains("/missing is missing"), "{r:#?}");
}

#[tokio::test]
async fn http_slower_than_max_latency_fails() {
    let addr = serve_http(200, Duration::from_millis(300), |_| "ok".to_string()).await;
    let dir = tempfile::tempdir().unwrap();
    let check = item(&format!("http: http://{addr}/health\nmax_latency: 50ms"));
    let r = run_item(&check, &env(dir.path())).await;
    assert_failed(&r, "slower than 50ms");
}

#[tokio::test]
async fn http_no_answer_within_the_timeout_fails_with_the_request() {
    let addr = serve_http(200, Duration::from_secs(30), |_| "ok".to_string()).await;
    let dir = tempfile::tempdir().unwrap();
    let check = item(&format!("http: http://{addr}/health\ntimeout: 300ms"));
    let r = run_item(&check, &env(dir.path())).await;
    assert_failed(&r, "→ no answer within 300ms");
    assert!(r.duration < Duration::from_secs(5), "{r:#?}");
    assert_eq!(
        r.request.as_deref(),
        Some(format!("GET http://{addr}/health").as_str())
    );
}

#[tokio::test]
async fn http_closed_port_fails() {
    let port = closed_port();
    let dir = tempfile::tempdir().unwrap();
    let r = run_item(
        &item(&format!("http: http://127.0.0.1:{port}/")),
        &env(dir.path()),
    )
    .await;
    assert_failed(&r, "cannot connect");
}

#[tokio::test]
async fn http_secrets_in_url_and_body_are_redacted() {
    // The server echoes the request line, which holds the token, into its body.
    let addr = serve_http(500, Duration::ZERO, |line| format!("bad request: {line}")).await;
    let dir = tempfile::tempdir().unwrap();
    let token = "tok-7f3a9c1e";
    let check = items_with_vars(
        &[&format!("http: http://{addr}/status?token=${{API_TOKEN}}")],
        &[("API_TOKEN", token)],
    )
    .remove(0);
    let mut env = env(dir.path());
    env.redactor = Redactor::new([token]);
    let r = run_item(&check, &env).await;
    assert_failed(&r, "${API_TOKEN}");
    let shown = format!(
        "{} {:?} {:?} {:?}",
        r.evidence, r.request, r.expected, r.actual
    );
    assert!(!shown.contains(token), "{shown}");
    assert!(r.actual.unwrap().contains("[redacted]"));
}

// --- tcp ----------------------------------------------------------------------------

#[tokio::test]
async fn tcp_listener_passes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let r = run_item(&item(&format!("tcp: {addr}")), &env(dir.path())).await;
    assert_passed(&r);
    assert!(
        r.evidence.starts_with(&format!("connected to {addr} in ")),
        "{r:#?}"
    );
}

#[tokio::test]
async fn tcp_closed_port_fails() {
    let port = closed_port();
    let dir = tempfile::tempdir().unwrap();
    let r = run_item(&item(&format!("tcp: 127.0.0.1:{port}")), &env(dir.path())).await;
    assert_failed(
        &r,
        &format!("cannot connect to 127.0.0.1:{port}: connection refused"),
    );
}

// --- tls ----------------------------------------------------------------------------

/// A TLS server on port 0 whose certificate, for `localhost`, is issued by a fresh CA
/// and expires in 10 days and an hour. Returns its address and the CA's PEM.
async fn serve_tls() -> (SocketAddr, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };

    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name
        .push(DnType::CommonName, "liftoff test CA");
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);

    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    leaf.not_after =
        rcgen::date_time_ymd(1970, 1, 1) + since_epoch + Duration::from_secs(10 * 86_400 + 3_600);
    let leaf = leaf.signed_by(&leaf_key, &issuer).unwrap();

    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(leaf_key.serialize_der());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone()], key.into())
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut stream) = acceptor.accept(socket).await {
                    let mut buf = [0u8; 64];
                    let _ = stream.read(&mut buf).await;
                }
            });
        }
    });
    (addr, ca_pem)
}

async fn tls_result(extra: &str, with_ca: bool) -> ItemResult {
    let (addr, ca_pem) = serve_tls().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca_pem).unwrap();
    let ca = if with_ca { "\nca_file: ca.pem" } else { "" };
    let check = item(&format!("tls: {addr}\n{extra}{ca}"));
    run_item(&check, &env(dir.path())).await
}

#[tokio::test]
async fn tls_fewer_days_than_min_days_fails() {
    let r = tls_result("server_name: localhost\nmin_days: 30", true).await;
    assert_failed(&r, "certificate expires in 10 days (");
    assert!(r.evidence.ends_with("), fewer than min_days 30"), "{r:#?}");
}

#[tokio::test]
async fn tls_trusted_certificate_with_enough_days_passes() {
    let r = tls_result("server_name: localhost\nmin_days: 5", true).await;
    assert_passed(&r);
    assert!(
        r.evidence
            .starts_with("certificate for localhost expires in 10 days ("),
        "{r:#?}"
    );
}

#[tokio::test]
async fn tls_certificate_for_another_name_fails_naming_the_name() {
    let r = tls_result("server_name: other.example\nmin_days: 5", true).await;
    assert_failed(
        &r,
        "certificate not valid for other.example: it is for localhost",
    );
    assert!(!r.evidence.contains("not trusted"), "{r:#?}");
}

#[tokio::test]
async fn tls_certificate_from_an_unknown_ca_is_not_trusted() {
    let r = tls_result("server_name: localhost\nmin_days: 5", false).await;
    assert_failed(&r, "certificate chain not trusted: UnknownIssuer");
    assert!(r.evidence.contains("expires in 10 days"), "{r:#?}");
}

#[tokio::test]
async fn tls_missing_ca_file_fails() {
    let (addr, _) = serve_tls().await;
    let dir = tempfile::tempdir().unwrap();
    let check = item(&format!(
        "tls: {addr}\nserver_name: localhost\nca_file: nowhere.pem"
    ));
    let r = run_item(&check, &env(dir.path())).await;
    assert_failed(&r, "cannot read ca_file nowhere.pem");
}

// --- disk ---------------------------------------------------------------------------

#[tokio::test]
async fn disk_with_enough_free_space_passes() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_item(&item("disk: /\nmin_free: 0%"), &env(dir.path())).await;
    assert_passed(&r);
    assert!(r.evidence.starts_with("/ has "), "{r:#?}");
    assert!(r.evidence.ends_with("; needs 0%"), "{r:#?}");
}

#[tokio::test]
async fn disk_without_enough_free_space_fails() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_item(&item("disk: /\nmin_free: 100%"), &env(dir.path())).await;
    assert_failed(&r, "% free (");
    let r = run_item(&item("disk: /\nmin_free: 1000000TiB"), &env(dir.path())).await;
    assert_failed(&r, "needs 976.6 PiB");
}

#[tokio::test]
async fn disk_missing_path_fails() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_item(&item("disk: no/such/dir\nmin_free: 0%"), &env(dir.path())).await;
    assert_failed(&r, "cannot read the filesystem of no/such/dir");
}

// --- command ------------------------------------------------------------------------

#[tokio::test]
async fn command_exit_and_output_decide() {
    let dir = tempfile::tempdir().unwrap();
    let env = env(dir.path());
    let r = run_item(&item("command: echo ready\noutput_contains: ready"), &env).await;
    assert_passed(&r);
    assert_eq!(r.evidence, "exit 0; last line: ready");

    let r = run_item(
        &item("command: echo starting\noutput_contains: ready"),
        &env,
    )
    .await;
    assert_failed(&r, "output does not contain \"ready\"");

    let r = run_item(&item("command: 'echo no database >&2; exit 3'"), &env).await;
    assert_failed(&r, "exit 3 (expected 0); last line: no database");

    let r = run_item(&item("command: exit 3\nexit_code: 3"), &env).await;
    assert_passed(&r);
}

#[tokio::test]
async fn command_runs_in_dir_with_the_plans_variables_and_redacts_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let secret = "pw-51c0ffee";
    let check = items_with_vars(
        &["command: 'echo \"$(basename \"$PWD\") ${DB_PASSWORD}\"'\ndir: sub\noutput_contains: sub pw-"],
        &[("DB_PASSWORD", secret)],
    )
    .remove(0);
    let env = Env {
        vars: vec![("DB_PASSWORD".to_string(), secret.to_string())],
        redactor: Redactor::new([secret]),
        ..env(dir.path())
    };
    let r = run_item(&check, &env).await;
    assert_passed(&r);
    assert_eq!(r.evidence, "exit 0; last line: sub [redacted]");
}

#[tokio::test]
async fn command_timeout_kills_its_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let check = item("command: 'sleep 30 & echo $! > sleeper.pid; wait'\ntimeout: 1s");
    let started = Instant::now();
    let r = run_item(&check, &env(dir.path())).await;
    assert_failed(&r, "still running after 1s; killed");
    assert!(started.elapsed() < Duration::from_secs(10), "{r:#?}");

    let pid = std::fs::read_to_string(dir.path().join("sleeper.pid")).unwrap();
    let stat = format!("/proc/{}/stat", pid.trim());
    // Gone, or a zombie waiting for a reaper: either way no longer running.
    let dead = || match std::fs::read_to_string(&stat) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !dead() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        dead(),
        "the background `sleep` ({}) survived the timeout",
        pid.trim()
    );
}

// --- postgres -----------------------------------------------------------------------

fn pg_url() -> String {
    std::env::var("LIFTOFF_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

#[tokio::test]
async fn postgres_query_value_decides() {
    let dir = tempfile::tempdir().unwrap();
    let env = env(dir.path());
    let url = pg_url();
    let r = run_item(
        &item(&format!(
            "postgres: {url}\nquery: select pg_is_in_recovery()\nexpect: false"
        )),
        &env,
    )
    .await;
    assert_passed(&r);
    assert_eq!(
        r.evidence,
        "select pg_is_in_recovery() → f (expected = false)"
    );

    let r = run_item(
        &item(&format!(
            "postgres: {url}\nquery: select pg_is_in_recovery()\nexpect: true"
        )),
        &env,
    )
    .await;
    assert_failed(&r, "→ f (expected = true)");

    let r = run_item(&item(&format!("postgres: {url}\nquery: select null")), &env).await;
    assert_passed(&r);
    assert_eq!(r.evidence, "select null → NULL");

    let r = run_item(
        &item(&format!(
            "postgres: {url}\nquery: select 1 from no_such_table"
        )),
        &env,
    )
    .await;
    assert_failed(&r, "select 1 from no_such_table failed: ");
    assert!(r.evidence.contains("does not exist"), "{r:#?}");
}

#[tokio::test]
async fn postgres_unreachable_fails_without_showing_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let check = item(&format!(
        "postgres: postgres://postgres:s3cretpw@127.0.0.1:{port}/postgres"
    ));
    let r = run_item(&check, &env(dir.path())).await;
    assert_failed(
        &r,
        "cannot connect to postgres://postgres:[redacted]@127.0.0.1:",
    );
    assert!(r.evidence.ends_with("connection refused"), "{r:#?}");
    assert!(!r.evidence.contains("s3cretpw"), "{r:#?}");
}

// --- redis --------------------------------------------------------------------------

fn redis_url() -> String {
    std::env::var("LIFTOFF_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

#[tokio::test]
async fn redis_ping_and_info_field_decide() {
    let dir = tempfile::tempdir().unwrap();
    let env = env(dir.path());
    let url = redis_url();
    let r = run_item(&item(&format!("redis: {url}")), &env).await;
    assert_passed(&r);
    assert_eq!(r.evidence, "PING → PONG");

    let r = run_item(
        &item(&format!("redis: {url}\ninfo: role\nexpect: master")),
        &env,
    )
    .await;
    assert_passed(&r);
    assert_eq!(r.evidence, "role = master");

    let r = run_item(
        &item(&format!("redis: {url}\ninfo: role\nexpect: slave")),
        &env,
    )
    .await;
    assert_failed(&r, "role = master (expected = \"slave\")");

    let r = run_item(&item(&format!("redis: {url}\ninfo: no_such_field")), &env).await;
    assert_failed(&r, "INFO has no field `no_such_field`");
}

#[tokio::test]
async fn redis_unreachable_fails() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let r = run_item(
        &item(&format!("redis: redis://127.0.0.1:{port}")),
        &env(dir.path()),
    )
    .await;
    assert_failed(&r, &format!("cannot connect to redis://127.0.0.1:{port}"));
}

// --- file ---------------------------------------------------------------------------

#[tokio::test]
async fn file_fresh_enough_passes_and_old_or_missing_fails() {
    let dir = tempfile::tempdir().unwrap();
    let env = env(dir.path());
    std::fs::write(dir.path().join("fresh.dump"), "x").unwrap();
    let old = std::fs::File::create(dir.path().join("old.dump")).unwrap();
    old.set_modified(SystemTime::now() - Duration::from_secs(2 * 86_400))
        .unwrap();

    let r = run_item(&item("file: fresh.dump\nmax_age: 1h"), &env).await;
    assert_passed(&r);
    assert!(r.evidence.starts_with("fresh.dump is "), "{r:#?}");

    let r = run_item(&item("file: old.dump\nmax_age: 1h"), &env).await;
    assert_failed(&r, "old.dump is 48h old (max 1h)");

    let r = run_item(&item("file: missing.dump\nmax_age: 1h"), &env).await;
    assert_failed(&r, "missing.dump does not exist");
}

// --- others and run_items -----------------------------------------------------------

#[tokio::test]
async fn approval_is_not_run_and_says_who_must_sign_off() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_item(&item("approval: sre"), &env(dir.path())).await;
    assert_failed(&r, "needs sign-off by role `sre`");
}

#[tokio::test]
async fn prometheus_without_metrics_in_the_env_fails() {
    let dir = tempfile::tempdir().unwrap();
    // The plan needs `metrics:` for a prometheus item; the Env may still lack it.
    let source = "version: 1\nname: t\nservice: s\nmetrics: { kind: prometheus, url: http://127.0.0.1:9090 }\nchecklist:\n  - prometheus: up\n    condition: '> 0'\nsteps:\n  - pause: 1s\n";
    let plan =
        liftoff_plan::parse(source, &|_| None).unwrap_or_else(|e| panic!("{}", e.render("p")));
    let check = &plan.checklist.unwrap().items[0];
    let r = run_item(check, &env(dir.path())).await;
    assert_failed(&r, "the plan has no metrics: { kind: prometheus }");
}

#[tokio::test]
async fn run_items_runs_concurrently_and_keeps_order() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    // Each command waits for the other to have started: run one after the other, the
    // first would wait until its timeout and fail.
    let items = items_with_vars(
        &[
            "command: touch a; while [ ! -e b ]; do sleep 0.02; done; echo first\ntimeout: 10s",
            &format!("tcp: 127.0.0.1:{port}"),
            "command: touch b; while [ ! -e a ]; do sleep 0.02; done; echo third\ntimeout: 10s",
            "approval: sre",
        ],
        &[],
    );
    let results = run_items(&items, &env(dir.path())).await;
    let evidence: Vec<&str> = results.iter().map(|r| r.evidence.as_str()).collect();
    assert_eq!(evidence.len(), 4);
    assert_eq!(evidence[0], "exit 0; last line: first");
    assert!(evidence[1].starts_with("cannot connect"), "{evidence:?}");
    assert_eq!(evidence[2], "exit 0; last line: third");
    assert!(evidence[3].starts_with("needs sign-off"), "{evidence:?}");
}
