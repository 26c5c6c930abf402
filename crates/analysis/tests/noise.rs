//! Issue 18: triggers must not fire on noise. Exact odds, computed with the real rule
//! over every way a window's requests can fail (no random numbers): an A/A launch (both
//! versions fail 2%, `error_rate > 5%`, the window growing from its first request) is
//! rolled back by noise almost never, and a candidate failing 30% is still caught in
//! its first second at 40 requests/s.

use liftoff_analysis::{Evidence, Sample, TriggerState, read_trigger};
use liftoff_plan::condition::parse_condition;
use liftoff_plan::defaults;

const DEFAULT: Evidence = Evidence {
    confidence: defaults::TRIGGER_CONFIDENCE,
    min_requests: defaults::TRIGGER_MIN_REQUESTS,
};

/// For each request count `n` up to `last`: the odds that a trigger judged after every
/// request (the most often any `check_every` can) has fired by then, when each request
/// fails with probability `p`.
fn fired_by(p: f64, evidence: Evidence, last: u64) -> Vec<f64> {
    let cond = parse_condition("error_rate > 5% over 2s", true).unwrap();
    // dist[k]: the odds of k failures so far, among windows that have not fired.
    let mut dist = vec![1.0];
    let mut fired = 0.0;
    let mut out = vec![0.0];
    for n in 1..=last {
        let mut next = vec![0.0; dist.len() + 1];
        for (k, odds) in dist.iter().enumerate() {
            next[k] += odds * (1.0 - p);
            next[k + 1] += odds * p;
        }
        for (k, odds) in next.iter_mut().enumerate() {
            let sample = Sample {
                window_secs: n as f64 / 40.0,
                requests: n,
                failed: k as u64,
                ..Sample::default()
            };
            if read_trigger(&cond, &sample, evidence).state == TriggerState::Crossed {
                fired += *odds;
                *odds = 0.0;
            }
        }
        dist = next;
        out.push(fired);
    }
    out
}

#[test]
fn an_a_a_launch_is_not_rolled_back_by_noise() {
    // The window fills (80 requests: 2 s at 40/s); checked after every request.
    let odds = fired_by(0.02, DEFAULT, 80)[80];
    assert!(odds < 1e-4, "{odds:e} per launch");
    // 50 launches: under 1% odds that noise rolls back even one.
    assert!(1.0 - (1.0 - odds).powi(50) < 0.01);
}

#[test]
fn the_value_alone_would_roll_back_a_third_of_them() {
    // At 50% confidence the bound is the value itself: the rule before issue 18.
    let before = Evidence {
        confidence: 0.5,
        ..DEFAULT
    };
    let odds = fired_by(0.02, before, 80)[80];
    assert!(odds > 0.3, "{odds}");
}

#[test]
fn a_candidate_failing_thirty_percent_is_caught_within_its_first_second() {
    let caught = fired_by(0.30, DEFAULT, 80);
    assert!(
        caught[12] >= 0.5,
        "half by its 12th request: {}",
        caught[12]
    );
    assert!(caught[40] >= 0.95, "a second at 40/s: {}", caught[40]);
    assert!(caught[80] >= 0.999, "two seconds: {}", caught[80]);
}

#[test]
fn a_higher_floor_trades_speed_for_fewer_false_alarms() {
    let floor = Evidence {
        min_requests: 20,
        ..DEFAULT
    };
    assert!(fired_by(0.02, floor, 80)[80] < fired_by(0.02, DEFAULT, 80)[80] / 5.0);
    let caught = fired_by(0.30, floor, 80);
    assert_eq!(caught[19], 0.0, "nothing fires below the floor");
    assert!(caught[40] >= 0.95);
}
