//! `migrate` backups, restores and verify queries against a real PostgreSQL
//! (`LIFTOFF_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`, a
//! superuser) and real SQLite files. Each test works in a database of its own, dropped
//! when the test ends, pass or fail.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use liftoff_checks::migrate::{self, QueryResult};
use liftoff_checks::{Env, Redactor};
use liftoff_plan::StepKind;
use liftoff_plan::checks::MigrateStep;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

const PASSWORD: &str = "pw-s3cret";

fn base_url() -> String {
    std::env::var("LIFTOFF_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// The base URL with its database replaced.
fn url_for(dbname: &str) -> String {
    let base = base_url();
    let (without_query, query) = match base.split_once('?') {
        Some((b, q)) => (b.to_string(), format!("?{q}")),
        None => (base.clone(), String::new()),
    };
    let authority_start = without_query.find("://").map_or(0, |i| i + 3);
    let server = match without_query[authority_start..].find('/') {
        Some(i) => &without_query[..authority_start + i],
        None => &without_query,
    };
    format!("{server}/{dbname}{query}")
}

/// The URL with a password the server (trust auth) ignores, to catch leaks.
fn with_password(url: &str) -> String {
    let start = url.find("://").expect("URL has a scheme") + 3;
    let at = url[start..].find('@').expect("URL names a user") + start;
    let user = url[start..at].split(':').next().unwrap_or_default();
    format!("{}{user}:{PASSWORD}{}", &url[..start], &url[at..])
}

fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}_{}_{nanos}_{n}", std::process::id())
}

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!("cannot connect to the test PostgreSQL (LIFTOFF_TEST_PG_URL): {e}")
        });
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A database for one test, dropped (with its sessions) when the test ends.
struct TestDb {
    name: String,
    url: String,
}

impl TestDb {
    async fn create() -> Self {
        let name = unique_name("liftoff_mig");
        connect(&base_url())
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the test database");
        Self {
            url: url_for(&name),
            name,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .arg(base_url())
            .args(["-q", "-c"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .output();
    }
}

/// A `migrate` step as a plan declares it, `${DB}` resolving to `database`.
fn migrate_step(database: &str, verify: &str, terminate_sessions: bool) -> MigrateStep {
    let source = format!(
        r#"
version: 1
name: migrate-test
service: shop
steps:
  - migrate:
      database: "${{DB}}"
      command: "true"
      verify: {verify}
      restore_on_rollback: true
      terminate_sessions: {terminate_sessions}
"#
    );
    let plan = liftoff_plan::parse(&source, &|name| {
        (name == "DB").then(|| database.to_string())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    match plan.steps.into_iter().next().map(|s| s.kind) {
        Some(StepKind::Migrate(m)) => *m,
        other => panic!("expected a migrate step, got {other:?}"),
    }
}

const SELECT_ONE: &str = r#"[{query: "select 1", expect: 1}]"#;

/// The secrets the driver hands the redactor: the plan's variable values.
fn env(workdir: &Path, secrets: &[&str]) -> Env {
    Env {
        workdir: workdir.to_path_buf(),
        vars: vec![],
        prometheus: None,
        redactor: Redactor::new(secrets.iter().copied()),
    }
}

/// Tables and columns of schema `public`, then every table's rows in order, as text.
async fn pg_snapshot(client: &Client) -> Vec<String> {
    let columns = text_rows(
        client,
        "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns \
         WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
    )
    .await;
    let tables = text_rows(
        client,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' \
         ORDER BY table_name",
    )
    .await;
    let mut snapshot = columns;
    for table in tables {
        snapshot.push(format!("table {table}"));
        snapshot.extend(text_rows(client, &format!("SELECT * FROM \"{table}\" ORDER BY 1")).await);
    }
    snapshot
}

/// Each row's values joined by `|`.
async fn text_rows(client: &Client, query: &str) -> Vec<String> {
    let messages = client.simple_query(query).await.expect(query);
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or("NULL"))
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            _ => None,
        })
        .collect()
}

fn assert_all_passed(results: &[QueryResult]) {
    for r in results {
        assert!(r.passed, "verify query failed: {r:?}");
    }
}

#[tokio::test]
async fn postgres_restore_returns_schema_and_rows_to_backup_time() {
    let db = TestDb::create().await;
    let client = connect(&db.url).await;
    client
        .batch_execute(
            "CREATE TABLE orders (id int PRIMARY KEY, status text NOT NULL, total numeric(10,2));
             INSERT INTO orders VALUES (1, 'new', 9.50), (2, 'paid', 20.00), (3, 'new', NULL);",
        )
        .await
        .unwrap();
    let before = pg_snapshot(&client).await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("backups/shop");
    let step = migrate_step(
        &db.url,
        r#"[{query: "select count(*) from audit", expect: 0},
            {query: "select count(*) from orders where note = 'migrated'", expect: 3},
            {query: "select status from orders where id = 1", expect: shipped}]"#,
        true,
    );
    let env = env(work.path(), &[&db.url]);

    let backup = migrate::backup(&step, &env, &dir, "before-v2")
        .await
        .expect("backup");
    assert_eq!(backup.path, dir.join("before-v2.dump"));
    assert!(backup.bytes > 0);
    assert_eq!(backup.bytes, std::fs::metadata(&backup.path).unwrap().len());
    assert_eq!(backup.detail, "pg_restore --list: 3 entries"); // table, its data, its key
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "backup directory is private");
    assert!(!dir.join("before-v2.dump.partial").exists());

