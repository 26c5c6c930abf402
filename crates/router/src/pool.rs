//! Keep-alive HTTP/1.1 connections to one upstream, and the exchange on them (the
//! wire format itself is `wire`'s): requests and the health checks alike reach an
//! instance this way.
//!
//! A connection to an `https://` instance is TLS over TCP ([`Stream::TlsOut`]): the
//! handshake (SNI and verification against its route's roots) is part of connecting,
//! within the connect timeout, so a certificate that does not verify is a connection
//! that could not be made, like a refused one. A pooled connection keeps its TLS
//! session; a plain `http://` connection pays nothing for TLS (one enum branch).
//!
//! A general-purpose client (hyper's) puts a dispatcher between the request and its
//! connection (channels, a callback, a parsed-then-rebuilt head) and needs a task or
//! a poll loop to drive it. A reverse proxy needs much less: write one request head
//! (already validated headers, so a plain copy), stream the body if there is one,
//! read one response head, then hand the client a body that reads the rest straight
//! from the socket. That is what this module does, on the request's own task; when
//! the body ends the connection goes back to the pool.
//!
//! A pooled connection the upstream closed while idle is found out when the request
//! on it gets no response byte at all; a request that can be sent again (no body,
//! idempotent) then goes out on a new connection, so an upstream's idle timeout never
//! costs a request. The sweep, once a second, drops idle connections that closed or
//! idled too long.
//!
//! A request body streams from the client while the response head is already being
//! read: an upstream that answers before the body is complete (a 405, a 413) is
//! relayed at once, and its connection not reused. What goes wrong on the client's
//! side of the body (malformed, cut short, too large, too slow) is a [`ClientFault`],
//! never an upstream failure.

use std::io;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::stream::Stream;
use crate::table::Upstream;
use crate::wire::{
    ClientFault, Conn, Failed, Framing, MessageError, RequestBody, Sending, UpstreamHead,
    protocol_error, read_head, write_message,
};

struct Idle {
    conn: Conn,
    since: Instant,
}

/// Idle connections, newest last (the warmest is reused first). The lock is held
/// for a push or a pop, never across an await, and never by the control plane.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<Vec<Idle>>,
}

/// Why a request got no response.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be made: the request never left.
    Connect(io::Error),
    /// The exchange failed after the request was (or may have been) written.
    Exchange(io::Error),
    /// A bodyless request's connection ended before a byte of the response came: the
    /// upstream may or may not have acted on it (an idempotent request may be sent
    /// again).
    NoResponse(io::Error),
    /// The upstream kept the request waiting past the request timeout: it did not
    /// answer, or stopped taking the body.
    Timeout,
    /// The client's side of the body failed: the client's doing, not the upstream's.
    Client(ClientFault),
}

/// A request as the upstream gets it: the encoded head, and how its body is framed.
#[derive(Clone)]
pub(crate) struct Outgoing {
    /// Request line and headers, ending in the empty line.
    pub head: Bytes,
    /// How its body goes out: its declared length exactly, or chunked.
    pub body: RequestBody,
    /// A HEAD request: the response has no body whatever its headers say.
    pub head_only: bool,
    /// Without a body and idempotent: may be sent again.
    pub resendable: bool,
    /// No Host in `head`: the instance's own is added per attempt (the client gave
    /// none, or the route sends instances their own names).
    pub needs_host: bool,
    /// The client asks to switch protocols (WebSocket): a `101` answer is its tunnel.
    pub upgrade: bool,
}

/// A response from an upstream: the head, and the body still on the connection.
pub struct Upstreamed {
    pub head: UpstreamHead,
    pub body: PooledBody,
}

impl Pool {
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The warmest idle connection that is still open and younger than `idle_timeout`.
    fn checkout(&self, idle_timeout: Duration) -> Option<Conn> {
        loop {
            let Idle { mut conn, since } = self.idle().pop()?;
            if since.elapsed() < idle_timeout && conn.is_open() {
                return Some(conn);
            }
        }
    }

    fn checkin(&self, mut conn: Conn) {
        // An idle connection holds no buffer: the next read takes a recently freed
        // (cache-warm) one from the allocator instead of this connection's cold one.
        conn.buf = BytesMut::new();
        self.idle().push(Idle {
            conn,
            since: Instant::now(),
        });
    }

