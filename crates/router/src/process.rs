//! `liftoff router`: the data plane as a process of its own, which outlives the daemon.
//!
//! Its state directory (0700) holds:
//! - `lock`: held (flock) by the running router, with its PID: one router per directory,
//!   and how `liftoff serve` finds the local router to adopt;
//! - `snapshot.json` (0600): the last snapshot applied and the ports its port-0 routes
//!   got ([`Served`]), written by temporary file and rename;
//! - `handoff.sock`: where a successor takes the listening sockets over (`handoff.rs`);
//! - `command.json` and `router.log`, written by the binary: how this router was started
//!   (for `liftoff router restart`) and what it said.
//!
//! Start-up order is what makes restarts invisible to clients. A successor takes its
//! predecessor's sockets and snapshot, applies it, and only then says "ready". A router
//! that starts afresh asks the daemon for the current snapshot (at most 1 s: the saved
//! one may be stale after a long outage), falls back to the saved one, binds, and serves;
//! then it follows the daemon. Shutdown (SIGTERM, or after a handoff) drains: no new
//! connections, in-flight requests finish, keep-alive clients get `Connection: close`
//! on their next response, connections idle for 500 ms are closed quietly, HTTP/2
//! clients get GOAWAY, and whatever is still open at the drain deadline is closed when
//! the process exits.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use crate::control::{Link, LinkState, Server};
use crate::handoff;
use crate::snapshot::Snapshot;
use crate::{Limits, Router, RouterError, Served};

pub const LOCK_FILE: &str = "lock";
pub const SNAPSHOT_FILE: &str = "snapshot.json";
pub const HANDOFF_SOCKET: &str = "handoff.sock";

pub struct ProcessConfig {
    pub state_dir: PathBuf,
    pub server: Server,
    pub token: crate::control::Token,
    /// The router's name in the fleet.
    pub id: String,
    pub threads: usize,
    pub limits: Limits,
    /// Serve the router's own `/metrics` here.
    pub metrics: Option<SocketAddr>,
    /// Take the sockets of the router running for `state_dir` instead of binding.
    pub takeover: bool,
    /// How long a stopping router waits for open connections.
    pub drain_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("a router already runs for {dir} (pid {pid}); `liftoff router restart` replaces it")]
    AlreadyRunning { dir: PathBuf, pid: String },
    #[error("{path}: not a snapshot this router can read: {why}")]
    BadState { path: PathBuf, why: String },
    #[error(transparent)]
    Router(#[from] RouterError),
    #[error(transparent)]
    Handoff(#[from] handoff::HandoffError),
}

/// The PID recorded in a router state directory's lock file, when a live router holds
/// the lock; `None` when no router runs there.
pub fn running(state_dir: &Path) -> Option<u32> {
    let path = state_dir.join(LOCK_FILE);
    let file = File::open(&path).ok()?;
    match file.try_lock_shared() {
        Ok(()) => None,
        Err(_) => std::fs::read_to_string(&path).ok()?.trim().parse().ok(),
    }
}

fn file_err(path: &Path) -> impl FnOnce(std::io::Error) -> ProcessError + '_ {
    move |source| ProcessError::File {
        path: path.to_path_buf(),
        source,
    }
}

