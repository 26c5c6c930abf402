//! Passing a router's listening sockets to its successor, as HAProxy's seamless reload
//! and pingora's upgrade do: the successor connects to the running router's Unix
//! socket, receives every listening socket (`SCM_RIGHTS`) with a payload the caller
//! chooses (the snapshot it serves), starts accepting on them, and says so; only then
//! does the predecessor stop accepting and drain. The kernel's accept queue is shared by
//! both processes while they overlap, so no connection attempt is refused.
//!
//! The exchange, over one Unix stream connection:
//!
//! ```text
//! successor   → predecessor   "TAKEOVER\n"
//! predecessor → successor     u32 fd count, u32 payload length (big endian), with the
//!                             fds attached; then the payload: JSON naming each fd's
//!                             address in order, and the caller's state
//! successor   → predecessor   "READY\n"   (it accepts on every socket now)
//! ```
//!
//! This file knows sockets and bytes only; what the payload means is the caller's.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

const TAKEOVER: &[u8] = b"TAKEOVER\n";
const READY: &[u8] = b"READY\n";
/// The kernel's limit on descriptors in one message (`SCM_MAX_FD`).
pub const MAX_LISTENERS: usize = 253;
/// Payloads are snapshots of routes; far below this.
const MAX_PAYLOAD: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    #[error("no router is listening for a handoff at {path}: {source}")]
    NoPredecessor { path: String, source: io::Error },
    #[error("handoff: {0}")]
    Io(#[from] io::Error),
    #[error("handoff: {0}")]
    Protocol(String),
    #[error("handoff: more than {MAX_LISTENERS} listening sockets")]
    TooMany,
}

/// What the successor receives: each listening socket with its address, and the
/// predecessor's payload.
pub struct Inherited {
    pub listeners: Vec<(SocketAddr, TcpListener)>,
    pub payload: Vec<u8>,
    /// Say "ready" on it once accepting: the predecessor then stops accepting.
    pub channel: Predecessor,
}

pub struct Predecessor(UnixStream);

impl Predecessor {
    /// Tell the predecessor to stop accepting and drain.
    pub fn ready(mut self) -> Result<(), HandoffError> {
        self.0.write_all(READY)?;
        Ok(())
    }
}

/// The successor's side: connect to the predecessor at `path` and take its sockets.
pub fn take_over(path: &Path, timeout: Duration) -> Result<Inherited, HandoffError> {
    let mut stream = UnixStream::connect(path).map_err(|source| HandoffError::NoPredecessor {
        path: path.display().to_string(),
        source,
    })?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(TAKEOVER)?;

    let mut header = [0u8; 8];
    let mut fds = Vec::new();
    let mut got = 0;
    // The descriptors ride on the header's first bytes; a short read is finished plainly.
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_LISTENERS))];
    {
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [IoSliceMut::new(&mut header)];
        let msg = rustix::net::recvmsg(
            stream.as_fd(),
            &mut iov,
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )
        .map_err(io::Error::from)?;
        got += msg.bytes;
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(received) = message {
                fds.extend(received);
            }
        }
    }
    if got == 0 {
        return Err(HandoffError::Protocol(
            "the predecessor closed the connection".into(),
        ));
    }
    stream.read_exact(&mut header[got..])?;
    let count = u32::from_be_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let len = u32::from_be_bytes(header[4..].try_into().expect("4 bytes")) as usize;
    if count != fds.len() {
        return Err(HandoffError::Protocol(format!(
            "expected {count} sockets, received {}",
            fds.len()
        )));
    }
    if len > MAX_PAYLOAD {
        return Err(HandoffError::Protocol(format!("payload of {len} bytes")));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body)?;
    let envelope: Envelope = serde_json::from_slice(&body)
        .map_err(|e| HandoffError::Protocol(format!("bad payload: {e}")))?;
    if envelope.addresses.len() != fds.len() {
        return Err(HandoffError::Protocol(
            "addresses and sockets differ in number".into(),
        ));
    }
    let listeners = envelope
        .addresses
        .into_iter()
        .zip(fds)
        .map(|(addr, fd): (SocketAddr, OwnedFd)| (addr, TcpListener::from(fd)))
        .collect();
    stream.set_read_timeout(None)?;
    Ok(Inherited {
        listeners,
        payload: envelope.payload.into_bytes(),
        channel: Predecessor(stream),
    })
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    addresses: Vec<SocketAddr>,
    payload: String,
}

