//! `rollback.min_requests` and `rollback.confidence`: how much evidence a trigger on a
//! rate or latency needs (issue 18). Defaults, values as written, and typos that must
//! stay errors (a safety gate is never silently loosened).

use liftoff_plan::{Plan, PlanErrors, defaults, parse};

const HEAD: &str = "version: 1\nname: n\nservice: s\nrouter: { kind: builtin, listen: '127.0.0.1:0', stable: 'http://127.0.0.1:1', candidate: 'http://127.0.0.1:2' }\nsteps:\n  - traffic: 5%\n";

fn with_rollback(rollback: &str) -> Result<Plan, PlanErrors> {
    parse(&format!("{HEAD}rollback:\n{rollback}"), &|_| None)
}

fn rendered(rollback: &str) -> String {
    match with_rollback(rollback) {
        Ok(_) => panic!("expected errors for:\n{rollback}"),
        Err(e) => e.render("p.yaml"),
    }
}

#[test]
fn defaults_are_ten_requests_and_99_999_percent() {
    let plan = with_rollback("  on: ['error_rate > 5% over 2s']\n").unwrap();
    assert_eq!(plan.rollback.min_requests, 10);
    assert_eq!(plan.rollback.min_requests, defaults::TRIGGER_MIN_REQUESTS);
    assert_eq!(plan.rollback.confidence, 0.99999);
    assert_eq!(plan.rollback.confidence, defaults::TRIGGER_CONFIDENCE);
}

#[test]
fn a_plan_sets_both_for_all_its_triggers() {
    let plan = with_rollback(
        "  on: ['error_rate > 5% over 2s', 'p99 > 2s']\n  min_requests: 20\n  confidence: 99.9%\n",
    )
    .unwrap();
    assert_eq!(plan.rollback.min_requests, 20);
    assert!((plan.rollback.confidence - 0.999).abs() < 1e-12);
    let fine = with_rollback("  on: ['error_rate > 5%']\n  confidence: 99.9999%\n").unwrap();
    assert!((fine.rollback.confidence - 0.999_999).abs() < 1e-12);
}

#[test]
fn confidence_is_a_percentage_from_50_to_below_100() {
    for (bad, says) in [
        ("0.999", "`0.999` has no `%` sign"),
        ("100%", "`100%` is not a confidence level"),
        ("40%", "`40%` is not a confidence level"),
        ("high", "`high` has no `%` sign"),
        ("99,9%", "`99,9%` is not a confidence level"),
    ] {
        let r = rendered(&format!(
            "  on: ['error_rate > 5%']\n  confidence: '{bad}'\n"
        ));
        assert!(
            r.contains("rollback.confidence: ") && r.contains(says),
            "{bad}: {r}"
        );
        assert!(r.contains("e.g. `99.999%`"), "{bad}: a hint: {r}");
    }
}

#[test]
fn min_requests_is_a_whole_number() {
    for bad in ["-1", "2.5", "many"] {
        let r = rendered(&format!(
            "  on: ['error_rate > 5%']\n  min_requests: {bad}\n"
        ));
        assert!(r.contains("rollback.min_requests"), "{bad}: {r}");
    }
}

#[test]
fn a_misspelt_key_is_an_error_not_a_default() {
    let r = rendered("  on: ['error_rate > 5%']\n  min_request: 50\n");
    assert!(r.contains("min_request"), "{r}");
    assert!(r.contains("did you mean `min_requests`?"), "{r}");
    // Per trigger, the keys are not accepted: they would look like they apply to one.
    let r = rendered("  on: [{ when: 'error_rate > 5%', min_requests: 50 }]\n");
    assert!(r.contains("min_requests"), "{r}");
}
