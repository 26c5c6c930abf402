//! Telling people: the launch's journal records become notices, delivered to the plan's
//! `notify` channels beside the launch, in order per channel, each outcome journaled.
//! Only the `required` channels' "launch started" is waited for (the `Announce` step);
//! no other delivery ever holds or fails a launch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use liftoff_engine::{Action, EndStatus, Launch, Outcome, Record, Status, StepRef, StepResult};
use liftoff_notify::{Channel, Event, Figures, Notice, Notifier, StatuspageState, VersionFigures};
use liftoff_plan::condition::Version;
use liftoff_plan::{Plan, StepKind};
use liftoff_store::{Entry, Store};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ports::MetricSource;

/// The window notices' figures cover.
const FIGURES_WINDOW: Duration = Duration::from_secs(60);

/// One launch's channels: a queue and a worker per channel.
pub(crate) struct Notifications {
    launch_id: String,
    plan: Arc<Plan>,
    queues: Vec<mpsc::UnboundedSender<Notice>>,
    metrics: Option<Arc<dyn MetricSource>>,
    since: Instant,
}

/// What a channel worker needs.
#[derive(Clone)]
pub(crate) struct Delivery {
    pub notifier: Arc<Notifier>,
    pub store: Arc<Store>,
    pub tasks: TaskTracker,
    pub shutdown: CancellationToken,
}

impl Notifications {
    /// `None` for plans without channels.
    pub fn start(
        launch_id: &str,
        plan: Arc<Plan>,
        metrics: Option<Arc<dyn MetricSource>>,
        d: &Delivery,
    ) -> Option<Self> {
        let spec = plan.notify.as_ref()?;
        let mut queues = Vec::with_capacity(spec.channels.len());
        for index in 0..spec.channels.len() {
            let (tx, mut rx) = mpsc::unbounded_channel::<Notice>();
            queues.push(tx);
            // A Statuspage channel picks up the maintenance it (or the `Announce` step,
            // or the daemon before a restart) opened, from the journal.
            let mut statuspage = StatuspageState::default();
            let (d, plan, id) = (d.clone(), plan.clone(), launch_id.to_string());
            d.tasks.clone().spawn(async move {
                // Ends when the launch's actor drops the queue and it is drained.
                let mut looked_up = false;
                while let Some(notice) = rx.recv().await {
                    let Some(channel) = plan.notify.as_ref().map(|n| n.channels[index].clone())
                    else {
                        return;
                    };
                    // Once, before the first delivery: after that this worker knows.
                    if !looked_up
                        && matches!(channel.kind, liftoff_notify::ChannelKind::Statuspage(_))
                    {
                        statuspage.incident_id = journaled_incident(&d.store, &id, &channel.name);
                        looked_up = true;
                    }
                    let (delivered, state) = deliver(
                        d.clone(),
                        plan.clone(),
                        channel,
                        notice,
                        statuspage.clone(),
                        id.clone(),
                    )
                    .await;
                    statuspage = state;
                    if !delivered && d.shutdown.is_cancelled() {
                        return;
                    }
                }
            });
        }
        Some(Self {
            launch_id: launch_id.to_string(),
            plan,
            queues,
            metrics,
            since: Instant::now(),
        })
    }

    /// Queue the notices a transition's records call for. `before` is the status the
    /// launch had before them.
    pub async fn on_records(&self, state: &Launch, before: Status, records: &[Record]) {
        let mut notices = Vec::new();
        for record in records {
            notices.extend(self.notices_for(state, record));
        }
        if before != Status::WaitingApproval && state.status() == Status::WaitingApproval {
            let at = records.last().map_or_else(jiff::Timestamp::now, Record::at);
            let mut n = self.notice(state, Event::ApprovalNeeded, at);
            n.role = Some(waiting_roles(state));
            n.step = state.in_flight().map(|(s, _)| state.step_name(s));
            notices.push(n);
        }
        if notices.is_empty() {
            return;
        }
        let figures = self.figures().await;
        let Some(spec) = self.plan.notify.as_ref() else {
            return;
        };
        for mut notice in notices {
            notice.figures = figures.clone();
            for (channel, queue) in spec.channels.iter().zip(&self.queues) {
                // A required channel was told of the start by the `Announce` step.
                let announced = channel.required && notice.event == Event::LaunchStarted;
                if channel.receives(notice.event) && !announced {
                    let _ = queue.send(notice.clone());
                }
            }
        }
    }

