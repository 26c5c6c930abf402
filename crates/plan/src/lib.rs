//! Launch plans: YAML in, a typed [`Plan`] out, or every problem with `line:col`.
//!
//! Invariant: this crate is pure. No I/O, no tokio, no clock; the environment is a
//! function handed in, so the same source and variables always give the same plan.

pub mod checks;
pub mod condition;
mod decode;
mod diag;
pub mod human;
mod lint;
mod load;
mod model;
pub mod notify;
pub mod schema;

pub use diag::{Diagnostic, PlanErrors};
pub use lint::{Lint, VariableUse, lint};
pub use model::*;

use condition::Condition;
use decode::{Decoder, Env, Fields, Node, UniqueNames, location};

/// The plan format versions this build reads.
pub const SUPPORTED_VERSIONS: &[i64] = &[1];

/// The largest plan [`parse`] reads: 1 MiB of YAML. Real runbooks are a few KB.
pub const MAX_PLAN_BYTES: usize = 1 << 20;

/// How deeply lists and mappings may nest. The deepest plan key sits about 8 levels down.
pub const MAX_NESTING_DEPTH: usize = 64;

/// The most steps `steps`, and `rollback.steps`, may hold.
pub const MAX_STEPS: usize = 1_000;

/// The longest service name: a DNS label's length.
pub const MAX_SERVICE_NAME_LEN: usize = 63;

/// The longest launch name, in characters.
pub const MAX_LAUNCH_NAME_LEN: usize = 128;

/// Bounds on what [`parse_with_limits`] reads, so that any input costs bounded time,
/// memory and stack. The default, which [`parse`] applies, is [`MAX_PLAN_BYTES`],
/// [`MAX_NESTING_DEPTH`] and [`MAX_STEPS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Size of the YAML source, in bytes.
    pub max_bytes: usize,
    /// Nested lists and mappings. Past a few hundred the stack is at risk: the YAML tree
    /// is dropped recursively.
    pub max_depth: usize,
    /// Steps in `steps`, and in `rollback.steps`.
    pub max_steps: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: MAX_PLAN_BYTES,
            max_depth: MAX_NESTING_DEPTH,
            max_steps: MAX_STEPS,
        }
    }
}

/// The step kinds this build runs, in documentation order.
pub const STEP_KINDS: &[&str] = &[
    "run",
    "traffic",
    "pause",
    "approve",
    "wait",
    "maintenance",
    "analyze",
    "bake",
    "check",
    "smoke",
    "migrate",
    "monitor",
    "flag",
];

/// Keys only a `run` step takes.
const RUN_KEYS: &[&str] = &["timeout", "env", "dir", "idempotent"];

