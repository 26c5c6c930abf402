//! Notice + templates → a message for one channel. Pure: no I/O, no clock.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use liftoff_checks::Redactor;
use liftoff_plan::notify::{Channel, ChannelKind, Event, Piece, Placeholder, Template};
use serde_json::{Value, json};

use crate::{Notice, VersionFigures};

/// A message for one channel, ready to deliver. Holds no secret: URLs, keys and
/// passwords stay in the [`Channel`] until the moment of delivery.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    pub event: Event,
    /// The notice's id: the idempotency key every delivery of it carries.
    pub id: String,
    /// The filled template as people read it: Slack's `text`, the email's body, the
    /// webhook's `message`, the Statuspage update's body.
    pub message: String,
    pub payload: Payload,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Payload {
    /// The body for Slack's incoming webhook: `{ "text", "blocks" }`.
    Slack(Value),
    /// The exact bytes POSTed (and signed), and the notice's id (`X-Liftoff-Delivery`).
    Webhook {
        body: String,
        id: String,
    },
    Email {
        subject: String,
        body: String,
        /// `<...@liftoff>`: the same on every retry, so mail clients can deduplicate.
        message_id: String,
    },
    Statuspage(StatuspageUpdate),
}

/// What one notice changes on the status page: the launch's maintenance, and the
/// component's status.
#[derive(Clone, Debug, PartialEq)]
pub struct StatuspageUpdate {
    pub incident: Option<IncidentChange>,
    pub component: Option<ComponentStatus>,
}

/// An update of the launch's scheduled maintenance (an incident, in Statuspage's API).
#[derive(Clone, Debug, PartialEq)]
pub struct IncidentChange {
    /// The name a new maintenance gets.
    pub name: String,
    /// `in_progress` or `completed`; `None` posts the body and leaves the status.
    pub status: Option<&'static str>,
    pub body: String,
    /// Open the maintenance if the launch has none yet; otherwise an event with no
    /// maintenance to update changes only the component.
    pub open: bool,
    pub scheduled_for: jiff::Timestamp,
    pub scheduled_until: jiff::Timestamp,
}

/// A Statuspage component status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComponentStatus {
    Operational,
    DegradedPerformance,
    PartialOutage,
    MajorOutage,
}

impl ComponentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentStatus::Operational => "operational",
            ComponentStatus::DegradedPerformance => "degraded_performance",
            ComponentStatus::PartialOutage => "partial_outage",
            ComponentStatus::MajorOutage => "major_outage",
        }
    }
}

/// The message `notice` makes on `channel`. The template is the channel's own
/// (`channels[].templates`), else the plan's (`notify.templates`; not for Statuspage,
/// which speaks to customers), else liftoff's default for the channel.
pub fn render(
    channel: &Channel,
    plan_templates: &BTreeMap<Event, Template>,
    notice: &Notice,
) -> Rendered {
    let status_page = matches!(channel.kind, ChannelKind::Statuspage(_));
    let template = channel
        .templates
        .get(&notice.event)
        .or_else(|| {
            (!status_page)
                .then(|| plan_templates.get(&notice.event))
                .flatten()
        })
        .unwrap_or_else(|| default_template(notice.event, status_page));
    let redactor = Redactor::new(channel.secrets());
    let plain = redactor.redact(&fill(template, notice, &|v| v.to_string()));
    let payload = match &channel.kind {
        ChannelKind::Slack { .. } => {
            let mrkdwn = redactor.redact(&fill(template, notice, &slack_escape));
            Payload::Slack(slack_payload(&mrkdwn, notice))
        }
        ChannelKind::Webhook { .. } => Payload::Webhook {
            body: webhook_body(channel, notice, &plain),
            id: notice.id.clone(),
        },
        ChannelKind::Email(_) => Payload::Email {
            subject: truncate(plain.lines().next().unwrap_or_default(), 200),
            body: format!(
                "{plain}\n\n-- \nliftoff · {} · launch {} · {} · {}\n",
                notice.service,
                notice.launch_id,
                notice.event,
                notice.at.strftime("%Y-%m-%d %H:%M:%S UTC"),
            ),
            message_id: format!("<{}@liftoff>", message_id_part(&notice.id)),
        },
        ChannelKind::Statuspage(spec) => {
            Payload::Statuspage(statuspage_update(notice, &plain, spec.expected_duration))
        }
    };
    Rendered {
        event: notice.event,
        id: notice.id.clone(),
        message: plain,
        payload,
    }
}

