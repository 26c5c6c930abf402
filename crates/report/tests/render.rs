//! Reports of launches driven through the real engine: what each format says, and that
//! user text cannot break out of it.

mod support;

use liftoff_engine::{Event, StepRef};
use liftoff_report::{Format, build, render};
use serde_json::Value;
use support::*;

fn markdown(sim: &Sim) -> String {
    render(&sim.state, &sim.journal, &meta(), Format::Markdown)
}

fn json(sim: &Sim) -> Value {
    let text = render(&sim.state, &sim.journal, &meta(), Format::Json);
    serde_json::from_str(&text).expect("the JSON report parses")
}

fn html(sim: &Sim) -> String {
    render(&sim.state, &sim.journal, &meta(), Format::Html)
}

/// The text of the Markdown section under `heading` (up to the next heading of the same
/// or a higher level).
fn section<'a>(md: &'a str, heading: &str) -> &'a str {
    let start = md
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("no `{heading}` in:\n{md}"));
    let level = heading.split(' ').next().unwrap();
    let rest = &md[start + heading.len() + 2..];
    let end = rest
        .match_indices("\n#")
        .find(|(i, _)| {
            let hashes = rest[i + 1..].chars().take_while(|c| *c == '#').count();
            hashes <= level.len()
        })
        .map_or(rest.len(), |(i, _)| i);
    &rest[..end]
}

/// Splits a Markdown table row on unescaped `|`.
fn cells(row: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut chars = row.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if matches!(chars.peek(), Some('|' | '<')) => {
                cells.last_mut().unwrap().push(chars.next().unwrap());
            }
            '|' => cells.push(String::new()),
            c => cells.last_mut().unwrap().push(c),
        }
    }
    // Leading and trailing pipes leave empty edge cells.
    cells[1..cells.len() - 1]
        .iter()
        .map(|c| c.trim().to_string())
        .collect()
}

#[test]
fn markdown_of_a_trigger_rollback_names_the_trigger_its_values_and_the_rollback_time() {
    let sim = rolled_back_by_trigger();
    let md = markdown(&sim);
    assert!(md.starts_with("# Launch report: checkout-2.4\n"), "{md}");
    assert!(md.contains("\n**rolled-back**: trigger `error_rate > 5% over 2s for 3s` fired"));

    let rollback = section(&md, "## Rollback");
    assert!(
        rollback.contains(&format!("- Trigger: `{TRIGGER}`")),
        "{rollback}"
    );
    assert!(
        rollback.contains(&format!("- Values that crossed it: {FIRING}")),
        "{rollback}"
    );
    assert!(rollback.contains("- Started: 10:01:21"), "{rollback}");
    assert!(
        rollback.contains("- All traffic back on stable: 10:01:22 (1.2 s (1200 ms) after"),
        "{rollback}"
    );
    assert!(
        rollback.contains("- Ended: 10:01:26, rolled-back; the rollback took 5.2 s (5200 ms)"),
        "{rollback}"
    );
    // The journaled crossing, with its values.
    assert!(
        rollback.contains(&format!("| 10:01:16 | crossed | {CROSSING} |")),
        "{rollback}"
    );

    let traffic = section(&md, "## Traffic and health");
    assert!(
        traffic.contains("- Candidate weight: 0% at 10:00:01 → 10% at 10:00:22 → 0% at 10:01:22"),
        "{traffic}"
    );
    assert!(
        traffic.contains("- Error rate, candidate: 29 samples, min 0.5%, max 14.29%, last 14.29%"),
        "{traffic}"
    );
    assert!(
        traffic.contains("- p95 latency, stable: 30 samples, min 80 ms, max 82 ms, last 82 ms"),
        "{traffic}"
    );

    let notifications = section(&md, "## Notifications");
    assert!(
        notifications.contains("3 sent, 1 not delivered."),
        "{notifications}"
    );
    assert!(
        notifications.contains(
            "| email | rollback_started | **NOT delivered** | 3 | HTTP 503 from smtp relay |"
        ),
        "{notifications}"
    );

    let interventions = section(&md, "### Interventions");
    assert!(
        interventions.contains("| trigger | rolled back: `error_rate > 5% over 2s for 3s` fired |"),
        "{interventions}"
    );
    let fired = section(&md, "### Triggers fired");
    assert!(
        fired.contains(&format!("| rollback | {FIRING} |")),
        "{fired}"
    );
}