/// Parse and validate a plan within the default [`Limits`]. `env` resolves `${VAR}`
/// references.
///
/// CPU-bound (a 1 MiB plan takes 0.1 to 0.25 s): async callers run it on a blocking
/// thread, with an owned source and environment moved in.
pub fn parse(source: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Plan, PlanErrors> {
    parse_with_limits(source, env, Limits::default())
}

/// [`parse`] within other limits (benchmarks lift `max_steps` and `max_bytes`).
pub fn parse_with_limits(
    source: &str,
    env: &dyn Fn(&str) -> Option<String>,
    limits: Limits,
) -> Result<Plan, PlanErrors> {
    decode_source(source, Env::Strict(env), limits).map(|(plan, _)| plan)
}

/// The plan, and the variables it reads under [`Env::Unset`], or every problem.
fn decode_source(
    source: &str,
    env: Env<'_>,
    limits: Limits,
) -> Result<(Plan, Vec<lint::VariableUse>), PlanErrors> {
    if source.len() > limits.max_bytes {
        return Err(PlanErrors(vec![Diagnostic {
            location: Location { line: 1, col: 1 },
            message: format!(
                "the plan is {} bytes, more than the {} liftoff reads",
                source.len(),
                limits.max_bytes
            ),
            hint: Some(
                "a plan is a runbook of tens of steps: split this launch into several".into(),
            ),
        }]));
    }
    let docs = load::load(source, limits.max_depth).map_err(|d| PlanErrors(vec![d]))?;
    let mut dec = Decoder::new(source, env, limits);
    let plan = match docs.as_slice() {
        [doc] => decode_plan(&mut dec, doc),
        [] => {
            dec.error(Location { line: 1, col: 1 }, "the plan is empty");
            None
        }
        [_, second, ..] => {
            dec.error(
                location(second),
                "a plan file holds one YAML document, found several",
            );
            None
        }
    };
    let mut diags = dec.diags;
    diags.sort_by_key(|d| (d.location.line, d.location.col));
    match plan {
        Some(plan) if diags.is_empty() => Ok((plan, dec.uses)),
        _ => {
            if diags.is_empty() {
                diags.push(Diagnostic {
                    location: Location { line: 1, col: 1 },
                    message: "invalid plan".into(),
                    hint: None,
                });
            }
            Err(PlanErrors(diags))
        }
    }
}

fn decode_plan(dec: &mut Decoder<'_>, root: &Node<'_>) -> Option<Plan> {
    let mut top = dec.fields(root, &schema::PLAN)?;

    if let Some(v) = top.require(dec, "version") {
        let max = *SUPPORTED_VERSIONS.last().unwrap_or(&1);
        if let Some(n) = dec.integer(v, "version", 0, i64::MAX)
            && !SUPPORTED_VERSIONS.contains(&n)
        {
            dec.error_hint(
                location(v),
                format!("version: plan format {n} is not supported"),
                format!("this liftoff reads plan format version {max}"),
            );
        }
    }
    let name = top.require(dec, "name").and_then(|n| launch_name(dec, n));
    let service = top
        .require(dec, "service")
        .and_then(|n| service_name(dec, n));
    let router = top.take("router").and_then(|n| decode_router(dec, n));
    let metrics = top.take("metrics").and_then(|n| decode_metrics(dec, n));
    let checklist = top
        .take("checklist")
        .and_then(|n| checks::decode_checklist(dec, n, "checklist"));
    let notify = top
        .take("notify")
        .and_then(|n| notify::decode_notify(dec, n));
    top.reject_reserved(dec);

    let steps_node = top.require(dec, "steps");
    let steps_at = top.key_location("steps").unwrap_or(top.at);
    let steps = steps_node.map_or_else(Vec::new, |n| {
        decode_steps(dec, n, steps_at, "steps", StepContext::Forward)
    });
    if let Some(n) =
        steps_node.filter(|n| matches!(&n.data, saphyr::YamlData::Sequence(s) if s.is_empty()))
    {
        dec.error(location(n), "steps: a plan needs at least one step");
    }
    let rollback = top
        .take("rollback")
        .map(|n| decode_rollback(dec, n))
        .unwrap_or_default();
    let top_at = top.key_location("rollback").unwrap_or(top.at);
    top.finish(dec);

    let builtin = matches!(router, Some(RouterSpec::Builtin(_)));
    let prometheus = matches!(metrics, Some(MetricsSpec::Prometheus { .. }));
    for step in &steps {
        let StepKind::Analyze(a) = &step.kind else {
            continue;
        };
        let reads_router =
            a.compare.is_some() || a.gates.iter().any(|g| matches!(g, Gate::Builtin(_)));
        if reads_router && !builtin {
            dec.error_hint(
                step.location,
                format!("step `{}` needs observations: its conditions and `compare` read the builtin router's", step.name),
                "use `router: { kind: builtin }`, or PromQL gates (`{ query, condition }`) with `metrics: { kind: prometheus }`",
            );
        }
        if a.gates.iter().any(|g| matches!(g, Gate::Query(_))) && !prometheus {
            dec.error_hint(
                step.location,
                format!(
                    "step `{}` has PromQL gates but the plan has no Prometheus",
                    step.name
                ),
                "add `metrics: { kind: prometheus, url: http://... }`",
            );
        }
    }
    if rollback
        .triggers
        .iter()
        .any(|t| matches!(t.gate, Gate::Builtin(_)))
        && !builtin
    {
        dec.error_hint(
            top_at,
            "rollback.on: condition triggers read the builtin router's observations",
            "use `router: { kind: builtin }`, or PromQL triggers (`{ query, condition }`) with `metrics: { kind: prometheus }`",
        );
    }
    if !rollback.triggers.is_empty() && router.is_none() {
        dec.error_hint(
            top_at,
            "rollback.on: triggers are watched from the first non-zero candidate weight, and this plan has no router",
            "add a `router`, or drop the triggers (they would never be armed)",
        );
    }
    if rollback
        .triggers
        .iter()
        .any(|t| matches!(t.gate, Gate::Query(_)))
        && !prometheus
    {
        dec.error_hint(
            top_at,
            "rollback.on: PromQL triggers need `metrics: { kind: prometheus }`",
            "add `metrics: { kind: prometheus, url: http://... }`",
        );
    }
    let prometheus_items = |list: &checks::Checklist| {
        list.items
            .iter()
            .filter(|i| matches!(i.kind, checks::CheckKind::Prometheus(_)))
            .map(|i| i.location)
            .collect::<Vec<_>>()
    };
    let mut needs_prometheus: Vec<Location> = checklist.iter().flat_map(prometheus_items).collect();
    for step in steps.iter().chain(&rollback.steps) {
        if let StepKind::Check(list) = &step.kind {
            needs_prometheus.extend(prometheus_items(list));
        }
    }
    if !prometheus {
        for at in needs_prometheus {
            dec.error_hint(
                at,
                "checklist item: `prometheus` items need `metrics: { kind: prometheus }`",
                "add `metrics: { kind: prometheus, url: http://... }`",
            );
        }
    }
    // `maintenance` steps also work without the builtin router: they switch the
    // daemon's `maintenance_mode` flag, which applications read.
    for step in steps.iter().chain(&rollback.steps) {
        if let StepKind::Monitor(m) = &step.kind {
            let reads_router = m.gates.iter().any(|g| matches!(g, Gate::Builtin(_)));
            if reads_router && !builtin {
                dec.error_hint(
                    step.location,
                    format!(
                        "step `{}` has conditions that read the builtin router's observations",
                        step.name
                    ),
                    "use `router: { kind: builtin }`, or PromQL gates with `metrics: { kind: prometheus }`",
                );
            }
            if m.gates.iter().any(|g| matches!(g, Gate::Query(_))) && !prometheus {
                dec.error_hint(
                    step.location,
                    format!(
                        "step `{}` has PromQL gates but the plan has no Prometheus",
                        step.name
                    ),
                    "add `metrics: { kind: prometheus, url: http://... }`",
                );
            }
        }
    }
    let needs_router = steps
        .iter()
        .find(|s| matches!(s.kind, StepKind::Traffic(_)));
    if let (Some(step), None) = (needs_router, &router) {
        dec.error_hint(
            step.location,
            format!(
                "step `{}` sets traffic, but the plan has no `router`",
                step.name
            ),
            "add e.g. `router: { kind: command, command: \"./set-weight.sh {weight}\" }`",
        );
    }
    Some(Plan {
        name: name?,
        service: service?,
        router,
        metrics,
        checklist,
        steps,
        rollback,
        notify,
        variables: std::mem::take(&mut dec.variables),
    })
}

/// A service name identifies: it names the builtin router's route and the deployment
/// log files, is substituted into PromQL as `{{service}}` and exported as
/// `LIFTOFF_SERVICE`. So `[A-Za-z0-9._-]{1,63}`, nothing that needs escaping anywhere.
fn service_name(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<String> {
    let name = dec.string(node, "service")?;
    let rule =
        format!("a service name is 1 to {MAX_SERVICE_NAME_LEN} letters, digits, `.`, `_` or `-`");
    let bad = name
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')));
    if let Some((offset, c)) = bad {
        let at = dec.locate_offset(node, &name, offset);
        dec.error_hint(
            at,
            format!(
                "service: `{}` is not a service name: it holds `{}`",
                shorten(&name),
                shown(c)
            ),
            rule,
        );
        return None;
    }
    if name.len() > MAX_SERVICE_NAME_LEN {
        dec.error_hint(
            location(node),
            format!(
                "service: `{}` is {} characters long, more than {MAX_SERVICE_NAME_LEN}",
                shorten(&name),
                name.len()
            ),
            rule,
        );
        return None;
    }
    Some(name)
}

/// A launch name is only shown (status, history, notifications, reports), never used
/// to find anything: any text, but on one line and short enough to read there.
fn launch_name(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<String> {
    let name = dec.string(node, "name")?;
    let rule = format!("a launch name is one line of at most {MAX_LAUNCH_NAME_LEN} characters");
    if let Some((offset, c)) = name.char_indices().find(|(_, c)| c.is_control()) {
        let at = dec.locate_offset(node, &name, offset);
        dec.error_hint(
            at,
            format!(
                "name: `{}` holds the control character `{}`",
                shorten(&name),
                shown(c)
            ),
            rule,
        );
        return None;
    }
    let chars = name.chars().count();
    if chars > MAX_LAUNCH_NAME_LEN {
        dec.error_hint(
            location(node),
            format!(
                "name: `{}` is {chars} characters long, more than {MAX_LAUNCH_NAME_LEN}",
                shorten(&name)
            ),
            rule,
        );
        return None;
    }
    Some(name)
}

/// At most 40 characters of `s`, control characters escaped, for an error message.
fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(40).map(shown).collect();
    if s.chars().nth(40).is_some() {
        out.push('…');
    }
    out
}

/// A character as an error message shows it: `\0`, `\n`, `\u{7f}` for control characters.
fn shown(c: char) -> String {
    if c.is_control() {
        c.escape_debug().to_string()
    } else {
        c.to_string()
    }
}

fn decode_router(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<RouterSpec> {
    let mut f = dec.fields(node, &schema::ROUTER)?;
    let kind_node = f.require(dec, "kind");
    let kind = kind_node.and_then(|k| dec.string(k, "router.kind"));
    // Keys of the other kind are mistakes, not options.
    for key in schema::ROUTER.keys.iter().filter(|k| **k != "kind") {
        let for_command = schema::COMMAND_ROUTER_KEYS.contains(key);
        let wrong = match kind.as_deref() {
            Some("command") => !for_command,
            Some("builtin") => for_command,
            _ => false,
        };
        if wrong && f.take(key).is_some() {
            let owner = if for_command { "command" } else { "builtin" };
            dec.error(
                f.key_location(key).unwrap_or(f.at),
                format!("router: `{key}` applies to `kind: {owner}` routers only"),
            );
        }
    }
    let spec = match kind.as_deref() {
        Some("command") => {
            let command = f
                .require(dec, "command")
                .and_then(|c| dec.text(c, "router.command"));
            let timeout = match f.take("timeout") {
                Some(t) => dec.duration(t, "router.timeout"),
                None => Some(defaults::ROUTER_COMMAND_TIMEOUT),
            };
            if let Some(c) = &command
                && !c.template().contains("{weight}")
            {
                dec.error_hint(
                        kind_node.map_or(f.at, location),
                        "router.command never mentions `{weight}`",
                        "the command must receive the weight, as `{weight}` or by reading $LIFTOFF_WEIGHT; add `{weight}` to make that explicit",
                    );
            }
            Some(RouterSpec::Command {
                command: command?,
                timeout: timeout?,
            })
        }
        Some("builtin") => decode_builtin(dec, &mut f).map(|b| RouterSpec::Builtin(Box::new(b))),
        Some(other @ ("nginx" | "haproxy" | "kubernetes")) => {
            dec.error_hint(
                kind_node.map_or(f.at, location),
                format!("router.kind `{other}` is not available in this version of liftoff"),
                "use `kind: builtin` (liftoff's own router) or `kind: command` with a script",
            );
            None
        }
        Some(other) => {
            dec.error_hint(
                kind_node.map_or(f.at, location),
                format!("router.kind: unknown router kind `{other}`"),
                "known kinds: builtin, command",
            );
            None
        }
        None => None,
    };
    f.finish(dec);
    spec
}

fn decode_builtin(dec: &mut Decoder<'_>, f: &mut Fields<'_, '_>) -> Option<BuiltinRouter> {
    let listen = f.require(dec, "listen").and_then(|n| {
        let text = dec.string(n, "router.listen")?;
        match text.parse::<std::net::SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                dec.error_hint(
                    location(n),
                    format!("router.listen: `{text}` is not an address:port"),
                    "e.g. `127.0.0.1:8080` or `0.0.0.0:80`",
                );
                None
            }
        }
    });
    let host = f.take("host").and_then(|n| dec.string(n, "router.host"));
    // One URL, or a list of them: the version's instances.
    let mut upstream = |key: &'static str| {
        let node = f.require(dec, key)?;
        let nodes = match &node.data {
            saphyr::YamlData::Sequence(_) => dec.sequence(node, key)?,
            _ => std::slice::from_ref(node),
        };
        if nodes.is_empty() {
            dec.error_hint(
                location(node),
                format!("router.{key}: an empty list"),
                "give at least one instance, e.g. `[http://10.0.0.11:9000, http://10.0.0.12:9000]`",
            );
            return None;
        }
        let mut urls: Vec<Text> = Vec::with_capacity(nodes.len());
        let mut ok = true;
        for n in nodes {
            let Some(url) = dec.text(n, key) else {
                ok = false;
                continue;
            };
            if let Err(why) = check_upstream_url(&url) {
                dec.error_hint(
                    location(n),
                    format!("router.{key}: `{url}` {why}"),
                    "e.g. `http://127.0.0.1:9001`",
                );
                ok = false;
            } else if urls.iter().any(|u| same_instance(u, &url)) {
                dec.error(
                    location(n),
                    format!("router.{key}: `{url}` is listed twice"),
                );
                ok = false;
            }
            urls.push(url);
        }
        ok.then_some(urls)
    };
    let stable = upstream("stable");
    let candidate = upstream("candidate");
    let sticky = match f.take("sticky") {
        None => Some(Sticky::None),
        Some(n) => decode_sticky(dec, n),
    };
    let version_override = match f.take("override") {
        None => Some(None),
        Some(n) => decode_override(dec, n).map(Some),
    };
    let health = f.take("health").map(|n| decode_health(dec, n));
    let timeouts = match f.take("timeouts") {
        None => Some(RouteTimeouts::default()),
        Some(n) => decode_timeouts(dec, n),
    };
    let maintenance = match f.take("maintenance") {
        Some(n) => decode_maintenance(dec, n),
        None => Some(MaintenanceSpec::default()),
    };
    Some(BuiltinRouter {
        listen: listen?,
        host,
        stable: stable?,
        candidate: candidate?,
        sticky: sticky?,
        version_override: version_override?,
        health: match health {
            Some(h) => Some(h?),
            None => None,
        },
        maintenance: maintenance?,
        timeouts: timeouts?,
    })
}

