//! Launch plans: YAML in, a typed [`Plan`] out, or every problem with `line:col`.
//!
//! Invariant: this crate is pure. No I/O, no tokio, no clock; the environment is a
//! function handed in, so the same source and variables always give the same plan.

mod analysis;
pub mod checks;
pub mod condition;
mod cross_checks;
mod decode;
mod deploy;
mod diag;
pub mod human;
mod limits;
mod lint;
mod load;
mod model;
mod names;
pub mod notify;
mod rollback;
mod router;
pub mod schema;
mod steps;

pub use diag::{Diagnostic, PlanErrors};
pub use limits::{Limits, MAX_NESTING_DEPTH, MAX_PLAN_BYTES, MAX_STEPS};
pub use lint::{Lint, VariableUse, lint};
pub use model::*;
pub use names::{MAX_LAUNCH_NAME_LEN, MAX_SERVICE_NAME_LEN};
pub use steps::STEP_KINDS;

use decode::{Decoder, Env, Node, location};
use steps::StepContext;

/// The plan format versions this build reads.
pub const SUPPORTED_VERSIONS: &[i64] = &[1];

/// Parse and validate a plan within the default [`Limits`]. `env` resolves `${VAR}`
/// references.
///
/// CPU-bound (a 1 MiB plan takes 0.1 to 0.25 s): async callers run it on a blocking
/// thread, with an owned source and environment moved in.
pub fn parse(source: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Plan, PlanErrors> {
    parse_with_limits(source, env, Limits::default())
}

/// [`parse`] within other limits (benchmarks lift `max_steps` and `max_bytes`).
pub fn parse_with_limits(
    source: &str,
    env: &dyn Fn(&str) -> Option<String>,
    limits: Limits,
) -> Result<Plan, PlanErrors> {
    decode_source(source, Env::Strict(env), limits).map(|(plan, _)| plan)
}

/// The plan, and the variables it reads under [`Env::Unset`], or every problem.
fn decode_source(
    source: &str,
    env: Env<'_>,
    limits: Limits,
) -> Result<(Plan, Vec<lint::VariableUse>), PlanErrors> {
    if source.len() > limits.max_bytes {
        return Err(PlanErrors(vec![Diagnostic {
            location: Location { line: 1, col: 1 },
            message: format!(
                "the plan is {} bytes, more than the {} liftoff reads",
                source.len(),
                limits.max_bytes
            ),
            hint: Some(
                "a plan is a runbook of tens of steps: split this launch into several".into(),
            ),
        }]));
    }
    let docs = load::load(source, limits.max_depth).map_err(|d| PlanErrors(vec![d]))?;
    let mut dec = Decoder::new(source, env, limits);
    let plan = match docs.as_slice() {
        [doc] => decode_plan(&mut dec, doc),
        [] => {
            dec.error(Location { line: 1, col: 1 }, "the plan is empty");
            None
        }
        [_, second, ..] => {
            dec.error(
                location(second),
                "a plan file holds one YAML document, found several",
            );
            None
        }
    };
    let mut diags = dec.diags;
    diags.sort_by_key(|d| (d.location.line, d.location.col));
    match plan {
        Some(plan) if diags.is_empty() => Ok((plan, dec.uses)),
        _ => {
            if diags.is_empty() {
                diags.push(Diagnostic {
                    location: Location { line: 1, col: 1 },
                    message: "invalid plan".into(),
                    hint: None,
                });
            }
            Err(PlanErrors(diags))
        }
    }
}

fn decode_plan(dec: &mut Decoder<'_>, root: &Node<'_>) -> Option<Plan> {
    let mut top = dec.fields(root, &schema::PLAN)?;

    if let Some(v) = top.require(dec, "version") {
        let max = *SUPPORTED_VERSIONS.last().unwrap_or(&1);
        if let Some(n) = dec.integer(v, "version", 0, i64::MAX)
            && !SUPPORTED_VERSIONS.contains(&n)
        {
            dec.error_hint(
                location(v),
                format!("version: plan format {n} is not supported"),
                format!("this liftoff reads plan format version {max}"),
            );
        }
    }
    let name = top
        .require(dec, "name")
        .and_then(|n| names::launch_name(dec, n));
    let service = top
        .require(dec, "service")
        .and_then(|n| names::service_name(dec, n));
    let router = top
        .take("router")
        .and_then(|n| router::decode_router(dec, n));
    let metrics = top
        .take("metrics")
        .and_then(|n| analysis::decode_metrics(dec, n));
    let checklist = top
        .take("checklist")
        .and_then(|n| checks::decode_checklist(dec, n, "checklist"));
    let notify = top
        .take("notify")
        .and_then(|n| notify::decode_notify(dec, n));
    top.reject_reserved(dec);

    let steps_node = top.require(dec, "steps");
    let steps_at = top.key_location("steps").unwrap_or(top.at);
    let steps = steps_node.map_or_else(Vec::new, |n| {
        steps::decode_steps(dec, n, steps_at, "steps", StepContext::Forward)
    });
    if let Some(n) =
        steps_node.filter(|n| matches!(&n.data, saphyr::YamlData::Sequence(s) if s.is_empty()))
    {
        dec.error(location(n), "steps: a plan needs at least one step");
    }
    let mut rollback = top
        .take("rollback")
        .map(|n| rollback::decode_rollback(dec, n))
        .unwrap_or_default();
    let rollback_at = top.key_location("rollback").unwrap_or(top.at);
    top.finish(dec);
    deploy::add_removals(dec, &steps, &mut rollback.steps);

    cross_checks::check(
        dec,
        &router,
        &metrics,
        &checklist,
        &steps,
        &rollback,
        rollback_at,
    );
    Some(Plan {
        name: name?,
        service: service?,
        router,
        metrics,
        checklist,
        steps,
        rollback,
        notify,
        variables: std::mem::take(&mut dec.variables),
    })
}
