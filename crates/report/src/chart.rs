//! Charts: hand-written inline SVG for HTML (no script, no external asset, so a report
//! renders offline and prints), and one-line text summaries for Markdown.

use std::fmt::Write as _;

use jiff::Timestamp;

use crate::model::Point;
use crate::text;

/// Series colours: saturated enough to tell apart on paper and to find in a screenshot.
pub(crate) const STABLE: &str = "#1c7ed6";
pub(crate) const CANDIDATE: &str = "#f76707";
pub(crate) const WEIGHT: &str = "#7048e8";
pub(crate) const ROLLBACK: &str = "#e03131";
const OTHERS: &[&str] = &["#0ca678", "#ae3ec9", "#495057"];

/// The colour of a version's series; `index` picks one for versions other than
/// `stable` and `candidate`.
pub(crate) fn version_color(version: &str, index: usize) -> &'static str {
    match version {
        "stable" => STABLE,
        "candidate" => CANDIDATE,
        _ => OTHERS[index % OTHERS.len()],
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Unit {
    Percent,
    Millis,
}

impl Unit {
    /// An axis tick: exact, where a duration in a sentence is rounded (`2.5 ms`).
    fn label(self, v: f64) -> String {
        match self {
            Unit::Percent => text::percent(v),
            Unit::Millis if v < 1_000.0 => format!("{} ms", text::number(v, 1)),
            Unit::Millis => format!("{} s", text::number(v / 1_000.0, 2)),
        }
    }

    /// The smallest top of the y axis, so a flat zero line still has a scale.
    fn min_top(self) -> f64 {
        match self {
            Unit::Percent => 1.0,
            Unit::Millis => 10.0,
        }
    }
}

pub(crate) struct Line {
    pub label: String,
    pub color: &'static str,
    pub points: Vec<Point>,
    /// Hold each value until the next one (a weight), instead of joining them.
    pub stepped: bool,
}

pub(crate) struct Plot {
    /// For screen readers (`<title>`); the caption is the page's business.
    pub title: String,
    pub unit: Unit,
    pub from: Timestamp,
    pub to: Timestamp,
    /// A fixed top of the y axis (100% for a weight); otherwise from the data.
    pub y_top: Option<f64>,
    pub lines: Vec<Line>,
    /// A vertical line: when the rollback began.
    pub marker: Option<(Timestamp, &'static str)>,
}

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 30.0;
const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
const PLOT_H: f64 = HEIGHT - TOP - BOTTOM;
const AXIS_TEXT: &str = "#495057";
const GRID: &str = "#e9ecef";
/// Above this many points a series is drawn as a line only, without dots.
const MAX_DOTS: usize = 60;

/// 1, 2, 2.5 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let f = raw / magnitude;
    let nice = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .find(|n| f <= *n + 1e-9)
        .unwrap_or(10.0);
    nice * magnitude
}

/// Tick spacings for the time axis, in seconds.
const TIME_STEPS_SECS: &[i64] = &[
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1_800, 3_600, 7_200, 10_800, 21_600, 43_200,
    86_400, 172_800, 604_800,
];

impl Plot {
    pub(crate) fn svg(&self) -> String {
        let x0 = self.from.as_millisecond();
        let x1 = self.to.as_millisecond().max(x0 + 1_000);
        let sx = |at: Timestamp| {
            let ms = at.as_millisecond().clamp(x0, x1);
            LEFT + (ms - x0) as f64 / (x1 - x0) as f64 * PLOT_W
        };
        let (top, step) = match self.y_top {
            Some(top) => (top, top / 4.0),
            None => {
                let max = self
                    .lines
                    .iter()
                    .flat_map(|l| l.points.iter().map(|p| p.value))
                    .filter(|v| v.is_finite())
                    .fold(self.unit.min_top(), f64::max);
                let step = nice_step(max / 4.0);
                ((max / step).ceil() * step, step)
            }
        };
        let sy = |v: f64| TOP + PLOT_H - (v.clamp(0.0, top) / top) * PLOT_H;

        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" font-family="sans-serif" font-size="11"><title>{}</title>"#,
            text::html(&self.title)
        );
        let _ = write!(
            s,
            r##"<rect x="{LEFT}" y="{TOP}" width="{PLOT_W}" height="{PLOT_H}" fill="#ffffff" stroke="{GRID}"/>"##
        );

        // Value axis: gridlines and labels.
        let mut v = 0.0;
        while v <= top + step * 1e-6 {
            let y = sy(v);
            let _ = write!(
                s,
                r#"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="{GRID}"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="{AXIS_TEXT}">{}</text>"#,
                LEFT + PLOT_W,
                LEFT - 6.0,
                y + 4.0,
                text::html(&self.unit.label(v))
            );
            v += step;
        }

        // Time axis: a few round times.
        let span_secs = (x1 - x0) / 1_000;
        let step_secs = TIME_STEPS_SECS
            .iter()
            .copied()
            .find(|st| span_secs / st <= 6)
            .unwrap_or(604_800);
        let step_ms = step_secs * 1_000;
        let format = match step_secs {
            s if s >= 86_400 => "%m-%d",
            s if s >= 60 => "%H:%M",
            _ => "%H:%M:%S",
        };
        let mut tick = x0.div_euclid(step_ms) * step_ms;
        if tick < x0 {
            tick += step_ms;
        }
        while tick <= x1 {
            if let Ok(at) = Timestamp::from_millisecond(tick) {
                let x = sx(at);
                let _ = write!(
                    s,
                    r#"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{:.1}" stroke="{GRID}"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="{AXIS_TEXT}">{}</text>"#,
                    TOP + PLOT_H + 4.0,
                    TOP + PLOT_H + 18.0,
                    at.strftime(format)
                );
            }
            tick += step_ms;
        }
        let _ = write!(
            s,
            r#"<path d="M{LEFT} {TOP}V{:.1}H{:.1}" fill="none" stroke="{AXIS_TEXT}"/>"#,
            TOP + PLOT_H,
            LEFT + PLOT_W
        );

        // Series: a light area under each line first, then the lines over all areas.
        let base = sy(0.0);
        let paths: Vec<(String, &Line)> = self
            .lines
            .iter()
            .filter(|l| !l.points.is_empty())
            .map(|l| (self.path(l, &sx, &sy), l))
            .collect();
        for (d, line) in &paths {
            let first = sx(line.points[0].at);
            let last = match line.stepped {
                true => sx(self.to),
                false => sx(line.points[line.points.len() - 1].at),
            };
            let _ = write!(
                s,
                r#"<path d="{d}L{last:.1} {base:.1}L{first:.1} {base:.1}Z" fill="{}" fill-opacity="0.15" stroke="none"/>"#,
                line.color
            );
        }
        for (d, line) in &paths {
            let _ = write!(
                s,
                r#"<path d="{d}" fill="none" stroke="{}" stroke-width="2.5" stroke-linejoin="round"/>"#,
                line.color
            );
            if line.points.len() <= MAX_DOTS {
                for p in &line.points {
                    let _ = write!(
                        s,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#,
                        sx(p.at),
                        sy(p.value),
                        line.color
                    );
                }
            }
        }

        if let Some((at, label)) = self.marker {
            let x = sx(at);
            let _ = write!(
                s,
                r#"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{:.1}" stroke="{ROLLBACK}" stroke-width="2" stroke-dasharray="6 3"/><text x="{:.1}" y="{:.1}" fill="{ROLLBACK}" font-weight="bold">{}</text>"#,
                TOP + PLOT_H,
                x + 4.0,
                TOP + 12.0,
                text::html(label)
            );
        }

        // Legend, above the plot.
        let mut x = LEFT;
        let y = TOP - 12.0;
        for line in &self.lines {
            let _ = write!(
                s,
                r##"<line x1="{x:.1}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="{}" stroke-width="3"/><text x="{:.1}" y="{:.1}" fill="#212529">{}</text>"##,
                x + 18.0,
                line.color,
                x + 23.0,
                y + 4.0,
                text::html(&line.label)
            );
            x += 23.0 + 6.5 * line.label.chars().count() as f64 + 18.0;
        }
        s.push_str("</svg>");
        s
    }

    fn path(
        &self,
        line: &Line,
        sx: &impl Fn(Timestamp) -> f64,
        sy: &impl Fn(f64) -> f64,
    ) -> String {
        let mut d = String::new();
        for (i, p) in line.points.iter().enumerate() {
            let (x, y) = (sx(p.at), sy(p.value));
            match (i, line.stepped) {
                (0, _) => {
                    let _ = write!(d, "M{x:.1} {y:.1}");
                }
                (_, true) => {
                    let _ = write!(d, "H{x:.1}V{y:.1}");
                }
                (_, false) => {
                    let _ = write!(d, "L{x:.1} {y:.1}");
                }
            }
        }
        if line.stepped {
            let _ = write!(d, "H{:.1}", sx(self.to));
        }
        d
    }
}

