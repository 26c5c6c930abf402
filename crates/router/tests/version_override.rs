//! The tester override (`X-Liftoff-Version: candidate`) is off unless a route sets it,
//! refused without its secret or from outside its networks, never passed on to the
//! upstream, and what it routes is not judged with the users' traffic.

mod support;

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use liftoff_router::{ErrorSource, Limits, Role, RouteSpec, Router, VersionOverride};
use support::{client, get};

/// Answers `name`, then what it got in `x-liftoff-version` (`-` for nothing); with
/// `fail`, as a 500.
async fn backend_showing_the_header(name: &'static str, fail: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: hyper::Request<_>| async move {
                    let seen = req
                        .headers()
                        .get("x-liftoff-version")
                        .map_or("-".to_string(), |v| v.to_str().unwrap().to_string());
                    let mut resp =
                        hyper::Response::new(Full::new(Bytes::from(format!("{name} {seen}"))));
                    if fail {
                        *resp.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
                    }
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

/// A route at 0% whose candidate fails every request.
async fn route_with(version_override: Option<VersionOverride>) -> (Router, SocketAddr) {
    let stable = backend_showing_the_header("stable", false).await;
    let candidate = backend_showing_the_header("candidate", true).await;
    let r = Router::start(Limits::default(), 2).unwrap();
    let at = r
        .upsert_route(RouteSpec {
            candidate: Some(candidate),
            version_override,
            ..support::route("shop", &stable)
        })
        .unwrap();
    (r, at)
}

fn with_secret(count: bool) -> Option<VersionOverride> {
    Some(VersionOverride::new("X-Liftoff-Version", Some("t0ken"), &[], count).unwrap())
}

const ASK: &str = "x-liftoff-version";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_override_header_is_ignored_unless_the_route_sets_it() {
    let (r, at) = route_with(None).await;
    let c = client();
    for _ in 0..20 {
        assert_eq!(
            get(&c, at, &[(ASK, "candidate")]).await.unwrap(),
            (200, "stable candidate".into()),
            "any client could otherwise aim its traffic at the candidate"
        );
    }
    let w = r.window("shop", Role::Candidate, 10).unwrap().unwrap();
    assert_eq!(w.requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_right_secret_the_override_is_refused() {
    let (r, at) = route_with(with_secret(false)).await;
    let c = client();
    for refused in ["candidate", "candidate;guess", "candidate;t0ke", "stable"] {
        let (status, body) = get(&c, at, &[(ASK, refused)]).await.unwrap();
        assert_eq!(status, 403, "{refused}: {body}");
        assert!(!body.contains("t0ken"), "{body}");
    }
    assert_eq!(get(&c, at, &[(ASK, "canary;t0ken")]).await.unwrap().0, 400);
    // The secret is the router's: the upstream never sees the field.
    assert_eq!(
        get(&c, at, &[(ASK, "candidate;t0ken")]).await.unwrap(),
        (500, "candidate -".into())
    );
    assert_eq!(
        get(&c, at, &[(ASK, "stable;t0ken")]).await.unwrap(),
        (200, "stable -".into())
    );
    // Without the header, the split decides as ever.
    assert_eq!(get(&c, at, &[]).await.unwrap(), (200, "stable -".into()));
    let w = r.window("shop", Role::Candidate, 10).unwrap().unwrap();
    assert_eq!(w.requests, 0, "refused requests reach no version");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_override_can_be_limited_to_client_networks() {
    let elsewhere = VersionOverride::new(ASK, None, &["10.0.0.0/8".into()], false).unwrap();
    let (_r, at) = route_with(Some(elsewhere)).await;
    let c = client();
    assert_eq!(get(&c, at, &[(ASK, "candidate")]).await.unwrap().0, 403);
    let here = VersionOverride::new(ASK, None, &["127.0.0.1".into()], false).unwrap();
    let (_r, at) = route_with(Some(here)).await;
    assert_eq!(
        get(&c, at, &[(ASK, "candidate")]).await.unwrap(),
        (500, "candidate -".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overridden_requests_are_not_judged_unless_the_route_counts_them() {
    let (r, at) = route_with(with_secret(false)).await;
    let c = client();
    for _ in 0..30 {
        assert_eq!(
            get(&c, at, &[(ASK, "candidate;t0ken")]).await.unwrap().0,
            500
        );
    }
    let w = r.window("shop", Role::Candidate, 10).unwrap().unwrap();
    assert_eq!(
        (w.requests, w.failed()),
        (0, 0),
        "a tester's requests are not the users' error rate"
    );
    assert_eq!(r.status()[0].versions[1].in_flight, 0);
    let text = r.render_metrics();
    let url = &r.status()[0].versions[1].url;
    let series = |labels: &str| {
        let name = format!(
            "liftoff_router_requests_total{{route=\"shop\",version=\"candidate\",upstream=\"{url}\"{labels},class=\"5xx\"}} "
        );
        text.lines()
            .find_map(|l| l.strip_prefix(&name)?.parse::<u64>().ok())
    };
    assert_eq!(series(",override=\"true\""), Some(30), "{text}");
    assert_eq!(series(""), Some(0), "{text}");

    // A plan that wants them judged says so.
    let (r, at) = route_with(with_secret(true)).await;
    for _ in 0..30 {
        get(&c, at, &[(ASK, "candidate;t0ken")]).await.unwrap();
    }
    let w = r.window("shop", Role::Candidate, 10).unwrap().unwrap();
    assert_eq!(
        (w.requests, w.errors[ErrorSource::Upstream5xx as usize]),
        (30, 30)
    );
    assert!(!r.render_metrics().contains("override="));

    // An overridden request that fails is not quietly served by the other version,
    // counted or not.
    for count in [false, true] {
        let (r, at) = route_with(with_secret(count)).await;
        r.set_candidate("shop", Some(&support::closed_port()))
            .unwrap();
        assert_eq!(
            get(&c, at, &[(ASK, "candidate;t0ken")]).await.unwrap().0,
            502,
            "count: {count}"
        );
    }
}
