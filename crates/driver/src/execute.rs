//! What each step kind does. Each function turns one attempt into an [`Outcome`]; none
//! of them touches the journal (the actor does, before and after).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use liftoff_engine::{Action, BackupInfo, Outcome, StepRef, StepResult};
use liftoff_plan::{FlagSetting, Plan, RunStep, StepKind, WaitStep, Weight};
use tokio_util::sync::CancellationToken;

use crate::ports::{
    Clock, CommandRunner, CommandSpec, CommandStatus, FlagChange, HttpProbe, TrafficControl,
    sleep_until,
};
use crate::traffic::humantime_short;
use liftoff_checks::Redactor;

/// Everything a launch's steps need, built once per launch.
pub struct StepContext {
    pub launch_id: String,
    pub plan: Arc<Plan>,
    pub workdir: PathBuf,
    pub traffic: Option<Arc<dyn TrafficControl>>,
    /// Where gates and triggers get their numbers.
    pub sources: crate::analysis::Sources,
    pub runner: Arc<dyn CommandRunner>,
    pub http: Arc<dyn HttpProbe>,
    pub clock: Arc<dyn Clock>,
    pub redactor: Redactor,
    /// What checklist items, smoke requests and migrations need.
    pub checks: liftoff_checks::Env,
    /// This launch's own directory: `migrate` backups, `deploy` overlays.
    pub backups: PathBuf,
    /// The container engine of `deploy` steps.
    pub containers: Arc<dyn crate::ports::Containers>,
}

impl StepContext {
    /// The environment every command of the launch sees.
    pub fn base_env(plan: &Plan, launch_id: &str) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = plan
            .variables
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.push(("LIFTOFF_LAUNCH_ID".into(), launch_id.to_string()));
        env.push(("LIFTOFF_SERVICE".into(), plan.service.clone()));
        env
    }
}

/// The `LIFTOFF_ATTEMPT` tag of one attempt of one step.
pub fn attempt_tag(launch_id: &str, step: StepRef, attempt: u32) -> String {
    let step = match step {
        StepRef::Baseline => "baseline".to_string(),
        StepRef::Forward(i) => format!("step-{i}"),
        StepRef::RevertTraffic => "revert".to_string(),
        StepRef::Rollback(i) => format!("rollback-{i}"),
        StepRef::Promote => "promote".to_string(),
        StepRef::Checklist => "checklist".to_string(),
        StepRef::Restore(i) => format!("restore-{i}"),
        StepRef::Announce => "announce".to_string(),
    };
    format!("{launch_id}/{step}/{attempt}")
}

/// One attempt of one step, as the engine started it.
pub struct Attempt<'a> {
    pub step: StepRef,
    pub attempt: u32,
    /// The `LIFTOFF_ATTEMPT` tag of its processes.
    pub tag: &'a str,
    pub deadline: Option<Timestamp>,
    /// The candidate weight when it started.
    pub weight: Option<Weight>,
    /// For restores: the backup to restore.
    pub backup: Option<&'a BackupInfo>,
    /// When the step's first attempt started (checkpoints count from it).
    pub first_started: Timestamp,
    /// `monitor` checkpoints judged by earlier attempts.
    pub checkpoints_done: &'a [usize],
}

