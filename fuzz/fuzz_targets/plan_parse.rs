//! The plan loader (`liftoff_plan::parse`) on any text: a plan, or errors that each
//! point at a line and column. Never a panic, a hang or unbounded memory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    // Some variables set, some not: both paths of `${VAR}`.
    let env = |name: &str| (name.len() % 2 == 1).then(|| format!("{name}-value"));
    if let Err(errors) = liftoff_plan::parse(source, &env) {
        assert!(!errors.is_empty(), "an error without a diagnostic");
        for d in &errors.0 {
            assert!(
                d.location.line >= 1 && d.location.col >= 1,
                "no line:col: {d:?}"
            );
        }
        let _ = errors.render("plan.yaml");
    }
});
