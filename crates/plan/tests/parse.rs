use std::time::Duration;

use liftoff_plan::checks::{CheckKind, DbEngine, DiskFree, Expected, PassRule, Value};
use liftoff_plan::condition::Op;
use liftoff_plan::{Plan, PlanErrors, RouterSpec, StepKind, Sticky, UpstreamHost, Weight, parse};

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
fn flag_steps_monitor_steps_and_the_disable_flag_trigger() {
    let plan = ok(
        "version: 1\nname: n\nservice: s\nrouter: { kind: builtin, listen: '127.0.0.1:1', stable: 'http://a:1', candidate: 'http://b:2' }\nsteps:\n  - flag: { name: new_checkout, percent: 2.5% }\n  - flag: { name: new_checkout, enabled: false }\n  - monitor: { checkpoints: [15m, 1h], gates: ['error_rate < 1%'] }\nrollback:\n  on:\n    - { when: 'error_rate > 2%', disable_flag: new_checkout }\n",
    );
    let names: Vec<&str> = plan.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "flag new_checkout 2.5%",
            "flag new_checkout off",
            "monitor 1h"
        ]
    );
    let liftoff_plan::StepKind::Monitor(m) = &plan.steps[2].kind else {
        panic!()
    };
    assert_eq!(m.checkpoints.len(), 2);
    assert_eq!(m.window.as_secs(), 300);
    assert_eq!(
        plan.rollback.triggers[0].action,
        liftoff_plan::TriggerAction::DisableFlag("new_checkout".into())
    );

    let e = errors("version: 1\nname: n\nservice: s\nsteps:\n  - flag: { name: new-checkout }\n  - flag: { name: 'bad name', percent: 5% }\n  - flag: { name: x, percent: 5%, enabled: true }\n  - monitor: {}\n  - monitor: { checkpoints: [1h, 30m], gates: ['error_rate < 1%'] }\nrollback:\n  on: [{ when: 'error_rate > 2%', action: pause, disable_flag: x }]\n  steps:\n    - monitor: { checkpoints: [1m] }\n").render("p");
    for expected in [
        "p:5:11: flag: missing `percent` or `enabled`",
        "p:6:19: flag.name: `bad name` is not a flag name",
        "p:7:35: flag: give `percent` or `enabled`, not both",
        "p:8:14: monitor: missing required key `checkpoints`",
        "p:9:34: monitor.checkpoints: checkpoints must be in increasing order",
        "rollback.on[]: `disable_flag` is the action; it takes no `action`",
        "p:13:7: rollback.steps: `monitor` steps are not allowed",
    ] {
        assert!(e.contains(expected), "missing {expected:?} in\n{e}");
    }
    let e = errors("version: 1\nname: n\nservice: s\nsteps:\n  - monitor: { checkpoints: [1h], gates: ['error_rate < 1%'] }\n").render("p");
    assert!(
        e.contains("p:5:5: step `monitor 1h` has conditions that read the builtin router"),
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
        "version: 1\nname: n\nservice: s\nrouter:\n  kind: builtin\n  listen: 127.0.0.1:8080\n  host: shop.example\n  stable: http://127.0.0.1:9000\n  candidate: 'http://127.0.0.1:9001/'\n  sticky: { cookie: uid }\n  override: { header: X-Tester, secret: '${REGION}', allow: [10.0.0.0/8, 127.0.0.1], count: true }\n  health: { path: /ready, interval: 500ms, timeout: 200ms, healthy_threshold: 1, unhealthy_threshold: 2 }\nsteps:\n  - traffic: 5%\n",
    );
    let Some(RouterSpec::Builtin(b)) = &plan.router else {
        panic!("{:?}", plan.router)
    };
    assert_eq!(b.listen.port(), 8080);
    assert_eq!(b.sticky, Sticky::Cookie("uid".into()));
    let o = b.version_override.as_ref().unwrap();
    assert_eq!(o.header, "x-tester");
    assert_eq!(o.secret.as_ref().map(|s| s.expose()), Some("eu"));
    assert_eq!(o.allow, ["10.0.0.0/8", "127.0.0.1"]);
    assert!(o.count);
    assert_eq!(b.health.as_ref().unwrap().unhealthy_threshold, 2);
    let plan = ok(
        "version: 1\nname: n\nservice: s\nrouter: { kind: builtin, listen: '127.0.0.1:0', stable: 'http://a:1', candidate: 'http://b:2' }\nsteps:\n  - traffic: 5%\n",
    );
    let Some(RouterSpec::Builtin(b)) = &plan.router else {
        panic!()
    };
    assert!(
        b.version_override.is_none(),
        "no client picks a version unless the plan says who may"
    );
    assert_eq!((b.sticky.clone(), b.health.clone()), (Sticky::None, None));
}