#[test]
fn markdown_timeline_lists_every_step_in_launch_order_with_times_and_skips_samples() {
    let sim = rolled_back_by_trigger();
    let md = markdown(&sim);
    let steps = section(&md, "### Steps");
    let rows: Vec<Vec<String>> = steps
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(cells)
        .collect();
    assert_eq!(rows[0][..4], ["Phase", "Step", "Kind", "Status"]);
    let names: Vec<(&str, &str, &str)> = rows[2..]
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str(), r[3].as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("rollout", "traffic pinned to stable", "succeeded"),
            ("rollout", "deploy candidate", "succeeded"),
            ("rollout", "traffic 10%", "succeeded"),
            ("rollout", "bake 10m", "cancelled"),
            ("rollout", "traffic 100%", "not run"),
            ("rollback", "traffic back to stable", "succeeded"),
            ("rollback", HOSTILE, "succeeded"),
        ],
        "{steps}"
    );
    let deploy = &rows[3];
    assert_eq!(deploy[4..7], ["10:00:01", "10:00:21", "20 s"], "{deploy:?}");
    for row in &rows {
        assert_eq!(row.len(), rows[0].len(), "a `|` broke the table: {row:?}");
    }

    let events = section(&md, "### Events");
    assert!(
        !events.contains("traffic: stable"),
        "samples stay out of the timeline"
    );
    assert!(
        events.contains("| trigger | trigger `error_rate > 5% over 2s for 3s` fired (rollback)")
    );
    assert!(events.contains("`error_rate > 5% over 2s for 3s` crossed: candidate error_rate"));
    let seqs: Vec<i64> = events
        .lines()
        .filter(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| cells(l)[0].parse().unwrap())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in journal order: {seqs:?}"
    );
    // User text is shown, not taken for HTML: `<` escaped, except in code spans.
    assert!(
        steps.contains(r"| page \<script>alert('pwned')\</script> \| on-call | run |"),
        "{steps}"
    );
    assert!(
        events.contains(r"| `page <script>alert('pwned')</script> \| on-call` succeeded"),
        "{events}"
    );
    for tag in ["<table", "<svg", "<br", "<span", "<pre", "<details"] {
        assert!(!md.contains(tag), "no HTML of our own in Markdown: {tag}");
    }
}

#[test]
fn markdown_of_a_succeeded_launch_has_approvals_checks_gates_and_notifications() {
    let sim = succeeded();
    let md = markdown(&sim);
    assert!(
        md.contains("\n**succeeded**: all steps succeeded\n"),
        "{md}"
    );
    assert!(md.contains("| Duration | 3 m 20 s |"), "{md}");

    let approvals = section(&md, "### Approvals");
    assert!(
        approvals.contains(
            "| 10:00:31 | checklist | release sign-off | release-manager | ana | change CHG-1234 approved |"
        ),
        "{approvals}"
    );
    assert!(
        approvals.contains("| 10:03:19 | approve by sre | - | sre | bo | dashboards green |"),
        "{approvals}"
    );

    let checks = section(&md, "## Checks");
    assert!(
        checks.contains(
            "### checklist (checklist, checklist): GO: 2/2 critical, 2/3 overall; failed: `disk`"
        ),
        "{checks}"
    );
    assert!(
        checks.contains("| disk | no | **FAILED** | /var/lib has 4% free, wants 10% | 3 ms |"),
        "{checks}"
    );
    assert!(
        checks.contains(
            "| health | yes | passed | 200 OK in 12ms | 3 ms | GET http://127.0.0.1:19001/health | status 200 | status 200 in 12ms: {\"ok\":true} |"
        ),
        "{checks}"
    );

    let gates = section(&md, "## Gate evaluations");
    assert!(
        gates.contains("6 evaluations: 5 passed, 1 did not."),
        "{gates}"
    );
    assert!(
        gates.contains("- `error_rate < 1%`: 5 × successful (10:00:59 to 10:01:49)"),
        "{gates}"
    );
    assert!(
        gates.contains("| 10:01:19 | analyze 1m | error_rate < 1% | inconclusive | - | 8 requests, fewer than 100 |"),
        "{gates}"
    );
    assert!(
        !md.contains("## Rollback"),
        "no rollback section without a rollback"
    );
    assert!(md.contains("1 sent, 0 not delivered."));
}

