//! Deciding from observations: gates (thresholds) and the judge (candidate against
//! stable, Kayenta's model).
//!
//! Invariants:
//! - pure: observations come in as data; no I/O, no clock, no router internals;
//! - too little data is Inconclusive, never Successful: a gate does not pass because
//!   nobody used the candidate;
//! - a rollback trigger on a rate or a latency fires on evidence (a confidence bound
//!   past its threshold), never on the value of a small window alone (`trigger`); its
//!   episodes (crossed, cleared, fired, source failing) are decided here too (`episode`);
//! - the judge never fails a candidate because both versions had zero errors, and never
//!   passes one with errors because stable had none (spinnaker/kayenta#799).

mod episode;
mod judge;
mod trigger;

pub use episode::{EpisodeDecision, TriggerEpisodes, TriggerEvaluation};
pub use judge::{Compare, Judgement, MetricResult, MetricVerdict, Outcome as JudgeOutcome, judge};
pub use trigger::{
    Evidence, TriggerReading, TriggerState, percent_text, read_trigger, wilson, z_score,
};

use liftoff_plan::condition::{Condition, Metric, format_value};

/// What one version did over a window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    pub window_secs: f64,
    pub requests: u64,
    /// Requests that failed because of the version (5xx, unreachable, timeout).
    pub failed: u64,
    /// Latency histogram: (bucket upper bound in seconds, count), ascending bounds.
    pub latency: Vec<(f64, u64)>,
    /// Failed health checks in a row (0 when not checked).
    pub health_failures: u32,
}

