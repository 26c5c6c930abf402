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
        "version", "name", "service", "router", "metrics", "steps", "rollback",
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
        "override_header",
        "health",
        "maintenance",
    ],
};

/// Keys only `kind: command` routers take; the rest of ROUTER (but `kind`) are builtin's.
pub const COMMAND_ROUTER_KEYS: &[&str] = &["command", "timeout"];

pub const STICKY: Section = Section {
    name: "sticky",
    path: "router.sticky.",
    keys: &["header", "cookie", "client_ip"],
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
    keys: &["steps", "on", "check_every"],
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
    ],
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

pub const SECTIONS: &[&Section] = &[
    &PLAN,
    &ROUTER,
    &STICKY,
    &HEALTH,
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
];

/// Keys that belong to the plan format but need a capability this build does not have;
/// a plan using them is rejected (never half-enforced).
pub const RESERVED: &[(&str, &str)] = &[
    ("checklist", "the go/no-go checklist"),
    ("notify", "notifications"),
    ("steps[].check", "checklist items as a step"),
    ("steps[].smoke", "smoke tests"),
    ("steps[].migrate", "database migrations"),
    ("steps[].flag", "feature flags"),
    ("steps[].monitor", "post-launch checkpoints"),
    ("steps[].after", "scheduled follow-up steps"),
];
