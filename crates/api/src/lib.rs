//! API v1 bodies. A compatibility boundary: fields are added with defaults, never
//! renamed. Times are RFC 3339 strings; weights are percentages (0–100).

pub mod flags;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const API_PREFIX: &str = "/api/v1";

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateLaunch {
    /// The plan file's text.
    pub plan: String,
    /// Where it came from, for status and reports.
    pub plan_path: String,
    /// Absolute directory relative paths in the plan resolve against.
    pub workdir: String,
    /// Values of the variables the plan references (`${VAR}`), from the caller's
    /// environment. Secrets: stored apart from the journal, never returned.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Created {
    pub id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    pub role: String,
    pub by: String,
    #[serde(default)]
    pub comment: Option<String>,
}

/// Body of abort, rollback and promote.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActorRequest {
    pub by: String,
    #[serde(default)]
    pub comment: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceRequest {
    pub on: bool,
    pub by: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResumeDecision {
    Retry,
    Skip,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResumeRequest {
    pub by: String,
    /// Required when the launch needs a decision; absent to end a pause early.
    #[serde(default)]
    pub decision: Option<ResumeDecision>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `unauthorized`, `invalid_plan`, `not_found`,
    /// `bad_request`, `wrong_role`, `launch_ended`, ...
    pub code: String,
    pub message: String,
    /// For `invalid_plan`: every problem with its position.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<PlanProblem>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PlanProblem {
    pub line: usize,
    pub col: usize,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NotificationView {
    pub at: String,
    pub channel: String,
    pub event: String,
    pub delivered: bool,
    pub attempts: u32,
    pub detail: String,
}

/// The public status page: each service's state, driven by its launches.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StatusPage {
    pub generated_at: String,
    /// The worst state of any service.
    pub overall: String,
    pub services: Vec<ServiceState>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServiceState {
    pub service: String,
    /// operational, maintenance, degraded or major_outage.
    pub state: String,
    /// One line: why this state.
    pub summary: String,
    /// The newest launches, newest first.
    pub history: Vec<LaunchSummary>,
    /// Operators' messages, newest first.
    pub messages: Vec<StatusMessageView>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StatusMessageView {
    pub message: String,
    pub by: String,
    pub at: String,
}

/// `POST /api/v1/status/messages`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PostStatusMessage {
    pub service: String,
    pub message: String,
    pub by: String,
}

/// A follow-up command (`after:` on a step).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScheduleView {
    pub id: String,
    pub launch_id: String,
    pub step: String,
    pub due_at: String,
    /// As written in the plan.
    pub command: String,
    /// pending, running, succeeded, failed, cancelled, interrupted.
    pub status: String,
    pub result: Option<String>,
    pub updated_at: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LaunchSummary {
    pub id: String,
    pub name: String,
    pub service: String,
    pub status: String,
    pub created_at: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LaunchStatus {
    pub id: String,
    pub name: String,
    pub service: String,
    pub plan_path: String,
    /// pending, running, waiting-approval, paused, needs-decision, rolling-back,
    /// rolled-back, succeeded, failed, aborted.
    pub status: String,
    pub terminal: bool,
    /// Why it ended, or why it is rolling back.
    pub reason: Option<String>,
    /// Candidate share last confirmed applied, in percent.
    pub weight: Option<f64>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    /// The step in flight.
    pub current_step: Option<String>,
    /// What a human must decide, when status is needs-decision.
    pub decision_needed: Option<String>,
    /// `traffic pinned to stable`, when the plan has a router.
    /// Every notification outcome, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<NotificationView>,
    /// The human-readable log file this launch writes, on the daemon's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_log: Option<String>,
    /// The go/no-go checklist, for plans with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checklist: Option<StepView>,
    pub baseline: Option<StepView>,
    pub steps: Vec<StepView>,
    /// `traffic back to stable` (first) then the plan's rollback steps, once a
    /// rollback has begun.
    pub rollback: Vec<StepView>,
    pub promote: Option<StepView>,
    /// The live split and per-version figures, for plans with the builtin router.
    #[serde(default)]
    pub traffic: Option<RouteView>,
    /// The latest gate, comparison and trigger evaluations (newest last), each with its
    /// values: why the launch went on, held or rolled back. The journal has them all.
    #[serde(default)]
    pub evaluations: Vec<EvaluationView>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvaluationView {
    pub at: String,
    /// The step that evaluated it; absent for rollback triggers.
    pub step: Option<String>,
    pub subject: String,
    /// successful, failed, inconclusive; pass/marginal/fail for compare; crossed/clear
    /// for triggers; `fired (rollback)` etc. when a trigger acted.
    pub verdict: String,
    pub value: Option<f64>,
    pub reason: String,
    pub dry_run: bool,
}

/// A route (the builtin router's, or a running launch's HAProxy or nginx): its split
/// and what each version saw.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RouteView {
    pub name: String,
    /// Where the builtin router listens; for HAProxy and nginx, empty (see `target`).
    pub listen: String,
    /// Candidate share, percent: the one liftoff last applied.
    pub weight: f64,
    pub maintenance: bool,
    pub versions: Vec<VersionView>,
    /// The routers serving the fleet's routes.
    #[serde(default)]
    pub routers: Vec<RouterView>,
    /// The plan's `router.kind`: `builtin`, `haproxy` or `nginx` (older daemons, which
    /// showed only the builtin router, leave it out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<String>,
    /// What liftoff drives, for HAProxy and nginx: `HAProxy backend `app` (runtime API
    /// at /run/haproxy/admin.sock)`, `nginx upstream `shop` (include ...)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Why the versions' figures could not be read now (HAProxy or nginx unreachable);
    /// `versions` is then empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One router of the fleet.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RouterView {
    pub id: String,
    /// The snapshot version it serves.
    pub snapshot_version: u64,
    /// Whether that is the newest snapshot.
    pub current: bool,
    pub last_contact_ms: u64,
    /// Not heard from for 2 s.
    pub missing: bool,
    pub listening: Vec<String>,
    /// Requests it proxied in the last 10 s, all routes.
    pub requests_10s: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VersionView {
    /// `stable` or `candidate`.
    pub version: String,
    pub upstream: String,
    pub in_flight: i64,
    pub healthy: bool,
    /// The `health_failures` signal: failed health checks in a row.
    pub health_failures: u32,
    pub health_checked: bool,
    pub last_health_error: Option<String>,
    pub last_10s: WindowView,
    pub last_60s: WindowView,
    /// Each instance of the version, in the plan's order.
    #[serde(default)]
    pub instances: Vec<InstanceView>,
    /// The fields of this view and its windows that its router cannot tell liftoff
    /// (HAProxy and nginx: `in_flight`, `healthy`, ...; HAProxy also `p50_ms`...): their
    /// values are placeholders (0, false, null), not measurements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_measured: Vec<String>,
}

/// One instance of a version, over the fleet.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InstanceView {
    pub url: String,
    pub healthy: bool,
    pub health_checked: bool,
    pub last_health_error: Option<String>,
    /// Out of the balancer (passive outlier detection) on at least one router.
    pub ejected: bool,
    pub ejections: u64,
    pub in_flight: i64,
    /// Attempts sent to it since its routers started (retries included).
    pub requests: u64,
    pub failures: u64,
}

/// Figures over a window. Rates and latencies are null without requests.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WindowView {
    pub seconds: u64,
    pub requests: u64,
    pub rps: f64,
    pub error_rate: Option<f64>,
    pub errors_upstream_5xx: u64,
    pub errors_connect: u64,
    pub errors_timeout: u64,
    pub client_aborts: u64,
    /// Requests that failed, whatever the source (what `error_rate` is of).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<u64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepView {
    pub name: String,
    /// run, traffic, pause, approve, wait, or `weight` for liftoff's own moves.
    pub kind: String,
    /// pending, running, succeeded, failed, timed-out, cancelled, skipped, interrupted.
    pub status: String,
    pub attempts: u32,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub deadline: Option<String>,
    pub message: Option<String>,
    pub output: Option<String>,
    pub approval: Option<ApprovalView>,
    pub skipped_reason: Option<String>,
    /// Checklist items, smoke requests and verify queries of the current attempt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckView>,
    /// Roles whose sign-off a checklist still waits for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting_for: Vec<String>,
    /// The backup a `migrate` step took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckView {
    pub item: String,
    pub critical: bool,
    /// passed, failed, or pending (not known yet).
    pub result: String,
    pub evidence: String,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BackupView {
    pub path: String,
    pub bytes: u64,
    pub duration_ms: u64,
    pub detail: String,
}

/// `liftoff check` and `POST /api/v1/checks`: a checklist run outside a launch.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckReport {
    /// GO or NO-GO.
    pub verdict: String,
    pub critical_passed: usize,
    pub critical_total: usize,
    pub passed: usize,
    pub total: usize,
    /// The pass rule, in percent.
    pub pass_critical: f64,
    pub pass_overall: f64,
    pub items: Vec<CheckView>,
}

/// Run a plan's checklist on the daemon (from its network vantage point).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckRequest {
    pub plan: String,
    #[serde(default)]
    pub plan_path: String,
    pub workdir: String,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApprovalView {
    pub role: String,
    pub by: String,
    pub comment: Option<String>,
    pub at: String,
}

/// One journal record, with a line for humans.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JournalEntry {
    pub seq: i64,
    pub at: String,
    pub kind: String,
    pub summary: String,
}
