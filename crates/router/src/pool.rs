//! Keep-alive HTTP/1.1 connections to one upstream, and the exchange on them.
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
use std::ops::Range;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::StatusCode;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::proxy::{Hop, RequestBody, hop_by_hop};

/// The most headers a message may carry.
pub(crate) const MAX_HEADERS: usize = 100;
/// How much is read from a socket at a time.
const READ_CHUNK: usize = 8 * 1024;
/// Body data up to this size is copied behind the head (one send); larger goes out
/// as it is.
const COALESCE: usize = 16 * 1024;

/// One open connection and the bytes read from it but not yet used.
pub struct Conn {
    pub(crate) io: TcpStream,
    pub(crate) buf: BytesMut,
}

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

/// A request body the client did not deliver. None of these is the upstream's fault:
/// they count as `client_abort`, never as an error of the version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClientFault {
    /// Not valid HTTP framing (a bad chunk size, say): 400.
    Malformed,
    /// Longer than the body limit: 413.
    TooLarge,
    /// No body bytes for the body read timeout: 408.
    TooSlow,
    /// The client closed (or reset) its connection before the body's end.
    Aborted,
}

/// hyper's HTTP/2 request bodies, limited in size.
impl From<Box<dyn std::error::Error + Send + Sync>> for ClientFault {
    fn from(e: Box<dyn std::error::Error + Send + Sync>) -> Self {
        if e.is::<http_body_util::LengthLimitError>() {
            ClientFault::TooLarge
        } else {
            ClientFault::Aborted
        }
    }
}

impl From<std::convert::Infallible> for ClientFault {
    fn from(e: std::convert::Infallible) -> Self {
        match e {}
    }
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
    /// The client gave no Host: the upstream's authority is added per attempt.
    pub needs_host: bool,
    /// The client asks to switch protocols (WebSocket): a `101` answer is its tunnel.
    pub upgrade: bool,
}

/// An upstream's response head: its bytes, and where its end-to-end fields lie in
/// them. Nothing is copied or validated twice: an HTTP/1 client gets the fields as
/// they came, an HTTP/2 client a header map built from them.
pub struct UpstreamHead {
    pub status: StatusCode,
    bytes: Bytes,
    reason: Range<usize>,
    fields: Vec<(Range<usize>, Range<usize>)>,
}

impl UpstreamHead {
    pub fn reason(&self) -> &[u8] {
        &self.bytes[self.reason.clone()]
    }

