//! `steps:` and `rollback.steps`: each step's kind, its settings and its name, given or
//! derived. The steps that judge (`analyze`, `monitor`) are decoded in `analysis.rs`;
//! checklists, smoke tests and migrations in `checks.rs`.

use crate::analysis::{decode_analyze, decode_monitor};
use crate::checks;
use crate::decode::{Decoder, Fields, Node, UniqueNames, check_http_url, location};
use crate::model::{
    ApproveStep, FlagSetting, FlagStep, FollowUp, Location, RunStep, Step, StepKind, WaitStep,
    defaults,
};
use crate::schema;

/// The step kinds this build runs, in documentation order.
pub const STEP_KINDS: &[&str] = &[
    "run",
    "traffic",
    "pause",
    "approve",
    "wait",
    "maintenance",
    "analyze",
    "bake",
    "check",
    "smoke",
    "migrate",
    "monitor",
    "flag",
    "deploy",
];

/// Keys only a `run` step takes.
const RUN_KEYS: &[&str] = &["timeout", "env", "dir", "idempotent"];

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum StepContext {
    Forward,
    Rollback,
}

/// The steps of a `steps` list; `key_at` is its key's position, where a list longer
/// than the limit is reported (without decoding its steps).
pub(crate) fn decode_steps(
    dec: &mut Decoder<'_>,
    node: &Node<'_>,
    key_at: Location,
    what: &str,
    ctx: StepContext,
) -> Vec<Step> {
    let Some(items) = dec.sequence(node, what) else {
        return Vec::new();
    };
    let max = dec.limits.max_steps;
    if items.len() > max {
        dec.error_hint(
            key_at,
            format!("{what}: {} steps, more than the {max} a plan may hold", items.len()),
            "split this launch into several, or move repeated work into a script a `run` step calls",
        );
        return Vec::new();
    }
    let decoded: Vec<(Step, bool)> = items
        .iter()
        .filter_map(|item| decode_step(dec, item, ctx))
        .collect();
    let mut names = UniqueNames::default();
    for (step, explicit) in &decoded {
        if *explicit && !names.claim(&step.name) {
            dec.error_hint(
                step.location,
                format!("{what}: two steps are named `{}`", step.name),
                "step names identify steps in status and reports; give each a distinct `name`",
            );
        }
    }
    // Derived names (`pause 10s`) may repeat: number the repeats.
    decoded
        .into_iter()
        .map(|(mut step, explicit)| {
            if !explicit {
                step.name = names.derive(step.name);
            }
            step
        })
        .collect()
}