#[test]
fn json_report_parses_and_carries_the_series_and_the_rollback() {
    let sim = rolled_back_by_trigger();
    let report = json(&sim);
    assert_eq!(report["report_version"], 1);
    assert_eq!(report["summary"]["status"], "rolled-back");
    assert_eq!(report["summary"]["id"], "lnch_7f3a");
    assert_eq!(report["summary"]["name"], "checkout-2.4");
    assert_eq!(report["summary"]["service"], "checkout");

    let charts = &report["charts"];
    let values = |points: &Value| -> Vec<f64> {
        points
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["value"].as_f64().unwrap())
            .collect()
    };
    assert_eq!(values(&charts["weight_percent"]), [0.0, 10.0, 0.0]);
    assert_eq!(
        charts["samples"], 30,
        "28 while healthy, the trigger's window, 1 after"
    );
    assert_eq!(charts["rollback_at"], "2026-11-21T10:01:21.2Z");
    let series = |name: &str, version: &str| -> Vec<f64> {
        let list = charts[name].as_array().unwrap();
        values(
            &list
                .iter()
                .find(|s| s["version"] == version)
                .unwrap_or_else(|| panic!("no {version} series in {name}"))["points"],
        )
    };
    let candidate = series("error_rate_percent", "candidate");
    assert_eq!(candidate.len(), 29);
    assert!((candidate[27] - 14.29).abs() < 1e-9, "{candidate:?}");
    assert!((candidate[28] - 600.0 / 42.0).abs() < 1e-9, "{candidate:?}");
    assert_eq!(series("error_rate_percent", "stable").len(), 30);
    let judged = &report["rollback"]["trigger"]["judged"];
    assert_eq!(judged[1]["requests"], 42);
    assert_eq!(judged[1]["failed"], 6);
    assert_eq!(judged[0]["version"], "stable");
    assert_eq!(series("p95_ms", "candidate")[26], 180.0);
    assert_eq!(charts["error_rate_percent"][0]["version"], "stable");

    let rollback = &report["rollback"];
    assert_eq!(rollback["cause_kind"], "trigger");
    assert_eq!(rollback["duration_ms"], 5200);
    assert_eq!(rollback["traffic_on_stable_ms"], 1200);
    assert_eq!(rollback["trigger"]["trigger"], TRIGGER);
    assert_eq!(rollback["trigger"]["detail"], FIRING);
    assert_eq!(rollback["trigger"]["crossings"][0]["reason"], CROSSING);
    assert_eq!(report["notifications"].as_array().unwrap().len(), 4);
    assert_eq!(report["notifications"][2]["delivered"], false);
    assert!(
        report["events"]["shown"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["kind"] != "sampled")
    );
}

#[test]
fn html_escapes_hostile_names_and_stays_self_contained() {
    let sim = rolled_back_by_trigger();
    let page = html(&sim);
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(
        page.contains("page &lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt; | on-call"),
        "the step name is shown, escaped"
    );
    assert!(!page.contains("<script"), "no script, hostile or ours");
    for external in ["<link", " src=", "@import", "url("] {
        assert!(!page.contains(external), "no external asset: {external}");
    }
    assert_eq!(page.matches("<svg").count(), 3, "weight, error rate, p95");
    assert!(page.contains("@media print"));
    assert!(page.contains("Values that crossed it</th><td>candidate error_rate 14.29% &gt; 5%"));
    assert!(page.contains("5.2 s (5200 ms)"));
}

