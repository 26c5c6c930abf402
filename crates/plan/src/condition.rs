//! Conditions: `error_rate < 1%`, `stable.p95 <= 500ms over 1m`, `health_failures >= 3`,
//! and for triggers `error_rate > 5% for 5m`. Parsed at load; pure.

use std::fmt;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Candidate,
    Stable,
}

impl Version {
    pub fn label(self) -> &'static str {
        match self {
            Version::Candidate => "candidate",
            Version::Stable => "stable",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Failed requests / requests (a ratio; written as a percentage).
    ErrorRate,
    P50,
    P95,
    P99,
    /// Requests per second.
    Rps,
    /// Requests in the window.
    Requests,
    /// Failed health checks in a row.
    HealthFailures,
}

impl Metric {
    pub const ALL: [(&'static str, Metric); 7] = [
        ("error_rate", Metric::ErrorRate),
        ("p50", Metric::P50),
        ("p95", Metric::P95),
        ("p99", Metric::P99),
        ("rps", Metric::Rps),
        ("requests", Metric::Requests),
        ("health_failures", Metric::HealthFailures),
    ];

    pub fn name(self) -> &'static str {
        Metric::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("?", |(n, _)| n)
    }

    pub fn is_latency(self) -> bool {
        matches!(self, Metric::P50 | Metric::P95 | Metric::P99)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

/// A threshold on one metric of one version.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub version: Version,
    pub metric: Metric,
    pub op: Op,
    /// Ratio for `error_rate` (1% = 0.01), seconds for latencies, a count otherwise.
    pub threshold: f64,
    /// The window the metric is computed over (`over 1m`); `None`: the caller's default.
    pub window: Option<Duration>,
    /// For triggers: how long the condition must hold before it fires (`for 5m`).
    pub sustained: Option<Duration>,
    /// As written, for status and reports.
    pub text: String,
}

impl Condition {
    /// Does `value` satisfy the condition?
    pub fn holds(&self, value: f64) -> bool {
        self.op.holds(value, self.threshold)
    }

