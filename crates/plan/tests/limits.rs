//! Regression tests for plans that cost the daemon its stack or seconds of CPU: each is
//! named after what it guards. Timed tests have bounds far above the linear decoder's
//! time (milliseconds) and far below the old quadratic one's (tens of seconds).

use std::time::{Duration, Instant};

use liftoff_plan::{
    Limits, MAX_NESTING_DEPTH, MAX_PLAN_BYTES, MAX_STEPS, Plan, PlanErrors, parse,
    parse_with_limits,
};

const HEAD: &str = "version: 1\nname: n\nservice: s\nsteps:\n  - run: t\n";

fn no_env(_: &str) -> Option<String> {
    None
}

/// Parse on a thread with a tokio worker's 2 MiB stack, as the daemon does.
fn parse_on_small_stack(source: String) -> Result<Plan, PlanErrors> {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || parse(&source, &no_env))
        .expect("spawn")
        .join()
        .expect("parse must not panic")
}

fn errors(result: Result<Plan, PlanErrors>) -> String {
    match result {
        Ok(plan) => panic!("expected errors, got a plan of {} steps", plan.steps.len()),
        Err(e) => e.render("p"),
    }
}

/// A guard against quadratic time, not a performance figure (those are in
/// `bench/plan-decode.sh`): the bounds are ~10x what these take in a debug build on a
/// loaded 2-core machine, and the old quadratic code took 30-90 s.
fn timed<T>(bound: Duration, what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    assert!(took < bound, "{what} took {took:?}, more than {bound:?}");
    out
}

#[test]
fn a_key_holding_100_000_nested_block_lists_is_an_error_not_a_stack_overflow() {
    let source = format!("{HEAD}x:\n  {}x\n", "- ".repeat(100_000));
    let r = errors(parse_on_small_stack(source));
    // The root mapping is level 1, so the 64th `- ` opens level 65, at column 3 + 2 * 63.
    assert_eq!(
        r.lines().next(),
        Some("p:7:129: lists and mappings nested more than 64 levels deep"),
        "{r}"
    );
    assert_eq!(r.lines().count(), 2, "one error and its hint: {r}");
}

#[test]
fn flow_lists_and_mappings_5000_deep_are_refused_at_the_depth_limit() {
    for (open, close) in [("[", "]"), ("{a: ", "}")] {
        let source = format!("{HEAD}x: {}x{}\n", open.repeat(5_000), close.repeat(5_000));
        let r = errors(parse_on_small_stack(source));
        assert!(
            r.starts_with("p:6:")
                && r.contains(": lists and mappings nested more than 64 levels deep"),
            "{open}: {r}"
        );
    }
}

#[test]
fn nesting_is_counted_up_to_the_limit_exactly() {
    // Root mapping, then `x`'s lists: 1 + levels.
    let nested =
        |levels: usize| format!("{HEAD}x: {}1{}\n", "[".repeat(levels), "]".repeat(levels));
    let at_limit = errors(parse(&nested(MAX_NESTING_DEPTH - 1), &no_env));
    assert!(at_limit.contains("plan: unknown key `x`"), "{at_limit}");
    let past = errors(parse(&nested(MAX_NESTING_DEPTH), &no_env));
    assert!(past.contains("nested more than 64 levels deep"), "{past}");
}

#[test]
fn an_alias_counts_as_deep_as_the_node_it_copies() {
    // 40 levels anchored, copied inside 30 levels: 70 once the alias is resolved.
    let source = format!(
        "{HEAD}a: &deep {}1{}\nb: {}*deep{}\n",
        "[".repeat(40),
        "]".repeat(40),
        "[".repeat(30),
        "]".repeat(30)
    );
    let r = errors(parse(&source, &no_env));
    assert!(
        r.starts_with("p:7:34: lists and mappings nested more than 64 levels deep"),
        "{r}"
    );
}

