//! The edges of the driver. Production implementations live beside them; tests swap
//! them to run launches without processes, networks or waiting.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use liftoff_plan::Weight;
use tokio_util::sync::CancellationToken;

/// Applies the candidate's traffic share (the command router, or the builtin router).
#[async_trait]
pub trait TrafficControl: Send + Sync {
    /// Ok: a line saying what was done. Err: why the weight could not be applied.
    async fn set_weight(
        &self,
        weight: Weight,
        cancel: &CancellationToken,
    ) -> Result<String, String>;

    /// Serve the maintenance page (or stop). Only routers that serve traffic can.
    async fn set_maintenance(&self, on: bool) -> Result<String, String> {
        let _ = on;
        Err("this router has no maintenance mode".into())
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
    ) -> Result<liftoff_analysis::Sample, String>;

    /// Changes when new observations arrive, if the source can tell: rollback
    /// triggers are then judged at once rather than at their next `check_every`.
    fn observed(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}

/// Instant queries against a metric provider (Prometheus). `Ok(None)`: no data.
#[async_trait]
pub trait QuerySource: Send + Sync {
    async fn query(&self, promql: &str) -> Result<Option<f64>, String>;
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
    ) -> Result<String, String>;
}

#[async_trait]
pub trait HttpProbe: Send + Sync {
    /// The status of a GET, or why there was none.
    async fn get(&self, url: &str, timeout: Duration) -> Result<u16, String>;
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
