//! `liftoff load`: steady traffic from sticky users, for demos and tests. Keep-alive
//! connections, `concurrency` requests in flight, each from one of `users` users (the
//! `X-User-Id` header), until stopped or `duration` is over.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

#[derive(Default)]
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
    let stats = Arc::new(LoadStats::default());
    let driving = drive(url, concurrency, users, stats.clone());
    match duration {
        Some(d) => {
            let _ = tokio::time::timeout(d, driving).await;
        }
        None => driving.await,
    }
    stats
}

/// Send until dropped, counting outcomes into `stats`.
pub async fn drive(url: &str, concurrency: usize, users: u64, stats: Arc<LoadStats>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap_or_default();
    let started = Instant::now();
    // Dropping `drive` drops the set, which aborts every worker.
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..concurrency.max(1) {
        let (client, stats, url) = (client.clone(), stats.clone(), url.to_string());
        workers.spawn(async move {
            let mut n = w as u64 ^ started.elapsed().as_nanos() as u64;
            loop {
                n = n
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let user = format!("user-{}", (n >> 33) % users.max(1));
                match client.get(&url).header("x-user-id", user).send().await {
                    Ok(r) if r.status().is_success() => stats.ok.fetch_add(1, Relaxed),
                    _ => stats.failed.fetch_add(1, Relaxed),
                };
            }
        });
    }
    while workers.join_next().await.is_some() {}
}
