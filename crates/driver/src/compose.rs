//! The production [`Containers`]: the `docker compose` (v2) or `docker-compose` (v1) CLI,
//! whichever is installed, for `up`, and the `docker` CLI for the rest. Commands run
//! through the [`CommandRunner`] (own process group, killed with the daemon, bounded
//! output); the engine is found the way the CLIs find it (`DOCKER_HOST`, the default
//! socket).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use crate::ports::{
    CommandRunner, CommandSpec, CommandStatus, ComposeUp, Container, ContainerState, Containers,
    Health, PortError,
};

/// How long a `docker` command other than `up` may take.
const DOCKER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a container gets to stop (SIGTERM) before it is killed.
const STOP_GRACE_SECS: u32 = 10;

pub struct ComposeCli {
    runner: Arc<dyn CommandRunner>,
    /// `docker compose` or `docker-compose`, found at first use.
    compose: OnceCell<&'static str>,
}

impl ComposeCli {
    pub fn new(runner: Arc<dyn CommandRunner>) -> Self {
        Self {
            runner,
            compose: OnceCell::new(),
        }
    }

    /// Found once; not finding it is asked again next time (compose may be installed
    /// while the daemon runs).
    async fn compose(&self) -> Result<&'static str, PortError> {
        self.compose
            .get_or_try_init(|| async {
                for candidate in ["docker compose", "docker-compose"] {
                    let probe = self
                        .exec(
                            &format!("{candidate} version"),
                            Vec::new(),
                            DOCKER_TIMEOUT,
                            None,
                        )
                        .await;
                    if probe.is_ok() {
                        return Ok(candidate);
                    }
                }
                Err(PortError::Unavailable(
                    "neither `docker compose` nor `docker-compose` runs on the daemon's host"
                        .into(),
                ))
            })
            .await
            .copied()
    }

    /// Runs `command` (already quoted); Ok: its output.
    async fn exec(
        &self,
        command: &str,
        env: Vec<(String, String)>,
        timeout: Duration,
        dir: Option<PathBuf>,
    ) -> Result<String, PortError> {
        let never = CancellationToken::new();
        self.exec_cancellable(command, env, timeout, dir, &never)
            .await
    }

    async fn exec_cancellable(
        &self,
        command: &str,
        env: Vec<(String, String)>,
        timeout: Duration,
        dir: Option<PathBuf>,
        cancel: &CancellationToken,
    ) -> Result<String, PortError> {
        let spec = CommandSpec {
            command: command.to_string(),
            dir: dir.unwrap_or_else(std::env::temp_dir),
            env,
            timeout,
        };
        let verb = command.split(" -").next().unwrap_or(command);
        let out = self.runner.run(spec, cancel).await;
        let last = out
            .output
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_string();
        match out.status {
            CommandStatus::Exited(0) => Ok(out.output),
            CommandStatus::Exited(code) => Err(PortError::Rejected(format!(
                "`{verb}` exited with status {code}: {last}"
            ))),
            CommandStatus::Signaled(sig) => Err(PortError::Unavailable(format!(
                "`{verb}` was killed by signal {sig}"
            ))),
            CommandStatus::TimedOut => Err(PortError::Unavailable(format!(
                "`{verb}` did not finish within {}",
                crate::traffic::humantime_short(timeout)
            ))),
            CommandStatus::Cancelled => Err(PortError::Unavailable(format!("`{verb}` cancelled"))),
            CommandStatus::SpawnFailed(e) => Err(PortError::Unavailable(e)),
        }
    }
}

#[async_trait]
impl Containers for ComposeCli {
    async fn up(&self, up: &ComposeUp, cancel: &CancellationToken) -> Result<String, PortError> {
        let compose = self.compose().await?;
        let mut command = format!("{compose} --project-name {}", quote(&up.project));
        for file in &up.files {
            command.push_str(" --file ");
            command.push_str(&quote(&file.to_string_lossy()));
        }
        command.push_str(" up --detach --no-deps ");
        command.push_str(&quote(&up.service));
        self.exec_cancellable(
            &command,
            up.env.clone(),
            up.timeout,
            Some(up.dir.clone()),
            cancel,
        )
        .await
    }

