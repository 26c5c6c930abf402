//! gRPC to upstreams: a gRPC request (HTTP/2 from the client, `content-type:
//! application/grpc...`) goes to its instance over HTTP/2, because gRPC servers speak
//! nothing else. Everything else goes over HTTP/1.1 (`pool`).
//!
//! The request is routed like any other (`proxy::pick`: host, maintenance, override,
//! split and stickiness), and within its version the instance is chosen the same way
//! (power of two choices among the usable ones, retries on the version's others when
//! no connection could be made, paid from its retry budget). A gRPC request always has
//! a body, so it is never replayed on the other version. When no instance answers the
//! client gets 502 (`grpc-status` 14, UNAVAILABLE) or 504 (4, DEADLINE_EXCEEDED),
//! recorded as `connect` or `timeout`; liftoff's other answers (no route, maintenance,
//! a refused override) are the plain HTTP ones.
//!
//! Connections: at most [`CONNECTIONS_PER_INSTANCE`] HTTP/2 connections per upstream,
//! each multiplexing any number of calls, opened on first use and again when one dies
//! (a connection found closed when a call is put on it is replaced once, the call
//! unsent). They are pinged while calls are open, so a dead peer is noticed; they close
//! within a second of their upstream leaving the table (open calls finish first). To
//! an `http://` instance: h2c with prior knowledge; to an `https://` one: TLS verified
//! as for HTTP/1.1 (the route's `ca` or the system's roots, SNI), offering ALPN `h2`
//! alone; an instance that does not choose it could not be reached (502, `connect`),
//! like one whose certificate does not verify. The `:authority` is the client's, or
//! with `upstreams.host: instance` the instance's own.
//!
//! Outcome: a call's result is only known at its end, so the version's windows and the
//! instance's outlier detection record it then, exactly once, from the body relayed to
//! the client ([`Relayed`]): the `grpc-status` of the trailers, or of the head of a
//! trailers-only answer. 0 is a success; 1 (`CANCELLED`) is the client's doing
//! (`client_abort`); any other code is the version's error, recorded with the HTTP
//! status the client got (200) under `upstream_5xx` (the upstream answered, and failed)
//! and counted as a failed attempt of its instance. An answer whose HTTP status is not
//! 200 counts as HTTP does (a 5xx is `upstream_5xx`); one that ends without a
//! `grpc-status` is `upstream_5xx`; one the upstream breaks off (a reset stream, a dead
//! connection) is `connect`; a client that leaves first is `client_abort`. The latency
//! recorded is the time to the response head, as for HTTP/1 (a streaming call's length
//! says nothing of the version). Requests in flight, on the version and its instance,
//! count the call until its end.
//!
//! Bodies stream both ways frame by frame, trailers included; the router's
//! `max_body_bytes` does not apply (a stream's total is not a request's size; gRPC
//! servers limit their messages themselves). The response head must come within the
//! route's `request_timeout`, or the call's deadline (`grpc-timeout`) when that is
//! longer: a watch may answer only with its first event. The table is not consulted
//! once a call is sent: a weight change or a rollback never cuts an established stream.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use crate::Shared;
use crate::proxy::{ConnInfo, Ours, Picked, pick};
use crate::stats::{ErrorSource, Observation};
use crate::stream::Stream;
use crate::table::{HostPolicy, Instance, Upstream, Version};
use crate::wire::{Hop, hop_by_hop};

/// HTTP/2 connections to one upstream, at most: each carries many calls at once.
pub const CONNECTIONS_PER_INSTANCE: usize = 2;

/// gRPC's status codes that matter here.
const GRPC_OK: u32 = 0;
const GRPC_CANCELLED: u32 = 1;
const GRPC_DEADLINE_EXCEEDED: u32 = 4;
const GRPC_UNAVAILABLE: u32 = 14;

