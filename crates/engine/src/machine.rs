//! The transition function. `decide` never mutates its input and never performs an
//! effect: it returns the records to journal, the state they lead to, and the effects
//! the shell must start once the records are durable.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use liftoff_plan::StepKind;
use liftoff_plan::checks::{CheckKind, Tally};

use crate::launch::{Action, Launch, StepStatus};
use crate::record::{
    BackupInfo, Cause, CheckResult, Decision, EndStatus, Outcome, Record, StepRef, StepResult,
};

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// Begin a freshly created launch.
    Start,
    /// The daemon restarted: decide what to do with whatever was in flight.
    Recover,
    StepFinished {
        step: StepRef,
        attempt: u32,
        outcome: Outcome,
    },
    Approve {
        role: String,
        by: String,
        comment: Option<String>,
    },
    Abort {
        by: String,
        comment: Option<String>,
    },
    Rollback {
        by: String,
        comment: Option<String>,
    },
    Promote {
        by: String,
    },
    /// Answer a `needs-decision` (with a decision), end a pause early, or release a
    /// hold (without one).
    Resume {
        by: String,
        decision: Option<Decision>,
    },
    /// An evaluation to journal (gate, comparison, trigger); changes nothing else.
    Observed {
        step: Option<StepRef>,
        subject: String,
        verdict: String,
        value: Option<f64>,
        reason: String,
        dry_run: bool,
    },
    /// Stop starting steps until a human resumes (inconclusive analysis).
    Hold {
        reason: String,
    },
    /// A rollback trigger crossed its threshold for long enough.
    TriggerFired {
        trigger: String,
        action: liftoff_plan::TriggerAction,
        detail: String,
    },
    /// What came of turning a `disable_flag` trigger's flag off ([`Effect::DisableFlag`]):
    /// the flag service's line, or why it could not.
    FlagDisabled {
        trigger: String,
        flag: String,
        result: Result<String, String>,
    },
    /// An attempt judged one checklist item, smoke request or verify query. For
    /// checklists, the last result decides the step (GO or NO-GO).
    Checked {
        step: StepRef,
        attempt: u32,
        result: CheckResult,
    },
    /// A notification's delivery outcome, to journal; changes nothing else.
    Notified {
        channel: String,
        event: String,
        delivered: bool,
        attempts: u32,
        detail: String,
    },
    /// Per-version traffic figures to journal; changes nothing else.
    Sampled {
        window_secs: f64,
        versions: Vec<crate::record::VersionSample>,
        /// The trigger whose evidence this window is, when one is about to fire.
        trigger: Option<String>,
    },
    /// A `monitor` attempt judged one of its checkpoints.
    Checkpoint {
        step: StepRef,
        attempt: u32,
        index: usize,
        passed: bool,
        summary: String,
    },
    /// A `migrate` attempt backed the database up (before migrating it).
    BackupTaken {
        step: StepRef,
        attempt: u32,
        backup: BackupInfo,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Start executing an attempt of a step; report back with `Event::StepFinished`.
    Execute {
        step: StepRef,
        attempt: u32,
        deadline: Option<Timestamp>,
    },
    /// Stop an attempt in flight; it reports back as `Cancelled` (or not at all if it
    /// had already finished: a report for an attempt no longer in flight is ignored).
    Cancel { step: StepRef, attempt: u32 },
    /// Turn a flag off for a fired `disable_flag` trigger (after its `TriggerFired` is
    /// journaled); report back with `Event::FlagDisabled`. Idempotent: `Recover` asks
    /// again when no outcome was journaled.
    DisableFlag(crate::launch::FlagToDisable),
}