/// `on`/`off` (or `true`/`false`).
fn decode_switch(dec: &mut Decoder<'_>, node: &Node<'_>, what: &str) -> Option<bool> {
    match &node.data {
        saphyr::YamlData::Value(saphyr::Scalar::Boolean(b)) => Some(*b),
        saphyr::YamlData::Value(saphyr::Scalar::String(s)) if s == "on" => Some(true),
        saphyr::YamlData::Value(saphyr::Scalar::String(s)) if s == "off" => Some(false),
        _ => {
            dec.error(location(node), format!("{what}: expected `on` or `off`"));
            None
        }
    }
}

fn decode_maintenance(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<MaintenanceSpec> {
    let mut f = dec.fields(node, &schema::MAINTENANCE)?;
    let retry_after = match f.take("retry_after") {
        Some(n) => dec.duration(n, "router.maintenance.retry_after"),
        None => Some(defaults::MAINTENANCE_RETRY_AFTER),
    };
    let page = match f.take("page") {
        Some(n) => dec.string(n, "router.maintenance.page"),
        None => Some(defaults::MAINTENANCE_PAGE.to_string()),
    };
    let allow = match f.take("allow") {
        Some(n) => decode_networks(dec, n, "router.maintenance.allow"),
        None => Some(Vec::new()),
    };
    let bypass_header = match f.take("bypass_header") {
        None => Some(None),
        Some(n) => dec.fields(n, &schema::BYPASS_HEADER).and_then(|mut b| {
            let name = b.require(dec, "name").and_then(|h| {
                let name = dec.string(h, "router.maintenance.bypass_header.name")?;
                header_name(dec, h, name)
            });
            let value = b
                .require(dec, "value")
                .and_then(|v| dec.text(v, "router.maintenance.bypass_header.value"));
            b.finish(dec);
            Some(Some((name?, value?)))
        }),
    };
    f.finish(dec);
    Some(MaintenanceSpec {
        retry_after: retry_after?,
        page: page?,
        allow: allow?,
        bypass_header: bypass_header?,
    })
}

/// `router.override`: who may pick a version by header.
fn decode_override(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<OverrideSpec> {
    let mut f = dec.fields(node, &schema::OVERRIDE)?;
    let header = match f.take("header") {
        Some(n) => dec
            .string(n, "router.override.header")
            .and_then(|h| header_name(dec, n, h)),
        None => Some(defaults::OVERRIDE_HEADER.to_string()),
    };
    let secret = match f.take("secret") {
        None => Some(None),
        Some(n) => dec.text(n, "router.override.secret").and_then(|secret| {
            // Never quoted in the message: it is a secret.
            let visible = |s: &str| s.bytes().all(|b| b.is_ascii_graphic());
            let valid = match secret.known() {
                Known::All(s) => !s.is_empty() && visible(s),
                Known::Prefix(s) => visible(s),
            };
            if !valid {
                dec.error_hint(
                    location(n),
                    "router.override.secret: must be non-empty visible ASCII, without spaces",
                    "it is sent in a header value, after `candidate;`",
                );
                return None;
            }
            Some(Some(secret))
        }),
    };
    let allow = match f.take("allow") {
        Some(n) => decode_networks(dec, n, "router.override.allow"),
        None => Some(Vec::new()),
    };
    let count = match f.take("count") {
        Some(n) => dec.boolean(n, "router.override.count"),
        None => Some(false),
    };
    let neither = matches!(secret, Some(None)) && allow.as_ref().is_some_and(Vec::is_empty);
    if neither {
        dec.error_hint(
            f.at,
            "router.override: give `secret`, `allow` or both",
            "without either, any client could send its requests to the candidate; e.g. `secret: \"${TESTER_TOKEN}\"`, and testers send `X-Liftoff-Version: candidate;<secret>`",
        );
    }
    f.finish(dec);
    if neither {
        return None;
    }
    Some(OverrideSpec {
        header: header?,
        secret: secret?,
        allow: allow?,
        count: count?,
    })
}

/// A list of client addresses or CIDR networks (an `allow`).
fn decode_networks(dec: &mut Decoder<'_>, node: &Node<'_>, what: &str) -> Option<Vec<String>> {
    let items = dec.sequence(node, what)?;
    let mut nets = Some(Vec::new());
    for item in items {
        match dec.string(item, what) {
            Some(net) if valid_network(&net) => {
                if let Some(nets) = nets.as_mut() {
                    nets.push(net);
                }
            }
            Some(net) => {
                dec.error_hint(
                    location(item),
                    format!("{what}: `{net}` is not an address or CIDR network"),
                    "e.g. `10.0.0.0/8` or `192.168.1.20`",
                );
                nets = None;
            }
            None => nets = None,
        }
    }
    nets
}

fn valid_network(s: &str) -> bool {
    let (addr, prefix) = s.split_once('/').map_or((s, None), |(a, p)| (a, Some(p)));
    let Ok(ip) = addr.parse::<std::net::IpAddr>() else {
        return false;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    prefix.is_none_or(|p| p.parse::<u8>().is_ok_and(|p| p <= max))
}

/// Two instance URLs that name one address (a trailing slash aside). Unresolved ones
/// (linting without variables) are never the same.
fn same_instance(a: &Text, b: &Text) -> bool {
    match (a.known(), b.known()) {
        (Known::All(a), Known::All(b)) => a.trim_end_matches('/') == b.trim_end_matches('/'),
        _ => false,
    }
}

fn check_upstream_url(url: &Text) -> Result<(), &'static str> {
    let url = match url.known() {
        Known::All(s) => s,
        Known::Prefix(_) if url.known().may_start_with(&["http://"]) => return Ok(()),
        Known::Prefix(s) => s,
    };
    let rest = url
        .strip_prefix("http://")
        .ok_or("is not an http:// URL (https upstreams are not supported)")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') {
        return Err("has a path; give only scheme, host and port");
    }
    let port = rest.rsplit_once(':').map(|(_, p)| p).ok_or("has no port")?;
    port.parse::<u16>()
        .map(|_| ())
        .map_err(|_| "has no valid port")
}

fn header_name(dec: &mut Decoder<'_>, node: &Node<'_>, name: String) -> Option<String> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if valid {
        Some(name.to_ascii_lowercase())
    } else {
        dec.error(
            location(node),
            format!("`{name}` is not a valid HTTP header name"),
        );
        None
    }
}

