//! `deploy:` steps: the candidate's containers, brought up with docker compose beside
//! stable's, and what a rollback and a success do with them afterwards.

use crate::decode::{Decoder, Node, location};
use crate::model::{DeployStep, Location, Retire, Step, StepKind, Text, defaults};
use crate::schema;
use crate::steps::is_env_name;

/// `deploy: { compose, service, project, image, env, timeout, retire }`.
pub(crate) fn decode_deploy(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<DeployStep> {
    let mut f = dec.fields(node, &schema::DEPLOY)?;
    let files = f
        .require(dec, "compose")
        .and_then(|n| compose_files(dec, n));
    let service = f
        .require(dec, "service")
        .and_then(|n| compose_name(dec, n, "deploy.service"));
    let project_node = f.require(dec, "project");
    let project = project_node.and_then(|n| project_name(dec, n, "deploy.project"));
    let image = f.take("image").and_then(|n| dec.text(n, "deploy.image"));
    let mut env = Vec::new();
    if let Some(node) = f.take("env")
        && let Some(mut vars) = dec.fields(node, &schema::DEPLOY_ENV)
    {
        for (name, key_at, value) in vars.take_all() {
            if !is_env_name(&name) {
                dec.error(
                    key_at,
                    format!("deploy.env: `{name}` is not a valid environment variable name"),
                );
            }
            if let Some(v) = dec.text(value, "deploy.env value") {
                env.push((name, v));
            }
        }
    }
    let timeout = match f.take("timeout") {
        Some(n) => dec.duration(n, "deploy.timeout"),
        None => Some(defaults::DEPLOY_TIMEOUT),
    };
    let retire = f.take("retire").and_then(|n| decode_retire(dec, n));
    f.finish(dec);
    let (project, retire) = (project?, retire);
    if let Some(r) = &retire
        && r.project == project
    {
        dec.error_hint(
            r.at,
            format!("deploy.retire: `{project}` is also the candidate's project"),
            "`project` is where the candidate runs, `retire` the project stable runs in: they differ (e.g. retail-green and retail-blue)",
        );
        return None;
    }
    Some(DeployStep {
        files: files?,
        service: service?,
        project,
        project_at: project_node.map(location).unwrap_or_default(),
        image,
        env,
        timeout: timeout?,
        retire,
    })
}

/// `retire: retail-blue` or `retire: { project: retail-blue, after: 24h }`.
fn decode_retire(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<Retire> {
    let at = location(node);
    if let saphyr::YamlData::Value(_) = &node.data {
        let project = project_name(dec, node, "deploy.retire")?;
        return Some(Retire {
            project,
            after: std::time::Duration::ZERO,
            at,
        });
    }
    let mut f = dec.fields(node, &schema::RETIRE)?;
    let project = f
        .require(dec, "project")
        .and_then(|n| project_name(dec, n, "deploy.retire.project"));
    let after = match f.take("after") {
        Some(n) => dec.duration(n, "deploy.retire.after"),
        None => Some(std::time::Duration::ZERO),
    };
    f.finish(dec);
    Some(Retire {
        project: project?,
        after: after?,
        at,
    })
}

/// One compose file or a list of them (merged in order, as `docker compose -f ... -f`).
fn compose_files(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<Vec<Text>> {
    let nodes = dec.one_or_more(
        node,
        "deploy.compose",
        "give the compose file, e.g. `docker-compose.yml`",
    )?;
    let files: Vec<Option<Text>> = nodes
        .iter()
        .map(|n| dec.text(n, "deploy.compose"))
        .collect();
    files.into_iter().collect()
}

/// A compose project name, as compose accepts it: lowercase letters, digits, `-` and
/// `_`, starting with a letter or digit.
fn project_name(dec: &mut Decoder<'_>, node: &Node<'_>, what: &str) -> Option<String> {
    let name = dec.string(node, what)?;
    let valid = name.len() <= 63
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !valid {
        dec.error_hint(
            location(node),
            format!("{what}: `{name}` is not a compose project name"),
            "lowercase letters, digits, `-` and `_`, starting with a letter or digit, at most 63",
        );
    }
    valid.then_some(name)
}

/// A compose service name: letters, digits, `.`, `_`, `-`.
fn compose_name(dec: &mut Decoder<'_>, node: &Node<'_>, what: &str) -> Option<String> {
    let name = dec.string(node, what)?;
    let valid = name.len() <= 63
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !valid {
        dec.error_hint(
            location(node),
            format!("{what}: `{name}` is not a compose service name"),
            "letters, digits, `.`, `_` and `-`, starting with a letter or digit",
        );
    }
    valid.then_some(name)
}

/// What the plan's sections ask of its `deploy` steps: distinct candidate projects, and
/// for each deploy a rollback step that removes what it started, appended to
/// `rollback.steps` (a rollback leaves only stable running).
pub(crate) fn add_removals(dec: &mut Decoder<'_>, steps: &[Step], rollback: &mut Vec<Step>) {
    let mut seen: Vec<(&str, Location)> = Vec::new();
    for step in steps {
        let StepKind::Deploy(d) = &step.kind else {
            continue;
        };
        if let Some((_, first)) = seen.iter().find(|(p, _)| *p == d.project) {
            dec.error_hint(
                d.project_at,
                format!(
                    "deploy.project: `{}` is deployed by two steps (the first at {first})",
                    d.project
                ),
                "one deploy step per candidate project",
            );
            continue;
        }
        seen.push((&d.project, d.project_at));
        let name = format!("remove {}", d.project);
        if rollback.iter().any(|s| s.name == name) {
            dec.error_hint(
                step.location,
                format!("rollback.steps: a step is named `{name}`, the name of the step that removes this deploy's containers"),
                "rename that rollback step",
            );
            continue;
        }
        rollback.push(Step {
            name,
            kind: StepKind::Undeploy(d.clone()),
            location: step.location,
            after: None,
        });
    }
    for (project, at) in &seen {
        let retired_elsewhere = steps.iter().any(|s| {
            matches!(&s.kind, StepKind::Deploy(d)
                if d.retire.as_ref().is_some_and(|r| r.project == *project))
        });
        if retired_elsewhere {
            dec.error_hint(
                *at,
                format!("deploy: `{project}` is both deployed and retired by this launch"),
                "retire stable's project; the candidate's stays",
            );
        }
    }
}
