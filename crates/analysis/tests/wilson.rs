//! The trigger rule against vectors computed independently (`wilson.json`, written by
//! `gen_wilson.py` with Python's standard library: the normal quantile from
//! `statistics.NormalDist`, the Wilson bounds by bisection on the score test rather than
//! by their closed form).

use liftoff_analysis::{Evidence, Sample, TriggerState, read_trigger, wilson, z_score};
use liftoff_plan::condition::parse_condition;
use serde_json::Value;

fn vectors() -> Value {
    serde_json::from_str(include_str!("wilson.json")).expect("wilson.json parses")
}

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance
}

#[test]
fn z_scores_match_the_normal_quantile() {
    let v = vectors();
    let cases = v["z"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for c in cases {
        let (confidence, z) = (c["confidence"].as_f64().unwrap(), c["z"].as_f64().unwrap());
        assert!(
            close(z_score(confidence), z, 1e-8 * z.abs().max(1.0)),
            "confidence {confidence}: {} vs {z}",
            z_score(confidence)
        );
    }
    assert!(z_score(1.0).is_nan() && z_score(0.0).is_nan());
}

#[test]
fn wilson_bounds_match_the_score_test() {
    let v = vectors();
    let cases = v["wilson"].as_array().unwrap();
    assert!(cases.len() >= 100);
    for c in cases {
        let (k, n) = (c["k"].as_u64().unwrap(), c["n"].as_u64().unwrap());
        let (lower, upper) = wilson(k, n, c["z"].as_f64().unwrap());
        let (want_lower, want_upper) = (c["lower"].as_f64().unwrap(), c["upper"].as_f64().unwrap());
        assert!(
            close(lower, want_lower, 1e-9) && close(upper, want_upper, 1e-9),
            "{k} of {n} at z {}: ({lower}, {upper}) vs ({want_lower}, {want_upper})",
            c["z"]
        );
    }
    assert!(wilson(0, 0, 3.0).0.is_nan(), "no requests, no bound");
}

#[test]
fn trigger_decisions_match_the_vectors() {
    let v = vectors();
    let cases = v["triggers"].as_array().unwrap();
    assert!(cases.len() >= 60);
    let mut seen = [0; 3];
    for c in cases {
        let text = c["condition"].as_str().unwrap();
        let cond = parse_condition(text, true).unwrap();
        let sample = Sample {
            window_secs: 2.0,
            requests: c["requests"].as_u64().unwrap(),
            failed: c["failed"].as_u64().unwrap(),
            latency: c["latency"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| (b[0].as_f64().unwrap(), b[1].as_u64().unwrap()))
                .collect(),
            health_failures: 0,
        };
        let evidence = Evidence {
            confidence: c["confidence"].as_f64().unwrap(),
            min_requests: c["min_requests"].as_u64().unwrap(),
        };
        let r = read_trigger(&cond, &sample, evidence);
        let want = match c["state"].as_str().unwrap() {
            "crossed" => TriggerState::Crossed,
            "held_back" => TriggerState::HeldBack,
            _ => TriggerState::Clear,
        };
        let case = format!(
            "`{text}` on {} requests, {} failed, latency {}, {evidence:?}: {}",
            sample.requests, sample.failed, c["latency"], r.detail
        );
        assert_eq!(r.state, want, "{case}");
        match c["bound"].as_f64() {
            Some(bound) => assert!(close(r.bound, bound, 1e-9), "{case}: bound {bound}"),
            None => assert!(r.bound.is_nan(), "{case}"),
        }
        seen[want as usize] += 1;
    }
    assert!(
        seen.iter().all(|n| *n >= 10),
        "every outcome is covered: {seen:?}"
    );
}