#[test]
fn tls_termination_and_https_upstreams() {
    let plan = ok(
        "version: 1\nname: n\nservice: s\nrouter:\n  kind: builtin\n  listen: 0.0.0.0:443\n  tls:\n    - { cert: /etc/tls/a.pem, key: /etc/tls/a.key }\n    - { cert: /etc/tls/b.pem, key: /etc/tls/b.key }\n  stable: https://shop-blue.run.app\n  candidate: [https://10.0.0.2:8443, 'https://[::1]']\n  upstreams: { ca: /etc/tls/ca.pem, host: instance }\nsteps:\n  - traffic: 5%\n",
    );
    let Some(RouterSpec::Builtin(b)) = &plan.router else {
        panic!("{:?}", plan.router)
    };
    assert_eq!(b.tls.len(), 2);
    assert_eq!(
        (
            b.tls[1].key.as_str(),
            b.tls[1].key_at.line,
            b.tls[1].key_at.col
        ),
        ("/etc/tls/b.key", 9, 36)
    );
    assert_eq!(
        b.upstreams.ca.as_ref().map(|(p, at)| (p.as_str(), at.line)),
        Some(("/etc/tls/ca.pem", 12))
    );
    assert_eq!(b.upstreams.host, UpstreamHost::Instance);
    let one = ok(
        "version: 1\nname: n\nservice: s\nrouter:\n  kind: builtin\n  listen: 0.0.0.0:443\n  tls: { cert: /c.pem, key: /k.pem }\n  stable: http://a:1\n  candidate: http://b:2\nsteps:\n  - traffic: 5%\n",
    );
    let Some(RouterSpec::Builtin(b)) = &one.router else {
        panic!()
    };
    assert_eq!((b.tls.len(), b.upstreams.host), (1, UpstreamHost::Client));
    let e = errors("version: 1\nname: n\nservice: s\nrouter:\n  kind: builtin\n  listen: 0.0.0.0:443\n  tls: { cert: certs/a.pem, keys: /k.pem }\n  stable: http://a:1\n  candidate: http://b\n  upstreams: { host: public }\nsteps:\n  - traffic: 5%\n").render("p");
    assert!(
        e.contains("p:7:16: router.tls.cert: `certs/a.pem` is not an absolute path"),
        "{e}"
    );
    assert!(e.contains("p:7:29: tls: unknown key `keys`"), "{e}");
    assert!(
        e.contains("p:10:22: router.upstreams.host: unknown policy `public`"),
        "{e}"
    );
    assert!(
        e.contains("router.candidate: `http://b` has no port"),
        "{e}"
    );
}

#[test]
fn the_version_override_needs_a_secret_or_client_networks() {
    let router = |o: &str| {
        format!(
            "version: 1\nname: n\nservice: s\nrouter:\n  kind: builtin\n  listen: 127.0.0.1:0\n  stable: http://a:1\n  candidate: http://b:2\n  override: {o}\nsteps:\n  - traffic: 5%\n"
        )
    };
    let plan = ok(&router("{ secret: '${DB_URL}' }"));
    let Some(RouterSpec::Builtin(b)) = &plan.router else {
        panic!()
    };
    let o = b.version_override.as_ref().unwrap();
    assert_eq!(
        (o.header.as_str(), o.allow.is_empty(), o.count),
        ("x-liftoff-version", true, false)
    );
    ok(&router("{ allow: [192.168.1.20] }"));
    for neither in ["{ header: X-Tester }", "{ allow: [] }", "{ count: true }"] {
        let e = errors(&router(neither)).render("p");
        assert!(
            e.contains("p:9:13: router.override: give `secret`, `allow` or both"),
            "{neither}: {e}"
        );
    }
    let e = errors(&router("{ allow: [10.0.0.0/33] }")).render("p");
    assert!(
        e.contains("router.override.allow: `10.0.0.0/33` is not an address or CIDR network"),
        "{e}"
    );
    let e = errors(&router("{ secret: 'two words' }")).render("p");
    assert!(
        e.contains("router.override.secret: must be non-empty visible ASCII"),
        "{e}"
    );
    assert!(
        !e.contains("two words"),
        "a secret is never quoted back: {e}"
    );
    let e = errors(&router("{ secret: s, allow: [10.0.0.1], typo: 1 }")).render("p");
    assert!(e.contains("override: unknown key `typo`"), "{e}");
}

