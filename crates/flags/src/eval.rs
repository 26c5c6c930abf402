//! Evaluation: a validated [`Flag`] and an evaluation context in, a variant and a
//! reason out.
//!
//! Order: a disabled flag serves its off variant (DISABLED). Otherwise the first rule
//! whose conditions all hold serves its variant (TARGETING_MATCH). Otherwise the rollout
//! decides (SPLIT) when its percentage is strictly between 0 and 100; at 0% or 100%
//! nobody is split and the default or the rollout variant is served as is, like a flag
//! without a rollout: STATIC when the flag has no rules, DEFAULT when it has rules and
//! none matched.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::Value;

use crate::bucket::{BUCKETS, bucket};
use crate::doc::{FlagDoc, Op};

/// The evaluation context: a JSON object (OpenFeature's `targetingKey` and attributes).
pub type Context = serde_json::Map<String, Value>;

/// A flag ready to evaluate: validated, patterns compiled, variants indexed.
#[derive(Clone, Debug)]
pub struct Flag {
    pub(crate) key: String,
    pub(crate) salt: String,
    pub(crate) enabled: bool,
    /// Sorted by name.
    pub(crate) variants: Vec<(String, Value)>,
    pub(crate) default: usize,
    pub(crate) off: usize,
    pub(crate) rules: Vec<Rule>,
    pub(crate) rollout: Option<Rollout>,
    pub(crate) bucket_by: String,
    pub(crate) doc: FlagDoc,
}

#[derive(Clone, Debug)]
pub(crate) struct Rule {
    pub(crate) conditions: Vec<Condition>,
    pub(crate) variant: usize,
}

#[derive(Clone, Debug)]
pub(crate) struct Rollout {
    pub(crate) variant: usize,
    pub(crate) threshold: u32,
}

#[derive(Clone, Debug)]
pub(crate) struct Condition {
    pub(crate) attribute: String,
    pub(crate) test: Test,
}

#[derive(Clone, Debug)]
pub(crate) enum Test {
    Equals(Scalar),
    NotEquals(Scalar),
    In(Vec<Scalar>),
    NotIn(Vec<Scalar>),
    Matches(regex_lite::Regex),
    Number(Op, f64),
    Semver(Op, semver::Version),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Scalar {
    Str(String),
    Num(f64),
    Bool(bool),
}

/// Why a user got their variant: OpenFeature's standard reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Nothing about the user mattered: no rules, no split in effect.
    Static,
    /// A targeting rule matched.
    TargetingMatch,
    /// The percentage rollout put the user in or out.
    Split,
    /// The flag is disabled (kill switch).
    Disabled,
    /// The flag has rules, none matched, and no split was in effect.
    Default,
}

impl Reason {
    pub const ALL: [Reason; 5] = [
        Reason::Static,
        Reason::TargetingMatch,
        Reason::Split,
        Reason::Disabled,
        Reason::Default,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Static => "STATIC",
            Reason::TargetingMatch => "TARGETING_MATCH",
            Reason::Split => "SPLIT",
            Reason::Disabled => "DISABLED",
            Reason::Default => "DEFAULT",
        }
    }

    /// Position in [`Reason::ALL`], for counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The variant served (an index into [`Flag::variants`]) and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolution {
    pub variant: usize,
    pub reason: Reason,
}

/// An evaluation that could not decide; the caller serves its own default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvalError {
    /// The rollout needs the bucketing attribute (named here) and the context lacks it.
    TargetingKeyMissing(String),
    /// The context has the attribute, but not as a string or number.
    InvalidContext(String),
}

impl EvalError {
    /// The OpenFeature error code.
    pub fn code(&self) -> &'static str {
        match self {
            EvalError::TargetingKeyMissing(_) => "TARGETING_KEY_MISSING",
            EvalError::InvalidContext(_) => "INVALID_CONTEXT",
        }
    }
}

impl std::fmt::Display for EvalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvalError::TargetingKeyMissing(attr) => write!(
                f,
                "this flag's percentage rollout needs `{attr}` in the evaluation context"
            ),
            EvalError::InvalidContext(attr) => write!(
                f,
                "`{attr}` in the evaluation context must be a string or a number to bucket by"
            ),
        }
    }
}

