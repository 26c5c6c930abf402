//! Checklists, smoke tests, migrations and restores: steps that report what they judged,
//! item by item, as `Checked` events while they run.

use std::sync::Arc;
use std::time::Duration;

use liftoff_checks::ItemResult;
use liftoff_checks::migrate::{self, QueryResult};
use liftoff_engine::{BackupInfo, CheckResult, Event, Outcome, StepResult};
use liftoff_plan::RunStep;
use liftoff_plan::checks::{CheckItem, CheckKind, Checklist, MigrateStep, SmokeStep};
use tokio_util::sync::CancellationToken;

use crate::analysis::Report;
use crate::execute::{Attempt, StepContext, cancelled, run_command};
use crate::ports::sleep_until;
use crate::traffic::humantime_short;

fn record(item: &CheckItem, r: ItemResult) -> CheckResult {
    CheckResult {
        item: item.name.clone(),
        critical: item.critical,
        passed: r.passed,
        evidence: r.evidence,
        duration_ms: u64::try_from(r.duration.as_millis()).unwrap_or(u64::MAX),
        request: r.request,
        expected: r.expected,
        actual: r.actual,
    }
}

fn checked(report: &Report, at: &Attempt<'_>, result: CheckResult) {
    report(Event::Checked {
        step: at.step,
        attempt: at.attempt,
        result,
    });
}

/// Run every automatic item at once and report each as it finishes; report a sign-off
/// that does not come in time as failed. The engine decides the step when the last
/// result is in, and cancels this attempt; until then it waits.
pub(crate) async fn run(
    ctx: &StepContext,
    at: &Attempt<'_>,
    list: &Checklist,
    report: &Report,
    cancel: &CancellationToken,
) -> Outcome {
    let mut tasks = tokio::task::JoinSet::new();
    let env = Arc::new(ctx.checks.clone());
    // The engine's deadline is the longest sign-off wait from the first start.
    let longest = list
        .items
        .iter()
        .filter(|i| matches!(i.kind, CheckKind::Approval { .. }))
        .map(|i| i.timeout)
        .max()
        .unwrap_or_default();
    for item in list.items.iter().cloned() {
        let env = env.clone();
        let report = report.clone();
        let (step, attempt) = (at.step, at.attempt);
        let clock = ctx.clock.clone();
        let sign_off_by = match &item.kind {
            CheckKind::Approval { .. } => Some(at.deadline.map(|d| {
                let early = jiff::SignedDuration::try_from(longest.saturating_sub(item.timeout))
                    .unwrap_or_default();
                d.checked_sub(early).unwrap_or(d)
            })),
            _ => None,
        };
        tasks.spawn(async move {
            let result = match (&item.kind, sign_off_by) {
                (CheckKind::Approval { role }, Some(deadline)) => {
                    // A sign-off arrives as an `approve` event; this only times it out.
                    match deadline {
                        Some(d) => sleep_until(clock.as_ref(), d).await,
                        None => std::future::pending().await,
                    }
                    ItemResult::fail(format!(
                        "no sign-off by role `{role}` within {}",
                        humantime_short(item.timeout)
                    ))
                }
                _ => liftoff_checks::run_item(&item, &env).await,
            };
            report(Event::Checked {
                step,
                attempt,
                result: record(&item, result),
            });
        });
    }
    cancel.cancelled().await;
    tasks.abort_all();
    cancelled()
}

/// Requests in order; every one is reported; the first failure does not stop the rest
/// (a smoke report that shows everything broken at once is worth more).
pub(crate) async fn smoke(
    ctx: &StepContext,
    at: &Attempt<'_>,
    smoke: &SmokeStep,
    report: &Report,
    cancel: &CancellationToken,
) -> Outcome {
    let mut failed = Vec::new();
    for request in &smoke.requests {
        let result = tokio::select! {
            r = liftoff_checks::run_item(request, &ctx.checks) => r,
            () = cancel.cancelled() => return cancelled(),
        };
        if !result.passed {
            failed.push(format!("`{}`: {}", request.name, result.evidence));
        }
        checked(report, at, record(request, result));
    }
    let total = smoke.requests.len();
    match failed.as_slice() {
        [] => Outcome::new(
            StepResult::Succeeded,
            format!("{total}/{total} requests passed"),
        ),
        [first, ..] => Outcome::new(
            StepResult::Failed,
            format!("{}/{total} requests failed; first {first}", failed.len()),
        ),
    }
}

