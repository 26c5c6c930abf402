//! What the CLI prints.

use std::time::Duration;

use liftoff_api as api;

use crate::Format;
use crate::client::Client;
use crate::exit::{Exit, Failure};

pub fn print_status(s: &api::LaunchStatus, format: Format) {
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(s).unwrap_or_default());
        return;
    }
    println!("launch {}  {} (service {})", s.id, s.name, s.service);
    let weight = s.weight.map_or("-".to_string(), |w| format!("{w}%"));
    println!("status: {}   candidate weight: {weight}", s.status);
    if let Some(step) = &s.current_step {
        println!("current step: {step}");
    }
    if let Some(d) = &s.decision_needed {
        println!("needs decision: {d}");
    }
    let mut rows: Vec<&api::StepView> = Vec::new();
    rows.extend(s.checklist.iter());
    rows.extend(s.baseline.iter());
    rows.extend(s.steps.iter());
    rows.extend(s.promote.iter());
    print_steps("steps", &rows);
    if !s.rollback.is_empty() {
        print_steps("rollback", &s.rollback.iter().collect::<Vec<_>>());
    }
    if let Some(t) = &s.traffic {
        print_traffic(t);
    }
    if !s.evaluations.is_empty() {
        println!("latest evaluations:");
        for e in s
            .evaluations
            .iter()
            .rev()
            .take(8)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            let time = e.at.get(11..19).unwrap_or(&e.at);
            let shadow = if e.dry_run { " (dry run)" } else { "" };
            println!(
                "  {time}  `{}` {}{shadow}: {}",
                e.subject, e.verdict, e.reason
            );
        }
    }
    if let Some(r) = &s.reason {
        println!("reason: {r}");
    }
    let failed: Vec<&api::NotificationView> =
        s.notifications.iter().filter(|n| !n.delivered).collect();
    if !failed.is_empty() {
        println!("notifications not delivered:");
        for n in failed {
            println!(
                "  {} {} on `{}` after {} attempt(s): {}",
                n.at.get(11..19).unwrap_or(&n.at),
                n.event,
                n.channel,
                n.attempts,
                n.detail
            );
        }
    }
    if let Some(log) = &s.deployment_log {
        println!("deployment log: {log}");
    }
}

/// The live split: what each version saw over the last 60 seconds.
pub fn print_traffic(t: &api::RouteView) {
    let maintenance = if t.maintenance { "  MAINTENANCE" } else { "" };
    match &t.target {
        // HAProxy or nginx: what liftoff drives, and the weight it last applied.
        Some(target) => println!("traffic: {target}, candidate {}%", t.weight),
        None => println!(
            "traffic: builtin router on {}, candidate {}%{maintenance}",
            t.listen, t.weight
        ),
    }
    if let Some(e) = &t.error {
        println!("  figures unavailable: {e}");
    }
    println!(
        "  {:<10} {:<24} {:>8} {:>7} {:>9} {:>9} {:>9}  health",
        "version", "upstream", "req/60s", "rps", "errors", "p50", "p95"
    );
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}ms"));
    for v in &t.versions {
        let w = &v.last_60s;
        let errors = w
            .error_rate
            .map_or("-".to_string(), |r| format!("{:.2}%", r * 100.0));
        let unknown = |field: &str| v.not_measured.iter().any(|f| f == field);
        let ms = |field: &str, value: Option<f64>| match value {
            None if unknown(field) => "n/m".to_string(),
            value => ms(value),
        };
        let health = match (v.health_checked, v.healthy) {
            _ if unknown("healthy") => "not measured".to_string(),
            (false, _) => "unchecked".to_string(),
            (true, true) => "healthy".to_string(),
            (true, false) => format!(
                "UNHEALTHY ({} failures: {})",
                v.health_failures,
                v.last_health_error.as_deref().unwrap_or("?")
            ),
        };
        let upstream = match v.instances.len() {
            0 | 1 => v.upstream.clone(),
            n => format!("{n} instances"),
        };
        println!(
            "  {:<10} {:<24} {:>8} {:>7.1} {:>9} {:>9} {:>9}  {health}",
            v.version,
            upstream,
            w.requests,
            w.rps,
            errors,
            ms("p50_ms", w.p50_ms),
            ms("p95_ms", w.p95_ms)
        );
        // A pool: each instance's attempts (retries included) since its routers
        // started, and why it is out of the balancer, if it is.
        if v.instances.len() > 1 {
            for i in &v.instances {
                let state = match (i.ejected, i.health_checked, i.healthy) {
                    (true, _, _) => format!("EJECTED ({} ejections)", i.ejections),
                    (false, true, false) => format!(
                        "UNHEALTHY ({})",
                        i.last_health_error.as_deref().unwrap_or("?")
                    ),
                    (false, false, _) => "in rotation (unchecked)".to_string(),
                    (false, true, true) => "in rotation".to_string(),
                };
                println!(
                    "    {:<32} {:>8} attempts {:>6} failed {:>4} in flight  {state}",
                    i.url, i.requests, i.failures, i.in_flight
                );
            }
        }
    }
}

