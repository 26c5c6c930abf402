//! A draining router lets in-flight requests finish and sends its idle clients away
//! long before the drain deadline: it never holds a restart for as long as a quiet
//! keep-alive client cares to stay.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use liftoff_router::{Limits, Router};
use support::{backend, route};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const GET: &[u8] = b"GET /checkout HTTP/1.1\r\nHost: shop\r\n\r\n";

/// Read one response with a `Content-Length` body; return its head.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed before a whole response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = text[..end].to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return head;
            }
        }
    }
}

/// What a connection receives until it closes.
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut rest))
        .await
        .expect("the router never closed the connection")
        .unwrap();
    rest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_finishes_requests_in_flight_and_closes_idle_clients_at_once() {
    let (slow, _, _b) = backend("stable")
        .delay(Duration::from_millis(300))
        .run()
        .await;
    let router = std::sync::Arc::new(Router::start(Limits::default(), 2).unwrap());
    let at = router.upsert_route(route("shop", &slow)).unwrap();

    // A keep-alive client that has had its answer and is now quiet.
    let mut idle = TcpStream::connect(at).await.unwrap();
    idle.write_all(GET).await.unwrap();
    let head = read_response(&mut idle).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    // A client that connected and has not said anything yet.
    let mut silent = TcpStream::connect(at).await.unwrap();
    // An HTTP/2 client, also quiet between requests.
    let h2 = TcpStream::connect(at).await.unwrap();
    let (mut sender, h2_conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(h2))
            .await
            .unwrap();
    let h2_conn = tokio::spawn(h2_conn);
    let response = sender
        .send_request(
            http::Request::get(format!("http://{at}/checkout"))
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.unwrap();
    // A request in flight when the drain starts.
    let mut busy = TcpStream::connect(at).await.unwrap();
    busy.write_all(GET).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;

    let draining = router.clone();
    // The deadline is far away: only closing idle clients lets the drain end early.
    let drain = std::thread::spawn(move || draining.drain(Duration::from_secs(30)));

    let head = read_response(&mut busy).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("connection: close"),
        "a request in flight is answered and told to go elsewhere: {head}"
    );
    assert_eq!(read_to_close(&mut busy).await, b"");
    assert_eq!(
        read_to_close(&mut idle).await,
        b"",
        "an idle keep-alive client is closed quietly, without an error response"
    );
    assert_eq!(
        read_to_close(&mut silent).await,
        b"",
        "a silent client is closed quietly, not told 408"
    );
    tokio::time::timeout(Duration::from_secs(20), h2_conn)
        .await
        .expect("an HTTP/2 client is sent GOAWAY and its connection ends")
        .unwrap()
        .expect("GOAWAY is a graceful end, not a connection error");

    let open = tokio::task::spawn_blocking(move || drain.join().unwrap())
        .await
        .unwrap();
    assert_eq!(open, 0, "no connection was left for the drain deadline");
}
