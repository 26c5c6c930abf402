//! Analysis in the shell: `analyze` steps and rollback triggers, fed by a
//! [`MetricSource`]. The deciding is pure (`liftoff-analysis`); this module samples,
//! reports every evaluation to the actor (which journals it), and keeps time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use liftoff_analysis::{Compare, Evaluation, Verdict, evaluate, judge};
use liftoff_engine::{Event, Outcome, StepRef, StepResult};
use liftoff_plan::condition::{Condition, Metric, Version, format_value};
use liftoff_plan::{AnalyzeStep, OnInconclusive, RollbackSpec, defaults};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::ports::MetricSource;

/// Hands an event to the launch's actor (which journals it in order).
pub type Report = Arc<dyn Fn(Event) + Send + Sync>;

/// Below this many requests in its window, a trigger on a rate or latency stays quiet:
/// one failed request out of two is not a 50% error rate worth a rollback.
pub const TRIGGER_MIN_REQUESTS: u64 = 10;

async fn evaluate_gate(
    metrics: &dyn MetricSource,
    gate: &Condition,
    window: Duration,
    since: Instant,
    min_requests: u64,
) -> Evaluation {
    match metrics
        .sample(gate.version, gate.window.unwrap_or(window), since)
        .await
    {
        Ok(sample) => evaluate(gate, &sample, min_requests),
        Err(e) => Evaluation {
            verdict: Verdict::Inconclusive,
            value: f64::NAN,
            reason: format!("metric source failed: {e}"),
        },
    }
}

pub async fn analyze(
    metrics: Option<&dyn MetricSource>,
    step: StepRef,
    a: &AnalyzeStep,
    report: &Report,
    cancel: &CancellationToken,
) -> Outcome {
    let Some(metrics) = metrics else {
        return Outcome::new(
            StepResult::Failed,
            "no metric source: analysis needs `router: { kind: builtin }`",
        );
    };
    let started = Instant::now();
    let (mut evaluations, mut failures, mut inconclusives) = (0u32, 0u32, 0u32);
    let mut last_failure = String::new();
    loop {
        tokio::select! {
            () = tokio::time::sleep(a.interval) => {}
            () = cancel.cancelled() => return Outcome::new(StepResult::Cancelled, "cancelled"),
        }
        evaluations += 1;
        let mut results: Vec<(String, Verdict, f64, String)> = Vec::new();
        for gate in &a.gates {
            let e = evaluate_gate(metrics, gate, a.interval, started, a.min_requests).await;
            results.push((gate.text.clone(), e.verdict, e.value, e.reason));
        }
        if let Some(spec) = &a.compare {
            let cfg = Compare {
                latency_tolerance: spec.latency_tolerance,
                error_tolerance: spec.error_tolerance,
                confidence: spec.confidence,
                min_requests: a.min_requests,
                critical_errors: spec.critical_errors,
                critical_latency: spec.critical_latency,
                pass_score: spec.pass_score,
                marginal_score: spec.marginal_score,
            };
            let (c, s) = (
                metrics
                    .sample(Version::Candidate, a.interval, started)
                    .await,
                metrics.sample(Version::Stable, a.interval, started).await,
            );
            let (verdict, score, reason) = match (c, s) {
                (Ok(c), Ok(s)) => {
                    let j = judge(&c, &s, &cfg);
                    let verdict = match j.outcome {
                        liftoff_analysis::JudgeOutcome::Pass => Verdict::Successful,
                        liftoff_analysis::JudgeOutcome::Fail => Verdict::Failed,
                        // Marginal is a question for a human, like too little data.
                        _ => Verdict::Inconclusive,
                    };
                    (verdict, j.score, j.summary)
                }
                (Err(e), _) | (_, Err(e)) => (
                    Verdict::Inconclusive,
                    f64::NAN,
                    format!("metric source failed: {e}"),
                ),
            };
            results.push(("compare: stable".to_string(), verdict, score, reason));
        }
        for (subject, verdict, value, reason) in results {
            match verdict {
                Verdict::Failed => {
                    failures += 1;
                    last_failure = format!("`{subject}`: {reason}");
                }
                Verdict::Inconclusive => inconclusives += 1,
                Verdict::Successful => {}
            }
            report(Event::Observed {
                step: Some(step),
                subject,
                verdict: verdict.label().to_string(),
                value: Some(value),
                reason,
                dry_run: a.dry_run,
            });
        }
        if !a.dry_run {
            if failures > a.failure_limit {
                return Outcome::new(
                    StepResult::Failed,
                    format!(
                        "{failures} failed evaluation(s), {} allowed; last {last_failure}",
                        a.failure_limit
                    ),
                );
            }
            if inconclusives > a.inconclusive_limit {
                let why = format!(
                    "{inconclusives} inconclusive evaluation(s), {} allowed (too little data or no metrics)",
                    a.inconclusive_limit
                );
                return match a.on_inconclusive {
                    OnInconclusive::Fail => Outcome::new(StepResult::Failed, why),
                    OnInconclusive::Pause => {
                        report(Event::Hold {
                            reason: why.clone(),
                        });
                        Outcome::new(StepResult::Succeeded, format!("{why}: holding for a human"))
                    }
                };
            }
        }
        if started.elapsed() >= a.duration {
            let shadow = if a.dry_run {
                " (dry run: nothing enforced)"
            } else {
                ""
            };
            return Outcome::new(
                StepResult::Succeeded,
                format!(
                    "{evaluations} evaluations, {failures} failed, {inconclusives} inconclusive{shadow}"
                ),
            );
        }
    }
}

