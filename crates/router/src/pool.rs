//! Keep-alive HTTP/1.1 connections to one upstream, each driven by the task of the
//! request that is using it.
//!
//! A general-purpose client (hyper-util's) gives every connection a task of its own
//! and talks to it through channels, then spawns one more task per request to put the
//! connection back when the response body is done. Here there is no such hop: the
//! request's task polls the connection while it waits for the response head, and the
//! response body polls it while the client reads; when the body ends the connection
//! goes back to the pool. A connection nobody uses is polled by the sweep, which drops
//! the ones the upstream closed and the ones idle too long.

use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::proxy::UpstreamBody;

type Conn = http1::Connection<TokioIo<TcpStream>, UpstreamBody>;

/// One connection: the handle requests are sent through and the protocol state
/// machine that does the I/O.
pub struct Pooled {
    send: http1::SendRequest<UpstreamBody>,
    /// `None` once it ended: dropping it is what settles the requests queued on it.
    conn: Option<Conn>,
}

struct Idle {
    pooled: Box<Pooled>,
    since: Instant,
}

/// Idle connections, newest last (the warmest is reused first). The lock is held
/// for a push or a pop, never across an await, and never by the control plane.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<Vec<Idle>>,
}

/// Why a request got no response.
pub enum SendError {
    /// No connection could be made: the request never left.
    Connect(std::io::Error),
    /// The connection failed after the request was (or may have been) written.
    Exchange(hyper::Error),
}

impl Pool {
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The warmest idle connection that is still open, if any.
    fn checkout(&self, idle_timeout: Duration) -> Option<Box<Pooled>> {
        loop {
            let Idle { mut pooled, since } = self.idle().pop()?;
            if since.elapsed() < idle_timeout && pooled.is_open() {
                return Some(pooled);
            }
        }
    }

    fn checkin(&self, pooled: Box<Pooled>) {
        self.idle().push(Idle {
            pooled,
            since: Instant::now(),
        });
    }

    /// Drop connections the upstream closed and those idle longer than `idle_timeout`.
    pub fn sweep(&self, idle_timeout: Duration) {
        let stale: Vec<Idle> = {
            let mut idle = self.idle();
            let (keep, stale) = std::mem::take(&mut *idle)
                .into_iter()
                .partition(|i| i.since.elapsed() < idle_timeout);
            *idle = keep;
            stale
        };
        drop(stale); // closes their sockets outside the lock
        let mut idle = self.idle();
        idle.retain_mut(|i| i.pooled.is_open());
    }

    pub fn idle_count(&self) -> usize {
        self.idle().len()
    }

    /// Send `req` on a pooled connection (or a new one) and wait for the response head.
    /// A pooled connection that turns out closed before the request was written is
    /// replaced by a new one, transparently. The response body drives the connection
    /// and returns it to `pool` when it ends.
    pub async fn send(
        self: &std::sync::Arc<Self>,
        authority: &http::uri::Authority,
        req: Request<UpstreamBody>,
        limits: &crate::Limits,
    ) -> Result<Response<PooledBody>, SendError> {
        let mut req = req;
        // A stale pooled connection hands the request back unsent; then one new
        // connection is tried.
        let mut fresh = false;
        loop {
            let pooled = match self.checkout(limits.upstream_idle_timeout) {
                Some(p) => p,
                None => {
                    fresh = true;
                    connect(authority, limits).await?
                }
            };
            match pooled.exchange(req).await {
                (pooled, Ok(resp)) => {
                    let (parts, body) = resp.into_parts();
                    let body = match pooled {
                        Some(pooled) if body.is_end_stream() => {
                            // Nothing will poll an empty body: the connection is free now.
                            self.checkin(pooled);
                            PooledBody::done(body)
                        }
                        pooled => PooledBody {
                            body,
                            conn: pooled.map(|p| (p, self.clone())),
                        },
                    };
                    return Ok(Response::from_parts(parts, body));
                }
                (_, Err(mut e)) => match e.take_message() {
                    Some(unsent) if !fresh => req = unsent,
                    _ => return Err(SendError::Exchange(e.into_error())),
                },
            }
        }
    }
}

async fn connect(
    authority: &http::uri::Authority,
    limits: &crate::Limits,
) -> Result<Box<Pooled>, SendError> {
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let stream = tokio::time::timeout(limits.connect_timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| {
            SendError::Connect(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timed out",
            ))
        })?
        .map_err(SendError::Connect)?;
    let _ = stream.set_nodelay(true);
    let (send, conn) = http1::Builder::new()
        .max_buf_size(limits.max_header_bytes.max(8192))
        .writev(false)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(SendError::Exchange)?;
    // Boxed: the protocol state is large, and responses carry it around.
    Ok(Box::new(Pooled {
        send,
        conn: Some(conn),
    }))
}

