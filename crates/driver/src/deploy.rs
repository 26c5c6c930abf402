//! `deploy` steps, their rollback removals and their retirements, over the
//! [`Containers`] port. A deploy brings the candidate's service up in its own compose
//! project with labels naming the launch and the attempt, then waits until every
//! container runs and passes its healthcheck. Containers an interrupted attempt left
//! behind are removed before the next attempt starts; a compose project holding
//! containers this launch did not start (stable's, by mistake) is refused.

use std::collections::BTreeMap;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use liftoff_engine::{Outcome, StepResult};
use liftoff_plan::DeployStep;
use tokio_util::sync::CancellationToken;

use crate::execute::{Attempt, StepContext, cancelled};
use crate::ports::{
    ComposeUp, Container, ContainerState, Containers, Health, PortError, labels, sleep_until,
};
use crate::traffic::humantime_short;

/// How often a deploy looks at its containers while they start.
const POLL: Duration = Duration::from_millis(250);
/// Lines of a failed container's output kept in the journal.
const LOG_LINES: usize = 50;

/// One attempt of a `deploy` step.
pub(crate) async fn deploy(
    ctx: &StepContext,
    at: &Attempt<'_>,
    d: &DeployStep,
    cancel: &CancellationToken,
) -> Outcome {
    let engine = ctx.containers.as_ref();
    let project = &d.project;
    // What the project holds: this launch's earlier attempts may be removed, anything
    // else is someone else's.
    let existing = match engine.list(&[(labels::PROJECT, project)]).await {
        Ok(found) => found,
        Err(e) => return failed(&e),
    };
    let (ours, foreign): (Vec<Container>, Vec<Container>) = existing
        .into_iter()
        .partition(|c| c.label(labels::LAUNCH) == Some(&ctx.launch_id));
    if !foreign.is_empty() {
        let names: Vec<&str> = foreign.iter().map(|c| c.name.as_str()).collect();
        return Outcome::new(
            StepResult::Failed,
            format!(
                "compose project `{project}` already has containers this launch did not start ({}): is it stable's? The candidate needs a project of its own",
                names.join(", ")
            ),
        );
    }
    let stale: Vec<String> = ours
        .iter()
        .filter(|c| c.label(labels::ATTEMPT) != Some(at.tag))
        .map(|c| c.id.clone())
        .collect();
    let mut said = Vec::new();
    if !stale.is_empty() {
        if let Err(e) = engine.remove(&stale).await {
            return failed(&e);
        }
        said.push(format!(
            "removed {} container(s) of an earlier attempt",
            stale.len()
        ));
    }

    let overlay = match write_overlay(ctx, at, d) {
        Ok(path) => path,
        Err(e) => {
            return Outcome::new(
                StepResult::Failed,
                format!("cannot write the compose overlay: {e}"),
            );
        }
    };
    let timeout = left(ctx, at.deadline).unwrap_or(d.timeout);
    let mut files: Vec<PathBuf> = d
        .files
        .iter()
        .map(|f| ctx.workdir.join(f.expose()))
        .collect();
    files.push(overlay);
    let up = ComposeUp {
        project: project.clone(),
        service: d.service.clone(),
        files,
        dir: ctx.workdir.clone(),
        env: {
            let mut env = StepContext::base_env(&ctx.plan, &ctx.launch_id);
            // A daemon recovering from a crash kills what this attempt left running.
            env.push((crate::shell::ATTEMPT_ENV.into(), at.tag.to_string()));
            env
        },
        timeout,
    };
    let deadline = at.deadline.unwrap_or_else(|| {
        ctx.clock.now() + jiff::SignedDuration::try_from(timeout).unwrap_or_default()
    });
    if let Err(e) = engine.up(&up, cancel).await {
        if cancel.is_cancelled() {
            return cancelled();
        }
        return Outcome::new(StepResult::Failed, ctx.redactor.redact(&e.to_string()));
    }

    // Until every container of this attempt runs and is healthy.
    let filter = [
        (labels::LAUNCH, ctx.launch_id.as_str()),
        (labels::ATTEMPT, at.tag),
    ];
    let mut last = String::from("no container yet");
    let waited = async {
        loop {
            match engine.list(&filter).await {
                Ok(found) => match judge(&found) {
                    Judged::Ready(names) => return Ok(names),
                    Judged::Broken(c, why) => return Err((c, why)),
                    Judged::Starting(what) => last = what,
                },
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(POLL).await;
        }
    };
    let result = tokio::select! {
        r = waited => Some(r),
        () = sleep_until(ctx.clock.as_ref(), deadline) => None,
        () = cancel.cancelled() => return cancelled(),
    };
    match result {
        Some(Ok(names)) => {
            said.push(format!(
                "{} of project `{project}` running and healthy: {}",
                d.service,
                names.join(", ")
            ));
            Outcome::new(StepResult::Succeeded, said.join("; "))
        }
        Some(Err((c, why))) => {
            let logs = container_logs(ctx, engine, &c).await;
            Outcome::new(StepResult::Failed, format!("container {}: {why}", c.name))
                .with_output(logs)
        }
        None => {
            // The containers that are late, with their output.
            let late = engine.list(&filter).await.unwrap_or_default();
            let mut logs = String::new();
            for c in &late {
                logs.push_str(&container_logs(ctx, engine, c).await);
            }
            Outcome::new(
                StepResult::TimedOut,
                format!(
                    "{} of project `{project}` not healthy within {} ({last})",
                    d.service,
                    humantime_short(d.timeout)
                ),
            )
            .with_output(logs)
        }
    }
}

/// A rollback's removal of what a deploy started: this launch's containers in the
/// candidate's project. Stable's project is not touched.
pub(crate) async fn undeploy(ctx: &StepContext, d: &DeployStep) -> Outcome {
    let engine = ctx.containers.as_ref();
    let filter = [
        (labels::PROJECT, d.project.as_str()),
        (labels::LAUNCH, ctx.launch_id.as_str()),
    ];
    remove_all(engine, &filter, &format!("compose project `{}`", d.project)).await
}

/// A successful launch's retirement of stable: the service's containers in the
/// project `retire` names.
pub(crate) async fn retire(engine: &dyn Containers, d: &DeployStep) -> Outcome {
    let Some(r) = &d.retire else {
        return Outcome::new(StepResult::Failed, "the step retires nothing");
    };
    let filter = [
        (labels::PROJECT, r.project.as_str()),
        (labels::SERVICE, d.service.as_str()),
    ];
    remove_all(
        engine,
        &filter,
        &format!("`{}` of compose project `{}`", d.service, r.project),
    )
    .await
}

async fn remove_all(engine: &dyn Containers, filter: &[(&str, &str)], what: &str) -> Outcome {
    let found = match engine.list(filter).await {
        Ok(found) => found,
        Err(e) => return failed(&e),
    };
    if found.is_empty() {
        return Outcome::new(
            StepResult::Succeeded,
            format!("no container of {what} to remove"),
        );
    }
    let ids: Vec<String> = found.iter().map(|c| c.id.clone()).collect();
    match engine.remove(&ids).await {
        Ok(()) => {
            let names: Vec<&str> = found.iter().map(|c| c.name.as_str()).collect();
            Outcome::new(
                StepResult::Succeeded,
                format!("removed {what}: {}", names.join(", ")),
            )
        }
        Err(e) => failed(&e),
    }
}

enum Judged {
    /// Every container runs and is healthy (or has no healthcheck): their names.
    Ready(Vec<String>),
    /// One will not become healthy: it exited or its healthcheck failed.
    Broken(Container, String),
    /// Not yet: what is awaited.
    Starting(String),
}

fn judge(found: &[Container]) -> Judged {
    if found.is_empty() {
        return Judged::Starting("no container yet".into());
    }
    let mut waiting = Vec::new();
    for c in found {
        match (&c.state, c.health) {
            (ContainerState::Exited(code), _) => {
                return Judged::Broken(c.clone(), format!("exited with status {code}"));
            }
            // A restart policy does not make a crashing version a healthy one.
            (ContainerState::Restarting(code), _) => {
                return Judged::Broken(
                    c.clone(),
                    format!("exited with status {code} (and is being restarted)"),
                );
            }
            (ContainerState::Other(state), _) if state == "dead" => {
                return Judged::Broken(c.clone(), "dead".into());
            }
            (_, Some(Health::Unhealthy)) => {
                return Judged::Broken(c.clone(), "its healthcheck failed (unhealthy)".into());
            }
            (ContainerState::Running, None | Some(Health::Healthy)) => {}
            (ContainerState::Running, Some(Health::Starting)) => {
                waiting.push(format!("{}: health starting", c.name));
            }
            (state, _) => waiting.push(format!("{}: {state:?}", c.name).to_lowercase()),
        }
    }
    if waiting.is_empty() {
        Judged::Ready(found.iter().map(|c| c.name.clone()).collect())
    } else {
        Judged::Starting(waiting.join(", "))
    }
}

async fn container_logs(ctx: &StepContext, engine: &dyn Containers, c: &Container) -> String {
    let text = match engine.logs(&c.id, LOG_LINES).await {
        Ok(text) => text,
        Err(e) => format!("(its output could not be read: {e})"),
    };
    let mut out = format!("--- {} (last {LOG_LINES} lines) ---\n", c.name);
    out.push_str(&truncate(&ctx.redactor.redact(&text)));
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// At most the last 8 KiB, cut at a character boundary.
fn truncate(text: &str) -> String {
    const MAX: usize = 8 * 1024;
    if text.len() <= MAX {
        return text.to_string();
    }
    let mut from = text.len() - MAX;
    while !text.is_char_boundary(from) {
        from += 1;
    }
    format!("[… {from} bytes cut]\n{}", &text[from..])
}

fn failed(e: &PortError) -> Outcome {
    Outcome::new(StepResult::Failed, e.to_string())
}

fn left(ctx: &StepContext, deadline: Option<Timestamp>) -> Option<Duration> {
    let d = deadline?.duration_since(ctx.clock.now());
    Duration::try_from(d).ok()
}

/// The compose file liftoff merges last: the candidate's image, its environment and the
/// labels that tie each container to this launch and attempt. JSON is YAML; it holds
/// the plan's resolved values, so only the daemon's user may read it.
fn write_overlay(ctx: &StepContext, at: &Attempt<'_>, d: &DeployStep) -> std::io::Result<PathBuf> {
    let mut service = serde_json::Map::new();
    if let Some(image) = &d.image {
        service.insert("image".into(), image.expose().into());
    }
    if !d.env.is_empty() {
        let env: BTreeMap<&str, &str> = d
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose()))
            .collect();
        service.insert("environment".into(), serde_json::json!(env));
    }
    service.insert(
        "labels".into(),
        serde_json::json!({
            labels::LAUNCH: ctx.launch_id,
            labels::ATTEMPT: at.tag,
        }),
    );
    let mut doc = serde_json::Map::new();
    // Compose v1 merges only files of one format version.
    if let Some(version) = d
        .files
        .first()
        .and_then(|f| format_version(&ctx.workdir.join(f.expose())))
    {
        doc.insert("version".into(), version.into());
    }
    doc.insert(
        "services".into(),
        serde_json::json!({ d.service.clone(): service }),
    );
    let dir = ctx.backups.join("compose");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    let name = at.tag.replace('/', "-");
    let path = dir.join(format!("{name}.yml"));
    let text = serde_json::to_string_pretty(&serde_json::Value::Object(doc))
        .map_err(std::io::Error::other)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    std::io::Write::write_all(&mut file, text.as_bytes())?;
    Ok(path)
}

/// The top-level `version:` of a compose file, if it has one.
fn format_version(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let value = line.strip_prefix("version:")?.trim();
        let value = value.split('#').next()?.trim().trim_matches(['"', '\'']);
        (!value.is_empty()).then(|| value.to_string())
    })
}

#[cfg(test)]
mod tests;
