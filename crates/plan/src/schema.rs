//! Every key the plan format accepts, by section. The decoder reads keys only through
//! these lists (checked in debug builds), unknown-key hints come from them, and a test
//! fails when docs/plan.md does not document one of them.

pub struct Section {
    /// How errors name the section: `step`, `router`, ...
    pub name: &'static str,
    /// The prefix docs/plan.md uses for the section's keys: `steps[].wait.`.
    pub path: &'static str,
    pub keys: &'static [&'static str],
}

pub const PLAN: Section = Section {
    name: "plan",
    path: "",
    keys: &[
        "version",
        "name",
        "service",
        "router",
        "metrics",
        "checklist",
        "steps",
        "rollback",
        "notify",
    ],
};

pub const ROUTER: Section = Section {
    name: "router",
    path: "router.",
    keys: &[
        "kind",
        "command",
        "timeout",
        "listen",
        "host",
        "stable",
        "candidate",
        "sticky",
        "override",
        "health",
        "maintenance",
        "timeouts",
        "tls",
        "upstreams",
        "socket",
        "backend",
        "include",
        "upstream",
        "access_log",
        "nginx",
        "config",
    ],
};

/// One certificate of `router.tls` (the key alone, or each item of its list).
pub const TLS: Section = Section {
    name: "tls",
    path: "router.tls.",
    keys: &["cert", "key"],
};

pub const UPSTREAMS: Section = Section {
    name: "upstreams",
    path: "router.upstreams.",
    keys: &["ca", "host"],
};

pub const TIMEOUTS: Section = Section {
    name: "timeouts",
    path: "router.timeouts.",
    keys: &["connect", "response", "idle"],
};

/// Keys only `kind: command` routers take.
pub const COMMAND_ROUTER_KEYS: &[&str] = &["command", "timeout"];

/// Keys `kind: haproxy` routers take (besides `kind`).
pub const HAPROXY_ROUTER_KEYS: &[&str] = &["socket", "backend", "stable", "candidate", "sticky"];

/// Keys `kind: nginx` routers take (besides `kind`).
pub const NGINX_ROUTER_KEYS: &[&str] = &[
    "include",
    "upstream",
    "stable",
    "candidate",
    "sticky",
    "access_log",
    "nginx",
    "config",
];

/// The keys of ROUTER (besides `kind`) a router kind takes; `None` for a kind liftoff
/// does not know. `kind: builtin` takes every key that is neither command's nor
/// haproxy's or nginx's own (`socket`, `backend`, `include`, ...).
pub fn router_kind_takes(kind: &str, key: &str) -> Option<bool> {
    match kind {
        "command" => Some(COMMAND_ROUTER_KEYS.contains(&key)),
        "haproxy" => Some(HAPROXY_ROUTER_KEYS.contains(&key)),
        "nginx" => Some(NGINX_ROUTER_KEYS.contains(&key)),
        "builtin" => Some(
            !COMMAND_ROUTER_KEYS.contains(&key)
                && !matches!(
                    key,
                    "socket"
                        | "backend"
                        | "include"
                        | "upstream"
                        | "access_log"
                        | "nginx"
                        | "config"
                ),
        ),
        _ => None,
    }
}

pub const STICKY: Section = Section {
    name: "sticky",
    path: "router.sticky.",
    keys: &["header", "cookie", "client_ip"],
};

pub const OVERRIDE: Section = Section {
    name: "override",
    path: "router.override.",
    keys: &["header", "secret", "allow", "count"],
};

pub const MAINTENANCE: Section = Section {
    name: "maintenance",
    path: "router.maintenance.",
    keys: &["retry_after", "page", "allow", "bypass_header"],
};

pub const BYPASS_HEADER: Section = Section {
    name: "bypass_header",
    path: "router.maintenance.bypass_header.",
    keys: &["name", "value"],
};

pub const HEALTH: Section = Section {
    name: "health",
    path: "router.health.",
    keys: &[
        "path",
        "interval",
        "timeout",
        "healthy_threshold",
        "unhealthy_threshold",
    ],
};

pub const ROLLBACK: Section = Section {
    name: "rollback",
    path: "rollback.",
    keys: &["steps", "on", "check_every", "min_requests", "confidence"],
};

