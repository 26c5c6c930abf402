//! The request path shared by both front ends (HTTP/1 in `h1`, HTTP/2 through
//! hyper): pick a version, encode the upstream's request head, forward, observe.
//!
//! Invariant: nothing here takes a lock or waits on the control plane. The table is
//! one atomic load; observations are relaxed atomic adds.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full, Limited};
use hyper::body::{Body, Incoming};

use crate::Shared;
use crate::pool::{Outgoing, PooledBody, SendError, Upstreamed};
use crate::split::{self, Fields, Role, SplitRule};
use crate::stats::{ErrorSource, Observation};
use crate::table::{HostPolicy, Instance, OverrideAsk, Route, Version};
use crate::wire::{ClientFault, Hop, RequestBody, content_length, hop_by_hop};

/// What HTTP/2 clients get: the upstream's body streamed through, or one of ours. A
/// concrete type, not a box: no allocation per response.
pub type ProxyBody = Either<PooledBody, Full<Bytes>>;

/// Per connection: where it came in and from whom, and the forwarding header values
/// that only depend on the client (formatted once, not per request, in one allocation:
/// every open connection holds one).
pub struct ConnInfo {
    pub listen: SocketAddr,
    pub peer: SocketAddr,
    /// Over TLS terminated here: `X-Forwarded-Proto: https`.
    pub tls: bool,
    /// `for=<client>;proto=http`, the start of our `Forwarded` element.
    forwarded_for: String,
    /// Where in `forwarded_for` the client address is, as `X-Forwarded-For` carries it.
    client: std::ops::Range<usize>,
}

impl ConnInfo {
    /// `tls`: the client connected over TLS (terminated here).
    pub fn new(listen: SocketAddr, peer: SocketAddr, tls: bool) -> Self {
        use std::fmt::Write;
        let ip = peer.ip().to_canonical();
        let proto = if tls { "https" } else { "http" };
        // The longest: `for="[` + 39 + `]";proto=https`.
        let mut forwarded_for = String::with_capacity(64);
        let (open, close) = if ip.is_ipv6() {
            ("for=\"[", "]\"")
        } else {
            ("for=", "")
        };
        forwarded_for.push_str(open);
        let start = forwarded_for.len();
        let _ = write!(forwarded_for, "{ip}");
        let client = start..forwarded_for.len();
        let _ = write!(forwarded_for, "{close};proto={proto}");
        Self {
            listen,
            peer,
            tls,
            forwarded_for,
            client,
        }
    }

    /// The client address as `X-Forwarded-For` carries it.
    pub(crate) fn client(&self) -> &[u8] {
        &self.forwarded_for.as_bytes()[self.client.clone()]
    }
}

/// What a request gets: an upstream's response, or one of ours.
pub(crate) enum Answer {
    Upstream(Upstreamed),
    Ours(Ours),
}

/// A response liftoff makes itself: an error, or the maintenance page.
pub(crate) struct Ours {
    pub status: StatusCode,
    pub body: Bytes,
    /// Set for the maintenance page (HTML, `Retry-After`, not to be cached).
    pub retry_after: Option<u32>,
}

impl Ours {
    pub fn text(status: StatusCode, message: &'static str) -> Self {
        Ours {
            status,
            body: Bytes::from_static(message.as_bytes()),
            retry_after: None,
        }
    }

    pub fn content_type(&self) -> &'static str {
        if self.retry_after.is_some() {
            "text/html; charset=utf-8"
        } else {
            "text/plain; charset=utf-8"
        }
    }
}

impl Answer {
    /// For hyper's HTTP/2 server.
    fn into_response(self) -> Response<ProxyBody> {
        match self {
            Answer::Upstream(Upstreamed { head, body }) => match head.to_header_map() {
                Ok(headers) => {
                    let mut resp = Response::new(Either::Left(body));
                    *resp.status_mut() = head.status;
                    *resp.headers_mut() = headers;
                    resp
                }
                Err(e) => {
                    tracing::debug!(error = %e, "upstream response head not valid for HTTP/2");
                    Answer::Ours(Ours::text(
                        StatusCode::BAD_GATEWAY,
                        "liftoff: bad upstream response\n",
                    ))
                    .into_response()
                }
            },
            Answer::Ours(ours) => {
                let mut resp = Response::new(Either::Right(Full::new(ours.body.clone())));
                *resp.status_mut() = ours.status;
                let h = resp.headers_mut();
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(ours.content_type()),
                );
                if let Some(secs) = ours.retry_after {
                    h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
                    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                }
                resp
            }
        }
    }
}

