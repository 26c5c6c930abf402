//! The journal: an append-only log of records per launch, plus the launch registry.
//!
//! Design notes and invariants:
//! - SQLite in WAL mode with `synchronous=FULL`: an append that returned is on disk, so
//!   a kill -9 (or power loss) right after it loses nothing.
//! - Records are opaque here (a kind tag and a JSON payload): this crate does not know
//!   the engine's types, so the engine can evolve its records without a schema change.
//! - Each record carries a CRC-32 of `(launch, seq, kind, payload)`; reading a record
//!   whose checksum does not match is an error, never silently accepted state.
//! - All records of one transition are appended in one transaction: the journal never
//!   holds half a transition.
//! - Plan variables (secrets) live in their own table, never in the journal; the
//!   database file is created readable by its owner only.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};

mod flags;
mod schedules;
mod status;

pub use flags::{FlagAudit, FlagAuditRow, FlagKeyRow, FlagRow};
pub use schedules::{NewSchedule, ScheduleRow};
pub use status::StatusMessage;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("state database file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("journal record {seq} of launch {launch} is corrupt (checksum mismatch)")]
    Corrupt { launch: String, seq: i64 },
    #[error("no launch with id `{0}`")]
    NoSuchLaunch(String),
    #[error("no route named `{0}`")]
    NoSuchRoute(String),
    #[error(
        "service `{service}` already has launch `{id}` in progress; one launch per service at a time"
    )]
    LaunchInProgress { service: String, id: String },
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
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS launches (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    service     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    plan_source TEXT NOT NULL,
    plan_path   TEXT NOT NULL,
    workdir     TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'pending',
    finished    INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS journal (
    launch_id TEXT NOT NULL REFERENCES launches(id),
    seq       INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    at        TEXT NOT NULL,
    payload   TEXT NOT NULL,
    crc       INTEGER NOT NULL,
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
";

impl Store {
    /// Open (creating if needed) the database at `path`, owner-only.
    pub fn open(path: &Path) -> Result<Self> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| StoreError::File {
                path: path.display().to_string(),
                source,
            })?;
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        migrate(&conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
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
        self.append_with(launch_id, entries, status, finished, &Followups::default())
    }

    /// [`Store::append`], with the follow-ups the records schedule or cancel, in the
    /// same transaction: a follow-up exists exactly when its record does.
    pub fn append_with(
        &self,
        launch_id: &str,
        entries: &[Entry],
        status: &str,
        finished: bool,
        followups: &Followups,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for s in &followups.schedule {
            schedules::insert(&tx, launch_id, s, &followups.now)?;
        }
        if let Some(reason) = &followups.cancel_pending {
            schedules::cancel_pending(&tx, launch_id, reason, &followups.now)?;
        }
        insert_entries(&tx, launch_id, entries)?;
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

    pub fn journal(&self, launch_id: &str) -> Result<Vec<StoredEntry>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT seq, kind, at, payload, crc FROM journal WHERE launch_id = ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map([launch_id], |r| {
            Ok((
                StoredEntry {
                    seq: r.get(0)?,
                    kind: r.get(1)?,
                    at: r.get(2)?,
                    payload: r.get(3)?,
                },
                r.get::<_, u32>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (entry, crc) = row?;
            if checksum(launch_id, entry.seq, &entry.kind, &entry.payload) != crc {
                return Err(StoreError::Corrupt {
                    launch: launch_id.to_string(),
                    seq: entry.seq,
                });
            }
            out.push(entry);
        }
        Ok(out)
    }

    pub fn launch(&self, id: &str) -> Result<LaunchRow> {
        let conn = self.conn();
        conn.query_row(
            &format!("SELECT {LAUNCH_COLUMNS} FROM launches WHERE id = ?1"),
            [id],
            launch_row,
        )
        .optional()?
        .ok_or_else(|| StoreError::NoSuchLaunch(id.to_string()))
    }

    /// Newest first.
    pub fn launches(&self, limit: usize) -> Result<Vec<LaunchRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {LAUNCH_COLUMNS} FROM launches ORDER BY created_at DESC, rowid DESC LIMIT ?1"
        ))?;
        let rows = stmt.query_map([limit as i64], launch_row)?;
        rows.collect::<Result<_, _>>().map_err(Into::into)
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

/// Append entries after the launch's last record, each with its checksum.
fn insert_entries(
    tx: &rusqlite::Transaction<'_>,
    launch_id: &str,
    entries: &[Entry],
) -> Result<()> {
    let next: i64 = tx.query_row(
        "SELECT COALESCE(MAX(seq), 0) + 1 FROM journal WHERE launch_id = ?1",
        [launch_id],
        |r| r.get(0),
    )?;
    for (seq, e) in (next..).zip(entries) {
        tx.execute(
            "INSERT INTO journal (launch_id, seq, kind, at, payload, crc) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![launch_id, seq, e.kind, e.at, e.payload, checksum(launch_id, seq, &e.kind, &e.payload)],
        )?;
    }
    Ok(())
}

/// Follow-ups created or cancelled by one transition.
#[derive(Clone, Debug, Default)]
pub struct Followups {
    pub schedule: Vec<NewSchedule>,
    /// Cancel the launch's pending follow-ups, with this reason.
    pub cancel_pending: Option<String>,
    pub now: String,
}

/// Schema changes after the first release of a table, applied in place.
fn migrate(conn: &Connection) -> Result<()> {
    schedules::create(conn)?;
    status::create(conn)?;
    flags::create(conn)?;
    let has_column = |table: &str, column: &str| -> rusqlite::Result<bool> {
        let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})"))?;
        let names = stmt
            .query_map([], |r| r.get::<_, String>(1))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(names.iter().any(|n| n == column))
    };
    if !has_column("routes", "maintenance")? {
        conn.execute_batch("ALTER TABLE routes ADD COLUMN maintenance INTEGER NOT NULL DEFAULT 0")?;
    }
    Ok(())
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

fn launch_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LaunchRow> {
    Ok(LaunchRow {
        id: r.get(0)?,
        name: r.get(1)?,
        service: r.get(2)?,
        created_at: r.get(3)?,
        plan_source: r.get(4)?,
        plan_path: r.get(5)?,
        workdir: r.get(6)?,
        status: r.get(7)?,
        finished: r.get(8)?,
    })
}

fn checksum(launch: &str, seq: i64, kind: &str, payload: &str) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(launch.as_bytes());
    h.update(&seq.to_le_bytes());
    h.update(kind.as_bytes());
    h.update(&[0]);
    h.update(payload.as_bytes());
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
