//! The routers' side of the API: a long poll for the snapshot and the reports of what
//! they observe. Behind the router token, which opens nothing else (and the admin token
//! does not open these: a router never holds it).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use liftoff_api as api;
use liftoff_driver::fleet::Fleet;
use liftoff_router::export::{Report, ReportAck};
use serde::Deserialize;

use crate::auth;
use crate::error::{ApiError, ApiJson};

/// The longest a snapshot request is held open.
const MAX_WAIT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct FleetState {
    pub fleet: Arc<Fleet>,
    pub router_hash: Arc<str>,
    pub stopping: tokio_util::sync::CancellationToken,
}

pub fn router<S: Clone + Send + Sync + 'static>(state: FleetState) -> axum::Router<S> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/api/v1/router/snapshot", get(snapshot))
        .route("/api/v1/router/report", post(report))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_router_token,
        ))
        .with_state(state)
}

async fn require_router_token(
    State(state): State<FleetState>,
    req: Request,
    next: Next,
) -> Response {
    match auth::bearer(req.headers()) {
        Some(token) if !state.router_hash.is_empty() && auth::hash(token) == *state.router_hash => {
            next.run(req).await
        }
        Some(_) => ApiError::unauthorized("this call needs the router token").into_response(),
        None => ApiError::unauthorized("this call needs `Authorization: Bearer <router token>`")
            .into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotQuery {
    router: String,
    instance: String,
    /// The version the router serves.
    have: u64,
    #[serde(default)]
    wait_ms: u64,
}

/// The snapshot, at once if the router serves another version, else when it changes
/// (or 204 after `wait_ms`). Asking is also the router's acknowledgement of `have`.
async fn snapshot(
    State(s): State<FleetState>,
    Query(q): Query<SnapshotQuery>,
) -> Result<Response, ApiError> {
    check_name(&q.router)?;
    s.fleet.contact(&q.router, &q.instance);
    let mut changes = s.fleet.subscribe();
    let wait = Duration::from_millis(q.wait_ms).min(MAX_WAIT);
    let current = changes.borrow_and_update().clone();
    if current.version != q.have {
        return Ok(Json(current.as_ref().clone()).into_response());
    }
    tokio::select! {
        changed = tokio::time::timeout(wait, changes.changed()) => match changed {
            Ok(Ok(())) => {
                let next = changes.borrow().clone();
                Ok(Json(next.as_ref().clone()).into_response())
            }
            _ => Ok(StatusCode::NO_CONTENT.into_response()),
        },
        () = s.stopping.cancelled() => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

async fn report(
    State(s): State<FleetState>,
    ApiJson(report): ApiJson<Report>,
) -> Result<Json<ReportAck>, ApiError> {
    check_name(&report.router)?;
    s.fleet.report(report);
    Ok(Json(ReportAck {
        daemon: s.fleet.daemon.clone(),
    }))
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_router_name",
            "a router's name is 1-255 printable ASCII characters without quotes or backslashes",
        ))
    }
}

/// The routers as `status` and `GET /api/v1/routers` show them.
pub fn views(fleet: &Fleet) -> Vec<api::RouterView> {
    let desired = fleet.snapshot().version;
    fleet
        .routers()
        .into_iter()
        .map(|r| api::RouterView {
            current: r.applied == desired,
            id: r.id,
            snapshot_version: r.applied,
            last_contact_ms: r.since_contact.as_millis() as u64,
            missing: r.missing,
            listening: r.listening.iter().map(|a| a.to_string()).collect(),
            requests_10s: r.requests_10s,
        })
        .collect()
}
