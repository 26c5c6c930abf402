use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use liftoff_api as api;
use liftoff_driver::{Driver, DriverError, LaunchRequest};
use liftoff_engine::{Decision, Event};
use serde::Deserialize;

use crate::error::{ApiError, ApiJson};
use crate::{auth, views};

#[derive(Clone)]
pub struct AppState {
    pub driver: Arc<Driver>,
    pub admin_hash: Arc<str>,
    pub router_hash: Arc<str>,
    /// Cancelled when the daemon begins to stop.
    pub stopping: tokio_util::sync::CancellationToken,
    pub fleet: Arc<liftoff_driver::fleet::Fleet>,
    pub flags: Arc<crate::flags::FlagService>,
}

/// Every route, behind the request-body limits and the one error shape.
pub fn router(state: AppState, body: crate::limits::BodyLimits) -> Router {
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
        .route("/routers", get(list_routers))
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
        .merge(crate::fleet::router(crate::fleet::FleetState {
            fleet: state.fleet.clone(),
            router_hash: state.router_hash.clone(),
            stopping: state.stopping.clone(),
        }))
        .merge(crate::flags::router(state.flags.clone()))
        .merge(crate::ofrep::router(state.flags.clone()))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .layer(middleware::from_fn_with_state(
            body,
            crate::limits::read_body,
        ))
        .layer(middleware::from_fn(crate::error::json_errors))
        .with_state(state)
}

async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match auth::bearer(req.headers()) {
        Some(token) if !state.admin_hash.is_empty() && auth::hash(token) == *state.admin_hash => {
            next.run(req).await
        }
        Some(_) => ApiError::unauthorized("the bearer token is not valid").into_response(),
        None => ApiError::unauthorized("this call needs `Authorization: Bearer <token>`")
            .into_response(),
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Store reads and plan decoding run here, off the async workers: a big plan or a slow
/// disk must not stall the API (or `/healthz`) for everyone.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "blocking task failed");
        Err(ApiError::internal())
    })
}

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
    let (req, plan) = blocking(move || {
        let plan = liftoff_plan::parse(&req.plan, &|name| req.variables.get(name).cloned());
        Ok((req, plan))
    })
    .await?;
    let plan = plan.map_err(DriverError::Plan)?;
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
    status_json(s, id).await
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
    status_json(&s, &id).await
}

/// A launch's status: its journal replayed over its re-parsed plan, off the async workers.
async fn status_json(s: &AppState, id: &str) -> ApiResult<Json<api::LaunchStatus>> {
    let (state, owned) = (s.clone(), id.to_string());
    let mut status = blocking(move || status_of(&state, &owned)).await?;
    // HAProxy's and nginx's figures are sampled now, from the running launch's reader.
    if status.traffic.is_none()
        && let Some(figures) = s.driver.external_traffic(id).await
    {
        status.traffic = Some(views::external_route(&figures, status.weight));
    }
    Ok(Json(status))
}

fn status_of(s: &AppState, id: &str) -> ApiResult<api::LaunchStatus> {
    let snap = s.driver.snapshot(id)?;
    let mut status = views::status(&snap, &s.fleet);
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
    blocking(move || {
        let status = s.fleet.status();
        let route = status
            .iter()
            .find(|rt| rt.name == name)
            .ok_or(DriverError::NoSuchRoute(name.clone()))?;
        Ok(Json(views::route(
            route,
            route_settings(&s, &name).as_ref(),
            crate::fleet::views(&s.fleet),
        )))
    })
    .await
}

