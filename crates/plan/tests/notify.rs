//! The `notify:` section: what it accepts, its defaults, and every mistake reported at
//! its `line:col`.

use std::time::Duration;

use liftoff_plan::notify::{ChannelKind, Event, NotifySpec, Piece, Placeholder, SmtpSecurity};
use liftoff_plan::{PlanErrors, parse};

const SLACK_URL: &str = "https://hooks.slack.com/services/T000/B000/XXXXSECRET";

fn env(name: &str) -> Option<String> {
    match name {
        "SLACK_WEBHOOK_URL" => Some(SLACK_URL.into()),
        "WEBHOOK_SECRET" => Some("whsec-0123456789".into()),
        "SMTP_PASSWORD" => Some("hunter2-smtp".into()),
        "STATUSPAGE_API_KEY" => Some("sp-key-abcdef".into()),
        "STATUSPAGE_PAGE_ID" => Some("kctbh9vrtdwd".into()),
        "NOT_A_URL" => Some("hooks.slack.com/services/x".into()),
        _ => None,
    }
}

/// A plan whose `notify:` is `notify` (indented by two spaces per level, as written).
fn plan(notify: &str) -> String {
    format!("version: 1\nname: n\nservice: shop-api\nnotify:\n{notify}steps:\n  - run: echo hi\n")
}

fn ok(notify: &str) -> NotifySpec {
    match parse(&plan(notify), &env) {
        Ok(p) => p.notify.expect("the plan has a notify section"),
        Err(e) => panic!("expected a valid plan:\n{}", e.render("t.yaml")),
    }
}

fn errors(notify: &str) -> PlanErrors {
    match parse(&plan(notify), &env) {
        Ok(p) => panic!("expected errors, got {:?}", p.notify),
        Err(e) => e,
    }
}

/// The one error's `line:col: message`, and its hint.
fn one_error(notify: &str) -> (String, String) {
    let errs = errors(notify);
    assert_eq!(errs.len(), 1, "{}", errs.render("t.yaml"));
    let d = &errs.0[0];
    (
        format!("{}: {}", d.location, d.message),
        d.hint.clone().unwrap_or_default(),
    )
}

