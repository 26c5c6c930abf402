//! `liftoff flags ...`: the daemon's feature flags, through `/api/v1/flags`.

use std::io::Read;
use std::path::PathBuf;

use liftoff_api::flags::{
    AuditView, CreatedKey, Definition, Deleted, FlagActorRequest, FlagChangeRequest, FlagDoc,
    FlagView, KeyView, NewKeyRequest, Revoked,
};
use serde::Serialize;
use serde_json::Value;

use crate::client::Client;
use crate::exit::{Exit, Failure};
use crate::{Format, Who};

#[derive(clap::Args)]
pub struct FlagsArgs {
    #[command(subcommand)]
    action: FlagsAction,
}

#[derive(clap::Subcommand)]
enum FlagsAction {
    /// Every flag: type, state, rollout, rules.
    List,
    /// One flag's whole definition.
    Get { name: String },
    /// Create or change a flag. A flag that does not exist is created as a boolean
    /// flag, off, before the change applies.
    Set {
        name: String,
        /// Replace the definition with this JSON file (`-`: standard input); see
        /// docs/flags.md for the format.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// The kill switch.
        #[arg(long, value_name = "true|false")]
        enabled: Option<bool>,
        /// Serve the rollout variant to this share of users (0-100); also turns the
        /// flag on unless `--enabled false` is given.
        #[arg(long, value_name = "PERCENT")]
        percent: Option<f64>,
        #[command(flatten)]
        why: Why,
    },
    /// Turn a flag on (created off first if it does not exist).
    Enable {
        name: String,
        #[command(flatten)]
        why: Why,
    },
    /// Kill switch: serve everyone the flag's off variant.
    Disable {
        name: String,
        #[command(flatten)]
        why: Why,
    },
    /// Serve the rollout variant to PERCENT of users, sticky: raising it never takes a
    /// user off. Turns the flag on.
    Rollout {
        name: String,
        percent: f64,
        #[command(flatten)]
        why: Why,
    },
    /// Who changed a flag, when, why, and what changed; newest first.
    History {
        name: String,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Delete a flag (evaluations then get FLAG_NOT_FOUND; its history stays).
    Delete {
        name: String,
        #[command(flatten)]
        why: Why,
    },
    /// Read-only evaluation keys for OFREP clients (OpenFeature providers).
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
}

#[derive(clap::Subcommand)]
enum KeysAction {
    /// Create a key and print it: it is shown this once, and stored only as a hash.
    Create {
        name: String,
        /// Evaluations per second this key may make (beyond: 429 with Retry-After).
        #[arg(long, value_name = "N")]
        rate_limit: Option<u32>,
        #[command(flatten)]
        who: Who,
    },
    /// Every key: name, prefix, rate limit, who created it.
    List,
    /// Revoke a key: it stops working at once.
    Revoke {
        name: String,
        #[command(flatten)]
        who: Who,
    },
}

#[derive(clap::Args)]
struct Why {
    /// Why, for the audit log.
    #[arg(long)]
    reason: Option<String>,
    #[command(flatten)]
    who: Who,
}

pub async fn run(args: &FlagsArgs, client: &Client, format: Format) -> Result<Exit, Failure> {
    match &args.action {
        FlagsAction::List => {
            let list: Vec<FlagView> = client.get("/flags").await?;
            print_list(&list, format);
        }
        FlagsAction::Get { name } => {
            let flag: FlagView = client.get(&format!("/flags/{}", segment(name)?)).await?;
            print_flag(&flag, format);
        }
        FlagsAction::Set {
            name,
            file,
            enabled,
            percent,
            why,
        } => {
            let definition = match file {
                Some(path) => Some(read_definition(path)?),
                None => None,
            };
            if definition.is_none() && enabled.is_none() && percent.is_none() {
                return Err(Failure::new(
                    Exit::Invalid,
                    "nothing to set: give --file, --enabled or --percent",
                ));
            }
            change(client, name, why, *enabled, *percent, definition, format).await?;
        }
        FlagsAction::Enable { name, why } => {
            change(client, name, why, Some(true), None, None, format).await?
        }
        FlagsAction::Disable { name, why } => {
            change(client, name, why, Some(false), None, None, format).await?
        }
        FlagsAction::Rollout { name, percent, why } => {
            change(client, name, why, None, Some(*percent), None, format).await?
        }
        FlagsAction::History { name, limit } => {
            let list: Vec<AuditView> = client
                .get(&format!("/flags/{}/history?limit={limit}", segment(name)?))
                .await?;
            print_history(&list, format);
        }
        FlagsAction::Delete { name, why } => {
            let body = FlagActorRequest {
                by: why.who.name(),
                reason: why.reason.clone(),
            };
            let out: Deleted = client
                .post(&format!("/flags/{}/delete", segment(name)?), &body)
                .await?;
            print_json_or(&out, format, || println!("{name}: deleted"));
        }
        FlagsAction::Keys { action } => keys(client, action, format).await?,
    }
    Ok(Exit::Success)
}

async fn change(
    client: &Client,
    name: &str,
    why: &Why,
    enabled: Option<bool>,
    percentage: Option<f64>,
    definition: Option<FlagDoc>,
    format: Format,
) -> Result<(), Failure> {
    let body = FlagChangeRequest {
        by: why.who.name(),
        reason: why.reason.clone(),
        enabled,
        percentage,
        definition,
    };
    let flag: FlagView = client
        .post(&format!("/flags/{}", segment(name)?), &body)
        .await?;
    print_json_or(&flag, format, || {
        println!("{}: {}", flag.key, state(&flag.definition))
    });
    Ok(())
}

async fn keys(client: &Client, action: &KeysAction, format: Format) -> Result<(), Failure> {
    match action {
        KeysAction::Create {
            name,
            rate_limit,
            who,
        } => {
            let body = NewKeyRequest {
                name: name.clone(),
                by: who.name(),
                rate_limit: *rate_limit,
            };
            let created: CreatedKey = client.post("/flag-keys", &body).await?;
            print_json_or(&created, format, || {
                // The key alone on stdout, so `KEY=$(liftoff flags keys create web)` works.
                println!("{}", created.key);
                eprintln!(
                    "evaluation key `{name}` created; store it now: it is shown only once \
                     (send it as `X-API-Key` or `Authorization: Bearer` to /ofrep/v1)"
                );
            });
        }
        KeysAction::List => {
            let list: Vec<KeyView> = client.get("/flag-keys").await?;
            print_json_or(&list, format, || {
                if list.is_empty() {
                    println!("no evaluation keys");
                    return;
                }
                println!(
                    "{:<24} {:<12} {:<12} {:<21} CREATED BY",
                    "NAME", "PREFIX", "RATE LIMIT", "CREATED"
                );
                for k in &list {
                    let limit = k.rate_limit.map_or("-".to_string(), |n| format!("{n}/s"));
                    println!(
                        "{:<24} {:<12} {:<12} {:<21} {}",
                        k.name,
                        format!("{}…", k.prefix),
                        limit,
                        short_time(&k.created_at),
                        k.created_by
                    );
                }
            });
        }
        KeysAction::Revoke { name, who } => {
            let body = FlagActorRequest {
                by: who.name(),
                reason: None,
            };
            let out: Revoked = client
                .post(&format!("/flag-keys/{}/revoke", segment(name)?), &body)
                .await?;
            print_json_or(&out, format, || println!("evaluation key `{name}` revoked"));
        }
    }
    Ok(())
}

/// A flag or key name as one URL path segment. Names allow only `A-Z a-z 0-9 _ . -`
/// (the daemon says so too); anything else would change the path.
fn segment(name: &str) -> Result<&str, Failure> {
    if !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        Ok(name)
    } else {
        Err(Failure::new(
            Exit::Invalid,
            format!("`{name}` is not a valid name: use only letters, digits, `_`, `.` and `-`"),
        ))
    }
}