#[test]
fn without_traffic_samples_the_report_says_why_instead_of_drawing_empty_charts() {
    let mut sim = Sim::new(
        "version: 1
name: batch-job
service: batch
router: { kind: command, command: './weight.sh {weight}' }
steps:
  - traffic: 50%
  - { name: migrate, run: ./migrate.sh }
rollback:
  steps:
    - run: ./undo.sh
",
    );
    sim.send(Event::Start);
    sim.tick(1);
    sim.ok("weight set to 0%");
    sim.tick(1);
    sim.ok("weight set to 50%");
    sim.tick(5);
    sim.finish_with_output(
        liftoff_engine::StepResult::Failed,
        "exit status 1",
        "applying 0042\n```\nERROR: relation \"users\" does not exist",
    );
    assert_eq!(sim.in_flight(), StepRef::RevertTraffic);
    sim.tick(1);
    sim.ok("weight set to 0%");
    sim.tick(1);
    sim.ok("exit status 0");

    let md = markdown(&sim);
    let no_router =
        "No traffic samples: the plan has no builtin router, so liftoff does not see its traffic.";
    assert!(md.contains(no_router), "{md}");
    assert!(!md.contains("Error rate,"), "{md}");
    assert!(
        md.contains("- Cause: step `migrate` failed: exit status 1"),
        "{md}"
    );
    // The failed step's output, fenced so its own backticks cannot close the block.
    assert!(
        md.contains("````\napplying 0042\n```\nERROR: relation \"users\" does not exist\n````"),
        "{md}"
    );
    let page = html(&sim);
    assert!(page.contains(no_router));
    assert_eq!(page.matches("<svg").count(), 1, "only the weight chart");
    assert!(page.contains("ERROR: relation &quot;users&quot; does not exist"));
}

