//! Launch state: a fold of journal records over the plan. `apply` is the only way state
//! changes, live or on replay, so a recovered launch is the launch that was running.

use std::sync::Arc;

use jiff::Timestamp;
use liftoff_plan::checks::{CheckItem, CheckKind, Checklist, PassRule};
use liftoff_plan::{Plan, Step, StepKind, Weight};

use crate::record::{
    BackupInfo, Cause, CheckResult, EndStatus, Outcome, Record, StepRef, StepResult,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    Pending,
    Running,
    WaitingApproval,
    Paused,
    NeedsDecision,
    RollingBack,
    RolledBack,
    Succeeded,
    Failed,
    Aborted,
    NoGo,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::WaitingApproval => "waiting-approval",
            Status::Paused => "paused",
            Status::NeedsDecision => "needs-decision",
            Status::RollingBack => "rolling-back",
            Status::RolledBack => "rolled-back",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Aborted => "aborted",
            Status::NoGo => "no-go",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::RolledBack
                | Status::Succeeded
                | Status::Failed
                | Status::Aborted
                | Status::NoGo
        )
    }
}

impl From<EndStatus> for Status {
    fn from(s: EndStatus) -> Self {
        match s {
            EndStatus::Succeeded => Status::Succeeded,
            EndStatus::RolledBack => Status::RolledBack,
            EndStatus::Failed => Status::Failed,
            EndStatus::Aborted => Status::Aborted,
            EndStatus::NoGo => Status::NoGo,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    Skipped,
    /// Was in flight when the daemon stopped; waits for a retry or a decision.
    Interrupted,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::TimedOut => "timed-out",
            StepStatus::Cancelled => "cancelled",
            StepStatus::Skipped => "skipped",
            StepStatus::Interrupted => "interrupted",
        }
    }

