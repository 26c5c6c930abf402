//! The go/no-go checklist, smoke tests and migrations: the parts of a runbook that judge
//! or change the world around the traffic. Model and decoding; running them is
//! `liftoff-checks`'s job.

use std::fmt;
use std::time::Duration;

use saphyr::{Scalar, YamlData};

use crate::condition::Op;
use crate::decode::{Decoder, Fields, Node, UniqueNames, location};
use crate::model::{Known, Location, Text, Weight};
use crate::schema;

/// A list of checks and the rule that turns their results into GO or NO-GO.
#[derive(Clone, Debug)]
pub struct Checklist {
    pub items: Vec<CheckItem>,
    pub pass: PassRule,
}

/// GO when at least `critical` of the critical items and `overall` of all items pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PassRule {
    pub critical: Weight,
    pub overall: Weight,
}

impl Default for PassRule {
    fn default() -> Self {
        Self {
            critical: Weight::FULL,
            overall: Weight::STABLE,
        }
    }
}

/// Counts behind a verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub critical_passed: usize,
    pub critical_total: usize,
    pub passed: usize,
    pub total: usize,
}

impl Tally {
    /// `passed` is each item's result: `Some(true)` passed, `Some(false)` failed, `None`
    /// not known yet (counts as not passed).
    pub fn of<'a>(items: impl IntoIterator<Item = (&'a CheckItem, Option<bool>)>) -> Self {
        let mut t = Tally::default();
        for (item, passed) in items {
            let passed = passed == Some(true);
            t.total += 1;
            t.passed += usize::from(passed);
            if item.critical {
                t.critical_total += 1;
                t.critical_passed += usize::from(passed);
            }
        }
        t
    }

    /// Whether the counts meet the rule. No items of a kind meets any share of them.
    pub fn go(&self, rule: PassRule) -> bool {
        let meets = |passed: usize, total: usize, share: Weight| {
            // passed / total >= bp / 10000, in integers.
            total == 0 || passed * 10_000 >= total * usize::from(share.basis_points())
        };
        meets(self.critical_passed, self.critical_total, rule.critical)
            && meets(self.passed, self.total, rule.overall)
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} critical, {}/{} overall",
            self.critical_passed, self.critical_total, self.passed, self.total
        )
    }
}

#[derive(Clone, Debug)]
pub struct CheckItem {
    /// Unique within its checklist; given, or derived from the check.
    pub name: String,
    pub critical: bool,
    /// For the whole check (an approval: how long to wait for it).
    pub timeout: Duration,
    pub kind: CheckKind,
    pub location: Location,
}

#[derive(Clone, Debug)]
pub enum CheckKind {
    Http(HttpCheck),
    /// `host:port` accepts a TCP connection.
    Tcp {
        address: Text,
    },
    Tls(TlsCheck),
    Disk(DiskCheck),
    Command(CommandCheck),
    Postgres(DbCheck),
    Redis(RedisCheck),
    Prometheus(PromCheck),
    File(FileCheck),
    /// A named role signs off with `liftoff approve`.
    Approval {
        role: String,
    },
}

impl CheckKind {
    pub fn keyword(&self) -> &'static str {
        match self {
            CheckKind::Http(_) => "http",
            CheckKind::Tcp { .. } => "tcp",
            CheckKind::Tls(_) => "tls",
            CheckKind::Disk(_) => "disk",
            CheckKind::Command(_) => "command",
            CheckKind::Postgres(_) => "postgres",
            CheckKind::Redis(_) => "redis",
            CheckKind::Prometheus(_) => "prometheus",
            CheckKind::File(_) => "file",
            CheckKind::Approval { .. } => "approval",
        }
    }
}

