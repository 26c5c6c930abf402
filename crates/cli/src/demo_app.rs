//! `liftoff demo-app`: a tiny web service with a version, a failure rate and a
//! latency, so the demo (and anyone trying liftoff) has real services to launch.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

struct App {
    version: String,
    error_rate: f64,
    latency: Duration,
    served: AtomicU64,
}

pub async fn serve(
    port: u16,
    version: String,
    error_rate: f64,
    latency_ms: u64,
) -> std::io::Result<()> {
    let app = Arc::new(App {
        version,
        error_rate: error_rate.clamp(0.0, 1.0),
        latency: Duration::from_millis(latency_ms),
        served: AtomicU64::new(0),
    });
    let router = Router::new()
        .route(
            "/health",
            get(|State(app): State<Arc<App>>| async move { format!("ok v{}\n", app.version) }),
        )
        .fallback(get(answer))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    axum::serve(listener, router)
        .with_graceful_shutdown(liftoff_server::shutdown_signal())
        .await
}

/// Fails a deterministic `error_rate` share of requests (every second one at 0.5), so
/// a demo behaves the same every time.
async fn answer(State(app): State<Arc<App>>) -> (StatusCode, String) {
    let n = app.served.fetch_add(1, Ordering::Relaxed) as f64;
    tokio::time::sleep(app.latency).await;
    let fails = ((n + 1.0) * app.error_rate).floor() > (n * app.error_rate).floor();
    if fails {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("v{} failed\n", app.version),
        )
    } else {
        (StatusCode::OK, format!("hello from v{}\n", app.version))
    }
}