#[test]
fn a_plan_over_one_mib_is_refused_before_it_is_parsed() {
    let padding = "#".repeat(MAX_PLAN_BYTES - HEAD.len());
    let at_limit = format!("{HEAD}{padding}");
    assert!(parse(&at_limit, &no_env).is_ok());
    let over = format!("{at_limit}#");
    let r = errors(parse(&over, &no_env));
    assert_eq!(
        r.lines().next(),
        Some("p:1:1: the plan is 1048577 bytes, more than the 1048576 liftoff reads"),
        "{r}"
    );
}

#[test]
fn more_than_max_steps_is_an_error_at_the_steps_key() {
    let plan = |n: usize, rollback: usize| {
        format!(
            "version: 1\nname: n\nservice: s\nsteps:\n{}rollback:\n  steps:\n{}",
            "  - pause: 1s\n".repeat(n),
            "    - run: t\n".repeat(rollback)
        )
    };
    let full = parse(&plan(MAX_STEPS, MAX_STEPS), &no_env).expect("at the limit");
    assert_eq!(full.steps.len(), MAX_STEPS);
    assert_eq!(full.steps[MAX_STEPS - 1].name, "pause 1s #1000");

    let r = errors(parse(&plan(MAX_STEPS + 1, 1), &no_env));
    assert_eq!(
        r.lines().next(),
        Some("p:4:1: steps: 1001 steps, more than the 1000 a plan may hold"),
        "{r}"
    );
    assert_eq!(r.lines().count(), 2, "its steps are not decoded: {r}");

    let r = errors(parse(&plan(1, MAX_STEPS + 1), &no_env));
    assert_eq!(
        r.lines().next(),
        Some("p:7:3: rollback.steps: 1001 steps, more than the 1000 a plan may hold"),
        "{r}"
    );
}

#[test]
fn unnamed_identical_steps_are_numbered_in_linear_time() {
    let n = 20_000;
    let source = format!(
        "version: 1\nname: n\nservice: s\nsteps:\n{}",
        "  - run: t\n".repeat(n)
    );
    let limits = Limits {
        max_steps: n,
        ..Limits::default()
    };
    let plan = timed(Duration::from_secs(20), "20,000 identical steps", || {
        parse_with_limits(&source, &no_env, limits).expect("valid")
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
    let plan = timed(Duration::from_secs(20), "20,000 identical items", || {
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
    let r = timed(Duration::from_secs(20), "20,000 errors on one line", || {
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
fn many_references_in_one_string_are_located_in_linear_time() {
    // 50,000 references in one 450 KB command, each found by searching the string from
    // its start (and counting its characters) again.
    let n = 50_000;
    let refs: Vec<String> = (0..n).map(|i| format!("${{V{i}}}")).collect();
    let source = format!("{HEAD}  - run: \"é {}\"\n", refs.join(" "));
    let r = timed(Duration::from_secs(20), "50,000 unset variables", || {
        errors(parse(&source, &no_env))
    });
    let last_col = 13 + refs[..n - 1].iter().map(|r| r.len() + 1).sum::<usize>();
    let last = format!(
        "p:6:{last_col}: environment variable `V{}` is not set",
        n - 1
    );
    assert!(r.contains(&last), "{last}");
    let lint = timed(Duration::from_secs(20), "50,000 variables linted", || {
        liftoff_plan::lint(&source).expect("the plan lints")
    });
    assert_eq!(lint.variables.len(), n);
    assert_eq!(lint.variables[n - 1].location.col, last_col);
}

#[test]
fn a_string_of_many_dollar_braces_is_scanned_in_linear_time() {
    // `${` without a closing `}`: each one used to be followed to the string's end.
    let text = "${".repeat(500_000);
    let source = format!(
        "{HEAD}notify:\n  channels:\n    - webhook: http://127.0.0.1:9/hook\n      secret: '{text}'\n"
    );
    let r = timed(Duration::from_secs(10), "1 MB of `${`", || {
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