/// Eight levels of block characters from 0 to `scale`, one per bucket of the series
/// (its peak), for terminals.
pub(crate) fn sparkline(values: &[f64], scale: f64, width: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    if values.is_empty() || width == 0 {
        return String::new();
    }
    let buckets = values.len().min(width);
    let peaks: Vec<f64> = (0..buckets)
        .map(|b| {
            let from = b * values.len() / buckets;
            let to = ((b + 1) * values.len() / buckets).max(from + 1);
            values[from..to].iter().copied().fold(0.0, f64::max)
        })
        .collect();
    let max = peaks.iter().copied().fold(scale, f64::max);
    peaks
        .iter()
        .map(|v| {
            if max <= 0.0 {
                BARS[0]
            } else {
                BARS[((v / max) * 7.0).round().clamp(0.0, 7.0) as usize]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps_are_round() {
        assert_eq!(nice_step(0.3), 0.5);
        assert_eq!(nice_step(3.2), 5.0);
        assert_eq!(nice_step(20.0), 20.0);
        assert_eq!(nice_step(230.0), 250.0);
    }

    #[test]
    fn sparkline_scales_to_the_peak() {
        assert_eq!(sparkline(&[0.0, 5.0, 10.0], 0.0, 10), "▁▅█");
        assert_eq!(sparkline(&[0.0, 5.0, 10.0], 20.0, 10), "▁▃▅");
        assert_eq!(sparkline(&[0.0, 0.0], 0.0, 10), "▁▁");
        assert_eq!(sparkline(&[1.0; 100], 0.0, 20).chars().count(), 20);
    }

    #[test]
    fn a_plot_draws_each_series_with_its_colour_and_the_marker() {
        let at = |s: i64| Timestamp::from_second(1_800_000_000 + s).unwrap();
        let plot = Plot {
            title: "error rate <by version>".into(),
            unit: Unit::Percent,
            from: at(0),
            to: at(120),
            y_top: None,
            lines: vec![Line {
                label: "candidate".into(),
                color: CANDIDATE,
                points: (0..5)
                    .map(|i| Point {
                        at: at(i * 20),
                        value: i as f64 * 3.0,
                    })
                    .collect(),
                stepped: false,
            }],
            marker: Some((at(90), "rollback")),
        };
        let svg = plot.svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("<title>error rate &lt;by version&gt;</title>"));
        assert!(svg.contains(&format!(r#"stroke="{CANDIDATE}" stroke-width="2.5""#)));
        assert_eq!(svg.matches("<circle").count(), 5);
        assert!(svg.contains(&format!(r#"stroke="{ROLLBACK}""#)));
        assert!(
            svg.contains(">15%</text>"),
            "the axis covers the peak: {svg}"
        );
    }
}
