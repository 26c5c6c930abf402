//! The journal: an append-only log of records per launch, plus the launch registry.
//!
//! Design notes and invariants:
//! - SQLite in WAL mode with `synchronous=FULL`: an append that returned is on disk, so
//!   a kill -9 (or power loss) right after it loses nothing.
//! - Records are opaque here (a kind tag and a JSON payload): this crate does not know
//!   the engine's types, so the engine can evolve its records without a schema change.
//! - Records are numbered 1, 2, 3... per launch, and each carries a CRC-32 of
//!   `(previous record's CRC, launch, seq, kind, at, payload)`: the checksums chain, so a
//!   changed, removed or reordered record breaks every checksum after it. The registry
//!   row keeps the number of the last record (`journal_last`), so a journal cut short at
//!   its end is noticed too. Reading a journal that fails any of this is an error
//!   ([`StoreError::Corrupt`]), never silently accepted state.
//! - Records written before chaining (schema version 0: a CRC-32 of `(launch, seq, kind,
//!   payload)`, `chained = 0`) are still read and checked that way; the chain starts at
//!   the first record written after the upgrade.
//! - Text that is not UTF-8 where the schema holds text (flipped bytes) is corruption
//!   too, named by table and row ([`StoreError::CorruptRow`]), not an internal error.
//! - All records of one transition are appended in one transaction: the journal never
//!   holds half a transition.
//! - Plan variables (secrets) live in their own table, never in the journal; the
//!   database file is created readable by its owner only.
//! - The file outlives the binary: its schema moves forward by numbered migrations
//!   (`migrations.rs`), each in one transaction with `PRAGMA user_version`; a file from a
//!   newer liftoff is refused untouched.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::types::{FromSql, ValueRef};
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

mod flags;
mod migrations;
mod outbox;
mod schedules;
mod status;

pub use flags::{FlagAudit, FlagAuditRow, FlagKeyRow, FlagRow};
pub use migrations::{Migrated, SCHEMA_VERSION};
pub use outbox::{NewNotice, NoticeRow, Settled};
pub use schedules::{NewSchedule, ScheduleRow};
pub use status::StatusMessage;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state database: {0}")]
    Sqlite(rusqlite::Error),
    /// The database file could not be opened as liftoff's state.
    #[error("state database {path}: {source}")]
    Open {
        path: String,
        source: Box<StoreError>,
    },
    #[error("state database file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("journal of launch {launch}: record {seq} {problem}")]
    Corrupt {
        launch: String,
        seq: i64,
        problem: Corruption,
    },
    #[error("state database: {table} row `{key}` is damaged: {detail}")]
    CorruptRow {
        table: &'static str,
        key: String,
        detail: String,
    },
    /// SQLite found the file damaged, or a value is not of its column's type.
    #[error("state database is damaged: {0}")]
    Damaged(rusqlite::Error),
    #[error(
        "written by a newer liftoff (schema version {found}; this one knows up to {SCHEMA_VERSION})"
    )]
    NewerSchema { found: i64 },
    /// A migration failed; its transaction rolled back, so the file is as it was.
    #[error("upgrading to schema version {version} ({name}): {source}")]
    Migration {
        version: i64,
        name: &'static str,
        source: Box<StoreError>,
    },
    #[error("no launch with id `{0}`")]
    NoSuchLaunch(String),
    #[error("no route named `{0}`")]
    NoSuchRoute(String),
    #[error(
        "service `{service}` already has launch `{id}` in progress; one launch per service at a time"
    )]
    LaunchInProgress { service: String, id: String },
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        let damaged = match &e {
            rusqlite::Error::SqliteFailure(f, _) => {
                matches!(f.code, ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
            }
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::Utf8Error(..) => true,
            _ => false,
        };
        if damaged {
            StoreError::Damaged(e)
        } else {
            StoreError::Sqlite(e)
        }
    }
}

impl StoreError {
    /// The stored state itself is damaged (as opposed to a failing disk or a busy lock).
    pub fn is_corruption(&self) -> bool {
        match self {
            StoreError::Corrupt { .. } | StoreError::CorruptRow { .. } | StoreError::Damaged(_) => {
                true
            }
            StoreError::Open { source, .. } | StoreError::Migration { source, .. } => {
                source.is_corruption()
            }
            _ => false,
        }
    }
}

