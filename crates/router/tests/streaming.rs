//! Server-sent events go through as they are sent: each event reaches the client when
//! the upstream writes it, never held for the rest of the body.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use liftoff_router::{Limits, Router};
use support::route;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const EVENTS: usize = 20;

/// An upstream that answers one event-stream: an event every 100 ms, chunked, each
/// sent time recorded.
async fn event_source() -> (String, Arc<Mutex<Vec<Instant>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let times = sent.clone();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            s.read_exact(&mut b).await.unwrap();
            head.push(b[0]);
        }
        s.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
        )
        .await
        .unwrap();
        for i in 0..EVENTS {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let event = format!("data: {i}\n\n");
            times.lock().unwrap().push(Instant::now());
            s.write_all(format!("{:x}\r\n{event}\r\n", event.len()).as_bytes())
                .await
                .unwrap();
        }
        s.write_all(b"0\r\n\r\n").await.unwrap();
    });
    (format!("http://{addr}"), sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_reach_the_client_as_they_are_sent() {
    let (upstream, sent) = event_source().await;
    let router = Router::start(Limits::default(), 2).unwrap();
    let at = router.upsert_route(route("events", &upstream)).unwrap();

    let mut c = tokio::net::TcpStream::connect(at).await.unwrap();
    c.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    let mut arrived = Vec::new();
    while arrived.len() < EVENTS {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf))
            .await
            .expect("an event is overdue")
            .unwrap();
        assert!(n > 0, "closed after {} events: {text}", arrived.len());
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        while text.contains(&format!("data: {}\n\n", arrived.len())) {
            arrived.push(Instant::now());
        }
    }
    let sent = sent.lock().unwrap().clone();
    let delays: Vec<Duration> = arrived
        .iter()
        .zip(&sent)
        .map(|(a, s)| a.saturating_duration_since(*s))
        .collect();
    let worst = delays.iter().max().unwrap();
    // Generous for a loaded 2-core machine (the added latency itself is well under a
    // millisecond).
    // Held to the end of the body, the first event would wait some 1.9 s.
    assert!(
        *worst < Duration::from_millis(80),
        "an event reached the client {worst:?} after it was sent: {delays:?}"
    );
}
