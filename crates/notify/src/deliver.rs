//! Delivery: one rendered message to one channel, retried with exponential backoff.

use std::time::Duration;

use liftoff_checks::Redactor;
use liftoff_plan::notify::{Channel, ChannelKind, MAX_BACKOFF, RetrySpec};
use reqwest::header::{
    AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER, USER_AGENT,
};
use tokio_util::sync::CancellationToken;

use crate::render::{Payload, Rendered};
use crate::statuspage::{StatuspageRun, StatuspageState};

/// What became of one delivery, for the journal and for status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub delivered: bool,
    /// Attempts made (0 when there was nothing to do, or when cancelled before the first).
    pub attempts: u32,
    /// `HTTP 200`, `SMTP 250`, or why the last attempt failed: `HTTP 503: ...`,
    /// `could not connect: Connection refused (os error 111)`. Never a URL, key or
    /// password.
    pub detail: String,
    /// The Statuspage maintenance this delivery opened: journal it and hand it back in
    /// [`StatuspageState`] for the launch's later notices.
    pub incident_id: Option<String>,
    /// Not delivered, and another attempt would fail the same way (a 4xx, a bad address,
    /// bad credentials).
    pub permanent: bool,
    /// The server's `Retry-After` on the last attempt.
    pub retry_after: Option<Duration>,
}

/// Delivers rendered messages. One per daemon: it holds the HTTP connection pool.
#[derive(Clone)]
pub struct Notifier {
    http: reqwest::Client,
    smtp_roots: Vec<Vec<u8>>,
}

impl Default for Notifier {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier").finish_non_exhaustive()
    }
}

/// One attempt's result.
pub(crate) enum Outcome {
    Done(String),
    /// Worth another attempt; `after` is the server's `Retry-After`.
    Retry {
        detail: String,
        after: Option<Duration>,
    },
    /// Another attempt would fail the same way (a 4xx, a bad address, bad credentials).
    Fail(String),
}

impl Outcome {
    pub(crate) fn retry(detail: impl Into<String>) -> Self {
        Outcome::Retry {
            detail: detail.into(),
            after: None,
        }
    }
}

/// The wait before attempt `attempt` (1-based; none before the first): `backoff`,
/// doubling after each failure, at most [`MAX_BACKOFF`].
pub fn backoff_before(retry: &RetrySpec, attempt: u32) -> Duration {
    if attempt <= 1 {
        return Duration::ZERO;
    }
    let doublings = (attempt - 2).min(31);
    retry
        .backoff
        .checked_mul(1u32 << doublings)
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF)
}

/// What [`with_retries`] made of its attempts.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Tried {
    pub delivered: bool,
    pub attempts: u32,
    pub detail: String,
    /// The last attempt failed in a way another would not change.
    pub permanent: bool,
    pub retry_after: Option<Duration>,
}

impl Tried {
    fn new(delivered: bool, attempts: u32, detail: impl Into<String>) -> Self {
        Self {
            delivered,
            attempts,
            detail: detail.into(),
            permanent: false,
            retry_after: None,
        }
    }

    fn permanent(attempts: u32, detail: impl Into<String>) -> Self {
        Self {
            permanent: true,
            ..Self::new(false, attempts, detail)
        }
    }
}

/// Runs `attempt` until it succeeds, fails for good, runs out of attempts or is
/// cancelled.
pub(crate) async fn with_retries<F>(
    retry: &RetrySpec,
    cancel: &CancellationToken,
    mut attempt: impl FnMut() -> F,
) -> Tried
where
    F: std::future::Future<Output = Outcome>,
{
    let max = retry.attempts.max(1);
    let mut made = 0;
    let mut last = String::new();
    let mut server_wait = None;
    while made < max {
        if made > 0 {
            let wait = backoff_before(retry, made + 1).max(server_wait.unwrap_or_default());
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Tried::new(false, made, format!("{last}; cancelled")),
                _ = tokio::time::sleep(wait.min(MAX_BACKOFF)) => {}
            }
        } else if cancel.is_cancelled() {
            return Tried::new(false, 0, "cancelled before the first attempt");
        }
        made += 1;
        let outcome = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Tried::new(false, made, "cancelled"),
            o = tokio::time::timeout(retry.timeout, attempt()) => o,
        };
        match outcome {
            Ok(Outcome::Done(detail)) => return Tried::new(true, made, detail),
            Ok(Outcome::Fail(detail)) => return Tried::permanent(made, detail),
            Ok(Outcome::Retry { detail, after }) => {
                last = detail;
                server_wait = after;
            }
            Err(_) => {
                last = format!("timed out after {}", humanize(retry.timeout));
                server_wait = None;
            }
        }
    }
    Tried {
        retry_after: server_wait,
        ..Tried::new(false, made, last)
    }
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