/// A request the launch cannot take in its current state. Not a failure of liftoff.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the launch has already ended ({status})")]
    Ended { status: &'static str },
    #[error("the launch has already started")]
    AlreadyStarted,
    #[error("the launch is not waiting for an approval (it is {status})")]
    NotWaitingForApproval { status: &'static str },
    #[error("the launch waits for an approval by {expected}, not `{given}`")]
    WrongRole { expected: String, given: String },
    #[error("the launch is already rolling back")]
    AlreadyRollingBack,
    #[error("the launch is already being promoted")]
    AlreadyPromoting,
    #[error("the launch has no decision pending (it is {status})")]
    NoDecisionPending { status: &'static str },
    #[error(
        "the launch needs a decision on step `{step}`: resume with --retry-step or --skip-step"
    )]
    DecisionRequired { step: String },
    #[error("the launch is not paused (it is {status})")]
    NotPaused { status: &'static str },
}

impl Rejection {
    /// Stable machine-readable code, for API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Ended { .. } => "launch_ended",
            Rejection::AlreadyStarted => "already_started",
            Rejection::NotWaitingForApproval { .. } => "not_waiting_for_approval",
            Rejection::WrongRole { .. } => "wrong_role",
            Rejection::AlreadyRollingBack => "already_rolling_back",
            Rejection::AlreadyPromoting => "already_promoting",
            Rejection::NoDecisionPending { .. } => "no_decision_pending",
            Rejection::DecisionRequired { .. } => "decision_required",
            Rejection::NotPaused { .. } => "not_paused",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Transition {
    pub state: Launch,
    pub records: Vec<Record>,
    pub effects: Vec<Effect>,
}

impl Transition {
    fn begin(launch: &Launch) -> Self {
        Self {
            state: launch.clone(),
            records: Vec::new(),
            effects: Vec::new(),
        }
    }

    fn record(&mut self, record: Record) {
        self.state.apply(&record);
        self.records.push(record);
    }
}

pub fn decide(launch: &Launch, event: Event, now: Timestamp) -> Result<Transition, Rejection> {
    let mut t = decide_event(launch, event, now)?;
    advance(&mut t, now);
    Ok(t)
}

/// A step with `after:` that just succeeded schedules its follow-up.
fn schedule_follow_ups(t: &mut Transition, now: Timestamp) {
    let due: Vec<(StepRef, Timestamp)> = t
        .records
        .iter()
        .filter_map(|r| match r {
            Record::StepFinished {
                step: step @ StepRef::Forward(i),
                outcome,
                ..
            } if outcome.result == StepResult::Succeeded => {
                let after = t.state.plan().steps[*i].after.as_ref()?;
                let delay = SignedDuration::try_from(after.delay).ok()?;
                Some((*step, now.checked_add(delay).ok()?))
            }
            _ => None,
        })
        .collect();
    for (step, due) in due {
        t.record(Record::FollowUpScheduled { at: now, step, due });
    }
}

/// Like [`decide`], but never starts another step or ends the launch: for a daemon
/// that is shutting down and must record what finished without beginning anything new.
/// The next `Recover` picks up from there.
pub fn decide_draining(
    launch: &Launch,
    event: Event,
    now: Timestamp,
) -> Result<Transition, Rejection> {
    decide_event(launch, event, now)
}

fn decide_event(launch: &Launch, event: Event, now: Timestamp) -> Result<Transition, Rejection> {
    let mut t = decide_inner(launch, event, now)?;
    schedule_follow_ups(&mut t, now);
    Ok(t)
}

fn decide_inner(launch: &Launch, event: Event, now: Timestamp) -> Result<Transition, Rejection> {
    let mut t = Transition::begin(launch);
    let status = launch.status();
    let ended = || Rejection::Ended {
        status: status.as_str(),
    };
    match event {
        Event::Start => {
            if status.is_terminal() {
                return Err(ended());
            }
            if launch.started_at.is_some() {
                return Err(Rejection::AlreadyStarted);
            }
            t.record(Record::LaunchStarted { at: now });
        }
        Event::Recover => {
            if status.is_terminal() {
                return Ok(t);
            }
            if launch.started_at.is_none() {
                t.record(Record::LaunchStarted { at: now });
            }
            if let Some((step, attempt)) = launch.in_flight {
                recover_in_flight(&mut t, step, attempt, now);
            }
            if let Some(flag) = &launch.disabling {
                t.effects.push(Effect::DisableFlag(flag.clone()));
            }
        }
        Event::StepFinished {
            step,
            attempt,
            outcome,
        } => {
            if launch.in_flight != Some((step, attempt)) {
                return Ok(t); // A late report (a timer cancelled by an approval, say).
            }
            if launch.checklist_of(step).is_some() && outcome.result != StepResult::Cancelled {
                // A checklist ends by its last item's result (see `settle_checklist`); an
                // attempt that stops on its own has lost track of some item.
                let outcome = Outcome::new(
                    StepResult::Failed,
                    "the checklist stopped before every item had a result",
                );
                finish(&mut t, step, attempt, outcome, now);
            } else {
                finish(&mut t, step, attempt, outcome, now);
            }
        }
        Event::Checked {
            step,
            attempt,
            result,
        } => {
            if launch.in_flight != Some((step, attempt))
                || launch.step(step).check(&result.item).is_some()
            {
                return Ok(t);
            }
            t.record(Record::Checked {
                at: now,
                step,
                attempt,
                result,
            });
            settle_checklist(&mut t, step, attempt, now);
        }
        Event::Notified {
            channel,
            event,
            delivered,
            attempts,
            detail,
        } => {
            // Also after the end: the last message goes out after the launch ended.
            t.record(Record::Notified {
                at: now,
                channel,
                event,
                delivered,
                attempts,
                detail,
                incident_id: None,
            });
        }
        Event::Checkpoint {
            step,
            attempt,
            index,
            passed,
            summary,
        } => {
            if launch.in_flight == Some((step, attempt))
                && !launch.step(step).checkpoints.contains(&index)
            {
                t.record(Record::Checkpoint {
                    at: now,
                    step,
                    index,
                    passed,
                    summary,
                });
            }
        }
        Event::Sampled {
            window_secs,
            versions,
            trigger,
        } => {
            if !status.is_terminal() && launch.started_at.is_some() {
                t.record(Record::Sampled {
                    at: now,
                    window_secs,
                    versions,
                    weight_bp: launch.weight().map(|w| w.basis_points()),
                    trigger,
                });
            }
        }
        Event::BackupTaken {
            step,
            attempt,
            backup,
        } => {
            if launch.in_flight == Some((step, attempt)) {
                t.record(Record::BackupTaken {
                    at: now,
                    step,
                    attempt,
                    backup,
                });
            }
        }
        Event::Approve { role, by, comment } => {
            if status.is_terminal() {
                return Err(ended());
            }
            if let Some((step, attempt)) = launch.in_flight
                && launch.checklist_of(step).is_some()
            {
                sign_off(&mut t, launch, step, attempt, role, by, comment, now)?;
                return Ok(t);
            }
            let waiting = launch
                .in_flight
                .filter(|_| status == crate::Status::WaitingApproval);
            let Some((step, attempt)) = waiting else {
                return Err(Rejection::NotWaitingForApproval {
                    status: status.as_str(),
                });
            };
            if let Action::Step(s) = launch.action(step)
                && let StepKind::Approve(a) = &s.kind
                && a.role != role
            {
                return Err(Rejection::WrongRole {
                    expected: format!("role `{}`", a.role),
                    given: role,
                });
            }
            let message = format!("approved by {by} as {role}");
            t.record(Record::Approved {
                at: now,
                step,
                role,
                by,
                comment,
                item: None,
            });
            t.record(Record::StepFinished {
                at: now,
                step,
                attempt,
                outcome: Outcome::new(StepResult::Succeeded, message),
            });
            t.effects.push(Effect::Cancel { step, attempt });
        }
        Event::Abort { by, comment } | Event::Rollback { by, comment } if status.is_terminal() => {
            let _ = (by, comment);
            return Err(ended());
        }
        Event::Abort { by, comment } => {
            start_rollback(&mut t, launch, Cause::Aborted { by, comment }, now)?
        }
        Event::Rollback { by, comment } => start_rollback(
            &mut t,
            launch,
            Cause::RollbackRequested { by, comment },
            now,
        )?,
        Event::Promote { by } => {
            if status.is_terminal() {
                return Err(ended());
            }
            if launch.rolling_back.is_some() {
                return Err(Rejection::AlreadyRollingBack);
            }
            if launch.promoting.is_some() {
                return Err(Rejection::AlreadyPromoting);
            }
            if launch.started_at.is_none() {
                t.record(Record::LaunchStarted { at: now });
            }
            t.record(Record::PromoteRequested {
                at: now,
                by: by.clone(),
            });
            let reason = format!("promoted by {by}");
            for i in 0..launch.forward.len() {
                let step = StepRef::Forward(i);
                let unsettled = !t.state.step(step).status.is_settled();
                if unsettled && launch.in_flight.map(|(s, _)| s) != Some(step) {
                    t.record(Record::StepSkipped {
                        at: now,
                        step,
                        reason: reason.clone(),
                    });
                }
            }
            cancel_in_flight(&mut t, launch);
        }
        Event::Observed {
            step,
            subject,
            verdict,
            value,
            reason,
            dry_run,
        } => {
            if !status.is_terminal() {
                t.record(Record::Evaluated {
                    at: now,
                    step,
                    subject,
                    verdict,
                    value: value.filter(|v| v.is_finite()),
                    reason,
                    dry_run,
                });
            }
        }
        Event::FlagDisabled {
            trigger,
            flag,
            result,
        } => {
            // Also after the end: the launch may have ended while the flag changed.
            let (ok, detail) = match result {
                Ok(done) => (true, done),
                Err(e) => (false, e),
            };
            t.record(Record::FlagDisabled {
                at: now,
                trigger,
                flag,
                ok,
                detail,
            });
        }
        Event::Hold { reason } => {
            if status.is_terminal() || launch.rolling_back.is_some() || launch.held.is_some() {
                return Ok(t);
            }
            t.record(Record::Held { at: now, reason });
        }
        Event::TriggerFired {
            trigger,
            action,
            detail,
        } => {
            if status.is_terminal() || launch.rolling_back.is_some() {
                return Ok(t); // Already on its way out: nothing to add.
            }
            t.record(Record::TriggerFired {
                at: now,
                trigger: trigger.clone(),
                action: action.label().to_string(),
                detail: detail.clone(),
            });
            // The kill switch acts once its firing is journaled: an effect, like a step.
            if let Some(flag) = &t.state.disabling {
                t.effects.push(Effect::DisableFlag(flag.clone()));
            }
            match action {
                liftoff_plan::TriggerAction::Rollback => {
                    start_rollback(&mut t, launch, Cause::Trigger { trigger, detail }, now)?;
                }
                liftoff_plan::TriggerAction::Pause if launch.held.is_none() => {
                    t.record(Record::Held {
                        at: now,
                        reason: format!("trigger `{trigger}` fired: {detail}"),
                    });
                }
                _ => {}
            }
        }
        Event::Resume { by, decision: None }
            if launch.held.is_some() && launch.decision.is_none() =>
        {
            t.record(Record::Released { at: now, by });
        }
        Event::Resume { by, decision } => match (launch.decision.as_ref(), decision) {
            (Some(&(step, _)), Some(Decision::Retry)) => {
                t.record(Record::Decided {
                    at: now,
                    step,
                    decision: Decision::Retry,
                    by,
                });
                start(&mut t, step, now);
            }
            (Some(&(step, _)), Some(Decision::Skip)) => {
                t.record(Record::Decided {
                    at: now,
                    step,
                    decision: Decision::Skip,
                    by: by.clone(),
                });
                t.record(Record::StepSkipped {
                    at: now,
                    step,
                    reason: format!("skipped by {by}"),
                });
            }
            (Some((step, _)), None) => {
                return Err(Rejection::DecisionRequired {
                    step: launch.step_name(*step),
                });
            }
            (None, Some(_)) => {
                return Err(Rejection::NoDecisionPending {
                    status: status.as_str(),
                });
            }
            (None, None) => {
                let Some((step, attempt)) =
                    launch.in_flight.filter(|_| status == crate::Status::Paused)
                else {
                    return Err(Rejection::NotPaused {
                        status: status.as_str(),
                    });
                };
                t.record(Record::StepFinished {
                    at: now,
                    step,
                    attempt,
                    outcome: Outcome::new(StepResult::Succeeded, format!("resumed early by {by}")),
                });
                t.effects.push(Effect::Cancel { step, attempt });
            }
        },
    }
    Ok(t)
}

/// Journal an attempt's end; a failed forward step starts the rollback.
fn finish(t: &mut Transition, step: StepRef, attempt: u32, outcome: Outcome, now: Timestamp) {
    let failed = matches!(outcome.result, StepResult::Failed | StepResult::TimedOut);
    let message = outcome.message.clone().unwrap_or_else(|| "failed".into());
    t.record(Record::StepFinished {
        at: now,
        step,
        attempt,
        outcome,
    });
    let forward = matches!(
        step,
        StepRef::Baseline | StepRef::Forward(_) | StepRef::Promote
    );
    if failed && forward && t.state.rolling_back.is_none() {
        t.record(Record::RollbackStarted {
            at: now,
            cause: Cause::StepFailed { step, message },
        });
    }
}

/// Once every item of a checklist step has a result, the pass rule decides it.
fn settle_checklist(t: &mut Transition, step: StepRef, attempt: u32, now: Timestamp) {
    let Some(list) = t.state.checklist_of(step) else {
        return;
    };
    let state = t.state.step(step);
    let results: Vec<Option<&CheckResult>> =
        list.items.iter().map(|i| state.check(&i.name)).collect();
    if results.iter().any(Option::is_none) {
        return;
    }
    let tally = Tally::of(
        list.items
            .iter()
            .zip(&results)
            .map(|(i, r)| (i, r.map(|r| r.passed))),
    );
    let go = tally.go(list.pass);
    let failed: Vec<String> = list
        .items
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_some_and(|r| !r.passed))
        .map(|(i, _)| {
            let critical = if i.critical { " (critical)" } else { "" };
            format!("`{}`{critical}", i.name)
        })
        .collect();
    let mut message = format!("{}: {tally}", if go { "GO" } else { "NO-GO" });
    if !failed.is_empty() {
        message.push_str("; failed: ");
        message.push_str(&failed.join(", "));
    }
    let result = if go {
        StepResult::Succeeded
    } else {
        StepResult::Failed
    };
    finish(t, step, attempt, Outcome::new(result, message), now);
    t.effects.push(Effect::Cancel { step, attempt });
}

/// An `approve` for a checklist step: signs off its first pending `approval` item of
/// that role.
#[allow(clippy::too_many_arguments)]
fn sign_off(
    t: &mut Transition,
    launch: &Launch,
    step: StepRef,
    attempt: u32,
    role: String,
    by: String,
    comment: Option<String>,
    now: Timestamp,
) -> Result<(), Rejection> {
    let pending = launch.pending_sign_offs(step);
    let item = pending
        .iter()
        .find(|i| matches!(&i.kind, CheckKind::Approval { role: r } if *r == role));
    let Some(item) = item else {
        if pending.is_empty() {
            return Err(Rejection::NotWaitingForApproval {
                status: launch.status().as_str(),
            });
        }
        let roles: Vec<String> = pending
            .iter()
            .filter_map(|i| match &i.kind {
                CheckKind::Approval { role } => Some(format!("`{role}`")),
                _ => None,
            })
            .collect();
        return Err(Rejection::WrongRole {
            expected: format!("role {}", roles.join(" or ")),
            given: role,
        });
    };
    let evidence = match &comment {
        Some(c) => format!("approved by {by} as {role}: {c}"),
        None => format!("approved by {by} as {role}"),
    };
    let result = CheckResult {
        item: item.name.clone(),
        critical: item.critical,
        passed: true,
        evidence,
        duration_ms: 0,
        request: None,
        expected: None,
        actual: None,
    };
    t.record(Record::Approved {
        at: now,
        step,
        role,
        by,
        comment,
        item: Some(item.name.clone()),
    });
    t.record(Record::Checked {
        at: now,
        step,
        attempt,
        result,
    });
    settle_checklist(t, step, attempt, now);
    Ok(())
}

fn start_rollback(
    t: &mut Transition,
    launch: &Launch,
    cause: Cause,
    now: Timestamp,
) -> Result<(), Rejection> {
    if launch.rolling_back.is_some() {
        return Err(Rejection::AlreadyRollingBack);
    }
    if launch.started_at.is_none() {
        t.record(Record::LaunchStarted { at: now });
    }
    t.record(Record::RollbackStarted { at: now, cause });
    cancel_in_flight(t, launch);
    Ok(())
}

fn cancel_in_flight(t: &mut Transition, launch: &Launch) {
    if let Some((step, attempt)) = launch.in_flight {
        t.effects.push(Effect::Cancel { step, attempt });
    }
}

fn recover_in_flight(t: &mut Transition, step: StepRef, attempt: u32, now: Timestamp) {
    t.record(Record::StepInterrupted {
        at: now,
        step,
        attempt,
    });
    let superseded = matches!(
        step,
        StepRef::Baseline | StepRef::Forward(_) | StepRef::Checklist | StepRef::Announce
    ) && (t.state.rolling_back.is_some() || t.state.promoting.is_some());
    if superseded {
        // It was being cancelled when the daemon stopped; it must not run again.
        t.record(Record::StepFinished {
            at: now,
            step,
            attempt,
            outcome: Outcome::new(
                StepResult::Cancelled,
                "cancelled (interrupted by a restart)",
            ),
        });
    } else if t.state.is_idempotent(step) {
        start(t, step, now);
    } else {
        let name = t.state.step_name(step);
        t.record(Record::NeedsDecision {
            at: now,
            step,
            message: format!(
                "step `{name}` was running when the daemon stopped and is not marked idempotent: \
                 check whether it took effect, then resume with --retry-step or --skip-step, or abort"
            ),
        });
    }
}

/// Start the next thing the launch should do, or end it, if nothing is in flight.
fn advance(t: &mut Transition, now: Timestamp) {
    let s = &t.state;
    if s.ended.is_some() || s.in_flight.is_some() || s.decision.is_some() || s.started_at.is_none()
    {
        return;
    }
    // A hold stops new forward steps; a rollback still proceeds.
    if s.held.is_some() && s.rolling_back.is_none() {
        return;
    }
    let first_unsettled =
        |states: &[crate::launch::StepState]| states.iter().position(|st| !st.status.is_settled());
    // Without a router there is no traffic to move: no baseline, revert or promote.
    let routed = s.plan().router.is_some();
    if let Some((cause, _)) = &s.rolling_back {
        if routed && !s.revert.status.is_settled() {
            return start(t, StepRef::RevertTraffic, now);
        }
        // Backups come back newest first, before the rollback steps (which may need the
        // old schema).
        let restore = (0..s.forward.len()).rev().find(|&i| {
            let wants =
                matches!(&s.plan().steps[i].kind, StepKind::Migrate(m) if m.restore_on_rollback);
            wants && s.forward[i].backup.is_some() && !s.restores[i].status.is_settled()
        });
        if let Some(i) = restore {
            return start(t, StepRef::Restore(i), now);
        }
        if let Some(i) = first_unsettled(&s.rollback) {
            return start(t, StepRef::Rollback(i), now);
        }
        let failures: Vec<String> = std::iter::once(StepRef::RevertTraffic)
            .chain((0..s.restores.len()).map(StepRef::Restore))
            .chain((0..s.rollback.len()).map(StepRef::Rollback))
            .filter(|step| {
                matches!(
                    s.step(*step).status,
                    StepStatus::Failed | StepStatus::TimedOut
                )
            })
            .map(|step| s.step_name(step))
            .collect();
        let reason = cause.describe(|step| s.step_name(step));
        let (status, reason) = if failures.is_empty() {
            let status = match cause {
                Cause::Aborted { .. } => EndStatus::Aborted,
                _ => EndStatus::RolledBack,
            };
            (status, reason)
        } else {
            let failed = failures.join("`, `");
            (
                EndStatus::Failed,
                format!("{reason}; then the rollback failed at `{failed}`"),
            )
        };
        t.record(Record::LaunchEnded {
            at: now,
            status,
            reason,
        });
        return;
    }
    if s.promoting.is_some() {
        if routed && !s.promote.status.is_settled() {
            return start(t, StepRef::Promote, now);
        }
    } else if announces(s.plan()) && !s.announce.status.is_settled() {
        return start(t, StepRef::Announce, now);
    } else if announces(s.plan()) && s.announce.status != StepStatus::Succeeded {
        let reason = s
            .announce
            .outcome
            .as_ref()
            .and_then(|o| o.message.clone())
            .unwrap_or_else(|| "a required notification channel could not be told".into());
        t.record(Record::LaunchEnded {
            at: now,
            status: EndStatus::Failed,
            reason,
        });
        return;
    } else if s.plan().checklist.is_some() && !s.checklist.status.is_settled() {
        return start(t, StepRef::Checklist, now);
    } else if s.plan().checklist.is_some() && s.checklist.status != StepStatus::Succeeded {
        let reason = match s.checklist.outcome.as_ref().and_then(|o| o.message.clone()) {
            Some(m) => format!("checklist: {m}"),
            None => "checklist: NO-GO".to_string(),
        };
        t.record(Record::LaunchEnded {
            at: now,
            status: EndStatus::NoGo,
            reason,
        });
        return;
    } else if routed && !s.baseline.status.is_settled() {
        return start(t, StepRef::Baseline, now);
    } else if let Some(i) = first_unsettled(&s.forward) {
        return start(t, StepRef::Forward(i), now);
    }
    let reason = match &s.promoting {
        Some(by) => format!("promoted to 100% by {by}"),
        None => "all steps succeeded".to_string(),
    };
    t.record(Record::LaunchEnded {
        at: now,
        status: EndStatus::Succeeded,
        reason,
    });
}

/// Plans with a `required: true` notification channel tell it before anything changes.
fn announces(plan: &liftoff_plan::Plan) -> bool {
    plan.notify
        .as_ref()
        .is_some_and(|n| n.channels.iter().any(|c| c.required))
}

fn start(t: &mut Transition, step: StepRef, now: Timestamp) {
    let state = t.state.step(step);
    let attempt = state.attempts + 1;
    let first = state.first_started_at.unwrap_or(now);
    let approvals = state.approvals.clone();
    let after = |base: Timestamp, d: Duration| {
        SignedDuration::try_from(d)
            .ok()
            .and_then(|d| base.checked_add(d).ok())
    };
    // Sign-offs are waited for from the checklist's first start, across restarts.
    let sign_off_deadline = |list: &liftoff_plan::checks::Checklist| {
        list.items
            .iter()
            .filter(|i| matches!(i.kind, CheckKind::Approval { .. }))
            .map(|i| i.timeout)
            .max()
            .and_then(|d| after(first, d))
    };
    let deadline = match t.state.action(step) {
        Action::Step(s) => match &s.kind {
            StepKind::Pause(d) => after(first, *d),
            StepKind::Approve(a) => a.timeout.and_then(|d| after(first, d)),
            StepKind::Run(r) => after(now, r.timeout),
            StepKind::Wait(w) => after(now, w.timeout),
            StepKind::Deploy(d) => after(now, d.timeout),
            StepKind::Check(list) => sign_off_deadline(list),
            StepKind::Traffic(_)
            | StepKind::Maintenance(_)
            | StepKind::Analyze(_)
            | StepKind::Smoke(_)
            | StepKind::Monitor(_)
            | StepKind::Flag(_)
            | StepKind::Undeploy(_)
            | StepKind::Migrate(_) => None,
        },
        Action::Checklist(list) => sign_off_deadline(list),
        Action::SetWeight(_) | Action::Restore(_) | Action::Announce => None,
    };
    t.record(Record::StepStarted {
        at: now,
        step,
        attempt,
        deadline,
    });
    // Sign-offs given to an earlier attempt still hold.
    let carried: Vec<CheckResult> = t
        .state
        .pending_sign_offs(step)
        .iter()
        .filter_map(|item| {
            let a = approvals
                .iter()
                .find(|a| a.item.as_deref() == Some(&item.name))?;
            Some(CheckResult {
                item: item.name.clone(),
                critical: item.critical,
                passed: true,
                evidence: format!("approved by {} as {} (before a restart)", a.by, a.role),
                duration_ms: 0,
                request: None,
                expected: None,
                actual: None,
            })
        })
        .collect();
    for result in carried {
        t.record(Record::Checked {
            at: now,
            step,
            attempt,
            result,
        });
    }
    t.effects.push(Effect::Execute {
        step,
        attempt,
        deadline,
    });
}