/// How each event moves the status page (see docs/plan.md, "Statuspage").
fn statuspage_update(notice: &Notice, body: &str, expected: Duration) -> StatuspageUpdate {
    use ComponentStatus as C;
    let (status, open, component) = match notice.event {
        Event::LaunchStarted => (Some("in_progress"), true, None),
        Event::RollbackStarted => (Some("in_progress"), true, Some(C::DegradedPerformance)),
        Event::RollbackCompleted => (Some("completed"), false, Some(C::Operational)),
        Event::Succeeded => (Some("completed"), false, Some(C::Operational)),
        // The rollback did not complete: the maintenance stays open for a human.
        Event::Failed => (Some("in_progress"), true, Some(C::PartialOutage)),
        _ => (None, false, None),
    };
    let until = jiff::SignedDuration::try_from(expected)
        .ok()
        .and_then(|d| notice.at.checked_add(d).ok())
        .unwrap_or(notice.at);
    StatuspageUpdate {
        incident: Some(IncidentChange {
            name: format!("{} upgrade", notice.service),
            status,
            body: body.to_string(),
            open,
            scheduled_for: notice.at,
            scheduled_until: until,
        }),
        component,
    }
}

/// Slack's incoming-webhook body: `text` (the notification and fallback), and blocks: a
/// `section` with the message (headline in bold) and a `context` line.
fn slack_payload(mrkdwn: &str, notice: &Notice) -> Value {
    let (headline, rest) = mrkdwn.split_once('\n').unwrap_or((mrkdwn, ""));
    let section = if headline.trim().is_empty() {
        mrkdwn.to_string()
    } else {
        format!("*{}*\n{rest}", headline.trim())
    };
    let context = format!(
        "liftoff · {} · launch `{}` · {} · {}",
        slack_escape(&notice.service),
        slack_escape(&notice.launch_id),
        notice.event,
        notice.at.strftime("%Y-%m-%d %H:%M:%S UTC"),
    );
    json!({
        "text": truncate(mrkdwn, SLACK_TEXT_MAX),
        "blocks": [
            {
                "type": "section",
                "text": { "type": "mrkdwn", "text": truncate(section.trim_end(), SLACK_TEXT_MAX) },
            },
            {
                "type": "context",
                "elements": [ { "type": "mrkdwn", "text": context } ],
            },
        ],
    })
}

/// Slack's limit on a section's text.
const SLACK_TEXT_MAX: usize = 3000;

/// The webhook's body, schema `version: 1` (documented in docs/plan.md). Fields are only
/// ever added; every documented key is present, `null` when unknown.
fn webhook_body(channel: &Channel, notice: &Notice, message: &str) -> String {
    let version = |v: &Option<VersionFigures>| match v {
        Some(v) => json!({
            "requests": v.requests,
            "error_rate": finite(v.error_rate),
            "p95_ms": finite(v.p95_ms),
            "rps": finite(Some(v.rps)),
        }),
        None => Value::Null,
    };
    let figures = match &notice.figures {
        Some(f) => json!({ "stable": version(&f.stable), "candidate": version(&f.candidate) }),
        None => Value::Null,
    };
    let body = json!({
        "version": 1,
        "id": notice.id,
        "event": notice.event.name(),
        "at": notice.at.to_string(),
        "channel": channel.name,
        "service": notice.service,
        "launch": { "id": notice.launch_id, "name": notice.launch_name },
        "message": message,
        "step": notice.step,
        "weight_percent": notice.weight.map(|w| w.percent()),
        "elapsed_secs": notice.elapsed.map(|d| d.as_secs()),
        "approver": notice.approver,
        "role": notice.role,
        "reason": notice.reason,
        "verdict": notice.verdict,
        "next_checkpoint_secs": notice.next_checkpoint.map(|d| d.as_secs()),
        "figures": figures,
    });
    body.to_string()
}

fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}

/// Fills a template. A placeholder without a value reads `n/a`, except that a line whose
/// placeholders all lack a value is left out (so "Reason: {reason}" disappears when
/// there is no reason). `escape` is applied to values, never to the template's text.
fn fill(template: &Template, notice: &Notice, escape: &dyn Fn(&str) -> String) -> String {
    let mut lines = Vec::new();
    for line in template.lines() {
        let mut out = String::new();
        let (mut placeholders, mut filled) = (0, 0);
        for piece in line {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Value(p) => {
                    placeholders += 1;
                    match value(notice, *p) {
                        Some(v) => {
                            filled += 1;
                            out.push_str(&escape(&v));
                        }
                        None => out.push_str("n/a"),
                    }
                }
            }
        }
        if placeholders == 0 || filled > 0 {
            lines.push(out);
        }
    }
    let text = lines.join("\n").trim().to_string();
    if text.is_empty() {
        // Never an empty message (Slack refuses one): say at least what happened.
        format!("{}: {}", escape(&notice.service), notice.event)
    } else {
        text
    }
}

fn value(n: &Notice, p: Placeholder) -> Option<String> {
    let stable = n.figures.as_ref().and_then(|f| f.stable.as_ref());
    let candidate = n.figures.as_ref().and_then(|f| f.candidate.as_ref());
    let rate = |v: Option<&VersionFigures>| v.and_then(|v| v.error_rate).and_then(format_rate);
    let p95 = |v: Option<&VersionFigures>| v.and_then(|v| v.p95_ms).and_then(format_ms);
    let rps = |v: Option<&VersionFigures>| v.and_then(|v| format_rps(v.rps));
    match p {
        Placeholder::Service => Some(n.service.clone()),
        Placeholder::Launch => Some(n.launch_id.clone()),
        Placeholder::Name => Some(n.launch_name.clone()),
        Placeholder::Event => Some(n.event.name().to_string()),
        Placeholder::Step => n.step.clone(),
        Placeholder::Weight => n.weight.map(|w| format!("{w}%")),
        Placeholder::StableErrorRate => rate(stable),
        Placeholder::CandidateErrorRate => rate(candidate),
        Placeholder::StableP95 => p95(stable),
        Placeholder::CandidateP95 => p95(candidate),
        Placeholder::StableRps => rps(stable),
        Placeholder::CandidateRps => rps(candidate),
        Placeholder::Elapsed => n.elapsed.map(format_elapsed),
        Placeholder::Approver => n.approver.clone(),
        Placeholder::Role => n.role.clone(),
        Placeholder::Reason => n.reason.clone(),
        Placeholder::Verdict => n.verdict.clone(),
        Placeholder::NextCheckpoint => n
            .next_checkpoint
            .map(|d| format!("T+{}", format_elapsed(d))),
    }
}

/// A ratio as a percentage: `0.0012` → `0.12%`.
fn format_rate(ratio: f64) -> Option<String> {
    ratio.is_finite().then(|| format!("{:.2}%", ratio * 100.0))
}

/// `412ms`, `1.25s`.
fn format_ms(ms: f64) -> Option<String> {
    if !ms.is_finite() || ms < 0.0 {
        return None;
    }
    Some(if ms < 1000.0 {
        format!("{ms:.0}ms")
    } else {
        format!("{:.2}s", ms / 1000.0)
    })
}