    /// Drop connections the upstream closed and those idle longer than `idle_timeout`.
    pub fn sweep(&self, idle_timeout: Duration) {
        let stale: Vec<Idle> = {
            let mut idle = self.idle();
            let mut stale = Vec::new();
            for mut i in std::mem::take(&mut *idle) {
                if i.since.elapsed() < idle_timeout && i.conn.is_open() {
                    idle.push(i);
                } else {
                    stale.push(i);
                }
            }
            stale
        };
        drop(stale); // closes their sockets outside the lock
    }

    pub fn idle_count(&self) -> usize {
        self.idle().len()
    }

    /// Send a request on a pooled connection (or a new one) and read the response
    /// head. The response body reads the rest from the connection and returns it to
    /// the pool when it ends. The request body is taken from `body` only once a
    /// connection is open: when connecting fails (`SendError::Connect`) it is still
    /// there, for another instance.
    pub(crate) async fn send<B>(
        self: &Arc<Self>,
        to: &Upstream,
        out: &Outgoing,
        body: &mut Option<B>,
        limits: &crate::Limits,
    ) -> Result<Upstreamed, SendError>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<ClientFault>,
    {
        let head = if out.needs_host {
            with_host(&out.head, &to.host)
        } else {
            out.head.clone()
        };
        match body {
            Some(_) if out.body != RequestBody::None => {
                self.send_body(to, &head, out, body, limits).await
            }
            _ => tokio::time::timeout(
                limits.request_timeout,
                self.send_head(to, &head, out, limits),
            )
            .await
            .unwrap_or(Err(SendError::Timeout)),
        }
    }

    /// A request without a body: sent again on a new connection if a pooled one turns
    /// out to have been closed and the request may be repeated.
    async fn send_head(
        self: &Arc<Self>,
        to: &Upstream,
        head: &[u8],
        out: &Outgoing,
        limits: &crate::Limits,
    ) -> Result<Upstreamed, SendError> {
        loop {
            let (mut conn, reused) = match self.checkout(limits.upstream_idle_timeout) {
                Some(c) => (c, true),
                None => (connect(to, limits).await?, false),
            };
            let response = match conn.io.write_all(head).await {
                Ok(()) => {
                    read_head(
                        &mut conn.io,
                        &mut conn.buf,
                        limits,
                        out.head_only,
                        out.upgrade,
                    )
                    .await
                }
                Err(e) => Err(Failed {
                    error: e,
                    nothing_read: true,
                }),
            };
            match response {
                Ok((head, framing, keep_alive)) => {
                    let body = PooledBody::new(conn, self.clone(), framing, keep_alive)
                        .idle_timeout(limits.stream_idle_timeout);
                    return Ok(Upstreamed { head, body });
                }
                Err(f) if reused && f.nothing_read && out.resendable => {
                    tracing::debug!(error = %f.error, "pooled upstream connection was closed; sending again");
                }
                Err(f) if f.nothing_read => return Err(SendError::NoResponse(f.error)),
                Err(f) => return Err(SendError::Exchange(f.error)),
            }
        }
    }

