//! `rollback:`: the triggers watched through a launch, how often and on how much
//! evidence they judge, and the steps a rollback runs.

use crate::analysis::{decode_condition, decode_query_fields};
use crate::decode::{Decoder, Node, location};
use crate::model::{Gate, RollbackSpec, Trigger, TriggerAction, defaults};
use crate::schema;
use crate::steps::{StepContext, decode_steps};

pub(crate) fn decode_rollback(dec: &mut Decoder<'_>, node: &Node<'_>) -> RollbackSpec {
    let Some(mut f) = dec.fields(node, &schema::ROLLBACK) else {
        return RollbackSpec::default();
    };
    let steps_at = f.key_location("steps").unwrap_or(f.at);
    let steps = f
        .take("steps")
        .map(|n| decode_steps(dec, n, steps_at, "rollback.steps", StepContext::Rollback))
        .unwrap_or_default();
    let triggers = match f.take("on") {
        Some(n) => dec
            .sequence(n, "rollback.on")
            .map_or_else(Vec::new, |items| {
                items
                    .iter()
                    .filter_map(|item| decode_trigger(dec, item))
                    .collect()
            }),
        None => Vec::new(),
    };
    let check_every = match f.take("check_every") {
        Some(n) => dec
            .duration(n, "rollback.check_every")
            .unwrap_or(defaults::TRIGGER_CHECK_EVERY),
        None => defaults::TRIGGER_CHECK_EVERY,
    };
    let min_requests = match f.take("min_requests") {
        Some(n) => dec
            .integer(n, "rollback.min_requests", 0, i64::MAX)
            .map_or(defaults::TRIGGER_MIN_REQUESTS, |v| v as u64),
        None => defaults::TRIGGER_MIN_REQUESTS,
    };
    let confidence = match f.take("confidence") {
        Some(n) => {
            decode_confidence(dec, n, "rollback.confidence").unwrap_or(defaults::TRIGGER_CONFIDENCE)
        }
        None => defaults::TRIGGER_CONFIDENCE,
    };
    f.reject_reserved(dec);
    f.finish(dec);
    RollbackSpec {
        steps,
        triggers,
        check_every,
        min_requests,
        confidence,
    }
}

/// A confidence level: a percentage from 50% up to, not including, 100% (at 100% nothing
/// could ever be proven), with as many decimals as it takes (`99.999%`).
fn decode_confidence(dec: &mut Decoder<'_>, node: &Node<'_>, what: &str) -> Option<f64> {
    let raw = dec.string(node, what)?;
    let hint = "write a percentage from 50% to below 100%, e.g. `99.999%` (the default) or `99.9%`";
    let Some(number) = raw.trim().strip_suffix('%') else {
        dec.error_hint(
            location(node),
            format!("{what}: `{raw}` has no `%` sign"),
            hint,
        );
        return None;
    };
    match number.trim().parse::<f64>() {
        Ok(p) if (50.0..100.0).contains(&p) => Some(p / 100.0),
        _ => {
            dec.error_hint(
                location(node),
                format!("{what}: `{raw}` is not a confidence level"),
                hint,
            );
            None
        }
    }
}

fn decode_trigger(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<Trigger> {
    if let saphyr::YamlData::Value(_) = &node.data {
        let condition = decode_condition(dec, node, "rollback.on", true)?;
        return Some(Trigger {
            gate: Gate::Builtin(condition),
            action: TriggerAction::Rollback,
        });
    }
    let mut f = dec.fields(node, &schema::TRIGGER)?;
    let gate = if f.has("query") {
        if let Some(at) = f.key_location("when") {
            dec.error(
                at,
                "rollback.on[]: give `when` (a condition) or `query` (PromQL), not both",
            );
        }
        f.take("when");
        decode_query_fields(dec, &mut f, true).map(Gate::Query)
    } else {
        for key in schema::QUERY_KEYS {
            if f.take(key).is_some() {
                dec.error_hint(
                    f.key_location(key).unwrap_or(f.at),
                    format!("rollback.on[]: `{key}` belongs to PromQL triggers (with `query`)"),
                    "a `when` condition carries its own `for`: `error_rate > 5% for 2m`",
                );
            }
        }
        f.require(dec, "when")
            .and_then(|n| decode_condition(dec, n, "rollback.on[].when", true))
            .map(Gate::Builtin)
    };
    let flag = f.take("disable_flag");
    if let (Some(_), Some(at)) = (&flag, f.key_location("action")) {
        dec.error_hint(
            at,
            "rollback.on[]: `disable_flag` is the action; it takes no `action`",
            "remove `action`",
        );
    }
    let action = match (flag, f.take("action")) {
        (Some(n), _) => dec
            .string(n, "rollback.on[].disable_flag")
            .map(TriggerAction::DisableFlag),
        (None, None) => Some(TriggerAction::Rollback),
        (None, Some(n)) => match dec.string(n, "rollback.on[].action").as_deref() {
            Some("rollback") => Some(TriggerAction::Rollback),
            Some("pause") => Some(TriggerAction::Pause),
            Some("notify") => Some(TriggerAction::Notify),
            Some(other) => {
                dec.error_hint(
                    location(n),
                    format!("rollback.on[].action: unknown action `{other}`"),
                    "actions: rollback (default), pause, notify; or `disable_flag: NAME`",
                );
                None
            }
            None => None,
        },
    };
    f.finish(dec);
    Some(Trigger {
        gate: gate?,
        action: action?,
    })
}
