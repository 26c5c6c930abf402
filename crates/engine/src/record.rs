//! Journal records: the durable history of a launch. A compatibility boundary: records
//! written by one version of liftoff must be read by the next, so variants and fields
//! are only ever added (with serde defaults), never renamed or removed.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Which step: one of the plan's steps, one of its rollback steps, or one of the two
/// traffic moves the engine makes on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepRef {
    /// Traffic pinned to stable before the first step, so every launch starts from a
    /// known split (plans with a router only).
    Baseline,
    Forward(usize),
    /// All traffic back to stable: the first thing a rollback does.
    RevertTraffic,
    Rollback(usize),
    /// All traffic to the candidate, on `promote`.
    Promote,
    /// The plan's go/no-go checklist: before anything else; NO-GO ends the launch.
    Checklist,
    /// Telling the plan's `required: true` channels that the launch starts: before
    /// anything else; a channel that cannot be told fails the launch untouched.
    Announce,
    /// Restoring the backup taken by the `migrate` step at this index of `steps`, during
    /// a rollback (after traffic is back on stable, before the rollback steps).
    Restore(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepResult {
    Succeeded,
    Failed,
    TimedOut,
    /// Stopped by liftoff (abort, rollback, promote, an approval or resume arriving).
    Cancelled,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub result: StepResult,
    /// One line for humans: "weight set to 50%", "exit status 3", "approved by ana".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Captured (truncated, redacted) output of commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

impl Outcome {
    pub fn new(result: StepResult, message: impl Into<String>) -> Self {
        Self {
            result,
            message: Some(message.into()),
            output: None,
        }
    }

    pub fn with_output(mut self, output: impl Into<String>) -> Self {
        let output = output.into();
        self.output = (!output.is_empty()).then_some(output);
        self
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Retry,
    Skip,
}

/// Why a launch is rolling back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Cause {
    StepFailed {
        step: StepRef,
        message: String,
    },
    Aborted {
        by: String,
        comment: Option<String>,
    },
    RollbackRequested {
        by: String,
        comment: Option<String>,
    },
    /// A rollback trigger crossed its threshold.
    Trigger {
        trigger: String,
        detail: String,
    },
}

impl Cause {
    pub fn describe(&self, step_name: impl Fn(StepRef) -> String) -> String {
        let with_comment = |verb: &str, by: &str, comment: &Option<String>| match comment {
            Some(c) => format!("{verb} by {by}: {c}"),
            None => format!("{verb} by {by}"),
        };
        match self {
            Cause::StepFailed { step, message } => {
                format!("step `{}` failed: {message}", step_name(*step))
            }
            Cause::Aborted { by, comment } => with_comment("aborted", by, comment),
            Cause::RollbackRequested { by, comment } => {
                with_comment("rollback requested", by, comment)
            }
            Cause::Trigger { trigger, detail } => format!("trigger `{trigger}` fired: {detail}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndStatus {
    Succeeded,
    RolledBack,
    /// The rollback itself did not complete: a human must look.
    Failed,
    Aborted,
    /// The checklist said NO-GO: nothing was changed.
    NoGo,
}

/// The result of one checklist item, smoke request or verify query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub item: String,
    pub critical: bool,
    pub passed: bool,
    /// One line for humans, redacted.
    pub evidence: String,
    #[serde(default)]
    pub duration_ms: u64,
    /// For requests: what was sent, what was expected, what came back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<String>,
}

/// What one version served over a sampling window (builtin router).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersionSample {
    /// `stable` or `candidate`.
    pub version: String,
    pub requests: u64,
    /// Requests that failed because of the version (absent from older journals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<u64>,
    /// Failed / requests; `None` without requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<f64>,
    pub rps: f64,
}

/// A database backup taken by a `migrate` step before its migration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupInfo {
    pub path: String,
    pub bytes: u64,
    pub duration_ms: u64,
    /// How the backup was checked readable.
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Record {
    LaunchStarted {
        at: Timestamp,
    },
    /// Written before the step's effect begins.
    StepStarted {
        at: Timestamp,
        step: StepRef,
        attempt: u32,
        /// When the attempt times out (for `pause`, when it ends). Pauses and approvals
        /// keep the deadline of their first attempt, so waits count wall-clock time
        /// across restarts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deadline: Option<Timestamp>,
    },
    /// Written when the step's effect has completed.
    StepFinished {
        at: Timestamp,
        step: StepRef,
        attempt: u32,
        outcome: Outcome,
    },
    /// The daemon found this attempt in flight after a restart.
    StepInterrupted {
        at: Timestamp,
        step: StepRef,
        attempt: u32,
    },
    StepSkipped {
        at: Timestamp,
        step: StepRef,
        reason: String,
    },
    Approved {
        at: Timestamp,
        step: StepRef,
        role: String,
        by: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
        /// The checklist item signed off, for `approval` items.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item: Option<String>,
    },
    NeedsDecision {
        at: Timestamp,
        step: StepRef,
        message: String,
    },
    Decided {
        at: Timestamp,
        step: StepRef,
        decision: Decision,
        by: String,
    },
    RollbackStarted {
        at: Timestamp,
        cause: Cause,
    },
    PromoteRequested {
        at: Timestamp,
        by: String,
    },
    LaunchEnded {
        at: Timestamp,
        status: EndStatus,
        reason: String,
    },
    /// One evaluation of a gate, a comparison, or a trigger: why the launch went on,
    /// held or rolled back.
    Evaluated {
        at: Timestamp,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<StepRef>,
        /// The gate or trigger as written, or `compare: stable`.
        subject: String,
        /// successful, failed, inconclusive (gates); pass, marginal, fail (compare);
        /// crossed, clear (triggers).
        verdict: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<f64>,
        reason: String,
        #[serde(default)]
        dry_run: bool,
    },
    TriggerFired {
        at: Timestamp,
        trigger: String,
        action: String,
        detail: String,
    },
    /// What came of a `disable_flag` trigger's flag change, journaled after the
    /// `TriggerFired` that started it (record before effect): `ok`, or why not.
    FlagDisabled {
        at: Timestamp,
        trigger: String,
        flag: String,
        ok: bool,
        /// The flag service's line ("flag `x`: enabled true → false"), or the error.
        detail: String,
    },
    /// The launch holds: no new step starts (traffic stays) until a human resumes it.
    Held {
        at: Timestamp,
        reason: String,
    },
    Released {
        at: Timestamp,
        by: String,
    },
    /// One checklist item, smoke request or verify query of an attempt.
    Checked {
        at: Timestamp,
        step: StepRef,
        attempt: u32,
        result: CheckResult,
    },
    BackupTaken {
        at: Timestamp,
        step: StepRef,
        attempt: u32,
        backup: BackupInfo,
    },
    /// A notification was delivered (or given up on) on one channel.
    Notified {
        at: Timestamp,
        /// The channel's name in the plan.
        channel: String,
        /// The launch event it told of: `launch_started`, `rollback_started`, ...
        event: String,
        delivered: bool,
        attempts: u32,
        /// `HTTP 200`, or why it failed (redacted).
        detail: String,
        /// The Statuspage maintenance this channel keeps for the launch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        incident_id: Option<String>,
    },
    /// Per-version traffic figures over the last `window_secs`, for reports and charts:
    /// taken every [`sampling_interval`], and by a rollback trigger as it fires.
    Sampled {
        at: Timestamp,
        window_secs: f64,
        versions: Vec<VersionSample>,
        /// The candidate's share when sampled, in basis points.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weight_bp: Option<u16>,
        /// The trigger that judged this window (as written), when it is the evidence a
        /// trigger fired on: the window it evaluated, journaled just before
        /// `TriggerFired`, however short the launch was.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trigger: Option<String>,
    },
    /// A `monitor` step's checkpoint: its gates judged at its time after the step began.
    Checkpoint {
        at: Timestamp,
        step: StepRef,
        /// Which checkpoint of the step (0-based).
        index: usize,
        passed: bool,
        /// "All systems healthy", or which gate failed and why.
        summary: String,
    },
    /// The step succeeded and its `after:` command is due at `due` (kept by the daemon
    /// with this record; cancelled if the launch does not succeed).
    FollowUpScheduled {
        at: Timestamp,
        step: StepRef,
        due: Timestamp,
    },
}

/// How long the traffic sampler waits, `age` into a launch, before its next
/// [`Record::Sampled`]: 2 s for the first 5 minutes, then 15 s until the first hour,
/// then a minute (a 48-hour watch stays a few thousand records). Windows in which no
/// version served a request are not journaled. Reports read this to tell a launch that
/// ended before its first sample from a router that saw no traffic.
pub fn sampling_interval(age: std::time::Duration) -> std::time::Duration {
    use std::time::Duration;
    match age {
        a if a < Duration::from_secs(300) => Duration::from_secs(2),
        a if a < Duration::from_secs(3_600) => Duration::from_secs(15),
        _ => Duration::from_secs(60),
    }
}

impl Record {
    pub fn at(&self) -> Timestamp {
        match self {
            Record::LaunchStarted { at }
            | Record::StepStarted { at, .. }
            | Record::StepFinished { at, .. }
            | Record::StepInterrupted { at, .. }
            | Record::StepSkipped { at, .. }
            | Record::Approved { at, .. }
            | Record::NeedsDecision { at, .. }
            | Record::Decided { at, .. }
            | Record::RollbackStarted { at, .. }
            | Record::PromoteRequested { at, .. }
            | Record::LaunchEnded { at, .. }
            | Record::Evaluated { at, .. }
            | Record::TriggerFired { at, .. }
            | Record::FlagDisabled { at, .. }
            | Record::Held { at, .. }
            | Record::Released { at, .. }
            | Record::Checked { at, .. }
            | Record::BackupTaken { at, .. }
            | Record::FollowUpScheduled { at, .. }
            | Record::Sampled { at, .. }
            | Record::Notified { at, .. }
            | Record::Checkpoint { at, .. } => *at,
        }
    }

    /// The record's type tag, as stored beside it in the journal.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::LaunchStarted { .. } => "launch_started",
            Record::StepStarted { .. } => "step_started",
            Record::StepFinished { .. } => "step_finished",
            Record::StepInterrupted { .. } => "step_interrupted",
            Record::StepSkipped { .. } => "step_skipped",
            Record::Approved { .. } => "approved",
            Record::NeedsDecision { .. } => "needs_decision",
            Record::Decided { .. } => "decided",
            Record::RollbackStarted { .. } => "rollback_started",
            Record::PromoteRequested { .. } => "promote_requested",
            Record::LaunchEnded { .. } => "launch_ended",
            Record::Evaluated { .. } => "evaluated",
            Record::TriggerFired { .. } => "trigger_fired",
            Record::FlagDisabled { .. } => "flag_disabled",
            Record::Held { .. } => "held",
            Record::Released { .. } => "released",
            Record::Checked { .. } => "checked",
            Record::BackupTaken { .. } => "backup_taken",
            Record::FollowUpScheduled { .. } => "follow_up_scheduled",
            Record::Sampled { .. } => "sampled",
            Record::Notified { .. } => "notified",
            Record::Checkpoint { .. } => "checkpoint",
        }
    }
}
