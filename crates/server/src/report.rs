//! `GET /api/v1/launches/{id}/report?format=md|html|json`: the launch report.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use serde::Deserialize;

use crate::error::ApiError;
use crate::routes::{AppState, blocking};

#[derive(Deserialize)]
pub struct ReportQuery {
    format: Option<String>,
}

pub async fn report(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ReportQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let (format, content_type) = match q.format.as_deref().unwrap_or("md") {
        "md" | "markdown" => (
            liftoff_report::Format::Markdown,
            "text/markdown; charset=utf-8",
        ),
        "html" => (liftoff_report::Format::Html, "text/html; charset=utf-8"),
        "json" => (liftoff_report::Format::Json, "application/json"),
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown report format `{other}`: md, html or json"
            )));
        }
    };
    let body = blocking(move || {
        let snap = s.driver.snapshot(&id)?;
        let meta = liftoff_report::Meta {
            id: snap.row.id.clone(),
            plan_path: snap.row.plan_path.clone(),
            created_at: snap.row.created_at.clone(),
            generated_at: jiff::Timestamp::now(),
        };
        Ok(liftoff_report::render(
            &snap.launch,
            &snap.records,
            &meta,
            format,
        ))
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, content_type)], body))
}