/// What is wrong with a journal record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Corruption {
    /// Its checksum does not match its content or the chain before it.
    Checksum,
    /// It is not there: the journal skips it, or ends before the registry says it does.
    Missing,
    /// It lies beyond the journal's end as the registry records it.
    Unexpected,
    /// A field is not UTF-8 text.
    NotText,
}

impl std::fmt::Display for Corruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Corruption::Checksum => "fails its checksum",
            Corruption::Missing => "is missing",
            Corruption::Unexpected => "lies beyond the journal's recorded end",
            Corruption::NotText => "is not valid text",
        })
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A launch as registered, before any record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewLaunch {
    pub id: String,
    pub name: String,
    pub service: String,
    pub created_at: String,
    pub plan_source: String,
    pub plan_path: String,
    /// Directory relative paths in the plan resolve against.
    pub workdir: String,
    /// Resolved `${VAR}` values (secrets), kept out of the journal.
    pub variables: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchRow {
    pub id: String,
    pub name: String,
    pub service: String,
    pub created_at: String,
    pub plan_source: String,
    pub plan_path: String,
    pub workdir: String,
    /// Denormalised from the journal for listings; the journal is the truth.
    pub status: String,
    pub finished: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: String,
    pub at: String,
    pub payload: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEntry {
    pub seq: i64,
    pub kind: String,
    pub at: String,
    pub payload: String,
}

pub struct Store {
    conn: Mutex<Connection>,
    migrated: Option<Migrated>,
}

impl Store {
    /// Open (creating if needed) the database at `path`, owner-only. Errors name the file.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_at(path).map_err(|e| match e {
            e @ StoreError::File { .. } => e,
            other => StoreError::Open {
                path: path.display().to_string(),
                source: Box::new(other),
            },
        })
    }

    fn open_at(path: &Path) -> Result<Self> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| StoreError::File {
                path: path.display().to_string(),
                source,
            })?;
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let migrated = migrations::migrate(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
            migrated,
        })
    }

    /// The schema versions this open moved the file between; `None` if it was current.
    pub fn migrated(&self) -> Option<Migrated> {
        self.migrated
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions
        // roll back), so a poisoned lock is still safe to use.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Register a launch, unless its service already has one in progress: the check
    /// and the insert are one transaction, so two launches cannot both get in.
    pub fn create_launch(&self, launch: &NewLaunch) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let running: Option<String> = tx
            .query_row(
                "SELECT id FROM launches WHERE service = ?1 AND finished = 0 LIMIT 1",
                [&launch.service],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = running {
            return Err(StoreError::LaunchInProgress {
                service: launch.service.clone(),
                id,
            });
        }
        tx.execute(
            "INSERT INTO launches (id, name, service, created_at, plan_source, plan_path, workdir)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                launch.id,
                launch.name,
                launch.service,
                launch.created_at,
                launch.plan_source,
                launch.plan_path,
                launch.workdir
            ],
        )?;
        for (name, value) in &launch.variables {
            tx.execute(
                "INSERT INTO launch_variables (launch_id, name, value) VALUES (?1, ?2, ?3)",
                params![launch.id, name, value],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Append one transition's records atomically and update the listing status.
    pub fn append(
        &self,
        launch_id: &str,
        entries: &[Entry],
        status: &str,
        finished: bool,
    ) -> Result<()> {
        self.append_with(
            launch_id,
            entries,
            status,
            finished,
            &Followups::default(),
            &[],
        )
    }

    /// [`Store::append`], with the follow-ups the records schedule or cancel and the
    /// notices they cause, in the same transaction: a follow-up or a notice exists
    /// exactly when its record does.
    pub fn append_with(
        &self,
        launch_id: &str,
        entries: &[Entry],
        status: &str,
        finished: bool,
        followups: &Followups,
        notices: &[NewNotice],
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for s in &followups.schedule {
            schedules::insert(&tx, launch_id, s, &followups.now)?;
        }
        if let Some(reason) = &followups.cancel_pending {
            schedules::cancel_pending(&tx, launch_id, reason, &followups.now)?;
        }
        let first_seq = insert_entries(&tx, launch_id, entries)?;
        outbox::insert(&tx, launch_id, first_seq, notices, &followups.now)?;
        let updated = tx.execute(
            "UPDATE launches SET status = ?2, finished = ?3 WHERE id = ?1",
            params![launch_id, status, finished],
        )?;
        if updated == 0 {
            return Err(StoreError::NoSuchLaunch(launch_id.to_string()));
        }
        tx.commit()?;
        Ok(())
    }

    /// Append records that change nothing the registry shows (notification outcomes,
    /// also after the launch ended).
    pub fn append_unchanged(&self, launch_id: &str, entries: &[Entry]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let exists: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM launches WHERE id = ?1)",
            [launch_id],
            |r| r.get(0),
        )?;
        if !exists {
            return Err(StoreError::NoSuchLaunch(launch_id.to_string()));
        }
        insert_entries(&tx, launch_id, entries)?;
        tx.commit()?;
        Ok(())
    }

    /// The launch's records in order, each checked: numbered without a gap up to the end
    /// the registry records, and every checksum (chained or, for records written before
    /// chaining, alone) matching.
    pub fn journal(&self, launch_id: &str) -> Result<Vec<StoredEntry>> {
        let conn = self.conn();
        let recorded_end: Option<i64> = conn
            .query_row(
                "SELECT journal_last FROM launches WHERE id = ?1",
                [launch_id],
                |r| r.get(0),
            )
            .optional()?;
        let mut stmt = conn.prepare_cached(
            "SELECT seq, kind, at, payload, crc, chained FROM journal WHERE launch_id = ?1 ORDER BY seq",
        )?;
        let corrupt = |seq: i64, problem: Corruption| StoreError::Corrupt {
            launch: launch_id.to_string(),
            seq,
            problem,
        };
        let mut rows = stmt.query([launch_id])?;
        let mut out: Vec<StoredEntry> = Vec::new();
        let mut prev_crc = 0u32;
        let mut chain_started = false;
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(0)?;
            let expected = out.len() as i64 + 1;
            if seq != expected {
                return Err(corrupt(expected, Corruption::Missing));
            }
            let (kind, at, payload) = (raw(r, 1)?, raw(r, 2)?, raw(r, 3)?);
            let crc: i64 = r.get(4)?;
            let chained: bool = r.get(5)?;
            let want = match (chained, chain_started) {
                (true, _) => chained_checksum(prev_crc, launch_id, seq, kind, at, payload),
                (false, false) => checksum(launch_id, seq, kind, payload),
                // An unchained record after the chain began was not written by liftoff.
                (false, true) => return Err(corrupt(seq, Corruption::Checksum)),
            };
            if i64::from(want) != crc {
                return Err(corrupt(seq, Corruption::Checksum));
            }
            let text = |b: &[u8]| {
                String::from_utf8(b.to_vec()).map_err(|_| corrupt(seq, Corruption::NotText))
            };
            out.push(StoredEntry {
                seq,
                kind: text(kind)?,
                at: text(at)?,
                payload: text(payload)?,
            });
            prev_crc = want;
            chain_started |= chained;
        }
        let read_end = out.len() as i64;
        match recorded_end {
            Some(end) if end > read_end => Err(corrupt(read_end + 1, Corruption::Missing)),
            Some(end) if end < read_end => Err(corrupt(end + 1, Corruption::Unexpected)),
            _ => Ok(out),
        }
    }

    pub fn launch(&self, id: &str) -> Result<LaunchRow> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {LAUNCH_COLUMNS} FROM launches WHERE id = ?1"
        ))?;
        let mut rows = stmt.query([id])?;
        match rows.next()? {
            Some(r) => launch_row(r),
            None => Err(StoreError::NoSuchLaunch(id.to_string())),
        }
    }

    /// Newest first.
    pub fn launches(&self, limit: usize) -> Result<Vec<LaunchRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {LAUNCH_COLUMNS} FROM launches ORDER BY created_at DESC, rowid DESC LIMIT ?1"
        ))?;
        let mut rows = stmt.query([limit as i64])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(launch_row(r)?);
        }
        Ok(out)
    }

    pub fn unfinished_launches(&self) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id FROM launches WHERE finished = 0 ORDER BY created_at, rowid",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<Result<_, _>>().map_err(Into::into)
    }

    pub fn variables(&self, launch_id: &str) -> Result<Vec<(String, String)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT name, value FROM launch_variables WHERE launch_id = ?1 ORDER BY name",
        )?;
        let rows = stmt.query_map([launch_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>().map_err(Into::into)
    }

    /// Remember a builtin route's split, so a restarted daemon serves it at once.
    /// Leaves its maintenance switch as it was.
    pub fn save_route(&self, route: &RouteRow) -> Result<()> {
        self.conn().execute(
            "INSERT INTO routes (name, launch_id, weight_bp, salt, maintenance, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(name) DO UPDATE SET launch_id = excluded.launch_id, weight_bp = excluded.weight_bp,
                 salt = excluded.salt, updated_at = excluded.updated_at",
            params![
                route.name,
                route.launch_id,
                route.weight_bp,
                route.salt as i64,
                route.maintenance,
                route.updated_at
            ],
        )?;
        Ok(())
    }

    pub fn set_route_maintenance(&self, name: &str, on: bool, at: &str) -> Result<()> {
        let updated = self.conn().execute(
            "UPDATE routes SET maintenance = ?2, updated_at = ?3 WHERE name = ?1",
            params![name, on, at],
        )?;
        if updated == 0 {
            return Err(StoreError::NoSuchRoute(name.to_string()));
        }
        Ok(())
    }

    pub fn route(&self, name: &str) -> Result<Option<RouteRow>> {
        let conn = self.conn();
        conn.query_row(
            "SELECT name, launch_id, weight_bp, salt, maintenance, updated_at FROM routes WHERE name = ?1",
            [name],
            route_row,
        )
        .optional()
        .map_err(Into::into)
    }

    pub fn routes(&self) -> Result<Vec<RouteRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT name, launch_id, weight_bp, salt, maintenance, updated_at FROM routes ORDER BY name",
        )?;
        let rows = stmt.query_map([], route_row)?;
        rows.collect::<Result<_, _>>().map_err(Into::into)
    }

    pub fn token_hash(&self, name: &str) -> Result<Option<String>> {
        let conn = self.conn();
        conn.query_row(
            "SELECT sha256 FROM api_tokens WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()
        .map_err(Into::into)
    }

    pub fn set_token_hash(&self, name: &str, sha256: &str, created_at: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO api_tokens (name, sha256, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(name) DO UPDATE SET sha256 = excluded.sha256, created_at = excluded.created_at",
            params![name, sha256, created_at],
        )?;
        Ok(())
    }
}

