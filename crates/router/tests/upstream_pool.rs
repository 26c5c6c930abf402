//! The router's upstream connections: kept alive and reused, and a connection the
//! upstream closed while it sat idle never costs a request.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use liftoff_router::{Limits, Router};
use support::{client, get, route};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The next request head on `stream` (lowercased), taken from the front of `buf`;
/// `None` once the connection ends.
async fn read_head(stream: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
    buf.drain(..end);
    Some(head)
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
                loop {
                    // One request head (bodyless GETs only).
                    if read_head(&mut stream, &mut buf).await.is_none() {
                        return;
                    }
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
    let at = router.upsert_route(route("shop", &url)).unwrap();
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
    let at = router.upsert_route(route("shop", &url)).unwrap();
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
    let at = router.upsert_route(route("shop", &url)).unwrap();
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

/// A raw backend answering by path with each way HTTP/1 can delimit a response.
async fn framing_backend() -> (String, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicU64::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Relaxed);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Some(head) = read_head(&mut stream, &mut buf).await else {
                        return;
                    };
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    while buf.len() < length {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body: Vec<u8> = buf.drain(..length).collect();
                    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                    let reply: Vec<u8> = match path.as_str() {
                        "/chunked" => b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                            5;note=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: t\r\n\r\n"
                            .to_vec(),
                        "/continue" => b"HTTP/1.1 100 Continue\r\n\r\n\
                            HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\ndone"
                            .to_vec(),
                        "/head" => b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n".to_vec(),
                        "/big" => {
                            let mut r =
                                b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n".to_vec();
                            r.extend(std::iter::repeat_n(b'x', 1_000_000));
                            r
                        }
                        "/echo" => {
                            let mut r = format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
                                body.len()
                            )
                            .into_bytes();
                            r.extend_from_slice(&body);
                            r
                        }
                        "/close" => b"HTTP/1.0 200 OK\r\n\r\nuntil close".to_vec(),
                        "/short" => b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc".to_vec(),
                        "/cut" => {
                            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n"
                                .to_vec()
                        }
                        _ => b"NOT HTTP AT ALL\r\n\r\n".to_vec(),
                    };
                    if stream.write_all(&reply).await.is_err() {
                        return;
                    }
                    if matches!(path.as_str(), "/close" | "/short" | "/cut" | "/garbage") {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), accepted)
}

/// curl through the router: (status, body); a transfer error is status 0.
async fn curl(args: Vec<String>) -> (u16, String) {
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("curl")
            .args(["-s", "-o", "-", "-w", "\n%{http_code}"])
            .args(&args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap();
        let code = if out.status.success() {
            code.parse().unwrap()
        } else {
            0
        };
        (code, body.to_string())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_way_an_upstream_delimits_a_response_reaches_the_client_intact() {
    let (url, accepted) = framing_backend().await;
    let router = Router::start(Limits::default(), 1).unwrap();
    let at = router.upsert_route(route("shop", &url)).unwrap();
    let url = |path: &str| format!("http://{at}{path}");
    for _ in 0..3 {
        assert_eq!(
            curl(vec![url("/chunked")]).await,
            (200, "hello world".into())
        );
        assert_eq!(curl(vec![url("/continue")]).await, (200, "done".into()));
    }
    // An HTTP/1.0 client cannot take chunks: the body ends with the connection, even
    // when the client asked to keep it.
    let http10 = [
        "--http1.0",
        "-H",
        "connection: keep-alive",
        "--max-time",
        "3",
    ];
    let mut args: Vec<String> = http10.iter().map(|a| a.to_string()).collect();
    args.push(url("/chunked"));
    assert_eq!(curl(args).await, (200, "hello world".into()));
    let (code, head) = curl(vec!["-I".into(), url("/head")]).await;
    assert_eq!(code, 200);
    assert!(
        head.to_lowercase().contains("content-length: 1000"),
        "{head}"
    );
    let (code, big) = curl(vec![url("/big")]).await;
    assert_eq!((code, big.len()), (200, 1_000_000));
    let upload = "y".repeat(300_000);
    let file = std::env::temp_dir().join(format!("liftoff-echo-{}", std::process::id()));
    std::fs::write(&file, &upload).unwrap();
    let sent = curl(vec![
        "--data-binary".into(),
        format!("@{}", file.display()),
        url("/echo"),
    ])
    .await;
    let _ = std::fs::remove_file(&file);
    assert_eq!(
        sent,
        (200, upload),
        "a body with a content-length goes through"
    );
    assert_eq!(
        accepted.load(Relaxed),
        1,
        "every response above left the connection reusable"
    );
    assert_eq!(curl(vec![url("/close")]).await, (200, "until close".into()));
    assert_eq!(
        curl(vec![url("/chunked")]).await,
        (200, "hello world".into())
    );
    assert_eq!(
        accepted.load(Relaxed),
        2,
        "a body read to the close ends the connection"
    );
    assert_eq!(curl(vec![url("/garbage")]).await.0, 502);
    let (code, _) = curl(vec![url("/short")]).await;
    assert_eq!(
        code, 0,
        "a body cut short is an error to the client, not a short 200"
    );
    let (code, _) = curl(vec![url("/cut")]).await;
    assert_eq!(
        code, 0,
        "a chunked body cut short is not passed on as complete"
    );
    assert_eq!(
        curl(vec![url("/chunked")]).await,
        (200, "hello world".into())
    );
}
