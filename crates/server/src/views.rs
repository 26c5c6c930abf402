//! Engine state → API bodies.

use liftoff_api as api;
use liftoff_driver::Snapshot;
use liftoff_engine::{Action, StepRef, StepState, StepStatus};

pub fn status(snap: &Snapshot, fleet: &liftoff_driver::fleet::Fleet) -> api::LaunchStatus {
    let launch = &snap.launch;
    let plan = launch.plan();
    let view = |step: StepRef| {
        let mut v = step_view(
            launch.step_name(step),
            kind(launch.action(step)),
            launch.step(step),
        );
        // Items not judged yet show as pending, so a status lists the whole checklist.
        if let Some(list) = launch.checklist_of(step) {
            let state = launch.step(step);
            v.checks = list
                .items
                .iter()
                .map(|item| match state.check(&item.name) {
                    Some(c) => check_view(c),
                    None => api::CheckView {
                        item: item.name.clone(),
                        critical: item.critical,
                        result: "pending".into(),
                        evidence: String::new(),
                        duration_ms: 0,
                        request: None,
                        expected: None,
                        actual: None,
                    },
                })
                .collect();
            if launch.in_flight().is_some_and(|(s, _)| s == step) {
                v.waiting_for = launch
                    .pending_sign_offs(step)
                    .iter()
                    .filter_map(|i| match &i.kind {
                        liftoff_plan::checks::CheckKind::Approval { role } => Some(role.clone()),
                        _ => None,
                    })
                    .collect();
            }
        }
        v
    };
    let touched = |s: &StepState| s.status != StepStatus::Pending;
    let mut rollback = Vec::new();
    if launch.rollback_cause().is_some() {
        if plan.router.is_some() {
            rollback.push(view(StepRef::RevertTraffic));
        }
        rollback.extend(
            (0..plan.steps.len())
                .rev()
                .filter(|&i| touched(&launch.restore_steps()[i]))
                .map(|i| view(StepRef::Restore(i))),
        );
        rollback.extend((0..plan.rollback.steps.len()).map(|i| view(StepRef::Rollback(i))));
    }
    let status = launch.status();
    api::LaunchStatus {
        id: snap.row.id.clone(),
        name: plan.name.clone(),
        service: plan.service.clone(),
        plan_path: snap.row.plan_path.clone(),
        status: status.as_str().into(),
        terminal: status.is_terminal(),
        reason: launch.reason(),
        weight: launch.weight().map(|w| w.percent()),
        created_at: snap.row.created_at.clone(),
        started_at: launch.started_at().map(|t| t.to_string()),
        ended_at: launch.ended_at().map(|t| t.to_string()),
        current_step: launch.in_flight().map(|(s, _)| launch.step_name(s)),
        decision_needed: launch.pending_decision().map(|(_, m)| m.to_string()),
        deployment_log: None,
        notifications: snap
            .records
            .iter()
            .filter_map(|(_, r)| match r {
                liftoff_engine::Record::Notified {
                    at,
                    channel,
                    event,
                    delivered,
                    attempts,
                    detail,
                    ..
                } => Some(api::NotificationView {
                    at: at.to_string(),
                    channel: channel.clone(),
                    event: event.clone(),
                    delivered: *delivered,
                    attempts: *attempts,
                    detail: detail.clone(),
                }),
                _ => None,
            })
            .collect(),
        checklist: plan.checklist.is_some().then(|| view(StepRef::Checklist)),
        baseline: touched(launch.baseline_step()).then(|| view(StepRef::Baseline)),
        steps: (0..plan.steps.len())
            .map(|i| view(StepRef::Forward(i)))
            .collect(),
        rollback,
        promote: touched(launch.promote_step()).then(|| view(StepRef::Promote)),
        evaluations: evaluations(snap, EVALUATIONS_SHOWN),
        traffic: match &plan.router {
            Some(liftoff_plan::RouterSpec::Builtin(b)) => fleet
                .status()
                .iter()
                .find(|r| r.name == plan.service)
                .map(|r| route(r, Some(b), crate::fleet::views(fleet))),
            // HAProxy's and nginx's: filled in by the caller, which asks the driver.
            _ => None,
        },
    }
}

/// How many of the latest evaluations a status carries.
const EVALUATIONS_SHOWN: usize = 20;