#[test]
fn override_header_is_an_error_that_points_at_the_new_form() {
    let e = errors("version: 1\nname: n\nservice: s\nrouter: { kind: builtin, listen: '127.0.0.1:0', stable: 'http://a:1', candidate: 'http://b:2', override_header: X-Liftoff-Version }\nsteps:\n  - traffic: 5%\n").render("p");
    assert!(
        e.contains("router: `override_header` is no longer accepted"),
        "{e}"
    );
    assert!(
        e.contains("`override: { header: X-Liftoff-Version, secret: \"${TESTER_TOKEN}\" }`"),
        "{e}"
    );
    assert!(!e.contains("unknown key"), "one error, not two: {e}");
}

#[test]
fn builtin_router_mistakes() {
    let e = errors("version: 1\nname: n\nservice: s\nrouter:\n  kind: builtin\n  listen: localhost\n  stable: ftp://a:1\n  candidate: http://b\n  command: ./x.sh {weight}\n  sticky: { header: X-User, cookie: c }\nsteps:\n  - traffic: 5%\n").render("p");
    assert!(
        e.contains("p:6:11: router.listen: `localhost` is not an address:port"),
        "{e}"
    );
    assert!(
        e.contains("p:7:11: router.stable: `ftp://a:1` is not an http:// or https:// URL"),
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
    // Without the builtin router, a maintenance step switches the `maintenance_mode`
    // flag only.
    ok("version: 1\nname: n\nservice: s\nsteps:\n  - maintenance: on\n");
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
        e.contains("metrics.url: `ftp://x` is not an http or https URL"),
        "{e}"
    );
    let e = errors(
        "version: 1\nname: n\nservice: s\nsteps:\n  - wait: { http: 'shop.example.com/health' }\n",
    )
    .render("p");
    assert!(
        e.contains("p:5:19: wait.http: `shop.example.com/health` is not an http or https URL"),
        "{e}"
    );
    let ok = liftoff_plan::parse(
        "version: 1\nname: n\nservice: s\nsteps:\n  - wait: { http: 'https://shop.example.com/health' }\n",
        &|_| None,
    );
    assert!(ok.is_ok(), "https is verified against the system's roots");
    let e = errors("version: 1\nname: n\nservice: s\nmetrics: { kind: prometheus, url: 'http://127.0.0.1:9090' }\nsteps:\n  - run: x\nrollback:\n  on: [{ query: x, condition: '> 1' }]\n").render("p");
    assert!(
        e.contains("this plan has no router"),
        "triggers that could never arm are an error: {e}"
    );
}

const PROMETHEUS: &str = "metrics: { kind: prometheus, url: 'http://127.0.0.1:9090' }\n";