impl Notifier {
    pub fn new() -> Self {
        Self {
            http: liftoff_checks::http_client(),
            smtp_roots: Vec::new(),
        }
    }

    /// Also trust this PEM certificate for SMTP over TLS (a private CA); the system's
    /// roots always count.
    pub fn with_smtp_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.smtp_roots.push(pem.into());
        self
    }

    /// Delivers `rendered` on `channel`, retrying as `retry` says. `statuspage` is what
    /// the launch's earlier deliveries opened on the status page (other channels ignore
    /// it). Never panics and never returns a secret in `detail`.
    pub async fn deliver(
        &self,
        channel: &Channel,
        rendered: &Rendered,
        retry: &RetrySpec,
        statuspage: &StatuspageState,
        cancel: &CancellationToken,
    ) -> Delivery {
        let redactor = Redactor::new(channel.secrets());
        let mut incident_id = None;
        // Receivers deduplicate with it: the same on every attempt and after a restart.
        let mut keyed = HeaderMap::new();
        keyed.insert("idempotency-key", header(&rendered.id));
        let tried = match (&channel.kind, &rendered.payload) {
            (ChannelKind::Slack { webhook }, Payload::Slack(body)) => {
                let body = body.to_string().into_bytes();
                // Closures returning futures (not async closures): the delivery must be
                // a `Send` future, and async closures' futures are not provably so.
                with_retries(retry, cancel, || {
                    self.post(webhook.expose(), keyed.clone(), body.clone())
                })
                .await
            }
            (ChannelKind::Webhook { url, secret }, Payload::Webhook { body, id }) => {
                let mut headers = keyed.clone();
                headers.insert("x-liftoff-event", header(rendered.event.name()));
                headers.insert("x-liftoff-delivery", header(id));
                if let Some(secret) = secret {
                    let signature = webhook_signature(secret.expose().as_bytes(), body.as_bytes());
                    headers.insert("x-liftoff-signature", header(&signature));
                }
                let body = body.clone().into_bytes();
                with_retries(retry, cancel, || {
                    self.post(url.expose(), headers.clone(), body.clone())
                })
                .await
            }
            (
                ChannelKind::Email(spec),
                Payload::Email {
                    subject,
                    body,
                    message_id,
                },
            ) => match crate::email::prepare(
                spec,
                subject,
                body,
                message_id,
                &self.smtp_roots,
                retry.timeout,
            ) {
                Ok(mail) => with_retries(retry, cancel, || mail.send()).await,
                Err(why) => Tried::permanent(0, why),
            },
            (ChannelKind::Statuspage(spec), Payload::Statuspage(update)) => {
                let run = StatuspageRun::new(spec, update, statuspage);
                if run.nothing_to_do() {
                    Tried::new(true, 0, "nothing to change on the status page")
                } else {
                    // Each attempt resumes the same run: a mutex lends it to one at a time.
                    let shared = tokio::sync::Mutex::new(run);
                    let tried = with_retries(retry, cancel, || async {
                        shared.lock().await.attempt(self, &rendered.id).await
                    })
                    .await;
                    let run = shared.into_inner();
                    incident_id = run.opened();
                    Tried {
                        detail: run.detail(tried.delivered, &tried.detail),
                        ..tried
                    }
                }
            }
            _ => Tried::permanent(
                0,
                format!(
                    "the message was rendered for another kind of channel than `{}`",
                    channel.kind.keyword()
                ),
            ),
        };
        Delivery {
            delivered: tried.delivered,
            attempts: tried.attempts,
            detail: redactor.redact(&tried.detail),
            incident_id,
            permanent: tried.permanent,
            retry_after: tried.retry_after,
        }
    }

    /// POSTs JSON and classifies the answer.
    pub(crate) async fn post(&self, url: &str, headers: HeaderMap, body: Vec<u8>) -> Outcome {
        self.send_json(reqwest::Method::POST, url, headers, body)
            .await
            .map_or_else(|o| o, |answer| answer.outcome())
    }

    /// Sends a JSON body; `Err` is the outcome of a request that got no answer.
    pub(crate) async fn send_json(
        &self,
        method: reqwest::Method,
        url: &str,
        mut headers: HeaderMap,
        body: Vec<u8>,
    ) -> Result<Answer, Outcome> {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            USER_AGENT,
            header(concat!("liftoff/", env!("CARGO_PKG_VERSION"))),
        );
        let response = self
            .http
            .request(method, url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(http_error)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // A misbehaving server must not make us read forever: the attempt's timeout
        // bounds this too.
        let text = response.text().await.unwrap_or_default();
        Ok(Answer {
            status,
            retry_after,
            body: text,
        })
    }
}