/// Whether a request is a gRPC call (not gRPC-Web, which HTTP/1.1 carries).
pub(crate) fn is_grpc<B>(req: &Request<B>) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    req.version() == http::Version::HTTP_2
        && req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(HeaderValue::as_bytes)
            .is_some_and(|v| {
                v.len() >= GRPC.len()
                    && v[..GRPC.len()].eq_ignore_ascii_case(GRPC)
                    && matches!(v.get(GRPC.len()), None | Some(b'+' | b';'))
            })
}

/// Every upstream's HTTP/2 connections, by upstream (its address in memory, held
/// weakly: an upstream no route names any more takes its connections with it).
#[derive(Default)]
pub(crate) struct Upstreams {
    by_upstream: Mutex<HashMap<usize, Held>>,
}

/// An upstream's connections, and the upstream they are to (while it lives).
type Held = (Weak<Upstream>, Arc<Connections>);

impl Upstreams {
    /// The connections to `upstream`. The lock is held for a map lookup, never
    /// across an await.
    fn of(&self, upstream: &Arc<Upstream>) -> Arc<Connections> {
        let key = Arc::as_ptr(upstream) as usize;
        let mut map = self.by_upstream.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((held, conns)) = map.get(&key)
            && held.strong_count() > 0
        {
            // Alive at the same address: the same upstream.
            return conns.clone();
        }
        map.retain(|_, (held, _)| held.strong_count() > 0);
        let conns = Arc::new(Connections::default());
        map.insert(key, (Arc::downgrade(upstream), conns.clone()));
        conns
    }
}

impl Upstreams {
    /// Close the connections of upstreams no route names any more (calls still open
    /// on them finish first).
    pub(crate) fn sweep(&self) {
        let mut map = self.by_upstream.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, (held, _)| held.strong_count() > 0);
    }
}

/// One upstream's connections: calls take them in turn. A slot's lock is held across
/// an await only while its connection is being made, so calls wait for it rather
/// than open more.
#[derive(Default)]
struct Connections {
    slots: [tokio::sync::Mutex<Option<SendRequest<ClientBody>>>; CONNECTIONS_PER_INSTANCE],
    next: AtomicUsize,
}

impl Connections {
    /// A connection for the next call (its slot, and the connection), opened if its
    /// slot has none or a closed one.
    async fn take(
        &self,
        upstream: &Upstream,
        limits: &crate::Limits,
    ) -> io::Result<(usize, SendRequest<ClientBody>)> {
        let n = self.next.fetch_add(1, Relaxed) % CONNECTIONS_PER_INSTANCE;
        let mut slot = self.slots[n].lock().await;
        if let Some(sender) = slot.as_ref()
            && !sender.is_closed()
        {
            return Ok((n, sender.clone()));
        }
        *slot = None;
        let sender = connect(upstream, limits).await?;
        *slot = Some(sender.clone());
        Ok((n, sender))
    }

    /// The connection in `slot` turned out dead: the next call there opens another.
    async fn forget(&self, slot: usize) {
        *self.slots[slot].lock().await = None;
    }
}