#[test]
fn a_full_checklist_with_every_kind_of_item() {
    let plan = ok(&format!(
        "\
version: 1
name: n
service: s
{PROMETHEUS}checklist:
  pass: {{ critical: 100%, overall: 95% }}
  timeout: 15s
  items:
    - {{ http: 'http://127.0.0.1:8080/health', method: post, headers: {{ X-Key: '${{DB_URL}}' }}, body: '{{}}', body_contains: ok, json: {{ /ok: true, /lag: '< 5' }}, max_latency: 1s }}
    - {{ tcp: '127.0.0.1:5432' }}
    - {{ tcp: '127.0.0.1:5432', critical: false }}
    - {{ tls: 'api.example.com:443', ca_file: ca.pem }}
    - {{ disk: /var/lib, min_free: 20% }}
    - {{ disk: /var/backups, min_free: 10GiB }}
    - {{ name: tests, command: ./check.sh, exit_code: 3, output_contains: passed, dir: scripts, timeout: 2m }}
    - {{ postgres: '${{DB_URL}}', query: select pg_is_in_recovery(), expect: false }}
    - {{ postgres: 'postgres://app@127.0.0.1/shop' }}
    - {{ redis: 'redis://127.0.0.1:6379' }}
    - {{ redis: 'redis://127.0.0.1:6379', info: connected_slaves, expect: '>= 1' }}
    - {{ prometheus: 'sum(up)', condition: '>= 1' }}
    - {{ file: /var/backups/latest.dump, max_age: 24h }}
    - {{ approval: sre }}
steps:
  - run: x
"
    ));
    let list = plan.checklist.as_ref().expect("a checklist");
    assert_eq!(
        list.pass,
        PassRule {
            critical: Weight::FULL,
            overall: Weight::from_basis_points(9500).unwrap(),
        }
    );
    let names: Vec<&str> = list.items.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "POST http://127.0.0.1:8080/health",
            "tcp 127.0.0.1:5432",
            "tcp 127.0.0.1:5432 #2",
            "tls api.example.com:443",
            "disk /var/lib",
            "disk /var/backups",
            "tests",
            "postgres select pg_is_in_recovery()",
            "postgres select 1",
            "redis ping",
            "redis connected_slaves",
            "prometheus sum(up)",
            "file /var/backups/latest.dump",
            "approval by sre",
        ],
        "derived names, repeats numbered"
    );
    let critical: Vec<bool> = list.items.iter().map(|i| i.critical).collect();
    assert_eq!(critical.iter().filter(|c| !**c).count(), 1);
    assert!(!critical[2]);
    // `checklist.timeout` is every item's default, but an approval's (24h).
    assert_eq!(list.items[0].timeout, Duration::from_secs(15));
    assert_eq!(list.items[6].timeout, Duration::from_secs(120));
    assert_eq!(list.items[13].timeout, Duration::from_secs(24 * 3600));

    let CheckKind::Http(h) = &list.items[0].kind else {
        panic!("{:?}", list.items[0])
    };
    assert_eq!(h.method, "POST");
    assert_eq!(h.expect.status, 200);
    assert_eq!(h.headers[0].0, "X-Key");
    assert_eq!(h.headers[0].1.template(), "${DB_URL}");
    assert_eq!(h.body.as_ref().map(|b| b.expose()), Some("{}"));
    assert_eq!(h.expect.body_contains.as_deref(), Some("ok"));
    assert_eq!(
        h.expect.json,
        [
            ("/ok".to_string(), Expected::Equals(Value::Bool(true))),
            ("/lag".to_string(), Expected::Compare(Op::Lt, 5.0)),
        ]
    );
    assert_eq!(h.expect.max_latency, Some(Duration::from_secs(1)));
    let CheckKind::Tls(t) = &list.items[3].kind else {
        panic!()
    };
    assert_eq!(
        (t.server_name.as_str(), t.min_days),
        ("api.example.com", 14)
    );
    assert_eq!(t.ca_file.as_ref().map(|c| c.template()), Some("ca.pem"));
    let disks: Vec<DiskFree> = list
        .items
        .iter()
        .filter_map(|i| match &i.kind {
            CheckKind::Disk(d) => Some(d.min_free),
            _ => None,
        })
        .collect();
    assert_eq!(disks, [DiskFree::Percent(20.0), DiskFree::Bytes(10 << 30)]);
    let CheckKind::Command(c) = &list.items[6].kind else {
        panic!()
    };
    assert_eq!(
        (c.exit_code, c.output_contains.as_deref()),
        (3, Some("passed"))
    );
    assert_eq!(c.dir.as_ref().map(|d| d.template()), Some("scripts"));
    let CheckKind::Postgres(db) = &list.items[7].kind else {
        panic!()
    };
    assert_eq!(db.expect, Some(Expected::Equals(Value::Bool(false))));
    let CheckKind::Postgres(db) = &list.items[8].kind else {
        panic!()
    };
    assert_eq!((db.query.as_str(), &db.expect), ("select 1", &None));
    let CheckKind::Redis(r) = &list.items[9].kind else {
        panic!()
    };
    assert_eq!((&r.info, &r.expect), (&None, &None), "a PING");
    let CheckKind::Redis(r) = &list.items[10].kind else {
        panic!()
    };
    assert_eq!(r.expect, Some(Expected::Compare(Op::Ge, 1.0)));
    let CheckKind::Prometheus(p) = &list.items[11].kind else {
        panic!()
    };
    assert_eq!((p.op, p.threshold), (Op::Ge, 1.0));
    let CheckKind::File(f) = &list.items[12].kind else {
        panic!()
    };
    assert_eq!(f.max_age, Some(Duration::from_secs(24 * 3600)));
    assert!(matches!(&list.items[13].kind, CheckKind::Approval { role } if role == "sre"));

    let debug = format!("{plan:?}");
    assert!(
        !debug.contains("hunter2"),
        "connection strings are secrets: {debug}"
    );
}