/// Run a router until SIGTERM/SIGINT or until a successor has taken over, then drain.
pub fn run(config: ProcessConfig) -> Result<(), ProcessError> {
    let dir = config.state_dir.clone();
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(file_err(&dir))?;
    let lock_path = dir.join(LOCK_FILE);
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .map_err(file_err(&lock_path))?;

    let router = Arc::new(Router::start(config.limits.clone(), config.threads)?);
    let state_path = dir.join(SNAPSHOT_FILE);
    let handoff_path = dir.join(HANDOFF_SOCKET);

    let (served, predecessor) = if config.takeover {
        let inherited = handoff::take_over(&handoff_path, Duration::from_secs(10))?;
        router.adopt_listeners(inherited.listeners);
        let served: Served =
            serde_json::from_slice(&inherited.payload).map_err(|e| ProcessError::BadState {
                path: handoff_path.clone(),
                why: e.to_string(),
            })?;
        (Some(served), Some(inherited.channel))
    } else {
        if lock.try_lock().is_err() {
            let pid = std::fs::read_to_string(&lock_path).unwrap_or_default();
            return Err(ProcessError::AlreadyRunning {
                dir,
                pid: pid.trim().to_string(),
            });
        }
        (load_state(&state_path)?, None)
    };
    let link_state = Arc::new(LinkState::default());
    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("liftoff-router-control")
        .build()
        .map_err(RouterError::Runtime)?;
    let save = {
        let path = state_path.clone();
        let router = router.clone();
        Box::new(move |_: &Snapshot| {
            let Some(served) = router.served() else {
                return;
            };
            if let Err(e) = save_state(&path, &served) {
                tracing::error!(path = %path.display(), error = %e, "could not save the snapshot");
            }
        })
    };
    let link = Link::new(
        config.server.clone(),
        config.token,
        config.id.clone(),
        instance_id(),
        router.clone(),
        link_state.clone(),
        save,
    );
    // A router that starts (not a successor) asks the daemon first: the saved snapshot
    // may be one the daemon has moved on from while this router was down.
    let fresh = match predecessor {
        None => control.block_on(link.fetch_now(Duration::from_secs(1))),
        Some(_) => None,
    };
    if let Some(served) = &served {
        router.remember_bound(&served.bound);
    }
    let snapshot = fresh.or(served.map(|s| s.snapshot));
    if let Some(snapshot) = &snapshot {
        router.apply(snapshot)?;
        link.state.applied.store(snapshot.version, Relaxed);
        (link.on_applied)(snapshot);
        tracing::info!(
            version = snapshot.version,
            routes = snapshot.routes.len(),
            "serving"
        );
    }
    // Accepting on every socket now: the predecessor may stop.
    if let Some(p) = predecessor {
        p.ready()?;
    }
    if config.takeover {
        // The predecessor holds the lock until it has drained and exited.
        let lock_path = lock_path.clone();
        let lock = lock.try_clone().map_err(file_err(&lock_path))?;
        std::thread::spawn(move || {
            if lock.lock().is_ok() {
                let _ = write_pid(&lock_path);
                // Held until the process exits.
                std::mem::forget(lock);
            }
        });
    } else {
        write_pid(&lock_path).map_err(file_err(&lock_path))?;
    }
    // The successor's door: the path is ours from now on.
    let _ = std::fs::remove_file(&handoff_path);
    let handoff_listener = UnixListener::bind(&handoff_path).map_err(file_err(&handoff_path))?;

    let outcome = control.block_on(async {
        let link_task = tokio::spawn(link.run());
        let metrics_task = config.metrics.map(|addr| {
            tokio::spawn(crate::admin::serve_metrics(
                addr,
                router.clone(),
                link_state.clone(),
            ))
        });
        let reason = wait_for_end(handoff_listener, router.clone()).await;
        link_task.abort();
        if let Some(t) = metrics_task {
            t.abort();
        }
        reason
    });
    tracing::info!(reason = %outcome, "draining");
    let open = router.drain(config.drain_timeout);
    tracing::info!(closed_at_deadline = open, "drained; exiting");
    drop(lock);
    Ok(())
}

/// Why the router stops: a signal, or a successor took over.
async fn wait_for_end(handoff_listener: UnixListener, router: Arc<Router>) -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let handoff = async {
        let _ = handoff_listener.set_nonblocking(true);
        let Ok(listener) = tokio::net::UnixListener::from_std(handoff_listener) else {
            return std::future::pending().await;
        };
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let Ok(stream) = stream.into_std() else {
                continue;
            };
            let _ = stream.set_nonblocking(false);
            let router = router.clone();
            let served = router.served().unwrap_or_default();
            let done = tokio::task::spawn_blocking(move || {
                let listeners = router.handoff_listeners();
                let borrowed: Vec<_> = listeners.iter().map(|(a, l)| (*a, l)).collect();
                let payload = serde_json::to_string(&served).unwrap_or_default();
                handoff::hand_over(stream, &borrowed, &payload, Duration::from_secs(10))
            })
            .await;
            match done {
                Ok(Ok(())) => return,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "a successor's takeover failed; still serving")
                }
                Err(e) => {
                    tracing::error!(error = %e, "a successor's takeover failed; still serving")
                }
            }
        }
    };
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        handoff.await;
        return "a successor took over";
    };
    tokio::select! {
        _ = handoff => "a successor took over",
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// The lock is on the open file, not its contents: the PID is written beside it.
fn write_pid(path: &Path) -> std::io::Result<()> {
    std::fs::write(path, format!("{}\n", std::process::id()))
}

fn instance_id() -> String {
    format!(
        "{}-{:x}",
        std::process::id(),
        fastrand::u64(..) & 0xffff_ffff
    )
}

/// The saved snapshot, if any. A file that cannot be read is an error: serving nothing
/// while a saved split exists would move users.
pub fn load_state(path: &Path) -> Result<Option<Served>, ProcessError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ProcessError::BadState {
                path: path.to_path_buf(),
                why: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ProcessError::File {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Written to a temporary file and renamed: a crash leaves the old or the new file.
pub fn save_state(path: &Path, served: &Served) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let body = serde_json::to_vec(served).map_err(std::io::Error::other)?;
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&body)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
