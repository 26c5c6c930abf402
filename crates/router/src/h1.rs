//! HTTP/1 from clients, served by liftoff itself.
//!
//! A general-purpose server (hyper's) parses each request into a header map, hands
//! it to a service through a dispatcher, and encodes the response head from another
//! map. A reverse proxy needs less: the request head is parsed in place, routed,
//! and re-encoded for the upstream in one pass over its fields; the upstream's
//! response head goes to the client as its fields came, framed for this client.
//! One task per connection; the request body streams from this connection's buffer
//! and socket to the upstream; pipelined requests are answered in order.
//!
//! Slow clients: every request head must arrive complete within the header timeout,
//! or the client gets `408 Request Timeout` and the connection closes (a kept-alive
//! connection idle that long is closed without one). One timer per connection,
//! moved forward per request, not one per request. A request body that stalls, is
//! malformed or is cut short is the client's fault (408, 400, or nothing if it left;
//! see [`ClientFault`]), never an error of the version.
//!
//! A connection whose request body was not read to its end (the answer came first)
//! cannot carry another request: after the answer it closes, lingering for a moment
//! so that the client reads the answer rather than a reset (RFC 9112 §9.6).
//!
//! A connection that opens with the HTTP/2 preface is handed to hyper's HTTP/2
//! server (h2c with prior knowledge).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::StatusCode;
use hyper::body::{Body, Frame};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Sleep;
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::Shared;
use crate::pool::{Outgoing, PooledBody, Upstreamed};
use crate::proxy::{self, Answer, ConnInfo, Ours, Picked, encode_request, pick};
use crate::stream::Stream;
use crate::wire::{
    Chunked, ClientFault, Conn, Framing, Hop, MAX_HEADERS, RequestBody, Sending, UpstreamHead,
    add_length, hop_by_hop, write_message,
};

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// How long a connection closed with its request body unread keeps reading (and
/// dropping) what the client still sends, so the client sees the answer, not a reset.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);
/// How long a keep-alive connection may stay idle once the router drains.
const DRAIN_IDLE: std::time::Duration = std::time::Duration::from_millis(500);

/// Serve one client connection until it closes, errs or times out.
/// `_admitted` is the connection's place under the cap, given back when this ends.
pub(crate) async fn serve(
    io: Stream,
    conn: Arc<ConnInfo>,
    shared: Arc<Shared>,
    _admitted: crate::Admitted,
) {
    let mut client = Conn::new(io);
    let timeout = shared.limits.header_read_timeout;
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let drain = shared.drain.clone().cancelled_owned();
    tokio::pin!(drain);
    let mut first = true;
    loop {
        if !first {
            // Moving a pending timer later is a store, not a timer-wheel operation.
            deadline
                .as_mut()
                .reset(tokio::time::Instant::now() + timeout);
        }
        let request = match next_request(
            &mut client,
            deadline.as_mut(),
            drain.as_mut(),
            &conn,
            &shared,
            first,
        )
        .await
        {
            Next::Request(r) => r,
            // Boxed: hyper's HTTP/2 connection state would otherwise be part of every
            // HTTP/1 connection's task.
            Next::Http2 => return Box::pin(serve_h2(client, conn, shared, drain)).await,
            Next::Reject(ours) => {
                let _ = write_ours(&mut client.io, &ours, false, false).await;
                return;
            }
            Next::Closed => return,
        };
        first = false;
        // Boxed while it runs: an idle keep-alive connection holds only what waiting
        // for the next request needs (see `Conn::idle`).
        match Box::pin(respond(&mut client, request, &shared)).await {
            Ok(After::KeepAlive) => client.idle(),
            Ok(After::Linger) => return linger(&mut client).await,
            Ok(After::Close) | Err(_) => return,
        }
    }
}

/// What becomes of a connection after a response.
enum After {
    KeepAlive,
    Close,
    /// Close, but the client may still be sending a body we did not read.
    Linger,
}

