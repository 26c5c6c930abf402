//! The notification outbox: the notices a transition causes, kept until they are
//! delivered or given up on, so that a notice survives a kill -9.
//!
//! Design notes and invariants:
//! - A notice exists exactly when the journal record that causes it does: both are
//!   written by [`Store::append_with`] in one transaction (record before effect). Its
//!   row names that record (`seq`), the event, and the channel.
//! - A row names its channel by the name the launch's plan gives it, never by its URL
//!   or any other secret: the deliverer reads the channel from the plan, whose
//!   variables live in `launch_variables`. The notice itself is opaque JSON here
//!   (`liftoff-notify`'s stored notice), holding only what messages may show.
//! - Delivery is at least once: a row stays `pending` until [`Store::settle_notice`]
//!   marks it `delivered` or `failed`, in the same transaction as the `notified` record
//!   that journals the outcome. An attempt cut short by a crash leaves it pending.
//! - Failed attempts and the time of the next one are kept on the row
//!   ([`Store::retry_notice`]), so backoff survives restarts.
//! - One channel of one launch hears its notices in order: [`Store::pending_notices`]
//!   hands out only the oldest pending row of each (launch, channel).

use rusqlite::{OptionalExtension, Transaction, params};

use crate::{Entry, Result, Store, insert_entries};

/// A notice a transition causes, written with its records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewNotice {
    /// The index, among the transition's entries, of the record that causes it.
    pub record: usize,
    pub event: String,
    /// The channel's name in the launch's plan.
    pub channel: String,
    /// The notice (JSON, opaque here).
    pub notice: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoticeRow {
    pub id: i64,
    pub launch_id: String,
    /// The journal record that caused it.
    pub seq: i64,
    pub event: String,
    pub channel: String,
    pub notice: String,
    /// `pending`, `delivered` or `failed` (given up).
    pub status: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// RFC 3339, UTC.
    pub next_attempt_at: String,
    /// What the last attempt got (redacted by the deliverer).
    pub detail: Option<String>,
    /// A Statuspage maintenance an earlier attempt of this notice opened.
    pub incident_id: Option<String>,
}

impl NoticeRow {
    pub fn is_pending(&self) -> bool {
        self.status == "pending"
    }
}

const COLUMNS: &str = "id, launch_id, seq, event, channel, notice, status, attempts, \
                       next_attempt_at, detail, incident_id";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<NoticeRow> {
    Ok(NoticeRow {
        id: r.get(0)?,
        launch_id: r.get(1)?,
        seq: r.get(2)?,
        event: r.get(3)?,
        channel: r.get(4)?,
        notice: r.get(5)?,
        status: r.get(6)?,
        attempts: r.get::<_, i64>(7)?.clamp(0, i64::from(u32::MAX)) as u32,
        next_attempt_at: r.get(8)?,
        detail: r.get(9)?,
        incident_id: r.get(10)?,
    })
}

/// Insert `notices`, due at once; `first_seq` is the number of the transition's first
/// record. A notice already there (the same record, event and channel) is left as it is.
pub(crate) fn insert(
    tx: &Transaction<'_>,
    launch_id: &str,
    first_seq: i64,
    notices: &[NewNotice],
    now: &str,
) -> Result<()> {
    for n in notices {
        tx.execute(
            "INSERT OR IGNORE INTO notice_outbox
                 (launch_id, seq, event, channel, notice, next_attempt_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            params![
                launch_id,
                first_seq + n.record as i64,
                n.event,
                n.channel,
                n.notice,
                now
            ],
        )?;
    }
    Ok(())
}

/// How a notice's delivery ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    Delivered,
    /// Given up on: no attempt left, or one that another would not change.
    Failed,
}