    /// Name and value of each end-to-end field, in order.
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields
            .iter()
            .map(|(n, v)| (&self.bytes[n.clone()], &self.bytes[v.clone()]))
    }

    pub fn to_header_map(&self) -> io::Result<HeaderMap> {
        let mut headers = HeaderMap::with_capacity(self.fields.len());
        for (name, value) in &self.fields {
            let n = HeaderName::from_bytes(&self.bytes[name.clone()])
                .map_err(|_| protocol_error("bad header name"))?;
            let v = HeaderValue::from_maybe_shared(self.bytes.slice(value.clone()))
                .map_err(|_| protocol_error(format!("bad value for header {n}")))?;
            headers.append(n, v);
        }
        Ok(headers)
    }
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
            let Idle { conn, since } = self.idle().pop()?;
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
            let (keep, stale) = std::mem::take(&mut *idle)
                .into_iter()
                .partition(|i| i.since.elapsed() < idle_timeout && i.conn.is_open());
            *idle = keep;
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
        authority: &http::uri::Authority,
        out: &Outgoing,
        body: &mut Option<B>,
        limits: &crate::Limits,
    ) -> Result<Upstreamed, SendError>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<ClientFault>,
    {
        let head = if out.needs_host {
            with_host(&out.head, authority)
        } else {
            out.head.clone()
        };
        match body {
            Some(_) if out.body != RequestBody::None => {
                self.send_body(authority, &head, out, body, limits).await
            }
            _ => tokio::time::timeout(
                limits.request_timeout,
                self.send_head(authority, &head, out, limits),
            )
            .await
            .unwrap_or(Err(SendError::Timeout)),
        }
    }

    /// A request without a body: sent again on a new connection if a pooled one turns
    /// out to have been closed and the request may be repeated.
    async fn send_head(
        self: &Arc<Self>,
        authority: &http::uri::Authority,
        head: &[u8],
        out: &Outgoing,
        limits: &crate::Limits,
    ) -> Result<Upstreamed, SendError> {
        loop {
            let (mut conn, reused) = match self.checkout(limits.upstream_idle_timeout) {
                Some(c) => (c, true),
                None => (connect(authority, limits).await?, false),
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
                    let body = PooledBody::new(conn, self.clone(), framing, keep_alive);
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
        authority: &http::uri::Authority,
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
            None => connect(authority, limits).await?,
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
            let (mut rd, wr) = io.split();
            let mut wr = Watched {
                inner: wr,
                progress: &progress,
            };
            let mut body = Watched {
                inner: body,
                progress: &progress,
            };
            let write = write_message(
                &mut wr,
                BytesMut::from(head),
                Some(Pin::new(&mut body)),
                sending,
            );
            let read = read_head(&mut rd, buf, limits, out.head_only, out.upgrade);
            exchange(write, read, &progress, limits).await
        };
        match outcome {
            Exchanged::Head((head, framing, keep_alive)) => {
                // Answered before the whole request was sent: the rest of the body
                // would be read as the next request, so the connection is not reused.
                let body = PooledBody::new(conn, self.clone(), framing, keep_alive && body_sent);
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

/// `head` with a Host field for `authority` before its empty line.
fn with_host(head: &[u8], authority: &http::uri::Authority) -> Bytes {
    let end = head.len().saturating_sub(2);
    let mut h = BytesMut::with_capacity(head.len() + authority.as_str().len() + 8);
    h.put_slice(&head[..end]);
    h.put_slice(b"host: ");
    h.put_slice(authority.as_str().as_bytes());
    h.put_slice(b"\r\n\r\n");
    h.freeze()
}

async fn connect(
    authority: &http::uri::Authority,
    limits: &crate::Limits,
) -> Result<Conn, SendError> {
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let io = tokio::time::timeout(limits.connect_timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| {
            SendError::Connect(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))
        })?
        .map_err(SendError::Connect)?;
    let _ = io.set_nodelay(true);
    Ok(Conn::new(io))
}

/// The body length a message's `Content-Length` fields declare: `None` without one;
/// an error when a value is not a number or two values differ.
pub(crate) fn content_length<'a>(
    mut values: impl Iterator<Item = &'a [u8]>,
) -> io::Result<Option<u64>> {
    values.try_fold(None, |length, value| add_length(length, value).map(Some))
}

/// `length` so far, checked against one `Content-Length` value (which may list the
/// same number several times, comma-separated).
pub(crate) fn add_length(length: Option<u64>, value: &[u8]) -> io::Result<u64> {
    let mut length = length;
    for part in value.split(|b| *b == b',') {
        let n: u64 = std::str::from_utf8(part.trim_ascii())
            .ok()
            .filter(|t| t.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| protocol_error("bad content-length"))?;
        if length.is_some_and(|l| l != n) {
            return Err(protocol_error("conflicting content-length values"));
        }
        length = Some(n);
    }
    length.ok_or_else(|| protocol_error("empty content-length"))
}

/// An exchange that failed; `nothing_read` when not one byte of a response came.
struct Failed {
    error: io::Error,
    nothing_read: bool,
}

pub(crate) fn protocol_error(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// How a message body is delimited on the wire being read (RFC 9112 §6.3).
#[derive(Debug)]
pub(crate) enum Framing {
    /// So many bytes still to come.
    Length(u64),
    Chunked(Chunked),
    /// Until the peer closes the connection (which then cannot be reused).
    UntilClose,
}

/// How a body is framed on the wire being written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sending {
    /// Exactly so many bytes: more or fewer is an error.
    Exactly(u64),
    Chunked,
    /// As it comes; the connection's end delimits it.
    AsIs,
}

/// Why a message could not be written: its body failed (the body's own error), its
/// body did not match its framing, or the connection failed.
#[derive(Debug)]
pub(crate) enum MessageError<E> {
    Body(E),
    Framing(&'static str),
    Io(io::Error),
}

impl<E> From<io::Error> for MessageError<E> {
    fn from(e: io::Error) -> Self {
        MessageError::Io(e)
    }
}

impl MessageError<io::Error> {
    pub(crate) fn into_io(self) -> io::Error {
        match self {
            MessageError::Body(e) | MessageError::Io(e) => e,
            MessageError::Framing(what) => protocol_error(what),
        }
    }
}

/// Write `out` (a head) and then `body` framed as `sending`. Body data that is ready
/// at once goes out with the head in one write; later data as it comes.
pub(crate) async fn write_message<W, B>(
    io: &mut W,
    mut out: BytesMut,
    body: Option<Pin<&mut B>>,
    sending: Sending,
) -> Result<(), MessageError<B::Error>>
where
    W: AsyncWrite + Unpin + ?Sized,
    B: Body<Data = Bytes> + ?Sized,
{
    let Some(mut body) = body else {
        return Ok(io.write_all(&out).await?);
    };
    let mut left = match sending {
        Sending::Exactly(n) => Some(n),
        _ => None,
    };
    loop {
        let next = std::future::poll_fn(|cx| match body.as_mut().poll_frame(cx) {
            Poll::Pending if !out.is_empty() => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
            Poll::Ready(frame) => Poll::Ready(Some(frame)),
        })
        .await;
        let data = match next {
            // Nothing more ready now: what is gathered goes out while we wait.
            None => {
                io.write_all(&out).await?;
                out.clear();
                continue;
            }
            Some(None) => break,
            Some(Some(Err(e))) => return Err(MessageError::Body(e)),
            Some(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) if !data.is_empty() => data,
                _ => continue, // trailers are not forwarded
            },
        };
        if let Some(left) = &mut left {
            *left = left
                .checked_sub(data.len() as u64)
                .ok_or(MessageError::Framing("body longer than its content-length"))?;
        }
        if sending == Sending::Chunked {
            out.put_slice(format!("{:x}\r\n", data.len()).as_bytes());
        }
        if data.len() <= COALESCE {
            out.put_slice(&data);
        } else {
            io.write_all(&out).await?;
            out.clear();
            io.write_all(&data).await?;
        }
        if sending == Sending::Chunked {
            out.put_slice(b"\r\n");
        }
        if out.len() >= COALESCE {
            io.write_all(&out).await?;
            out.clear();
        }
    }
    match left {
        Some(0) | None => {}
        Some(_) => {
            return Err(MessageError::Framing(
                "body shorter than its content-length",
            ));
        }
    }
    if sending == Sending::Chunked {
        out.put_slice(b"0\r\n\r\n");
    }
    if !out.is_empty() {
        io.write_all(&out).await?;
    }
    Ok(())
}

impl Conn {
    pub(crate) fn new(io: TcpStream) -> Self {
        Conn {
            io,
            buf: BytesMut::with_capacity(READ_CHUNK),
        }
    }

    /// Without waiting: false if the upstream closed the connection (or sent
    /// something unasked, which makes it unusable). Costs a system call only when
    /// the socket turned readable since the last read.
    fn is_open(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Read into the buffer; 0 at the end of the stream. (A short read clears the
    /// socket's readiness, so the next poll waits for the runtime instead of asking
    /// the kernel.)
    pub(crate) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        poll_fill(&mut self.io, &mut self.buf, cx)
    }

    /// The next piece of a body framed as `framing`: `None` at its end. The end of
    /// the stream ends an `UntilClose` body and is an error for the others.
    pub(crate) fn poll_body(
        &mut self,
        framing: &mut Framing,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Bytes>>> {
        loop {
            match framing {
                Framing::Length(0) => return Poll::Ready(None),
                Framing::Length(left) => {
                    if !self.buf.is_empty() {
                        let n = usize::try_from(*left)
                            .unwrap_or(usize::MAX)
                            .min(self.buf.len());
                        *left -= n as u64;
                        return Poll::Ready(Some(Ok(self.buf.split_to(n).freeze())));
                    }
                }
                Framing::Chunked(decoder) => match decoder.decode(&mut self.buf) {
                    Ok(Decoded::Data(data)) => return Poll::Ready(Some(Ok(data))),
                    Ok(Decoded::End) => return Poll::Ready(None),
                    Ok(Decoded::More) => {}
                    Err(e) => return Poll::Ready(Some(Err(e))),
                },
                Framing::UntilClose => {
                    if !self.buf.is_empty() {
                        return Poll::Ready(Some(Ok(self.buf.split().freeze())));
                    }
                }
            }
            match ready!(self.poll_fill(cx)) {
                Ok(0) if matches!(framing, Framing::UntilClose) => return Poll::Ready(None),
                Ok(0) => {
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed in the middle of a body",
                    ))));
                }
                Ok(_) => {}
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
        }
    }
}

/// Read from `io` into `buf`; 0 at the end of the stream. (A short read clears the
/// socket's readiness, so the next poll waits for the runtime instead of asking the
/// kernel.)
fn poll_fill<R: AsyncRead + Unpin + ?Sized>(
    io: &mut R,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    if buf.capacity() - buf.len() < READ_CHUNK / 4 {
        buf.reserve(READ_CHUNK);
    }
    tokio_util::io::poll_read_buf(Pin::new(io), cx, buf)
}

/// Read a response head from `io` into `buf` (skipping interim 1xx responses) and say
/// how the body that follows is delimited.
async fn read_head<R: AsyncRead + Unpin + ?Sized>(
    io: &mut R,
    buf: &mut BytesMut,
    limits: &crate::Limits,
    head_only: bool,
    upgrade: bool,
) -> Result<(UpstreamHead, Framing, bool), Failed> {
    let mut nothing_read = buf.is_empty();
    loop {
        if !buf.is_empty() {
            match parse_head(buf, head_only, upgrade) {
                Ok(Some(Parsed::Interim)) => continue,
                Ok(Some(Parsed::Final(head, framing, keep_alive))) => {
                    return Ok((head, framing, keep_alive));
                }
                Ok(None) if buf.len() >= limits.max_header_bytes => {
                    return Err(Failed {
                        error: protocol_error("response head too large"),
                        nothing_read: false,
                    });
                }
                Ok(None) => {}
                Err(error) => {
                    return Err(Failed {
                        error,
                        nothing_read: false,
                    });
                }
            }
        }
        match std::future::poll_fn(|cx| poll_fill(io, buf, cx)).await {
            Ok(0) => {
                return Err(Failed {
                    error: io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "upstream closed the connection before a complete response head",
                    ),
                    nothing_read,
                });
            }
            Ok(_) => nothing_read = false,
            Err(error) => {
                return Err(Failed {
                    error,
                    nothing_read,
                });
            }
        }
    }
}

