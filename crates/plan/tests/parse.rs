use liftoff_plan::{Plan, PlanErrors, RouterSpec, StepKind, Sticky, Weight, parse};

fn env(name: &str) -> Option<String> {
    match name {
        "DB_URL" => Some("postgres://app:hunter2@127.0.0.1/shop".into()),
        "REGION" => Some("eu".into()),
        _ => None,
    }
}

fn ok(src: &str) -> Plan {
    parse(src, &env).unwrap_or_else(|e| panic!("expected a valid plan:\n{}", e.render("t.yaml")))
}

fn errors(src: &str) -> PlanErrors {
    match parse(src, &env) {
        Ok(plan) => panic!("expected errors, got {plan:?}"),
        Err(e) => e,
    }
}

const MINIMAL: &str = "version: 1\nname: n\nservice: s\nsteps:\n  - run: echo hi\n";

#[test]
fn three_errors_are_all_reported_with_line_and_column() {
    let src = "\
version: 1
name: shop-api-2.0
service: shop-api
router: { kind: command, command: './w.sh {weight}' }
steps:
  - name: deploy
    run: ./deploy.sh ${DEPLOY_TOKEN}
    timeout: 5 minutes please
  - traffic: 50%
    idempotnt: true
";
    let errs = errors(src);
    let rendered = errs.render("plan.yaml");
    assert_eq!(errs.len(), 3, "{rendered}");
    let lines: Vec<&str> = rendered
        .lines()
        .filter(|l| !l.starts_with("  hint"))
        .collect();
    assert_eq!(
        lines,
        [
            "plan.yaml:7:22: environment variable `DEPLOY_TOKEN` is not set",
            "plan.yaml:8:14: timeout: `5 minutes please` is not a duration",
            "plan.yaml:10:5: step: unknown key `idempotnt`",
        ],
        "{rendered}"
    );
    assert!(
        rendered.contains("did you mean `idempotent`?"),
        "{rendered}"
    );
}

#[test]
fn unknown_top_level_key_gets_a_hint() {
    let errs = errors("version: 1\nname: n\nservice: s\nstep:\n  - run: x\n");
    let r = errs.render("p");
    assert!(r.contains("p:4:1: plan: unknown key `step`"), "{r}");
    assert!(r.contains("did you mean `steps`?"), "{r}");
    assert!(
        r.contains("p:1:1: plan: missing required key `steps`"),
        "{r}"
    );
}

#[test]
fn percentages_and_durations() {
    let plan = ok(
        "version: 1\nname: n\nservice: s\nrouter: {kind: command, command: 'x {weight}'}\nsteps:\n  - traffic: 0.5%\n  - traffic: 12.25%\n  - pause: 90s\n  - traffic: 100%\n",
    );
    let weights: Vec<Weight> = plan
        .steps
        .iter()
        .filter_map(|s| match s.kind {
            StepKind::Traffic(w) => Some(w),
            _ => None,
        })
        .collect();
    assert_eq!(
        weights.iter().map(|w| w.basis_points()).collect::<Vec<_>>(),
        [50, 1225, 10_000]
    );
    assert_eq!(
        weights.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
        ["0.5", "12.25", "100"]
    );
    assert!(matches!(plan.steps[2].kind, StepKind::Pause(d) if d.as_secs() == 90));
    assert_eq!(plan.steps[0].name, "traffic 0.5%");

    for bad in [
        "traffic: 101%",
        "traffic: 50",
        "traffic: 0.001%",
        "pause: 10",
        "pause: soon",
    ] {
        let src = format!(
            "version: 1\nname: n\nservice: s\nrouter: {{kind: command, command: 'x {{weight}}'}}\nsteps:\n  - {bad}\n"
        );
        let errs = errors(&src);
        assert_eq!(errs.len(), 1, "{bad}: {}", errs.render("p"));
        assert!(
            errs.render("p").starts_with("p:6:"),
            "{bad}: {}",
            errs.render("p")
        );
    }
}