/// Counts a request as in flight on a version, and records a client abort if the
/// request is dropped (the client went away) before an outcome was recorded.
struct InFlight<'a> {
    shared: &'a Shared,
    version: &'a Version,
    /// In the windows gates and triggers judge; if not (a tester's request), only in
    /// the version's overridden totals.
    judged: bool,
    started: Instant,
    done: bool,
}

impl<'a> InFlight<'a> {
    fn new(shared: &'a Shared, version: &'a Version, judged: bool) -> Self {
        version.in_flight.fetch_add(1, Relaxed);
        Self {
            shared,
            version,
            judged,
            started: Instant::now(),
            done: false,
        }
    }

    fn finish(&mut self, status: Option<u16>, error: Option<ErrorSource>) {
        if !self.done {
            self.done = true;
            // One clock read for both the latency and the stats second.
            let now = Instant::now();
            let obs = Observation {
                status,
                error,
                latency: now.saturating_duration_since(self.started),
            };
            if self.judged {
                let second = self.shared.epoch_unix
                    + now.saturating_duration_since(self.shared.epoch).as_secs();
                self.version.stats.record(second, obs);
            } else {
                self.version.overridden.record(obs);
            }
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.finish(None, Some(ErrorSource::ClientAbort));
        self.version.in_flight.fetch_sub(1, Relaxed);
    }
}

/// Where a request goes.
pub(crate) struct Picked {
    pub route: Arc<Route>,
    pub role: Role,
    /// Sent to `role` by a tester's override header: never moved to the other version.
    pub overridden: bool,
    /// In the windows gates and triggers judge: users' requests, and overridden ones
    /// only on a route that counts them (the others go to the overridden totals).
    pub judged: bool,
}

impl Picked {
    /// What the upstream gets of the request's fields: all but the override header,
    /// which may carry a secret meant for the router alone.
    pub fn passed_on(&self, name: &[u8]) -> bool {
        match &self.route.version_override {
            None => true,
            Some(o) => !name.eq_ignore_ascii_case(o.header.as_str().as_bytes()),
        }
    }
}

/// The route for a request and the version that serves it, or our answer: no route
/// for its host, the route is in maintenance and the client not let through, or the
/// client used the version override without being allowed to.
pub(crate) fn pick<F: Fields + ?Sized>(
    shared: &Shared,
    conn: &ConnInfo,
    host: Option<&[u8]>,
    fields: &F,
) -> Result<Picked, Ours> {
    let host = host.and_then(|h| std::str::from_utf8(h).ok());
    let route = shared
        .table
        .load()
        .find(conn.listen, host)
        .cloned()
        .ok_or_else(|| Ours::text(StatusCode::NOT_FOUND, "liftoff: no route for this host\n"))?;
    let client_ip = conn.peer.ip();
    if let Some(m) = &route.maintenance
        && !m.lets_through(client_ip, fields)
    {
        return Err(Ours {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: m.page.clone(),
            retry_after: Some(m.retry_after_secs),
        });
    }
    let asked = match &route.version_override {
        Some(o) => o.ask(fields, client_ip),
        None => OverrideAsk::Absent,
    };
    let (role, overridden) = match asked {
        OverrideAsk::Absent => {
            let rule = SplitRule {
                weight_bp: route.weight_bp,
                salt: route.salt,
                sticky: &route.sticky,
                has_candidate: route.candidate.is_some(),
            };
            (split::choose(&rule, fields, client_ip), false)
        }
        OverrideAsk::Granted(role) if route.candidate.is_some() => (role, true),
        OverrideAsk::Granted(_) => (Role::Stable, true),
        OverrideAsk::Unknown => {
            return Err(Ours::text(
                StatusCode::BAD_REQUEST,
                "liftoff: the version override is `candidate` or `stable`\n",
            ));
        }
        OverrideAsk::Refused => {
            return Err(Ours::text(
                StatusCode::FORBIDDEN,
                "liftoff: version override refused\n",
            ));
        }
    };
    let judged = !overridden || route.version_override.as_ref().is_some_and(|o| o.count);
    Ok(Picked {
        route,
        role,
        overridden,
        judged,
    })
}

pub(crate) fn too_large() -> Ours {
    Ours::text(
        StatusCode::PAYLOAD_TOO_LARGE,
        "liftoff: request body too large\n",
    )
}

impl ClientFault {
    /// What the client is told, if it is still there to hear it.
    fn answer(self) -> Ours {
        match self {
            ClientFault::Malformed => {
                Ours::text(StatusCode::BAD_REQUEST, "liftoff: malformed request body\n")
            }
            ClientFault::TooLarge => too_large(),
            ClientFault::TooSlow => Ours::text(
                StatusCode::REQUEST_TIMEOUT,
                "liftoff: request body too slow\n",
            ),
            ClientFault::Aborted => Ours::text(
                StatusCode::BAD_REQUEST,
                "liftoff: incomplete request body\n",
            ),
        }
    }

