//! Feature flags through the real binary: the admin API (the seed runbooks' own calls),
//! the `liftoff flags` commands, OFREP (single, bulk with ETag, errors, auth, CORS, rate
//! limits), metrics, a restart, and the official OpenFeature providers (Python, Node
//! server, web) against a running `liftoff serve`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use support::{Daemon, Reply, http, stderr, stdout};

struct Env {
    _dir: tempfile::TempDir,
    cwd: PathBuf,
    daemon: Daemon,
    token: String,
}

fn start() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("state"));
    let token = daemon.token();
    Env {
        cwd: dir.path().to_path_buf(),
        _dir: dir,
        daemon,
        token,
    }
}

impl Env {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.daemon.url)
    }

    fn admin(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        let auth = format!("Authorization: Bearer {}", self.token);
        http(method, &self.url(path), &[&auth], body)
    }

    fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let out = self.daemon.cli(&self.cwd, args);
        (out.status.success(), stdout(&out), stderr(&out))
    }

    fn cli_ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.cli(args);
        assert!(ok, "liftoff {args:?} failed: {err}");
        out
    }

    /// A new evaluation key, through the CLI.
    fn eval_key(&self, name: &str, extra: &[&str]) -> String {
        let mut args = vec!["flags", "keys", "create", name];
        args.extend_from_slice(extra);
        self.cli_ok(&args).trim().to_string()
    }

    fn ofrep(&self, path: &str, key: &str, body: &str, extra: &[&str]) -> Reply {
        let auth = format!("X-API-Key: {key}");
        let mut headers = vec![auth.as_str(), "Content-Type: application/json"];
        headers.extend_from_slice(extra);
        http("POST", &self.url(path), &headers, Some(body))
    }

    fn metric(&self, line_prefix: &str) -> f64 {
        let metrics = http("GET", &self.url("/metrics"), &[], None).body;
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(line_prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `{line_prefix}` in /metrics:\n{metrics}"))
    }
}

/// Users on both sides of a flag's rollout, found with the documented algorithm
/// (`liftoff_flags::bucket`) from the salt the API reports.
fn users_in_and_out(salt: &str, percent: f64) -> (String, String) {
    let t = liftoff_flags::threshold(percent);
    let find = |inside: bool| {
        (0..10_000)
            .map(|i| format!("user-{i}"))
            .find(|u| (liftoff_flags::bucket(salt, u) < t) == inside)
            .unwrap()
    };
    (find(true), find(false))
}

