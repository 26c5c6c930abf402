//! OFREP, the OpenFeature Remote Evaluation Protocol (open-feature/protocol,
//! `service/openapi.yaml`): what every OpenFeature SDK's OFREP provider calls.
//!
//! - `POST /ofrep/v1/evaluate/flags/{key}`: one flag. 200 with `key`, `value`,
//!   `variant`, `reason`; 404 `FLAG_NOT_FOUND`; 400 `PARSE_ERROR`, `INVALID_CONTEXT`,
//!   `TARGETING_KEY_MISSING`.
//! - `POST /ofrep/v1/evaluate/flags`: every flag, for client-side (static context)
//!   providers, with an `ETag` over the flags *and* the context; `If-None-Match` → 304.
//! - `GET /ofrep/v1/configuration`: the optional capabilities document.
//!
//! Every call needs an evaluation key (or the admin token) as `Authorization: Bearer`
//! or `X-API-Key`; a key's rate limit answers 429 with `Retry-After` in seconds. CORS
//! lets browsers call from any origin: preflights need no key, `ETag` is exposed.
//!
//! The evaluation path reads one `ArcSwap` snapshot, evaluates in memory and counts with
//! relaxed atomics: no SQLite, no lock.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use liftoff_flags::Context;
use serde::Serialize;
use serde_json::Value;

use crate::flags::{Caller, Entry, FlagService};

const ALLOW_HEADERS: &str = "Authorization, X-API-Key, Content-Type, If-None-Match";
const EXPOSE_HEADERS: &str = "ETag, Retry-After";

pub fn router<S: Clone + Send + Sync + 'static>(svc: Arc<FlagService>) -> Router<S> {
    Router::new()
        .route(
            "/ofrep/v1/evaluate/flags/{key}",
            post(evaluate_one).options(preflight),
        )
        .route(
            "/ofrep/v1/evaluate/flags",
            post(evaluate_all).options(preflight),
        )
        .route(
            "/ofrep/v1/configuration",
            get(configuration).options(preflight),
        )
        .layer(axum::middleware::map_response(cors))
        .with_state(svc)
}

async fn cors(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
    resp
}

async fn preflight() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("POST, GET, OPTIONS"),
            ),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(ALLOW_HEADERS),
            ),
            (
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("86400"),
            ),
        ],
    )
        .into_response()
}

#[derive(Serialize)]
struct Success<'a> {
    key: &'a str,
    value: &'a Value,
    variant: &'a str,
    reason: &'static str,
}

#[derive(Serialize)]
struct Failure<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(rename = "errorCode")]
    error_code: &'static str,
    #[serde(rename = "errorDetails")]
    error_details: String,
}

#[derive(Serialize)]
struct Bulk<'a> {
    flags: Vec<BulkItem<'a>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum BulkItem<'a> {
    Success(Success<'a>),
    Failure(Failure<'a>),
}

fn json(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut resp = Response::new(Body::from(bytes));
            *resp.status_mut() = status;
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "OFREP response did not serialize");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

fn failure(status: StatusCode, key: Option<&str>, code: &'static str, details: String) -> Response {
    json(
        status,
        &Failure {
            key,
            error_code: code,
            error_details: details,
        },
    )
}

/// Check the caller's key and its rate limit: the answer to send instead, if refused.
fn refusal(svc: &FlagService, headers: &HeaderMap) -> Option<Response> {
    match svc.caller(headers) {
        Ok(Caller::Admin) => None,
        Ok(Caller::Key(key)) => {
            let retry_secs = key.admit(svc.now_secs()).err()?;
            let mut resp = failure(
                StatusCode::TOO_MANY_REQUESTS,
                None,
                "GENERAL",
                format!("evaluation key `{}` is over its rate limit", key.name),
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_secs));
            Some(resp)
        }
        Err(why) => {
            let mut resp = failure(StatusCode::UNAUTHORIZED, None, "GENERAL", why.to_string());
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            Some(resp)
        }
    }
}

/// The request's context. An empty body is an empty request; `context` may be absent
/// or null. Err: the OFREP error code and details.
fn context(body: &[u8]) -> Result<Context, (&'static str, String)> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Context::new());
    }
    let request: Value = serde_json::from_slice(body)
        .map_err(|e| ("PARSE_ERROR", format!("the request body is not JSON: {e}")))?;
    let Value::Object(mut request) = request else {
        return Err((
            "PARSE_ERROR",
            "the request body must be a JSON object".into(),
        ));
    };
    match request.remove("context") {
        None | Some(Value::Null) => Ok(Context::new()),
        Some(Value::Object(ctx)) => Ok(ctx),
        Some(_) => Err(("INVALID_CONTEXT", "`context` must be a JSON object".into())),
    }
}

fn evaluate<'e>(svc: &FlagService, key: &'e str, entry: &'e Entry, ctx: &Context) -> BulkItem<'e> {
    let flag = &entry.flag;
    match flag.evaluate(ctx) {
        Ok(r) => {
            svc.count(entry, Ok(r));
            BulkItem::Success(Success {
                key,
                value: flag.variant_value(r.variant),
                variant: flag.variant_name(r.variant),
                reason: r.reason.as_str(),
            })
        }
        Err(e) => {
            svc.count(entry, Err(&e));
            BulkItem::Failure(Failure {
                key: Some(key),
                error_code: e.code(),
                error_details: e.to_string(),
            })
        }
    }
}