    client
        .batch_execute(
            "CREATE TABLE audit (id serial PRIMARY KEY, what text);
             ALTER TABLE orders ADD COLUMN note text;
             UPDATE orders SET status = 'shipped', note = 'migrated';",
        )
        .await
        .unwrap();
    let results = migrate::verify(&step, &env, &step.verify).await;
    assert_all_passed(&results);
    assert_eq!(results[2].actual.as_deref(), Some("shipped"));
    drop(client);

    let done = migrate::restore(&step, &env, &backup.path)
        .await
        .expect("restore");
    assert!(
        done.starts_with(&format!("restored {} from ", db.name))
            && done.contains("dropped and recreated the database"),
        "{done}"
    );

    let client = connect(&db.url).await;
    let after = pg_snapshot(&client).await;
    assert_eq!(after, before);
    assert!(!after.iter().any(|line| line.contains("audit")));
}

/// A first deploy migrates an empty database: its archive lists no entries, and is fine.
#[tokio::test]
async fn postgres_backup_and_restore_of_an_empty_database() {
    let db = TestDb::create().await;
    let work = tempfile::tempdir().unwrap();
    let env = env(work.path(), &[&db.url]);
    let step = migrate_step(&db.url, SELECT_ONE, true);
    let backup = migrate::backup(&step, &env, work.path(), "empty")
        .await
        .expect("backup");
    assert_eq!(backup.detail, "pg_restore --list: 0 entries");

    let client = connect(&db.url).await;
    client
        .batch_execute("CREATE TABLE created_by_migration (v int)")
        .await
        .unwrap();
    drop(client);
    migrate::restore(&step, &env, &backup.path)
        .await
        .expect("restore");
    let client = connect(&db.url).await;
    assert!(pg_snapshot(&client).await.is_empty());
}

#[tokio::test]
async fn postgres_restore_ends_other_sessions_only_when_allowed() {
    let db = TestDb::create().await;
    let setup = connect(&db.url).await;
    setup
        .batch_execute("CREATE TABLE t (v int); INSERT INTO t VALUES (1);")
        .await
        .unwrap();
    drop(setup);
    let work = tempfile::tempdir().unwrap();
    let env = env(work.path(), &[&db.url]);
    let polite = migrate_step(&db.url, SELECT_ONE, false);
    let backup = migrate::backup(&polite, &env, work.path(), "b")
        .await
        .expect("backup");

    let other = connect(&db.url).await;
    other
        .batch_execute("INSERT INTO t VALUES (2)")
        .await
        .unwrap();
    let refused = migrate::restore(&polite, &env, &backup.path)
        .await
        .expect_err("restore with another session connected");
    assert!(
        refused.contains("other session") && refused.contains("terminate_sessions: true"),
        "{refused}"
    );
    // Nothing changed: the session lives, the row written after the backup is there.
    assert_eq!(text_rows(&other, "SELECT count(*) FROM t").await, ["2"]);

    let forceful = MigrateStep {
        terminate_sessions: true,
        ..polite
    };
    let done = migrate::restore(&forceful, &env, &backup.path)
        .await
        .expect("restore ending sessions");
    // Ours, and maybe the backend of a connection closed a moment ago.
    assert!(
        done.contains("; ended ") && done.contains(" other session"),
        "{done}"
    );
    assert!(
        other.simple_query("SELECT 1").await.is_err(),
        "the other session was ended"
    );
    let client = connect(&db.url).await;
    assert_eq!(text_rows(&client, "SELECT count(*) FROM t").await, ["1"]);
}

