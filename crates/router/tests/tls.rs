//! TLS termination, with real clients (curl, openssl s_client) and certificates made by
//! the openssl command: SNI picks the certificate, ALPN offers h2, a certificate
//! replaced on disk serves new handshakes while open connections go on, and a bad pair
//! is refused when the snapshot naming it is applied.

mod support;

use support::certs;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use liftoff_router::snapshot::{
    CertificateConfig, Instances, RouteConfig, Snapshot, StickyConfig, TlsConfig,
};
use liftoff_router::{Limits, Router};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// The test CA in `dir` (`ca.pem`).
fn ca(dir: &Path) -> PathBuf {
    certs::ca(dir, "liftoff test CA")
}

/// A certificate for `name` signed by the CA, written to `<file>.pem` and `<file>.key`.
fn leaf(dir: &Path, name: &str, file: &str) -> CertificateConfig {
    let (cert, key) = certs::leaf(dir, name, &format!("DNS:{name}"), file);
    CertificateConfig {
        cert: cert.display().to_string(),
        key: key.display().to_string(),
    }
}

fn route(
    name: &str,
    listen: &str,
    upstream: &str,
    tls: Option<Vec<CertificateConfig>>,
) -> RouteConfig {
    RouteConfig {
        name: name.into(),
        listen: listen.parse().unwrap(),
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
        tls: tls.map(|certificates| TlsConfig { certificates }),
        upstreams: None,
    }
}

fn snapshot(version: u64, routes: Vec<RouteConfig>) -> Snapshot {
    Snapshot { version, routes }
}

fn curl(ca: &Path, name: &str, port: u16, extra: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("{name}:{port}:127.0.0.1")])
        .args(["-w", "\nhttp=%{http_version}"])
        .args(extra)
        .arg(format!("https://{name}:{port}/hello"))
        .output()
        .expect("curl runs");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn s_client(ca: &Path, port: u16, extra: &[&str]) -> String {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-CAfile",
        ])
        .arg(ca)
        .args(extra)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl runs");
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_the_certificate_alpn_offers_h2_and_the_upstream_hears_https() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca(dir.path());
    let a = leaf(dir.path(), "a.test", "a");
    let b = leaf(dir.path(), "b.test", "b");
    let upstream = support::echo_backend().await;
    let router = Router::start(Limits::default(), 1).unwrap();
    router
        .apply(&snapshot(
            1,
            vec![route("shop", "127.0.0.1:0", &upstream, Some(vec![a, b]))],
        ))
        .unwrap();
    let port = router.listening()[0].port();
    let ca2 = ca.clone();
    let results = tokio::task::spawn_blocking(move || {
        (
            curl(&ca2, "a.test", port, &["--http1.1"]),
            curl(&ca2, "b.test", port, &["--http2"]),
            s_client(
                &ca2,
                port,
                &["-servername", "b.test", "-alpn", "h2,http/1.1"],
            ),
            s_client(&ca2, port, &["-servername", "a.test", "-alpn", "http/1.1"]),
            s_client(&ca2, port, &[]),
            s_client(&ca2, port, &["-servername", "c.test"]),
        )
    })
    .await
    .unwrap();
    let ((ok_a, text_a), (ok_b, text_b), sb, sa, none, other) = results;
    assert!(ok_a, "{text_a}");
    assert!(
        text_a.contains("GET /hello") && text_a.contains("proto=https"),
        "{text_a}"
    );
    assert!(text_a.contains("fwd=for=127.0.0.1;proto=https"), "{text_a}");
    assert!(text_a.ends_with("http=1.1"), "{text_a}");
    assert!(ok_b, "{text_b}");
    assert!(text_b.ends_with("http=2"), "HTTP/2 over ALPN: {text_b}");
    assert!(text_b.contains("proto=https"), "{text_b}");
    assert!(sb.contains("subject=CN = b.test"), "{sb}");
    assert!(sb.contains("ALPN protocol: h2"), "{sb}");
    assert!(sb.contains("Verify return code: 0 (ok)"), "{sb}");
    assert!(sa.contains("subject=CN = a.test"), "{sa}");
    assert!(sa.contains("ALPN protocol: http/1.1"), "{sa}");
    // No SNI, or a name no certificate covers: the first certificate.
    assert!(none.contains("subject=CN = a.test"), "{none}");
    assert!(other.contains("subject=CN = a.test"), "{other}");
    for s in [&sb, &sa] {
        assert!(s.contains("New, TLSv1.3, Cipher is"), "{s}");
    }
    // TLS 1.2 is served; nothing older exists in rustls.
    let tls12 = tokio::task::spawn_blocking(move || s_client(&ca, port, &["-tls1_2"]))
        .await
        .unwrap();
    assert!(tls12.contains("New, TLSv1.2, Cipher is"), "{tls12}");
}

