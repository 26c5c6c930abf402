//! The typed launch plan. Everything downstream reads these types; nothing re-reads YAML.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// A position in the plan file (1-based line and column).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A validated launch plan (format version 1).
#[derive(Clone, Debug)]
pub struct Plan {
    pub name: String,
    pub service: String,
    pub router: Option<RouterSpec>,
    /// Where query gates and triggers get their numbers (`metrics: { kind: prometheus }`).
    /// Conditions like `error_rate < 1%` read the router's own numbers (builtin or haproxy).
    pub metrics: Option<MetricsSpec>,
    /// The go/no-go checklist: run before anything else; NO-GO ends the launch.
    pub checklist: Option<crate::checks::Checklist>,
    pub steps: Vec<Step>,
    pub rollback: RollbackSpec,
    /// Who is told about the launch, and how (`notify:`).
    pub notify: Option<crate::notify::NotifySpec>,
    /// Every `${VAR}` the plan references, with its resolved value. These are secrets:
    /// they are handed to child processes and redacted from captured output, never printed.
    pub variables: Variables,
}

/// Resolved `${VAR}` values. `Debug` shows names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Variables(BTreeMap<String, String>);

impl Variables {
    pub(crate) fn insert(&mut self, name: String, value: String) {
        self.0.insert(name, value);
    }

    /// `(name, value)` pairs, for the environment of child processes.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Values worth redacting from free text: very short values (`1`, `on`) would
    /// shred unrelated output and are not plausible secrets.
    pub fn redactable_values(&self) -> impl Iterator<Item = &str> {
        self.0.values().map(String::as_str).filter(|v| v.len() >= 4)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Variables {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// A string that may contain `${VAR}` references. `Display` and `Debug` show the
/// template as written, so resolved values (secrets) never leak into logs or journals.
#[derive(Clone, PartialEq, Eq)]
pub struct Text {
    template: String,
    resolved: String,
    /// Where in `resolved` the first variable left unset begins, when [`crate::lint`]
    /// reads the plan without an environment; such a text never leaves this crate.
    unset_from: Option<usize>,
}

/// What decoding can check of a [`Text`]'s value.
pub(crate) enum Known<'a> {
    /// The whole value.
    All(&'a str),
    /// Only the literal text before the first variable left unset (`lint`).
    Prefix(&'a str),
}

impl Known<'_> {
    /// Whether the value starts, or may start, with one of `prefixes`.
    pub(crate) fn may_start_with(&self, prefixes: &[&str]) -> bool {
        match self {
            Known::All(s) => prefixes.iter().any(|p| s.starts_with(p)),
            Known::Prefix(k) => prefixes
                .iter()
                .any(|p| k.starts_with(p) || p.starts_with(k)),
        }
    }
}

impl Text {
    pub(crate) fn new(template: String, resolved: String) -> Self {
        Self {
            template,
            resolved,
            unset_from: None,
        }
    }

    /// A text whose variables were left unset from byte `unset_from` of `resolved` on.
    pub(crate) fn partial(template: String, resolved: String, unset_from: usize) -> Self {
        Self {
            template,
            resolved,
            unset_from: Some(unset_from),
        }
    }

    /// `self` followed by `rest` (a smoke request's path after its `base_url`), with
    /// `self`'s trailing `/` dropped.
    pub(crate) fn join_path(&self, rest: &Text) -> Text {
        let base = self.resolved.trim_end_matches('/');
        Text {
            template: format!("{}{}", self.template.trim_end_matches('/'), rest.template),
            resolved: format!("{base}{}", rest.resolved),
            unset_from: self
                .unset_from
                .map(|at| at.min(base.len()))
                .or(rest.unset_from.map(|at| base.len() + at)),
        }
    }

    /// The value as far as decoding can check it.
    pub(crate) fn known(&self) -> Known<'_> {
        match self.unset_from {
            None => Known::All(&self.resolved),
            Some(at) => Known::Prefix(&self.resolved[..at]),
        }
    }

    /// A text without variables.
    pub fn literal(s: impl Into<String>) -> Self {
        let s = s.into();
        Self::new(s.clone(), s)
    }

    /// The text as written in the plan, `${VAR}` references unexpanded. Safe to show.
    pub fn template(&self) -> &str {
        &self.template
    }

    /// The template for `sh -c`: `${VAR}` stays for the shell to expand from the
    /// environment (where liftoff puts the plan's variables), and the plan's escape
    /// `$${VAR}` becomes the shell's `\${VAR}`, a literal `${VAR}`.
    pub fn shell_command(&self) -> String {
        self.template.replace("$${", "\\${")
    }

    /// The text with variables substituted. May contain secrets: use it only to act.
    pub fn expose(&self) -> &str {
        &self.resolved
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.template)
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.template, f)
    }
}