fn decode_sticky(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<Sticky> {
    let mut f = dec.fields(node, &schema::STICKY)?;
    let header = f.take("header");
    let cookie = f.take("cookie");
    let client_ip = f.take("client_ip");
    let given = [header.is_some(), cookie.is_some(), client_ip.is_some()]
        .iter()
        .filter(|g| **g)
        .count();
    let at = f.at;
    f.finish(dec);
    if given != 1 {
        dec.error_hint(
            at,
            "router.sticky: give exactly one of `header`, `cookie`, `client_ip`",
            "e.g. `sticky: { header: X-User-Id }`",
        );
        return None;
    }
    if let Some(n) = header {
        let name = dec.string(n, "router.sticky.header")?;
        return header_name(dec, n, name).map(Sticky::Header);
    }
    if let Some(n) = cookie {
        return dec.string(n, "router.sticky.cookie").map(Sticky::Cookie);
    }
    match client_ip.and_then(|n| dec.boolean(n, "router.sticky.client_ip")) {
        Some(true) => Some(Sticky::ClientIp),
        Some(false) => Some(Sticky::None),
        None => None,
    }
}

fn decode_timeouts(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<RouteTimeouts> {
    let mut f = dec.fields(node, &schema::TIMEOUTS)?;
    let defaults = RouteTimeouts::default();
    let mut duration = |key: &'static str, what: &str| match f.take(key) {
        Some(n) => dec.duration(n, what).map(Some),
        None => Some(None),
    };
    let connect = duration("connect", "router.timeouts.connect");
    let response = duration("response", "router.timeouts.response");
    let idle = duration("idle", "router.timeouts.idle");
    f.finish(dec);
    Some(RouteTimeouts {
        connect: connect?.unwrap_or(defaults.connect),
        response: response?.unwrap_or(defaults.response),
        idle: idle?,
    })
}

fn decode_health(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<HealthSpec> {
    let mut f = dec.fields(node, &schema::HEALTH)?;
    let path = match f.take("path") {
        Some(n) => dec.string(n, "router.health.path").and_then(|p| {
            if p.starts_with('/') {
                Some(p)
            } else {
                dec.error(
                    location(n),
                    format!("router.health.path: `{p}` must start with `/`"),
                );
                None
            }
        }),
        None => Some(defaults::HEALTH_PATH.to_string()),
    };
    let mut duration = |key: &'static str, what: &str, default| match f.take(key) {
        Some(n) => dec.duration(n, what),
        None => Some(default),
    };
    let interval = duration(
        "interval",
        "router.health.interval",
        defaults::HEALTH_INTERVAL,
    );
    let timeout = duration("timeout", "router.health.timeout", defaults::HEALTH_TIMEOUT);
    let mut threshold = |key: &'static str, what: &str, default| match f.take(key) {
        Some(n) => dec.integer(n, what, 1, 100).map(|v| v as u32),
        None => Some(default),
    };
    let healthy_threshold = threshold(
        "healthy_threshold",
        "router.health.healthy_threshold",
        defaults::HEALTHY_THRESHOLD,
    );
    let unhealthy_threshold = threshold(
        "unhealthy_threshold",
        "router.health.unhealthy_threshold",
        defaults::UNHEALTHY_THRESHOLD,
    );
    f.finish(dec);
    Some(HealthSpec {
        path: path?,
        interval: interval?,
        timeout: timeout?,
        healthy_threshold: healthy_threshold?,
        unhealthy_threshold: unhealthy_threshold?,
    })
}

fn decode_rollback(dec: &mut Decoder<'_>, node: &Node<'_>) -> RollbackSpec {
    let Some(mut f) = dec.fields(node, &schema::ROLLBACK) else {
        return RollbackSpec::default();
    };
    let steps_at = f.key_location("steps").unwrap_or(f.at);
    let steps = f
        .take("steps")
        .map(|n| decode_steps(dec, n, steps_at, "rollback.steps", StepContext::Rollback))
        .unwrap_or_default();
    let triggers = match f.take("on") {
        Some(n) => dec
            .sequence(n, "rollback.on")
            .map_or_else(Vec::new, |items| {
                items
                    .iter()
                    .filter_map(|item| decode_trigger(dec, item))
                    .collect()
            }),
        None => Vec::new(),
    };
    let check_every = match f.take("check_every") {
        Some(n) => dec
            .duration(n, "rollback.check_every")
            .unwrap_or(defaults::TRIGGER_CHECK_EVERY),
        None => defaults::TRIGGER_CHECK_EVERY,
    };
    let min_requests = match f.take("min_requests") {
        Some(n) => dec
            .integer(n, "rollback.min_requests", 0, i64::MAX)
            .map_or(defaults::TRIGGER_MIN_REQUESTS, |v| v as u64),
        None => defaults::TRIGGER_MIN_REQUESTS,
    };
    let confidence = match f.take("confidence") {
        Some(n) => {
            decode_confidence(dec, n, "rollback.confidence").unwrap_or(defaults::TRIGGER_CONFIDENCE)
        }
        None => defaults::TRIGGER_CONFIDENCE,
    };
    f.reject_reserved(dec);
    f.finish(dec);
    RollbackSpec {
        steps,
        triggers,
        check_every,
        min_requests,
        confidence,
    }
}

