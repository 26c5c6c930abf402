//! Runs the real `liftoff` binary: a daemon on port 0 in a temp state dir, stopped by
//! PID, and CLI invocations against it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_liftoff");

pub struct Daemon {
    child: Option<Child>,
    pub state_dir: PathBuf,
    pub url: String,
}

impl Daemon {
    pub fn start(state_dir: &Path) -> Daemon {
        let addr_file = state_dir.join("serve.addr");
        let _ = std::fs::remove_file(&addr_file);
        std::fs::create_dir_all(state_dir).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(state_dir.join("daemon.log"))
            .unwrap();
        let child = Command::new(BIN)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--shutdown-grace",
                "5s",
                "--state-dir",
            ])
            .arg(state_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
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
        Daemon {
            child: Some(child),
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

    pub fn status_json(&self, cwd: &Path, id: &str) -> serde_json::Value {
        let out = self.cli(cwd, &["status", id, "--output", "json"]);
        assert!(
            out.status.success(),
            "status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
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
    }
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