/// Candidate traffic share in basis points (0..=10000, i.e. 0.01% resolution).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Weight(u16);

impl Weight {
    pub const STABLE: Weight = Weight(0);
    pub const FULL: Weight = Weight(10_000);

    pub fn from_basis_points(bp: u16) -> Option<Self> {
        (bp <= 10_000).then_some(Self(bp))
    }

    pub fn basis_points(self) -> u16 {
        self.0
    }

    /// The share as a percentage, e.g. `5`, `0.5`, `12.25`.
    pub fn percent(self) -> f64 {
        f64::from(self.0) / 100.0
    }
}

impl fmt::Display for Weight {
    /// Shortest exact form: `50`, `0.5`, `12.25` (no `%`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.0 / 100, self.0 % 100);
        match frac {
            0 => write!(f, "{whole}"),
            n if n % 10 == 0 => write!(f, "{whole}.{}", n / 10),
            n => write!(f, "{whole}.{n:02}"),
        }
    }
}

#[derive(Clone, Debug)]
pub enum RouterSpec {
    /// Runs a command for every weight change: `{weight}` is replaced by the candidate
    /// percentage, also exported as `LIFTOFF_WEIGHT`.
    Command { command: Text, timeout: Duration },
    /// liftoff's own L7 router (`liftoff router` processes, driven by the daemon).
    Builtin(Box<BuiltinRouter>),
    /// The user's HAProxy, driven through its runtime API (never a reload).
    Haproxy(HaproxyRouter),
    /// The user's nginx: liftoff writes an upstream block in a file it owns, checks it
    /// with `nginx -t` and reloads.
    Nginx(NginxRouter),
}

impl RouterSpec {
    /// Whether conditions (`error_rate < 1%`) can be judged: the router counts requests.
    pub fn observes(&self) -> bool {
        matches!(
            self,
            RouterSpec::Builtin(_) | RouterSpec::Haproxy(_) | RouterSpec::Nginx(_)
        )
    }
}

/// `router: { kind: nginx }`: an `upstream` block (and the `log_format` of its access
/// log) in a file liftoff owns and the user's nginx.conf includes in its `http` block.
/// liftoff rewrites it at each weight change, checks it with `nginx -t` and reloads;
/// its numbers come from the access log, one line per request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NginxRouter {
    /// The file liftoff writes (absolute path).
    pub include: String,
    /// The upstream's name: an nginx identifier (letters, digits, `_`, `-`, `.`). The
    /// log format is `liftoff_<upstream>`.
    pub upstream: String,
    /// Instance addresses, `host:port`; no address is in both lists.
    pub stable: Vec<String>,
    pub candidate: Vec<String>,
    /// `router.sticky.header`, lowercase: the upstream hashes it (`hash ... consistent`).
    pub sticky_header: Option<String>,
    /// The access log liftoff reads (absolute path).
    pub access_log: String,
    /// The nginx binary (`nginx` on the daemon's PATH by default).
    pub nginx: String,
    /// The configuration `nginx -t` and `nginx -s reload` read (`-c`), if not nginx's default.
    pub config: Option<String>,
}

impl NginxRouter {
    /// The `log_format` liftoff defines in the include for this upstream's access log.
    pub fn log_format(&self) -> String {
        format!("liftoff_{}", self.upstream)
    }
}

/// `router: { kind: haproxy }`: two servers of one backend of a running HAProxy, whose
/// weights liftoff sets with `set server` and whose numbers it reads from `show stat`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HaproxyRouter {
    pub socket: HaproxySocket,
    /// Backend and server names: HAProxy identifiers (letters, digits, `.`, `_`, `-`,
    /// `:`), so nothing in them can split a runtime API command.
    pub backend: String,
    pub stable: String,
    pub candidate: String,
    /// `router.sticky.header`, lowercase: the backend must balance on it (`balance hdr(...)`).
    pub sticky_header: Option<String>,
}

