//! Deliveries against local receivers: an HTTP server that checks Slack's, Statuspage's
//! and liftoff's webhook request shapes, and aiosmtpd for email (the tests need python3
//! with aiosmtpd; CI installs it). Backoffs are 10ms: these use real sockets.

mod support;

use std::time::{Duration, Instant};

use hmac::{KeyInit, Mac};
use liftoff_notify::{Event, Notifier, StatuspageState, render};
use support::{
    HttpReceiver, SmtpServer, StatuspageCall, assert_slack_shape, assert_statuspage_shape,
    closed_port, notice, notify_spec, test_certificates,
};
use tokio_util::sync::CancellationToken;

const SLACK_PATH: &str = "/services/T000/B000/SLACKSECRETPATH";
const WEBHOOK_SECRET: &str = "whsec-0123456789abcdef";
const SMTP_PASSWORD: &str = "hunter2-smtp-password";
const API_KEY: &str = "sp-api-key-0123456789";

fn fast(attempts: u32) -> String {
    format!("  retry: {{ attempts: {attempts}, backoff: 10ms, timeout: 2s }}\n")
}

/// Every secret a test hands to a plan: none may appear in details, Debug or messages.
const SECRETS: &[&str] = &[
    SLACK_PATH,
    "SLACKSECRETPATH",
    WEBHOOK_SECRET,
    SMTP_PASSWORD,
    API_KEY,
];

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{what} holds a secret ({secret}): {text}"
        );
    }
}

async fn deliver_one(
    spec: &liftoff_notify::NotifySpec,
    event: Event,
    state: &StatuspageState,
) -> (liftoff_notify::Rendered, liftoff_notify::Delivery) {
    deliver_with(&Notifier::new(), spec, event, state).await
}

async fn deliver_with(
    notifier: &Notifier,
    spec: &liftoff_notify::NotifySpec,
    event: Event,
    state: &StatuspageState,
) -> (liftoff_notify::Rendered, liftoff_notify::Delivery) {
    let channel = &spec.channels[0];
    let rendered = render(channel, &spec.templates, &notice(event));
    let delivery = notifier
        .deliver(
            channel,
            &rendered,
            &spec.retry,
            state,
            &CancellationToken::new(),
        )
        .await;
    assert_no_secret("the detail", &delivery.detail);
    assert_no_secret("the Debug of the delivery", &format!("{delivery:?}"));
    assert_no_secret("the rendered message", &format!("{rendered:?}"));
    assert_no_secret("the Debug of the plan", &format!("{spec:?}"));
    (rendered, delivery)
}

#[tokio::test]
async fn slack_gets_text_and_blocks_with_the_live_figures() {
    let receiver = HttpReceiver::ok().await;
    let url = receiver.url(SLACK_PATH);
    let spec = notify_spec(
        "  channels:\n    - slack: ${SLACK_WEBHOOK_URL}\n",
        &[("SLACK_WEBHOOK_URL", &url)],
    );
    let (_, delivery) =
        deliver_one(&spec, Event::RollbackStarted, &StatuspageState::default()).await;
    assert!(delivery.delivered, "{delivery:?}");
    assert_eq!(
        (delivery.attempts, delivery.detail.as_str()),
        (1, "HTTP 200")
    );

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, SLACK_PATH);
    let body = assert_slack_shape(&requests[0]);
    let text = body["text"].as_str().unwrap_or_default();
    assert!(
        text.starts_with("🚨 ROLLBACK INITIATED (T+25min): shop-api"),
        "{text}"
    );
    for figure in [
        "Reason: error_rate &gt; 5% over 30s for 1m",
        "Candidate weight: 25%",
        "Error rate: 7.24% (stable: 0.11%)",
        "P95 latency: 911ms (stable: 182ms)",
    ] {
        assert!(text.contains(figure), "{figure:?} not in {text}");
    }
    let section = body["blocks"][0]["text"]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(
        section.starts_with("*🚨 ROLLBACK INITIATED (T+25min): shop-api*\n"),
        "{section}"
    );
    let context = body["blocks"][1]["elements"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(context.contains("launch `01JD6Y8R6C2S4`"), "{context}");
}

