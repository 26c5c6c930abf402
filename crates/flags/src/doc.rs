//! The flag definition as written: version 1 of the format the admin API takes and
//! returns, and the store keeps (with the audit log's before and after). Fields are only
//! ever added, with defaults; unknown fields are errors.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::TARGETING_KEY;
use crate::eval::{Condition, Flag, Rollout, Rule, Scalar, Test};

/// What an operator writes. [`FlagDoc::compile`] validates it into a [`Flag`];
/// [`Flag::doc`] gives it back normalized, every default written out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagDoc {
    /// The type of every variant's value.
    #[serde(rename = "type", default)]
    pub kind: FlagKind,
    /// The kill switch: `false` serves everyone `off_variant`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Variant name → value. Boolean flags default to `{"on": true, "off": false}`.
    #[serde(default)]
    pub variants: BTreeMap<String, Value>,
    /// Served when no rule matches and the user is outside the rollout (boolean: `off`).
    #[serde(default)]
    pub default_variant: Option<String>,
    /// Served to everyone while the flag is disabled (default: `default_variant`;
    /// boolean: `off`).
    #[serde(default)]
    pub off_variant: Option<String>,
    /// Checked in order; the first rule whose conditions all hold decides.
    #[serde(default)]
    pub rules: Vec<RuleDoc>,
    /// A sticky percentage rollout of one variant (boolean: `on` to 100% unless given).
    #[serde(default)]
    pub rollout: Option<RolloutDoc>,
    /// The context attribute a rollout hashes (default `targetingKey`).
    #[serde(default)]
    pub bucket_by: Option<String>,
    #[serde(default)]
    pub description: String,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagKind {
    #[default]
    Boolean,
    String,
    Number,
    /// A JSON object or array.
    Object,
}

