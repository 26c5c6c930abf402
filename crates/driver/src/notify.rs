//! Telling people: which notices a transition causes, and the `Announce` step.
//!
//! A transition's records become notices here (a pure function of the launch's state
//! and the records, plus the live figures), one per channel that receives the event,
//! and the actor journals them into the store's outbox in the same transaction as the
//! records ([`liftoff_store::NewNotice`]). Delivery is the outbox worker's job
//! (`outbox.rs`). Only the `required` channels' "launch started" is waited for (the
//! `Announce` step); no other delivery ever holds or fails a launch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use liftoff_engine::{Action, EndStatus, Launch, Outcome, Record, Status, StepRef, StepResult};
use liftoff_notify::{Event, Figures, Notice, VersionFigures};
use liftoff_plan::condition::Version;
use liftoff_plan::{Plan, StepKind};
use liftoff_store::{NewNotice, Store};

use crate::outbox::Outbox;
use crate::ports::MetricSource;

/// The window notices' figures cover.
const FIGURES_WINDOW: Duration = Duration::from_secs(60);

/// What one launch's notices are made from.
pub(crate) struct Notices {
    launch_id: String,
    plan: Arc<Plan>,
    metrics: Option<Arc<dyn MetricSource>>,
    since: Instant,
}

impl Notices {
    /// `None` for plans without channels.
    pub fn new(
        launch_id: &str,
        plan: Arc<Plan>,
        metrics: Option<Arc<dyn MetricSource>>,
    ) -> Option<Self> {
        plan.notify.as_ref()?;
        Some(Self {
            launch_id: launch_id.to_string(),
            plan,
            metrics,
            since: Instant::now(),
        })
    }

    /// The outbox rows a transition's records call for, with the figures of now.
    /// `before` is the status the launch had before them.
    pub async fn for_transition(
        &self,
        state: &Launch,
        before: Status,
        records: &[Record],
    ) -> Vec<NewNotice> {
        let mut notices = notices(&self.launch_id, state, before, records);
        if notices.is_empty() {
            return Vec::new();
        }
        let figures = self.figures().await;
        for (_, n) in &mut notices {
            n.figures = figures.clone();
        }
        route(&self.plan, &notices)
    }

    async fn figures(&self) -> Option<Figures> {
        let metrics = self.metrics.as_ref()?;
        let mut f = Figures::default();
        for version in [Version::Stable, Version::Candidate] {
            let Ok(s) = metrics.sample(version, FIGURES_WINDOW, self.since).await else {
                continue;
            };
            let p95 = s.quantile(0.95);
            let v = VersionFigures {
                requests: s.requests,
                error_rate: Some(s.error_rate()).filter(|r| r.is_finite()),
                p95_ms: p95.is_finite().then_some(p95 * 1000.0),
                rps: s.rps(),
            };
            match version {
                Version::Stable => f.stable = Some(v),
                Version::Candidate => f.candidate = Some(v),
            }
        }
        Some(f)
    }
}

/// The notices a transition's records cause, each with the index of the record that
/// causes it. Pure. `before` is the launch's status before the records.
pub(crate) fn notices(
    launch_id: &str,
    state: &Launch,
    before: Status,
    records: &[Record],
) -> Vec<(usize, Notice)> {
    let mut out = Vec::new();
    for (i, record) in records.iter().enumerate() {
        out.extend(
            notices_for(launch_id, state, record)
                .into_iter()
                .map(|n| (i, n)),
        );
    }
    if before != Status::WaitingApproval
        && state.status() == Status::WaitingApproval
        && let Some(last) = records.len().checked_sub(1)
    {
        let mut n = notice(launch_id, state, Event::ApprovalNeeded, records[last].at());
        n.role = Some(waiting_roles(state));
        n.step = state.in_flight().map(|(s, _)| state.step_name(s));
        out.push((last, n));
    }
    out
}

/// One outbox row per notice and channel that receives its event. Pure.
pub(crate) fn route(plan: &Plan, notices: &[(usize, Notice)]) -> Vec<NewNotice> {
    let Some(spec) = plan.notify.as_ref() else {
        return Vec::new();
    };
    let mut rows = Vec::new();
    for (record, n) in notices {
        let stored = n.to_stored();
        // A required channel is told that the launch starts whatever it subscribes to.
        let told = |c: &&liftoff_notify::Channel| {
            c.receives(n.event) || (c.required && n.event == Event::LaunchStarted)
        };
        for channel in spec.channels.iter().filter(told) {
            rows.push(NewNotice {
                record: *record,
                event: n.event.name().to_string(),
                channel: channel.name.clone(),
                notice: stored.clone(),
            });
        }
    }
    rows
}

