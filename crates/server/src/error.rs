//! One error shape for every route: `{"error": {"code", "message"}}` (`api::ErrorBody`),
//! except OFREP's routes, which answer in the OFREP spec's own shape
//! (`{"key", "errorCode", "errorDetails"}`) because OpenFeature providers parse it.
//!
//! Handlers return [`ApiError`]. Whatever else answers an error (axum's extractor
//! rejections, a method the route does not take) goes through [`json_errors`], which
//! turns a non-JSON error body into the shape of its route. Internal details are logged,
//! never sent.

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use liftoff_api as api;
use liftoff_driver::DriverError;

/// An API error: status, stable code, message.
pub struct ApiError {
    status: StatusCode,
    body: api::ErrorBody,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
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

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub(crate) fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// The state database could not be read or written (a full or read-only disk, a
    /// lock held too long): the request was fine, and may succeed later. Logged here.
    pub(crate) fn store_failed(e: &liftoff_store::StoreError) -> Self {
        tracing::error!(error = %e, "state database failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the state database could not be read or written; see the daemon log",
        )
    }

    pub(crate) fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the daemon log",
        )
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
            // Damaged state is reported as what it is: which launch, which record or row.
            e @ (DriverError::Journal { .. }
            | DriverError::Store(liftoff_store::StoreError::Corrupt { .. })) => {
                tracing::error!(error = %e, "journal corrupt");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "journal_corrupt",
                    e.to_string(),
                )
            }
            DriverError::Store(e) if e.is_corruption() => {
                tracing::error!(error = %e, "state database damaged");
                let message = match &e {
                    liftoff_store::StoreError::CorruptRow { .. } => e.to_string(),
                    _ => "the state database is damaged; see the daemon log".to_string(),
                };
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "state_corrupt", message)
            }
            DriverError::Store(e) => ApiError::store_failed(&e),
            DriverError::Internal(e) => {
                tracing::error!(error = %e, "internal error");
                ApiError::internal()
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
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

/// An error in the shape of the route that answers it: OFREP's under `/ofrep/`, the
/// API's everywhere else.
pub(crate) fn for_path(path: &str, status: StatusCode, code: &str, message: String) -> Response {
    let Some(rest) = path.strip_prefix("/ofrep/") else {
        return ApiError::new(status, code, message).into_response();
    };
    // Only the single-flag evaluation has a key; the spec requires it in its failures.
    let key = rest
        .strip_prefix("v1/evaluate/flags/")
        .filter(|k| !k.is_empty());
    let mut body = serde_json::json!({ "errorCode": "GENERAL", "errorDetails": message });
    if let Some(key) = key {
        body["key"] = key.into();
    }
    (status, Json(body)).into_response()
}

/// The stable code of a status answered by something other than a handler.
fn code_of(status: StatusCode) -> String {
    match status {
        StatusCode::BAD_REQUEST => "bad_request".into(),
        StatusCode::NOT_FOUND => "not_found".into(),
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed".into(),
        StatusCode::REQUEST_TIMEOUT => "request_timeout".into(),
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large".into(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type".into(),
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable".into(),
        s if s.is_server_error() => "internal".into(),
        s => format!("http_{}", s.as_u16()),
    }
}

/// Error bodies that left as plain text (or none) leave as JSON in their route's shape,
/// with the status and headers (`Allow`, `Retry-After`, ...) they had.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    // Rejection texts are short; a longer body is dropped, not buffered.
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else if status.is_server_error() {
        tracing::error!(%path, status = status.as_u16(), detail = %text, "internal error");
        "internal error; see the daemon log".to_string()
    } else {
        text
    };
    let fresh = for_path(&path, status, &code_of(status), message);
    let (fresh_parts, fresh_body) = fresh.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in &fresh_parts.headers {
        parts.headers.insert(name, value.clone());
    }
    Response::from_parts(parts, Body::new(fresh_body))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(resp: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn an_error_takes_the_shape_of_its_route() {
        let status = StatusCode::METHOD_NOT_ALLOWED;
        let one = for_path("/ofrep/v1/evaluate/flags/theme", status, "x", "no".into());
        assert_eq!(
            body(one).await,
            serde_json::json!({"key": "theme", "errorCode": "GENERAL", "errorDetails": "no"})
        );
        let bulk = for_path("/ofrep/v1/evaluate/flags", status, "x", "no".into());
        assert_eq!(
            body(bulk).await,
            serde_json::json!({"errorCode": "GENERAL", "errorDetails": "no"})
        );
        let api = for_path(
            "/api/v1/launches",
            status,
            "method_not_allowed",
            "no".into(),
        );
        assert_eq!(
            body(api).await,
            serde_json::json!({"error": {"code": "method_not_allowed", "message": "no"}})
        );
    }
}