    /// The threshold as written units: `1%`, `500ms`, `3`.
    pub fn threshold_text(&self) -> String {
        format_value(self.metric, self.threshold)
    }
}

/// A metric value in its natural unit: `2.50%`, `412ms`, `37`.
pub fn format_value(metric: Metric, value: f64) -> String {
    if value.is_nan() {
        return "no data".into();
    }
    match metric {
        Metric::ErrorRate => format!("{:.2}%", value * 100.0),
        m if m.is_latency() => {
            if value >= 1.0 {
                format!("{value:.2}s")
            } else {
                format!("{:.1}ms", value * 1000.0)
            }
        }
        Metric::Rps => format!("{value:.1}"),
        _ => format!("{value:.0}"),
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Why a condition did not parse; `offset` is a byte offset into the text.
#[derive(Debug, PartialEq, Eq)]
pub struct ConditionError {
    pub offset: usize,
    pub message: String,
    pub hint: Option<String>,
}

/// Parse `[version.]metric op value [over DURATION] [for DURATION]`.
pub fn parse_condition(text: &str, allow_for: bool) -> Result<Condition, ConditionError> {
    let err = |offset: usize, message: String, hint: Option<String>| ConditionError {
        offset,
        message,
        hint,
    };
    let tokens = tokenize(text);
    let mut it = tokens.iter().peekable();
    let Some(&(at, subject)) = it.next() else {
        return Err(err(
            0,
            "empty condition".into(),
            Some("e.g. `error_rate < 1%`".into()),
        ));
    };
    let (version, metric_name, metric_at) = match subject.split_once('.') {
        Some(("candidate", m)) => (Version::Candidate, m, at + "candidate.".len()),
        Some(("stable", m)) => (Version::Stable, m, at + "stable.".len()),
        Some((v, _)) => {
            return Err(err(
                at,
                format!("unknown version `{v}`"),
                Some("use `candidate.` (the default) or `stable.`".into()),
            ));
        }
        None => (Version::Candidate, subject, at),
    };
    let Some(metric) = Metric::ALL
        .iter()
        .find(|(n, _)| *n == metric_name)
        .map(|(_, m)| *m)
    else {
        let names: Vec<&str> = Metric::ALL.iter().map(|(n, _)| *n).collect();
        let hint = crate::diag::did_you_mean(metric_name, &names)
            .map(|g| format!("did you mean `{g}`?"))
            .unwrap_or_else(|| format!("metrics: {}", names.join(", ")));
        return Err(err(
            metric_at,
            format!("unknown metric `{metric_name}`"),
            Some(hint),
        ));
    };
    let Some(&(op_at, op_text)) = it.next() else {
        return Err(err(
            text.len(),
            "missing comparison".into(),
            Some("e.g. `< 1%`".into()),
        ));
    };
    let op = match op_text {
        "<" => Op::Lt,
        "<=" => Op::Le,
        ">" => Op::Gt,
        ">=" => Op::Ge,
        other => {
            return Err(err(
                op_at,
                format!("`{other}` is not a comparison"),
                Some("use <, <=, > or >=".into()),
            ));
        }
    };
    let Some(&(value_at, value_text)) = it.next() else {
        return Err(err(text.len(), "missing threshold".into(), None));
    };
    let threshold =
        parse_threshold(metric, value_text).map_err(|(m, h)| err(value_at, m, Some(h)))?;
    let mut window = None;
    let mut sustained = None;
    while let Some(&(kw_at, kw)) = it.next() {
        let slot = match kw {
            "over" => &mut window,
            "for" if allow_for => &mut sustained,
            "for" => {
                return Err(err(
                    kw_at,
                    "`for` belongs to rollback triggers".into(),
                    Some("a gate is judged at each evaluation; use `over` for its window".into()),
                ));
            }
            other => {
                return Err(err(
                    kw_at,
                    format!("unexpected `{other}`"),
                    Some("expected `over DURATION` or `for DURATION`".into()),
                ));
            }
        };
        if slot.is_some() {
            return Err(err(kw_at, format!("`{kw}` given twice"), None));
        }
        let Some(&(d_at, d)) = it.next() else {
            return Err(err(
                text.len(),
                format!("`{kw}` needs a duration"),
                Some("e.g. `1m`".into()),
            ));
        };
        match humantime::parse_duration(d) {
            Ok(dur) if !dur.is_zero() => *slot = Some(dur),
            _ => {
                return Err(err(
                    d_at,
                    format!("`{d}` is not a duration"),
                    Some("e.g. `30s`, `5m`".into()),
                ));
            }
        }
    }
    Ok(Condition {
        version,
        metric,
        op,
        threshold,
        window,
        sustained,
        text: text.trim().to_string(),
    })
}

fn parse_threshold(metric: Metric, v: &str) -> Result<f64, (String, String)> {
    let bad = |hint: &str| {
        (
            format!("`{v}` is not a valid threshold for {}", metric.name()),
            hint.to_string(),
        )
    };
    match metric {
        Metric::ErrorRate => v
            .strip_suffix('%')
            .and_then(|n| n.parse::<f64>().ok())
            .filter(|n| (0.0..=100.0).contains(n))
            .map(|n| n / 100.0)
            .ok_or_else(|| bad("error rates are percentages, e.g. `1%` or `0.5%`")),
        m if m.is_latency() => humantime::parse_duration(v)
            .map(|d| d.as_secs_f64())
            .map_err(|_| bad("latencies are durations, e.g. `500ms` or `1s`")),
        _ => v
            .parse::<f64>()
            .ok()
            .filter(|n| *n >= 0.0)
            .ok_or_else(|| bad("a number, e.g. `10`")),
    }
}

/// Split on whitespace, keeping comparison operators apart even when glued
/// (`error_rate<1%`). Returns `(byte offset, token)`.
fn tokenize(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'<' || c == b'>' {
            if let Some(s) = start.take() {
                out.push((s, &text[s..i]));
            }
            let len = if bytes.get(i + 1) == Some(&b'=') {
                2
            } else {
                1
            };
            out.push((i, &text[i..i + len]));
            i += len;
            continue;
        }
        if c.is_ascii_whitespace() {
            if let Some(s) = start.take() {
                out.push((s, &text[s..i]));
            }
        } else if start.is_none() {
            start = Some(i);
        }
        i += 1;
    }
    if let Some(s) = start {
        out.push((s, &text[s..]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_examples_parse() {
        let c = parse_condition("error_rate < 1%", false).unwrap();
        assert_eq!(
            (c.version, c.metric, c.op, c.threshold),
            (Version::Candidate, Metric::ErrorRate, Op::Lt, 0.01)
        );
        let c = parse_condition("p95 < 500ms", false).unwrap();
        assert_eq!((c.metric, c.threshold), (Metric::P95, 0.5));
        let c = parse_condition("p99 <= 1s", false).unwrap();
        assert_eq!((c.op, c.threshold), (Op::Le, 1.0));
        assert_eq!(parse_condition("rps > 10", false).unwrap().threshold, 10.0);
        assert_eq!(
            parse_condition("requests >= 100", false).unwrap().metric,
            Metric::Requests
        );
        assert_eq!(
            parse_condition("health_failures >= 3", true)
                .unwrap()
                .metric,
            Metric::HealthFailures
        );
        let c = parse_condition("stable.error_rate < 2% over 1m", false).unwrap();
        assert_eq!(
            (c.version, c.window),
            (Version::Stable, Some(Duration::from_secs(60)))
        );
        let c = parse_condition("error_rate > 5% for 5m", true).unwrap();
        assert_eq!(c.sustained, Some(Duration::from_secs(300)));
        let c = parse_condition("error_rate>5% over 2s for 3s", true).unwrap();
        assert_eq!(
            (c.window, c.sustained),
            (Some(Duration::from_secs(2)), Some(Duration::from_secs(3)))
        );
        assert_eq!(c.threshold_text(), "5.00%");
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = parse_condition("eror_rate < 1%", false).unwrap_err();
        assert_eq!(
            (e.offset, e.hint.as_deref()),
            (0, Some("did you mean `error_rate`?"))
        );
        let e = parse_condition("canary.p95 < 1s", false).unwrap_err();
        assert!(e.message.contains("unknown version `canary`"));
        let e = parse_condition("p95 < 5%", false).unwrap_err();
        assert_eq!(e.offset, 6);
        let e = parse_condition("error_rate < 1", false).unwrap_err();
        assert!(e.hint.unwrap().contains("percentages"));
        let e = parse_condition("error_rate = 1%", false).unwrap_err();
        assert_eq!(e.offset, 11);
        let e = parse_condition("error_rate > 5% for 5m", false).unwrap_err();
        assert!(e.message.contains("belongs to rollback triggers"));
        let e = parse_condition("p95 < 1s over soon", false).unwrap_err();
        assert_eq!(e.offset, 14);
    }
}