    /// A request with a body: the body streams while the response head is read, so
    /// an answer that comes early is not held up by a slow (or stalled) upload. The
    /// timeouts are the waiting party's: the client's (`body_read_timeout`, no body
    /// bytes) or the upstream's (`request_timeout`, not taking the body, or no answer
    /// after it).
    async fn send_body<B>(
        self: &Arc<Self>,
        to: &Upstream,
        head: &[u8],
        out: &Outgoing,
        body: &mut Option<B>,
        limits: &crate::Limits,
    ) -> Result<Upstreamed, SendError>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<ClientFault>,
    {
        let mut conn = match self.checkout(limits.upstream_idle_timeout) {
            Some(c) => c,
            None => connect(to, limits).await?,
        };
        let Some(body) = body.take() else {
            return Err(SendError::Exchange(protocol_error(
                "the request body was already sent",
            )));
        };
        // The body goes out chunked unless it declared a length; then exactly that many
        // bytes go out, or the exchange fails (more would be a second request to the
        // upstream).
        let sending = match out.body {
            RequestBody::Length(n) => Sending::Exactly(n),
            _ => Sending::Chunked,
        };
        let progress = Progress::default();
        let (outcome, body_sent) = {
            let Conn { io, buf } = &mut conn;
            let send = Sent {
                head,
                body,
                sending,
                out,
                progress: &progress,
                limits,
            };
            match io {
                // Borrowed halves: no lock between the reader and the writer.
                Stream::Tcp(tcp) => {
                    let (rd, wr) = tcp.split();
                    send.exchange(rd, wr, buf).await
                }
                tls => {
                    let (rd, wr) = tokio::io::split(tls);
                    send.exchange(rd, wr, buf).await
                }
            }
        };
        match outcome {
            Exchanged::Head((head, framing, keep_alive)) => {
                // Answered before the whole request was sent: the rest of the body
                // would be read as the next request, so the connection is not reused.
                let body = PooledBody::new(conn, self.clone(), framing, keep_alive && body_sent)
                    .idle_timeout(limits.stream_idle_timeout);
                Ok(Upstreamed { head, body })
            }
            Exchanged::Failed(e) => Err(SendError::Exchange(e)),
            Exchanged::Timeout => Err(SendError::Timeout),
            Exchanged::Client(fault) => {
                if progress.sent.load(Relaxed) == 0 {
                    // Not a byte went out: the connection is as good as it was.
                    self.checkin(conn);
                }
                Err(SendError::Client(fault))
            }
        }
    }
}

/// How a request with a body ended, before its response body.
enum Exchanged {
    Head((UpstreamHead, Framing, bool)),
    Failed(io::Error),
    Timeout,
    Client(ClientFault),
}

/// Drive the body's write and the response head's read together until the head comes,
/// either side fails or the waiting party's timeout passes. Also says whether the
/// whole request was sent.
async fn exchange<W, R, E>(
    write: W,
    read: R,
    progress: &Progress,
    limits: &crate::Limits,
) -> (Exchanged, bool)
where
    W: Future<Output = Result<(), MessageError<E>>>,
    R: Future<Output = Result<(UpstreamHead, Framing, bool), Failed>>,
    E: Into<ClientFault>,
{
    let mut write = pin!(write);
    let mut read = pin!(read);
    let mut writing = true;
    let mut write_error = None;
    let mut timer = pin!(tokio::time::sleep(limits.request_timeout));
    let (mut seen, mut since) = (0, tokio::time::Instant::now());
    let outcome = std::future::poll_fn(|cx| {
        match read.as_mut().poll(cx) {
            Poll::Ready(Ok(head)) => return Poll::Ready(Exchanged::Head(head)),
            Poll::Ready(Err(f)) => {
                // A write that failed first says more (the upstream reset us).
                let e = write_error.take().unwrap_or(f.error);
                return Poll::Ready(Exchanged::Failed(e));
            }
            Poll::Pending => {}
        }
        if writing {
            match write.as_mut().poll(cx) {
                Poll::Ready(Ok(())) => writing = false,
                Poll::Ready(Err(MessageError::Body(e))) => {
                    return Poll::Ready(Exchanged::Client(e.into()));
                }
                Poll::Ready(Err(MessageError::Framing(_))) => {
                    return Poll::Ready(Exchanged::Client(ClientFault::Malformed));
                }
                // The upstream may have answered and closed: its answer is read first.
                Poll::Ready(Err(MessageError::Io(e))) => {
                    writing = false;
                    write_error = Some(e);
                }
                Poll::Pending => {}
            }
        }
        let moved = progress.sent.load(Relaxed) + progress.received.load(Relaxed);
        if moved != seen {
            seen = moved;
            since = tokio::time::Instant::now();
        }
        let on_client = writing && progress.waiting_on_client.load(Relaxed);
        let due = since
            + if on_client {
                limits.body_read_timeout
            } else {
                limits.request_timeout
            };
        if timer.deadline() != due {
            timer.as_mut().reset(due);
        }
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(if on_client {
                Exchanged::Client(ClientFault::TooSlow)
            } else {
                Exchanged::Timeout
            });
        }
        Poll::Pending
    })
    .await;
    (outcome, !writing && write_error.is_none())
}