/// The predecessor's side, on a connection accepted from its handoff socket: wait for
/// the successor's request, send `listeners` and `payload`, and return once the
/// successor accepts on them (Ok) — the caller then stops accepting and drains.
pub fn hand_over(
    mut stream: UnixStream,
    listeners: &[(SocketAddr, &TcpListener)],
    payload: &str,
    timeout: Duration,
) -> Result<(), HandoffError> {
    if listeners.len() > MAX_LISTENERS {
        return Err(HandoffError::TooMany);
    }
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut request = [0u8; TAKEOVER.len()];
    stream.read_exact(&mut request)?;
    if request != TAKEOVER {
        return Err(HandoffError::Protocol("not a takeover request".into()));
    }
    let body = serde_json::to_vec(&Envelope {
        addresses: listeners.iter().map(|(a, _)| *a).collect(),
        payload: payload.to_string(),
    })
    .map_err(|e| HandoffError::Protocol(e.to_string()))?;
    let len =
        u32::try_from(body.len()).map_err(|_| HandoffError::Protocol("payload too big".into()))?;
    let mut header = [0u8; 8];
    header[..4].copy_from_slice(&(listeners.len() as u32).to_be_bytes());
    header[4..].copy_from_slice(&len.to_be_bytes());
    let fds: Vec<_> = listeners.iter().map(|(_, l)| l.as_fd()).collect();
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len().max(1)))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(HandoffError::Protocol("cannot attach the sockets".into()));
    }
    let sent = rustix::net::sendmsg(
        stream.as_fd(),
        &[IoSlice::new(&header)],
        &mut control,
        SendFlags::empty(),
    )
    .map_err(io::Error::from)?;
    stream.write_all(&header[sent..])?;
    stream.write_all(&body)?;
    let mut ready = [0u8; READY.len()];
    stream.read_exact(&mut ready)?;
    if ready != READY {
        return Err(HandoffError::Protocol(
            "the successor did not say ready".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn sockets_and_payload_reach_the_successor_and_keep_accepting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("handoff.sock");
        let control = UnixListener::bind(&path).unwrap();
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let b = TcpListener::bind("127.0.0.1:0").unwrap();
        let (addr_a, addr_b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let old = std::thread::spawn(move || {
            let (stream, _) = control.accept().unwrap();
            hand_over(
                stream,
                &[(addr_a, &a), (addr_b, &b)],
                "{\"version\":7}",
                Duration::from_secs(5),
            )
            .unwrap();
            // The predecessor closes its copies: the sockets stay open in the successor.
            drop((a, b));
        });
        let inherited = take_over(&path, Duration::from_secs(5)).unwrap();
        assert_eq!(inherited.payload, b"{\"version\":7}");
        let addrs: Vec<_> = inherited.listeners.iter().map(|(a, _)| *a).collect();
        assert_eq!(addrs, vec![addr_a, addr_b]);
        inherited.channel.ready().unwrap();
        old.join().unwrap();
        for (addr, listener) in &inherited.listeners {
            assert_eq!(listener.local_addr().unwrap(), *addr);
            let _client = std::net::TcpStream::connect(addr).unwrap();
            listener.accept().expect("the inherited socket accepts");
        }
    }

    #[test]
    fn no_predecessor_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = take_over(&dir.path().join("none.sock"), Duration::from_secs(1))
            .err()
            .expect("nothing listens there");
        assert!(err.to_string().contains("no router is listening"), "{err}");
    }
}
