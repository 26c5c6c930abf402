use std::sync::Arc;

use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use liftoff_api as api;
use liftoff_driver::{Driver, DriverError, LaunchRequest};
use liftoff_engine::{Decision, Event};
use serde::Deserialize;

use crate::{auth, views};

#[derive(Clone)]
pub struct AppState {
    pub driver: Arc<Driver>,
    pub admin_hash: Arc<str>,
    pub router: Arc<liftoff_router::Router>,
    pub flags: Arc<crate::flags::FlagService>,
}

pub fn router(state: AppState) -> Router {
    let mutating = Router::new()
        .route("/launches", post(create_launch))
        .route("/checks", post(run_checks))
        .route("/launches/{id}/approve", post(approve))
        .route("/launches/{id}/abort", post(abort))
        .route("/launches/{id}/rollback", post(rollback))
        .route("/launches/{id}/promote", post(promote))
        .route("/launches/{id}/resume", post(resume))
        .route("/routes/{name}/maintenance", post(maintenance))
        .route("/schedules/{id}/cancel", post(cancel_schedule))
        .route("/status/messages", post(crate::status_page::post_message))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let reads = Router::new()
        .route("/launches", get(list_launches))
        .route("/launches/{id}", get(launch_status))
        .route("/launches/{id}/journal", get(journal))
        .route("/routes", get(list_routes))
        .route("/schedules", get(list_schedules))
        .route("/launches/{id}/report", get(crate::report::report));
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
        .route("/metrics", get(metrics))
        .route("/status", get(crate::status_page::html))
        .route("/status.json", get(crate::status_page::json))
        .nest(api::API_PREFIX, mutating.merge(reads))
        .merge(crate::flags::router(state.flags.clone()))
        .merge(crate::ofrep::router(state.flags.clone()))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .with_state(state)
}

async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(token) if !state.admin_hash.is_empty() && auth::hash(token) == *state.admin_hash => {
            next.run(req).await
        }
        Some(_) => ApiError::unauthorized("the bearer token is not valid").into_response(),
        None => ApiError::unauthorized("this call needs `Authorization: Bearer <token>`")
            .into_response(),
    }
}

/// An API error: status, stable code, message. Internal details are logged, not sent.
pub struct ApiError {
    status: StatusCode,
    body: api::ErrorBody,
}

impl ApiError {
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: api::ErrorBody {
                error: api::ErrorDetail {
                    code: code.into(),
                    message: message.into(),
                    problems: Vec::new(),
                },
            },
        }
    }

    fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<DriverError> for ApiError {
    fn from(e: DriverError) -> Self {
        match e {
            DriverError::Plan(errors) => {
                let mut err = ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_plan",
                    format!("the plan has {} problem(s)", errors.len()),
                );
                err.body.error.problems = errors
                    .0
                    .into_iter()
                    .map(|d| api::PlanProblem {
                        line: d.location.line,
                        col: d.location.col,
                        message: d.message,
                        hint: d.hint,
                    })
                    .collect();
                err
            }
            DriverError::Invalid(m) => ApiError::new(StatusCode::BAD_REQUEST, "bad_request", m),
            DriverError::Rejected(r) => {
                ApiError::new(StatusCode::CONFLICT, r.code(), r.to_string())
            }
            DriverError::NoSuchLaunch(id) => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no launch with id `{id}`"),
            ),
            DriverError::Conflict(m) => {
                ApiError::new(StatusCode::CONFLICT, "launch_in_progress", m)
            }
            DriverError::NoSuchRoute(name) => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no builtin route named `{name}`"),
            ),
            DriverError::ShuttingDown => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the daemon is shutting down",
            ),
            internal @ (DriverError::Store(_) | DriverError::Journal { .. }) => {
                tracing::error!(error = %internal, "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the daemon log",
                )
            }
        }
    }
}

/// `Json` whose rejections are API errors with a JSON body.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(e) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                e.body_text(),
            )),
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

async fn create_launch(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<api::CreateLaunch>,
) -> ApiResult<(StatusCode, Json<api::Created>)> {
    let id = s
        .driver
        .create(LaunchRequest {
            source: req.plan,
            plan_path: req.plan_path,
            workdir: req.workdir,
            variables: req.variables.into_iter().collect(),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(api::Created { id })))
}

/// Runs the plan's checklist here and now. Behind the token: items run commands.
async fn run_checks(ApiJson(req): ApiJson<api::CheckRequest>) -> ApiResult<Json<api::CheckReport>> {
    let plan = liftoff_plan::parse(&req.plan, &|name| req.variables.get(name).cloned())
        .map_err(DriverError::Plan)?;
    let workdir = std::path::PathBuf::from(&req.workdir);
    if !workdir.is_absolute() || !workdir.is_dir() {
        return Err(DriverError::Invalid(format!(
            "workdir `{}` is not an existing absolute directory",
            req.workdir
        ))
        .into());
    }
    Ok(Json(crate::check::run(&plan, workdir).await))
}

