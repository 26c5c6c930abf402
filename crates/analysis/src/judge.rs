//! Candidate against stable over the same window: a one-sided two-proportion z-test on
//! error rates and a one-sided Mann–Whitney U test on latencies, each with a tolerance
//! and a confidence level, rolled into a 0–100 score (Kayenta's model).

use crate::Sample;

#[derive(Clone, Debug, PartialEq)]
pub struct Compare {
    /// Candidate latency may be this much worse (0.1 = 10%) before it counts.
    pub latency_tolerance: f64,
    /// Candidate error rate may exceed stable's by this much, absolute (0.005 = 0.5 pp).
    pub error_tolerance: f64,
    /// Confidence that a difference is real before it counts (0.95).
    pub confidence: f64,
    /// Each version needs this many requests, or the judgement is inconclusive.
    pub min_requests: u64,
    /// A failed critical metric fails the launch whatever the score.
    pub critical_errors: bool,
    pub critical_latency: bool,
    pub pass_score: f64,
    pub marginal_score: f64,
}

impl Default for Compare {
    fn default() -> Self {
        Self {
            latency_tolerance: 0.10,
            error_tolerance: 0.005,
            confidence: 0.95,
            min_requests: 100,
            critical_errors: true,
            critical_latency: false,
            pass_score: 75.0,
            marginal_score: 50.0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricVerdict {
    Pass,
    /// Significantly worse than stable beyond the tolerance.
    Fail,
    NoData,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MetricResult {
    pub metric: &'static str,
    pub critical: bool,
    pub verdict: MetricVerdict,
    /// One-sided p-value of "the candidate is worse beyond the tolerance".
    pub p_value: f64,
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Marginal,
    Fail,
    Inconclusive,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Judgement {
    pub outcome: Outcome,
    pub score: f64,
    pub metrics: Vec<MetricResult>,
    pub summary: String,
}

pub fn judge(candidate: &Sample, stable: &Sample, cfg: &Compare) -> Judgement {
    if candidate.requests < cfg.min_requests || stable.requests < cfg.min_requests {
        return Judgement {
            outcome: Outcome::Inconclusive,
            score: f64::NAN,
            metrics: Vec::new(),
            summary: format!(
                "too little data to compare: candidate {} and stable {} requests, {} each needed",
                candidate.requests, stable.requests, cfg.min_requests
            ),
        };
    }
    let alpha = 1.0 - cfg.confidence;
    let metrics = vec![
        errors(candidate, stable, cfg, alpha),
        latency(candidate, stable, cfg, alpha),
    ];
    let judged: Vec<&MetricResult> = metrics
        .iter()
        .filter(|m| m.verdict != MetricVerdict::NoData)
        .collect();
    let score = if judged.is_empty() {
        f64::NAN
    } else {
        100.0
            * judged
                .iter()
                .filter(|m| m.verdict == MetricVerdict::Pass)
                .count() as f64
            / judged.len() as f64
    };
    let critical_failed = metrics
        .iter()
        .any(|m| m.critical && m.verdict == MetricVerdict::Fail);
    let outcome = if judged.is_empty() {
        Outcome::Inconclusive
    } else if critical_failed || score < cfg.marginal_score {
        Outcome::Fail
    } else if score < cfg.pass_score {
        Outcome::Marginal
    } else {
        Outcome::Pass
    };
    let details: Vec<String> = metrics
        .iter()
        .map(|m| format!("{}: {}", m.metric, m.detail))
        .collect();
    Judgement {
        outcome,
        score,
        summary: format!("score {score:.0}/100 ({})", details.join("; ")),
        metrics,
    }
}

/// One-sided two-proportion z-test of H1: p_candidate > p_stable + tolerance.
fn errors(c: &Sample, s: &Sample, cfg: &Compare, alpha: f64) -> MetricResult {
    let (pc, ps) = (c.error_rate(), s.error_rate());
    let detail_rates = format!("candidate {:.2}% vs stable {:.2}%", pc * 100.0, ps * 100.0);
    let excess = pc - ps - cfg.error_tolerance;
    // Both clean, or the candidate no worse than stable plus the tolerance: nothing to
    // test (and no 0/0 to misread as a failure).
    let p_value = if c.failed == 0 || excess <= 0.0 {
        1.0
    } else {
        let (nc, ns) = (c.requests as f64, s.requests as f64);
        // Unpooled variance: stable's zero errors must not make the candidate's look
        // certain or impossible; a floor keeps a single error from being infinitely
        // significant.
        let var = (pc * (1.0 - pc) / nc + ps * (1.0 - ps) / ns).max(1.0 / (nc * nc));
        upper_tail(excess / var.sqrt())
    };
    let fail = p_value < alpha;
    MetricResult {
        metric: "error_rate",
        critical: cfg.critical_errors,
        verdict: if fail {
            MetricVerdict::Fail
        } else {
            MetricVerdict::Pass
        },
        p_value,
        detail: format!(
            "{detail_rates}, tolerance {:.2} pp, p={p_value:.3} ({})",
            cfg.error_tolerance * 100.0,
            if fail { "worse" } else { "not worse" }
        ),
    }
}

/// One-sided Mann–Whitney U test of H1: candidate latency / (1 + tolerance) is
/// stochastically greater than stable's, on the binned histograms (ties by midrank,
/// normal approximation with tie correction).
fn latency(c: &Sample, s: &Sample, cfg: &Compare, alpha: f64) -> MetricResult {
    let (n1, n2) = (count(c), count(s));
    if n1 == 0 || n2 == 0 {
        return MetricResult {
            metric: "latency",
            critical: cfg.critical_latency,
            verdict: MetricVerdict::NoData,
            p_value: f64::NAN,
            detail: "no latency samples".into(),
        };
    }
    let scale = 1.0 + cfg.latency_tolerance;
    // Each bucket at its geometric middle; the candidate's shrunk by the tolerance.
    let mut points: Vec<(f64, u64, bool)> = Vec::new();
    let mid = |lower: f64, upper: f64| {
        if lower > 0.0 {
            (lower * upper).sqrt()
        } else {
            upper / 2.0
        }
    };
    for (sample, is_candidate) in [(c, true), (s, false)] {
        let mut lower = 0.0;
        for (upper, n) in &sample.latency {
            if *n > 0 {
                let v = mid(lower, *upper);
                points.push((if is_candidate { v / scale } else { v }, *n, is_candidate));
            }
            lower = *upper;
        }
    }
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Rank sum of the candidate with midranks for ties; tie correction term.
    let (mut rank_sum, mut tie_term, mut next_rank) = (0.0, 0.0, 1.0);
    let mut i = 0;
    while i < points.len() {
        let mut j = i;
        let mut group = 0u64;
        let mut cand_in_group = 0u64;
        while j < points.len() && (points[j].0 - points[i].0).abs() <= points[i].0.abs() * 1e-12 {
            group += points[j].1;
            if points[j].2 {
                cand_in_group += points[j].1;
            }
            j += 1;
        }
        let t = group as f64;
        let midrank = next_rank + (t - 1.0) / 2.0;
        rank_sum += midrank * cand_in_group as f64;
        tie_term += t * t * t - t;
        next_rank += t;
        i = j;
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let u = rank_sum - n1f * (n1f + 1.0) / 2.0;
    let mean = n1f * n2f / 2.0;
    let n = n1f + n2f;
    let var = n1f * n2f / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    let p_value = if var <= 0.0 {
        1.0
    } else {
        upper_tail((u - mean) / var.sqrt())
    };
    let fail = p_value < alpha;
    let ratio = c.quantile(0.95) / s.quantile(0.95);
    MetricResult {
        metric: "latency",
        critical: cfg.critical_latency,
        verdict: if fail {
            MetricVerdict::Fail
        } else {
            MetricVerdict::Pass
        },
        p_value,
        detail: format!(
            "candidate p95 {:.1}ms vs stable {:.1}ms ({:+.0}%), tolerance {:.0}%, p={p_value:.3} ({})",
            c.quantile(0.95) * 1000.0,
            s.quantile(0.95) * 1000.0,
            (ratio - 1.0) * 100.0,
            cfg.latency_tolerance * 100.0,
            if fail { "slower" } else { "not slower" }
        ),
    }
}

fn count(s: &Sample) -> u64 {
    s.latency.iter().map(|(_, n)| n).sum()
}

/// P(Z > z) for a standard normal Z.
fn upper_tail(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Complementary error function (Numerical Recipes' erfcc, |error| < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` requests, `failed` of them errors, latencies spread log-normally around
    /// `median_ms` into the router's bucket layout (4 per power of two).
    fn sample(n: u64, failed: u64, median_ms: f64) -> Sample {
        let bounds: Vec<f64> = (0..120)
            .map(|i| 16e-6 * 2f64.powf(f64::from(i) / 4.0))
            .collect();
        let mut counts = vec![0u64; bounds.len()];
        for k in 0..n {
            // Deterministic quantiles of a log-normal with sigma 0.3.
            let q = (k as f64 + 0.5) / n as f64;
            let z = probit(q);
            let v = median_ms / 1000.0 * (0.3 * z).exp();
            let b = bounds
                .iter()
                .position(|u| v < *u)
                .unwrap_or(bounds.len() - 1);
            counts[b] += 1;
        }
        Sample {
            window_secs: 60.0,
            requests: n,
            failed,
            latency: bounds.into_iter().zip(counts).collect(),
            health_failures: 0,
        }
    }

    fn probit(q: f64) -> f64 {
        // Bisection on the normal CDF: plenty for test data.
        let (mut lo, mut hi) = (-8.0, 8.0);
        for _ in 0..80 {
            let mid = (lo + hi) / 2.0;
            if 1.0 - upper_tail(mid) < q {
                lo = mid
            } else {
                hi = mid
            }
        }
        (lo + hi) / 2.0
    }

    #[test]
    fn equal_versions_pass() {
        let j = judge(
            &sample(2000, 0, 40.0),
            &sample(2000, 0, 40.0),
            &Compare::default(),
        );
        assert_eq!(j.outcome, Outcome::Pass, "{}", j.summary);
        assert_eq!(j.score, 100.0);
    }

    #[test]
    fn both_versions_with_zero_errors_is_not_a_failure() {
        let j = judge(
            &sample(500, 0, 40.0),
            &sample(500, 0, 40.0),
            &Compare::default(),
        );
        assert_eq!(j.metrics[0].verdict, MetricVerdict::Pass, "{}", j.summary);
    }

    #[test]
    fn errors_on_the_candidate_fail_even_when_stable_had_none() {
        let j = judge(
            &sample(2000, 100, 40.0),
            &sample(2000, 0, 40.0),
            &Compare::default(),
        );
        assert_eq!(j.metrics[0].verdict, MetricVerdict::Fail, "{}", j.summary);
        assert_eq!(
            j.outcome,
            Outcome::Fail,
            "error rate is critical by default: {}",
            j.summary
        );
    }

    #[test]
    fn a_candidate_thirty_percent_slower_fails_a_ten_percent_tolerance() {
        let cfg = Compare {
            critical_latency: true,
            ..Compare::default()
        };
        let j = judge(&sample(2000, 0, 52.0), &sample(2000, 0, 40.0), &cfg);
        assert_eq!(j.metrics[1].verdict, MetricVerdict::Fail, "{}", j.summary);
        assert_eq!(j.outcome, Outcome::Fail);
        // 5% slower is within a 10% tolerance.
        let j = judge(&sample(2000, 0, 42.0), &sample(2000, 0, 40.0), &cfg);
        assert_eq!(j.metrics[1].verdict, MetricVerdict::Pass, "{}", j.summary);
    }

    #[test]
    fn too_few_requests_is_inconclusive_not_a_pass() {
        let j = judge(
            &sample(30, 0, 40.0),
            &sample(2000, 0, 40.0),
            &Compare::default(),
        );
        assert_eq!(j.outcome, Outcome::Inconclusive, "{}", j.summary);
    }

    #[test]
    fn normal_tail_is_accurate() {
        assert!((upper_tail(1.644_853_6) - 0.05).abs() < 1e-6);
        assert!((upper_tail(0.0) - 0.5).abs() < 1e-7);
        assert!((upper_tail(-1.959_964) - 0.975).abs() < 1e-6);
    }
}