pub async fn execute(
    ctx: &StepContext,
    at: &Attempt<'_>,
    report: &crate::analysis::Report,
    action: Action<'_>,
    cancel: &CancellationToken,
) -> Outcome {
    let (step_ref, tag, deadline, weight) = (at.step, at.tag, at.deadline, at.weight);
    match action {
        Action::SetWeight(w) => set_weight(ctx, w, cancel).await,
        Action::Checklist(list) => crate::checklist::run(ctx, at, list, report, cancel).await,
        // Run by the actor, which holds the launch's state (see `notify::announce`).
        Action::Announce => Outcome::new(StepResult::Failed, "announce runs in the actor"),
        Action::Restore(step) => match &step.kind {
            StepKind::Migrate(m) => crate::checklist::restore(ctx, at, m, report, cancel).await,
            _ => Outcome::new(StepResult::Failed, "only migrate steps have backups"),
        },
        Action::Step(step) => match &step.kind {
            StepKind::Check(list) => crate::checklist::run(ctx, at, list, report, cancel).await,
            StepKind::Smoke(smoke) => crate::checklist::smoke(ctx, at, smoke, report, cancel).await,
            StepKind::Migrate(m) => crate::checklist::migrate(ctx, at, m, report, cancel).await,
            StepKind::Monitor(m) => {
                crate::analysis::monitor(
                    &ctx.sources,
                    ctx.clock.as_ref(),
                    at.step,
                    at.attempt,
                    m,
                    at.first_started,
                    at.checkpoints_done,
                    report,
                    cancel,
                )
                .await
            }
            StepKind::Flag(f) => {
                let change = match f.change {
                    FlagSetting::Percent(w) => FlagChange::Percent(w.percent()),
                    FlagSetting::Enabled(b) => FlagChange::Enabled(b),
                };
                change_flag(ctx, &f.name, change, &format!("step `{}`", step.name)).await
            }
            StepKind::Traffic(w) => set_weight(ctx, *w, cancel).await,
            StepKind::Run(run) => {
                run_command(ctx, tag, &step.name, run, deadline, weight, cancel).await
            }
            StepKind::Pause(d) => pause(ctx, *d, deadline, cancel).await,
            StepKind::Approve(a) => {
                // Approval arrives as an event; this attempt only waits for the timeout.
                match deadline {
                    Some(at) => tokio::select! {
                        () = sleep_until(ctx.clock.as_ref(), at) => Outcome::new(
                            StepResult::TimedOut,
                            format!("no approval by role `{}` within {}", a.role,
                                a.timeout.map(humantime_short).unwrap_or_default()),
                        ),
                        () = cancel.cancelled() => cancelled(),
                    },
                    None => {
                        cancel.cancelled().await;
                        cancelled()
                    }
                }
            }
            StepKind::Wait(w) => wait_http(ctx, w, deadline, cancel).await,
            StepKind::Analyze(a) => {
                crate::analysis::analyze(&ctx.sources, step_ref, a, report, cancel).await
            }
            StepKind::Maintenance(on) => maintenance(ctx, *on, &step.name).await,
            StepKind::Deploy(d) => crate::deploy::deploy(ctx, at, d, cancel).await,
            StepKind::Undeploy(d) => crate::deploy::undeploy(ctx, d).await,
        },
    }
}

/// The builtin router's maintenance page (when the plan has it) and the daemon's
/// `maintenance_mode` flag (when it has a flag service), for applications to read.
async fn maintenance(ctx: &StepContext, on: bool, step: &str) -> Outcome {
    let mut done = Vec::new();
    if matches!(ctx.plan.router, Some(liftoff_plan::RouterSpec::Builtin(_)))
        && let Some(traffic) = &ctx.traffic
    {
        match traffic.set_maintenance(on).await {
            Ok(msg) => done.push(msg),
            Err(e) => return Outcome::new(StepResult::Failed, e.to_string()),
        }
    }
    if ctx.sources.flags.is_some() {
        let flag = liftoff_plan::defaults::MAINTENANCE_FLAG;
        let o = change_flag(
            ctx,
            flag,
            FlagChange::Enabled(on),
            &format!("step `{step}`"),
        )
        .await;
        match (o.result, o.message) {
            (StepResult::Succeeded, Some(m)) => done.push(m),
            (_, m) => return Outcome::new(StepResult::Failed, m.unwrap_or_default()),
        }
    }
    if done.is_empty() {
        return Outcome::new(
            StepResult::Failed,
            "nothing serves maintenance mode: no builtin router, no flag service",
        );
    }
    Outcome::new(StepResult::Succeeded, done.join("; "))
}

async fn change_flag(ctx: &StepContext, flag: &str, change: FlagChange, cause: &str) -> Outcome {
    let Some(flags) = &ctx.sources.flags else {
        return Outcome::new(StepResult::Failed, "this daemon has no flag service");
    };
    match flags
        .control
        .change(flag, change, &flags.actor, cause)
        .await
    {
        Ok(msg) => Outcome::new(StepResult::Succeeded, msg),
        Err(e) => Outcome::new(StepResult::Failed, e.to_string()),
    }
}

pub(crate) fn cancelled() -> Outcome {
    Outcome::new(StepResult::Cancelled, "cancelled")
}

async fn set_weight(ctx: &StepContext, weight: Weight, cancel: &CancellationToken) -> Outcome {
    let Some(traffic) = &ctx.traffic else {
        return Outcome::new(StepResult::Failed, "the plan has no router");
    };
    match traffic.set_weight(weight, cancel).await {
        Ok(msg) => Outcome::new(StepResult::Succeeded, msg),
        Err(_) if cancel.is_cancelled() => cancelled(),
        Err(e) => Outcome::new(StepResult::Failed, e.to_string()),
    }
}

