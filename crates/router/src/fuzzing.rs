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
                io::Result::Ok((Conn::new(client), peer))
            })
            .expect("a loopback connection");
        Idle {
            runtime,
            conn,
            _peer: peer,
        }
    }
}