impl Flag {
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn salt(&self) -> &str {
        &self.salt
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The normalized definition, every default written out.
    pub fn doc(&self) -> &FlagDoc {
        &self.doc
    }

    /// `(name, value)`, sorted by name; [`Resolution::variant`] indexes this.
    pub fn variants(&self) -> &[(String, Value)] {
        &self.variants
    }

    pub fn variant_name(&self, i: usize) -> &str {
        &self.variants[i].0
    }

    pub fn variant_value(&self, i: usize) -> &Value {
        &self.variants[i].1
    }

    /// The rollout's percentage, if the flag has a rollout.
    pub fn percent(&self) -> Option<f64> {
        self.doc.rollout.as_ref().map(|r| r.percent)
    }

    pub fn evaluate(&self, ctx: &Context) -> Result<Resolution, EvalError> {
        if !self.enabled {
            return Ok(Resolution {
                variant: self.off,
                reason: Reason::Disabled,
            });
        }
        if let Some(rule) = self
            .rules
            .iter()
            .find(|r| r.conditions.iter().all(|c| c.holds(ctx)))
        {
            return Ok(Resolution {
                variant: rule.variant,
                reason: Reason::TargetingMatch,
            });
        }
        let unsplit = if self.rules.is_empty() {
            Reason::Static
        } else {
            Reason::Default
        };
        let (variant, reason) = match &self.rollout {
            None => (self.default, unsplit),
            Some(r) if r.threshold == 0 => (self.default, unsplit),
            Some(r) if r.threshold >= BUCKETS => (r.variant, unsplit),
            Some(r) => {
                let key = self.bucketing_key(ctx)?;
                if bucket(&self.salt, &key) < r.threshold {
                    (r.variant, Reason::Split)
                } else {
                    (self.default, Reason::Split)
                }
            }
        };
        Ok(Resolution { variant, reason })
    }

    fn bucketing_key<'c>(&self, ctx: &'c Context) -> Result<Cow<'c, str>, EvalError> {
        match ctx.get(&self.bucket_by) {
            Some(Value::String(s)) if !s.is_empty() => Ok(Cow::Borrowed(s)),
            Some(Value::Number(n)) => Ok(Cow::Owned(n.to_string())),
            None | Some(Value::Null) | Some(Value::String(_)) => {
                Err(EvalError::TargetingKeyMissing(self.bucket_by.clone()))
            }
            Some(_) => Err(EvalError::InvalidContext(self.bucket_by.clone())),
        }
    }
}

impl Condition {
    /// A missing (or null) attribute satisfies no condition, `not_equals` and `not_in`
    /// included; so does a value of the wrong type (`lt` on a string).
    fn holds(&self, ctx: &Context) -> bool {
        let Some(v) = ctx.get(&self.attribute).filter(|v| !v.is_null()) else {
            return false;
        };
        match &self.test {
            Test::Equals(s) => s.matches(v),
            Test::NotEquals(s) => is_scalar(v) && !s.matches(v),
            Test::In(list) => list.iter().any(|s| s.matches(v)),
            Test::NotIn(list) => is_scalar(v) && !list.iter().any(|s| s.matches(v)),
            Test::Matches(re) => v.as_str().is_some_and(|s| re.is_match(s)),
            Test::Number(op, n) => v
                .as_f64()
                .and_then(|x| x.partial_cmp(n))
                .is_some_and(|ord| compares(*op, ord)),
            Test::Semver(op, want) => v
                .as_str()
                .and_then(parse_version)
                .is_some_and(|have| compares(*op, have.cmp(want))),
        }
    }
}

