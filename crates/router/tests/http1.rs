//! The HTTP/1 front end, byte by byte: what RFC 9112 asks of a server and a proxy,
//! seen from a raw client socket.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use liftoff_router::{ErrorSource, Limits, Role, Router};
use support::{echo_backend, route};

async fn echo_router(limits: Limits) -> (Router, SocketAddr) {
    let echo = echo_backend().await;
    let r = Router::start(limits, 1).unwrap();
    let at = r.upsert_route(route("shop", &echo)).unwrap();
    (r, at)
}

fn connect(at: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(at).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Send `request`, then read until the router closes the connection.
async fn exchange(at: SocketAddr, request: &'static [u8]) -> String {
    tokio::task::spawn_blocking(move || {
        let mut s = connect(at);
        s.write_all(request).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .unwrap()
}

/// The bodies of the responses in `text`, in order (each ends the echo line).
fn echoed(text: &str) -> Vec<&str> {
    text.split("\r\n\r\n")
        .skip(1)
        .map(|rest| rest.split("HTTP/1.1").next().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let (_r, at) = echo_router(Limits::default()).await;
    let got = exchange(
        at,
        b"GET /one HTTP/1.1\r\nhost: shop\r\n\r\n\
          POST /two HTTP/1.1\r\nhost: shop\r\ncontent-length: 3\r\n\r\nabc\
          GET /three HTTP/1.1\r\nhost: shop\r\nconnection: close\r\n\r\n",
    )
    .await;
    let bodies = echoed(&got);
    assert_eq!(bodies.len(), 3, "{got}");
    assert!(bodies[0].starts_with("GET /one host=shop"), "{got}");
    assert!(bodies[1].starts_with("POST /two host=shop"), "{got}");
    assert!(bodies[1].ends_with("body=3"), "{got}");
    assert!(bodies[2].starts_with("GET /three host=shop"), "{got}");
    assert!(got.matches("connection: close").count() == 1, "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_needs_exactly_one_host_and_an_absolute_target_brings_its_own() {
    let (_r, at) = echo_router(Limits::default()).await;
    let two = exchange(at, b"GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n").await;
    assert!(two.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{two}");
    let none = exchange(at, b"GET / HTTP/1.1\r\n\r\n").await;
    assert!(none.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{none}");
    // HTTP/1.0 had no Host: the upstream gets its own authority.
    let old = exchange(at, b"GET /old HTTP/1.0\r\n\r\n").await;
    assert!(old.starts_with("HTTP/1.1 200 OK\r\n"), "{old}");
    assert!(
        echoed(&old)[0].starts_with("GET /old host=127.0.0.1:"),
        "{old}"
    );
    let absolute = exchange(
        at,
        b"GET http://shop.example/p?q=1 HTTP/1.1\r\nhost: other\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(
        echoed(&absolute)[0].starts_with("GET /p?q=1 host=shop.example xff=127.0.0.1"),
        "{absolute}"
    );
    let connect = exchange(at, b"CONNECT shop:443 HTTP/1.1\r\nhost: shop:443\r\n\r\n").await;
    assert!(connect.starts_with("HTTP/1.1 405 "), "{connect}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http10_clients_are_closed_unless_they_ask_to_keep_alive() {
    let (_r, at) = echo_router(Limits::default()).await;
    let closed = exchange(at, b"GET /a HTTP/1.0\r\nhost: shop\r\n\r\n").await;
    assert!(closed.contains("\r\nconnection: close\r\n"), "{closed}");
    let kept = exchange(
        at,
        b"GET /a HTTP/1.0\r\nhost: shop\r\nconnection: keep-alive\r\n\r\n\
          GET /b HTTP/1.0\r\nhost: shop\r\n\r\n",
    )
    .await;
    let bodies = echoed(&kept);
    assert_eq!(bodies.len(), 2, "{kept}");
    assert!(kept.contains("\r\nconnection: keep-alive\r\n"), "{kept}");
    assert!(bodies[1].starts_with("GET /b "), "{kept}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let (_r, at) = echo_router(Limits::default()).await;
    let got = tokio::task::spawn_blocking(move || {
        let mut s = connect(at);
        s.write_all(
            b"PUT /up HTTP/1.1\r\nhost: shop\r\nexpect: 100-continue\r\n\
              content-length: 5\r\nconnection: close\r\n\r\n",
        )
        .unwrap();
        // A client that waits for the interim response before sending its body.
        let mut interim = [0u8; 25];
        s.read_exact(&mut interim).unwrap();
        s.write_all(b"hello").unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        (interim, String::from_utf8_lossy(&rest).into_owned())
    })
    .await
    .unwrap();
    assert_eq!(&got.0, b"HTTP/1.1 100 Continue\r\n\r\n");
    assert!(got.1.starts_with("HTTP/1.1 200 OK\r\n"), "{}", got.1);
    assert!(echoed(&got.1)[0].ends_with("body=5"), "{}", got.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_idle_past_the_header_timeout_closes_quietly() {
    let (_r, at) = echo_router(Limits {
        header_read_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    // Idle after a request: closed without a word.
    let idle = exchange(at, b"GET / HTTP/1.1\r\nhost: shop\r\n\r\n").await;
    assert_eq!(idle.matches("HTTP/1.1 ").count(), 1, "{idle}");
    assert!(idle.starts_with("HTTP/1.1 200 OK\r\n"), "{idle}");
    // A second head begun and never finished: told why.
    let slow = exchange(
        at,
        b"GET / HTTP/1.1\r\nhost: shop\r\n\r\nGET / HTTP/1.1\r\nho",
    )
    .await;
    assert!(slow.starts_with("HTTP/1.1 200 OK\r\n"), "{slow}");
    assert!(slow.contains("HTTP/1.1 408 Request Timeout\r\n"), "{slow}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_request_gets_the_length_and_no_body_and_the_connection_goes_on() {
    let (_r, at) = echo_router(Limits::default()).await;
    let got = exchange(
        at,
        b"HEAD /h HTTP/1.1\r\nhost: shop\r\n\r\nGET /g HTTP/1.1\r\nhost: shop\r\nconnection: close\r\n\r\n",
    )
    .await;
    let responses: Vec<&str> = got.split("HTTP/1.1 200 OK\r\n").skip(1).collect();
    assert_eq!(responses.len(), 2, "{got}");
    assert!(responses[0].contains("content-length: "), "{got}");
    assert!(
        responses[0].ends_with("\r\n\r\n"),
        "no body after a HEAD: {got}"
    );
    assert!(responses[1].contains("GET /g host=shop"), "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_the_body_limit_is_refused_while_it_is_still_being_sent() {
    let (_r, at) = echo_router(Limits {
        max_body_bytes: 1024,
        ..Limits::default()
    })
    .await;
    // The head says too much is coming: refused at once, nothing forwarded.
    let file = std::env::temp_dir().join(format!("liftoff-refused-{}", std::process::id()));
    std::fs::write(&file, "x".repeat(4_000_000)).unwrap();
    let data = format!("@{}", file.display());
    let got = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["-s", "-i", "-H", "expect:", "--data-binary", &data])
            .arg(format!("http://{at}/"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let _ = std::fs::remove_file(&file);
    let got = String::from_utf8_lossy(&got.stdout);
    assert!(
        got.starts_with("HTTP/1.1 413 Payload Too Large\r\n"),
        "{got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_before_its_answer_is_counted_and_its_exchange_dropped() {
    let (slow, _, _b) = support::backend("slow")
        .delay(Duration::from_secs(30))
        .run()
        .await;
    let r = Router::start(Limits::default(), 1).unwrap();
    let at = r.upsert_route(route("shop", &slow)).unwrap();
    let in_flight = |r: &Router| r.status()[0].versions[0].in_flight;
    let mut s = connect(at);
    s.write_all(b"GET / HTTP/1.1\r\nhost: shop\r\n\r\n")
        .unwrap();
    support::wait_for(Duration::from_secs(5), || in_flight(&r) == 1).await;
    drop(s);
    support::wait_for(Duration::from_secs(5), || in_flight(&r) == 0).await;
    let w = r.window("shop", Role::Stable, 10).unwrap().unwrap();
    assert_eq!(w.errors[ErrorSource::ClientAbort as usize], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_whose_framing_cannot_be_trusted_is_refused() {
    let (_r, at) = echo_router(Limits::default()).await;
    for request in [
        &b"POST / HTTP/1.1\r\nhost: shop\r\ncontent-length: 3, 4\r\n\r\nabcd"[..],
        b"POST / HTTP/1.1\r\nhost: shop\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd",
        b"POST / HTTP/1.1\r\nhost: shop\r\ncontent-length: +3\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nhost: shop\r\ntransfer-encoding: gzip\r\n\r\nabc",
    ] {
        let got = exchange(at, request).await;
        assert!(got.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{got}");
    }
    let same = exchange(
        at,
        b"POST / HTTP/1.1\r\nhost: shop\r\ncontent-length: 3, 3\r\nconnection: close\r\n\r\nabc",
    )
    .await;
    assert!(echoed(&same)[0].ends_with("body=3"), "{same}");
}