/// Where HAProxy's runtime API (`stats socket ... level admin`) listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HaproxySocket {
    /// An absolute path to a unix socket.
    Unix(String),
    /// `host:port` of a TCP stats socket (`tcp:127.0.0.1:9999` in the plan).
    Tcp(String),
}

impl fmt::Display for HaproxySocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HaproxySocket::Unix(path) => f.write_str(path),
            HaproxySocket::Tcp(addr) => write!(f, "tcp:{addr}"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct BuiltinRouter {
    pub listen: std::net::SocketAddr,
    /// Only requests for this Host match, when set (several services on one port).
    pub host: Option<String>,
    /// `http://host:port` of each instance of each version (at least one each), in
    /// the plan's order.
    pub stable: Vec<Text>,
    pub candidate: Vec<Text>,
    pub sticky: Sticky,
    /// Who may pick a version by header (testers, smoke tests); `None`, the default,
    /// lets nobody.
    pub version_override: Option<OverrideSpec>,
    pub health: Option<HealthSpec>,
    pub maintenance: MaintenanceSpec,
    pub timeouts: RouteTimeouts,
    /// `router.tls`: terminate TLS with these certificates (SNI picks one); plain
    /// HTTP when empty.
    pub tls: Vec<TlsPair>,
    pub upstreams: UpstreamsSpec,
}

/// A certificate chain and its private key: PEM files on the router's host, by
/// absolute path; where each was written in the plan, for the problems the files have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsPair {
    pub cert: String,
    pub key: String,
    pub cert_at: Location,
    pub key_at: Location,
}

/// `router.upstreams`: how the router talks to the instances.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpstreamsSpec {
    /// `https://` instances are verified against this CA (PEM; absolute path, and where
    /// it is written) instead of the system's roots.
    pub ca: Option<(String, Location)>,
    pub host: UpstreamHost,
}

/// The `Host` an instance is sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UpstreamHost {
    /// The client's (the instance serves the public name).
    #[default]
    Client,
    /// The instance's own, from its URL (a PaaS routes by it); the client's goes in
    /// `X-Forwarded-Host`.
    Instance,
}

/// `router.timeouts`: how long the router waits on an instance of this route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteTimeouts {
    pub connect: Duration,
    /// For the response head once the request is sent.
    pub response: Duration,
    /// A response body going quiet; `None` lets streams idle.
    pub idle: Option<Duration>,
}

impl Default for RouteTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(2),
            response: Duration::from_secs(30),
            idle: None,
        }
    }
}

/// `router.override`: a request whose header says `candidate` or `stable` goes to that
/// version, if its client is allowed to. At least one of `secret` and `allow`.
#[derive(Clone, Debug)]
pub struct OverrideSpec {
    /// Lowercase.
    pub header: String,
    /// Carried after the version: `candidate;<secret>`.
    pub secret: Option<Text>,
    /// Client networks (CIDR or single addresses) that may use it.
    pub allow: Vec<String>,
    /// Whether overridden requests count toward the version's gates and triggers.
    pub count: bool,
}

/// What clients see while the route is in maintenance (`maintenance: on` steps, or
/// `liftoff maintenance SERVICE on`).
#[derive(Clone, Debug)]
pub struct MaintenanceSpec {
    pub retry_after: Duration,
    /// HTML served with the 503.
    pub page: String,
    /// Client networks that go through anyway (CIDR or single addresses).
    pub allow: Vec<String>,
    /// A header that lets a request through: `(name, secret value)`.
    pub bypass_header: Option<(String, Text)>,
}