fn read_definition(path: &PathBuf) -> Result<FlagDoc, Failure> {
    let text = if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Failure::new(Exit::Invalid, format!("reading standard input: {e}")))?;
        s
    } else {
        std::fs::read_to_string(path).map_err(|e| {
            Failure::new(
                Exit::Invalid,
                format!("cannot read {}: {e}", path.display()),
            )
        })?
    };
    let json: Value = serde_json::from_str(&text)
        .map_err(|e| Failure::new(Exit::Invalid, format!("{}: not JSON: {e}", path.display())))?;
    serde_json::from_value(json).map_err(|e| {
        Failure::new(
            Exit::Invalid,
            format!(
                "{}: not a flag definition (see docs/flags.md): {e}",
                path.display()
            ),
        )
    })
}

fn print_json_or(v: &impl Serialize, format: Format, text: impl FnOnce()) {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
        Format::Text => text(),
    }
}

/// An enum's name on the wire (`boolean`, `semver_lt`).
fn wire_name(v: &impl Serialize) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

fn short_time(s: &str) -> &str {
    s.get(..19).unwrap_or(s)
}

/// The kill switch and the rollout: `on, 25% → on`, `disabled (25% → on)`, `on`. A
/// definition the daemon can no longer read shows as `disabled`.
fn state(def: &Definition) -> String {
    let Some(doc) = def.doc() else {
        return "disabled".into();
    };
    let rollout = doc.rollout.as_ref().map(|r| {
        format!(
            "{}% → {}",
            pct(Some(r.percent)),
            r.variant.as_deref().unwrap_or("?")
        )
    });
    match (doc.enabled, rollout) {
        (true, Some(r)) => format!("on, {r}"),
        (true, None) => "on".into(),
        (false, Some(r)) => format!("disabled ({r})"),
        (false, None) => "disabled".into(),
    }
}

