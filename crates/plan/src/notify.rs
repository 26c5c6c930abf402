//! `notify:`: who hears about a launch (Slack, a webhook, email, a Statuspage page),
//! about which events, and in which words. Model and decoding; rendering and delivery
//! are `liftoff-notify`'s job.
//!
//! The names of events and template placeholders live here, so that a typo in either is
//! an error when the plan is loaded, at its `line:col`, never a message that silently
//! reads `{servce}`.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::Duration;

use crate::decode::{Decoder, Fields, Node, location, parse_reference};
use crate::diag::did_you_mean;
use crate::model::{Known, Location, Text};
use crate::schema;

/// Something that happens in a launch and can be told to people.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Event {
    LaunchStarted,
    ChecklistVerdict,
    StepStarted,
    StepFinished,
    ApprovalNeeded,
    GateVerdict,
    TriggerFired,
    RollbackStarted,
    RollbackCompleted,
    Checkpoint,
    Succeeded,
    Failed,
}

impl Event {
    /// Every event, in the order a launch meets them.
    pub const ALL: [Event; 12] = [
        Event::LaunchStarted,
        Event::ChecklistVerdict,
        Event::StepStarted,
        Event::StepFinished,
        Event::ApprovalNeeded,
        Event::GateVerdict,
        Event::TriggerFired,
        Event::RollbackStarted,
        Event::RollbackCompleted,
        Event::Checkpoint,
        Event::Succeeded,
        Event::Failed,
    ];

    /// The name plans, payloads and the journal use: `rollback_started`.
    pub fn name(self) -> &'static str {
        match self {
            Event::LaunchStarted => "launch_started",
            Event::ChecklistVerdict => "checklist_verdict",
            Event::StepStarted => "step_started",
            Event::StepFinished => "step_finished",
            Event::ApprovalNeeded => "approval_needed",
            Event::GateVerdict => "gate_verdict",
            Event::TriggerFired => "trigger_fired",
            Event::RollbackStarted => "rollback_started",
            Event::RollbackCompleted => "rollback_completed",
            Event::Checkpoint => "checkpoint",
            Event::Succeeded => "succeeded",
            Event::Failed => "failed",
        }
    }

    pub fn from_name(name: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.name() == name)
    }

    fn names() -> Vec<&'static str> {
        Event::ALL.iter().map(|e| e.name()).collect()
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A `{name}` in a message template, filled from the notice when the message is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Placeholder {
    Service,
    Launch,
    Name,
    Event,
    Step,
    Weight,
    StableErrorRate,
    CandidateErrorRate,
    StableP95,
    CandidateP95,
    StableRps,
    CandidateRps,
    Elapsed,
    Approver,
    Role,
    Reason,
    Verdict,
    NextCheckpoint,
}

impl Placeholder {
    pub const ALL: [Placeholder; 18] = [
        Placeholder::Service,
        Placeholder::Launch,
        Placeholder::Name,
        Placeholder::Event,
        Placeholder::Step,
        Placeholder::Weight,
        Placeholder::StableErrorRate,
        Placeholder::CandidateErrorRate,
        Placeholder::StableP95,
        Placeholder::CandidateP95,
        Placeholder::StableRps,
        Placeholder::CandidateRps,
        Placeholder::Elapsed,
        Placeholder::Approver,
        Placeholder::Role,
        Placeholder::Reason,
        Placeholder::Verdict,
        Placeholder::NextCheckpoint,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Placeholder::Service => "service",
            Placeholder::Launch => "launch",
            Placeholder::Name => "name",
            Placeholder::Event => "event",
            Placeholder::Step => "step",
            Placeholder::Weight => "weight",
            Placeholder::StableErrorRate => "stable_error_rate",
            Placeholder::CandidateErrorRate => "candidate_error_rate",
            Placeholder::StableP95 => "stable_p95",
            Placeholder::CandidateP95 => "candidate_p95",
            Placeholder::StableRps => "stable_rps",
            Placeholder::CandidateRps => "candidate_rps",
            Placeholder::Elapsed => "elapsed",
            Placeholder::Approver => "approver",
            Placeholder::Role => "role",
            Placeholder::Reason => "reason",
            Placeholder::Verdict => "verdict",
            Placeholder::NextCheckpoint => "next_checkpoint",
        }
    }

    pub fn from_name(name: &str) -> Option<Placeholder> {
        Placeholder::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// One piece of a template line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Value(Placeholder),
}