#[test]
fn every_channel_kind_with_its_defaults() {
    let spec = ok("  channels:
    - slack: ${SLACK_WEBHOOK_URL}
    - webhook: https://audit.example.com/hooks/liftoff
      secret: ${WEBHOOK_SECRET}
      required: true
    - email:
        smtp: smtp://mail.example.com
        username: liftoff
        password: ${SMTP_PASSWORD}
        from: Release bot <liftoff@example.com>
        to: product@example.com
    - statuspage: { page_id: \"${STATUSPAGE_PAGE_ID}\", api_key: \"${STATUSPAGE_API_KEY}\" }
");
    let names: Vec<&str> = spec.channels.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["slack", "webhook", "email", "statuspage"]);
    let [slack, webhook, email, status] = &spec.channels[..] else {
        unreachable!()
    };

    assert_eq!(slack.events, Event::ALL.to_vec());
    assert!(!slack.required);
    assert!(webhook.required);
    match &slack.kind {
        ChannelKind::Slack { webhook } => assert_eq!(webhook.expose(), SLACK_URL),
        other => panic!("{other:?}"),
    }
    match &webhook.kind {
        ChannelKind::Webhook { secret, .. } => {
            assert_eq!(
                secret.as_ref().map(|s| s.expose()),
                Some("whsec-0123456789")
            )
        }
        other => panic!("{other:?}"),
    }
    let ChannelKind::Email(e) = &email.kind else {
        panic!("{:?}", email.kind)
    };
    assert_eq!(e.security, SmtpSecurity::StartTls);
    assert_eq!((e.host(), e.port), ("mail.example.com", 587));
    assert_eq!(e.to, ["product@example.com"]);
    assert_eq!(e.from, "Release bot <liftoff@example.com>");

    let ChannelKind::Statuspage(s) = &status.kind else {
        panic!("{:?}", status.kind)
    };
    assert_eq!(s.api_url.expose(), "https://api.statuspage.io");
    assert_eq!(s.expected_duration, Duration::from_secs(3600));
    assert!(s.component_id.is_none());
    // A status page tells customers about the work, not about every step.
    assert_eq!(
        status.events,
        [
            Event::LaunchStarted,
            Event::RollbackStarted,
            Event::RollbackCompleted,
            Event::Succeeded,
            Event::Failed
        ]
    );

    assert_eq!(spec.retry.attempts, 5);
    assert_eq!(spec.retry.backoff, Duration::from_secs(1));
    assert_eq!(spec.retry.timeout, Duration::from_secs(10));
    assert!(spec.templates.is_empty());
}

#[test]
fn events_templates_and_retry_as_written() {
    let spec = ok("  channels:
    - name: releases
      slack: ${SLACK_WEBHOOK_URL}
      events: [succeeded, rollback_started, launch_started]
      templates:
        succeeded: \"done: {service}\"
    - name: ops
      email: { smtp: \"smtps://mail.example.com\", from: a@example.com, to: [b@example.com, c@example.com] }
  templates:
    rollback_started: \"Rolling back {service}: {reason}\\n{{literal}}\"
  retry: { attempts: 3, backoff: 10ms, timeout: 2s }
");
    let releases = &spec.channels[0];
    // Kept in launch order, whatever order they were listed in.
    assert_eq!(
        releases.events,
        [
            Event::LaunchStarted,
            Event::RollbackStarted,
            Event::Succeeded
        ]
    );
    assert!(releases.receives(Event::Succeeded));
    assert!(!releases.receives(Event::StepStarted));
    assert_eq!(
        releases.templates[&Event::Succeeded].text(),
        "done: {service}"
    );
    let t = spec
        .template(Event::RollbackStarted)
        .expect("a plan template");
    assert_eq!(
        t.lines()[0],
        [
            Piece::Text("Rolling back ".into()),
            Piece::Value(Placeholder::Service),
            Piece::Text(": ".into()),
            Piece::Value(Placeholder::Reason),
        ]
    );
    assert_eq!(t.lines()[1], [Piece::Text("{literal}".into())]);
    assert_eq!(spec.retry.attempts, 3);
    assert_eq!(spec.retry.backoff, Duration::from_millis(10));
    assert_eq!(spec.retry.timeout, Duration::from_secs(2));

    let ChannelKind::Email(e) = &spec.channels[1].kind else {
        panic!()
    };
    assert_eq!((e.security, e.port), (SmtpSecurity::Tls, 465));
    assert_eq!(e.to, ["b@example.com", "c@example.com"]);
}

#[test]
fn plain_smtp_with_credentials_only_to_this_host() {
    let spec = ok("  channels:
    - email:
        smtp: smtp://127.0.0.1:2525
        starttls: false
        username: u
        password: ${SMTP_PASSWORD}
        from: a@example.com
        to: b@example.com
");
    let ChannelKind::Email(e) = &spec.channels[0].kind else {
        panic!()
    };
    assert_eq!(
        (e.security, e.host(), e.port),
        (SmtpSecurity::None, "127.0.0.1", 2525)
    );

    let (error, hint) = one_error(
        "  channels:
    - email:
        smtp: smtp://mail.example.com
        starttls: false
        username: u
        password: ${SMTP_PASSWORD}
        from: a@example.com
        to: b@example.com
",
    );
    assert_eq!(
        error,
        "8:19: email: a password would cross the network unencrypted (`starttls: false`)"
    );
    assert!(hint.contains("starttls: true"), "{hint}");
}

#[test]
fn secrets_must_come_from_variables() {
    let (error, hint) = one_error(
        "  channels:
    - slack: https://hooks.slack.com/services/T000/B000/XXXX
",
    );
    assert_eq!(error, "6:14: slack: a secret written into the plan");
    assert!(hint.contains("${SLACK_WEBHOOK_URL}"), "{hint}");

    let errs = errors(
        "  channels:
    - webhook: https://audit.example.com/h
      secret: s3cr3t-in-the-file
    - statuspage: { page_id: abc, api_key: literal-key }
    - email: { smtp: \"smtp://m.example.com\", username: u, password: pw-in-file, from: a@example.com, to: b@example.com }
",
    );
    let rendered = errs.render("t.yaml");
    for line in [
        "t.yaml:7:15: secret: a secret written into the plan",
        "t.yaml:8:44: statuspage.api_key: a secret written into the plan",
        "t.yaml:9:69: email.password: a secret written into the plan",
    ] {
        assert!(rendered.contains(line), "missing {line:?} in:\n{rendered}");
    }
    // Errors show the value as written; never a resolved secret.
    assert!(!rendered.contains("XXXXSECRET"), "{rendered}");
}

#[test]
fn unknown_events_get_a_did_you_mean() {
    let (error, hint) = one_error(
        "  channels:
    - slack: ${SLACK_WEBHOOK_URL}
      events: [launch_started, rollback_stared]
",
    );
    assert_eq!(error, "7:32: events: unknown event `rollback_stared`");
    assert_eq!(hint, "did you mean `rollback_started`?");

    let (error, hint) = one_error(
        "  channels:
    - slack: ${SLACK_WEBHOOK_URL}
  templates:
    succeded: \"ok\"
",
    );
    assert_eq!(error, "8:5: notify.templates: unknown event `succeded`");
    assert_eq!(hint, "did you mean `succeeded`?");

    let (error, _) = one_error(
        "  channels:
    - slack: ${SLACK_WEBHOOK_URL}
      events: [failed, failed]
",
    );
    assert_eq!(error, "7:24: events: `failed` is listed twice");

    let (error, _) = one_error(
        "  channels:
    - slack: ${SLACK_WEBHOOK_URL}
      events: []
",
    );
    assert_eq!(error, "7:15: events: an empty list sends nothing");
}

#[test]
fn an_unknown_placeholder_is_reported_inside_the_template() {
    let (error, hint) = one_error(
        "  channels:
    - slack: ${SLACK_WEBHOOK_URL}
  templates:
    rollback_started: \"Rolling back {servce}: {reason}\"
",
    );
    // Column of `{servce}` inside the quoted string.
    assert_eq!(
        error,
        "8:37: notify.templates.rollback_started: unknown placeholder `{servce}`"
    );
    assert_eq!(hint, "did you mean `{service}`?");

    let (error, hint) = one_error(
        "  channels:
    - name: team
      slack: ${SLACK_WEBHOOK_URL}
      templates:
        failed: \"{service} failed: {reason\"
",
    );
    assert_eq!(
        error,
        "9:36: notify.channels[].templates.failed: `{` opens a placeholder that is never closed"
    );
    assert!(hint.contains("`{{`"), "{hint}");
}

#[test]
fn channels_are_told_apart_and_have_one_kind() {
    let (error, hint) = one_error(
        "  channels:
    - slack: ${SLACK_WEBHOOK_URL}
    - slack: ${SLACK_WEBHOOK_URL}
",
    );
    assert_eq!(
        error,
        "7:7: notify.channels: two channels are named `slack`"
    );
    assert!(hint.contains("`name`"), "{hint}");

    let (error, _) = one_error(
        "  channels:
    - slack: ${SLACK_WEBHOOK_URL}
      webhook: https://audit.example.com/h
",
    );
    assert_eq!(error, "7:7: notify channel: has both `slack` and `webhook`");

    let (error, _) = one_error(
        "  channels:
    - slack: ${SLACK_WEBHOOK_URL}
      secret: ${WEBHOOK_SECRET}
",
    );
    assert_eq!(
        error,
        "7:7: notify channel: `secret` applies to `webhook` channels only"
    );

    let (error, hint) = one_error(
        "  channels:
    - slack: ${SLACK_WEBHOOK_URL}
      requried: true
",
    );
    assert_eq!(error, "7:7: notify channel: unknown key `requried`");
    assert_eq!(hint, "did you mean `required`?");

    let errs = errors(
        "  channels:
    - name: x
      slak: ${SLACK_WEBHOOK_URL}
",
    )
    .render("t.yaml");
    assert_eq!(
        errs,
        "t.yaml:6:7: notify channel: no kind given
  hint: a channel has exactly one of: slack, webhook, email, statuspage
t.yaml:7:7: notify channel: unknown key `slak`
  hint: did you mean `slack`?
"
    );
}

#[test]
fn addresses_urls_and_ids_are_checked() {
    let cases = [
        (
            "    - slack: ${NOT_A_URL}\n",
            "6:14: slack: `${NOT_A_URL}` is not an http or https URL",
        ),
        (
            "    - webhook: ftp://audit.example.com\n",
            "6:16: webhook: `ftp://audit.example.com` is not an http or https URL",
        ),
        (
            "    - email: { smtp: \"smtp://u:p@mail.example.com\", from: a@example.com, to: b@example.com }\n",
            "6:22: email.smtp: `smtp://u:p@mail.example.com` has credentials in it; use `username` and `password`",
        ),
        (
            "    - email: { smtp: \"smtp://mail.example.com\", from: not-an-address, to: b@example.com }\n",
            "6:55: email.from: `not-an-address` is not an email address",
        ),
        (
            "    - email: { smtp: \"smtps://mail.example.com\", starttls: true, from: a@example.com, to: b@example.com }\n",
            "6:60: email.starttls: `smtps://` is TLS from the start",
        ),
        (
            "    - statuspage: { page_id: \"../x\", api_key: \"${STATUSPAGE_API_KEY}\" }\n",
            "6:30: statuspage.page_id: `../x` is not a Statuspage id",
        ),
        (
            "    - email: { smtp: \"smtp://mail.example.com\", username: u, from: a@example.com, to: b@example.com }\n",
            "6:14: email: `username` and `password` go together",
        ),
    ];
    for (channel, expected) in cases {
        let (error, _) = one_error(&format!("  channels:\n{channel}"));
        assert_eq!(error, expected, "for {channel}");
    }
}

#[test]
fn retry_and_structure_errors() {
    let (error, _) = one_error(
        "  channels:
    - slack: ${SLACK_WEBHOOK_URL}
  retry: { attempts: 0 }
",
    );
    assert_eq!(
        error,
        "7:22: retry.attempts: expected a whole number from 1 to 100, found `0`"
    );
    let (error, hint) = one_error(
        "  channels:
    - slack: ${SLACK_WEBHOOK_URL}
  retyr: { attempts: 3 }
",
    );
    assert_eq!(error, "7:3: notify: unknown key `retyr`");
    assert_eq!(hint, "did you mean `retry`?");
    let (error, _) = one_error("  templates: {}\n");
    assert_eq!(error, "5:3: notify: missing required key `channels`");
    let (error, _) = one_error("  channels: []\n");
    assert_eq!(error, "5:13: notify.channels: no channels");
}

#[test]
fn a_plan_without_notify_has_none_and_debug_shows_no_secret() {
    let p = parse(
        "version: 1\nname: n\nservice: s\nsteps:\n  - run: echo hi\n",
        &env,
    )
    .unwrap_or_else(|e| panic!("{}", e.render("t.yaml")));
    assert!(p.notify.is_none());

    let spec = ok("  channels:
    - slack: ${SLACK_WEBHOOK_URL}
    - webhook: https://audit.example.com/h
      secret: ${WEBHOOK_SECRET}
    - email: { smtp: \"smtp://m.example.com\", username: u, password: \"${SMTP_PASSWORD}\", from: a@example.com, to: b@example.com }
    - statuspage: { page_id: abc, api_key: \"${STATUSPAGE_API_KEY}\" }
");
    let debug = format!("{spec:?} {spec:#?}");
    for secret in [
        SLACK_URL,
        "XXXXSECRET",
        "whsec-0123456789",
        "hunter2-smtp",
        "sp-key-abcdef",
    ] {
        assert!(!debug.contains(secret), "{secret} in Debug: {debug}");
    }
    assert!(debug.contains("${SLACK_WEBHOOK_URL}"));
    // What redaction needs: every secret, and the Slack URL's path on its own.
    let secrets: Vec<&str> = spec.channels.iter().flat_map(|c| c.secrets()).collect();
    for secret in [
        SLACK_URL,
        "services/T000/B000/XXXXSECRET",
        "whsec-0123456789",
        "hunter2-smtp",
        "sp-key-abcdef",
    ] {
        assert!(secrets.contains(&secret), "{secret} not in {secrets:?}");
    }
}
