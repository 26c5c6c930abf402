//! Active health checks: a GET to each instance at an interval, off the request path,
//! sent on the instance's own connections (TLS and all), so a check fails for the
//! reasons a request would (`connection refused`, `TLS: invalid peer certificate: ...`).
//! An instance its checks find unhealthy leaves its version's balancer until they find
//! it healthy again (the version keeps its share of traffic; see `table::Version`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive successes that make an unhealthy upstream healthy again.
    pub healthy_threshold: u32,
    /// Consecutive failures that make a healthy upstream unhealthy.
    pub unhealthy_threshold: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self {
            path: "/health".into(),
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
        }
    }
}

/// An upstream's health as the checker last saw it. Healthy until proven otherwise.
pub struct HealthState {
    checked: AtomicBool,
    healthy: AtomicBool,
    consecutive_failures: AtomicU32,
    consecutive_successes: AtomicU32,
    total_failures: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Default for HealthState {
    fn default() -> Self {
        Self {
            checked: AtomicBool::new(false),
            healthy: AtomicBool::new(true),
            consecutive_failures: AtomicU32::new(0),
            consecutive_successes: AtomicU32::new(0),
            total_failures: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthReport {
    /// False until the first check ran (or when no check is configured).
    pub checked: bool,
    pub healthy: bool,
    /// The `health_failures` signal: failed checks in a row.
    pub consecutive_failures: u32,
    pub total_failures: u64,
    pub last_error: Option<String>,
}

impl HealthState {
    /// What the balancer reads: one atomic load.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Relaxed)
    }

    pub fn record(&self, check: &HealthCheck, result: Result<(), String>) {
        self.checked.store(true, Relaxed);
        match result {
            Ok(()) => {
                self.consecutive_failures.store(0, Relaxed);
                let ok = self.consecutive_successes.fetch_add(1, Relaxed) + 1;
                if ok >= check.healthy_threshold {
                    self.healthy.store(true, Relaxed);
                }
            }
            Err(e) => {
                self.consecutive_successes.store(0, Relaxed);
                self.total_failures.fetch_add(1, Relaxed);
                let failed = self.consecutive_failures.fetch_add(1, Relaxed) + 1;
                if failed >= check.unhealthy_threshold {
                    self.healthy.store(false, Relaxed);
                }
                *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            }
        }
    }

    pub fn report(&self) -> HealthReport {
        HealthReport {
            checked: self.checked.load(Relaxed),
            healthy: self.healthy.load(Relaxed),
            consecutive_failures: self.consecutive_failures.load(Relaxed),
            total_failures: self.total_failures.load(Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_flip_health_both_ways() {
        let check = HealthCheck::default();
        let h = HealthState::default();
        h.record(&check, Err("503".into()));
        h.record(&check, Err("503".into()));
        assert!(
            h.report().healthy,
            "two failures are below the threshold of three"
        );
        h.record(&check, Err("refused".into()));
        let r = h.report();
        assert!(!r.healthy);
        assert_eq!(
            (r.consecutive_failures, r.last_error.as_deref()),
            (3, Some("refused"))
        );
        h.record(&check, Ok(()));
        assert!(
            !h.report().healthy,
            "one success is below the healthy threshold"
        );
        h.record(&check, Ok(()));
        let r = h.report();
        assert!(r.healthy);
        assert_eq!((r.consecutive_failures, r.total_failures), (0, 3));
    }
}
