//! Per-version observations in one-second slots over a sliding window.
//!
//! Invariants:
//! - the request path only does relaxed atomic adds: no locks, no allocation;
//! - a slot is stamped with the second it holds; readers skip slots whose stamp is
//!   not the second they ask for, so a stale slot never pollutes a window;
//! - slots are cleared one second ahead by a ticker ([`VersionStats::prepare`]);
//!   a writer that finds its slot unprepared (ticker late) claims and clears it
//!   itself, which can lose a few counts at that second's boundary, never more;
//! - cumulative totals (for Prometheus counters) are kept apart from the window and
//!   only ever grow.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Seconds kept: a little over 17 minutes (the window must cover at least 15).
pub const WINDOW_SECS: u64 = 1024;
/// Log-scale latency buckets: four per power of two, from 16 µs to ~4.6 h.
pub const LATENCY_BUCKETS: usize = 4 * 30;

/// Where an error came from, so analysis can tell "the candidate answered 5xx" from
/// "the proxy could not reach it".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorSource {
    /// The upstream answered with a 5xx status.
    Upstream5xx = 0,
    /// Connecting to the upstream failed, or its connection broke before it answered.
    Connect = 1,
    /// The upstream did not answer within the request timeout.
    Timeout = 2,
    /// The client did not complete the exchange: it went away before the response,
    /// or its request body was malformed, too large or too slow (it got 400, 413 or
    /// 408). Never the version's fault: not in `error_rate`.
    ClientAbort = 3,
}

impl ErrorSource {
    pub const ALL: [ErrorSource; 4] = [
        ErrorSource::Upstream5xx,
        ErrorSource::Connect,
        ErrorSource::Timeout,
        ErrorSource::ClientAbort,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ErrorSource::Upstream5xx => "upstream_5xx",
            ErrorSource::Connect => "connect",
            ErrorSource::Timeout => "timeout",
            ErrorSource::ClientAbort => "client_abort",
        }
    }
}

/// Status classes 1xx..5xx, index 0..4.
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Prometheus histogram bounds, in seconds.
pub const PROM_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

struct Slot {
    second: AtomicU64,
    requests: AtomicU64,
    status: [AtomicU64; 5],
    errors: [AtomicU64; 4],
    /// Requests per latency bucket in one second: a `u32` holds any second's count,
    /// and halves what the window keeps (a megabyte per version).
    latency: [AtomicU32; LATENCY_BUCKETS],
}

