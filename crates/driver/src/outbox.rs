//! The delivery worker: takes notices from the store's outbox, delivers them, and
//! settles them with a `notified` record.
//!
//! - At least once. A notice leaves the outbox only when its delivery is settled, in
//!   the transaction that journals the outcome; a daemon killed during an attempt makes
//!   it again after the restart. Every attempt carries the notice's idempotency key
//!   ([`notice_key`]: launch, journal record, event, channel), so receivers can drop a
//!   second copy: the `Idempotency-Key` header on HTTP channels, the webhook payload's
//!   `id`, the email's `Message-ID`.
//! - One attempt at a time per notice, with the plan's `notify.retry`: a failed attempt
//!   is counted on the row with the time of the next (`backoff` doubling, at most
//!   [`MAX_BACKOFF`], or the server's longer `Retry-After`), so backoff survives
//!   restarts; after `attempts`, or an answer another attempt would not change, the
//!   notice is given up on (`delivered: false`). An attempt cut short by shutdown is not
//!   counted.
//! - One (launch, channel) at a time and in order: a notice waits for the one before it
//!   on its channel. Channels and launches do not wait for each other.
//! - The channel comes from the launch's plan (its URL and secrets from the launch's
//!   variables) at the moment of delivery; the outbox holds only its name.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use liftoff_engine::Record;
use liftoff_notify::{Notice, Notifier, StatuspageState, backoff_before};
use liftoff_plan::Plan;
use liftoff_plan::notify::{ChannelKind, MAX_BACKOFF, RetrySpec};
use liftoff_store::{Entry, NoticeRow, Settled, Store};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::blocking;

/// How long the worker sleeps with nothing due (a new notice wakes it sooner).
const IDLE: Duration = Duration::from_secs(60);

pub(crate) struct Outbox {
    store: Arc<Store>,
    notifier: Arc<Notifier>,
    wake: Notify,
    /// Counts settlements: the `Announce` step waits on it.
    settled: watch::Sender<u64>,
}

/// The idempotency key of one notice on one channel: the same on every attempt and
/// after every restart. Printable ASCII (a header value); the channel's name is
/// percent-encoded beyond `[A-Za-z0-9._-]`.
pub(crate) fn notice_key(launch_id: &str, seq: i64, event: &str, channel: &str) -> String {
    let mut channel_part = String::new();
    for b in channel.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            channel_part.push(char::from(b));
        } else {
            channel_part.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{launch_id}:{seq}:{event}:{channel_part}")
}

/// What to do with a notice after an attempt.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    Settle(Settled),
    RetryAfter(Duration),
}

/// Pure: the fate of a notice whose `attempts`th attempt (1-based) was not delivered.
pub(crate) fn after_failure(
    retry: &RetrySpec,
    attempts: u32,
    permanent: bool,
    retry_after: Option<Duration>,
) -> Next {
    if permanent || attempts >= retry.attempts.max(1) {
        return Next::Settle(Settled::Failed);
    }
    let wait = backoff_before(retry, attempts + 1).max(retry_after.unwrap_or_default());
    Next::RetryAfter(wait.min(MAX_BACKOFF))
}

impl Outbox {
    pub fn new(store: Arc<Store>, notifier: Arc<Notifier>) -> Arc<Self> {
        Arc::new(Self {
            store,
            notifier,
            wake: Notify::new(),
            settled: watch::channel(0).0,
        })
    }