impl Default for MaintenanceSpec {
    fn default() -> Self {
        Self {
            retry_after: defaults::MAINTENANCE_RETRY_AFTER,
            page: defaults::MAINTENANCE_PAGE.to_string(),
            allow: Vec::new(),
            bypass_header: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sticky {
    /// A per-request random draw.
    None,
    Header(String),
    Cookie(String),
    ClientIp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthSpec {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
}

#[derive(Clone, Debug)]
pub struct RollbackSpec {
    /// Run after traffic is back on stable.
    pub steps: Vec<Step>,
    pub triggers: Vec<Trigger>,
    /// How often triggers are evaluated.
    pub check_every: Duration,
    /// Below this many requests in its window, a trigger on a rate or latency does not
    /// fire.
    pub min_requests: u64,
    /// How sure (one-sided, below 1) a trigger on a rate or latency must be that its
    /// condition holds before it fires: a bound at this confidence must be past the
    /// threshold, not just the value (issue 18: no rollbacks on noise).
    pub confidence: f64,
}

impl Default for RollbackSpec {
    fn default() -> Self {
        Self {
            steps: Vec::new(),
            triggers: Vec::new(),
            check_every: defaults::TRIGGER_CHECK_EVERY,
            min_requests: defaults::TRIGGER_MIN_REQUESTS,
            confidence: defaults::TRIGGER_CONFIDENCE,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Step {
    /// Given in the plan, or derived from the step (e.g. `traffic 50%`). Unique per list.
    pub name: String,
    pub kind: StepKind,
    pub location: Location,
    /// A command to run some time after this step succeeds (`after:`).
    pub after: Option<FollowUp>,
}

/// `after: { delay: 24h, run: ./stop-old.sh }`: scheduled when the step succeeds, run by
/// the daemon when due (even after the launch ended), cancelled if the launch ends
/// without succeeding.
#[derive(Clone, Debug)]
pub struct FollowUp {
    pub delay: Duration,
    pub command: Text,
    pub timeout: Duration,
}

impl Step {
    /// Whether running the step twice has the same effect as running it once. Decides
    /// what happens to a step found in flight after a crash.
    pub fn idempotent(&self) -> bool {
        match &self.kind {
            StepKind::Run(run) => run.idempotent,
            // A migration may have half-applied: a human decides.
            StepKind::Migrate(_) => false,
            // `up` converges on the plan's containers; a removal finds nothing to remove.
            StepKind::Deploy(_) | StepKind::Undeploy(_) => true,
            StepKind::Check(_)
            | StepKind::Monitor(_)
            | StepKind::Flag(_)
            | StepKind::Smoke(_)
            | StepKind::Traffic(_)
            | StepKind::Pause(_)
            | StepKind::Approve(_)
            | StepKind::Wait(_)
            | StepKind::Maintenance(_)
            | StepKind::Analyze(_) => true,
        }
    }
}

#[derive(Clone, Debug)]
pub enum StepKind {
    Run(RunStep),
    Traffic(Weight),
    Pause(Duration),
    Approve(ApproveStep),
    Wait(WaitStep),
    /// Turn the builtin router's maintenance page on (`true`) or off.
    Maintenance(bool),
    /// Evaluate gates at an interval for a while.
    Analyze(Box<AnalyzeStep>),
    /// Checklist items; NO-GO fails the step.
    Check(crate::checks::Checklist),
    /// HTTP requests with expected answers.
    Smoke(crate::checks::SmokeStep),
    /// Backup, migration command, verify queries.
    Migrate(Box<crate::checks::MigrateStep>),
    /// Post-launch checkpoints: gates judged at times after the step starts.
    Monitor(Box<MonitorStep>),
    /// Change a feature flag of the daemon's flag service.
    Flag(FlagStep),
    /// Bring up the candidate's containers with docker compose and wait until healthy.
    Deploy(Box<DeployStep>),
    /// Stop and remove what a `deploy` step started. Not written in plans: each deploy
    /// adds one to `rollback.steps`.
    Undeploy(Box<DeployStep>),
}

/// `deploy: { compose, service, project, ... }`: the candidate version of a compose
/// service, in a compose project of its own beside stable's. Its containers carry
/// labels naming the launch, the step and the attempt.
#[derive(Clone, Debug)]
pub struct DeployStep {
    /// Compose files (`-f`, merged in order), relative to the plan's directory.
    pub files: Vec<Text>,
    /// The compose service that is the launch's service.
    pub service: String,
    /// The candidate's compose project (`-p`); never stable's.
    pub project: String,
    pub project_at: Location,
    /// Replaces the service's `image` (the candidate's tag).
    pub image: Option<Text>,
    /// Added to the service's `environment`.
    pub env: Vec<(String, Text)>,
    /// How long the containers have to run and pass their healthcheck.
    pub timeout: Duration,
    /// Stable's compose project, taken down once the launch succeeds.
    pub retire: Option<Retire>,
}

/// `retire: { project, after }`: take stable's project down `after` the launch
/// succeeded (kept if it ends any other way).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retire {
    pub project: String,
    pub after: Duration,
    pub at: Location,
}

/// `monitor: { checkpoints: [15m, 1h, 24h], gates: [...] }`.
#[derive(Clone, Debug)]
pub struct MonitorStep {
    /// Offsets from the step's first start, ascending.
    pub checkpoints: Vec<Duration>,
    /// Judged at each checkpoint; none: the checkpoint reports the figures only.
    pub gates: Vec<Gate>,
    /// Each checkpoint judges this window before it.
    pub window: Duration,
    pub min_requests: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FlagStep {
    pub name: String,
    pub change: FlagSetting,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FlagSetting {
    /// Serve the flag's variant to this share of users (sticky).
    Percent(Weight),
    /// The kill switch.
    Enabled(bool),
}

#[derive(Clone, Debug)]
pub struct AnalyzeStep {
    pub duration: Duration,
    pub interval: Duration,
    pub gates: Vec<Gate>,
    /// Below this many requests in a window, a traffic-based gate is Inconclusive.
    pub min_requests: u64,
    /// Failed evaluations tolerated; one more fails the step.
    pub failure_limit: u32,
    /// Inconclusive evaluations tolerated; one more applies `on_inconclusive`.
    pub inconclusive_limit: u32,
    pub on_inconclusive: OnInconclusive,
    /// Evaluate and journal, but never fail or pause (shadow mode).
    pub dry_run: bool,
    pub compare: Option<CompareSpec>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnInconclusive {
    /// Hold the launch until a human resumes or aborts it.
    Pause,
    Fail,
}

/// `compare: stable`: judge the candidate against stable over the same window.
#[derive(Clone, Debug, PartialEq)]
pub struct CompareSpec {
    /// Candidate latency may be this much worse (0.1 = 10%).
    pub latency_tolerance: f64,
    /// Candidate error rate may exceed stable's by this much (absolute ratio).
    pub error_tolerance: f64,
    pub confidence: f64,
    pub critical_errors: bool,
    pub critical_latency: bool,
    pub pass_score: f64,
    pub marginal_score: f64,
}

impl Default for CompareSpec {
    fn default() -> Self {
        Self {
            latency_tolerance: 0.10,
            error_tolerance: 0.005,
            confidence: 0.95,
            critical_errors: true,
            critical_latency: false,
            pass_score: 75.0,
            marginal_score: 50.0,
        }
    }
}

/// A rollback trigger: watched from the first non-zero candidate weight to the end.
#[derive(Clone, Debug)]
pub struct Trigger {
    pub gate: Gate,
    pub action: TriggerAction,
}

/// A metric provider other than the builtin router.
#[derive(Clone, Debug)]
pub enum MetricsSpec {
    Prometheus { url: Text, timeout: Duration },
}

/// Something judged from numbers: a condition on the builtin router's observations, or
/// a PromQL query compared with a threshold.
#[derive(Clone, Debug)]
pub enum Gate {
    Builtin(crate::condition::Condition),
    Query(QueryGate),
}

impl Gate {
    /// As shown in status and the journal.
    pub fn text(&self) -> &str {
        match self {
            Gate::Builtin(c) => &c.text,
            Gate::Query(q) => &q.name,
        }
    }

    /// How long a trigger's condition must hold before it fires.
    pub fn sustained(&self) -> Option<Duration> {
        match self {
            Gate::Builtin(c) => c.sustained,
            Gate::Query(q) => q.sustained,
        }
    }
}

#[derive(Clone, Debug)]
pub struct QueryGate {
    pub name: String,
    /// PromQL, with `{{version}}` (`candidate` or `stable`) and `{{service}}` filled in.
    pub query: Text,
    pub version: crate::condition::Version,
    pub op: crate::condition::Op,
    pub threshold: f64,
    pub sustained: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TriggerAction {
    /// All traffic to stable first, then the rollback steps.
    Rollback,
    /// Hold the launch (traffic stays) until a human resumes or aborts it.
    Pause,
    /// Record it (and, with notifications, tell people); the launch goes on.
    Notify,
    /// Turn this feature flag off (its kill switch); the launch goes on. The seeds'
    /// first answer to a minor incident, before a rollback.
    DisableFlag(String),
}

impl TriggerAction {
    pub fn label(&self) -> &'static str {
        match self {
            TriggerAction::Rollback => "rollback",
            TriggerAction::Pause => "pause",
            TriggerAction::Notify => "notify",
            TriggerAction::DisableFlag(_) => "disable_flag",
        }
    }
}

impl StepKind {
    pub fn keyword(&self) -> &'static str {
        match self {
            StepKind::Run(_) => "run",
            StepKind::Traffic(_) => "traffic",
            StepKind::Pause(_) => "pause",
            StepKind::Approve(_) => "approve",
            StepKind::Wait(_) => "wait",
            StepKind::Maintenance(_) => "maintenance",
            StepKind::Analyze(_) => "analyze",
            StepKind::Check(_) => "check",
            StepKind::Smoke(_) => "smoke",
            StepKind::Migrate(_) => "migrate",
            StepKind::Monitor(_) => "monitor",
            StepKind::Flag(_) => "flag",
            StepKind::Deploy(_) => "deploy",
            StepKind::Undeploy(_) => "undeploy",
        }
    }
}

#[derive(Clone, Debug)]
pub struct RunStep {
    /// Run by `sh -c` with the plan's variables in its environment.
    pub command: Text,
    pub timeout: Duration,
    pub env: Vec<(String, Text)>,
    /// Working directory, relative to the plan file's directory.
    pub dir: Option<Text>,
    pub idempotent: bool,
}

#[derive(Clone, Debug)]
pub struct ApproveStep {
    pub role: String,
    /// Wall-clock time from the first moment the step started, across daemon restarts.
    pub timeout: Option<Duration>,
}

#[derive(Clone, Debug)]
pub struct WaitStep {
    pub url: Text,
    pub status: u16,
    pub consecutive: u32,
    pub interval: Duration,
    pub request_timeout: Duration,
    pub timeout: Duration,
}

pub mod defaults {
    use std::time::Duration;

    pub const RUN_TIMEOUT: Duration = Duration::from_secs(10 * 60);
    pub const TRIGGER_CHECK_EVERY: Duration = Duration::from_secs(1);
    pub const METRICS_TIMEOUT: Duration = Duration::from_secs(5);
    /// A trigger without `over` judges this window.
    pub const TRIGGER_WINDOW: Duration = Duration::from_secs(10);
    /// One failed request out of two is not a 50% error rate worth a rollback.
    pub const TRIGGER_MIN_REQUESTS: u64 = 10;
    /// 99.999%: why, with the numbers, in `liftoff-analysis`'s trigger module.
    pub const TRIGGER_CONFIDENCE: f64 = 0.99999;
    pub const ANALYZE_INTERVAL: Duration = Duration::from_secs(10);
    pub const ANALYZE_MIN_REQUESTS: u64 = 50;
    pub const ANALYZE_INCONCLUSIVE_LIMIT: u32 = 3;
    pub const ROUTER_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
    /// The header of `router.override` when it names none.
    pub const OVERRIDE_HEADER: &str = "x-liftoff-version";
    pub const MAINTENANCE_RETRY_AFTER: Duration = Duration::from_secs(300);
    pub const MAINTENANCE_PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>Down for maintenance</title></head><body><h1>Down for maintenance</h1><p>We are upgrading this service and will be back shortly.</p></body></html>\n";
    pub const HEALTH_PATH: &str = "/health";
    pub const HEALTH_INTERVAL: Duration = Duration::from_secs(2);
    pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
    pub const HEALTHY_THRESHOLD: u32 = 2;
    pub const UNHEALTHY_THRESHOLD: u32 = 3;
    pub const WAIT_STATUS: u16 = 200;
    pub const WAIT_CONSECUTIVE: u32 = 1;
    pub const WAIT_INTERVAL: Duration = Duration::from_secs(2);
    pub const WAIT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
    pub const WAIT_TIMEOUT: Duration = Duration::from_secs(5 * 60);
    /// How long a `deploy` step's containers have to become healthy.
    pub const DEPLOY_TIMEOUT: Duration = Duration::from_secs(5 * 60);
    pub const MONITOR_WINDOW: Duration = Duration::from_secs(5 * 60);
    /// The flag a `maintenance` step turns on and off, for applications to read.
    pub const MAINTENANCE_FLAG: &str = "maintenance_mode";
}
