//! A standalone router's link to the daemon: it pulls snapshots (a long poll that the
//! daemon answers as soon as the snapshot changes) and reports its observations every
//! [`REPORT_EVERY`]. The router dials, the daemon never does; see `export.rs` for what a
//! report holds and why it is idempotent.
//!
//! The daemon may be away for any length of time: the router keeps serving the last
//! snapshot it applied, says so in its log (once per outage) and in its `/metrics`
//! (`liftoff_router_control_connected 0`), and retries with a capped backoff.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::sync::Notify;

use crate::Router;
use crate::export::{Report, ReportAck};
use crate::snapshot::Snapshot;

pub const REPORT_EVERY: Duration = Duration::from_millis(100);
/// At most this many seconds per report when catching up.
const RESEND_BATCH_SECS: u64 = 60;
/// How long the daemon may hold a snapshot request open.
pub const POLL_WAIT: Duration = Duration::from_secs(10);
/// A daemon coming back is found within this.
const BACKOFF_MAX: Duration = Duration::from_millis(500);

/// Where the daemon is: a fixed URL, or a file the local daemon writes its URL into
/// (`<state-dir>/serve.addr`), read again before every attempt so a daemon restarted on
/// another port is found.
#[derive(Clone, Debug)]
pub enum Server {
    Url(String),
    File(PathBuf),
}