/// A confidence level: a percentage from 50% up to, not including, 100% (at 100% nothing
/// could ever be proven), with as many decimals as it takes (`99.999%`).
fn decode_confidence(dec: &mut Decoder<'_>, node: &Node<'_>, what: &str) -> Option<f64> {
    let raw = dec.string(node, what)?;
    let hint = "write a percentage from 50% to below 100%, e.g. `99.999%` (the default) or `99.9%`";
    let Some(number) = raw.trim().strip_suffix('%') else {
        dec.error_hint(
            location(node),
            format!("{what}: `{raw}` has no `%` sign"),
            hint,
        );
        return None;
    };
    match number.trim().parse::<f64>() {
        Ok(p) if (50.0..100.0).contains(&p) => Some(p / 100.0),
        _ => {
            dec.error_hint(
                location(node),
                format!("{what}: `{raw}` is not a confidence level"),
                hint,
            );
            None
        }
    }
}

/// A condition written in a YAML string: errors point into the string.
fn decode_condition(
    dec: &mut Decoder<'_>,
    node: &Node<'_>,
    what: &str,
    allow_for: bool,
) -> Option<Condition> {
    let text = dec.string(node, what)?;
    match condition::parse_condition(&text, allow_for) {
        Ok(c) => Some(c),
        Err(e) => {
            let at = dec.locate_offset(node, &text, e.offset);
            match e.hint {
                Some(h) => dec.error_hint(at, format!("{what}: {}", e.message), h),
                None => dec.error(at, format!("{what}: {}", e.message)),
            }
            None
        }
    }
}

fn decode_trigger(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<Trigger> {
    if let saphyr::YamlData::Value(_) = &node.data {
        let condition = decode_condition(dec, node, "rollback.on", true)?;
        return Some(Trigger {
            gate: Gate::Builtin(condition),
            action: TriggerAction::Rollback,
        });
    }
    let mut f = dec.fields(node, &schema::TRIGGER)?;
    let gate = if f.has("query") {
        if let Some(at) = f.key_location("when") {
            dec.error(
                at,
                "rollback.on[]: give `when` (a condition) or `query` (PromQL), not both",
            );
        }
        f.take("when");
        decode_query_fields(dec, &mut f, true).map(Gate::Query)
    } else {
        for key in schema::QUERY_KEYS {
            if f.take(key).is_some() {
                dec.error_hint(
                    f.key_location(key).unwrap_or(f.at),
                    format!("rollback.on[]: `{key}` belongs to PromQL triggers (with `query`)"),
                    "a `when` condition carries its own `for`: `error_rate > 5% for 2m`",
                );
            }
        }
        f.require(dec, "when")
            .and_then(|n| decode_condition(dec, n, "rollback.on[].when", true))
            .map(Gate::Builtin)
    };
    let flag = f.take("disable_flag");
    if let (Some(_), Some(at)) = (&flag, f.key_location("action")) {
        dec.error_hint(
            at,
            "rollback.on[]: `disable_flag` is the action; it takes no `action`",
            "remove `action`",
        );
    }
    let action = match (flag, f.take("action")) {
        (Some(n), _) => dec
            .string(n, "rollback.on[].disable_flag")
            .map(TriggerAction::DisableFlag),
        (None, None) => Some(TriggerAction::Rollback),
        (None, Some(n)) => match dec.string(n, "rollback.on[].action").as_deref() {
            Some("rollback") => Some(TriggerAction::Rollback),
            Some("pause") => Some(TriggerAction::Pause),
            Some("notify") => Some(TriggerAction::Notify),
            Some(other) => {
                dec.error_hint(
                    location(n),
                    format!("rollback.on[].action: unknown action `{other}`"),
                    "actions: rollback (default), pause, notify; or `disable_flag: NAME`",
                );
                None
            }
            None => None,
        },
    };
    f.finish(dec);
    Some(Trigger {
        gate: gate?,
        action: action?,
    })
}

fn decode_query(
    dec: &mut Decoder<'_>,
    node: &Node<'_>,
    section: &'static schema::Section,
    allow_for: bool,
) -> Option<QueryGate> {
    let mut f = dec.fields(node, section)?;
    let gate = decode_query_fields(dec, &mut f, allow_for);
    f.finish(dec);
    gate
}

/// `{ name, query, condition: "< 0.01", version, for }`.
fn decode_query_fields(
    dec: &mut Decoder<'_>,
    f: &mut Fields<'_, '_>,
    allow_for: bool,
) -> Option<QueryGate> {
    let query = f.require(dec, "query").and_then(|n| dec.text(n, "query"));
    let name = match f.take("name") {
        Some(n) => dec.string(n, "name"),
        None => query.as_ref().map(|q| {
            let flat = q
                .template()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            let short: String = flat.chars().take(60).collect();
            if short.len() < flat.len() {
                format!("{short}…")
            } else {
                short
            }
        }),
    };
    let comparison = f.require(dec, "condition").and_then(|n| {
        let text = dec.string(n, "condition")?;
        let t = text.trim();
        let ops = [
            ("<=", condition::Op::Le),
            (">=", condition::Op::Ge),
            ("<", condition::Op::Lt),
            (">", condition::Op::Gt),
        ];
        let Some((op, rest)) = ops
            .into_iter()
            .find_map(|(sym, op)| t.strip_prefix(sym).map(|r| (op, r)))
        else {
            dec.error_hint(
                location(n),
                format!("condition: `{t}` does not start with a comparison"),
                "e.g. `< 0.01` or `>= 100`",
            );
            return None;
        };
        match rest.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => Some((op, v)),
            _ => {
                dec.error_hint(
                    location(n),
                    format!("condition: `{}` is not a number", rest.trim()),
                    "PromQL values are plain numbers: write `< 0.01`, not `< 1%`",
                );
                None
            }
        }
    });
    let version = match f.take("version") {
        None => Some(condition::Version::Candidate),
        Some(n) => match dec.string(n, "version").as_deref() {
            Some("candidate") => Some(condition::Version::Candidate),
            Some("stable") => Some(condition::Version::Stable),
            Some(other) => {
                dec.error_hint(
                    location(n),
                    format!("version: unknown version `{other}`"),
                    "candidate or stable",
                );
                None
            }
            None => None,
        },
    };
    let sustained = match allow_for.then(|| f.take("for")).flatten() {
        Some(n) => dec.duration(n, "for").map(Some),
        None => Some(None),
    };
    let (op, threshold) = comparison?;
    Some(QueryGate {
        name: name?,
        query: query?,
        version: version?,
        op,
        threshold,
        sustained: sustained?,
    })
}