#[test]
fn the_seed_runbooks_admin_calls_manage_flags_and_every_change_is_audited() {
    let env = start();
    // Exactly the seed's call: curl -d, no Content-Type.
    let r = env.admin(
        "POST",
        "/api/admin/feature-flags",
        Some(r#"{"flag": "canary_5_percent", "enabled": true, "percentage": 5}"#),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let flag = r.json();
    assert_eq!(flag["definition"]["enabled"], true);
    assert_eq!(flag["definition"]["rollout"]["percent"], 5.0);
    let salt = flag["salt"].as_str().unwrap().to_string();
    assert_eq!(salt.len(), 16);

    // Raising the percentage keeps the salt (and so every user's bucket).
    let r = env.admin(
        "POST",
        "/api/admin/feature-flags",
        Some(r#"{"flag": "canary_5_percent", "enabled": true, "percentage": 25}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["salt"], salt.as_str());
    assert_eq!(r.json()["definition"]["rollout"]["percent"], 25.0);

    for body in [
        r#"{"flag": "maintenance_mode", "enabled": true}"#,
        r#"{"flag": "maintenance_mode", "enabled": false}"#,
        r#"{"flag": "inventory_v2", "enabled": false}"#,
    ] {
        let r = env.admin("POST", "/api/admin/feature-flags", Some(body));
        assert!(r.status == 200 || r.status == 201, "{body}: {}", r.body);
    }

    // Bearer-protected, every method; an evaluation key is not an admin token.
    let key = env.eval_key("reader", &[]);
    let as_reader = format!("Authorization: Bearer {key}");
    for (method, path) in [
        ("GET", "/api/admin/feature-flags"),
        ("POST", "/api/admin/feature-flags"),
        ("GET", "/api/admin/feature-flags/canary_5_percent"),
        ("PUT", "/api/admin/feature-flags/canary_5_percent"),
        ("DELETE", "/api/admin/feature-flags/canary_5_percent"),
        ("GET", "/api/admin/feature-flags/canary_5_percent/history"),
        ("POST", "/api/admin/flag-keys"),
    ] {
        let anonymous = http(method, &env.url(path), &[], Some("{}"));
        assert_eq!(anonymous.status, 401, "{method} {path}");
        assert_eq!(anonymous.json()["error"]["code"], "unauthorized");
        let reader = http(method, &env.url(path), &[&as_reader], Some("{}"));
        assert_eq!(reader.status, 401, "{method} {path} with an evaluation key");
    }

    // Full CRUD: PUT a multivariate flag, GET it, list, DELETE.
    let theme = json!({
        "type": "string",
        "variants": {"blue": "#0000ff", "grey": "#888888"},
        "default_variant": "grey",
        "rules": [{"name": "staff", "when": [
            {"attribute": "email", "op": "matches", "value": "@example\\.com$"}
        ], "variant": "blue"}],
        "description": "checkout colour"
    });
    let r = env.admin(
        "PUT",
        "/api/admin/feature-flags/checkout_theme?by=alice&reason=design%20review",
        Some(&theme.to_string()),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let got = env.admin("GET", "/api/admin/feature-flags/checkout_theme", None);
    assert_eq!(got.status, 200);
    assert_eq!(
        got.json()["definition"]["off_variant"],
        "grey",
        "defaults written out"
    );
    assert_eq!(got.json()["definition"]["rules"][0]["name"], "staff");
    let list = env.admin("GET", "/api/admin/feature-flags", None).json();
    let keys: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "canary_5_percent",
            "checkout_theme",
            "inventory_v2",
            "maintenance_mode"
        ]
    );
    let r = env.admin(
        "DELETE",
        "/api/admin/feature-flags/inventory_v2?by=bob",
        None,
    );
    assert_eq!(r.status, 204);
    let r = env.admin("GET", "/api/admin/feature-flags/inventory_v2", None);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "not_found");

    // Validation: clear JSON errors, nothing written.
    for (body, status, needle) in [
        (
            r#"{"flag": "x", "percentage": 150}"#,
            422,
            "percentage: 150 is not a percentage",
        ),
        (
            r#"{"flag": "bad name", "enabled": true}"#,
            400,
            "`bad name`",
        ),
        (
            r#"{"flag": "x", "enabeld": true}"#,
            400,
            "unknown field `enabeld`",
        ),
        ("not json", 400, "not the expected JSON"),
        (r#"{"flag": "canary_5_percent"}"#, 400, "nothing to change"),
    ] {
        let r = env.admin("POST", "/api/admin/feature-flags", Some(body));
        assert_eq!(r.status, status, "{body}: {}", r.body);
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(message.contains(needle), "{body}: {message}");
    }
    let r = env.admin(
        "PUT",
        "/api/admin/feature-flags/theme2",
        Some(r#"{"type": "number", "variants": {"a": "x"}, "default_variant": "b"}"#),
    );
    assert_eq!(r.status, 422);
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("variants.a: string \"x\" is not a number value"),
        "{message}"
    );
    assert!(
        message.contains("default_variant: no variant named `b`"),
        "{message}"
    );
    assert_eq!(
        env.admin("GET", "/api/admin/feature-flags/x", None).status,
        404
    );
    assert_eq!(
        env.admin("GET", "/api/admin/feature-flags/theme2", None)
            .status,
        404
    );

    // The audit trail: who, when, why, before and after.
    let history = env
        .admin(
            "GET",
            "/api/admin/feature-flags/canary_5_percent/history",
            None,
        )
        .json();
    let history = history.as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["action"], "update");
    assert_eq!(history[0]["actor"], "admin token");
    assert_eq!(history[0]["before"]["rollout"]["percent"], 5.0);
    assert_eq!(history[0]["after"]["rollout"]["percent"], 25.0);
    assert!(history[0]["at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(history[1]["action"], "create");
    assert!(history[1]["before"].is_null());
    let theme_history = env.cli_ok(&["flags", "history", "checkout_theme"]);
    assert!(theme_history.contains("alice"), "{theme_history}");
    assert!(theme_history.contains("design review"), "{theme_history}");
    let deleted = env.cli_ok(&["flags", "history", "inventory_v2", "--output", "json"]);
    let deleted: Value = serde_json::from_str(&deleted).unwrap();
    assert_eq!(deleted[0]["action"], "delete");
    assert_eq!(deleted[0]["actor"], "bob");
    assert!(deleted[0]["after"].is_null());
    assert_eq!(deleted[0]["before"]["enabled"], false);
}

#[test]
fn the_flags_commands_create_ramp_kill_and_show_flags() {
    let env = start();
    let out = env.cli_ok(&[
        "flags",
        "rollout",
        "new_checkout",
        "5",
        "--by",
        "carol",
        "--reason",
        "canary",
    ]);
    assert_eq!(out.trim(), "new_checkout: on, 5% → on");
    env.cli_ok(&["flags", "rollout", "new_checkout", "25", "--by", "carol"]);
    let out = env.cli_ok(&[
        "flags",
        "disable",
        "new_checkout",
        "--by",
        "dave",
        "--reason",
        "checkout errors",
    ]);
    assert_eq!(out.trim(), "new_checkout: disabled (25% → on)");
    let out = env.cli_ok(&["flags", "enable", "new_checkout", "--by", "dave"]);
    assert_eq!(out.trim(), "new_checkout: on, 25% → on");
    let out = env.cli_ok(&[
        "flags",
        "set",
        "new_checkout",
        "--percent",
        "50",
        "--enabled",
        "false",
    ]);
    assert_eq!(
        out.trim(),
        "new_checkout: disabled (50% → on)",
        "enabled: false wins"
    );

    let def = env.cwd.join("banner.json");
    std::fs::write(
        &def,
        r#"{"type": "object", "variants": {"none": {}, "sale": {"text": "-20%", "colour": "red"}},
            "default_variant": "none", "rollout": {"variant": "sale", "percent": 10}}"#,
    )
    .unwrap();
    env.cli_ok(&["flags", "set", "banner", "--file", def.to_str().unwrap()]);
    let shown = env.cli_ok(&["flags", "get", "banner"]);
    assert!(shown.contains("type:     object"), "{shown}");
    assert!(
        shown.contains("sale = {\"colour\":\"red\",\"text\":\"-20%\"}  (rollout)"),
        "{shown}"
    );
    assert!(shown.contains("none = {}  (default, off)"), "{shown}");

    let list = env.cli_ok(&["flags", "list"]);
    assert!(
        list.contains("banner") && list.contains("on, 10% → sale"),
        "{list}"
    );
    assert!(
        list.contains("new_checkout") && list.contains("disabled (50% → on)"),
        "{list}"
    );
    let json_list: Value =
        serde_json::from_str(&env.cli_ok(&["flags", "list", "--output", "json"])).unwrap();
    assert_eq!(json_list.as_array().unwrap().len(), 2);

    let history = env.cli_ok(&["flags", "history", "new_checkout"]);
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 6, "{history}");
    assert!(
        lines[1].contains("rollout 25% → 50%") && lines[1].contains("enabled true → false"),
        "{history}"
    );
    assert!(
        lines[3].contains("dave")
            && lines[3].contains("checkout errors")
            && lines[3].contains("enabled true → false"),
        "{history}"
    );
    assert!(
        lines[5].contains("carol") && lines[5].contains("create") && lines[5].contains("canary"),
        "{history}"
    );

    // Errors: exit code 2 and a message.
    for (args, needle) in [
        (
            vec!["flags", "rollout", "new_checkout", "101"],
            "101 is not a percentage",
        ),
        (vec!["flags", "rollout", "a/b", "5"], "not a valid name"),
        (vec!["flags", "get", "nope"], "no flag named `nope`"),
        (vec!["flags", "set", "x"], "nothing to set"),
        (
            vec!["flags", "keys", "revoke", "nope"],
            "no evaluation key named `nope`",
        ),
    ] {
        let out = env.daemon.cli(&env.cwd, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }

    // Keys: shown once, listed by prefix, revocable, unique by name.
    let key = env.eval_key("web", &["--rate-limit", "100"]);
    assert!(key.starts_with("lfe_") && key.len() == 52, "{key}");
    let keys = env.cli_ok(&["flags", "keys", "list"]);
    assert!(
        keys.contains("web") && keys.contains("100/s") && keys.contains(&key[..10]),
        "{keys}"
    );
    assert!(!keys.contains(&key), "the key itself is never shown again");
    the_cli_types_read_every_flags_reply_whole(&env);
    let (ok, _, err) = env.cli(&["flags", "keys", "create", "web"]);
    assert!(!ok && err.contains("exists"), "{err}");
    let r = env.ofrep("/ofrep/v1/evaluate/flags/banner", &key, "{}", &[]);
    assert_eq!(
        r.status, 400,
        "works (the flag wants a targetingKey): {}",
        r.body
    );
    env.cli_ok(&["flags", "keys", "revoke", "web"]);
    let r = env.ofrep("/ofrep/v1/evaluate/flags/banner", &key, "{}", &[]);
    assert_eq!(r.status, 401, "revoked at once");
    // The key never reaches the daemon's log.
    let log = std::fs::read_to_string(env.daemon.state_dir.join("daemon.log")).unwrap();
    assert!(!log.contains(&key) && !log.contains(&env.token));
}

/// The daemon's flags replies, read with the types the CLI reads them with
/// (`liftoff_api::flags`) and written back, are the same JSON: a field the daemon adds,
/// renames or retypes without the CLI's types fails here.
fn the_cli_types_read_every_flags_reply_whole(env: &Env) {
    use liftoff_api::flags::{AuditView, CreatedKey, Deleted, FlagView, KeyView, Revoked};

    fn same<T: serde::de::DeserializeOwned + serde::Serialize>(what: &str, r: Reply) {
        assert!(r.status < 300, "{what}: {} {}", r.status, r.body);
        let raw: Value = serde_json::from_str(&r.body).unwrap();
        let typed: T = serde_json::from_value(raw.clone())
            .unwrap_or_else(|e| panic!("{what}: the CLI's type cannot read {raw}: {e}"));
        assert_eq!(serde_json::to_value(&typed).unwrap(), raw, "{what}");
    }
    same::<Vec<FlagView>>("list", env.admin("GET", "/api/v1/flags", None));
    same::<FlagView>("get", env.admin("GET", "/api/v1/flags/banner", None));
    same::<Vec<AuditView>>(
        "history",
        env.admin("GET", "/api/v1/flags/new_checkout/history", None),
    );
    same::<FlagView>(
        "change",
        env.admin(
            "POST",
            "/api/v1/flags/contract",
            Some(r#"{"by": "test", "percentage": 5}"#),
        ),
    );
    same::<Deleted>(
        "delete",
        env.admin(
            "POST",
            "/api/v1/flags/contract/delete",
            Some(r#"{"by": "test"}"#),
        ),
    );
    same::<CreatedKey>(
        "create key",
        env.admin(
            "POST",
            "/api/v1/flag-keys",
            Some(r#"{"name": "contract", "by": "test", "rate_limit": 5}"#),
        ),
    );
    same::<Vec<KeyView>>("keys", env.admin("GET", "/api/v1/flag-keys", None));
    same::<Revoked>(
        "revoke",
        env.admin(
            "POST",
            "/api/v1/flag-keys/contract/revoke",
            Some(r#"{"by": "test"}"#),
        ),
    );
}

#[test]
fn ofrep_evaluates_one_flag_or_all_with_etags_errors_auth_cors_and_rate_limits() {
    let env = start();
    let r = env.admin(
        "POST",
        "/api/admin/feature-flags",
        Some(r#"{"flag": "new_checkout", "percentage": 30}"#),
    );
    let salt = r.json()["salt"].as_str().unwrap().to_string();
    let (user_in, user_out) = users_in_and_out(&salt, 30.0);
    env.admin(
        "PUT",
        "/api/admin/feature-flags/theme",
        Some(r#"{"type": "string", "variants": {"a": "A", "b": "B"}, "default_variant": "a",
                 "rules": [{"when": [{"attribute": "version", "op": "semver_gte", "value": "2.1.0"}], "variant": "b"}]}"#),
    );
    let key = env.eval_key("backend", &[]);

    // One flag.
    let ctx =
        |user: &str| format!(r#"{{"context": {{"targetingKey": "{user}", "version": "2.3.0"}}}}"#);
    let r = env.ofrep(
        "/ofrep/v1/evaluate/flags/new_checkout",
        &key,
        &ctx(&user_in),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(
        r.json(),
        json!({"key": "new_checkout", "value": true, "variant": "on", "reason": "SPLIT"})
    );
    let r = env.ofrep(
        "/ofrep/v1/evaluate/flags/new_checkout",
        &key,
        &ctx(&user_out),
        &[],
    );
    assert_eq!(r.json()["value"], false);
    assert_eq!(r.json()["reason"], "SPLIT");
    let r = env.ofrep("/ofrep/v1/evaluate/flags/theme", &key, &ctx(&user_out), &[]);
    assert_eq!(
        r.json(),
        json!({"key": "theme", "value": "B", "variant": "b", "reason": "TARGETING_MATCH"})
    );
    // The admin token evaluates too, as a bearer.
    let admin = format!("Authorization: Bearer {}", env.token);
    let r = http(
        "POST",
        &env.url("/ofrep/v1/evaluate/flags/theme"),
        &[&admin],
        Some("{}"),
    );
    assert_eq!(r.json()["reason"], "DEFAULT");

    // Errors in OFREP's shape.
    for (path, body, status, code) in [
        ("/ofrep/v1/evaluate/flags/nope", "{}", 404, "FLAG_NOT_FOUND"),
        (
            "/ofrep/v1/evaluate/flags/new_checkout",
            "{}",
            400,
            "TARGETING_KEY_MISSING",
        ),
        (
            "/ofrep/v1/evaluate/flags/new_checkout",
            "{nope",
            400,
            "PARSE_ERROR",
        ),
        (
            "/ofrep/v1/evaluate/flags/new_checkout",
            r#"{"context": [1]}"#,
            400,
            "INVALID_CONTEXT",
        ),
        (
            "/ofrep/v1/evaluate/flags/new_checkout",
            r#"{"context": {"targetingKey": {"id": 1}}}"#,
            400,
            "INVALID_CONTEXT",
        ),
    ] {
        let r = env.ofrep(path, &key, body, &[]);
        assert_eq!(r.status, status, "{path} {body}: {}", r.body);
        let b = r.json();
        assert_eq!(b["errorCode"], code, "{body}");
        assert!(b["key"].is_string() && b["errorDetails"].is_string(), "{b}");
    }
    for auth in [
        None,
        Some("X-API-Key: lfe_wrong"),
        Some("Authorization: Bearer lfe_wrong"),
    ] {
        let headers: Vec<&str> = auth.into_iter().collect();
        let r = http(
            "POST",
            &env.url("/ofrep/v1/evaluate/flags/theme"),
            &headers,
            Some("{}"),
        );
        assert_eq!(r.status, 401, "{auth:?}");
    }

    // All flags, with an ETag over the flags and the context.
    let bulk = "/ofrep/v1/evaluate/flags";
    let r = env.ofrep(bulk, &key, &ctx(&user_in), &[]);
    assert_eq!(r.status, 200);
    let etag = r.header("etag").unwrap().to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert_eq!(
        r.json(),
        json!({"flags": [
            {"key": "new_checkout", "value": true, "variant": "on", "reason": "SPLIT"},
            {"key": "theme", "value": "B", "variant": "b", "reason": "TARGETING_MATCH"}
        ]})
    );
    let if_none_match = format!("If-None-Match: {etag}");
    let r = env.ofrep(bulk, &key, &ctx(&user_in), &[&if_none_match]);
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert!(r.body.is_empty());
    // Another context: another tag, even where every value is the same.
    let r = env.ofrep(bulk, &key, &ctx(&user_out), &[&if_none_match]);
    assert_eq!(r.status, 200);
    assert_ne!(r.header("etag"), Some(etag.as_str()));
    let r = env.ofrep(bulk, &key, "{}", &[]);
    assert_eq!(
        r.json()["flags"][0],
        json!({"key": "new_checkout", "errorCode": "TARGETING_KEY_MISSING",
               "errorDetails": "this flag's percentage rollout needs `targetingKey` in the evaluation context"})
    );
    // A flag change: a new tag for the same context.
    env.admin(
        "POST",
        "/api/admin/feature-flags",
        Some(r#"{"flag": "new_checkout", "enabled": false}"#),
    );
    let r = env.ofrep(bulk, &key, &ctx(&user_in), &[&if_none_match]);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["flags"][0]["reason"], "DISABLED");
    let r = env.ofrep(bulk, &key, "[", &[]);
    assert_eq!(
        (r.status, r.json()["errorCode"].as_str()),
        (400, Some("PARSE_ERROR"))
    );

    // CORS: preflights need no key; answers expose ETag.
    for path in [bulk, "/ofrep/v1/evaluate/flags/theme"] {
        let r = http(
            "OPTIONS",
            &env.url(path),
            &[
                "Origin: https://shop.example.com",
                "Access-Control-Request-Method: POST",
                "Access-Control-Request-Headers: x-api-key, content-type, if-none-match",
            ],
            None,
        );
        assert_eq!(r.status, 204, "{path}");
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        let allowed = r
            .header("access-control-allow-headers")
            .unwrap()
            .to_lowercase();
        for h in [
            "x-api-key",
            "content-type",
            "if-none-match",
            "authorization",
        ] {
            assert!(allowed.contains(h), "{allowed}");
        }
        assert!(
            r.header("access-control-allow-methods")
                .unwrap()
                .contains("POST")
        );
    }
    let r = env.ofrep(
        bulk,
        &key,
        &ctx(&user_in),
        &["Origin: https://shop.example.com"],
    );
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(
        r.header("access-control-expose-headers")
            .unwrap()
            .contains("ETag")
    );

    // A rate-limited key: 429 with Retry-After in whole seconds. One curl process sends
    // 20 calls on one connection, so they span at most a second or two.
    let limited = env.eval_key("limited", &["--rate-limit", "3"]);
    let url = env.url("/ofrep/v1/evaluate/flags/theme");
    let auth = format!("X-API-Key: {limited}");
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-X", "POST", "-H", &auth, "-d", "{}"])
        .args(["-w", "%{http_code} %header{retry-after}\n"]);
    for _ in 0..20 {
        cmd.args([url.as_str(), "-o", "/dev/null"]);
    }
    let out = cmd.output().expect("curl");
    let answers: Vec<(String, String)> = stdout(&out)
        .lines()
        .map(|l| {
            let (code, retry) = l.split_once(' ').unwrap_or((l, ""));
            (code.to_string(), retry.trim().to_string())
        })
        .collect();
    assert_eq!(answers.len(), 20, "{answers:?}");
    let refused: Vec<&(String, String)> = answers.iter().filter(|(c, _)| c == "429").collect();
    assert!(refused.len() >= 3, "20 calls at 3/s: {answers:?}");
    assert!(
        answers.iter().all(|(c, _)| c == "200" || c == "429"),
        "{answers:?}"
    );
    for (_, retry) in &refused {
        let secs: u64 = retry.parse().expect("Retry-After in integer seconds");
        assert!((1..=60).contains(&secs));
    }

    // Metrics: per flag, variant and reason, for a per-variant canary analysis.
    assert_eq!(
        env.metric(
            r#"liftoff_flag_evaluations_total{flag="new_checkout",variant="on",reason="SPLIT"} "#
        ),
        2.0
    );
    assert_eq!(
        env.metric(
            r#"liftoff_flag_evaluations_total{flag="new_checkout",variant="off",reason="SPLIT"} "#
        ),
        2.0
    );
    assert_eq!(env.metric(r#"liftoff_flag_evaluations_total{flag="new_checkout",variant="off",reason="DISABLED"} "#), 2.0);
    assert_eq!(env.metric(r#"liftoff_flag_evaluation_errors_total{flag="new_checkout",error_code="TARGETING_KEY_MISSING"} "#), 2.0);
    assert_eq!(env.metric("liftoff_flag_not_found_total "), 1.0);
    assert_eq!(
        env.metric(r#"liftoff_ofrep_bulk_responses_total{status="304"} "#),
        1.0
    );
    assert_eq!(
        env.metric(r#"liftoff_flag_enabled{flag="new_checkout"} "#),
        0.0
    );
    assert_eq!(
        env.metric(r#"liftoff_flag_rollout_percent{flag="new_checkout"} "#),
        30.0
    );
    assert_eq!(
        env.metric(r#"liftoff_ofrep_rate_limited_total{key="limited"} "#),
        refused.len() as f64
    );
}

#[test]
fn flags_and_keys_survive_a_kill_9_and_users_keep_their_variant() {
    let mut env = start();
    env.admin(
        "POST",
        "/api/admin/feature-flags",
        Some(r#"{"flag": "ramp", "percentage": 50}"#),
    );
    let key = env.eval_key("svc", &[]);
    let answers = |env: &Env| -> Vec<Value> {
        (0..40)
            .map(|i| {
                let body = format!(r#"{{"context": {{"targetingKey": "user-{i}"}}}}"#);
                env.ofrep("/ofrep/v1/evaluate/flags/ramp", &key, &body, &[])
                    .json()["value"]
                    .clone()
            })
            .collect()
    };
    let before = answers(&env);
    assert!(before.contains(&json!(true)) && before.contains(&json!(false)));
    env.daemon.kill9();
    env.daemon = Daemon::start(&env.daemon.state_dir.clone());
    assert_eq!(answers(&env), before, "same salt, same buckets, same key");
}

// ---- the official OpenFeature providers ----

/// Installs the providers once (`setup.sh` is idempotent); returns their directory.
fn providers() -> PathBuf {
    let exe = PathBuf::from(support::BIN);
    let target = exe.parent().and_then(Path::parent).expect("target dir");
    let dir = target.join("openfeature");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openfeature/setup.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(&dir)
        .output()
        .expect("run setup.sh");
    assert!(
        out.status.success(),
        "setup.sh failed (it needs PyPI and npm):\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    dir
}

fn run_client(env: &Env, providers: &Path, program: &[&str], flag: &str) -> Value {
    let r = env.admin(
        "POST",
        "/api/admin/feature-flags",
        Some(&format!(
            r#"{{"flag": "{flag}", "enabled": true, "percentage": 50}}"#
        )),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let (user_in, user_out) = users_in_and_out(r.json()["salt"].as_str().unwrap(), 50.0);
    let key = env.eval_key(&format!("{flag}-key"), &[]);
    let script_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openfeature");
    let out = Command::new(program[0])
        .args(&program[1..])
        .args([&env.daemon.url, &key, &env.token, flag, &user_in, &user_out])
        .current_dir(&script_dir)
        .env("NODE_PATH", providers.join("node/node_modules"))
        .output()
        .expect("run the client");
    assert!(
        out.status.success(),
        "{program:?} failed:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
    serde_json::from_str(stdout(&out).trim()).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

fn assert_resolved(seen: &Value, what: &str, value: Value, variant: &str, reason: &str) {
    let got = &seen[what];
    assert_eq!(
        (
            &got["value"],
            got["variant"].as_str(),
            got["reason"].as_str(),
            &got["error_code"]
        ),
        (&value, Some(variant), Some(reason), &Value::Null),
        "{what}: {seen:#}"
    );
}

#[test]
fn the_official_openfeature_providers_evaluate_against_liftoff_serve() {
    let providers = providers();
    let env = start();
    env.admin(
        "PUT",
        "/api/admin/feature-flags/checkout_theme",
        Some(r##"{"type": "string", "variants": {"blue": "#0000ff", "grey": "#888888"},
                 "default_variant": "grey",
                 "rules": [{"when": [{"attribute": "email", "op": "matches", "value": "@example\\.com$"}], "variant": "blue"}]}"##),
    );
    let python = providers.join("venv/bin/python");
    let clients: [(&str, Vec<&str>); 3] = [
        (
            "py_checkout",
            vec![python.to_str().unwrap(), "python_client.py"],
        ),
        ("node_checkout", vec!["node", "node_server_client.cjs"]),
        ("web_checkout", vec!["node", "node_web_client.cjs"]),
    ];
    for (flag, program) in clients {
        let seen = run_client(&env, &providers, &program, flag);
        assert_resolved(&seen, "bool_in", json!(true), "on", "SPLIT");
        assert_resolved(&seen, "bool_out", json!(false), "off", "SPLIT");
        assert_resolved(
            &seen,
            "string_staff",
            json!("#0000ff"),
            "blue",
            "TARGETING_MATCH",
        );
        assert_resolved(&seen, "string_other", json!("#888888"), "grey", "DEFAULT");
        assert_eq!(
            seen["missing"]["error_code"], "FLAG_NOT_FOUND",
            "{flag}: {seen:#}"
        );
        assert_eq!(seen["missing"]["value"], true, "the caller's default");
        // The change made through the admin API (the seed's kill-switch call).
        assert_resolved(&seen, "after_disable", json!(false), "off", "DISABLED");
        if flag == "web_checkout" {
            assert_eq!(seen["configuration_changed_event"], true, "{seen:#}");
        } else {
            assert_eq!(
                seen["wrong_type"]["error_code"], "TYPE_MISMATCH",
                "{flag}: {seen:#}"
            );
        }
    }
    // The web provider polled with If-None-Match and got 304s while nothing changed.
    assert!(env.metric(r#"liftoff_ofrep_bulk_responses_total{status="304"} "#) >= 1.0);
}
