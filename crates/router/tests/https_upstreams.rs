//! HTTPS upstreams, with certificates made by the openssl command and a rustls + hyper
//! instance in the test that records what it saw: the router verifies the instance
//! against the route's `ca` (SNI = the instance's host name; an IP address is checked
//! against the certificate's IP names), reuses its connections, sends it the Host the
//! route's policy says, and treats a certificate it cannot verify as an instance it
//! cannot reach (health check reason, 502 counted as `connect`, the request tried on
//! the next instance).

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use liftoff_router::snapshot::{
    HealthConfig, HostPolicy, Instances, RouteConfig, Snapshot, StickyConfig, UpstreamsConfig,
};
use liftoff_router::{ErrorSource, Limits, Role, Router};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use support::certs::{ca, leaf};

/// A certificate for `localhost` and `127.0.0.1` signed by the CA in `dir`:
/// `instance.pem`, `instance.key`.
fn instance_cert(dir: &Path) -> (PathBuf, PathBuf) {
    leaf(
        dir,
        "liftoff test instance",
        "DNS:localhost,IP:127.0.0.1",
        "instance",
    )
}

/// What the HTTPS instance saw.
#[derive(Default)]
struct Seen {
    /// TCP connections accepted.
    accepted: AtomicU64,
    /// Requests answered.
    requests: AtomicU64,
    /// The SNI of each completed handshake.
    sni: Mutex<Vec<Option<String>>>,
}

/// An HTTPS instance on 127.0.0.1: answers `host=<Host>;xfh=<X-Forwarded-Host>`.
async fn https_instance(cert: &Path, key: &Path) -> (u16, Arc<Seen>, tokio::task::JoinHandle<()>) {
    let chain = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    let seen2 = seen.clone();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            seen2.accepted.fetch_add(1, Relaxed);
            let (acceptor, seen) = (acceptor.clone(), seen2.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let sni = tls.get_ref().1.server_name().map(String::from);
                seen.sni.lock().unwrap().push(sni);
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    seen.requests.fetch_add(1, Relaxed);
                    let field = |name: &str| {
                        req.headers()
                            .get(name)
                            .map(|v| v.to_str().unwrap().to_string())
                            .unwrap_or_default()
                    };
                    let body = format!("host={};xfh={}", field("host"), field("x-forwarded-host"));
                    async move {
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                            body,
                        ))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (port, seen, task)
}

fn route(upstream: &str, ca: Option<&Path>, host: HostPolicy) -> RouteConfig {
    RouteConfig {
        name: "shop".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        host: None,
        stable: Instances::one(upstream),
        candidate: None,
        weight_bp: 0,
        salt: 7,
        sticky: StickyConfig::None,
        version_override: None,
        health: None,
        maintenance: None,
        timeouts: None,
        tls: None,
        upstreams: Some(UpstreamsConfig {
            ca: ca.map(|p| p.display().to_string()),
            host,
        }),
    }
}

fn snapshot(version: u64, routes: Vec<RouteConfig>) -> Snapshot {
    Snapshot { version, routes }
}

