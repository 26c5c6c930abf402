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

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::proxy::{UpstreamBody, connection_tokens, is_hop_by_hop, is_idempotent};

/// The most response headers we accept from an upstream.
const MAX_HEADERS: usize = 100;
/// How much is read from an upstream at a time.
const READ_CHUNK: usize = 8 * 1024;

/// One open connection and the bytes read from it but not yet used.
pub struct Conn {
    io: TcpStream,
    buf: BytesMut,
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

    /// Send `req` on a pooled connection (or a new one) and read the response head.
    /// The response body reads the rest from the connection and returns it to the pool
    /// when it ends.
    pub async fn send(
        self: &Arc<Self>,
        authority: &http::uri::Authority,
        req: Request<UpstreamBody>,
        limits: &crate::Limits,
    ) -> Result<Response<PooledBody>, SendError> {
        let (parts, body) = req.into_parts();
        let bodyless = body.is_end_stream();
        let head = encode_head(&parts.method, &parts.uri, &parts.headers, bodyless);
        // The body is sent chunked unless it declared a length; then exactly that many
        // bytes go out, or the exchange fails (more would be a second request to the
        // upstream).
        let length = if bodyless {
            None
        } else {
            content_length(&parts.headers).map_err(SendError::Exchange)?
        };
        let head_only = parts.method == Method::HEAD;
        // Sent again on a new connection when a reused one turns out closed.
        let resendable = bodyless && is_idempotent(&parts.method);
        let mut body = (!bodyless).then_some(body);
        loop {
            let (mut conn, reused) = match self.checkout(limits.upstream_idle_timeout) {
                Some(c) => (c, true),
                None => (connect(authority, limits).await?, false),
            };
            let written = conn.write_request(&head, body.take(), length).await;
            let response = match written {
                Ok(()) => conn.read_head(limits.max_header_bytes, head_only).await,
                Err(e) => Err(Failed {
                    error: e,
                    nothing_read: true,
                }),
            };
            match response {
                Ok((parts, framing, keep_alive)) => {
                    let body = PooledBody::new(conn, self.clone(), framing, keep_alive);
                    return Ok(Response::from_parts(parts, body));
                }
                Err(f) if reused && f.nothing_read && resendable => {
                    tracing::debug!(error = %f.error, "pooled upstream connection was closed; sending again");
                }
                Err(f) => return Err(SendError::Exchange(f.error)),
            }
        }
    }
}

/// The request line and headers, as the upstream gets them. Header values were
/// validated when they were parsed or built (no CR, LF or NUL), so they are copied
/// as they are.
fn encode_head(method: &Method, uri: &http::Uri, headers: &HeaderMap, bodyless: bool) -> Bytes {
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    let size = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum::<usize>();
    let mut h = BytesMut::with_capacity(method.as_str().len() + target.len() + size + 64);
    h.put_slice(method.as_str().as_bytes());
    h.put_u8(b' ');
    h.put_slice(target.as_bytes());
    h.put_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        h.put_slice(name.as_str().as_bytes());
        h.put_slice(b": ");
        h.put_slice(value.as_bytes());
        h.put_slice(b"\r\n");
    }
    let has_length = headers.contains_key(header::CONTENT_LENGTH);
    if !bodyless && !has_length {
        h.put_slice(b"transfer-encoding: chunked\r\n");
    } else if bodyless
        && !has_length
        && matches!(*method, Method::POST | Method::PUT | Method::PATCH)
    {
        // A body-carrying method with no body says so, or the upstream waits for one.
        h.put_slice(b"content-length: 0\r\n");
    }
    h.put_slice(b"\r\n");
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
    Ok(Conn {
        io,
        buf: BytesMut::with_capacity(READ_CHUNK),
    })
}

/// The body length a message's `Content-Length` fields declare: `None` without one;
/// an error when a value is not a number or two values differ.
fn content_length(headers: &HeaderMap) -> io::Result<Option<u64>> {
    headers
        .get_all(header::CONTENT_LENGTH)
        .iter()
        .try_fold(None, |length, value| {
            add_length(length, value.to_str().unwrap_or("")).map(Some)
        })
}