#[tokio::test]
async fn postgres_backup_of_missing_database_fails_without_leaking_password() {
    let work = tempfile::tempdir().unwrap();
    let missing = unique_name("liftoff_mig_missing");
    let url = with_password(&url_for(&missing));
    let step = migrate_step(&url, SELECT_ONE, false);
    let env = env(work.path(), &[&url]);
    let dir = work.path().join("backups");

    let err = migrate::backup(&step, &env, &dir, "b")
        .await
        .expect_err("backup of a missing database");
    assert!(
        err.starts_with(&format!("pg_dump of database {missing} failed: ")),
        "{err}"
    );
    assert!(err.contains("does not exist"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
    assert!(!err.contains('\n'), "one line: {err}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "no file left");

    let results = migrate::verify(&step, &env, &step.verify).await;
    let error = results[0]
        .error
        .as_deref()
        .expect("connection failure reported");
    assert!(
        !results[0].passed && error.contains("does not exist"),
        "{error}"
    );
    assert!(!error.contains(PASSWORD), "{error}");

    // A database that exists, reached with a password in the URL.
    let db = TestDb::create().await;
    let url = with_password(&db.url);
    let step = migrate_step(&url, SELECT_ONE, true);
    let env = self::env(work.path(), &[&url]);
    let backup = migrate::backup(&step, &env, &dir, "b")
        .await
        .expect("backup");
    assert!(!format!("{backup:?}").contains(PASSWORD));
    let done = migrate::restore(&step, &env, &backup.path)
        .await
        .expect("restore");
    assert!(!done.contains(PASSWORD), "{done}");
}

/// A role for one test, dropped when the test ends (after the databases declared later).
struct TestRole(String);

impl Drop for TestRole {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .arg(base_url())
            .args(["-q", "-c"])
            .arg(format!("DROP ROLE IF EXISTS {}", self.0))
            .output();
    }
}

#[tokio::test]
async fn postgres_failed_restore_says_database_is_missing_and_how_to_finish() {
    let role = TestRole(unique_name("liftoff_mig_role"));
    let db = TestDb::create().await;
    let admin = connect(&base_url()).await;
    admin
        .batch_execute(&format!("CREATE ROLE {}", role.0))
        .await
        .unwrap();
    let client = connect(&db.url).await;
    client
        .batch_execute(&format!(
            "CREATE TABLE t (v int); INSERT INTO t VALUES (1); ALTER TABLE t OWNER TO {};",
            role.0
        ))
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let env = env(work.path(), &[&db.url]);
    let step = migrate_step(&db.url, SELECT_ONE, true);
    let backup = migrate::backup(&step, &env, work.path(), "b")
        .await
        .expect("backup");
    // The archive now names an owner the server no longer has: pg_restore fails after
    // the drop.
    client
        .batch_execute(&format!(
            "ALTER TABLE t OWNER TO postgres; DROP OWNED BY {};",
            role.0
        ))
        .await
        .unwrap();
    drop(client);
    admin
        .batch_execute(&format!("DROP ROLE {}", role.0))
        .await
        .unwrap();

    let err = migrate::restore(&step, &env, &backup.path)
        .await
        .expect_err("restore whose pg_restore fails");
    assert!(
        err.starts_with(&format!(
            "database {} was dropped and pg_restore failed: ",
            db.name
        )) && err.contains(&format!("role \"{}\" does not exist", role.0))
            && err.contains("now missing or partly restored"),
        "{err}"
    );
    let (_, manual) = err
        .split_once("or run: ")
        .expect("a command to finish by hand");
    assert!(!manual.contains("--no-password") && manual.contains("pg_restore --create"));

    // The command given finishes the job once the cause is fixed.
    admin
        .batch_execute(&format!("CREATE ROLE {}", role.0))
        .await
        .unwrap();
    let out = std::process::Command::new("sh")
        .args(["-c", manual])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{manual}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let client = connect(&db.url).await;
    assert_eq!(text_rows(&client, "SELECT count(*) FROM t").await, ["1"]);
    drop(client);

    // So does restoring again.
    let done = migrate::restore(&step, &env, &backup.path)
        .await
        .expect("restore again");
    assert!(done.contains("dropped and recreated"), "{done}");
}

#[tokio::test]
async fn postgres_restore_refuses_a_foreign_or_missing_backup_and_keeps_the_database() {
    let db = TestDb::create().await;
    let other = TestDb::create().await;
    let work = tempfile::tempdir().unwrap();
    let env = env(work.path(), &[&db.url, &other.url]);
    let step = migrate_step(&db.url, SELECT_ONE, true);
    let client = connect(&db.url).await;
    client
        .batch_execute("CREATE TABLE keep (v int)")
        .await
        .unwrap();

    let foreign = migrate::backup(
        &migrate_step(&other.url, SELECT_ONE, true),
        &env,
        work.path(),
        "other",
    )
    .await
    .expect("backup of the other database");
    let err = migrate::restore(&step, &env, &foreign.path)
        .await
        .expect_err("restore from another database's backup");
    assert!(
        err.contains(&format!("holds database {}", other.name)),
        "{err}"
    );

    let err = migrate::restore(&step, &env, &work.path().join("nope.dump"))
        .await
        .expect_err("restore from a missing file");
    assert!(err.contains("unreadable"), "{err}");

    assert_eq!(text_rows(&client, "SELECT count(*) FROM keep").await, ["0"]);
}

#[tokio::test]
async fn postgres_verify_reports_mismatch_with_actual_value_and_query_errors() {
    let db = TestDb::create().await;
    let work = tempfile::tempdir().unwrap();
    let env = env(work.path(), &[&db.url]);
    let step = migrate_step(
        &db.url,
        r#"[{query: "select 41 + 1", expect: 43},
            {query: "select * from no_such_table", expect: 1},
            {query: "select null", expect: null},
            {query: "select 1 where false", expect: "< 5"},
            {query: "select 2.5::numeric, 'ignored'", expect: "< 3"}]"#,
        false,
    );
    let results = migrate::verify(&step, &env, &step.verify).await;
    let [mismatch, broken, null, no_row, compare] = results.as_slice() else {
        panic!("one result per query: {results:?}");
    };
    assert_eq!(
        mismatch,
        &QueryResult {
            query: "select 41 + 1".to_string(),
            expected: "= 43".to_string(),
            actual: Some("42".to_string()),
            passed: false,
            error: None,
        }
    );
    assert!(!broken.passed && broken.actual.is_none());
    let error = broken.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("no_such_table") && error.contains("does not exist"),
        "{error}"
    );
    assert!(null.passed && null.actual.is_none(), "{null:?}");
    assert!(
        !no_row.passed && no_row.actual.is_none() && no_row.error.is_none(),
        "{no_row:?}"
    );
    assert!(
        compare.passed && compare.actual.as_deref() == Some("2.5"),
        "{compare:?}"
    );
}