    /// New notices are in the store.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn settled(&self) -> watch::Receiver<u64> {
        self.settled.subscribe()
    }

    /// Deliver until `shutdown`; what is pending then stays for the next start.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut plans: HashMap<String, Result<Arc<Plan>, String>> = HashMap::new();
        let mut busy: HashMap<tokio::task::Id, (String, String)> = HashMap::new();
        let mut attempts = JoinSet::new();
        loop {
            let store = self.store.clone();
            let pending = match blocking(move || store.pending_notices()).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the notification outbox");
                    Vec::new()
                }
            };
            let in_flight: HashSet<(String, String)> = busy.values().cloned().collect();
            let now = jiff::Timestamp::now();
            let mut sleep = IDLE;
            for row in pending {
                let lane = (row.launch_id.clone(), row.channel.clone());
                if in_flight.contains(&lane) {
                    continue;
                }
                let due: jiff::Timestamp = row.next_attempt_at.parse().unwrap_or(now);
                if due > now {
                    let wait = Duration::try_from(due.duration_since(now)).unwrap_or_default();
                    sleep = sleep.min(wait);
                    continue;
                }
                if !plans.contains_key(&row.launch_id) {
                    let plan = self.plan(&row.launch_id).await;
                    plans.insert(row.launch_id.clone(), plan);
                }
                let plan = plans[&row.launch_id].clone();
                let (this, cancel) = (self.clone(), shutdown.child_token());
                let handle = attempts.spawn(async move { this.attempt(row, plan, cancel).await });
                busy.insert(handle.id(), lane);
            }
            tokio::select! {
                () = shutdown.cancelled() => {
                    // Attempts see the same token: each returns without counting itself.
                    while attempts.join_next().await.is_some() {}
                    return;
                }
                () = self.wake.notified() => {}
                Some(done) = attempts.join_next_with_id() => {
                    let id = match done {
                        Ok((id, ())) => id,
                        Err(e) => e.id(),
                    };
                    busy.remove(&id);
                }
                () = tokio::time::sleep(sleep) => {}
            }
        }
    }

    async fn plan(&self, launch_id: &str) -> Result<Arc<Plan>, String> {
        let (store, id) = (self.store.clone(), launch_id.to_string());
        let row = blocking(move || store.launch(&id))
            .await
            .map_err(|e| e.to_string())?;
        crate::load_plan(&self.store, &row)
            .map(Arc::new)
            .map_err(|_| "the launch's plan no longer reads".to_string())
    }

    /// One attempt at `row`, and what follows from it in the store.
    async fn attempt(
        &self,
        row: NoticeRow,
        plan: Result<Arc<Plan>, String>,
        cancel: CancellationToken,
    ) {
        let key = notice_key(&row.launch_id, row.seq, &row.event, &row.channel);
        let found = plan.and_then(|plan| {
            let spec = plan.notify.clone().ok_or("the plan has no `notify`")?;
            let channel = spec
                .channels
                .iter()
                .find(|c| c.name == row.channel)
                .cloned()
                .ok_or_else(|| format!("the plan has no channel `{}`", row.channel))?;
            let notice = Notice::from_stored(&key, &row.notice)
                .map_err(|e| format!("the stored notice does not read: {e}"))?;
            Ok((spec, channel, notice))
        });
        let (spec, channel, notice) = match found {
            Ok(found) => found,
            Err(why) => {
                return self
                    .settle(&row, Settled::Failed, row.attempts, &why, None)
                    .await;
            }
        };
        let rendered = liftoff_notify::render(&channel, &spec.templates, &notice);
        let statuspage = match &channel.kind {
            ChannelKind::Statuspage(_) => StatuspageState {
                incident_id: match row.incident_id.clone() {
                    Some(id) => Some(id),
                    None => {
                        let (store, launch, name) = (
                            self.store.clone(),
                            row.launch_id.clone(),
                            row.channel.clone(),
                        );
                        tokio::task::spawn_blocking(move || {
                            crate::notify::journaled_incident(&store, &launch, &name)
                        })
                        .await
                        .ok()
                        .flatten()
                    }
                },
            },
            _ => StatuspageState::default(),
        };
        let once = RetrySpec {
            attempts: 1,
            ..spec.retry
        };
        let d = self
            .notifier
            .deliver(&channel, &rendered, &once, &statuspage, &cancel)
            .await;
        if cancel.is_cancelled() && !d.delivered {
            return;
        }
        let attempts = row.attempts + d.attempts.max(1);
        let incident = d.incident_id.clone().or(row.incident_id.clone());
        let next = if d.delivered {
            Next::Settle(Settled::Delivered)
        } else {
            after_failure(&spec.retry, attempts, d.permanent, d.retry_after)
        };
        match next {
            Next::Settle(settled) => {
                self.settle(&row, settled, attempts, &d.detail, incident)
                    .await;
            }
            Next::RetryAfter(wait) => {
                let at = jiff::Timestamp::now()
                    .checked_add(jiff::SignedDuration::try_from(wait).unwrap_or_default())
                    .unwrap_or_else(|_| jiff::Timestamp::now());
                tracing::info!(launch = %row.launch_id, channel = %row.channel, event = %row.event, attempts, detail = %d.detail, retry_in_ms = wait.as_millis() as u64, "notification attempt failed; will retry");
                let (store, id, detail) = (self.store.clone(), row.id, d.detail.clone());
                let saved = blocking(move || {
                    store.retry_notice(id, &detail, &at.to_string(), d.incident_id.as_deref())
                })
                .await;
                if let Err(e) = saved {
                    tracing::error!(launch = %row.launch_id, error = %e, "cannot record a notification attempt");
                }
            }
        }
    }

    async fn settle(
        &self,
        row: &NoticeRow,
        settled: Settled,
        attempts: u32,
        detail: &str,
        incident_id: Option<String>,
    ) {
        let delivered = settled == Settled::Delivered;
        let record = Record::Notified {
            at: jiff::Timestamp::now(),
            channel: row.channel.clone(),
            event: row.event.clone(),
            delivered,
            attempts,
            detail: detail.to_string(),
            incident_id,
        };
        let entry = match serde_json::to_string(&record) {
            Ok(payload) => Entry {
                kind: record.kind().to_string(),
                at: record.at().to_string(),
                payload,
            },
            Err(e) => {
                tracing::error!(launch = %row.launch_id, error = %e, "cannot journal a notification");
                return;
            }
        };
        if delivered {
            tracing::info!(launch = %row.launch_id, channel = %row.channel, event = %row.event, attempts, "notified");
        } else {
            tracing::warn!(launch = %row.launch_id, channel = %row.channel, event = %row.event, attempts, detail, "notification not delivered");
        }
        let (store, id, detail) = (self.store.clone(), row.id, detail.to_string());
        match blocking(move || store.settle_notice(id, settled, attempts, &detail, &entry)).await {
            Ok(_) => self.settled.send_modify(|n| *n += 1),
            Err(e) => {
                tracing::error!(launch = %row.launch_id, error = %e, "cannot settle a notification")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_printable_and_name_the_notice() {
        assert_eq!(
            notice_key("a1b2c3d4e5", 7, "step_finished", "war room é"),
            "a1b2c3d4e5:7:step_finished:war%20room%20%C3%A9"
        );
        assert_eq!(
            notice_key("a1b2c3d4e5", 7, "step_finished", "audit"),
            notice_key("a1b2c3d4e5", 7, "step_finished", "audit")
        );
    }

    #[test]
    fn failures_back_off_doubling_up_to_the_cap_then_give_up() {
        let retry = RetrySpec {
            attempts: 12,
            backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
        };
        let waits: Vec<Next> = (1..=4)
            .map(|n| after_failure(&retry, n, false, None))
            .collect();
        let secs = |s| Next::RetryAfter(Duration::from_secs(s));
        assert_eq!(waits, [secs(1), secs(2), secs(4), secs(8)]);
        assert_eq!(
            after_failure(&retry, 11, false, None),
            Next::RetryAfter(MAX_BACKOFF)
        );
        assert_eq!(
            after_failure(&retry, 2, false, Some(Duration::from_secs(30))),
            secs(30),
            "a longer Retry-After is honoured"
        );
        assert_eq!(
            after_failure(&retry, 12, false, None),
            Next::Settle(Settled::Failed)
        );
        assert_eq!(
            after_failure(&retry, 1, true, None),
            Next::Settle(Settled::Failed),
            "an answer another attempt would not change"
        );
    }
}
