//! Sticky rollouts, over random users: raising the percentage never turns a user off,
//! and the share of users in is the percentage.

use liftoff_flags::{Context, Flag, FlagDoc, Reason, bucket, threshold};
use proptest::prelude::*;
use serde_json::json;

fn ramp(salt: &str, percent: f64) -> Flag {
    let doc: FlagDoc = serde_json::from_value(json!({"rollout": {"percent": percent}})).unwrap();
    doc.compile("ramp", salt).unwrap()
}

fn served_on(salt: &str, percent: f64, user: &str) -> bool {
    is_on(&ramp(salt, percent), user)
}

fn is_on(flag: &Flag, user: &str) -> bool {
    let mut ctx = Context::new();
    ctx.insert("targetingKey".into(), json!(user));
    let r = flag.evaluate(&ctx).unwrap();
    assert!(matches!(r.reason, Reason::Split | Reason::Static));
    flag.variant_name(r.variant) == "on"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn raising_the_percentage_never_turns_a_user_off(
        salt in "[0-9a-f]{16}",
        user in "\\PC{0,40}",
        a in 0u32..=100_000,
        b in 0u32..=100_000,
    ) {
        prop_assume!(!user.is_empty());
        let (low, high) = (f64::from(a.min(b)) / 1000.0, f64::from(a.max(b)) / 1000.0);
        if served_on(&salt, low, &user) {
            prop_assert!(served_on(&salt, high, &user), "on at {low}%, off at {high}%");
        }
    }

    #[test]
    fn a_ramp_in_steps_only_ever_adds_users(
        salt in "[0-9a-f]{16}",
        users in prop::collection::vec("[a-z0-9-]{1,24}", 50..200),
        mut steps in prop::collection::vec(0.0f64..=100.0, 1..8),
    ) {
        steps.sort_by(f64::total_cmp);
        let mut on: Vec<bool> = vec![false; users.len()];
        for p in steps {
            let flag = ramp(&salt, p);
            for (i, u) in users.iter().enumerate() {
                let now = is_on(&flag, u);
                prop_assert!(now || !on[i], "user {u} taken off at {p}%");
                on[i] = now;
            }
        }
    }
}

#[test]
fn the_share_of_users_in_is_the_percentage() {
    let n = 100_000u32;
    for percent in [0.5, 5.0, 25.0, 50.0] {
        let t = threshold(percent);
        let inside = (0..n)
            .filter(|i| bucket("4f2a9c1e7b3d5a60", &format!("user-{i}")) < t)
            .count() as f64;
        let share = inside / f64::from(n) * 100.0;
        // Binomial standard deviation at 100k users is at most 0.16 percentage points.
        assert!((share - percent).abs() < 0.6, "{percent}%: {share}%");
    }
}