    /// The status recorded for the version: the one the client got, none if it left.
    fn status(self) -> Option<u16> {
        match self {
            ClientFault::Aborted => None,
            other => Some(other.answer().status.as_u16()),
        }
    }
}

/// Send the request to the chosen version, on one of its instances.
///
/// Retries on the version's other instances, each paid from its
/// [`RetryBudget`](crate::table::RetryBudget) so that a failing version is not hammered:
/// - a request that never reached an instance (no connection) goes to another instance
///   of the same version, body and all (the body is only taken once connected);
/// - a bodyless idempotent request whose connection died before any response byte goes
///   to another instance once.
///
/// When the version has no instance left to try (or no budget), a bodyless request that
/// never reached it, or may be repeated, is replayed once on the other version (a
/// stopped backend must not be an outage; this adds nothing to the failing version's
/// load), unless a tester's override chose the version.
///
/// A request that reached an upstream and is not idempotent is never sent again. The
/// encoded head is reused as it is.
pub(crate) async fn forward<B>(
    shared: &Shared,
    picked: &Picked,
    out: &Outgoing,
    body: Option<B>,
) -> Answer
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<ClientFault>,
{
    let Picked {
        route,
        role,
        overridden,
        judged,
    } = picked;
    let Some(version) = route.version(*role) else {
        return Answer::Ours(Ours::text(
            StatusCode::BAD_GATEWAY,
            "liftoff: no upstream\n",
        ));
    };
    version.retry_budget.deposit();
    let mut body = body;
    let (status, message, replayable) =
        match on_version(shared, &route.limits, version, *judged, out, &mut body).await {
            Ok(resp) => return Answer::Upstream(resp),
            // The client's own doing: never replayed, never the version's error.
            Err(Failure::Client(fault)) => return Answer::Ours(fault.answer()),
            Err(Failure::Upstream(status, message, never_sent)) => {
                (status, message, never_sent || out.resendable)
            }
        };
    let fallback = route
        .version(role.other())
        .filter(|v| !overridden && !Arc::ptr_eq(v, version));
    match fallback {
        Some(other) if out.body == RequestBody::None && replayable => {
            match on_version(shared, &route.limits, other, *judged, out, &mut None::<B>).await {
                Ok(resp) => Answer::Upstream(resp),
                Err(Failure::Upstream(status, message, _)) => {
                    Answer::Ours(Ours::text(status, message))
                }
                Err(Failure::Client(fault)) => Answer::Ours(fault.answer()),
            }
        }
        _ => Answer::Ours(Ours::text(status, message)),
    }
}

enum Failure {
    /// The upstream failed: our status, its message, and whether the request certainly
    /// did not reach the upstream (connecting failed).
    Upstream(StatusCode, &'static str, bool),
    Client(ClientFault),
}

/// Counts an attempt as in flight on an instance, for the balancer.
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

/// One client request on one version: attempts on its instances until one answers, a
/// retry is not allowed, or none is left. The version records one outcome, the last.
async fn on_version<B>(
    shared: &Shared,
    limits: &crate::Limits,
    version: &Version,
    judged: bool,
    out: &Outgoing,
    body: &mut Option<B>,
) -> Result<Upstreamed, Failure>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<ClientFault>,
{
    let mut flight = InFlight::new(shared, version, judged);
    // The request's own clock reading, not another one.
    let now_ms = flight
        .started
        .saturating_duration_since(shared.epoch)
        .as_millis() as u64;
    let mut tried = 0u64;
    let mut retried_without_response = false;
    // Why the last attempt failed: what the client is told, and whether the request
    // certainly never reached an upstream.
    const UNREACHABLE: (StatusCode, &str, ErrorSource) = (
        StatusCode::BAD_GATEWAY,
        "liftoff: upstream unreachable\n",
        ErrorSource::Connect,
    );
    const TIMED_OUT: (StatusCode, &str, ErrorSource) = (
        StatusCode::GATEWAY_TIMEOUT,
        "liftoff: upstream timed out\n",
        ErrorSource::Timeout,
    );
    let mut last = (UNREACHABLE, true);
    while let Some(i) = version.choose(now_ms, tried) {
        if tried != 0 && !version.retry_budget.withdraw() {
            break;
        }
        tried |= 1u64.checked_shl(i as u32).unwrap_or(0);
        let instance = &version.instances[i];
        let upstream = &instance.upstream;
        let answer = {
            let _on = OnInstance::new(instance);
            upstream.pool.send(upstream, out, body, limits).await
        };
        let e = match answer {
            Ok(resp) => {
                let status = resp.head.status;
                let failed = status.is_server_error();
                eject(shared, version, i, failed, now_ms);
                flight.finish(
                    Some(status.as_u16()),
                    failed.then_some(ErrorSource::Upstream5xx),
                );
                return Ok(resp);
            }
            Err(SendError::Client(fault)) => {
                tracing::debug!(upstream = %upstream.url, ?fault, "client failed its request body");
                flight.finish(fault.status(), Some(ErrorSource::ClientAbort));
                return Err(Failure::Client(fault));
            }
            Err(e) => e,
        };
        eject(shared, version, i, true, now_ms);
        let retry = match &e {
            SendError::Connect(e) => {
                tracing::debug!(upstream = %upstream.url, error = %e, "cannot connect to upstream");
                last = (UNREACHABLE, true);
                true
            }
            SendError::NoResponse(e) => {
                tracing::debug!(upstream = %upstream.url, error = %e, "upstream closed without answering");
                last = (UNREACHABLE, false);
                let once = out.resendable && !retried_without_response;
                retried_without_response = true;
                once
            }
            SendError::Exchange(e) => {
                tracing::debug!(upstream = %upstream.url, error = %e, "upstream request failed");
                last = (UNREACHABLE, false);
                false
            }
            SendError::Timeout => {
                last = (TIMED_OUT, false);
                false
            }
            SendError::Client(_) => unreachable!("answered above"),
        };
        if !retry {
            break;
        }
    }
    let ((status, message, source), never_sent) = last;
    flight.finish(Some(status.as_u16()), Some(source));
    Err(Failure::Upstream(status, message, never_sent))
}

/// Record an attempt's outcome for the instance's outlier detection.
fn eject(shared: &Shared, version: &Version, i: usize, failed: bool, now_ms: u64) {
    let base_ms = shared.limits.base_ejection.as_millis() as u64;
    if let Some(ms) = version.attempted(i, failed, now_ms, base_ms) {
        tracing::warn!(
            instance = %version.instances[i].upstream.url,
            for_ms = ms,
            "instance ejected after {} failures in a row",
            crate::table::EJECT_AFTER
        );
    }
}

pub(crate) fn is_idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE" | "TRACE"
    )
}