    /// Nothing more will happen to the step in this launch.
    pub fn is_settled(self) -> bool {
        !matches!(
            self,
            StepStatus::Pending | StepStatus::Running | StepStatus::Interrupted
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    pub role: String,
    pub by: String,
    pub comment: Option<String>,
    pub at: Timestamp,
    /// The checklist item signed off (`approval` items); `None` for `approve` steps.
    pub item: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepState {
    pub status: StepStatus,
    pub attempts: u32,
    pub first_started_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub deadline: Option<Timestamp>,
    pub outcome: Option<Outcome>,
    pub approval: Option<Approval>,
    pub skipped_reason: Option<String>,
    /// Results of the current attempt's checklist items, smoke requests or verify
    /// queries, in the order they arrived.
    pub checks: Vec<CheckResult>,
    /// Sign-offs of checklist `approval` items, across attempts.
    pub approvals: Vec<Approval>,
    /// The backup a `migrate` step took (its latest attempt's).
    pub backup: Option<BackupInfo>,
    /// Checkpoints of a `monitor` step already judged, across attempts (by index).
    pub checkpoints: Vec<usize>,
}

impl StepState {
    fn new() -> Self {
        Self {
            status: StepStatus::Pending,
            attempts: 0,
            first_started_at: None,
            started_at: None,
            ended_at: None,
            deadline: None,
            outcome: None,
            approval: None,
            skipped_reason: None,
            checks: Vec::new(),
            approvals: Vec::new(),
            backup: None,
            checkpoints: Vec::new(),
        }
    }

    /// The current attempt's result for a checklist item.
    pub fn check(&self, item: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.item == item)
    }
}

/// A checklist with nothing in it, for plans without one.
static NO_CHECKLIST: Checklist = Checklist {
    items: Vec::new(),
    pass: PassRule {
        critical: Weight::FULL,
        overall: Weight::STABLE,
    },
};

/// What executing a step means, for the shell.
#[derive(Clone, Copy, Debug)]
pub enum Action<'a> {
    Step(&'a Step),
    SetWeight(Weight),
    /// Run the plan's checklist.
    Checklist(&'a Checklist),
    /// Restore the backup this `migrate` step took.
    Restore(&'a Step),
    /// Tell the plan's required notification channels that the launch starts.
    Announce,
}

impl<'a> Action<'a> {
    pub fn of(plan: &'a Plan, step: StepRef) -> Self {
        match step {
            StepRef::Forward(i) => Action::Step(&plan.steps[i]),
            StepRef::Rollback(i) => Action::Step(&plan.rollback.steps[i]),
            StepRef::Baseline | StepRef::RevertTraffic => Action::SetWeight(Weight::STABLE),
            StepRef::Promote => Action::SetWeight(Weight::FULL),
            StepRef::Checklist => {
                Action::Checklist(plan.checklist.as_ref().unwrap_or(&NO_CHECKLIST))
            }
            StepRef::Restore(i) => Action::Restore(&plan.steps[i]),
            StepRef::Announce => Action::Announce,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Launch {
    plan: Arc<Plan>,
    pub(crate) baseline: StepState,
    pub(crate) started_at: Option<Timestamp>,
    pub(crate) ended: Option<(EndStatus, Timestamp, String)>,
    pub(crate) forward: Vec<StepState>,
    pub(crate) rollback: Vec<StepState>,
    pub(crate) revert: StepState,
    pub(crate) promote: StepState,
    pub(crate) checklist: StepState,
    pub(crate) announce: StepState,
    /// Per forward step: restoring its backup (`migrate` steps only).
    pub(crate) restores: Vec<StepState>,
    pub(crate) in_flight: Option<(StepRef, u32)>,
    pub(crate) rolling_back: Option<(Cause, Timestamp)>,
    pub(crate) promoting: Option<String>,
    pub(crate) decision: Option<(StepRef, String)>,
    pub(crate) weight: Option<Weight>,
    /// Why the launch holds, if it does.
    pub(crate) held: Option<String>,
    /// A non-zero candidate weight was applied at some point.
    pub(crate) armed: bool,
    /// A `disable_flag` trigger fired and its flag change has no outcome journaled yet.
    pub(crate) disabling: Option<FlagToDisable>,
}

/// The flag a fired `disable_flag` trigger turns off, and why (for the flag's audit log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagToDisable {
    pub trigger: String,
    pub flag: String,
    pub cause: String,
}

impl FlagToDisable {
    /// The flag `trigger` turns off, if the plan has it as a `disable_flag` trigger.
    pub(crate) fn of(plan: &Plan, trigger: &str, detail: &str) -> Option<Self> {
        plan.rollback.triggers.iter().find_map(|t| match &t.action {
            liftoff_plan::TriggerAction::DisableFlag(flag) if t.gate.text() == trigger => {
                Some(Self {
                    trigger: trigger.to_string(),
                    flag: flag.clone(),
                    cause: format!("trigger `{trigger}` fired: {detail}"),
                })
            }
            _ => None,
        })
    }
}

impl Launch {
    pub fn new(plan: Arc<Plan>) -> Self {
        Self {
            forward: plan.steps.iter().map(|_| StepState::new()).collect(),
            rollback: plan
                .rollback
                .steps
                .iter()
                .map(|_| StepState::new())
                .collect(),
            restores: plan.steps.iter().map(|_| StepState::new()).collect(),
            checklist: StepState::new(),
            announce: StepState::new(),
            baseline: StepState::new(),
            revert: StepState::new(),
            promote: StepState::new(),
            plan,
            started_at: None,
            ended: None,
            in_flight: None,
            rolling_back: None,
            promoting: None,
            decision: None,
            weight: None,
            held: None,
            armed: false,
            disabling: None,
        }
    }

    /// The state after `records`, in journal order.
    pub fn replay<'r>(plan: Arc<Plan>, records: impl IntoIterator<Item = &'r Record>) -> Self {
        let mut launch = Self::new(plan);
        for record in records {
            launch.apply(record);
        }
        launch
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn plan_arc(&self) -> Arc<Plan> {
        self.plan.clone()
    }

    pub fn status(&self) -> Status {
        if let Some((end, ..)) = &self.ended {
            return (*end).into();
        }
        if self.decision.is_some() {
            return Status::NeedsDecision;
        }
        if self.started_at.is_none() {
            return Status::Pending;
        }
        if self.rolling_back.is_some() {
            return Status::RollingBack;
        }
        if self.held.is_some() {
            return Status::Paused;
        }
        if let Some((step, _)) = self.in_flight
            && self.awaits_sign_off(step)
        {
            return Status::WaitingApproval;
        }
        match self.in_flight.map(|(step, _)| self.action(step)) {
            Some(Action::Step(Step {
                kind: StepKind::Approve(_),
                ..
            })) => Status::WaitingApproval,
            Some(Action::Step(Step {
                kind: StepKind::Pause(_),
                ..
            })) => Status::Paused,
            _ => Status::Running,
        }
    }

    pub fn action(&self, step: StepRef) -> Action<'_> {
        Action::of(&self.plan, step)
    }

    pub fn step_name(&self, step: StepRef) -> String {
        match step {
            StepRef::Forward(i) => self.plan.steps[i].name.clone(),
            StepRef::Rollback(i) => self.plan.rollback.steps[i].name.clone(),
            StepRef::Baseline => "traffic pinned to stable".into(),
            StepRef::RevertTraffic => "traffic back to stable".into(),
            StepRef::Promote => "promote to 100%".into(),
            StepRef::Checklist => "checklist".into(),
            StepRef::Restore(i) => format!("restore backup of `{}`", self.plan.steps[i].name),
            StepRef::Announce => "tell required channels".into(),
        }
    }

    pub fn is_idempotent(&self, step: StepRef) -> bool {
        match self.action(step) {
            Action::Step(s) => s.idempotent(),
            // A restore starts from the same archive each time.
            Action::SetWeight(_) | Action::Checklist(_) | Action::Restore(_) => true,
            // Telling twice is better than never: receivers deduplicate by notice id.
            Action::Announce => true,
        }
    }

    pub fn step(&self, step: StepRef) -> &StepState {
        match step {
            StepRef::Baseline => &self.baseline,
            StepRef::Forward(i) => &self.forward[i],
            StepRef::Rollback(i) => &self.rollback[i],
            StepRef::RevertTraffic => &self.revert,
            StepRef::Promote => &self.promote,
            StepRef::Checklist => &self.checklist,
            StepRef::Restore(i) => &self.restores[i],
            StepRef::Announce => &self.announce,
        }
    }

    fn step_mut(&mut self, step: StepRef) -> &mut StepState {
        match step {
            StepRef::Baseline => &mut self.baseline,
            StepRef::Forward(i) => &mut self.forward[i],
            StepRef::Rollback(i) => &mut self.rollback[i],
            StepRef::RevertTraffic => &mut self.revert,
            StepRef::Promote => &mut self.promote,
            StepRef::Checklist => &mut self.checklist,
            StepRef::Restore(i) => &mut self.restores[i],
            StepRef::Announce => &mut self.announce,
        }
    }

    pub fn forward_steps(&self) -> &[StepState] {
        &self.forward
    }

    pub fn rollback_steps(&self) -> &[StepState] {
        &self.rollback
    }

    pub fn baseline_step(&self) -> &StepState {
        &self.baseline
    }

    pub fn revert_step(&self) -> &StepState {
        &self.revert
    }

    pub fn promote_step(&self) -> &StepState {
        &self.promote
    }

    pub fn checklist_step(&self) -> &StepState {
        &self.checklist
    }

    pub fn announce_step(&self) -> &StepState {
        &self.announce
    }

    /// Restores of `migrate` steps' backups, by forward step index.
    pub fn restore_steps(&self) -> &[StepState] {
        &self.restores
    }

    /// The checklist a step runs: the plan's checklist, or a `check` step's items.
    pub fn checklist_of(&self, step: StepRef) -> Option<&Checklist> {
        match self.action(step) {
            Action::Checklist(list) => Some(list),
            Action::Step(Step {
                kind: StepKind::Check(list),
                ..
            }) => Some(list),
            _ => None,
        }
    }

    /// `approval` items of a checklist step still waiting for a sign-off.
    pub fn pending_sign_offs(&self, step: StepRef) -> Vec<&CheckItem> {
        let Some(list) = self.checklist_of(step) else {
            return Vec::new();
        };
        let state = self.step(step);
        list.items
            .iter()
            .filter(|i| matches!(i.kind, CheckKind::Approval { .. }))
            .filter(|i| state.check(&i.name).is_none())
            .collect()
    }

    /// A checklist step whose automatic items are all done and that waits for people.
    fn awaits_sign_off(&self, step: StepRef) -> bool {
        let Some(list) = self.checklist_of(step) else {
            return false;
        };
        let state = self.step(step);
        let automatic_done = list
            .items
            .iter()
            .filter(|i| !matches!(i.kind, CheckKind::Approval { .. }))
            .all(|i| state.check(&i.name).is_some());
        automatic_done && !self.pending_sign_offs(step).is_empty()
    }

    pub fn in_flight(&self) -> Option<(StepRef, u32)> {
        self.in_flight
    }

    /// The candidate weight last confirmed applied; `None` before any traffic change.
    pub fn weight(&self) -> Option<Weight> {
        self.weight
    }

    pub fn started_at(&self) -> Option<Timestamp> {
        self.started_at
    }

    pub fn ended_at(&self) -> Option<Timestamp> {
        self.ended.as_ref().map(|(_, at, _)| *at)
    }

    /// Why the launch ended, or why it is rolling back.
    pub fn reason(&self) -> Option<String> {
        if let Some((_, _, reason)) = &self.ended {
            return Some(reason.clone());
        }
        self.rolling_back
            .as_ref()
            .map(|(cause, _)| cause.describe(|s| self.step_name(s)))
    }

    pub fn rollback_cause(&self) -> Option<&Cause> {
        self.rolling_back.as_ref().map(|(c, _)| c)
    }

    pub fn rollback_started_at(&self) -> Option<Timestamp> {
        self.rolling_back.as_ref().map(|(_, at)| *at)
    }

    pub fn pending_decision(&self) -> Option<(StepRef, &str)> {
        self.decision.as_ref().map(|(s, m)| (*s, m.as_str()))
    }

    /// Why the launch holds (a trigger or an inconclusive analysis), if it does.
    pub fn held(&self) -> Option<&str> {
        self.held.as_deref()
    }

    /// Whether rollback triggers are watched: from the first non-zero candidate weight
    /// until the launch ends (and not once a rollback has begun).
    pub fn triggers_armed(&self) -> bool {
        self.ended.is_none() && self.rolling_back.is_none() && self.armed
    }

    pub fn promoted_by(&self) -> Option<&str> {
        self.promoting.as_deref()
    }

    pub fn apply(&mut self, record: &Record) {
        match record {
            Record::LaunchStarted { at } => self.started_at = Some(*at),
            Record::StepStarted {
                at,
                step,
                attempt,
                deadline,
            } => {
                let s = self.step_mut(*step);
                s.status = StepStatus::Running;
                s.attempts = *attempt;
                s.first_started_at.get_or_insert(*at);
                s.started_at = Some(*at);
                s.ended_at = None;
                s.deadline = *deadline;
                s.outcome = None;
                s.checks.clear();
                self.in_flight = Some((*step, *attempt));
                self.decision = None;
            }
            Record::StepFinished {
                at, step, outcome, ..
            } => {
                let weight = match self.action(*step) {
                    Action::Step(Step {
                        kind: StepKind::Traffic(w),
                        ..
                    }) => Some(*w),
                    Action::SetWeight(w) => Some(w),
                    _ => None,
                };
                if outcome.result == StepResult::Succeeded
                    && let Some(w) = weight
                {
                    self.weight = Some(w);
                    self.armed |= w > Weight::STABLE;
                }
                let s = self.step_mut(*step);
                s.status = match outcome.result {
                    StepResult::Succeeded => StepStatus::Succeeded,
                    StepResult::Failed => StepStatus::Failed,
                    StepResult::TimedOut => StepStatus::TimedOut,
                    StepResult::Cancelled => StepStatus::Cancelled,
                };
                s.ended_at = Some(*at);
                s.outcome = Some(outcome.clone());
                if self.in_flight.is_some_and(|(s, _)| s == *step) {
                    self.in_flight = None;
                }
            }
            Record::StepInterrupted { at, step, .. } => {
                let s = self.step_mut(*step);
                s.status = StepStatus::Interrupted;
                s.ended_at = Some(*at);
                if self.in_flight.is_some_and(|(s, _)| s == *step) {
                    self.in_flight = None;
                }
            }
            Record::StepSkipped { at, step, reason } => {
                let s = self.step_mut(*step);
                s.status = StepStatus::Skipped;
                s.ended_at = Some(*at);
                s.skipped_reason = Some(reason.clone());
                if self.decision.as_ref().is_some_and(|(d, _)| d == step) {
                    self.decision = None;
                }
            }
            Record::Approved {
                at,
                step,
                role,
                by,
                comment,
                item,
            } => {
                let approval = Approval {
                    role: role.clone(),
                    by: by.clone(),
                    comment: comment.clone(),
                    at: *at,
                    item: item.clone(),
                };
                let s = self.step_mut(*step);
                match item {
                    Some(_) => s.approvals.push(approval),
                    None => s.approval = Some(approval),
                }
            }
            Record::Checked {
                step,
                attempt,
                result,
                ..
            } => {
                let s = self.step_mut(*step);
                if s.attempts == *attempt && s.check(&result.item).is_none() {
                    s.checks.push(result.clone());
                }
            }
            Record::BackupTaken { step, backup, .. } => {
                self.step_mut(*step).backup = Some(backup.clone());
            }
            Record::Checkpoint { step, index, .. } => {
                let s = self.step_mut(*step);
                if !s.checkpoints.contains(index) {
                    s.checkpoints.push(*index);
                }
            }
            Record::NeedsDecision { step, message, .. } => {
                self.decision = Some((*step, message.clone()));
            }
            Record::Decided { .. } => self.decision = None,
            Record::RollbackStarted { at, cause } => {
                self.rolling_back = Some((cause.clone(), *at));
                self.decision = None;
                self.held = None;
            }
            Record::PromoteRequested { by, .. } => {
                self.promoting = Some(by.clone());
                self.decision = None;
                self.held = None;
            }
            Record::TriggerFired {
                trigger,
                action,
                detail,
                ..
            } => {
                if action == "disable_flag" {
                    self.disabling = FlagToDisable::of(&self.plan, trigger, detail);
                }
            }
            Record::FlagDisabled { .. } => self.disabling = None,
            Record::Evaluated { .. }
            | Record::FollowUpScheduled { .. }
            | Record::Sampled { .. }
            | Record::Notified { .. } => {}
            Record::Held { reason, .. } => self.held = Some(reason.clone()),
            Record::Released { .. } => self.held = None,
            Record::LaunchEnded { at, status, reason } => {
                self.ended = Some((*status, *at, reason.clone()));
                self.in_flight = None;
                self.decision = None;
            }
        }
    }
}

/// A ten-cell bar of the candidate's share: `▕██▌       ▏`.
fn bar(w: Weight) -> String {
    const CELLS: usize = 10;
    let eighths = (usize::from(w.basis_points()) * CELLS * 8).div_ceil(10_000);
    let full = eighths / 8;
    let part = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"][eighths % 8];
    let used = full + usize::from(!part.is_empty());
    format!(
        "▕{}{part}{}▏",
        "█".repeat(full),
        " ".repeat(CELLS.saturating_sub(used))
    )
}

impl Launch {
    /// One line for humans about a record of this launch (for `--follow`, logs, reports).
    pub fn summarize(&self, record: &Record) -> String {
        let name = |s: &StepRef| self.step_name(*s);
        match record {
            Record::LaunchStarted { .. } => "launch started".into(),
            Record::StepStarted {
                step, attempt: 1, ..
            } => format!("`{}` started", name(step)),
            Record::StepStarted { step, attempt, .. } => {
                format!("`{}` started (attempt {attempt})", name(step))
            }
            Record::StepFinished { step, outcome, .. } => {
                let verb = match outcome.result {
                    StepResult::Succeeded => "succeeded",
                    StepResult::Failed => "failed",
                    StepResult::TimedOut => "timed out",
                    StepResult::Cancelled => "cancelled",
                };
                match &outcome.message {
                    Some(m) => format!("`{}` {verb}: {m}", name(step)),
                    None => format!("`{}` {verb}", name(step)),
                }
            }
            Record::StepInterrupted { step, .. } => {
                format!("`{}` was interrupted by a daemon restart", name(step))
            }
            Record::StepSkipped { step, reason, .. } => {
                format!("`{}` skipped: {reason}", name(step))
            }
            Record::Approved {
                role,
                by,
                comment,
                item,
                ..
            } => {
                let what = match item {
                    Some(item) => format!("`{item}` approved by {by} as {role}"),
                    None => format!("approved by {by} as {role}"),
                };
                match comment {
                    Some(c) => format!("{what}: {c}"),
                    None => what,
                }
            }
            Record::Checked { step, result, .. } => {
                let verdict = if result.passed { "passed" } else { "FAILED" };
                format!(
                    "`{}` › `{}` {verdict}: {}",
                    name(step),
                    result.item,
                    result.evidence
                )
            }
            Record::Checkpoint {
                step,
                index,
                passed,
                summary,
                ..
            } => {
                let verdict = if *passed { "passed" } else { "FAILED" };
                format!(
                    "`{}` checkpoint {} {verdict}: {summary}",
                    name(step),
                    index + 1
                )
            }
            Record::Notified {
                channel,
                event,
                delivered,
                attempts,
                detail,
                ..
            } => {
                let what = if *delivered { "sent" } else { "NOT delivered" };
                format!(
                    "{event} notification {what} on `{channel}` after {attempts} attempt(s): {detail}"
                )
            }
            Record::Sampled {
                versions,
                trigger: Some(trigger),
                window_secs,
                ..
            } => {
                let parts: Vec<String> = versions
                    .iter()
                    .map(|v| {
                        let failed = v.failed.map_or("-".to_string(), |f| f.to_string());
                        let rate = v
                            .error_rate
                            .map_or("-".to_string(), |r| format!("{:.2}%", r * 100.0));
                        format!(
                            "{} {} requests, {failed} failed ({rate})",
                            v.version, v.requests
                        )
                    })
                    .collect();
                format!(
                    "trigger `{trigger}` judged the last {}: {}",
                    liftoff_plan::human::duration_secs(*window_secs),
                    parts.join("; ")
                )
            }
            Record::Sampled {
                versions,
                weight_bp,
                ..
            } => {
                let parts: Vec<String> = versions
                    .iter()
                    .map(|v| {
                        let rate = v
                            .error_rate
                            .map_or("-".to_string(), |r| format!("{:.2}%", r * 100.0));
                        let p95 = v.p95_ms.map_or("-".to_string(), |p| format!("{p:.0}ms"));
                        format!("{} {:.1} rps, errors {rate}, p95 {p95}", v.version, v.rps)
                    })
                    .collect();
                match weight_bp.and_then(Weight::from_basis_points) {
                    Some(w) => format!(
                        "candidate {:>6} {} {}",
                        format!("{w}%"),
                        bar(w),
                        parts.join("; ")
                    ),
                    None => format!("traffic: {}", parts.join("; ")),
                }
            }
            Record::FollowUpScheduled { step, due, .. } => {
                let command = match self.action(*step) {
                    Action::Step(s) => s.after.as_ref().map(|a| a.command.to_string()),
                    _ => None,
                };
                format!(
                    "`{}` scheduled its follow-up for {due}: {}",
                    name(step),
                    command.unwrap_or_default()
                )
            }
            Record::BackupTaken { step, backup, .. } => format!(
                "`{}` backed up the database to {} ({} bytes in {}ms; {})",
                name(step),
                backup.path,
                backup.bytes,
                backup.duration_ms,
                backup.detail
            ),
            Record::NeedsDecision { message, .. } => format!("needs a decision: {message}"),
            Record::Decided {
                step, decision, by, ..
            } => {
                let what = match decision {
                    crate::Decision::Retry => "retry",
                    crate::Decision::Skip => "skip",
                };
                format!("{by} chose to {what} `{}`", name(step))
            }
            Record::RollbackStarted { cause, .. } => {
                format!("rolling back: {}", cause.describe(|s| self.step_name(s)))
            }
            Record::PromoteRequested { by, .. } => format!("promotion to 100% requested by {by}"),
            Record::LaunchEnded { status, reason, .. } => {
                format!("launch {}: {reason}", Status::from(*status).as_str())
            }
            Record::Evaluated {
                subject,
                verdict,
                reason,
                dry_run,
                ..
            } => {
                let shadow = if *dry_run { " (dry run)" } else { "" };
                format!("`{subject}` {verdict}{shadow}: {reason}")
            }
            Record::TriggerFired {
                trigger,
                action,
                detail,
                ..
            } => format!("trigger `{trigger}` fired ({action}): {detail}"),
            Record::FlagDisabled {
                flag,
                ok: true,
                detail,
                ..
            } => format!("flag `{flag}` turned off: {detail}"),
            Record::FlagDisabled {
                flag,
                ok: false,
                detail,
                ..
            } => format!("could not turn flag `{flag}` off: {detail}"),
            Record::Held { reason, .. } => format!("holding: {reason}; resume or abort"),
            Record::Released { by, .. } => format!("released by {by}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weight_bar_fills_in_eighths_of_a_cell() {
        let w = |bp| bar(Weight::from_basis_points(bp).unwrap());
        assert_eq!(w(0), "▕          ▏");
        assert_eq!(w(10_000), "▕██████████▏");
        assert_eq!(w(2_500), "▕██▌       ▏");
        assert_eq!(w(500), "▕▌         ▏");
        assert_eq!(w(1), "▕▏         ▏", "any traffic shows");
    }
}