async fn evaluate_one(
    State(svc): State<Arc<FlagService>>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(resp) = refusal(&svc, &headers) {
        return resp;
    }
    let ctx = match context(&body) {
        Ok(ctx) => ctx,
        Err((code, details)) => return failure(StatusCode::BAD_REQUEST, Some(&key), code, details),
    };
    let snapshot = svc.snapshot();
    let Some(entry) = snapshot.flags.get(&key) else {
        svc.count_not_found();
        return failure(
            StatusCode::NOT_FOUND,
            Some(&key),
            "FLAG_NOT_FOUND",
            format!("no flag named `{key}`"),
        );
    };
    match evaluate(&svc, &key, entry, &ctx) {
        BulkItem::Success(s) => json(StatusCode::OK, &s),
        BulkItem::Failure(f) => json(StatusCode::BAD_REQUEST, &f),
    }
}

async fn evaluate_all(
    State(svc): State<Arc<FlagService>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(resp) = refusal(&svc, &headers) {
        return resp;
    }
    let ctx = match context(&body) {
        Ok(ctx) => ctx,
        Err((code, details)) => return failure(StatusCode::BAD_REQUEST, None, code, details),
    };
    let snapshot = svc.snapshot();
    let etag = etag(snapshot.fingerprint, &ctx);
    let etag_value = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\""));
    if headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| none_match_hits(v, &etag))
    {
        svc.bulk_not_modified.fetch_add(1, Ordering::Relaxed);
        let mut resp = StatusCode::NOT_MODIFIED.into_response();
        resp.headers_mut().insert(header::ETAG, etag_value);
        return resp;
    }
    let flags = snapshot
        .flags
        .iter()
        .map(|(key, entry)| evaluate(&svc, key, entry, &ctx))
        .collect();
    svc.bulk_full.fetch_add(1, Ordering::Relaxed);
    let mut resp = json(StatusCode::OK, &Bulk { flags });
    resp.headers_mut().insert(header::ETAG, etag_value);
    resp
}

async fn configuration(State(svc): State<Arc<FlagService>>, headers: HeaderMap) -> Response {
    if let Some(resp) = refusal(&svc, &headers) {
        return resp;
    }
    json(
        StatusCode::OK,
        &serde_json::json!({
            "name": "liftoff",
            "capabilities": {
                "cacheInvalidation": { "polling": { "enabled": true, "minPollingIntervalMs": 1000 } },
                "flagEvaluation": { "supportedTypes": ["boolean", "string", "int", "float", "object"] }
            }
        }),
    )
}

/// A strong ETag over the flags (their fingerprint) and the context, canonically
/// encoded (object keys sorted at every depth), so the same flags and the same context
/// give the same tag across restarts, and a different context gives another.
fn etag(fingerprint: u64, ctx: &Context) -> String {
    let mut bytes = fingerprint.to_le_bytes().to_vec();
    canonical_object(ctx, &mut bytes);
    format!("\"{:032x}\"", xxhash_rust::xxh3::xxh3_128(&bytes))
}

fn canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(m) => canonical_object(m, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(item, out);
            }
            out.push(b']');
        }
        scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
    }
}

fn canonical_object(m: &serde_json::Map<String, Value>, out: &mut Vec<u8>) {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    out.push(b'{');
    for (i, k) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(Value::String(k.clone()).to_string().as_bytes());
        out.push(b':');
        canonical(&m[k], out);
    }
    out.push(b'}');
}

/// `If-None-Match: "a", W/"b"` or `*` against our (strong) tag; weak comparison, as
/// RFC 9110 asks for If-None-Match.
fn none_match_hits(header: &str, etag: &str) -> bool {
    header.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(v: Value) -> Context {
        match v {
            Value::Object(m) => m,
            _ => panic!(),
        }
    }

    #[test]
    fn the_etag_changes_with_the_flags_and_with_the_context_but_not_with_key_order() {
        let a = ctx(json!({"targetingKey": "u1", "attrs": {"x": 1, "y": [1, {"b": 2, "a": 1}]}}));
        let same: Context = serde_json::from_str(
            r#"{"attrs": {"y": [1, {"a": 1, "b": 2}], "x": 1}, "targetingKey": "u1"}"#,
        )
        .unwrap();
        assert_eq!(etag(1, &a), etag(1, &same));
        assert_ne!(etag(1, &a), etag(2, &a));
        let other =
            ctx(json!({"targetingKey": "u2", "attrs": {"x": 1, "y": [1, {"b": 2, "a": 1}]}}));
        assert_ne!(etag(1, &a), etag(1, &other));
        assert_ne!(etag(1, &Context::new()), etag(1, &ctx(json!({"k": ""}))));
    }

    #[test]
    fn if_none_match_lists_weak_tags_and_star() {
        let tag = "\"abc\"";
        assert!(none_match_hits("\"abc\"", tag));
        assert!(none_match_hits("\"x\", W/\"abc\"", tag));
        assert!(none_match_hits("*", tag));
        assert!(!none_match_hits("\"abd\"", tag));
        assert!(!none_match_hits("abc", tag));
    }

    #[test]
    fn request_bodies() {
        assert!(context(b"").unwrap().is_empty());
        assert!(context(b"{}").unwrap().is_empty());
        assert!(context(br#"{"context": null}"#).unwrap().is_empty());
        assert_eq!(
            context(br#"{"context": {"targetingKey": "u"}}"#).unwrap()["targetingKey"],
            "u"
        );
        assert_eq!(context(b"{nope").unwrap_err().0, "PARSE_ERROR");
        assert_eq!(context(b"[1]").unwrap_err().0, "PARSE_ERROR");
        assert_eq!(
            context(br#"{"context": "u"}"#).unwrap_err().0,
            "INVALID_CONTEXT"
        );
    }
}
