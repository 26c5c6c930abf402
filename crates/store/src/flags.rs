//! Feature flags, their audit log, and the read-only keys that evaluate them.
//!
//! - A flag's definition is opaque JSON here (the flag crate's `FlagDoc`), like journal
//!   records: this crate does not know the flag model.
//! - A flag's salt is written when the flag is created and never by an update, so a
//!   user keeps their bucket for the flag's whole life (a deleted and re-created flag is
//!   a new flag, with a new salt).
//! - Every change is one transaction with its audit record: a change exists exactly when
//!   its record does.
//! - Evaluation keys are stored as SHA-256 hashes only, like `api_tokens`.

use rusqlite::{Connection, OptionalExtension, params};

use crate::{Result, Store};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagRow {
    pub key: String,
    /// The bucketing salt, fixed at creation.
    pub salt: String,
    /// The definition as JSON.
    pub definition: String,
    pub created_at: String,
    pub updated_at: String,
}

/// Who changes a flag, when, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagAudit {
    pub actor: String,
    pub cause: String,
    /// RFC 3339, UTC.
    pub at: String,
}

/// One change of one flag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagAuditRow {
    pub id: i64,
    pub flag: String,
    pub at: String,
    pub actor: String,
    pub cause: String,
    /// `create`, `update` or `delete`.
    pub action: String,
    /// The definition before (none for `create`) and after (none for `delete`).
    pub before: Option<String>,
    pub after: Option<String>,
}

/// A read-only evaluation key, as stored: its hash, never the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagKeyRow {
    pub name: String,
    pub sha256: String,
    /// The key's first characters, for people to tell keys apart.
    pub prefix: String,
    /// Evaluations per second this key may make; none: unlimited.
    pub rate_limit: Option<u32>,
    pub created_at: String,
    pub created_by: String,
}

impl Store {
    /// Every flag, by key.
    pub fn flags(&self) -> Result<Vec<FlagRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT key, salt, definition, created_at, updated_at FROM flags ORDER BY key",
        )?;
        let rows = stmt.query_map([], flag_row)?;
        rows.collect::<Result<_, _>>().map_err(Into::into)
    }

    pub fn flag(&self, key: &str) -> Result<Option<FlagRow>> {
        self.conn()
            .query_row(
                "SELECT key, salt, definition, created_at, updated_at FROM flags WHERE key = ?1",
                [key],
                flag_row,
            )
            .optional()
            .map_err(Into::into)
    }

    /// Create or update a flag, with its audit record, in one transaction. `salt` is
    /// used only when the flag is created; an update keeps the stored salt.
    pub fn save_flag(
        &self,
        key: &str,
        salt: &str,
        definition: &str,
        audit: &FlagAudit,
    ) -> Result<FlagRow> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let before: Option<String> = tx
            .query_row("SELECT definition FROM flags WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?;
        tx.execute(
            "INSERT INTO flags (key, salt, definition, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?4)
             ON CONFLICT(key) DO UPDATE SET definition = excluded.definition,
                 updated_at = excluded.updated_at",
            params![key, salt, definition, audit.at],
        )?;
        let action = if before.is_some() { "update" } else { "create" };
        insert_audit(&tx, key, audit, action, before.as_deref(), Some(definition))?;
        let row = tx.query_row(
            "SELECT key, salt, definition, created_at, updated_at FROM flags WHERE key = ?1",
            [key],
            flag_row,
        )?;
        tx.commit()?;
        Ok(row)
    }

    /// Delete a flag, with its audit record. `false`: there was no such flag.
    pub fn delete_flag(&self, key: &str, audit: &FlagAudit) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let before: Option<String> = tx
            .query_row("SELECT definition FROM flags WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?;
        let Some(before) = before else {
            return Ok(false);
        };
        tx.execute("DELETE FROM flags WHERE key = ?1", [key])?;
        insert_audit(&tx, key, audit, "delete", Some(&before), None)?;
        tx.commit()?;
        Ok(true)
    }

    /// The audit log, newest first: of one flag, or of all.
    pub fn flag_history(&self, key: Option<&str>, limit: usize) -> Result<Vec<FlagAuditRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, flag, at, actor, cause, action, before, after FROM flag_audit
             WHERE ?1 IS NULL OR flag = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![key, limit as i64], |r| {
            Ok(FlagAuditRow {
                id: r.get(0)?,
                flag: r.get(1)?,
                at: r.get(2)?,
                actor: r.get(3)?,
                cause: r.get(4)?,
                action: r.get(5)?,
                before: r.get(6)?,
                after: r.get(7)?,
            })
        })?;
        rows.collect::<Result<_, _>>().map_err(Into::into)
    }

    /// Store a new evaluation key. `false`: a key with that name exists.
    pub fn create_flag_key(&self, key: &FlagKeyRow) -> Result<bool> {
        let inserted = self.conn().execute(
            "INSERT INTO flag_keys (name, sha256, prefix, rate_limit, created_at, created_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(name) DO NOTHING",
            params![
                key.name,
                key.sha256,
                key.prefix,
                key.rate_limit,
                key.created_at,
                key.created_by
            ],
        )?;
        Ok(inserted == 1)
    }

    pub fn flag_keys(&self) -> Result<Vec<FlagKeyRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT name, sha256, prefix, rate_limit, created_at, created_by FROM flag_keys
             ORDER BY name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(FlagKeyRow {
                name: r.get(0)?,
                sha256: r.get(1)?,
                prefix: r.get(2)?,
                rate_limit: r.get(3)?,
                created_at: r.get(4)?,
                created_by: r.get(5)?,
            })
        })?;
        rows.collect::<Result<_, _>>().map_err(Into::into)
    }

    /// Revoke an evaluation key. `false`: there was no such key.
    pub fn delete_flag_key(&self, name: &str) -> Result<bool> {
        Ok(self
            .conn()
            .execute("DELETE FROM flag_keys WHERE name = ?1", [name])?
            == 1)
    }
}

