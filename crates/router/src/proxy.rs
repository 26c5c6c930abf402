//! The request path: pick a version, forward, stream back, observe.
//!
//! Invariant: nothing here takes a lock or waits on the control plane. The table is
//! one atomic load; observations are relaxed atomic adds.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{Either, Empty, Full, Limited};
use hyper::body::{Body, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

use crate::pool::{PooledBody, SendError};
use crate::split::{self, Role, SplitRule};
use crate::stats::{ErrorSource, Observation};
use crate::table::{Route, Upstream};
use crate::{Limits, Shared};

/// What clients get: the upstream's body streamed through, or one of ours. A concrete
/// type, not a box: no allocation per response.
pub type ProxyBody = Either<PooledBody, Full<Bytes>>;
/// What upstreams get: nothing, or the client's body under the size limit.
pub type UpstreamBody = Either<Empty<Bytes>, Limited<Incoming>>;
pub type UpstreamClient = Client<HttpConnector, UpstreamBody>;

/// Per connection: where it came in and from whom, and the forwarding header values
/// that only depend on the client (formatted once, not per request).
pub struct ConnInfo {
    pub listen: SocketAddr,
    pub peer: SocketAddr,
    /// Set once a request head arrived (disarms the slow-client deadline).
    pub head_seen: Arc<std::sync::atomic::AtomicBool>,
    /// The client address as `X-Forwarded-For` carries it.
    client: HeaderValue,
    /// `for=<client>;proto=http`, the start of our `Forwarded` element.
    forwarded_for: Bytes,
}

impl ConnInfo {
    pub fn new(
        listen: SocketAddr,
        peer: SocketAddr,
        head_seen: Arc<std::sync::atomic::AtomicBool>,
    ) -> Self {
        let ip = peer.ip().to_canonical();
        let forwarded_for = if ip.is_ipv6() {
            format!("for=\"[{ip}]\";proto=http")
        } else {
            format!("for={ip};proto=http")
        };
        Self {
            listen,
            peer,
            head_seen,
            client: HeaderValue::try_from(ip.to_string()).expect("an IP address is a header value"),
            forwarded_for: Bytes::from(forwarded_for),
        }
    }
}

pub fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<ProxyBody> {
    let mut resp = Response::new(Either::Right(Full::new(body.into())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

pub(crate) fn empty_body() -> UpstreamBody {
    Either::Left(Empty::new())
}

/// Counts a request as in flight on an upstream, and records a client abort if the
/// request is dropped (the client went away) before an outcome was recorded.
struct InFlight<'a> {
    shared: &'a Shared,
    upstream: Arc<Upstream>,
    started: Instant,
    done: bool,
}

impl<'a> InFlight<'a> {
    fn new(shared: &'a Shared, upstream: Arc<Upstream>) -> Self {
        upstream.in_flight.fetch_add(1, Relaxed);
        Self {
            shared,
            upstream,
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
            let second = now.saturating_duration_since(self.shared.epoch).as_secs();
            self.upstream.stats.record(second, obs);
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.finish(None, Some(ErrorSource::ClientAbort));
        self.upstream.in_flight.fetch_sub(1, Relaxed);
    }
}

pub async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    conn.head_seen.store(true, Relaxed);
    Ok(route_request(&shared, &conn, req).await)
}

async fn route_request(
    shared: &Shared,
    conn: &ConnInfo,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let host = request_host(&req);
    let table = shared.table.load();
    let Some(route) = table
        .find(conn.listen, host.as_ref().and_then(|h| h.to_str().ok()))
        .cloned()
    else {
        return full(StatusCode::NOT_FOUND, "liftoff: no route for this host\n");
    };
    drop(table);
    let client_ip = conn.peer.ip();
    if let Some(m) = &route.maintenance
        && !m.lets_through(client_ip, req.headers())
    {
        let mut resp = full(StatusCode::SERVICE_UNAVAILABLE, m.page.clone());
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        h.insert(header::RETRY_AFTER, HeaderValue::from(m.retry_after_secs));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return resp;
    }
    let limits = &shared.limits;
    if let Some(len) = req
        .body()
        .size_hint()
        .exact()
        .or(req.body().size_hint().upper())
        && len > limits.max_body_bytes as u64
    {
        return full(
            StatusCode::PAYLOAD_TOO_LARGE,
            "liftoff: request body too large\n",
        );
    }
    let rule = SplitRule {
        weight_bp: route.weight_bp,
        salt: route.salt,
        sticky: &route.sticky,
        override_header: route.override_header.as_ref(),
        has_candidate: route.candidate.is_some(),
    };
    let role = split::choose(&rule, req.headers(), client_ip);
    forward(shared, conn, &route, role, host, req).await
}

/// The Host (HTTP/1) or `:authority` (HTTP/2). A header value clone is a reference
/// count, not a copy.
fn request_host(req: &Request<Incoming>) -> Option<HeaderValue> {
    req.headers().get(header::HOST).cloned().or_else(|| {
        req.uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    })
}

async fn forward(
    shared: &Shared,
    conn: &ConnInfo,
    route: &Route,
    role: Role,
    host: Option<HeaderValue>,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let limits = &shared.limits;
    let (mut parts, body) = req.into_parts();
    let bodyless = body.is_end_stream();
    rewrite_request_headers(&mut parts.headers, conn, host);
    let Some(upstream) = route.upstream(role).cloned() else {
        return full(StatusCode::BAD_GATEWAY, "liftoff: no upstream\n");
    };
    // A bodyless request can be replayed once on the other version when its upstream
    // failed: a stopped backend must not be an outage. (A streamed body is gone.) The
    // copy is only made when there is another version to replay on.
    let fallback = route
        .upstream(role.other())
        .filter(|u| !Arc::ptr_eq(u, &upstream))
        .cloned();
    let replay = (bodyless && fallback.is_some()).then(|| {
        (
            parts.method.clone(),
            parts.uri.clone(),
            parts.headers.clone(),
        )
    });
    let body: UpstreamBody = if bodyless {
        empty_body()
    } else {
        Either::Right(Limited::new(body, limits.max_body_bytes))
    };
    let first = send(shared, &upstream, Request::from_parts(parts, body)).await;
    match first {
        Sent::Response(resp) => resp,
        Sent::Failed {
            status,
            message,
            never_sent,
        } => match (replay, fallback) {
            (Some((method, uri, headers)), Some(other)) if never_sent || is_idempotent(&method) => {
                let mut again = Request::new(empty_body());
                *again.method_mut() = method;
                *again.uri_mut() = uri;
                *again.headers_mut() = headers;
                match send(shared, &other, again).await {
                    Sent::Response(resp) => resp,
                    Sent::Failed {
                        status, message, ..
                    } => full(status, message),
                }
            }
            _ => full(status, message),
        },
    }
}

enum Sent {
    Response(Response<ProxyBody>),
    Failed {
        status: StatusCode,
        message: &'static str,
        /// The request certainly did not reach the upstream (connecting failed).
        never_sent: bool,
    },
}

async fn send(shared: &Shared, upstream: &Arc<Upstream>, mut req: Request<UpstreamBody>) -> Sent {
    // Origin form (`/path?query`): what an HTTP/1.1 server expects from a client.
    // HTTP/1 clients send it already; HTTP/2 and absolute-form targets are rebuilt.
    if req.uri().scheme().is_some() || req.uri().authority().is_some() {
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        match Uri::builder().path_and_query(path).build() {
            Ok(uri) => *req.uri_mut() = uri,
            Err(_) => {
                return Sent::Failed {
                    status: StatusCode::BAD_REQUEST,
                    message: "liftoff: bad request target\n",
                    never_sent: false,
                };
            }
        }
    }
    *req.version_mut() = http::Version::HTTP_11;
    if !req.headers().contains_key(header::HOST)
        && let Ok(host) = HeaderValue::from_str(upstream.authority.as_str())
    {
        req.headers_mut().insert(header::HOST, host);
    }
    let mut flight = InFlight::new(shared, upstream.clone());
    let answer = tokio::time::timeout(
        shared.limits.request_timeout,
        upstream.pool.send(&upstream.authority, req, &shared.limits),
    )
    .await;
    match answer {
        Ok(Ok(resp)) => {
            let status = resp.status();
            let error = status.is_server_error().then_some(ErrorSource::Upstream5xx);
            flight.finish(Some(status.as_u16()), error);
            // The pool hands on end-to-end headers only.
            let (parts, body) = resp.into_parts();
            Sent::Response(Response::from_parts(parts, Either::Left(body)))
        }
        Ok(Err(e)) => {
            let never_sent = matches!(e, SendError::Connect(_));
            match &e {
                SendError::Connect(e) => {
                    tracing::debug!(upstream = %upstream.url, error = %e, "cannot connect to upstream");
                }
                SendError::Exchange(e) => {
                    tracing::debug!(upstream = %upstream.url, error = %e, "upstream request failed");
                }
            }
            flight.finish(Some(502), Some(ErrorSource::Connect));
            Sent::Failed {
                status: StatusCode::BAD_GATEWAY,
                message: "liftoff: upstream unreachable\n",
                never_sent,
            }
        }
        Err(_) => {
            flight.finish(Some(504), Some(ErrorSource::Timeout));
            Sent::Failed {
                status: StatusCode::GATEWAY_TIMEOUT,
                message: "liftoff: upstream timed out\n",
                never_sent: false,
            }
        }
    }
}

pub(crate) fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over what is there (a handful of headers) instead of a lookup per
    // hop-by-hop name; most messages carry none, or only `Connection: keep-alive`.
    let mut present = 0u8;
    let mut names_others = false;
    for (name, value) in headers.iter() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present |= 1 << i;
            if i == 0 {
                names_others |= connection_tokens(value.to_str().unwrap_or(""))
                    .next()
                    .is_some();
            }
        }
    }
    if names_others {
        // Headers named in `Connection` are hop-by-hop too.
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|v| connection_tokens(v.to_str().unwrap_or("")))
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .collect();
        for name in &named {
            headers.remove(name);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
}

/// The header names a `Connection` value lists (`close` and `keep-alive` are
/// options, not names).
pub(crate) fn connection_tokens(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|t| {
        !t.is_empty() && !t.eq_ignore_ascii_case("close") && !t.eq_ignore_ascii_case("keep-alive")
    })
}