    async fn list(&self, labels: &[(&str, &str)]) -> Result<Vec<Container>, PortError> {
        let mut command = String::from("docker ps --all --quiet --no-trunc");
        for (name, value) in labels {
            command.push_str(" --filter ");
            command.push_str(&quote(&format!("label={name}={value}")));
        }
        let ids = self
            .exec(&command, Vec::new(), DOCKER_TIMEOUT, None)
            .await?;
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut command = String::from("docker inspect --type container");
        for id in &ids {
            command.push(' ');
            command.push_str(&quote(id));
        }
        match self.exec(&command, Vec::new(), DOCKER_TIMEOUT, None).await {
            Ok(json) => parse_inspect(&json),
            // Removed between the two commands: ask again.
            Err(PortError::Rejected(e)) if e.contains("No such") => {
                Box::pin(self.list(labels)).await
            }
            Err(e) => Err(e),
        }
    }

    async fn remove(&self, ids: &[String]) -> Result<(), PortError> {
        if ids.is_empty() {
            return Ok(());
        }
        let quoted: Vec<String> = ids.iter().map(|id| quote(id)).collect();
        let ids = quoted.join(" ");
        // A stop gives the process its SIGTERM and grace; rm takes what is left
        // (a container already gone makes stop fail, not rm -f).
        let _ = self
            .exec(
                &format!("docker stop --time {STOP_GRACE_SECS} {ids}"),
                Vec::new(),
                DOCKER_TIMEOUT,
                None,
            )
            .await;
        self.exec(
            &format!("docker rm --force {ids}"),
            Vec::new(),
            DOCKER_TIMEOUT,
            None,
        )
        .await
        .map(drop)
    }

    async fn logs(&self, id: &str, lines: usize) -> Result<String, PortError> {
        self.exec(
            &format!("docker logs --tail {lines} {}", quote(id)),
            Vec::new(),
            DOCKER_TIMEOUT,
            None,
        )
        .await
    }
}

/// `s` as one `sh` word.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Inspected {
    id: String,
    name: String,
    state: InspectedState,
    config: InspectedConfig,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectedState {
    status: String,
    exit_code: i64,
    #[serde(default)]
    health: Option<InspectedHealth>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectedHealth {
    status: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectedConfig {
    #[serde(default)]
    labels: Option<std::collections::BTreeMap<String, String>>,
}

/// `docker inspect`'s array of containers.
fn parse_inspect(json: &str) -> Result<Vec<Container>, PortError> {
    let all: Vec<Inspected> = serde_json::from_str(json)
        .map_err(|e| PortError::Unavailable(format!("cannot read `docker inspect`: {e}")))?;
    Ok(all
        .into_iter()
        .map(|c| Container {
            id: c.id,
            name: c.name.trim_start_matches('/').to_string(),
            labels: c.config.labels.unwrap_or_default(),
            state: match c.state.status.as_str() {
                "created" => ContainerState::Created,
                "running" => ContainerState::Running,
                "restarting" => ContainerState::Restarting(c.state.exit_code),
                "exited" => ContainerState::Exited(c.state.exit_code),
                other => ContainerState::Other(other.to_string()),
            },
            health: c.state.health.and_then(|h| match h.status.as_str() {
                "starting" => Some(Health::Starting),
                "healthy" => Some(Health::Healthy),
                "unhealthy" => Some(Health::Unhealthy),
                _ => None,
            }),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes_and_spaces() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn inspect_output_becomes_containers() {
        let json = r#"[{"Id":"abc","Name":"/green-web-1","State":{"Status":"running","ExitCode":0,
            "Health":{"Status":"starting","FailingStreak":0}},"Config":{"Labels":{"io.liftoff.launch":"L1"}}},
            {"Id":"def","Name":"/green-web-2","State":{"Status":"exited","ExitCode":3},"Config":{"Labels":null}}]"#;
        let found = parse_inspect(json).unwrap();
        assert_eq!(found[0].name, "green-web-1");
        assert_eq!(found[0].state, ContainerState::Running);
        assert_eq!(found[0].health, Some(Health::Starting));
        assert_eq!(found[0].label("io.liftoff.launch"), Some("L1"));
        assert_eq!(found[1].state, ContainerState::Exited(3));
        assert_eq!(found[1].health, None);
        assert!(found[1].labels.is_empty());
        assert!(parse_inspect("not json").unwrap_err().is_unavailable());
    }
}
