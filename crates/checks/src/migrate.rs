//! Backups, restores and verify queries for `migrate` steps (PostgreSQL and SQLite).
//!
//! PostgreSQL goes through its client tools, so a backup is an archive operators already
//! know how to restore by hand. The connection reaches `pg_dump` / `pg_restore` through
//! `PG*` environment variables, never argv, which `ps` shows to every user. SQLite uses
//! the online backup API, so a backup taken while the service writes is consistent.
//!
//! Invariants:
//! - A backup is written to `<file>.partial` and renamed once checked: a failed backup
//!   never replaces an earlier one of the same name.
//! - A PostgreSQL restore drops the database and lets `pg_restore --create` recreate it;
//!   only that removes tables created after the backup. The archive is read before the
//!   drop, so a missing or foreign file costs nothing. Between drop and recreate the
//!   database is missing; if `pg_restore` fails there, the error says so and gives the
//!   command to finish by hand. `restore` may be called again after such a failure
//!   (`DROP DATABASE IF EXISTS`).
//! - Messages name a database by its name or its plan template, never by the resolved
//!   URL, and pass through [`Env::redact`].

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use liftoff_plan::checks::{DbEngine, MigrateStep, VerifyQuery};

use crate::Env;

/// A backup taken before a migration, checked readable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backup {
    pub path: PathBuf,
    pub bytes: u64,
    pub duration: Duration,
    /// How it was checked: "pg_restore --list: 14 entries", "quick_check: ok".
    pub detail: String,
}

/// One verify query's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryResult {
    pub query: String,
    /// The expectation as written: `= 3`, `< 10`.
    pub expected: String,
    /// The first column of the first row as text; `None` for no row or NULL.
    pub actual: Option<String>,
    pub passed: bool,
    /// Why it could not run, if it could not (redacted).
    pub error: Option<String>,
}

impl QueryResult {
    fn ran(query: &VerifyQuery, actual: Option<String>) -> Self {
        Self {
            query: query.query.clone(),
            expected: query.expect.to_string(),
            passed: query.expect.matches_text(actual.as_deref()),
            actual,
            error: None,
        }
    }

    fn failed(query: &VerifyQuery, error: String) -> Self {
        Self {
            query: query.query.clone(),
            expected: query.expect.to_string(),
            actual: None,
            passed: false,
            error: Some(error),
        }
    }
}

/// Back up `step.database` into `dir` (created if missing) as `<name>.dump` (PostgreSQL,
/// `pg_dump --format=custom`) or `<name>.sqlite3` (SQLite online backup API), then check
/// the backup is non-empty and readable.
pub async fn backup(
    step: &MigrateStep,
    env: &Env,
    dir: &Path,
    name: &str,
) -> Result<Backup, String> {
    let result = match create_private_dir(dir).await {
        Err(e) => Err(format!(
            "cannot create backup directory {}: {e}",
            dir.display()
        )),
        Ok(()) => match step.engine {
            DbEngine::Postgres => postgres::backup(step, dir, name).await,
            DbEngine::Sqlite => sqlite::backup(step, env, dir, name).await,
        },
    };
    result.map_err(|e| env.redact(&e))
}

/// Run verify queries against `step.database`, in order.
pub async fn verify(step: &MigrateStep, env: &Env, queries: &[VerifyQuery]) -> Vec<QueryResult> {
    let mut results = match step.engine {
        DbEngine::Postgres => postgres::verify(step, queries).await,
        DbEngine::Sqlite => sqlite::verify(step, env, queries).await,
    };
    for r in &mut results {
        r.error = r.error.as_deref().map(|e| env.redact(e));
    }
    results
}

/// Put the database back as it was when `backup` was taken. Ok: one line saying what
/// was done.
pub async fn restore(step: &MigrateStep, env: &Env, backup: &Path) -> Result<String, String> {
    let result = match step.engine {
        DbEngine::Postgres => postgres::restore(step, backup).await,
        DbEngine::Sqlite => sqlite::restore(step, env, backup).await,
    };
    result.map(|ok| env.redact(&ok)).map_err(|e| env.redact(&e))
}

/// Backups hold the data of production databases: only their owner may read them.
async fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    tokio::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .await
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Quoted for `sh` when it needs to be, for commands a human copies.
fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/,:=@%+-".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