/// `4.2`, `310`.
fn format_rps(rps: f64) -> Option<String> {
    if !rps.is_finite() || rps < 0.0 {
        return None;
    }
    Some(if rps < 10.0 {
        format!("{rps:.1}")
    } else {
        format!("{rps:.0}")
    })
}

/// Like the seeds' `T+30min`: `45s`, `30min`, `2h`, `1h 5min`, `3d 2h`.
fn format_elapsed(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{mins}min"),
        3600..86_400 if mins == 0 => format!("{hours}h"),
        3600..86_400 => format!("{hours}h {mins}min"),
        _ if hours == 0 => format!("{days}d"),
        _ => format!("{days}d {hours}h"),
    }
}

/// Slack's mrkdwn control characters in values: `&`, `<`, `>`.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max_chars - 1).collect();
    out.push('…');
    out
}

/// The part of a Message-ID before `@`: letters, digits and `.-_` only.
fn message_id_part(id: &str) -> String {
    let cleaned: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '.'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "notice".to_string()
    } else {
        cleaned
    }
}

/// liftoff's own wording for `event`: for the team (Slack, webhook, email), modelled on
/// the seeds' Slack and email messages; for a public status page, customer-facing.
pub fn default_template(event: Event, status_page: bool) -> &'static Template {
    let table = if status_page { &*PUBLIC } else { &*TEAM };
    table
        .get(&event)
        .or_else(|| TEAM.get(&event))
        .expect("every event has a default template (checked by a test)")
}

static TEAM: LazyLock<BTreeMap<Event, Template>> = LazyLock::new(|| parse_all(TEAM_TEMPLATES));
static PUBLIC: LazyLock<BTreeMap<Event, Template>> = LazyLock::new(|| parse_all(PUBLIC_TEMPLATES));

fn parse_all(texts: &[(Event, &str)]) -> BTreeMap<Event, Template> {
    texts
        .iter()
        .filter_map(|(e, t)| Template::parse(t).ok().map(|t| (*e, t)))
        .collect()
}

pub(crate) const TEAM_TEMPLATES: &[(Event, &str)] = &[
    (
        Event::LaunchStarted,
        "🚀 {service}: launch {name} started\n\
         Launch: {launch}\n\
         Candidate weight: {weight}",
    ),
    (
        Event::ChecklistVerdict,
        "📋 {service}: go/no-go checklist: {verdict}\n\
         {reason}",
    ),
    (
        Event::StepStarted,
        "▶️ {service}: step {step} started (T+{elapsed})\n\
         Candidate weight: {weight}",
    ),
    (
        Event::StepFinished,
        "{service}: step {step} finished: {verdict} (T+{elapsed})\n\
         {reason}\n\
         Approved by: {approver}\n\
         Candidate weight: {weight}",
    ),
    (
        Event::ApprovalNeeded,
        "✋ {service}: approval needed for {step} (T+{elapsed})\n\
         Role: {role}\n\
         Approve with: liftoff approve {launch} --as {role}",
    ),
    (
        Event::GateVerdict,
        "📊 {service}: analysis of {step}: {verdict}\n\
         {reason}\n\
         Error rate: {candidate_error_rate} (stable: {stable_error_rate})\n\
         P95 latency: {candidate_p95} (stable: {stable_p95})\n\
         Request rate: {candidate_rps} req/s (stable: {stable_rps} req/s)",
    ),
    (
        Event::TriggerFired,
        "⚠️ {service}: rollback trigger fired (T+{elapsed})\n\
         Trigger: {reason}\n\
         Error rate: {candidate_error_rate} (stable: {stable_error_rate})\n\
         P95 latency: {candidate_p95} (stable: {stable_p95})\n\
         Candidate weight: {weight}",
    ),
    (
        Event::RollbackStarted,
        "🚨 ROLLBACK INITIATED (T+{elapsed}): {service}\n\
         Reason: {reason}\n\
         Candidate weight: {weight}, moving back to stable\n\
         Error rate: {candidate_error_rate} (stable: {stable_error_rate})\n\
         P95 latency: {candidate_p95} (stable: {stable_p95})",
    ),
    (
        Event::RollbackCompleted,
        "✅ ROLLBACK COMPLETE (T+{elapsed}): {service}\n\
         Service restored to the stable version.\n\
         Reason: {reason}\n\
         Error rate: {stable_error_rate}\n\
         P95 latency: {stable_p95}",
    ),
    (
        Event::Checkpoint,
        "📍 T+{elapsed} checkpoint, {service}: {verdict}\n\
         Request rate: {candidate_rps} req/s (stable: {stable_rps} req/s)\n\
         Error rate: {candidate_error_rate} (stable: {stable_error_rate})\n\
         P95 latency: {candidate_p95} (stable: {stable_p95})\n\
         Candidate weight: {weight}\n\
         Next checkpoint: {next_checkpoint}",
    ),
    (
        Event::Succeeded,
        "✅ {service}: launch {name} complete (T+{elapsed})\n\
         Candidate weight: {weight}\n\
         Metrics: {candidate_rps} req/s, {candidate_error_rate} errors, {candidate_p95} P95 latency\n\
         Approved by: {approver}",
    ),
    (
        Event::Failed,
        "❌ {service}: launch {name} FAILED (T+{elapsed})\n\
         Reason: {reason}\n\
         A human must look: liftoff status {launch}",
    ),
];