enum Parsed {
    /// A 1xx before the real response; consumed.
    Interim,
    /// The head, how its body is delimited, and whether the connection can carry
    /// another request after it.
    Final(UpstreamHead, Framing, bool),
}

/// Parse a response head at the start of `buf`; on success it is consumed from `buf`.
/// The head handed on carries only end-to-end fields: the hop-by-hop ones (and those
/// `Connection` names) are read for framing and keep-alive, never copied.
///
/// A `101 Switching Protocols` answers a request that asked to upgrade: its body is
/// the other protocol, until either side closes (`Framing::UntilClose`, never reused);
/// its `Upgrade` field is kept for the client. Unasked, it is an error.
fn parse_head(buf: &mut BytesMut, head_only: bool, upgrade: bool) -> io::Result<Option<Parsed>> {
    // Most heads fit the small table; only a long one pays for the large.
    let mut small = [httparse::EMPTY_HEADER; 32];
    let scanned = match scan(buf, &mut small) {
        Err(Some(httparse::Error::TooManyHeaders)) => {
            scan(buf, &mut [httparse::EMPTY_HEADER; MAX_HEADERS])
        }
        other => other,
    };
    let mut scan = match scanned {
        Ok(Some(scan)) => scan,
        Ok(None) => return Ok(None),
        Err(e) => {
            let why = e.map_or("bad status code".to_string(), |e| e.to_string());
            return Err(protocol_error(format!("bad response head: {why}")));
        }
    };
    if scan.status == StatusCode::SWITCHING_PROTOCOLS && upgrade {
        let bytes = buf.split_to(scan.len).freeze();
        let head = UpstreamHead {
            status: scan.status,
            bytes,
            reason: scan.reason,
            fields: scan.fields,
        };
        return Ok(Some(Parsed::Final(head, Framing::UntilClose, false)));
    }
    if scan.status.is_informational() {
        if scan.status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(protocol_error("upstream switched protocols unasked"));
        }
        buf.advance(scan.len);
        return Ok(Some(Parsed::Interim));
    }
    let bytes = buf.split_to(scan.len).freeze();
    let d = scan.delimiting;
    let framing = if head_only
        || scan.status == StatusCode::NO_CONTENT
        || scan.status == StatusCode::NOT_MODIFIED
    {
        Framing::Length(0)
    } else if let Some(chunked) = d.chunked {
        // Transfer-Encoding overrides a length; the client gets the body re-framed.
        if let Some(at) = scan.length_field.take() {
            scan.fields.remove(at);
        }
        if chunked {
            Framing::Chunked(Chunked::Size)
        } else {
            Framing::UntilClose
        }
    } else {
        d.length.map_or(Framing::UntilClose, Framing::Length)
    };
    let keep_alive = !d.close
        && (!scan.http10 || d.keep_alive)
        && d.chunked.is_none_or(|_| d.length.is_none())
        && !matches!(framing, Framing::UntilClose);
    let head = UpstreamHead {
        status: scan.status,
        bytes,
        reason: scan.reason,
        fields: scan.fields,
    };
    Ok(Some(Parsed::Final(head, framing, keep_alive)))
}