async fn send(s: &AppState, id: &str, event: Event) -> ApiResult<Json<api::LaunchStatus>> {
    s.driver.send(id, event).await?;
    Ok(Json(status_of(s, id)?))
}

async fn approve(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiJson(r): ApiJson<api::ApproveRequest>,
) -> ApiResult<Json<api::LaunchStatus>> {
    let event = Event::Approve {
        role: r.role,
        by: r.by,
        comment: r.comment,
    };
    send(&s, &id, event).await
}

async fn abort(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiJson(r): ApiJson<api::ActorRequest>,
) -> ApiResult<Json<api::LaunchStatus>> {
    send(
        &s,
        &id,
        Event::Abort {
            by: r.by,
            comment: r.comment,
        },
    )
    .await
}

async fn rollback(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiJson(r): ApiJson<api::ActorRequest>,
) -> ApiResult<Json<api::LaunchStatus>> {
    send(
        &s,
        &id,
        Event::Rollback {
            by: r.by,
            comment: r.comment,
        },
    )
    .await
}

async fn promote(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiJson(r): ApiJson<api::ActorRequest>,
) -> ApiResult<Json<api::LaunchStatus>> {
    send(&s, &id, Event::Promote { by: r.by }).await
}

async fn resume(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiJson(r): ApiJson<api::ResumeRequest>,
) -> ApiResult<Json<api::LaunchStatus>> {
    let decision = r.decision.map(|d| match d {
        api::ResumeDecision::Retry => Decision::Retry,
        api::ResumeDecision::Skip => Decision::Skip,
    });
    send(&s, &id, Event::Resume { by: r.by, decision }).await
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<usize>,
}

async fn list_launches(
    State(s): State<AppState>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<api::LaunchSummary>>> {
    let rows = s.driver.list(q.limit.unwrap_or(50).min(1000))?;
    Ok(Json(
        rows.into_iter()
            .map(|r| api::LaunchSummary {
                id: r.id,
                name: r.name,
                service: r.service,
                status: r.status,
                created_at: r.created_at,
            })
            .collect(),
    ))
}

async fn launch_status(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<api::LaunchStatus>> {
    Ok(Json(status_of(&s, &id)?))
}

fn status_of(s: &AppState, id: &str) -> ApiResult<api::LaunchStatus> {
    let snap = s.driver.snapshot(id)?;
    let mut status = views::status(&snap, &s.router);
    status.deployment_log = s
        .driver
        .deployment_log_path(&snap.row)
        .map(|p| p.display().to_string());
    Ok(status)
}

async fn maintenance(
    State(s): State<AppState>,
    Path(name): Path<String>,
    ApiJson(r): ApiJson<api::MaintenanceRequest>,
) -> ApiResult<Json<api::RouteView>> {
    s.driver.set_route_maintenance(&name, r.on).await?;
    tracing::info!(route = %name, on = r.on, by = %r.by, "maintenance switched by hand");
    let status = s.router.status();
    let route = status
        .iter()
        .find(|rt| rt.name == name)
        .ok_or(DriverError::NoSuchRoute(name.clone()))?;
    Ok(Json(views::route(route)))
}

#[derive(Deserialize)]
struct ScheduleQuery {
    launch: Option<String>,
}

async fn list_schedules(
    State(s): State<AppState>,
    Query(q): Query<ScheduleQuery>,
) -> ApiResult<Json<Vec<api::ScheduleView>>> {
    let rows = s.driver.schedules(q.launch.as_deref())?;
    Ok(Json(rows.iter().map(views::schedule).collect()))
}

async fn cancel_schedule(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<api::ActorRequest>,
) -> ApiResult<Json<api::ScheduleView>> {
    let row = s.driver.cancel_schedule(&id, &req.by)?;
    Ok(Json(views::schedule(&row)))
}

async fn list_routes(State(s): State<AppState>) -> Json<Vec<api::RouteView>> {
    Json(s.router.status().iter().map(views::route).collect())
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let mut body = s.router.render_metrics();
    body.push_str(&s.flags.render_metrics());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

#[derive(Deserialize)]
struct JournalQuery {
    after: Option<i64>,
}

async fn journal(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<JournalQuery>,
) -> ApiResult<Json<Vec<api::JournalEntry>>> {
    let snap = s.driver.snapshot(&id)?;
    let after = q.after.unwrap_or(0);
    Ok(Json(
        snap.records
            .iter()
            .filter(|(seq, _)| *seq > after)
            .map(|(seq, r)| api::JournalEntry {
                seq: *seq,
                at: r.at().to_string(),
                kind: r.kind().to_string(),
                summary: snap.launch.summarize(r),
            })
            .collect(),
    ))
}