/// Watch the plan's rollback triggers while `armed` says so (from the first non-zero
/// candidate weight to the end of the launch). Journals each crossing and clearing,
/// and fires a trigger once its condition has held for its `for` duration.
pub async fn watch_triggers(
    metrics: Arc<dyn MetricSource>,
    rollback: RollbackSpec,
    mut armed: watch::Receiver<bool>,
    report: Report,
) {
    if rollback.triggers.is_empty() {
        return;
    }
    // Per trigger: since when it has been crossed, and whether it fired this episode.
    let mut state: Vec<(Option<Instant>, bool)> = vec![(None, false); rollback.triggers.len()];
    // When the triggers were armed: windows never reach back before it, so a launch is
    // not rolled back for what the previous one did.
    let mut armed_at: Option<Instant> = None;
    let mut tick = tokio::time::interval(rollback.check_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = armed.changed() => {
                if changed.is_err() {
                    return; // the actor is gone: the launch ended
                }
                continue;
            }
        }
        if !*armed.borrow() {
            state.iter_mut().for_each(|s| *s = (None, false));
            armed_at = None;
            continue;
        }
        let armed_since = *armed_at.get_or_insert_with(Instant::now);
        for (trigger, (since, fired)) in rollback.triggers.iter().zip(state.iter_mut()) {
            let cond = &trigger.condition;
            let window = cond.window.unwrap_or(defaults::TRIGGER_WINDOW);
            let (crossed, detail) = match metrics.sample(cond.version, window, armed_since).await {
                Ok(sample) => {
                    let value = sample.value(cond.metric);
                    let quiet = matches!(
                        cond.metric,
                        Metric::ErrorRate | Metric::P50 | Metric::P95 | Metric::P99
                    ) && sample.requests < TRIGGER_MIN_REQUESTS;
                    let crossed = !quiet && !value.is_nan() && cond.holds(value);
                    let detail = format!(
                        "{} {} {} {} {} over {}s ({} requests)",
                        cond.version.label(),
                        cond.metric.name(),
                        format_value(cond.metric, value),
                        if crossed { cond.op.symbol() } else { "vs" },
                        cond.threshold_text(),
                        sample.window_secs,
                        sample.requests
                    );
                    (crossed, detail)
                }
                // A broken metric source must not roll a good launch back, nor hide a
                // bad one: it is journaled, and the trigger neither fires nor clears.
                Err(e) => {
                    report(Event::Observed {
                        step: None,
                        subject: cond.text.clone(),
                        verdict: "inconclusive".into(),
                        value: None,
                        reason: format!("metric source failed: {e}"),
                        dry_run: false,
                    });
                    continue;
                }
            };
            match (crossed, *since) {
                (true, None) => {
                    *since = Some(Instant::now());
                    report(Event::Observed {
                        step: None,
                        subject: cond.text.clone(),
                        verdict: "crossed".into(),
                        value: None,
                        reason: detail.clone(),
                        dry_run: false,
                    });
                }
                (false, Some(_)) => {
                    *since = None;
                    *fired = false;
                    report(Event::Observed {
                        step: None,
                        subject: cond.text.clone(),
                        verdict: "clear".into(),
                        value: None,
                        reason: detail.clone(),
                        dry_run: false,
                    });
                }
                _ => {}
            }
            if let Some(start) = *since
                && !*fired
                && start.elapsed() >= cond.sustained.unwrap_or(Duration::ZERO)
            {
                *fired = true;
                let held_for = start.elapsed().as_secs_f64();
                report(Event::TriggerFired {
                    trigger: cond.text.clone(),
                    action: trigger.action,
                    detail: format!("{detail}, crossed for {held_for:.1}s"),
                });
            }
        }
    }
}