/// `prior, ours` when a proxy before us set the header; a header value built from
/// bytes without a formatter.
fn append_element(prior: Option<&HeaderValue>, parts: &[&[u8]]) -> Option<HeaderValue> {
    let len = prior.map_or(0, |p| p.len() + 2) + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut buf = Vec::with_capacity(len);
    if let Some(prior) = prior {
        buf.extend_from_slice(prior.as_bytes());
        buf.extend_from_slice(b", ");
    }
    for part in parts {
        buf.extend_from_slice(part);
    }
    HeaderValue::from_maybe_shared(Bytes::from(buf)).ok()
}

fn rewrite_request_headers(headers: &mut HeaderMap, conn: &ConnInfo, host: Option<HeaderValue>) {
    strip_hop_by_hop(headers);
    // Up to five headers are added: one allocation, not several as the map grows.
    headers.reserve(5);
    let xff = match headers.get(&X_FORWARDED_FOR) {
        None => Some(conn.client.clone()),
        prior => append_element(prior, &[conn.client.as_bytes()]),
    };
    if let Some(v) = xff {
        headers.insert(X_FORWARDED_FOR, v);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    let prior = headers.get(header::FORWARDED);
    // A host that would break out of the quoted string is left out of `Forwarded`.
    let quotable = host
        .as_ref()
        .filter(|h| !h.as_bytes().iter().any(|b| matches!(b, b'"' | b'\\')));
    let forwarded = match (quotable, prior) {
        (None, None) => HeaderValue::from_maybe_shared(conn.forwarded_for.clone()).ok(),
        (None, prior) => append_element(prior, &[&conn.forwarded_for]),
        (Some(host), prior) => append_element(
            prior,
            &[&conn.forwarded_for, b";host=\"", host.as_bytes(), b"\""],
        ),
    };
    if let Some(host) = host {
        headers.insert(X_FORWARDED_HOST, host.clone());
        // HTTP/2 clients send `:authority`, not Host: give the upstream a Host.
        headers.entry(header::HOST).or_insert(host);
    }
    if let Some(v) = forwarded {
        headers.insert(header::FORWARDED, v);
    }
}

/// The upstream connection pool: grows with concurrency (no fixed keep-alive cap).
pub fn upstream_client(limits: &Limits) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(limits.connect_timeout));
    connector.set_nodelay(true);
    Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(limits.upstream_idle_timeout)
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .build(connector)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(peer: &str) -> ConnInfo {
        ConnInfo::new(
            "127.0.0.1:80".parse().unwrap(),
            peer.parse().unwrap(),
            Arc::default(),
        )
    }

    fn rewritten(peer: &str, given: &[(&str, &str)], host: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (k, v) in given {
            headers.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let host = host.map(|h| HeaderValue::from_str(h).unwrap());
        rewrite_request_headers(&mut headers, &conn(peer), host);
        headers
    }

    #[test]
    fn forwarding_headers_extend_what_earlier_proxies_set() {
        let h = rewritten(
            "[2001:db8::7]:5000",
            &[
                ("x-forwarded-for", "203.0.113.9"),
                ("forwarded", "for=203.0.113.9"),
                ("connection", "keep-alive, x-secret"),
                ("x-secret", "1"),
                ("keep-alive", "timeout=5"),
            ],
            Some("shop.example"),
        );
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, 2001:db8::7");
        assert_eq!(
            h["forwarded"],
            "for=203.0.113.9, for=\"[2001:db8::7]\";proto=http;host=\"shop.example\""
        );
        assert_eq!(h["x-forwarded-host"], "shop.example");
        assert_eq!(h["host"], "shop.example");
        for gone in ["connection", "x-secret", "keep-alive"] {
            assert!(!h.contains_key(gone), "{gone} is hop-by-hop");
        }
    }

    #[test]
    fn a_host_that_would_break_the_quoted_string_stays_out_of_forwarded() {
        let h = rewritten("[::ffff:10.0.0.1]:5000", &[], Some("evil\";for=1.2.3.4"));
        assert_eq!(h["x-forwarded-for"], "10.0.0.1");
        assert_eq!(h["forwarded"], "for=10.0.0.1;proto=http");
        let h = rewritten("10.0.0.2:1", &[], None);
        assert_eq!(h["forwarded"], "for=10.0.0.2;proto=http");
        assert!(!h.contains_key("x-forwarded-host"));
    }
}
