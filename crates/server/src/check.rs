//! A checklist run outside a launch: `liftoff check PLAN` (in the CLI's process) and
//! `POST /api/v1/checks` (on the daemon, from its network vantage point).

use std::path::PathBuf;
use std::time::Duration;

use liftoff_api as api;
use liftoff_plan::Plan;
use liftoff_plan::checks::{CheckKind, Checklist, Tally};

/// Run every item of the plan's checklist at once. `approval` items cannot be given
/// outside a launch: they count as not given.
pub async fn run(plan: &Plan, workdir: PathBuf) -> api::CheckReport {
    liftoff_checks::init_crypto();
    let empty = Checklist {
        items: Vec::new(),
        pass: Default::default(),
    };
    let list = plan.checklist.as_ref().unwrap_or(&empty);
    let mut vars: Vec<(String, String)> = plan
        .variables
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    vars.push(("LIFTOFF_SERVICE".into(), plan.service.clone()));
    let env = liftoff_checks::Env {
        workdir,
        vars,
        prometheus: plan.metrics.as_ref().map(
            |liftoff_plan::MetricsSpec::Prometheus { url, timeout }| {
                (url.expose().to_string(), *timeout)
            },
        ),
        redactor: liftoff_checks::Redactor::new(plan.variables.redactable_values()),
    };
    let results = liftoff_checks::run_items(&list.items, &env).await;
    let tally = Tally::of(
        list.items
            .iter()
            .zip(&results)
            .map(|(i, r)| (i, Some(r.passed))),
    );
    let items = list
        .items
        .iter()
        .zip(results)
        .map(|(item, r)| {
            let pending = matches!(item.kind, CheckKind::Approval { .. });
            api::CheckView {
                item: item.name.clone(),
                critical: item.critical,
                result: match (pending, r.passed) {
                    (true, _) => "not given",
                    (false, true) => "passed",
                    (false, false) => "failed",
                }
                .into(),
                evidence: r.evidence,
                duration_ms: millis(r.duration),
                request: r.request,
                expected: r.expected,
                actual: r.actual,
            }
        })
        .collect();
    api::CheckReport {
        verdict: if tally.go(list.pass) { "GO" } else { "NO-GO" }.into(),
        critical_passed: tally.critical_passed,
        critical_total: tally.critical_total,
        passed: tally.passed,
        total: tally.total,
        pass_critical: list.pass.critical.percent(),
        pass_overall: list.pass.overall.percent(),
        items,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
