//! Prometheus text exposition (format 0.0.4) of every route and version.

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use crate::health::HealthReport;
use crate::split::Role;
use crate::stats::{ErrorSource, PROM_BUCKETS, STATUS_CLASSES, TotalsSnapshot};
use crate::table::{InstanceReport, Table};

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One version of one route, as exposed.
pub struct VersionMetrics {
    pub route: String,
    pub role: Role,
    pub url: String,
    pub totals: TotalsSnapshot,
    /// A tester's overridden requests, when the route does not count them.
    pub overridden: Option<TotalsSnapshot>,
    pub in_flight: i64,
    pub health: HealthReport,
    pub instances: Vec<InstanceReport>,
}

/// One route, as exposed.
pub struct RouteMetrics {
    pub name: String,
    pub weight_bp: u16,
    pub maintenance: bool,
    pub versions: Vec<VersionMetrics>,
}

/// A router's own routes (`now_ms` on the router's clock, for ejections).
pub fn of_table(table: &Table, now_ms: u64) -> Vec<RouteMetrics> {
    table
        .routes
        .iter()
        .map(|r| {
            let apart = r.version_override.as_ref().is_some_and(|o| !o.count);
            RouteMetrics {
                name: r.name.clone(),
                weight_bp: r.weight_bp,
                maintenance: r.maintenance.is_some(),
                versions: [Role::Stable, Role::Candidate]
                    .into_iter()
                    .filter_map(|role| {
                        let v = r.version(role)?;
                        Some(VersionMetrics {
                            route: r.name.clone(),
                            role,
                            url: v.label(),
                            totals: v.stats.totals(),
                            overridden: apart.then(|| v.overridden.snapshot()),
                            in_flight: v.in_flight.load(Relaxed),
                            health: v.health(),
                            instances: v.instance_reports(now_ms),
                        })
                    })
                    .collect(),
            }
        })
        .collect()
}