#[tokio::test]
async fn webhook_body_is_the_signed_notice() {
    let receiver = HttpReceiver::ok().await;
    let spec = notify_spec(
        &format!(
            "  channels:\n    - name: audit\n      webhook: {}\n      secret: ${{WEBHOOK_SECRET}}\n",
            receiver.url("/hooks/liftoff")
        ),
        &[("WEBHOOK_SECRET", WEBHOOK_SECRET)],
    );
    let (rendered, delivery) =
        deliver_one(&spec, Event::Checkpoint, &StatuspageState::default()).await;
    assert!(delivery.delivered, "{delivery:?}");

    let r = &receiver.requests()[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/hooks/liftoff")
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-liftoff-event"), Some("checkpoint"));
    assert_eq!(r.header("x-liftoff-delivery"), Some("01JD6Y8R6C2S4/42"));
    // The receiver's check: HMAC-SHA256 of the raw body with the shared secret.
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes())
        .expect("any key length");
    mac.update(&r.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(r.header("x-liftoff-signature"), Some(expected.as_str()));

    let body = r.json();
    assert_eq!(body["version"], 1);
    assert_eq!(body["event"], "checkpoint");
    assert_eq!(body["channel"], "audit");
    assert_eq!(body["service"], "shop-api");
    assert_eq!(body["launch"]["id"], "01JD6Y8R6C2S4");
    assert_eq!(body["launch"]["name"], "shop-api-2.0");
    assert_eq!(body["at"], "2026-03-14T09:26:53Z");
    assert_eq!(body["weight_percent"], 25.0);
    assert_eq!(body["elapsed_secs"], 1534);
    assert_eq!(body["figures"]["candidate"]["error_rate"], 0.0724);
    assert_eq!(body["figures"]["candidate"]["p95_ms"], 911.0);
    assert_eq!(body["figures"]["stable"]["requests"], 9120);
    assert_eq!(body["approver"], serde_json::Value::Null);
    assert_eq!(body["message"], rendered.message.as_str());
    assert!(
        rendered
            .message
            .contains("Error rate: 7.24% (stable: 0.11%)"),
        "{}",
        rendered.message
    );
}

#[tokio::test]
async fn statuspage_opens_updates_and_completes_the_maintenance() {
    let receiver = HttpReceiver::start(|r, _| {
        if r.method == "POST" {
            (
                201,
                r#"{"id":"p31zjtct2jer","status":"in_progress"}"#.into(),
            )
        } else {
            (200, "{}".into())
        }
    })
    .await;
    let spec = notify_spec(
        &format!(
            "  channels:
    - statuspage:
        page_id: kctbh9vrtdwd
        api_key: ${{STATUSPAGE_API_KEY}}
        component_id: 8kbf7d35c070
        api_url: {}
        expected_duration: 45m
",
            receiver.url("")
        ),
        &[("STATUSPAGE_API_KEY", API_KEY)],
    );
    let mut state = StatuspageState::default();
    let (_, opened) = deliver_one(&spec, Event::LaunchStarted, &state).await;
    assert!(opened.delivered, "{opened:?}");
    assert_eq!(opened.incident_id.as_deref(), Some("p31zjtct2jer"));
    assert_eq!(opened.detail, "maintenance p31zjtct2jer opened (HTTP 201)");
    state.incident_id = opened.incident_id;

    let (_, rollback) = deliver_one(&spec, Event::RollbackStarted, &state).await;
    assert!(rollback.delivered, "{rollback:?}");
    assert_eq!(rollback.incident_id, None, "nothing new was opened");
    let (_, done) = deliver_one(&spec, Event::RollbackCompleted, &state).await;
    assert_eq!(
        done.detail,
        "maintenance p31zjtct2jer completed (HTTP 200); component operational (HTTP 200)"
    );
    // Not one of a status page's default events: the caller sends it nothing.
    assert!(!spec.channels[0].receives(Event::StepStarted));

    let calls: Vec<StatuspageCall> = receiver
        .requests()
        .iter()
        .map(|r| assert_statuspage_shape(r, "kctbh9vrtdwd", API_KEY))
        .collect();
    assert_eq!(calls.len(), 5, "{calls:#?}");
    let StatuspageCall::OpenIncident(open) = &calls[0] else {
        panic!("{calls:#?}")
    };
    assert_eq!(open["name"], "shop-api upgrade");
    assert_eq!(open["status"], "in_progress");
    assert_eq!(open["scheduled_for"], "2026-03-14T09:26:53Z");
    assert_eq!(open["scheduled_until"], "2026-03-14T10:11:53Z");
    assert_eq!(open["component_ids"], serde_json::json!(["8kbf7d35c070"]));
    assert!(
        open["body"].as_str().is_some_and(
            |b| b.starts_with("Scheduled maintenance in progress: we are upgrading shop-api.")
        ),
        "{open}"
    );
    let StatuspageCall::UpdateIncident(id, update) = &calls[1] else {
        panic!("{calls:#?}")
    };
    assert_eq!(
        (id.as_str(), &update["status"]),
        ("p31zjtct2jer", &serde_json::json!("in_progress"))
    );
    assert_eq!(
        calls[2],
        StatuspageCall::Component("8kbf7d35c070".into(), "degraded_performance".into())
    );
    let StatuspageCall::UpdateIncident(_, completed) = &calls[3] else {
        panic!("{calls:#?}")
    };
    assert_eq!(completed["status"], "completed");
    assert_eq!(
        calls[4],
        StatuspageCall::Component("8kbf7d35c070".into(), "operational".into())
    );
}

#[tokio::test]
async fn a_statuspage_retry_never_opens_a_second_maintenance() {
    // The component call fails once: the retry must not POST the incident again.
    let flaky = HttpReceiver::start(|r, before| match (r.method.as_str(), before) {
        ("POST", _) => (201, r#"{"id":"p31zjtct2jer"}"#.into()),
        ("PATCH", 1) => (503, "upstream connect error".into()),
        _ => (200, "{}".into()),
    })
    .await;
    let spec = notify_spec(
        &format!(
            "  channels:
    - statuspage:
        page_id: kctbh9vrtdwd
        api_key: ${{STATUSPAGE_API_KEY}}
        component_id: 8kbf7d35c070
        api_url: {}
{}",
            flaky.url("/"),
            fast(3)
        ),
        &[("STATUSPAGE_API_KEY", API_KEY)],
    );
    // A rollback with no maintenance yet opens one, then degrades the component.
    let (_, d) = deliver_one(&spec, Event::RollbackStarted, &StatuspageState::default()).await;
    assert!(d.delivered, "{d:?}");
    assert_eq!(d.attempts, 2);
    assert_eq!(d.incident_id.as_deref(), Some("p31zjtct2jer"));
    let methods: Vec<String> = flaky
        .requests()
        .iter()
        .map(|r| {
            assert_statuspage_shape(r, "kctbh9vrtdwd", API_KEY);
            format!("{} {}", r.method, r.path)
        })
        .collect();
    assert_eq!(
        methods,
        [
            "POST /v1/pages/kctbh9vrtdwd/incidents",
            "PATCH /v1/pages/kctbh9vrtdwd/components/8kbf7d35c070",
            "PATCH /v1/pages/kctbh9vrtdwd/components/8kbf7d35c070",
        ]
    );
}

#[tokio::test]
async fn email_with_auth_reaches_the_smtp_server() {
    let smtp = SmtpServer::start(Some(("liftoff", SMTP_PASSWORD)), None);
    let spec = notify_spec(
        &format!(
            "  channels:
    - email:
        smtp: smtp://127.0.0.1:{}
        starttls: false
        username: liftoff
        password: ${{SMTP_PASSWORD}}
        from: Release bot <liftoff@example.com>
        to: [product@example.com, support@example.com]
",
            smtp.port
        ),
        &[("SMTP_PASSWORD", SMTP_PASSWORD)],
    );
    let (_, delivery) = deliver_one(&spec, Event::Succeeded, &StatuspageState::default()).await;
    assert!(delivery.delivered, "{delivery:?}");
    assert_eq!(
        (delivery.attempts, delivery.detail.as_str()),
        (1, "SMTP 250")
    );

    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let m = &messages[0];
    assert_eq!(m["from"], "liftoff@example.com");
    assert_eq!(
        m["to"],
        serde_json::json!(["product@example.com", "support@example.com"])
    );
    assert_eq!(m["login"], "liftoff");
    assert_eq!(
        m["subject"],
        "✅ shop-api: launch shop-api-2.0 complete (T+25min)"
    );
    assert_eq!(m["message_id"], "<01JD6Y8R6C2S4.42@liftoff>");
    let body = m["body"].as_str().unwrap_or_default();
    for line in [
        "Candidate weight: 25%",
        "Metrics: 51 req/s, 7.24% errors, 911ms P95 latency",
        "liftoff · shop-api · launch 01JD6Y8R6C2S4 · succeeded · 2026-03-14 09:26:53 UTC",
    ] {
        assert!(body.contains(line), "{line:?} not in {body}");
    }
    // No approver: the line is left out rather than reading `n/a`.
    assert!(!body.contains("Approved by"), "{body}");
    assert_no_secret("the mail", m["data"].as_str().unwrap_or_default());
}

#[tokio::test]
async fn email_over_starttls_with_auth() {
    let (ca, cert, key) = test_certificates();
    let smtp = SmtpServer::start(Some(("liftoff", SMTP_PASSWORD)), Some((&cert, &key)));
    let spec = notify_spec(
        &format!(
            "  channels:
    - email:
        smtp: smtp://127.0.0.1:{}
        username: liftoff
        password: ${{SMTP_PASSWORD}}
        from: liftoff@example.com
        to: oncall@example.com
",
            smtp.port
        ),
        &[("SMTP_PASSWORD", SMTP_PASSWORD)],
    );
    // The server's certificate is signed by a CA of this test's own.
    let notifier = Notifier::new().with_smtp_root_certificate(ca);
    let (_, delivery) =
        deliver_with(&notifier, &spec, Event::Failed, &StatuspageState::default()).await;
    assert!(delivery.delivered, "{delivery:?}");
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["tls"], true, "STARTTLS was used");
    assert_eq!(messages[0]["login"], "liftoff");

    // Without the CA, the certificate does not verify: failed at once, not retried.
    let (_, refused) = deliver_one(&spec, Event::Failed, &StatuspageState::default()).await;
    assert!(!refused.delivered);
    assert_eq!(refused.attempts, 1, "{refused:?}");
    assert_eq!(
        refused.detail,
        "Connection error: invalid peer certificate: UnknownIssuer"
    );
    assert_eq!(smtp.messages().len(), 1);
}

#[tokio::test]
async fn a_wrong_smtp_password_fails_at_once_without_showing_it() {
    let smtp = SmtpServer::start(Some(("liftoff", "the-right-password")), None);
    let spec = notify_spec(
        &format!(
            "  channels:
    - email: {{ smtp: \"smtp://127.0.0.1:{}\", starttls: false, username: liftoff, password: \"${{SMTP_PASSWORD}}\", from: a@example.com, to: b@example.com }}
{}",
            smtp.port,
            fast(4)
        ),
        &[("SMTP_PASSWORD", SMTP_PASSWORD)],
    );
    let (_, d) = deliver_one(&spec, Event::Failed, &StatuspageState::default()).await;
    assert!(!d.delivered);
    assert_eq!(d.attempts, 1, "a 535 is permanent: {d:?}");
    assert!(d.detail.contains("535"), "{d:?}");
    assert!(smtp.messages().is_empty());
}

#[tokio::test]
async fn a_channel_that_is_down_is_retried_then_reported_failed() {
    let port = closed_port();
    let base = format!("http://127.0.0.1:{port}");
    let vars = [
        ("SLACK_WEBHOOK_URL", format!("{base}{SLACK_PATH}")),
        ("WEBHOOK_SECRET", WEBHOOK_SECRET.to_string()),
        ("SMTP_PASSWORD", SMTP_PASSWORD.to_string()),
        ("STATUSPAGE_API_KEY", API_KEY.to_string()),
    ];
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let channels = [
        "    - slack: ${SLACK_WEBHOOK_URL}\n".to_string(),
        format!("    - webhook: {base}/hook\n      secret: ${{WEBHOOK_SECRET}}\n"),
        format!(
            "    - email: {{ smtp: \"smtp://127.0.0.1:{port}\", starttls: false, username: u, password: \"${{SMTP_PASSWORD}}\", from: a@example.com, to: b@example.com }}\n"
        ),
        format!(
            "    - statuspage: {{ page_id: abc, api_key: \"${{STATUSPAGE_API_KEY}}\", api_url: \"{base}\" }}\n"
        ),
    ];
    for channel in channels {
        let spec = notify_spec(&format!("  channels:\n{channel}{}", fast(3)), &vars);
        let started = Instant::now();
        let (_, d) = deliver_one(&spec, Event::RollbackStarted, &StatuspageState::default()).await;
        let kind = spec.channels[0].kind.keyword();
        assert!(!d.delivered, "{kind}: {d:?}");
        assert_eq!(d.attempts, 3, "{kind}: {d:?}");
        // `could not connect: ...` (HTTP), `Connection error: ...` (SMTP), prefixed with
        // the call that failed for Statuspage.
        assert!(
            d.detail
                .ends_with("could not connect: Connection refused (os error 111)")
                || d.detail == "Connection error: Connection refused (os error 111)",
            "{kind}: {d:?}"
        );
        assert!(
            !d.detail.contains(&port.to_string()),
            "{kind}: the address leaked: {d:?}"
        );
        // 10ms + 20ms of backoff; nothing waits on a refused connection.
        assert!(started.elapsed() < Duration::from_secs(2), "{kind}");
    }
}

#[tokio::test]
async fn server_errors_are_retried_and_client_errors_are_not() {
    let recovering = HttpReceiver::start(|_, before| {
        if before < 2 {
            (503, "try later".into())
        } else {
            (200, "ok".into())
        }
    })
    .await;
    let spec = notify_spec(
        &format!(
            "  channels:\n    - slack: ${{SLACK_WEBHOOK_URL}}\n{}",
            fast(5)
        ),
        &[("SLACK_WEBHOOK_URL", &recovering.url(SLACK_PATH))],
    );
    let (_, d) = deliver_one(&spec, Event::Succeeded, &StatuspageState::default()).await;
    assert!(d.delivered, "{d:?}");
    assert_eq!(d.attempts, 3);

    // Slack's answer for a revoked webhook: retrying cannot help.
    let gone = HttpReceiver::start(|_, _| (404, "no_service".into())).await;
    let spec = notify_spec(
        &format!(
            "  channels:\n    - slack: ${{SLACK_WEBHOOK_URL}}\n{}",
            fast(5)
        ),
        &[("SLACK_WEBHOOK_URL", &gone.url(SLACK_PATH))],
    );
    let (_, d) = deliver_one(&spec, Event::Succeeded, &StatuspageState::default()).await;
    assert_eq!(
        (d.delivered, d.attempts, d.detail.as_str()),
        (false, 1, "HTTP 404: no_service")
    );
}

#[tokio::test]
async fn a_server_echoing_the_secret_url_is_redacted() {
    // Some proxies put the request line in their error page.
    let echo = HttpReceiver::start(|r, _| (500, format!("no route for POST {}", r.path))).await;
    let spec = notify_spec(
        &format!(
            "  channels:\n    - slack: ${{SLACK_WEBHOOK_URL}}\n{}",
            fast(2)
        ),
        &[("SLACK_WEBHOOK_URL", &echo.url(SLACK_PATH))],
    );
    let (_, d) = deliver_one(&spec, Event::Failed, &StatuspageState::default()).await;
    assert!(!d.delivered);
    assert_eq!(d.detail, "HTTP 500: no route for POST /[redacted]");
}

#[tokio::test]
async fn cancelling_stops_a_delivery_that_hangs() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let spec = notify_spec(
        "  channels:\n    - webhook: http://HOST/hook\n  retry: { attempts: 5, backoff: 1s, timeout: 30s }\n"
            .replace("HOST", &addr.to_string())
            .as_str(),
        &[],
    );
    let cancel = CancellationToken::new();
    let canceller = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        canceller.cancel();
    });
    let channel = &spec.channels[0];
    let rendered = render(channel, &spec.templates, &notice(Event::LaunchStarted));
    let started = Instant::now();
    let d = Notifier::new()
        .deliver(
            channel,
            &rendered,
            &spec.retry,
            &StatuspageState::default(),
            &cancel,
        )
        .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        (d.delivered, d.attempts, d.detail.as_str()),
        (false, 1, "cancelled")
    );
}