/// One HTTP request and what its answer must look like (checklist items, smoke tests).
#[derive(Clone, Debug)]
pub struct HttpCheck {
    pub method: String,
    pub url: Text,
    pub headers: Vec<(String, Text)>,
    pub body: Option<Text>,
    pub expect: HttpExpect,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HttpExpect {
    pub status: u16,
    pub body_contains: Option<String>,
    /// JSON pointer (RFC 6901) → expected value.
    pub json: Vec<(String, Expected)>,
    pub max_latency: Option<Duration>,
}

#[derive(Clone, Debug)]
pub struct TlsCheck {
    /// `host:port`.
    pub address: Text,
    /// The name the certificate must be valid for; the address's host by default.
    pub server_name: String,
    pub min_days: u32,
    /// PEM file of extra trusted roots (a private CA); the system's roots always count.
    pub ca_file: Option<Text>,
}

#[derive(Clone, Debug)]
pub struct DiskCheck {
    pub path: Text,
    pub min_free: DiskFree,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DiskFree {
    /// Percent of the filesystem, 0–100.
    Percent(f64),
    Bytes(u64),
}

#[derive(Clone, Debug)]
pub struct CommandCheck {
    pub command: Text,
    pub exit_code: i32,
    pub output_contains: Option<String>,
    pub dir: Option<Text>,
}

/// A query against a database, and the value its first column of its first row must have.
#[derive(Clone, Debug)]
pub struct DbCheck {
    /// A connection string: a secret.
    pub url: Text,
    pub query: String,
    pub expect: Option<Expected>,
}

#[derive(Clone, Debug)]
pub struct RedisCheck {
    pub url: Text,
    /// An `INFO` field (`role`, `connected_slaves`); without it, `PING` must answer `PONG`.
    pub info: Option<String>,
    pub expect: Option<Expected>,
}

#[derive(Clone, Debug)]
pub struct PromCheck {
    pub query: Text,
    pub op: Op,
    pub threshold: f64,
}

#[derive(Clone, Debug)]
pub struct FileCheck {
    pub path: Text,
    /// The file must have been modified at most this long ago.
    pub max_age: Option<Duration>,
}

/// What a value must be: equal to a scalar, or compare with a number.
#[derive(Clone, Debug, PartialEq)]
pub enum Expected {
    Equals(Value),
    Compare(Op, f64),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Number(n) => write!(f, "{n}"),
            Value::String(s) => write!(f, "{s:?}"),
        }
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Equals(v) => write!(f, "= {v}"),
            Expected::Compare(op, n) => write!(f, "{} {n}", op.symbol()),
        }
    }
}