pub fn render(routes: &[RouteMetrics]) -> String {
    let mut out = String::with_capacity(4096);
    let versions: Vec<&VersionMetrics> = routes.iter().flat_map(|r| &r.versions).collect();
    let labels = |route: &str, role: Role, url: &str| {
        format!(
            "route=\"{}\",version=\"{}\",upstream=\"{}\"",
            escape(route),
            role.label(),
            escape(url)
        )
    };

    let family = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    // Request counts per version; a tester's overridden requests (when the route does
    // not count them with the rest) in series of their own, `override="true"`.
    let counted: Vec<(String, &TotalsSnapshot)> = versions
        .iter()
        .flat_map(|v| {
            let l = labels(&v.route, v.role, &v.url);
            let overridden = v
                .overridden
                .as_ref()
                .map(|o| (format!("{l},override=\"true\""), o));
            std::iter::once((l, &v.totals)).chain(overridden)
        })
        .collect();

    family(
        &mut out,
        "liftoff_router_requests_total",
        "counter",
        "Requests answered, by status class.",
    );
    for (l, t) in &counted {
        for (class, n) in STATUS_CLASSES.iter().zip(&t.status) {
            let _ = writeln!(
                out,
                "liftoff_router_requests_total{{{l},class=\"{class}\"}} {n}"
            );
        }
    }
    family(
        &mut out,
        "liftoff_router_errors_total",
        "counter",
        "Failed requests, by source: the upstream answered 5xx, could not be reached or timed out, or the client went away or botched its request body (client_abort, not the version's fault).",
    );
    for (l, t) in &counted {
        for source in ErrorSource::ALL {
            let n = t.errors.get(source as usize).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "liftoff_router_errors_total{{{l},source=\"{}\"}} {n}",
                source.label()
            );
        }
    }
    family(
        &mut out,
        "liftoff_router_request_duration_seconds",
        "histogram",
        "Time from receiving a request to the upstream's response head.",
    );
    for (l, t) in &counted {
        let mut cumulative = 0;
        for (bound, n) in PROM_BUCKETS.iter().zip(&t.prom_buckets) {
            cumulative += n;
            let _ = writeln!(
                out,
                "liftoff_router_request_duration_seconds_bucket{{{l},le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "liftoff_router_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {}",
            t.count
        );
        let _ = writeln!(
            out,
            "liftoff_router_request_duration_seconds_sum{{{l}}} {}",
            t.latency_sum_secs
        );
        let _ = writeln!(
            out,
            "liftoff_router_request_duration_seconds_count{{{l}}} {}",
            t.count
        );
    }
    family(
        &mut out,
        "liftoff_router_in_flight_requests",
        "gauge",
        "Requests being proxied now.",
    );
    for v in &versions {
        let _ = writeln!(
            out,
            "liftoff_router_in_flight_requests{{{}}} {}",
            labels(&v.route, v.role, &v.url),
            v.in_flight
        );
    }
    // One family at a time, its samples right after it (the text format wants them
    // contiguous).
    let per_version =
        |out: &mut String, name: &str, help: &str, value: &dyn Fn(&VersionMetrics) -> u64| {
            family(out, name, "gauge", help);
            for v in &versions {
                let l = labels(&v.route, v.role, &v.url);
                let _ = writeln!(out, "{name}{{{l}}} {}", value(v));
            }
        };
    per_version(
        &mut out,
        "liftoff_router_upstream_healthy",
        "1 if the last health checks passed for at least one instance (1 when unchecked).",
        &|v| u64::from(v.health.healthy),
    );
    per_version(
        &mut out,
        "liftoff_router_health_check_failures",
        "Consecutive failed health checks (the shortest streak among the instances).",
        &|v| u64::from(v.health.consecutive_failures),
    );
    // Per instance of each version.
    let instances: Vec<(String, &InstanceReport)> = versions
        .iter()
        .flat_map(|v| {
            v.instances.iter().map(|i| {
                let l = format!(
                    "route=\"{}\",version=\"{}\",instance=\"{}\"",
                    escape(&v.route),
                    v.role.label(),
                    escape(&i.url)
                );
                (l, i)
            })
        })
        .collect();
    let per_instance = |out: &mut String,
                        name: &str,
                        kind: &str,
                        help: &str,
                        value: &dyn Fn(&InstanceReport) -> u64| {
        family(out, name, kind, help);
        for (l, i) in &instances {
            let _ = writeln!(out, "{name}{{{l}}} {}", value(i));
        }
    };
    per_instance(
        &mut out,
        "liftoff_router_instance_requests_total",
        "counter",
        "Attempts sent to the instance, retries included.",
        &|i| i.requests,
    );
    per_instance(
        &mut out,
        "liftoff_router_instance_failures_total",
        "counter",
        "Attempts that failed: no connection, a broken exchange, a timeout or a 5xx.",
        &|i| i.failures,
    );
    per_instance(
        &mut out,
        "liftoff_router_instance_in_flight_requests",
        "gauge",
        "Requests on the instance now.",
        &|i| i.in_flight.max(0) as u64,
    );
    per_instance(
        &mut out,
        "liftoff_router_instance_healthy",
        "gauge",
        "1 if the instance's health checks pass (1 when unchecked).",
        &|i| u64::from(i.health.healthy),
    );
    per_instance(
        &mut out,
        "liftoff_router_instance_ejected",
        "gauge",
        "1 while passive outlier detection keeps the instance out of its balancer.",
        &|i| u64::from(i.ejected),
    );
    per_instance(
        &mut out,
        "liftoff_router_instance_ejections_total",
        "counter",
        "Times the instance was ejected.",
        &|i| i.ejections,
    );
    family(
        &mut out,
        "liftoff_router_candidate_weight_ratio",
        "gauge",
        "Share of traffic sent to the candidate (0-1).",
    );
    for r in routes {
        let _ = writeln!(
            out,
            "liftoff_router_candidate_weight_ratio{{route=\"{}\"}} {}",
            escape(&r.name),
            f64::from(r.weight_bp) / 10_000.0
        );
    }
    family(
        &mut out,
        "liftoff_router_maintenance",
        "gauge",
        "1 while the route serves its maintenance page.",
    );
    for r in routes {
        let _ = writeln!(
            out,
            "liftoff_router_maintenance{{route=\"{}\"}} {}",
            escape(&r.name),
            u8::from(r.maintenance)
        );
    }
    out
}