/// A step, and whether its name was given (not derived).
fn decode_step(dec: &mut Decoder<'_>, node: &Node<'_>, ctx: StepContext) -> Option<(Step, bool)> {
    let mut f = dec.fields(node, &schema::STEP)?;
    let at = f.at;
    let name = f.take("name").and_then(|n| dec.string(n, "step name"));

    let present: Vec<&str> = STEP_KINDS.iter().copied().filter(|k| f.has(k)).collect();
    let reserved = f.has_reserved();
    f.reject_reserved(dec);
    let kind_key = match present.as_slice() {
        [kind] => *kind,
        [] => {
            if !reserved {
                for k in STEP_KINDS {
                    f.take(k);
                }
                dec.error_hint(
                    at,
                    "step: no step kind given",
                    format!("a step has exactly one of: {}", STEP_KINDS.join(", ")),
                );
                f.finish(dec);
            }
            return None;
        }
        [first, second, ..] => {
            dec.error_hint(
                f.key_location(second).unwrap_or(at),
                format!("step: has both `{first}` and `{second}`"),
                "one kind per step: split it into two steps",
            );
            return None;
        }
    };

    if kind_key != "run" {
        for key in RUN_KEYS {
            if f.take(key).is_some() {
                let hint = match (*key, kind_key) {
                    ("timeout", "approve" | "wait" | "migrate") => {
                        format!("put it inside the step: `{kind_key}: {{ ..., timeout: 5m }}`")
                    }
                    ("timeout", "smoke" | "check") => format!(
                        "`{kind_key}: {{ ..., timeout: 5s }}` sets each request's or item's timeout"
                    ),
                    ("idempotent", _) => format!("`{kind_key}` steps are idempotent by nature"),
                    _ => "remove it".to_string(),
                };
                dec.error_hint(
                    f.key_location(key).unwrap_or(at),
                    format!("step: `{key}` applies to `run` steps only"),
                    hint,
                );
            }
        }
    }

    let value = f.take(kind_key)?;
    let decoded = match kind_key {
        "run" => decode_run(dec, &mut f, value).map(StepKind::Run),
        "traffic" => dec.percent(value, "traffic").map(StepKind::Traffic),
        "pause" => dec.duration(value, "pause").map(StepKind::Pause),
        "approve" => decode_approve(dec, value).map(StepKind::Approve),
        "wait" => decode_wait(dec, value).map(StepKind::Wait),
        "maintenance" => decode_switch(dec, value, "maintenance").map(StepKind::Maintenance),
        "analyze" => decode_analyze(dec, value).map(|a| StepKind::Analyze(Box::new(a))),
        // A bake is a pause the triggers watch over (they watch every step).
        "bake" => dec.fields(value, &schema::BAKE).and_then(|mut b| {
            let d = b
                .require(dec, "for")
                .and_then(|d| dec.duration(d, "bake.for"));
            b.finish(dec);
            d.map(StepKind::Pause)
        }),
        "check" => checks::decode_checklist(dec, value, "check").map(StepKind::Check),
        "smoke" => checks::decode_smoke(dec, value).map(StepKind::Smoke),
        "migrate" => checks::decode_migrate(dec, value).map(|m| StepKind::Migrate(Box::new(m))),
        "monitor" => decode_monitor(dec, value).map(|m| StepKind::Monitor(Box::new(m))),
        "flag" => decode_flag(dec, value).map(StepKind::Flag),
        "deploy" => crate::deploy::decode_deploy(dec, value).map(|d| StepKind::Deploy(Box::new(d))),
        _ => unreachable!("STEP_KINDS and this match agree"),
    };
    let after = f.take("after").and_then(|n| {
        if ctx == StepContext::Rollback {
            dec.error(
                location(n),
                "rollback.steps: `after` is for launch steps (a rollback cancels follow-ups)",
            );
            return None;
        }
        decode_after(dec, n)
    });
    f.finish(dec);
    let kind = decoded?;

    if ctx == StepContext::Rollback {
        let why = match kind {
            StepKind::Traffic(_) => {
                Some("traffic returns to stable automatically before rollback steps run")
            }
            StepKind::Approve(_) => Some("a rollback must never wait for a human"),
            StepKind::Deploy(_) => Some(
                "a rollback returns to stable, which is running (the candidate's containers are removed by the rollback itself)",
            ),
            StepKind::Monitor(_) => {
                Some("a rollback must not wait for checkpoints (watch the service with a launch)")
            }
            StepKind::Check(ref list)
                if list
                    .items
                    .iter()
                    .any(|i| matches!(i.kind, checks::CheckKind::Approval { .. })) =>
            {
                Some("a rollback must never wait for a human (this one has an `approval` item)")
            }
            StepKind::Migrate(ref m) if m.restore_on_rollback => Some(
                "`restore_on_rollback` on a rollback step would restore during the rollback itself",
            ),
            _ => None,
        };
        if let Some(why) = why {
            dec.error(
                at,
                format!(
                    "rollback.steps: `{}` steps are not allowed here: {why}",
                    kind.keyword()
                ),
            );
        }
    }
    let explicit = name.is_some();
    let name = name.unwrap_or_else(|| match (&kind, kind_key) {
        (StepKind::Pause(d), "bake") => format!("bake {}", humantime::format_duration(*d)),
        _ => default_name(&kind),
    });
    let step = Step {
        name,
        kind,
        location: at,
        after,
    };
    Some((step, explicit))
}