/// What the headers say about the body's length and the connection.
#[derive(Default)]
struct Delimiting {
    close: bool,
    keep_alive: bool,
    /// Some when a Transfer-Encoding came: whether its last coding is chunked.
    chunked: Option<bool>,
    length: Option<u64>,
}

/// One parse of a response head: where its reason and each end-to-end field lie in
/// the buffer, and what its hop-by-hop fields say.
struct Scan {
    len: usize,
    status: StatusCode,
    http10: bool,
    reason: Range<usize>,
    fields: Vec<(Range<usize>, Range<usize>)>,
    /// Which of `fields` is the (first) Content-Length; later ones, being equal,
    /// are not kept.
    length_field: Option<usize>,
    delimiting: Delimiting,
}

/// `Err(None)` for a status code out of range.
fn scan<'b>(
    buf: &'b [u8],
    slots: &mut [httparse::Header<'b>],
) -> Result<Option<Scan>, Option<httparse::Error>> {
    let mut parsed = httparse::Response::new(slots);
    let len = match parsed.parse(buf).map_err(Some)? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return Ok(None),
    };
    let status = StatusCode::from_u16(parsed.code.unwrap_or(0)).map_err(|_| None)?;
    let base = buf.as_ptr() as usize;
    let range = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        start..start + s.len()
    };
    let switching = status == StatusCode::SWITCHING_PROTOCOLS;
    let mut d = Delimiting::default();
    let mut fields = Vec::with_capacity(parsed.headers.len());
    let mut length_field = None;
    let mut named = false;
    for h in parsed.headers.iter() {
        match hop_by_hop(h.name.as_bytes()) {
            Some(Hop::Connection) => {
                for token in h.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                    if token.eq_ignore_ascii_case(b"close") {
                        d.close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        d.keep_alive = true;
                    } else if !token.is_empty() {
                        named = true;
                    }
                }
            }
            Some(Hop::TransferEncoding) => {
                let last = h.value.rsplit(|b| *b == b',').next().unwrap_or(&[]);
                d.chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            }
            // The protocol switched to, for the client.
            Some(Hop::Upgrade) if switching => {
                fields.push((range(h.name.as_bytes()), range(h.value)));
            }
            Some(_) => {}
            None if h.name.eq_ignore_ascii_case("content-length") => {
                let first = d.length.is_none();
                d.length = Some(
                    add_length(d.length, h.value)
                        .map_err(|_| Some(httparse::Error::HeaderValue))?,
                );
                if first {
                    length_field = Some(fields.len());
                    fields.push((range(h.name.as_bytes()), range(h.value)));
                }
            }
            None => fields.push((range(h.name.as_bytes()), range(h.value))),
        }
    }
    if named {
        // Fields that `Connection` names are hop-by-hop too.
        let names: Vec<&[u8]> = parsed
            .headers
            .iter()
            .filter(|h| hop_by_hop(h.name.as_bytes()) == Some(Hop::Connection))
            .flat_map(|h| h.value.split(|b| *b == b','))
            .map(<[u8]>::trim_ascii)
            .collect();
        let length_name = length_field.map(|i| fields[i].0.clone());
        fields.retain(|(n, _)| {
            let name = &buf[n.clone()];
            (switching && name.eq_ignore_ascii_case(b"upgrade"))
                || !names.iter().any(|t| t.eq_ignore_ascii_case(name))
        });
        length_field = length_name.and_then(|l| fields.iter().position(|(n, _)| *n == l));
    }
    Ok(Some(Scan {
        len,
        status,
        http10: parsed.version == Some(0),
        reason: parsed
            .reason
            .filter(|r| !r.is_empty())
            .map_or(0..0, |r| range(r.as_bytes())),
        fields,
        length_field,
        delimiting: d,
    }))
}