/// Tables' definitions, then their rows, as text.
fn sqlite_snapshot(conn: &rusqlite::Connection) -> Vec<String> {
    let mut stmt = conn
        .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap();
    let tables: Vec<(String, String)> = stmt
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut snapshot = Vec::new();
    for (name, sql) in tables {
        snapshot.push(sql);
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{name}\" ORDER BY 1"))
            .unwrap();
        let columns = stmt.column_count();
        let rows = stmt
            .query_map([], |row| {
                (0..columns)
                    .map(|i| {
                        row.get::<_, rusqlite::types::Value>(i)
                            .map(|v| format!("{v:?}"))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(|values| values.join("|"))
            })
            .unwrap();
        snapshot.extend(rows.map(Result::unwrap));
    }
    snapshot
}

#[tokio::test]
async fn sqlite_restore_returns_schema_and_rows_to_backup_time() {
    let work = tempfile::tempdir().unwrap();
    let conn = rusqlite::Connection::open(work.path().join("app.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, status TEXT NOT NULL, total REAL);
         INSERT INTO orders VALUES (1, 'new', 9.5), (2, 'paid', 20), (3, 'new', NULL);",
    )
    .unwrap();
    let before = sqlite_snapshot(&conn);
    // Relative: resolves against the workdir.
    let step = migrate_step(
        "sqlite:app.db",
        r#"[{query: "select count(*) from audit", expect: 0},
            {query: "select total from orders where id = 1", expect: 9.5},
            {query: "select status from orders where id = 2", expect: shipped}]"#,
        false,
    );
    let env = env(work.path(), &[]);
    let dir = work.path().join("backups");

    let backup = migrate::backup(&step, &env, &dir, "before-v2")
        .await
        .expect("backup");
    assert_eq!(backup.path, dir.join("before-v2.sqlite3"));
    assert_eq!(backup.bytes, std::fs::metadata(&backup.path).unwrap().len());
    assert!(backup.bytes > 0);
    assert_eq!(backup.detail, "quick_check: ok, 1 tables");

    conn.execute_batch(
        "CREATE TABLE audit (id INTEGER PRIMARY KEY, what TEXT);
         ALTER TABLE orders ADD COLUMN note TEXT;
         UPDATE orders SET status = 'shipped', note = 'migrated';",
    )
    .unwrap();
    let results = migrate::verify(&step, &env, &step.verify).await;
    assert_all_passed(&results);
    assert_eq!(results[1].actual.as_deref(), Some("9.5"));

    // The service's connection stays open across the restore, as it would in production.
    let done = migrate::restore(&step, &env, &backup.path)
        .await
        .expect("restore");
    assert!(done.starts_with("restored ${DB} from "), "{done}");
    let after = sqlite_snapshot(&conn);
    assert_eq!(after, before);
    assert!(!after.iter().any(|line| line.contains("audit")));
}

