//! Formatting shared by the renderers: times, durations, numbers, escaping.

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

/// `850ms`, `12.3s`, `4m 05s`, `2h 03m`.
pub(crate) fn duration(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    let text = if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        let tenths = (ms + 50) / 100;
        match (tenths / 10, tenths % 10) {
            (secs, 0) => format!("{secs}s"),
            (secs, tenth) => format!("{secs}.{tenth}s"),
        }
    } else if ms < 3_600_000 {
        let secs = (ms + 500) / 1_000;
        format!("{}m {:02}s", secs / 60, secs % 60)
    } else {
        let mins = (ms + 30_000) / 60_000;
        format!("{}h {:02}m", mins / 60, mins % 60)
    };
    format!("{sign}{text}")
}

/// A duration with its exact milliseconds: `9s (9000 ms)`.
pub(crate) fn duration_exact(ms: i64) -> String {
    format!("{} ({ms} ms)", duration(ms))
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

pub(crate) fn millis(v: f64) -> String {
    if v >= 1_000.0 {
        format!("{}s", number(v / 1_000.0, 2))
    } else {
        format!("{}ms", number(v, 1))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(850), "850ms");
        assert_eq!(duration(9_000), "9s");
        assert_eq!(duration(12_340), "12.3s");
        assert_eq!(duration(245_000), "4m 05s");
        assert_eq!(duration(7_380_000), "2h 03m");
        assert_eq!(duration_exact(9_000), "9s (9000 ms)");
    }

    #[test]
    fn numbers_drop_trailing_zeros() {
        assert_eq!(number(12.5, 2), "12.5");
        assert_eq!(number(3.0, 2), "3");
        assert_eq!(number(-0.0001, 2), "0");
        assert_eq!(percent(0.25), "0.25%");
        assert_eq!(millis(1500.0), "1.5s");
        assert_eq!(millis(87.26), "87.3ms");
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