    fn notices_for(&self, state: &Launch, record: &Record) -> Vec<Notice> {
        let at = record.at();
        let one = |event| vec![self.notice(state, event, at)];
        match record {
            Record::LaunchStarted { .. } => one(Event::LaunchStarted),
            Record::StepStarted {
                step: step @ StepRef::Forward(_),
                attempt: 1,
                ..
            } => {
                let mut n = self.notice(state, Event::StepStarted, at);
                n.step = Some(state.step_name(*step));
                vec![n]
            }
            Record::StepFinished { step, outcome, .. } => {
                let mut out = Vec::new();
                let verdict = verdict(outcome);
                let with = |event| {
                    let mut n = self.notice(state, event, at);
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
                let mut n = self.notice(state, Event::Checkpoint, at);
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
                let mut n = self.notice(state, Event::TriggerFired, at);
                n.reason = Some(format!("{trigger}: {detail}"));
                n.verdict = Some("fired".into());
                vec![n]
            }
            Record::RollbackStarted { cause, .. } => {
                let mut n = self.notice(state, Event::RollbackStarted, at);
                n.reason = Some(cause.describe(|s| state.step_name(s)));
                vec![n]
            }
            Record::LaunchEnded { status, reason, .. } => {
                let event = match status {
                    EndStatus::Succeeded => Event::Succeeded,
                    EndStatus::RolledBack | EndStatus::Aborted => Event::RollbackCompleted,
                    EndStatus::Failed | EndStatus::NoGo => Event::Failed,
                };
                let mut n = self.notice(state, event, at);
                n.reason = Some(reason.clone());
                n.verdict = Some(Status::from(*status).as_str().to_string());
                vec![n]
            }
            _ => Vec::new(),
        }
    }

    fn notice(&self, state: &Launch, event: Event, at: jiff::Timestamp) -> Notice {
        notice(&self.launch_id, state, event, at)
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

/// A notice with what every message may show: weight, elapsed, the last approver.
pub(crate) fn notice(launch_id: &str, state: &Launch, event: Event, at: jiff::Timestamp) -> Notice {
    let plan = state.plan();
    let mut n = Notice::new(
        format!("{launch_id}/{}/{}", event.name(), at.as_millisecond()),
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

fn journaled_incident(store: &Store, launch_id: &str, channel: &str) -> Option<String> {
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

/// Render, deliver (with the plan's retries), journal the outcome. True if delivered;
/// and the channel's Statuspage state after it. (Owned arguments: the future is spawned.)
pub(crate) async fn deliver(
    d: Delivery,
    plan: Arc<Plan>,
    channel: Channel,
    notice: Notice,
    mut statuspage: StatuspageState,
    launch_id: String,
) -> (bool, StatuspageState) {
    let Some(spec) = plan.notify.as_ref() else {
        return (false, statuspage);
    };
    let rendered = liftoff_notify::render(&channel, &spec.templates, &notice);
    let outcome = d
        .notifier
        .deliver(&channel, &rendered, &spec.retry, &statuspage, &d.shutdown)
        .await;
    if outcome.incident_id.is_some() {
        statuspage.incident_id = outcome.incident_id.clone();
    }
    let record = Record::Notified {
        at: jiff::Timestamp::now(),
        channel: channel.name.clone(),
        event: notice.event.name().to_string(),
        delivered: outcome.delivered,
        attempts: outcome.attempts,
        detail: outcome.detail.clone(),
        incident_id: outcome.incident_id.clone(),
    };
    if outcome.delivered {
        tracing::info!(launch = %launch_id, channel = %channel.name, event = notice.event.name(), "notified");
    } else {
        tracing::warn!(launch = %launch_id, channel = %channel.name, event = notice.event.name(), detail = %outcome.detail, "notification not delivered");
    }
    let entry = serde_json::to_string(&record).map(|payload| Entry {
        kind: record.kind().to_string(),
        at: record.at().to_string(),
        payload,
    });
    let (store, id) = (d.store.clone(), launch_id.clone());
    let journaled: Result<(), String> = match entry {
        Ok(entry) => {
            match tokio::task::spawn_blocking(move || store.append_unchanged(&id, &[entry])).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = journaled {
        tracing::error!(launch = %launch_id, error = %e, "cannot journal a notification");
    }
    (outcome.delivered, statuspage)
}

/// The `Announce` step: tell every required channel that the launch starts; fail if any
/// cannot be told (after its retries).
pub(crate) async fn announce(d: &Delivery, launch_id: &str, state: &Launch) -> Outcome {
    let plan = state.plan();
    let Some(spec) = plan.notify.as_ref() else {
        return Outcome::new(StepResult::Succeeded, "no required channels");
    };
    let at = state.started_at().unwrap_or_else(jiff::Timestamp::now);
    let n = notice(launch_id, state, Event::LaunchStarted, at);
    let mut failed = Vec::new();
    let mut told = Vec::new();
    for channel in spec.channels.iter().filter(|c| c.required) {
        let (delivered, _) = deliver(
            d.clone(),
            state.plan_arc(),
            channel.clone(),
            n.clone(),
            StatuspageState::default(),
            launch_id.to_string(),
        )
        .await;
        if delivered {
            told.push(format!("`{}`", channel.name));
        } else {
            failed.push(format!("`{}`", channel.name));
        }
    }
    if failed.is_empty() {
        Outcome::new(StepResult::Succeeded, format!("told {}", told.join(", ")))
    } else {
        Outcome::new(
            StepResult::Failed,
            format!(
                "required channel {} could not be told that the launch starts; nothing was changed",
                failed.join(", ")
            ),
        )
    }
}
