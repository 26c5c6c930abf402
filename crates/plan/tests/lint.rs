//! `lint`: a plan checked without its variables (`liftoff validate --no-env`), for CI
//! that holds no production secrets. It must accept every plan `parse` accepts with
//! values, list every variable the plan needs where it is used, and still report every
//! mistake that does not depend on a value.

use liftoff_plan::{Lint, lint, parse};

fn ok(src: &str) -> Lint {
    lint(src).unwrap_or_else(|e| panic!("expected the plan to lint:\n{}", e.render("p")))
}

/// Every problem, rendered as `p:LINE:COL: message`.
fn problems(src: &str) -> String {
    match lint(src) {
        Ok(l) => panic!("expected problems, the plan linted: {l:?}"),
        Err(e) => e.render("p"),
    }
}

/// Every line of `expected` is among the problems, and none is about an unset variable.
fn assert_reports(problems: &str, expected: &[&str]) {
    for line in expected {
        assert!(problems.contains(line), "{line} in:\n{problems}");
    }
    assert!(!problems.contains("is not set"), "{problems}");
}

/// `NAME@LINE:COL` for each use.
fn uses(l: &Lint) -> Vec<String> {
    l.variables
        .iter()
        .map(|u| format!("{}@{}", u.name, u.location))
        .collect()
}

/// Every interpolated key of the format holding a variable, with a builtin router and
/// Prometheus (the command router is in `a_command_router_plan_lints_without_its_values`).
const EVERY_TEXT_A_VARIABLE: &str = r#"version: 1
name: every-text
service: shop-api
router:
  kind: builtin
  listen: 127.0.0.1:8080
  stable: ${STABLE_URL}
  candidate: http://127.0.0.1:${CANDIDATE_PORT}
  override: { secret: "${TESTER_TOKEN}" }
  maintenance: { bypass_header: { name: X-Bypass, value: "${BYPASS}" } }
metrics: { kind: prometheus, url: "${PROMETHEUS_URL}" }
checklist:
  - { http: "${HEALTH_URL}", headers: { X-Key: "${API_KEY}" }, body: "${BODY}" }
  - { tcp: "${DB_ADDR}" }
  - { tls: "${TLS_ADDR}", ca_file: "${CA_FILE}" }
  - { disk: "${DATA_DIR}", min_free: 10% }
  - { file: "${BACKUP}" }
  - { command: "${CHECK_CMD}", dir: "${CHECK_DIR}" }
  - { postgres: "${DATABASE_URL}" }
  - { redis: "${REDIS_URL}" }
  - { prometheus: "${PROM_QUERY}", condition: "< 1" }
steps:
  - { run: "./deploy.sh ${VERSION}", env: { TOKEN: "${DEPLOY_TOKEN}" }, dir: "${DEPLOY_DIR}" }
  - { wait: { http: "${READY_URL}" } }
  - smoke:
      base_url: ${SMOKE_BASE}
      requests:
        - { url: /health, headers: { X-Key: "${API_KEY}" }, body: "${BODY}" }
        - { url: "${SMOKE_URL}" }
  - migrate: { database: "${DATABASE_URL}", command: "${MIGRATE_CMD}", dir: "${MIGRATE_DIR}", restore_on_rollback: true, terminate_sessions: true }
  - { traffic: 5% }
  - analyze: { for: 1m, gates: [ { query: "${ERROR_QUERY}", condition: "< 0.01" } ] }
    after: { delay: 30m, run: "${RETIRE_CMD}" }
notify:
  channels:
    - slack: "${SLACK_WEBHOOK_URL}"
    - webhook: "${WEBHOOK_URL}"
      secret: "${WEBHOOK_SECRET}"
    - email: { smtp: "${SMTP_URL}", username: "${SMTP_USER}", password: "${SMTP_PASSWORD}", from: a@example.com, to: b@example.com }
    - statuspage: { page_id: "${PAGE_ID}", api_key: "${STATUSPAGE_API_KEY}", component_id: "${COMPONENT_ID}", api_url: "${STATUSPAGE_API_URL}" }
"#;

