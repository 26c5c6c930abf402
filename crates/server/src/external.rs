//! The daemon's `/metrics` for running launches with HAProxy or nginx: each version's
//! figures over the last 10 s and 60 s, as its router counted them (the builtin
//! router's series are counters its routers keep; liftoff sees an external router only
//! through windows, so these are gauges). A figure the router cannot tell has no series.

use std::fmt::Write;

use liftoff_driver::external::{RouteFigures, WindowFigures};

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

type Family = (
    &'static str,
    &'static str,
    fn(&WindowFigures) -> Vec<(Option<&'static str>, f64)>,
);

/// Per-version families, one value per window (and per quantile for latencies).
const FAMILIES: [Family; 4] = [
    (
        "liftoff_route_window_requests",
        "Requests a version served over the last `window`, as HAProxy or nginx counted them.",
        |w| vec![(None, w.requests as f64)],
    ),
    (
        "liftoff_route_window_failed_requests",
        "Of those, the failed ones (5xx, or no answer from the version).",
        |w| vec![(None, w.failed as f64)],
    ),
    (
        "liftoff_route_window_error_ratio",
        "Failed over requests in the window; no series without requests.",
        |w| w.error_rate.map(|r| (None, r)).into_iter().collect(),
    ),
    (
        "liftoff_route_window_latency_seconds",
        "Request latency quantiles in the window (nginx's $request_time; HAProxy keeps none).",
        |w| {
            [("0.5", w.p50_ms), ("0.95", w.p95_ms), ("0.99", w.p99_ms)]
                .into_iter()
                .filter_map(|(q, ms)| ms.map(|ms| (Some(q), ms / 1000.0)))
                .collect()
        },
    ),
];

/// `routes`, each with the candidate weight (percent) liftoff last applied to it.
pub fn render(routes: &[(RouteFigures, Option<f64>)]) -> String {
    let mut out = String::new();
    if routes.is_empty() {
        return out;
    }
    let labels = |f: &RouteFigures| {
        format!(
            "route=\"{}\",router=\"{}\",launch=\"{}\"",
            escape(&f.plan.service),
            f.kind.label(),
            escape(&f.launch_id)
        )
    };
    for (name, help, values) in FAMILIES {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (f, _) in routes {
            let Ok(versions) = &f.versions else {
                continue;
            };
            for v in versions {
                for w in &v.windows {
                    for (quantile, value) in values(w) {
                        let q = quantile.map_or(String::new(), |q| format!(",quantile=\"{q}\""));
                        let _ = writeln!(
                            out,
                            "{name}{{{},version=\"{}\",window=\"{}s\"{q}}} {value}",
                            labels(f),
                            v.version.label(),
                            w.seconds
                        );
                    }
                }
            }
        }
    }
    let name = "liftoff_route_candidate_weight_ratio";
    let _ = writeln!(
        out,
        "# HELP {name} The candidate's share liftoff last applied to HAProxy or nginx (0..1).\n# TYPE {name} gauge"
    );
    for (f, weight) in routes {
        if let Some(w) = weight {
            let _ = writeln!(out, "{name}{{{}}} {}", labels(f), w / 100.0);
        }
    }
    let name = "liftoff_route_figures_up";
    let _ = writeln!(
        out,
        "# HELP {name} 1 when HAProxy or nginx could be read for this scrape.\n# TYPE {name} gauge"
    );
    for (f, _) in routes {
        let _ = writeln!(
            out,
            "{name}{{{}}} {}",
            labels(f),
            u8::from(f.versions.is_ok())
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use liftoff_driver::external::{RouterKind, VersionFigures};
    use liftoff_driver::ports::PortError;
    use liftoff_plan::condition::Version;

    use super::*;

    fn plan() -> Arc<liftoff_plan::Plan> {
        let src = "version: 1\nname: n\nservice: shop\nrouter:\n  kind: haproxy\n  socket: /run/haproxy/admin.sock\n  backend: app\n  stable: stable\n  candidate: candidate\nsteps:\n  - traffic: 50%\n";
        Arc::new(liftoff_plan::parse(src, &|_| None).expect("valid plan"))
    }

    fn window(seconds: u64, requests: u64, failed: u64) -> WindowFigures {
        WindowFigures {
            seconds,
            span_secs: seconds as f64,
            requests,
            failed,
            error_rate: (requests > 0).then(|| failed as f64 / requests as f64),
            rps: requests as f64 / seconds as f64,
            p50_ms: None,
            p95_ms: None,
            p99_ms: None,
        }
    }

    #[test]
    fn haproxys_windows_become_gauges_and_unknown_figures_have_no_series() {
        let read = RouteFigures {
            launch_id: "abc".into(),
            plan: plan(),
            kind: RouterKind::Haproxy,
            versions: Ok(vec![
                VersionFigures {
                    version: Version::Stable,
                    windows: vec![window(10, 0, 0), window(60, 30, 0)],
                },
                VersionFigures {
                    version: Version::Candidate,
                    windows: vec![window(10, 4, 1), window(60, 20, 2)],
                },
            ]),
        };
        let text = render(&[(read, Some(50.0))]);
        let l = "route=\"shop\",router=\"haproxy\",launch=\"abc\"";
        for line in [
            format!("liftoff_route_window_requests{{{l},version=\"stable\",window=\"60s\"}} 30"),
            format!(
                "liftoff_route_window_failed_requests{{{l},version=\"candidate\",window=\"10s\"}} 1"
            ),
            format!(
                "liftoff_route_window_error_ratio{{{l},version=\"candidate\",window=\"60s\"}} 0.1"
            ),
            format!("liftoff_route_candidate_weight_ratio{{{l}}} 0.5"),
            format!("liftoff_route_figures_up{{{l}}} 1"),
        ] {
            assert!(text.contains(&format!("{line}\n")), "{line} in\n{text}");
        }
        // No requests, no ratio; no latencies from HAProxy, no latency series.
        assert!(
            !text.contains(&format!(
                "liftoff_route_window_error_ratio{{{l},version=\"stable\",window=\"10s\"}}"
            )),
            "{text}"
        );
        assert!(
            !text.contains("liftoff_route_window_latency_seconds{"),
            "{text}"
        );

        let down = RouteFigures {
            launch_id: "abc".into(),
            plan: plan(),
            kind: RouterKind::Haproxy,
            versions: Err(PortError::Unavailable(
                "HAProxy runtime API: cannot connect".into(),
            )),
        };
        let text = render(&[(down, None)]);
        assert!(
            text.contains(&format!("liftoff_route_figures_up{{{l}}} 0\n")),
            "{text}"
        );
        assert!(!text.contains("liftoff_route_window_requests{"), "{text}");
    }
}