#[test]
fn variables_are_resolved_but_never_displayed() {
    let plan = ok(
        "version: 1\nname: n\nservice: s\nsteps:\n  - run: psql ${DB_URL} -c 'select 1'\n    env: { REGION: '${REGION}' }\n",
    );
    let StepKind::Run(run) = &plan.steps[0].kind else {
        panic!()
    };
    assert_eq!(run.command.to_string(), "psql ${DB_URL} -c 'select 1'");
    assert_eq!(
        run.command.expose(),
        "psql postgres://app:hunter2@127.0.0.1/shop -c 'select 1'"
    );
    let debug = format!("{plan:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert_eq!(
        plan.variables.names().collect::<Vec<_>>(),
        ["DB_URL", "REGION"]
    );
    // Two-letter values are not redacted from output: they would shred it.
    assert_eq!(plan.variables.redactable_values().count(), 1);
}

#[test]
fn escaped_reference_is_literal() {
    let plan = ok(
        "version: 1\nname: n\nservice: s\nsteps:\n  - wait: { http: 'http://h/$${NOT_A_VAR}' }\n",
    );
    let StepKind::Wait(w) = &plan.steps[0].kind else {
        panic!()
    };
    assert_eq!(w.url.expose(), "http://h/${NOT_A_VAR}");
}

#[test]
fn step_shape_errors() {
    let e = errors("version: 1\nname: n\nservice: s\nsteps:\n  - { run: a, pause: 5s }\n  - { name: x }\n  - { traffic: 5%, timeout: 5m }\n  - { approve: { role: sre }, idempotent: true }\n").render("p");
    assert!(e.contains("has both `run` and `pause`"), "{e}");
    assert!(e.contains("p:6:5: step: no step kind given"), "{e}");
    assert!(e.contains("`timeout` applies to `run` steps only"), "{e}");
    assert!(
        e.contains("`approve` steps are idempotent by nature"),
        "{e}"
    );
    assert!(
        e.contains("sets traffic, but the plan has no `router`"),
        "{e}"
    );
}

#[test]
fn unavailable_capabilities_are_errors_not_ignored() {
    let e = errors("version: 1\nname: n\nservice: s\nchecklist: {}\nsteps:\n  - smoke: { requests: [] }\nnotify:\n  - slack: {}\n").render("p");
    assert!(
        e.contains("p:4:1: `checklist` (the go/no-go checklist) is not available"),
        "{e}"
    );
    assert!(
        e.contains("p:6:5: `smoke` (smoke tests) is not available"),
        "{e}"
    );
    assert!(
        e.contains("p:7:1: `notify` (notifications) is not available"),
        "{e}"
    );
}

#[test]
fn rollback_steps_may_not_move_traffic_or_wait_for_humans() {
    let e = errors("version: 1\nname: n\nservice: s\nrouter: {kind: command, command: 'x {weight}'}\nsteps:\n  - traffic: 5%\nrollback:\n  steps:\n    - traffic: 0%\n    - approve: { role: sre }\n").render("p");
    assert!(
        e.contains("p:9:7: rollback.steps: `traffic` steps are not allowed"),
        "{e}"
    );
    assert!(
        e.contains("p:10:7: rollback.steps: `approve` steps are not allowed"),
        "{e}"
    );
}

#[test]
fn bad_yaml_and_wrong_version() {
    let e = errors("version: 1\nname: [unclosed\n").render("p");
    assert!(e.contains("invalid YAML"), "{e}");
    let e = errors(&MINIMAL.replace("version: 1", "version: 2")).render("p");
    assert!(
        e.contains("p:1:10: version: plan format 2 is not supported"),
        "{e}"
    );
    let e = errors("version: 1\nname: n\nservice: s\nsteps: []\n").render("p");
    assert!(
        e.contains("p:4:8: steps: a plan needs at least one step"),
        "{e}"
    );
    let e = errors("").render("p");
    assert!(e.contains("the plan is empty"), "{e}");
    let e = errors("- a\n- b\n").render("p");
    assert!(e.contains("plan: expected a mapping"), "{e}");
}