#[test]
fn every_text_holding_only_a_variable_lints_and_each_use_is_listed() {
    let l = ok(EVERY_TEXT_A_VARIABLE);
    assert_eq!(l.steps, 6);
    assert_eq!(
        uses(&l),
        [
            "STABLE_URL@7:11",
            "CANDIDATE_PORT@8:31",
            "TESTER_TOKEN@9:24",
            "BYPASS@10:59",
            "PROMETHEUS_URL@11:36",
            "HEALTH_URL@13:14",
            "API_KEY@13:49",
            "BODY@13:71",
            "DB_ADDR@14:13",
            "TLS_ADDR@15:13",
            "CA_FILE@15:37",
            "DATA_DIR@16:14",
            "BACKUP@17:14",
            "CHECK_CMD@18:17",
            "CHECK_DIR@18:38",
            "DATABASE_URL@19:18",
            "REDIS_URL@20:15",
            "PROM_QUERY@21:20",
            "VERSION@23:25",
            "DEPLOY_TOKEN@23:53",
            "DEPLOY_DIR@23:79",
            "READY_URL@24:22",
            "SMOKE_BASE@26:17",
            "API_KEY@28:46",
            "BODY@28:68",
            "SMOKE_URL@29:19",
            "DATABASE_URL@30:27",
            "MIGRATE_CMD@30:55",
            "MIGRATE_DIR@30:78",
            "ERROR_QUERY@32:44",
            "RETIRE_CMD@33:32",
            "SLACK_WEBHOOK_URL@36:15",
            "WEBHOOK_URL@37:17",
            "WEBHOOK_SECRET@38:16",
            "SMTP_URL@39:23",
            "SMTP_USER@39:48",
            "SMTP_PASSWORD@39:74",
            "PAGE_ID@40:31",
            "STATUSPAGE_API_KEY@40:54",
            "COMPONENT_ID@40:93",
            "STATUSPAGE_API_URL@40:121",
        ]
    );
    assert_eq!(
        l.names().len(),
        38,
        "API_KEY, BODY and DATABASE_URL are used twice"
    );
    assert!(l.names().windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn the_strict_parse_of_the_same_plan_still_refuses_every_unset_variable() {
    let errors = parse(EVERY_TEXT_A_VARIABLE, &|_| None).unwrap_err();
    let unset = errors
        .0
        .iter()
        .filter(|d| d.message.starts_with("environment variable `"))
        .count();
    assert_eq!(unset, 41, "one per use:\n{}", errors.render("p"));
}

#[test]
fn a_command_router_plan_lints_without_its_values() {
    let l = ok(
        "version: 1\nname: n\nservice: s\nrouter: { kind: command, command: \"./w.sh {weight} ${REGION}\" }\nsteps:\n  - { traffic: 50% }\n",
    );
    assert_eq!(uses(&l), ["REGION@4:52"]);
}

#[test]
fn lint_never_reads_the_environment_and_lists_each_use_where_it_is() {
    // PATH is set in every test process; lint lists it all the same.
    let l = ok("version: 1\nname: n\nservice: s\nsteps:\n  - run: echo ${PATH} ${PATH}\n");
    assert_eq!(uses(&l), ["PATH@5:15", "PATH@5:23"]);
    assert_eq!(l.names(), ["PATH"]);
}

#[test]
fn mistakes_that_do_not_depend_on_a_value_are_all_still_reported() {
    let e = problems(
        r#"version: 1
name: n
service: s
router: { kind: builtin, listen: 127.0.0.1:8080, stable: "${STABLE}", candidate: "${CANDIDATE}" }
steps:
  - { run: "./deploy.sh ${TOKEN}", timout: 5m }
  - { pause: 5 fortnights }
  - { wait: { http: "${READY}", consecutive: 0 } }
  - { traffic: 150% }
rollback:
  on: ["error_rate > 5 for 1m"]
"#,
    );
    assert_reports(
        &e,
        &[
            "p:6:36: step: unknown key `timout`",
            "p:7:14: pause: `5 fortnights` is not a duration",
            "p:8:46: wait.consecutive: expected a whole number from 1 to 1000, found `0`",
            "p:9:16: traffic: `150%` is not a percentage",
            "p:11:22: rollback.on: `5` is not a valid threshold",
        ],
    );
}

#[test]
fn a_typed_value_is_checked_on_the_text_before_its_first_variable() {
    let e = problems(
        r#"version: 1
name: n
service: s
router: { kind: builtin, listen: 127.0.0.1:8080, stable: "ftp://${HOST}:9000", candidate: "http://${HOST}:9001" }
checklist:
  - { http: "ftp://${HOST}/health" }
  - { http: "${SCHEME}://${HOST}/health" }
  - { http: "http${S}://${HOST}/health" }
steps:
  - { wait: { http: "localhost:${PORT}/ready" } }
  - migrate: { database: "mysql://${DB_HOST}/shop", command: x }
  - migrate: { database: "sqlite:${DB_PATH}", command: x, restore_on_rollback: true, terminate_sessions: true }
notify:
  channels:
    - webhook: "http:///${PATH_ONLY}"
    - email: { smtp: "smtps://${MAIL_HOST}", starttls: true, from: a@example.com, to: b@example.com }
    - email: { smtp: "mail://${MAIL_HOST}", from: a@example.com, to: b@example.com }
    - statuspage: { page_id: "page/${ID}", api_key: "${KEY}" }
"#,
    );
    assert_reports(
        &e,
        &[
            "p:4:58: router.stable: `ftp://${HOST}:9000` is not an http:// or https:// URL",
            "p:6:13: http: `ftp://${HOST}/health` is not an http or https URL",
            "p:10:21: wait.http: `localhost:${PORT}/ready` is not an http or https URL",
            "p:11:26: migrate.database: neither a `postgres://` URL nor `sqlite:PATH`",
            "p:12:86: migrate: `terminate_sessions` applies to PostgreSQL",
            "p:15:16: webhook: `http:///${PATH_ONLY}` is not an http or https URL",
            "p:16:56: email.starttls: `smtps://` is TLS from the start",
            "p:17:22: email.smtp: `mail://${MAIL_HOST}` is not an smtp:// or smtps:// URL",
            "p:18:30: statuspage.page_id: `page/${ID}` is not a Statuspage id",
        ],
    );
    assert!(!e.contains("p:7:"), "the scheme is in a variable:\n{e}");
    assert!(!e.contains("p:8:"), "`http${{S}}` may become https:\n{e}");
}

fn examples() -> Vec<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let mut plans: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    plans.sort();
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/plan.md"))
        .unwrap();
    for (i, block) in doc.split("```yaml\n").skip(1).enumerate() {
        if let Some((body, _)) = block.split_once("\n```")
            && body.lines().any(|l| l.starts_with("version:"))
        {
            plans.push((format!("docs/plan.md example {}", i + 1), body.to_string()));
        }
    }
    assert!(plans.len() >= 9, "{}", plans.len());
    plans
}

#[test]
fn every_example_lints_and_needs_exactly_the_variables_parse_resolves() {
    for (name, source) in examples() {
        let l = lint(&source).unwrap_or_else(|e| panic!("{name}:\n{}", e.render(&name)));
        let plan = parse(&source, &|n| Some(format!("value-of-{n}"))).ok();
        // Values the typed keys accept, for the examples whose URLs are variables.
        let plan = plan.or_else(|| {
            parse(&source, &|n| {
                Some(
                    match n {
                        "CANDIDATE_PORT" => "9001",
                        n if n.ends_with("_PORT") => "9000",
                        n if n.starts_with("NGINX_") || n.ends_with("_SOCKET") => "/etc/example",
                        n if n.ends_with("_ADDR") => "api.example.com:443",
                        "DATABASE_URL" => "postgres://app@127.0.0.1/app",
                        "REDIS_URL" => "redis://127.0.0.1:6379",
                        "SMTP_RELAY" => "smtp://localhost:25",
                        "STATUSPAGE_PAGE_ID" => "examplepage",
                        n if n.ends_with("_URL") || n.ends_with("_ENDPOINT") => {
                            "https://example.com/x"
                        }
                        _ => "value",
                    }
                    .to_string(),
                )
            })
            .map_err(|e| panic!("{name}:\n{}", e.render(&name)))
            .ok()
        });
        let resolved: Vec<&str> = plan.as_ref().unwrap().variables.names().collect();
        assert_eq!(l.names(), resolved, "{name}");
    }
}
