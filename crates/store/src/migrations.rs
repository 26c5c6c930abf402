//! The schema's history: ordered migrations, and `PRAGMA user_version` the number of the
//! last one applied.
//!
//! A state database outlives the binary that wrote it, so the schema only moves forward,
//! one numbered step at a time. Design notes and invariants:
//! - Version 0 is every database written before versions were counted, from the first
//!   release (`launches`, `journal`, `launch_variables`, `api_tokens`) to the last one
//!   before chained checksums (which had added `routes`, follow-ups, status messages
//!   and flags). Migration 1 therefore creates what is missing and adds the columns
//!   that are, whichever of those it finds; on a new, empty file it creates the schema.
//! - Each migration runs in one `IMMEDIATE` transaction that also sets `user_version`:
//!   a crash leaves the file at the version before the step or after it, never between.
//!   The version is read again inside that transaction, so two processes opening one
//!   file apply each step once.
//! - A released migration is never edited: a change to the schema is a new step at the
//!   end of [`MIGRATIONS`]. A step that rewrites data (migration 1's `journal_last`)
//!   would hide damage if it ran again, which the version forbids.
//! - A file at a version above the last known one is refused untouched
//!   ([`StoreError::NewerSchema`]): an older binary must not write what it cannot read.
//! - Tests: `tests/migrations.rs` opens a state database written by the first release
//!   (`tests/fixtures/first-release/`); `crates/cli/tests/upgrade.rs` lets today's
//!   daemon carry on its launches.

use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::{Result, StoreError};

/// One step of the schema.
pub(crate) struct Migration {
    /// The `user_version` the file has once the step is applied.
    pub version: i64,
    /// What it changes, for the log.
    pub name: &'static str,
    pub apply: fn(&Transaction<'_>) -> Result<()>,
}

/// Every step, in order; `version` counts from 1 without gaps.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "every table of the first versioned release; journal checksums chained",
        apply: chained_journal,
    },
    Migration {
        version: 2,
        name: "the notification outbox",
        apply: notice_outbox,
    },
];

/// The version a file has once every migration is applied.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// What opening a file did to its schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Migrated {
    pub from: i64,
    pub to: i64,
}

/// Bring the file at `conn` to [`SCHEMA_VERSION`]. `None` when it was there already.
pub(crate) fn migrate(conn: &mut Connection) -> Result<Option<Migrated>> {
    let from = user_version(conn)?;
    if from > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema { found: from });
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > from) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Another process may have applied it since the first read.
        let now = user_version(&tx)?;
        if now > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema { found: now });
        }
        if now >= m.version {
            continue;
        }
        let applied = (m.apply)(&tx)
            .and_then(|()| Ok(tx.pragma_update(None, "user_version", m.version)?))
            .and_then(|()| Ok(tx.commit()?));
        applied.map_err(|e| StoreError::Migration {
            version: m.version,
            name: m.name,
            source: Box::new(e),
        })?;
    }
    Ok((from < SCHEMA_VERSION).then_some(Migrated {
        from,
        to: SCHEMA_VERSION,
    }))
}

fn user_version(conn: &Connection) -> Result<i64> {
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
}

fn has_column(tx: &Transaction<'_>, table: &str, column: &str) -> Result<bool> {
    let mut stmt = tx.prepare(&format!("PRAGMA table_info({table})"))?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(1))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(names.iter().any(|n| n == column))
}

fn add_column(tx: &Transaction<'_>, table: &str, column: &str, definition: &str) -> Result<()> {
    if !has_column(tx, table, column)? {
        tx.execute_batch(&format!(
            "ALTER TABLE {table} ADD COLUMN {column} {definition}"
        ))?;
    }
    Ok(())
}

/// Migration 1. The tables as they stood at version 1; on a version-0 file, the columns
/// its release lacked. Records already journaled keep their unchained checksums (read
/// the old way); the registry learns where each journal ends now, so a record lost
/// from its tail later shows.
fn chained_journal(tx: &Transaction<'_>) -> Result<()> {
    tx.execute_batch(
        "
CREATE TABLE IF NOT EXISTS launches (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    service     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    plan_source TEXT NOT NULL,
    plan_path   TEXT NOT NULL,
    workdir     TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'pending',
    finished    INTEGER NOT NULL DEFAULT 0,
    journal_last INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS journal (
    launch_id TEXT NOT NULL REFERENCES launches(id),
    seq       INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    at        TEXT NOT NULL,
    payload   TEXT NOT NULL,
    crc       INTEGER NOT NULL,
    chained   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (launch_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS launch_variables (
    launch_id TEXT NOT NULL REFERENCES launches(id),
    name      TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (launch_id, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS routes (
    name       TEXT PRIMARY KEY,
    launch_id  TEXT NOT NULL REFERENCES launches(id),
    weight_bp  INTEGER NOT NULL,
    salt       INTEGER NOT NULL,
    maintenance INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS api_tokens (
    name       TEXT PRIMARY KEY,
    sha256     TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS schedules (
    id TEXT PRIMARY KEY,
    launch_id TEXT NOT NULL REFERENCES launches(id),
    step TEXT NOT NULL,
    due_at TEXT NOT NULL,
    command TEXT NOT NULL,
    timeout_ms INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    result TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS schedules_due ON schedules (status, due_at);
CREATE TABLE IF NOT EXISTS status_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service TEXT NOT NULL,
    message TEXT NOT NULL,
    posted_by TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS status_messages_service ON status_messages (service, id);
CREATE TABLE IF NOT EXISTS flags (
    key        TEXT PRIMARY KEY,
    salt       TEXT NOT NULL,
    definition TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS flag_audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    flag    TEXT NOT NULL,
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL,
    cause   TEXT NOT NULL,
    action  TEXT NOT NULL,
    before  TEXT,
    after   TEXT
);
CREATE INDEX IF NOT EXISTS flag_audit_by_flag ON flag_audit (flag, id);
CREATE TABLE IF NOT EXISTS flag_keys (
    name       TEXT PRIMARY KEY,
    sha256     TEXT NOT NULL UNIQUE,
    prefix     TEXT NOT NULL,
    rate_limit INTEGER,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
",
    )?;
    add_column(tx, "routes", "maintenance", "INTEGER NOT NULL DEFAULT 0")?;
    add_column(tx, "journal", "chained", "INTEGER NOT NULL DEFAULT 0")?;
    add_column(tx, "launches", "journal_last", "INTEGER NOT NULL DEFAULT 0")?;
    tx.execute_batch(
        "UPDATE launches SET journal_last =
             (SELECT COALESCE(MAX(seq), 0) FROM journal WHERE launch_id = launches.id);",
    )?;
    Ok(())
}

/// Migration 2: notices waiting for delivery (`outbox.rs`).
fn notice_outbox(tx: &Transaction<'_>) -> Result<()> {
    tx.execute_batch(
        "
CREATE TABLE notice_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    launch_id       TEXT NOT NULL REFERENCES launches(id),
    seq             INTEGER NOT NULL,
    event           TEXT NOT NULL,
    channel         TEXT NOT NULL,
    notice          TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    detail          TEXT,
    incident_id     TEXT,
    created_at      TEXT NOT NULL,
    settled_at      TEXT,
    UNIQUE (launch_id, seq, event, channel)
);
CREATE INDEX notice_outbox_pending ON notice_outbox (status, launch_id, channel, id);
",
    )?;
    Ok(())
}