impl Sample {
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            f64::NAN
        } else {
            self.failed as f64 / self.requests as f64
        }
    }

    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.window_secs.max(1e-9)
    }

    /// Latency quantile in seconds (bucket upper bound), NaN without data.
    pub fn quantile(&self, q: f64) -> f64 {
        let total: u64 = self.latency.iter().map(|(_, n)| n).sum();
        if total == 0 {
            return f64::NAN;
        }
        let rank = ((q * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bound, n) in &self.latency {
            seen += n;
            if seen >= rank {
                return *bound;
            }
        }
        f64::NAN
    }

    pub fn value(&self, metric: Metric) -> f64 {
        match metric {
            Metric::ErrorRate => self.error_rate(),
            Metric::P50 => self.quantile(0.50),
            Metric::P95 => self.quantile(0.95),
            Metric::P99 => self.quantile(0.99),
            Metric::Rps => self.rps(),
            Metric::Requests => self.requests as f64,
            Metric::HealthFailures => f64::from(self.health_failures),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Successful,
    Failed,
    /// Too little data, no value, or the metric source failed.
    Inconclusive,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Successful => "successful",
            Verdict::Failed => "failed",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub verdict: Verdict,
    /// The observed value (NaN when there was none).
    pub value: f64,
    /// One line: "candidate error_rate 0.40% < 1% (812 requests over 30s)".
    pub reason: String,
}

/// Judge one condition against a sample. Metrics computed from requests need at least
/// `min_requests`; counts and health do not.
pub fn evaluate(cond: &Condition, sample: &Sample, min_requests: u64) -> Evaluation {
    let value = sample.value(cond.metric);
    let version = cond.version.label();
    let metric = cond.metric.name();
    let needs_traffic = matches!(
        cond.metric,
        Metric::ErrorRate | Metric::P50 | Metric::P95 | Metric::P99
    );
    if needs_traffic && sample.requests < min_requests {
        return Evaluation {
            verdict: Verdict::Inconclusive,
            value,
            reason: format!(
                "too little data: {version} had {} requests over {:.0}s, {min_requests} needed for `{cond}`",
                sample.requests, sample.window_secs
            ),
        };
    }
    if value.is_nan() {
        return Evaluation {
            verdict: Verdict::Inconclusive,
            value,
            reason: format!("no value for {version} {metric}"),
        };
    }
    let holds = cond.holds(value);
    Evaluation {
        verdict: if holds {
            Verdict::Successful
        } else {
            Verdict::Failed
        },
        value,
        reason: format!(
            "{version} {metric} {} {} {} ({} requests over {:.0}s)",
            format_value(cond.metric, value),
            if holds {
                cond.op.symbol()
            } else {
                negate(cond.op.symbol())
            },
            cond.threshold_text(),
            sample.requests,
            sample.window_secs
        ),
    }
}

fn negate(op: &str) -> &'static str {
    match op {
        "<" => ">=",
        "<=" => ">",
        ">" => "<=",
        _ => "<",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use liftoff_plan::condition::parse_condition;

    fn sample(requests: u64, failed: u64) -> Sample {
        Sample {
            window_secs: 10.0,
            requests,
            failed,
            latency: vec![(0.01, requests / 2), (0.1, requests - requests / 2)],
            health_failures: 0,
        }
    }

    #[test]
    fn good_bad_and_too_little() {
        let gate = parse_condition("error_rate < 1%", false).unwrap();
        assert_eq!(
            evaluate(&gate, &sample(1000, 2), 100).verdict,
            Verdict::Successful
        );
        let bad = evaluate(&gate, &sample(1000, 50), 100);
        assert_eq!(bad.verdict, Verdict::Failed);
        assert_eq!(
            bad.reason,
            "candidate error_rate 5.00% >= 1.00% (1000 requests over 10s)"
        );
        let few = evaluate(&gate, &sample(20, 0), 100);
        assert_eq!(few.verdict, Verdict::Inconclusive, "{}", few.reason);
        assert_eq!(
            evaluate(&gate, &sample(0, 0), 0).verdict,
            Verdict::Inconclusive,
            "NaN is not a pass"
        );
        let p95 = parse_condition("p95 < 50ms", false).unwrap();
        assert_eq!(
            evaluate(&p95, &sample(1000, 0), 100).verdict,
            Verdict::Failed
        );
        let rps = parse_condition("requests >= 100", false).unwrap();
        assert_eq!(
            evaluate(&rps, &sample(20, 0), 100).verdict,
            Verdict::Failed,
            "counts are judged at any volume"
        );
    }
}

/// Judge a PromQL gate's result. An empty result or a failed query is Inconclusive:
/// it must never count as a pass (flux/flagger#1581: a query that matched nothing let
/// a broken canary through).
pub fn evaluate_query(
    gate: &liftoff_plan::QueryGate,
    result: Result<Option<f64>, String>,
) -> Evaluation {
    let shown = |v: f64| {
        format!("{v:.6}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    };
    let threshold = shown(gate.threshold);
    match result {
        Err(e) => Evaluation {
            verdict: Verdict::Inconclusive,
            value: f64::NAN,
            reason: format!("query failed: {e}"),
        },
        Ok(None) => Evaluation {
            verdict: Verdict::Inconclusive,
            value: f64::NAN,
            reason: "the query returned no data (never counted as a pass)".into(),
        },
        Ok(Some(v)) if v.is_nan() => Evaluation {
            verdict: Verdict::Inconclusive,
            value: v,
            reason: "the query returned NaN".into(),
        },
        Ok(Some(v)) => {
            let holds = gate.op.holds(v, gate.threshold);
            Evaluation {
                verdict: if holds {
                    Verdict::Successful
                } else {
                    Verdict::Failed
                },
                value: v,
                reason: format!(
                    "{} = {} {} {threshold}",
                    gate.version.label(),
                    shown(v),
                    if holds {
                        gate.op.symbol()
                    } else {
                        negate(gate.op.symbol())
                    }
                ),
            }
        }
    }
}

#[cfg(test)]
mod query_tests {
    use super::*;
    use liftoff_plan::QueryGate;
    use liftoff_plan::condition::{Op, Version};

    fn gate() -> QueryGate {
        QueryGate {
            name: "errors".into(),
            query: liftoff_plan::Text::literal("sum(rate(x[1m]))"),
            version: Version::Candidate,
            op: Op::Lt,
            threshold: 0.01,
            sustained: None,
        }
    }

    #[test]
    fn empty_results_and_errors_are_never_a_pass() {
        assert_eq!(
            evaluate_query(&gate(), Ok(Some(0.002))).verdict,
            Verdict::Successful
        );
        let bad = evaluate_query(&gate(), Ok(Some(0.05)));
        assert_eq!(
            (bad.verdict, bad.reason.as_str()),
            (Verdict::Failed, "candidate = 0.05 >= 0.01")
        );
        assert_eq!(
            evaluate_query(&gate(), Ok(None)).verdict,
            Verdict::Inconclusive
        );
        assert_eq!(
            evaluate_query(&gate(), Ok(Some(f64::NAN))).verdict,
            Verdict::Inconclusive
        );
        assert_eq!(
            evaluate_query(&gate(), Err("connection refused".into())).verdict,
            Verdict::Inconclusive
        );
    }
}