/// What a body exchange has moved, and whom it waits on: for its timeouts. Written and
/// read on the request's own task (atomics only because the future must be `Send`).
#[derive(Default)]
struct Progress {
    /// Bytes the upstream took.
    sent: AtomicU64,
    /// Body bytes the client delivered.
    received: AtomicU64,
    /// The client's body was the last to keep the exchange waiting.
    waiting_on_client: AtomicBool,
}

/// A request with a body, to send on one connection while its answer is read.
struct Sent<'a, B> {
    head: &'a [u8],
    body: B,
    sending: Sending,
    out: &'a Outgoing,
    progress: &'a Progress,
    limits: &'a crate::Limits,
}

impl<B> Sent<'_, B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<ClientFault>,
{
    async fn exchange<Rd, Wr>(self, mut rd: Rd, wr: Wr, buf: &mut BytesMut) -> (Exchanged, bool)
    where
        Rd: AsyncRead + Unpin,
        Wr: AsyncWrite + Unpin,
    {
        let mut wr = Watched {
            inner: wr,
            progress: self.progress,
        };
        let mut body = Watched {
            inner: self.body,
            progress: self.progress,
        };
        let write = write_message(
            &mut wr,
            BytesMut::from(self.head),
            Some(Pin::new(&mut body)),
            self.sending,
        );
        let read = read_head(
            &mut rd,
            buf,
            self.limits,
            self.out.head_only,
            self.out.upgrade,
        );
        exchange(write, read, self.progress, self.limits).await
    }
}

/// The client's body, or the upstream's socket, reporting to a [`Progress`].
struct Watched<'p, T> {
    inner: T,
    progress: &'p Progress,
}