#[test]
fn a_checklist_list_takes_the_default_pass_rule_and_timeouts() {
    let plan = ok(
        "version: 1\nname: n\nservice: s\nchecklist:\n  - tcp: 'db:5432'\n  - { approval: dba, critical: false }\nsteps:\n  - check: [{ http: 'https://api.example.com/health', status: 204 }]\n",
    );
    let list = plan.checklist.unwrap();
    assert_eq!(list.pass, PassRule::default());
    assert_eq!(
        (list.pass.critical, list.pass.overall),
        (Weight::FULL, Weight::STABLE),
        "critical 100%, overall 0%: non-critical failures are warnings"
    );
    let kinds: Vec<&str> = list.items.iter().map(|i| i.kind.keyword()).collect();
    assert_eq!(kinds, ["tcp", "approval"]);
    assert_eq!(list.items[0].timeout, Duration::from_secs(10));
    assert_eq!(list.items[1].timeout, Duration::from_secs(24 * 3600));
    let StepKind::Check(step) = &plan.steps[0].kind else {
        panic!()
    };
    let CheckKind::Http(h) = &step.items[0].kind else {
        panic!()
    };
    assert_eq!((h.method.as_str(), h.expect.status), ("GET", 204));
    assert_eq!(
        plan.steps[0].name,
        "check GET https://api.example.com/health"
    );
    assert!(plan.steps[0].idempotent());
}

#[test]
fn a_checklist_item_has_exactly_one_kind() {
    let e = errors(
        "version: 1\nname: n\nservice: s\nchecklist:\n  - { http: 'http://a:1/', tcp: 'a:1' }\n  - { name: nothing }\nsteps:\n  - run: x\n",
    )
    .render("p");
    assert!(
        e.contains("p:5:28: checklist item: has both `http` and `tcp`"),
        "{e}"
    );
    assert!(
        e.contains("one kind per item: split it into two items"),
        "{e}"
    );
    assert!(e.contains("p:6:5: checklist item: no kind given"), "{e}");
}

#[test]
fn a_key_of_another_kind_of_item_is_an_error_at_the_key() {
    let e = errors(
        "version: 1\nname: n\nservice: s\nchecklist:\n  - http: 'http://a:1/'\n    min_days: 30\n  - { redis: 'redis://a:1', query: select 1, expect: PONG, info: role }\nsteps:\n  - run: x\n",
    )
    .render("p");
    assert!(
        e.contains("p:6:5: checklist item: `min_days` does not apply to `http` items"),
        "{e}"
    );
    assert!(
        e.contains("p:7:29: checklist item: `query` does not apply to `redis` items"),
        "{e}"
    );
    assert!(
        !e.contains("`expect` does not apply"),
        "`expect` belongs to redis items too: {e}"
    );
}

#[test]
fn a_disk_item_needs_a_valid_min_free() {
    let e = errors(
        "version: 1\nname: n\nservice: s\nchecklist:\n  - disk: /var/lib\n  - { disk: /a, min_free: lots }\n  - { disk: /b, min_free: 150% }\n  - { disk: /c, min_free: 5 parsecs }\nsteps:\n  - run: x\n",
    )
    .render("p");
    assert!(
        e.contains("p:5:5: checklist item: a `disk` item needs `min_free`"),
        "{e}"
    );
    assert!(
        e.contains("p:6:27: min_free: `lots` is neither a percentage nor a size"),
        "{e}"
    );
    assert!(
        e.contains("p:7:27: min_free: `150%` is not a percentage"),
        "{e}"
    );
    assert!(
        e.contains("p:8:27: min_free: `5 parsecs` is neither a percentage nor a size"),
        "{e}"
    );
}

#[test]
fn prometheus_items_need_a_prometheus_section() {
    let e = errors(
        "version: 1\nname: n\nservice: s\nchecklist:\n  - { prometheus: 'sum(up)', condition: '>= 1' }\nsteps:\n  - check: [{ prometheus: up, condition: '> 0' }]\nrollback:\n  steps:\n    - check: [{ prometheus: up, condition: '> 0' }]\n",
    )
    .render("p");
    for at in ["p:5:5", "p:7:13", "p:10:15"] {
        assert!(
            e.contains(&format!(
                "{at}: checklist item: `prometheus` items need `metrics: {{ kind: prometheus }}`"
            )),
            "{at}: {e}"
        );
    }
    let e = errors(&format!(
        "version: 1\nname: n\nservice: s\n{PROMETHEUS}checklist:\n  - {{ prometheus: 'sum(up)' }}\n  - {{ prometheus: 'sum(up)', condition: '= 1' }}\nsteps:\n  - run: x\n"
    ))
    .render("p");
    assert!(
        e.contains("p:6:5: checklist item: a `prometheus` item needs `condition`"),
        "{e}"
    );
    assert!(
        e.contains("p:7:41: condition: `= 1` is not a comparison with a number"),
        "{e}"
    );
}

