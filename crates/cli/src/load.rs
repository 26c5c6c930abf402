//! `liftoff load`: steady traffic from sticky users, for demos and tests. Keep-alive
//! connections, `concurrency` requests in flight, each from one of `users` users (the
//! `X-User-Id` header), until stopped or `duration` is over.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

pub struct LoadStats {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
}

pub async fn run(
    url: &str,
    concurrency: usize,
    users: u64,
    duration: Option<Duration>,
) -> Arc<LoadStats> {
    let stats = Arc::new(LoadStats {
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap_or_default();
    let until = duration.map(|d| Instant::now() + d);
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|w| {
            let (client, stats, url) = (client.clone(), stats.clone(), url.to_string());
            tokio::spawn(async move {
                let mut n = w as u64;
                while until.is_none_or(|u| Instant::now() < u) {
                    n = n
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let user = format!("user-{}", (n >> 33) % users.max(1));
                    match client.get(&url).header("x-user-id", user).send().await {
                        Ok(r) if r.status().is_success() => stats.ok.fetch_add(1, Relaxed),
                        _ => stats.failed.fetch_add(1, Relaxed),
                    };
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    stats
}