/// `length` so far, checked against one `Content-Length` value (which may list the
/// same number several times, comma-separated).
fn add_length(length: Option<u64>, value: &str) -> io::Result<u64> {
    let mut length = length;
    for part in value.split(',') {
        let n: u64 = part
            .trim()
            .parse()
            .map_err(|_| protocol_error("bad content-length"))?;
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

fn protocol_error(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// How the response body is delimited (RFC 9112 §6.3).
#[derive(Debug)]
enum Framing {
    /// So many bytes still to come.
    Length(u64),
    Chunked(Chunked),
    /// Until the upstream closes the connection (which then cannot be reused).
    UntilClose,
}

impl Conn {
    /// Without waiting: false if the upstream closed the connection (or sent
    /// something unasked, which makes it unusable). Costs a system call only when
    /// the socket turned readable since the last read.
    fn is_open(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Write the head, then the body: `length` bytes exactly, or chunked without one.
    async fn write_request<B>(
        &mut self,
        head: &[u8],
        body: Option<B>,
        length: Option<u64>,
    ) -> io::Result<()>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        self.io.write_all(head).await?;
        let Some(mut body) = body else {
            return Ok(());
        };
        let mut left = length;
        let mut body = Pin::new(&mut body);
        while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
            let frame = frame.map_err(|e| io::Error::other(format!("request body: {e}")))?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers are not forwarded
            };
            if data.is_empty() {
                continue;
            }
            match &mut left {
                Some(left) => {
                    *left = left.checked_sub(data.len() as u64).ok_or_else(|| {
                        protocol_error("request body longer than its content-length")
                    })?;
                    self.io.write_all(&data).await?;
                }
                None => {
                    // Size line, data and CRLF in one vectored write.
                    let size = Bytes::from(format!("{:x}\r\n", data.len()));
                    let mut chunk = size.chain(data).chain(&b"\r\n"[..]);
                    self.io.write_all_buf(&mut chunk).await?;
                }
            }
        }
        match left {
            Some(0) => Ok(()),
            Some(_) => Err(protocol_error(
                "request body shorter than its content-length",
            )),
            None => self.io.write_all(b"0\r\n\r\n").await,
        }
    }

    /// Read into the buffer; 0 at the end of the stream. (A short read clears the
    /// socket's readiness, so the next poll waits for the runtime instead of asking
    /// the kernel.)
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf)
    }

    async fn fill(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }

    /// Read the response head (skipping interim 1xx responses) and say how the body
    /// that follows is delimited.
    async fn read_head(
        &mut self,
        max_bytes: usize,
        head_only: bool,
    ) -> Result<(http::response::Parts, Framing, bool), Failed> {
        let mut nothing_read = self.buf.is_empty();
        loop {
            if !self.buf.is_empty() {
                match parse_head(&mut self.buf, head_only) {
                    Ok(Some(Parsed::Interim)) => continue,
                    Ok(Some(Parsed::Final(parts, framing, keep_alive))) => {
                        return Ok((parts, framing, keep_alive));
                    }
                    Ok(None) if self.buf.len() >= max_bytes => {
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
            match self.fill().await {
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
}

enum Parsed {
    /// A 1xx before the real response; consumed.
    Interim,
    /// The head, how its body is delimited, and whether the connection can carry
    /// another request after it.
    Final(http::response::Parts, Framing, bool),
}

/// Parse a response head at the start of `buf`; on success it is consumed from `buf`.
/// The head handed on carries only end-to-end headers: the hop-by-hop ones (and those
/// `Connection` names) are read for framing and keep-alive, never copied.
fn parse_head(buf: &mut BytesMut, head_only: bool) -> io::Result<Option<Parsed>> {
    // Most heads fit the small table; only a long one pays for the large.
    let mut small = [httparse::EMPTY_HEADER; 32];
    let scanned = match scan(buf, &mut small) {
        Err(Some(httparse::Error::TooManyHeaders)) => {
            scan(buf, &mut [httparse::EMPTY_HEADER; MAX_HEADERS])
        }
        other => other,
    };
    let scan = match scanned {
        Ok(Some(scan)) => scan,
        Ok(None) => return Ok(None),
        Err(e) => {
            let why = e.map_or("bad status code".to_string(), |e| e.to_string());
            return Err(protocol_error(format!("bad response head: {why}")));
        }
    };
    if scan.status.is_informational() {
        if scan.status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(protocol_error("upstream switched protocols unasked"));
        }
        buf.advance(scan.len);
        return Ok(Some(Parsed::Interim));
    }
    let head = buf.split_to(scan.len).freeze();
    let mut headers = HeaderMap::with_capacity(scan.fields.len());
    for (name, start, end) in scan.fields {
        let value = HeaderValue::from_maybe_shared(head.slice(start..end))
            .map_err(|_| protocol_error(format!("bad value for header {name}")))?;
        headers.append(name, value);
    }
    for name in &scan.named {
        headers.remove(name);
    }
    let d = scan.delimiting;
    let framing = if head_only
        || scan.status == StatusCode::NO_CONTENT
        || scan.status == StatusCode::NOT_MODIFIED
    {
        Framing::Length(0)
    } else if let Some(chunked) = d.chunked {
        // Transfer-Encoding overrides a length; the client gets the body re-framed.
        headers.remove(header::CONTENT_LENGTH);
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
    let (mut parts, ()) = Response::new(()).into_parts();
    parts.status = scan.status;
    parts.headers = headers;
    Ok(Some(Parsed::Final(parts, framing, keep_alive)))
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

/// One parse of a response head: where each end-to-end header's value lies in the
/// buffer (so it can share the buffer's memory once split off), and the rest.
struct Scan {
    len: usize,
    status: StatusCode,
    http10: bool,
    fields: Vec<(HeaderName, usize, usize)>,
    /// Headers `Connection` names: hop-by-hop too.
    named: Vec<HeaderName>,
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
    let mut d = Delimiting::default();
    let mut fields = Vec::with_capacity(parsed.headers.len());
    let mut named = Vec::new();
    for h in parsed.headers.iter() {
        let Ok(name) = HeaderName::from_bytes(h.name.as_bytes()) else {
            return Err(Some(httparse::Error::HeaderName));
        };
        let text = std::str::from_utf8(h.value).unwrap_or("");
        match name {
            header::CONNECTION => {
                for token in text.split(',').map(str::trim) {
                    d.close |= token.eq_ignore_ascii_case("close");
                    d.keep_alive |= token.eq_ignore_ascii_case("keep-alive");
                }
                named.extend(
                    connection_tokens(text)
                        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok()),
                );
                continue;
            }
            header::TRANSFER_ENCODING => {
                let last = text.rsplit(',').next().unwrap_or("").trim();
                d.chunked = Some(last.eq_ignore_ascii_case("chunked"));
                continue;
            }
            header::CONTENT_LENGTH => {
                d.length = Some(
                    add_length(d.length, text).map_err(|_| Some(httparse::Error::HeaderValue))?,
                );
            }
            _ if is_hop_by_hop(&name) => continue,
            _ => {}
        }
        let start = h.value.as_ptr() as usize - base;
        fields.push((name, start, start + h.value.len()));
    }
    Ok(Some(Scan {
        len,
        status,
        http10: parsed.version == Some(0),
        fields,
        named,
        delimiting: d,
    }))
}

/// Where a chunked body's decoder is.
#[derive(Debug)]
enum Chunked {
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

    fn finish(&mut self) {
        self.done = true;
        if let Some((conn, pool)) = self.conn.take()
            && self.keep_alive
            && conn.buf.is_empty()
        {
            pool.checkin(conn);
        }
    }

    fn fail(&mut self, e: io::Error) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.done = true;
        self.conn = None;
        Poll::Ready(Some(Err(e)))
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
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            let Some((conn, _)) = &mut this.conn else {
                return Poll::Ready(None);
            };
            match &mut this.framing {
                Framing::Length(left) => {
                    if !conn.buf.is_empty() {
                        let n = usize::try_from(*left)
                            .unwrap_or(usize::MAX)
                            .min(conn.buf.len());
                        let data = conn.buf.split_to(n).freeze();
                        *left -= n as u64;
                        if *left == 0 {
                            // The last byte is in hand: the connection is free now, even
                            // if the client never asks for the end of the stream.
                            this.finish();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                Framing::Chunked(decoder) => match decoder.decode(&mut conn.buf) {
                    Ok(Decoded::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(Decoded::End) => {
                        this.finish();
                        return Poll::Ready(None);
                    }
                    Ok(Decoded::More) => {}
                    Err(e) => return this.fail(e),
                },
                Framing::UntilClose => {
                    if !conn.buf.is_empty() {
                        let data = conn.buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
            }
            match ready!(conn.poll_fill(cx)) {
                Ok(0) if matches!(this.framing, Framing::UntilClose) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    return this.fail(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "upstream closed the connection in the middle of a response body",
                    ));
                }
                Ok(_) => {}
                Err(e) => return this.fail(e),
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
        parse_head(&mut BytesMut::from(text), false)
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
        let body = http_body_util::Full::new(Bytes::from_static(body.as_bytes()));
        let result = conn.write_request(b"H\r\n\r\n", Some(body), length).await;
        drop(conn);
        let out = reader.await.unwrap();
        result.map(|()| out)
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
        let Some(Parsed::Final(parts, _, keep)) = head(
            "HTTP/1.1 200 OK\r\nconnection: keep-alive, x-internal\r\nx-internal: 1\r\n\
             keep-alive: timeout=5\r\nx-app: 1\r\ncontent-length: 0\r\n\r\n",
        )
        .unwrap() else {
            panic!("no final head");
        };
        assert!(keep);
        let mut names: Vec<&str> = parts.headers.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-length", "x-app"]);
        let Some(Parsed::Final(parts, _, keep)) =
            head("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n")
                .unwrap()
        else {
            panic!("no final head");
        };
        assert!(
            parts.headers.is_empty(),
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

    #[test]
    fn request_heads_carry_framing_for_their_bodies() {
        let uri: http::Uri = "/a?b=1".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("shop"));
        let text = |m: Method, h: &HeaderMap, bodyless| {
            String::from_utf8(encode_head(&m, &uri, h, bodyless).to_vec()).unwrap()
        };
        assert_eq!(
            text(Method::GET, &headers, true),
            "GET /a?b=1 HTTP/1.1\r\nhost: shop\r\n\r\n"
        );
        assert_eq!(
            text(Method::POST, &headers, true),
            "POST /a?b=1 HTTP/1.1\r\nhost: shop\r\ncontent-length: 0\r\n\r\n"
        );
        assert_eq!(
            text(Method::POST, &headers, false),
            "POST /a?b=1 HTTP/1.1\r\nhost: shop\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        assert_eq!(
            text(Method::PUT, &headers, false),
            "PUT /a?b=1 HTTP/1.1\r\nhost: shop\r\ncontent-length: 5\r\n\r\n"
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

    fn get(authority: &http::uri::Authority) -> Request<UpstreamBody> {
        Request::get("/")
            .header(http::header::HOST, authority.as_str())
            .body(crate::proxy::empty_body())
            .unwrap()
    }

    #[tokio::test]
    async fn a_pooled_connection_closed_under_a_get_costs_it_nothing() {
        use http_body_util::BodyExt;
        let authority = one_answer_per_connection_backend().await;
        let pool = Arc::new(Pool::default());
        let limits = crate::Limits::default();
        for i in 0..3 {
            let resp = pool
                .send(&authority, get(&authority), &limits)
                .await
                .unwrap_or_else(|e| panic!("request {i}: {e:?}"));
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"ok");
            assert_eq!(pool.idle_count(), 1, "the connection went back to the pool");
        }
    }
}