fn decode_metrics(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<MetricsSpec> {
    let mut f = dec.fields(node, &schema::METRICS)?;
    let kind_node = f.require(dec, "kind");
    let spec = match kind_node
        .and_then(|k| dec.string(k, "metrics.kind"))
        .as_deref()
    {
        Some("builtin") => {
            for key in ["url", "timeout"] {
                if let Some(at) = f.key_location(key) {
                    dec.error(
                        at,
                        format!("metrics: `{key}` applies to `kind: prometheus` only"),
                    );
                }
            }
            f.take("url");
            f.take("timeout");
            None
        }
        Some("prometheus") => {
            let url = f.require(dec, "url").and_then(|n| {
                let url = dec.text(n, "metrics.url")?;
                check_http_url(dec, n, "metrics.url", &url, "http://127.0.0.1:9090").then_some(url)
            });
            let timeout = match f.take("timeout") {
                Some(n) => dec.duration(n, "metrics.timeout"),
                None => Some(defaults::METRICS_TIMEOUT),
            };
            match (url, timeout) {
                (Some(url), Some(timeout)) => Some(MetricsSpec::Prometheus { url, timeout }),
                _ => None,
            }
        }
        Some(other) => {
            dec.error_hint(
                kind_node.map_or(f.at, location),
                format!("metrics.kind: unknown provider `{other}`"),
                "builtin (the router's own observations) or prometheus",
            );
            None
        }
        None => None,
    };
    f.finish(dec);
    spec
}

/// A list of gates: conditions (strings) and PromQL gates (mappings). `None` if any is
/// invalid (each reported).
fn decode_gates(dec: &mut Decoder<'_>, node: &Node<'_>, what: &str) -> Option<Vec<Gate>> {
    let items = dec.sequence(node, what)?;
    let mut gates = Some(Vec::new());
    for item in items {
        let gate = match &item.data {
            saphyr::YamlData::Value(_) => {
                decode_condition(dec, item, what, false).map(Gate::Builtin)
            }
            _ => decode_query(dec, item, &schema::QUERY_GATE, false).map(Gate::Query),
        };
        match gate {
            Some(g) => gates.as_mut().map(|gs| gs.push(g)).unwrap_or_default(),
            None => gates = None,
        }
    }
    gates
}

fn decode_monitor(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<MonitorStep> {
    let mut f = dec.fields(node, &schema::MONITOR)?;
    let mut checkpoints = None;
    if let Some(n) = f.require(dec, "checkpoints")
        && let Some(items) = dec.sequence(n, "monitor.checkpoints")
    {
        if items.is_empty() {
            dec.error(location(n), "monitor.checkpoints: at least one checkpoint");
        }
        let mut list = Some(Vec::new());
        let mut last = std::time::Duration::ZERO;
        for item in items {
            match dec.duration(item, "monitor.checkpoints") {
                Some(d) if d <= last => {
                    dec.error_hint(
                        location(item),
                        "monitor.checkpoints: checkpoints must be in increasing order",
                        "they are offsets from the step's start: `[15m, 30m, 1h, 24h]`",
                    );
                    list = None;
                }
                Some(d) => {
                    last = d;
                    list.as_mut().map(|c| c.push(d)).unwrap_or_default();
                }
                None => list = None,
            }
        }
        checkpoints = list;
    }
    let gates = match f.take("gates") {
        Some(n) => decode_gates(dec, n, "monitor.gates"),
        None => Some(Vec::new()),
    };
    let window = match f.take("window") {
        Some(n) => dec.duration(n, "monitor.window"),
        None => Some(defaults::MONITOR_WINDOW),
    };
    let min_requests = match f.take("min_requests") {
        Some(n) => dec
            .integer(n, "monitor.min_requests", 0, i64::MAX)
            .map(|v| v as u64),
        None => Some(defaults::ANALYZE_MIN_REQUESTS),
    };
    f.finish(dec);
    Some(MonitorStep {
        checkpoints: checkpoints?,
        gates: gates?,
        window: window?,
        min_requests: min_requests?,
    })
}

/// `flag: { name, percent: 5% }` or `flag: { name, enabled: false }`.
fn decode_flag(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<FlagStep> {
    let mut f = dec.fields(node, &schema::FLAG)?;
    let name = f.require(dec, "name").and_then(|n| {
        let name = dec.string(n, "flag.name")?;
        let valid = name.len() <= 128
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !valid {
            dec.error_hint(
                location(n),
                format!("flag.name: `{name}` is not a flag name"),
                "letters, digits, `_`, `.` and `-`, at most 128",
            );
        }
        valid.then_some(name)
    });
    let change = match (f.take("percent"), f.take("enabled")) {
        (Some(p), None) => dec.percent(p, "flag.percent").map(FlagSetting::Percent),
        (None, Some(e)) => dec.boolean(e, "flag.enabled").map(FlagSetting::Enabled),
        (Some(_), Some(_)) => {
            dec.error_hint(
                f.key_location("enabled").unwrap_or(f.at),
                "flag: give `percent` or `enabled`, not both",
                "one change per step: split it into two steps",
            );
            None
        }
        (None, None) => {
            dec.error_hint(
                f.at,
                "flag: missing `percent` or `enabled`",
                "e.g. `flag: { name: new_checkout, percent: 5% }`",
            );
            None
        }
    };
    f.finish(dec);
    Some(FlagStep {
        name: name?,
        change: change?,
    })
}

fn decode_analyze(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<AnalyzeStep> {
    let mut f = dec.fields(node, &schema::ANALYZE)?;
    let duration = f
        .require(dec, "for")
        .and_then(|n| dec.duration(n, "analyze.for"));
    let interval = match f.take("interval") {
        Some(n) => dec.duration(n, "analyze.interval"),
        None => Some(defaults::ANALYZE_INTERVAL),
    };
    let gates = match f.take("gates") {
        Some(n) => decode_gates(dec, n, "analyze.gates"),
        None => Some(Vec::new()),
    };
    let min_requests = match f.take("min_requests") {
        Some(n) => dec
            .integer(n, "analyze.min_requests", 0, i64::MAX)
            .map(|v| v as u64),
        None => Some(defaults::ANALYZE_MIN_REQUESTS),
    };
    let mut limit = |key: &'static str, default: u32| match f.take(key) {
        Some(n) => dec.integer(n, key, 0, 10_000).map(|v| v as u32),
        None => Some(default),
    };
    let failure_limit = limit("failure_limit", 0);
    let inconclusive_limit = limit("inconclusive_limit", defaults::ANALYZE_INCONCLUSIVE_LIMIT);
    let on_inconclusive = match f.take("on_inconclusive") {
        None => Some(OnInconclusive::Pause),
        Some(n) => match dec.string(n, "analyze.on_inconclusive").as_deref() {
            Some("pause") => Some(OnInconclusive::Pause),
            Some("fail") => Some(OnInconclusive::Fail),
            Some(other) => {
                dec.error_hint(
                    location(n),
                    format!("analyze.on_inconclusive: `{other}`"),
                    "use `pause` or `fail`",
                );
                None
            }
            None => None,
        },
    };
    let dry_run = f
        .take("dry_run")
        .map_or(Some(false), |n| dec.boolean(n, "analyze.dry_run"));
    let compare = match f.take("compare") {
        None => Some(None),
        Some(n) => decode_compare(dec, n).map(Some),
    };
    let at = f.at;
    f.finish(dec);
    if let (Some(g), Some(None)) = (&gates, &compare)
        && g.is_empty()
    {
        dec.error_hint(
            at,
            "analyze: nothing to evaluate",
            "give `gates`, `compare: stable`, or both",
        );
    }
    Some(AnalyzeStep {
        duration: duration?,
        interval: interval?,
        gates: gates?,
        min_requests: min_requests?,
        failure_limit: failure_limit?,
        inconclusive_limit: inconclusive_limit?,
        on_inconclusive: on_inconclusive?,
        dry_run: dry_run?,
        compare: compare?,
    })
}

fn decode_compare(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<CompareSpec> {
    if let saphyr::YamlData::Value(_) = &node.data {
        return match dec.string(node, "analyze.compare")?.as_str() {
            "stable" => Some(CompareSpec::default()),
            other => {
                dec.error_hint(
                    location(node),
                    format!("analyze.compare: cannot compare against `{other}`"),
                    "write `compare: stable`",
                );
                None
            }
        };
    }
    let mut f = dec.fields(node, &schema::COMPARE)?;
    let mut spec = CompareSpec::default();
    let mut ok = true;
    if let Some(n) = f.take("against")
        && dec.string(n, "compare.against").as_deref() != Some("stable")
    {
        dec.error(location(n), "compare.against: only `stable` is supported");
        ok = false;
    }
    let mut pct = |f: &mut Fields<'_, '_>, key: &'static str, out: &mut f64| {
        if let Some(n) = f.take(key) {
            match dec.percent(n, key) {
                Some(w) => *out = w.percent() / 100.0,
                None => ok = false,
            }
        }
    };
    pct(&mut f, "latency_tolerance", &mut spec.latency_tolerance);
    pct(&mut f, "error_tolerance", &mut spec.error_tolerance);
    pct(&mut f, "confidence", &mut spec.confidence);
    if let Some(n) = f.take("critical")
        && let Some(items) = dec.sequence(n, "compare.critical")
    {
        spec.critical_errors = false;
        spec.critical_latency = false;
        for item in items {
            match dec.string(item, "compare.critical").as_deref() {
                Some("error_rate") => spec.critical_errors = true,
                Some("latency") => spec.critical_latency = true,
                Some(other) => {
                    dec.error_hint(
                        location(item),
                        format!("compare.critical: unknown metric `{other}`"),
                        "error_rate, latency",
                    );
                    ok = false;
                }
                None => ok = false,
            }
        }
    }
    for (key, out) in [
        ("pass_score", &mut spec.pass_score),
        ("marginal_score", &mut spec.marginal_score),
    ] {
        if let Some(n) = f.take(key) {
            match dec.integer(n, key, 0, 100) {
                Some(v) => *out = v as f64,
                None => ok = false,
            }
        }
    }
    f.finish(dec);
    ok.then_some(spec)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum StepContext {
    Forward,
    Rollback,
}

/// The steps of a `steps` list; `key_at` is its key's position, where a list longer
/// than the limit is reported (without decoding its steps).
fn decode_steps(
    dec: &mut Decoder<'_>,
    node: &Node<'_>,
    key_at: Location,
    what: &str,
    ctx: StepContext,
) -> Vec<Step> {
    let Some(items) = dec.sequence(node, what) else {
        return Vec::new();
    };
    let max = dec.limits.max_steps;
    if items.len() > max {
        dec.error_hint(
            key_at,
            format!("{what}: {} steps, more than the {max} a plan may hold", items.len()),
            "split this launch into several, or move repeated work into a script a `run` step calls",
        );
        return Vec::new();
    }
    let decoded: Vec<(Step, bool)> = items
        .iter()
        .filter_map(|item| decode_step(dec, item, ctx))
        .collect();
    let mut names = UniqueNames::default();
    for (step, explicit) in &decoded {
        if *explicit && !names.claim(&step.name) {
            dec.error_hint(
                step.location,
                format!("{what}: two steps are named `{}`", step.name),
                "step names identify steps in status and reports; give each a distinct `name`",
            );
        }
    }
    // Derived names (`pause 10s`) may repeat: number the repeats.
    decoded
        .into_iter()
        .map(|(mut step, explicit)| {
            if !explicit {
                step.name = names.derive(step.name);
            }
            step
        })
        .collect()
}

/// A step, and whether its name was given (not derived).
fn decode_step(dec: &mut Decoder<'_>, node: &Node<'_>, ctx: StepContext) -> Option<(Step, bool)> {
    let mut f = dec.fields(node, &schema::STEP)?;
    let at = f.at;
    let name = f.take("name").and_then(|n| dec.string(n, "step name"));

    let present: Vec<&str> = STEP_KINDS.iter().copied().filter(|k| f.has(k)).collect();
    let reserved = f.has_reserved();
    f.reject_reserved(dec);
    let kind_key = match present.as_slice() {
        [kind] => *kind,
        [] => {
            if !reserved {
                for k in STEP_KINDS {
                    f.take(k);
                }
                dec.error_hint(
                    at,
                    "step: no step kind given",
                    format!("a step has exactly one of: {}", STEP_KINDS.join(", ")),
                );
                f.finish(dec);
            }
            return None;
        }
        [first, second, ..] => {
            dec.error_hint(
                f.key_location(second).unwrap_or(at),
                format!("step: has both `{first}` and `{second}`"),
                "one kind per step: split it into two steps",
            );
            return None;
        }
    };

    if kind_key != "run" {
        for key in RUN_KEYS {
            if f.take(key).is_some() {
                let hint = match (*key, kind_key) {
                    ("timeout", "approve" | "wait" | "migrate") => {
                        format!("put it inside the step: `{kind_key}: {{ ..., timeout: 5m }}`")
                    }
                    ("timeout", "smoke" | "check") => format!(
                        "`{kind_key}: {{ ..., timeout: 5s }}` sets each request's or item's timeout"
                    ),
                    ("idempotent", _) => format!("`{kind_key}` steps are idempotent by nature"),
                    _ => "remove it".to_string(),
                };
                dec.error_hint(
                    f.key_location(key).unwrap_or(at),
                    format!("step: `{key}` applies to `run` steps only"),
                    hint,
                );
            }
        }
    }

    let value = f.take(kind_key)?;
    let decoded = match kind_key {
        "run" => decode_run(dec, &mut f, value).map(StepKind::Run),
        "traffic" => dec.percent(value, "traffic").map(StepKind::Traffic),
        "pause" => dec.duration(value, "pause").map(StepKind::Pause),
        "approve" => decode_approve(dec, value).map(StepKind::Approve),
        "wait" => decode_wait(dec, value).map(StepKind::Wait),
        "maintenance" => decode_switch(dec, value, "maintenance").map(StepKind::Maintenance),
        "analyze" => decode_analyze(dec, value).map(|a| StepKind::Analyze(Box::new(a))),
        // A bake is a pause the triggers watch over (they watch every step).
        "bake" => dec.fields(value, &schema::BAKE).and_then(|mut b| {
            let d = b
                .require(dec, "for")
                .and_then(|d| dec.duration(d, "bake.for"));
            b.finish(dec);
            d.map(StepKind::Pause)
        }),
        "check" => checks::decode_checklist(dec, value, "check").map(StepKind::Check),
        "smoke" => checks::decode_smoke(dec, value).map(StepKind::Smoke),
        "migrate" => checks::decode_migrate(dec, value).map(|m| StepKind::Migrate(Box::new(m))),
        "monitor" => decode_monitor(dec, value).map(|m| StepKind::Monitor(Box::new(m))),
        "flag" => decode_flag(dec, value).map(StepKind::Flag),
        _ => unreachable!("STEP_KINDS and this match agree"),
    };
    let after = f.take("after").and_then(|n| {
        if ctx == StepContext::Rollback {
            dec.error(
                location(n),
                "rollback.steps: `after` is for launch steps (a rollback cancels follow-ups)",
            );
            return None;
        }
        decode_after(dec, n)
    });
    f.finish(dec);
    let kind = decoded?;

    if ctx == StepContext::Rollback {
        let why = match kind {
            StepKind::Traffic(_) => {
                Some("traffic returns to stable automatically before rollback steps run")
            }
            StepKind::Approve(_) => Some("a rollback must never wait for a human"),
            StepKind::Monitor(_) => {
                Some("a rollback must not wait for checkpoints (watch the service with a launch)")
            }
            StepKind::Check(ref list)
                if list
                    .items
                    .iter()
                    .any(|i| matches!(i.kind, checks::CheckKind::Approval { .. })) =>
            {
                Some("a rollback must never wait for a human (this one has an `approval` item)")
            }
            StepKind::Migrate(ref m) if m.restore_on_rollback => Some(
                "`restore_on_rollback` on a rollback step would restore during the rollback itself",
            ),
            _ => None,
        };
        if let Some(why) = why {
            dec.error(
                at,
                format!(
                    "rollback.steps: `{}` steps are not allowed here: {why}",
                    kind.keyword()
                ),
            );
        }
    }
    let explicit = name.is_some();
    let name = name.unwrap_or_else(|| match (&kind, kind_key) {
        (StepKind::Pause(d), "bake") => format!("bake {}", humantime::format_duration(*d)),
        _ => default_name(&kind),
    });
    let step = Step {
        name,
        kind,
        location: at,
        after,
    };
    Some((step, explicit))
}

fn decode_after(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<FollowUp> {
    let mut f = dec.fields(node, &schema::AFTER)?;
    let delay = f
        .require(dec, "delay")
        .and_then(|n| dec.duration(n, "after.delay"));
    let command = f.require(dec, "run").and_then(|n| dec.text(n, "after.run"));
    let timeout = match f.take("timeout") {
        Some(n) => dec.duration(n, "after.timeout"),
        None => Some(defaults::RUN_TIMEOUT),
    };
    f.finish(dec);
    Some(FollowUp {
        delay: delay?,
        command: command?,
        timeout: timeout?,
    })
}

fn decode_run(dec: &mut Decoder<'_>, f: &mut Fields<'_, '_>, value: &Node<'_>) -> Option<RunStep> {
    let command = dec.text(value, "run");
    let timeout = match f.take("timeout") {
        Some(t) => dec.duration(t, "timeout"),
        None => Some(defaults::RUN_TIMEOUT),
    };
    let dir = f.take("dir").and_then(|d| dec.text(d, "dir"));
    let idempotent = f
        .take("idempotent")
        .map_or(Some(false), |i| dec.boolean(i, "idempotent"));
    let mut env = Vec::new();
    if let Some(node) = f.take("env")
        && let Some(mut vars) = dec.fields(node, &schema::ENV)
    {
        // Every key of `env` is a variable name.
        for (name, key_at, value) in vars.take_all() {
            if !is_env_name(&name) {
                dec.error(
                    key_at,
                    format!("env: `{name}` is not a valid environment variable name"),
                );
            }
            if let Some(v) = dec.text(value, "env value") {
                env.push((name, v));
            }
        }
    }
    Some(RunStep {
        command: command?,
        timeout: timeout?,
        env,
        dir,
        idempotent: idempotent?,
    })
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn decode_approve(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<ApproveStep> {
    let mut f = dec.fields(node, &schema::APPROVE)?;
    let role = f
        .require(dec, "role")
        .and_then(|r| dec.string(r, "approve.role"));
    let timeout = match f.take("timeout") {
        Some(t) => dec.duration(t, "approve.timeout").map(Some),
        None => Some(None),
    };
    f.finish(dec);
    Some(ApproveStep {
        role: role?,
        timeout: timeout?,
    })
}

/// An `http://` or `https://` URL (https verified against the system's roots).
fn check_http_url(
    dec: &mut Decoder<'_>,
    node: &Node<'_>,
    what: &str,
    url: &Text,
    example: &str,
) -> bool {
    if url.known().may_start_with(checks::HTTP_SCHEMES) {
        return true;
    }
    dec.error_hint(
        location(node),
        format!("{what}: `{url}` is not an http or https URL"),
        format!("e.g. `{example}`"),
    );
    false
}

fn decode_wait(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<WaitStep> {
    let mut f = dec.fields(node, &schema::WAIT)?;
    let url_node = f.require(dec, "http");
    let url = url_node.and_then(|u| dec.text(u, "wait.http"));
    if let (Some(u), Some(n)) = (&url, url_node) {
        check_http_url(dec, n, "wait.http", u, "http://127.0.0.1:9001/health");
    }
    let status = match f.take("status") {
        Some(s) => dec.integer(s, "wait.status", 100, 599).map(|s| s as u16),
        None => Some(defaults::WAIT_STATUS),
    };
    let consecutive = match f.take("consecutive") {
        Some(c) => dec
            .integer(c, "wait.consecutive", 1, 1000)
            .map(|c| c as u32),
        None => Some(defaults::WAIT_CONSECUTIVE),
    };
    let mut duration = |key: &'static str, what: &str, default| match f.take(key) {
        Some(n) => dec.duration(n, what),
        None => Some(default),
    };
    let interval = duration("interval", "wait.interval", defaults::WAIT_INTERVAL);
    let request_timeout = duration(
        "request_timeout",
        "wait.request_timeout",
        defaults::WAIT_REQUEST_TIMEOUT,
    );
    let timeout = duration("timeout", "wait.timeout", defaults::WAIT_TIMEOUT);
    f.finish(dec);
    Some(WaitStep {
        url: url?,
        status: status?,
        consecutive: consecutive?,
        interval: interval?,
        request_timeout: request_timeout?,
        timeout: timeout?,
    })
}

fn default_name(kind: &StepKind) -> String {
    match kind {
        StepKind::Run(run) => format!("run {}", first_line(run.command.template())),
        StepKind::Traffic(w) => format!("traffic {w}%"),
        StepKind::Pause(d) => format!("pause {}", humantime::format_duration(*d)),
        StepKind::Approve(a) => format!("approve by {}", a.role),
        StepKind::Wait(w) => format!("wait for {}", w.url),
        StepKind::Analyze(a) => format!("analyze {}", humantime::format_duration(a.duration)),
        StepKind::Maintenance(true) => "maintenance on".to_string(),
        StepKind::Maintenance(false) => "maintenance off".to_string(),
        StepKind::Check(list) => match list.items.as_slice() {
            [one] => format!("check {}", one.name),
            items => format!("check {} items", items.len()),
        },
        StepKind::Smoke(s) => match s.requests.as_slice() {
            [one] => format!("smoke {}", one.name),
            requests => format!("smoke {} requests", requests.len()),
        },
        StepKind::Migrate(m) => format!("migrate {}", first_line(m.command.template())),
        StepKind::Monitor(m) => {
            let last = m.checkpoints.last().copied().unwrap_or_default();
            format!("monitor {}", humantime::format_duration(last))
        }
        StepKind::Flag(f) => match f.change {
            FlagSetting::Percent(w) => format!("flag {} {w}%", f.name),
            FlagSetting::Enabled(true) => format!("flag {} on", f.name),
            FlagSetting::Enabled(false) => format!("flag {} off", f.name),
        },
    }
}

/// A command's first line, at most 48 characters, `…` when cut.
fn first_line(command: &str) -> String {
    let first = command.lines().next().unwrap_or_default().trim();
    let short: String = first.chars().take(48).collect();
    if short.len() < first.len() {
        format!("{short}…")
    } else {
        short
    }
}