/// Append entries after the launch's last record, each checksum chained to the one
/// before, and move the registry's record of the journal's end. Returns the number of
/// the first.
fn insert_entries(
    tx: &rusqlite::Transaction<'_>,
    launch_id: &str,
    entries: &[Entry],
) -> Result<i64> {
    let (last, mut prev_crc): (i64, u32) = tx
        .query_row(
            "SELECT seq, crc FROM journal WHERE launch_id = ?1 ORDER BY seq DESC LIMIT 1",
            [launch_id],
            |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u32)),
        )
        .optional()?
        .unwrap_or((0, 0));
    let mut seq = last;
    for e in entries {
        seq += 1;
        let crc = chained_checksum(
            prev_crc,
            launch_id,
            seq,
            e.kind.as_bytes(),
            e.at.as_bytes(),
            e.payload.as_bytes(),
        );
        tx.execute(
            "INSERT INTO journal (launch_id, seq, kind, at, payload, crc, chained) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1)",
            params![launch_id, seq, e.kind, e.at, e.payload, crc],
        )?;
        prev_crc = crc;
    }
    tx.execute(
        "UPDATE launches SET journal_last = ?2 WHERE id = ?1",
        params![launch_id, seq],
    )?;
    Ok(last + 1)
}

/// Follow-ups created or cancelled by one transition.
#[derive(Clone, Debug, Default)]
pub struct Followups {
    pub schedule: Vec<NewSchedule>,
    /// Cancel the launch's pending follow-ups, with this reason.
    pub cancel_pending: Option<String>,
    pub now: String,
}

