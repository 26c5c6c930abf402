//! Tells people about launches: Slack, a signed webhook, email and Atlassian Statuspage.
//!
//! Two halves. [`render`] is pure: a [`Notice`] (what happened, with the live figures)
//! and the plan's templates in, a [`Rendered`] message for one channel out. [`Notifier`]
//! is the I/O: it delivers a rendered message, retrying with exponential backoff, and
//! returns a [`Delivery`] for the caller to journal. The caller picks the channels
//! (`channel.receives(notice.event)`) and decides what a failed delivery means
//! (`channel.required`); this crate never fails anything else.
//!
//! The daemon does not hold notices in memory: it writes each one to the store's outbox
//! ([`Notice::to_stored`], version 1) with the journal record that causes it, and its
//! delivery worker (`liftoff-driver`'s `outbox.rs`) calls [`Notifier::deliver`] for one
//! attempt at a time, keeping the count and the backoff ([`backoff_before`]) in the
//! outbox. A notice's `id` is its idempotency key: every HTTP request of a delivery
//! carries it as `Idempotency-Key` (the webhook payload's `id` and the email's
//! `Message-ID` too), the same on every attempt and after a restart.
//!
//! Invariants:
//! - A channel's secrets (the Slack URL, the webhook URL and its signing secret, the SMTP
//!   password, the Statuspage API key) appear in no `detail`, no `Debug` output and no
//!   rendered message: errors are built from what failed, not from library error text
//!   that may carry a URL, and the result is redacted with the channel's secrets.
//! - A delivery ends: at most `retry.attempts` attempts, each within `retry.timeout`,
//!   and the cancellation token stops it at once.
//! - Templates were checked when the plan was loaded, so rendering cannot fail.

mod deliver;
mod email;
mod render;
mod statuspage;
mod stored;

use std::time::Duration;

pub use deliver::{Delivery, Notifier, backoff_before, webhook_signature};
pub use liftoff_plan::notify::{Channel, ChannelKind, Event, NotifySpec, RetrySpec, Template};
pub use render::{
    ComponentStatus, IncidentChange, Payload, Rendered, StatuspageUpdate, default_template, render,
};
pub use statuspage::StatuspageState;

/// What happened in a launch, with the figures a message may show. Built by the caller
/// from the launch's state; every optional field is simply left out of messages (and
/// `null` in webhook payloads) when it is `None`.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    /// Unique per notice and the same on every retry and after a restart (e.g. the
    /// journal position of the record that caused it): receivers deduplicate with it.
    pub id: String,
    pub event: Event,
    pub at: jiff::Timestamp,
    pub service: String,
    pub launch_id: String,
    /// The plan's `name`.
    pub launch_name: String,
    pub step: Option<String>,
    /// The candidate's traffic share.
    pub weight: Option<liftoff_plan::Weight>,
    pub figures: Option<Figures>,
    /// Since the launch started.
    pub elapsed: Option<Duration>,
    /// Who approved (an approval step, a promotion).
    pub approver: Option<String>,
    /// The role an approval waits for.
    pub role: Option<String>,
    /// Why: a trigger's condition, a failure, a rollback's cause. Already redacted.
    pub reason: Option<String>,
    /// A verdict: `GO`, `NO-GO`, `passed`, `failed`, `inconclusive`, "All systems healthy".
    pub verdict: Option<String>,
    /// When the next checkpoint is due, as time since the launch started.
    pub next_checkpoint: Option<Duration>,
}

impl Notice {
    pub fn new(
        id: impl Into<String>,
        event: Event,
        at: jiff::Timestamp,
        service: impl Into<String>,
        launch_id: impl Into<String>,
        launch_name: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            event,
            at,
            service: service.into(),
            launch_id: launch_id.into(),
            launch_name: launch_name.into(),
            step: None,
            weight: None,
            figures: None,
            elapsed: None,
            approver: None,
            role: None,
            reason: None,
            verdict: None,
            next_checkpoint: None,
        }
    }
}

/// What each version served over a recent window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Figures {
    pub stable: Option<VersionFigures>,
    pub candidate: Option<VersionFigures>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct VersionFigures {
    pub requests: u64,
    /// Failed / requests, a ratio (0.05 is 5%); `None` without requests.
    pub error_rate: Option<f64>,
    pub p95_ms: Option<f64>,
    pub rps: f64,
}
