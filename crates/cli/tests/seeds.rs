//! The five seed runbooks' example plans (examples/*.yaml), launched as written: the
//! versions are `liftoff demo-app` processes the plans start with their own scripts, the
//! router is liftoff's, the databases are the machine's PostgreSQL and Redis (and, for
//! seed 004, a real Prometheus and a TLS endpoint), and Slack, Statuspage, webhooks and
//! email go to local receivers. Each plan is promoted with a good release and rolled back
//! with a bad one, and each test checks what the launch left behind: the router's split,
//! the database, files, flags, follow-ups and messages.

mod support;

#[path = "../../notify/tests/support/mod.rs"]
mod receivers;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use receivers::{
    HttpReceiver, SmtpServer, StatuspageCall, assert_slack_shape, assert_statuspage_shape,
};
use serde_json::Value;
use support::{
    BIN, Proc, TestDb, free_port, read, redis_url, spawn, stderr, stdout, wait_http, wait_until,
};

const LIMIT: Duration = Duration::from_secs(180);
const SLACK_PATH: &str = "/services/T0SEEDS/B0SEEDS/seedslackpath";
const STATUSPAGE_KEY: &str = "sp-seeds-key-0123";

fn examples() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples"))
        .canonicalize()
        .expect("examples/")
}

/// PATH with this build's `liftoff` first: the plans' scripts run `liftoff demo-app`.
fn path_with_liftoff() -> String {
    let bin = Path::new(BIN).parent().expect("the binary's directory");
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

// --- a daemon, the stand-in services and the launch's variables --------------------

/// One launch's world: a daemon (its environment carries the demo-app knobs the plans'
/// scripts pass on), a deploy directory, the ports of stable and candidate, and the
/// plan's variables. Dropping it kills the daemon and every stand-in service the
/// scripts started, by the PIDs they recorded.
struct Site {
    work: tempfile::TempDir,
    deploy_dir: PathBuf,
    state_dir: PathBuf,
    daemon: Option<std::process::Child>,
    url: String,
    stable_port: u16,
    candidate_port: u16,
    vars: Vec<(String, String)>,
}

impl Site {
    /// `knobs`: the demo-app settings for versions the daemon's scripts start
    /// (DEMO_ERROR_RATE makes a bad release).
    fn new(knobs: &[(&str, &str)]) -> Site {
        let work = tempfile::tempdir().unwrap();
        let deploy_dir = work.path().join("deploy");
        let state_dir = work.path().join("state");
        std::fs::create_dir_all(&deploy_dir).unwrap();
        std::fs::create_dir_all(&state_dir).unwrap();
        let log = std::fs::File::create(work.path().join("daemon.log")).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--shutdown-grace", "5s"])
            .arg("--state-dir")
            .arg(&state_dir)
            .env("PATH", path_with_liftoff())
            // 5 ms per answer keeps two users' requests near 300/s: enough for 5% canaries
            // to be judged, cheap on a 2-CPU machine.
            .env("DEMO_LATENCY_MS", "5")
            .env_remove("DEMO_ERROR_RATE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in knobs {
            cmd.env(k, v);
        }
        let daemon = cmd.spawn().expect("start liftoff serve");
        let addr = state_dir.join("serve.addr");
        let started = Instant::now();
        let url = loop {
            if let Ok(s) = std::fs::read_to_string(&addr)
                && s.ends_with('\n')
            {
                break s.trim().to_string();
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the daemon did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let (stable_port, candidate_port) = (free_port(), free_port());
        let mut site = Site {
            deploy_dir: deploy_dir.clone(),
            state_dir,
            daemon: Some(daemon),
            url,
            stable_port,
            candidate_port,
            vars: Vec::new(),
            work,
        };
        site.var("STABLE_PORT", &stable_port.to_string());
        site.var("CANDIDATE_PORT", &candidate_port.to_string());
        site.var("DEPLOY_DIR", deploy_dir.to_str().unwrap());
        site
    }

    fn var(&mut self, name: &str, value: &str) {
        self.vars.push((name.to_string(), value.to_string()));
    }

    fn token(&self) -> String {
        read(&self.state_dir.join("admin.token")).trim().to_string()
    }

    /// The version users have now, started the way the plans start theirs.
    fn start_stable(&self, name: &str, version: &str) {
        let out = Command::new("sh")
            .arg(examples().join("scripts/start-version.sh"))
            .arg(&self.deploy_dir)
            .args([name, version, &self.stable_port.to_string()])
            .env("PATH", path_with_liftoff())
            .env("DEMO_LATENCY_MS", "5")
            .env_remove("DEMO_ERROR_RATE")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        wait_http(&format!("http://127.0.0.1:{}/health", self.stable_port));
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .current_dir(self.work.path())
            .env("LIFTOFF_SERVER", &self.url)
            .env("LIFTOFF_STATE_DIR", &self.state_dir)
            .env_remove("LIFTOFF_TOKEN")
            .output()
            .expect("run liftoff")
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["--output", "json"]);
        let out = self.cli(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `liftoff launch examples/PLAN`, with the plan's variables in the environment.
    fn launch(&self, plan: &str) -> String {
        let out = Command::new(BIN)
            .arg("launch")
            .arg(examples().join(plan))
            .current_dir(self.work.path())
            .env("LIFTOFF_SERVER", &self.url)
            .env("LIFTOFF_STATE_DIR", &self.state_dir)
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        assert!(out.status.success(), "launch {plan}: {}", stderr(&out));
        stdout(&out).trim().to_string()
    }

    fn status(&self, id: &str) -> Value {
        self.json(&["status", id])
    }

    fn wait_for(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let s = self.status(id);
            if done(&s) {
                return s;
            }
            assert!(
                started.elapsed() < LIMIT && s["terminal"] != true,
                "waiting for {what}; status: {s:#}\nthe daemon's log ends:\n{}",
                self.daemon_log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn daemon_log_tail(&self) -> String {
        let log = read(&self.work.path().join("daemon.log"));
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn wait_end(&self, id: &str) -> Value {
        let started = Instant::now();
        loop {
            let s = self.status(id);
            if s["terminal"] == true {
                return s;
            }
            assert!(started.elapsed() < LIMIT, "the launch never ended: {s:#}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sign the checklist's approval items, each once it is waited for.
    fn sign_checklist(&self, id: &str, roles: &[&str]) {
        for role in roles {
            self.wait_for(id, &format!("the checklist to wait for {role}"), |s| {
                s["checklist"]["waiting_for"]
                    .as_array()
                    .is_some_and(|w| w.iter().any(|r| r == role))
            });
            self.approve(id, role);
        }
    }

    /// Give an `approve` step its approval once the launch waits on it.
    fn approve_step(&self, id: &str, step: &str, role: &str) {
        self.wait_for(id, &format!("the approval of `{step}`"), |s| {
            s["status"] == "waiting-approval" && s["current_step"] == step
        });
        self.approve(id, role);
    }

    fn approve(&self, id: &str, role: &str) {
        let out = self.cli(&["approve", id, "--as", role, "--by", "seeds-e2e"]);
        assert!(out.status.success(), "approve as {role}: {}", stderr(&out));
    }

    /// Users, from the moment the router's route exists (after the checklist).
    fn load(&self, id: &str) -> Proc {
        // A route on port 0 has its port once a router has reported it.
        let s = self.wait_for(id, "the route", |s| {
            s["traffic"]["listen"]
                .as_str()
                .is_some_and(|l| !l.ends_with(":0"))
        });
        let listen = s["traffic"]["listen"].as_str().unwrap();
        spawn(Command::new(BIN).args(["load", &format!("http://{listen}/"), "--concurrency", "2"]))
    }

    /// What a user gets through the router now.
    fn through_router(&self, id: &str) -> String {
        let listen = self.status(id)["traffic"]["listen"]
            .as_str()
            .unwrap()
            .to_string();
        let out = Command::new("curl")
            .args(["-s", "-H", "X-User-Id: seeds-e2e"])
            .arg(format!("http://{listen}/inventory"))
            .output()
            .unwrap();
        stdout(&out)
    }

    fn running(&self, name: &str) -> bool {
        self.deploy_dir.join(format!("{name}.pid")).exists()
    }

    fn pid(&self, name: &str) -> i32 {
        read(&self.deploy_dir.join(format!("{name}.pid")))
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no PID file for {name}"))
    }

    fn flag(&self, name: &str) -> Value {
        self.json(&["flags", "get", name])
    }

    fn flag_history(&self, name: &str) -> Vec<Value> {
        serde_json::from_value(self.json(&["flags", "history", name])).unwrap()
    }

    fn follow_ups(&self, id: &str) -> Vec<Value> {
        serde_json::from_value(self.json(&["schedule", "list", "--launch", id])).unwrap()
    }

    /// Wait until every follow-up of the launch ran, and return them.
    fn follow_ups_done(&self, id: &str, count: usize) -> Vec<Value> {
        wait_until(LIMIT, "the follow-ups", || {
            let list = self.follow_ups(id);
            list.len() == count
                && list
                    .iter()
                    .all(|f| f["status"] != "pending" && f["status"] != "running")
        });
        let list = self.follow_ups(id);
        for f in &list {
            assert_eq!(f["status"], "succeeded", "{f:#}");
        }
        list
    }

    fn journal(&self, id: &str) -> Vec<Value> {
        let out = Command::new("curl")
            .args(["-sf", "-H"])
            .arg(format!("Authorization: Bearer {}", self.token()))
            .arg(format!("{}/api/v1/launches/{id}/journal", self.url))
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("the daemon's log ends:\n{}", self.daemon_log_tail());
        }
        if let Some(mut daemon) = self.daemon.take() {
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
        // The daemon's local router outlives it by design.
        support::kill_router(&self.state_dir);
        // The stand-in services the scripts started, by the PIDs they recorded.
        for entry in std::fs::read_dir(&self.deploy_dir).into_iter().flatten() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "pid")
                && let Ok(pid) = read(&path).trim().parse::<i32>()
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// A step of the launch's status, by name.
fn step<'s>(s: &'s Value, name: &str) -> &'s Value {
    s["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|step| step["name"] == name)
        .unwrap_or_else(|| panic!("no step `{name}`: {s:#}"))
}

/// The deployment log's text, from the launch's status.
fn deployment_log(s: &Value) -> String {
    let path = s["deployment_log"].as_str().expect("a deployment log");
    read(Path::new(path))
}

// --- PostgreSQL -----------------------------------------------------------------------

// --- notification receivers ----------------------------------------------------------

/// A Slack webhook, a JSON endpoint and a Statuspage API on one local server.
struct Receivers {
    _rt: tokio::runtime::Runtime,
    http: HttpReceiver,
}

impl Receivers {
    fn start() -> Receivers {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let http = rt.block_on(HttpReceiver::start(|r, n| {
            if r.path.ends_with("/incidents") && r.method == "POST" {
                (201, format!(r#"{{"id":"inc{n}","status":"in_progress"}}"#))
            } else {
                (200, r#"{"ok":true}"#.into())
            }
        }));
        Receivers { _rt: rt, http }
    }

    /// The plan variables pointing at them.
    fn vars(&self, site: &mut Site) {
        site.var("SLACK_WEBHOOK_URL", &self.http.url(SLACK_PATH));
        site.var("STATUSPAGE_PAGE_ID", "seedspage");
        site.var("STATUSPAGE_API_KEY", STATUSPAGE_KEY);
        site.var("STATUSPAGE_API_URL", &self.http.url(""));
        site.var("EMAIL_NOTIFICATION_ENDPOINT", &self.http.url("/notify"));
    }

    fn slack(&self) -> Vec<String> {
        self.http
            .requests()
            .iter()
            .filter(|r| r.path == SLACK_PATH)
            .map(|r| assert_slack_shape(r)["text"].as_str().unwrap().to_string())
            .collect()
    }

    /// Wait until a Slack message contains `text`.
    fn slack_says(&self, text: &str) {
        wait_until(LIMIT, &format!("Slack: {text}"), || {
            self.slack().iter().any(|t| t.contains(text))
        });
    }

    fn statuspage(&self) -> Vec<StatuspageCall> {
        self.http
            .requests()
            .iter()
            .filter(|r| r.path.starts_with("/v1/pages/"))
            .map(|r| assert_statuspage_shape(r, "seedspage", STATUSPAGE_KEY))
            .collect()
    }

    /// The statuses the maintenance (incident) went through, and the component's.
    fn statuspage_story(&self) -> (Vec<String>, Vec<String>) {
        let (mut incident, mut component) = (Vec::new(), Vec::new());
        for call in self.statuspage() {
            match call {
                StatuspageCall::OpenIncident(i) | StatuspageCall::UpdateIncident(_, i) => {
                    if let Some(status) = i["status"].as_str() {
                        incident.push(status.to_string());
                    }
                }
                StatuspageCall::Component(_, status) => component.push(status),
            }
        }
        (incident, component)
    }

    fn webhook_events(&self) -> Vec<String> {
        self.http
            .requests()
            .iter()
            .filter(|r| r.path == "/notify")
            .map(|r| r.json()["event"].as_str().unwrap().to_string())
            .collect()
    }
}

// --- the plans' variables -------------------------------------------------------------

/// The seeds' examples: on liftoff's own router, and seeds 001 and 004 on compose with
/// HAProxy and nginx (launched in tests/compose.rs).
const SEED_EXAMPLES: [&str; 7] = [
    "avatar-chat-blue-green.yaml",
    "retail-dashboard-go-live.yaml",
    "chatbot-vercel-deploy.yaml",
    "ai-discovery-blue-green.yaml",
    "hotel-agent-api.yaml",
    "retail-dashboard-compose.yaml",
    "hotel-agent-api-compose.yaml",
];

/// The `${NAME}`s a plan references (`$${NAME}` is a literal).
fn referenced_variables(plan: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = plan;
    while let Some(at) = rest.find("${") {
        let escaped = rest[..at].ends_with('$');
        rest = &rest[at + 2..];
        let end = rest.find('}').unwrap_or(0);
        if !escaped && end > 0 {
            names.insert(rest[..end].to_string());
        }
    }
    names
}

/// The names listed under the header's "# Variables" line, one group per line:
/// `#   STABLE_PORT, CANDIDATE_PORT   what they are`.
fn documented_variables(plan: &str) -> std::collections::BTreeSet<String> {
    plan.lines()
        .skip_while(|l| !l.starts_with("# Variables"))
        .skip(1)
        .map_while(|l| l.strip_prefix("#   "))
        .flat_map(|l| {
            let names = l.split("  ").next().unwrap_or_default();
            names.split(", ").map(|n| n.trim().to_string())
        })
        .collect()
}

#[test]
fn every_seed_example_lists_the_variables_it_takes_and_validates_with_them() {
    for plan in SEED_EXAMPLES {
        let text = read(&examples().join(plan));
        let (referenced, documented) = (referenced_variables(&text), documented_variables(&text));
        assert!(!referenced.is_empty(), "{plan}");
        assert_eq!(documented, referenced, "{plan}: its header's variable list");
        for name in &referenced {
            assert!(
                support::EXAMPLE_VARS.iter().any(|(n, _)| n == name),
                "{plan}: no value for {name} here"
            );
        }
    }
    let out = Command::new(BIN)
        .arg("validate")
        .args(SEED_EXAMPLES.map(|p| examples().join(p)))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(support::EXAMPLE_VARS.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    // Without the variables (CI), each plan is valid and names what it needs.
    let out = Command::new(BIN)
        .args(["validate", "--no-env", "--output", "json"])
        .args(SEED_EXAMPLES.map(|p| examples().join(p)))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    for (plan, result) in SEED_EXAMPLES.iter().zip(json.as_array().unwrap()) {
        let needed: std::collections::BTreeSet<String> = result["variables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap().to_string())
            .collect();
        let text = read(&examples().join(plan));
        assert_eq!(needed, referenced_variables(&text), "{plan}");
    }
}

// --- seed 000: AI Avatar Chat, blue-green -------------------------------------------

fn avatar_site(knobs: &[(&str, &str)]) -> Site {
    let mut site = Site::new(knobs);
    site.start_stable("green", "1.0.0");
    site.var("NODE_ENV", "production");
    let (url, token) = (site.url.clone(), site.token());
    site.var("LIFTOFF_SERVER", &url);
    site.var("LIFTOFF_TOKEN", &token);
    site
}

#[test]
fn seed_000_avatar_chat_promotes_blue_then_retires_green_and_ramps_the_held_back_flag() {
    let site = avatar_site(&[]);
    let id = site.launch("avatar-chat-blue-green.yaml");
    site.sign_checklist(&id, &["release-manager"]);
    let _users = site.load(&id);
    site.approve_step(&id, "product owner sign-off", "product-owner");
    let s = site.wait_end(&id);
    assert_eq!(s["status"], "succeeded", "{s:#}");
    assert_eq!(s["traffic"]["weight"], 100.0);
    assert!(
        site.through_router(&id).contains("hello from v1.1.0"),
        "shoppers are on blue"
    );
    let candidate = &s["traffic"]["versions"][1]["last_60s"];
    assert!(
        candidate["requests"].as_u64().unwrap() > 0,
        "blue served shoppers through the router: {candidate}"
    );

    // Phase 6: green decommissioned; §7: learning enabled for 10% later.
    let follow_ups = site.follow_ups_done(&id, 2);
    assert!(!site.running("green"));
    assert!(!port_open(site.stable_port), "green no longer listens");
    assert!(site.running("blue"));
    assert!(
        follow_ups
            .iter()
            .any(|f| f["step"] == "product owner sign-off"),
        "{follow_ups:#?}"
    );
    let flag = site.flag("enable_conversation_learning");
    assert_eq!(flag["definition"]["enabled"], true, "{flag:#}");
    assert_eq!(flag["definition"]["rollout"]["percent"], 10.0, "{flag:#}");
    let history = site.flag_history("enable_conversation_learning");
    assert_eq!(history[0]["actor"], "avatar-chat-launch", "{history:#?}");
    assert!(
        history[0]["cause"].as_str().unwrap().contains("24-48 h"),
        "{history:#?}"
    );
    assert_eq!(
        history.last().unwrap()["actor"],
        format!("launch {id}"),
        "the launch held it off first: {history:#?}"
    );

    // The runbook's logs/deployment/ file.
    let log = deployment_log(&s);
    assert!(log.contains("launch succeeded"), "{log}");
}

#[test]
fn seed_000_avatar_chat_rolls_back_when_blue_fails_its_smoke_tests() {
    let site = avatar_site(&[("DEMO_ERROR_RATE", "0.5")]);
    let id = site.launch("avatar-chat-blue-green.yaml");
    site.sign_checklist(&id, &["release-manager"]);
    let s = site.wait_end(&id);
    assert_eq!(s["status"], "rolled-back", "{s:#}");
    assert_eq!(s["traffic"]["weight"], 0.0);
    let smoke = step(&s, "blue smoke tests");
    assert_eq!(smoke["status"], "failed", "{smoke:#}");
    let failed: Vec<&Value> = smoke["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["result"] == "failed")
        .collect();
    assert!(!failed.is_empty(), "{smoke:#}");
    assert!(
        failed[0]["actual"].as_str().unwrap().contains("status 500"),
        "{smoke:#}"
    );
    assert_eq!(
        step(&s, "traffic 10%")["status"],
        "pending",
        "no shopper ever reached blue"
    );

    // The failed deployment is cleaned up; green never stopped serving.
    assert!(!site.running("blue"));
    assert!(!port_open(site.candidate_port));
    assert!(site.through_router(&id).contains("hello from v1.0.0"));
    assert!(site.follow_ups(&id).is_empty(), "nothing scheduled");
    let flag = site.cli(&["flags", "get", "enable_conversation_learning"]);
    assert!(!flag.status.success(), "the flag step never ran");
    assert!(deployment_log(&s).contains("rolled-back"), "{s:#}");
}

// --- seed 001: retail dashboard go-live ----------------------------------------------

const RETAIL_SCHEMA: &str = "
CREATE TABLE schema_migrations (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO schema_migrations VALUES (1, '001_initial');
CREATE TABLE inventory (sku text PRIMARY KEY, name text NOT NULL, quantity int NOT NULL);
INSERT INTO inventory VALUES ('SKU-1', 'umbrella', 40), ('SKU-2', 'raincoat', 12);
";

fn retail_site(knobs: &[(&str, &str)], rx: &Receivers) -> (Site, TestDb) {
    let db = TestDb::create(
        if knobs.is_empty() {
            "retail_good"
        } else {
            "retail_bad"
        },
        RETAIL_SCHEMA,
    );
    let mut site = Site::new(knobs);
    site.start_stable("blue", "1.0.0");
    site.var("DATABASE_URL", &db.url());
    site.var("REDIS_URL", &redis_url());
    site.var("API_KEY", "retail-api-key-0123");
    rx.vars(&mut site);
    (site, db)
}

const RETAIL_SIGN_OFFS: [&str; 6] = [
    "product-manager",
    "vp-engineering",
    "cto",
    "infrastructure-manager",
    "security",
    "communications",
];

/// Users, once the maintenance page is down again (during it, they only get the page).
fn retail_users(site: &Site, id: &str) -> Proc {
    site.wait_for(id, "maintenance off", |s| {
        s["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|step| step["name"] == "maintenance off" && step["status"] == "succeeded")
    });
    site.load(id)
}

/// `maintenance_mode` went on, then off (again by a rollback's `maintenance: off`), each
/// time by the launch.
fn assert_maintenance_window(site: &Site, id: &str) {
    let history = site.flag_history("maintenance_mode");
    let switches: Vec<&Value> = history
        .iter()
        .rev()
        .map(|h| {
            assert_eq!(h["actor"], format!("launch {id}"), "{h:#}");
            &h["after"]["enabled"]
        })
        .collect();
    assert!(switches.len() >= 2, "{history:#?}");
    assert_eq!(switches[0], true, "{history:#?}");
    assert!(switches[1..].iter().all(|e| *e == false), "{history:#?}");
}

#[test]
fn seed_001_retail_dashboard_goes_live_through_maintenance_migration_and_canaries() {
    let rx = Receivers::start();
    let (site, db) = retail_site(&[], &rx);
    let id = site.launch("retail-dashboard-go-live.yaml");
    site.sign_checklist(&id, &RETAIL_SIGN_OFFS);
    let _users = retail_users(&site, &id);
    let s = site.wait_end(&id);
    assert_eq!(s["status"], "succeeded", "{s:#}");
    assert_eq!(s["traffic"]["weight"], 100.0);
    assert_eq!(s["traffic"]["maintenance"], false);
    assert!(site.through_router(&id).contains("hello from v2.0.0"));

    // The migration, and the backup taken before it.
    assert_eq!(db.query("select max(id) from schema_migrations"), "2");
    assert_eq!(
        db.query("select count(*) from inventory where reorder_point = 0"),
        "2"
    );
    assert_eq!(db.query("select count(*) from stock_alerts"), "0");
    let backup = &step(&s, "database migrations")["backup"];
    assert!(
        Path::new(backup["path"].as_str().unwrap()).exists(),
        "{backup}"
    );

    // The maintenance window, the feature flag, the canaries' verdicts, the checkpoints.
    assert_maintenance_window(&site, &id);
    assert_eq!(site.flag("inventory_v2")["definition"]["enabled"], true);
    for gate in ["5% go/no-go", "25% go/no-go"] {
        assert_eq!(step(&s, gate)["status"], "succeeded");
    }
    let checkpoints = site
        .journal(&id)
        .iter()
        .filter(|e| e["kind"] == "checkpoint")
        .count();
    assert_eq!(checkpoints, 3);

    // The war room and the status page heard about it.
    rx.slack_says("launch retail-dashboard-2.0 complete");
    let slack = rx.slack();
    assert!(
        slack[0].contains("launch retail-dashboard-2.0 started"),
        "{slack:#?}"
    );
    assert!(
        slack.iter().any(|t| t.contains("checklist: GO")),
        "{slack:#?}"
    );
    assert_eq!(
        slack.iter().filter(|t| t.contains("checkpoint")).count(),
        3,
        "{slack:#?}"
    );
    wait_until(LIMIT, "the status page completed", || {
        rx.statuspage_story()
            .0
            .last()
            .is_some_and(|s| s == "completed")
    });
    assert_eq!(rx.statuspage_story().0[0], "in_progress");

    // "After 24 hours, remove Blue."
    site.follow_ups_done(&id, 1);
    assert!(!site.running("blue"));
    assert!(!port_open(site.stable_port));
}

#[test]
fn seed_001_retail_dashboard_kills_the_feature_flag_then_rolls_back_a_failing_canary() {
    let rx = Receivers::start();
    let (site, db) = retail_site(&[("DEMO_ERROR_RATE", "0.3")], &rx);
    let id = site.launch("retail-dashboard-go-live.yaml");
    site.sign_checklist(&id, &RETAIL_SIGN_OFFS);
    let _users = retail_users(&site, &id);
    let s = site.wait_end(&id);
    assert_eq!(s["status"], "rolled-back", "{s:#}");
    assert_eq!(s["traffic"]["weight"], 0.0);
    assert_eq!(s["traffic"]["maintenance"], false);
    assert!(site.through_router(&id).contains("hello from v1.0.0"));
    assert_eq!(step(&s, "traffic 25%")["status"], "pending", "caught at 5%");

    // Level 1 first: the feature flag off, with the trigger and its numbers as the cause.
    let flag = site.flag("inventory_v2");
    assert_eq!(flag["definition"]["enabled"], false, "{flag:#}");
    let kill = &site.flag_history("inventory_v2")[0];
    assert_eq!(kill["actor"], format!("launch {id}"), "{kill:#}");
    assert!(
        kill["cause"]
            .as_str()
            .unwrap()
            .starts_with("trigger `error_rate > 1% over 2s` fired: candidate error_rate"),
        "{kill:#}"
    );
    assert_maintenance_window(&site, &id);

    // The additive migration stays (blue runs on it); nothing is scheduled.
    assert_eq!(db.query("select max(id) from schema_migrations"), "2");
    assert!(site.follow_ups(&id).is_empty());

    rx.slack_says("ROLLBACK COMPLETE");
    assert!(
        rx.slack().iter().any(|t| t.contains("ROLLBACK INITIATED")),
        "{:#?}",
        rx.slack()
    );
    wait_until(LIMIT, "the status page completed", || {
        rx.statuspage_story()
            .0
            .last()
            .is_some_and(|s| s == "completed")
    });
}

// --- seed 002: AI chatbot on Vercel ---------------------------------------------------

const CHATBOT_SCHEMA: &str = "
CREATE TABLE schema_version (version text NOT NULL);
INSERT INTO schema_version VALUES ('6.4.0');
CREATE TABLE conversations (id serial PRIMARY KEY, shop text NOT NULL, messages int NOT NULL);
INSERT INTO conversations (shop, messages) VALUES ('north', 12), ('south', 3);
";

const CHATBOT_COLUMNS: &str = "SELECT table_name || '.' || column_name FROM information_schema.columns \
     WHERE table_schema = 'public' ORDER BY 1";

fn chatbot_site(name: &str) -> (Site, TestDb) {
    let db = TestDb::create(name, CHATBOT_SCHEMA);
    let mut site = Site::new(&[]);
    site.start_stable("deployment-6.4.0", "6.4.0");
    site.var("DATABASE_URL", &db.url());
    (site, db)
}

/// The runbook's execution log, docs/status/PHASE65_DEPLOYMENT_LOG.md, from the report.
fn execution_log(site: &Site, id: &str) -> String {
    let file = site
        .work
        .path()
        .join("docs/status/PHASE65_DEPLOYMENT_LOG.md");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let out = site.cli(&[
        "report",
        id,
        "--format",
        "md",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    read(&file)
}

#[test]
fn seed_002_chatbot_migrates_deploys_and_promotes_all_at_once() {
    let (site, db) = chatbot_site("chatbot_good");
    let id = site.launch("chatbot-vercel-deploy.yaml");
    site.sign_checklist(&id, &["deployment-lead", "qa-lead"]);
    let _users = site.load(&id);
    site.approve_step(&id, "user acceptance", "product");
    let s = site.wait_end(&id);
    assert_eq!(s["status"], "succeeded", "{s:#}");
    assert_eq!(s["traffic"]["weight"], 100.0);
    assert!(site.through_router(&id).contains("hello from v6.5.0"));
    let weights: Vec<&str> = s["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|step| step["kind"] == "traffic")
        .map(|step| step["name"].as_str().unwrap())
        .collect();
    assert_eq!(weights, ["promote to production"], "no split: all at once");

    assert_eq!(db.query("select version from schema_version"), "6.5.0");
    assert_eq!(
        db.query("select string_agg(model, ',' order by id) from conversations"),
        "gpt-4o-mini,gpt-4o-mini"
    );
    let log = execution_log(&site, &id);
    assert!(log.contains("succeeded"), "{log}");
    assert!(log.contains("database migration"), "{log}");
    assert!(log.contains("user acceptance"), "{log}");
}

#[test]
fn seed_002_chatbot_rolls_back_and_restores_the_database_on_post_deployment_errors() {
    let (site, db) = chatbot_site("chatbot_bad");
    let (columns, rows) = (
        db.query(CHATBOT_COLUMNS),
        db.query("select string_agg(shop || messages, ',' order by id) from conversations"),
    );
    let id = site.launch("chatbot-vercel-deploy.yaml");
    site.sign_checklist(&id, &["deployment-lead", "qa-lead"]);
    let _users = site.load(&id);
    // A problem only production traffic finds, once the domain points at the new deployment.
    site.wait_for(&id, "the promotion", |s| s["traffic"]["weight"] == 100.0);
    support::set_error_rate(site.candidate_port, "0.3");
    let s = site.wait_end(&id);
    assert_eq!(s["status"], "rolled-back", "{s:#}");
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("error_rate > 1% over 2s"),
        "P1: {s:#}"
    );
    assert_eq!(s["traffic"]["weight"], 0.0);
    assert!(site.through_router(&id).contains("hello from v6.4.0"));

    // Zero data loss: the schema and the rows as they were before the migration.
    assert_eq!(db.query("select version from schema_version"), "6.4.0");
    assert_eq!(db.query(CHATBOT_COLUMNS), columns);
    assert_eq!(
        db.query("select string_agg(shop || messages, ',' order by id) from conversations"),
        rows
    );
    let rollback = s["rollback"].as_array().unwrap();
    let restore = rollback.iter().find(|r| r["kind"] == "restore").unwrap();
    assert_eq!(restore["status"], "succeeded", "{restore:#}");
    assert!(
        rollback
            .iter()
            .any(|r| r["name"] == "previous deployment healthy" && r["status"] == "succeeded"),
        "{rollback:#?}"
    );
    let log = execution_log(&site, &id);
    assert!(log.contains("error_rate > 1% over 2s"), "{log}");
}

// --- seed 003: AI Discovery, blue-green on GCP ---------------------------------------

fn discovery_site(rx: &Receivers) -> Site {
    let mut site = Site::new(&[]);
    site.start_stable("gateway-blue", "0.9.0");
    let key = site.work.path().join("service-account.json");
    std::fs::write(&key, r#"{"type": "service_account"}"#).unwrap();
    site.var("GOOGLE_APPLICATION_CREDENTIALS", key.to_str().unwrap());
    rx.vars(&mut site);
    site
}

fn widget(site: &Site) -> PathBuf {
    site.deploy_dir
        .join("cdn/widgets/html/latest/js/varai-widget.min.js")
}

#[test]
fn seed_003_ai_discovery_switches_the_gateway_publishes_the_widget_and_cleans_up() {
    let rx = Receivers::start();
    let site = discovery_site(&rx);
    let id = site.launch("ai-discovery-blue-green.yaml");
    site.sign_checklist(&id, &["security"]);
    let _users = site.load(&id);
    site.approve_step(&id, "production approval", "release-manager");
    let s = site.wait_end(&id);
    assert_eq!(s["status"], "succeeded", "{s:#}");
    assert_eq!(s["traffic"]["weight"], 100.0);
    assert!(site.through_router(&id).contains("hello from v1.0.0"));
    assert_eq!(read(&widget(&site)), "/* varai-widget 1.0.0 */\n");

    site.follow_ups_done(&id, 1);
    assert!(!site.running("gateway-blue"), "old version cleaned up");
    assert!(!port_open(site.stable_port));

    rx.slack_says("launch ai-discovery-gateway-1.0.0 complete");
    let slack = rx.slack();
    assert!(
        slack
            .iter()
            .any(|t| t.contains("approval needed for production approval")),
        "{slack:#?}"
    );
    assert_eq!(
        slack.iter().filter(|t| t.contains("checkpoint")).count(),
        2,
        "{slack:#?}"
    );
    wait_until(LIMIT, "the email endpoint's success notice", || {
        rx.webhook_events().contains(&"succeeded".to_string())
    });
    assert_eq!(rx.webhook_events(), ["launch_started", "succeeded"]);
    let (incident, component) = rx.statuspage_story();
    assert_eq!(incident, ["in_progress", "completed"]);
    assert_eq!(component, ["operational"]);
}

#[test]
fn seed_003_ai_discovery_rolls_back_when_the_new_gateway_fails_three_health_checks() {
    let rx = Receivers::start();
    let site = discovery_site(&rx);
    let id = site.launch("ai-discovery-blue-green.yaml");
    site.sign_checklist(&id, &["security"]);
    let _users = site.load(&id);
    site.approve_step(&id, "production approval", "release-manager");
    // The new gateway crashes under production traffic.
    site.wait_for(&id, "the switch", |s| s["traffic"]["weight"] == 100.0);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(site.pid("gateway-green")),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let s = site.wait_end(&id);
    assert_eq!(s["status"], "rolled-back", "{s:#}");
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("health_failures >= 3"),
        "{s:#}"
    );
    assert_eq!(s["traffic"]["weight"], 0.0);
    assert!(site.through_router(&id).contains("hello from v0.9.0"));
    assert!(
        !widget(&site).exists(),
        "no widget published for a failed release"
    );
    assert!(
        !site.running("gateway-green"),
        "the failed revision removed"
    );
    assert!(site.follow_ups(&id).is_empty());

    rx.slack_says("ROLLBACK COMPLETE");
    let slack = rx.slack();
    let started = slack
        .iter()
        .find(|t| t.contains("ROLLBACK INITIATED"))
        .unwrap_or_else(|| panic!("{slack:#?}"));
    assert!(started.contains("health_failures"), "{started}");
    wait_until(LIMIT, "the email endpoint's rollback notice", || {
        rx.webhook_events()
            .contains(&"rollback_completed".to_string())
    });
    assert_eq!(
        rx.webhook_events(),
        ["launch_started", "rollback_started", "rollback_completed"]
    );
    let (incident, component) = rx.statuspage_story();
    assert_eq!(incident.last().map(String::as_str), Some("completed"));
    assert_eq!(component, ["degraded_performance", "operational"]);
}

// --- seed 004: Agente Hotelero IA -----------------------------------------------------

const HOTEL_SCHEMA: &str = "
CREATE TABLE alembic_version (version_num text PRIMARY KEY);
INSERT INTO alembic_version VALUES ('abc123');
CREATE TABLE users (id serial PRIMARY KEY, phone text NOT NULL);
CREATE TABLE sessions (id serial PRIMARY KEY, user_id int NOT NULL REFERENCES users (id));
INSERT INTO users (phone) VALUES ('+34600000001'), ('+34600000002');
INSERT INTO sessions (user_id) VALUES (1), (1), (2);
";

/// A TLS endpoint with a certificate for 127.0.0.1 from a test CA: (process, address, CA file).
fn tls_endpoint(dir: &Path) -> (Proc, String, PathBuf) {
    let (ca, cert, key) = receivers::test_certificates();
    let (ca_file, cert_file, key_file) = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&ca_file, ca).unwrap();
    std::fs::write(&cert_file, cert).unwrap();
    std::fs::write(&key_file, key).unwrap();
    const SERVER: &str = r#"
import socket, ssl, sys
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
while True:
    conn, _ = listener.accept()
    try:
        context.wrap_socket(conn, server_side=True).close()
    except (ssl.SSLError, OSError):
        conn.close()
"#;
    let mut child = Command::new("python3")
        .args(["-c", SERVER])
        .arg(&cert_file)
        .arg(&key_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().parse().expect("the TLS endpoint's port");
    (Proc(child), format!("127.0.0.1:{port}"), ca_file)
}

/// Prometheus scraping the daemon's router metrics as job `agente-hotel-api`, once it has.
fn prometheus(dir: &Path, daemon_url: &str) -> (Proc, String) {
    let port = free_port();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{ scrape_interval: 1s }}\nscrape_configs:\n  - job_name: agente-hotel-api\n    static_configs: [{{ targets: ['{}'] }}]\n",
            daemon_url.trim_start_matches("http://")
        ),
    )
    .unwrap();
    let p = spawn(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}")),
    );
    let url = format!("http://127.0.0.1:{port}");
    wait_http(&format!("{url}/-/ready"));
    wait_until(LIMIT, "Prometheus's first scrape", || {
        let out = Command::new("curl")
            .args(["-s", &format!("{url}/api/v1/query?query=up")])
            .output()
            .unwrap();
        stdout(&out).contains(r#""1"]"#)
    });
    (p, url)
}

struct Hotel {
    site: Site,
    db: TestDb,
    rx: Receivers,
    smtp: SmtpServer,
    _tls: Proc,
    _prometheus: Proc,
    _dir: tempfile::TempDir,
}

fn hotel(name: &str) -> Hotel {
    let db = TestDb::create(name, HOTEL_SCHEMA);
    let rx = Receivers::start();
    let smtp = SmtpServer::start(None, None);
    let dir = tempfile::tempdir().unwrap();
    let mut site = Site::new(&[]);
    site.start_stable("agente-api-blue", "1.0.0");
    let (tls, tls_addr, ca_file) = tls_endpoint(dir.path());
    let (prom, prom_url) = prometheus(dir.path(), &site.url);
    site.var("DATABASE_URL", &db.url());
    site.var("REDIS_URL", &redis_url());
    site.var("PROMETHEUS_URL", &prom_url);
    site.var("API_TLS_ADDR", &tls_addr);
    site.var("TLS_CA_FILE", ca_file.to_str().unwrap());
    site.var("SMTP_RELAY", &format!("smtp://127.0.0.1:{}", smtp.port));
    rx.vars(&mut site);
    Hotel {
        site,
        db,
        rx,
        smtp,
        _tls: tls,
        _prometheus: prom,
        _dir: dir,
    }
}

/// The subjects of the stakeholder emails received, once there are `count`.
fn emails(smtp: &SmtpServer, count: usize) -> Vec<Value> {
    wait_until(LIMIT, "the stakeholder emails", || {
        smtp.messages().len() >= count
    });
    let mails = smtp.messages();
    for m in &mails {
        assert_eq!(
            m["to"].as_array().unwrap().len(),
            3,
            "product, customer success, support: {m}"
        );
    }
    mails
}

#[test]
fn seed_004_hotel_agent_api_cuts_over_validates_on_promql_and_hands_off_at_t_plus_30() {
    let h = hotel("hotel_good");
    let site = &h.site;
    let id = site.launch("hotel-agent-api.yaml");
    site.sign_checklist(&id, &["launch-commander"]);
    let _users = site.load(&id);
    site.approve_step(&id, "T+30 GO/ABORT", "launch-commander");
    let s = site.wait_end(&id);
    assert_eq!(s["status"], "succeeded", "{s:#}");
    assert_eq!(s["traffic"]["weight"], 100.0);
    assert!(site.through_router(&id).contains("hello from v1.1.0"));
    let checks = s["checklist"]["checks"].as_array().unwrap();
    assert!(
        checks.iter().all(|c| c["result"] == "passed"),
        "{checks:#?}"
    );
    assert!(
        checks[0]["evidence"]
            .as_str()
            .unwrap()
            .contains("expires in"),
        "the certificate's expiry: {checks:#?}"
    );

    // The migration, and the PromQL gates that passed the T+15 validation.
    assert_eq!(db_version(&h.db), "ghi789");
    assert_eq!(h.db.query("select count(*) from user_preferences"), "0");
    let promql: Vec<&Value> = s["evaluations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["step"] == "T+15 initial validation" && e["verdict"] == "successful")
        .collect();
    assert!(
        promql.iter().any(|e| e["subject"] == "P95 latency < 1s"),
        "{:#}",
        s["evaluations"]
    );

    // T+60 handoff: the status page operational, the stakeholders told with the numbers.
    let mails = emails(&h.smtp, 2);
    assert_eq!(mails[0]["subject"], "Production Launch - agente-hotel-api");
    assert_eq!(
        mails[1]["subject"],
        "Production Launch Complete - agente-hotel-api"
    );
    assert!(
        mails[1]["body"]
            .as_str()
            .unwrap()
            .contains(" req/s, 0.00% errors"),
        "{}",
        mails[1]
    );
    h.rx.slack_says("launch agente-hotel-api-1.1.0 complete");
    wait_until(LIMIT, "the status page", || {
        h.rx.statuspage_story().1 == ["operational"]
    });

    // The old version retired once the launch is done.
    site.follow_ups_done(&id, 1);
    assert!(!site.running("agente-api-blue"));
}

fn db_version(db: &TestDb) -> String {
    db.query("select version_num from alembic_version")
}

#[test]
fn seed_004_hotel_agent_api_rolls_back_restores_the_dump_and_tells_everyone() {
    let h = hotel("hotel_bad");
    let site = &h.site;
    let columns = "SELECT table_name || '.' || column_name FROM information_schema.columns \
         WHERE table_schema = 'public' ORDER BY 1";
    let before = h.db.query(columns);
    let id = site.launch("hotel-agent-api.yaml");
    site.sign_checklist(&id, &["launch-commander"]);
    let _users = site.load(&id);
    // Errors start after the cutover, during the T+15 validation.
    site.wait_for(&id, "the cutover", |s| s["traffic"]["weight"] == 100.0);
    support::set_error_rate(site.candidate_port, "0.3");
    let s = site.wait_end(&id);
    assert_eq!(s["status"], "rolled-back", "{s:#}");
    assert_eq!(s["traffic"]["weight"], 0.0);
    assert!(site.through_router(&id).contains("hello from v1.0.0"));
    assert_eq!(
        step(&s, "T+30 GO/ABORT")["status"],
        "pending",
        "caught before T+30"
    );

    // The pre-migration dump restored, then the old version validated.
    assert_eq!(db_version(&h.db), "abc123");
    assert_eq!(h.db.query(columns), before);
    assert_eq!(h.db.query("select count(*) from sessions"), "3");
    let rollback = s["rollback"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> = rollback
        .iter()
        .map(|r| (r["kind"].as_str().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("weight", "succeeded"),
            ("restore", "succeeded"),
            ("check", "succeeded"),
            ("run", "succeeded")
        ],
        "{rollback:#?}"
    );
    assert!(!site.running("agente-api-green"));
    assert!(site.follow_ups(&id).is_empty());

    // Announced: Slack, the stakeholders, the status page.
    h.rx.slack_says("ROLLBACK COMPLETE");
    let mails = emails(&h.smtp, 2);
    assert_eq!(
        mails[1]["subject"],
        "Issue detected, service restored - agente-hotel-api"
    );
    assert!(
        mails[1]["body"].as_str().unwrap().contains("Reason: "),
        "{}",
        mails[1]
    );
    wait_until(LIMIT, "the status page", || {
        h.rx.statuspage_story().1 == ["degraded_performance", "operational"]
    });
}