fn is_scalar(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

fn compares(op: Op, ord: Ordering) -> bool {
    match op {
        Op::Lt | Op::SemverLt => ord == Ordering::Less,
        Op::Lte | Op::SemverLte => ord != Ordering::Greater,
        Op::Gt | Op::SemverGt => ord == Ordering::Greater,
        Op::Gte | Op::SemverGte => ord != Ordering::Less,
        Op::SemverEq => ord == Ordering::Equal,
        _ => false,
    }
}

impl Scalar {
    fn matches(&self, v: &Value) -> bool {
        match (self, v) {
            (Scalar::Str(s), Value::String(x)) => s == x,
            (Scalar::Num(n), Value::Number(x)) => x.as_f64() == Some(*n),
            (Scalar::Bool(b), Value::Bool(x)) => b == x,
            _ => false,
        }
    }
}

/// A semantic version, with an optional leading `v`. Build metadata does not take part
/// in comparisons (SemVer 2.0.0 §10), so it is dropped.
pub(crate) fn parse_version(s: &str) -> Option<semver::Version> {
    let s = s.strip_prefix(['v', 'V']).unwrap_or(s);
    let mut v = semver::Version::parse(s).ok()?;
    v.build = semver::BuildMetadata::EMPTY;
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn flag(v: Value) -> Flag {
        serde_json::from_value::<FlagDoc>(v)
            .unwrap()
            .compile("f", "salt")
            .unwrap()
    }

    fn ctx(v: Value) -> Context {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn served(f: &Flag, c: Value) -> (String, &'static str) {
        let r = f.evaluate(&ctx(c)).unwrap();
        (f.variant_name(r.variant).to_string(), r.reason.as_str())
    }

    #[test]
    fn a_disabled_flag_serves_its_off_variant_whatever_the_rules_say() {
        let f = flag(json!({
            "enabled": false,
            "rules": [{"when": [{"attribute": "beta", "op": "equals", "value": true}], "variant": "on"}]
        }));
        assert_eq!(
            served(&f, json!({"beta": true})),
            ("off".into(), "DISABLED")
        );
    }

    #[test]
    fn reasons_say_what_decided() {
        let all = flag(json!({}));
        assert_eq!(served(&all, json!({})), ("on".into(), "STATIC"));
        let none = flag(json!({"rollout": {"percent": 0}}));
        assert_eq!(served(&none, json!({})), ("off".into(), "STATIC"));
        let split = flag(json!({"rollout": {"percent": 50}}));
        assert_eq!(served(&split, json!({"targetingKey": "u1"})).1, "SPLIT");
        let ruled = flag(json!({
            "rules": [{"when": [{"attribute": "country", "op": "in", "value": ["NL", "BE"]}], "variant": "off"}]
        }));
        assert_eq!(
            served(&ruled, json!({"country": "BE"})),
            ("off".into(), "TARGETING_MATCH")
        );
        assert_eq!(
            served(&ruled, json!({"country": "FR"})),
            ("on".into(), "DEFAULT")
        );
    }

    #[test]
    fn a_split_without_the_bucketing_key_is_an_error_but_0_and_100_percent_need_none() {
        let split = flag(json!({"rollout": {"percent": 50}}));
        for c in [
            json!({}),
            json!({"targetingKey": ""}),
            json!({"targetingKey": null}),
        ] {
            let err = split.evaluate(&ctx(c)).unwrap_err();
            assert_eq!(err.code(), "TARGETING_KEY_MISSING");
        }
        let err = split
            .evaluate(&ctx(json!({"targetingKey": {"id": 1}})))
            .unwrap_err();
        assert_eq!(err.code(), "INVALID_CONTEXT");
        assert!(
            flag(json!({"rollout": {"percent": 100}}))
                .evaluate(&Context::new())
                .is_ok()
        );
        assert!(
            flag(json!({"rollout": {"percent": 0}}))
                .evaluate(&Context::new())
                .is_ok()
        );
    }

    #[test]
    fn the_bucketing_attribute_is_configurable_and_numbers_bucket_by_their_json_text() {
        let f = flag(json!({"bucket_by": "userId", "rollout": {"percent": 50}}));
        let by_number = f.evaluate(&ctx(json!({"userId": 42}))).unwrap();
        let by_text = f.evaluate(&ctx(json!({"userId": "42"}))).unwrap();
        assert_eq!(by_number, by_text);
        let expected = if bucket("salt", "42") < 50_000 {
            "on"
        } else {
            "off"
        };
        assert_eq!(f.variant_name(by_number.variant), expected);
        assert!(f.evaluate(&ctx(json!({"targetingKey": "42"}))).is_err());
    }

    #[test]
    fn operators() {
        let cases = [
            (json!({"op": "equals", "value": "a"}), json!("a"), true),
            (json!({"op": "equals", "value": "a"}), json!("b"), false),
            (json!({"op": "equals", "value": 5}), json!(5.0), true),
            (json!({"op": "equals", "value": 5}), json!("5"), false),
            (json!({"op": "equals", "value": true}), json!(true), true),
            (json!({"op": "not_equals", "value": "a"}), json!("b"), true),
            (json!({"op": "not_equals", "value": "a"}), json!("a"), false),
            (
                json!({"op": "not_equals", "value": "a"}),
                json!(["b"]),
                false,
            ),
            (json!({"op": "in", "value": ["a", 1]}), json!(1), true),
            (json!({"op": "in", "value": ["a", 1]}), json!("c"), false),
            (json!({"op": "not_in", "value": ["a"]}), json!("c"), true),
            (json!({"op": "not_in", "value": ["a"]}), json!("a"), false),
            (
                json!({"op": "matches", "value": "@example\\.com$"}),
                json!("jo@example.com"),
                true,
            ),
            (
                json!({"op": "matches", "value": "@example\\.com$"}),
                json!("jo@example.org"),
                false,
            ),
            (json!({"op": "matches", "value": "x"}), json!(1), false),
            (json!({"op": "lt", "value": 10}), json!(9.5), true),
            (json!({"op": "lt", "value": 10}), json!(10), false),
            (json!({"op": "lte", "value": 10}), json!(10), true),
            (json!({"op": "gt", "value": 10}), json!(11), true),
            (json!({"op": "gte", "value": 10}), json!(9), false),
            (json!({"op": "gt", "value": 10}), json!("11"), false),
            (
                json!({"op": "semver_gte", "value": "2.1.0"}),
                json!("2.10.0"),
                true,
            ),
            (
                json!({"op": "semver_gte", "value": "2.1.0"}),
                json!("2.1.0-rc.1"),
                false,
            ),
            (
                json!({"op": "semver_lt", "value": "2.1.0"}),
                json!("v2.0.9"),
                true,
            ),
            (
                json!({"op": "semver_eq", "value": "2.1.0"}),
                json!("2.1.0+build.7"),
                true,
            ),
            (
                json!({"op": "semver_gt", "value": "1.0.0-alpha"}),
                json!("1.0.0-alpha.1"),
                true,
            ),
            (
                json!({"op": "semver_lte", "value": "2.1.0"}),
                json!("not a version"),
                false,
            ),
        ];
        for (cond, value, expected) in cases {
            let mut c = cond.clone();
            c["attribute"] = json!("a");
            let f = flag(json!({"rules": [{"when": [c], "variant": "off"}]}));
            let (_, reason) = served(&f, json!({"a": value}));
            assert_eq!(reason == "TARGETING_MATCH", expected, "{cond} on {value}");
            // A missing attribute satisfies nothing, negations included.
            assert_eq!(served(&f, json!({})).1, "DEFAULT", "{cond} on nothing");
        }
    }

    #[test]
    fn every_condition_of_a_rule_must_hold_and_the_first_matching_rule_wins() {
        let f = flag(json!({
            "type": "string",
            "variants": {"blue": "#00f", "red": "#f00", "grey": "#888"},
            "default_variant": "grey",
            "rules": [
                {"when": [
                    {"attribute": "country", "op": "equals", "value": "NL"},
                    {"attribute": "plan", "op": "equals", "value": "pro"}
                ], "variant": "blue"},
                {"when": [{"attribute": "country", "op": "equals", "value": "NL"}], "variant": "red"}
            ]
        }));
        assert_eq!(
            served(&f, json!({"country": "NL", "plan": "pro"})).0,
            "blue"
        );
        assert_eq!(
            served(&f, json!({"country": "NL", "plan": "free"})).0,
            "red"
        );
        assert_eq!(served(&f, json!({"country": "DE"})).0, "grey");
        let r = f.evaluate(&ctx(json!({"country": "NL"}))).unwrap();
        assert_eq!(f.variant_value(r.variant), &json!("#f00"));
    }
}
