//! Formatting shared by the renderers: times, durations, numbers, escaping.

use std::time::Duration;

use jiff::Timestamp;

/// `2026-11-21 10:00:05 UTC`.
pub(crate) fn full_time(at: Timestamp) -> String {
    at.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `10:00:05` on the day `day_of` falls on (UTC), the full date and time otherwise.
pub(crate) fn time_of_day(at: Timestamp, day_of: Option<Timestamp>) -> String {
    let day = |t: Timestamp| t.as_second().div_euclid(86_400);
    match day_of {
        Some(d) if day(d) == day(at) => at.strftime("%H:%M:%S").to_string(),
        _ => at.strftime("%Y-%m-%d %H:%M:%S").to_string(),
    }
}

/// `850 ms`, `12.3 s`, `4 m 05 s`, `2 h 03 m` ([`liftoff_plan::human::duration`]); a
/// negative span (clocks that disagree) keeps its sign.
pub(crate) fn duration(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let text = liftoff_plan::human::duration(Duration::from_millis(ms.unsigned_abs()));
    format!("{sign}{text}")
}

/// A duration with its exact milliseconds when it is rounded: `9 s (9000 ms)`, `44 ms`.
pub(crate) fn duration_exact(ms: i64) -> String {
    match ms.unsigned_abs() {
        0..1_000 => duration(ms),
        _ => format!("{} ({ms} ms)", duration(ms)),
    }
}

/// A number with at most `decimals` decimals and no trailing zeros.
pub(crate) fn number(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" { "0".into() } else { s }
}

pub(crate) fn percent(v: f64) -> String {
    format!("{}%", number(v, 2))
}

/// A latency in milliseconds, as [`duration`] shows it: `87 ms`, `1.5 s`.
pub(crate) fn millis(v: f64) -> String {
    liftoff_plan::human::duration_secs(v / 1_000.0)
}

/// The columns of a trigger's judged window, one row per version.
pub(crate) const JUDGED_COLUMNS: [&str; 6] = [
    "Version",
    "Window",
    "Requests",
    "Failed",
    "Error rate",
    "p95",
];

/// A version's row in the window a trigger judged: the spike it fired on.
pub(crate) fn judged_row(w: &crate::model::JudgedWindow) -> Vec<String> {
    vec![
        w.version.clone(),
        duration(w.window_ms),
        w.requests.to_string(),
        w.failed.map_or("-".into(), |f| f.to_string()),
        w.error_rate_percent.map_or("-".into(), percent),
        w.p95_ms.map_or("-".into(), millis),
    ]
}

/// `1 evaluation`, `6 evaluations`.
pub(crate) fn count(n: usize, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

/// Escape for HTML text and attribute values.
pub(crate) fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One Markdown table cell: on one line, with `|` escaped (GitHub's tables honour
/// `\|` inside code spans too) and a `<` that could start a tag escaped outside code
/// spans, so that user text is shown rather than taken for HTML.
pub(crate) fn md_cell(s: &str) -> String {
    md_escape(&md_line(s), true)
}

/// Markdown text outside a table: on one line, tags escaped outside code spans.
pub(crate) fn md_text(s: &str) -> String {
    md_escape(&md_line(s), false)
}

/// On one line: runs of whitespace (newlines included) become one space.
pub(crate) fn md_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn md_escape(s: &str, in_table: bool) -> String {
    let chars: Vec<char> = s.chars().collect();
    let run_at = |i: usize| chars[i..].iter().take_while(|c| **c == '`').count();
    let mut out = String::with_capacity(s.len());
    let mut code_until = 0; // end (exclusive) of the code span being copied
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '`' && i >= code_until {
            // A run of n backticks opens a code span only if a run of exactly n closes it.
            let n = run_at(i);
            let mut j = i + n;
            while j < chars.len() {
                if chars[j] == '`' {
                    let m = run_at(j);
                    if m == n {
                        code_until = j + m;
                        break;
                    }
                    j += m;
                } else {
                    j += 1;
                }
            }
            for _ in 0..n {
                out.push('`');
            }
            i += n;
            continue;
        }
        match c {
            '|' if in_table => out.push_str("\\|"),
            // Only what could open a tag, a comment or an autolink: `p95 < 1s` stays.
            '<' if i >= code_until
                && chars
                    .get(i + 1)
                    .is_some_and(|n| n.is_ascii_alphabetic() || matches!(n, '/' | '!' | '?')) =>
            {
                out.push_str("\\<")
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// The columns of the per-version table.
pub(crate) const TRAFFIC_COLUMNS: [&str; 7] = [
    "Version",
    "Requests",
    "Failed",
    "Error rate",
    "Peak error rate",
    "Peak p95",
    "Last p95",
];

/// A version's row of the per-version table: its figures as text, the version first.
/// A figure its router does not measure says so, rather than `-` (no data).
pub(crate) fn traffic_row(v: &crate::model::VersionTraffic, not_measured: &[&str]) -> Vec<String> {
    let p95 = |ms: Option<f64>| match ms {
        Some(ms) => millis(ms),
        None if not_measured.contains(&"p95_ms") => "not measured".into(),
        None => "-".into(),
    };
    vec![
        v.version.clone(),
        v.requests.to_string(),
        v.failed.map_or("-".into(), |f| f.to_string()),
        v.error_rate_percent.map_or("-".into(), percent),
        v.peak_error_rate_percent.map_or("-".into(), percent),
        p95(v.peak_p95_ms),
        p95(v.last_p95_ms),
    ]
}

/// The line above the per-version table.
pub(crate) fn traffic_caption(t: &crate::model::Traffic) -> String {
    let by = match t.router {
        Some("haproxy") => " (HAProxy's `show stat` counters; it keeps no latencies)",
        Some("nginx") => " (nginx's access log)",
        Some("builtin") => " (the builtin router)",
        _ => "",
    };
    let samples = t.versions.iter().map(|v| v.samples).max().unwrap_or(0);
    format!(
        "Per version, over the launch's {}{by}:",
        count(samples, "traffic sample")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(44), "44 ms");
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(9_000), "9 s");
        assert_eq!(duration(12_340), "12.3 s");
        assert_eq!(duration(245_000), "4 m 05 s");
        assert_eq!(duration(7_380_000), "2 h 03 m");
        assert_eq!(duration(-1_200), "-1.2 s");
        assert_eq!(duration_exact(9_000), "9 s (9000 ms)");
        assert_eq!(duration_exact(44), "44 ms");
    }

    #[test]
    fn numbers_drop_trailing_zeros() {
        assert_eq!(number(12.5, 2), "12.5");
        assert_eq!(number(3.0, 2), "3");
        assert_eq!(number(-0.0001, 2), "0");
        assert_eq!(percent(0.25), "0.25%");
        assert_eq!(millis(1500.0), "1.5 s");
        assert_eq!(millis(87.26), "87 ms");
    }

    #[test]
    fn escaping_neutralises_markup_and_table_pipes() {
        assert_eq!(
            html("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        assert_eq!(md_cell("a | b\nc"), "a \\| b c");
        assert_eq!(
            md_text("<b> `<b>` ``x`<i>`` `<u>"),
            "\\<b> `<b>` ``x`<i>`` `\\<u>"
        );
        assert_eq!(md_cell("`a|b` <c>"), "`a\\|b` \\<c>");
        assert_eq!(md_text("p95 < 1s, </x>"), "p95 < 1s, \\</x>");
    }
}
