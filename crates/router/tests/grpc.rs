//! gRPC through the router, with Python's grpcio on both ends (tests/grpc/): calls
//! from an HTTP/2 client go to the instances over HTTP/2 (h2c), follow the split and
//! the sticky header, and a call's `grpc-status` decides whether it is the version's
//! error; a server-streaming call arrives whole, and a weight change leaves it be;
//! `https://` instances are reached over TLS with ALPN h2; a call cancelled by either
//! side is the client's, an instance that cannot be reached is tried no more.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use liftoff_router::snapshot::{
    HostPolicy, Instances, RouteConfig, Snapshot, StickyConfig, TimeoutsConfig, UpstreamsConfig,
};
use liftoff_router::{ErrorSource, Limits, Role, RouteSpec, Router, Sticky, Window};

struct Py(Child);

impl Drop for Py {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn script(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/grpc")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn python(args: &[&str]) -> (Py, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new("python3")
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 (./test.sh installs it, with `pip install grpcio`)");
    let out = BufReader::new(child.stdout.take().unwrap());
    (Py(child), out)
}

fn line(out: &mut BufReader<std::process::ChildStdout>) -> String {
    let mut l = String::new();
    out.read_line(&mut l).unwrap();
    assert!(
        !l.is_empty(),
        "the Python side ended early (is `grpcio` installed? ./test.sh installs it)"
    );
    l.trim().to_string()
}

/// A gRPC server named `name` failing every `fail_every`-th unary call (0: none), on
/// 127.0.0.1 (over TLS with `tls`: certificate and key files); its port.
fn server(name: &str, fail_every: u32, tls: Option<(&Path, &Path)>) -> (Py, u16) {
    let fail_every = fail_every.to_string();
    let mut args = vec![script("server.py"), name.to_string(), fail_every];
    if let Some((cert, key)) = tls {
        args.extend([cert, key].map(|p| p.display().to_string()));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (py, mut out) = python(&args);
    let port = line(&mut out).parse().unwrap();
    (py, port)
}

/// `client.py` against the router at `at` (see there); its report, read once the
/// stream began and `meanwhile` ran.
fn client(
    at: std::net::SocketAddr,
    calls: u32,
    users: u32,
    stream: &str,
    meanwhile: impl FnOnce(),
) -> serde_json::Value {
    let (calls, users) = (calls.to_string(), users.to_string());
    let (script, at) = (script("client.py"), at.to_string());
    let (_client, mut out) = python(&[&script, &at, &calls, &users, stream]);
    assert_eq!(line(&mut out), "streaming");
    meanwhile();
    serde_json::from_str(&line(&mut out)).unwrap()
}

fn route(name: &str, stable: u16, candidate: u16) -> RouteSpec {
    RouteSpec {
        name: name.into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        host: None,
        stable: format!("http://127.0.0.1:{stable}"),
        candidate: Some(format!("http://127.0.0.1:{candidate}")),
        sticky: Sticky::Header("x-user-id".parse().unwrap()),
        version_override: None,
        health: None,
        salt: Some(7),
    }
}

fn last_60s(router: &Router, role: Role) -> Window {
    let status = router.status().remove(0);
    let v = status.versions.iter().find(|v| v.role == role).unwrap();
    v.last_60s.clone()
}

#[test]
fn grpc_calls_follow_the_split_and_a_non_zero_grpc_status_is_the_versions_error() {
    let (_s, stable) = server("stable", 0, None);
    let (_c, candidate) = server("candidate", 2, None);
    let router = Router::start(Limits::default(), 2).unwrap();
    let at = router
        .upsert_route(route("rpc", stable, candidate))
        .unwrap();
    router.set_weight("rpc", 5_000).unwrap();

    let report = client(at, 200, 40, "50", || {});
    let tally = |version: &str, outcome: &str| report["versions"][version][outcome].as_u64();
    assert_eq!(report["other"], serde_json::json!([]), "{report}");
    assert_eq!(
        report["mixed_users"],
        serde_json::json!([]),
        "sticky: {report}"
    );
    let (stable_ok, candidate_ok) = (tally("stable", "ok").unwrap(), tally("candidate", "ok"));
    let candidate_failed = tally("candidate", "internal").unwrap();
    assert!(
        stable_ok > 20 && candidate_ok > Some(10),
        "both answered: {report}"
    );
    assert_eq!(tally("stable", "internal"), Some(0), "{report}");
    assert!(candidate_failed > 10, "{report}");

    let stream = &report["stream"];
    assert_eq!(stream["messages"], 50, "{report}");
    assert_eq!(stream["whole"], true, "{report}");
    let streamed_on = stream["versions"][0].as_str().unwrap();

    let (s, c) = (
        last_60s(&router, Role::Stable),
        last_60s(&router, Role::Candidate),
    );
    let streamed = |name: &str| u64::from(streamed_on == name);
    assert_eq!(s.requests, stable_ok + streamed("stable"), "{s:?}");
    assert_eq!(s.failed(), 0, "stable's calls all succeeded: {s:?}");
    assert_eq!(
        c.requests,
        candidate_ok.unwrap() + candidate_failed + streamed("candidate")
    );
    assert_eq!(
        c.errors[ErrorSource::Upstream5xx as usize],
        candidate_failed,
        "each INTERNAL is one error of the candidate's: {c:?}"
    );
    assert_eq!(c.failed(), candidate_failed, "{c:?}");
    assert_eq!(
        c.status[1], c.requests,
        "recorded with the HTTP status the client got (200)"
    );
    for (role, v) in [(Role::Stable, &s), (Role::Candidate, &c)] {
        assert_eq!(
            v.errors[ErrorSource::ClientAbort as usize],
            0,
            "{role:?}: every call recorded once, at its end"
        );
    }
}

#[test]
fn an_established_grpc_stream_survives_a_weight_change_and_new_calls_follow_the_split() {
    let (_s, stable) = server("stable", 0, None);
    let (_c, candidate) = server("candidate", 0, None);
    let router = Router::start(Limits::default(), 2).unwrap();
    let at = router
        .upsert_route(route("rpc", stable, candidate))
        .unwrap();
    router.set_weight("rpc", 10_000).unwrap();

    let report = client(at, 0, 1, "40,25", || {
        router.set_weight("rpc", 5_000).unwrap();
        router.set_weight("rpc", 0).unwrap(); // the rollback
    });
    let stream = &report["stream"];
    assert_eq!(
        stream["versions"],
        serde_json::json!(["candidate"]),
        "{report}"
    );
    assert_eq!(stream["messages"], 40, "not cut: {report}");
    assert_eq!(stream["whole"], true, "{report}");
    let c = last_60s(&router, Role::Candidate);
    assert_eq!((c.requests, c.failed()), (1, 0), "{c:?}");

    let report = client(at, 10, 5, "3", || {});
    assert_eq!(report["versions"]["stable"]["ok"], 10, "{report}");
    assert_eq!(report["stream"]["versions"], serde_json::json!(["stable"]));
}

#[test]
fn a_bidirectional_grpc_stream_flows_both_ways_at_once() {
    let (_s, stable) = server("stable", 0, None);
    let (_c, candidate) = server("candidate", 0, None);
    let router = Router::start(Limits::default(), 2).unwrap();
    let at = router
        .upsert_route(route("rpc", stable, candidate))
        .unwrap();
    router.set_weight("rpc", 10_000).unwrap();
    let (_py, mut out) = python(&[&script("chat.py"), &at.to_string(), "30"]);
    assert_eq!(line(&mut out), "ok candidate 30");
    let c = last_60s(&router, Role::Candidate);
    assert_eq!(
        (c.requests, c.failed()),
        (1, 0),
        "one call, recorded at its end: {c:?}"
    );
}

/// A CA (`ca.pem`) in `dir` and a certificate it signed for `localhost` and
/// `127.0.0.1`: the CA's file, the certificate's and its key's.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca = support::certs::ca(dir, "gRPC test CA");
    let (cert, key) =
        support::certs::leaf(dir, "gRPC test instance", "DNS:localhost,IP:127.0.0.1", "i");
    (ca, cert, key)
}

fn snapshot(version: u64, stable: Instances, upstreams: Option<UpstreamsConfig>) -> Snapshot {
    let route = RouteConfig {
        name: "rpc".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        host: None,
        stable,
        candidate: None,
        weight_bp: 0,
        salt: 7,
        sticky: StickyConfig::None,
        version_override: None,
        health: None,
        maintenance: None,
        timeouts: None,
        tls: None,
        upstreams,
    };
    Snapshot {
        version,
        routes: vec![route],
    }
}

#[test]
fn a_grpc_call_cancelled_by_the_server_or_the_client_is_the_clients_doing() {
    let (_s, stable) = server("stable", 0, None);
    let router = Router::start(Limits::default(), 2).unwrap();
    let url = format!("http://127.0.0.1:{stable}");
    router
        .apply(&snapshot(1, Instances::one(url), None))
        .unwrap();
    let at = router.listening()[0].to_string();
    let (_client, mut out) = python(&[&script("cancel.py"), &at]);
    assert_eq!(line(&mut out), "done");
    // The client's cancel reaches the router as a reset stream, soon.
    let deadline = Instant::now() + Duration::from_secs(5);
    let s = loop {
        let s = last_60s(&router, Role::Stable);
        if s.requests == 2 || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(s.requests, 2, "{s:?}");
    assert_eq!(s.errors[ErrorSource::ClientAbort as usize], 2, "{s:?}");
    assert_eq!(s.failed(), 0, "never the version's error: {s:?}");
    let status = router.status().remove(0);
    assert_eq!(status.versions[0].in_flight, 0);
    assert_eq!(
        status.versions[0].instances[0].in_flight, 0,
        "a call dropped while waiting for its answer leaves the balancer's count"
    );
}

#[test]
fn a_calls_deadline_beyond_the_routes_response_timeout_lets_the_instance_answer_late() {
    let (_s, stable) = server("stable", 0, None);
    let router = Router::start(Limits::default(), 2).unwrap();
    let mut snap = snapshot(
        1,
        Instances::one(format!("http://127.0.0.1:{stable}")),
        None,
    );
    snap.routes[0].timeouts = Some(TimeoutsConfig {
        connect_ms: None,
        response_ms: Some(1_000),
        idle_ms: None,
    });
    router.apply(&snap).unwrap();
    let (script, at) = (script("call.py"), router.listening()[0].to_string());
    let call = |deadline: &[&str]| {
        let args = [&[script.as_str(), &at, "Slow", "late"], deadline].concat();
        let (_py, mut out) = python(&args);
        line(&mut out)
    };
    // Slow answers after 3 s.
    assert_eq!(call(&["10"]), "ok late", "its deadline (10 s) is the wait");
    assert_ne!(call(&[]), "ok late", "without one, the route's 1 s");
    let s = last_60s(&router, Role::Stable);
    assert_eq!(s.requests, 2, "{s:?}");
    assert_eq!(s.errors[ErrorSource::Timeout as usize], 1, "{s:?}");
}

#[test]
fn a_grpc_call_goes_to_another_instance_when_one_cannot_be_reached() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let (_s, live) = server("stable", 0, None);
    let router = Router::start(Limits::default(), 2).unwrap();
    let urls = Instances(vec![closed.clone(), format!("http://127.0.0.1:{live}")]);
    router.apply(&snapshot(1, urls, None)).unwrap();
    let report = client(router.listening()[0], 20, 20, "3", || {});
    assert_eq!(report["other"], serde_json::json!([]), "{report}");
    assert_eq!(report["versions"]["stable"]["ok"], 20, "{report}");
    let status = router.status().remove(0);
    let v = &status.versions[0];
    assert_eq!((v.last_60s.requests, v.last_60s.failed()), (21, 0));
    let unreachable = v.instances.iter().find(|i| i.url == closed).unwrap();
    assert!(
        unreachable.failures > 0 && unreachable.failures == unreachable.requests,
        "{unreachable:?}"
    );
}

#[test]
fn grpc_to_an_https_instance_goes_over_tls_with_alpn_h2() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    let (_s, port) = server("stable", 0, Some((&cert, &key)));
    let router = Router::start(Limits::default(), 2).unwrap();
    for (version, host) in [(1, HostPolicy::Client), (2, HostPolicy::Instance)] {
        let upstreams = UpstreamsConfig {
            ca: Some(ca.display().to_string()),
            host,
        };
        let url = Instances::one(format!("https://localhost:{port}"));
        router
            .apply(&snapshot(version, url, Some(upstreams)))
            .unwrap();
        let report = client(router.listening()[0], 20, 4, "10", || {});
        assert_eq!(report["other"], serde_json::json!([]), "{host:?}: {report}");
        assert_eq!(report["versions"]["stable"]["ok"], 20, "{host:?}: {report}");
        assert_eq!(report["stream"]["whole"], true, "{host:?}: {report}");
    }
    let s = last_60s(&router, Role::Stable);
    assert_eq!((s.requests, s.failed()), (42, 0), "{s:?}");
}
