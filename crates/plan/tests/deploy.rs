//! `deploy` steps: what the plan accepts, the rollback step each one adds, and the
//! mistakes it refuses (at their positions).

use std::time::Duration;

use liftoff_plan::{Plan, Retire, StepKind, parse};

fn env(name: &str) -> Option<String> {
    (name == "VERSION").then(|| "2.0.0".to_string())
}

fn ok(src: &str) -> Plan {
    parse(src, &env).unwrap_or_else(|e| panic!("expected a valid plan:\n{}", e.render("p")))
}

fn errors(src: &str) -> String {
    match parse(src, &env) {
        Ok(plan) => panic!("expected errors, got {plan:?}"),
        Err(e) => e.render("p"),
    }
}

fn plan(deploy: &str, rest: &str) -> String {
    format!("version: 1\nname: n\nservice: s\nsteps:\n  - deploy: {deploy}\n{rest}")
}

#[test]
fn a_deploy_names_files_service_project_image_env_and_what_it_retires() {
    let p = ok(&plan(
        "{ compose: [a.yml, b.yml], service: web, project: shop-green, image: \"shop:${VERSION}\", env: { PORT: 9001 }, timeout: 2m, retire: { project: shop-blue, after: 1h } }",
        "rollback:\n  steps:\n    - run: ./page-the-team.sh\n",
    ));
    let StepKind::Deploy(d) = &p.steps[0].kind else {
        panic!("{:?}", p.steps[0].kind)
    };
    assert_eq!(p.steps[0].name, "deploy shop-green");
    assert!(p.steps[0].idempotent());
    let files: Vec<&str> = d.files.iter().map(|f| f.expose()).collect();
    assert_eq!(files, ["a.yml", "b.yml"]);
    assert_eq!(
        (d.service.as_str(), d.project.as_str()),
        ("web", "shop-green")
    );
    assert_eq!(d.image.as_ref().unwrap().expose(), "shop:2.0.0");
    assert_eq!(d.image.as_ref().unwrap().to_string(), "shop:${VERSION}");
    assert_eq!(d.env[0].0, "PORT");
    assert_eq!(d.env[0].1.expose(), "9001");
    assert_eq!(d.timeout, Duration::from_secs(120));
    let Some(Retire { project, after, .. }) = &d.retire else {
        panic!("{:?}", d.retire)
    };
    assert_eq!(
        (project.as_str(), *after),
        ("shop-blue", Duration::from_secs(3600))
    );

    // The rollback removes the candidate, after the plan's own rollback steps.
    let names: Vec<&str> = p.rollback.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["run ./page-the-team.sh", "remove shop-green"]);
    let StepKind::Undeploy(u) = &p.rollback.steps[1].kind else {
        panic!("{:?}", p.rollback.steps[1].kind)
    };
    assert_eq!(u.project, "shop-green");
    assert!(p.rollback.steps[1].idempotent());

    // The short forms: one file, `retire: PROJECT` (at once), the default timeout.
    let p = ok(&plan(
        "{ compose: docker-compose.yml, service: web, project: green, retire: blue }",
        "",
    ));
    let StepKind::Deploy(d) = &p.steps[0].kind else {
        panic!()
    };
    assert_eq!(d.files.len(), 1);
    assert_eq!(d.timeout, Duration::from_secs(300));
    assert_eq!(d.retire.as_ref().unwrap().after, Duration::ZERO);
    assert!(d.image.is_none() && d.env.is_empty());
}

#[test]
fn deploy_mistakes_are_errors_at_their_positions() {
    let e = errors(&plan(
        "{ compose: c.yml, service: web, project: Shop_Green }",
        "",
    ));
    assert!(
        e.contains("p:5:54: deploy.project: `Shop_Green` is not a compose project name"),
        "{e}"
    );
    let e = errors(&plan(
        "{ compose: c.yml, service: web, project: green, retire: green }",
        "",
    ));
    assert!(
        e.contains("p:5:69: deploy.retire: `green` is also the candidate's project"),
        "{e}"
    );
    let e = errors(&plan("{ compose: [], service: web, project: green }", ""));
    assert!(e.contains("p:5:24: deploy.compose: an empty list"), "{e}");
    let e = errors(&plan("{ service: web, project: green, imgae: x }", ""));
    assert!(e.contains("deploy: missing required key `compose`"), "{e}");
    assert!(e.contains("p:5:45: deploy: unknown key `imgae`"), "{e}");
    let e = errors(&plan(
        "{ compose: c.yml, service: web, project: green, env: { 1PORT: x } }",
        "",
    ));
    assert!(
        e.contains("deploy.env: `1PORT` is not a valid environment variable name"),
        "{e}"
    );

    // Two deploys of one project; a project deployed and retired; a rollback deploy.
    let e = errors(&plan(
        "{ compose: c.yml, service: web, project: green, retire: blue }",
        "  - deploy: { compose: c.yml, service: api, project: green }\n  - deploy: { compose: c.yml, service: api, project: blue }\n",
    ));
    assert!(
        e.contains("deploy.project: `green` is deployed by two steps (the first at 5:54)"),
        "{e}"
    );
    assert!(
        e.contains("deploy: `blue` is both deployed and retired by this launch"),
        "{e}"
    );
    let e = errors(&plan(
        "{ compose: c.yml, service: web, project: green }",
        "rollback:\n  steps:\n    - deploy: { compose: c.yml, service: web, project: blue }\n",
    ));
    assert!(
        e.contains("rollback.steps: `deploy` steps are not allowed here"),
        "{e}"
    );
}
