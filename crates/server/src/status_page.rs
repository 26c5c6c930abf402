//! The public status page (`/status`, `/status.json`): each service's state, driven by
//! its launches: `maintenance` while its route serves the maintenance page, `degraded`
//! while a rollback runs, `major_outage` when a rollback failed (a human must look),
//! `operational` otherwise.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use liftoff_api as api;

use axum::http::StatusCode;

use crate::error::{ApiError, ApiJson};
use crate::routes::{AppState, blocking};

/// How many launches and messages each service shows.
const HISTORY: usize = 10;
const MESSAGES: usize = 5;

/// The longest message, and the longest service or author name, in bytes: a status
/// page is read by people, and every message is kept.
pub const MAX_MESSAGE_BYTES: usize = 4096;
pub const MAX_NAME_BYTES: usize = 256;

pub fn page(s: &AppState) -> Result<api::StatusPage, ApiError> {
    let launches = s.driver.list(1000)?;
    let mut by_service: BTreeMap<String, Vec<api::LaunchSummary>> = BTreeMap::new();
    for l in launches {
        let history = by_service.entry(l.service.clone()).or_default();
        if history.len() < HISTORY {
            history.push(api::LaunchSummary {
                id: l.id,
                name: l.name,
                service: l.service,
                status: l.status,
                created_at: l.created_at,
            });
        }
    }
    let maintenance: Vec<String> = s
        .fleet
        .status()
        .into_iter()
        .filter(|r| r.maintenance)
        .map(|r| r.name)
        .collect();
    for name in &maintenance {
        by_service.entry(name.clone()).or_default();
    }
    let mut services = Vec::with_capacity(by_service.len());
    for (service, history) in by_service {
        let (state, summary) = state_of(&service, history.first(), maintenance.contains(&service));
        let messages = s
            .driver
            .store()
            .status_messages(&service, MESSAGES)
            .map_err(liftoff_driver::DriverError::from)?
            .into_iter()
            .map(|m| api::StatusMessageView {
                message: m.message,
                by: m.by,
                at: m.at,
            })
            .collect();
        services.push(api::ServiceState {
            service,
            state: state.into(),
            summary,
            history,
            messages,
        });
    }
    let overall = services
        .iter()
        .map(|s| s.state.as_str())
        .max_by_key(|s| severity(s))
        .unwrap_or("operational")
        .to_string();
    Ok(api::StatusPage {
        generated_at: jiff::Timestamp::now().to_string(),
        overall,
        services,
    })
}

fn severity(state: &str) -> u8 {
    match state {
        "major_outage" => 3,
        "degraded" => 2,
        "maintenance" => 1,
        _ => 0,
    }
}

fn state_of(
    service: &str,
    newest: Option<&api::LaunchSummary>,
    maintenance: bool,
) -> (&'static str, String) {
    let launch = |l: &api::LaunchSummary| format!("launch {} ({})", l.id, l.name);
    match newest {
        Some(l) if l.status == "failed" => (
            "major_outage",
            format!(
                "{}: the rollback did not complete; operators are investigating",
                launch(l)
            ),
        ),
        Some(l) if l.status == "rolling-back" => (
            "degraded",
            format!("{} is rolling back to the previous version", launch(l)),
        ),
        _ if maintenance => (
            "maintenance",
            format!("{service} is down for planned maintenance"),
        ),
        Some(l)
            if !matches!(
                l.status.as_str(),
                "succeeded" | "rolled-back" | "aborted" | "no-go"
            ) =>
        {
            (
                "operational",
                format!("{} in progress ({})", launch(l), l.status),
            )
        }
        Some(l) => (
            "operational",
            format!("last change: {} {}", launch(l), l.status),
        ),
        None => ("operational", String::new()),
    }
}

pub async fn json(State(s): State<AppState>) -> Result<Json<api::StatusPage>, ApiError> {
    blocking(move || Ok(Json(page(&s)?))).await
}

pub async fn html(State(s): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let page = blocking(move || page(&s)).await?;
    Ok(([(header::CACHE_CONTROL, "no-cache")], Html(render(&page))))
}

/// Operators post a message on a service's status.
pub async fn post_message(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<api::PostStatusMessage>,
) -> Result<Json<api::StatusPage>, ApiError> {
    if req.service.trim().is_empty() || req.message.trim().is_empty() {
        return Err(ApiError::bad_request(
            "`service` and `message` must not be empty",
        ));
    }
    for (field, value, max) in [
        ("message", &req.message, MAX_MESSAGE_BYTES),
        ("service", &req.service, MAX_NAME_BYTES),
        ("by", &req.by, MAX_NAME_BYTES),
    ] {
        if value.len() > max {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "too_long",
                format!(
                    "`{field}` is {} bytes long; at most {max} are kept",
                    value.len()
                ),
            ));
        }
    }
    let message = liftoff_store::StatusMessage {
        service: req.service,
        message: req.message,
        by: req.by,
        at: jiff::Timestamp::now().to_string(),
    };
    blocking(move || {
        s.driver
            .store()
            .post_status_message(&message)
            .map_err(liftoff_driver::DriverError::from)?;
        Ok(Json(page(&s)?))
    })
    .await
}

fn render(page: &api::StatusPage) -> String {
    let label = |state: &str| match state {
        "major_outage" => "Major outage",
        "degraded" => "Degraded",
        "maintenance" => "Maintenance",
        _ => "Operational",
    };
    let mut out = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Status</title>\
         <meta http-equiv=\"refresh\" content=\"30\"><style>\
         body{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;color:#222}\
         .s{border:1px solid #ddd;border-radius:6px;padding:1rem;margin:1rem 0}\
         .badge{padding:.15rem .5rem;border-radius:4px;color:#fff;font-weight:600}\
         .operational{background:#2e7d32}.maintenance{background:#1565c0}\
         .degraded{background:#ef6c00}.major_outage{background:#c62828}\
         table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.2rem .4rem;border-bottom:1px solid #eee}\
         small{color:#666}</style></head><body>",
    );
    out.push_str(&format!(
        "<h1>System status: <span class=\"badge {}\">{}</span></h1><small>updated {}</small>",
        escape(&page.overall),
        label(&page.overall),
        escape(&page.generated_at)
    ));
    for s in &page.services {
        out.push_str(&format!(
            "<div class=\"s\"><h2>{} <span class=\"badge {}\">{}</span></h2><p>{}</p>",
            escape(&s.service),
            escape(&s.state),
            label(&s.state),
            escape(&s.summary)
        ));
        for m in &s.messages {
            out.push_str(&format!(
                "<p><b>{}</b> <small>{} · {}</small></p>",
                escape(&m.message),
                escape(&m.by),
                escape(&m.at)
            ));
        }
        out.push_str("<table><tr><th>Launch</th><th>Name</th><th>Result</th><th>Started</th></tr>");
        for l in &s.history {
            out.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&l.id),
                escape(&l.name),
                escape(&l.status),
                escape(&l.created_at)
            ));
        }
        out.push_str("</table></div>");
    }
    out.push_str("</body></html>\n");
    out
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