#[test]
fn duplicate_step_names_and_keys() {
    let e = errors("version: 1\nname: n\nservice: s\nsteps:\n  - { name: a, run: x }\n  - { name: a, run: y }\n").render("p");
    assert!(e.contains("two steps are named `a`"), "{e}");
    let plan = ok(
        "version: 1\nname: n\nservice: s\nsteps:\n  - pause: 1s\n  - pause: 1s\n  - { name: 'pause 1s #2', run: x }\n",
    );
    let names: Vec<_> = plan.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["pause 1s", "pause 1s #3", "pause 1s #2"],
        "derived names are numbered, given ones kept"
    );
    let e = errors("version: 1\nname: n\nname: m\nservice: s\nsteps: [{run: x}]\n").render("p");
    assert!(e.contains("duplicated key"), "{e}");
}

#[test]
fn defaults_are_applied() {
    let plan = ok(MINIMAL);
    let StepKind::Run(run) = &plan.steps[0].kind else {
        panic!()
    };
    assert!(!run.idempotent);
    assert_eq!(run.timeout, liftoff_plan::defaults::RUN_TIMEOUT);
    assert_eq!(plan.steps[0].name, "run echo hi");
}

#[test]
fn builtin_router_with_every_option() {
    let plan = ok(
        "version: 1\nname: n\nservice: s\nrouter:\n  kind: builtin\n  listen: 127.0.0.1:8080\n  host: shop.example\n  stable: http://127.0.0.1:9000\n  candidate: 'http://127.0.0.1:9001/'\n  sticky: { cookie: uid }\n  override_header: X-Tester\n  health: { path: /ready, interval: 500ms, timeout: 200ms, healthy_threshold: 1, unhealthy_threshold: 2 }\nsteps:\n  - traffic: 5%\n",
    );
    let Some(RouterSpec::Builtin(b)) = &plan.router else {
        panic!("{:?}", plan.router)
    };
    assert_eq!(b.listen.port(), 8080);
    assert_eq!(b.sticky, Sticky::Cookie("uid".into()));
    assert_eq!(b.override_header.as_deref(), Some("x-tester"));
    assert_eq!(b.health.as_ref().unwrap().unhealthy_threshold, 2);
    let plan = ok(
        "version: 1\nname: n\nservice: s\nrouter: { kind: builtin, listen: '127.0.0.1:0', stable: 'http://a:1', candidate: 'http://b:2', override_header: false }\nsteps:\n  - traffic: 5%\n",
    );
    let Some(RouterSpec::Builtin(b)) = &plan.router else {
        panic!()
    };
    assert_eq!(
        (
            b.override_header.clone(),
            b.sticky.clone(),
            b.health.clone()
        ),
        (None, Sticky::None, None)
    );
}

#[test]
fn builtin_router_mistakes() {
    let e = errors("version: 1\nname: n\nservice: s\nrouter:\n  kind: builtin\n  listen: localhost\n  stable: https://a:1\n  candidate: http://b\n  command: ./x.sh {weight}\n  sticky: { header: X-User, cookie: c }\nsteps:\n  - traffic: 5%\n").render("p");
    assert!(
        e.contains("p:6:11: router.listen: `localhost` is not an address:port"),
        "{e}"
    );
    assert!(
        e.contains("p:7:11: router.stable: `https://a:1` is not an http:// URL"),
        "{e}"
    );
    assert!(
        e.contains("p:8:14: router.candidate: `http://b` has no port"),
        "{e}"
    );
    assert!(
        e.contains("p:9:3: router: `command` applies to `kind: command` routers only"),
        "{e}"
    );
    assert!(
        e.contains("p:10:11: router.sticky: give exactly one of"),
        "{e}"
    );
    let e = errors("version: 1\nname: n\nservice: s\nrouter: { kind: command, command: 'x {weight}', listen: '1.2.3.4:5' }\nsteps:\n  - traffic: 5%\n").render("p");
    assert!(
        e.contains("router: `listen` applies to `kind: builtin` routers only"),
        "{e}"
    );
}