/// Where a chunked body's decoder is.
#[derive(Debug)]
pub(crate) enum Chunked {
    /// Reading a chunk-size line.
    Size,
    /// So many bytes of chunk data to go, then its CRLF.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Reading trailer lines until the empty one.
    Trailers,
}

/// What the chunked decoder made of the buffered bytes.
enum Decoded {
    Data(Bytes),
    /// Needs more bytes.
    More,
    End,
}

impl Chunked {
    fn decode(&mut self, buf: &mut BytesMut) -> io::Result<Decoded> {
        loop {
            match self {
                Chunked::Size => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Decoded::More);
                    };
                    let digits = line[..].split(|b| *b == b';').next().unwrap_or(&[]);
                    let digits = std::str::from_utf8(digits)
                        .map_err(|_| protocol_error("bad chunk size"))?
                        .trim();
                    let size = u64::from_str_radix(digits, 16)
                        .map_err(|_| protocol_error("bad chunk size"))?;
                    *self = if size == 0 {
                        Chunked::Trailers
                    } else {
                        Chunked::Data(size)
                    };
                }
                Chunked::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::More);
                    }
                    let n = usize::try_from(*left).unwrap_or(usize::MAX).min(buf.len());
                    *left -= n as u64;
                    if *left == 0 {
                        *self = Chunked::DataEnd;
                    }
                    return Ok(Decoded::Data(buf.split_to(n).freeze()));
                }
                Chunked::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Decoded::More);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(protocol_error("chunk data not followed by CRLF"));
                    }
                    buf.advance(2);
                    *self = Chunked::Size;
                }
                Chunked::Trailers => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Decoded::More);
                    };
                    if line.is_empty() {
                        return Ok(Decoded::End);
                    }
                }
            }
        }
    }
}

