//! Messages operators post on the status page ("we are migrating the booking database").

use rusqlite::params;

use crate::{Result, Store};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusMessage {
    pub service: String,
    pub message: String,
    pub by: String,
    pub at: String,
}

impl Store {
    pub fn post_status_message(&self, m: &StatusMessage) -> Result<()> {
        self.conn().execute(
            "INSERT INTO status_messages (service, message, posted_by, at) VALUES (?1, ?2, ?3, ?4)",
            params![m.service, m.message, m.by, m.at],
        )?;
        Ok(())
    }

    /// The newest `limit` messages of a service, newest first.
    pub fn status_messages(&self, service: &str, limit: usize) -> Result<Vec<StatusMessage>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT service, message, posted_by, at FROM status_messages
             WHERE service = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![service, limit as i64], |r| {
                Ok(StatusMessage {
                    service: r.get(0)?,
                    message: r.get(1)?,
                    by: r.get(2)?,
                    at: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}