fn evaluations(snap: &Snapshot, last: usize) -> Vec<api::EvaluationView> {
    use liftoff_engine::Record;
    let launch = &snap.launch;
    let all: Vec<api::EvaluationView> = snap
        .records
        .iter()
        .filter_map(|(_, r)| match r {
            Record::Evaluated {
                at,
                step,
                subject,
                verdict,
                value,
                reason,
                dry_run,
            } => Some(api::EvaluationView {
                at: at.to_string(),
                step: step.map(|s| launch.step_name(s)),
                subject: subject.clone(),
                verdict: verdict.clone(),
                value: *value,
                reason: reason.clone(),
                dry_run: *dry_run,
            }),
            Record::TriggerFired {
                at,
                trigger,
                action,
                detail,
            } => Some(api::EvaluationView {
                at: at.to_string(),
                step: None,
                subject: trigger.clone(),
                verdict: format!("fired ({action})"),
                value: None,
                reason: detail.clone(),
                dry_run: false,
            }),
            // What came of its kill switch, journaled after the firing.
            Record::FlagDisabled {
                at,
                trigger,
                flag,
                ok,
                detail,
            } => Some(api::EvaluationView {
                at: at.to_string(),
                step: None,
                subject: trigger.clone(),
                verdict: if *ok {
                    "flag off"
                } else {
                    "flag not turned off"
                }
                .to_string(),
                value: None,
                reason: format!("`{flag}`: {detail}"),
                dry_run: false,
            }),
            _ => None,
        })
        .collect();
    let skip = all.len().saturating_sub(last);
    all.into_iter().skip(skip).collect()
}

pub fn schedule(r: &liftoff_store::ScheduleRow) -> api::ScheduleView {
    api::ScheduleView {
        id: r.id.clone(),
        launch_id: r.launch_id.clone(),
        step: r.step.clone(),
        due_at: r.due_at.clone(),
        command: r.command.clone(),
        status: r.status.clone(),
        result: r.result.clone(),
        updated_at: r.updated_at.clone(),
    }
}

/// A route's split and figures. `settings` are the `router` of the plan that configured
/// it: an upstream it wrote with `${VAR}` is shown as written, never resolved.
pub fn route(
    r: &liftoff_router::RouteStatus,
    settings: Option<&liftoff_plan::BuiltinRouter>,
    routers: Vec<api::RouterView>,
) -> api::RouteView {
    api::RouteView {
        routers,
        name: r.name.clone(),
        listen: r.listen.to_string(),
        weight: f64::from(r.weight_bp) / 100.0,
        maintenance: r.maintenance,
        versions: r
            .versions
            .iter()
            .map(|v| (v, written(v, settings)))
            .map(|(v, written)| api::VersionView {
                version: v.role.label().into(),
                upstream: v
                    .url
                    .split(',')
                    .map(|u| shown(u, &written))
                    .collect::<Vec<_>>()
                    .join(","),
                in_flight: v.in_flight,
                healthy: v.health.healthy,
                health_failures: v.health.consecutive_failures,
                health_checked: v.health.checked,
                last_health_error: v.health.last_error.clone(),
                last_10s: window(&v.last_10s),
                last_60s: window(&v.last_60s),
                instances: v
                    .instances
                    .iter()
                    .map(|i| api::InstanceView {
                        url: shown(&i.url, &written),
                        healthy: i.health.healthy,
                        health_checked: i.health.checked,
                        last_health_error: i.health.last_error.clone(),
                        ejected: i.ejected,
                        ejections: i.ejections,
                        in_flight: i.in_flight,
                        requests: i.requests,
                        failures: i.failures,
                    })
                    .collect(),
                not_measured: Vec::new(),
            })
            .collect(),
        router: Some("builtin".into()),
        target: None,
        error: None,
    }
}

