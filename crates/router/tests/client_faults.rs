//! A request body the client botches (malformed, cut short, stalled) is the client's
//! fault: it gets 400 or 408 (or nothing, if it left) and the version it was routed to
//! is charged no error, so no client can roll a healthy release back. An upstream that
//! answers before the body is complete is heard at once.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use liftoff_router::{ErrorSource, Limits, Role, Router, Window};
use support::{echo_backend, route, wait_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn limits() -> Limits {
    Limits {
        request_timeout: Duration::from_secs(5),
        body_read_timeout: Duration::from_millis(300),
        ..Limits::default()
    }
}

/// A route whose every request goes to the candidate, `upstream`.
fn candidate_router(limits: Limits, upstream: &str) -> (Router, SocketAddr) {
    let r = Router::start(limits, 2).unwrap();
    let at = r
        .upsert_route(liftoff_router::RouteSpec {
            candidate: Some(upstream.into()),
            ..route("shop", &support::closed_port())
        })
        .unwrap();
    r.set_weight("shop", 10_000).unwrap();
    (r, at)
}

fn connect(at: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(at).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Everything the router sends until it closes the connection.
fn read_all(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn candidate(r: &Router) -> Window {
    r.window("shop", Role::Candidate, 10).unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_chunked_clients_get_400_and_the_candidate_no_error() {
    let (r, at) = candidate_router(limits(), &echo_backend().await);
    let replies = tokio::task::spawn_blocking(move || {
        let head = b"POST / HTTP/1.1\r\nHost: x\r\nX-Liftoff-Version: candidate\r\n\
                     Transfer-Encoding: chunked\r\n\r\n";
        (0..300)
            .map(|i| {
                let mut s = connect(at);
                s.write_all(head).unwrap();
                if i % 3 == 1 {
                    // The head reaches the upstream before the bad chunk arrives.
                    std::thread::sleep(Duration::from_millis(5));
                }
                let bad: &[u8] = if i % 3 == 2 {
                    b"5\r\nhelloXX" // data not followed by CRLF
                } else {
                    b"ZZ\r\n"
                };
                s.write_all(bad).unwrap();
                read_all(&mut s)
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for reply in &replies {
        assert!(reply.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{reply}");
        assert!(reply.contains("connection: close\r\n"), "{reply}");
    }
    let w = candidate(&r);
    assert_eq!(w.failed(), 0, "{:?}", w.errors);
    assert_eq!(w.error_rate(), 0.0);
    assert_eq!(w.errors[ErrorSource::ClientAbort as usize], 300);
    assert_eq!(w.status[4], 0, "no 5xx counted to the candidate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_leave_mid_body_are_client_aborts() {
    let (r, at) = candidate_router(limits(), &echo_backend().await);
    tokio::task::spawn_blocking(move || {
        let mut s = connect(at);
        s.write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n0123456789")
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        drop(s);
        let mut s = connect(at);
        s.write_all(b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel")
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        drop(s);
    })
    .await
    .unwrap();
    wait_for(Duration::from_secs(5), || {
        r.status()[0].versions[1].in_flight == 0 && candidate(&r).requests == 2
    })
    .await;
    let w = candidate(&r);
    assert_eq!(w.failed(), 0, "{:?}", w.errors);
    assert_eq!(w.errors[ErrorSource::ClientAbort as usize], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_gets_408_from_the_body_timeout_not_504_from_the_upstream() {
    let (r, at) = candidate_router(limits(), &echo_backend().await);
    let (reply, took) = tokio::task::spawn_blocking(move || {
        let mut s = connect(at);
        let started = Instant::now();
        s.write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n0123456789")
            .unwrap();
        (read_all(&mut s), started.elapsed())
    })
    .await
    .unwrap();
    assert!(
        reply.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{reply}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
    let w = candidate(&r);
    assert_eq!(w.failed(), 0, "{:?}", w.errors);
    assert_eq!(
        (w.errors[ErrorSource::ClientAbort as usize], w.status[3]),
        (1, 1)
    );
}

/// Answers `405` to a POST as soon as its head arrives (reading none of its body, then
/// draining the connection until it closes), and `200` to anything else. Counts the
/// connections it accepted.
async fn early_answer_backend() -> (String, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicU64::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            counter.fetch_add(1, Relaxed);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    let post = buf.starts_with(b"POST");
                    buf.drain(..end);
                    if post {
                        let _ = s
                            .write_all(
                                b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 3\r\n\r\nno\n",
                            )
                            .await;
                        while matches!(s.read(&mut chunk).await, Ok(n) if n > 0) {}
                        return;
                    }
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n")
                        .await;
                }
            });
        }
    });
    (format!("http://{addr}"), accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_answer_reaches_a_stalled_uploader_at_once_and_the_connection_closes() {
    let (upstream, accepted) = early_answer_backend().await;
    let (r, at) = candidate_router(
        Limits {
            body_read_timeout: Duration::from_secs(5),
            ..limits()
        },
        &upstream,
    );
    let (reply, took) = tokio::task::spawn_blocking(move || {
        let mut s = connect(at);
        let started = Instant::now();
        s.write_all(b"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n")
            .unwrap();
        s.write_all(&[b'x'; 1000]).unwrap();
        // ...and nothing more: the uploader stalls.
        (read_all(&mut s), started.elapsed())
    })
    .await
    .unwrap();
    assert!(
        reply.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{reply}"
    );
    assert!(reply.ends_with("\r\n\r\nno\n"), "{reply}");
    assert!(reply.contains("connection: close\r\n"), "{reply}");
    assert!(
        took < Duration::from_secs(2),
        "the answer waited {took:?} for a body that never came"
    );
    let w = candidate(&r);
    assert_eq!((w.requests, w.status[3], w.failed()), (1, 1, 0));

    // The upstream connection the body was cut short on is not used again.
    let next = tokio::task::spawn_blocking(move || {
        let mut s = connect(at);
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .unwrap();
        read_all(&mut s)
    })
    .await
    .unwrap();
    assert!(next.starts_with("HTTP/1.1 200 OK\r\n"), "{next}");
    assert_eq!(accepted.load(Relaxed), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_stops_taking_the_body_is_the_upstreams_timeout() {
    // Accepts, then neither reads nor answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    let (r, at) = candidate_router(
        Limits {
            request_timeout: Duration::from_millis(300),
            body_read_timeout: Duration::from_secs(5),
            ..limits()
        },
        &upstream,
    );
    let reply = tokio::task::spawn_blocking(move || {
        let mut s = connect(at);
        let body = vec![b'x'; 16 << 20];
        s.write_all(
            format!(
                "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .unwrap();
        let _ = s.write_all(&body);
        read_all(&mut s)
    })
    .await
    .unwrap();
    assert!(
        reply.starts_with("HTTP/1.1 504 Gateway Timeout\r\n"),
        "{reply}"
    );
    let w = candidate(&r);
    assert_eq!(w.errors[ErrorSource::Timeout as usize], 1, "{:?}", w.errors);
    assert_eq!(w.errors[ErrorSource::ClientAbort as usize], 0);
}