/// Close a connection whose client may still be sending: stop writing, then read and
/// drop what comes for at most [`LINGER`], until the client closes too.
async fn linger(client: &mut Conn) {
    if client.io.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        loop {
            client.buf.clear();
            match client.io.read_buf(&mut client.buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// A request head, parsed and acted on: what is left to do once it is consumed.
pub(crate) struct Request {
    /// Head bytes to consume from the buffer.
    pub(crate) len: usize,
    act: Act,
    /// The client's body, if any, as it frames it.
    body: Option<Framing>,
    expect_continue: bool,
    keep_alive: bool,
    http10: bool,
    head_request: bool,
}

enum Act {
    Forward { picked: Picked, out: Outgoing },
    Answer(Ours),
}

enum Next {
    Request(Request),
    Http2,
    /// A head that cannot be served: answered, then the connection closes.
    Reject(Ours),
    Closed,
}

/// Read until a complete request head is in the buffer, and act on it.
///
/// A connection idle when the router starts draining (kept alive, or opened and
/// silent) is closed quietly once it has been idle for [`DRAIN_IDLE`]: a busy
/// client's next request comes well before that and is answered with
/// `Connection: close`; a quiet one (a browser holding a connection open) goes then,
/// not at the drain deadline.
async fn next_request(
    client: &mut Conn,
    mut deadline: Pin<&mut Sleep>,
    mut drain: Pin<&mut WaitForCancellationFutureOwned>,
    conn: &ConnInfo,
    shared: &Shared,
    first: bool,
) -> Next {
    let max = shared.limits.max_header_bytes;
    let mut drain_seen = false;
    loop {
        if !client.buf.is_empty() {
            let n = client.buf.len().min(H2_PREFACE.len());
            if first && client.buf[..n] == H2_PREFACE[..n] {
                if n == H2_PREFACE.len() {
                    return Next::Http2;
                }
            } else {
                match parse(&client.buf, conn, shared) {
                    Ok(Some(request)) => return Next::Request(request),
                    Ok(None) if client.buf.len() >= max => {
                        return Next::Reject(Ours::text(
                            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                            "liftoff: request head too large\n",
                        ));
                    }
                    Ok(None) => {}
                    Err(ours) => return Next::Reject(ours),
                }
            }
        }
        let read = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = client.poll_fill(cx) {
                return Poll::Ready(Some(r));
            }
            if !drain_seen && client.buf.is_empty() && drain.as_mut().poll(cx).is_ready() {
                drain_seen = true;
                // The timer was set to the end of the idle allowance when the last
                // request began; the drain allows less.
                let idle_since = deadline.deadline() - shared.limits.header_read_timeout;
                let close_at = idle_since + DRAIN_IDLE;
                if close_at < deadline.deadline() {
                    deadline.as_mut().reset(close_at);
                }
            }
            deadline.as_mut().poll(cx).map(|()| None)
        })
        .await;
        match read {
            Some(Ok(0) | Err(_)) => return Next::Closed,
            Some(Ok(_)) => {}
            // Idle between requests, or idle while draining: closed quietly. A head
            // begun and not finished, or a connection that never sent one: told why.
            None if (!first || drain_seen) && client.buf.is_empty() => return Next::Closed,
            None => {
                return Next::Reject(Ours::text(
                    StatusCode::REQUEST_TIMEOUT,
                    "liftoff: request head too slow\n",
                ));
            }
        }
    }
}

fn bad(message: &'static str) -> Ours {
    Ours::text(StatusCode::BAD_REQUEST, message)
}

/// Parse the head at the start of `buf`: `None` while incomplete. Most heads fit the
/// small table of fields; only a long one pays for the large.
pub(crate) fn parse(buf: &[u8], conn: &ConnInfo, shared: &Shared) -> Result<Option<Request>, Ours> {
    let mut small = [httparse::EMPTY_HEADER; 32];
    match parse_with(buf, &mut small, conn, shared) {
        Err(ParseError::TooMany) => {
            let mut large = [httparse::EMPTY_HEADER; MAX_HEADERS];
            parse_with(buf, &mut large, conn, shared).map_err(|e| match e {
                ParseError::TooMany => Ours::text(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "liftoff: too many header fields\n",
                ),
                ParseError::Bad(ours) => ours,
            })
        }
        Err(ParseError::Bad(ours)) => Err(ours),
        Ok(parsed) => Ok(parsed),
    }
}

enum ParseError {
    TooMany,
    Bad(Ours),
}

fn parse_with<'b>(
    buf: &'b [u8],
    slots: &mut [httparse::Header<'b>],
    conn: &ConnInfo,
    shared: &Shared,
) -> Result<Option<Request>, ParseError> {
    let mut req = httparse::Request::new(slots);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ParseError::TooMany),
        Err(_) => return Err(ParseError::Bad(bad("liftoff: malformed request\n"))),
    };
    let method = req.method.unwrap_or("GET");
    let target = req.path.unwrap_or("/").as_bytes();
    let http10 = req.version == Some(0);
    let fields: &[httparse::Header<'_>] = req.headers;
    act_on(len, method, target, http10, fields, conn, shared)
        .map(Some)
        .map_err(ParseError::Bad)
}

