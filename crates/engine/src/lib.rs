//! The launch engine core: a pure state machine over journal records.
//!
//! Invariants:
//! - no tokio, no I/O, no clock: time arrives as an argument;
//! - state changes only through [`Launch::apply`], so replaying the journal rebuilds
//!   exactly the state the live launch had;
//! - every effect follows the records that announce it, and the shell journals those
//!   records before starting the effect;
//! - at most one step is in flight; a rollback first moves all traffic to stable.

mod launch;
mod machine;
mod record;

pub use launch::{Action, Approval, FlagToDisable, Launch, Status, StepState, StepStatus};
pub use machine::{Effect, Event, Rejection, Transition, decide, decide_draining};
pub use record::{
    BackupInfo, Cause, CheckResult, Decision, EndStatus, Outcome, Record, StepRef, StepResult,
    VersionSample, sampling_interval,
};