fn print_steps(title: &str, steps: &[&api::StepView]) {
    println!("{title}:");
    let width = steps
        .iter()
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(0);
    for s in steps {
        let mark = match s.status.as_str() {
            "succeeded" => "✓",
            "failed" | "timed-out" => "✗",
            "running" => "▶",
            "skipped" | "cancelled" => "–",
            "interrupted" => "!",
            _ => "·",
        };
        let took = match (&s.started_at, &s.ended_at) {
            (Some(a), Some(b)) => elapsed(a, b).unwrap_or_default(),
            _ => String::new(),
        };
        let mut detail = s
            .message
            .clone()
            .or_else(|| s.skipped_reason.clone())
            .unwrap_or_default();
        if let Some(a) = &s.approval {
            detail = match &a.comment {
                Some(c) => format!("approved by {} as {}: {c}", a.by, a.role),
                None => format!("approved by {} as {}", a.by, a.role),
            };
        }
        println!(
            "  {mark} {:<width$}  {:<11} {:>7}  {detail}",
            s.name, s.status, took
        );
        if !s.waiting_for.is_empty() {
            println!(
                "      waiting for sign-off by: {}",
                s.waiting_for.join(", ")
            );
        }
        if let Some(b) = &s.backup {
            println!(
                "      backup: {} ({} bytes, {}ms; {})",
                b.path, b.bytes, b.duration_ms, b.detail
            );
        }
        for c in &s.checks {
            print_check(c, "      ");
        }
        if matches!(s.status.as_str(), "failed" | "timed-out")
            && let Some(out) = &s.output
        {
            for line in out
                .lines()
                .rev()
                .take(10)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                println!("      | {line}");
            }
        }
    }
}

fn print_check(c: &api::CheckView, indent: &str) {
    let mark = match c.result.as_str() {
        "passed" => "✓",
        "failed" => "✗",
        _ => "·",
    };
    let critical = if c.critical { "" } else { " (non-critical)" };
    println!("{indent}{mark} {}{critical}: {}", c.item, c.evidence);
    if c.result == "failed" {
        for (label, value) in [
            ("request", &c.request),
            ("expected", &c.expected),
            ("actual", &c.actual),
        ] {
            if let Some(v) = value {
                println!("{indent}    {label:<8} {v}");
            }
        }
    }
}

/// `liftoff check`: a table and the verdict.
pub fn print_check_report(r: &api::CheckReport, format: Format) {
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(r).unwrap_or_default());
        return;
    }
    let width = r
        .items
        .iter()
        .map(|i| i.item.chars().count())
        .chain([4])
        .max()
        .unwrap_or(4);
    println!("{:<width$}  CRITICAL  RESULT     TIME    EVIDENCE", "ITEM");
    for i in &r.items {
        println!(
            "{:<width$}  {:<8}  {:<9} {:>6}  {}",
            i.item,
            if i.critical { "yes" } else { "no" },
            i.result,
            format!("{}ms", i.duration_ms),
            i.evidence
        );
        if i.result == "failed" {
            for (label, value) in [("expected", &i.expected), ("actual", &i.actual)] {
                if let Some(v) = value {
                    println!("{:<width$}    {label:<8} {v}", "");
                }
            }
        }
    }
    println!(
        "{}: {}/{} critical passed (needs {}%), {}/{} overall (needs {}%)",
        r.verdict,
        r.critical_passed,
        r.critical_total,
        r.pass_critical,
        r.passed,
        r.total,
        r.pass_overall
    );
}

fn elapsed(from: &str, to: &str) -> Option<String> {
    let a: jiff::Timestamp = from.parse().ok()?;
    let b: jiff::Timestamp = to.parse().ok()?;
    let d = Duration::try_from(b.duration_since(a)).ok()?;
    Some(liftoff_plan::human::duration(d))
}

pub fn print_status_page(page: &api::StatusPage, format: Format) {
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(page).unwrap_or_default());
        return;
    }
    println!("overall: {}", page.overall);
    for s in &page.services {
        println!("{:<24} {:<13} {}", s.service, s.state, s.summary);
        for m in &s.messages {
            println!("{:<24} “{}” ({}, {})", "", m.message, m.by, m.at);
        }
    }
}