mod postgres {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStrExt;
    use std::process::Stdio;

    use tokio::process::Command;
    use tokio_postgres::config::{Host, SslMode};
    use tokio_postgres::error::SqlState;
    use tokio_postgres::{Client, Config, NoTls, SimpleQueryMessage};

    use super::*;

    /// Where `restore` connects to drop and recreate the database.
    const MAINTENANCE_DB: &str = "postgres";
    /// When the URL sets no `connect_timeout`: an unreachable server must not hang a launch.
    const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Inherited variables that would pick another server, database or role than the URL.
    /// Authentication and TLS files (`PGPASSFILE`, `PGSSLROOTCERT`, ...) still apply.
    const OVERRIDDEN: &[&str] = &[
        "PGHOST",
        "PGHOSTADDR",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGSERVICE",
        "PGOPTIONS",
    ];

    /// The database a step names, from its URL.
    struct Target {
        config: Config,
        dbname: String,
    }

    impl Target {
        fn of(step: &MigrateStep) -> Result<Self, String> {
            // The parse error does not echo the URL; the URL may hold a password.
            let config: Config = step
                .database
                .expose()
                .parse()
                .map_err(|e| format!("{}: not a PostgreSQL URL: {e}", step.database))?;
            // libpq's default: the database named like the user.
            let dbname = config
                .get_dbname()
                .or(config.get_user())
                .ok_or_else(|| format!("{}: the URL names no database", step.database))?
                .to_string();
            Ok(Self { config, dbname })
        }

        async fn connect(&self, dbname: &str) -> Result<Client, tokio_postgres::Error> {
            let mut config = self.config.clone();
            config.dbname(dbname);
            if config.get_connect_timeout().is_none() {
                config.connect_timeout(CONNECT_TIMEOUT);
            }
            let (client, connection) = config.connect(NoTls).await?;
            // Its error, if any, surfaces on the client's next call.
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok(client)
        }

        /// A client tool connected to `dbname`, the connection in its environment.
        fn command(&self, program: &str, dbname: &str) -> Command {
            let mut cmd = Command::new(program);
            for var in OVERRIDDEN {
                cmd.env_remove(var);
            }
            cmd.envs(self.libpq_env(dbname))
                .stdin(Stdio::null())
                .kill_on_drop(true);
            cmd
        }

        fn libpq_env(&self, dbname: &str) -> Vec<(&'static str, OsString)> {
            let c = &self.config;
            let mut vars = vec![("PGDATABASE", OsString::from(dbname))];
            let hosts = self.hosts();
            if !hosts.is_empty() {
                vars.push(("PGHOST", hosts.join(",").into()));
            }
            let ports: Vec<String> = c.get_ports().iter().map(u16::to_string).collect();
            if !ports.is_empty() {
                vars.push(("PGPORT", ports.join(",").into()));
            }
            let addrs: Vec<String> = c.get_hostaddrs().iter().map(|a| a.to_string()).collect();
            if !addrs.is_empty() {
                vars.push(("PGHOSTADDR", addrs.join(",").into()));
            }
            if let Some(user) = c.get_user() {
                vars.push(("PGUSER", user.into()));
            }
            if let Some(password) = c.get_password() {
                vars.push(("PGPASSWORD", std::ffi::OsStr::from_bytes(password).into()));
            }
            // `prefer`, the default of both, leaves an inherited PGSSLMODE in force.
            match c.get_ssl_mode() {
                SslMode::Disable => vars.push(("PGSSLMODE", "disable".into())),
                SslMode::Require => vars.push(("PGSSLMODE", "require".into())),
                _ => {}
            }
            if let Some(t) = c.get_connect_timeout() {
                // libpq counts whole seconds and treats less than 2 as 2.
                vars.push(("PGCONNECT_TIMEOUT", t.as_secs().max(2).to_string().into()));
            }
            if let Some(name) = c.get_application_name() {
                vars.push(("PGAPPNAME", name.into()));
            }
            if let Some(options) = c.get_options() {
                vars.push(("PGOPTIONS", options.into()));
            }
            vars
        }

        fn hosts(&self) -> Vec<String> {
            self.config
                .get_hosts()
                .iter()
                .map(|h| match h {
                    Host::Tcp(name) => name.clone(),
                    Host::Unix(dir) => dir.display().to_string(),
                })
                .collect()
        }

