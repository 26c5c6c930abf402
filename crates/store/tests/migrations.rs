//! The state database the first release wrote (`tests/fixtures/first-release/`, see its
//! README) opens with today's store: migrated once, in order, every record still read.

use std::path::{Path, PathBuf};

use liftoff_store::{Corruption, Entry, Migrated, SCHEMA_VERSION, Store, StoreError};

const DONE: &str = "69fc347739";
const ROLLED_BACK: &str = "0dfd6edc17";
const APPROVAL: &str = "92e83af266";
const PAUSED: &str = "edfcd42827";
const RUNNING: &str = "07389f7f9c";

/// A copy of the fixture (opening a database writes to it), and its database's path.
fn first_release() -> (tempfile::TempDir, PathBuf) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/first-release");
    let dir = tempfile::tempdir().unwrap();
    for file in ["liftoff.db", "liftoff.db-wal"] {
        std::fs::copy(from.join(file), dir.path().join(file)).unwrap();
    }
    let db = dir.path().join("liftoff.db");
    (dir, db)
}

fn kinds(store: &Store, id: &str) -> Vec<String> {
    store
        .journal(id)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

fn user_version(db: &Path) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

#[test]
fn the_first_releases_database_is_migrated_and_reads_back() {
    let (_dir, db) = first_release();
    assert_eq!(user_version(&db), 0, "the fixture predates schema versions");

    let store = Store::open(&db).unwrap();
    assert_eq!(
        store.migrated(),
        Some(Migrated {
            from: 0,
            to: SCHEMA_VERSION
        })
    );
    let rows: Vec<(String, String, bool)> = store
        .launches(10)
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.status, r.finished))
        .collect();
    let row = |id: &str, status: &str, finished| (id.to_string(), status.to_string(), finished);
    assert_eq!(
        rows,
        [
            row(RUNNING, "running", false),
            row(PAUSED, "paused", false),
            row(APPROVAL, "waiting-approval", false),
            row(ROLLED_BACK, "rolled-back", true),
            row(DONE, "succeeded", true),
        ]
    );
    assert_eq!(
        store.unfinished_launches().unwrap(),
        [APPROVAL, PAUSED, RUNNING]
    );

    // Every journal passes its (unchained) checksums and ends where the registry says.
    let done = kinds(&store, DONE);
    assert_eq!(done.first().map(String::as_str), Some("launch_started"));
    assert_eq!(done.last().map(String::as_str), Some("launch_ended"));
    assert!(
        kinds(&store, ROLLED_BACK).contains(&"rollback_started".to_string()),
        "{:?}",
        kinds(&store, ROLLED_BACK)
    );
    for id in [APPROVAL, PAUSED, RUNNING] {
        assert_eq!(
            kinds(&store, id).last().map(String::as_str),
            Some("step_started"),
            "{id} was in a step when the first release was killed"
        );
    }
    assert_eq!(
        store.variables(DONE).unwrap(),
        [("GREETING".to_string(), "greetings-secret-value".to_string())]
    );
    assert!(store.token_hash("admin").unwrap().is_some());
    let plan = store.launch(APPROVAL).unwrap().plan_source;
    assert!(plan.contains("approve: { role: sre }"), "{plan}");

    // Carrying on: a new record chains onto the old ones, and tables the first release
    // did not have are there.
    let before = kinds(&store, PAUSED).len();
    store
        .append(
            PAUSED,
            &[Entry {
                kind: "step_interrupted".into(),
                at: "2026-12-07T10:00:00Z".into(),
                payload: "{}".into(),
            }],
            "running",
            false,
        )
        .unwrap();
    assert!(store.routes().unwrap().is_empty());
    assert!(store.flags().unwrap().is_empty());
    assert!(store.schedules(None).unwrap().is_empty());
    drop(store);
    let store = Store::open(&db).unwrap();
    assert_eq!(kinds(&store, PAUSED).len(), before + 1);
    assert_eq!(user_version(&db), SCHEMA_VERSION);
}

#[test]
fn a_migrated_database_is_not_migrated_again() {
    let (_dir, db) = first_release();
    drop(Store::open(&db).unwrap());
    let store = Store::open(&db).unwrap();
    assert_eq!(store.migrated(), None);
    drop(store);

    // Migration 1 recorded where each journal ended. Run again, it would move that end
    // to whatever is there now, and a record lost since would go unnoticed.
    let last = {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let last: i64 = conn
            .query_row(
                "SELECT MAX(seq) FROM journal WHERE launch_id = ?1",
                [DONE],
                |r| r.get(0),
            )
            .unwrap();
        conn.execute(
            "DELETE FROM journal WHERE launch_id = ?1 AND seq = ?2",
            rusqlite::params![DONE, last],
        )
        .unwrap();
        last
    };
    let store = Store::open(&db).unwrap();
    assert_eq!(store.migrated(), None);
    let err = store.journal(DONE).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Corrupt { seq, problem: Corruption::Missing, .. } if seq == last
        ),
        "{err}"
    );
    assert_eq!(user_version(&db), SCHEMA_VERSION);
}