pub fn print_schedules(list: &[api::ScheduleView], format: Format) {
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(list).unwrap_or_default());
        return;
    }
    if list.is_empty() {
        println!("no follow-ups");
        return;
    }
    println!(
        "{:<12} {:<12} {:<11} {:<21} {:<24} COMMAND",
        "ID", "LAUNCH", "STATUS", "DUE", "STEP"
    );
    for s in list {
        let due = s.due_at.get(..19).unwrap_or(&s.due_at);
        println!(
            "{:<12} {:<12} {:<11} {:<21} {:<24} {}",
            s.id, s.launch_id, s.status, due, s.step, s.command
        );
        if let Some(r) = &s.result {
            println!("{:<12} {r}", "");
        }
    }
}

pub fn print_history(list: &[api::LaunchSummary], format: Format) {
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(list).unwrap_or_default());
        return;
    }
    if list.is_empty() {
        println!("no launches yet");
        return;
    }
    println!(
        "{:<12} {:<17} {:<28} {:<20} CREATED",
        "ID", "STATUS", "NAME", "SERVICE"
    );
    for l in list {
        println!(
            "{:<12} {:<17} {:<28} {:<20} {}",
            l.id, l.status, l.name, l.service, l.created_at
        );
    }
}

/// Print the journal as it grows until the launch ends. Survives a daemon restart.
pub async fn follow(c: &Client, id: &str, format: Format) -> Result<Exit, Failure> {
    if format == Format::Text {
        println!("launch {id}");
    }
    let mut after = 0i64;
    let mut unreachable_since: Option<std::time::Instant> = None;
    let mut hinted = false;
    loop {
        let entries: Result<Vec<api::JournalEntry>, Failure> = c
            .get(&format!("/launches/{id}/journal?after={after}"))
            .await;
        let entries = match entries {
            Ok(e) => {
                unreachable_since = None;
                e
            }
            Err(f) if f.exit == Exit::Unreachable => {
                let since = *unreachable_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() > Duration::from_secs(30) {
                    return Err(f);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Err(f) => return Err(f),
        };
        let mut ended = false;
        for e in &entries {
            after = e.seq;
            ended |= e.kind == "launch_ended";
            match format {
                Format::Json => println!("{}", serde_json::to_string(e).unwrap_or_default()),
                Format::Text => {
                    let time = e.at.get(11..19).unwrap_or(&e.at);
                    println!("{time}  {}", e.summary);
                }
            }
        }
        if !entries.is_empty() || ended {
            let status: api::LaunchStatus = c.get(&format!("/launches/{id}")).await?;
            if status.terminal {
                if format == Format::Text {
                    println!("result: {}", status.status);
                }
                return Ok(if status.status == "succeeded" {
                    Exit::Success
                } else {
                    Exit::LaunchFailed
                });
            }
            if format == Format::Text {
                if status.status == "waiting-approval" && !hinted {
                    println!("          waiting: approve with `liftoff approve {id} --as <role>`");
                    hinted = true;
                } else if status.status != "waiting-approval" {
                    hinted = false;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `validate --no-env`: the plan is valid but for its variables; which it needs, and
/// where (`FILE:LINE:COL`, as problems are shown).
pub fn print_needed_variables(file: &str, lint: &liftoff_plan::Lint) {
    let needed = lint.uses_by_name();
    let needs = match needed.len() {
        0 => "it needs no variables".to_string(),
        1 => "it needs 1 variable:".to_string(),
        n => format!("it needs {n} variables:"),
    };
    println!(
        "{file}: ok without variables ({} steps, {} rollback steps); {needs}",
        lint.steps, lint.rollback_steps
    );
    let width = needed.keys().map(|n| n.len()).max().unwrap_or(0);
    for (name, uses) in needed {
        let uses: Vec<String> = uses.iter().map(|at| format!("{file}:{at}")).collect();
        println!("  {name:<width$}  {}", uses.join(", "));
    }
}

/// `validate --no-env --output json`: `[{ "name", "uses": [{ "line", "col" }] }]`.
pub fn needed_variables_json(lint: &liftoff_plan::Lint) -> serde_json::Value {
    lint.uses_by_name()
        .into_iter()
        .map(|(name, uses)| {
            let uses: Vec<_> = uses
                .iter()
                .map(|at| serde_json::json!({ "line": at.line, "col": at.col }))
                .collect();
            serde_json::json!({ "name": name, "uses": uses })
        })
        .collect()
}
