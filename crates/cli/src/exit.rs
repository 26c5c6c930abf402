//! Exit codes, as documented in `liftoff --help`.

use liftoff_api::PlanProblem;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    /// The launch failed, rolled back or was aborted; or a checklist said NO-GO.
    LaunchFailed = 1,
    /// Invalid input or usage: a bad plan, a bad argument, a request the launch refused.
    Invalid = 2,
    /// The daemon could not be reached, or refused our credentials.
    Unreachable = 3,
}

/// An error for the user: what went wrong, maybe how to fix it, and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
    pub hint: Option<String>,
    pub problems: Vec<PlanProblem>,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
            hint: None,
            problems: Vec::new(),
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success (for `launch --follow`: the launch succeeded)
  1  the launch failed, rolled back or was aborted
  2  invalid input or usage (bad plan, bad arguments, a request the launch refused)
  3  the daemon is unreachable or refused the credentials";