/// An HTTP answer.
pub(crate) struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: String,
}

impl Answer {
    pub(crate) fn outcome(&self) -> Outcome {
        let detail = match snippet(&self.body) {
            Some(s) => format!("HTTP {}: {s}", self.status),
            None => format!("HTTP {}", self.status),
        };
        match self.status {
            200..=299 => Outcome::Done(format!("HTTP {}", self.status)),
            // Statuspage answers 420 when rate-limited.
            408 | 420 | 425 | 429 | 500..=599 => Outcome::Retry {
                detail,
                after: self.retry_after,
            },
            300..=399 => Outcome::Fail(format!("{detail} (redirects are not followed)")),
            _ => Outcome::Fail(detail),
        }
    }
}

/// The first line of a response body, short: Slack says `invalid_payload`, Statuspage
/// `{"error":"..."}`.
fn snippet(body: &str) -> Option<String> {
    let line = body.lines().map(str::trim).find(|l| !l.is_empty())?;
    let mut s: String = line.chars().take(200).collect();
    if s.len() < line.len() {
        s.push('…');
    }
    Some(s)
}

/// Why a request got no answer, without the URL reqwest puts in its messages: what
/// failed, and the innermost cause (`Connection refused (os error 111)`).
fn http_error(e: reqwest::Error) -> Outcome {
    let e = e.without_url();
    if e.is_builder() {
        return Outcome::Fail("the URL is not a valid http(s) URL".into());
    }
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let detail = match innermost_cause(&e) {
        Some(cause) => format!("{what}: {cause}"),
        None => what.to_string(),
    };
    if tls_refused(&e) {
        // A certificate that does not verify will not verify on the next attempt.
        Outcome::Fail(detail)
    } else {
        Outcome::retry(detail)
    }
}

fn innermost_cause(e: &dyn std::error::Error) -> Option<String> {
    let mut cause = e.source()?;
    while let Some(next) = cause.source() {
        cause = next;
    }
    Some(cause.to_string())
}

/// TLS failures (a certificate that does not verify, a handshake refused) reach us as I/O
/// errors of kind `InvalidData`, from rustls.
pub(crate) fn tls_refused(e: &dyn std::error::Error) -> bool {
    let mut source = e.source();
    while let Some(cause) = source {
        if cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::InvalidData)
        {
            return true;
        }
        source = cause.source();
    }
    false
}

