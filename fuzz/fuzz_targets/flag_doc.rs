//! A flag definition (`FlagDoc`, the admin API's JSON body and the store's column) on
//! any bytes: decoded, compiled, evaluated, and stored and read back as the daemon does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use liftoff_flags::{Context, FlagDoc};
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = serde_json::from_slice::<FlagDoc>(data) else {
        return;
    };
    let Ok(flag) = doc.compile("fuzz", "salt") else {
        return;
    };
    for ctx in contexts(&doc) {
        if let Ok(r) = flag.evaluate(&ctx) {
            let _ = (flag.variant_name(r.variant), flag.variant_value(r.variant));
        }
    }
    // The store keeps the normalized definition and compiles it again when it loads.
    let stored = serde_json::to_string(flag.doc()).expect("a normalized definition serializes");
    let reloaded: FlagDoc = serde_json::from_str(&stored).expect("a stored definition reads");
    let again = reloaded
        .compile("fuzz", "salt")
        .expect("a stored definition compiles");
    assert_eq!(again.doc(), flag.doc());
});

/// Contexts that reach the rules: each condition's attribute set to its own value (or
/// the first of its list), beside an empty context and a few bucketing keys.
fn contexts(doc: &FlagDoc) -> Vec<Context> {
    let mut out = vec![
        Context::new(),
        object(json!({"targetingKey": "user-1"})),
        object(json!({"targetingKey": 42})),
        object(json!({"targetingKey": {"id": 1}})),
    ];
    let mut all = object(json!({"targetingKey": "user-2"}));
    for rule in &doc.rules {
        for c in &rule.when {
            let value = match &c.value {
                Value::Array(items) => items.first().cloned().unwrap_or(Value::Null),
                v => v.clone(),
            };
            all.insert(c.attribute.clone(), value.clone());
            let mut one = Context::new();
            one.insert(c.attribute.clone(), value);
            out.push(one);
        }
    }
    out.push(all);
    out
}

fn object(v: Value) -> Context {
    match v {
        Value::Object(m) => m,
        _ => Context::new(),
    }
}
