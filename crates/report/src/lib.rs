//! Launch reports: what happened to one launch, for people who were not watching and
//! for the post-mortem. [`build`] folds the launch and its journal into a [`Report`];
//! [`render`] writes it as Markdown (terminal, GitHub), one self-contained HTML file
//! (inline SVG charts, prints and renders offline) or JSON.
//!
//! Invariants:
//! - pure: no I/O, no tokio, no clock; the caller hands in the launch, its journal and
//!   the time of generation, so the same input always gives the same report;
//! - the report reads only journal records and the plan's names and templates, never a
//!   resolved secret (`Text::expose` is not called here): whatever a record holds was
//!   already redacted before it was journaled;
//! - user text (names, evidence, output) is escaped for the format it lands in.

mod chart;
mod html;
mod markdown;
mod model;
mod text;

pub use model::{
    ApprovalRow, Charts, CheckGroup, CheckRow, EvaluationRow, Evaluations, EventRow, Events,
    Intervention, JudgedWindow, Notification, PassingTally, Point, REPORT_VERSION, Report,
    Rollback, Series, StepRow, Summary, Traffic, TriggerCrossing, TriggerFiring, VersionTraffic,
    build,
};

use jiff::Timestamp;
use liftoff_engine::{Launch, Record};

/// Facts about a launch that live in the registry rather than in its journal.
#[derive(Clone, Debug)]
pub struct Meta {
    pub id: String,
    pub plan_path: String,
    /// When the launch was registered, as the registry stores it.
    pub created_at: String,
    pub generated_at: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Html,
    Json,
}

/// The report of `launch`, whose journal is `records` (`(seq, record)`, in journal
/// order), in `format`.
pub fn render(launch: &Launch, records: &[(i64, Record)], meta: &Meta, format: Format) -> String {
    let report = build(launch, records, meta);
    match format {
        Format::Markdown => markdown::render(&report),
        Format::Html => html::render(&report),
        Format::Json => serde_json::to_string_pretty(&report).expect("a report always serializes"),
    }
}