/// The fields liftoff sets itself on the way to the upstream: a client's own are
/// replaced (Host, framing) or extended (the forwarding fields).
fn rewritten(name: &[u8]) -> bool {
    const NAMES: [&[u8]; 6] = [
        b"host",
        b"content-length",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"forwarded",
    ];
    NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// The header names a `Connection` value lists (`close` and `keep-alive` are
/// options, not names).
fn connection_tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| {
            !t.is_empty()
                && !t.eq_ignore_ascii_case(b"close")
                && !t.eq_ignore_ascii_case(b"keep-alive")
        })
}

/// A request as the upstream gets it, from what the client sent (either front end):
/// its fields minus the hop-by-hop ones (and those `Connection` names), Host set to
/// the host the request was routed by (or, with [`HostPolicy::Instance`], left for
/// each attempt to set to the instance's own), the forwarding fields extended
/// (`X-Forwarded-Host` is the client's host either way), and framing for its body.
/// Field values were validated by the parser, so they are copied as they are.
pub(crate) fn encode_request<'a, I>(
    method: &str,
    target: &[u8],
    fields: I,
    host: Option<&[u8]>,
    host_policy: HostPolicy,
    body: RequestBody,
    conn: &ConnInfo,
) -> Outgoing
where
    I: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    let mut size = method.len() + target.len() + 200;
    let mut named = false;
    let (mut prior_xff, mut prior_forwarded) = (false, false);
    // A protocol upgrade (WebSocket): `Connection: upgrade` and the `Upgrade` field are
    // passed on, for a bodyless GET only (RFC 9110 §7.8).
    let (mut wants_upgrade, mut upgrade) = (false, None);
    for (name, value) in fields.clone() {
        size += name.len() + value.len() + 4;
        match hop_by_hop(name) {
            Some(Hop::Connection) => {
                named |= connection_tokens(value).next().is_some();
                wants_upgrade |=
                    connection_tokens(value).any(|t| t.eq_ignore_ascii_case(b"upgrade"));
            }
            Some(Hop::Upgrade) => upgrade = Some(value),
            _ => {}
        }
        prior_xff |= name.eq_ignore_ascii_case(b"x-forwarded-for");
        prior_forwarded |= name.eq_ignore_ascii_case(b"forwarded");
    }
    let is_named = |name: &[u8]| {
        named
            && fields.clone().any(|(n, v)| {
                hop_by_hop(n) == Some(Hop::Connection)
                    && connection_tokens(v).any(|t| t.eq_ignore_ascii_case(name))
            })
    };
    // Only read again when the first pass saw one (most requests carry none).
    let prior = |present: bool, wanted: &'static [u8]| {
        present
            .then(|| fields.clone())
            .into_iter()
            .flatten()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(wanted))
            .map(|(_, v)| v)
    };
    let mut h = BytesMut::with_capacity(size);
    h.put_slice(method.as_bytes());
    h.put_u8(b' ');
    h.put_slice(target);
    h.put_slice(b" HTTP/1.1\r\n");
    let host_here = host.filter(|_| host_policy == HostPolicy::Client);
    if let Some(host) = host_here {
        put_field(&mut h, b"host", host);
    }
    for (name, value) in fields.clone() {
        if hop_by_hop(name).is_none() && !rewritten(name) && !is_named(name) {
            put_field(&mut h, name, value);
        }
    }
    // `prior, ours` when a proxy before us set the field.
    h.put_slice(b"x-forwarded-for: ");
    for v in prior(prior_xff, b"x-forwarded-for") {
        h.put_slice(v);
        h.put_slice(b", ");
    }
    h.put_slice(conn.client());
    h.put_slice(if conn.tls {
        b"\r\nx-forwarded-proto: https\r\n".as_slice()
    } else {
        b"\r\nx-forwarded-proto: http\r\n".as_slice()
    });
    h.put_slice(b"forwarded: ");
    for v in prior(prior_forwarded, b"forwarded") {
        h.put_slice(v);
        h.put_slice(b", ");
    }
    h.put_slice(conn.forwarded_for.as_bytes());
    // A host that would break out of the quoted string is left out of `Forwarded`.
    if let Some(host) = host.filter(|h| !h.iter().any(|b| matches!(b, b'"' | b'\\'))) {
        h.put_slice(b";host=\"");
        h.put_slice(host);
        h.put_u8(b'"');
    }
    h.put_slice(b"\r\n");
    if let Some(host) = host {
        put_field(&mut h, b"x-forwarded-host", host);
    }
    let upgrade = upgrade.filter(|_| wants_upgrade && method == "GET" && body == RequestBody::None);
    if let Some(protocol) = upgrade {
        put_field(&mut h, b"connection", b"upgrade");
        put_field(&mut h, b"upgrade", protocol);
    }
    match body {
        RequestBody::Length(n) => {
            let _ = write!(h, "content-length: {n}\r\n");
        }
        RequestBody::Chunked => h.put_slice(b"transfer-encoding: chunked\r\n"),
        // A body-carrying method with no body says so, or the upstream waits for one.
        RequestBody::None if matches!(method, "POST" | "PUT" | "PATCH") => {
            h.put_slice(b"content-length: 0\r\n");
        }
        RequestBody::None => {}
    }
    h.put_slice(b"\r\n");
    Outgoing {
        head: h.freeze(),
        body,
        head_only: method == "HEAD",
        resendable: body == RequestBody::None && is_idempotent(method) && upgrade.is_none(),
        needs_host: host_here.is_none(),
        upgrade: upgrade.is_some(),
    }
}