fn decode_after(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<FollowUp> {
    let mut f = dec.fields(node, &schema::AFTER)?;
    let delay = f
        .require(dec, "delay")
        .and_then(|n| dec.duration(n, "after.delay"));
    let command = f.require(dec, "run").and_then(|n| dec.text(n, "after.run"));
    let timeout = match f.take("timeout") {
        Some(n) => dec.duration(n, "after.timeout"),
        None => Some(defaults::RUN_TIMEOUT),
    };
    f.finish(dec);
    Some(FollowUp {
        delay: delay?,
        command: command?,
        timeout: timeout?,
    })
}

fn decode_run(dec: &mut Decoder<'_>, f: &mut Fields<'_, '_>, value: &Node<'_>) -> Option<RunStep> {
    let command = dec.text(value, "run");
    let timeout = match f.take("timeout") {
        Some(t) => dec.duration(t, "timeout"),
        None => Some(defaults::RUN_TIMEOUT),
    };
    let dir = f.take("dir").and_then(|d| dec.text(d, "dir"));
    let idempotent = f
        .take("idempotent")
        .map_or(Some(false), |i| dec.boolean(i, "idempotent"));
    let mut env = Vec::new();
    if let Some(node) = f.take("env")
        && let Some(mut vars) = dec.fields(node, &schema::ENV)
    {
        // Every key of `env` is a variable name.
        for (name, key_at, value) in vars.take_all() {
            if !is_env_name(&name) {
                dec.error(
                    key_at,
                    format!("env: `{name}` is not a valid environment variable name"),
                );
            }
            if let Some(v) = dec.text(value, "env value") {
                env.push((name, v));
            }
        }
    }
    Some(RunStep {
        command: command?,
        timeout: timeout?,
        env,
        dir,
        idempotent: idempotent?,
    })
}

pub(crate) fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn decode_approve(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<ApproveStep> {
    let mut f = dec.fields(node, &schema::APPROVE)?;
    let role = f
        .require(dec, "role")
        .and_then(|r| dec.string(r, "approve.role"));
    let timeout = match f.take("timeout") {
        Some(t) => dec.duration(t, "approve.timeout").map(Some),
        None => Some(None),
    };
    f.finish(dec);
    Some(ApproveStep {
        role: role?,
        timeout: timeout?,
    })
}

fn decode_wait(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<WaitStep> {
    let mut f = dec.fields(node, &schema::WAIT)?;
    let url_node = f.require(dec, "http");
    let url = url_node.and_then(|u| dec.text(u, "wait.http"));
    if let (Some(u), Some(n)) = (&url, url_node) {
        check_http_url(dec, n, "wait.http", u, "http://127.0.0.1:9001/health");
    }
    let status = match f.take("status") {
        Some(s) => dec.integer(s, "wait.status", 100, 599).map(|s| s as u16),
        None => Some(defaults::WAIT_STATUS),
    };
    let consecutive = match f.take("consecutive") {
        Some(c) => dec
            .integer(c, "wait.consecutive", 1, 1000)
            .map(|c| c as u32),
        None => Some(defaults::WAIT_CONSECUTIVE),
    };
    let mut duration = |key: &'static str, what: &str, default| match f.take(key) {
        Some(n) => dec.duration(n, what),
        None => Some(default),
    };
    let interval = duration("interval", "wait.interval", defaults::WAIT_INTERVAL);
    let request_timeout = duration(
        "request_timeout",
        "wait.request_timeout",
        defaults::WAIT_REQUEST_TIMEOUT,
    );
    let timeout = duration("timeout", "wait.timeout", defaults::WAIT_TIMEOUT);
    f.finish(dec);
    Some(WaitStep {
        url: url?,
        status: status?,
        consecutive: consecutive?,
        interval: interval?,
        request_timeout: request_timeout?,
        timeout: timeout?,
    })
}

/// `on`/`off` (or `true`/`false`).
fn decode_switch(dec: &mut Decoder<'_>, node: &Node<'_>, what: &str) -> Option<bool> {
    match &node.data {
        saphyr::YamlData::Value(saphyr::Scalar::Boolean(b)) => Some(*b),
        saphyr::YamlData::Value(saphyr::Scalar::String(s)) if s == "on" => Some(true),
        saphyr::YamlData::Value(saphyr::Scalar::String(s)) if s == "off" => Some(false),
        _ => {
            dec.error(location(node), format!("{what}: expected `on` or `off`"));
            None
        }
    }
}

/// `flag: { name, percent: 5% }` or `flag: { name, enabled: false }`.
fn decode_flag(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<FlagStep> {
    let mut f = dec.fields(node, &schema::FLAG)?;
    let name = f.require(dec, "name").and_then(|n| {
        let name = dec.string(n, "flag.name")?;
        let valid = name.len() <= 128
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !valid {
            dec.error_hint(
                location(n),
                format!("flag.name: `{name}` is not a flag name"),
                "letters, digits, `_`, `.` and `-`, at most 128",
            );
        }
        valid.then_some(name)
    });
    let change = match (f.take("percent"), f.take("enabled")) {
        (Some(p), None) => dec.percent(p, "flag.percent").map(FlagSetting::Percent),
        (None, Some(e)) => dec.boolean(e, "flag.enabled").map(FlagSetting::Enabled),
        (Some(_), Some(_)) => {
            dec.error_hint(
                f.key_location("enabled").unwrap_or(f.at),
                "flag: give `percent` or `enabled`, not both",
                "one change per step: split it into two steps",
            );
            None
        }
        (None, None) => {
            dec.error_hint(
                f.at,
                "flag: missing `percent` or `enabled`",
                "e.g. `flag: { name: new_checkout, percent: 5% }`",
            );
            None
        }
    };
    f.finish(dec);
    Some(FlagStep {
        name: name?,
        change: change?,
    })
}

fn default_name(kind: &StepKind) -> String {
    match kind {
        StepKind::Run(run) => format!("run {}", first_line(run.command.template())),
        StepKind::Traffic(w) => format!("traffic {w}%"),
        StepKind::Pause(d) => format!("pause {}", humantime::format_duration(*d)),
        StepKind::Approve(a) => format!("approve by {}", a.role),
        StepKind::Wait(w) => format!("wait for {}", w.url),
        StepKind::Analyze(a) => format!("analyze {}", humantime::format_duration(a.duration)),
        StepKind::Maintenance(true) => "maintenance on".to_string(),
        StepKind::Maintenance(false) => "maintenance off".to_string(),
        StepKind::Check(list) => match list.items.as_slice() {
            [one] => format!("check {}", one.name),
            items => format!("check {} items", items.len()),
        },
        StepKind::Smoke(s) => match s.requests.as_slice() {
            [one] => format!("smoke {}", one.name),
            requests => format!("smoke {} requests", requests.len()),
        },
        StepKind::Migrate(m) => format!("migrate {}", first_line(m.command.template())),
        StepKind::Monitor(m) => {
            let last = m.checkpoints.last().copied().unwrap_or_default();
            format!("monitor {}", humantime::format_duration(last))
        }
        StepKind::Deploy(d) => format!("deploy {}", d.project),
        StepKind::Undeploy(d) => format!("remove {}", d.project),
        StepKind::Flag(f) => match f.change {
            FlagSetting::Percent(w) => format!("flag {} {w}%", f.name),
            FlagSetting::Enabled(true) => format!("flag {} on", f.name),
            FlagSetting::Enabled(false) => format!("flag {} off", f.name),
        },
    }
}

/// A command's first line, at most 48 characters, `…` when cut.
fn first_line(command: &str) -> String {
    let first = command.lines().next().unwrap_or_default().trim();
    let short: String = first.chars().take(48).collect();
    if short.len() < first.len() {
        format!("{short}…")
    } else {
        short
    }
}
