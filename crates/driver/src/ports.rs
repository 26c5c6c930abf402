//! The edges of the driver. Production implementations live beside them; tests swap
//! them to run launches without processes, networks or waiting.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use liftoff_checks::Redactor;
use liftoff_plan::{Plan, Weight};
use tokio_util::sync::CancellationToken;

/// Why a port did not do what was asked. Callers tell a failure that asking again may
/// cure from a refusal that it will not. The text is what the journal shows: it names
/// what failed, never a URL (which may carry credentials).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// Nothing answered in time, or not well: connection refused, a timeout, a 5xx, a
    /// command killed or never started, no router acknowledging a change.
    #[error("{0}")]
    Unavailable(String),
    /// It answered no: a bad query, a 4xx, no such route or flag, a command that exited
    /// non-zero, something this port cannot do.
    #[error("{0}")]
    Rejected(String),
}

impl PortError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, PortError::Unavailable(_))
    }
}

/// Applies the candidate's traffic share (the command router, or the builtin router).
#[async_trait]
pub trait TrafficControl: Send + Sync {
    /// Ok: a line saying what was done. Err: why the weight could not be applied.
    async fn set_weight(
        &self,
        weight: Weight,
        cancel: &CancellationToken,
    ) -> Result<String, PortError>;

    /// Serve the maintenance page (or stop). Only routers that serve traffic can.
    async fn set_maintenance(&self, on: bool) -> Result<String, PortError> {
        let _ = on;
        Err(PortError::Rejected(
            "this router has no maintenance mode".into(),
        ))
    }
}

/// What a version of the launch's service did recently: the builtin router's
/// observations. (PromQL goes through [`QuerySource`].)
#[async_trait]
pub trait MetricSource: Send + Sync {
    /// The last `window`, but nothing from before `since` (when this launch's traffic,
    /// or this step, began).
    async fn sample(
        &self,
        version: liftoff_plan::condition::Version,
        window: Duration,
        since: std::time::Instant,
    ) -> Result<liftoff_analysis::Sample, PortError>;

