//! Test backends and a load generator, on port 0, in-process.
#![allow(dead_code)]

pub mod certs;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// A backend that answers its name, failing every `fail_every`-th request with 500.
#[derive(Clone)]
pub struct Backend {
    pub name: &'static str,
    pub fail_every: u64,
    pub delay: Duration,
}

pub fn backend(name: &'static str) -> Backend {
    Backend {
        name,
        fail_every: 0,
        delay: Duration::ZERO,
    }
}

impl Backend {
    pub fn fail_every(mut self, n: u64) -> Self {
        self.fail_every = n;
        self
    }

    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }

    /// Serve until the returned handle is dropped. Returns `http://addr` and the count
    /// of requests served.
    pub async fn run(self) -> (String, Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(AtomicU64::new(0));
        let counter = served.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let me = self.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |_req: Request<Incoming>| {
                        let me = me.clone();
                        let n = counter.fetch_add(1, Relaxed) + 1;
                        async move {
                            if !me.delay.is_zero() {
                                tokio::time::sleep(me.delay).await;
                            }
                            let status = if me.fail_every > 0 && n.is_multiple_of(me.fail_every) {
                                StatusCode::INTERNAL_SERVER_ERROR
                            } else {
                                StatusCode::OK
                            };
                            let mut resp = Response::new(Full::new(Bytes::from(me.name)));
                            *resp.status_mut() = status;
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        (format!("http://{addr}"), served, task)
    }
}

/// A route named `name` with one upstream, no split, no sticky key.
pub fn route(name: &str, stable: &str) -> liftoff_router::RouteSpec {
    liftoff_router::RouteSpec {
        name: name.into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        host: None,
        stable: stable.into(),
        candidate: None,
        sticky: liftoff_router::Sticky::None,
        version_override: None,
        health: None,
        salt: None,
    }
}

/// An address nothing listens on.
pub fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

pub type TestClient = Client<HttpConnector, Empty<Bytes>>;

pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// GET through the router: status and body, or the client error.
pub async fn get(
    client: &TestClient,
    at: SocketAddr,
    headers: &[(&str, &str)],
) -> Result<(u16, String), String> {
    let mut req = Request::get(format!("http://{at}/checkout"))
        .body(Empty::new())
        .unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let resp = client.request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[derive(Default)]
pub struct LoadReport {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    pub failures: std::sync::Mutex<Vec<String>>,
}

/// `concurrency` workers sending GETs back to back until `stop` is set.
pub fn load(
    at: SocketAddr,
    concurrency: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (Arc<LoadReport>, Vec<tokio::task::JoinHandle<()>>) {
    let report = Arc::new(LoadReport::default());
    let client = client();
    let workers = (0..concurrency)
        .map(|i| {
            let (report, stop, client) = (report.clone(), stop.clone(), client.clone());
            tokio::spawn(async move {
                let user = format!("user-{i}");
                while !stop.load(Relaxed) {
                    match get(&client, at, &[("x-user-id", &user)]).await {
                        Ok((200, _)) => {
                            report.ok.fetch_add(1, Relaxed);
                        }
                        other => {
                            report.failed.fetch_add(1, Relaxed);
                            report.failures.lock().unwrap().push(format!("{other:?}"));
                        }
                    }
                }
            })
        })
        .collect();
    (report, workers)
}

/// Poll `ready` every 20 ms until it holds; panics after `limit`.
pub async fn wait_for(limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !ready() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A backend that answers with what it was sent: method, path, the forwarding
/// fields, `x-hop`, and the body's length.
pub async fn echo_backend() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        use http_body_util::BodyExt;
                        let h = req.headers().clone();
                        let get = |n: &str| {
                            h.get(n)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("-")
                                .to_string()
                        };
                        let head = format!(
                            "{} {} host={} xff={} proto={} xhost={} fwd={} conn={}",
                            req.method(),
                            req.uri(),
                            get("host"),
                            get("x-forwarded-for"),
                            get("x-forwarded-proto"),
                            get("x-forwarded-host"),
                            get("forwarded"),
                            get("x-hop"),
                        );
                        // A client cut short by the router leaves a body cut short here.
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let text = format!("{head} body={}", body.len());
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from(text)),
                        ))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}