/// A builtin router route: which launch configured it last, and its split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteRow {
    pub name: String,
    pub launch_id: String,
    pub weight_bp: u16,
    /// The sticky-hash salt: kept, so users keep their version across restarts.
    pub salt: u64,
    /// Serving the maintenance page.
    pub maintenance: bool,
    pub updated_at: String,
}

fn route_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RouteRow> {
    Ok(RouteRow {
        name: r.get(0)?,
        launch_id: r.get(1)?,
        weight_bp: r.get(2)?,
        salt: r.get::<_, i64>(3)? as u64,
        maintenance: r.get(4)?,
        updated_at: r.get(5)?,
    })
}

const LAUNCH_COLUMNS: &str =
    "id, name, service, created_at, plan_source, plan_path, workdir, status, finished";

/// A registry row; a field that is not what its column holds (text that is not UTF-8)
/// is reported as a damaged row named by its id.
fn launch_row(r: &rusqlite::Row<'_>) -> Result<LaunchRow> {
    let key = String::from_utf8_lossy(r.get_ref(0)?.as_bytes().unwrap_or(b"?")).into_owned();
    let t = "launches";
    Ok(LaunchRow {
        id: field(r, 0, t, &key)?,
        name: field(r, 1, t, &key)?,
        service: field(r, 2, t, &key)?,
        created_at: field(r, 3, t, &key)?,
        plan_source: field(r, 4, t, &key)?,
        plan_path: field(r, 5, t, &key)?,
        workdir: field(r, 6, t, &key)?,
        status: field(r, 7, t, &key)?,
        finished: field(r, 8, t, &key)?,
    })
}

