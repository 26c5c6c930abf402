//! Regression tests for plans that cost the daemon seconds of CPU: each is named after
//! what it guards. Timed tests have bounds far above the linear decoder's
//! time (milliseconds) and far below the old quadratic one's (tens of seconds).

use std::time::{Duration, Instant};

use liftoff_plan::{Plan, PlanErrors, parse};

const HEAD: &str = "version: 1\nname: n\nservice: s\nsteps:\n  - run: t\n";

fn no_env(_: &str) -> Option<String> {
    None
}

fn errors(result: Result<Plan, PlanErrors>) -> String {
    match result {
        Ok(plan) => panic!("expected errors, got a plan of {} steps", plan.steps.len()),
        Err(e) => e.render("p"),
    }
}

fn timed<T>(bound: Duration, what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    assert!(took < bound, "{what} took {took:?}, more than {bound:?}");
    out
}

#[test]
fn unnamed_identical_steps_are_numbered_in_linear_time() {
    let n = 20_000;
    let source = format!(
        "version: 1\nname: n\nservice: s\nsteps:\n{}",
        "  - run: t\n".repeat(n)
    );
    let plan = timed(Duration::from_secs(5), "20,000 identical steps", || {
        parse(&source, &no_env).expect("valid")
    });
    let names: Vec<&str> = plan.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names[..3], ["run t", "run t #2", "run t #3"]);
    assert_eq!(names[n - 1], "run t #20000");
}

#[test]
fn derived_names_skip_the_numbers_given_names_took() {
    let source = "version: 1\nname: n\nservice: s\nsteps:\n  - run: t\n  - { name: 'run t #2', run: u }\n  - run: t\n  - run: t\n";
    let plan = parse(source, &no_env).expect("valid");
    let names: Vec<&str> = plan.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["run t", "run t #2", "run t #3", "run t #4"]);
}

#[test]
fn unnamed_identical_checklist_items_are_numbered_in_linear_time() {
    let n = 20_000;
    let source = format!("{HEAD}checklist:\n{}", "  - command: \"true\"\n".repeat(n));
    let plan = timed(Duration::from_secs(5), "20,000 identical items", || {
        parse(&source, &no_env).expect("valid")
    });
    let items = &plan.checklist.expect("a checklist").items;
    assert_eq!(items[1].name, "command true #2");
    assert_eq!(items[n - 1].name, "command true #20000");
}

#[test]
fn errors_on_one_long_line_are_located_in_linear_time() {
    // 20,000 missing variables on a 300 KB line: each error's column was found by
    // walking the line from its start.
    let n = 20_000;
    let env: Vec<String> = (0..n).map(|i| format!("A{i}: \"${{M}}\"")).collect();
    let source = format!(
        "version: 1\nname: n\nservice: s\nsteps: [{{run: t, env: {{{}}}}}]\n",
        env.join(", ")
    );
    let r = timed(Duration::from_secs(5), "20,000 errors on one line", || {
        errors(parse(&source, &no_env))
    });
    let first = r.lines().next().unwrap_or_default();
    assert_eq!(first, "p:4:29: environment variable `M` is not set");
    // The last entry starts after the others and their `, `; its `$` after `A19999: "`.
    let last_start = 24 + env[..n - 1].iter().map(|e| e.len() + 2).sum::<usize>();
    let last_col = last_start + format!("A{}: \"", n - 1).len();
    assert!(
        r.contains(&format!(
            "p:4:{last_col}: environment variable `M` is not set"
        )),
        "the last error at column {last_col}"
    );
}

#[test]
fn a_string_of_many_dollar_braces_is_scanned_in_linear_time() {
    // `${` without a closing `}`: each one used to be followed to the string's end.
    let text = "${".repeat(500_000);
    let source = format!(
        "{HEAD}notify:\n  channels:\n    - webhook: http://127.0.0.1:9/hook\n      secret: '{text}'\n"
    );
    let r = timed(Duration::from_secs(2), "1 MB of `${`", || {
        errors(parse(&source, &no_env))
    });
    assert!(r.contains("secret: a secret written into the plan"), "{r}");
}

#[test]
fn parse_runs_on_a_blocking_thread_with_owned_input() {
    fn send_static<T: Send + 'static>(_: &T) {}
    let source = String::from(HEAD);
    let vars = std::collections::HashMap::from([("X".to_string(), "1".to_string())]);
    let job = move || parse(&source, &|name| vars.get(name).cloned());
    send_static(&job);
    let plan = std::thread::spawn(job).join().expect("no panic");
    send_static(&plan);
    assert_eq!(plan.expect("valid").steps.len(), 1);
}