/// A CRLF-terminated line from the start of `buf` (without the CRLF), if complete.
fn take_line(buf: &mut BytesMut) -> io::Result<Option<BytesMut>> {
    match buf.iter().position(|b| *b == b'\n') {
        Some(i) => {
            let mut line = buf.split_to(i + 1);
            line.truncate(i);
            if line.last() == Some(&b'\r') {
                line.truncate(i - 1);
            }
            Ok(Some(line))
        }
        None if buf.len() > 4096 => Err(protocol_error("chunk line too long")),
        None => Ok(None),
    }
}

/// An upstream's response body, read from the connection as the client reads it.
/// At its end a reusable connection goes back to the pool; dropped before its end
/// (the client went away) it closes the connection, as the rest is still on the wire.
pub struct PooledBody {
    conn: Option<(Conn, Arc<Pool>)>,
    framing: Framing,
    keep_alive: bool,
    done: bool,
}

impl PooledBody {
    fn new(conn: Conn, pool: Arc<Pool>, framing: Framing, keep_alive: bool) -> Self {
        let mut body = PooledBody {
            conn: Some((conn, pool)),
            framing,
            keep_alive,
            done: false,
        };
        if matches!(body.framing, Framing::Length(0)) {
            // Nothing will poll an empty body: the connection is free now.
            body.finish();
        }
        body
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
        match ready!(conn.poll_body(&mut this.framing, cx)) {
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

    fn head(text: &str) -> io::Result<Option<Parsed>> {
        parse_head(&mut BytesMut::from(text), false, false)
    }

    fn body_of(framing: Framing, wire: &str) -> io::Result<Vec<u8>> {
        let mut buf = BytesMut::from(wire);
        let mut out = Vec::new();
        match framing {
            Framing::Chunked(mut d) => loop {
                match d.decode(&mut buf)? {
                    Decoded::Data(b) => out.extend_from_slice(&b),
                    Decoded::End => return Ok(out),
                    Decoded::More => return Err(protocol_error("incomplete")),
                }
            },
            _ => unreachable!(),
        }
    }

    /// What `write_request` puts on the wire for `body` with `length`.
    async fn wire(body: &'static str, length: Option<u64>) -> io::Result<String> {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out).await;
            out
        });
        let mut conn = Conn {
            io: TcpStream::connect(addr).await.unwrap(),
            buf: BytesMut::new(),
        };
        let mut body = http_body_util::Full::new(Bytes::from_static(body.as_bytes()));
        let sending = length.map_or(Sending::Chunked, Sending::Exactly);
        let head = BytesMut::from(&b"H\r\n\r\n"[..]);
        let result = write_message(&mut conn.io, head, Some(Pin::new(&mut body)), sending).await;
        drop(conn);
        let out = reader.await.unwrap();
        result.map(|()| out).map_err(|e| match e {
            MessageError::Body(never) => match never {},
            MessageError::Framing(what) => protocol_error(what),
            MessageError::Io(e) => e,
        })
    }

