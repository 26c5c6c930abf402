//! A standalone router's own `/metrics` (Prometheus text): every route's per-version
//! series as this router saw them, and the state of its link to the daemon, so an
//! operator's alert can say "router X has been serving snapshot N without a daemon for
//! 10 minutes".

use std::convert::Infallible;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use crate::Router;
use crate::control::LinkState;

pub async fn serve_metrics(addr: SocketAddr, router: Arc<Router>, link: Arc<LinkState>) {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot serve the router's /metrics");
            return;
        }
    };
    tracing::info!(%addr, "router metrics listening");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (router, link) = (router.clone(), link.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let body = if req.uri().path() == "/metrics" {
                    Some(render(&router, &link))
                } else {
                    None
                };
                async move {
                    let resp = match body {
                        Some(text) => http::Response::builder()
                            .header(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")
                            .body(Full::new(Bytes::from(text))),
                        None => http::Response::builder()
                            .status(404)
                            .body(Full::new(Bytes::from_static(b"not found\n"))),
                    };
                    Ok::<_, Infallible>(resp.expect("static response"))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

pub fn render(router: &Router, link: &LinkState) -> String {
    let mut out = router.render_metrics();
    let last = link.last_contact.load(Relaxed);
    let age = if last == 0 {
        f64::NAN
    } else {
        crate::unix_seconds().saturating_sub(last) as f64
    };
    let _ = write!(
        out,
        "# HELP liftoff_router_control_connected Whether the last exchange with the daemon succeeded.\n\
         # TYPE liftoff_router_control_connected gauge\n\
         liftoff_router_control_connected {}\n\
         # HELP liftoff_router_snapshot_version The snapshot version this router serves.\n\
         # TYPE liftoff_router_snapshot_version gauge\n\
         liftoff_router_snapshot_version {}\n\
         # HELP liftoff_router_control_last_contact_age_seconds Seconds since the daemon last answered.\n\
         # TYPE liftoff_router_control_last_contact_age_seconds gauge\n\
         liftoff_router_control_last_contact_age_seconds {}\n",
        u8::from(link.connected.load(Relaxed)),
        link.applied.load(Relaxed),
        age
    );
    out
}