#[test]
fn long_evaluation_lists_are_capped_but_counted() {
    let mut sim = Sim::new(
        "version: 1
name: long
service: svc
router:
  kind: builtin
  listen: 127.0.0.1:18080
  stable: http://127.0.0.1:19000
  candidate: http://127.0.0.1:19001
steps:
  - traffic: 10%
  - analyze: { for: 1h, interval: 1s, gates: [\"p95 < 500ms\"], dry_run: true }
rollback:
  steps:
    - run: ./undo.sh
",
    );
    sim.send(Event::Start);
    sim.ok("weight set to 0%");
    sim.ok("weight set to 10%");
    let step = Some(sim.in_flight());
    for i in 0..700 {
        sim.tick(1);
        let verdict = if i % 2 == 0 && i < 500 {
            "successful"
        } else {
            "failed"
        };
        sim.observe_value(
            step,
            "p95 < 500ms",
            verdict,
            Some(i as f64),
            &format!("evaluation {i}"),
            true,
        );
    }
    let report = build(&sim.state, &sim.journal, &meta());
    let e = &report.evaluations;
    assert_eq!(e.total, 700);
    assert_eq!(e.passing.len(), 1);
    assert_eq!(e.passing[0].count, 250);
    assert_eq!(e.notable.len(), 200);
    assert_eq!(e.notable_omitted, 250);
    assert_eq!(
        e.notable.last().unwrap().reason,
        "evaluation 699",
        "newest last"
    );
    let md = markdown(&sim);
    assert!(md.contains("250 earlier evaluations that did not pass are not shown."));
    assert!(
        md.contains("| failed (dry run) | 699 | evaluation 699 |"),
        "{md}"
    );
    // The timeline keeps both ends of a long journal and says what it left out.
    let events = &report.events;
    assert_eq!(events.shown.len(), 400);
    assert!(events.omitted > 0);
    assert!(md.contains(&format!(
        "| … |  |  | {} records not shown |",
        events.omitted
    )));
}

#[test]
fn the_summary_names_who_retried_promoted_and_aborted() {
    let plan = "version: 1
name: t
service: svc
router: { kind: command, command: './weight.sh {weight}' }
steps:
  - { name: migrate, run: ./migrate.sh }
  - traffic: 10%
  - pause: 1h
  - traffic: 50%
rollback:
  steps:
    - run: ./undo.sh
";
    let mut sim = Sim::new(plan);
    sim.send(Event::Start);
    sim.ok("weight set to 0%");
    sim.tick(5);
    sim.send(Event::Recover); // `migrate` was running: a human decides
    sim.send(Event::Resume {
        by: "cy".into(),
        decision: Some(liftoff_engine::Decision::Retry),
    });
    sim.tick(5);
    sim.ok("exit status 0");
    sim.ok("weight set to 10%");
    sim.tick(60);
    sim.send(Event::Promote { by: "ana".into() });
    sim.finish(liftoff_engine::StepResult::Cancelled, "cancelled");
    sim.tick(1);
    sim.ok("weight set to 100%");
    let report = build(&sim.state, &sim.journal, &meta());
    let who: Vec<(&str, &str)> = report
        .summary
        .interventions
        .iter()
        .map(|i| (i.by.as_str(), i.action.as_str()))
        .collect();
    assert_eq!(
        who,
        [
            ("cy", "retried step `migrate`"),
            ("ana", "promoted to 100%")
        ]
    );
    let migrate = report.steps.iter().find(|s| s.step == "migrate").unwrap();
    assert_eq!(
        (migrate.attempts, migrate.actor.as_deref()),
        (2, Some("cy"))
    );
    let md = markdown(&sim);
    assert!(md.contains("| succeeded (2 attempts) |"), "{md}");
    assert!(md.contains("| traffic 50% | traffic | skipped |"), "{md}");
    assert!(
        md.contains("| promote | promote to 100% | traffic | succeeded |"),
        "{md}"
    );

    let mut sim = Sim::new(plan);
    sim.send(Event::Start);
    sim.ok("weight set to 0%");
    sim.ok("exit status 0");
    sim.ok("weight set to 10%");
    sim.tick(30);
    sim.send(Event::Abort {
        by: "bo".into(),
        comment: Some("p95 | looks odd".into()),
    });
    let md = markdown(&sim);
    assert!(
        md.contains("**rolling-back**: aborted by bo: p95 | looks odd"),
        "{md}"
    );
    assert!(md.contains("| bo | aborted | p95 \\| looks odd |"), "{md}");
    assert!(md.contains("- By: bo\n"), "{md}");
    assert!(md.contains("- Still rolling back."), "{md}");
}

#[test]
fn the_report_never_resolves_a_plan_secret() {
    // Records are redacted before they are journaled; the plan's `Text` values are the
    // only other source, and only their templates may be read.
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let code = std::fs::read_to_string(&path).unwrap();
        assert!(
            !code.contains(".expose("),
            "{} resolves a secret",
            path.display()
        );
    }
}

#[test]
fn a_launch_that_never_started_still_renders() {
    let sim = Sim::new(
        "version: 1\nname: t\nservice: svc\nsteps:\n  - run: a\nrollback:\n  steps:\n    - run: x\n",
    );
    let md = markdown(&sim);
    assert!(md.contains("**pending**"), "{md}");
    assert!(md.contains("| rollout | run a | run | pending |"), "{md}");
    assert!(html(&sim).contains("No traffic samples"));
    assert_eq!(json(&sim)["summary"]["started_at"], Value::Null);
}

#[test]
fn a_rollback_44_ms_after_the_weight_moved_shows_the_spike_the_trigger_judged() {
    let sim = rolled_back_after_44_ms();
    let md = markdown(&sim);
    let rollback = section(&md, "## Rollback");
    assert!(
        rollback.contains("What the trigger judged as it fired (its window, per version):"),
        "{rollback}"
    );
    assert!(
        rollback.contains("| Version | Window | Requests | Failed | Error rate | p95 |"),
        "{rollback}"
    );
    assert!(
        rollback.contains("| stable | 44 ms | 230 | 0 | 0% | 12 ms |"),
        "{rollback}"
    );
    assert!(
        rollback.contains("| candidate | 44 ms | 12 | 5 | 41.67% | 25 ms |"),
        "{rollback}"
    );
    assert!(
        rollback
            .contains("- All traffic back on stable: 10:00:00 (17 ms after the rollback began)"),
        "{rollback}"
    );

    let traffic = section(&md, "## Traffic and health");
    assert!(!traffic.contains("No traffic samples"), "{traffic}");
    assert!(
        traffic.contains("- Error rate, candidate: 1 sample, min 41.67%, max 41.67%"),
        "{traffic}"
    );
    assert!(
        traffic.contains("- Error rate, stable: 1 sample, min 0%, max 0%"),
        "{traffic}"
    );
    // Seconds are never shown raw.
    assert!(!md.contains("0.044"), "{md}");

    let page = html(&sim);
    assert!(page.contains("<h3>What the trigger judged as it fired</h3>"));
    assert!(
        page.contains("<figcaption>Error rate by version</figcaption>"),
        "the spike is charted"
    );
    assert!(!page.contains("No traffic samples"));
    assert!(!page.contains("0.044"));

    let j = json(&sim);
    let judged = &j["rollback"]["trigger"]["judged"];
    assert_eq!(judged[1]["version"], "candidate");
    assert_eq!(judged[1]["window_ms"], 44);
    assert_eq!(judged[1]["requests"], 12);
    assert_eq!(judged[1]["failed"], 5);
    assert_eq!(j["charts"]["no_samples_reason"], Value::Null);
    let candidate = &j["charts"]["error_rate_percent"][1];
    assert_eq!(candidate["version"], "candidate");
    let spike = candidate["points"][0]["value"].as_f64().unwrap();
    assert!((spike - 41.666).abs() < 0.01, "{spike}");
}

#[test]
fn the_no_samples_message_gives_the_true_reason() {
    const ROUTER: &str = "router: { kind: builtin, listen: 127.0.0.1:18080, stable: http://127.0.0.1:19000, candidate: http://127.0.0.1:19001 }";
    let reason = |sim: &Sim| {
        json(sim)["charts"]["no_samples_reason"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let plan = format!(
        "version: 1\nname: n\nservice: checkout\n{ROUTER}\nsteps:\n  - run: ./deploy.sh\n  - traffic: 5%\n  - bake: {{ for: 1m }}\n"
    );

    // A deploy that failed 300 ms in: no sample was due yet.
    let mut sim = Sim::new(&plan);
    sim.send(Event::Start);
    sim.tick_ms(100);
    sim.ok("weight set to 0%");
    sim.tick_ms(200);
    sim.finish(liftoff_engine::StepResult::Failed, "exit status 1");
    sim.tick_ms(10);
    sim.ok("weight set to 0%");
    assert!(sim.state.status().is_terminal());
    assert_eq!(
        reason(&sim),
        "No traffic samples: the launch ended 310 ms after it started, before its first sample (2 s in)."
    );
    assert!(markdown(&sim).contains(&reason(&sim)));
    assert!(html(&sim).contains(&reason(&sim)));

    // Aborted 1 s after the candidate took traffic: the sampler sampled as the
    // rollback began, and the router had seen nothing.
    let mut sim = Sim::new(&plan);
    sim.send(Event::Start);
    sim.tick_ms(100);
    sim.ok("weight set to 0%");
    sim.ok("exit status 0");
    sim.ok("weight set to 5%");
    sim.tick(1);
    sim.send(Event::Abort {
        by: "ana".into(),
        comment: None,
    });
    sim.finish(liftoff_engine::StepResult::Cancelled, "cancelled");
    sim.ok("weight set to 0%");
    assert!(sim.state.status().is_terminal());
    assert_eq!(
        reason(&sim),
        "No traffic samples: no request reached the builtin router while the launch ran."
    );

    // Still in its first second.
    let mut sim = Sim::new(&plan);
    sim.send(Event::Start);
    sim.tick_ms(500);
    sim.ok("weight set to 0%");
    assert_eq!(
        reason(&sim),
        "No traffic samples yet: the first is taken 2 s into the launch."
    );

    // Samples journaled: no reason to give.
    let sim = rolled_back_by_trigger();
    assert_eq!(json(&sim)["charts"]["no_samples_reason"], Value::Null);
}

/// What HAProxy's sampler journals: counts, no latency.
fn haproxy_sample(sim: &mut Sim, stable: (u64, u64), candidate: (u64, u64)) {
    let version = |name: &str, (requests, failed): (u64, u64)| liftoff_engine::VersionSample {
        version: name.into(),
        requests,
        failed: Some(failed),
        error_rate: Some(failed as f64 / requests as f64),
        p95_ms: None,
        rps: requests as f64 / 2.0,
    };
    sim.send(Event::Sampled {
        window_secs: 2.0,
        versions: vec![version("stable", stable), version("candidate", candidate)],
        trigger: None,
    });
}

const HAPROXY_PLAN: &str = "version: 1
name: through-haproxy
service: shop
router:
  kind: haproxy
  socket: /run/haproxy/admin.sock
  backend: app
  stable: stable
  candidate: candidate
steps:
  - traffic: 50%
  - approve: { role: sre }
";

#[test]
fn an_haproxy_launch_has_the_per_version_table_with_latency_not_measured() {
    let mut sim = Sim::new(HAPROXY_PLAN);
    sim.send(Event::Start);
    sim.tick(1);
    sim.ok("weight set to 0%");
    sim.tick(1);
    sim.ok("weight set to 50%");
    sim.tick(2);
    haproxy_sample(&mut sim, (60, 0), (40, 2));
    sim.tick(2);
    haproxy_sample(&mut sim, (50, 0), (50, 10));
    // A firing trigger's window overlaps the sampler's: not added again.
    sim.judged(
        "error_rate > 10% over 5s",
        5.0,
        (110, 0, 1.0),
        (90, 12, 1.0),
    );

    let md = markdown(&sim);
    let traffic = section(&md, "## Traffic and health");
    assert!(
        traffic.contains("Per version, over the launch's 2 traffic samples (HAProxy's `show stat` counters; it keeps no latencies):"),
        "{traffic}"
    );
    let rows: Vec<Vec<String>> = traffic
        .lines()
        .filter(|l| l.starts_with("| stable |") || l.starts_with("| candidate |"))
        .map(cells)
        .collect();
    assert_eq!(
        rows,
        vec![
            vec![
                "stable",
                "110",
                "0",
                "0%",
                "0%",
                "not measured",
                "not measured"
            ],
            vec![
                "candidate",
                "90",
                "12",
                "13.33%",
                "20%",
                "not measured",
                "not measured"
            ],
        ]
    );
    let j = json(&sim);
    assert_eq!(j["traffic"]["router"], "haproxy");
    assert_eq!(j["traffic"]["not_measured"], serde_json::json!(["p95_ms"]));
    assert_eq!(j["traffic"]["versions"][1]["requests"], 90);
    assert_eq!(j["traffic"]["versions"][1]["failed"], 12);
    assert!(j["traffic"]["versions"][1]["peak_p95_ms"].is_null());
    assert!(html(&sim).contains("<table class=\"traffic\">"));
}

#[test]
fn the_per_version_table_derives_failures_from_older_samples_error_rates() {
    // The builtin sampler's fixture: 40 requests a sample, an error rate, a p95.
    let mut sim = Sim::new(
        "version: 1
name: shop-2
service: shop
router: { kind: builtin, listen: 127.0.0.1:0, stable: http://127.0.0.1:1, candidate: http://127.0.0.1:2 }
steps:
  - traffic: 50%
",
    );
    sim.send(Event::Start);
    sim.tick(1);
    sim.ok("weight set to 0%");
    sim.tick(2);
    sim.sample(Some((0.0, 80.0)), Some((0.05, 90.0)));
    sim.tick(2);
    sim.sample(Some((0.025, 82.0)), Some((0.1, 85.0)));
    let j = json(&sim);
    let v = &j["traffic"]["versions"];
    assert_eq!(j["traffic"]["router"], "builtin");
    assert_eq!(
        (v[0]["version"].as_str(), v[0]["requests"].as_u64()),
        (Some("stable"), Some(80))
    );
    assert_eq!(v[0]["failed"], 1);
    assert_eq!(v[1]["failed"], 6);
    assert_eq!(v[1]["error_rate_percent"], 7.5);
    assert_eq!(v[1]["peak_p95_ms"], 90.0);
    assert_eq!(v[1]["last_p95_ms"], 85.0);
    let md = markdown(&sim);
    assert!(
        md.contains("| candidate | 80 | 6 | 7.5% | 10% | 90 ms | 85 ms |"),
        "{md}"
    );
}

#[test]
fn an_haproxy_launch_without_samples_says_no_request_reached_its_backend() {
    let mut sim = Sim::new(HAPROXY_PLAN);
    sim.send(Event::Start);
    sim.tick(1);
    sim.ok("weight set to 0%");
    sim.tick(1);
    sim.ok("weight set to 50%");
    sim.tick(10);
    let md = markdown(&sim);
    assert!(
        md.contains(
            "No traffic samples: no request reached HAProxy's backend while the launch ran."
        ),
        "{md}"
    );
    assert!(!md.contains("| Version | Requests |"), "{md}");
}
