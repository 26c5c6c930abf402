//! Analysis in the shell: `analyze` steps and rollback triggers. The deciding is pure
//! (`liftoff-analysis`); this module samples (the builtin router, or Prometheus),
//! reports every evaluation to the actor (which journals it), and keeps time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use liftoff_analysis::{
    Compare, EpisodeDecision, Evaluation, Evidence, JudgeOutcome, Sample, TriggerEpisodes,
    TriggerEvaluation, TriggerState, Verdict, evaluate, evaluate_query, judge, read_trigger,
};
use liftoff_engine::{Event, Outcome, StepRef, StepResult};
use liftoff_plan::condition::Version;
use liftoff_plan::{
    AnalyzeStep, Gate, MonitorStep, OnInconclusive, QueryGate, RollbackSpec, defaults,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::ports::{FlagChange, FlagControl, MetricSource, PortError, QuerySource};

/// Hands an event to the launch's actor (which journals it in order).
pub type Report = Arc<dyn Fn(Event) + Send + Sync>;

/// Where a launch's numbers come from.
#[derive(Clone)]
pub struct Sources {
    /// The builtin router's observations (conditions, `compare`).
    pub metrics: Option<Arc<dyn MetricSource>>,
    /// Prometheus (PromQL gates and triggers).
    pub queries: Option<Arc<dyn QuerySource>>,
    pub service: String,
    /// For `disable_flag` triggers.
    pub flags: Option<Flags>,
}

/// The flag service, and who the launch is in its audit log.
#[derive(Clone)]
pub struct Flags {
    pub control: Arc<dyn FlagControl>,
    /// `launch <id>`.
    pub actor: String,
}

impl Sources {
    pub fn is_empty(&self) -> bool {
        self.metrics.is_none() && self.queries.is_none()
    }

    async fn run_query(&self, q: &QueryGate) -> Result<Option<f64>, PortError> {
        let Some(queries) = &self.queries else {
            return Err(PortError::Rejected("no Prometheus configured".into()));
        };
        let promql = q
            .query
            .expose()
            .replace("{{version}}", q.version.label())
            .replace("{{service}}", &self.service);
        queries.query(&promql).await
    }

    /// Judge a gate over `window` (not before `since`); `None` when the builtin
    /// router's observations since `since` span less than `defer_below` (see
    /// [`too_early`]).
    async fn evaluate(
        &self,
        gate: &Gate,
        window: Duration,
        since: Instant,
        min_requests: u64,
        defer_below: Duration,
    ) -> Option<Evaluation> {
        match gate {
            Gate::Query(q) => Some(evaluate_query(
                q,
                self.run_query(q).await.map_err(|e| e.to_string()),
            )),
            Gate::Builtin(c) => {
                let Some(metrics) = &self.metrics else {
                    return Some(inconclusive("no builtin router observations".into()));
                };
                match metrics
                    .sample(c.version, c.window.unwrap_or(window), since)
                    .await
                {
                    Ok(sample) if too_early(&sample, defer_below) => None,
                    Ok(sample) => Some(evaluate(c, &sample, min_requests)),
                    Err(e) => Some(inconclusive(format!("metric source failed: {e}"))),
                }
            }
        }
    }
}

/// The router counts in whole seconds and only seconds begun after a step started are
/// its step's: an evaluation due before they span `defer_below` would judge next to no
/// time and be "too little data" by construction (an `analyze` with a 500 ms interval,
/// half a second in). It is put off to the next interval instead of counting against
/// `inconclusive_limit`; the step's last evaluation is never put off.
fn too_early(sample: &Sample, defer_below: Duration) -> bool {
    sample.window_secs < defer_below.as_secs_f64()
}

fn inconclusive(reason: String) -> Evaluation {
    Evaluation {
        verdict: Verdict::Inconclusive,
        value: f64::NAN,
        reason,
    }
}

pub async fn analyze(
    sources: &Sources,
    step: StepRef,
    a: &AnalyzeStep,
    report: &Report,
    cancel: &CancellationToken,
) -> Outcome {
    if sources.is_empty() {
        return Outcome::new(StepResult::Failed, "no metric source for analysis");
    }
    // Timed on tokio's clock (a paused test drives it); sources take the std instant.
    let clock = tokio::time::Instant::now();
    let started = clock.into_std();
    let (mut evaluations, mut failures, mut inconclusives) = (0u32, 0u32, 0u32);
    let mut last_failure = String::new();
    loop {
        tokio::select! {
            () = tokio::time::sleep(a.interval) => {}
            () = cancel.cancelled() => return Outcome::new(StepResult::Cancelled, "cancelled"),
        }
        // Half an interval of observed time (at most a second) makes an evaluation.
        let defer_below = if clock.elapsed() >= a.duration {
            Duration::ZERO
        } else {
            (a.interval / 2).min(Duration::from_secs(1))
        };
        let mut results: Vec<(String, Verdict, f64, String)> = Vec::new();
        for gate in &a.gates {
            if let Some(e) = sources
                .evaluate(gate, a.interval, started, a.min_requests, defer_below)
                .await
            {
                results.push((gate.text().to_string(), e.verdict, e.value, e.reason));
            }
        }
        if let Some(spec) = &a.compare
            && let Some(e) = compare(sources, spec, a, started, defer_below).await
        {
            results.push(("compare: stable".to_string(), e.verdict, e.value, e.reason));
        }
        if !results.is_empty() {
            evaluations += 1;
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
                    "{inconclusives} inconclusive evaluation(s), {} allowed (too little data, no data, or a failed metric source)",
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
        if clock.elapsed() >= a.duration {
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

/// The candidate judged against stable over the last interval; `None` when put off
/// ([`too_early`]).
async fn compare(
    sources: &Sources,
    spec: &liftoff_plan::CompareSpec,
    a: &AnalyzeStep,
    started: Instant,
    defer_below: Duration,
) -> Option<Evaluation> {
    let Some(m) = &sources.metrics else {
        return Some(inconclusive("no builtin router observations".into()));
    };
    let (c, s) = match (
        m.sample(Version::Candidate, a.interval, started).await,
        m.sample(Version::Stable, a.interval, started).await,
    ) {
        (Ok(c), Ok(s)) => (c, s),
        (Err(e), _) | (_, Err(e)) => {
            return Some(inconclusive(format!("metric source failed: {e}")));
        }
    };
    if too_early(&c, defer_below) || too_early(&s, defer_below) {
        return None;
    }
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
    let j = judge(&c, &s, &cfg);
    let verdict = match j.outcome {
        JudgeOutcome::Pass => Verdict::Successful,
        JudgeOutcome::Fail => Verdict::Failed,
        // Marginal is a question for a human, like too little data.
        _ => Verdict::Inconclusive,
    };
    Some(Evaluation {
        verdict,
        value: j.score,
        reason: j.summary,
    })
}

/// What a trigger read: its state, the line with its numbers, and the window it judged
/// (builtin conditions).
struct Reading {
    state: TriggerState,
    detail: String,
    sample: Option<Sample>,
}

/// Is a trigger's bad condition met now, with evidence? Or why it could not be told
/// (which neither fires nor clears it).
async fn trigger_state(
    sources: &Sources,
    gate: &Gate,
    since: Instant,
    evidence: Evidence,
) -> Result<Reading, String> {
    match gate {
        // A PromQL value is whatever the query computed: no requests to weigh.
        Gate::Query(q) => match sources.run_query(q).await.map_err(|e| e.to_string())? {
            None => Err("the query returned no data".into()),
            Some(v) if v.is_nan() => Err("the query returned NaN".into()),
            Some(v) => {
                let crossed = q.op.holds(v, q.threshold);
                Ok(Reading {
                    state: if crossed {
                        TriggerState::Crossed
                    } else {
                        TriggerState::Clear
                    },
                    detail: format!(
                        "{} = {v} {} {}",
                        q.version.label(),
                        if crossed { q.op.symbol() } else { "vs" },
                        q.threshold
                    ),
                    sample: None,
                })
            }
        },
        Gate::Builtin(cond) => {
            let metrics = sources
                .metrics
                .as_ref()
                .ok_or("no builtin router observations")?;
            let window = cond.window.unwrap_or(defaults::TRIGGER_WINDOW);
            let sample = metrics
                .sample(cond.version, window, since)
                .await
                .map_err(|e| e.to_string())?;
            let reading = read_trigger(cond, &sample, evidence);
            Ok(Reading {
                state: reading.state,
                detail: reading.detail,
                sample: Some(sample),
            })
        }
    }
}

/// The window a firing trigger judged, with the other version over the same span
/// beside it, for the report: the spike that caused the rollback, however short the
/// launch was. `None` for PromQL triggers (their numbers are Prometheus's).
async fn trigger_evidence(
    sources: &Sources,
    gate: &Gate,
    judged: &Sample,
    since: Instant,
) -> Option<Event> {
    let (Gate::Builtin(cond), Some(metrics)) = (gate, &sources.metrics) else {
        return None;
    };
    let other = match cond.version {
        Version::Candidate => Version::Stable,
        Version::Stable => Version::Candidate,
    };
    let window = cond.window.unwrap_or(defaults::TRIGGER_WINDOW);
    let beside = metrics
        .sample(other, window, since)
        .await
        .ok()
        .filter(|s| s.requests > 0);
    let mut versions: Vec<_> = [(cond.version, Some(judged)), (other, beside.as_ref())]
        .into_iter()
        .filter_map(|(v, s)| s.map(|s| version_sample(v, s)))
        .collect();
    versions.sort_by_key(|v| v.version != Version::Stable.label());
    Some(Event::Sampled {
        window_secs: judged.window_secs,
        versions,
        trigger: Some(gate.text().to_string()),
    })
}

/// One version's figures as the journal keeps them.
fn version_sample(version: Version, s: &Sample) -> liftoff_engine::VersionSample {
    let p95 = s.quantile(0.95);
    liftoff_engine::VersionSample {
        version: version.label().to_string(),
        requests: s.requests,
        failed: Some(s.failed),
        error_rate: Some(s.error_rate()).filter(|r| r.is_finite()),
        p95_ms: p95.is_finite().then_some(p95 * 1000.0),
        rps: s.rps(),
    }
}

/// The shortest time between two evaluations of the triggers when observations come
/// faster (each router reports every 100 ms).
pub const MIN_TRIGGER_GAP: Duration = Duration::from_millis(100);

/// Watch the plan's rollback triggers while `armed` says so (from the first non-zero
/// candidate weight to the end of the launch): evaluate each as new observations
/// arrive from the routers (at most every [`MIN_TRIGGER_GAP`]) and at least every
/// `check_every`,
/// and carry out what its episode ([`TriggerEpisodes`], pure) decides: journal a
/// crossing, a clearing, a source failure, a held-back evaluation, or fire it (the
/// window it judged first, then the firing, which the engine acts on: it rolls back,
/// holds, or has a flag turned off once the firing is journaled).
pub async fn watch_triggers(
    sources: Sources,
    rollback: RollbackSpec,
    mut armed: watch::Receiver<bool>,
    report: Report,
) {
    if rollback.triggers.is_empty() {
        return;
    }
    let evidence = Evidence {
        confidence: rollback.confidence,
        min_requests: rollback.min_requests,
    };
    let mut episodes = TriggerEpisodes::new(
        rollback
            .triggers
            .iter()
            .map(|t| t.gate.sustained().unwrap_or(Duration::ZERO))
            .collect(),
    );
    // Windows never reach back before arming: a launch is not rolled back for what the
    // previous one did.
    let mut armed_at: Option<Instant> = None;
    let mut tick = tokio::time::interval(rollback.check_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut observed = sources.metrics.as_ref().and_then(|m| m.observed());
    let mut last_evaluation: Option<tokio::time::Instant> = None;
    loop {
        let new_observations = async {
            match &mut observed {
                Some(rx) => {
                    if rx.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                    // Evaluations stay at least MIN_TRIGGER_GAP apart.
                    if let Some(at) = last_evaluation {
                        tokio::time::sleep_until(at + MIN_TRIGGER_GAP).await;
                    }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tick.tick() => {}
            () = new_observations => {}
            changed = armed.changed() => {
                if changed.is_err() {
                    return; // the actor is gone: the launch ended
                }
                continue;
            }
        }
        last_evaluation = Some(tokio::time::Instant::now());
        if !*armed.borrow() {
            episodes.disarm();
            armed_at = None;
            continue;
        }
        let armed_since = *armed_at.get_or_insert_with(Instant::now);
        for (index, trigger) in rollback.triggers.iter().enumerate() {
            let subject = trigger.gate.text().to_string();
            let read = trigger_state(&sources, &trigger.gate, armed_since, evidence).await;
            let evaluation = match &read {
                Ok(reading) => TriggerEvaluation::Read(reading.state),
                Err(_) => TriggerEvaluation::Failed,
            };
            for decision in episodes.step(index, armed_since.elapsed(), evaluation) {
                let (detail, sample) = match &read {
                    Ok(r) => (r.detail.clone(), r.sample.as_ref()),
                    Err(e) => (e.clone(), None),
                };
                let EpisodeDecision::Fire { crossed_for } = decision else {
                    report(Event::Observed {
                        step: None,
                        subject: subject.clone(),
                        verdict: decision.verdict().into(),
                        value: None,
                        reason: detail,
                        dry_run: false,
                    });
                    continue;
                };
                // The window it fired on goes in the journal first, as a sample.
                if let Some(judged) = sample
                    && let Some(event) =
                        trigger_evidence(&sources, &trigger.gate, judged, armed_since).await
                {
                    report(event);
                }
                let detail = format!(
                    "{detail}, crossed for {}",
                    liftoff_plan::human::duration(crossed_for)
                );
                report(Event::TriggerFired {
                    trigger: subject.clone(),
                    action: trigger.action.clone(),
                    detail,
                });
            }
        }
    }
}

/// Turn a fired `disable_flag` trigger's flag off (the engine's `Effect::DisableFlag`,
/// once the firing is journaled): the flag service's line, or why not.
pub async fn disable_flag(sources: &Sources, flag: &str, cause: &str) -> Result<String, PortError> {
    match &sources.flags {
        Some(flags) => {
            flags
                .control
                .change(flag, FlagChange::Enabled(false), &flags.actor, cause)
                .await
        }
        None => Err(PortError::Rejected(
            "this daemon has no flag service".into(),
        )),
    }
}

/// Journal what each version served, from the launch's start to its end, for reports:
/// at [`liftoff_engine::sampling_interval`], and at once when triggers are disarmed (a
/// rollback began, or the launch ended), so that a launch rolled back within its first
/// seconds still has the traffic of those seconds. Idle windows are not journaled.
pub async fn sample_traffic(
    metrics: Arc<dyn MetricSource>,
    mut armed: watch::Receiver<bool>,
    report: Report,
) {
    let started = Instant::now();
    let mut last = started;
    let mut was_armed = *armed.borrow();
    loop {
        let tick = tokio::time::sleep(liftoff_engine::sampling_interval(started.elapsed()));
        tokio::pin!(tick);
        loop {
            tokio::select! {
                () = &mut tick => break,
                changed = armed.changed() => {
                    if changed.is_err() {
                        return; // the actor is gone: the launch ended
                    }
                    let now_armed = *armed.borrow();
                    let disarmed = std::mem::replace(&mut was_armed, now_armed) && !now_armed;
                    if disarmed {
                        break;
                    }
                }
            }
        }
        let window = std::mem::replace(&mut last, Instant::now()).elapsed();
        let mut versions = Vec::new();
        for version in [Version::Stable, Version::Candidate] {
            let Ok(s) = metrics.sample(version, window, started).await else {
                continue;
            };
            if s.requests > 0 {
                versions.push(version_sample(version, &s));
            }
        }
        if !versions.is_empty() {
            report(Event::Sampled {
                window_secs: window.as_secs_f64(),
                versions,
                trigger: None,
            });
        }
    }
}

/// A `monitor` step: at each checkpoint (the step's first start plus its offset, in
/// wall-clock time, so a restart neither repeats nor delays one) judge the gates over
/// the window before it and journal the verdict. A failed gate fails the step (the
/// launch rolls back); too little data is reported, not failed.
#[allow(clippy::too_many_arguments)]
pub async fn monitor(
    sources: &Sources,
    clock: &dyn crate::ports::Clock,
    step: StepRef,
    attempt: u32,
    m: &MonitorStep,
    first_started: jiff::Timestamp,
    done: &[usize],
    report: &Report,
    cancel: &CancellationToken,
) -> Outcome {
    let started = Instant::now();
    let mut passed = done.len();
    for (index, offset) in m.checkpoints.iter().enumerate() {
        if done.contains(&index) {
            continue;
        }
        let due = jiff::SignedDuration::try_from(*offset)
            .ok()
            .and_then(|d| first_started.checked_add(d).ok())
            .unwrap_or(first_started);
        tokio::select! {
            () = crate::ports::sleep_until(clock, due) => {}
            () = cancel.cancelled() => return Outcome::new(StepResult::Cancelled, "cancelled"),
        }
        let mut failed = Vec::new();
        let mut inconclusive = Vec::new();
        for gate in &m.gates {
            // A checkpoint judges what there is: never put off.
            let Some(e) = sources
                .evaluate(gate, m.window, started, m.min_requests, Duration::ZERO)
                .await
            else {
                continue;
            };
            let subject = gate.text().to_string();
            match e.verdict {
                Verdict::Failed => failed.push(format!("`{subject}`: {}", e.reason)),
                Verdict::Inconclusive => inconclusive.push(format!("`{subject}`: {}", e.reason)),
                Verdict::Successful => {}
            }
            report(Event::Observed {
                step: Some(step),
                subject,
                verdict: e.verdict.label().to_string(),
                value: Some(e.value),
                reason: e.reason,
                dry_run: false,
            });
        }
        let label = crate::traffic::humantime_short(*offset);
        let summary = match (failed.first(), inconclusive.first()) {
            (Some(f), _) => format!("T+{label}: {f}"),
            (None, Some(i)) => format!("T+{label}: no verdict yet ({i})"),
            (None, None) if m.gates.is_empty() => format!("T+{label}: figures recorded"),
            (None, None) => format!("T+{label}: All systems healthy"),
        };
        report(Event::Checkpoint {
            step,
            attempt,
            index,
            passed: failed.is_empty(),
            summary: summary.clone(),
        });
        if !failed.is_empty() {
            return Outcome::new(
                StepResult::Failed,
                format!("checkpoint {} failed: {summary}", index + 1),
            );
        }
        passed += 1;
    }
    Outcome::new(
        StepResult::Succeeded,
        format!("{passed} checkpoint(s) passed"),
    )
}

#[cfg(test)]
pub(crate) mod tests;