/// Route a parsed head and encode what the upstream gets, or our answer.
fn act_on(
    len: usize,
    method: &str,
    target: &[u8],
    http10: bool,
    fields: &[httparse::Header<'_>],
    conn: &ConnInfo,
    shared: &Shared,
) -> Result<Request, Ours> {
    let mut keep_alive = !http10;
    let mut chunked = None;
    let mut expect_continue = false;
    let mut hosts = 0;
    let mut host = None;
    let mut length = None;
    for f in fields {
        match hop_by_hop(f.name.as_bytes()) {
            Some(Hop::Connection) => {
                for token in f.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                    if token.eq_ignore_ascii_case(b"close") {
                        keep_alive = false;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") && http10 {
                        keep_alive = true;
                    }
                }
            }
            Some(Hop::TransferEncoding) => {
                let last = f.value.rsplit(|b| *b == b',').next().unwrap_or(&[]);
                chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            }
            Some(_) => {}
            None if f.name.eq_ignore_ascii_case("host") => {
                hosts += 1;
                host = Some(f.value);
            }
            None if f.name.eq_ignore_ascii_case("content-length") => {
                let n = add_length(length, f.value);
                length = Some(n.map_err(|_| bad("liftoff: bad content-length\n"))?);
            }
            None if f.name.eq_ignore_ascii_case("expect") => {
                expect_continue = f.value.eq_ignore_ascii_case(b"100-continue");
            }
            None => {}
        }
    }
    if method == "CONNECT" {
        return Err(Ours::text(
            StatusCode::METHOD_NOT_ALLOWED,
            "liftoff: CONNECT is not proxied\n",
        ));
    }
    // RFC 9112 §3.2: one Host, and HTTP/1.1 requests must have it. Routing and the
    // upstream must never see different hosts.
    if hosts > 1 || (hosts == 0 && !http10) {
        return Err(bad("liftoff: a request needs exactly one Host\n"));
    }
    // Absolute form (`GET http://host/path`): its authority is the host.
    let absolute = if target.first() == Some(&b'/') || target == b"*" {
        None
    } else {
        let uri = http::Uri::try_from(target).map_err(|_| bad("liftoff: bad request target\n"))?;
        match (uri.authority(), uri.path_and_query()) {
            (Some(a), Some(p)) => Some((
                Bytes::copy_from_slice(a.as_str().as_bytes()),
                Bytes::copy_from_slice(p.as_str().as_bytes()),
            )),
            _ => return Err(bad("liftoff: bad request target\n")),
        }
    };
    let (host, target) = match &absolute {
        Some((authority, path)) => (Some(&authority[..]), &path[..]),
        None => (host, target),
    };
    let body = match (chunked, length) {
        // A message with both: Transfer-Encoding wins, and the connection closes
        // after it (RFC 9112 §6.1), so no byte of it is read as another request.
        (Some(true), _) => {
            keep_alive &= length.is_none();
            RequestBody::Chunked
        }
        (Some(false), _) => return Err(bad("liftoff: unsupported transfer-encoding\n")),
        (None, Some(n)) if n > shared.limits.max_body_bytes as u64 => {
            return Err(proxy::too_large());
        }
        (None, Some(0) | None) => RequestBody::None,
        (None, Some(n)) => RequestBody::Length(n),
    };
    let framing = match body {
        RequestBody::None => None,
        RequestBody::Length(n) => Some(Framing::Length(n)),
        RequestBody::Chunked => Some(Framing::Chunked(Chunked::Size)),
    };
    let act = match pick(shared, conn, host, fields) {
        Ok(picked) => {
            let out = encode_request(
                method,
                target,
                fields
                    .iter()
                    .map(|f| (f.name.as_bytes(), f.value))
                    .filter(|(name, _)| picked.passed_on(name)),
                host,
                picked.route.host_policy,
                body,
                conn,
            );
            Act::Forward { picked, out }
        }
        Err(ours) => Act::Answer(ours),
    };
    Ok(Request {
        len,
        act,
        body: framing,
        expect_continue: expect_continue && !http10,
        keep_alive,
        http10,
        head_request: method == "HEAD",
    })
}