    /// Changes when new observations arrive, if the source can tell: rollback
    /// triggers are then judged at once rather than at their next `check_every`.
    fn observed(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}

/// Instant queries against a metric provider (Prometheus). `Ok(None)`: no data.
#[async_trait]
pub trait QuerySource: Send + Sync {
    async fn query(&self, promql: &str) -> Result<Option<f64>, PortError>;
}

/// Makes each launch's traffic control and metric sources. The driver's own
/// (`PlanAdapters`, when [`crate::Ports::adapters`] is `None`) builds what the plan
/// names: the command or builtin router, the fleet's observations, Prometheus. Tests
/// give fakes, so a whole launch runs without processes, sockets or waiting.
pub trait AdapterFactory: Send + Sync {
    /// `None`: the launch cannot move traffic (its `traffic` steps fail).
    fn traffic(&self, launch: &LaunchSpec<'_>) -> Option<Arc<dyn TrafficControl>>;
    /// `None`: no builtin conditions can be judged.
    fn metrics(&self, launch: &LaunchSpec<'_>) -> Option<Arc<dyn MetricSource>>;
    /// `None`: no PromQL gates or triggers can be judged.
    fn queries(&self, launch: &LaunchSpec<'_>) -> Option<Arc<dyn QuerySource>>;
}

/// A launch as its adapters are made for it.
pub struct LaunchSpec<'a> {
    pub id: &'a str,
    pub plan: &'a Arc<Plan>,
    /// Where the plan's relative paths resolve and its commands run.
    pub workdir: &'a Path,
    /// Plan variables and `LIFTOFF_*` context, for commands.
    pub env: &'a [(String, String)],
    pub redactor: &'a Redactor,
}

#[derive(Clone, Debug)]
pub struct CommandSpec {
    /// Run by `sh -c`.
    pub command: String,
    pub dir: PathBuf,
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandStatus {
    Exited(i32),
    Signaled(i32),
    TimedOut,
    Cancelled,
    SpawnFailed(String),
}

#[derive(Clone, Debug)]
pub struct CommandOutcome {
    pub status: CommandStatus,
    /// stdout and stderr interleaved, truncated to a head and a tail.
    pub output: String,
}

#[async_trait]
pub trait CommandRunner: Send + Sync {
    async fn run(&self, spec: CommandSpec, cancel: &CancellationToken) -> CommandOutcome;
}

/// A change a launch makes to a feature flag (`flag` steps, `disable_flag` triggers,
/// `maintenance` steps' `maintenance_mode` flag).
#[derive(Clone, Debug, PartialEq)]
pub enum FlagChange {
    /// The kill switch: `false` serves every user the flag's off/default variant.
    Enabled(bool),
    /// Roll the flag's variant out to this share of users (0–100, sticky).
    Percent(f64),
}

/// The daemon's flag service, as launches see it. Every change is audited with who
/// made it (`launch <id>`) and why (the step or trigger).
#[async_trait]
pub trait FlagControl: Send + Sync {
    /// Ok: a line saying what changed. Creates the flag if missing (boolean, off).
    async fn change(
        &self,
        flag: &str,
        change: FlagChange,
        actor: &str,
        cause: &str,
    ) -> Result<String, PortError>;
}

#[async_trait]
pub trait HttpProbe: Send + Sync {
    /// The status of a GET, or why there was none.
    async fn get(&self, url: &str, timeout: Duration) -> Result<u16, PortError>;
}

/// Wall-clock time. Timers sleep on tokio's clock for `deadline - now()`, so tests can
/// pause tokio's time and move both together.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// Sleep until `deadline` by `clock`.
pub async fn sleep_until(clock: &dyn Clock, deadline: Timestamp) {
    let left = deadline.duration_since(clock.now());
    if let Ok(left) = Duration::try_from(left) {
        tokio::time::sleep(left).await;
    }
}

/// A container engine driven by docker compose: the hands of `deploy` steps. The
/// production one runs the `docker compose` (or `docker-compose`) and `docker` CLIs
/// (`compose.rs`); tests fake it.
#[async_trait]
pub trait Containers: Send + Sync {
    /// `compose up --detach --no-deps` of one service of one project. Ok: what compose
    /// printed.
    async fn up(&self, up: &ComposeUp, cancel: &CancellationToken) -> Result<String, PortError>;
    /// Every container, running or not, carrying each of `labels` (`name=value`).
    async fn list(&self, labels: &[(&str, &str)]) -> Result<Vec<Container>, PortError>;
    /// Stop and remove these containers (already gone is fine).
    async fn remove(&self, ids: &[String]) -> Result<(), PortError>;
    /// The last `lines` lines of a container's output (stdout and stderr).
    async fn logs(&self, id: &str, lines: usize) -> Result<String, PortError>;
}

/// One service of one compose project, brought up from the plan's files and the
/// overlay liftoff writes (image, environment, labels), merged last.
#[derive(Clone, Debug)]
pub struct ComposeUp {
    pub project: String,
    pub service: String,
    /// The plan's compose files, then the overlay.
    pub files: Vec<PathBuf>,
    /// Where compose runs (the plan's directory).
    pub dir: PathBuf,
    /// The environment of compose itself (the plan's variables, for `${VAR}` in its files).
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
}

/// Labels compose puts on the containers it creates, and liftoff's own.
pub mod labels {
    pub const PROJECT: &str = "com.docker.compose.project";
    pub const SERVICE: &str = "com.docker.compose.service";
    /// The launch that created the container.
    pub const LAUNCH: &str = "io.liftoff.launch";
    /// The attempt that created it: `LIFTOFF_ATTEMPT`'s tag, `<launch>/step-<i>/<n>`.
    pub const ATTEMPT: &str = "io.liftoff.attempt";
}

/// A container as the engine reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub state: ContainerState,
    /// From the image's or the compose file's healthcheck; `None` without one.
    pub health: Option<Health>,
}

impl Container {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    /// Exited (with this status) and being restarted by its restart policy.
    Restarting(i64),
    /// Exited with this status.
    Exited(i64),
    /// paused, removing, dead: as docker says it.
    Other(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Starting,
    Healthy,
    Unhealthy,
}
