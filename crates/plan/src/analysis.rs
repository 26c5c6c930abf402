//! What judges a version: the `metrics:` provider, gates (conditions on the builtin
//! router's observations, PromQL queries) and the `analyze` and `monitor` steps that
//! evaluate them. Decoding only; judging is `liftoff-analysis`'s job.

use crate::condition::{self, Condition};
use crate::decode::{Decoder, Fields, Node, check_http_url, location};
use crate::model::{
    AnalyzeStep, CompareSpec, Gate, MetricsSpec, MonitorStep, OnInconclusive, QueryGate, defaults,
};
use crate::schema;

/// A condition written in a YAML string: errors point into the string.
pub(crate) fn decode_condition(
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
pub(crate) fn decode_query_fields(
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

pub(crate) fn decode_metrics(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<MetricsSpec> {
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

pub(crate) fn decode_monitor(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<MonitorStep> {
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

pub(crate) fn decode_analyze(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<AnalyzeStep> {
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
