//! What one section asks of another, checked once every section is decoded. A gate is
//! never half-enforced: one that reads the router's observations needs
//! `router: { kind: builtin }` (or `kind: haproxy` / `kind: nginx`, for the numbers they
//! have); a PromQL gate, trigger or checklist item needs
//! `metrics: { kind: prometheus }`; a `traffic` step or a trigger needs a router.

use crate::checks;
use crate::decode::Decoder;
use crate::model::{Gate, Location, MetricsSpec, RollbackSpec, RouterSpec, Step, StepKind};

/// Every requirement the plan's sections put on each other; `rollback_at` is where an
/// unmet one of `rollback.on` is reported.
pub(crate) fn check(
    dec: &mut Decoder<'_>,
    router: &Option<RouterSpec>,
    metrics: &Option<MetricsSpec>,
    checklist: &Option<checks::Checklist>,
    steps: &[Step],
    rollback: &RollbackSpec,
    rollback_at: Location,
) {
    let builtin = matches!(router, Some(RouterSpec::Builtin(_)));
    let haproxy = matches!(router, Some(RouterSpec::Haproxy(_)));
    let nginx = matches!(router, Some(RouterSpec::Nginx(_)));
    // Conditions read the router's counts: the builtin router's, HAProxy's `show stat`,
    // or nginx's access log.
    let observes = router.as_ref().is_some_and(RouterSpec::observes);
    if haproxy {
        haproxy_limits(dec, steps, rollback, rollback_at);
    }
    if nginx {
        nginx_limits(dec, steps, rollback, rollback_at);
    }
    let prometheus = matches!(metrics, Some(MetricsSpec::Prometheus { .. }));
    for step in steps {
        let StepKind::Analyze(a) = &step.kind else {
            continue;
        };
        let reads_router = a.gates.iter().any(|g| matches!(g, Gate::Builtin(_)));
        if (reads_router && !observes) || (a.compare.is_some() && !builtin && !haproxy && !nginx) {
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
        && !observes
    {
        dec.error_hint(
            rollback_at,
            "rollback.on: condition triggers read the builtin router's observations",
            "use `router: { kind: builtin }`, or PromQL triggers (`{ query, condition }`) with `metrics: { kind: prometheus }`",
        );
    }
    if !rollback.triggers.is_empty() && router.is_none() {
        dec.error_hint(
            rollback_at,
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
            rollback_at,
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
            if reads_router && !observes {
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
}

/// What HAProxy's runtime API cannot give: a latency distribution (`show stat` has only
/// averages over the last 1024 requests, and no window), so no quantile conditions and
/// no `compare` (it judges latency too); no consecutive health-check failures; and
/// weights are whole numbers (liftoff sets them on a 0..100 scale).
fn haproxy_limits(
    dec: &mut Decoder<'_>,
    steps: &[Step],
    rollback: &RollbackSpec,
    rollback_at: Location,
) {
    use crate::condition::Metric;
    let refused = |g: &Gate| match g {
        Gate::Builtin(c) => match c.metric {
            Metric::P50 | Metric::P95 | Metric::P99 => Some((
                c.text.clone(),
                "HAProxy reports only an average response time over its last 1024 requests, not a distribution over a window",
            )),
            Metric::HealthFailures => Some((
                c.text.clone(),
                "HAProxy's runtime API reports no count of consecutive failed checks",
            )),
            _ => None,
        },
        Gate::Query(_) => None,
    };
    let hint = "with `kind: haproxy`, judge `error_rate`, `requests` and `rps`; for latency, use PromQL gates on HAProxy's Prometheus exporter with `metrics: { kind: prometheus }`";
    for step in steps.iter().chain(&rollback.steps) {
        let gates = match &step.kind {
            StepKind::Analyze(a) => {
                if a.compare.is_some() {
                    dec.error_hint(
                        step.location,
                        format!("step `{}`: `compare: stable` is not available with `router: {{ kind: haproxy }}`: it judges latency distributions, which HAProxy does not report", step.name),
                        hint,
                    );
                }
                &a.gates
            }
            StepKind::Monitor(m) => &m.gates,
            StepKind::Traffic(w) if w.basis_points() % 100 != 0 => {
                dec.error_hint(
                    step.location,
                    format!("step `{}`: `traffic: {w}%` is not a whole percentage", step.name),
                    "HAProxy routers set whole-number weights (stable 100-w, candidate w); use e.g. `traffic: 1%`",
                );
                continue;
            }
            _ => continue,
        };
        for (text, why) in gates.iter().filter_map(refused) {
            dec.error_hint(
                step.location,
                format!("step `{}`: `{text}` cannot be judged with `router: {{ kind: haproxy }}`: {why}", step.name),
                hint,
            );
        }
    }
    for (text, why) in rollback.triggers.iter().filter_map(|t| refused(&t.gate)) {
        dec.error_hint(
            rollback_at,
            format!(
                "rollback.on: `{text}` cannot be judged with `router: {{ kind: haproxy }}`: {why}"
            ),
            hint,
        );
    }
}

/// What nginx's access log cannot give: consecutive health-check failures (open-source
/// nginx has no active checks); and weights are whole numbers (0..100 scale). Its lines
/// carry `$request_time`, so latency conditions and `compare` are judged.
fn nginx_limits(
    dec: &mut Decoder<'_>,
    steps: &[Step],
    rollback: &RollbackSpec,
    rollback_at: Location,
) {
    use crate::condition::Metric;
    let refused = |g: &Gate| match g {
        Gate::Builtin(c) if c.metric == Metric::HealthFailures => Some(c.text.clone()),
        _ => None,
    };
    let why = "open-source nginx runs no health checks, so there are no consecutive failed checks to count";
    let hint = "with `kind: nginx`, judge `error_rate`, `requests`, `rps` and latency (`p50`, `p95`, `p99`)";
    for step in steps.iter().chain(&rollback.steps) {
        let gates = match &step.kind {
            StepKind::Analyze(a) => &a.gates,
            StepKind::Monitor(m) => &m.gates,
            StepKind::Traffic(w) if w.basis_points() % 100 != 0 => {
                dec.error_hint(
                    step.location,
                    format!("step `{}`: `traffic: {w}%` is not a whole percentage", step.name),
                    "nginx routers write whole-number weights (stable 100-w, candidate w); use e.g. `traffic: 1%`",
                );
                continue;
            }
            _ => continue,
        };
        for text in gates.iter().filter_map(refused) {
            dec.error_hint(
                step.location,
                format!(
                    "step `{}`: `{text}` cannot be judged with `router: {{ kind: nginx }}`: {why}",
                    step.name
                ),
                hint,
            );
        }
    }
    for text in rollback.triggers.iter().filter_map(|t| refused(&t.gate)) {
        dec.error_hint(
            rollback_at,
            format!(
                "rollback.on: `{text}` cannot be judged with `router: {{ kind: nginx }}`: {why}"
            ),
            hint,
        );
    }
}
