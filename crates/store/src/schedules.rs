//! Follow-ups (`after:` on a step): commands due at a time, kept here so they outlive
//! the launch that scheduled them and the daemon that will run them.

use rusqlite::{OptionalExtension, Transaction, params};

use crate::{Result, Store};

/// A follow-up to create with the records that announce it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSchedule {
    pub id: String,
    pub step: String,
    /// RFC 3339, UTC: sorts as text.
    pub due_at: String,
    /// The command as written in the plan (variables come from the launch).
    pub command: String,
    pub timeout_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleRow {
    pub id: String,
    pub launch_id: String,
    pub step: String,
    pub due_at: String,
    pub command: String,
    pub timeout_ms: u64,
    /// pending, running, succeeded, failed, cancelled, interrupted.
    pub status: String,
    pub result: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

const COLUMNS: &str =
    "id, launch_id, step, due_at, command, timeout_ms, status, result, created_at, updated_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ScheduleRow> {
    Ok(ScheduleRow {
        id: r.get(0)?,
        launch_id: r.get(1)?,
        step: r.get(2)?,
        due_at: r.get(3)?,
        command: r.get(4)?,
        timeout_ms: r.get::<_, i64>(5)?.max(0) as u64,
        status: r.get(6)?,
        result: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
    })
}

pub(crate) fn insert(
    tx: &Transaction<'_>,
    launch_id: &str,
    s: &NewSchedule,
    now: &str,
) -> Result<()> {
    tx.execute(
        "INSERT INTO schedules (id, launch_id, step, due_at, command, timeout_ms, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![s.id, launch_id, s.step, s.due_at, s.command, s.timeout_ms as i64, now],
    )?;
    Ok(())
}

pub(crate) fn cancel_pending(
    tx: &Transaction<'_>,
    launch_id: &str,
    reason: &str,
    now: &str,
) -> Result<()> {
    tx.execute(
        "UPDATE schedules SET status = 'cancelled', result = ?2, updated_at = ?3
         WHERE launch_id = ?1 AND status = 'pending'",
        params![launch_id, reason, now],
    )?;
    Ok(())
}

impl Store {
    /// Every follow-up, newest due first; of one launch when given.
    pub fn schedules(&self, launch_id: Option<&str>) -> Result<Vec<ScheduleRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM schedules WHERE ?1 IS NULL OR launch_id = ?1 ORDER BY due_at DESC, id"
        ))?;
        let rows = stmt
            .query_map([launch_id], row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn schedule(&self, id: &str) -> Result<Option<ScheduleRow>> {
        let conn = self.conn();
        Ok(conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM schedules WHERE id = ?1"),
                [id],
                row,
            )
            .optional()?)
    }

    /// Pending follow-ups due at or before `now`, oldest first.
    pub fn due_schedules(&self, now: &str) -> Result<Vec<ScheduleRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM schedules WHERE status = 'pending' AND due_at <= ?1 ORDER BY due_at, id"
        ))?;
        let rows = stmt
            .query_map([now], row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// When the next pending follow-up is due.
    pub fn next_due(&self) -> Result<Option<String>> {
        let conn = self.conn();
        Ok(conn.query_row(
            "SELECT MIN(due_at) FROM schedules WHERE status = 'pending'",
            [],
            |r| r.get(0),
        )?)
    }

    /// Move a follow-up from `from` to `to` (with a result); false if it was not in `from`
    /// (cancelled meanwhile, say). The compare-and-set keeps a cancel and a start from
    /// both winning.
    pub fn transition_schedule(
        &self,
        id: &str,
        from: &str,
        to: &str,
        result: Option<&str>,
        now: &str,
    ) -> Result<bool> {
        let conn = self.conn();
        let n = conn.execute(
            "UPDATE schedules SET status = ?3, result = COALESCE(?4, result), updated_at = ?5
             WHERE id = ?1 AND status = ?2",
            params![id, from, to, result, now],
        )?;
        Ok(n == 1)
    }

    /// Follow-ups found running at start-up were cut off by a stop: mark them, never
    /// rerun them silently (a command may have half-run).
    pub fn interrupt_running_schedules(&self, now: &str) -> Result<usize> {
        let conn = self.conn();
        Ok(conn.execute(
            "UPDATE schedules SET status = 'interrupted',
                 result = 'the daemon stopped while it ran; check what it did, then run it by hand if needed',
                 updated_at = ?1
             WHERE status = 'running'",
            [now],
        )?)
    }
}