struct Setup {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    port: u16,
    seen: Arc<Seen>,
    _instance: tokio::task::JoinHandle<()>,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca(dir.path(), "liftoff test CA");
    let (cert, key) = instance_cert(dir.path());
    let (port, seen, instance) = https_instance(&cert, &key).await;
    Setup {
        _dir: dir,
        ca,
        port,
        seen,
        _instance: instance,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_instance_is_verified_by_its_name_and_its_connections_are_reused() {
    let s = setup().await;
    let router = Router::start(Limits::default(), 1).unwrap();
    let url = format!("https://localhost:{}", s.port);
    router
        .apply(&snapshot(
            1,
            vec![route(&url, Some(&s.ca), HostPolicy::Client)],
        ))
        .unwrap();
    let at = router.listening()[0];
    let client = support::client();
    for i in 0..50 {
        let (status, body) = support::get(&client, at, &[]).await.unwrap();
        assert_eq!(status, 200, "request {i}: {body}");
    }
    assert_eq!(s.seen.requests.load(Relaxed), 50);
    let accepted = s.seen.accepted.load(Relaxed);
    assert!(
        (1..=2).contains(&accepted),
        "50 sequential requests took {accepted} connections"
    );
    let sni = s.seen.sni.lock().unwrap().clone();
    assert!(
        !sni.is_empty() && sni.iter().all(|n| n.as_deref() == Some("localhost")),
        "{sni:?}"
    );

    // By address: no SNI, the certificate's IP name is what is verified.
    let url = format!("https://127.0.0.1:{}", s.port);
    router
        .apply(&snapshot(
            2,
            vec![route(&url, Some(&s.ca), HostPolicy::Client)],
        ))
        .unwrap();
    let (status, body) = support::get(&client, at, &[]).await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(s.seen.sni.lock().unwrap().last().cloned(), Some(None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_whose_certificate_does_not_verify_is_unhealthy_and_unreachable() {
    let s = setup().await;
    let other = tempfile::tempdir().unwrap();
    let wrong_ca = ca(other.path(), "another CA");
    let router = Router::start(Limits::default(), 1).unwrap();
    let url = format!("https://localhost:{}", s.port);
    router
        .apply(&snapshot(
            1,
            vec![
                RouteConfig {
                    health: Some(HealthConfig {
                        path: "/health".into(),
                        interval_ms: 50,
                        timeout_ms: 1000,
                        healthy_threshold: 1,
                        unhealthy_threshold: 1,
                    }),
                    ..route(&url, Some(&wrong_ca), HostPolicy::Client)
                },
                // The same URL trusted with the right CA: a pool of its own.
                RouteConfig {
                    name: "trusting".into(),
                    ..route(&url, Some(&s.ca), HostPolicy::Client)
                },
            ],
        ))
        .unwrap();
    let listen = |name: &str| {
        let status = router.status();
        status.iter().find(|r| r.name == name).unwrap().listen
    };
    let (at, trusting) = (listen("shop"), listen("trusting"));
    let (status, body) = support::get(&support::client(), trusting, &[])
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    support::wait_for(Duration::from_secs(5), || {
        router
            .status()
            .iter()
            .find(|r| r.name == "shop")
            .unwrap()
            .versions[0]
            .instances[0]
            .health
            .last_error
            .is_some()
    })
    .await;
    let status = router.status();
    let instance = &status.iter().find(|r| r.name == "shop").unwrap().versions[0].instances[0];
    assert!(!instance.health.healthy, "{instance:?}");
    let reason = instance.health.last_error.clone().unwrap();
    assert_eq!(
        reason, "TLS: invalid peer certificate: UnknownIssuer",
        "{instance:?}"
    );

    let (status, body) = support::get(&support::client(), at, &[]).await.unwrap();
    assert_eq!(status, 502, "{body}");
    let w = router.window("shop", Role::Stable, 10).unwrap().unwrap();
    assert_eq!(w.errors[ErrorSource::Connect as usize], 1, "{w:?}");
    assert_eq!(
        s.seen.requests.load(Relaxed),
        1,
        "only the trusting route's request got through"
    );
    assert!(s.seen.accepted.load(Relaxed) > 0, "handshakes were tried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_policy_sends_the_clients_host_or_the_instances_own() {
    let s = setup().await;
    let router = Router::start(Limits::default(), 1).unwrap();
    let url = format!("https://localhost:{}", s.port);
    let client = support::client();
    let mut bodies = Vec::new();
    for (version, policy) in [(1, HostPolicy::Instance), (2, HostPolicy::Client)] {
        router
            .apply(&snapshot(version, vec![route(&url, Some(&s.ca), policy)]))
            .unwrap();
        let at = router.listening()[0];
        let (status, body) = support::get(&client, at, &[("host", "shop.example")])
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        bodies.push(body);
    }
    assert_eq!(
        bodies,
        [
            format!("host=localhost:{};xfh=shop.example", s.port),
            "host=shop.example;xfh=shop.example".to_string(),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_naming_a_missing_ca_is_refused_and_the_old_one_serves() {
    let s = setup().await;
    let router = Router::start(Limits::default(), 1).unwrap();
    let url = format!("https://localhost:{}", s.port);
    router
        .apply(&snapshot(
            1,
            vec![route(&url, Some(&s.ca), HostPolicy::Client)],
        ))
        .unwrap();
    let at = router.listening()[0];
    let gone = s.ca.with_file_name("gone.pem");
    let refused = router
        .apply(&snapshot(
            2,
            vec![RouteConfig {
                listen: at,
                ..route(&url, Some(&gone), HostPolicy::Instance)
            }],
        ))
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("route `shop`")
            && refused.contains("cannot read")
            && refused.contains("gone.pem"),
        "{refused}"
    );
    let empty = s.ca.with_file_name("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let refused = router
        .apply(&snapshot(
            3,
            vec![RouteConfig {
                listen: at,
                ..route(&url, Some(&empty), HostPolicy::Instance)
            }],
        ))
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("route `shop`") && refused.contains("empty.pem: no PEM certificate"),
        "{refused}"
    );
    // The first snapshot serves on, with its Host policy.
    let (status, body) = support::get(&support::client(), at, &[("host", "shop.example")])
        .await
        .unwrap();
    assert_eq!(
        (status, body.as_str()),
        (200, "host=shop.example;xfh=shop.example")
    );
    assert_eq!(router.served().unwrap().snapshot.version, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_name_is_an_instance_not_reached_and_the_next_one_serves() {
    let s = setup().await;
    let (cert, key) = leaf(
        s.ca.parent().unwrap(),
        "liftoff test instance",
        "DNS:other.test",
        "other",
    );
    let (other_port, other_seen, _other) = https_instance(&cert, &key).await;
    let router = Router::start(Limits::default(), 1).unwrap();
    let wrong = format!("https://localhost:{other_port}");
    let right = format!("https://localhost:{}", s.port);
    router
        .apply(&snapshot(
            1,
            vec![RouteConfig {
                stable: Instances(vec![wrong.clone(), right.clone()]),
                ..route(&wrong, Some(&s.ca), HostPolicy::Client)
            }],
        ))
        .unwrap();
    let at = router.listening()[0];
    let client = support::client();
    for i in 0..20 {
        let (status, body) = support::get(&client, at, &[]).await.unwrap();
        assert_eq!(status, 200, "request {i}: {body}");
    }
    assert_eq!(other_seen.requests.load(Relaxed), 0);
    assert_eq!(s.seen.requests.load(Relaxed), 20);
    let status = router.status();
    let instances = &status[0].versions[0].instances;
    let failed = instances.iter().find(|i| i.url == wrong).unwrap();
    assert!(failed.failures > 0, "{instances:?}");
    assert_eq!(failed.failures, failed.requests, "{instances:?}");
    let w = router.window("shop", Role::Stable, 10).unwrap().unwrap();
    assert_eq!(
        w.errors.iter().sum::<u64>(),
        0,
        "retried, not failed: {w:?}"
    );
}
