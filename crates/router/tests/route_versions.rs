//! Figures belong to a version of a route, not to an upstream URL: two routes naming one
//! upstream keep their own windows, health and `/metrics` series (only the upstream's
//! connections are shared), and a version's figures follow it within its route.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use liftoff_router::{HealthCheck, Limits, Role, RouteSpec, Router};
use support::{TestClient, backend, client, wait_for};

/// Answers 500 on `/fail`, 503 on `/down`, 200 elsewhere.
async fn paths_backend() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: hyper::Request<_>| async move {
                    let status = match req.uri().path() {
                        "/fail" => 500,
                        "/down" => 503,
                        _ => 200,
                    };
                    let mut resp = hyper::Response::new(Full::new(Bytes::from("shared")));
                    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                    Ok::<_, std::convert::Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

fn spec(name: &str, stable: &str, candidate: &str, health_path: &str) -> RouteSpec {
    RouteSpec {
        candidate: Some(candidate.into()),
        health: Some(HealthCheck {
            path: health_path.into(),
            interval: Duration::from_millis(30),
            timeout: Duration::from_millis(500),
            healthy_threshold: 1,
            unhealthy_threshold: 2,
        }),
        ..support::route(name, stable)
    }
}

async fn status_of(c: &TestClient, at: std::net::SocketAddr, path: &str) -> u16 {
    let req = hyper::Request::get(format!("http://{at}{path}"))
        .body(Empty::new())
        .unwrap();
    let resp = c.request(req).await.unwrap();
    let status = resp.status().as_u16();
    resp.into_body().collect().await.unwrap();
    status
}

/// The value of the `/metrics` sample that starts with `series` (labels included).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_routes_to_one_upstream_keep_their_own_windows_health_and_series() {
    let shared = paths_backend().await;
    let (shop_stable, _, _a) = backend("shop-stable").run().await;
    let (cart_stable, _, _b) = backend("cart-stable").run().await;
    let r = Router::start(Limits::default(), 2).unwrap();
    // Both launches name the same candidate URL; their health checks differ.
    let shop = r
        .upsert_route(spec("shop", &shop_stable, &shared, "/down"))
        .unwrap();
    r.upsert_route(spec("cart", &cart_stable, &shared, "/health"))
        .unwrap();
    r.set_weight("shop", 10_000).unwrap();
    r.set_weight("cart", 10_000).unwrap();

    let c = client();
    for _ in 0..20 {
        assert_eq!(status_of(&c, shop, "/fail").await, 500);
        assert_eq!(status_of(&c, shop, "/").await, 200);
    }
    let shop_w = r.window("shop", Role::Candidate, 10).unwrap().unwrap();
    assert_eq!((shop_w.requests, shop_w.failed()), (40, 20));
    let cart_w = r.window("cart", Role::Candidate, 10).unwrap().unwrap();
    assert_eq!(
        (cart_w.requests, cart_w.failed()),
        (0, 0),
        "cart sent its candidate nothing: none of shop's errors are its"
    );
    assert!(cart_w.error_rate().is_nan());

    let health = |route| r.health(route, Role::Candidate).unwrap();
    wait_for(Duration::from_secs(5), || {
        health("shop").checked && health("cart").checked && !health("shop").healthy
    })
    .await;
    assert!(health("cart").healthy, "{:?}", health("cart"));
    assert_eq!(health("cart").consecutive_failures, 0);

    let text = r.render_metrics();
    let series = |route: &str, class: &str| {
        format!(
            "liftoff_router_requests_total{{route=\"{route}\",version=\"candidate\",upstream=\"{shared}\",class=\"{class}\"}}"
        )
    };
    assert_eq!(sample(&text, &series("shop", "5xx")), 20.0);
    assert_eq!(sample(&text, &series("shop", "2xx")), 20.0);
    assert_eq!(sample(&text, &series("cart", "5xx")), 0.0);
    assert_eq!(sample(&text, &series("cart", "2xx")), 0.0);
    let healthy = |route: &str| {
        sample(
            &text,
            &format!(
                "liftoff_router_upstream_healthy{{route=\"{route}\",version=\"candidate\",upstream=\"{shared}\"}}"
            ),
        )
    };
    assert_eq!((healthy("shop"), healthy("cart")), (0.0, 1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_keeps_its_figures_through_weight_changes_swaps_and_updates() {
    let shared = paths_backend().await;
    let (stable, _, _s) = backend("stable").run().await;
    let r = Router::start(Limits::default(), 2).unwrap();
    let at = r
        .upsert_route(spec("shop", &stable, &shared, "/health"))
        .unwrap();
    r.set_weight("shop", 10_000).unwrap();
    let c = client();
    for _ in 0..5 {
        assert_eq!(status_of(&c, at, "/fail").await, 500);
    }
    let failed = |role| r.window("shop", role, 10).unwrap().unwrap().failed();
    r.set_weight("shop", 5_000).unwrap();
    r.upsert_route(spec("shop", &stable, &shared, "/health"))
        .unwrap();
    assert_eq!(failed(Role::Candidate), 5, "same route, same candidate");
    // Blue/green: the candidate becomes stable, and its figures go with it.
    r.swap("shop").unwrap();
    assert_eq!((failed(Role::Stable), failed(Role::Candidate)), (5, 0));
    r.swap("shop").unwrap();
    assert_eq!(failed(Role::Candidate), 5);
    // Another route taking up the same upstream starts from nothing.
    r.upsert_route(spec("cart", &stable, &shared, "/health"))
        .unwrap();
    assert_eq!(
        r.window("cart", Role::Candidate, 10)
            .unwrap()
            .unwrap()
            .requests,
        0
    );
    // A candidate replaced and named again later is a new version: no old figures.
    r.set_candidate("shop", None).unwrap();
    r.set_candidate("shop", Some(&shared)).unwrap();
    assert_eq!(failed(Role::Candidate), 0);
}