/// Forward (or answer) one request and write the response, and say whether the
/// connection can carry another request.
async fn respond(client: &mut Conn, request: Request, shared: &Shared) -> io::Result<After> {
    client.buf.advance(request.len);
    let mut keep_alive = request.keep_alive;
    // The body, if any, is not read to its end unless forwarding does: the connection
    // cannot go on after it.
    let mut unread = request.body.is_some();
    let answer = match request.act {
        Act::Answer(ours) => Answer::Ours(ours),
        Act::Forward { picked, out } => match request.body {
            None => {
                let exchange = proxy::forward(shared, &picked, &out, None::<&mut ClientBody>);
                match unless_client_leaves(client, shared, exchange).await {
                    Some(answer) => answer,
                    None => return Ok(After::Close),
                }
            }
            Some(framing) => {
                if request.expect_continue {
                    client
                        .io
                        .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                        .await?;
                }
                let mut body = ClientBody {
                    conn: client,
                    framing,
                    room: shared.limits.max_body_bytes as u64,
                    done: false,
                };
                let answer = proxy::forward(shared, &picked, &out, Some(&mut body)).await;
                unread = !body.done;
                answer
            }
        },
    };
    keep_alive &= !unread;
    let after = |keep_alive| match (keep_alive, unread) {
        (true, _) => After::KeepAlive,
        (false, true) => After::Linger,
        (false, false) => After::Close,
    };
    // A stopping router tells each client to go elsewhere with its next response: the
    // client reconnects (to the successor) between requests, never mid-request.
    keep_alive &= !shared.draining();
    match answer {
        Answer::Ours(ours) => {
            write_ours(&mut client.io, &ours, keep_alive, request.head_request).await?;
            Ok(after(keep_alive))
        }
        Answer::Upstream(Upstreamed { head, body })
            if head.status == StatusCode::SWITCHING_PROTOCOLS =>
        {
            tunnel(client, head, body).await?;
            Ok(After::Close)
        }
        Answer::Upstream(Upstreamed { head, mut body }) => {
            let framed = body.needs_framing();
            // An HTTP/1.0 client cannot take chunks: the end of the connection ends
            // the body instead.
            keep_alive &= !(framed && request.http10);
            let sending = if framed && !request.http10 {
                Sending::Chunked
            } else {
                Sending::AsIs
            };
            let mut out = BytesMut::with_capacity(512);
            put_head(&mut out, &head);
            if sending == Sending::Chunked {
                out.put_slice(b"transfer-encoding: chunked\r\n");
            }
            put_connection(&mut out, keep_alive, request.http10);
            out.put_slice(b"\r\n");
            let body = (!body.is_end_stream()).then(|| Pin::new(&mut body));
            write_message(&mut client.io, out, body, sending)
                .await
                .map_err(|e| e.into_io())?;
            Ok(after(keep_alive))
        }
    }
}

/// The upstream switched protocols (a WebSocket): the `101` goes to the client, then
/// bytes flow both ways as they come until either side closes. The tunnel is this
/// connection's task: a weight change or a rollback leaves it be (new connections
/// follow the split); a draining router ends it at its drain deadline.
async fn tunnel(client: &mut Conn, head: UpstreamHead, body: PooledBody) -> io::Result<()> {
    let mut out = BytesMut::with_capacity(256);
    put_head(&mut out, &head);
    out.put_slice(b"connection: upgrade\r\n\r\n");
    let Some(mut upstream) = body.into_conn() else {
        return Ok(());
    };
    // What either side sent past its head goes first.
    out.put_slice(&upstream.buf);
    upstream.buf.clear();
    client.io.write_all(&out).await?;
    if !client.buf.is_empty() {
        upstream.io.write_all(&client.buf).await?;
        client.buf.clear();
    }
    tokio::io::copy_bidirectional(&mut client.io, &mut upstream.io).await?;
    Ok(())
}

