//! A route's own timeouts: an upstream that never answers gets 504 after the route's
//! response timeout (not the router's 30 s), counted as the version's timeout; a
//! response body that goes quiet is cut after the route's idle timeout.

mod support;

use std::time::{Duration, Instant};

use liftoff_router::snapshot::{Instances, RouteConfig, Snapshot, StickyConfig, TimeoutsConfig};
use liftoff_router::{ErrorSource, Limits, Role, Router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An upstream that reads each request and then writes `reply`, and nothing more,
/// holding the connection open.
async fn stalling(reply: &'static [u8]) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(reply).await;
                tokio::time::sleep(Duration::from_secs(60)).await;
            });
        }
    });
    format!("http://{addr}")
}

fn router_for(upstream: &str) -> (Router, std::net::SocketAddr) {
    let router = Router::start(Limits::default(), 2).unwrap();
    router
        .apply(&Snapshot {
            version: 1,
            routes: vec![RouteConfig {
                name: "slow".into(),
                listen: "127.0.0.1:0".parse().unwrap(),
                host: None,
                stable: Instances::one(upstream),
                candidate: None,
                weight_bp: 0,
                salt: 1,
                sticky: StickyConfig::None,
                version_override: None,
                health: None,
                maintenance: None,
                timeouts: Some(TimeoutsConfig {
                    connect_ms: Some(500),
                    response_ms: Some(300),
                    idle_ms: Some(300),
                }),
                tls: None,
                upstreams: None,
            }],
        })
        .unwrap();
    let at = router.listening()[0];
    (router, at)
}

async fn exchange(at: std::net::SocketAddr) -> (String, Duration) {
    let started = Instant::now();
    let mut c = tokio::net::TcpStream::connect(at).await.unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), c.read_to_end(&mut got))
        .await
        .expect("the router held the client past every timeout")
        .ok();
    (
        String::from_utf8_lossy(&got).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_response_head_within_the_routes_timeout_is_a_504_counted_as_a_timeout() {
    let (router, at) = router_for(&stalling(b"").await);
    let (reply, took) = exchange(at).await;
    assert!(reply.starts_with("HTTP/1.1 504"), "{reply}");
    assert!(
        took < Duration::from_secs(5),
        "{took:?}: the route's 300 ms, not 30 s"
    );
    let status = router.status().remove(0);
    let stable = status
        .versions
        .iter()
        .find(|v| v.role == Role::Stable)
        .unwrap();
    assert_eq!(stable.last_60s.errors[ErrorSource::Timeout as usize], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_body_that_goes_quiet_is_cut_after_the_routes_idle_timeout() {
    let upstream =
        stalling(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n").await;
    let (_router, at) = router_for(&upstream);
    let (reply, took) = exchange(at).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("hello"), "{reply}");
    assert!(
        !reply.ends_with("0\r\n\r\n"),
        "a cut body is not passed off as complete: {reply:?}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
}