pub(crate) async fn run_command(
    ctx: &StepContext,
    tag: &str,
    name: &str,
    run: &RunStep,
    deadline: Option<Timestamp>,
    weight: Option<Weight>,
    cancel: &CancellationToken,
) -> Outcome {
    let mut env = StepContext::base_env(&ctx.plan, &ctx.launch_id);
    env.push(("LIFTOFF_STEP".into(), name.to_string()));
    env.push((crate::shell::ATTEMPT_ENV.into(), tag.to_string()));
    env.push((
        "LIFTOFF_WEIGHT".into(),
        weight.unwrap_or_default().to_string(),
    ));
    env.extend(
        run.env
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_string())),
    );
    let timeout = deadline
        .map(|d| d.duration_since(ctx.clock.now()))
        .and_then(|d| Duration::try_from(d).ok())
        .unwrap_or(run.timeout);
    let spec = CommandSpec {
        // Variables reach the shell through the environment (see CommandRouter).
        command: run.command.shell_command(),
        dir: resolve_dir(&ctx.workdir, run.dir.as_ref().map(|d| d.expose())),
        env,
        timeout,
    };
    let out = ctx.runner.run(spec, cancel).await;
    let output = ctx.redactor.redact(&out.output);
    let outcome = match out.status {
        CommandStatus::Exited(0) => Outcome::new(StepResult::Succeeded, "exit status 0"),
        CommandStatus::Exited(code) => {
            Outcome::new(StepResult::Failed, format!("exit status {code}"))
        }
        CommandStatus::Signaled(sig) => {
            Outcome::new(StepResult::Failed, format!("killed by signal {sig}"))
        }
        CommandStatus::TimedOut => Outcome::new(
            StepResult::TimedOut,
            format!("timed out after {}", humantime_short(run.timeout)),
        ),
        CommandStatus::Cancelled => cancelled(),
        CommandStatus::SpawnFailed(e) => Outcome::new(StepResult::Failed, ctx.redactor.redact(&e)),
    };
    outcome.with_output(output)
}

pub(crate) fn resolve_dir(workdir: &Path, dir: Option<&str>) -> PathBuf {
    match dir {
        Some(d) => workdir.join(d),
        None => workdir.to_path_buf(),
    }
}

async fn pause(
    ctx: &StepContext,
    duration: Duration,
    deadline: Option<Timestamp>,
    cancel: &CancellationToken,
) -> Outcome {
    let until = async {
        match deadline {
            Some(at) => sleep_until(ctx.clock.as_ref(), at).await,
            None => tokio::time::sleep(duration).await,
        }
    };
    tokio::select! {
        () = until => Outcome::new(StepResult::Succeeded, format!("paused {}", humantime_short(duration))),
        () = cancel.cancelled() => cancelled(),
    }
}

async fn wait_http(
    ctx: &StepContext,
    w: &WaitStep,
    deadline: Option<Timestamp>,
    cancel: &CancellationToken,
) -> Outcome {
    let mut streak = 0u32;
    let mut best = 0u32;
    let mut last_failure = String::from("none");
    let result = {
        let probing = async {
            loop {
                match ctx.http.get(w.url.expose(), w.request_timeout).await {
                    Ok(status) if status == w.status => {
                        streak += 1;
                        best = best.max(streak);
                        if streak >= w.consecutive {
                            return;
                        }
                    }
                    Ok(status) => {
                        streak = 0;
                        last_failure = format!("status {status}");
                    }
                    Err(e) => {
                        streak = 0;
                        last_failure = ctx.redactor.redact(&e.to_string());
                    }
                }
                tokio::time::sleep(w.interval).await;
            }
        };
        let timeout = async {
            match deadline {
                Some(at) => sleep_until(ctx.clock.as_ref(), at).await,
                None => tokio::time::sleep(w.timeout).await,
            }
        };
        tokio::select! {
            () = probing => Some(true),
            () = timeout => Some(false),
            () = cancel.cancelled() => None,
        }
    };
    match result {
        Some(true) => Outcome::new(
            StepResult::Succeeded,
            format!(
                "{} answered {} {} time(s) in a row",
                w.url, w.status, w.consecutive
            ),
        ),
        Some(false) => Outcome::new(
            StepResult::TimedOut,
            format!(
                "{} did not answer {} {} time(s) in a row within {} (best run: {best}; last failure: {last_failure})",
                w.url,
                w.status,
                w.consecutive,
                humantime_short(w.timeout)
            ),
        ),
        None => cancelled(),
    }
}