/// A new HTTP/2 connection, its driver spawned, within the connect timeout: h2c with
/// prior knowledge to an `http://` instance; to an `https://` one TLS verified as for
/// HTTP/1.1 (its route's roots, SNI) offering ALPN `h2` alone, and an instance that
/// does not choose it is one that could not be reached.
async fn connect(
    upstream: &Upstream,
    limits: &crate::Limits,
) -> io::Result<SendRequest<ClientBody>> {
    let open = async {
        let host = upstream
            .authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let tcp = tokio::net::TcpStream::connect((host, upstream.port())).await?;
        tcp.set_nodelay(true)?;
        let io = match &upstream.tls {
            None => Stream::Tcp(tcp),
            Some(tls) => {
                let shared = tls
                    .config()
                    .ok_or_else(|| io::Error::other("TLS: no client settings for this upstream"))?;
                // The route's settings, offering h2 instead of http/1.1 (a clone per
                // connection; there are few).
                let mut config = (*shared).clone();
                config.alpn_protocols = vec![b"h2".to_vec()];
                let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
                let stream = connector
                    .connect(tls.name.clone(), tcp)
                    .await
                    .map_err(|e| io::Error::new(e.kind(), format!("TLS: {e}")))?;
                if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
                    return Err(io::Error::other(
                        "TLS: the instance did not choose HTTP/2 (ALPN h2)",
                    ));
                }
                Stream::TlsOut(Box::new(stream))
            }
        };
        hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(10))
            // Flow-control windows sized to the link (BDP), not h2's 64 KiB: a
            // streaming call is not held to one window per round trip.
            .adaptive_window(true)
            .handshake::<_, ClientBody>(TokioIo::new(io))
            .await
            .map_err(io::Error::other)
    };
    let (sender, connection) = tokio::time::timeout(limits.connect_timeout, open)
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    let url = upstream.url.clone();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(upstream = %url, error = %e, "HTTP/2 upstream connection ended");
        }
    });
    Ok(sender)
}

/// The client's request body, passed through; notes when the client broke it off, so
/// what follows is blamed on the client, not the upstream.
pub struct ClientBody {
    inner: Incoming,
    failed: Arc<AtomicBool>,
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Err(_))) = &polled {
            self.failed.store(true, Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A call in flight on a version (and, once one answered, on that instance): records
/// its one outcome in the version's windows and the instance's outlier detection, at
/// the latest when dropped (then the client left: `client_abort`).
struct Outcome {
    shared: Arc<Shared>,
    version: Arc<Version>,
    judged: bool,
    started: Instant,
    /// Time to the response head, once it came.
    latency: Option<Duration>,
    /// The instance that answered (its index in the version), counted in flight on it.
    answered: Option<usize>,
    done: bool,
}

impl Outcome {
    fn new(shared: &Arc<Shared>, version: Arc<Version>, judged: bool) -> Self {
        version.in_flight.fetch_add(1, Relaxed);
        Self {
            shared: shared.clone(),
            version,
            judged,
            started: Instant::now(),
            latency: None,
            answered: None,
            done: false,
        }
    }

    /// Instance `i` answered: the call is in flight on it until it ends.
    fn answered(&mut self, i: usize) {
        self.version.instances[i].in_flight.fetch_add(1, Relaxed);
        self.answered = Some(i);
        self.latency = Some(self.started.elapsed());
    }

    /// Records the outcome, once; `failed`: the answering instance failed the call.
    fn finish(&mut self, status: Option<u16>, error: Option<ErrorSource>, failed: bool) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let now = Instant::now();
        let obs = Observation {
            status,
            error,
            latency: self
                .latency
                .unwrap_or_else(|| now.saturating_duration_since(self.started)),
        };
        if self.judged {
            let second =
                self.shared.epoch_unix + now.saturating_duration_since(self.shared.epoch).as_secs();
            self.version.stats.record(second, obs);
        } else {
            self.version.overridden.record(obs);
        }
        if let Some(i) = self.answered {
            attempted(&self.shared, &self.version, i, failed);
        }
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        self.finish(None, Some(ErrorSource::ClientAbort), false);
        self.version.in_flight.fetch_sub(1, Relaxed);
        if let Some(i) = self.answered {
            self.version.instances[i].in_flight.fetch_sub(1, Relaxed);
        }
    }
}

/// An attempt's outcome for the instance's outlier detection.
fn attempted(shared: &Shared, version: &Version, i: usize, failed: bool) {
    let base_ms = shared.limits.base_ejection.as_millis() as u64;
    if let Some(ms) = version.attempted(i, failed, shared.now_ms(), base_ms) {
        tracing::warn!(
            instance = %version.instances[i].upstream.url,
            for_ms = ms,
            "instance ejected after {} failures in a row",
            crate::table::EJECT_AFTER
        );
    }
}

/// The upstream's response body relayed to the client; the call's outcome is recorded
/// when its trailers (or its end) pass, or when the client drops it.
pub struct Relayed {
    /// `None`: an answer of ours, headers only.
    inner: Option<Incoming>,
    outcome: Option<Outcome>,
    http_status: StatusCode,
    /// The `grpc-status` of the head (a trailers-only answer).
    head_grpc_status: Option<u32>,
    client_failed: Arc<AtomicBool>,
}

impl Relayed {
    /// The call ended with `grpc_status` (`None`: none was given).
    fn settle(&mut self, grpc_status: Option<u32>) {
        let Some(outcome) = self.outcome.as_mut() else {
            return;
        };
        let status = Some(self.http_status.as_u16());
        let (error, failed) = judge(self.http_status, grpc_status);
        outcome.finish(status, error, failed);
    }

    /// The upstream broke the call off (or the client did, and it shows here).
    fn broken(&mut self) {
        let Some(outcome) = self.outcome.as_mut() else {
            return;
        };
        if self.client_failed.load(Relaxed) {
            outcome.finish(None, Some(ErrorSource::ClientAbort), false);
        } else {
            let status = Some(self.http_status.as_u16());
            outcome.finish(status, Some(ErrorSource::Connect), true);
        }
    }
}

/// What a finished call counts as: its error source, if any, and whether the instance
/// failed it (for outlier detection).
fn judge(http_status: StatusCode, grpc_status: Option<u32>) -> (Option<ErrorSource>, bool) {
    if http_status != StatusCode::OK {
        let failed = http_status.is_server_error();
        return (failed.then_some(ErrorSource::Upstream5xx), failed);
    }
    match grpc_status {
        Some(GRPC_OK) => (None, false),
        Some(GRPC_CANCELLED) => (Some(ErrorSource::ClientAbort), false),
        Some(_) | None => (Some(ErrorSource::Upstream5xx), true),
    }
}

fn grpc_status(headers: &HeaderMap) -> Option<u32> {
    headers
        .get("grpc-status")
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
        .and_then(|v| v.trim().parse().ok())
}

impl Body for Relayed {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = ready!(Pin::new(inner).poll_frame(cx));
        match &polled {
            Some(Ok(frame)) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let code = grpc_status(trailers);
                    this.settle(code);
                }
            }
            None => this.settle(this.head_grpc_status),
            Some(Err(_)) => this.broken(),
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Incoming::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Incoming::size_hint)
    }
}

