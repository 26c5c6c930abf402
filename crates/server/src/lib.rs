//! `liftoff serve`: the composition root. Builds the store, the driver and the HTTP
//! API, recovers unfinished launches, serves until a shutdown signal, then drains.
//!
//! Invariant: handlers translate between HTTP and the driver; they hold no launch
//! state of their own and never touch the journal directly.

mod auth;
pub mod check;
mod error;
mod external;
mod flags;
mod fleet;
pub mod limits;
pub mod local_router;
mod lock;
mod ofrep;
mod report;
mod routes;
mod status_page;
mod views;

use std::fs::DirBuilder;
use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use liftoff_driver::{Driver, Ports};
use liftoff_store::{Store, StoreError};

pub use auth::{ROUTER_TOKEN_FILE, TOKEN_FILE};
pub use local_router::LocalRouter;

/// What a plan needs from this host (`liftoff validate`).
pub use liftoff_driver::preflight;

/// `liftoff router`, the data plane's own process, for the binary.
pub mod router_process {
    pub use liftoff_router::{Limits, control, process};
}
pub use limits::ApiLimits;
pub use lock::LOCK_FILE;

/// The file a running daemon writes its base URL to (tests and scripts read it when
/// the daemon was told to listen on port 0).
pub const ADDR_FILE: &str = "serve.addr";
pub const DB_FILE: &str = "liftoff.db";

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no randomness from the OS for the admin token: {0}")]
    Random(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("another liftoff serve ({holder}) holds {}", path.display())]
    Locked { path: PathBuf, holder: String },
    #[error(
        "{} is {state}, but {} shows this state directory was in use: refusing to start afresh over it. Restore the database from a backup, or move the state directory away to start a new install",
        db.display(),
        evidence.display()
    )]
    StateLost {
        db: PathBuf,
        state: &'static str,
        evidence: PathBuf,
    },
    #[error(transparent)]
    Router(#[from] liftoff_router::RouterError),
    #[error("the local router: {0}")]
    LocalRouter(String),
    #[error("recovering launches from the journal: {0}")]
    Recovery(#[from] liftoff_driver::DriverError),
}

pub struct ServeConfig {
    pub listen: SocketAddr,
    pub state_dir: PathBuf,
    pub shutdown_grace: Duration,
    /// Worker threads of the local router.
    pub router_threads: usize,
    /// Whether to start (or adopt) a local router, and whether it outlives the daemon.
    pub local_router: local_router::LocalRouter,
    /// The `liftoff` binary that runs the local router (default: this executable).
    pub router_program: Option<PathBuf>,
    /// Where launches write deployment logs (default `<state>/logs/deployment`).
    pub deployment_log_dir: Option<PathBuf>,
    /// What the API's clients may hold (connections, time, bytes).
    pub api: ApiLimits,
}

pub async fn serve(
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let dir = &config.state_dir;
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StartError::File {
            path: dir.clone(),
            source,
        })?;
    // Before anything reads or writes the directory: it may be another daemon's.
    let mut lock = lock::StateLock::acquire(dir)?;
    refuse_lost_state(dir)?;
    let store = Arc::new(Store::open(&dir.join(DB_FILE))?);
    if let Some(m) = store.migrated() {
        tracing::info!(
            from = m.from,
            to = m.to,
            "state database upgraded to a new schema version"
        );
    }
    if dir.join(TOKEN_FILE).exists() && store.token_hash(auth::ADMIN)?.is_none() {
        // The token's database is gone: this one was created just now.
        return Err(StartError::StateLost {
            db: dir.join(DB_FILE),
            state: "new (it holds no admin token)",
            evidence: dir.join(TOKEN_FILE),
        });
    }
    auth::ensure_admin_token(&store, dir)?;
    auth::ensure_router_token(&store, dir)?;
    let admin_hash = store.token_hash(auth::ADMIN)?.unwrap_or_default();
    let router_hash = store.token_hash(auth::ROUTER)?.unwrap_or_default();
    let flags = flags::FlagService::open(store.clone(), &admin_hash)?;
    // The data plane is another process, which outlives this one: started now (it
    // serves its saved snapshot at once), or adopted if it already runs.
    let local = match config.local_router {
        local_router::LocalRouter::Off => None,
        _ => Some(local_router::ensure(
            dir,
            config.router_program.as_deref(),
            config.router_threads,
        )?),
    };
    let supervisor = local.map(|_| {
        tokio::spawn(local_router::supervise(
            dir.clone(),
            config.router_program.clone(),
            config.router_threads,
        ))
    });
    let fleet = Arc::new(liftoff_driver::fleet::Fleet::new());
    let ports = Ports {
        fleet: Some(fleet.clone()),
        flags: Some(flags.clone()),
        backups: dir.join("backups"),
        deployment_logs: Some(
            config
                .deployment_log_dir
                .clone()
                .unwrap_or_else(|| dir.join("logs").join("deployment")),
        ),
        ..Ports::default()
    };
    let driver = Driver::new(store, ports, config.shutdown_grace);
    // What the local router serves: kept for any route the store cannot rebuild.
    let serving = liftoff_router::process::load_state(
        &dir.join(local_router::DIR)
            .join(liftoff_router::process::SNAPSHOT_FILE),
    )
    .unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read the local router's snapshot");
        None
    });
    let routes = driver.restore_routes(serving.as_ref().map(|s| &s.snapshot));

    let open_files = limits::raise_open_file_limit();
    let api_cap = config.api.connection_cap(open_files);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: config.listen,
        source,
    })?;
    lock.record_listen(addr)?;
    let recovered = driver.recover().await?;
    let addr_file = dir.join(ADDR_FILE);
    std::fs::write(&addr_file, format!("http://{addr}\n")).map_err(|source| StartError::File {
        path: addr_file.clone(),
        source,
    })?;
    tracing::info!(
        %addr,
        recovered,
        routes,
        local_router = local,
        open_files,
        api_connections = api_cap,
        "liftoff daemon listening"
    );

    let routes_stopping = tokio_util::sync::CancellationToken::new();
    let app = routes::router(
        routes::AppState {
            driver: driver.clone(),
            admin_hash: Arc::from(admin_hash),
            router_hash: Arc::from(router_hash),
            stopping: routes_stopping.clone(),
            fleet,
            flags,
        },
        limits::BodyLimits {
            max_bytes: limits::MAX_BODY_BYTES,
            timeout: config.api.request_timeout,
        },
    );
    // Routers' long polls end when the daemon stops, not when they time out.
    let stopping = routes_stopping.clone();
    let shutdown = async move {
        shutdown.await;
        stopping.cancel();
    };
    limits::serve(listener, app, &config.api, api_cap, shutdown).await;
    tracing::info!("shutting down: letting in-flight commands finish");
    driver.shutdown().await;
    let _ = std::fs::remove_file(&addr_file);
    if let Some(s) = supervisor {
        s.abort();
    }
    if let local_router::LocalRouter::StopWithDaemon = config.local_router {
        let dir = dir.clone();
        let _ = tokio::task::spawn_blocking(move || {
            local_router::stop(&dir, Duration::from_secs(5));
        })
        .await;
    }
    drop(lock);
    Ok(())
}

/// A state directory with an admin token (or a write-ahead log) has been used: an empty
/// or missing database there is lost state, never a new install.
fn refuse_lost_state(dir: &Path) -> Result<(), StartError> {
    let db = dir.join(DB_FILE);
    let wal = dir.join(format!("{DB_FILE}-wal"));
    let token = dir.join(TOKEN_FILE);
    let evidence = if token.exists() {
        token
    } else if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
        wal
    } else {
        return Ok(());
    };
    let state = match std::fs::metadata(&db) {
        Ok(m) if m.len() == 0 => "empty",
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "missing",
        Err(source) => return Err(StartError::File { path: db, source }),
    };
    Err(StartError::StateLost {
        db,
        state,
        evidence,
    })
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the daemon can still be stopped by SIGKILL; the
        // journal makes that safe.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