    #[tokio::test]
    async fn a_request_body_goes_out_exactly_as_framed() {
        assert_eq!(wire("hello", Some(5)).await.unwrap(), "H\r\n\r\nhello");
        assert_eq!(
            wire("hello", None).await.unwrap(),
            "H\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        );
        // More than declared would be read by the upstream as another request.
        assert!(wire("hello", Some(3)).await.is_err());
        assert!(wire("hello", Some(9)).await.is_err());
    }

    #[test]
    fn chunked_bodies_decode_with_extensions_and_trailers() {
        let wire =
            "4;ext=1\r\nwiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nx-t: 1\r\n\r\n";
        assert_eq!(
            body_of(Framing::Chunked(Chunked::Size), wire).unwrap(),
            b"wikipedia in\r\n\r\nchunks."
        );
        assert!(body_of(Framing::Chunked(Chunked::Size), "zz\r\n").is_err());
        assert!(body_of(Framing::Chunked(Chunked::Size), "2\r\nabX\r\n0\r\n\r\n").is_err());
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let framing_of = |text: &str| match head(text).unwrap() {
            Some(Parsed::Final(_, f, _)) => f,
            _ => panic!("no final head in {text:?}"),
        };
        assert!(matches!(
            framing_of("HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n"),
            Framing::Length(12)
        ));
        assert!(matches!(
            framing_of(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\ncontent-length: 3\r\n\r\n"
            ),
            Framing::Chunked(_)
        ));
        assert!(matches!(
            framing_of("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n"),
            Framing::UntilClose
        ));
        assert!(matches!(
            framing_of("HTTP/1.1 200 OK\r\n\r\n"),
            Framing::UntilClose
        ));
        assert!(matches!(
            framing_of("HTTP/1.1 304 Not Modified\r\ncontent-length: 40\r\n\r\n"),
            Framing::Length(0)
        ));
        assert!(head("HTTP/1.1 200 OK\r\ncontent-length: 3, 4\r\n\r\n").is_err());
        assert!(head("HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n").is_err());
        assert!(matches!(
            head("HTTP/1.1 100 Continue\r\n\r\n").unwrap(),
            Some(Parsed::Interim)
        ));
        assert!(head("HTTP/1.1 101 Switching Protocols\r\n\r\n").is_err());
        assert!(head("HTTP/1.1 200 OK\r\ncontent-le").unwrap().is_none());
        assert!(head("SSH-2.0-OpenSSH\r\n\r\n").is_err());
    }

    #[test]
    fn hop_by_hop_response_headers_stay_behind() {
        let Some(Parsed::Final(parsed, _, keep)) = head(
            "HTTP/1.1 200 OK\r\nconnection: keep-alive, x-internal\r\nx-internal: 1\r\n\
             keep-alive: timeout=5\r\nx-app: 1\r\ncontent-length: 0\r\n\r\n",
        )
        .unwrap() else {
            panic!("no final head");
        };
        assert!(keep);
        let names: Vec<&[u8]> = parsed.fields().map(|(n, _)| n).collect();
        assert_eq!(names, [&b"x-app"[..], b"content-length"]);
        assert_eq!(parsed.reason(), b"OK");
        let Some(Parsed::Final(parsed, _, keep)) =
            head("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n")
                .unwrap()
        else {
            panic!("no final head");
        };
        assert_eq!(
            parsed.fields().count(),
            0,
            "a length that chunked overrides is dropped"
        );
        assert!(!keep, "a head with both framings closes its connection");
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection_header() {
        let keep = |text: &str| match head(text).unwrap() {
            Some(Parsed::Final(_, _, keep)) => keep,
            _ => panic!(),
        };
        assert!(keep("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"));
        assert!(!keep(
            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
        ));
        assert!(!keep("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n"));
        assert!(keep(
            "HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n"
        ));
        assert!(
            !keep("HTTP/1.1 200 OK\r\n\r\n"),
            "a body until close ends the connection"
        );
    }

    /// Answers the first request on each connection and closes the connection,
    /// unanswered, when the next request arrives: a server whose idle timeout fires
    /// just as a pooled connection is reused.
    async fn one_answer_per_connection_backend() -> http::uri::Authority {
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
        addr.to_string().parse().unwrap()
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
        let authority = one_answer_per_connection_backend().await;
        let pool = Arc::new(Pool::default());
        let limits = crate::Limits::default();
        for i in 0..3 {
            let resp = pool
                .send(
                    &authority,
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