fn put_field(h: &mut BytesMut, name: &[u8], value: &[u8]) {
    h.put_slice(name);
    h.put_slice(b": ");
    h.put_slice(value);
    h.put_slice(b"\r\n");
}

/// The HTTP/2 front end: hyper serves the connection and calls this per request.
/// gRPC calls go to their instances over HTTP/2 (`h2up`), the rest over HTTP/1.1.
pub async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<Either<ProxyBody, crate::h2up::Relayed>>, Infallible> {
    if crate::h2up::is_grpc(&req) {
        return Ok(match crate::h2up::request(&shared, &conn, req).await {
            Ok(resp) => resp.map(Either::Right),
            Err(ours) => Answer::Ours(ours).into_response().map(Either::Left),
        });
    }
    Ok(h2_request(&shared, &conn, req)
        .await
        .into_response()
        .map(Either::Left))
}

async fn h2_request(shared: &Shared, conn: &ConnInfo, req: Request<Incoming>) -> Answer {
    // `:authority`, or a Host field.
    let host = req
        .uri()
        .authority()
        .map(|a| Bytes::copy_from_slice(a.as_str().as_bytes()))
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .map(|h| Bytes::copy_from_slice(h.as_bytes()))
        });
    let picked = match pick(shared, conn, host.as_deref(), req.headers()) {
        Ok(picked) => picked,
        Err(ours) => return Answer::Ours(ours),
    };
    let (parts, body) = req.into_parts();
    let framing = if body.is_end_stream() {
        RequestBody::None
    } else {
        match content_length(
            parts
                .headers
                .get_all(header::CONTENT_LENGTH)
                .iter()
                .map(|v| v.as_bytes()),
        ) {
            Ok(Some(n)) if n > shared.limits.max_body_bytes as u64 => {
                return Answer::Ours(too_large());
            }
            Ok(Some(n)) => RequestBody::Length(n),
            Ok(None) => RequestBody::Chunked,
            Err(_) => {
                return Answer::Ours(Ours::text(
                    StatusCode::BAD_REQUEST,
                    "liftoff: bad content-length\n",
                ));
            }
        }
    };
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    // The map's iterator cannot be cloned; the encoder reads the fields twice.
    let fields: Vec<(&[u8], &[u8])> = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()))
        .filter(|(n, _)| picked.passed_on(n))
        .collect();
    let out = encode_request(
        parts.method.as_str(),
        target.as_bytes(),
        fields.iter().copied(),
        host.as_deref(),
        picked.route.host_policy,
        framing,
        conn,
    );
    let body = Limited::new(body, shared.limits.max_body_bytes);
    forward(shared, &picked, &out, Some(body)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(peer: &str) -> ConnInfo {
        ConnInfo::new(
            "127.0.0.1:80".parse().unwrap(),
            peer.parse().unwrap(),
            false,
        )
    }

    fn head(
        method: &str,
        peer: &str,
        given: &[(&str, &str)],
        host: Option<&str>,
        body: RequestBody,
    ) -> String {
        let fields = given.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes()));
        let out = encode_request(
            method,
            b"/a?b=1",
            fields,
            host.map(str::as_bytes),
            HostPolicy::Client,
            body,
            &conn(peer),
        );
        assert_eq!(out.needs_host, host.is_none());
        String::from_utf8(out.head.to_vec()).unwrap()
    }

    /// The upstream's fields, lowercased names, in order.
    fn fields(peer: &str, given: &[(&str, &str)], host: Option<&str>) -> Vec<(String, String)> {
        let text = head("GET", peer, given, host, RequestBody::None);
        let mut slots = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut slots);
        assert!(req.parse(text.as_bytes()).unwrap().is_complete(), "{text}");
        req.headers
            .iter()
            .map(|h| {
                let value = String::from_utf8(h.value.to_vec()).unwrap();
                (h.name.to_ascii_lowercase(), value)
            })
            .collect()
    }

    fn value<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn forwarding_headers_extend_what_earlier_proxies_set() {
        let h = fields(
            "[2001:db8::7]:5000",
            &[
                ("Host", "ignored.example"),
                ("X-Forwarded-For", "203.0.113.9"),
                ("x-forwarded-for", "198.51.100.1"),
                ("forwarded", "for=203.0.113.9"),
                ("connection", "keep-alive, x-secret"),
                ("X-Secret", "1"),
                ("keep-alive", "timeout=5"),
                ("x-app", "kept"),
                ("x-forwarded-proto", "https"),
            ],
            Some("shop.example"),
        );
        assert_eq!(
            value(&h, "x-forwarded-for"),
            Some("203.0.113.9, 198.51.100.1, 2001:db8::7")
        );
        assert_eq!(
            value(&h, "forwarded"),
            Some("for=203.0.113.9, for=\"[2001:db8::7]\";proto=http;host=\"shop.example\"")
        );
        assert_eq!(value(&h, "x-forwarded-host"), Some("shop.example"));
        assert_eq!(value(&h, "x-forwarded-proto"), Some("http"));
        assert_eq!(value(&h, "host"), Some("shop.example"), "the routed host");
        assert_eq!(value(&h, "x-app"), Some("kept"));
        for gone in ["connection", "x-secret", "keep-alive"] {
            assert_eq!(value(&h, gone), None, "{gone} is hop-by-hop");
        }
        for once in ["host", "x-forwarded-for", "x-forwarded-proto", "forwarded"] {
            assert_eq!(h.iter().filter(|(n, _)| n == once).count(), 1, "{once}");
        }
    }

    #[test]
    fn with_the_instance_host_policy_the_clients_host_is_only_forwarded() {
        let fields = [(b"host".as_slice(), b"shop.example".as_slice())];
        let out = encode_request(
            "GET",
            b"/",
            fields.into_iter(),
            Some(b"shop.example"),
            HostPolicy::Instance,
            RequestBody::None,
            &conn("10.0.0.2:1"),
        );
        let text = String::from_utf8(out.head.to_vec()).unwrap();
        assert!(out.needs_host, "the instance's Host is added per attempt");
        assert!(!text.contains("\r\nhost:"), "{text}");
        assert!(
            text.contains("x-forwarded-host: shop.example\r\n"),
            "{text}"
        );
    }

    #[test]
    fn a_host_that_would_break_the_quoted_string_stays_out_of_forwarded() {
        let h = fields("[::ffff:10.0.0.1]:5000", &[], Some("evil\";for=1.2.3.4"));
        assert_eq!(value(&h, "x-forwarded-for"), Some("10.0.0.1"));
        assert_eq!(value(&h, "forwarded"), Some("for=10.0.0.1;proto=http"));
        let h = fields("10.0.0.2:1", &[], None);
        assert_eq!(value(&h, "forwarded"), Some("for=10.0.0.2;proto=http"));
        assert_eq!(value(&h, "x-forwarded-host"), None);
        assert_eq!(value(&h, "host"), None, "added per upstream");
    }

    #[test]
    fn request_heads_carry_framing_for_their_bodies() {
        let framing = |method, given: &[(&str, &str)], body| {
            let text = head(method, "10.0.0.2:1", given, Some("shop"), body);
            let start = text.find("x-forwarded-host: shop\r\n").unwrap() + 24;
            format!("{} {}", &text[..text.find(' ').unwrap()], &text[start..])
        };
        assert_eq!(framing("GET", &[], RequestBody::None), "GET \r\n");
        assert_eq!(
            framing("POST", &[], RequestBody::None),
            "POST content-length: 0\r\n\r\n"
        );
        assert_eq!(
            framing("POST", &[("content-length", "5")], RequestBody::Chunked),
            "POST transfer-encoding: chunked\r\n\r\n",
            "a length that chunked overrides is dropped"
        );
        assert_eq!(
            framing("PUT", &[("Content-Length", "5")], RequestBody::Length(5)),
            "PUT content-length: 5\r\n\r\n"
        );
        let text = head("GET", "10.0.0.2:1", &[], Some("shop"), RequestBody::None);
        assert!(
            text.starts_with("GET /a?b=1 HTTP/1.1\r\nhost: shop\r\n"),
            "{text}"
        );
    }
}