fn notices_for(launch_id: &str, state: &Launch, record: &Record) -> Vec<Notice> {
    let at = record.at();
    let make = |event| notice(launch_id, state, event, at);
    let one = |event| vec![make(event)];
    match record {
        Record::LaunchStarted { .. } => one(Event::LaunchStarted),
        Record::StepStarted {
            step: step @ StepRef::Forward(_),
            attempt: 1,
            ..
        } => {
            let mut n = make(Event::StepStarted);
            n.step = Some(state.step_name(*step));
            vec![n]
        }
        Record::StepFinished { step, outcome, .. } => {
            let mut out = Vec::new();
            let verdict = verdict(outcome);
            let with = |event| {
                let mut n = make(event);
                n.step = Some(state.step_name(*step));
                n.verdict = Some(verdict.to_string());
                n.reason = outcome.message.clone();
                n
            };
            match (step, state.action(*step)) {
                (StepRef::Checklist, _) => {
                    let mut n = with(Event::ChecklistVerdict);
                    let go = outcome.result == StepResult::Succeeded;
                    n.verdict = Some(if go { "GO" } else { "NO-GO" }.into());
                    out.push(n);
                }
                (StepRef::Forward(_), Action::Step(s)) => {
                    out.push(with(Event::StepFinished));
                    if matches!(s.kind, StepKind::Analyze(_)) {
                        out.push(with(Event::GateVerdict));
                    }
                }
                _ => {}
            }
            out
        }
        Record::Checkpoint {
            step,
            index,
            passed,
            summary,
            ..
        } => {
            let mut n = make(Event::Checkpoint);
            n.step = Some(state.step_name(*step));
            n.verdict = Some(if *passed {
                summary
                    .split_once(": ")
                    .map_or(summary.clone(), |(_, v)| v.to_string())
            } else {
                format!("FAILED: {summary}")
            });
            n.next_checkpoint = next_checkpoint(state, *step, *index);
            vec![n]
        }
        Record::TriggerFired {
            trigger, detail, ..
        } => {
            let mut n = make(Event::TriggerFired);
            n.reason = Some(format!("{trigger}: {detail}"));
            n.verdict = Some("fired".into());
            vec![n]
        }
        Record::RollbackStarted { cause, .. } => {
            let mut n = make(Event::RollbackStarted);
            n.reason = Some(cause.describe(|s| state.step_name(s)));
            vec![n]
        }
        Record::LaunchEnded { status, reason, .. } => {
            let event = match status {
                EndStatus::Succeeded => Event::Succeeded,
                EndStatus::RolledBack | EndStatus::Aborted => Event::RollbackCompleted,
                EndStatus::Failed | EndStatus::NoGo => Event::Failed,
            };
            let mut n = make(event);
            n.reason = Some(reason.clone());
            n.verdict = Some(Status::from(*status).as_str().to_string());
            vec![n]
        }
        _ => Vec::new(),
    }
}

/// A notice with what every message may show: weight, elapsed, the last approver.
pub(crate) fn notice(launch_id: &str, state: &Launch, event: Event, at: jiff::Timestamp) -> Notice {
    let plan = state.plan();
    // The id is the outbox's idempotency key, given when the notice is delivered.
    let mut n = Notice::new(
        String::new(),
        event,
        at,
        &plan.service,
        launch_id,
        &plan.name,
    );
    n.weight = state.weight();
    n.elapsed = state
        .started_at()
        .and_then(|s| Duration::try_from(at.duration_since(s)).ok());
    n.approver = state
        .forward_steps()
        .iter()
        .chain(std::iter::once(state.checklist_step()))
        .flat_map(|s| s.approval.iter().chain(&s.approvals))
        .max_by_key(|a| a.at)
        .map(|a| a.by.clone());
    n
}

/// When the next checkpoint of a `monitor` step is due, as time since the launch began.
fn next_checkpoint(state: &Launch, step: StepRef, index: usize) -> Option<Duration> {
    let Action::Step(s) = state.action(step) else {
        return None;
    };
    let StepKind::Monitor(m) = &s.kind else {
        return None;
    };
    let offset = *m.checkpoints.get(index + 1)?;
    let step_start = state.step(step).first_started_at?;
    let launch_start = state.started_at()?;
    let before = Duration::try_from(step_start.duration_since(launch_start)).ok()?;
    Some(before + offset)
}