impl<B: Body<Data = Bytes> + Unpin> Body for Watched<'_, B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let p = self.progress;
        match &polled {
            Poll::Pending => p.waiting_on_client.store(true, Relaxed),
            Poll::Ready(Some(Ok(frame))) => {
                let n = frame.data_ref().map_or(0, |d| d.len() as u64);
                p.received.store(p.received.load(Relaxed) + n, Relaxed);
            }
            Poll::Ready(_) => {}
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

impl<W: AsyncWrite + Unpin> AsyncWrite for Watched<'_, W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        let p = self.progress;
        match &polled {
            Poll::Pending => p.waiting_on_client.store(false, Relaxed),
            Poll::Ready(Ok(n)) => p.sent.store(p.sent.load(Relaxed) + *n as u64, Relaxed),
            Poll::Ready(Err(_)) => {}
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// `head` with a Host field for `host` before its empty line.
fn with_host(head: &[u8], host: &[u8]) -> Bytes {
    let end = head.len().saturating_sub(2);
    let mut h = BytesMut::with_capacity(head.len() + host.len() + 8);
    h.put_slice(&head[..end]);
    h.put_slice(b"host: ");
    h.put_slice(host);
    h.put_slice(b"\r\n\r\n");
    h.freeze()
}

/// A new connection to `to`: TCP, then for `https://` the TLS handshake, both within
/// the connect timeout. A handshake that fails (a certificate that does not verify,
/// no common protocol) is a failure to connect, its reason prefixed `TLS:`.
async fn connect(to: &Upstream, limits: &crate::Limits) -> Result<Conn, SendError> {
    let host = to
        .authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let connecting = async {
        let tcp = TcpStream::connect((host, to.port())).await?;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &to.tls else {
            return Ok(Stream::Tcp(tcp));
        };
        let config = tls
            .config()
            .ok_or_else(|| io::Error::other("TLS: no client settings for this upstream"))?;
        let connector = tokio_rustls::TlsConnector::from(config);
        match connector.connect(tls.name.clone(), tcp).await {
            Ok(stream) => Ok(Stream::TlsOut(Box::new(stream))),
            Err(e) => Err(io::Error::new(e.kind(), format!("TLS: {e}"))),
        }
    };
    let io = tokio::time::timeout(limits.connect_timeout, connecting)
        .await
        .map_err(|_| {
            SendError::Connect(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))
        })?
        .map_err(SendError::Connect)?;
    Ok(Conn::new(io))
}

/// An upstream's response body, read from the connection as the client reads it.
/// At its end a reusable connection goes back to the pool; dropped before its end
/// (the client went away) it closes the connection, as the rest is still on the wire.
pub struct PooledBody {
    conn: Option<(Conn, Arc<Pool>)>,
    framing: Framing,
    keep_alive: bool,
    done: bool,
    /// The route's stream idle timeout and its timer, when it has one.
    idle: Option<(Duration, Pin<Box<tokio::time::Sleep>>)>,
}

impl PooledBody {
    fn new(conn: Conn, pool: Arc<Pool>, framing: Framing, keep_alive: bool) -> Self {
        let mut body = PooledBody {
            conn: Some((conn, pool)),
            framing,
            keep_alive,
            done: false,
            idle: None,
        };
        if matches!(body.framing, Framing::Length(0)) {
            // Nothing will poll an empty body: the connection is free now.
            body.finish();
        }
        body
    }

    /// Cut the body when the upstream sends nothing for `after` (a route's
    /// `stream_idle_timeout`); without one, no timer is kept.
    fn idle_timeout(mut self, after: Option<Duration>) -> Self {
        if !self.done {
            self.idle = after.map(|a| (a, Box::pin(tokio::time::sleep(a))));
        }
        self
    }

    /// The connection, with what was read past the head: the upstream's side of a
    /// tunnel after `101`.
    pub(crate) fn into_conn(mut self) -> Option<Conn> {
        self.done = true;
        self.conn.take().map(|(conn, _)| conn)
    }

    /// The body's length is not known ahead (chunked, or until the upstream closes):
    /// an HTTP/1 client needs it framed.
    pub(crate) fn needs_framing(&self) -> bool {
        !self.done && !matches!(self.framing, Framing::Length(_))
    }

    fn finish(&mut self) {
        self.done = true;
        if let Some((conn, pool)) = self.conn.take()
            && self.keep_alive
            && conn.buf.is_empty()
        {
            pool.checkin(conn);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let Some((conn, _)) = &mut this.conn else {
            return Poll::Ready(None);
        };
        let polled = conn.poll_body(&mut this.framing, cx);
        if let Some((after, timer)) = &mut this.idle {
            match polled {
                Poll::Pending => {
                    if timer.as_mut().poll(cx).is_ready() {
                        this.done = true;
                        this.conn = None;
                        return Poll::Ready(Some(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the upstream's response went idle past the route's stream timeout",
                        ))));
                    }
                }
                Poll::Ready(_) => timer.as_mut().reset(tokio::time::Instant::now() + *after),
            }
        }
        match ready!(polled) {
            Some(Ok(data)) => {
                if matches!(this.framing, Framing::Length(0)) {
                    // The last byte is in hand: the connection is free now, even if
                    // the client never asks for the end of the stream.
                    this.finish();
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            None => {
                this.finish();
                Poll::Ready(None)
            }
            Some(Err(e)) => {
                this.done = true;
                this.conn = None;
                Poll::Ready(Some(Err(e)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.framing, self.done) {
            (_, true) => SizeHint::with_exact(0),
            (Framing::Length(left), false) => SizeHint::with_exact(*left),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers the first request on each connection and closes the connection,
    /// unanswered, when the next request arrives: a server whose idle timeout fires
    /// just as a pooled connection is reused.
    async fn one_answer_per_connection_backend() -> Upstream {
        use tokio::io::AsyncReadExt;
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
                    let _ = s.read(&mut buf).await; // the next request: closed on
                });
            }
        });
        Upstream::new(&format!("http://{addr}")).unwrap()
    }

    fn get() -> Outgoing {
        Outgoing {
            head: Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n"),
            body: RequestBody::None,
            head_only: false,
            resendable: true,
            needs_host: true,
            upgrade: false,
        }
    }

    #[tokio::test]
    async fn a_pooled_connection_closed_under_a_get_costs_it_nothing() {
        use http_body_util::BodyExt;
        let upstream = one_answer_per_connection_backend().await;
        let pool = Arc::new(Pool::default());
        let limits = crate::Limits::default();
        for i in 0..3 {
            let resp = pool
                .send(
                    &upstream,
                    &get(),
                    &mut None::<http_body_util::Empty<Bytes>>,
                    &limits,
                )
                .await
                .unwrap_or_else(|e| panic!("request {i}: {e:?}"));
            let body = resp.body.collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"ok");
            assert_eq!(pool.idle_count(), 1, "the connection went back to the pool");
        }
    }
}
