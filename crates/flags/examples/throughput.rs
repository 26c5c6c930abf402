//! In-process evaluations per second, on one thread, for bench/ofrep.sh:
//!
//!     cargo run --release -p liftoff-flags --example throughput [SECONDS]
//!
//! Three flags over 10,000 distinct users: a boolean at a 25% rollout (hashing every
//! time), a string flag whose regex and list rules run before its rollout, and a static
//! kill-switched flag.

use std::hint::black_box;
use std::time::{Duration, Instant};

use liftoff_flags::{Context, FlagDoc};
use serde_json::json;

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let flag = |v: serde_json::Value| {
        serde_json::from_value::<FlagDoc>(v)
            .expect("flag JSON")
            .compile("bench", "4f2a9c1e7b3d5a60")
            .expect("valid flag")
    };
    let flags = [
        (
            "boolean, 25% rollout",
            flag(json!({"rollout": {"percent": 25}})),
        ),
        (
            "string, 2 rules + 30% rollout",
            flag(json!({
                "type": "string",
                "variants": {"blue": "#00f", "green": "#0f0", "grey": "#888"},
                "default_variant": "grey",
                "rules": [
                    {"when": [{"attribute": "email", "op": "matches", "value": "@example\\.com$"}], "variant": "blue"},
                    {"when": [{"attribute": "country", "op": "in", "value": ["NL", "BE", "LU"]},
                              {"attribute": "version", "op": "semver_gte", "value": "2.1.0"}], "variant": "blue"}
                ],
                "rollout": {"variant": "green", "percent": 30}
            })),
        ),
        ("boolean, disabled", flag(json!({"enabled": false}))),
    ];
    let contexts: Vec<Context> = (0..10_000)
        .map(|i| {
            let country = ["NL", "DE", "FR", "US"][i % 4];
            let v = json!({
                "targetingKey": format!("user-{i}"),
                "email": format!("user{i}@other.org"),
                "country": country,
                "version": "2.0.3",
            });
            serde_json::from_value(v).expect("context")
        })
        .collect();
    for (name, f) in &flags {
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        let started = Instant::now();
        let mut n: u64 = 0;
        while Instant::now() < deadline {
            for ctx in &contexts {
                let _ = black_box(f.evaluate(black_box(ctx)));
            }
            n += contexts.len() as u64;
        }
        let per_sec = n as f64 / started.elapsed().as_secs_f64();
        println!(
            "{name}: {:.1} M evaluations/s ({:.0} ns each)",
            per_sec / 1e6,
            1e9 / per_sec
        );
    }
}