fn verdict(outcome: &Outcome) -> &'static str {
    match outcome.result {
        StepResult::Succeeded => "succeeded",
        StepResult::Failed => "failed",
        StepResult::TimedOut => "timed out",
        StepResult::Cancelled => "cancelled",
    }
}

fn waiting_roles(state: &Launch) -> String {
    let Some((step, _)) = state.in_flight() else {
        return String::new();
    };
    if let Action::Step(s) = state.action(step)
        && let StepKind::Approve(a) = &s.kind
    {
        return a.role.clone();
    }
    state
        .pending_sign_offs(step)
        .iter()
        .filter_map(|i| match &i.kind {
            liftoff_plan::checks::CheckKind::Approval { role } => Some(role.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn journaled_incident(store: &Store, launch_id: &str, channel: &str) -> Option<String> {
    let entries = store.journal(launch_id).ok()?;
    entries
        .iter()
        .rev()
        .filter(|e| e.kind == "notified")
        .filter_map(|e| serde_json::from_str::<Record>(&e.payload).ok())
        .find_map(|r| match r {
            Record::Notified {
                channel: c,
                incident_id: Some(id),
                ..
            } if c == channel => Some(id),
            _ => None,
        })
}

/// The `Announce` step: wait until every required channel has been told that the launch
/// starts (its `launch_started` notices settled in the outbox); fail if any could not be
/// told after its retries. Those notices were written with the `launch_started` record;
/// a launch journaled by a liftoff without the outbox gets them now.
pub(crate) async fn announce(
    outbox: &Outbox,
    store: &Arc<Store>,
    launch_id: &str,
    state: &Launch,
) -> Outcome {
    let plan = state.plan_arc();
    let required: Vec<String> = plan
        .notify
        .iter()
        .flat_map(|spec| &spec.channels)
        .filter(|c| c.required)
        .map(|c| c.name.clone())
        .collect();
    if required.is_empty() {
        return Outcome::new(StepResult::Succeeded, "no required channels");
    }
    let mut settled = outbox.settled();
    let at = state.started_at().unwrap_or_else(jiff::Timestamp::now);
    let rows: Vec<NewNotice> = route(
        &plan,
        &[(0, notice(launch_id, state, Event::LaunchStarted, at))],
    )
    .into_iter()
    .filter(|n| required.contains(&n.channel))
    .collect();
    let (s, id) = (store.clone(), launch_id.to_string());
    let enqueued = crate::blocking(move || {
        let journal = s.journal(&id)?;
        if let Some(seq) = journal
            .iter()
            .find(|e| e.kind == "launch_started")
            .map(|e| e.seq)
        {
            s.enqueue_notices(&id, seq, &rows, &jiff::Timestamp::now().to_string())?;
        }
        Ok(())
    })
    .await;
    if let Err(e) = enqueued {
        return Outcome::new(
            StepResult::Failed,
            format!("cannot record the required notices: {e}"),
        );
    }
    outbox.wake();
    loop {
        let (s, id) = (store.clone(), launch_id.to_string());
        let rows = crate::blocking(move || s.notices(&id))
            .await
            .unwrap_or_default();
        let rows: Vec<_> = rows
            .into_iter()
            .filter(|r| r.event == Event::LaunchStarted.name() && required.contains(&r.channel))
            .collect();
        let told = |delivered: bool| {
            rows.iter()
                .filter(|r| !r.is_pending() && (r.status == "delivered") == delivered)
                .map(|r| format!("`{}`", r.channel))
                .collect::<Vec<_>>()
        };
        if !rows.is_empty() && rows.iter().all(|r| !r.is_pending()) {
            let failed = told(false);
            return if failed.is_empty() {
                Outcome::new(
                    StepResult::Succeeded,
                    format!("told {}", told(true).join(", ")),
                )
            } else {
                Outcome::new(
                    StepResult::Failed,
                    format!(
                        "required channel {} could not be told that the launch starts; nothing was changed",
                        failed.join(", ")
                    ),
                )
            };
        }
        // Settlements wake this; the timer covers a settlement missed between reads.
        tokio::select! {
            _ = settled.changed() => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
