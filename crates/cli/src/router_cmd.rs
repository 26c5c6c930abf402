//! `liftoff router`: run a router of the fleet, and `liftoff router restart`: replace
//! the running one without a failed request (its successor takes its sockets).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use liftoff_server::router_process::control::{Server, Token};
use liftoff_server::router_process::process::{self, ProcessConfig};

use crate::exit::{Exit, Failure};

/// The command line a router was started with, kept in its state directory so that
/// `liftoff router restart` starts its successor the same way.
const COMMAND_FILE: &str = "command.json";

#[derive(clap::Args, Clone)]
pub struct RouterArgs {
    /// A file holding the daemon's URL, read again before each attempt (the local
    /// daemon's `<state-dir>/serve.addr`); instead of --server.
    #[arg(long)]
    pub server_file: Option<PathBuf>,
    /// A file holding the router token (the daemon's `<state-dir>/router.token`).
    #[arg(long, env = "LIFTOFF_ROUTER_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// The router's name in the fleet (default: the host's name).
    #[arg(long)]
    pub id: Option<String>,
    /// Worker threads of the data plane (default: one per CPU).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Serve this router's own /metrics here.
    #[arg(long)]
    pub metrics: Option<std::net::SocketAddr>,
    /// How long a stopping router waits for open connections to finish.
    #[arg(long, default_value = "10s", value_parser = crate::humantime_arg)]
    pub drain_timeout: Duration,
    /// Take the listening sockets of the router running for --state-dir (what
    /// `liftoff router restart` starts).
    #[arg(long, hide = true)]
    pub takeover: bool,
}

#[derive(clap::Subcommand, Clone)]
pub enum RouterAction {
    /// Replace the router running for --state-dir with this binary: the successor takes
    /// its listening sockets, the old one drains. No request fails.
    Restart {
        /// How long to wait for the old router to hand over and drain.
        #[arg(long, default_value = "60s", value_parser = crate::humantime_arg)]
        timeout: Duration,
    },
}

/// Run a router until SIGTERM or until a successor takes over.
pub fn run(state_dir: &Path, server: &str, args: &RouterArgs) -> Result<Exit, Failure> {
    let fail = |e: &dyn std::fmt::Display| Failure::new(Exit::Unreachable, e.to_string());
    let token = match &args.token_file {
        Some(path) => {
            Token::from_file(path.clone()).map_err(|e| fail(&format!("{}: {e}", path.display())))?
        }
        None => std::env::var("LIFTOFF_ROUTER_TOKEN")
            .map(Token::Fixed)
            .map_err(|_| {
                Failure::new(
                    Exit::Invalid,
                    "a router needs its token: --token-file or LIFTOFF_ROUTER_TOKEN",
                )
            })?,
    };
    // By default, host and state directory: two routers of one host are two names.
    let id = args.id.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "router".into());
        let dir = std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
        format!("{host}:{}", dir.display())
    });
    let config = ProcessConfig {
        state_dir: state_dir.to_path_buf(),
        server: match &args.server_file {
            Some(f) => Server::File(f.clone()),
            None => Server::Url(server.to_string()),
        },
        token,
        id,
        threads: args
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        limits: liftoff_server::router_process::Limits::default(),
        metrics: args.metrics,
        takeover: args.takeover,
        drain_timeout: args.drain_timeout,
    };
    // Remember how this router was started, for its successor (`restart`).
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    argv.retain(|a| a != "--takeover");
    // The state directory holds a snapshot with secrets in it: its owner's only.
    let _ =
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(state_dir);
    let _ = std::fs::write(
        state_dir.join(COMMAND_FILE),
        serde_json::to_vec(&argv).unwrap_or_default(),
    );
    process::run(config).map_err(|e| fail(&e))?;
    Ok(Exit::Success)
}

/// Start a successor of the router running for `state_dir` and wait until it has
/// taken over.
pub fn restart(state_dir: &Path, timeout: Duration) -> Result<Exit, Failure> {
    let Some(old) = process::running(state_dir) else {
        return Err(Failure::new(
            Exit::Unreachable,
            format!("no router runs for {}", state_dir.display()),
        ));
    };
    let argv: Vec<String> = std::fs::read(state_dir.join(COMMAND_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| {
            Failure::new(
                Exit::Unreachable,
                format!(
                    "{}: how the running router was started is unknown",
                    state_dir.join(COMMAND_FILE).display()
                ),
            )
        })?;
    let exe =
        std::env::current_exe().map_err(|e| Failure::new(Exit::Unreachable, e.to_string()))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(state_dir.join("router.log"))
        .map_err(|e| Failure::new(Exit::Unreachable, e.to_string()))?;
    let log2 = log
        .try_clone()
        .map_err(|e| Failure::new(Exit::Unreachable, e.to_string()))?;
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(exe)
        .args(&argv)
        .arg("--takeover")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .spawn()
        .map_err(|e| Failure::new(Exit::Unreachable, e.to_string()))?;
    let new = child.id();
    let started = Instant::now();
    loop {
        if process::running(state_dir) == Some(new) {
            println!("router {old} replaced by {new}");
            return Ok(Exit::Success);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Failure::new(
                Exit::Unreachable,
                format!(
                    "the new router exited ({status}); router {old} still serves; see {}",
                    state_dir.join("router.log").display()
                ),
            ));
        }
        if started.elapsed() > timeout {
            return Err(Failure::new(
                Exit::Unreachable,
                format!("router {new} has not taken over from {old} within {timeout:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