/// What customers read on the status page (the seeds' status-page posts). Other events
/// a status page is given use the team's wording.
pub(crate) const PUBLIC_TEMPLATES: &[(Event, &str)] = &[
    (
        Event::LaunchStarted,
        "Scheduled maintenance in progress: we are upgrading {service}. \
         We'll update this page as the work progresses.",
    ),
    (
        Event::RollbackStarted,
        "We found a problem with the new version of {service} and are returning to the previous version.",
    ),
    (
        Event::RollbackCompleted,
        "{service} is back on its previous version. The maintenance is over.",
    ),
    (
        Event::Succeeded,
        "The upgrade of {service} is complete. All systems operational. \
         Thank you for your patience during maintenance.",
    ),
    (
        Event::Failed,
        "We are working on a problem with {service} that appeared during the upgrade.",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_template_parses() {
        for (event, text) in TEAM_TEMPLATES.iter().chain(PUBLIC_TEMPLATES) {
            if let Err(e) = Template::parse(text) {
                panic!(
                    "default template for {event} at {}: {}",
                    e.offset, e.message
                );
            }
        }
        for event in Event::ALL {
            assert!(TEAM.contains_key(&event), "no team template for {event}");
            default_template(event, true);
        }
    }

    #[test]
    fn figures_read_like_the_seeds() {
        assert_eq!(format_rate(0.0012).as_deref(), Some("0.12%"));
        assert_eq!(format_rate(f64::NAN), None);
        assert_eq!(format_ms(412.4).as_deref(), Some("412ms"));
        assert_eq!(format_ms(1250.0).as_deref(), Some("1.25s"));
        assert_eq!(format_rps(4.21).as_deref(), Some("4.2"));
        assert_eq!(format_rps(310.4).as_deref(), Some("310"));
        assert_eq!(format_elapsed(Duration::from_secs(45)), "45s");
        assert_eq!(format_elapsed(Duration::from_secs(30 * 60 + 20)), "30min");
        assert_eq!(format_elapsed(Duration::from_secs(2 * 3600)), "2h");
        assert_eq!(format_elapsed(Duration::from_secs(3900)), "1h 5min");
        assert_eq!(format_elapsed(Duration::from_secs(2 * 86_400)), "2d");
    }

    #[test]
    fn slack_escapes_values_not_the_template() {
        assert_eq!(slack_escape("a<b>&c"), "a&lt;b&gt;&amp;c");
        assert_eq!(message_id_part("launch/42"), "launch.42");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }
}
