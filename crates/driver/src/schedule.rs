//! Follow-ups (`after:` on steps): the daemon runs each once when it is due, whether or
//! not its launch is still running. The store keeps them; a restart picks them up.

use std::sync::Arc;
use std::time::Duration;

use liftoff_store::ScheduleRow;
use tokio_util::sync::CancellationToken;

use crate::execute::StepContext;
use crate::ports::{CommandSpec, CommandStatus};
use crate::traffic::humantime_short;
use crate::{Driver, Redactor};

/// The end of the id of a follow-up that retires stable's containers (a `deploy`
/// step's `retire`, scheduled when the launch succeeds).
pub(crate) const RETIRE_SUFFIX: &str = "-retire";
/// How long a retirement may take.
pub(crate) const RETIRE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// How often the store is asked for due follow-ups (an indexed query).
const POLL: Duration = Duration::from_millis(250);

impl Driver {
    pub(crate) fn start_scheduler(self: &Arc<Self>) {
        let now = self.ports.clock.now().to_string();
        match self.store.interrupt_running_schedules(&now) {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                count = n,
                "follow-ups were running when the daemon stopped; marked interrupted"
            ),
            Err(e) => tracing::error!(error = %e, "cannot check follow-ups"),
        }
        let driver = self.clone();
        let shutdown = self.shutdown.clone();
        self.tasks.spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(POLL) => {}
                }
                let now = driver.ports.clock.now().to_string();
                let due = match driver.store.due_schedules(&now) {
                    Ok(due) => due,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read due follow-ups");
                        continue;
                    }
                };
                for row in due {
                    match driver.store.transition_schedule(&row.id, "pending", "running", None, &now) {
                        Ok(true) => {
                            let driver = driver.clone();
                            let cancel = shutdown.child_token();
                            driver.clone().tasks.spawn(async move { driver.run_follow_up(row, cancel).await });
                        }
                        Ok(false) => {} // Cancelled meanwhile.
                        Err(e) => tracing::error!(schedule = %row.id, error = %e, "cannot start follow-up"),
                    }
                }
            }
        });
    }

    async fn run_follow_up(&self, row: ScheduleRow, cancel: CancellationToken) {
        tracing::info!(schedule = %row.id, launch = %row.launch_id, step = %row.step, "follow-up started");
        let (status, result) = if row.id.ends_with(RETIRE_SUFFIX) {
            self.retire(&row, &cancel).await
        } else {
            self.run_command_follow_up(&row, cancel).await
        };
        let now = self.ports.clock.now().to_string();
        if let Err(e) =
            self.store
                .transition_schedule(&row.id, "running", status, Some(&result), &now)
        {
            tracing::error!(schedule = %row.id, error = %e, "cannot record follow-up result");
        }
        tracing::info!(schedule = %row.id, status, result = %result, "follow-up finished");
    }

    /// A `deploy` step's `retire`: stable's containers, once the launch succeeded.
    async fn retire(
        &self,
        row: &ScheduleRow,
        cancel: &CancellationToken,
    ) -> (&'static str, String) {
        let snap = match self.snapshot(&row.launch_id) {
            Ok(snap) => snap,
            Err(e) => return ("failed", format!("cannot load its launch: {e}")),
        };
        let deploy = snap.launch.plan().steps.iter().find_map(|s| match &s.kind {
            liftoff_plan::StepKind::Deploy(d) if s.name == row.step && d.retire.is_some() => {
                Some(d.clone())
            }
            _ => None,
        });
        let Some(deploy) = deploy else {
            return (
                "failed",
                format!(
                    "the plan no longer has deploy step `{}` with `retire`",
                    row.step
                ),
            );
        };
        let outcome = tokio::select! {
            o = crate::deploy::retire(self.ports.containers.as_ref(), &deploy) => o,
            () = cancel.cancelled() => return (
                "interrupted",
                "the daemon stopped while it ran; it is safe to run again: remove the containers by hand or retry".into(),
            ),
        };
        let status = match outcome.result {
            liftoff_engine::StepResult::Succeeded => "succeeded",
            _ => "failed",
        };
        (status, outcome.message.unwrap_or_default())
    }

    async fn run_command_follow_up(
        &self,
        row: &ScheduleRow,
        cancel: CancellationToken,
    ) -> (&'static str, String) {
        match self.follow_up_spec(row) {
            Ok((spec, redactor)) => {
                let out = self.ports.runner.run(spec, &cancel).await;
                let tail = redactor.redact(
                    out.output
                        .lines()
                        .rev()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or(""),
                );
                let with_tail = |what: String| match tail.is_empty() {
                    true => what,
                    false => format!("{what}: {tail}"),
                };
                match out.status {
                    CommandStatus::Exited(0) => ("succeeded", with_tail("exit status 0".into())),
                    CommandStatus::Exited(code) => ("failed", with_tail(format!("exit status {code}"))),
                    CommandStatus::Signaled(sig) => ("failed", format!("killed by signal {sig}")),
                    CommandStatus::TimedOut => (
                        "failed",
                        format!("timed out after {}", humantime_short(Duration::from_millis(row.timeout_ms))),
                    ),
                    CommandStatus::Cancelled => (
                        "interrupted",
                        "the daemon stopped while it ran; check what it did, then run it by hand if needed".into(),
                    ),
                    CommandStatus::SpawnFailed(e) => ("failed", redactor.redact(&e)),
                }
            }
            Err(e) => ("failed", e),
        }
    }

    /// The command as its launch would have run it: the plan's variables in the
    /// environment, in the plan's directory.
    fn follow_up_spec(&self, row: &ScheduleRow) -> Result<(CommandSpec, Redactor), String> {
        let snap = self
            .snapshot(&row.launch_id)
            .map_err(|e| format!("cannot load its launch: {e}"))?;
        let plan = snap.launch.plan();
        let after = plan
            .steps
            .iter()
            .find(|s| s.name == row.step)
            .and_then(|s| s.after.as_ref())
            .ok_or_else(|| format!("the plan no longer has step `{}` with `after`", row.step))?;
        let mut env = StepContext::base_env(plan, &row.launch_id);
        env.push(("LIFTOFF_STEP".into(), row.step.clone()));
        env.push((
            crate::shell::ATTEMPT_ENV.into(),
            format!("{}/follow-up/{}", row.launch_id, row.id),
        ));
        let spec = CommandSpec {
            command: after.command.shell_command(),
            dir: std::path::PathBuf::from(&snap.row.workdir),
            env,
            timeout: Duration::from_millis(row.timeout_ms),
        };
        Ok((spec, Redactor::new(plan.variables.redactable_values())))
    }
}
