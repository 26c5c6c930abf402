//! The command router: traffic changes by running the plan's command.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use liftoff_plan::{Text, Weight};
use tokio_util::sync::CancellationToken;

use crate::ports::{CommandRunner, CommandSpec, CommandStatus, PortError, TrafficControl};
use liftoff_checks::Redactor;

pub struct CommandRouter {
    pub command: Text,
    pub timeout: Duration,
    pub dir: PathBuf,
    /// Plan variables and `LIFTOFF_*` context.
    pub env: Vec<(String, String)>,
    pub runner: Arc<dyn CommandRunner>,
    pub redactor: Redactor,
}

#[async_trait]
impl TrafficControl for CommandRouter {
    async fn set_weight(
        &self,
        weight: Weight,
        cancel: &CancellationToken,
    ) -> Result<String, PortError> {
        // The template, not the resolved text: variables reach the shell through its
        // environment, so their values are never spliced into (or quoted by) the command.
        let command = self
            .command
            .shell_command()
            .replace("{weight}", &weight.to_string());
        let mut env = self.env.clone();
        env.push(("LIFTOFF_WEIGHT".into(), weight.to_string()));
        let spec = CommandSpec {
            command,
            dir: self.dir.clone(),
            env,
            timeout: self.timeout,
        };
        let out = self.runner.run(spec, cancel).await;
        let last_line = |output: &str| {
            let line = output
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            self.redactor.redact(line)
        };
        match out.status {
            CommandStatus::Exited(0) => Ok(format!("candidate weight set to {weight}%")),
            CommandStatus::Exited(code) => Err(PortError::Rejected(format!(
                "weight command exited with status {code}: {}",
                last_line(&out.output)
            ))),
            CommandStatus::Signaled(sig) => Err(PortError::Unavailable(format!(
                "weight command killed by signal {sig}"
            ))),
            CommandStatus::TimedOut => Err(PortError::Unavailable(format!(
                "weight command timed out after {}",
                humantime_short(self.timeout)
            ))),
            CommandStatus::Cancelled => {
                Err(PortError::Unavailable("weight command cancelled".into()))
            }
            CommandStatus::SpawnFailed(e) => Err(PortError::Unavailable(e)),
        }
    }
}

pub(crate) fn humantime_short(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}
