//! Bodies of the flags API (`/api/v1/flags`, `/api/v1/flag-keys`, and the admin API's
//! replies): one set of types for the daemon that writes them and the CLI that reads
//! them. A flag's definition is `liftoff_flags::FlagDoc`, the format of docs/flags.md.
//! OFREP's bodies are not here: that wire format is the OpenFeature standard's.

use serde::{Deserialize, Serialize};

pub use liftoff_flags::{ConditionDoc, FlagDoc, FlagKind, Op, RolloutDoc, RuleDoc};

/// A flag as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagView {
    pub key: String,
    pub salt: String,
    pub created_at: String,
    pub updated_at: String,
    pub definition: Definition,
}

/// A stored definition, in the format's field order; as text if it no longer parses.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Definition {
    Doc(Box<FlagDoc>),
    Unreadable(String),
}

impl Definition {
    /// A stored definition's text, read as a `FlagDoc` when it still parses.
    pub fn parse(text: &str) -> Self {
        serde_json::from_str(text)
            .map(|d| Definition::Doc(Box::new(d)))
            .unwrap_or_else(|_| Definition::Unreadable(text.to_string()))
    }

    pub fn doc(&self) -> Option<&FlagDoc> {
        match self {
            Definition::Doc(d) => Some(d),
            Definition::Unreadable(_) => None,
        }
    }
}

/// One audited change of a flag (`GET /api/v1/flags/{key}/history`), newest first.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditView {
    pub id: i64,
    pub flag: String,
    pub at: String,
    pub actor: String,
    pub cause: String,
    pub action: String,
    pub before: Option<Definition>,
    pub after: Option<Definition>,
}

/// An evaluation key, without the key itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyView {
    pub name: String,
    pub prefix: String,
    pub rate_limit: Option<u32>,
    pub created_at: String,
    pub created_by: String,
}

/// Reply to creating an evaluation key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreatedKey {
    /// The key itself: shown once, stored only as a hash.
    pub key: String,
    #[serde(flatten)]
    pub info: KeyView,
}

/// `POST /api/v1/flags/{key}`: create or change a flag. A flag that does not exist is
/// created as a boolean flag, off, before the change applies.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagChangeRequest {
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<FlagDoc>,
}

/// `POST /api/v1/flags/{key}/delete` and `POST /api/v1/flag-keys/{name}/revoke`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagActorRequest {
    pub by: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /api/v1/flag-keys` (and the admin API's `POST /api/admin/flag-keys`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKeyRequest {
    pub name: String,
    #[serde(default = "admin_actor")]
    pub by: String,
    /// Evaluations per second; none: unlimited.
    #[serde(default)]
    pub rate_limit: Option<u32>,
}

/// Who a change is recorded as when the admin API's caller does not say.
pub fn admin_actor() -> String {
    "admin token".into()
}

/// Reply to `POST /api/v1/flags/{key}/delete`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Deleted {
    pub deleted: String,
}

/// Reply to `POST /api/v1/flag-keys/{name}/revoke`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Revoked {
    pub revoked: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// A body `GET /api/v1/flags/{key}/history` returned (recorded from a daemon): the
    /// types read all of it and write back the same JSON, an unreadable stored
    /// definition included.
    #[test]
    fn a_recorded_history_body_round_trips() {
        let recorded = json!([{
            "id": 2, "flag": "new_checkout", "at": "2026-12-06T06:57:00Z",
            "actor": "dave", "cause": "checkout errors", "action": "update",
            "before": {"type": "boolean", "enabled": true,
                       "variants": {"off": false, "on": true},
                       "default_variant": "off", "off_variant": "off", "rules": [],
                       "rollout": {"variant": "on", "percent": 25.0},
                       "bucket_by": null, "description": ""},
            "after": "{not json any more"
        }]);
        let typed: Vec<AuditView> = serde_json::from_value(recorded.clone()).unwrap();
        assert!(typed[0].before.as_ref().and_then(Definition::doc).is_some());
        assert!(matches!(typed[0].after, Some(Definition::Unreadable(_))));
        assert_eq!(serde_json::to_value(&typed).unwrap(), recorded);
        let key: Value = json!({"key": "lfe_x", "name": "web", "prefix": "lfe_ab12cd",
            "rate_limit": null, "created_at": "2026-12-06T06:57:00Z", "created_by": "carol"});
        let typed: CreatedKey = serde_json::from_value(key.clone()).unwrap();
        assert_eq!(serde_json::to_value(&typed).unwrap(), key);
    }
}