#[tokio::test]
async fn sqlite_backup_of_missing_file_fails_and_restore_from_missing_file_keeps_data() {
    let work = tempfile::tempdir().unwrap();
    let env = env(work.path(), &[]);
    let step = migrate_step("sqlite:missing.db", SELECT_ONE, false);
    let err = migrate::backup(&step, &env, work.path(), "b")
        .await
        .expect_err("backup of a missing database");
    assert!(err.starts_with("backup of ${DB} failed: "), "{err}");
    assert!(
        !work.path().join("missing.db").exists(),
        "not created by the backup"
    );

    let conn = rusqlite::Connection::open(work.path().join("app.db")).unwrap();
    conn.execute_batch("CREATE TABLE keep (v INTEGER); INSERT INTO keep VALUES (7);")
        .unwrap();
    let step = migrate_step("sqlite:app.db", SELECT_ONE, false);
    let err = migrate::restore(&step, &env, &work.path().join("nope.sqlite3"))
        .await
        .expect_err("restore from a missing file");
    assert!(err.contains("does not exist"), "{err}");
    let kept: i64 = conn
        .query_row("SELECT v FROM keep", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, 7);
}

#[tokio::test]
async fn sqlite_verify_reports_mismatch_with_actual_value_and_query_errors() {
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("app.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (3);")
        .unwrap();
    let step = migrate_step(
        &format!("sqlite://{}", path.display()),
        r#"[{query: "select v from t", expect: 4},
            {query: "select nope from t", expect: 3},
            {query: "select 'a' || 'b'", expect: ab}]"#,
        false,
    );
    let results = migrate::verify(&step, &env(work.path(), &[]), &step.verify).await;
    assert!(!results[0].passed, "{:?}", results[0]);
    assert_eq!(results[0].actual.as_deref(), Some("3"));
    assert_eq!(results[0].expected, "= 4");
    assert!(!results[1].passed);
    let error = results[1].error.as_deref().unwrap_or_default();
    assert!(error.contains("no such column"), "{error}");
    assert!(results[2].passed, "{:?}", results[2]);
}