        /// `-h HOST -p PORT -U USER`, for commands a human runs; no password.
        fn connection_flags(&self) -> String {
            let mut flags = Vec::new();
            let hosts = self.hosts();
            if !hosts.is_empty() {
                flags.push(format!("-h {}", shell_word(&hosts.join(","))));
            }
            let ports: Vec<String> = self.config.get_ports().iter().map(u16::to_string).collect();
            if !ports.is_empty() {
                flags.push(format!("-p {}", ports.join(",")));
            }
            if let Some(user) = self.config.get_user() {
                flags.push(format!("-U {}", shell_word(user)));
            }
            flags.join(" ")
        }

        /// What to run by hand when the database was dropped and not recreated.
        fn manual_restore(&self, backup: &Path) -> String {
            let flags = self.connection_flags();
            format!(
                "dropdb --if-exists {flags} {db} && pg_restore --create --exit-on-error {flags} -d {MAINTENANCE_DB} {file}",
                db = shell_word(&self.dbname),
                file = shell_word(&backup.display().to_string()),
            )
        }
    }

    pub(super) async fn backup(
        step: &MigrateStep,
        dir: &Path,
        name: &str,
    ) -> Result<Backup, String> {
        let target = Target::of(step)?;
        let db = &target.dbname;
        let started = Instant::now();
        let path = dir.join(format!("{name}.dump"));
        let partial = partial_path(&path);
        let mut file_arg = OsString::from("--file=");
        file_arg.push(&partial);
        let mut dump = target.command("pg_dump", db);
        dump.arg("--format=custom")
            .arg(file_arg)
            .arg("--no-password");

        let result = async {
            run(&mut dump, "pg_dump")
                .await
                .map_err(|e| format!("pg_dump of database {db} failed: {e}"))?;
            let bytes = tokio::fs::metadata(&partial)
                .await
                .map_err(|e| format!("pg_dump of database {db} left no file: {e}"))?
                .len();
            if bytes == 0 {
                return Err(format!("pg_dump of database {db} wrote an empty file"));
            }
            let listing = list_archive(&partial)
                .await
                .map_err(|e| format!("backup of database {db} is unreadable: {e}"))?;
            tokio::fs::rename(&partial, &path)
                .await
                .map_err(|e| format!("cannot move the backup to {}: {e}", path.display()))?;
            Ok(Backup {
                path: path.clone(),
                bytes,
                duration: started.elapsed(),
                detail: format!("pg_restore --list: {} entries", listing.entries),
            })
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&partial).await;
        }
        result
    }

    pub(super) async fn verify(step: &MigrateStep, queries: &[VerifyQuery]) -> Vec<QueryResult> {
        let client = match Target::of(step) {
            Ok(target) => target.connect(&target.dbname).await.map_err(|e| {
                format!(
                    "cannot connect to database {}: {}",
                    target.dbname,
                    describe(&e)
                )
            }),
            Err(e) => Err(e),
        };
        let client = match client {
            Ok(client) => client,
            Err(e) => {
                return queries
                    .iter()
                    .map(|q| QueryResult::failed(q, e.clone()))
                    .collect();
            }
        };
        let mut results = Vec::with_capacity(queries.len());
        for query in queries {
            // The simple protocol returns every value as text, whatever its type.
            results.push(match client.simple_query(&query.query).await {
                Ok(messages) => QueryResult::ran(query, first_cell(&messages)),
                Err(e) => QueryResult::failed(query, describe(&e)),
            });
        }
        results
    }

    fn first_cell(messages: &[SimpleQueryMessage]) -> Option<String> {
        let row = messages.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })?;
        row.try_get(0).ok().flatten().map(str::to_string)
    }

    pub(super) async fn restore(step: &MigrateStep, backup: &Path) -> Result<String, String> {
        let target = Target::of(step)?;
        let db = target.dbname.as_str();
        let file = backup.display();
        let started = Instant::now();

        let listing = list_archive(backup).await.map_err(|e| {
            format!("not restoring database {db}: backup {file} is unreadable: {e}")
        })?;
        // `pg_restore --create` recreates the database the archive names, whatever the URL says.
        if listing.dbname.as_deref() != Some(db) {
            return Err(format!(
                "not restoring database {db}: backup {file} holds database {}",
                listing.dbname.as_deref().unwrap_or("(unnamed)")
            ));
        }

        let admin = target.connect(MAINTENANCE_DB).await.map_err(|e| {
            format!(
                "not restoring database {db}: cannot connect to the maintenance database {MAINTENANCE_DB}: {}",
                describe(&e)
            )
        })?;
        let unchanged = |what: &str, e: tokio_postgres::Error| {
            format!(
                "not restoring database {db}: {what}: {} (the database was not changed)",
                describe(&e)
            )
        };
        let exists = admin
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&db])
            .await
            .map_err(|e| unchanged("cannot look it up", e))?
            .is_some();
        let mut ended = 0;
        if exists {
            ended = end_other_sessions(&admin, db, step.terminate_sessions).await?;
            // WITH (FORCE) (PostgreSQL 13+) also ends sessions that connected since.
            let version: i32 = admin
                .query_one("SELECT current_setting('server_version_num')::int", &[])
                .await
                .and_then(|row| row.try_get(0))
                .map_err(|e| unchanged("cannot read the server version", e))?;
            let force = if step.terminate_sessions && version >= 130_000 {
                " WITH (FORCE)"
            } else {
                ""
            };
            let drop_sql = format!("DROP DATABASE IF EXISTS {}{force}", quote_ident(db));
            if let Err(e) = admin.batch_execute(&drop_sql).await {
                if e.code() == Some(&SqlState::OBJECT_IN_USE) {
                    return Err(sessions_refused(db, None));
                }
                return Err(unchanged("DROP DATABASE failed", e));
            }
        }
        drop(admin);

        let mut pg_restore = target.command("pg_restore", MAINTENANCE_DB);
        pg_restore
            .args(["--create", "--exit-on-error", "--no-password"])
            .arg(format!("--dbname={MAINTENANCE_DB}"))
            .arg(backup);
        if let Err(e) = run(&mut pg_restore, "pg_restore").await {
            let before = if exists {
                "was dropped"
            } else {
                "was already missing"
            };
            return Err(format!(
                "database {db} {before} and pg_restore failed: {e}. The database is now missing \
                 or partly restored; restore again, or run: {}",
                target.manual_restore(backup)
            ));
        }

        let mut done = if exists {
            "dropped and recreated the database".to_string()
        } else {
            "recreated the database, which was missing".to_string()
        };
        if ended > 0 {
            let s = if ended == 1 { "" } else { "s" };
            done.push_str(&format!("; ended {ended} other session{s}"));
        }
        Ok(format!(
            "restored {db} from {file} in {} ({done})",
            seconds(started.elapsed())
        ))
    }

    /// Other sessions keep PostgreSQL from dropping the database: end them if the plan
    /// allows it, else refuse before changing anything. Returns how many were ended.
    async fn end_other_sessions(
        admin: &Client,
        db: &str,
        terminate: bool,
    ) -> Result<usize, String> {
        const OTHERS: &str = "FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()";
        let failed = |e: tokio_postgres::Error| {
            format!(
                "not restoring database {db}: cannot {} its other sessions: {} (the database was not changed)",
                if terminate { "end" } else { "count" },
                describe(&e)
            )
        };
        if terminate {
            let rows = admin
                .query(
                    &format!("SELECT pg_terminate_backend(pid) {OTHERS}"),
                    &[&db],
                )
                .await
                .map_err(failed)?;
            Ok(rows
                .iter()
                .filter(|row| row.try_get::<_, bool>(0).unwrap_or(false))
                .count())
        } else {
            let others: i64 = admin
                .query_one(&format!("SELECT count(*) {OTHERS}"), &[&db])
                .await
                .and_then(|row| row.try_get(0))
                .map_err(failed)?;
            if others > 0 {
                return Err(sessions_refused(db, Some(others)));
            }
            Ok(0)
        }
    }

    fn sessions_refused(db: &str, count: Option<i64>) -> String {
        let who = match count {
            Some(1) => "1 other session is".to_string(),
            Some(n) => format!("{n} other sessions are"),
            None => "other sessions are".to_string(),
        };
        format!(
            "not restoring database {db}: {who} connected to it; `terminate_sessions: true` \
             allows ending them (the database was not changed)"
        )
    }

    fn quote_ident(name: &str) -> String {
        format!("\"{}\"", name.replace('"', "\"\""))
    }

    /// One line: the server's message for database errors, the cause chain otherwise.
    fn describe(e: &tokio_postgres::Error) -> String {
        match e.as_db_error() {
            Some(db) => format!("{}: {}", db.severity(), db.message()),
            None => e.to_string(),
        }
    }

    /// Runs a client tool; Err: the line of its stderr that says why.
    async fn run(cmd: &mut Command, program: &str) -> Result<Vec<u8>, String> {
        let out = cmd.output().await.map_err(|e| {
            format!("cannot run {program}: {e} (is the PostgreSQL client installed?)")
        })?;
        if out.status.success() {
            return Ok(out.stdout);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines = || stderr.lines().map(str::trim).filter(|l| !l.is_empty());
        // pg_dump may follow its error with `detail:` lines; the error says more.
        let why = lines()
            .rev()
            .find(|l| l.contains(" error: "))
            .or_else(|| lines().next_back())
            .map_or_else(|| out.status.to_string(), str::to_string);
        Err(why)
    }

    struct Listing {
        /// TOC entries `pg_restore` would restore (none for an empty database).
        entries: usize,
        /// The database the archive was dumped from.
        dbname: Option<String>,
    }

    async fn list_archive(file: &Path) -> Result<Listing, String> {
        let mut cmd = Command::new("pg_restore");
        cmd.arg("--list")
            .arg(file)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let out = run(&mut cmd, "pg_restore").await?;
        let text = String::from_utf8_lossy(&out);
        let entries = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
            .count();
        let dbname = text.lines().find_map(|l| {
            let comment = l.strip_prefix(';')?.trim_start();
            comment.strip_prefix("dbname: ").map(str::to_string)
        });
        if dbname.is_none() {
            return Err("pg_restore --list: no archive header".to_string());
        }
        Ok(Listing { entries, dbname })
    }
}