pub const STEP: Section = Section {
    name: "step",
    path: "steps[].",
    keys: &[
        "name",
        "run",
        "timeout",
        "env",
        "dir",
        "idempotent",
        "traffic",
        "pause",
        "approve",
        "wait",
        "maintenance",
        "analyze",
        "bake",
        "check",
        "smoke",
        "migrate",
        "after",
        "monitor",
        "flag",
        "deploy",
    ],
};

pub const DEPLOY: Section = Section {
    name: "deploy",
    path: "steps[].deploy.",
    keys: &[
        "compose", "service", "project", "image", "env", "timeout", "retire",
    ],
};

/// `deploy.env` maps variable names to values: its keys are data.
pub const DEPLOY_ENV: Section = Section {
    name: "deploy.env",
    path: "steps[].deploy.env.",
    keys: &[],
};

pub const RETIRE: Section = Section {
    name: "retire",
    path: "steps[].deploy.retire.",
    keys: &["project", "after"],
};

pub const MONITOR: Section = Section {
    name: "monitor",
    path: "steps[].monitor.",
    keys: &["checkpoints", "gates", "window", "min_requests"],
};

pub const FLAG: Section = Section {
    name: "flag",
    path: "steps[].flag.",
    keys: &["name", "percent", "enabled"],
};

pub const AFTER: Section = Section {
    name: "after",
    path: "steps[].after.",
    keys: &["delay", "run", "timeout"],
};

pub const CHECKLIST: Section = Section {
    name: "checklist",
    path: "checklist.",
    keys: &["items", "pass", "timeout"],
};

pub const PASS: Section = Section {
    name: "pass",
    path: "checklist.pass.",
    keys: &["critical", "overall"],
};

pub const CHECK_ITEM: Section = Section {
    name: "checklist item",
    path: "checklist.items[].",
    keys: &[
        "name",
        "critical",
        "timeout",
        "http",
        "method",
        "headers",
        "body",
        "status",
        "body_contains",
        "json",
        "max_latency",
        "tcp",
        "tls",
        "server_name",
        "min_days",
        "ca_file",
        "disk",
        "min_free",
        "command",
        "exit_code",
        "output_contains",
        "dir",
        "postgres",
        "query",
        "expect",
        "redis",
        "info",
        "prometheus",
        "condition",
        "file",
        "max_age",
        "approval",
    ],
};

/// `headers` maps header names to values: its keys are data.
pub const HEADERS: Section = Section {
    name: "headers",
    path: "checklist.items[].headers.",
    keys: &[],
};

/// `json` maps JSON pointers to expected values: its keys are data.
pub const JSON: Section = Section {
    name: "json",
    path: "checklist.items[].json.",
    keys: &[],
};

pub const SMOKE: Section = Section {
    name: "smoke",
    path: "steps[].smoke.",
    keys: &["base_url", "timeout", "requests"],
};

pub const SMOKE_REQUEST: Section = Section {
    name: "smoke request",
    path: "steps[].smoke.requests[].",
    keys: &[
        "name",
        "url",
        "method",
        "headers",
        "body",
        "status",
        "body_contains",
        "json",
        "max_latency",
        "timeout",
    ],
};

pub const MIGRATE: Section = Section {
    name: "migrate",
    path: "steps[].migrate.",
    keys: &[
        "database",
        "command",
        "timeout",
        "dir",
        "verify",
        "restore_on_rollback",
        "restore_verify",
        "terminate_sessions",
    ],
};

pub const VERIFY: Section = Section {
    name: "verify",
    path: "steps[].migrate.verify[].",
    keys: &["query", "expect"],
};

pub const ANALYZE: Section = Section {
    name: "analyze",
    path: "steps[].analyze.",
    keys: &[
        "for",
        "interval",
        "gates",
        "min_requests",
        "failure_limit",
        "inconclusive_limit",
        "on_inconclusive",
        "dry_run",
        "compare",
    ],
};

pub const COMPARE: Section = Section {
    name: "compare",
    path: "steps[].analyze.compare.",
    keys: &[
        "against",
        "latency_tolerance",
        "error_tolerance",
        "confidence",
        "critical",
        "pass_score",
        "marginal_score",
    ],
};

pub const BAKE: Section = Section {
    name: "bake",
    path: "steps[].bake.",
    keys: &["for"],
};

