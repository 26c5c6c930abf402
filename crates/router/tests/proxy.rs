//! The router's acceptance tests: real sockets on port 0, real HTTP.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use liftoff_router::{ErrorSource, Limits, Role, RouteSpec, Router, Sticky};
use support::{backend, client, closed_port, echo_backend, get, load};

fn spec(stable: &str, candidate: Option<&str>) -> RouteSpec {
    RouteSpec {
        name: "shop".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        host: None,
        stable: stable.into(),
        candidate: candidate.map(String::from),
        sticky: Sticky::Header("x-user-id".parse().unwrap()),
        // Testers on this machine may pick a version by hand.
        version_override: Some(
            liftoff_router::VersionOverride::new(
                "x-liftoff-version",
                None,
                &["127.0.0.1".into()],
                false,
            )
            .unwrap(),
        ),
        health: None,
        salt: Some(7),
    }
}

fn router(limits: Limits) -> Router {
    Router::start(limits, 2).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_changes_and_blue_green_swaps_under_load_fail_no_request() {
    let (blue, _, _b) = backend("blue").run().await;
    let (green, blue_served, _g) = backend("green").run().await;
    let _ = blue_served;
    let r = router(Limits::default());
    let at = r.upsert_route(spec(&blue, Some(&green))).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (report, workers) = load(at, 64, stop.clone());
    // 10 s of load; 50 weight changes and 5 swaps spread across it.
    for i in 0..55u32 {
        tokio::time::sleep(Duration::from_millis(180)).await;
        if i % 11 == 10 {
            r.swap("shop").unwrap();
        } else {
            r.set_weight("shop", ((i * 1_997) % 10_001) as u16).unwrap();
        }
    }
    stop.store(true, Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let failures = report.failures.lock().unwrap();
    let ok = report.ok.load(Relaxed);
    assert!(
        ok > 5_000,
        "the load generator did too little work to mean anything: {ok}"
    );
    assert_eq!(
        report.failed.load(Relaxed),
        0,
        "failed requests: {:?}",
        &failures[..failures.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_upstream_drains_its_in_flight_requests() {
    let (stable, _, _s) = backend("stable").run().await;
    let (slow, slow_served, _c) = backend("slow-candidate")
        .delay(Duration::from_millis(400))
        .run()
        .await;
    let r = Arc::new(router(Limits::default()));
    let at = r.upsert_route(spec(&stable, Some(&slow))).unwrap();
    let c = client();
    let in_flight: Vec<_> = (0..20)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { get(&c, at, &[("x-liftoff-version", "candidate")]).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        slow_served.load(Relaxed),
        20,
        "all twenty reached the candidate"
    );
    r.set_candidate("shop", None).unwrap();
    // New requests no longer reach it...
    let after = get(&c, at, &[("x-liftoff-version", "candidate")])
        .await
        .unwrap();
    assert_eq!(after, (200, "stable".to_string()));
    // ...while the twenty in flight complete.
    for req in in_flight {
        assert_eq!(
            req.await.unwrap().unwrap(),
            (200, "slow-candidate".to_string())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_rates_are_attributed_to_the_version_that_caused_them() {
    let (stable, _, _s) = backend("stable").run().await;
    let (candidate, _, _c) = backend("candidate").fail_every(20).run().await;
    let r = router(Limits::default());
    let at = r.upsert_route(spec(&stable, Some(&candidate))).unwrap();
    r.set_weight("shop", 5_000).unwrap();
    let c = client();
    let mut tasks = Vec::new();
    for i in 0..4_000 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            get(&c, at, &[("x-user-id", &format!("u{i}"))]).await
        }));
        if tasks.len() >= 64 {
            for t in tasks.drain(..) {
                t.await.unwrap().unwrap();
            }
        }
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let cand = r.window("shop", Role::Candidate, 10).unwrap().unwrap();
    let stab = r.window("shop", Role::Stable, 10).unwrap().unwrap();
    assert!(
        cand.requests > 1_500 && stab.requests > 1_500,
        "{} / {}",
        cand.requests,
        stab.requests
    );
    let rate = cand.error_rate();
    assert!((0.04..=0.06).contains(&rate), "candidate error rate {rate}");
    assert_eq!(stab.error_rate(), 0.0);
    assert_eq!(
        cand.errors[ErrorSource::Upstream5xx as usize],
        cand.failed()
    );
    assert!(cand.quantile(0.95).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_refusing_connections_counts_as_connect_errors_and_users_are_saved() {
    let (stable, _, _s) = backend("stable").run().await;
    let r = router(Limits::default());
    let at = r.upsert_route(spec(&stable, Some(&closed_port()))).unwrap();
    r.set_weight("shop", 10_000).unwrap();
    let c = client();
    for i in 0..50 {
        let got = get(&c, at, &[("x-user-id", &format!("u{i}"))])
            .await
            .unwrap();
        assert_eq!(
            got,
            (200, "stable".into()),
            "a GET that could not reach the candidate is retried on stable"
        );
    }
    let cand = r.window("shop", Role::Candidate, 10).unwrap().unwrap();
    assert_eq!(cand.errors[ErrorSource::Connect as usize], 50);
    assert_eq!(cand.errors[ErrorSource::Upstream5xx as usize], 0);
    assert_eq!(cand.error_rate(), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_valid_prometheus_text() {
    let (stable, _, _s) = backend("stable").run().await;
    let (candidate, _, _c) = backend("candidate").fail_every(2).run().await;
    let r = router(Limits::default());
    let at = r.upsert_route(spec(&stable, Some(&candidate))).unwrap();
    r.set_weight("shop", 2_500).unwrap();
    let c = client();
    for i in 0..200 {
        get(&c, at, &[("x-user-id", &format!("u{i}"))])
            .await
            .unwrap();
    }
    let text = r.render_metrics();
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sys\nfrom prometheus_client.parser import text_string_to_metric_families as p\n\
             fams = {f.name: f for f in p(sys.stdin.read())}\n\
             print(' '.join(sorted(fams)))\n\
             print(int(sum(s.value for s in fams['liftoff_router_requests'].samples)))",
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .expect("python3 with prometheus_client (CI installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the Prometheus parser rejected /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    for family in [
        "liftoff_router_requests",
        "liftoff_router_errors",
        "liftoff_router_request_duration_seconds",
        "liftoff_router_candidate_weight_ratio",
        "liftoff_router_upstream_healthy",
    ] {
        assert!(
            stdout.split_whitespace().any(|f| f == family),
            "{family} missing: {stdout}"
        );
    }
    assert_eq!(
        stdout.lines().nth(1),
        Some("200"),
        "every request counted once"
    );
    assert!(text.contains("liftoff_router_candidate_weight_ratio{route=\"shop\"} 0.25"));
}

/// A backend that answers with the request's method, body and forwarding headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_clients_streamed_bodies_and_forwarding_headers() {
    let echo = echo_backend().await;
    let r = router(Limits::default());
    let at = r.upsert_route(spec(&echo, None)).unwrap();
    let curl = |args: &[&str]| {
        let out = std::process::Command::new("curl")
            .arg("-s")
            .args(args)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let url = format!("http://{at}/upload");
    // 300 KB chunked upload, HTTP/1.1; a hop-by-hop header named in Connection is dropped.
    let body = std::env::temp_dir().join(format!("liftoff-upload-{}", std::process::id()));
    std::fs::write(&body, "x".repeat(300_000)).unwrap();
    let data = format!("@{}", body.display());
    let got = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            curl(&[
                "-H",
                "Transfer-Encoding: chunked",
                "-H",
                "Connection: x-hop",
                "-H",
                "x-hop: secret",
                "-H",
                "X-Forwarded-For: 203.0.113.9",
                "--data-binary",
                &data,
                &url,
            ])
        }
    })
    .await
    .unwrap();
    let _ = std::fs::remove_file(&body);
    assert_eq!(
        got,
        format!(
            "POST /upload host={at} xff=203.0.113.9, 127.0.0.1 proto=http xhost={at} fwd=for=127.0.0.1;proto=http;host=\"{at}\" conn=- body=300000"
        )
    );
    // HTTP/2 without TLS (prior knowledge): the upstream still gets HTTP/1.1 with a Host.
    let got = tokio::task::spawn_blocking(move || curl(&["--http2-prior-knowledge", &url]))
        .await
        .unwrap();
    assert!(
        got.starts_with(&format!("GET /upload host={at} xff=127.0.0.1 proto=http")),
        "{got}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_candidate_starts_with_no_traffic() {
    let (v1, _, _a) = backend("v1").run().await;
    let (v2, _, _b) = backend("v2").run().await;
    let (v3, v3_served, _c) = backend("v3").run().await;
    let r = router(Limits::default());
    let at = r.upsert_route(spec(&v1, Some(&v2))).unwrap();
    r.set_weight("shop", 10_000).unwrap();
    // The same candidate again (a daemon restart, a re-run step): the weight stays.
    r.upsert_route(spec(&v1, Some(&v2))).unwrap();
    let c = client();
    assert_eq!(get(&c, at, &[("x-user-id", "u1")]).await.unwrap().1, "v2");
    // The next launch: v2 is now stable, v3 the candidate. Nobody reaches v3 until a
    // traffic step says so.
    r.upsert_route(spec(&v2, Some(&v3))).unwrap();
    for i in 0..50 {
        assert_eq!(
            get(&c, at, &[("x-user-id", &format!("u{i}"))])
                .await
                .unwrap()
                .1,
            "v2"
        );
    }
    assert_eq!(v3_served.load(Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_that_also_declares_a_length_reaches_the_upstream_chunked() {
    use std::io::{Read, Write};
    let echo = echo_backend().await;
    let r = router(Limits::default());
    let at = r.upsert_route(spec(&echo, None)).unwrap();
    let reply = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(at).unwrap();
        s.write_all(
            b"POST /upload HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\
              content-length: 3\r\nconnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        )
        .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    })
    .await
    .unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(
        reply.contains("body=5"),
        "all five bytes, as one body: {reply}"
    );
}
