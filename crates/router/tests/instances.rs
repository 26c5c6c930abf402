//! A version is a pool of instances: balanced, an instance that dies is retried around
//! and ejected, one that comes back gets traffic again, and a failing version's retries
//! stay within its budget.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper_util::rt::TokioIo;
use liftoff_router::snapshot::{Instances, RouteConfig, Snapshot, StickyConfig};
use liftoff_router::{Limits, Role, Router};
use support::{LoadReport, wait_for};

/// An instance in a runtime of its own, so that killing it closes every connection it
/// has, as a crashed process would.
struct Instance {
    addr: SocketAddr,
    name: String,
    served: Arc<AtomicU64>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Instance {
    fn start(name: &str) -> Instance {
        Self::on(name, "127.0.0.1:0".parse().unwrap(), Arc::default())
    }

    fn on(name: &str, addr: SocketAddr, served: Arc<AtomicU64>) -> Instance {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = std::net::TcpListener::bind(addr).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let listener = {
            let _enter = runtime.enter();
            tokio::net::TcpListener::from_std(listener).unwrap()
        };
        let body = Bytes::from(name.to_string());
        let counter = served.clone();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (body, counter) = (body.clone(), counter.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |_req| {
                        counter.fetch_add(1, Relaxed);
                        let body = body.clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(Response::new(Full::new(body)))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Instance {
            addr,
            name: name.to_string(),
            served,
            runtime: Some(runtime),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn kill(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }

    /// Start again on the same address.
    fn restart(&mut self) {
        let next = Self::on(&self.name, self.addr, self.served.clone());
        *self = next;
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

fn urls(pool: &[Instance]) -> Instances {
    Instances(pool.iter().map(Instance::url).collect())
}

fn route(stable: Instances, candidate: Instances, weight_bp: u16) -> RouteConfig {
    RouteConfig {
        name: "shop".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        host: None,
        stable,
        candidate: Some(candidate),
        weight_bp,
        salt: 7,
        sticky: StickyConfig::Header {
            name: "x-user-id".into(),
        },
        version_override: None,
        health: None,
        maintenance: None,
        timeouts: None,
        tls: None,
        upstreams: None,
    }
}

/// `users` workers, one user each, sending GETs back to back until `stop`; a user
/// answered by the other version than at first counts in `moved`.
fn sticky_load(
    at: SocketAddr,
    users: usize,
    stop: Arc<AtomicBool>,
) -> (
    Arc<LoadReport>,
    Arc<AtomicU64>,
    Vec<tokio::task::JoinHandle<()>>,
) {
    let report = Arc::new(LoadReport::default());
    let moved = Arc::new(AtomicU64::new(0));
    let client = support::client();
    let workers = (0..users)
        .map(|i| {
            let (report, moved, stop, client) =
                (report.clone(), moved.clone(), stop.clone(), client.clone());
            tokio::spawn(async move {
                let user = format!("user-{i}");
                let mut first = None;
                while !stop.load(Relaxed) {
                    match support::get(&client, at, &[("x-user-id", &user)]).await {
                        Ok((200, body)) => {
                            report.ok.fetch_add(1, Relaxed);
                            let version = body.chars().next();
                            if *first.get_or_insert(version) != version {
                                moved.fetch_add(1, Relaxed);
                            }
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
    (report, moved, workers)
}

fn quick_ejections() -> Limits {
    Limits {
        base_ejection: Duration::from_millis(500),
        ..Limits::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_under_load_fails_no_request_is_ejected_and_returns() {
    let mut stable: Vec<Instance> = ["s1", "s2", "s3"].map(Instance::start).into();
    let candidate: Vec<Instance> = ["c1", "c2", "c3"].map(Instance::start).into();
    let router = Router::start(quick_ejections(), 2).unwrap();
    router
        .apply(&Snapshot {
            version: 1,
            routes: vec![route(urls(&stable), urls(&candidate), 5_000)],
        })
        .unwrap();
    let at = router.listening()[0];

    let stop = Arc::new(AtomicBool::new(false));
    let (report, moved, workers) = sticky_load(at, 24, stop.clone());
    wait_for(Duration::from_secs(20), || report.ok.load(Relaxed) > 600).await;
    for i in stable.iter().chain(&candidate) {
        assert!(
            i.served.load(Relaxed) > 30,
            "{} got its share of its version's traffic: {}",
            i.name,
            i.served.load(Relaxed)
        );
    }

    stable[1].kill();
    let dead = stable[1].url();
    let instance = |router: &Router, url: &str| {
        router
            .status()
            .into_iter()
            .flat_map(|r| r.versions)
            .flat_map(|v| v.instances)
            .find(|i| i.url == url)
            .unwrap()
    };
    wait_for(Duration::from_secs(20), || instance(&router, &dead).ejected).await;
    let metrics = router.render_metrics();
    let line = format!(
        "liftoff_router_instance_ejected{{route=\"shop\",version=\"stable\",instance=\"{dead}\"}} 1"
    );
    assert!(metrics.contains(&line), "{line} in\n{metrics}");
    let before = report.ok.load(Relaxed);
    wait_for(Duration::from_secs(20), || {
        report.ok.load(Relaxed) > before + 600
    })
    .await;

    // Back: once its ejection is over, it gets traffic again.
    stable[1].restart();
    let served = stable[1].served.load(Relaxed);
    wait_for(Duration::from_secs(20), || {
        stable[1].served.load(Relaxed) > served + 30
    })
    .await;
    stop.store(true, Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let failures = report.failures.lock().unwrap();
    assert_eq!(
        report.failed.load(Relaxed),
        0,
        "failed requests: {:?}",
        &failures[..failures.len().min(5)]
    );
    assert_eq!(
        moved.load(Relaxed),
        0,
        "answers from the other version: a dead instance is retried within its version"
    );
    let i = instance(&router, &dead);
    assert!(i.ejections >= 1 && i.failures >= 1, "{i:?}");
    // The versions' figures (what gates judge) count no error: every request was
    // served by an instance of its version.
    let status = router.status();
    for v in &status[0].versions {
        assert_eq!(v.last_60s.errors.iter().sum::<u64>(), 0, "{:?}", v.role);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_users_keep_their_version_whatever_instance_serves_them() {
    let stable: Vec<Instance> = ["s1", "s2"].map(Instance::start).into();
    let candidate: Vec<Instance> = ["c1", "c2"].map(Instance::start).into();
    let router = Router::start(Limits::default(), 2).unwrap();
    router
        .apply(&Snapshot {
            version: 1,
            routes: vec![route(urls(&stable), urls(&candidate), 3_000)],
        })
        .unwrap();
    let at = router.listening()[0];
    let client = support::client();
    for user in 0..50 {
        let id = format!("user-{user}");
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..6 {
            let (status, body) = support::get(&client, at, &[("x-user-id", &id)])
                .await
                .unwrap();
            assert_eq!(status, 200);
            seen.insert(body.chars().next().unwrap());
        }
        assert_eq!(seen.len(), 1, "{id} saw versions {seen:?}");
    }
}

/// A backend that reads what each connection sends and resets it without answering:
/// counts the requests that reached it (not connections: a connection reset before the
/// router wrote a byte carried no request).
async fn resetting_backend() -> (String, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut buf = [0u8; 1024];
                if matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {
                    counter.fetch_add(1, Relaxed);
                }
                // A reset, not a FIN (zero linger does not block on close).
                #[allow(deprecated)]
                let _ = stream.set_linger(Some(Duration::ZERO));
            });
        }
    });
    (format!("http://{addr}"), received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_resetting_every_connection_gets_no_more_than_its_retry_budget() {
    let stable = Instance::start("stable");
    let mut bad = Vec::new();
    let mut accepted = Vec::new();
    for _ in 0..3 {
        let (url, n) = resetting_backend().await;
        bad.push(url);
        accepted.push(n);
    }
    let router = Router::start(Limits::default(), 2).unwrap();
    router
        .apply(&Snapshot {
            version: 1,
            routes: vec![route(
                Instances::one(stable.url()),
                Instances(bad.clone()),
                10_000,
            )],
        })
        .unwrap();
    let at = router.listening()[0];
    let client = support::client();
    let requests = 400u64;
    let mut on_stable = 0;
    for user in 0..requests {
        // A GET that reached the candidate and got no answer may be repeated: it is,
        // once on another candidate instance while the budget lasts, then on stable
        // (which adds nothing to the candidate's load).
        let (status, body) = support::get(&client, at, &[("x-user-id", &format!("u{user}"))])
            .await
            .unwrap();
        assert_eq!(status, 200, "replayed on stable: {body}");
        on_stable += u64::from(body == "stable");
    }
    assert_eq!(on_stable, requests);
    let attempts: u64 = accepted.iter().map(|n| n.load(Relaxed)).sum();
    let budget = (requests / 10) as i64 + liftoff_router::RetryBudget::BURST;
    assert!(
        attempts as i64 <= requests as i64 + budget,
        "{attempts} attempts on the candidate for {requests} requests: more than the budget of {budget} retries"
    );
    assert!(
        attempts > requests,
        "retries on other instances happened at all: {attempts}"
    );
    let candidate = router
        .status()
        .remove(0)
        .versions
        .into_iter()
        .find(|v| v.role == Role::Candidate)
        .unwrap();
    assert_eq!(
        candidate.last_60s.requests, requests,
        "one outcome per client request on the version, whatever the retries"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_that_reached_an_instance_is_never_replayed() {
    let (bad, accepted) = resetting_backend().await;
    let stable = Instance::start("stable");
    let router = Router::start(Limits::default(), 2).unwrap();
    let (bad2, accepted2) = resetting_backend().await;
    router
        .apply(&Snapshot {
            version: 1,
            routes: vec![route(
                Instances::one(stable.url()),
                Instances(vec![bad, bad2]),
                10_000,
            )],
        })
        .unwrap();
    let at = router.listening()[0];
    for i in 0..20 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut c = tokio::net::TcpStream::connect(at).await.unwrap();
        let body = "{\"item\":1}";
        c.write_all(
            format!(
                "POST /order HTTP/1.1\r\nHost: shop\r\nX-User-Id: u{i}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    }
    assert_eq!(
        accepted.load(Relaxed) + accepted2.load(Relaxed),
        20,
        "each POST went out once"
    );
    drop(stable);
}
