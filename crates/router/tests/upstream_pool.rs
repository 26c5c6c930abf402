//! The router's upstream connections: kept alive and reused, and a connection the
//! upstream closed while it sat idle never costs a request.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use liftoff_router::{Limits, RouteSpec, Router, Sticky};
use support::{client, get};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn spec(stable: &str) -> RouteSpec {
    RouteSpec {
        name: "shop".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        host: None,
        stable: stable.into(),
        candidate: None,
        sticky: Sticky::ClientIp,
        override_header: None,
        health: None,
        salt: Some(7),
    }
}

/// A raw HTTP/1.1 backend that counts the connections it accepted. With
/// `close_after_response`, it closes each connection right after its first response
/// without saying so (no `Connection: close`), the way a server with a short
/// keep-alive timeout does.
async fn counting_backend(close_after_response: bool) -> (String, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicU64::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Relaxed);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // One request head (bodyless GETs only).
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    buf.drain(..end);
                    let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if stream.write_all(reply).await.is_err() {
                        return;
                    }
                    if close_after_response {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_kept_alive_and_reused() {
    let (url, accepted) = counting_backend(false).await;
    let router = Router::start(Limits::default(), 1).unwrap();
    let at = router.upsert_route(spec(&url)).unwrap();
    let client = client();
    for _ in 0..200 {
        assert_eq!(get(&client, at, &[]).await, Ok((200, "ok".to_string())));
    }
    assert_eq!(
        accepted.load(Relaxed),
        1,
        "sequential requests share one connection"
    );

    // 16 at a time: at most 16 more connections, however many requests.
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                assert_eq!(get(&client, at, &[]).await, Ok((200, "ok".to_string())));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let total = accepted.load(Relaxed);
    assert!(
        total <= 17,
        "{total} connections for 1,000 requests at concurrency 16"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_closing_idle_connections_costs_no_request() {
    let (url, accepted) = counting_backend(true).await;
    let router = Router::start(Limits::default(), 1).unwrap();
    let at = router.upsert_route(spec(&url)).unwrap();
    let client = client();
    for i in 0..20 {
        assert_eq!(
            get(&client, at, &[]).await,
            Ok((200, "ok".to_string())),
            "request {i}"
        );
        // The backend's FIN arrives while the connection sits in the pool.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(accepted.load(Relaxed), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_upstream_connections_are_closed_after_the_idle_timeout() {
    let (url, accepted) = counting_backend(false).await;
    let limits = Limits {
        upstream_idle_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let router = Router::start(limits, 1).unwrap();
    let at = router.upsert_route(spec(&url)).unwrap();
    let client = client();
    assert_eq!(get(&client, at, &[]).await, Ok((200, "ok".to_string())));
    // The sweep runs once a second; after it, the pooled connection is gone and the
    // next request opens another.
    support::wait_for(Duration::from_secs(5), || {
        router.idle_upstream_connections() == 0
    })
    .await;
    assert_eq!(get(&client, at, &[]).await, Ok((200, "ok".to_string())));
    assert_eq!(accepted.load(Relaxed), 2);
}