impl FlagKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FlagKind::Boolean => "boolean",
            FlagKind::String => "string",
            FlagKind::Number => "number",
            FlagKind::Object => "object",
        }
    }

    fn admits(self, v: &Value) -> bool {
        match self {
            FlagKind::Boolean => v.is_boolean(),
            FlagKind::String => v.is_string(),
            FlagKind::Number => v.as_f64().is_some_and(f64::is_finite),
            FlagKind::Object => v.is_object() || v.is_array(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDoc {
    #[serde(default)]
    pub name: Option<String>,
    /// Every condition must hold.
    pub when: Vec<ConditionDoc>,
    pub variant: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionDoc {
    /// A top-level key of the evaluation context (`targetingKey`, `email`, ...).
    pub attribute: String,
    pub op: Op,
    /// A string, number or boolean; a list of them for `in` and `not_in`; a regular
    /// expression for `matches`; a version for the `semver_*` operators.
    pub value: Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Equals,
    NotEquals,
    In,
    NotIn,
    /// The regular expression matches somewhere in the string (anchor it with `^…$`).
    Matches,
    Lt,
    Lte,
    Gt,
    Gte,
    SemverEq,
    SemverLt,
    SemverLte,
    SemverGt,
    SemverGte,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Equals => "equals",
            Op::NotEquals => "not_equals",
            Op::In => "in",
            Op::NotIn => "not_in",
            Op::Matches => "matches",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::SemverEq => "semver_eq",
            Op::SemverLt => "semver_lt",
            Op::SemverLte => "semver_lte",
            Op::SemverGt => "semver_gt",
            Op::SemverGte => "semver_gte",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutDoc {
    /// The variant rolled out (boolean: `on`).
    #[serde(default)]
    pub variant: Option<String>,
    /// Share of users served `variant`, 0–100, in steps of 0.001.
    pub percent: f64,
}

/// One problem with a definition; `path` says where (`rules[0].when[1].value`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// A change a launch or an operator makes without rewriting the definition.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Change {
    /// The kill switch.
    Enabled(bool),
    /// Serve the rollout variant to this share of users. Also turns the flag on: a
    /// percentage is a request to serve that share.
    Percent(f64),
}

const MAX_VARIANTS: usize = 100;
const MAX_RULES: usize = 100;
const MAX_CONDITIONS: usize = 20;
const MAX_LIST: usize = 1000;
const MAX_VALUE_BYTES: usize = 64 * 1024;
const MAX_PATTERN: usize = 1000;
const MAX_DESCRIPTION: usize = 1000;

impl FlagDoc {
    /// A boolean flag, off: what a change to a flag that does not exist starts from.
    pub fn boolean_off() -> FlagDoc {
        FlagDoc {
            kind: FlagKind::Boolean,
            enabled: false,
            variants: BTreeMap::new(),
            default_variant: None,
            off_variant: None,
            rules: Vec::new(),
            rollout: None,
            bucket_by: None,
            description: String::new(),
        }
    }

    /// Apply a change; the result still has to compile. A percentage needs a rollout
    /// (boolean flags always have one).
    pub fn apply(&mut self, change: Change) -> Result<(), Problem> {
        match change {
            Change::Enabled(on) => self.enabled = on,
            Change::Percent(percent) => {
                check_percent(percent).map_err(|message| Problem {
                    path: "percentage".into(),
                    message,
                })?;
                match (&mut self.rollout, self.kind) {
                    (Some(r), _) => r.percent = percent,
                    (None, FlagKind::Boolean) => {
                        self.rollout = Some(RolloutDoc {
                            variant: None,
                            percent,
                        })
                    }
                    (None, kind) => {
                        return Err(Problem {
                            path: "percentage".into(),
                            message: format!(
                                "this {} flag has no rollout; give it one in its definition \
                                 (`rollout: {{variant, percent}}`) to ramp it",
                                kind.as_str()
                            ),
                        });
                    }
                }
                self.enabled = true;
            }
        }
        Ok(())
    }

    /// Validate into an evaluable flag, collecting every problem. `salt` is the flag's
    /// persisted bucketing salt.
    pub fn compile(&self, key: &str, salt: &str) -> Result<Flag, Vec<Problem>> {
        let mut p = Problems::default();
        if let Err(m) = crate::check_key(key) {
            p.push("key", m);
        }
        let boolean = self.kind == FlagKind::Boolean;

        let mut variants: BTreeMap<String, Value> = self.variants.clone();
        if boolean && variants.is_empty() {
            variants.insert("off".into(), Value::Bool(false));
            variants.insert("on".into(), Value::Bool(true));
        }
        if variants.is_empty() {
            p.push(
                "variants",
                format!("a {} flag needs at least one variant", self.kind.as_str()),
            );
        }
        if variants.len() > MAX_VARIANTS {
            p.push("variants", format!("at most {MAX_VARIANTS} variants"));
        }
        for (name, value) in &variants {
            let path = format!("variants.{name}");
            if let Err(m) = crate::check_name("variant name", name, 64) {
                p.push(&path, m);
            }
            if !self.kind.admits(value) {
                p.push(
                    &path,
                    format!("{} is not a {} value", describe(value), self.kind.as_str()),
                );
            } else if serde_json::to_string(value).map_or(0, |s| s.len()) > MAX_VALUE_BYTES {
                p.push(
                    &path,
                    format!("a value may take at most {MAX_VALUE_BYTES} bytes"),
                );
            }
        }
        let names: Vec<String> = variants.keys().cloned().collect();
        let index = |name: &str| names.iter().position(|n| n == name);
        let resolve = |path: &str, name: &str, p: &mut Problems| -> usize {
            index(name).unwrap_or_else(|| {
                p.push(
                    path,
                    format!(
                        "no variant named `{}` (variants: {})",
                        crate::shorten(name),
                        names.join(", ")
                    ),
                );
                0
            })
        };

        let default_name = match (&self.default_variant, boolean) {
            (Some(d), _) => d.clone(),
            (None, true) => "off".into(),
            (None, false) => {
                p.push("default_variant", "required for a non-boolean flag");
                names.first().cloned().unwrap_or_default()
            }
        };
        let default = resolve("default_variant", &default_name, &mut p);
        let off_name = match (&self.off_variant, boolean) {
            (Some(o), _) => o.clone(),
            (None, true) => "off".into(),
            (None, false) => default_name.clone(),
        };
        let off = resolve("off_variant", &off_name, &mut p);

        if self.rules.len() > MAX_RULES {
            p.push("rules", format!("at most {MAX_RULES} rules"));
        }
        let mut rules = Vec::with_capacity(self.rules.len());
        for (i, r) in self.rules.iter().enumerate() {
            let path = format!("rules[{i}]");
            if r.when.is_empty() {
                p.push(&path, "a rule needs at least one condition in `when`");
            }
            if r.when.len() > MAX_CONDITIONS {
                p.push(
                    &path,
                    format!("at most {MAX_CONDITIONS} conditions per rule"),
                );
            }
            let conditions = r
                .when
                .iter()
                .enumerate()
                .filter_map(|(j, c)| compile_condition(c, &format!("{path}.when[{j}]"), &mut p))
                .collect();
            let variant = resolve(&format!("{path}.variant"), &r.variant, &mut p);
            rules.push(Rule {
                conditions,
                variant,
            });
        }

        let rollout_doc = match (&self.rollout, boolean) {
            (Some(r), _) => Some(r.clone()),
            (None, true) => Some(RolloutDoc {
                variant: None,
                percent: 100.0,
            }),
            (None, false) => None,
        };
        let rollout = rollout_doc.as_ref().map(|r| {
            let name = match (&r.variant, boolean) {
                (Some(v), _) => v.clone(),
                (None, true) => "on".into(),
                (None, false) => {
                    p.push("rollout.variant", "required for a non-boolean flag");
                    String::new()
                }
            };
            let variant = if name.is_empty() {
                0
            } else {
                resolve("rollout.variant", &name, &mut p)
            };
            if let Err(m) = check_percent(r.percent) {
                p.push("rollout.percent", m);
            }
            Rollout {
                variant,
                threshold: crate::threshold(r.percent),
            }
        });

        let bucket_by = self
            .bucket_by
            .clone()
            .unwrap_or_else(|| TARGETING_KEY.to_string());
        if let Err(m) = check_attribute(&bucket_by) {
            p.push("bucket_by", m);
        }
        if self.description.chars().count() > MAX_DESCRIPTION {
            p.push(
                "description",
                format!("at most {MAX_DESCRIPTION} characters"),
            );
        }
        if !p.0.is_empty() {
            return Err(p.0);
        }

        let normalized = FlagDoc {
            kind: self.kind,
            enabled: self.enabled,
            variants: variants.clone(),
            default_variant: Some(default_name),
            off_variant: Some(off_name),
            rules: self.rules.clone(),
            rollout: rollout_doc.map(|r| RolloutDoc {
                variant: Some(
                    rollout
                        .as_ref()
                        .map(|ro| names[ro.variant].clone())
                        .unwrap_or_default(),
                ),
                percent: r.percent,
            }),
            bucket_by: Some(bucket_by.clone()),
            description: self.description.clone(),
        };
        Ok(Flag {
            key: key.to_string(),
            salt: salt.to_string(),
            enabled: self.enabled,
            variants: variants.into_iter().collect(),
            default,
            off,
            rules,
            rollout,
            bucket_by,
            doc: normalized,
        })
    }
}

fn check_percent(percent: f64) -> Result<(), String> {
    if percent.is_finite() && (0.0..=100.0).contains(&percent) {
        Ok(())
    } else {
        Err(format!("{percent} is not a percentage between 0 and 100"))
    }
}

fn check_attribute(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 256 {
        Err("an attribute name must be 1 to 256 bytes long".into())
    } else {
        Ok(())
    }
}

fn compile_condition(c: &ConditionDoc, path: &str, p: &mut Problems) -> Option<Condition> {
    if let Err(m) = check_attribute(&c.attribute) {
        p.push(&format!("{path}.attribute"), m);
    }
    let vpath = format!("{path}.value");
    let test = match c.op {
        Op::Equals | Op::NotEquals => {
            let s = scalar(&c.value, &vpath, p)?;
            if c.op == Op::Equals {
                Test::Equals(s)
            } else {
                Test::NotEquals(s)
            }
        }
        Op::In | Op::NotIn => {
            let Some(items) = c.value.as_array() else {
                p.push(
                    &vpath,
                    format!("`{}` takes a list of values", c.op.as_str()),
                );
                return None;
            };
            if items.len() > MAX_LIST {
                p.push(&vpath, format!("at most {MAX_LIST} values"));
            }
            let list: Vec<Scalar> = items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| scalar(v, &format!("{vpath}[{i}]"), p))
                .collect();
            if c.op == Op::In {
                Test::In(list)
            } else {
                Test::NotIn(list)
            }
        }
        Op::Matches => {
            let Some(pattern) = c.value.as_str() else {
                p.push(&vpath, "`matches` takes a regular expression (a string)");
                return None;
            };
            if pattern.len() > MAX_PATTERN {
                p.push(
                    &vpath,
                    format!("a pattern may take at most {MAX_PATTERN} bytes"),
                );
                return None;
            }
            match regex_lite::RegexBuilder::new(pattern)
                .size_limit(1 << 20)
                .build()
            {
                Ok(re) => Test::Matches(re),
                Err(e) => {
                    p.push(&vpath, format!("not a valid regular expression: {e}"));
                    return None;
                }
            }
        }
        Op::Lt | Op::Lte | Op::Gt | Op::Gte => {
            let Some(n) = c.value.as_f64().filter(|n| n.is_finite()) else {
                p.push(&vpath, format!("{} is not a number", describe(&c.value)));
                return None;
            };
            Test::Number(c.op, n)
        }
        Op::SemverEq | Op::SemverLt | Op::SemverLte | Op::SemverGt | Op::SemverGte => {
            let parsed = c.value.as_str().and_then(crate::eval::parse_version);
            let Some(v) = parsed else {
                p.push(
                    &vpath,
                    format!(
                        "{} is not a semantic version (like \"2.1.0\")",
                        describe(&c.value)
                    ),
                );
                return None;
            };
            Test::Semver(c.op, v)
        }
    };
    Some(Condition {
        attribute: c.attribute.clone(),
        test,
    })
}

fn scalar(v: &Value, path: &str, p: &mut Problems) -> Option<Scalar> {
    match v {
        Value::String(s) => Some(Scalar::Str(s.clone())),
        Value::Bool(b) => Some(Scalar::Bool(*b)),
        Value::Number(n) => n.as_f64().map(Scalar::Num),
        other => {
            p.push(
                path,
                format!("{} is not a string, number or boolean", describe(other)),
            );
            None
        }
    }
}

fn describe(v: &Value) -> String {
    let text = v.to_string();
    let kind = match v {
        Value::Null => return "null".into(),
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    };
    format!("{kind} {}", crate::shorten(&text))
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn push(&mut self, path: &str, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.to_string(),
            message: message.into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(v: Value) -> FlagDoc {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_boolean_flag_is_normalized_with_every_default_written_out() {
        let flag = doc(json!({})).compile("f", "salt").unwrap();
        let written = serde_json::to_value(flag.doc()).unwrap();
        assert_eq!(
            written,
            json!({
                "type": "boolean", "enabled": true,
                "variants": {"off": false, "on": true},
                "default_variant": "off", "off_variant": "off",
                "rules": [], "rollout": {"variant": "on", "percent": 100.0},
                "bucket_by": "targetingKey", "description": ""
            })
        );
        // Normalizing is idempotent.
        let again: FlagDoc = serde_json::from_value(written).unwrap();
        assert_eq!(again.compile("f", "salt").unwrap().doc(), flag.doc());
    }

    #[test]
    fn every_problem_is_reported_with_its_place() {
        let err = doc(json!({
            "type": "string",
            "variants": {"a": "x", "b": 3, "bad name": "y"},
            "rules": [
                {"when": [], "variant": "zz"},
                {"when": [
                    {"attribute": "v", "op": "semver_gt", "value": "one"},
                    {"attribute": "e", "op": "matches", "value": "(("},
                    {"attribute": "n", "op": "lt", "value": "3"},
                    {"attribute": "c", "op": "in", "value": "NL"}
                ], "variant": "a"}
            ],
            "rollout": {"percent": 120}
        }))
        .compile("f", "s")
        .unwrap_err();
        let text: Vec<String> = err.iter().map(|p| p.to_string()).collect();
        let expect = [
            "variants.b: number 3 is not a string value",
            "variants.bad name: variant name `bad name`",
            "default_variant: required for a non-boolean flag",
            "rules[0]: a rule needs at least one condition",
            "rules[0].variant: no variant named `zz`",
            "rules[1].when[0].value: string \"one\" is not a semantic version",
            "rules[1].when[1].value: not a valid regular expression",
            "rules[1].when[2].value: string \"3\" is not a number",
            "rules[1].when[3].value: `in` takes a list of values",
            "rollout.variant: required for a non-boolean flag",
            "rollout.percent: 120 is not a percentage",
        ];
        for e in expect {
            assert!(
                text.iter().any(|t| t.starts_with(e)),
                "missing {e:?} in {text:#?}"
            );
        }
    }

    #[test]
    fn unknown_fields_are_errors() {
        let err = serde_json::from_value::<FlagDoc>(json!({"enabeld": true})).unwrap_err();
        assert!(err.to_string().contains("unknown field `enabeld`"), "{err}");
    }

    #[test]
    fn a_percentage_turns_the_flag_on_and_needs_a_rollout() {
        let mut d = FlagDoc::boolean_off();
        d.apply(Change::Percent(5.0)).unwrap();
        assert!(d.enabled);
        assert_eq!(d.rollout.as_ref().unwrap().percent, 5.0);
        d.apply(Change::Enabled(false)).unwrap();
        assert!(!d.enabled);
        assert!(d.apply(Change::Percent(101.0)).is_err());
        assert!(d.apply(Change::Percent(f64::NAN)).is_err());

        let mut s = doc(json!({"type": "string", "variants": {"a": "x"}, "default_variant": "a"}));
        let err = s.apply(Change::Percent(5.0)).unwrap_err();
        assert!(err.message.contains("has no rollout"), "{err}");
    }
}
