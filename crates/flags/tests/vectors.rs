//! The shared test vectors (`vectors.json`, computed by `gen_vectors.py` with Python's
//! `xxhash`, not by this crate): fixed salts, keys and percentages → bucket, variant,
//! value and reason. Another implementation of docs/flags.md must pass them too.

use liftoff_flags::{Context, FlagDoc, bucket};
use serde_json::Value;

fn vectors() -> Value {
    let text = include_str!("vectors.json");
    serde_json::from_str(text).expect("vectors.json parses")
}

#[test]
fn buckets_match_the_independent_implementation() {
    let v = vectors();
    let cases = v["buckets"].as_array().unwrap();
    assert!(cases.len() >= 40);
    for c in cases {
        let (salt, key) = (c["salt"].as_str().unwrap(), c["key"].as_str().unwrap());
        assert_eq!(
            u64::from(bucket(salt, key)),
            c["bucket"].as_u64().unwrap(),
            "salt {salt:?} key {key:?}"
        );
    }
}

#[test]
fn evaluations_match_the_vectors() {
    let v = vectors();
    let cases = v["evaluations"].as_array().unwrap();
    assert!(cases.len() >= 100);
    let (mut split_on, mut split_off) = (0, 0);
    for (i, c) in cases.iter().enumerate() {
        let doc: FlagDoc = serde_json::from_value(c["flag"].clone()).unwrap();
        let flag = doc
            .compile("vector", c["salt"].as_str().unwrap())
            .unwrap_or_else(|e| panic!("case {i}: {e:?}"));
        let ctx: Context = serde_json::from_value(c["context"].clone()).unwrap();
        match flag.evaluate(&ctx) {
            Ok(r) => {
                assert_eq!(
                    (
                        flag.variant_name(r.variant),
                        flag.variant_value(r.variant),
                        r.reason.as_str()
                    ),
                    (
                        c["variant"].as_str().unwrap(),
                        &c["value"],
                        c["reason"].as_str().unwrap()
                    ),
                    "case {i}: {c}"
                );
                if r.reason.as_str() == "SPLIT" {
                    if r.variant == 0 {
                        split_off += 1
                    } else {
                        split_on += 1
                    }
                }
            }
            Err(e) => assert_eq!(Some(e.code()), c["error"].as_str(), "case {i}: {c}"),
        }
    }
    // The vectors exercise both sides of the split.
    assert!(split_on > 10 && split_off > 10, "{split_on} / {split_off}");
}