/// A running launch's HAProxy or nginx as a route: the weight liftoff last applied
/// (`weight_percent`, from the journal) and what each version served, as its router
/// counted it. Fields it cannot count are listed in each version's `not_measured`.
pub fn external_route(
    f: &liftoff_driver::external::RouteFigures,
    weight_percent: Option<f64>,
) -> api::RouteView {
    use liftoff_plan::RouterSpec;
    use liftoff_plan::condition::Version;
    let plan = &f.plan;
    let (target, [stable, candidate]) = match &plan.router {
        Some(RouterSpec::Haproxy(h)) => (
            format!(
                "HAProxy backend `{}` (runtime API at {})",
                h.backend, h.socket
            ),
            [h.stable.clone(), h.candidate.clone()],
        ),
        Some(RouterSpec::Nginx(n)) => (
            format!("nginx upstream `{}` (include {})", n.upstream, n.include),
            [n.stable.join(","), n.candidate.join(",")],
        ),
        _ => (String::new(), [String::new(), String::new()]),
    };
    let not_measured: Vec<String> = f
        .kind
        .not_measured()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let (versions, error) = match &f.versions {
        Ok(versions) => (
            versions
                .iter()
                .map(|v| {
                    let window = |secs: u64| {
                        v.windows
                            .iter()
                            .find(|w| w.seconds == secs)
                            .map_or_else(|| empty_window(secs), external_window)
                    };
                    api::VersionView {
                        version: v.version.label().into(),
                        upstream: match v.version {
                            Version::Stable => stable.clone(),
                            Version::Candidate => candidate.clone(),
                        },
                        in_flight: 0,
                        healthy: false,
                        health_failures: 0,
                        health_checked: false,
                        last_health_error: None,
                        last_10s: window(10),
                        last_60s: window(60),
                        instances: Vec::new(),
                        not_measured: not_measured.clone(),
                    }
                })
                .collect(),
            None,
        ),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    api::RouteView {
        name: plan.service.clone(),
        listen: String::new(),
        // 0 until liftoff applied a weight (the launch's `weight` is null until then).
        weight: weight_percent.unwrap_or(0.0),
        maintenance: false,
        versions,
        routers: Vec::new(),
        router: Some(f.kind.label().into()),
        target: Some(target),
        error,
    }
}

fn external_window(w: &liftoff_driver::external::WindowFigures) -> api::WindowView {
    api::WindowView {
        seconds: w.seconds,
        requests: w.requests,
        rps: w.rps,
        error_rate: w.error_rate,
        errors_upstream_5xx: 0,
        errors_connect: 0,
        errors_timeout: 0,
        client_aborts: 0,
        failed: Some(w.failed),
        p50_ms: w.p50_ms,
        p95_ms: w.p95_ms,
        p99_ms: w.p99_ms,
    }
}

fn empty_window(seconds: u64) -> api::WindowView {
    external_window(&liftoff_driver::external::WindowFigures {
        seconds,
        span_secs: 0.0,
        requests: 0,
        failed: 0,
        error_rate: None,
        rps: 0.0,
        p50_ms: None,
        p95_ms: None,
        p99_ms: None,
    })
}

/// The instance URLs as the plan wrote them, for a version of a route it configured.
fn written(
    v: &liftoff_router::VersionStatus,
    settings: Option<&liftoff_plan::BuiltinRouter>,
) -> Vec<liftoff_plan::Text> {
    settings
        .map(|b| match v.role {
            liftoff_router::Role::Stable => b.stable.clone(),
            liftoff_router::Role::Candidate => b.candidate.clone(),
        })
        .unwrap_or_default()
}

/// How an instance's address is shown: as the plan wrote it when it was a `${VAR}`
/// (never resolved); otherwise the router's, without any credentials.
fn shown(url: &str, written: &[liftoff_plan::Text]) -> String {
    // The router keeps `http://host:port` without a trailing slash.
    if let Some(t) = written
        .iter()
        .find(|t| t.expose().trim_end_matches('/') == url)
    {
        return match t.template() == t.expose() {
            true => url.to_string(),
            false => t.template().to_string(),
        };
    }
    match url.split_once("://") {
        Some((scheme, rest)) if rest.contains('@') => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            format!("{scheme}://{}@{host}", liftoff_driver::REDACTED)
        }
        _ => url.to_string(),
    }
}

fn window(w: &liftoff_router::Window) -> api::WindowView {
    use liftoff_router::ErrorSource;
    let ms = |q| w.quantile(q).map(|d| d.as_secs_f64() * 1000.0);
    let rate = w.error_rate();
    api::WindowView {
        seconds: w.seconds,
        requests: w.requests,
        rps: w.rps(),
        error_rate: (!rate.is_nan()).then_some(rate),
        errors_upstream_5xx: w.errors[ErrorSource::Upstream5xx as usize],
        errors_connect: w.errors[ErrorSource::Connect as usize],
        errors_timeout: w.errors[ErrorSource::Timeout as usize],
        client_aborts: w.errors[ErrorSource::ClientAbort as usize],
        failed: Some(w.failed()),
        p50_ms: ms(0.5),
        p95_ms: ms(0.95),
        p99_ms: ms(0.99),
    }
}

fn kind(action: Action<'_>) -> String {
    match action {
        Action::Step(s) => s.kind.keyword().into(),
        Action::SetWeight(_) => "weight".into(),
        Action::Checklist(_) => "checklist".into(),
        Action::Restore(_) => "restore".into(),
        Action::Announce => "notify".into(),
    }
}

fn step_view(name: String, kind: String, s: &StepState) -> api::StepView {
    let outcome = s.outcome.as_ref();
    api::StepView {
        name,
        kind,
        status: s.status.as_str().into(),
        attempts: s.attempts,
        started_at: s.started_at.map(|t| t.to_string()),
        ended_at: s.ended_at.map(|t| t.to_string()),
        deadline: s.deadline.map(|t| t.to_string()),
        message: outcome.and_then(|o| o.message.clone()),
        output: outcome.and_then(|o| o.output.clone()),
        approval: s.approval.as_ref().map(|a| api::ApprovalView {
            role: a.role.clone(),
            by: a.by.clone(),
            comment: a.comment.clone(),
            at: a.at.to_string(),
        }),
        skipped_reason: s.skipped_reason.clone(),
        checks: s.checks.iter().map(check_view).collect(),
        waiting_for: Vec::new(),
        backup: s.backup.as_ref().map(|b| api::BackupView {
            path: b.path.clone(),
            bytes: b.bytes,
            duration_ms: b.duration_ms,
            detail: b.detail.clone(),
        }),
    }
}

pub fn check_view(c: &liftoff_engine::CheckResult) -> api::CheckView {
    api::CheckView {
        item: c.item.clone(),
        critical: c.critical,
        result: if c.passed { "passed" } else { "failed" }.into(),
        evidence: c.evidence.clone(),
        duration_ms: c.duration_ms,
        request: c.request.clone(),
        expected: c.expected.clone(),
        actual: c.actual.clone(),
    }
}
