"""Regenerates vectors.json with an implementation independent of liftoff's Rust code:
Python's `xxhash` package (pip install xxhash). Run: python3 gen_vectors.py > vectors.json

bucket    = xxh3_64(utf8(salt) + b":" + utf8(key), seed 0) mod 100000
threshold = round(percent * 1000)
the rollout variant is served iff bucket < threshold; 0% and 100% split nobody.
"""
import json

import xxhash


def bucket(salt, key):
    return xxhash.xxh3_64_intdigest((salt + ":" + key).encode("utf-8")) % 100000


def threshold(percent):
    # round half away from zero, like Rust's f64::round
    return int(percent * 1000 + 0.5)


salts = ["4f2a9c1e7b3d5a60", "canary_5_percent", "", "sälz-ü"]
keys = ["user-1", "user-2", "user-3", "user-17", "user-4242", "42", "",
        "émile@example.com", "a" * 300, "00000000-0000-4000-8000-000000000000"]
bucket_cases = [{"salt": s, "key": k, "bucket": bucket(s, k)} for s in salts for k in keys]

percents = [0, 0.001, 5, 25, 33.333, 50, 99.999, 100]
eval_cases = []
for salt in ["4f2a9c1e7b3d5a60", "sälz-ü"]:
    for key in ["user-1", "user-2", "user-3", "user-17", "user-4242", "42", "émile@example.com"]:
        for p in percents:
            t = threshold(p)
            if t == 0:
                variant, reason = "off", "STATIC"
            elif t >= 100000:
                variant, reason = "on", "STATIC"
            else:
                variant = "on" if bucket(salt, key) < t else "off"
                reason = "SPLIT"
            eval_cases.append({
                "salt": salt,
                "flag": {"type": "boolean", "rollout": {"percent": p}},
                "context": {"targetingKey": key},
                "variant": variant, "value": variant == "on", "reason": reason,
            })

# A string flag: rules first, then a 30% rollout of "green" by a custom attribute.
theme = {
    "type": "string",
    "variants": {"blue": "#0000ff", "green": "#00ff00", "grey": "#888888"},
    "default_variant": "grey",
    "off_variant": "grey",
    "rules": [{"name": "staff", "when": [
        {"attribute": "email", "op": "matches", "value": "@example\\.com$"}], "variant": "blue"}],
    "rollout": {"variant": "green", "percent": 30},
    "bucket_by": "userId",
}
for uid in ["u-1", "u-2", "u-3", "u-4", "u-5", "u-6", "u-7", "u-8"]:
    green = bucket("theme-salt", uid) < threshold(30)
    eval_cases.append({
        "salt": "theme-salt", "flag": theme, "context": {"userId": uid, "email": "x@other.org"},
        "variant": "green" if green else "grey", "value": "#00ff00" if green else "#888888",
        "reason": "SPLIT",
    })
eval_cases.append({"salt": "theme-salt", "flag": theme,
                   "context": {"userId": "u-1", "email": "jo@example.com"},
                   "variant": "blue", "value": "#0000ff", "reason": "TARGETING_MATCH"})
eval_cases.append({"salt": "theme-salt", "flag": dict(theme, enabled=False),
                   "context": {"userId": "u-1", "email": "jo@example.com"},
                   "variant": "grey", "value": "#888888", "reason": "DISABLED"})
eval_cases.append({"salt": "theme-salt", "flag": theme, "context": {"email": "x@other.org"},
                   "error": "TARGETING_KEY_MISSING"})

print(json.dumps({
    "about": __doc__.strip().splitlines()[0],
    "algorithm": "bucket = xxh3_64(utf8(salt) ':' utf8(key), seed 0) mod 100000; "
                 "the rollout variant is served iff bucket < round(percent * 1000)",
    "buckets": bucket_cases,
    "evaluations": eval_cases,
}, indent=1, ensure_ascii=False))
