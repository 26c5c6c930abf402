//! What an external router (`kind: haproxy`, `kind: nginx`) served, per version, for
//! `status` and the daemon's `/metrics`: the same per-version figures as the builtin
//! router's, read from the metric source that feeds the launch's gates and triggers
//! (HAProxy's `show stat`, nginx's access log). Sampled when asked, never invented: a
//! figure the router cannot tell is named in [`RouterKind::not_measured`].
//!
//! The driver keeps one [`Watched`] entry per running launch with an external router,
//! from its actor's start to its end; the report reads the journal's `Sampled` records
//! instead, which the same source fills for every router.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use liftoff_plan::condition::Version;
use liftoff_plan::{Plan, RouterSpec};

use crate::Driver;
use crate::ports::{MetricSource, PortError};

/// The windows `status` shows, as the builtin router's.
pub const WINDOWS_SECS: [u64; 2] = [10, 60];

/// Which external router a launch drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouterKind {
    Haproxy,
    Nginx,
}

impl RouterKind {
    pub fn of(plan: &Plan) -> Option<RouterKind> {
        match plan.router {
            Some(RouterSpec::Haproxy(_)) => Some(RouterKind::Haproxy),
            Some(RouterSpec::Nginx(_)) => Some(RouterKind::Nginx),
            _ => None,
        }
    }

    /// The plan's `router.kind`.
    pub fn label(self) -> &'static str {
        match self {
            RouterKind::Haproxy => "haproxy",
            RouterKind::Nginx => "nginx",
        }
    }

    /// The per-version fields of a route's view (the builtin router's) that this router
    /// cannot tell liftoff. HAProxy's `show stat` has request and failure counters but
    /// no latency distribution; nginx's access log has both, and its latencies. Neither
    /// tells liftoff what is in flight, its health checks, or a failure's source apart
    /// (`failed` counts them all).
    pub fn not_measured(self) -> Vec<&'static str> {
        let mut fields = vec![
            "in_flight",
            "healthy",
            "health_failures",
            "health_checked",
            "instances",
            "errors_upstream_5xx",
            "errors_connect",
            "errors_timeout",
            "client_aborts",
        ];
        if self == RouterKind::Haproxy {
            fields.extend(["p50_ms", "p95_ms", "p99_ms"]);
        }
        fields
    }
}

/// One version over one window, as its router counted it.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowFigures {
    /// The window asked for.
    pub seconds: u64,
    /// The span the router's numbers cover (shorter early in a launch).
    pub span_secs: f64,
    pub requests: u64,
    pub failed: u64,
    /// `None` without requests.
    pub error_rate: Option<f64>,
    pub rps: f64,
    /// `None` without requests, or when the router keeps no latencies (HAProxy).
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl WindowFigures {
    fn of(seconds: u64, s: &liftoff_analysis::Sample) -> WindowFigures {
        let ms = |q: f64| {
            let v = s.quantile(q);
            v.is_finite().then_some(v * 1000.0)
        };
        let rate = s.error_rate();
        WindowFigures {
            seconds,
            span_secs: s.window_secs,
            requests: s.requests,
            failed: s.failed,
            error_rate: (s.requests > 0 && rate.is_finite()).then_some(rate),
            rps: s.rps(),
            p50_ms: ms(0.5),
            p95_ms: ms(0.95),
            p99_ms: ms(0.99),
        }
    }
}

/// One version's windows ([`WINDOWS_SECS`]).
#[derive(Clone, Debug, PartialEq)]
pub struct VersionFigures {
    pub version: Version,
    pub windows: Vec<WindowFigures>,
}

/// A running launch's external router, per version.
#[derive(Clone, Debug)]
pub struct RouteFigures {
    pub launch_id: String,
    pub plan: Arc<Plan>,
    pub kind: RouterKind,
    /// Stable, then the candidate; Err: the router could not be read now.
    pub versions: Result<Vec<VersionFigures>, PortError>,
}

#[derive(Clone)]
struct Entry {
    plan: Arc<Plan>,
    kind: RouterKind,
    metrics: Arc<dyn MetricSource>,
    /// When the launch's actor started: nothing from before is counted.
    since: Instant,
}

/// The metric sources of the running launches with an external router, by launch id.
#[derive(Clone, Default)]
pub struct Watched(Arc<Mutex<HashMap<String, Entry>>>);

impl Watched {
    /// Keep `metrics` for `id` while its actor runs (nothing for other routers).
    pub(crate) fn watch(
        &self,
        id: &str,
        plan: &Arc<Plan>,
        metrics: Option<&Arc<dyn MetricSource>>,
    ) {
        let (Some(kind), Some(metrics)) = (RouterKind::of(plan), metrics) else {
            return;
        };
        let entry = Entry {
            plan: plan.clone(),
            kind,
            metrics: metrics.clone(),
            since: Instant::now(),
        };
        self.lock().insert(id.to_string(), entry);
    }

    pub(crate) fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn entries(&self, id: Option<&str>) -> Vec<(String, Entry)> {
        self.lock()
            .iter()
            .filter(|(k, _)| id.is_none_or(|id| id == k.as_str()))
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect()
    }
}

async fn figures(
    metrics: &dyn MetricSource,
    since: Instant,
) -> Result<Vec<VersionFigures>, PortError> {
    let mut versions = Vec::new();
    for version in [Version::Stable, Version::Candidate] {
        let mut windows = Vec::new();
        for secs in WINDOWS_SECS {
            let s = metrics
                .sample(version, Duration::from_secs(secs), since)
                .await?;
            windows.push(WindowFigures::of(secs, &s));
        }
        versions.push(VersionFigures { version, windows });
    }
    Ok(versions)
}

impl Driver {
    /// What the external router of launch `id` served over the last 10 s and 60 s, per
    /// version; `None` unless the launch runs here with `kind: haproxy` or `nginx`.
    pub async fn external_traffic(&self, id: &str) -> Option<RouteFigures> {
        self.external_routes_of(Some(id)).await.pop()
    }

    /// Every running launch's external router, as [`Driver::external_traffic`].
    pub async fn external_routes(&self) -> Vec<RouteFigures> {
        self.external_routes_of(None).await
    }

    async fn external_routes_of(&self, id: Option<&str>) -> Vec<RouteFigures> {
        let mut out = Vec::new();
        for (launch_id, e) in self.external.entries(id) {
            let versions = figures(e.metrics.as_ref(), e.since).await;
            if let Err(err) = &versions {
                tracing::debug!(launch = %launch_id, error = %err, "external router figures unavailable");
            }
            out.push(RouteFigures {
                launch_id,
                plan: e.plan,
                kind: e.kind,
                versions,
            });
        }
        out.sort_by(|a, b| a.launch_id.cmp(&b.launch_id));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_without_requests_has_no_rates_and_haproxys_no_latencies() {
        let idle = liftoff_analysis::Sample {
            window_secs: 10.0,
            requests: 0,
            failed: 0,
            latency: Vec::new(),
            health_failures: 0,
        };
        let w = WindowFigures::of(10, &idle);
        assert_eq!((w.error_rate, w.p95_ms, w.rps), (None, None, 0.0));
        let busy = liftoff_analysis::Sample {
            requests: 40,
            failed: 4,
            ..idle
        };
        let w = WindowFigures::of(10, &busy);
        assert_eq!(w.error_rate, Some(0.1));
        assert_eq!(w.p50_ms, None);
        assert!(RouterKind::Haproxy.not_measured().contains(&"p95_ms"));
        assert!(!RouterKind::Nginx.not_measured().contains(&"p95_ms"));
    }
}