#[test]
fn rollback_check_steps_may_not_wait_for_a_sign_off() {
    let e = errors(
        "version: 1\nname: n\nservice: s\nsteps:\n  - check: [{ approval: sre }]\nrollback:\n  steps:\n    - check: [{ tcp: 'a:1' }]\n    - name: signed off\n      check: [{ tcp: 'a:1' }, { approval: sre }]\n",
    )
    .render("p");
    assert_eq!(e.matches("rollback.steps:").count(), 1, "{e}");
    assert!(
        e.contains("p:9:7: rollback.steps: `check` steps are not allowed here: a rollback must never wait for a human (this one has an `approval` item)"),
        "{e}"
    );
}

#[test]
fn migrate_steps_parse_with_their_defaults() {
    let plan = ok(
        "version: 1\nname: n\nservice: s\nsteps:\n  - migrate: { database: '${DB_URL}', command: alembic upgrade head }\n  - migrate:\n      database: sqlite:data/app.db\n      command: ./migrate.sh\n      dir: db\n      timeout: 5m\n      verify: [{ query: select count(*) from t, expect: 3 }]\n      restore_on_rollback: true\n      restore_verify: [{ query: select v from schema_version, expect: '< 2' }]\n",
    );
    let StepKind::Migrate(m) = &plan.steps[0].kind else {
        panic!()
    };
    assert_eq!(m.engine, DbEngine::Postgres);
    assert_eq!(m.database.template(), "${DB_URL}");
    assert_eq!(m.timeout, Duration::from_secs(30 * 60));
    assert!(!m.restore_on_rollback && !m.terminate_sessions);
    assert!(m.verify.is_empty() && m.restore_verify.is_empty());
    assert_eq!(plan.steps[0].name, "migrate alembic upgrade head");
    assert!(!plan.steps[0].idempotent(), "a human decides after a crash");
    let StepKind::Migrate(m) = &plan.steps[1].kind else {
        panic!()
    };
    assert_eq!(m.engine, DbEngine::Sqlite);
    assert_eq!(m.timeout, Duration::from_secs(300));
    assert_eq!(m.verify[0].expect, Expected::Equals(Value::Number(3.0)));
    assert_eq!(m.restore_verify[0].expect, Expected::Compare(Op::Lt, 2.0));
    assert!(m.restore_on_rollback && !m.terminate_sessions);
    let e = errors("version: 1\nname: n\nservice: s\nsteps:\n  - migrate: { database: 'sqlite:a.db', command: x, restore_on_rollback: true, terminate_sessions: true }\n  - migrate: { database: 'postgres://h/d', command: x, terminate_sessions: true }\n  - migrate: { database: 'sqlite:', command: x }\nchecklist:\n  - { disk: /, min_free: 20 }\n").render("p");
    assert!(
        e.contains("p:5:80: migrate: `terminate_sessions` applies to PostgreSQL"),
        "{e}"
    );
    assert!(
        e.contains("p:6:56: migrate: `terminate_sessions` only matters to a restore"),
        "{e}"
    );
    assert!(
        e.contains("p:7:26: migrate.database: `sqlite:` needs a file path"),
        "{e}"
    );
    assert!(e.contains("p:9:26: min_free: `20` has no unit"), "{e}");
}

#[test]
fn restore_on_rollback_is_refused_in_rollback_steps() {
    let e = errors(
        "version: 1\nname: n\nservice: s\nsteps:\n  - migrate: { database: 'sqlite:a.db', command: ./up.sh, restore_on_rollback: true }\nrollback:\n  steps:\n    - migrate: { database: 'sqlite:a.db', command: ./down.sh }\n    - migrate: { database: 'sqlite:a.db', command: ./down.sh, restore_on_rollback: true }\n",
    )
    .render("p");
    assert_eq!(e.matches("rollback.steps:").count(), 1, "{e}");
    assert!(
        e.contains("p:9:7: rollback.steps: `migrate` steps are not allowed here: `restore_on_rollback` on a rollback step would restore during the rollback itself"),
        "{e}"
    );
}

#[test]
fn restore_verify_needs_restore_on_rollback() {
    let e = errors(
        "version: 1\nname: n\nservice: s\nsteps:\n  - migrate:\n      database: 'sqlite:a.db'\n      command: ./up.sh\n      restore_verify: [{ query: select 1, expect: 1 }]\n",
    )
    .render("p");
    assert!(
        e.contains(
            "p:8:7: migrate: `restore_verify` without `restore_on_rollback: true` would never run"
        ),
        "{e}"
    );
    let e = errors(
        "version: 1\nname: n\nservice: s\nsteps:\n  - migrate: { database: 'sqlite:a.db', command: x, restore_on_rollback: false, restore_verify: [{ query: select 1, expect: 1 }] }\n",
    )
    .render("p");
    assert!(e.contains("would never run"), "{e}");
    let e = errors(
        "version: 1\nname: n\nservice: s\nsteps:\n  - migrate: { database: 'sqlite:a.db', command: x, verify: [{ query: select 1 }] }\n",
    )
    .render("p");
    assert!(e.contains("verify: missing required key `expect`"), "{e}");
}