/// Why no instance answered: what the client is told, and what is recorded.
#[derive(Clone, Copy)]
enum Unanswered {
    Unreachable,
    TimedOut,
    Broken,
}

impl Unanswered {
    fn status(self) -> StatusCode {
        match self {
            Unanswered::Unreachable | Unanswered::Broken => StatusCode::BAD_GATEWAY,
            Unanswered::TimedOut => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    fn source(self) -> ErrorSource {
        match self {
            Unanswered::Unreachable | Unanswered::Broken => ErrorSource::Connect,
            Unanswered::TimedOut => ErrorSource::Timeout,
        }
    }

    /// A gRPC client's answer: our HTTP status, with the gRPC status it maps to.
    fn answer(self) -> Response<Relayed> {
        let (code, message) = match self {
            Unanswered::Unreachable => (GRPC_UNAVAILABLE, "liftoff: upstream unreachable"),
            Unanswered::Broken => (GRPC_UNAVAILABLE, "liftoff: upstream failed"),
            Unanswered::TimedOut => (GRPC_DEADLINE_EXCEEDED, "liftoff: upstream timed out"),
        };
        let mut resp = Response::new(Relayed {
            inner: None,
            outcome: None,
            http_status: self.status(),
            head_grpc_status: Some(code),
            client_failed: Arc::default(),
        });
        *resp.status_mut() = self.status();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        h.insert("grpc-status", HeaderValue::from(code));
        h.insert("grpc-message", HeaderValue::from_static(message));
        resp
    }
}

/// A gRPC call from an HTTP/2 client: routed, sent to an instance of the chosen
/// version over HTTP/2, its response streamed back. `Err`: our own answer (no route,
/// maintenance, a refused override, a client that broke its request off).
pub(crate) async fn request(
    shared: &Arc<Shared>,
    conn: &ConnInfo,
    req: Request<Incoming>,
) -> Result<Response<Relayed>, Ours> {
    let host = req
        .uri()
        .authority()
        .map(|a| Bytes::copy_from_slice(a.as_str().as_bytes()))
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .map(|h| Bytes::copy_from_slice(h.as_bytes()))
        });
    let picked = pick(shared, conn, host.as_deref(), req.headers())?;
    let Some(version) = picked.route.version(picked.role).cloned() else {
        return Err(Ours::text(
            StatusCode::BAD_GATEWAY,
            "liftoff: no upstream\n",
        ));
    };
    version.retry_budget.deposit();
    let (parts, body) = req.into_parts();
    let headers = upstream_headers(&parts.headers, &picked, conn, host.as_deref());
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    let client_failed = Arc::new(AtomicBool::new(false));
    let mut body = Some(ClientBody {
        inner: body,
        failed: client_failed.clone(),
    });
    let mut outcome = Outcome::new(shared, version.clone(), picked.judged);
    let now_ms = outcome
        .started
        .saturating_duration_since(shared.epoch)
        .as_millis() as u64;
    let mut tried = 0u64;
    let mut last = Unanswered::Unreachable;
    while let Some(i) = version.choose(now_ms, tried) {
        if tried != 0 && !version.retry_budget.withdraw() {
            break;
        }
        tried |= 1u64.checked_shl(i as u32).unwrap_or(0);
        let instance = &version.instances[i];
        // The client's authority, like its Host over HTTP/1, or the instance's own.
        let upstream = &instance.upstream;
        let authority = host
            .as_deref()
            .filter(|_| picked.route.host_policy == HostPolicy::Client)
            .unwrap_or(&upstream.host[..]);
        let authority = http::uri::Authority::try_from(authority)
            .unwrap_or_else(|_| upstream.authority.clone());
        let uri = Uri::builder()
            .scheme(if upstream.tls.is_some() {
                "https"
            } else {
                "http"
            })
            .authority(authority)
            .path_and_query(path.clone())
            .build()
            .map_err(|_| Ours::text(StatusCode::BAD_REQUEST, "liftoff: bad request target\n"))?;
        let attempt = Attempt {
            shared,
            instance,
            method: &parts.method,
            uri,
            headers: &headers,
            timeout: head_timeout(picked.route.limits.request_timeout, &parts.headers),
        };
        let answer = {
            let _on = OnInstance::new(instance);
            attempt.send(&mut body).await
        };
        let why = match answer {
            Ok(resp) => {
                outcome.answered(i);
                let (head, inner) = resp.into_parts();
                let mut relayed = Relayed {
                    http_status: head.status,
                    head_grpc_status: grpc_status(&head.headers),
                    inner: Some(inner),
                    outcome: Some(outcome),
                    client_failed,
                };
                // A trailers-only answer has no body the server would read.
                if relayed.is_end_stream() {
                    relayed.settle(relayed.head_grpc_status);
                }
                return Ok(Response::from_parts(head, relayed));
            }
            Err(_) if client_failed.load(Relaxed) => {
                outcome.finish(None, Some(ErrorSource::ClientAbort), false);
                return Err(Ours::text(
                    StatusCode::BAD_REQUEST,
                    "liftoff: incomplete request body\n",
                ));
            }
            Err(why) => why,
        };
        attempted(shared, &version, i, true);
        last = why;
        // Only a call that never left may go to another instance, body and all.
        if !matches!(why, Unanswered::Unreachable) || body.is_none() {
            break;
        }
    }
    outcome.finish(Some(last.status().as_u16()), Some(last.source()), false);
    Ok(last.answer())
}