/// The plan settings a route's upstreams are shown with; a plan that cannot be read is
/// logged (the view then shows the router's address, without credentials).
fn route_settings(s: &AppState, name: &str) -> Option<liftoff_plan::BuiltinRouter> {
    s.driver.route_settings(name).unwrap_or_else(|e| {
        tracing::warn!(route = %name, error = %e, "cannot read the plan of the route's launch");
        None
    })
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

async fn list_routers(State(s): State<AppState>) -> Json<Vec<api::RouterView>> {
    Json(crate::fleet::views(&s.fleet))
}

async fn list_routes(State(s): State<AppState>) -> ApiResult<Json<Vec<api::RouteView>>> {
    blocking(move || {
        let routes = s.fleet.status();
        let routers = crate::fleet::views(&s.fleet);
        Ok(Json(
            routes
                .iter()
                .map(|r| views::route(r, route_settings(&s, &r.name).as_ref(), routers.clone()))
                .collect(),
        ))
    })
    .await
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let mut body = s.fleet.render_metrics();
    let external = s.driver.external_routes().await;
    if !external.is_empty() {
        // The weight each launch last applied, from its journal.
        let driver = s.driver.clone();
        let routes = blocking(move || {
            Ok(external
                .into_iter()
                .map(|f| {
                    let weight = driver
                        .snapshot(&f.launch_id)
                        .ok()
                        .and_then(|snap| snap.launch.weight())
                        .map(|w| w.percent());
                    (f, weight)
                })
                .collect::<Vec<_>>())
        })
        .await
        .unwrap_or_default();
        body.push_str(&crate::external::render(&routes));
    }
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
    let snap = blocking(move || Ok(s.driver.snapshot(&id)?)).await?;
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

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use liftoff_driver::{Driver, Ports};
    use liftoff_store::Store;
    use tower::ServiceExt;

    use super::AppState;

    fn app(db: &Path) -> axum::Router {
        let store = Arc::new(Store::open(db).unwrap());
        let admin_hash = crate::auth::hash("admin");
        let flags = crate::flags::FlagService::open(store.clone(), &admin_hash).unwrap();
        let fleet = Arc::new(liftoff_driver::fleet::Fleet::new());
        let driver = Driver::new(store, Ports::default(), Duration::from_secs(1));
        let state = AppState {
            driver,
            admin_hash: Arc::from(admin_hash),
            router_hash: Arc::from(crate::auth::hash("router")),
            stopping: tokio_util::sync::CancellationToken::new(),
            fleet,
            flags,
        };
        super::router(
            state,
            crate::limits::BodyLimits {
                max_bytes: crate::limits::MAX_BODY_BYTES,
                timeout: Duration::from_secs(10),
            },
        )
    }

    /// Every insert into `tables` fails from now on, as on a full or read-only disk.
    fn fail_writes(db: &Path, tables: &[&str]) {
        let conn = rusqlite::Connection::open(db).unwrap();
        for table in tables {
            conn.execute_batch(&format!(
                "CREATE TRIGGER fail_{table} BEFORE INSERT ON {table} \
                 BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END;"
            ))
            .unwrap();
        }
    }

    async fn post(
        app: &axum::Router,
        path: &str,
        body: serde_json::Value,
    ) -> (StatusCode, serde_json::Value) {
        let req = Request::post(format!("{}{path}", liftoff_api::API_PREFIX))
            .header("authorization", "Bearer admin")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    fn launch(plan: &str, workdir: &str) -> serde_json::Value {
        serde_json::json!({
            "plan": plan,
            "plan_path": "plan.yaml",
            "workdir": workdir,
            "variables": {},
        })
    }

    const PLAN: &str = "version: 1\nname: t\nservice: shop\nsteps:\n  - pause: 1h\n";

    #[tokio::test]
    async fn a_failed_store_write_is_a_503_with_a_code_and_a_bad_request_stays_a_4xx() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let app = app(&db);
        fail_writes(&db, &["launches", "status_messages"]);
        let workdir = dir.path().to_str().unwrap();

        let (status, body) = post(&app, "/launches", launch(PLAN, workdir)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
        assert!(
            !body.to_string().contains("disk I/O error"),
            "internals are logged, not sent: {body}"
        );
        let (status, body) = post(
            &app,
            "/status/messages",
            serde_json::json!({"service": "shop", "message": "slow", "by": "ops"}),
        )
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["code"], "store_unavailable", "{body}");

        // The request's own faults are still the request's.
        let (status, body) = post(&app, "/launches", launch(PLAN, "relative/dir")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"]["code"], "bad_request", "{body}");
        let (status, body) = post(&app, "/launches", launch("version: 1\n", workdir)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["code"], "invalid_plan", "{body}");
    }

    #[tokio::test]
    async fn a_launch_whose_first_record_cannot_be_journaled_is_a_503() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let app = app(&db);
        fail_writes(&db, &["journal"]);
        let workdir = dir.path().to_str().unwrap();
        let (status, body) = post(&app, "/launches", launch(PLAN, workdir)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    }
}