/// Back up, migrate, verify.
pub(crate) async fn migrate(
    ctx: &StepContext,
    at: &Attempt<'_>,
    m: &MigrateStep,
    report: &Report,
    cancel: &CancellationToken,
) -> Outcome {
    let name = format!("{}-attempt-{}", step_file_name(at), at.attempt);
    let started = std::time::Instant::now();
    let backup = tokio::select! {
        b = migrate::backup(m, &ctx.checks, &ctx.backups, &name) => b,
        () = cancel.cancelled() => return cancelled(),
    };
    let backup = match backup {
        Ok(b) => b,
        Err(e) => {
            return Outcome::new(
                StepResult::Failed,
                format!("backup failed, nothing was migrated: {e}"),
            );
        }
    };
    report(Event::BackupTaken {
        step: at.step,
        attempt: at.attempt,
        backup: BackupInfo {
            path: backup.path.display().to_string(),
            bytes: backup.bytes,
            duration_ms: millis(backup.duration),
            detail: backup.detail.clone(),
        },
    });
    let run = RunStep {
        command: m.command.clone(),
        timeout: m.timeout,
        env: vec![("LIFTOFF_DATABASE".to_string(), m.database.clone())],
        dir: m.dir.clone(),
        idempotent: false,
    };
    let deadline = ctx.clock.now().checked_add(m.timeout).ok();
    let ran = run_command(ctx, at.tag, "migrate", &run, deadline, at.weight, cancel).await;
    if ran.result != StepResult::Succeeded {
        let message = format!(
            "migration command: {}",
            ran.message.clone().unwrap_or_default()
        );
        return Outcome {
            message: Some(message),
            ..ran
        };
    }
    let results = tokio::select! {
        r = migrate::verify(m, &ctx.checks, &m.verify) => r,
        () = cancel.cancelled() => return cancelled(),
    };
    let failed = report_queries(report, at, "verify", &results);
    let output = ran.output.unwrap_or_default();
    let outcome = match failed {
        None => Outcome::new(
            StepResult::Succeeded,
            format!(
                "migrated in {} (backup {} bytes; {} verify queries passed)",
                humantime_short(Duration::from_millis(millis(started.elapsed()))),
                backup.bytes,
                results.len()
            ),
        ),
        Some(why) => Outcome::new(StepResult::Failed, format!("verify failed: {why}")),
    };
    outcome.with_output(output)
}

/// Put the database back from the backup its migrate step took, then check it.
pub(crate) async fn restore(
    ctx: &StepContext,
    at: &Attempt<'_>,
    m: &MigrateStep,
    report: &Report,
    cancel: &CancellationToken,
) -> Outcome {
    let Some(backup) = at.backup else {
        return Outcome::new(StepResult::Failed, "no backup was taken");
    };
    let path = std::path::Path::new(&backup.path);
    let restored = tokio::select! {
        r = migrate::restore(m, &ctx.checks, path) => r,
        () = cancel.cancelled() => return cancelled(),
    };
    let message = match restored {
        Ok(message) => message,
        Err(e) => return Outcome::new(StepResult::Failed, format!("restore failed: {e}")),
    };
    let results = tokio::select! {
        r = migrate::verify(m, &ctx.checks, &m.restore_verify) => r,
        () = cancel.cancelled() => return cancelled(),
    };
    match report_queries(report, at, "restore_verify", &results) {
        None => Outcome::new(StepResult::Succeeded, message),
        Some(why) => Outcome::new(
            StepResult::Failed,
            format!("{message}; but restore_verify failed: {why}"),
        ),
    }
}

/// Report each query; the first failure, described, if any.
fn report_queries(
    report: &Report,
    at: &Attempt<'_>,
    label: &str,
    results: &[QueryResult],
) -> Option<String> {
    let mut first_failure = None;
    for (i, q) in results.iter().enumerate() {
        let actual = q.actual.as_deref().unwrap_or("NULL");
        let evidence = match &q.error {
            Some(e) => format!("{} failed: {e}", q.query),
            None => format!("{} → {actual} (expected {})", q.query, q.expected),
        };
        if !q.passed && first_failure.is_none() {
            first_failure = Some(evidence.clone());
        }
        checked(
            report,
            at,
            CheckResult {
                item: format!("{label} #{}", i + 1),
                critical: true,
                passed: q.passed,
                evidence,
                duration_ms: 0,
                request: Some(q.query.clone()),
                expected: Some(q.expected.clone()),
                actual: Some(q.error.clone().unwrap_or_else(|| actual.to_string())),
            },
        );
    }
    first_failure
}

fn step_file_name(at: &Attempt<'_>) -> String {
    match at.step {
        liftoff_engine::StepRef::Forward(i) => format!("step-{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