#[test]
fn maintenance_steps_and_settings() {
    let plan = ok(
        "version: 1\nname: n\nservice: s\nrouter:\n  kind: builtin\n  listen: 127.0.0.1:8080\n  stable: http://127.0.0.1:9000\n  candidate: http://127.0.0.1:9001\n  maintenance: { retry_after: 2m, page: '<h1>brb</h1>', allow: [10.0.0.0/8, 127.0.0.1], bypass_header: { name: X-Bypass, value: '${DB_URL}' } }\nsteps:\n  - maintenance: on\n  - traffic: 100%\n  - maintenance: off\nrollback:\n  steps:\n    - maintenance: off\n",
    );
    assert!(matches!(plan.steps[0].kind, StepKind::Maintenance(true)));
    assert_eq!(plan.steps[2].name, "maintenance off");
    let Some(RouterSpec::Builtin(b)) = &plan.router else {
        panic!()
    };
    assert_eq!(b.maintenance.retry_after.as_secs(), 120);
    assert_eq!(b.maintenance.allow, ["10.0.0.0/8", "127.0.0.1"]);
    let (name, value) = b.maintenance.bypass_header.clone().unwrap();
    assert_eq!((name.as_str(), value.template()), ("x-bypass", "${DB_URL}"));

    let e = errors(
        "version: 1\nname: n\nservice: s\nsteps:\n  - maintenance: maybe\n  - maintenance: on\n",
    )
    .render("p");
    assert!(
        e.contains("p:5:18: maintenance: expected `on` or `off`"),
        "{e}"
    );
    assert!(
        e.contains("p:6:5: step `maintenance on` needs the builtin router"),
        "{e}"
    );
    let e = errors("version: 1\nname: n\nservice: s\nrouter: { kind: builtin, listen: '127.0.0.1:1', stable: 'http://a:1', candidate: 'http://b:2', maintenance: { allow: [10.0.0.0/33] } }\nsteps:\n  - traffic: 5%\n").render("p");
    assert!(
        e.contains("`10.0.0.0/33` is not an address or CIDR network"),
        "{e}"
    );
}

const BUILTIN: &str = "router: { kind: builtin, listen: '127.0.0.1:0', stable: 'http://127.0.0.1:1', candidate: 'http://127.0.0.1:2' }\n";

#[test]
fn analyze_steps_bake_and_triggers() {
    let plan = ok(&format!(
        "version: 1\nname: n\nservice: s\n{BUILTIN}steps:\n  - traffic: 5%\n  - analyze: {{ for: 5m, interval: 10s, gates: ['error_rate < 1%', 'p95 < 500ms over 1m'], compare: stable }}\n  - bake: {{ for: 30m }}\nrollback:\n  on:\n    - error_rate > 5% for 3s\n    - {{ when: 'p99 > 2s', action: pause }}\n  check_every: 200ms\n"
    ));
    let StepKind::Analyze(a) = &plan.steps[1].kind else {
        panic!()
    };
    assert_eq!((a.gates.len(), a.min_requests, a.failure_limit), (2, 50, 0));
    assert!(a.compare.is_some());
    assert_eq!(plan.steps[1].name, "analyze 5m");
    assert!(matches!(plan.steps[2].kind, StepKind::Pause(d) if d.as_secs() == 1800));
    assert_eq!(plan.rollback.triggers.len(), 2);
    assert_eq!(
        plan.rollback.triggers[1].action,
        liftoff_plan::TriggerAction::Pause
    );
    assert_eq!(plan.rollback.check_every.as_millis(), 200);
}

