//! Rendering is pure: exact messages for given notices, without any server.

mod support;

use std::time::Duration;

use liftoff_notify::{Event, Payload, render};
use support::{notice, notify_spec};

const SLACK: &[(&str, &str)] = &[(
    "SLACK_WEBHOOK_URL",
    "https://hooks.slack.com/services/T0/B0/SECRETPATH",
)];

fn slack_text(payload: &Payload) -> String {
    match payload {
        Payload::Slack(body) => body["text"].as_str().unwrap_or_default().to_string(),
        other => panic!("not a Slack payload: {other:?}"),
    }
}

#[test]
fn the_checkpoint_reads_like_the_seed_runbook() {
    let spec = notify_spec("  channels:\n    - slack: ${SLACK_WEBHOOK_URL}\n", SLACK);
    let mut n = notice(Event::Checkpoint);
    n.elapsed = Some(Duration::from_secs(30 * 60));
    n.verdict = Some("All systems healthy".into());
    n.next_checkpoint = Some(Duration::from_secs(3600));
    let r = render(&spec.channels[0], &spec.templates, &n);
    assert_eq!(
        r.message,
        "📍 T+30min checkpoint, shop-api: All systems healthy
Request rate: 51 req/s (stable: 152 req/s)
Error rate: 7.24% (stable: 0.11%)
P95 latency: 911ms (stable: 182ms)
Candidate weight: 25%
Next checkpoint: T+1h"
    );
}

#[test]
fn a_line_without_any_value_is_left_out_and_a_missing_value_reads_na() {
    let spec = notify_spec(
        "  channels:\n    - slack: ${SLACK_WEBHOOK_URL}\n  templates:\n    succeeded: \"{service} is live: {reason}\\nApproved by: {approver}\\nThanks!\"\n",
        SLACK,
    );
    let mut n = notice(Event::Succeeded);
    n.reason = None;
    let r = render(&spec.channels[0], &spec.templates, &n);
    assert_eq!(r.message, "shop-api is live: n/a\nThanks!");

    n.approver = Some("alice (sre)".into());
    let r = render(&spec.channels[0], &spec.templates, &n);
    assert_eq!(
        r.message,
        "shop-api is live: n/a\nApproved by: alice (sre)\nThanks!"
    );

    // Without figures the figure lines of the default message go.
    let spec = notify_spec("  channels:\n    - slack: ${SLACK_WEBHOOK_URL}\n", SLACK);
    let mut n = notice(Event::RollbackStarted);
    n.figures = None;
    n.weight = None;
    let r = render(&spec.channels[0], &spec.templates, &n);
    assert_eq!(
        r.message,
        "🚨 ROLLBACK INITIATED (T+25min): shop-api\nReason: error_rate > 5% over 30s for 1m"
    );
}

#[test]
fn a_message_is_never_empty() {
    let spec = notify_spec(
        "  channels:\n    - slack: ${SLACK_WEBHOOK_URL}\n  templates:\n    failed: \"{approver}\"\n",
        SLACK,
    );
    let r = render(&spec.channels[0], &spec.templates, &notice(Event::Failed));
    assert_eq!(r.message, "shop-api: failed");
}

#[test]
fn channel_templates_come_first_and_the_status_page_keeps_its_own_words() {
    let spec = notify_spec(
        "  channels:
    - name: team
      slack: ${SLACK_WEBHOOK_URL}
      templates:
        launch_started: \"team: {name}\"
    - name: audit
      webhook: https://audit.example.com/h
    - name: status
      statuspage: { page_id: abc, api_key: \"${KEY}\" }
  templates:
    launch_started: \"plan: {name} at {weight}\"
",
        &[SLACK[0], ("KEY", "sp-key-123456")],
    );
    let n = notice(Event::LaunchStarted);
    let messages: Vec<String> = spec
        .channels
        .iter()
        .map(|c| render(c, &spec.templates, &n).message)
        .collect();
    assert_eq!(
        messages,
        [
            "team: shop-api-2.0",
            "plan: shop-api-2.0 at 25%",
            "Scheduled maintenance in progress: we are upgrading shop-api. We'll update this page as the work progresses.",
        ]
    );
}

#[test]
fn slack_escapes_values_but_keeps_the_templates_mrkdwn() {
    let spec = notify_spec(
        "  channels:
    - slack: ${SLACK_WEBHOOK_URL}
    - email: { smtp: \"smtp://mail.example.com\", from: a@example.com, to: b@example.com }
  templates:
    trigger_fired: \"*{service}*: <https://grafana.example.com/d/x|dashboard> {reason}\"
",
        SLACK,
    );
    let mut n = notice(Event::TriggerFired);
    n.reason = Some("p95 > 2s & <b>".into());
    let slack = render(&spec.channels[0], &spec.templates, &n);
    assert_eq!(
        slack_text(&slack.payload),
        "*shop-api*: <https://grafana.example.com/d/x|dashboard> p95 &gt; 2s &amp; &lt;b&gt;"
    );
    // Other channels get the values as they are.
    let email = render(&spec.channels[1], &spec.templates, &n);
    assert_eq!(
        email.message,
        "*shop-api*: <https://grafana.example.com/d/x|dashboard> p95 > 2s & <b>"
    );
    let Payload::Email { subject, .. } = &email.payload else {
        panic!("{:?}", email.payload)
    };
    assert_eq!(subject, &email.message);
}

#[test]
fn the_webhook_body_has_every_documented_key() {
    let spec = notify_spec(
        "  channels:\n    - webhook: https://audit.example.com/h\n",
        &[],
    );
    let mut n = notice(Event::ApprovalNeeded);
    n.figures = None;
    n.role = Some("sre".into());
    let r = render(&spec.channels[0], &spec.templates, &n);
    let Payload::Webhook { body, id } = &r.payload else {
        panic!("{:?}", r.payload)
    };
    assert_eq!(id, "01JD6Y8R6C2S4/42");
    let body: serde_json::Value = serde_json::from_str(body).expect("JSON");
    let mut keys: Vec<&str> = body
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "approver",
            "at",
            "channel",
            "elapsed_secs",
            "event",
            "figures",
            "id",
            "launch",
            "message",
            "next_checkpoint_secs",
            "reason",
            "role",
            "service",
            "step",
            "verdict",
            "version",
            "weight_percent",
        ]
    );
    assert_eq!(body["figures"], serde_json::Value::Null);
    assert_eq!(body["role"], "sre");
    assert_eq!(
        body["message"],
        "✋ shop-api: approval needed for traffic 25% (T+25min)\nRole: sre\nApprove with: liftoff approve 01JD6Y8R6C2S4 --as sre"
    );
}