/// A percentage as people write it: `25`, `33.333`.
fn pct(p: Option<f64>) -> String {
    p.map_or_else(|| "?".into(), |p| p.to_string())
}

fn print_list(list: &[FlagView], format: Format) {
    print_json_or(&list, format, || {
        if list.is_empty() {
            println!("no flags");
            return;
        }
        println!(
            "{:<32} {:<8} {:<24} {:<6} UPDATED",
            "FLAG", "TYPE", "STATE", "RULES"
        );
        for f in list {
            let doc = f.definition.doc();
            println!(
                "{:<32} {:<8} {:<24} {:<6} {}",
                f.key,
                doc.map(|d| wire_name(&d.kind)).unwrap_or_default(),
                state(&f.definition),
                doc.map_or(0, |d| d.rules.len()),
                short_time(&f.updated_at)
            );
        }
    });
}

fn print_flag(f: &FlagView, format: Format) {
    print_json_or(f, format, || {
        let doc = f.definition.doc();
        println!("flag:     {}", f.key);
        println!(
            "type:     {}",
            doc.map(|d| wire_name(&d.kind)).unwrap_or_default()
        );
        println!("state:    {}", state(&f.definition));
        if let Some(doc) = doc {
            print_variants_and_rules(doc);
        }
        println!(
            "bucket by: {}",
            doc.and_then(|d| d.bucket_by.as_deref()).unwrap_or("")
        );
        println!("salt:     {}", f.salt);
        if let Some(d) = doc.map(|d| &d.description).filter(|d| !d.is_empty()) {
            println!("about:    {d}");
        }
        println!("created:  {}", short_time(&f.created_at));
        println!("updated:  {}", short_time(&f.updated_at));
    });
}

fn print_variants_and_rules(doc: &FlagDoc) {
    println!("variants:");
    for (name, value) in &doc.variants {
        let mut marks = Vec::new();
        if doc.default_variant.as_deref() == Some(name) {
            marks.push("default");
        }
        if doc.off_variant.as_deref() == Some(name) {
            marks.push("off");
        }
        if doc.rollout.as_ref().and_then(|r| r.variant.as_deref()) == Some(name) {
            marks.push("rollout");
        }
        let marks = if marks.is_empty() {
            String::new()
        } else {
            format!("  ({})", marks.join(", "))
        };
        println!("  {name} = {value}{marks}");
    }
    if doc.rules.is_empty() {
        return;
    }
    println!("rules:");
    for (i, r) in doc.rules.iter().enumerate() {
        let when: Vec<String> = r
            .when
            .iter()
            .map(|c| format!("{} {} {}", c.attribute, wire_name(&c.op), c.value))
            .collect();
        let name = r
            .name
            .as_ref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        println!(
            "  {}.{name} if {} → {}",
            i + 1,
            when.join(" and "),
            r.variant
        );
    }
}

