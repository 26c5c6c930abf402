//! The single-VM default: `liftoff serve` starts a `liftoff router` process for its
//! builtin routes, in `<state-dir>/router`, or adopts the one already running there.
//! The router is started in a process group of its own and is not the daemon's to stop:
//! stopping, killing or upgrading the daemon leaves it serving, and the next daemon
//! adopts it (its PID is in `<state-dir>/router/lock`, held while it runs).

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use liftoff_router::process;

use crate::StartError;

/// The local router's state directory.
pub const DIR: &str = "router";

/// What `serve` does about a local router.
#[derive(Clone, Debug, Default)]
pub enum LocalRouter {
    /// Start (or adopt) one that outlives the daemon: the default.
    #[default]
    Keep,
    /// Start (or adopt) one and stop it when the daemon stops (`liftoff demo`).
    StopWithDaemon,
    /// None: routers are run separately (`liftoff router --server URL`).
    Off,
}

/// The local router's PID, once it serves its saved snapshot.
pub fn ensure(state_dir: &Path, program: Option<&Path>, threads: usize) -> Result<u32, StartError> {
    let dir = state_dir.join(DIR);
    if let Some(pid) = process::running(&dir) {
        tracing::info!(pid, dir = %dir.display(), "adopting the router already running");
        return Ok(pid);
    }
    let program: PathBuf = match program {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe().map_err(|source| StartError::File {
            path: PathBuf::from("/proc/self/exe"),
            source,
        })?,
    };
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&dir)
        .map_err(|source| StartError::File {
            path: dir.clone(),
            source,
        })?;
    let log_path = dir.join("router.log");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|source| StartError::File {
            path: log_path.clone(),
            source,
        })?;
    let log2 = log.try_clone().map_err(|source| StartError::File {
        path: log_path.clone(),
        source,
    })?;
    let mut child = Command::new(&program)
        .arg("router")
        .arg("--state-dir")
        .arg(&dir)
        .arg("--server-file")
        .arg(state_dir.join(crate::ADDR_FILE))
        .arg("--token-file")
        .arg(state_dir.join(crate::auth::ROUTER_TOKEN_FILE))
        .args(["--id", "local", "--threads", &threads.to_string()])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        // Its own process group: a Ctrl-C meant for the daemon does not reach it.
        .process_group(0)
        .spawn()
        .map_err(|source| StartError::File {
            path: program.clone(),
            source,
        })?;
    let pid = child.id();
    let started = Instant::now();
    loop {
        if process::running(&dir) == Some(pid) {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            return Err(StartError::LocalRouter(format!(
                "the router exited ({status}): {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            )));
        }
        if started.elapsed() > Duration::from_secs(10) {
            return Err(StartError::LocalRouter(format!(
                "the router (pid {pid}) did not start within 10 s; see {}",
                log_path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // Reaped when it exits, so it never lingers as a zombie of this daemon.
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    tracing::info!(pid, dir = %dir.display(), "started the local router");
    Ok(pid)
}

/// Start the local router again whenever it is found dead (a crash, a `kill -9`): it
/// comes back serving its saved snapshot. Runs until the daemon stops.
pub async fn supervise(state_dir: PathBuf, program: Option<PathBuf>, threads: usize) {
    let dir = state_dir.join(DIR);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if process::running(&dir).is_some() {
            continue;
        }
        let (state_dir, program) = (state_dir.clone(), program.clone());
        let started =
            tokio::task::spawn_blocking(move || ensure(&state_dir, program.as_deref(), threads))
                .await;
        match started {
            Ok(Ok(pid)) => tracing::warn!(pid, "the local router was gone: started it again"),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "the local router is gone and could not be started")
            }
            Err(e) => {
                tracing::error!(error = %e, "the local router is gone and could not be started")
            }
        }
    }
}

/// Stop the local router (SIGTERM: it drains) and wait for it, at most `grace`.
pub fn stop(state_dir: &Path, grace: Duration) {
    let dir = state_dir.join(DIR);
    let Some(pid) = process::running(&dir) else {
        return;
    };
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let started = Instant::now();
    while process::running(&dir).is_some() && started.elapsed() < grace {
        std::thread::sleep(Duration::from_millis(10));
    }
}