#[test]
fn smoke_requests_join_relative_urls_to_base_url() {
    let plan = ok(
        "version: 1\nname: n\nservice: s\nsteps:\n  - smoke:\n      base_url: 'http://api-${REGION}.example:8000/'\n      timeout: 3s\n      requests:\n        - url: /health\n        - { name: order, url: /orders, method: POST, body: '{}', status: 201, timeout: 30s }\n        - { url: 'https://other.example/ping' }\n",
    );
    let StepKind::Smoke(smoke) = &plan.steps[0].kind else {
        panic!()
    };
    let urls: Vec<(&str, &str)> = smoke
        .requests
        .iter()
        .map(|r| match &r.kind {
            CheckKind::Http(h) => (h.url.template(), h.url.expose()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        urls,
        [
            (
                "http://api-${REGION}.example:8000/health",
                "http://api-eu.example:8000/health"
            ),
            (
                "http://api-${REGION}.example:8000/orders",
                "http://api-eu.example:8000/orders"
            ),
            ("https://other.example/ping", "https://other.example/ping"),
        ],
        "one `/` between base_url and path; whole URLs left alone"
    );
    let names: Vec<&str> = smoke.requests.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "GET http://api-${REGION}.example:8000/health",
            "order",
            "GET https://other.example/ping"
        ],
        "names show the template, never the resolved value"
    );
    let timeouts: Vec<u64> = smoke.requests.iter().map(|r| r.timeout.as_secs()).collect();
    assert_eq!(timeouts, [3, 30, 3]);
    assert!(smoke.requests.iter().all(|r| r.critical));
    assert_eq!(plan.steps[0].name, "smoke 3 requests");
    assert!(plan.steps[0].idempotent());

    let e = errors(
        "version: 1\nname: n\nservice: s\nsteps:\n  - smoke: [{ url: /health }]\n  - smoke: { base_url: 'ftp://a', requests: [{ url: 'http://a.example/' }] }\n  - smoke: []\n",
    )
    .render("p");
    assert!(
        e.contains("p:5:20: url: `/health` is not an http or https URL"),
        "{e}"
    );
    assert!(
        e.contains("give a whole URL, or a path starting with `/` and `base_url`"),
        "{e}"
    );
    assert!(
        e.contains("p:6:24: base_url: `ftp://a` is not an http or https URL"),
        "{e}"
    );
    assert!(e.contains("p:7:12: smoke: no requests"), "{e}");
}

#[test]
fn connection_string_literals_are_checked() {
    let e = errors(
        "version: 1\nname: n\nservice: s\nchecklist:\n  - { postgres: 'mysql://app@db/shop' }\n  - { postgres: '${DB_URL}' }\n  - { redis: 'memcached://cache:11211' }\nsteps:\n  - migrate: { database: 'mysql://app@db/shop', command: x }\n",
    )
    .render("p");
    assert!(
        e.contains("p:5:17: postgres: not a `postgres://` connection URL"),
        "{e}"
    );
    assert!(
        !e.contains("p:6:"),
        "a variable is checked when used, not at load: {e}"
    );
    assert!(e.contains("p:7:14: redis: not a `redis://` URL"), "{e}");
    assert!(
        e.contains("p:9:26: migrate.database: neither a `postgres://` URL nor `sqlite:PATH`"),
        "{e}"
    );
    assert!(
        !e.contains("hunter2"),
        "errors never show a resolved value: {e}"
    );
}