#[test]
fn condition_errors_point_inside_the_string() {
    let e = errors(&format!(
        "version: 1\nname: n\nservice: s\n{BUILTIN}steps:\n  - analyze: {{ for: 1m, gates: ['eror_rate < 1%', 'p95 < 5%'] }}\nrollback:\n  on: ['error_rate > 5% for soon']\n"
    ))
    .render("p");
    assert!(
        e.contains("p:6:34: analyze.gates: unknown metric `eror_rate`"),
        "{e}"
    );
    assert!(e.contains("did you mean `error_rate`?"), "{e}");
    assert!(
        e.contains("p:6:58: analyze.gates: `5%` is not a valid threshold for p95"),
        "{e}"
    );
    assert!(
        e.contains("p:8:29: rollback.on: `soon` is not a duration"),
        "{e}"
    );
    let e = errors("version: 1\nname: n\nservice: s\nsteps:\n  - analyze: { for: 1m, gates: ['error_rate < 1%'] }\nrollback:\n  on: ['error_rate > 5%']\n").render("p");
    assert!(e.contains("needs observations"), "{e}");
    assert!(
        e.contains("rollback.on: condition triggers read the builtin router's observations"),
        "{e}"
    );
}

#[test]
fn promql_gates_and_triggers_need_prometheus_and_plain_numbers() {
    let plan = ok(
        "version: 1\nname: n\nservice: s\nrouter: { kind: command, command: 'x {weight}' }\nmetrics: { kind: prometheus, url: 'http://127.0.0.1:9090' }\nsteps:\n  - traffic: 5%\n  - analyze: { for: 1m, gates: [{ query: 'sum(up{job=\"{{service}}\"})', condition: '>= 1', version: stable }] }\nrollback:\n  on:\n    - { name: spike, query: 'sum(rate(x[1m]))', condition: '> 5', for: 2m, action: pause }\n",
    );
    let StepKind::Analyze(a) = &plan.steps[1].kind else {
        panic!()
    };
    let liftoff_plan::Gate::Query(q) = &a.gates[0] else {
        panic!()
    };
    assert_eq!(
        (q.threshold, q.version),
        (1.0, liftoff_plan::condition::Version::Stable)
    );
    assert_eq!(q.name, "sum(up{job=\"{{service}}\"})");
    assert_eq!(plan.rollback.triggers[0].gate.text(), "spike");
    assert_eq!(
        plan.rollback.triggers[0]
            .gate
            .sustained()
            .map(|d| d.as_secs()),
        Some(120)
    );

    let e = errors("version: 1\nname: n\nservice: s\nrouter: { kind: command, command: 'x {weight}' }\nsteps:\n  - traffic: 5%\n  - analyze: { for: 1m, gates: [{ query: 'x', condition: '< 1%' }] }\nrollback:\n  on: [{ query: x, condition: '= 3', when: 'error_rate > 1%' }]\n").render("p");
    assert!(e.contains("condition: `1%` is not a number"), "{e}");

    assert!(
        e.contains("condition: `= 3` does not start with a comparison"),
        "{e}"
    );
    assert!(
        e.contains("give `when` (a condition) or `query` (PromQL), not both"),
        "{e}"
    );
    let e = errors("version: 1\nname: n\nservice: s\nsteps:\n  - analyze: { for: 1m, gates: [{ query: 'x', condition: '< 0.01' }] }\n").render("p");
    assert!(
        e.contains("has PromQL gates but the plan has no Prometheus"),
        "{e}"
    );
    let e = errors("version: 1\nname: n\nservice: s\nmetrics: { kind: prometheus, url: 'ftp://x' }\nsteps:\n  - run: x\n").render("p");
    assert!(
        e.contains("metrics.url: `ftp://x` is not an http URL"),
        "{e}"
    );
    let e = errors("version: 1\nname: n\nservice: s\nsteps:\n  - wait: { http: 'https://shop.example.com/health' }\n").render("p");
    assert!(
        e.contains("p:5:19: wait.http: `https://shop.example.com/health`: https is not supported"),
        "{e}"
    );
    let e = errors("version: 1\nname: n\nservice: s\nmetrics: { kind: prometheus, url: 'http://127.0.0.1:9090' }\nsteps:\n  - run: x\nrollback:\n  on: [{ query: x, condition: '> 1' }]\n").render("p");
    assert!(
        e.contains("this plan has no router"),
        "triggers that could never arm are an error: {e}"
    );
}