impl Pooled {
    /// Poll the connection once without waiting: false if the upstream closed it (or
    /// it failed). Reading readiness is cached by the runtime, so an idle socket
    /// costs no system call.
    fn is_open(&mut self) -> bool {
        if self.send.is_closed() {
            return false;
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        self.drive(&mut cx);
        self.conn.is_some() && !self.send.is_closed()
    }

    /// Let the connection do its I/O; drop it once it ended (closed or failed).
    fn drive(&mut self, cx: &mut Context<'_>) {
        if let Some(c) = &mut self.conn
            && c.poll_without_shutdown(cx).is_ready()
        {
            self.conn = None;
        }
    }

    /// Write `req` and read the response head, driving the connection meanwhile.
    /// Gives the connection back unless it ended. A request the connection closed on
    /// before writing it comes back in the error (`take_message`).
    async fn exchange(
        self: Box<Self>,
        req: Request<UpstreamBody>,
    ) -> (
        Option<Box<Pooled>>,
        Result<Response<Incoming>, hyper::client::conn::TrySendError<Request<UpstreamBody>>>,
    ) {
        let mut this = self;
        // Let the connection finish the previous exchange and say it is ready.
        let ready = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = this.send.poll_ready(cx) {
                return Poll::Ready(r);
            }
            this.drive(cx);
            match this.conn {
                // It ended; poll_ready now reports why.
                None => this.send.poll_ready(cx),
                Some(_) => Poll::Pending,
            }
        })
        .await;
        if ready.is_err() {
            // Closed before anything was written: the caller may use another.
            return (None, this.send.try_send_request(req).await);
        }
        let mut response = std::pin::pin!(this.send.try_send_request(req));
        let result = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = response.as_mut().poll(cx) {
                return Poll::Ready(r);
            }
            if this.conn.is_some() {
                this.drive(cx);
                if this.conn.is_none() {
                    return response.as_mut().poll(cx);
                }
            }
            Poll::Pending
        })
        .await;
        let open = this.conn.is_some();
        (open.then_some(this), result)
    }
}

/// An upstream's response body, streamed to the client. Reading it drives the
/// upstream connection; the end of it returns the connection to the pool.
pub struct PooledBody {
    body: Incoming,
    conn: Option<(Box<Pooled>, std::sync::Arc<Pool>)>,
}

impl PooledBody {
    fn done(body: Incoming) -> Self {
        PooledBody { body, conn: None }
    }

    fn release(&mut self) {
        if let Some((pooled, pool)) = self.conn.take() {
            pool.checkin(pooled);
        }
    }
}

impl Drop for PooledBody {
    /// A body dropped before its end (the client went away) takes its connection
    /// with it: the rest of the response is still on the wire.
    fn drop(&mut self) {
        if self.body.is_end_stream() {
            self.release();
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if let Some((pooled, _)) = &mut this.conn {
            pooled.drive(cx);
            if pooled.conn.is_none() {
                // The connection ended; the body reports the rest (data or an error).
                this.conn = None;
            }
        }
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        match &frame {
            // With the last byte of a sized body in hand, the server may not ask for
            // more: the connection is free now.
            Poll::Ready(None) | Poll::Ready(Some(Ok(_))) if this.body.is_end_stream() => {
                this.release();
            }
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Err(_))) => this.conn = None,
            _ => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Answers one request per connection, then closes it without saying so.
    async fn one_shot_backend() -> http::uri::Authority {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                });
            }
        });
        addr.to_string().parse().unwrap()
    }

    fn get(authority: &http::uri::Authority) -> Request<UpstreamBody> {
        Request::get("/")
            .header(http::header::HOST, authority.as_str())
            .body(crate::proxy::empty_body())
            .unwrap()
    }

    #[tokio::test]
    async fn a_connection_closed_under_a_request_gives_the_request_back_at_once() {
        let authority = one_shot_backend().await;
        let pool = std::sync::Arc::new(Pool::default());
        let limits = crate::Limits::default();
        let resp = pool
            .send(&authority, get(&authority), &limits)
            .await
            .ok()
            .unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
        assert_eq!(pool.idle_count(), 1, "the connection went back to the pool");
        tokio::time::sleep(Duration::from_millis(50)).await; // the backend has closed it
        // Skip the checkout's liveness check: the close lands while the request is
        // being sent, as when the upstream's FIN races a checkout.
        let Idle { pooled, .. } = pool.idle().pop().unwrap();
        let (left, result) =
            tokio::time::timeout(Duration::from_secs(2), pooled.exchange(get(&authority)))
                .await
                .expect("a closed connection must not hold the request");
        assert!(left.is_none());
        let mut e = result.expect_err("no response on a closed connection");
        assert!(e.take_message().is_some(), "the unsent request comes back");
    }
}
