//! Malformed, oversized and slow clients, and broken upstreams, get the right status
//! while a well-behaved client in parallel sees no failure.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use liftoff_router::{ErrorSource, Limits, Role, Router};
use support::{backend, load, route};

fn limits() -> Limits {
    Limits {
        request_timeout: Duration::from_millis(400),
        header_read_timeout: Duration::from_millis(300),
        max_header_bytes: 16 * 1024,
        max_body_bytes: 1024,
        ..Limits::default()
    }
}

/// Send raw bytes, read the status line (or nothing, if the connection just closed).
fn raw(at: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(at).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(request);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

/// An upstream that accepts and then closes (`reset`) or says nothing (`stall`).
fn broken_upstream(stall: bool) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in l.incoming().flatten() {
            if stall {
                held.push(conn);
            } else {
                let mut conn = conn;
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf);
                drop(conn);
            }
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_clients_and_bad_upstreams_get_the_right_status_and_hurt_nobody_else() {
    let (good, _, _g) = backend("good").run().await;
    let r = Router::start(limits(), 2).unwrap();
    let at = r.upsert_route(route("good", &good)).unwrap();
    let reset_at = r
        .upsert_route(route("reset", &broken_upstream(false)))
        .unwrap();
    let stall_at = r
        .upsert_route(route("stall", &broken_upstream(true)))
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (report, workers) = load(at, 16, stop.clone());

    let checks = tokio::task::spawn_blocking(move || {
        let malformed = raw(at, b"GARBAGE / NOT-HTTP\r\n\r\n");
        let huge = format!(
            "GET / HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
            "a".repeat(40 * 1024)
        );
        let oversized = raw(at, huge.as_bytes());
        let body = raw(
            at,
            b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5000\r\n\r\n",
        );
        // Slow loris: half a request head, then nothing.
        let slow = raw(at, b"GET / HTTP/1.1\r\nhost: x\r\nx-a: ");
        let reset = raw(reset_at, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        let stall = raw(stall_at, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        (malformed, oversized, body, slow, reset, stall)
    })
    .await
    .unwrap();
    stop.store(true, Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let (malformed, oversized, body, slow, reset, stall) = checks;
    assert_eq!(malformed, "HTTP/1.1 400 Bad Request");
    assert_eq!(oversized, "HTTP/1.1 431 Request Header Fields Too Large");
    assert_eq!(body, "HTTP/1.1 413 Payload Too Large");
    assert_eq!(slow, "HTTP/1.1 408 Request Timeout");
    assert_eq!(reset, "HTTP/1.1 502 Bad Gateway");
    assert_eq!(stall, "HTTP/1.1 504 Gateway Timeout");
    assert!(report.ok.load(Relaxed) > 100);
    assert_eq!(
        report.failed.load(Relaxed),
        0,
        "{:?}",
        report.failures.lock().unwrap()
    );

    let w = r.window("reset", Role::Stable, 10).unwrap().unwrap();
    assert_eq!(
        w.errors[ErrorSource::Connect as usize],
        1,
        "a reset upstream is not a 5xx answer"
    );
    let w = r.window("stall", Role::Stable, 10).unwrap().unwrap();
    assert_eq!(w.errors[ErrorSource::Timeout as usize], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_holds_and_slow_clients_are_evicted() {
    let (good, _, _g) = backend("good").run().await;
    let r = Router::start(
        Limits {
            max_connections: 4,
            ..limits()
        },
        2,
    )
    .unwrap();
    let at = r.upsert_route(route("good", &good)).unwrap();
    // Four silent connections take every slot...
    let idle: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(at).unwrap()).collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // ...a fifth client waits in the backlog, and is served once the slow ones are
    // evicted by the header timeout instead of being refused.
    let started = std::time::Instant::now();
    let got = tokio::task::spawn_blocking(move || {
        raw(
            at,
            b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
    })
    .await
    .unwrap();
    assert_eq!(got, "HTTP/1.1 200 OK");
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "it had to wait for a slot"
    );
    drop(idle);
}
