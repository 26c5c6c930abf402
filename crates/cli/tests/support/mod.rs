//! Runs the real `liftoff` binary: a daemon on port 0 in a temp state dir, stopped by
//! PID, and CLI invocations against it.
#![allow(dead_code)]
pub mod docker;
pub mod load;
pub mod nginx;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_liftoff");

pub struct Daemon {
    child: Option<Child>,
    /// The local router when the daemon started (the state directory may be gone by
    /// the time this is dropped).
    router: Option<i32>,
    pub state_dir: PathBuf,
    pub url: String,
}

impl Daemon {
    pub fn start(state_dir: &Path) -> Daemon {
        Daemon::start_with(state_dir, &[], None)
    }

    /// Start with extra environment (settings such as `LIFTOFF_API_MAX_CONNECTIONS`;
    /// a release without them ignores them) and, if given, this many open files at most
    /// (`ulimit -n`, soft and hard).
    pub fn start_with(state_dir: &Path, env: &[(&str, &str)], open_files: Option<u32>) -> Daemon {
        let addr_file = state_dir.join("serve.addr");
        let _ = std::fs::remove_file(&addr_file);
        let child = serve_command(state_dir, env, open_files)
            .stdout(Stdio::null())
            .stderr(daemon_log(state_dir))
            .spawn()
            .expect("start liftoff serve");
        let started = Instant::now();
        let url = loop {
            if let Ok(s) = std::fs::read_to_string(&addr_file)
                && s.ends_with('\n')
            {
                break s.trim().to_string();
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "daemon did not start; log:\n{}",
                std::fs::read_to_string(state_dir.join("daemon.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        // Ready when its local router reports to it: until then it does not know
        // where a route on port 0 listens, nor what the router saw.
        wait_until(
            Duration::from_secs(10),
            "the local router to report",
            || {
                Command::new("curl")
                    .args(["-sf", &format!("{url}/api/v1/routers")])
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("\"missing\":false"))
            },
        );
        Daemon {
            child: Some(child),
            router: router_pid(state_dir),
            state_dir: state_dir.to_path_buf(),
            url,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    /// kill -9, and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a graceful exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        child.wait().unwrap()
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.state_dir.join("admin.token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// Run the CLI against this daemon, from `cwd`.
    pub fn cli(&self, cwd: &Path, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .current_dir(cwd)
            .env("LIFTOFF_SERVER", &self.url)
            .env("LIFTOFF_STATE_DIR", &self.state_dir)
            .env_remove("LIFTOFF_TOKEN")
            .output()
            .expect("run liftoff")
    }

    /// Run the CLI, which must succeed: its standard output.
    pub fn cli_ok(&self, cwd: &Path, args: &[&str]) -> String {
        let out = self.cli(cwd, args);
        assert!(
            out.status.success(),
            "liftoff {}: {}",
            args.join(" "),
            stderr(&out)
        );
        stdout(&out)
    }

    /// The daemon's `/metrics`.
    pub fn metrics(&self) -> String {
        http("GET", &format!("{}/metrics", self.url), &[], None).body
    }

    /// Wait until the launch, held at an `approve: { role: sre }`, has journaled a traffic
    /// sample (one every 2 s), approve it, wait until it succeeded: its report as JSON
    /// and as Markdown.
    pub fn approve_and_report(&self, cwd: &Path, id: &str) -> (serde_json::Value, String) {
        wait_until(Duration::from_secs(10), "a traffic sample", || {
            self.journal(id).iter().any(|r| r["kind"] == "sampled")
        });
        self.cli_ok(cwd, &["approve", id, "--as", "sre"]);
        let s = self.wait_for(cwd, id, Duration::from_secs(15), |s| s["terminal"] == true);
        assert_eq!(s["status"], "succeeded", "{s:#}");
        let json = self.cli_ok(cwd, &["report", id, "--format", "json"]);
        let markdown = self.cli_ok(cwd, &["report", id]);
        (serde_json::from_str(&json).unwrap(), markdown)
    }

    pub fn status_json(&self, cwd: &Path, id: &str) -> serde_json::Value {
        let out = self.cli(cwd, &["status", id, "--output", "json"]);
        assert!(
            out.status.success(),
            "status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The launch's journal (`seq`, `at`, `kind`, `summary` per record), through the API.
    pub fn journal(&self, id: &str) -> Vec<serde_json::Value> {
        let out = Command::new("curl")
            .args(["-sf", "-H"])
            .arg(format!("Authorization: Bearer {}", self.token()))
            .arg(format!("{}/api/v1/launches/{id}/journal", self.url))
            .output()
            .expect("curl");
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    }

    /// Poll until the launch has ended, or panic after `limit`: its last status.
    pub fn ended(&self, cwd: &Path, id: &str, limit: Duration) -> serde_json::Value {
        self.wait_for(cwd, id, limit, |s| s["terminal"] == true)
    }

    /// Poll until the launch's status satisfies `done`, or panic after `limit`.
    pub fn wait_for(
        &self,
        cwd: &Path,
        id: &str,
        limit: Duration,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let started = Instant::now();
        loop {
            let s = self.status_json(cwd, id);
            if done(&s) {
                return s;
            }
            assert!(
                started.elapsed() < limit,
                "timed out waiting; last status: {s:#}"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
        // The router outlives a daemon on purpose; the last daemon of a state
        // directory takes it along when the test ends.
        if !self.state_dir.exists() {
            // Its directory removed first: the router recorded at start goes.
            if let Some(pid) = self.router {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        } else if !daemon_running(&self.state_dir) {
            kill_router(&self.state_dir);
        }
    }
}

/// Whether a `liftoff serve` holds `state_dir`'s lock.
pub fn daemon_running(state_dir: &Path) -> bool {
    std::fs::File::open(state_dir.join("lock")).is_ok_and(|f| f.try_lock_shared().is_err())
}

/// The PID of the router running for `dir` (a router's own state directory), if any.
pub fn router_pid_in(dir: &Path) -> Option<i32> {
    let path = dir.join("lock");
    let f = std::fs::File::open(&path).ok()?;
    if f.try_lock_shared().is_ok() {
        return None;
    }
    std::fs::read_to_string(&path).ok()?.trim().parse().ok()
}

/// The local router of a daemon's state directory.
pub fn router_pid(state_dir: &Path) -> Option<i32> {
    router_pid_in(&state_dir.join("router"))
}

/// kill -9 the local router of `state_dir` and wait until it is gone.
pub fn kill_router(state_dir: &Path) {
    kill_router_in(&state_dir.join("router"));
}

pub fn kill_router_in(dir: &Path) {
    if let Some(pid) = router_pid_in(dir) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let started = Instant::now();
        while router_pid_in(dir).is_some() && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// `liftoff serve` on port 0 with a 5 s grace, in `state_dir`.
fn serve_command(state_dir: &Path, env: &[(&str, &str)], open_files: Option<u32>) -> Command {
    std::fs::create_dir_all(state_dir).unwrap();
    let mut cmd = match open_files {
        Some(n) => {
            let mut sh = Command::new("sh");
            sh.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\""), BIN]);
            sh
        }
        None => Command::new(BIN),
    };
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--shutdown-grace",
        "5s",
        "--state-dir",
    ])
    .arg(state_dir)
    .envs(env.iter().copied())
    .stdin(Stdio::null());
    cmd
}

fn daemon_log(state_dir: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(state_dir.join("daemon.log"))
        .unwrap()
}

/// Run `liftoff serve` where it must refuse to start: its exit status and what it
/// printed. Panics (after stopping it) if it is still running after 20 s.
pub fn serve_refused(state_dir: &Path) -> (std::process::ExitStatus, String) {
    let mut child = serve_command(state_dir, &[], None)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start liftoff serve");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "liftoff serve started although it must not; it said:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A working directory with a weight-recording router script.
pub fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("set-weight.sh");
    std::fs::write(&script, "#!/bin/sh\necho \"$1\" >> weights.log\n").unwrap();
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).unwrap();
    dir
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A child process killed and reaped when dropped.
pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Start `cmd` with its output discarded, owned by a [`Proc`].
pub fn spawn(cmd: &mut Command) -> Proc {
    Proc(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// `liftoff load` against `url` from 5,000 sticky users over `concurrency` connections,
/// until the returned process is dropped.
pub fn load_users(url: &str, concurrency: u32) -> Proc {
    spawn(Command::new(BIN).args([
        "load",
        url,
        "--concurrency",
        &concurrency.to_string(),
        "--users",
        "5000",
    ]))
}

/// Wait until `url` answers 200.
pub fn wait_http(url: &str) {
    let started = Instant::now();
    loop {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", url])
            .output()
            .unwrap();
        if out.stdout == b"200" {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{url} never answered 200"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `liftoff demo-app` of `version` on a free port, ready.
pub fn demo_app(version: &str) -> (Proc, u16) {
    let port = free_port();
    let p = spawn(Command::new(BIN).args([
        "demo-app",
        "--port",
        &port.to_string(),
        "--version",
        version,
    ]));
    wait_http(&format!("http://127.0.0.1:{port}/health"));
    (p, port)
}

/// Make a running demo-app fail this share of its requests.
pub fn set_error_rate(port: u16, rate: &str) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-X",
            "PUT",
            "-d",
            rate,
            &format!("http://127.0.0.1:{port}/_demo/error-rate"),
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("error rate"),
        "{out:?}"
    );
}

/// An HTTP answer, as `curl -i` printed it.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// A header's value (the name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// One request with curl: `headers` as `Name: value`; a body is sent with `-d`, which
/// (like the seed runbooks' calls) says `application/x-www-form-urlencoded` unless a
/// Content-Type header is given.
pub fn http(method: &str, url: &str, headers: &[&str], body: Option<&str>) -> Reply {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-i", "-X", method, url]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(b) = body {
        cmd.args(["--data-binary", b]);
    }
    let out = cmd.output().expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer from {method} {url}: {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

/// Poll `done` until it holds, or panic naming `what` after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

// --- PostgreSQL and Redis (the machine's; `LIFTOFF_TEST_PG_URL` / `_REDIS_URL` move them) ---

/// The URL of database `db` on the test PostgreSQL server.
pub fn pg_url(db: &str) -> String {
    let base = std::env::var("LIFTOFF_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    match base.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{db}"),
        None => base,
    }
}

pub fn redis_url() -> String {
    std::env::var("LIFTOFF_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Run `sql` with psql; its unaligned output, trimmed. Panics on an SQL error.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            url,
            "-c",
            sql,
        ])
        .output()
        .expect("psql");
    assert!(out.status.success(), "psql {sql}: {}", stderr(&out));
    stdout(&out).trim().to_string()
}

/// A database of its own with `schema` applied, dropped at the end.
pub struct TestDb {
    name: String,
}

impl TestDb {
    pub fn create(name: &str, schema: &str) -> TestDb {
        let name = format!("liftoff_test_{name}_{}", std::process::id());
        let admin = pg_url("postgres");
        psql(
            &admin,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
        psql(&admin, &format!("CREATE DATABASE {name}"));
        let db = TestDb { name };
        if !schema.is_empty() {
            psql(&db.url(), schema);
        }
        db
    }

    pub fn url(&self) -> String {
        pg_url(&self.name)
    }

    pub fn query(&self, sql: &str) -> String {
        psql(&self.url(), sql)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &pg_url("postgres"),
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

/// Values for the `${VARIABLES}` the seed examples take from whoever launches them
/// (e2e.rs validates every example with them; `seeds.rs` checks each plan lists exactly the ones it uses).
pub const EXAMPLE_VARS: &[(&str, &str)] = &[
    ("STABLE_PORT", "9000"),
    ("CANDIDATE_PORT", "9001"),
    ("DEPLOY_DIR", "/var/run/liftoff-examples"),
    ("NODE_ENV", "production"),
    ("LIFTOFF_SERVER", "http://127.0.0.1:7070"),
    ("LIFTOFF_TOKEN", "example-admin-token"),
    ("DATABASE_URL", "postgres://app@127.0.0.1:5432/app"),
    ("REDIS_URL", "redis://127.0.0.1:6379"),
    ("API_KEY", "example-api-key"),
    (
        "SLACK_WEBHOOK_URL",
        "https://hooks.slack.com/services/T000/B000/XXXX",
    ),
    ("STATUSPAGE_PAGE_ID", "examplepage"),
    ("STATUSPAGE_API_KEY", "example-statuspage-key"),
    ("STATUSPAGE_API_URL", "https://api.statuspage.io"),
    (
        "GOOGLE_APPLICATION_CREDENTIALS",
        "/etc/gcp/service-account.json",
    ),
    (
        "EMAIL_NOTIFICATION_ENDPOINT",
        "https://api.example.com/notify",
    ),
    ("PROMETHEUS_URL", "http://127.0.0.1:9090"),
    ("API_TLS_ADDR", "api.example.com:443"),
    ("TLS_CA_FILE", "/etc/ssl/certs/ca-certificates.crt"),
    ("SMTP_RELAY", "smtp://localhost:25"),
    ("VERSION", "2.0.0"),
    ("HAPROXY_SOCKET", "/run/haproxy/admin.sock"),
    ("NGINX_INCLUDE", "/etc/nginx/liftoff/agente-hotel-api.conf"),
    (
        "NGINX_ACCESS_LOG",
        "/var/log/nginx/agente-hotel-api.liftoff.log",
    ),
    ("NGINX_CONF", "/etc/nginx/nginx.conf"),
];

/// Requests version `i` (0 stable, 1 candidate) served in the last 60 s, as a launch's
/// status shows them (`traffic`); 0 while it has no figures.
pub fn window_requests(status: &serde_json::Value, i: usize) -> u64 {
    status["traffic"]["versions"][i]["last_60s"]["requests"]
        .as_u64()
        .unwrap_or(0)
}

/// Which of 100 users a weighted, consistently hashed split sent to the candidate at
/// 5% and then at 25%: a plausible share each time, growing, and nobody on the
/// candidate at 5% back on stable at 25%.
pub fn assert_sticky_growth(at_5: &[bool], at_25: &[bool]) {
    let count = |v: &[bool]| v.iter().filter(|c| **c).count();
    assert!(
        (1..25).contains(&count(at_5)) && count(at_25) > count(at_5) && count(at_25) < 60,
        "users on the candidate: {} of 100 at 5%, {} at 25%",
        count(at_5),
        count(at_25)
    );
    for u in (0..at_5.len()).filter(|u| at_5[*u]) {
        assert!(at_25[u], "user-{u} went back to stable at 25%");
    }
}