impl Store {
    /// The oldest pending notice of each (launch, channel), oldest first, due or not.
    pub fn pending_notices(&self) -> Result<Vec<NoticeRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM notice_outbox o WHERE status = 'pending' AND id =
                 (SELECT MIN(id) FROM notice_outbox p WHERE p.status = 'pending'
                      AND p.launch_id = o.launch_id AND p.channel = o.channel)
             ORDER BY id"
        ))?;
        let rows = stmt.query_map([], row)?;
        rows.collect::<Result<_, _>>().map_err(Into::into)
    }

    /// Every notice of a launch, in the order they were caused.
    pub fn notices(&self, launch_id: &str) -> Result<Vec<NoticeRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM notice_outbox WHERE launch_id = ?1 ORDER BY id"
        ))?;
        let rows = stmt.query_map([launch_id], row)?;
        rows.collect::<Result<_, _>>().map_err(Into::into)
    }

    /// Record notices for a record already journaled (`seq`), unless they are there.
    pub fn enqueue_notices(
        &self,
        launch_id: &str,
        seq: i64,
        notices: &[NewNotice],
        now: &str,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let moved: Vec<NewNotice> = notices
            .iter()
            .map(|n| NewNotice {
                record: 0,
                ..n.clone()
            })
            .collect();
        insert(&tx, launch_id, seq, &moved, now)?;
        tx.commit()?;
        Ok(())
    }

    /// A failed attempt of a pending notice: count it, and when to try next.
    pub fn retry_notice(
        &self,
        id: i64,
        detail: &str,
        next_attempt_at: &str,
        incident_id: Option<&str>,
    ) -> Result<()> {
        self.conn().execute(
            "UPDATE notice_outbox SET attempts = attempts + 1, detail = ?2,
                 next_attempt_at = ?3, incident_id = COALESCE(?4, incident_id)
             WHERE id = ?1 AND status = 'pending'",
            params![id, detail, next_attempt_at, incident_id],
        )?;
        Ok(())
    }

    /// End a pending notice's delivery and journal its outcome (`entry`) in the same
    /// transaction. `attempts` counts every attempt, the last included. False if it was
    /// not pending (settled already): then nothing is written.
    pub fn settle_notice(
        &self,
        id: i64,
        settled: Settled,
        attempts: u32,
        detail: &str,
        entry: &Entry,
    ) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let launch: Option<String> = tx
            .query_row(
                "SELECT launch_id FROM notice_outbox WHERE id = ?1 AND status = 'pending'",
                [id],
                |r| r.get(0),
            )
            .optional()?;
        let Some(launch) = launch else {
            return Ok(false);
        };
        let status = match settled {
            Settled::Delivered => "delivered",
            Settled::Failed => "failed",
        };
        tx.execute(
            "UPDATE notice_outbox SET status = ?2, attempts = ?3, detail = ?4, settled_at = ?5
             WHERE id = ?1",
            params![id, status, i64::from(attempts), detail, entry.at],
        )?;
        insert_entries(&tx, &launch, std::slice::from_ref(entry))?;
        tx.commit()?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Followups, NewLaunch};

    fn entry(kind: &str) -> Entry {
        Entry {
            kind: kind.into(),
            at: "2026-12-06T10:00:00Z".into(),
            payload: format!("{{\"type\":\"{kind}\"}}"),
        }
    }

    fn notice(record: usize, event: &str, channel: &str) -> NewNotice {
        NewNotice {
            record,
            event: event.into(),
            channel: channel.into(),
            notice: "{}".into(),
        }
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        store
            .create_launch(&NewLaunch {
                id: "a".into(),
                name: "n".into(),
                service: "s".into(),
                created_at: "t".into(),
                plan_source: "p".into(),
                plan_path: "p".into(),
                workdir: "/".into(),
                variables: vec![],
            })
            .unwrap();
        (dir, store)
    }

    fn append(store: &Store, id: &str, kinds: &[&str], notices: &[NewNotice]) -> Result<()> {
        let entries: Vec<Entry> = kinds.iter().map(|k| entry(k)).collect();
        let now = Followups {
            now: "2026-12-06T10:00:00Z".into(),
            ..Followups::default()
        };
        store.append_with(id, &entries, "running", false, &now, notices)
    }

    /// The journal records of the notices handed out next.
    fn heads(store: &Store) -> Vec<i64> {
        let pending = store.pending_notices().unwrap();
        pending.iter().map(|n| n.seq).collect()
    }

    #[test]
    fn notices_are_written_with_their_records_and_handed_out_in_order_per_channel() {
        let (_dir, store) = store();
        append(&store, "a", &["one"], &[]).unwrap();
        let two = [
            notice(0, "step_started", "hook"),
            notice(1, "step_finished", "hook"),
        ];
        append(&store, "a", &["two", "three"], &two).unwrap();
        append(&store, "a", &["four"], &[notice(0, "succeeded", "mail")]).unwrap();
        // A transition that fails writes neither its records nor its notices.
        assert!(append(&store, "nope", &["x"], &[notice(0, "failed", "hook")]).is_err());

        let all = store.notices("a").unwrap();
        let seqs: Vec<(i64, &str)> = all.iter().map(|n| (n.seq, n.event.as_str())).collect();
        assert_eq!(
            seqs,
            [(2, "step_started"), (3, "step_finished"), (4, "succeeded")]
        );
        assert_eq!(heads(&store), [2, 4], "one head per channel, the oldest");

        // A failed attempt is counted on the row; settling journals the outcome.
        let first = &all[0];
        store
            .retry_notice(first.id, "HTTP 503", "2026-12-06T10:00:02Z", None)
            .unwrap();
        let again = &store.notices("a").unwrap()[0];
        assert_eq!(
            (again.attempts, again.next_attempt_at.as_str()),
            (1, "2026-12-06T10:00:02Z")
        );
        assert!(
            store
                .settle_notice(
                    first.id,
                    Settled::Delivered,
                    2,
                    "HTTP 200",
                    &entry("notified")
                )
                .unwrap()
        );
        assert!(
            !store
                .settle_notice(first.id, Settled::Failed, 3, "x", &entry("notified"))
                .unwrap()
        );
        let kinds: Vec<String> = store
            .journal("a")
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["one", "two", "three", "four", "notified"]);
        assert_eq!(heads(&store), [3, 4]);
    }
}
