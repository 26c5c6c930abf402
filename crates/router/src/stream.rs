//! A connection's byte stream: plain TCP, or TLS over it (a client's connection with
//! TLS terminated here, or ours to an `https://` instance). One enum rather than a type parameter
//! through `wire`, `h1` and `pool`: the plain path pays one branch per read or write,
//! and the code that frames HTTP is written once.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub(crate) enum Stream {
    Tcp(TcpStream),
    /// A client's connection; TLS is terminated here.
    TlsIn(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// A connection to an `https://` instance.
    TlsOut(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    /// Without waiting: false if the peer closed the connection (or sent something
    /// unasked, which makes it unusable for the next exchange). For plain TCP a
    /// system call only when the socket turned readable since the last read; for TLS
    /// a read through the session, which also takes in what the peer may send after
    /// the handshake with no data (TLS 1.3 session tickets).
    pub(crate) fn is_open(&mut self) -> bool {
        match self {
            Stream::Tcp(s) => {
                let mut probe = [0u8; 1];
                matches!(s.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
            tls => {
                let mut probe = [0u8; 1];
                let mut buf = ReadBuf::new(&mut probe);
                let mut cx = Context::from_waker(std::task::Waker::noop());
                matches!(Pin::new(tls).poll_read(&mut cx, &mut buf), Poll::Pending)
            }
        }
    }
}

impl Stream {
    /// Ready once a read would find something: bytes on the socket, or (over TLS)
    /// decrypted bytes the session already holds. Reads nothing.
    pub(crate) fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let tcp = match self {
            Stream::Tcp(tcp) => tcp,
            Stream::TlsIn(tls) => {
                let (tcp, session) = tls.get_mut();
                if holds_plaintext(session) {
                    return Poll::Ready(Ok(()));
                }
                tcp
            }
            Stream::TlsOut(tls) => {
                let (tcp, session) = tls.get_mut();
                if holds_plaintext(session) {
                    return Poll::Ready(Ok(()));
                }
                tcp
            }
        };
        tcp.poll_read_ready(cx)
    }
}

/// Has the session decrypted bytes no read has taken yet (or an error a read should
/// report)?
fn holds_plaintext<D>(session: &mut rustls::ConnectionCommon<D>) -> bool {
    session.process_new_packets().map_or(true, |state| {
        state.plaintext_bytes_to_read() > 0 || state.peer_has_closed()
    })
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::TlsIn(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::TlsOut(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::TlsIn(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::TlsOut(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::TlsIn(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            Stream::TlsOut(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::TlsIn(s) => s.is_write_vectored(),
            Stream::TlsOut(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::TlsIn(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::TlsOut(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::TlsIn(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::TlsOut(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