mod sqlite {
    use rusqlite::backup::{Backup as OnlineBackup, StepResult};
    use rusqlite::types::ValueRef;
    use rusqlite::{Connection, OpenFlags};

    use super::*;

    /// How long a backup or restore waits for another connection's lock.
    const BUSY_LIMIT: Duration = Duration::from_secs(10);
    const BUSY_PAUSE: Duration = Duration::from_millis(50);

    /// `sqlite:PATH` or `sqlite://PATH`; a relative PATH is against the workdir.
    fn path_of(step: &MigrateStep, env: &Env) -> Result<PathBuf, String> {
        let url = step.database.expose();
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| format!("{}: not a `sqlite:PATH` URL", step.database))?;
        // Connection options (`?mode=rwc`) are for the application, not for us.
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() || path == ":memory:" {
            return Err(format!("{}: names no database file", step.database));
        }
        Ok(env.workdir.join(path))
    }

    /// Runs SQLite's blocking calls off the async workers.
    async fn blocking<T: Send + 'static>(
        work: impl FnOnce() -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        tokio::task::spawn_blocking(work)
            .await
            .unwrap_or_else(|e| Err(format!("SQLite task failed: {e}")))
    }

    pub(super) async fn backup(
        step: &MigrateStep,
        env: &Env,
        dir: &Path,
        name: &str,
    ) -> Result<Backup, String> {
        let source = path_of(step, env)?;
        let shown = step.database.to_string();
        let path = dir.join(format!("{name}.sqlite3"));
        let started = Instant::now();
        blocking(move || {
            let partial = partial_path(&path);
            let _ = std::fs::remove_file(&partial);
            let result = copy(&source, &partial)
                .map_err(|e| format!("backup of {shown} failed: {e}"))
                .and_then(|()| {
                    check(&partial).map_err(|e| format!("backup of {shown} is unreadable: {e}"))
                })
                .and_then(|tables| {
                    std::fs::rename(&partial, &path).map_err(|e| {
                        format!("cannot move the backup to {}: {e}", path.display())
                    })?;
                    let bytes = std::fs::metadata(&path)
                        .map_err(|e| format!("cannot read the backup {}: {e}", path.display()))?
                        .len();
                    Ok(Backup {
                        path: path.clone(),
                        bytes,
                        duration: started.elapsed(),
                        detail: format!("quick_check: ok, {tables} tables"),
                    })
                });
            if result.is_err() {
                let _ = std::fs::remove_file(&partial);
            }
            result
        })
        .await
    }

    /// The online backup API: a consistent copy while other connections write.
    fn copy(source: &Path, dest: &Path) -> Result<(), String> {
        // Read-only: a missing database is an error, not a new empty file to back up.
        let src = Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| e.to_string())?;
        let mut dst = Connection::open(dest).map_err(|e| e.to_string())?;
        let backup = OnlineBackup::new(&src, &mut dst).map_err(|e| e.to_string())?;
        // All pages in one step: a write between steps would restart the copy, forever
        // on a busy database.
        let mut waited = Duration::ZERO;
        loop {
            match backup.step(-1).map_err(|e| e.to_string())? {
                StepResult::Done => return Ok(()),
                StepResult::More => {}
                _ if waited >= BUSY_LIMIT => {
                    return Err(format!("database locked for {}", seconds(waited)));
                }
                _ => {
                    std::thread::sleep(BUSY_PAUSE);
                    waited += BUSY_PAUSE;
                }
            }
        }
    }

    /// `PRAGMA quick_check` on a copy; Ok: how many tables it holds.
    fn check(path: &Path) -> Result<i64, String> {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| e.to_string())?;
        let verdict: String = conn
            .query_row("PRAGMA quick_check", [], |row| row.get(0))
            .map_err(|e| e.to_string())?;
        if verdict != "ok" {
            return Err(format!("quick_check: {verdict}"));
        }
        conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            [],
            |row| row.get(0),
        )
        .map_err(|e| e.to_string())
    }

    pub(super) async fn verify(
        step: &MigrateStep,
        env: &Env,
        queries: &[VerifyQuery],
    ) -> Vec<QueryResult> {
        let path = path_of(step, env);
        let shown = step.database.to_string();
        let queries = queries.to_vec();
        let failed_all = queries.clone();
        let results = blocking(move || {
            let path = path?;
            // Not created if missing: verify reads what the migration left.
            let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
                .map_err(|e| format!("cannot open {shown}: {e}"))?;
            Ok(queries
                .iter()
                .map(|q| match first_cell(&conn, &q.query) {
                    Ok(actual) => QueryResult::ran(q, actual),
                    Err(e) => QueryResult::failed(q, e.to_string()),
                })
                .collect())
        })
        .await;
        results.unwrap_or_else(|e| {
            failed_all
                .iter()
                .map(|q| QueryResult::failed(q, e.clone()))
                .collect()
        })
    }

    fn first_cell(conn: &Connection, query: &str) -> rusqlite::Result<Option<String>> {
        let mut stmt = conn.prepare(query)?;
        let mut rows = stmt.query([])?;
        let Some(row) = rows.next()? else {
            return Ok(None);
        };
        Ok(match row.get_ref(0)? {
            ValueRef::Null => None,
            ValueRef::Integer(i) => Some(i.to_string()),
            ValueRef::Real(f) => Some(f.to_string()),
            ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
        })
    }

    pub(super) async fn restore(
        step: &MigrateStep,
        env: &Env,
        backup: &Path,
    ) -> Result<String, String> {
        let target = path_of(step, env)?;
        let shown = step.database.to_string();
        let backup = backup.to_path_buf();
        blocking(move || {
            let started = Instant::now();
            let file = backup.display();
            // Restoring from a missing file would copy an empty database over this one.
            if !backup.is_file() {
                return Err(format!("not restoring {shown}: backup {file} does not exist"));
            }
            let tables = check(&backup)
                .map_err(|e| format!("not restoring {shown}: backup {file} is unreadable: {e}"))?;
            let mut conn = Connection::open(&target)
                .and_then(|c| c.busy_timeout(BUSY_LIMIT).map(|()| c))
                .map_err(|e| format!("not restoring {shown}: cannot open it: {e}"))?;
            conn.restore(rusqlite::MAIN_DB, &backup, rusqlite::backup::NO_PROGRESS)
                .map_err(|e| format!("restore of {shown} from {file} failed: {e}"))?;
            Ok(format!(
                "restored {shown} from {file} in {} (copied the backup's {tables} tables over the database)",
                seconds(started.elapsed())
            ))
        })
        .await
    }
}