impl Server {
    fn url(&self) -> Option<String> {
        match self {
            Server::Url(u) => Some(u.trim_end_matches('/').to_string()),
            Server::File(path) => std::fs::read_to_string(path)
                .ok()
                .map(|s| s.trim().trim_end_matches('/').to_string())
                .filter(|s| !s.is_empty()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("the daemon's address is unknown (no {0})")]
    NoAddress(String),
    #[error("the daemon is unreachable: {0}")]
    Unreachable(String),
    #[error("the daemon refused the router token (HTTP {0})")]
    Refused(u16),
    #[error("the daemon answered HTTP {status}: {body}")]
    Rejected { status: u16, body: String },
    #[error("bad answer from the daemon: {0}")]
    BadAnswer(String),
}

pub enum Token {
    Fixed(String),
    File {
        path: PathBuf,
        current: std::sync::Mutex<String>,
    },
}

impl Token {
    /// Read from `path` now (an error if it cannot be read).
    pub fn from_file(path: PathBuf) -> std::io::Result<Token> {
        let token = std::fs::read_to_string(&path)?.trim().to_string();
        Ok(Token::File {
            path,
            current: std::sync::Mutex::new(token),
        })
    }

    fn current(&self) -> String {
        match self {
            Token::Fixed(t) => t.clone(),
            Token::File { current, .. } => {
                current.lock().unwrap_or_else(|p| p.into_inner()).clone()
            }
        }
    }

    fn reload(&self) {
        if let Token::File { path, current } = self
            && let Ok(t) = std::fs::read_to_string(path)
        {
            *current.lock().unwrap_or_else(|p| p.into_inner()) = t.trim().to_string();
        }
    }
}

/// The link's state, shared with the router's `/metrics` and the process.
#[derive(Default)]
pub struct LinkState {
    pub connected: AtomicBool,
    pub applied: AtomicU64,
    /// Unix seconds of the last successful exchange (0: never).
    pub last_contact: AtomicU64,
}

pub struct Link {
    pub server: Server,
    /// The router token: as given, or read from a file (again when the daemon refuses
    /// it: a rotated token is picked up without a restart).
    pub token: Token,
    pub id: String,
    pub instance: String,
    pub router: Arc<Router>,
    pub state: Arc<LinkState>,
    /// Called with every snapshot applied (the process persists it).
    pub on_applied: Box<dyn Fn(&Snapshot) + Send + Sync>,
    client: Client<HttpConnector, Full<Bytes>>,
    applied_now: Notify,
    /// The daemon's URL as last read: a `Server::File` is read again only after a
    /// failed exchange, not for every report.
    base: std::sync::Mutex<Option<String>>,
}

impl Link {
    pub fn new(
        server: Server,
        token: Token,
        id: String,
        instance: String,
        router: Arc<Router>,
        state: Arc<LinkState>,
        on_applied: Box<dyn Fn(&Snapshot) + Send + Sync>,
    ) -> Arc<Link> {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        connector.set_nodelay(true);
        let client = Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Arc::new(Link {
            server,
            token,
            id,
            instance,
            router,
            state,
            on_applied,
            client,
            applied_now: Notify::new(),
            base: std::sync::Mutex::new(None),
        })
    }

    /// Both loops, until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        let reports = tokio::spawn(self.clone().report_loop());
        self.poll_loop().await;
        reports.abort();
    }

    async fn poll_loop(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.poll().await {
                Ok(Some(snapshot)) => {
                    backoff = Duration::from_millis(100);
                    match self.router.apply(&snapshot) {
                        Ok(()) => {
                            (self.on_applied)(&snapshot);
                            self.state.applied.store(snapshot.version, Relaxed);
                            self.applied_now.notify_one();
                            tracing::info!(
                                version = snapshot.version,
                                routes = snapshot.routes.len(),
                                "snapshot applied"
                            );
                        }
                        Err(e) => {
                            // Keep serving what we have; the daemon sees the old version.
                            tracing::error!(version = snapshot.version, error = %e, "snapshot refused");
                            tokio::time::sleep(BACKOFF_MAX).await;
                        }
                    }
                }
                Ok(None) => backoff = Duration::from_millis(100),
                Err(e) => {
                    self.lost(&e);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    async fn report_loop(self: Arc<Self>) {
        // `from`: the first second not yet reported complete to the current daemon.
        // A daemon that has not heard from us also gets all we hold, newest first (what
        // triggers read), a batch per report so that no report is large: `backfill` is
        // the newest second it still lacks.
        let oldest = |now: u64| now.saturating_sub(crate::stats::WINDOW_SECS - 2);
        let mut from = self.router.current_second();
        let mut backfill: Option<u64> = from.checked_sub(1);
        let mut daemon = String::new();
        let mut tick = tokio::time::interval(REPORT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.applied_now.notified() => {}
            }
            let now = self.router.current_second();
            let from_now = from.max(now.saturating_sub(RESEND_BATCH_SECS - 1));
            let mut ranges = vec![(from_now, now)];
            let back =
                backfill.map(|b| (b.saturating_sub(RESEND_BATCH_SECS - 1).max(oldest(now)), b));
            ranges.extend(back.filter(|(lo, hi)| lo <= hi && *hi < from_now));
            let report = Report {
                router: self.id.clone(),
                instance: self.instance.clone(),
                applied: self.state.applied.load(Relaxed),
                listening: self.router.listening(),
                routes: self.router.export(&ranges),
            };
            match self.send_report(&report).await {
                Ok(ack) if !daemon.is_empty() && ack.daemon != daemon => {
                    // Another daemon than the one we reported to: it may have restarted
                    // and lost what we sent.
                    tracing::info!("a new daemon: sending it the whole window");
                    daemon = ack.daemon;
                    from = now;
                    backfill = now.checked_sub(1);
                }
                Ok(ack) => {
                    daemon = ack.daemon;
                    backfill = match back {
                        Some((lo, _)) if lo > oldest(now) => Some(lo - 1),
                        _ => None,
                    };
                    if from_now > from {
                        // After an outage: the seconds this report skipped are resent
                        // (all the way back; a second sent twice is only replaced).
                        backfill = Some(backfill.map_or(from_now - 1, |b| b.max(from_now - 1)));
                    }
                    // The current second is still open: it goes again with the next.
                    from = now;
                }
                Err(e) => self.lost(&e),
            }
        }
    }

    fn lost(&self, e: &ControlError) {
        if matches!(e, ControlError::Refused(_)) {
            self.token.reload();
        }
        // The daemon may have come back elsewhere (a new port in `serve.addr`).
        *self.base.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if self.state.connected.swap(false, Relaxed) {
            tracing::warn!(
                error = %e,
                applied = self.state.applied.load(Relaxed),
                "daemon unreachable: serving the last snapshot until it is back"
            );
        }
    }

    fn contacted(&self) {
        if !self.state.connected.swap(true, Relaxed) {
            tracing::info!(
                applied = self.state.applied.load(Relaxed),
                "connected to the daemon"
            );
        }
        self.state
            .last_contact
            .store(crate::unix_seconds(), Relaxed);
    }

    /// The daemon's snapshot now, if it answers within `timeout`: what a router that
    /// starts serves, rather than a saved one the daemon may have moved on from.
    pub async fn fetch_now(&self, timeout: Duration) -> Option<Snapshot> {
        match self.poll_with(0, Duration::ZERO, timeout).await {
            Ok(snapshot) => snapshot,
            Err(e) => {
                tracing::info!(error = %e, "no snapshot from the daemon at start");
                None
            }
        }
    }

    async fn poll(&self) -> Result<Option<Snapshot>, ControlError> {
        let have = self.state.applied.load(Relaxed);
        self.poll_with(have, POLL_WAIT, POLL_WAIT + Duration::from_secs(5))
            .await
    }

    async fn poll_with(
        &self,
        have: u64,
        wait: Duration,
        timeout: Duration,
    ) -> Result<Option<Snapshot>, ControlError> {
        let base = self.base()?;
        let url = format!(
            "{base}/api/v1/router/snapshot?router={}&instance={}&have={have}&wait_ms={}",
            urlencode(&self.id),
            urlencode(&self.instance),
            wait.as_millis()
        );
        let req = self.request(http::Method::GET, &url, Bytes::new())?;
        let (status, body) = self.exchange(req, timeout).await?;
        self.contacted();
        match status {
            204 => Ok(None),
            200 => serde_json::from_slice(&body)
                .map(Some)
                .map_err(|e| ControlError::BadAnswer(format!("snapshot: {e}"))),
            _ => Err(self.rejected(status, &body)),
        }
    }

    async fn send_report(&self, report: &Report) -> Result<ReportAck, ControlError> {
        let base = self.base()?;
        let body =
            serde_json::to_vec(report).map_err(|e| ControlError::BadAnswer(e.to_string()))?;
        let req = self.request(
            http::Method::POST,
            &format!("{base}/api/v1/router/report"),
            Bytes::from(body),
        )?;
        let (status, body) = self.exchange(req, Duration::from_secs(5)).await?;
        if status != 200 {
            return Err(self.rejected(status, &body));
        }
        self.contacted();
        serde_json::from_slice(&body)
            .map_err(|e| ControlError::BadAnswer(format!("report ack: {e}")))
    }

    fn rejected(&self, status: u16, body: &[u8]) -> ControlError {
        if status == 401 || status == 403 {
            ControlError::Refused(status)
        } else {
            ControlError::Rejected {
                status,
                body: String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
            }
        }
    }

    fn base(&self) -> Result<String, ControlError> {
        let mut cached = self.base.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(url) = cached.as_ref() {
            return Ok(url.clone());
        }
        let url = self.server.url().ok_or_else(|| match &self.server {
            Server::File(p) => ControlError::NoAddress(p.display().to_string()),
            Server::Url(u) => ControlError::NoAddress(u.clone()),
        })?;
        *cached = Some(url.clone());
        Ok(url)
    }

    fn request(
        &self,
        method: http::Method,
        url: &str,
        body: Bytes,
    ) -> Result<http::Request<Full<Bytes>>, ControlError> {
        http::Request::builder()
            .method(method)
            .uri(url)
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", self.token.current()),
            )
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, "liftoff-router")
            .body(Full::new(body))
            .map_err(|e| ControlError::BadAnswer(format!("bad daemon URL `{url}`: {e}")))
    }

    async fn exchange(
        &self,
        req: http::Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<(u16, Bytes), ControlError> {
        let fut = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| ControlError::Unreachable(e.to_string()))?;
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| ControlError::Unreachable(e.to_string()))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| ControlError::Unreachable(format!("no answer within {timeout:?}")))?
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