impl Default for Slot {
    fn default() -> Self {
        Self {
            second: AtomicU64::new(u64::MAX),
            requests: AtomicU64::new(0),
            status: Default::default(),
            errors: Default::default(),
            latency: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }
}

impl Slot {
    fn clear(&self) {
        self.requests.store(0, Relaxed);
        for c in self.status.iter().chain(&self.errors) {
            c.store(0, Relaxed);
        }
        for c in &self.latency {
            c.store(0, Relaxed);
        }
    }
}

/// Cumulative counts for Prometheus: they only grow. Kept on their own (no window) for
/// requests that are shown but not judged (a tester's overridden requests).
#[derive(Default)]
pub struct Totals {
    status: [AtomicU64; 5],
    errors: [AtomicU64; 4],
    /// Non-cumulative counts per `PROM_BUCKETS` bound, plus one for +Inf.
    prom_buckets: [AtomicU64; PROM_BUCKETS.len() + 1],
    latency_sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Totals {
    pub fn record(&self, obs: Observation) {
        if let Some(status) = obs.status {
            self.status[status_class(status)].fetch_add(1, Relaxed);
        }
        if let Some(source) = obs.error {
            self.errors[source as usize].fetch_add(1, Relaxed);
        }
        let secs = obs.latency.as_secs_f64();
        let prom = PROM_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(PROM_BUCKETS.len());
        self.prom_buckets[prom].fetch_add(1, Relaxed);
        self.latency_sum_micros
            .fetch_add(micros(obs.latency), Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> TotalsSnapshot {
        let load = |a: &[AtomicU64]| a.iter().map(|c| c.load(Relaxed)).collect::<Vec<_>>();
        TotalsSnapshot {
            status: load(&self.status),
            errors: load(&self.errors),
            prom_buckets: load(&self.prom_buckets),
            latency_sum_secs: self.latency_sum_micros.load(Relaxed) as f64 / 1e6,
            count: self.count.load(Relaxed),
        }
    }
}

fn status_class(status: u16) -> usize {
    usize::from(status / 100).clamp(1, 5) - 1
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// One version's observations (of one route).
pub struct VersionStats {
    slots: Box<[Slot]>,
    totals: Totals,
}

/// What one request did.
#[derive(Clone, Copy, Debug)]
pub struct Observation {
    /// The status the client got, if any.
    pub status: Option<u16>,
    pub error: Option<ErrorSource>,
    /// Time to the response head (or to the failure).
    pub latency: Duration,
}

impl Default for VersionStats {
    fn default() -> Self {
        Self::new()
    }
}

impl VersionStats {
    pub fn new() -> Self {
        let slots = (0..WINDOW_SECS)
            .map(|_| Slot::default())
            .collect::<Vec<_>>();
        // Stamp every slot with an impossible second so nothing reads as current.
        for s in &slots {
            s.second.store(u64::MAX, Relaxed);
        }
        Self {
            slots: slots.into_boxed_slice(),
            totals: Totals::default(),
        }
    }

    fn slot(&self, second: u64) -> &Slot {
        &self.slots[(second % WINDOW_SECS) as usize]
    }

    /// Clear and stamp the slot for `second` before anyone writes to it.
    pub fn prepare(&self, second: u64) {
        let slot = self.slot(second);
        if slot.second.load(Relaxed) != second {
            slot.clear();
            slot.second.store(second, Relaxed);
        }
    }

    pub fn record(&self, second: u64, obs: Observation) {
        let slot = self.slot(second);
        let stamp = slot.second.load(Relaxed);
        if stamp != second
            && slot
                .second
                .compare_exchange(stamp, second, Relaxed, Relaxed)
                .is_ok()
        {
            slot.clear();
        }
        slot.requests.fetch_add(1, Relaxed);
        if let Some(status) = obs.status {
            slot.status[status_class(status)].fetch_add(1, Relaxed);
        }
        if let Some(source) = obs.error {
            slot.errors[source as usize].fetch_add(1, Relaxed);
        }
        slot.latency[latency_bucket(micros(obs.latency))].fetch_add(1, Relaxed);
        self.totals.record(obs);
    }

    /// Everything observed in the `secs` seconds ending with `now` (inclusive). Time is
    /// proportional to `secs`.
    pub fn window(&self, now: u64, secs: u64) -> Window {
        let secs = secs.clamp(1, WINDOW_SECS - 1);
        let mut w = Window {
            seconds: secs,
            ..Window::default()
        };
        for second in now.saturating_sub(secs - 1)..=now {
            let slot = self.slot(second);
            if slot.second.load(Relaxed) != second {
                continue;
            }
            w.requests += slot.requests.load(Relaxed);
            for (i, c) in slot.status.iter().enumerate() {
                w.status[i] += c.load(Relaxed);
            }
            for (i, c) in slot.errors.iter().enumerate() {
                w.errors[i] += c.load(Relaxed);
            }
            for (i, c) in slot.latency.iter().enumerate() {
                w.latency[i] += u64::from(c.load(Relaxed));
            }
        }
        w
    }

    /// One second's counts, if anything was recorded in it (and it is still held).
    pub fn second(&self, second: u64) -> Option<crate::export::SecondCounts> {
        let slot = self.slot(second);
        if slot.second.load(Relaxed) != second {
            return None;
        }
        let requests = slot.requests.load(Relaxed);
        if requests == 0 {
            return None;
        }
        let load = |a: &[AtomicU64]| a.iter().map(|c| c.load(Relaxed)).collect::<Vec<_>>();
        let mut latency = [0u64; LATENCY_BUCKETS];
        for (i, c) in slot.latency.iter().enumerate() {
            latency[i] = u64::from(c.load(Relaxed));
        }
        Some(crate::export::SecondCounts {
            second,
            requests,
            status: load(&slot.status).try_into().unwrap_or_default(),
            errors: load(&slot.errors).try_into().unwrap_or_default(),
            latency: crate::export::sparse(&latency),
        })
    }

    /// Cumulative counters for exposition.
    pub fn totals(&self) -> TotalsSnapshot {
        self.totals.snapshot()
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotalsSnapshot {
    pub status: Vec<u64>,
    pub errors: Vec<u64>,
    /// Non-cumulative; the last is +Inf.
    pub prom_buckets: Vec<u64>,
    pub latency_sum_secs: f64,
    pub count: u64,
}

impl Default for TotalsSnapshot {
    /// Nothing counted, every series present.
    fn default() -> Self {
        Self {
            status: vec![0; STATUS_CLASSES.len()],
            errors: vec![0; ErrorSource::ALL.len()],
            prom_buckets: vec![0; PROM_BUCKETS.len() + 1],
            latency_sum_secs: 0.0,
            count: 0,
        }
    }
}

/// A summed window of observations.
#[derive(Clone, Debug)]
pub struct Window {
    /// How many 1-second buckets were summed (the newest may have only begun).
    pub seconds: u64,
    /// How much time those buckets cover, when known ([`crate::Router::window_since`]);
    /// zero means `seconds` whole seconds.
    pub covered: Duration,
    pub requests: u64,
    pub status: [u64; 5],
    pub errors: [u64; 4],
    pub latency: [u64; LATENCY_BUCKETS],
}

impl Default for Window {
    fn default() -> Self {
        Self {
            seconds: 0,
            covered: Duration::ZERO,
            requests: 0,
            status: [0; 5],
            errors: [0; 4],
            latency: [0; LATENCY_BUCKETS],
        }
    }
}

impl Window {
    /// Requests that failed because of the version: it answered 5xx, could not be
    /// reached, or timed out. Client aborts are not the version's fault.
    pub fn failed(&self) -> u64 {
        self.errors[ErrorSource::Upstream5xx as usize]
            + self.errors[ErrorSource::Connect as usize]
            + self.errors[ErrorSource::Timeout as usize]
    }

    /// Failed / requests, or NaN without requests (no data is not "0% errors").
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            f64::NAN
        } else {
            self.failed() as f64 / self.requests as f64
        }
    }

    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.span_secs()
    }

    /// The time the window covers, in seconds (at least a millisecond).
    pub fn span_secs(&self) -> f64 {
        let span = if self.covered.is_zero() {
            self.seconds as f64
        } else {
            self.covered.as_secs_f64()
        };
        span.max(0.001)
    }

    /// The latency below which a `q` share of requests fell (upper bound of its
    /// bucket: at most ~19% above the true value). `None` without requests.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.latency.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(Duration::from_micros(bucket_upper_micros(i)));
            }
        }
        None
    }
}

/// Bucket 0 holds < 16 µs; then four buckets per power of two.
pub fn latency_bucket(micros: u64) -> usize {
    if micros < 16 {
        return 0;
    }
    let log2 = 63 - u64::from(micros.leading_zeros());
    let sub = (micros >> (log2 - 2)) & 3;
    (((log2 - 4) * 4 + sub + 1) as usize).min(LATENCY_BUCKETS - 1)
}

/// The exclusive upper bound of a bucket, in microseconds.
pub fn bucket_upper_micros(bucket: usize) -> u64 {
    if bucket == 0 {
        return 16;
    }
    let b = bucket as u64 - 1;
    let (log2, sub) = (b / 4 + 4, b % 4);
    (4 + sub + 1) << (log2 - 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(status: u16, ms: u64) -> Observation {
        Observation {
            status: Some(status),
            error: (status >= 500).then_some(ErrorSource::Upstream5xx),
            latency: Duration::from_millis(ms),
        }
    }

    #[test]
    fn buckets_are_monotonic_and_bound_their_values() {
        let mut last = 0;
        for micros in [
            0, 15, 16, 17, 20, 31, 32, 100, 999, 1000, 12_345, 1_000_000, 60_000_000,
        ] {
            let b = latency_bucket(micros);
            assert!(b >= last, "{micros}");
            assert!(micros < bucket_upper_micros(b), "{micros} in bucket {b}");
            if b > 0 {
                assert!(
                    micros >= bucket_upper_micros(b - 1),
                    "{micros} belongs below"
                );
            }
            last = b;
        }
    }

    #[test]
    fn a_window_sums_only_its_seconds() {
        let s = VersionStats::new();
        for sec in 100..110 {
            for i in 0..100 {
                s.record(sec, obs(if i < 5 { 500 } else { 200 }, 10));
            }
        }
        let w = s.window(109, 10);
        assert_eq!(w.requests, 1000);
        assert!((w.error_rate() - 0.05).abs() < 1e-9);
        assert_eq!(w.rps(), 100.0);
        assert_eq!(s.window(109, 5).requests, 500);
        // Seconds that were never written (or were overwritten long ago) count as empty.
        assert_eq!(s.window(109 + WINDOW_SECS, 10).requests, 0);
        assert!(s.window(50, 10).error_rate().is_nan());
        assert_eq!(s.totals().status[1], 950);
        assert_eq!(s.totals().errors[0], 50);
    }

    #[test]
    fn quantiles_land_within_a_bucket_of_the_truth() {
        let s = VersionStats::new();
        for ms in 1..=100 {
            s.record(7, obs(200, ms));
        }
        let w = s.window(7, 1);
        let p50 = w.quantile(0.5).unwrap().as_secs_f64() * 1000.0;
        let p95 = w.quantile(0.95).unwrap().as_secs_f64() * 1000.0;
        assert!((50.0..=50.0 * 1.2).contains(&p50), "{p50}");
        assert!((95.0..=95.0 * 1.2).contains(&p95), "{p95}");
    }

    #[test]
    fn a_slot_is_reused_cleanly_after_the_window_wraps() {
        let s = VersionStats::new();
        s.record(3, obs(500, 1));
        s.prepare(3 + WINDOW_SECS);
        s.record(3 + WINDOW_SECS, obs(200, 1));
        let w = s.window(3 + WINDOW_SECS, 1);
        assert_eq!((w.requests, w.failed()), (1, 0));
    }
}