/// Run `exchange` while watching the client: if it closes its connection first, the
/// exchange is dropped (which records the client as gone, and closes the upstream
/// connection mid-response) and `None` comes back. What the client sends meanwhile
/// (a pipelined request) is kept, up to a head's worth.
async fn unless_client_leaves<F: Future>(
    client: &mut Conn,
    shared: &Shared,
    exchange: F,
) -> Option<F::Output> {
    let mut exchange = std::pin::pin!(exchange);
    let mut watching = true;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = exchange.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        while watching {
            match client.poll_fill(cx) {
                Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(None),
                Poll::Ready(Ok(_)) => watching = client.buf.len() < shared.limits.max_header_bytes,
                Poll::Pending => break,
            }
        }
        Poll::Pending
    })
    .await
}

/// The status line and the upstream's end-to-end fields, as they came.
fn put_head(out: &mut BytesMut, head: &UpstreamHead) {
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(head.status.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(head.reason());
    out.put_slice(b"\r\n");
    for (name, value) in head.fields() {
        out.put_slice(name);
        out.put_slice(b": ");
        out.put_slice(value);
        out.put_slice(b"\r\n");
    }
}

fn put_connection(out: &mut BytesMut, keep_alive: bool, http10: bool) {
    if !keep_alive {
        out.put_slice(b"connection: close\r\n");
    } else if http10 {
        out.put_slice(b"connection: keep-alive\r\n");
    }
}

async fn write_ours(
    io: &mut Stream,
    ours: &Ours,
    keep_alive: bool,
    head_request: bool,
) -> io::Result<()> {
    use std::fmt::Write as _;
    let mut out = BytesMut::with_capacity(256 + ours.body.len());
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\n",
        ours.status.as_str(),
        ours.status.canonical_reason().unwrap_or(""),
        ours.content_type(),
        ours.body.len()
    );
    if let Some(secs) = ours.retry_after {
        let _ = write!(out, "retry-after: {secs}\r\ncache-control: no-store\r\n");
    }
    put_connection(&mut out, keep_alive, false);
    out.put_slice(b"\r\n");
    if !head_request {
        out.put_slice(&ours.body);
    }
    io.write_all(&out).await
}

/// A request body read from the client connection as the upstream takes it.
struct ClientBody<'c> {
    conn: &'c mut Conn,
    framing: Framing,
    /// How many more bytes the body may have.
    room: u64,
    done: bool,
}

impl Body for ClientBody<'_> {
    type Data = Bytes;
    type Error = ClientFault;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientFault>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match ready!(this.conn.poll_body(&mut this.framing, cx)) {
            Some(Ok(data)) => {
                this.room = this
                    .room
                    .checked_sub(data.len() as u64)
                    .ok_or(ClientFault::TooLarge)?;
                this.done = matches!(this.framing, Framing::Length(0));
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            None => {
                this.done = true;
                Poll::Ready(None)
            }
            // Bad chunk framing; anything else is the connection ending or failing.
            Some(Err(e)) if e.kind() == io::ErrorKind::InvalidData => {
                Poll::Ready(Some(Err(ClientFault::Malformed)))
            }
            Some(Err(_)) => Poll::Ready(Some(Err(ClientFault::Aborted))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

/// HTTP/2 with prior knowledge: hyper serves it, after the bytes already read.
/// A draining router sends GOAWAY: streams in flight finish, new ones go elsewhere.
async fn serve_h2(
    client: Conn,
    conn: Arc<ConnInfo>,
    shared: Arc<Shared>,
    mut drain: Pin<&mut WaitForCancellationFutureOwned>,
) {
    let limits = shared.limits.clone();
    let service =
        hyper::service::service_fn(move |req| proxy::handle(shared.clone(), conn.clone(), req));
    let io = Prefixed {
        read: client.buf,
        io: client.io,
    };
    let served = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(served);
    let served = tokio::select! {
        served = served.as_mut() => served,
        () = drain.as_mut() => {
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    if let Err(e) = served {
        tracing::debug!(error = %e, "HTTP/2 client connection ended with an error");
    }
}

/// A socket whose first bytes were already read into `read`.
struct Prefixed {
    read: BytesMut,
    io: Stream,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.read.is_empty() {
            let n = self.read.len().min(buf.remaining());
            buf.put_slice(&self.read.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