fn field<T: FromSql>(r: &rusqlite::Row<'_>, i: usize, table: &'static str, key: &str) -> Result<T> {
    r.get(i).map_err(|e| {
        let column = r.as_ref().column_name(i).unwrap_or("?").to_string();
        match StoreError::from(e) {
            StoreError::Damaged(e) => StoreError::CorruptRow {
                table,
                key: key.to_string(),
                detail: match e {
                    rusqlite::Error::FromSqlConversionFailure(..)
                    | rusqlite::Error::Utf8Error(..) => format!("`{column}` is not valid text"),
                    other => format!("`{column}`: {other}"),
                },
            },
            other => other,
        }
    })
}

/// A column's bytes as stored, whatever its type claims (checksums are over bytes).
fn raw<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> Result<&'r [u8]> {
    Ok(match r.get_ref(i)? {
        ValueRef::Text(b) | ValueRef::Blob(b) => b,
        _ => &[],
    })
}

/// The checksum of records written before chaining (schema version 0).
fn checksum(launch: &str, seq: i64, kind: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(launch.as_bytes());
    h.update(&seq.to_le_bytes());
    h.update(kind);
    h.update(&[0]);
    h.update(payload);
    h.finalize()
}

/// A record's checksum, covering the previous record's (0 for the first).
fn chained_checksum(
    prev: u32,
    launch: &str,
    seq: i64,
    kind: &[u8],
    at: &[u8],
    payload: &[u8],
) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&prev.to_le_bytes());
    h.update(launch.as_bytes());
    h.update(&[0]);
    h.update(&seq.to_le_bytes());
    for part in [kind, at] {
        h.update(part);
        h.update(&[0]);
    }
    h.update(payload);
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_launch(id: &str) -> NewLaunch {
        NewLaunch {
            id: id.into(),
            name: "n".into(),
            service: "s".into(),
            created_at: "2026-11-21T10:00:00Z".into(),
            plan_source: "version: 1".into(),
            plan_path: "/p/plan.yaml".into(),
            workdir: "/p".into(),
            variables: vec![("DB_URL".into(), "postgres://secret".into())],
        }
    }

    fn entry(kind: &str) -> Entry {
        Entry {
            kind: kind.into(),
            at: "2026-11-21T10:00:01Z".into(),
            payload: format!("{{\"type\":\"{kind}\"}}"),
        }
    }

    #[test]
    fn journal_survives_reopen_in_order_and_secrets_stay_out_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let store = Store::open(&path).unwrap();
            store.create_launch(&new_launch("a")).unwrap();
            store
                .append("a", &[entry("one"), entry("two")], "running", false)
                .unwrap();
            store
                .append("a", &[entry("three")], "succeeded", true)
                .unwrap();
        }
        let store = Store::open(&path).unwrap();
        let kinds: Vec<_> = store
            .journal("a")
            .unwrap()
            .into_iter()
            .map(|e| (e.seq, e.kind))
            .collect();
        assert_eq!(
            kinds,
            [(1, "one".into()), (2, "two".into()), (3, "three".into())]
        );
        assert_eq!(store.launch("a").unwrap().status, "succeeded");
        assert!(store.unfinished_launches().unwrap().is_empty());
        let journal = format!("{:?}", store.journal("a").unwrap());
        assert!(!journal.contains("secret"));
        assert_eq!(store.variables("a").unwrap()[0].1, "postgres://secret");
        let mode = std::fs::metadata(&path).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
    }

    #[test]
    fn a_second_unfinished_launch_of_a_service_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        store.create_launch(&new_launch("a")).unwrap();
        let err = store.create_launch(&new_launch("b")).unwrap_err();
        assert!(
            matches!(err, StoreError::LaunchInProgress { ref id, .. } if id == "a"),
            "{err}"
        );
        store
            .append("a", &[entry("end")], "succeeded", true)
            .unwrap();
        store.create_launch(&new_launch("b")).unwrap();
    }

    #[test]
    fn an_older_routes_table_gains_the_maintenance_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE launches (id TEXT PRIMARY KEY, name TEXT NOT NULL, service TEXT NOT NULL, created_at TEXT NOT NULL, plan_source TEXT NOT NULL, plan_path TEXT NOT NULL, workdir TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending', finished INTEGER NOT NULL DEFAULT 0);
                 INSERT INTO launches (id, name, service, created_at, plan_source, plan_path, workdir) VALUES ('a', 'n', 's', 't', 'p', 'p', 'w');
                 CREATE TABLE routes (name TEXT PRIMARY KEY, launch_id TEXT NOT NULL, weight_bp INTEGER NOT NULL, salt INTEGER NOT NULL, updated_at TEXT NOT NULL) WITHOUT ROWID;
                 INSERT INTO routes VALUES ('shop', 'a', 500, 7, 't');",
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        let route = store.route("shop").unwrap().unwrap();
        assert_eq!(
            (route.weight_bp, route.salt, route.maintenance),
            (500, 7, false)
        );
        store.set_route_maintenance("shop", true, "t2").unwrap();
        assert!(store.route("shop").unwrap().unwrap().maintenance);
    }

    #[test]
    fn a_tampered_record_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        store.create_launch(&new_launch("a")).unwrap();
        store
            .append("a", &[entry("one")], "running", false)
            .unwrap();
        store
            .conn()
            .execute(
                "UPDATE journal SET payload = '{\"type\":\"two\"}' WHERE seq = 1",
                [],
            )
            .unwrap();
        assert!(matches!(
            store.journal("a"),
            Err(StoreError::Corrupt { seq: 1, .. })
        ));
    }

    fn seqs(store: &Store, id: &str) -> Result<Vec<i64>> {
        Ok(store.journal(id)?.into_iter().map(|e| e.seq).collect())
    }

    #[test]
    fn a_record_removed_from_the_journal_is_reported_missing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        store.create_launch(&new_launch("a")).unwrap();
        store
            .append("a", &[entry("one"), entry("two")], "running", false)
            .unwrap();
        store
            .append("a", &[entry("three"), entry("four")], "running", false)
            .unwrap();
        assert_eq!(seqs(&store, "a").unwrap(), [1, 2, 3, 4]);
        let sql = |q: &str| store.conn().execute(q, []).unwrap();

        // The last record: the registry knows where the journal ended.
        sql("DELETE FROM journal WHERE seq = 4");
        let err = seqs(&store, "a").unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Corrupt { ref launch, seq: 4, problem: Corruption::Missing } if launch == "a"
            ),
            "{err}"
        );
        assert_eq!(err.to_string(), "journal of launch a: record 4 is missing");
        assert!(err.is_corruption());

        // One in the middle: a gap in the numbers.
        sql("UPDATE launches SET journal_last = 3");
        assert_eq!(seqs(&store, "a").unwrap(), [1, 2, 3]);
        sql("DELETE FROM journal WHERE seq = 2");
        assert!(matches!(
            seqs(&store, "a"),
            Err(StoreError::Corrupt {
                seq: 2,
                problem: Corruption::Missing,
                ..
            })
        ));

        // Renumbered to close the gap: the chain of checksums breaks.
        sql("UPDATE journal SET seq = 2 WHERE seq = 3");
        sql("UPDATE launches SET journal_last = 2");
        assert!(matches!(
            seqs(&store, "a"),
            Err(StoreError::Corrupt {
                seq: 2,
                problem: Corruption::Checksum,
                ..
            })
        ));
    }

    #[test]
    fn flipped_bytes_are_reported_as_damage_naming_the_row() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        store.create_launch(&new_launch("a")).unwrap();
        store
            .append("a", &[entry("one"), entry("two")], "running", false)
            .unwrap();
        let sql = |q: &str| store.conn().execute(q, []).unwrap();

        // A changed timestamp is covered by the checksum too.
        sql("UPDATE journal SET at = '2026-11-21T10:00:02Z' WHERE seq = 2");
        assert!(matches!(
            store.journal("a"),
            Err(StoreError::Corrupt {
                seq: 2,
                problem: Corruption::Checksum,
                ..
            })
        ));
        sql("UPDATE journal SET payload = CAST(X'7B22FF' AS TEXT) WHERE seq = 1");
        assert!(matches!(
            store.journal("a"),
            Err(StoreError::Corrupt {
                seq: 1,
                problem: Corruption::Checksum,
                ..
            })
        ));

        sql("UPDATE launches SET plan_source = CAST(X'76657273696F6EFF' AS TEXT) WHERE id = 'a'");
        for err in [
            store.launches(10).unwrap_err(),
            store.launch("a").unwrap_err(),
        ] {
            assert!(
                matches!(
                    err,
                    StoreError::CorruptRow { table: "launches", ref key, .. } if key == "a"
                ),
                "{err}"
            );
            assert_eq!(
                err.to_string(),
                "state database: launches row `a` is damaged: `plan_source` is not valid text"
            );
            assert!(err.is_corruption());
        }
    }

    #[test]
    fn a_journal_written_before_chaining_is_read_and_chained_from_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        {
            // The schema and checksums of the release before chaining.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE launches (id TEXT PRIMARY KEY, name TEXT NOT NULL, service TEXT NOT NULL, created_at TEXT NOT NULL, plan_source TEXT NOT NULL, plan_path TEXT NOT NULL, workdir TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending', finished INTEGER NOT NULL DEFAULT 0);
                 CREATE TABLE journal (launch_id TEXT NOT NULL REFERENCES launches(id), seq INTEGER NOT NULL, kind TEXT NOT NULL, at TEXT NOT NULL, payload TEXT NOT NULL, crc INTEGER NOT NULL, PRIMARY KEY (launch_id, seq)) WITHOUT ROWID;
                 INSERT INTO launches (id, name, service, created_at, plan_source, plan_path, workdir) VALUES ('a', 'n', 's', 't', 'p', 'p', 'w'), ('b', 'n', 't', 't', 'p', 'p', 'w');",
            )
            .unwrap();
            for (launch, seq, kind) in [
                ("a", 1, "one"),
                ("a", 2, "two"),
                ("b", 1, "one"),
                ("b", 2, "two"),
            ] {
                let payload = format!("{{\"type\":\"{kind}\"}}");
                conn.execute(
                    "INSERT INTO journal VALUES (?1, ?2, ?3, 't', ?4, ?5)",
                    params![
                        launch,
                        seq,
                        kind,
                        payload,
                        checksum(launch, seq, kind.as_bytes(), payload.as_bytes())
                    ],
                )
                .unwrap();
            }
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(seqs(&store, "a").unwrap(), [1, 2]);
        store
            .append("a", &[entry("three")], "running", false)
            .unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(seqs(&store, "a").unwrap(), [1, 2, 3]);
        let version: i64 = store
            .conn()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);

        // The upgrade recorded where the old journals end, so losing their tail shows.
        store
            .conn()
            .execute("DELETE FROM journal WHERE launch_id = 'b' AND seq = 2", [])
            .unwrap();
        assert!(matches!(
            seqs(&store, "b"),
            Err(StoreError::Corrupt {
                seq: 2,
                problem: Corruption::Missing,
                ..
            })
        ));
        // An old record changed under the first chained one.
        store
            .conn()
            .execute(
                "UPDATE journal SET payload = '{}' WHERE launch_id = 'a' AND seq = 2",
                [],
            )
            .unwrap();
        assert!(matches!(
            seqs(&store, "a"),
            Err(StoreError::Corrupt {
                seq: 2,
                problem: Corruption::Checksum,
                ..
            })
        ));
    }

    #[test]
    fn a_database_from_a_newer_liftoff_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let err = Store::open(&path).err().unwrap().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("newer liftoff"), "{err}");
    }

    #[test]
    fn a_file_that_is_not_a_database_is_damage_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        let err = Store::open(&path).err().unwrap();
        assert!(err.is_corruption(), "{err}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn appending_to_an_unknown_launch_fails_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        assert!(
            store
                .append("nope", &[entry("one")], "running", false)
                .is_err()
        );
        assert!(store.journal("nope").unwrap().is_empty());
        assert!(matches!(
            store.launch("nope"),
            Err(StoreError::NoSuchLaunch(_))
        ));
    }
}
