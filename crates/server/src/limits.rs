//! What the API's clients may hold: connections, time and bytes.
//!
//! The API shares the daemon's file descriptors with the store and the commands
//! launches run (the data plane is a process of its own, `liftoff router`), so a flood
//! of API clients must never leave the daemon unable to work. Hence:
//! - at start the soft open-file limit is raised to the hard one, and the API holds at
//!   most `max_connections` (default: a quarter of that limit, at most 1,024);
//! - at the cap, the oldest connection that is not in a handler (a request head still
//!   arriving, or a kept-alive connection between requests) is closed to make room, so
//!   slow clients cannot lock an operator or `/healthz` out; only when every connection
//!   is in a handler does a new one wait (in the kernel's backlog, holding no descriptor
//!   of ours);
//! - a request head must be complete within `header_timeout`, which also closes a
//!   kept-alive connection idle that long (hyper's header read timer);
//! - a request body must arrive within `request_timeout` and be at most `max_bytes`: it
//!   is read whole before the handler runs (no endpoint streams, and decoding never sees
//!   more), 408 or 413 otherwise; a response the client does not read for
//!   `request_timeout` closes its connection.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// The largest request body the API reads (a plan is far smaller).
pub const MAX_BODY_BYTES: usize = 1 << 20;

#[derive(Clone, Debug)]
pub struct ApiLimits {
    /// Connections the API holds at once; `None`: a quarter of the open-file limit, at
    /// most 1,024.
    pub max_connections: Option<usize>,
    pub header_timeout: Duration,
    pub request_timeout: Duration,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            max_connections: None,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl ApiLimits {
    /// The connection cap, given the daemon's open-file limit.
    pub fn connection_cap(&self, open_files: u64) -> usize {
        let share = usize::try_from(open_files / 4).unwrap_or(usize::MAX);
        match self.max_connections {
            Some(n) => {
                if n > share {
                    tracing::warn!(
                        max_connections = n,
                        open_files,
                        "the API may hold more than a quarter of the daemon's file descriptors; the builtin router can be starved of them"
                    );
                }
                n.max(1)
            }
            None => share.clamp(16, 1024),
        }
    }
}

/// Raise the soft limit on open files to the hard one; the soft limit in force after.
pub fn raise_open_file_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return hard;
    }
    soft
}

#[derive(Clone, Copy, Debug)]
pub struct BodyLimits {
    pub max_bytes: usize,
    pub timeout: Duration,
}