/// A TLS client trusting `ca`: the certificate it was served, and an HTTP/1.1
/// connection to send requests on.
async fn connect(
    ca: &Path,
    name: &str,
    at: std::net::SocketAddr,
) -> (
    CertificateDer<'static>,
    hyper::client::conn::http1::SendRequest<Empty<bytes::Bytes>>,
) {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(at).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(name.to_string()).unwrap(), tcp)
        .await
        .unwrap();
    let served = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    (served, send)
}

async fn get(send: &mut hyper::client::conn::http1::SendRequest<Empty<bytes::Bytes>>) -> String {
    let req = hyper::Request::get("/again")
        .header("host", "a.test")
        .body(Empty::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_certificate_serves_new_handshakes_while_open_connections_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca(dir.path());
    let a = leaf(dir.path(), "a.test", "a");
    let upstream = support::echo_backend().await;
    let router = Router::start(Limits::default(), 1).unwrap();
    router
        .apply(&snapshot(
            1,
            vec![route(
                "shop",
                "127.0.0.1:0",
                &upstream,
                Some(vec![a.clone()]),
            )],
        ))
        .unwrap();
    let at = router.listening()[0];
    let (first, mut old) = connect(&ca, "a.test", at).await;
    assert!(get(&mut old).await.contains("proto=https"));

    // A renewal the way cert managers write one: new files renamed over the old.
    let renewed = leaf(dir.path(), "a.test", "renewed");
    assert_ne!(
        std::fs::read(&renewed.cert).unwrap(),
        std::fs::read(&a.cert).unwrap()
    );
    std::fs::rename(&renewed.key, &a.key).unwrap();
    std::fs::rename(&renewed.cert, &a.cert).unwrap();
    let new = CertificateDer::from_pem_file(&a.cert).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (served, _) = connect(&ca, "a.test", at).await;
        if served == new {
            break;
        }
        assert_eq!(served, first);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the renewed certificate was not served within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The connection opened before goes on, on its session.
    assert!(get(&mut old).await.contains("GET /again"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_pair_is_refused_when_the_snapshot_is_applied_and_the_old_one_serves() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca(dir.path());
    let a = leaf(dir.path(), "a.test", "a");
    let b = leaf(dir.path(), "b.test", "b");
    let upstream = support::echo_backend().await;
    let router = Router::start(Limits::default(), 1).unwrap();
    router
        .apply(&snapshot(
            1,
            vec![route(
                "shop",
                "127.0.0.1:0",
                &upstream,
                Some(vec![a.clone()]),
            )],
        ))
        .unwrap();
    let at = router.listening()[0];
    let listen = at.to_string();
    let refused = |certs: Vec<CertificateConfig>| {
        router
            .apply(&snapshot(
                2,
                vec![route("shop", &listen, &upstream, Some(certs))],
            ))
            .unwrap_err()
            .to_string()
    };
    let mismatched = refused(vec![CertificateConfig {
        cert: a.cert.clone(),
        key: b.key.clone(),
    }]);
    assert!(
        mismatched.contains("is not the key of the certificate in") && mismatched.contains("b.key"),
        "{mismatched}"
    );
    let missing = refused(vec![CertificateConfig {
        cert: dir.path().join("gone.pem").display().to_string(),
        key: a.key.clone(),
    }]);
    assert!(
        missing.contains("cannot read") && missing.contains("gone.pem"),
        "{missing}"
    );
    let swapped = refused(vec![CertificateConfig {
        cert: a.key.clone(),
        key: a.cert.clone(),
    }]);
    assert!(swapped.contains("no PEM certificate"), "{swapped}");
    let mixed = router
        .apply(&snapshot(
            3,
            vec![
                route("shop", &listen, &upstream, Some(vec![a.clone()])),
                RouteConfig {
                    host: Some("plain.test".into()),
                    ..route("plain", &listen, &upstream, None)
                },
            ],
        ))
        .unwrap_err()
        .to_string();
    assert!(
        mixed.contains("which route `plain` serves without"),
        "{mixed}"
    );
    // Refused whole: the first snapshot still serves, with its certificate.
    let (served, mut send) = connect(&ca, "a.test", at).await;
    assert_eq!(served, CertificateDer::from_pem_file(&a.cert).unwrap());
    assert!(get(&mut send).await.contains("proto=https"));
}
