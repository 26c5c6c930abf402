//! An OFREP evaluation request body on any bytes, read as the daemon reads it
//! (`crates/server/src/ofrep.rs`, `context`: a JSON object whose `context`, if any, is
//! an object), then evaluated against flags that use every operator.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use liftoff_flags::{Context, Flag, FlagDoc};
use serde_json::{Value, json};

static FLAGS: LazyLock<Vec<Flag>> = LazyLock::new(|| {
    let when = |c: Value| json!({"rules": [{"when": [c], "variant": "off"}]});
    let docs = [
        json!({}),
        json!({"rollout": {"percent": 50}}),
        json!({"bucket_by": "userId", "rollout": {"percent": 12.5}}),
        json!({
            "type": "object", "variants": {"a": {"x": [1, 2]}, "b": []},
            "default_variant": "a", "rollout": {"variant": "b", "percent": 0.001}
        }),
        when(json!({"attribute": "email", "op": "matches", "value": "@example\\.(com|org)$"})),
        when(json!({"attribute": "country", "op": "in", "value": ["NL", "BE", 3, true]})),
        when(json!({"attribute": "country", "op": "not_in", "value": ["FR"]})),
        when(json!({"attribute": "plan", "op": "equals", "value": "pro"})),
        when(json!({"attribute": "plan", "op": "not_equals", "value": 7})),
        when(json!({"attribute": "age", "op": "lt", "value": 18})),
        when(json!({"attribute": "age", "op": "gte", "value": 1e300})),
        when(json!({"attribute": "version", "op": "semver_gte", "value": "2.1.0-rc.1"})),
        when(json!({"attribute": "version", "op": "semver_eq", "value": "v1.0.0+build"})),
    ];
    docs.into_iter()
        .enumerate()
        .map(|(i, doc)| {
            let doc: FlagDoc = serde_json::from_value(doc).expect("a fixture definition");
            doc.compile(&format!("flag-{i}"), "salt")
                .expect("a fixture flag")
        })
        .collect()
});

fuzz_target!(|body: &[u8]| {
    let Some(ctx) = context(body) else {
        return;
    };
    for flag in FLAGS.iter() {
        match flag.evaluate(&ctx) {
            Ok(r) => {
                let _ = (flag.variant_name(r.variant), r.reason.as_str());
            }
            Err(e) => {
                let _ = (e.code(), e.to_string());
            }
        }
    }
});

/// The request's context, as `ofrep::context` reads it; `None` where it answers 400.
fn context(body: &[u8]) -> Option<Context> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Some(Context::new());
    }
    let Value::Object(mut request) = serde_json::from_slice(body).ok()? else {
        return None;
    };
    match request.remove("context") {
        None | Some(Value::Null) => Some(Context::new()),
        Some(Value::Object(ctx)) => Some(ctx),
        Some(_) => None,
    }
}
