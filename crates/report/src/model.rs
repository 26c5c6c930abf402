//! The report as data: what [`build`] reads out of a launch and its journal. Its JSON
//! (`Format::Json`) is a compatibility boundary for whoever archives or post-processes
//! reports, so it is a shape of its own, versioned by [`REPORT_VERSION`], rather than
//! the journal's records passed through.

use std::collections::BTreeMap;

use jiff::Timestamp;
use liftoff_engine::{
    Action, Cause, Decision, Launch, Record, StepRef, StepResult, StepState, StepStatus,
};
use liftoff_plan::{RouterSpec, Step, StepKind, Weight};
use serde::Serialize;

use crate::{Meta, text};

/// Bumped when a field of the JSON report changes meaning or goes away.
pub const REPORT_VERSION: u32 = 1;

/// Most non-passing evaluations listed (the newest); the rest are counted.
const MAX_NOTABLE_EVALUATIONS: usize = 200;
/// Events listed from each end of a long journal; the middle is counted.
const EVENTS_HEAD: usize = 200;
const EVENTS_TAIL: usize = 200;
/// Crossings of the firing trigger listed in the rollback section (the newest).
const MAX_CROSSINGS: usize = 20;
/// The tail of a failed step's output kept in the report.
const OUTPUT_TAIL_LINES: usize = 20;
const OUTPUT_TAIL_CHARS: usize = 2_000;

/// Verdicts that mean "all is well" (gates, compare, triggers): counted, not listed.
const PASSING_VERDICTS: &[&str] = &["successful", "pass", "clear"];

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub report_version: u32,
    pub summary: Summary,
    /// Every step that ran or was skipped (the plan's steps always), phase by phase.
    pub steps: Vec<StepRow>,
    /// Notable records in journal order: all but traffic samples and passing
    /// evaluations.
    pub events: Events,
    /// Checklist items, smoke requests and verify queries, per step.
    pub checks: Vec<CheckGroup>,
    pub evaluations: Evaluations,
    pub triggers_fired: Vec<TriggerFiring>,
    /// Present once a rollback has begun.
    pub rollback: Option<Rollback>,
    pub charts: Charts,
    /// What each version served over the launch, from the journaled samples.
    pub traffic: Traffic,
    pub notifications: Vec<Notification>,
}

/// The per-version table: the journal's traffic samples added up (the sampler's
/// windows follow one another; a firing trigger's own window is left out, it overlaps
/// them). The same for every router liftoff reads: builtin, HAProxy, nginx.
#[derive(Clone, Debug, Serialize)]
pub struct Traffic {
    /// The plan's `router.kind` (`builtin`, `haproxy`, `nginx`, `command`), or none.
    pub router: Option<&'static str>,
    /// Figures the router cannot tell liftoff, so no sample carries them (`p95_ms` for
    /// HAProxy): shown as not measured, never as 0.
    pub not_measured: Vec<&'static str>,
    /// Stable first, then the candidate; empty without samples.
    pub versions: Vec<VersionTraffic>,
}

