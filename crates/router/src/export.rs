//! What a router tells the daemon: per-second observations of each (route, version),
//! its health and cumulative totals, and the snapshot it serves. A compatibility
//! boundary (routers and daemons of different builds talk), so the types here are plain
//! data with explicit field names.
//!
//! Seconds are Unix seconds, so the daemon can add up what several routers saw in the
//! same second. A report carries whole seconds' slots, not increments: the daemon
//! *replaces* what it holds for (router instance, route, version, second), which makes
//! a report idempotent — a repeated or retried one changes nothing — and lets a router
//! resend everything it still holds to a daemon that restarted and lost it.

use serde::{Deserialize, Serialize};

use crate::health::HealthReport;
use crate::split::Role;
use crate::stats::{LATENCY_BUCKETS, Window};

/// One version's counts in one second.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecondCounts {
    /// Unix seconds.
    pub second: u64,
    pub requests: u64,
    /// Status classes 1xx..5xx.
    pub status: [u64; 5],
    /// By [`crate::ErrorSource`], in its order.
    pub errors: [u64; 4],
    /// `(bucket, count)` of the log-scale latency histogram, non-zero buckets only.
    pub latency: Vec<(u16, u64)>,
}

impl Window {
    /// Add one second's counts.
    pub fn add(&mut self, s: &SecondCounts) {
        self.requests += s.requests;
        for (a, b) in self.status.iter_mut().zip(s.status) {
            *a += b;
        }
        for (a, b) in self.errors.iter_mut().zip(s.errors) {
            *a += b;
        }
        for &(bucket, n) in &s.latency {
            if let Some(slot) = self.latency.get_mut(usize::from(bucket)) {
                *slot += n;
            }
        }
    }
}

/// Cumulative counters since the router process started (for Prometheus).
pub type Totals = crate::stats::TotalsSnapshot;

/// A version's health as this router checked it.
pub type Health = HealthReport;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionReport {
    pub role: Role,
    pub url: String,
    pub in_flight: i64,
    /// The version's, from its instances' (healthy while one is).
    pub health: Health,
    /// Each instance, in the order the plan gives them.
    #[serde(default)]
    pub instances: Vec<crate::table::InstanceReport>,
    pub totals: Totals,
    /// A tester's overridden requests, when the route does not count them.
    #[serde(default)]
    pub overridden: Option<Totals>,
    /// Seconds in ascending order; the last may still be under way.
    pub seconds: Vec<SecondCounts>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteReport {
    pub route: String,
    /// Where this router listens for it (a route on port 0 gets a port per router).
    pub listen: std::net::SocketAddr,
    pub weight_bp: u16,
    pub versions: Vec<VersionReport>,
}

/// One router's report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// The router's name in the fleet (`--id`, by default host and state directory).
    pub router: String,
    /// Random per process: a successor under the same name is another instance, so
    /// what the two saw in the seconds they overlapped is added, not replaced.
    pub instance: String,
    /// The snapshot version it serves.
    pub applied: u64,
    /// Its route listeners, for `status`.
    pub listening: Vec<std::net::SocketAddr>,
    pub routes: Vec<RouteReport>,
}

/// The daemon's answer to a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportAck {
    /// Random per daemon process: when it changes, the router sends all it holds.
    pub daemon: String,
}

/// Sparse latency buckets.
pub(crate) fn sparse(latency: &[u64; LATENCY_BUCKETS]) -> Vec<(u16, u64)> {
    latency
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(i, n)| (i as u16, *n))
        .collect()
}