/// Middleware: the request body, whole, within the limits, or the error in the route's
/// shape (and the connection closed, since the rest of the body is not read).
pub async fn read_body(State(limits): State<BodyLimits>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let refuse = |status: StatusCode, code: &str, message: String| {
        let mut resp = crate::error::for_path(&path, status, code, message);
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        resp
    };
    let too_large = || {
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request bodies are limited to {} bytes", limits.max_bytes),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_bytes as u64) {
        return too_large();
    }
    let (parts, body) = req.into_parts();
    let read = Limited::new(body, limits.max_bytes).collect();
    let bytes = match tokio::time::timeout(limits.timeout, read).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => return too_large(),
        Ok(Err(e)) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("the request body could not be read: {e}"),
            );
        }
        Err(_) => {
            return refuse(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!(
                    "the request body did not arrive within {}",
                    humantime_secs(limits.timeout)
                ),
            );
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn humantime_secs(d: Duration) -> String {
    match d.subsec_millis() {
        0 => format!("{}s", d.as_secs()),
        _ => format!("{}ms", d.as_millis()),
    }
}

/// One open connection, in accept order.
struct Open {
    /// Requests of this connection inside a handler.
    in_handler: Arc<AtomicUsize>,
    evict: CancellationToken,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    open: BTreeMap<u64, Open>,
}

impl Registry {
    /// Close the oldest connection no handler is working for; false if there is none.
    fn evict_oldest_idle(&self) -> bool {
        let idle = self
            .open
            .values()
            .find(|c| c.in_handler.load(Ordering::Acquire) == 0 && !c.evict.is_cancelled());
        match idle {
            Some(c) => {
                c.evict.cancel();
                true
            }
            None => false,
        }
    }
}

/// Counts a request as in a handler while it lives.
struct InHandler(Arc<AtomicUsize>);

impl InHandler {
    fn enter(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        InHandler(count.clone())
    }
}

impl Drop for InHandler {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serve `app` on `listener` (HTTP/1.1) until `shutdown`, then stop accepting, let the
/// requests in progress finish and return.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &ApiLimits,
    cap: usize,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(cap));
    let registry = Arc::new(Mutex::new(Registry::default()));
    let tasks = TaskTracker::new();
    let closing = CancellationToken::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut at_cap = false;
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, or a connection reset before it was taken.
                    tracing::warn!(error = %e, "the API could not accept a connection");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(Duration::from_millis(50)) => continue,
                    }
                }
            },
        };
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                at_cap = false;
                permit
            }
            Err(_) => {
                let evicted = lock(&registry).evict_oldest_idle();
                if !at_cap {
                    tracing::warn!(
                        cap,
                        evicted,
                        "the API holds its maximum of connections; closing idle ones to make room"
                    );
                    at_cap = true;
                }
                tokio::select! {
                    () = &mut shutdown => break,
                    permit = permits.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                }
            }
        };
        let in_handler = Arc::new(AtomicUsize::new(0));
        let evict = CancellationToken::new();
        let id = {
            let mut r = lock(&registry);
            let id = r.next_id;
            r.next_id += 1;
            r.open.insert(
                id,
                Open {
                    in_handler: in_handler.clone(),
                    evict: evict.clone(),
                },
            );
            id
        };
        let service = {
            let app = app.clone();
            hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let busy = InHandler::enter(&in_handler);
                let app = app.clone();
                async move {
                    let _busy = busy;
                    app.oneshot(req.map(Body::new)).await
                }
            })
        };
        let io = TokioIo::new(WriteDeadline::new(stream, limits.request_timeout));
        let conn = http.serve_connection(io, service);
        let (registry, closing) = (registry.clone(), closing.clone());
        tasks.spawn(async move {
            let _permit = permit;
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "API connection ended");
                    }
                }
                () = evict.cancelled() => tracing::debug!("idle API connection closed to make room"),
                () = closing.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        () = evict.cancelled() => {}
                    }
                }
            }
            lock(&registry).open.remove(&id);
        });
    }
    closing.cancel();
    tasks.close();
    tasks.wait().await;
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing under this lock is left half-done by a panic.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A client socket whose writes fail with `TimedOut` once they have made no progress
/// for `limit`: a client that stops reading its response cannot hold the connection.
struct WriteDeadline {
    io: TcpStream,
    limit: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl WriteDeadline {
    fn new(io: TcpStream, limit: Duration) -> Self {
        Self {
            io,
            limit,
            stalled: None,
        }
    }

    /// The write did not progress: time out once it has not for `limit`.
    fn on<T>(&mut self, cx: &mut Context<'_>, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for WriteDeadline {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteDeadline {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.on(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.on(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.on(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_shutdown(cx);
        self.on(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn the_api_may_hold_a_quarter_of_the_open_files_unless_told_otherwise() {
        let default = ApiLimits::default();
        assert_eq!(default.connection_cap(256), 64);
        assert_eq!(default.connection_cap(20), 16);
        assert_eq!(default.connection_cap(1 << 20), 1024);
        let told = ApiLimits {
            max_connections: Some(50),
            ..ApiLimits::default()
        };
        assert_eq!(told.connection_cap(256), 50);
        assert_eq!(told.connection_cap(100), 50, "honoured, with a warning");
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_reading_times_the_write_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut server = WriteDeadline::new(server, Duration::from_secs(30));
        let chunk = vec![0u8; 64 * 1024];
        let started = tokio::time::Instant::now();
        let err = loop {
            if let Err(e) = server.write_all(&chunk).await {
                break e;
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_secs(30));
        drop(client);
    }
}