pub const TRIGGER: Section = Section {
    name: "trigger",
    path: "rollback.on[].",
    keys: &[
        "when",
        "action",
        "name",
        "query",
        "condition",
        "version",
        "for",
        "disable_flag",
    ],
};

/// Trigger keys that belong to a PromQL trigger (the rest but `action` are `when`'s).
pub const QUERY_KEYS: &[&str] = &["name", "query", "condition", "version", "for"];

pub const QUERY_GATE: Section = Section {
    name: "gate",
    path: "steps[].analyze.gates[].",
    keys: &["name", "query", "condition", "version"],
};

pub const METRICS: Section = Section {
    name: "metrics",
    path: "metrics.",
    keys: &["kind", "url", "timeout"],
};

pub const APPROVE: Section = Section {
    name: "approve",
    path: "steps[].approve.",
    keys: &["role", "timeout"],
};

pub const WAIT: Section = Section {
    name: "wait",
    path: "steps[].wait.",
    keys: &[
        "http",
        "status",
        "consecutive",
        "interval",
        "request_timeout",
        "timeout",
    ],
};

/// `env` maps variable names to values: its keys are data, not schema.
pub const ENV: Section = Section {
    name: "env",
    path: "steps[].env.",
    keys: &[],
};

pub const NOTIFY: Section = Section {
    name: "notify",
    path: "notify.",
    keys: &["channels", "templates", "retry"],
};

pub const NOTIFY_CHANNEL: Section = Section {
    name: "notify channel",
    path: "notify.channels[].",
    keys: &[
        "name",
        "slack",
        "webhook",
        "email",
        "statuspage",
        "secret",
        "events",
        "required",
        "templates",
    ],
};

pub const NOTIFY_EMAIL: Section = Section {
    name: "email",
    path: "notify.channels[].email.",
    keys: &["smtp", "starttls", "username", "password", "from", "to"],
};

pub const NOTIFY_STATUSPAGE: Section = Section {
    name: "statuspage",
    path: "notify.channels[].statuspage.",
    keys: &[
        "page_id",
        "api_key",
        "component_id",
        "api_url",
        "expected_duration",
    ],
};

/// `templates` maps event names to messages: its keys are data (checked by the decoder).
/// The same shape serves `notify.channels[].templates`.
pub const NOTIFY_TEMPLATES: Section = Section {
    name: "templates",
    path: "notify.templates.",
    keys: &[],
};

pub const NOTIFY_RETRY: Section = Section {
    name: "retry",
    path: "notify.retry.",
    keys: &["attempts", "backoff", "timeout"],
};

pub const SECTIONS: &[&Section] = &[
    &PLAN,
    &ROUTER,
    &STICKY,
    &OVERRIDE,
    &HEALTH,
    &TIMEOUTS,
    &TLS,
    &UPSTREAMS,
    &MAINTENANCE,
    &BYPASS_HEADER,
    &ROLLBACK,
    &STEP,
    &APPROVE,
    &WAIT,
    &ANALYZE,
    &COMPARE,
    &BAKE,
    &TRIGGER,
    &QUERY_GATE,
    &METRICS,
    &CHECKLIST,
    &PASS,
    &CHECK_ITEM,
    &HEADERS,
    &JSON,
    &SMOKE,
    &SMOKE_REQUEST,
    &MIGRATE,
    &VERIFY,
    &AFTER,
    &NOTIFY,
    &NOTIFY_CHANNEL,
    &NOTIFY_EMAIL,
    &NOTIFY_STATUSPAGE,
    &NOTIFY_TEMPLATES,
    &NOTIFY_RETRY,
    &MONITOR,
    &FLAG,
    &DEPLOY,
    &DEPLOY_ENV,
    &RETIRE,
];

/// Keys that belong to the plan format but need a capability this build does not have;
/// a plan using them is rejected (never half-enforced).
pub const RESERVED: &[(&str, &str)] = &[];

/// Keys the format no longer accepts, with what replaced them: an error whose hint says
/// how to write it now (an unknown key's did-you-mean would not).
pub const REPLACED: &[(&str, &str)] = &[(
    "router.override_header",
    "the override is off unless the plan allows it: `override: { header: X-Liftoff-Version, secret: \"${TESTER_TOKEN}\" }` (testers send `candidate;<secret>`), or `allow: [CIDR, ...]` instead of or beside `secret`",
)];