/// A message template: text with `{placeholder}`s, `{{` and `}}` for literal braces.
/// Parsed when the plan is loaded, so filling it in cannot fail.
#[derive(Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    lines: Vec<Vec<Piece>>,
}

/// Why a template does not parse: a message, where (a byte offset into the template),
/// and a hint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut lines = Vec::new();
        let mut line_start = 0;
        for line in text.split('\n') {
            lines.push(parse_line(line, line_start)?);
            line_start += line.len() + 1;
        }
        Ok(Template {
            text: text.to_string(),
            lines,
        })
    }

    /// The template as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The template's lines, each a sequence of text and placeholders.
    pub fn lines(&self) -> &[Vec<Piece>] {
        &self.lines
    }

    pub fn placeholders(&self) -> impl Iterator<Item = Placeholder> + '_ {
        self.lines.iter().flatten().filter_map(|p| match p {
            Piece::Value(v) => Some(*v),
            Piece::Text(_) => None,
        })
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

fn parse_line(line: &str, base: usize) -> Result<Vec<Piece>, TemplateError> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = line;
    let mut at = base;
    while let Some(pos) = rest.find(['{', '}']) {
        text.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            text.push_str(&tail[..1]);
            rest = &tail[2..];
            at += pos + 2;
            continue;
        }
        if let Some(after) = tail.strip_prefix('}') {
            // A lone `}` cannot be mistaken for anything: keep it.
            text.push('}');
            rest = after;
            at += pos + 1;
            continue;
        }
        let Some(end) = tail.find('}') else {
            return Err(TemplateError {
                offset: at + pos,
                message: "`{` opens a placeholder that is never closed".into(),
                hint: Some("close it with `}`, or write `{{` for a literal `{`".into()),
            });
        };
        let name = &tail[1..end];
        match Placeholder::from_name(name.trim()) {
            Some(p) => {
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Value(p));
            }
            None => {
                let known: Vec<&str> = Placeholder::ALL.iter().map(|p| p.name()).collect();
                let hint = match did_you_mean(name, &known) {
                    Some(guess) => format!("did you mean `{{{guess}}}`?"),
                    None => format!(
                        "placeholders: {}; `{{{{` for a literal `{{`",
                        known
                            .iter()
                            .map(|k| format!("{{{k}}}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                };
                return Err(TemplateError {
                    offset: at + pos,
                    message: format!("unknown placeholder `{{{name}}}`"),
                    hint: Some(hint),
                });
            }
        }
        rest = &tail[end + 1..];
        at += pos + end + 1;
    }
    text.push_str(rest);
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// The plan's `notify:` section.
#[derive(Clone, Debug)]
pub struct NotifySpec {
    pub channels: Vec<Channel>,
    /// Messages the plan words itself; the other events use liftoff's defaults.
    pub templates: BTreeMap<Event, Template>,
    pub retry: RetrySpec,
}

impl NotifySpec {
    /// The plan's own template for `event`, if it has one.
    pub fn template(&self, event: Event) -> Option<&Template> {
        self.templates.get(&event)
    }
}

/// Where messages go. `Debug` and `Display` of its texts show them as written
/// (`${SLACK_WEBHOOK_URL}`), never the secret values.
#[derive(Clone, Debug)]
pub struct Channel {
    /// Unique within the plan; the kind (`slack`, ...) when not given.
    pub name: String,
    pub kind: ChannelKind,
    /// The events this channel receives, in [`Event::ALL`] order.
    pub events: Vec<Event>,
    /// A failed delivery fails the launch; otherwise it is only reported.
    pub required: bool,
    /// This channel's own wording, before the plan's `notify.templates`.
    pub templates: BTreeMap<Event, Template>,
    pub location: Location,
}

impl Channel {
    pub fn receives(&self, event: Event) -> bool {
        self.events.contains(&event)
    }

    /// The resolved secrets of this channel (URLs, keys, passwords), for redaction.
    pub fn secrets(&self) -> Vec<&str> {
        // Always secret: URLs that are credentials, keys, passwords. The rest only when
        // it came from a variable (every variable's value is a secret).
        let from_variable = |t: &&Text| t.template() != t.expose();
        let texts: Vec<&Text> = match &self.kind {
            ChannelKind::Slack { webhook } => vec![webhook],
            ChannelKind::Webhook { url, secret } => std::iter::once(url).chain(secret).collect(),
            ChannelKind::Email(e) => std::iter::once(&e.server)
                .chain(&e.username)
                .filter(from_variable)
                .chain(&e.password)
                .collect(),
            ChannelKind::Statuspage(s) => [&s.page_id, &s.api_url]
                .into_iter()
                .chain(&s.component_id)
                .filter(from_variable)
                .chain(std::iter::once(&s.api_key))
                .collect(),
        };
        let mut out: Vec<&str> = texts.into_iter().map(Text::expose).collect();
        // Parts of a URL leak on their own (a Slack URL's path is the credential).
        let url = match &self.kind {
            ChannelKind::Slack { webhook } => Some(webhook),
            ChannelKind::Webhook { url, .. } => Some(url),
            _ => None,
        };
        if let Some((_, rest)) = url.and_then(|u| u.expose().split_once("://"))
            && let Some((_, path)) = rest.split_once('/')
        {
            out.push(path);
        }
        out.retain(|s| s.len() >= 4);
        out
    }
}

#[derive(Clone, Debug)]
pub enum ChannelKind {
    /// A Slack incoming-webhook URL (the URL is the credential).
    Slack {
        webhook: Text,
    },
    /// A JSON POST of each notice, signed with HMAC-SHA256 when `secret` is set.
    Webhook {
        url: Text,
        secret: Option<Text>,
    },
    Email(Box<EmailSpec>),
    Statuspage(Box<StatuspageSpec>),
}

impl ChannelKind {
    pub fn keyword(&self) -> &'static str {
        match self {
            ChannelKind::Slack { .. } => "slack",
            ChannelKind::Webhook { .. } => "webhook",
            ChannelKind::Email(_) => "email",
            ChannelKind::Statuspage(_) => "statuspage",
        }
    }

    /// The events a channel of this kind receives when the plan does not say.
    pub fn default_events(&self) -> Vec<Event> {
        match self {
            // A public status page tells customers about the work, not every step.
            ChannelKind::Statuspage(_) => vec![
                Event::LaunchStarted,
                Event::RollbackStarted,
                Event::RollbackCompleted,
                Event::Succeeded,
                Event::Failed,
            ],
            _ => Event::ALL.to_vec(),
        }
    }
}

/// Mail through an SMTP server.
#[derive(Clone, Debug)]
pub struct EmailSpec {
    /// `smtp://host[:port]` or `smtps://host[:port]`, as validated at load.
    pub server: Text,
    pub security: SmtpSecurity,
    pub port: u16,
    pub username: Option<Text>,
    pub password: Option<Text>,
    pub from: String,
    pub to: Vec<String>,
}

impl EmailSpec {
    /// The SMTP server's host name or address (resolved; validated at load).
    pub fn host(&self) -> &str {
        split_smtp_url(self.server.expose()).map_or("", |u| u.host)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS, required: nothing is sent in the clear.
    StartTls,
    /// TLS from the first byte (`smtps://`, port 465).
    Tls,
    /// No encryption (`starttls: false`): for a relay on this host or in tests.
    None,
}

/// An Atlassian Statuspage page: an in-progress maintenance for the launch, and
/// optionally a component whose status follows it.
#[derive(Clone, Debug)]
pub struct StatuspageSpec {
    pub page_id: Text,
    pub api_key: Text,
    pub component_id: Option<Text>,
    /// `https://api.statuspage.io` unless the plan says otherwise (tests, proxies).
    pub api_url: Text,
    /// How long the maintenance is announced for; liftoff completes it when the launch
    /// ends, whenever that is.
    pub expected_duration: Duration,
}

/// How deliveries are retried. `attempts` counts the first one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetrySpec {
    pub attempts: u32,
    /// Before the second attempt; doubles after each failure (at most [`MAX_BACKOFF`]).
    pub backoff: Duration,
    /// Each attempt's time limit.
    pub timeout: Duration,
}

/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

impl Default for RetrySpec {
    fn default() -> Self {
        Self {
            attempts: defaults::RETRY_ATTEMPTS,
            backoff: defaults::RETRY_BACKOFF,
            timeout: defaults::RETRY_TIMEOUT,
        }
    }
}

pub mod defaults {
    use std::time::Duration;

    pub const RETRY_ATTEMPTS: u32 = 5;
    pub const RETRY_BACKOFF: Duration = Duration::from_secs(1);
    pub const RETRY_TIMEOUT: Duration = Duration::from_secs(10);
    pub const STATUSPAGE_API_URL: &str = "https://api.statuspage.io";
    pub const STATUSPAGE_EXPECTED_DURATION: Duration = Duration::from_secs(3600);
    pub const SMTP_STARTTLS_PORT: u16 = 587;
    pub const SMTP_TLS_PORT: u16 = 465;
    pub const SMTP_PLAIN_PORT: u16 = 25;
}

/// The kinds of channel, in documentation order.
pub const CHANNEL_KINDS: &[&str] = &["slack", "webhook", "email", "statuspage"];

pub(crate) fn decode_notify(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<NotifySpec> {
    let mut f = dec.fields(node, &schema::NOTIFY)?;
    let channels_node = f.require(dec, "channels");
    let channels = channels_node.and_then(|n| decode_channels(dec, n));
    let templates = match f.take("templates") {
        Some(n) => decode_templates(dec, n, "notify.templates"),
        None => Some(BTreeMap::new()),
    };
    let retry = match f.take("retry") {
        Some(n) => decode_retry(dec, n),
        None => Some(RetrySpec::default()),
    };
    f.finish(dec);
    Some(NotifySpec {
        channels: channels?,
        templates: templates?,
        retry: retry?,
    })
}

fn decode_channels(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<Vec<Channel>> {
    let items = dec.sequence(node, "notify.channels")?;
    if items.is_empty() {
        dec.error_hint(
            location(node),
            "notify.channels: no channels",
            "add a channel, e.g. `- slack: ${SLACK_WEBHOOK_URL}`, or remove `notify`",
        );
        return None;
    }
    let mut ok = true;
    let mut channels = Vec::new();
    for item in items {
        match decode_channel(dec, item) {
            Some(c) => channels.push(c),
            None => ok = false,
        }
    }
    let mut seen = HashSet::new();
    for c in &channels {
        if !seen.insert(c.name.as_str()) {
            dec.error_hint(
                c.location,
                format!("notify.channels: two channels are named `{}`", c.name),
                "names tell channels apart in status and the journal; give each a distinct `name`",
            );
            ok = false;
        }
    }
    ok.then_some(channels)
}

fn decode_channel(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<Channel> {
    let mut f = dec.fields(node, &schema::NOTIFY_CHANNEL)?;
    let at = f.at;
    let name = f.take("name").and_then(|n| dec.string(n, "channel name"));
    let kind_key = f.one_kind(dec, CHANNEL_KINDS, "notify channel", "channel")?;
    if kind_key != "webhook"
        && let Some(key_at) = f.key_location("secret")
    {
        f.take("secret");
        dec.error_hint(
            key_at,
            "notify channel: `secret` applies to `webhook` channels only",
            "it is the key of the webhook's HMAC-SHA256 signature",
        );
    }
    let value = f.take(kind_key)?;
    let kind = match kind_key {
        "slack" => decode_slack(dec, value),
        "webhook" => decode_webhook(dec, &mut f, value),
        "email" => decode_email(dec, value).map(|e| ChannelKind::Email(Box::new(e))),
        "statuspage" => decode_statuspage(dec, value).map(|s| ChannelKind::Statuspage(Box::new(s))),
        _ => unreachable!("CHANNEL_KINDS and this match agree"),
    };
    let events = f.take("events").map(|n| decode_events(dec, n));
    let required = f
        .take("required")
        .map_or(Some(false), |n| dec.boolean(n, "required"));
    let templates = match f.take("templates") {
        Some(n) => decode_templates(dec, n, "notify.channels[].templates"),
        None => Some(BTreeMap::new()),
    };
    f.finish(dec);
    let kind = kind?;
    let events = match events {
        Some(e) => e?,
        None => kind.default_events(),
    };
    Some(Channel {
        name: name.unwrap_or_else(|| kind.keyword().to_string()),
        kind,
        events,
        required: required?,
        templates: templates?,
        location: at,
    })
}

fn decode_events(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<Vec<Event>> {
    let items = dec.sequence(node, "notify.channels[].events")?;
    if items.is_empty() {
        dec.error_hint(
            location(node),
            "events: an empty list sends nothing",
            "list the events to send, or leave `events` out for all of them",
        );
        return None;
    }
    let mut ok = true;
    let mut events = Vec::new();
    for item in items {
        let Some(name) = dec.string(item, "events") else {
            ok = false;
            continue;
        };
        match Event::from_name(&name) {
            Some(e) if events.contains(&e) => {
                dec.error(location(item), format!("events: `{name}` is listed twice"));
                ok = false;
            }
            Some(e) => events.push(e),
            None => {
                unknown_event(dec, location(item), "events", &name);
                ok = false;
            }
        }
    }
    events.sort();
    ok.then_some(events)
}

fn unknown_event(dec: &mut Decoder<'_>, at: Location, what: &str, name: &str) {
    let names = Event::names();
    let hint = match did_you_mean(name, &names) {
        Some(guess) => format!("did you mean `{guess}`?"),
        None => format!("events: {}", names.join(", ")),
    };
    dec.error_hint(at, format!("{what}: unknown event `{name}`"), hint);
}

/// A secret must come from the environment: a plan file is shared and committed.
fn require_reference(dec: &mut Decoder<'_>, node: &Node<'_>, text: &Text, what: &str, var: &str) {
    if !has_reference(text.template()) {
        dec.error_hint(
            location(node),
            format!("{what}: a secret written into the plan"),
            format!("write `${{{var}}}` and export {var}: a plan file is shared and committed"),
        );
    }
}

/// Whether a template holds a `${NAME}` reference (not the `$${NAME}` escape).
fn has_reference(template: &str) -> bool {
    let bytes = template.as_bytes();
    let mut i = 0;
    while let Some(pos) = template[i..].find("${") {
        let start = i + pos;
        let escaped = start > 0 && bytes[start - 1] == b'$';
        if !escaped && parse_reference(&template[start..]).is_some() {
            return true;
        }
        i = start + 2;
    }
    false
}

fn http_url(dec: &mut Decoder<'_>, node: &Node<'_>, text: &Text, what: &str) -> bool {
    let valid = match text.known() {
        Known::All(s) => {
            let rest = s
                .strip_prefix("https://")
                .or_else(|| s.strip_prefix("http://"));
            rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
                && !s.contains(char::is_whitespace)
        }
        known @ Known::Prefix(s) => {
            let rest = s
                .strip_prefix("https://")
                .or_else(|| s.strip_prefix("http://"));
            known.may_start_with(&["http://", "https://"])
                && !rest.is_some_and(|r| r.starts_with('/'))
                && !s.contains(char::is_whitespace)
        }
    };
    if valid {
        return true;
    }
    dec.error_hint(
        location(node),
        format!("{what}: `{text}` is not an http or https URL"),
        "e.g. `https://hooks.example.com/liftoff`",
    );
    false
}

fn decode_slack(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<ChannelKind> {
    let webhook = dec.text(node, "slack")?;
    require_reference(dec, node, &webhook, "slack", "SLACK_WEBHOOK_URL");
    http_url(dec, node, &webhook, "slack").then_some(ChannelKind::Slack { webhook })
}

fn decode_webhook(
    dec: &mut Decoder<'_>,
    f: &mut Fields<'_, '_>,
    node: &Node<'_>,
) -> Option<ChannelKind> {
    let url = dec
        .text(node, "webhook")
        .filter(|u| http_url(dec, node, u, "webhook"));
    let secret = match f.take("secret") {
        Some(n) => dec.text(n, "secret").map(|s| {
            require_reference(dec, n, &s, "secret", "WEBHOOK_SECRET");
            Some(s)
        }),
        None => Some(None),
    };
    Some(ChannelKind::Webhook {
        url: url?,
        secret: secret?,
    })
}

struct SmtpUrl<'a> {
    implicit_tls: bool,
    host: &'a str,
    port: Option<u16>,
}

fn split_smtp_url(url: &str) -> Result<SmtpUrl<'_>, &'static str> {
    let (implicit_tls, rest) = if let Some(r) = url.strip_prefix("smtps://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("smtp://") {
        (false, r)
    } else {
        return Err("is not an smtp:// or smtps:// URL");
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('@') {
        return Err("has credentials in it; use `username` and `password`");
    }
    if rest.contains(['/', '?', '#']) || rest.contains(char::is_whitespace) {
        return Err("must be only a host and a port");
    }
    let (host, port) = match rest.rsplit_once(':') {
        // `[::1]:25`, `mail:587`; a bare IPv6 address needs brackets.
        Some((host, port)) if !port.contains(']') => {
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or("has no valid port")?;
            (host, Some(port))
        }
        _ => (rest, None),
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err("has no host");
    }
    Ok(SmtpUrl {
        implicit_tls,
        host,
        port,
    })
}

/// `email.smtp` as TLS from the start, its port, and whether the host is this one.
/// Under `lint` a server in a variable counts as TLS only after a literal `smtps://`,
/// and as on this host, so nothing that depends on its value is refused.
fn smtp_server(server: &Text) -> Result<(bool, Option<u16>, bool), &'static str> {
    match server.known() {
        Known::All(url) => {
            split_smtp_url(url).map(|u| (u.implicit_tls, u.port, is_loopback(u.host)))
        }
        Known::Prefix(k) if k.starts_with("smtps://") => Ok((true, None, true)),
        known if known.may_start_with(&["smtp://", "smtps://"]) => Ok((false, None, true)),
        Known::Prefix(_) => Err("is not an smtp:// or smtps:// URL"),
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `user@domain`, or `Name <user@domain>`.
fn valid_mailbox(s: &str) -> bool {
    let addr = match (s.rfind('<'), s.strip_suffix('>')) {
        (Some(open), Some(_)) => &s[open + 1..s.len() - 1],
        (None, None) => s,
        _ => return false,
    };
    let Some((local, domain)) = addr.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !addr.contains(|c: char| c.is_whitespace() || c == '<' || c == '>')
}

fn mailbox(dec: &mut Decoder<'_>, node: &Node<'_>, what: &str) -> Option<String> {
    let s = dec.string(node, what)?;
    let s = s.trim().to_string();
    if valid_mailbox(&s) {
        Some(s)
    } else {
        dec.error_hint(
            location(node),
            format!("{what}: `{s}` is not an email address"),
            "e.g. `releases@example.com` or `Release bot <releases@example.com>`",
        );
        None
    }
}

fn decode_email(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<EmailSpec> {
    let mut f = dec.fields(node, &schema::NOTIFY_EMAIL)?;
    let at = f.at;
    let server_node = f.require(dec, "smtp");
    let server = server_node.and_then(|n| dec.text(n, "email.smtp"));
    let parsed = match (server_node, &server) {
        (Some(n), Some(s)) => match smtp_server(s) {
            Ok(parsed) => Some(parsed),
            Err(why) => {
                dec.error_hint(
                    location(n),
                    format!("email.smtp: `{s}` {why}"),
                    "e.g. `smtp://mail.example.com:587` (STARTTLS) or `smtps://mail.example.com:465`",
                );
                None
            }
        },
        _ => None,
    };
    let starttls_node = f.take("starttls");
    let starttls = starttls_node.map(|n| dec.boolean(n, "email.starttls"));
    let username = f.take("username").map(|n| dec.text(n, "email.username"));
    let password_node = f.take("password");
    let password = password_node.map(|n| {
        let p = dec.text(n, "email.password");
        if let Some(p) = &p {
            require_reference(dec, n, p, "email.password", "SMTP_PASSWORD");
        }
        p
    });
    let from = f
        .require(dec, "from")
        .and_then(|n| mailbox(dec, n, "email.from"));
    let to = f.require(dec, "to").and_then(|n| {
        let items = match &n.data {
            saphyr::YamlData::Sequence(items) => items.iter().collect::<Vec<_>>(),
            _ => vec![n],
        };
        if items.is_empty() {
            dec.error(location(n), "email.to: no recipients");
            return None;
        }
        let mut ok = true;
        let mut to = Vec::new();
        for item in items {
            match mailbox(dec, item, "email.to") {
                Some(m) => to.push(m),
                None => ok = false,
            }
        }
        ok.then_some(to)
    });
    f.finish(dec);

    let (implicit_tls, port, loopback) = parsed?;
    let security = match (implicit_tls, starttls) {
        (true, Some(Some(_))) => {
            dec.error_hint(
                starttls_node.map_or(at, location),
                "email.starttls: `smtps://` is TLS from the start",
                "remove `starttls`, or use `smtp://` with `starttls`",
            );
            return None;
        }
        (true, None) => SmtpSecurity::Tls,
        (false, None | Some(Some(true))) => SmtpSecurity::StartTls,
        (false, Some(Some(false))) => SmtpSecurity::None,
        (_, Some(None)) => return None,
    };
    let credentials = username.is_some() || password.is_some();
    if security == SmtpSecurity::None && credentials && !loopback {
        dec.error_hint(
            starttls_node.map_or(at, location),
            "email: a password would cross the network unencrypted (`starttls: false`)",
            "keep `starttls: true` (the default), or use `smtps://`; `starttls: false` with credentials is only for a server on this host",
        );
        return None;
    }
    if username.is_some() != password.is_some() {
        dec.error(at, "email: `username` and `password` go together");
        return None;
    }
    let port = port.unwrap_or(match security {
        SmtpSecurity::StartTls => defaults::SMTP_STARTTLS_PORT,
        SmtpSecurity::Tls => defaults::SMTP_TLS_PORT,
        SmtpSecurity::None => defaults::SMTP_PLAIN_PORT,
    });
    Some(EmailSpec {
        server: server?,
        security,
        port,
        username: username.flatten(),
        password: password.flatten(),
        from: from?,
        to: to?,
    })
}

fn decode_statuspage(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<StatuspageSpec> {
    let mut f = dec.fields(node, &schema::NOTIFY_STATUSPAGE)?;
    let page_id = f.require(dec, "page_id").and_then(|n| {
        let id = dec.text(n, "statuspage.page_id")?;
        statuspage_id(dec, n, &id, "statuspage.page_id").then_some(id)
    });
    let api_key = f.require(dec, "api_key").and_then(|n| {
        let key = dec.text(n, "statuspage.api_key")?;
        require_reference(dec, n, &key, "statuspage.api_key", "STATUSPAGE_API_KEY");
        Some(key)
    });
    let component_id = match f.take("component_id") {
        Some(n) => dec.text(n, "statuspage.component_id").and_then(|id| {
            statuspage_id(dec, n, &id, "statuspage.component_id").then_some(Some(id))
        }),
        None => Some(None),
    };
    let api_url = match f.take("api_url") {
        Some(n) => dec
            .text(n, "statuspage.api_url")
            .filter(|u| http_url(dec, n, u, "statuspage.api_url")),
        None => Some(Text::literal(defaults::STATUSPAGE_API_URL)),
    };
    let expected_duration = match f.take("expected_duration") {
        Some(n) => dec.duration(n, "statuspage.expected_duration"),
        None => Some(defaults::STATUSPAGE_EXPECTED_DURATION),
    };
    f.finish(dec);
    Some(StatuspageSpec {
        page_id: page_id?,
        api_key: api_key?,
        component_id: component_id?,
        api_url: api_url?,
        expected_duration: expected_duration?,
    })
}

/// Statuspage ids are short alphanumeric strings; anything that is not safe in a URL
/// path (`/`, `?`, `..`) is refused.
fn statuspage_id(dec: &mut Decoder<'_>, node: &Node<'_>, id: &Text, what: &str) -> bool {
    let (s, whole) = match id.known() {
        Known::All(s) => (s, true),
        Known::Prefix(s) => (s, false),
    };
    let ok = (!s.is_empty() || !whole)
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        dec.error_hint(
            location(node),
            format!("{what}: `{id}` is not a Statuspage id"),
            "ids are letters and digits, e.g. `kctbh9vrtdwd` (the page's API info lists them)",
        );
    }
    ok
}

fn decode_templates(
    dec: &mut Decoder<'_>,
    node: &Node<'_>,
    what: &str,
) -> Option<BTreeMap<Event, Template>> {
    let mut f = dec.fields(node, &schema::NOTIFY_TEMPLATES)?;
    let mut ok = true;
    let mut templates = BTreeMap::new();
    // The keys are event names: data checked here, not schema.
    for (name, key_at, value) in f.take_all() {
        let Some(event) = Event::from_name(&name) else {
            unknown_event(dec, key_at, what, &name);
            ok = false;
            continue;
        };
        let what = format!("{what}.{name}");
        let Some(text) = dec.string(value, &what) else {
            ok = false;
            continue;
        };
        match Template::parse(&text) {
            Ok(t) => {
                templates.insert(event, t);
            }
            Err(e) => {
                let at = dec.locate_offset(value, &text, e.offset);
                let message = format!("{what}: {}", e.message);
                match e.hint {
                    Some(hint) => dec.error_hint(at, message, hint),
                    None => dec.error(at, message),
                }
                ok = false;
            }
        }
    }
    f.finish(dec);
    ok.then_some(templates)
}

fn decode_retry(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<RetrySpec> {
    let mut f = dec.fields(node, &schema::NOTIFY_RETRY)?;
    let d = RetrySpec::default();
    let attempts = match f.take("attempts") {
        Some(n) => dec.integer(n, "retry.attempts", 1, 100).map(|a| a as u32),
        None => Some(d.attempts),
    };
    let backoff = match f.take("backoff") {
        Some(n) => dec.duration(n, "retry.backoff"),
        None => Some(d.backoff),
    };
    let timeout = match f.take("timeout") {
        Some(n) => dec.duration(n, "retry.timeout"),
        None => Some(d.timeout),
    };
    f.finish(dec);
    Some(RetrySpec {
        attempts: attempts?,
        backoff: backoff?,
        timeout: timeout?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_placeholders_and_escapes() {
        let t = Template::parse("Rolling back {service}: {reason}\n{{literal}} }").unwrap();
        assert_eq!(
            t.lines(),
            [
                vec![
                    Piece::Text("Rolling back ".into()),
                    Piece::Value(Placeholder::Service),
                    Piece::Text(": ".into()),
                    Piece::Value(Placeholder::Reason),
                ],
                vec![Piece::Text("{literal} }".into())],
            ]
        );
    }

    #[test]
    fn template_errors_point_at_the_brace() {
        let e = Template::parse("ok {service}\nbad {servce} here").unwrap_err();
        assert_eq!(e.offset, "ok {service}\nbad ".len());
        assert_eq!(e.message, "unknown placeholder `{servce}`");
        assert_eq!(e.hint.as_deref(), Some("did you mean `{service}`?"));
        let e = Template::parse("{weight").unwrap_err();
        assert_eq!(e.offset, 0);
        let e = Template::parse("{{ {x}").unwrap_err();
        assert_eq!(e.offset, 3);
    }

    #[test]
    fn smtp_urls() {
        let u = split_smtp_url("smtp://mail.example:587").unwrap();
        assert_eq!(
            (u.implicit_tls, u.host, u.port),
            (false, "mail.example", Some(587))
        );
        let u = split_smtp_url("smtps://[::1]").unwrap();
        assert_eq!((u.implicit_tls, u.host, u.port), (true, "::1", None));
        assert!(split_smtp_url("smtp://u:p@mail").is_err());
        assert!(split_smtp_url("http://mail").is_err());
        assert!(split_smtp_url("smtp://mail:0").is_err());
        assert!(split_smtp_url("smtp://mail/x").is_err());
    }

    #[test]
    fn references_and_mailboxes() {
        assert!(has_reference("${A}"));
        assert!(has_reference("https://h/${TOKEN}"));
        assert!(!has_reference("$${A}"));
        assert!(!has_reference("${1}"));
        assert!(!has_reference("plain"));
        assert!(valid_mailbox("a@b.example"));
        assert!(valid_mailbox("Release bot <a@b.example>"));
        assert!(!valid_mailbox("a.example"));
        assert!(!valid_mailbox("a@b@c"));
        assert!(!valid_mailbox("Bot <a@b"));
    }
}