/// A header value from text liftoff made; never fails on printable ASCII.
fn header(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// `sha256=<hex>`: HMAC-SHA256 of the exact body, keyed with the channel's secret.
pub fn webhook_signature(secret: &[u8], body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub(crate) fn authorization(api_key: &str, idempotency_key: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("idempotency-key", header(idempotency_key));
    if let Ok(mut value) = HeaderValue::from_str(&format!("OAuth {api_key}")) {
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn tried<F: std::future::Future<Output = Outcome>>(
        retry: &RetrySpec,
        cancel: &CancellationToken,
        attempt: impl FnMut() -> F,
    ) -> (bool, u32, String) {
        let t = with_retries(retry, cancel, attempt).await;
        (t.delivered, t.attempts, t.detail)
    }

    fn retry(attempts: u32, backoff_ms: u64) -> RetrySpec {
        RetrySpec {
            attempts,
            backoff: Duration::from_millis(backoff_ms),
            timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let r = retry(5, 1000);
        let waits: Vec<u64> = (1..=5).map(|a| backoff_before(&r, a).as_secs()).collect();
        assert_eq!(waits, [0, 1, 2, 4, 8]);
        assert_eq!(backoff_before(&r, 40), MAX_BACKOFF);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_wait_and_give_up_after_the_last_attempt() {
        let r = retry(4, 1000);
        let started = tokio::time::Instant::now();
        let mut calls = 0;
        let (delivered, attempts, detail) = tried(&r, &CancellationToken::new(), || {
            calls += 1;
            let n = calls;
            async move { Outcome::retry(format!("HTTP 503 #{n}")) }
        })
        .await;
        assert_eq!(
            (delivered, attempts, detail.as_str()),
            (false, 4, "HTTP 503 #4")
        );
        // 1s + 2s + 4s between the four attempts.
        assert_eq!(started.elapsed(), Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_failure_is_not_retried_and_success_stops() {
        let r = retry(5, 10);
        let (ok, n, d) = tried(&r, &CancellationToken::new(), || async {
            Outcome::Fail("HTTP 404: no_service".into())
        })
        .await;
        assert_eq!((ok, n, d.as_str()), (false, 1, "HTTP 404: no_service"));
        let mut calls = 0;
        let (ok, n, _) = tried(&r, &CancellationToken::new(), || {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Outcome::retry("refused")
                } else {
                    Outcome::Done("HTTP 200".into())
                }
            }
        })
        .await;
        assert_eq!((ok, n), (true, 3));
    }

    #[tokio::test(start_paused = true)]
    async fn server_retry_after_is_honoured_and_cancel_stops_the_wait() {
        let r = retry(3, 10);
        let cancel = CancellationToken::new();
        let started = tokio::time::Instant::now();
        let mut calls = 0;
        let (_, n, _) = tried(&r, &cancel, || {
            calls += 1;
            async {
                Outcome::Retry {
                    detail: "HTTP 429".into(),
                    after: Some(Duration::from_secs(30)),
                }
            }
        })
        .await;
        assert_eq!(n, 3);
        assert_eq!(started.elapsed(), Duration::from_secs(60));

        let canceller = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            canceller.cancel();
        });
        let (ok, n, d) = tried(&retry(5, 60_000), &cancel, || async {
            Outcome::retry("HTTP 503")
        })
        .await;
        assert_eq!((ok, n), (false, 1));
        assert!(d.ends_with("cancelled"), "{d}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_that_hangs_times_out() {
        let r = RetrySpec {
            attempts: 2,
            backoff: Duration::from_millis(10),
            timeout: Duration::from_secs(3),
        };
        let (ok, n, d) = tried(&r, &CancellationToken::new(), || {
            std::future::pending::<Outcome>()
        })
        .await;
        assert_eq!((ok, n, d.as_str()), (false, 2, "timed out after 3s"));
    }

    #[test]
    fn signatures_are_hmac_sha256_hex() {
        // RFC 4231, test case 2.
        assert_eq!(
            webhook_signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn answers_are_classified() {
        let a = |status, body: &str| Answer {
            status,
            retry_after: None,
            body: body.into(),
        };
        assert!(matches!(a(200, "ok").outcome(), Outcome::Done(d) if d == "HTTP 200"));
        assert!(matches!(a(503, "").outcome(), Outcome::Retry { .. }));
        assert!(matches!(a(429, "").outcome(), Outcome::Retry { .. }));
        assert!(
            matches!(a(400, "invalid_payload\n").outcome(), Outcome::Fail(d) if d == "HTTP 400: invalid_payload")
        );
        assert!(matches!(a(302, "").outcome(), Outcome::Fail(_)));
    }
}