/// Counts an attempt as in flight on an instance, for the balancer, until it is
/// answered or dropped (the client left).
struct OnInstance<'a>(&'a Instance);

impl<'a> OnInstance<'a> {
    fn new(instance: &'a Instance) -> Self {
        instance.in_flight.fetch_add(1, Relaxed);
        Self(instance)
    }
}

impl Drop for OnInstance<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

/// One try of a call on one instance.
struct Attempt<'a> {
    shared: &'a Shared,
    instance: &'a Instance,
    method: &'a http::Method,
    uri: Uri,
    headers: &'a HeaderMap,
    timeout: Duration,
}

impl Attempt<'_> {
    /// Sends the call and waits for the response head. The body is taken only once the
    /// call is on a connection; if it could not be put on one, it is given back.
    async fn send(self, body: &mut Option<ClientBody>) -> Result<Response<Incoming>, Unanswered> {
        let upstream = &self.instance.upstream;
        let conns = self.shared.h2.of(upstream);
        // A pooled connection found dead costs the call nothing: once, another.
        for _ in 0..2 {
            let Some(b) = body.take() else {
                return Err(Unanswered::Broken);
            };
            let (slot, mut sender) = match conns.take(upstream, &self.shared.limits).await {
                Ok(taken) => taken,
                Err(e) => {
                    tracing::debug!(upstream = %upstream.url, error = %e, "cannot connect to gRPC upstream");
                    *body = Some(b);
                    return Err(Unanswered::Unreachable);
                }
            };
            let mut req = Request::new(b);
            *req.method_mut() = self.method.clone();
            *req.uri_mut() = self.uri.clone();
            *req.headers_mut() = self.headers.clone();
            match tokio::time::timeout(self.timeout, sender.try_send_request(req)).await {
                Err(_) => return Err(Unanswered::TimedOut),
                Ok(Ok(resp)) => return Ok(resp),
                Ok(Err(mut e)) => match e.take_message() {
                    Some(unsent) => {
                        *body = Some(unsent.into_body());
                        conns.forget(slot).await;
                    }
                    None => {
                        let e = e.into_error();
                        tracing::debug!(upstream = %upstream.url, error = %e, "gRPC upstream call failed");
                        return Err(Unanswered::Broken);
                    }
                },
            }
        }
        Err(Unanswered::Unreachable)
    }
}