impl Expected {
    /// Whether a value read as text (a database cell, an INFO field) meets this.
    /// Booleans accept PostgreSQL's `t`/`f`; numbers compare numerically.
    pub fn matches_text(&self, actual: Option<&str>) -> bool {
        match (self, actual) {
            (Expected::Equals(Value::Null), None) => true,
            (_, None) => false,
            (Expected::Equals(v), Some(a)) => match v {
                Value::Null => false,
                Value::Bool(b) => parse_bool(a) == Some(*b),
                Value::Number(n) => a.trim().parse::<f64>().is_ok_and(|x| x == *n),
                Value::String(s) => a == s,
            },
            (Expected::Compare(op, n), Some(a)) => {
                a.trim().parse::<f64>().is_ok_and(|x| op.holds(x, *n))
            }
        }
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "on" | "yes" | "1" => Some(true),
        "f" | "false" | "off" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// `smoke`: requests sent in order; every one must meet its expectations.
#[derive(Clone, Debug)]
pub struct SmokeStep {
    /// Each an `http` check (critical).
    pub requests: Vec<CheckItem>,
}

/// `migrate`: back up, migrate, verify; restore on rollback if asked.
#[derive(Clone, Debug)]
pub struct MigrateStep {
    /// `postgres://...` or `sqlite:PATH`: a secret.
    pub database: Text,
    pub engine: DbEngine,
    /// Run by `sh -c` with the plan's variables (and `LIFTOFF_DATABASE`) in its environment.
    pub command: Text,
    pub timeout: Duration,
    pub dir: Option<Text>,
    pub verify: Vec<VerifyQuery>,
    pub restore_on_rollback: bool,
    /// Checked after a restore, against the old schema.
    pub restore_verify: Vec<VerifyQuery>,
    /// A restore may end other sessions on the database (PostgreSQL).
    pub terminate_sessions: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbEngine {
    Postgres,
    Sqlite,
}

#[derive(Clone, Debug)]
pub struct VerifyQuery {
    pub query: String,
    pub expect: Expected,
}

pub mod defaults {
    use std::time::Duration;

    pub const ITEM_TIMEOUT: Duration = Duration::from_secs(10);
    pub const APPROVAL_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
    pub const TLS_MIN_DAYS: u32 = 14;
    pub const MIGRATE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
    pub const SMOKE_TIMEOUT: Duration = Duration::from_secs(10);
}

/// The kinds of checklist item, in documentation order.
pub const ITEM_KINDS: &[&str] = &[
    "http",
    "tcp",
    "tls",
    "disk",
    "command",
    "postgres",
    "redis",
    "prometheus",
    "file",
    "approval",
];

/// Keys only one kind of item takes.
const KIND_KEYS: &[(&str, &[&str])] = &[
    (
        "http",
        &[
            "method",
            "headers",
            "body",
            "status",
            "body_contains",
            "json",
            "max_latency",
        ],
    ),
    ("tls", &["server_name", "min_days", "ca_file"]),
    ("disk", &["min_free"]),
    ("command", &["exit_code", "output_contains", "dir"]),
    ("postgres", &["query", "expect"]),
    ("redis", &["info", "expect"]),
    ("prometheus", &["condition"]),
    ("file", &["max_age"]),
];

/// `checklist:` / `check:`: a list of items, or `{ pass, timeout, items }`.
pub(crate) fn decode_checklist(
    dec: &mut Decoder<'_>,
    node: &Node<'_>,
    what: &str,
) -> Option<Checklist> {
    let (items_node, pass, timeout) = match &node.data {
        YamlData::Sequence(_) => (
            Some(node),
            Some(PassRule::default()),
            defaults::ITEM_TIMEOUT,
        ),
        _ => {
            let mut f = dec.fields(node, &schema::CHECKLIST)?;
            let items = f.require(dec, "items");
            let pass = match f.take("pass") {
                Some(p) => decode_pass(dec, p),
                None => Some(PassRule::default()),
            };
            let timeout = match f.take("timeout") {
                Some(t) => dec.duration(t, "checklist.timeout"),
                None => Some(defaults::ITEM_TIMEOUT),
            };
            f.finish(dec);
            (items, pass, timeout.unwrap_or(defaults::ITEM_TIMEOUT))
        }
    };
    let items_node = items_node?;
    let list = dec.sequence(items_node, what)?;
    if list.is_empty() {
        dec.error(location(items_node), format!("{what}: no items"));
    }
    let items: Vec<(CheckItem, bool)> = list
        .iter()
        .filter_map(|n| decode_item(dec, n, timeout))
        .collect();
    let items = unique_names(dec, items, what);
    Some(Checklist { items, pass: pass? })
}

fn decode_pass(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<PassRule> {
    let mut f = dec.fields(node, &schema::PASS)?;
    let d = PassRule::default();
    let critical = match f.take("critical") {
        Some(n) => dec.percent(n, "pass.critical"),
        None => Some(d.critical),
    };
    let overall = match f.take("overall") {
        Some(n) => dec.percent(n, "pass.overall"),
        None => Some(d.overall),
    };
    f.finish(dec);
    Some(PassRule {
        critical: critical?,
        overall: overall?,
    })
}

/// Names identify items in results and the journal: given names must be unique;
/// derived ones are numbered when they repeat.
fn unique_names(
    dec: &mut Decoder<'_>,
    items: Vec<(CheckItem, bool)>,
    what: &str,
) -> Vec<CheckItem> {
    let mut names = UniqueNames::default();
    for (item, explicit) in &items {
        if *explicit && !names.claim(&item.name) {
            dec.error_hint(
                item.location,
                format!("{what}: two items are named `{}`", item.name),
                "give each item a distinct `name`",
            );
        }
    }
    items
        .into_iter()
        .map(|(mut item, explicit)| {
            if !explicit {
                item.name = names.derive(item.name);
            }
            item
        })
        .collect()
}

fn decode_item(
    dec: &mut Decoder<'_>,
    node: &Node<'_>,
    default_timeout: Duration,
) -> Option<(CheckItem, bool)> {
    let mut f = dec.fields(node, &schema::CHECK_ITEM)?;
    let at = f.at;
    let name = f.take("name").and_then(|n| dec.string(n, "item name"));
    let kind_key = f.one_kind(dec, ITEM_KINDS, "checklist item", "item")?;
    for (kind, keys) in KIND_KEYS {
        if *kind == kind_key {
            continue;
        }
        for key in *keys {
            let shared = KIND_KEYS
                .iter()
                .any(|(k, ks)| *k == kind_key && ks.contains(key));
            if !shared && f.take(key).is_some() {
                dec.error(
                    f.key_location(key).unwrap_or(at),
                    format!("checklist item: `{key}` does not apply to `{kind_key}` items"),
                );
            }
        }
    }
    let critical = f
        .take("critical")
        .map_or(Some(true), |n| dec.boolean(n, "critical"));
    let timeout = match f.take("timeout") {
        Some(t) => dec.duration(t, "timeout"),
        None if kind_key == "approval" => Some(defaults::APPROVAL_TIMEOUT),
        None => Some(default_timeout),
    };
    let value = f.take(kind_key)?;
    let kind = match kind_key {
        "http" => decode_http(dec, &mut f, value, "http").map(CheckKind::Http),
        "tcp" => dec.text(value, "tcp").and_then(|address| {
            host_port(dec, value, &address, "tcp").then_some(CheckKind::Tcp { address })
        }),
        "tls" => decode_tls(dec, &mut f, value).map(CheckKind::Tls),
        "disk" => decode_disk(dec, &mut f, value, at).map(CheckKind::Disk),
        "command" => decode_command(dec, &mut f, value).map(CheckKind::Command),
        "postgres" => decode_db(dec, &mut f, value).map(CheckKind::Postgres),
        "redis" => decode_redis(dec, &mut f, value).map(CheckKind::Redis),
        "prometheus" => decode_prom(dec, &mut f, value, at).map(CheckKind::Prometheus),
        "file" => {
            let path = dec.text(value, "file");
            let max_age = match f.take("max_age") {
                Some(n) => dec.duration(n, "max_age").map(Some),
                None => Some(None),
            };
            Some(CheckKind::File(FileCheck {
                path: path?,
                max_age: max_age?,
            }))
        }
        "approval" => dec
            .string(value, "approval")
            .map(|role| CheckKind::Approval { role }),
        _ => unreachable!("ITEM_KINDS and this match agree"),
    };
    f.finish(dec);
    let kind = kind?;
    let explicit = name.is_some();
    let name = name.unwrap_or_else(|| default_item_name(&kind));
    let item = CheckItem {
        name,
        critical: critical?,
        timeout: timeout?,
        kind,
        location: at,
    };
    Some((item, explicit))
}

fn default_item_name(kind: &CheckKind) -> String {
    let short = |s: &str| {
        let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
        let cut: String = s.chars().take(60).collect();
        if cut.len() < s.len() {
            format!("{cut}…")
        } else {
            cut
        }
    };
    match kind {
        CheckKind::Http(h) => format!("{} {}", h.method, h.url),
        CheckKind::Tcp { address } => format!("tcp {address}"),
        CheckKind::Tls(t) => format!("tls {}", t.address),
        CheckKind::Disk(d) => format!("disk {}", d.path),
        CheckKind::Command(c) => format!("command {}", short(c.command.template())),
        CheckKind::Postgres(d) => format!("postgres {}", short(&d.query)),
        CheckKind::Redis(r) => match &r.info {
            Some(field) => format!("redis {field}"),
            None => "redis ping".to_string(),
        },
        CheckKind::Prometheus(p) => format!("prometheus {}", short(p.query.template())),
        CheckKind::File(f) => format!("file {}", f.path),
        CheckKind::Approval { role } => format!("approval by {role}"),
    }
}

/// `host:port` (checked on the template when it holds no variable).
fn host_port(dec: &mut Decoder<'_>, node: &Node<'_>, text: &Text, what: &str) -> bool {
    if text.template().contains("${") {
        return true;
    }
    let ok = text
        .template()
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !ok {
        dec.error_hint(
            location(node),
            format!("{what}: `{text}` is not `host:port`"),
            "e.g. `127.0.0.1:5432` or `api.example.com:443`",
        );
    }
    ok
}

/// The request part of an `http` item or a smoke request; `url_node` holds the URL.
pub(crate) fn decode_http(
    dec: &mut Decoder<'_>,
    f: &mut Fields<'_, '_>,
    url_node: &Node<'_>,
    what: &str,
) -> Option<HttpCheck> {
    let url = dec.text(url_node, what);
    if let Some(u) = &url
        && !u.known().may_start_with(HTTP_SCHEMES)
    {
        dec.error_hint(
            location(url_node),
            format!("{what}: `{u}` is not an http or https URL"),
            "e.g. `http://127.0.0.1:8080/health`",
        );
    }
    decode_request(dec, f, url)
}

/// What URLs requested by checks and smoke steps start with.
pub(crate) const HTTP_SCHEMES: &[&str] = &["http://", "https://"];

fn decode_request(
    dec: &mut Decoder<'_>,
    f: &mut Fields<'_, '_>,
    url: Option<Text>,
) -> Option<HttpCheck> {
    let method = match f.take("method") {
        Some(n) => dec.string(n, "method").and_then(|m| {
            let m = m.to_ascii_uppercase();
            let ok = !m.is_empty() && m.bytes().all(|b| b.is_ascii_alphabetic());
            if !ok {
                dec.error(location(n), format!("method: `{m}` is not an HTTP method"));
            }
            ok.then_some(m)
        }),
        None => Some("GET".to_string()),
    };
    let mut headers = Vec::new();
    if let Some(n) = f.take("headers")
        && let Some(mut h) = dec.fields(n, &schema::HEADERS)
    {
        for (name, key_at, value) in h.take_all() {
            let valid = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !valid {
                dec.error(key_at, format!("headers: `{name}` is not a header name"));
            }
            if let Some(v) = dec.text(value, "header value") {
                headers.push((name, v));
            }
        }
    }
    let body = f.take("body").and_then(|n| dec.text(n, "body"));
    let status = match f.take("status") {
        Some(n) => dec.integer(n, "status", 100, 599).map(|s| s as u16),
        None => Some(200),
    };
    // Interpolated (`v${VERSION}`); what it is compared with is redacted like any value.
    let body_contains = f
        .take("body_contains")
        .and_then(|n| dec.text(n, "body_contains"))
        .map(|t| t.expose().to_string());
    let mut json = Vec::new();
    if let Some(n) = f.take("json")
        && let Some(mut j) = dec.fields(n, &schema::JSON)
    {
        for (pointer, key_at, value) in j.take_all() {
            if !(pointer.is_empty() || pointer.starts_with('/')) {
                dec.error_hint(
                    key_at,
                    format!("json: `{pointer}` is not a JSON pointer"),
                    format!("pointers start with `/`: `/{pointer}`"),
                );
            }
            if let Some(e) = decode_expected(dec, value, "json value") {
                json.push((pointer, e));
            }
        }
    }
    let max_latency = match f.take("max_latency") {
        Some(n) => dec.duration(n, "max_latency").map(Some),
        None => Some(None),
    };
    Some(HttpCheck {
        method: method?,
        url: url?,
        headers,
        body,
        expect: HttpExpect {
            status: status?,
            body_contains,
            json,
            max_latency: max_latency?,
        },
    })
}

fn decode_tls(dec: &mut Decoder<'_>, f: &mut Fields<'_, '_>, value: &Node<'_>) -> Option<TlsCheck> {
    let address = dec.text(value, "tls");
    let valid = address
        .as_ref()
        .is_some_and(|a| host_port(dec, value, a, "tls"));
    let server_name = match f.take("server_name") {
        Some(n) => dec.string(n, "server_name"),
        None => address.as_ref().and_then(|a| match a.known() {
            Known::All(s) => s
                .rsplit_once(':')
                .map(|(h, _)| h.trim_matches(['[', ']']).to_string()),
            // `lint`'s placeholder: the host is in a variable.
            Known::Prefix(_) => Some(String::new()),
        }),
    };
    let min_days = match f.take("min_days") {
        Some(n) => dec.integer(n, "min_days", 0, 3650).map(|d| d as u32),
        None => Some(defaults::TLS_MIN_DAYS),
    };
    let ca_file = f.take("ca_file").and_then(|n| dec.text(n, "ca_file"));
    if !valid {
        return None;
    }
    Some(TlsCheck {
        address: address?,
        server_name: server_name?,
        min_days: min_days?,
        ca_file,
    })
}

fn decode_disk(
    dec: &mut Decoder<'_>,
    f: &mut Fields<'_, '_>,
    value: &Node<'_>,
    at: Location,
) -> Option<DiskCheck> {
    let path = dec.text(value, "disk");
    let Some(n) = f.take("min_free") else {
        dec.error_hint(
            at,
            "checklist item: a `disk` item needs `min_free`",
            "e.g. `min_free: 20%` or `min_free: 10GiB`",
        );
        return None;
    };
    let min_free = match dec.string(n, "min_free") {
        Some(s) if s.trim().ends_with('%') => dec
            .percent(n, "min_free")
            .map(|w| DiskFree::Percent(w.percent())),
        Some(s) if s.trim().bytes().all(|b| b.is_ascii_digit() || b == b'.') => {
            dec.error_hint(
                location(n),
                format!("min_free: `{s}` has no unit"),
                "write `20%` for a share of the filesystem, or a size such as `500MB`, `10GiB`",
            );
            None
        }
        Some(s) => match parse_bytes(&s) {
            Some(b) => Some(DiskFree::Bytes(b)),
            None => {
                dec.error_hint(
                    location(n),
                    format!("min_free: `{s}` is neither a percentage nor a size"),
                    "e.g. `20%`, `500MB`, `10GiB`",
                );
                None
            }
        },
        None => None,
    };
    Some(DiskCheck {
        path: path?,
        min_free: min_free?,
    })
}

/// `500MB`, `10GiB`, `1024` (bytes). Decimal and binary units.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return None,
    };
    let bytes = number * factor as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

fn decode_command(
    dec: &mut Decoder<'_>,
    f: &mut Fields<'_, '_>,
    value: &Node<'_>,
) -> Option<CommandCheck> {
    let command = dec.text(value, "command");
    let exit_code = match f.take("exit_code") {
        Some(n) => dec.integer(n, "exit_code", 0, 255).map(|c| c as i32),
        None => Some(0),
    };
    let output_contains = f
        .take("output_contains")
        .and_then(|n| dec.string(n, "output_contains"));
    let dir = f.take("dir").and_then(|n| dec.text(n, "dir"));
    Some(CommandCheck {
        command: command?,
        exit_code: exit_code?,
        output_contains,
        dir,
    })
}

fn decode_db(dec: &mut Decoder<'_>, f: &mut Fields<'_, '_>, value: &Node<'_>) -> Option<DbCheck> {
    let url = dec.text(value, "postgres");
    if let Some(u) = &url
        && !u.template().contains("${")
        && !is_postgres_url(u.expose())
    {
        dec.error_hint(
            location(value),
            "postgres: not a `postgres://` connection URL",
            "e.g. `postgres://app@127.0.0.1:5432/shop`, or `${DATABASE_URL}`",
        );
    }
    let query = match f.take("query") {
        Some(n) => dec.string(n, "query"),
        None => Some("select 1".to_string()),
    };
    let expect = f
        .take("expect")
        .and_then(|n| decode_expected(dec, n, "expect"));
    Some(DbCheck {
        url: url?,
        query: query?,
        expect,
    })
}

fn is_postgres_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// The engine `migrate.database` names. Under `lint`, as far as its text before the
/// first variable tells.
fn db_engine(dec: &mut Decoder<'_>, node: &Node<'_>, database: &Text) -> Option<DbEngine> {
    let (s, whole) = match database.known() {
        Known::All(s) => (s, true),
        Known::Prefix(k) => (k, false),
    };
    if is_postgres_url(s) {
        return Some(DbEngine::Postgres);
    }
    if let Some(path) = s.strip_prefix("sqlite:") {
        if whole && path.trim_start_matches("//").is_empty() {
            dec.error(
                location(node),
                "migrate.database: `sqlite:` needs a file path",
            );
        }
        return Some(DbEngine::Sqlite);
    }
    let schemes = ["postgres://", "postgresql://", "sqlite:"];
    if !whole && database.known().may_start_with(&schemes) {
        // The engine is in a variable; `lint` drops the plan, so any will do.
        return Some(DbEngine::Postgres);
    }
    dec.error_hint(
        location(node),
        "migrate.database: neither a `postgres://` URL nor `sqlite:PATH`",
        "e.g. `${DATABASE_URL}` holding `postgres://app@127.0.0.1/shop`, or `sqlite:data/app.db`",
    );
    None
}

fn decode_redis(
    dec: &mut Decoder<'_>,
    f: &mut Fields<'_, '_>,
    value: &Node<'_>,
) -> Option<RedisCheck> {
    let url = dec.text(value, "redis");
    if let Some(u) = &url
        && !u.template().contains("${")
        && !u.expose().starts_with("redis://")
    {
        dec.error_hint(
            location(value),
            "redis: not a `redis://` URL",
            "e.g. `redis://127.0.0.1:6379`",
        );
    }
    let info = f.take("info").and_then(|n| dec.string(n, "info"));
    let expect = f
        .take("expect")
        .and_then(|n| decode_expected(dec, n, "expect"));
    if let (Some(_), None) = (&expect, &info) {
        let at = f.key_location("expect").unwrap_or(f.at);
        dec.error_hint(
            at,
            "redis: `expect` needs `info` (the INFO field to compare)",
            "e.g. `info: role` and `expect: master`; without `info` the item is a PING",
        );
    }
    Some(RedisCheck {
        url: url?,
        info,
        expect,
    })
}

fn decode_prom(
    dec: &mut Decoder<'_>,
    f: &mut Fields<'_, '_>,
    value: &Node<'_>,
    at: Location,
) -> Option<PromCheck> {
    let query = dec.text(value, "prometheus");
    let Some(n) = f.take("condition") else {
        dec.error_hint(
            at,
            "checklist item: a `prometheus` item needs `condition`",
            "e.g. `condition: \"< 0.01\"`",
        );
        return None;
    };
    let (op, threshold) = dec.string(n, "condition").and_then(|t| {
        let parsed = parse_comparison(&t);
        if parsed.is_none() {
            dec.error_hint(
                location(n),
                format!("condition: `{t}` is not a comparison with a number"),
                "e.g. `< 0.01` or `>= 100`",
            );
        }
        parsed
    })?;
    Some(PromCheck {
        query: query?,
        op,
        threshold,
    })
}

/// `< 0.01`, `>= 100`.
pub(crate) fn parse_comparison(text: &str) -> Option<(Op, f64)> {
    let t = text.trim();
    let ops = [("<=", Op::Le), (">=", Op::Ge), ("<", Op::Lt), (">", Op::Gt)];
    let (op, rest) = ops
        .into_iter()
        .find_map(|(sym, op)| t.strip_prefix(sym).map(|r| (op, r)))?;
    rest.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .map(|v| (op, v))
}

/// `expect:` a scalar to equal, or a string `"< 5"` / `">= 1"` to compare numerically.
fn decode_expected(dec: &mut Decoder<'_>, node: &Node<'_>, what: &str) -> Option<Expected> {
    let YamlData::Value(s) = &node.data else {
        dec.error(
            location(node),
            format!("{what}: expected a value (true, 3, \"ok\", \"< 5\")"),
        );
        return None;
    };
    Some(match s {
        Scalar::Null => Expected::Equals(Value::Null),
        Scalar::Boolean(b) => Expected::Equals(Value::Bool(*b)),
        Scalar::Integer(i) => Expected::Equals(Value::Number(*i as f64)),
        Scalar::FloatingPoint(f) => Expected::Equals(Value::Number(f.into_inner())),
        Scalar::String(s) => match parse_comparison(s) {
            Some((op, n)) => Expected::Compare(op, n),
            None => Expected::Equals(Value::String(s.to_string())),
        },
    })
}

/// `smoke:` a list of requests, or `{ base_url, timeout, requests }`.
pub(crate) fn decode_smoke(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<SmokeStep> {
    let (list_node, base, timeout) = match &node.data {
        YamlData::Sequence(_) => (Some(node), None, defaults::SMOKE_TIMEOUT),
        _ => {
            let mut f = dec.fields(node, &schema::SMOKE)?;
            let list = f.require(dec, "requests");
            let base = f.take("base_url").and_then(|n| {
                let t = dec.text(n, "base_url")?;
                if !t.known().may_start_with(HTTP_SCHEMES) {
                    dec.error_hint(
                        location(n),
                        format!("base_url: `{t}` is not an http or https URL"),
                        "e.g. `http://127.0.0.1:8080`",
                    );
                }
                Some(t)
            });
            let timeout = match f.take("timeout") {
                Some(n) => dec.duration(n, "smoke.timeout"),
                None => Some(defaults::SMOKE_TIMEOUT),
            };
            f.finish(dec);
            (list, base, timeout.unwrap_or(defaults::SMOKE_TIMEOUT))
        }
    };
    let list = dec.sequence(list_node?, "smoke.requests")?;
    if list.is_empty() {
        dec.error(location(node), "smoke: no requests");
    }
    let mut requests = Vec::new();
    for item in list {
        let Some(mut f) = dec.fields(item, &schema::SMOKE_REQUEST) else {
            continue;
        };
        let at = f.at;
        let name = f.take("name").and_then(|n| dec.string(n, "request name"));
        let url = f.require(dec, "url").and_then(|n| {
            let t = dec.text(n, "url")?;
            let is_path = match t.known() {
                Known::All(s) | Known::Prefix(s) => s.starts_with('/'),
            };
            let joined = match &base {
                Some(b) if is_path => b.join_path(&t),
                _ => t,
            };
            if !joined.known().may_start_with(HTTP_SCHEMES) {
                dec.error_hint(
                    location(n),
                    format!("url: `{joined}` is not an http or https URL"),
                    "give a whole URL, or a path starting with `/` and `base_url`",
                );
                return None;
            }
            Some(joined)
        });
        let t = match f.take("timeout") {
            Some(n) => dec.duration(n, "timeout"),
            None => Some(timeout),
        };
        let http = decode_request(dec, &mut f, url);
        f.finish(dec);
        let (Some(http), Some(t)) = (http, t) else {
            continue;
        };
        let kind = CheckKind::Http(http);
        let explicit = name.is_some();
        let name = name.unwrap_or_else(|| default_item_name(&kind));
        requests.push((
            CheckItem {
                name,
                critical: true,
                timeout: t,
                kind,
                location: at,
            },
            explicit,
        ));
    }
    let requests = unique_names(dec, requests, "smoke");
    Some(SmokeStep { requests })
}

pub(crate) fn decode_migrate(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<MigrateStep> {
    let mut f = dec.fields(node, &schema::MIGRATE)?;
    let db_node = f.require(dec, "database");
    let database = db_node.and_then(|n| dec.text(n, "migrate.database"));
    let engine = match (&database, db_node) {
        (Some(d), Some(n)) => db_engine(dec, n, d),
        _ => None,
    };
    let command = f
        .require(dec, "command")
        .and_then(|n| dec.text(n, "migrate.command"));
    let timeout = match f.take("timeout") {
        Some(n) => dec.duration(n, "migrate.timeout"),
        None => Some(defaults::MIGRATE_TIMEOUT),
    };
    let dir = f.take("dir").and_then(|n| dec.text(n, "migrate.dir"));
    let verify = f
        .take("verify")
        .map_or_else(Vec::new, |n| decode_verify(dec, n, "migrate.verify"));
    let restore_on_rollback = f
        .take("restore_on_rollback")
        .map_or(Some(false), |n| dec.boolean(n, "restore_on_rollback"));
    let restore_verify = f.take("restore_verify").map_or_else(Vec::new, |n| {
        decode_verify(dec, n, "migrate.restore_verify")
    });
    let terminate_sessions = f
        .take("terminate_sessions")
        .map_or(Some(false), |n| dec.boolean(n, "terminate_sessions"));
    if restore_on_rollback == Some(false) && !restore_verify.is_empty() {
        let at = f.key_location("restore_verify").unwrap_or(f.at);
        dec.error_hint(
            at,
            "migrate: `restore_verify` without `restore_on_rollback: true` would never run",
            "set `restore_on_rollback: true`, or remove `restore_verify`",
        );
    }
    if terminate_sessions == Some(true) {
        let at = f.key_location("terminate_sessions").unwrap_or(f.at);
        if engine == Some(DbEngine::Sqlite) {
            dec.error(
                at,
                "migrate: `terminate_sessions` applies to PostgreSQL; SQLite has no sessions to end",
            );
        } else if restore_on_rollback == Some(false) {
            dec.error_hint(
                at,
                "migrate: `terminate_sessions` only matters to a restore, and `restore_on_rollback` is not set",
                "set `restore_on_rollback: true`, or remove `terminate_sessions`",
            );
        }
    }
    f.finish(dec);
    Some(MigrateStep {
        database: database?,
        engine: engine?,
        command: command?,
        timeout: timeout?,
        dir,
        verify,
        restore_on_rollback: restore_on_rollback?,
        restore_verify,
        terminate_sessions: terminate_sessions?,
    })
}

fn decode_verify(dec: &mut Decoder<'_>, node: &Node<'_>, what: &str) -> Vec<VerifyQuery> {
    let Some(list) = dec.sequence(node, what) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in list {
        let Some(mut f) = dec.fields(item, &schema::VERIFY) else {
            continue;
        };
        let query = f.require(dec, "query").and_then(|n| dec.string(n, "query"));
        let expect = f
            .require(dec, "expect")
            .and_then(|n| decode_expected(dec, n, "expect"));
        f.finish(dec);
        if let (Some(query), Some(expect)) = (query, expect) {
            out.push(VerifyQuery { query, expect });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes() {
        assert_eq!(parse_bytes("1024"), Some(1024));
        assert_eq!(parse_bytes("10GiB"), Some(10 << 30));
        assert_eq!(parse_bytes("500 MB"), Some(500_000_000));
        assert_eq!(parse_bytes("1.5kb"), Some(1500));
        assert_eq!(parse_bytes("ten"), None);
        assert_eq!(parse_bytes("5 parsecs"), None);
    }

    #[test]
    fn expected_text() {
        let f = Expected::Equals(Value::Bool(false));
        assert!(f.matches_text(Some("f")));
        assert!(!f.matches_text(Some("t")));
        assert!(Expected::Compare(Op::Lt, 5.0).matches_text(Some("4.5")));
        assert!(!Expected::Compare(Op::Lt, 5.0).matches_text(Some("x")));
        assert!(Expected::Equals(Value::Number(3.0)).matches_text(Some("3")));
        assert!(Expected::Equals(Value::String("master".into())).matches_text(Some("master")));
        assert!(!Expected::Equals(Value::String("master".into())).matches_text(None));
    }

    #[test]
    fn tally() {
        let rule = PassRule {
            critical: Weight::FULL,
            overall: Weight::from_basis_points(9500).unwrap(),
        };
        let t = Tally {
            critical_passed: 87,
            critical_total: 87,
            passed: 139,
            total: 145,
        };
        assert!(t.go(rule)); // 95.86%
        let t = Tally { passed: 137, ..t }; // 94.5%
        assert!(!t.go(rule));
        let t = Tally {
            critical_passed: 86,
            passed: 144,
            ..t
        };
        assert!(!t.go(rule));
    }
}
