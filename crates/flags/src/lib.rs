//! Feature flags: the model, targeting rules, sticky percentage bucketing and
//! evaluation.
//!
//! Invariants:
//! - Pure. No I/O, no tokio, no clock, no randomness: a flag's salt is handed in (the
//!   daemon draws it once, when the flag is created, and stores it), so the same flag
//!   and context always give the same answer, on any machine.
//! - Sticky rollouts. A user is in a rollout iff
//!   `xxh3_64(salt ":" bucketing key) mod 100000 < round(percent × 1000)`
//!   ([`bucket`], [`threshold`]); the bucket never changes, so raising the percentage
//!   never takes a user off the rolled-out variant.
//! - [`FlagDoc`] is the only serialized shape (the admin API's body, the store's column,
//!   the audit log's before/after). It is validated into a [`Flag`], collecting every
//!   problem, and a [`Flag`] gives back its normalized [`FlagDoc`] with every default
//!   written out.

mod bucket;
mod doc;
mod eval;

pub use bucket::{BUCKETS, bucket, threshold};
pub use doc::{Change, ConditionDoc, FlagDoc, FlagKind, Op, Problem, RolloutDoc, RuleDoc};
pub use eval::{Context, EvalError, Flag, Reason, Resolution};

/// The attribute percentage rollouts hash unless a flag says otherwise.
pub const TARGETING_KEY: &str = "targetingKey";

/// Checks a flag key: 1 to 128 characters out of `A-Z a-z 0-9 _ . -`.
pub fn check_key(key: &str) -> Result<(), String> {
    check_name("flag key", key, 128)
}

fn check_name(what: &str, name: &str, max: usize) -> Result<(), String> {
    if name.is_empty() || name.len() > max {
        return Err(format!(
            "{what} `{}` must be 1 to {max} characters long",
            shorten(name)
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "{what} `{}` has `{c}`; use only letters, digits, `_`, `.` and `-`",
            shorten(name)
        ));
    }
    Ok(())
}

/// For error messages: at most 64 characters of what the user sent.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        assert!(check_key("canary_5_percent").is_ok());
        assert!(check_key("a.b-c_D9").is_ok());
        assert!(check_key(&"x".repeat(128)).is_ok());
        assert!(check_key(&"x".repeat(129)).is_err());
        assert!(check_key("").is_err());
        let err = check_key("new checkout").unwrap_err();
        assert!(err.contains("` `"), "{err}");
        assert!(check_key("é").is_err());
        assert!(check_key("a/b").is_err());
    }
}