fn print_history(list: &[AuditView], format: Format) {
    print_json_or(&list, format, || {
        if list.is_empty() {
            println!("no changes recorded");
            return;
        }
        println!(
            "{:<21} {:<20} {:<8} {:<28} CHANGE",
            "AT", "WHO", "ACTION", "WHY"
        );
        for h in list {
            println!(
                "{:<21} {:<20} {:<8} {:<28} {}",
                short_time(&h.at),
                h.actor,
                h.action,
                h.cause,
                diff(h.before.as_ref(), h.after.as_ref())
            );
        }
    });
}

/// What changed between two definitions, field by field, in one line.
fn diff(before: Option<&Definition>, after: Option<&Definition>) -> String {
    let (b, a) = match (
        before.and_then(Definition::doc),
        after.and_then(Definition::doc),
    ) {
        (None, Some(_)) => return format!("created: {}", state(after.expect("some"))),
        (Some(_), None) => return format!("deleted; was {}", state(before.expect("some"))),
        (None, None) => return String::new(),
        (Some(b), Some(a)) => (b, a),
    };
    // Field by field, in the format's own names.
    let (Ok(Value::Object(b)), Ok(Value::Object(a))) =
        (serde_json::to_value(b), serde_json::to_value(a))
    else {
        return String::new();
    };
    let mut parts = Vec::new();
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let (old, new) = (
            b.get(k).unwrap_or(&Value::Null),
            a.get(k).unwrap_or(&Value::Null),
        );
        if old == new {
            continue;
        }
        match (k.as_str(), old, new) {
            ("rollout", Value::Object(o), Value::Object(n))
                if o.get("variant") == n.get("variant") =>
            {
                parts.push(format!(
                    "rollout {}% → {}%",
                    pct(o.get("percent").and_then(Value::as_f64)),
                    pct(n.get("percent").and_then(Value::as_f64))
                ))
            }
            (
                _,
                Value::Bool(_) | Value::Number(_) | Value::String(_) | Value::Null,
                Value::Bool(_) | Value::Number(_) | Value::String(_) | Value::Null,
            ) => parts.push(format!("{k} {old} → {new}")),
            _ => parts.push(format!("{k} changed")),
        }
    }
    if parts.is_empty() {
        "no change".into()
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn definition(json: serde_json::Value) -> Definition {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn history_lines_say_what_changed() {
        let before =
            definition(json!({"enabled": true, "rollout": {"variant": "on", "percent": 5.0}}));
        let rule =
            json!([{"when": [{"attribute": "a", "op": "equals", "value": 1}], "variant": "on"}]);
        let after = definition(
            json!({"enabled": true, "rollout": {"variant": "on", "percent": 25.0}, "rules": rule}),
        );
        assert_eq!(
            diff(Some(&before), Some(&after)),
            "rollout 5% → 25%; rules changed"
        );
        let off = definition(
            json!({"enabled": false, "rollout": {"variant": "on", "percent": 25.0}, "rules": rule}),
        );
        assert_eq!(diff(Some(&after), Some(&off)), "enabled true → false");
        assert_eq!(diff(None, Some(&off)), "created: disabled (25% → on)");
        assert_eq!(diff(Some(&off), None), "deleted; was disabled (25% → on)");
        assert_eq!(diff(Some(&off), Some(&off)), "no change");
    }

    #[test]
    fn names_cannot_leave_their_path_segment() {
        assert!(segment("canary_5_percent").is_ok());
        for bad in ["", ".", "..", "a/b", "a?b", "a b", "%2e"] {
            assert!(segment(bad).is_err(), "{bad}");
        }
    }
}