/// What one version served while the launch was sampled.
#[derive(Clone, Debug, Serialize)]
pub struct VersionTraffic {
    /// `stable` or `candidate`.
    pub version: String,
    /// Samples in which it served requests.
    pub samples: usize,
    pub first_at: Timestamp,
    pub last_at: Timestamp,
    pub requests: u64,
    /// Failed requests (from each sample's count, or its error rate in journals from
    /// before counts were kept).
    pub failed: Option<u64>,
    pub error_rate_percent: Option<f64>,
    /// The highest error rate of a sample.
    pub peak_error_rate_percent: Option<f64>,
    /// The highest p95 of a sample; `None` when no sample measured latency.
    pub peak_p95_ms: Option<f64>,
    /// The last sample's p95.
    pub last_p95_ms: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub id: String,
    pub name: String,
    pub service: String,
    pub plan_path: String,
    pub created_at: String,
    pub generated_at: Timestamp,
    /// `succeeded`, `rolled-back`, `running`, ... as `liftoff status` says it.
    pub status: String,
    pub reason: Option<String>,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub duration_ms: Option<i64>,
    /// The candidate weight last confirmed applied.
    pub final_weight_percent: Option<f64>,
    pub approvals: Vec<ApprovalRow>,
    /// What people (and triggers) did to the launch besides approving it.
    pub interventions: Vec<Intervention>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ApprovalRow {
    pub at: Timestamp,
    pub step: String,
    pub role: String,
    pub by: String,
    pub comment: Option<String>,
    /// The checklist item signed off, for `approval` items.
    pub item: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Intervention {
    pub at: Timestamp,
    pub by: String,
    /// `aborted`, `requested a rollback`, `promoted to 100%`, `retried step X`, ...
    pub action: String,
    pub comment: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct StepRow {
    /// `checklist`, `rollout`, `promote` or `rollback`.
    pub phase: &'static str,
    pub step: String,
    /// The plan's step keyword (`run`, `traffic`, ...), `checklist` or `restore`.
    pub kind: &'static str,
    /// As `liftoff status` says it; `not run` for a step an ended launch never reached.
    pub status: String,
    pub attempts: u32,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    /// From the first attempt's start to the end.
    pub duration_ms: Option<i64>,
    pub message: Option<String>,
    /// Who approved or signed off the step.
    pub actor: Option<String>,
    /// The last lines of a failed or timed-out step's (redacted) output.
    pub output: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Events {
    pub shown: Vec<EventRow>,
    /// Records left out of the middle of a long journal (`shown` keeps both ends).
    pub omitted: usize,
    /// Where in `shown` the omitted records were.
    pub omitted_after: Option<usize>,
}

#[derive(Clone, Debug, Serialize)]
pub struct EventRow {
    pub seq: i64,
    pub at: Timestamp,
    pub kind: &'static str,
    /// Who caused it: a person, `trigger`, or `liftoff`.
    pub actor: String,
    pub text: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct CheckGroup {
    pub phase: &'static str,
    pub step: String,
    pub kind: &'static str,
    /// GO/NO-GO and counts, or the step's own message.
    pub outcome: Option<String>,
    pub results: Vec<CheckRow>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CheckRow {
    pub item: String,
    pub critical: bool,
    pub passed: bool,
    pub evidence: String,
    pub duration_ms: u64,
    pub request: Option<String>,
    pub expected: Option<String>,
    pub actual: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Evaluations {
    pub total: usize,
    /// Every evaluation that did not pass (failed, inconclusive, marginal, crossed),
    /// newest last; at most the newest 200.
    pub notable: Vec<EvaluationRow>,
    pub notable_omitted: usize,
    /// Passing evaluations, counted per subject.
    pub passing: Vec<PassingTally>,
}

#[derive(Clone, Debug, Serialize)]
pub struct EvaluationRow {
    pub seq: i64,
    pub at: Timestamp,
    pub step: Option<String>,
    pub subject: String,
    pub verdict: String,
    pub value: Option<f64>,
    pub reason: String,
    pub dry_run: bool,
}

impl EvaluationRow {
    /// The verdict as a table shows it: `failed`, `failed (dry run)`.
    pub fn verdict_label(&self) -> String {
        match self.dry_run {
            true => format!("{} (dry run)", self.verdict),
            false => self.verdict.clone(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct PassingTally {
    pub subject: String,
    pub verdict: String,
    pub count: usize,
    pub first_at: Timestamp,
    pub last_at: Timestamp,
    pub last_reason: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct TriggerFiring {
    pub at: Timestamp,
    pub trigger: String,
    pub action: String,
    pub detail: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Rollback {
    /// `step_failed`, `aborted`, `rollback_requested` or `trigger`.
    pub cause_kind: &'static str,
    pub cause: String,
    /// The person who aborted or asked for the rollback.
    pub by: Option<String>,
    pub trigger: Option<TriggerCrossing>,
    pub started_at: Timestamp,
    /// When all traffic was back on stable (plans with a router).
    pub traffic_on_stable_at: Option<Timestamp>,
    pub traffic_on_stable_ms: Option<i64>,
    /// The launch's end: the rollback is done (or failed) then.
    pub ended_at: Option<Timestamp>,
    pub duration_ms: Option<i64>,
    /// The launch's final status, or `rolling-back` while it lasts.
    pub outcome: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct TriggerCrossing {
    pub trigger: String,
    /// The values that crossed the threshold, as the trigger watcher wrote them.
    pub detail: String,
    /// The trigger's journaled crossings, newest last.
    pub crossings: Vec<EvaluationRow>,
    /// The window the trigger fired on, per version (journals from before these
    /// samples existed have none).
    pub judged: Vec<JudgedWindow>,
}

/// What one version served in the window a trigger judged as it fired.
#[derive(Clone, Debug, Serialize)]
pub struct JudgedWindow {
    pub at: Timestamp,
    pub window_ms: i64,
    pub version: String,
    pub requests: u64,
    pub failed: Option<u64>,
    pub error_rate_percent: Option<f64>,
    pub p95_ms: Option<f64>,
}

/// Time series for the charts. Values carry their unit in the field's name.
#[derive(Clone, Debug, Serialize)]
pub struct Charts {
    /// The span the charts cover: the launch's start to its end (or last record).
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub rollback_at: Option<Timestamp>,
    /// `Sampled` records read.
    pub samples: usize,
    /// Why there are none, when there are none.
    pub no_samples_reason: Option<String>,
    /// The candidate's weight after each successful traffic move (a step line).
    pub weight_percent: Vec<Point>,
    pub error_rate_percent: Vec<Series>,
    pub p95_ms: Vec<Series>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Series {
    /// `stable` or `candidate`.
    pub version: String,
    pub points: Vec<Point>,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct Point {
    pub at: Timestamp,
    pub value: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Notification {
    pub at: Timestamp,
    pub channel: String,
    pub event: String,
    pub delivered: bool,
    pub attempts: u32,
    pub detail: String,
}

/// Read the report out of `launch` and its journal (`(seq, record)` in journal order).
/// `launch` is the journal replayed: its step states and the records agree.
pub fn build(launch: &Launch, records: &[(i64, Record)], meta: &Meta) -> Report {
    Report {
        report_version: REPORT_VERSION,
        summary: summary(launch, records, meta),
        steps: steps(launch, records),
        events: events(launch, records),
        checks: checks(launch),
        evaluations: evaluations(launch, records),
        triggers_fired: records
            .iter()
            .filter_map(|(_, r)| match r {
                Record::TriggerFired {
                    at,
                    trigger,
                    action,
                    detail,
                } => Some(TriggerFiring {
                    at: *at,
                    trigger: trigger.clone(),
                    action: action.clone(),
                    detail: detail.clone(),
                }),
                _ => None,
            })
            .collect(),
        rollback: rollback(launch, records),
        charts: charts(launch, records),
        traffic: traffic(launch, records),
        notifications: records
            .iter()
            .filter_map(|(_, r)| match r {
                Record::Notified {
                    at,
                    channel,
                    event,
                    delivered,
                    attempts,
                    detail,
                    ..
                } => Some(Notification {
                    at: *at,
                    channel: channel.clone(),
                    event: event.clone(),
                    delivered: *delivered,
                    attempts: *attempts,
                    detail: detail.clone(),
                }),
                _ => None,
            })
            .collect(),
    }
}

pub(crate) fn millis_between(from: Timestamp, to: Timestamp) -> i64 {
    to.as_millisecond() - from.as_millisecond()
}

fn summary(launch: &Launch, records: &[(i64, Record)], meta: &Meta) -> Summary {
    let plan = launch.plan();
    let approvals = records
        .iter()
        .filter_map(|(_, r)| match r {
            Record::Approved {
                at,
                step,
                role,
                by,
                comment,
                item,
            } => Some(ApprovalRow {
                at: *at,
                step: launch.step_name(*step),
                role: role.clone(),
                by: by.clone(),
                comment: comment.clone(),
                item: item.clone(),
            }),
            _ => None,
        })
        .collect();
    let interventions = records
        .iter()
        .filter_map(|(_, r)| intervention(launch, r))
        .collect();
    let started_at = launch.started_at();
    let ended_at = launch.ended_at();
    Summary {
        id: meta.id.clone(),
        name: plan.name.clone(),
        service: plan.service.clone(),
        plan_path: meta.plan_path.clone(),
        created_at: meta.created_at.clone(),
        generated_at: meta.generated_at,
        status: launch.status().as_str().to_string(),
        reason: launch.reason(),
        started_at,
        ended_at,
        duration_ms: started_at.zip(ended_at).map(|(s, e)| millis_between(s, e)),
        final_weight_percent: launch.weight().map(Weight::percent),
        approvals,
        interventions,
    }
}

fn intervention(launch: &Launch, record: &Record) -> Option<Intervention> {
    let make = |at: &Timestamp, by: &str, action: String, comment: &Option<String>| {
        Some(Intervention {
            at: *at,
            by: by.to_string(),
            action,
            comment: comment.clone(),
        })
    };
    match record {
        Record::RollbackStarted { at, cause } => match cause {
            Cause::Aborted { by, comment } => make(at, by, "aborted".into(), comment),
            Cause::RollbackRequested { by, comment } => {
                make(at, by, "requested a rollback".into(), comment)
            }
            Cause::Trigger { trigger, .. } => make(
                at,
                "trigger",
                format!("rolled back: `{trigger}` fired"),
                &None,
            ),
            Cause::StepFailed { .. } => None,
        },
        Record::PromoteRequested { at, by } => make(at, by, "promoted to 100%".into(), &None),
        Record::Decided {
            at,
            step,
            decision,
            by,
        } => {
            let verb = match decision {
                Decision::Retry => "retried",
                Decision::Skip => "skipped",
            };
            let action = format!("{verb} step `{}`", launch.step_name(*step));
            make(at, by, action, &None)
        }
        Record::Released { at, by } => make(at, by, "released the hold".into(), &None),
        _ => None,
    }
}

fn kind_of(launch: &Launch, step: StepRef) -> &'static str {
    match launch.action(step) {
        Action::Step(s) => s.kind.keyword(),
        Action::SetWeight(_) => "traffic",
        Action::Checklist(_) => "checklist",
        Action::Restore(_) => "restore",
        Action::Announce => "notify",
    }
}

fn phase_of(step: StepRef) -> &'static str {
    match step {
        StepRef::Announce | StepRef::Checklist => "checklist",
        StepRef::Baseline | StepRef::Forward(_) => "rollout",
        StepRef::Promote => "promote",
        StepRef::RevertTraffic | StepRef::Restore(_) | StepRef::Rollback(_) => "rollback",
    }
}

/// The weight a succeeded attempt of `step` applied, if it moves traffic.
fn weight_of(launch: &Launch, step: StepRef) -> Option<Weight> {
    match launch.action(step) {
        Action::Step(Step {
            kind: StepKind::Traffic(w),
            ..
        }) => Some(*w),
        Action::SetWeight(w) => Some(w),
        _ => None,
    }
}

/// Steps in the order a launch goes through them. The plan's own steps are always
/// listed (what was never reached says so); liftoff's traffic moves, restores and
/// rollback steps only when they happened.
fn step_order(launch: &Launch) -> Vec<StepRef> {
    let mut order = vec![StepRef::Announce, StepRef::Checklist, StepRef::Baseline];
    order.extend((0..launch.forward_steps().len()).map(StepRef::Forward));
    order.push(StepRef::Promote);
    order.push(StepRef::RevertTraffic);
    // Backups come back newest first.
    order.extend(
        (0..launch.restore_steps().len())
            .rev()
            .map(StepRef::Restore),
    );
    order.extend((0..launch.rollback_steps().len()).map(StepRef::Rollback));
    order
}

fn touched(state: &StepState) -> bool {
    state.attempts > 0 || state.status != StepStatus::Pending
}

fn steps(launch: &Launch, records: &[(i64, Record)]) -> Vec<StepRow> {
    let ended = launch.status().is_terminal();
    // Who decided to retry or skip a step, for its row.
    let mut deciders: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, r) in records {
        if let Record::Decided { step, by, .. } = r {
            deciders
                .entry(launch.step_name(*step))
                .or_default()
                .push(by.clone());
        }
    }
    step_order(launch)
        .into_iter()
        .filter(|step| matches!(step, StepRef::Forward(_)) || touched(launch.step(*step)))
        .map(|step| {
            let state = launch.step(step);
            let name = launch.step_name(step);
            let status = match state.status {
                StepStatus::Pending if ended => "not run".to_string(),
                s => s.as_str().to_string(),
            };
            let message = state
                .outcome
                .as_ref()
                .and_then(|o| o.message.clone())
                .or_else(|| state.skipped_reason.clone());
            let mut actors: Vec<String> = state
                .approval
                .iter()
                .chain(&state.approvals)
                .map(|a| format!("{} ({})", a.by, a.role))
                .collect();
            actors.extend(deciders.get(&name).into_iter().flatten().cloned());
            let failed = matches!(state.status, StepStatus::Failed | StepStatus::TimedOut);
            let output = state
                .outcome
                .as_ref()
                .and_then(|o| o.output.as_deref())
                .filter(|_| failed)
                .map(output_tail);
            StepRow {
                phase: phase_of(step),
                kind: kind_of(launch, step),
                status,
                attempts: state.attempts,
                started_at: state.first_started_at,
                ended_at: state.ended_at,
                duration_ms: state
                    .first_started_at
                    .zip(state.ended_at)
                    .map(|(s, e)| millis_between(s, e)),
                message,
                actor: (!actors.is_empty()).then(|| actors.join(", ")),
                output,
                step: name,
            }
        })
        .collect()
}

fn output_tail(output: &str) -> String {
    let lines: Vec<&str> = output.trim_end().lines().collect();
    let from = lines.len().saturating_sub(OUTPUT_TAIL_LINES);
    let mut tail = lines[from..].join("\n");
    let mut cut = from > 0;
    let chars = tail.chars().count();
    if chars > OUTPUT_TAIL_CHARS {
        tail = tail.chars().skip(chars - OUTPUT_TAIL_CHARS).collect();
        cut = true;
    }
    if cut {
        tail.insert_str(0, "…\n");
    }
    tail
}

fn is_passing(verdict: &str) -> bool {
    PASSING_VERDICTS.contains(&verdict)
}

fn actor_of(record: &Record) -> String {
    let by = match record {
        Record::Approved { by, .. }
        | Record::Decided { by, .. }
        | Record::PromoteRequested { by, .. }
        | Record::Released { by, .. } => by.as_str(),
        Record::RollbackStarted { cause, .. } => match cause {
            Cause::Aborted { by, .. } | Cause::RollbackRequested { by, .. } => by.as_str(),
            Cause::Trigger { .. } => "trigger",
            Cause::StepFailed { .. } => "liftoff",
        },
        Record::TriggerFired { .. } => "trigger",
        _ => "liftoff",
    };
    by.to_string()
}

fn events(launch: &Launch, records: &[(i64, Record)]) -> Events {
    let notable: Vec<&(i64, Record)> = records
        .iter()
        .filter(|(_, r)| match r {
            Record::Sampled { .. } => false,
            Record::Evaluated { verdict, .. } => !is_passing(verdict),
            _ => true,
        })
        .collect();
    let row = |(seq, r): &(i64, Record)| EventRow {
        seq: *seq,
        at: r.at(),
        kind: r.kind(),
        actor: actor_of(r),
        text: launch.summarize(r),
    };
    if notable.len() <= EVENTS_HEAD + EVENTS_TAIL {
        return Events {
            shown: notable.into_iter().map(row).collect(),
            omitted: 0,
            omitted_after: None,
        };
    }
    let omitted = notable.len() - EVENTS_HEAD - EVENTS_TAIL;
    let shown = notable[..EVENTS_HEAD]
        .iter()
        .chain(&notable[notable.len() - EVENTS_TAIL..])
        .map(|r| row(r))
        .collect();
    Events {
        shown,
        omitted,
        omitted_after: Some(EVENTS_HEAD),
    }
}

fn checks(launch: &Launch) -> Vec<CheckGroup> {
    step_order(launch)
        .into_iter()
        .filter_map(|step| {
            let state = launch.step(step);
            if state.checks.is_empty() {
                return None;
            }
            Some(CheckGroup {
                phase: phase_of(step),
                step: launch.step_name(step),
                kind: kind_of(launch, step),
                outcome: state.outcome.as_ref().and_then(|o| o.message.clone()),
                results: state
                    .checks
                    .iter()
                    .map(|c| CheckRow {
                        item: c.item.clone(),
                        critical: c.critical,
                        passed: c.passed,
                        evidence: c.evidence.clone(),
                        duration_ms: c.duration_ms,
                        request: c.request.clone(),
                        expected: c.expected.clone(),
                        actual: c.actual.clone(),
                    })
                    .collect(),
            })
        })
        .collect()
}

fn evaluation_row(launch: &Launch, seq: i64, record: &Record) -> Option<EvaluationRow> {
    match record {
        Record::Evaluated {
            at,
            step,
            subject,
            verdict,
            value,
            reason,
            dry_run,
        } => Some(EvaluationRow {
            seq,
            at: *at,
            step: step.map(|s| launch.step_name(s)),
            subject: subject.clone(),
            verdict: verdict.clone(),
            value: *value,
            reason: reason.clone(),
            dry_run: *dry_run,
        }),
        _ => None,
    }
}

fn evaluations(launch: &Launch, records: &[(i64, Record)]) -> Evaluations {
    let all: Vec<EvaluationRow> = records
        .iter()
        .filter_map(|(seq, r)| evaluation_row(launch, *seq, r))
        .collect();
    let total = all.len();
    let mut passing: Vec<PassingTally> = Vec::new();
    let mut notable = Vec::new();
    for row in all {
        if !is_passing(&row.verdict) {
            notable.push(row);
            continue;
        }
        match passing
            .iter_mut()
            .find(|p| p.subject == row.subject && p.verdict == row.verdict)
        {
            Some(p) => {
                p.count += 1;
                p.last_at = row.at;
                p.last_reason = row.reason;
            }
            None => passing.push(PassingTally {
                subject: row.subject,
                verdict: row.verdict,
                count: 1,
                first_at: row.at,
                last_at: row.at,
                last_reason: row.reason,
            }),
        }
    }
    let notable_omitted = notable.len().saturating_sub(MAX_NOTABLE_EVALUATIONS);
    notable.drain(..notable_omitted);
    Evaluations {
        total,
        notable,
        notable_omitted,
        passing,
    }
}

fn rollback(launch: &Launch, records: &[(i64, Record)]) -> Option<Rollback> {
    let cause = launch.rollback_cause()?;
    let started_at = launch.rollback_started_at()?;
    let (cause_kind, by) = match cause {
        Cause::StepFailed { .. } => ("step_failed", None),
        Cause::Aborted { by, .. } => ("aborted", Some(by.clone())),
        Cause::RollbackRequested { by, .. } => ("rollback_requested", Some(by.clone())),
        Cause::Trigger { .. } => ("trigger", None),
    };
    let trigger = match cause {
        Cause::Trigger { trigger, detail } => {
            let judged = records
                .iter()
                .filter_map(|(_, r)| match r {
                    Record::Sampled {
                        at,
                        window_secs,
                        versions,
                        trigger: Some(t),
                        ..
                    } if t == trigger && *at <= started_at => Some((at, window_secs, versions)),
                    _ => None,
                })
                .next_back()
                .map_or_else(Vec::new, |(at, window_secs, versions)| {
                    versions
                        .iter()
                        .map(|v| JudgedWindow {
                            at: *at,
                            window_ms: (window_secs * 1000.0).round() as i64,
                            version: v.version.clone(),
                            requests: v.requests,
                            failed: v.failed,
                            error_rate_percent: v.error_rate.map(|r| r * 100.0),
                            p95_ms: v.p95_ms,
                        })
                        .collect()
                });
            let mut crossings: Vec<EvaluationRow> = records
                .iter()
                .filter(|(_, r)| {
                    matches!(r, Record::Evaluated { subject, verdict, .. }
                        if subject == trigger && verdict == "crossed")
                })
                .filter_map(|(seq, r)| evaluation_row(launch, *seq, r))
                .collect();
            let excess = crossings.len().saturating_sub(MAX_CROSSINGS);
            crossings.drain(..excess);
            Some(TriggerCrossing {
                trigger: trigger.clone(),
                detail: detail.clone(),
                crossings,
                judged,
            })
        }
        _ => None,
    };
    let revert = launch.revert_step();
    let traffic_on_stable_at = revert
        .ended_at
        .filter(|_| revert.status == StepStatus::Succeeded);
    let ended_at = launch.ended_at();
    let outcome = match launch.status() {
        s if s.is_terminal() => s.as_str().to_string(),
        _ => "rolling-back".to_string(),
    };
    Some(Rollback {
        cause_kind,
        cause: cause.describe(|s| launch.step_name(s)),
        by,
        trigger,
        started_at,
        traffic_on_stable_at,
        traffic_on_stable_ms: traffic_on_stable_at.map(|at| millis_between(started_at, at)),
        ended_at,
        duration_ms: ended_at.map(|at| millis_between(started_at, at)),
        outcome,
    })
}

fn charts(launch: &Launch, records: &[(i64, Record)]) -> Charts {
    let mut weight_percent = Vec::new();
    let mut error_rate: Vec<Series> = Vec::new();
    let mut p95: Vec<Series> = Vec::new();
    let mut samples = 0;
    let push = |series: &mut Vec<Series>, version: &str, point: Point| match series
        .iter_mut()
        .find(|s| s.version == version)
    {
        Some(s) => s.points.push(point),
        None => series.push(Series {
            version: version.to_string(),
            points: vec![point],
        }),
    };
    for (_, r) in records {
        match r {
            Record::StepFinished {
                at, step, outcome, ..
            } if outcome.result == StepResult::Succeeded => {
                if let Some(w) = weight_of(launch, *step) {
                    weight_percent.push(Point {
                        at: *at,
                        value: w.percent(),
                    });
                }
            }
            Record::Sampled { at, versions, .. } => {
                samples += 1;
                for v in versions {
                    if let Some(rate) = v.error_rate.filter(|r| r.is_finite()) {
                        let point = Point {
                            at: *at,
                            value: rate * 100.0,
                        };
                        push(&mut error_rate, &v.version, point);
                    }
                    if let Some(ms) = v.p95_ms.filter(|p| p.is_finite()) {
                        push(&mut p95, &v.version, Point { at: *at, value: ms });
                    }
                }
            }
            _ => {}
        }
    }
    // Stable first, then the candidate, then anything else as it came.
    let rank = |s: &Series| match s.version.as_str() {
        "stable" => 0,
        "candidate" => 1,
        _ => 2,
    };
    error_rate.sort_by_key(rank);
    p95.sort_by_key(rank);

    let first = records.first().map(|(_, r)| r.at());
    let last = records
        .iter()
        .filter(|(_, r)| !matches!(r, Record::Notified { .. }))
        .map(|(_, r)| r.at())
        .max();
    let start = launch.started_at().or(first);
    let end = launch.ended_at().or(last);
    Charts {
        start,
        end,
        rollback_at: launch.rollback_started_at(),
        samples,
        no_samples_reason: (samples == 0).then(|| {
            // The sampler also samples when a rollback disarms the triggers.
            let sampled_at_rollback = launch.rollback_started_at().is_some_and(|rollback| {
                weight_percent
                    .iter()
                    .any(|p| p.value > 0.0 && p.at <= rollback)
            });
            no_samples_reason(launch, end, sampled_at_rollback)
        }),
        weight_percent,
        error_rate_percent: error_rate,
        p95_ms: p95,
    }
}

fn router_kind(launch: &Launch) -> Option<&'static str> {
    Some(match launch.plan().router.as_ref()? {
        RouterSpec::Command { .. } => "command",
        RouterSpec::Builtin(_) => "builtin",
        RouterSpec::Haproxy(_) => "haproxy",
        RouterSpec::Nginx(_) => "nginx",
    })
}

fn traffic(launch: &Launch, records: &[(i64, Record)]) -> Traffic {
    let mut versions: Vec<VersionTraffic> = Vec::new();
    for (_, r) in records {
        let Record::Sampled {
            at,
            versions: sampled,
            trigger: None,
            ..
        } = r
        else {
            continue;
        };
        for v in sampled.iter().filter(|v| v.requests > 0) {
            let failed = v
                .failed
                .or_else(|| v.error_rate.map(|e| (e * v.requests as f64).round() as u64));
            let rate = v.error_rate.filter(|e| e.is_finite()).map(|e| e * 100.0);
            let p95 = v.p95_ms.filter(|p| p.is_finite());
            let t = match versions.iter_mut().find(|t| t.version == v.version) {
                Some(t) => t,
                None => {
                    versions.push(VersionTraffic {
                        version: v.version.clone(),
                        samples: 0,
                        first_at: *at,
                        last_at: *at,
                        requests: 0,
                        failed: Some(0),
                        error_rate_percent: None,
                        peak_error_rate_percent: None,
                        peak_p95_ms: None,
                        last_p95_ms: None,
                    });
                    versions.last_mut().expect("just pushed")
                }
            };
            t.samples += 1;
            t.last_at = *at;
            t.requests += v.requests;
            t.failed = t.failed.zip(failed).map(|(a, b)| a + b);
            t.peak_error_rate_percent = max(t.peak_error_rate_percent, rate);
            t.peak_p95_ms = max(t.peak_p95_ms, p95);
            t.last_p95_ms = p95;
        }
    }
    for t in &mut versions {
        t.error_rate_percent = t
            .failed
            .filter(|_| t.requests > 0)
            .map(|f| f as f64 * 100.0 / t.requests as f64);
    }
    let rank = |t: &VersionTraffic| match t.version.as_str() {
        "stable" => 0,
        "candidate" => 1,
        _ => 2,
    };
    versions.sort_by_key(rank);
    let router = router_kind(launch);
    Traffic {
        router,
        // HAProxy's `show stat` keeps counters, no latency distribution.
        not_measured: match router {
            Some("haproxy") => vec!["p95_ms"],
            _ => Vec::new(),
        },
        versions,
    }
}

fn max(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Why a launch has no `Sampled` record, from what the journal can tell: only the
/// traffic of a router liftoff reads (builtin, HAProxy, nginx) is sampled, the first
/// sample comes
/// [`sampling_interval`](liftoff_engine::sampling_interval) into the launch (and
/// another when a rollback begins after the candidate took traffic), and windows
/// without requests are not journaled.
fn no_samples_reason(launch: &Launch, end: Option<Timestamp>, sampled_at_rollback: bool) -> String {
    let router = match launch.plan().router {
        Some(RouterSpec::Builtin(_)) => "the builtin router",
        Some(RouterSpec::Haproxy(_)) => "HAProxy's backend",
        Some(RouterSpec::Nginx(_)) => "nginx's upstream",
        _ => return "No traffic samples: the plan has no builtin router, so liftoff does not see its traffic.".into(),
    };
    let Some(started) = launch.started_at() else {
        return "No traffic samples: the launch never started.".into();
    };
    let first = liftoff_engine::sampling_interval(std::time::Duration::ZERO);
    let lasted = end.map_or(0, |end| millis_between(started, end)).max(0);
    let first_text = liftoff_plan::human::duration(first);
    if (lasted as u128) < first.as_millis() && !sampled_at_rollback {
        let lasted = text::duration(lasted);
        return match launch.ended_at() {
            Some(_) => format!(
                "No traffic samples: the launch ended {lasted} after it started, before its first sample ({first_text} in)."
            ),
            None => {
                format!("No traffic samples yet: the first is taken {first_text} into the launch.")
            }
        };
    }
    format!("No traffic samples: no request reached {router} while the launch ran.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_keeps_its_last_lines_and_says_it_was_cut() {
        let output: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        let tail = output_tail(&output);
        assert!(
            tail.starts_with("…\nline 11\n") && tail.ends_with("line 30"),
            "{tail}"
        );
        assert_eq!(output_tail("one\ntwo\n"), "one\ntwo");
        let long = "x".repeat(5_000);
        assert_eq!(output_tail(&long).chars().count(), OUTPUT_TAIL_CHARS + 2);
    }
}