#[test]
fn a_service_name_with_a_nul_byte_or_a_megabyte_is_refused() {
    let plan =
        |service: &str| format!("version: 1\nname: n\nservice: {service}\nsteps:\n  - run: t\n");
    for (service, expected) in [
        (
            r#""shop\0api""#,
            "p:3:10: service: `shop\\0api` is not a service name: it holds `\\0`",
        ),
        (
            "shop api",
            "p:3:14: service: `shop api` is not a service name: it holds ` `",
        ),
        (
            "shop/../api",
            "p:3:14: service: `shop/../api` is not a service name: it holds `/`",
        ),
        (
            "'shop\"}'",
            "p:3:15: service: `shop\"}` is not a service name: it holds `\"`",
        ),
    ] {
        let r = errors(&plan(service)).render("p");
        assert_eq!(r.lines().next(), Some(expected), "{service}: {r}");
        assert!(
            r.contains("hint: a service name is 1 to 63 letters, digits, `.`, `_` or `-`"),
            "{r}"
        );
    }
    let long = "a".repeat(1_000_000);
    let r = errors(&plan(&long)).render("p");
    assert_eq!(
        r.lines().next(),
        Some(
            format!(
                "p:3:10: service: `{}…` is 1000000 characters long, more than 63",
                "a".repeat(40)
            )
            .as_str()
        ),
    );
    assert_eq!(ok(&plan(&"a".repeat(63))).service.len(), 63);
    assert_eq!(ok(&plan("shop-api.v2_eu")).service, "shop-api.v2_eu");
}

#[test]
fn a_launch_name_is_one_line_of_display_text() {
    let plan = |name: &str| format!("version: 1\nname: {name}\nservice: s\nsteps:\n  - run: t\n");
    assert_eq!(
        ok(&plan("Shop API 2.0 — EU rollout")).name,
        "Shop API 2.0 — EU rollout"
    );
    let r = errors(&plan(r#""shop\napi""#)).render("p");
    assert_eq!(
        r.lines().next(),
        Some("p:2:7: name: `shop\\napi` holds the control character `\\n`"),
        "{r}"
    );
    let r = errors(&plan(&"é".repeat(129))).render("p");
    assert!(
        r.starts_with("p:2:7: name: `") && r.contains("` is 129 characters long, more than 128"),
        "{r}"
    );
    ok(&plan(&"é".repeat(128)));
}

#[test]
fn a_version_is_one_instance_or_a_list_of_them() {
    let plan = ok(
        "version: 1\nname: n\nservice: s\nrouter:\n  kind: builtin\n  listen: 127.0.0.1:8080\n  stable: [http://10.0.0.1:9000, 'http://10.0.0.2:9000/']\n  candidate: http://10.0.0.3:9000\nsteps:\n  - traffic: 5%\n",
    );
    let Some(RouterSpec::Builtin(b)) = &plan.router else {
        panic!("{:?}", plan.router)
    };
    let urls =
        |v: &[liftoff_plan::Text]| v.iter().map(|t| t.expose().to_string()).collect::<Vec<_>>();
    assert_eq!(
        urls(&b.stable),
        ["http://10.0.0.1:9000", "http://10.0.0.2:9000/"]
    );
    assert_eq!(urls(&b.candidate), ["http://10.0.0.3:9000"]);

    let e = errors("version: 1\nname: n\nservice: s\nrouter:\n  kind: builtin\n  listen: 127.0.0.1:8080\n  stable: []\n  candidate:\n    - http://10.0.0.3:9000\n    - ftp://10.0.0.4:9000\n    - http://10.0.0.3:9000/\nsteps:\n  - traffic: 5%\n").render("p");
    assert!(e.contains("p:7:11: router.stable: an empty list"), "{e}");
    assert!(
        e.contains(
            "p:10:7: router.candidate: `ftp://10.0.0.4:9000` is not an http:// or https:// URL"
        ),
        "{e}"
    );
    assert!(
        e.contains("p:11:7: router.candidate: `http://10.0.0.3:9000/` is listed twice"),
        "{e}"
    );
}

#[test]
fn a_route_sets_its_own_timeouts() {
    let plan = ok(
        "version: 1\nname: n\nservice: s\nrouter:\n  kind: builtin\n  listen: 127.0.0.1:8080\n  stable: http://a:1\n  candidate: http://b:2\n  timeouts: { connect: 500ms, idle: 2m }\nsteps:\n  - traffic: 5%\n",
    );
    let Some(RouterSpec::Builtin(b)) = &plan.router else {
        panic!("{:?}", plan.router)
    };
    assert_eq!(b.timeouts.connect, std::time::Duration::from_millis(500));
    assert_eq!(
        b.timeouts.response,
        std::time::Duration::from_secs(30),
        "the default"
    );
    assert_eq!(b.timeouts.idle, Some(std::time::Duration::from_secs(120)));
    let e = errors("version: 1\nname: n\nservice: s\nrouter:\n  kind: builtin\n  listen: 127.0.0.1:8080\n  stable: http://a:1\n  candidate: http://b:2\n  timeouts: { connect: soon, head: 1s }\nsteps:\n  - traffic: 5%\n").render("p");
    assert!(e.contains("p:9:24: router.timeouts.connect"), "{e}");
    assert!(e.contains("head"), "an unknown key is an error: {e}");
}
