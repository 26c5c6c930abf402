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
    /// Share of failures, as f64 bits: changeable at run time (`PUT /_demo/error-rate`).
    error_rate: AtomicU64,
    latency: Duration,
    served: AtomicU64,
}

/// Whether the demo-app on `port` answers `GET /health` with 200 within 2 s.
pub async fn healthy(port: u16) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| format!("cannot ask: {e}"))?;
        let mut head = [0u8; 12];
        stream
            .read_exact(&mut head)
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        match &head[9..12] {
            b"200" => Ok(()),
            status => Err(format!(
                "/health answered {}",
                String::from_utf8_lossy(status)
            )),
        }
    };
    tokio::time::timeout(Duration::from_secs(2), ask)
        .await
        .unwrap_or_else(|_| Err("no answer within 2 s".into()))
}

pub async fn serve(
    port: u16,
    version: String,
    error_rate: f64,
    latency_ms: u64,
) -> std::io::Result<()> {
    let app = Arc::new(App {
        version,
        error_rate: AtomicU64::new(error_rate.clamp(0.0, 1.0).to_bits()),
        latency: Duration::from_millis(latency_ms),
        served: AtomicU64::new(0),
    });
    let router = Router::new()
        .route(
            "/health",
            get(|State(app): State<Arc<App>>| async move { format!("ok v{}\n", app.version) }),
        )
        .route("/_demo/error-rate", axum::routing::put(set_error_rate))
        .fallback(get(answer))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    axum::serve(listener, router)
        .with_graceful_shutdown(liftoff_server::shutdown_signal())
        .await
}

/// Lets a demo or a test break a running version: `curl -X PUT -d 0.5 .../_demo/error-rate`.
async fn set_error_rate(State(app): State<Arc<App>>, body: String) -> (StatusCode, String) {
    match body.trim().parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => {
            app.error_rate.store(rate.to_bits(), Ordering::Relaxed);
            (StatusCode::OK, format!("error rate {rate}\n"))
        }
        _ => (
            StatusCode::BAD_REQUEST,
            "send a number from 0 to 1\n".into(),
        ),
    }
}

/// Fails a deterministic `error_rate` share of requests (every second one at 0.5), so
/// a demo behaves the same every time.
async fn answer(State(app): State<Arc<App>>) -> (StatusCode, String) {
    let n = app.served.fetch_add(1, Ordering::Relaxed) as f64;
    tokio::time::sleep(app.latency).await;
    let rate = f64::from_bits(app.error_rate.load(Ordering::Relaxed));
    let fails = ((n + 1.0) * rate).floor() > (n * rate).floor();
    if fails {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("v{} failed\n", app.version),
        )
    } else {
        (StatusCode::OK, format!("hello from v{}\n", app.version))
    }
}