/// How long the response head may take: the route's `request_timeout`, or the call's
/// own deadline (`grpc-timeout`) when longer. A server-streaming call (a watch) may send
/// its head only with its first message; a client that says it will wait that long
/// is not cut off before.
fn head_timeout(request_timeout: Duration, headers: &HeaderMap) -> Duration {
    headers
        .get("grpc-timeout")
        .and_then(|v| grpc_timeout(v.as_bytes()))
        .map_or(request_timeout, |d| d.max(request_timeout))
}

/// A `grpc-timeout` value: at most 8 digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
fn grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The fields the upstream gets: the client's minus the hop-by-hop ones (`te:
/// trailers` stays: gRPC requires it), `host` (the authority says it) and the version
/// override's header, with the forwarding fields extended as over HTTP/1.
fn upstream_headers(
    given: &HeaderMap,
    picked: &Picked,
    conn: &ConnInfo,
    host: Option<&[u8]>,
) -> HeaderMap {
    const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
    const XFP: HeaderName = HeaderName::from_static("x-forwarded-proto");
    const XFH: HeaderName = HeaderName::from_static("x-forwarded-host");
    let mut h = HeaderMap::with_capacity(given.len() + 4);
    for (name, value) in given {
        let bytes = name.as_str().as_bytes();
        let keep = match hop_by_hop(bytes) {
            Some(Hop::Te) => value.as_bytes().eq_ignore_ascii_case(b"trailers"),
            Some(_) => false,
            None => {
                *name != header::HOST
                    && *name != XFF
                    && *name != XFP
                    && *name != XFH
                    && *name != header::FORWARDED
                    && picked.passed_on(bytes)
            }
        };
        if keep {
            h.append(name.clone(), value.clone());
        }
    }
    let ip = conn.peer.ip().to_canonical();
    let proto = if conn.tls { "https" } else { "http" };
    let prior = |name: &HeaderName| {
        given
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| format!("{v}, "))
            .collect::<String>()
    };
    let mut forwarded = if ip.is_ipv6() {
        format!("{}for=\"[{ip}]\";proto={proto}", prior(&header::FORWARDED))
    } else {
        format!("{}for={ip};proto={proto}", prior(&header::FORWARDED))
    };
    let host = host.and_then(|h| std::str::from_utf8(h).ok());
    // A host that would break out of the quoted string is left out of `Forwarded`.
    if let Some(host) = host.filter(|h| !h.contains(['"', '\\'])) {
        forwarded.push_str(&format!(";host=\"{host}\""));
    }
    let values = [
        (XFF, format!("{}{ip}", prior(&XFF))),
        (XFP, proto.to_string()),
        (header::FORWARDED, forwarded),
    ];
    for (name, value) in values {
        if let Ok(v) = HeaderValue::try_from(value) {
            h.insert(name, v);
        }
    }
    if let Some(v) = host.and_then(|h| HeaderValue::try_from(h).ok()) {
        h.insert(XFH, v);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_grpc_content_types_over_http2_are_grpc() {
        let req = |version, ct: &str| {
            let mut r = Request::new(());
            *r.version_mut() = version;
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::try_from(ct).unwrap());
            is_grpc(&r)
        };
        use http::Version as V;
        assert!(req(V::HTTP_2, "application/grpc"));
        assert!(req(V::HTTP_2, "application/grpc+proto"));
        assert!(req(V::HTTP_2, "Application/GRPC;charset=utf-8"));
        assert!(!req(V::HTTP_2, "application/grpc-web"));
        assert!(!req(V::HTTP_2, "application/json"));
        assert!(!req(V::HTTP_11, "application/grpc"));
    }

    #[test]
    fn a_calls_deadline_lengthens_the_wait_for_its_head_never_shortens_it() {
        let thirty = Duration::from_secs(30);
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("grpc-timeout", HeaderValue::try_from(v).unwrap());
            head_timeout(thirty, &h)
        };
        assert_eq!(head_timeout(thirty, &HeaderMap::new()), thirty);
        assert_eq!(with("2H"), Duration::from_secs(7200));
        assert_eq!(with("5M"), Duration::from_secs(300));
        assert_eq!(
            with("100m"),
            thirty,
            "a shorter deadline is the client's to keep"
        );
        for bad in ["", "S", "123456789S", "10x", "-1S", "1.5S"] {
            assert_eq!(grpc_timeout(bad.as_bytes()), None, "{bad}");
        }
        assert_eq!(
            grpc_timeout(b"99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
    }

    #[test]
    fn a_calls_grpc_status_decides_whose_error_it_is() {
        let ok = StatusCode::OK;
        assert_eq!(judge(ok, Some(0)), (None, false));
        assert_eq!(judge(ok, Some(1)), (Some(ErrorSource::ClientAbort), false));
        for code in [2, 4, 13, 14] {
            assert_eq!(
                judge(ok, Some(code)),
                (Some(ErrorSource::Upstream5xx), true)
            );
        }
        assert_eq!(
            judge(ok, None),
            (Some(ErrorSource::Upstream5xx), true),
            "a call that ends without a status failed"
        );
        assert_eq!(
            judge(StatusCode::SERVICE_UNAVAILABLE, None),
            (Some(ErrorSource::Upstream5xx), true)
        );
        assert_eq!(judge(StatusCode::NOT_FOUND, None), (None, false));
    }
}