fn insert_audit(
    conn: &Connection,
    key: &str,
    audit: &FlagAudit,
    action: &str,
    before: Option<&str>,
    after: Option<&str>,
) -> Result<()> {
    conn.execute(
        "INSERT INTO flag_audit (flag, at, actor, cause, action, before, after)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            key,
            audit.at,
            audit.actor,
            audit.cause,
            action,
            before,
            after
        ],
    )?;
    Ok(())
}

fn flag_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FlagRow> {
    Ok(FlagRow {
        key: r.get(0)?,
        salt: r.get(1)?,
        definition: r.get(2)?,
        created_at: r.get(3)?,
        updated_at: r.get(4)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audit(actor: &str, at: &str) -> FlagAudit {
        FlagAudit {
            actor: actor.into(),
            cause: "test".into(),
            at: at.into(),
        }
    }

    #[test]
    fn a_flag_keeps_its_salt_and_every_change_is_audited_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        {
            let store = Store::open(&path).unwrap();
            let row = store
                .save_flag("f", "salt-1", r#"{"enabled":false}"#, &audit("alice", "t1"))
                .unwrap();
            assert_eq!(
                (row.salt.as_str(), row.created_at.as_str()),
                ("salt-1", "t1")
            );
            let row = store
                .save_flag(
                    "f",
                    "salt-2",
                    r#"{"enabled":true}"#,
                    &audit("launch 7", "t2"),
                )
                .unwrap();
            assert_eq!(row.salt, "salt-1", "an update never changes the salt");
            assert_eq!(
                (row.created_at.as_str(), row.updated_at.as_str()),
                ("t1", "t2")
            );
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.flags().unwrap().len(), 1);
        assert!(store.delete_flag("f", &audit("bob", "t3")).unwrap());
        assert!(!store.delete_flag("f", &audit("bob", "t4")).unwrap());
        assert!(store.flag("f").unwrap().is_none());
        let history = store.flag_history(Some("f"), 10).unwrap();
        let summary: Vec<_> = history
            .iter()
            .map(|h| {
                (
                    h.actor.as_str(),
                    h.action.as_str(),
                    h.before.as_deref(),
                    h.after.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("bob", "delete", Some(r#"{"enabled":true}"#), None),
                (
                    "launch 7",
                    "update",
                    Some(r#"{"enabled":false}"#),
                    Some(r#"{"enabled":true}"#)
                ),
                ("alice", "create", None, Some(r#"{"enabled":false}"#)),
            ]
        );
        assert_eq!(store.flag_history(None, 2).unwrap().len(), 2);
        assert!(store.flag_history(Some("other"), 10).unwrap().is_empty());
        // Re-created: a new flag with the salt it is given.
        let row = store
            .save_flag("f", "salt-3", "{}", &audit("carol", "t5"))
            .unwrap();
        assert_eq!(row.salt, "salt-3");
    }

    #[test]
    fn evaluation_keys_are_unique_by_name_and_hash_and_can_be_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        let key = FlagKeyRow {
            name: "web".into(),
            sha256: "ab".repeat(32),
            prefix: "lfe_1234".into(),
            rate_limit: Some(100),
            created_at: "t".into(),
            created_by: "alice".into(),
        };
        assert!(store.create_flag_key(&key).unwrap());
        assert!(!store.create_flag_key(&key).unwrap());
        let other = FlagKeyRow {
            name: "mobile".into(),
            ..key.clone()
        };
        assert!(store.create_flag_key(&other).is_err(), "same hash twice");
        assert_eq!(store.flag_keys().unwrap(), [key]);
        assert!(store.delete_flag_key("web").unwrap());
        assert!(!store.delete_flag_key("web").unwrap());
        assert!(store.flag_keys().unwrap().is_empty());
    }
}
