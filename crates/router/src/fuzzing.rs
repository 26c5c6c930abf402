//! Entry points for the fuzz targets in `fuzz/`, not an API: liftoff's own HTTP/1 wire
//! code run on bytes.
//!
//! A chunked request body is decoded the way `h1` decodes a client's: by
//! `Conn::poll_body`, with the bytes already in the connection's buffer. That
//! connection's socket is a loopback connection whose peer never writes, so when the
//! decoder needs more bytes the poll is pending; it never reads a byte from the socket.
#![doc(hidden)]

use std::io;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use tokio::net::{TcpListener, TcpStream};

use crate::wire::{Chunked, Conn, Framing};

/// A chunked body as far as it decoded.
#[derive(Debug)]
pub struct ChunkedBody {
    /// The chunks' data, in order.
    pub data: Vec<u8>,
    pub end: ChunkedEnd,
}

#[derive(Debug)]
pub enum ChunkedEnd {
    /// The last chunk and the trailers came; `rest` bytes followed them (the next
    /// request on the connection).
    End { rest: usize },
    /// Every byte was used and the body is not over yet.
    Incomplete,
    /// Bad framing: the client's fault.
    Malformed(io::Error),
}

/// Decode `pieces`, arriving one after another as reads from a client may split them,
/// as a chunked request body.
///
/// Panics if no loopback connection can be made (once, on the first call).
pub fn chunked_body(pieces: &[&[u8]]) -> ChunkedBody {
    static IDLE: Mutex<Option<Idle>> = Mutex::new(None);
    let mut idle = IDLE.lock().unwrap_or_else(PoisonError::into_inner);
    let idle = idle.get_or_insert_with(Idle::new);
    let _runtime = idle.runtime.enter();
    let conn = &mut idle.conn;
    conn.buf.clear();
    let mut framing = Framing::Chunked(Chunked::Size);
    let mut cx = Context::from_waker(Waker::noop());
    let mut data = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        conn.buf.extend_from_slice(piece);
        loop {
            match conn.poll_body(&mut framing, &mut cx) {
                Poll::Pending => break,
                Poll::Ready(Some(Ok(bytes))) => data.extend_from_slice(&bytes),
                Poll::Ready(None) => {
                    let unread: usize = pieces[i + 1..].iter().map(|p| p.len()).sum();
                    let rest = conn.buf.len() + unread;
                    return ChunkedBody {
                        data,
                        end: ChunkedEnd::End { rest },
                    };
                }
                Poll::Ready(Some(Err(e))) => {
                    return ChunkedBody {
                        data,
                        end: ChunkedEnd::Malformed(e),
                    };
                }
            }
        }
    }
    ChunkedBody {
        data,
        end: ChunkedEnd::Incomplete,
    }
}

/// A client connection that never sends anything, and the runtime its socket is
/// registered with.
struct Idle {
    runtime: tokio::runtime::Runtime,
    conn: Conn,
    _peer: TcpStream,
}

impl Idle {
    fn new() -> Idle {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("a tokio runtime");
        let (conn, peer) = runtime
            .block_on(async {
                let listener = TcpListener::bind("127.0.0.1:0").await?;
                let client = TcpStream::connect(listener.local_addr()?).await?;
                let (peer, _) = listener.accept().await?;
                io::Result::Ok((Conn::new(crate::stream::Stream::Tcp(client)), peer))
            })
            .expect("a loopback connection");
        Idle {
            runtime,
            conn,
            _peer: peer,
        }
    }
}

/// What the request-head parser made of some bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadVerdict {
    /// A complete head, `len` bytes long, acted on (forwarded or answered by liftoff).
    Complete { len: usize },
    /// Not complete yet: the parser waits for more.
    Incomplete,
    /// Refused: liftoff answers with this status and closes.
    Refused(u16),
}

/// Parse `bytes` as the start of a client's request head, as `h1` does for each
/// request, routed by a table with one route (sticky by header, an override allowed
/// from loopback with a secret, a maintenance page off) on a router that never sends a
/// byte anywhere.
///
/// Panics if the router cannot start (once, on the first call).
pub fn request_head(bytes: &[u8]) -> HeadVerdict {
    static ROUTER: std::sync::OnceLock<(crate::Router, std::net::SocketAddr)> =
        std::sync::OnceLock::new();
    let (router, listen) = ROUTER.get_or_init(|| {
        let router = crate::Router::start(crate::Limits::default(), 1).expect("a router");
        let listen = router
            .upsert_route(crate::RouteSpec {
                name: "fuzz".into(),
                listen: "127.0.0.1:0".parse().expect("an address"),
                host: None,
                stable: "http://127.0.0.1:9".into(),
                candidate: Some("http://127.0.0.1:10".into()),
                sticky: crate::Sticky::Header(http::HeaderName::from_static("x-user-id")),
                version_override: Some(
                    crate::VersionOverride::new(
                        "x-liftoff-version",
                        Some("s3cret"),
                        &["127.0.0.1".into()],
                        false,
                    )
                    .expect("an override"),
                ),
                health: None,
                salt: Some(1),
            })
            .expect("a route");
        (router, listen)
    });
    let conn =
        crate::proxy::ConnInfo::new(*listen, "127.0.0.1:40000".parse().expect("a peer"), false);
    match crate::h1::parse(bytes, &conn, &router.shared) {
        Ok(Some(request)) => HeadVerdict::Complete { len: request.len },
        Ok(None) => HeadVerdict::Incomplete,
        Err(ours) => HeadVerdict::Refused(ours.status.as_u16()),
    }
}
