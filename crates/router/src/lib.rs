//! liftoff's data plane: an HTTP reverse proxy that splits traffic between a stable
//! and a candidate upstream, sticky per user, and observes each version.
//!
//! It runs as `liftoff router` ([`process`]), a process of its own that serves the
//! routes the daemon publishes and outlives the daemon.
//!
//! Invariants:
//! - the data plane runs on its own tokio runtime, in its own process: a stalled or
//!   absent control plane (engine, store, API, the whole daemon) cannot stall routing,
//!   and routing keeps the last snapshot it was given;
//! - the request path reads the routing table with one atomic load (`ArcSwap`) and
//!   never takes a lock; control-plane changes build a new table and swap it in;
//! - an upstream removed from the table drains: in-flight requests hold it until done;
//! - this crate knows nothing of launches, plans or the journal.
//!
//! Map:
//! - the request path: `h1` (HTTP/1 from clients, served by liftoff itself; a
//!   connection that opens with the h2c preface goes to hyper's HTTP/2 server), `proxy`
//!   (what both front ends share), `pool` (liftoff's own HTTP/1.1 client to upstreams,
//!   over TCP or TLS; health checks use it too), `h2up` (gRPC calls to upstreams over
//!   HTTP/2, on hyper's client), `wire` (HTTP/1 framing and heads, both
//!   directions; no pool, no routing), `stream` (a connection's bytes: TCP, or TLS
//!   from a client or to an `https://` instance), [`split`], [`table`], [`stats`],
//!   [`health`];
//! - TLS: [`tls`] (listeners' certificates, and the client settings that verify
//!   `https://` instances against a route's `ca` or the system's roots);
//! - what a router serves and tells: [`snapshot`] (the routes, applied whole by
//!   [`Router::apply`], in `member`), [`export`] (per-second reports to the daemon), [`metrics`];
//! - the process: [`process`], [`control`] (the link to the daemon), [`handoff`]
//!   (listening sockets to a successor), `admin` (the router's own `/metrics`).
//!
//! A request: each listener's accept loop holds at most `max_connections` ([`Limits`]);
//! beyond that, clients wait in the kernel's backlog, none is refused. `proxy::pick`
//! loads the table once and finds the route by listen address and `Host` (port ignored;
//! a route without `host` catches the rest; none: 404). A route in maintenance answers
//! its page (503, `Retry-After`, `Cache-Control: no-store`) unless the client is in its
//! allowlist or carries the bypass header. Then the route's version override, when set,
//! lets a tester pick a version (403 without the right), or [`split`] chooses.
//! `proxy::encode_request` writes the upstream's head in one pass (hop-by-hop fields and
//! those `Connection` names dropped, `Host` set, `X-Forwarded-*` and `Forwarded`
//! extended) and `proxy::forward` sends it to one instance of the chosen version.
//! `Host` is the client's, or with the route's `upstreams.host: instance` the
//! instance's own `host[:port]` (a PaaS routes by it), set per attempt; the client's is
//! in `X-Forwarded-Host` either way.
//!
//! A gRPC call (HTTP/2 from the client, `content-type: application/grpc...`) is routed
//! the same way but goes to its instance over HTTP/2 (`h2up`: h2c, or ALPN `h2` over
//! TLS), bodies and trailers streamed both ways. Its outcome is recorded when it ends:
//! a non-zero `grpc-status` is the version's error (`upstream_5xx`), except `CANCELLED`
//! (`client_abort`).
//!
//! An instance is `http://host:port` or `https://host[:port]` (443 by default). An
//! `https://` one is verified against its route's `ca` (read when the snapshot is
//! applied; one that cannot be read refuses it) or the system's roots, by its URL's
//! host (sent as SNI unless it is an IP address); its connections are pooled like any
//! other, apart from the same URL trusted through another `ca`. A TLS handshake that
//! fails is a connection that could not be made.
//!
//! A version is a pool of instances (`table::Version`). The split chooses the version
//! (sticky users keep theirs whatever happens to an instance); within it, power of two
//! choices on requests in flight picks among the *usable* instances: healthy by their
//! active checks and not ejected by passive outlier detection (5 failures in a row: no
//! connection, a broken exchange, a timeout or a 5xx; out for `base_ejection`, doubling
//! each time, at most half the pool). When no instance is usable the version is in
//! panic and any instance is tried: a sick pool serves what it can, never nothing.
//!
//! Who is to blame is recorded per request, because analysis judges versions by it:
//! - an upstream 5xx passes through and counts as `upstream_5xx`;
//! - no connection (a TLS handshake that failed included), or one broken before the
//!   answer: 502, `connect`;
//! - no answer within `request_timeout`: 504, `timeout`;
//! - the client's fault (a malformed, oversized or stalled body, or leaving early):
//!   400, 413, 408 or nothing, `client_abort`, never the version's error.
//!
//! Retries (`proxy::forward`): a request that never reached an instance (no connection)
//! goes to another instance of its version, body and all; a bodyless idempotent request
//! whose connection closed before any response byte, once. Each retry is paid from the
//! version's retry budget (a tenth of a retry per request, a burst of 10), so a failing
//! version is not hammered. With no instance left, a bodyless request that was never
//! sent or is idempotent is replayed once on the other version (not one a tester's
//! override sent); a request with a body that reached an upstream never is. The
//! version's windows record one outcome per client request; the instances record every
//! attempt. An overridden request counts in its version's windows only if the override
//! says `count`. Health and ejections change which instance serves, never the split: an
//! unhealthy version keeps its share (gates and triggers judge it).
//!
//! The stats clock counts Unix seconds (the epoch is aligned on a second boundary), so
//! what several routers saw in one second adds up. With one thread the runtime is a
//! current-thread runtime driven by a thread of its own: no cross-thread scheduling on
//! the request path. The per-route methods (`upsert_route`, `set_weight`, `swap`,
//! `set_candidate`, `set_maintenance`) build a table route by route for this crate's
//! tests; a router process only uses [`Router::apply`]. [`Limits::default`] is every
//! router's base (no flag changes it); a route's `timeouts` replace its connect,
//! response and idle timeouts.

mod admin;
pub mod control;
pub mod export;
#[doc(hidden)]
pub mod fuzzing;
mod h1;
mod h2up;
pub mod handoff;
pub mod health;
mod member;
pub mod metrics;
mod pool;
pub mod process;
mod proxy;
pub mod snapshot;
pub mod split;
pub mod stats;
mod stream;
pub mod table;
pub mod tls;
mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::Semaphore;

pub use health::{HealthCheck, HealthReport};
pub use member::Served;
pub use split::{Role, Sticky};
pub use stats::{ErrorSource, Window};
pub use table::{InstanceReport, Maintenance, RetryBudget, VersionOverride};

use table::{Instance, Route, Table, Upstream, Version};

pub(crate) fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("upstream `{url}`: {why}")]
    BadUpstream { url: String, why: String },
    #[error("no route named `{0}`")]
    NoSuchRoute(String),
    #[error("route `{route}` has no candidate upstream")]
    NoCandidate { route: String },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("weight {0} is above 10000 basis points (100%)")]
    BadWeight(u16),
    #[error("maintenance settings: {0}")]
    BadMaintenance(String),
    #[error("version override settings: {0}")]
    BadOverride(String),
    #[error("`{0}` is not a valid header name")]
    BadHeader(String),
    #[error("cannot start the data-plane runtime: {0}")]
    Runtime(std::io::Error),
    #[error("route `{route}`: {source}")]
    Tls {
        route: String,
        source: tls::TlsError,
    },
}

#[derive(Clone, Debug)]
pub struct Limits {
    pub connect_timeout: Duration,
    /// How long the upstream may keep a request waiting: for its response head once
    /// the request is sent, or to take more of a request body.
    pub request_timeout: Duration,
    pub upstream_idle_timeout: Duration,
    /// How long a response body may go without a byte from the upstream before the
    /// exchange is cut (`None`: as long as it likes; a stream may idle between events).
    pub stream_idle_timeout: Option<Duration>,
    /// A client must send a complete request head within this time.
    pub header_read_timeout: Duration,
    /// A client sending a request body may pause this long between bytes; then it gets
    /// 408 (its fault, not the upstream's).
    pub body_read_timeout: Duration,
    /// At least 8 KiB.
    pub max_header_bytes: usize,
    pub max_body_bytes: usize,
    pub max_connections: usize,
    /// How long an instance's first ejection lasts (each next one twice as long, at
    /// most 30 times this).
    pub base_ejection: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(30),
            upstream_idle_timeout: Duration::from_secs(60),
            stream_idle_timeout: None,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
            max_body_bytes: 64 * 1024 * 1024,
            max_connections: 10_000,
            base_ejection: Duration::from_secs(10),
        }
    }
}

/// What the request path reads.
pub(crate) struct Shared {
    table: ArcSwap<Table>,
    limits: Limits,
    /// Every upstream's connection pool, for the idle sweep. Health checks use them
    /// too: an instance is reached one way, whoever asks.
    pools: Mutex<Vec<Arc<pool::Pool>>>,
    epoch: Instant,
    /// Unix seconds at `epoch`: the stats clock counts Unix seconds, so the daemon can
    /// add up what several routers saw in one second.
    epoch_unix: u64,
    /// Set when the router stops: connections close after their current response.
    /// The request path reads this flag; `drain` wakes idle connections.
    draining: std::sync::atomic::AtomicBool,
    /// Cancelled when the router stops, after `draining` is set.
    drain: tokio_util::sync::CancellationToken,
    /// Client connections open now.
    open_connections: std::sync::atomic::AtomicI64,
    /// The listeners that terminate TLS, and with what.
    tls: ArcSwap<HashMap<SocketAddr, Arc<tls::Terminator>>>,
    /// Client connections that never finished their TLS handshake.
    tls_handshake_failures: std::sync::atomic::AtomicU64,
    /// Every upstream's HTTP/2 connections, for gRPC calls.
    h2: h2up::Upstreams,
}

impl Shared {
    fn new(limits: Limits) -> Shared {
        // The epoch falls on a Unix second's boundary, so this router's seconds are the
        // same seconds as every other router's.
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let now = Instant::now();
        let epoch = now
            .checked_sub(Duration::from_nanos(u64::from(unix.subsec_nanos())))
            .unwrap_or(now);
        Shared {
            table: ArcSwap::from_pointee(Table::default()),
            limits,
            pools: Mutex::default(),
            epoch,
            epoch_unix: unix.as_secs(),
            draining: std::sync::atomic::AtomicBool::new(false),
            drain: tokio_util::sync::CancellationToken::new(),
            open_connections: std::sync::atomic::AtomicI64::new(0),
            tls: ArcSwap::default(),
            tls_handshake_failures: std::sync::atomic::AtomicU64::new(0),
            h2: h2up::Upstreams::default(),
        }
    }

    fn pools(&self) -> std::sync::MutexGuard<'_, Vec<Arc<pool::Pool>>> {
        self.pools.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The stats clock: Unix seconds, read from the monotonic clock.
    fn second(&self) -> u64 {
        self.epoch_unix + self.epoch.elapsed().as_secs()
    }

    pub(crate) fn draining(&self) -> bool {
        self.draining.load(Relaxed)
    }

    /// Milliseconds since the router started: the clock of outlier ejections.
    pub(crate) fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

#[derive(Clone, Debug)]
pub struct RouteSpec {
    pub name: String,
    /// Port 0 picks a free port (see [`Router::upsert_route`]'s result).
    pub listen: SocketAddr,
    pub host: Option<String>,
    pub stable: String,
    pub candidate: Option<String>,
    pub sticky: Sticky,
    /// Who may pick a version by header (testers); `None`, the default, lets nobody.
    pub version_override: Option<VersionOverride>,
    pub health: Option<HealthCheck>,
    /// Fixes the sticky hash salt (otherwise random per route, kept across updates).
    pub salt: Option<u64>,
}

/// A route's name and a version's instance URLs (comma-separated): one version of one
/// route.
type VersionKey = (String, String);
/// A route's name and one instance URL.
type InstanceKey = (String, String);
/// An instance URL and, for `https://`, the CA file it is verified against: routes
/// share an upstream's connections only if they trust its certificate alike.
type UpstreamKey = (String, Option<String>);

/// How a route's `https://` instances are verified: its `ca` (`None`: the system's
/// roots) and the client settings loaded from it.
pub(crate) struct ClientTls {
    ca: Option<String>,
    config: Arc<rustls::ClientConfig>,
}

impl ClientTls {
    /// A route's `ca`, read now: a file that cannot be read or holds no certificate
    /// refuses the snapshot, naming the route and the file.
    pub(crate) fn load(route: &str, ca: &str) -> Result<ClientTls, RouterError> {
        let config = tls::client_config(Some(std::path::Path::new(ca))).map_err(|source| {
            RouterError::Tls {
                route: route.to_string(),
                source,
            }
        })?;
        Ok(ClientTls {
            ca: Some(ca.to_string()),
            config,
        })
    }
}

/// Control-plane state: only touched by route changes, never by requests.
#[derive(Default)]
struct Control {
    /// By URL (and CA): connection pools are shared by every route naming the upstream.
    upstreams: HashMap<UpstreamKey, Arc<Upstream>>,
    /// The versions the current table holds: a route's figures of an upstream follow
    /// it through weight changes, swaps and updates of the route, and are dropped with
    /// it when the route no longer names the upstream.
    versions: HashMap<VersionKey, Arc<Version>>,
    /// The instances those versions hold: an instance keeps its health and outlier
    /// state when its version's list changes around it.
    instances: HashMap<InstanceKey, Arc<Instance>>,
    listeners: HashMap<SocketAddr, Listening>,
    /// Each instance's checks: the instance they record on, and their task.
    health: HashMap<InstanceKey, (HealthCheck, Arc<Instance>, tokio::task::JoinHandle<()>)>,
    /// The client settings with the system's roots, loaded the first time a route
    /// without a `ca` names an `https://` instance.
    system_tls: Option<Arc<rustls::ClientConfig>>,
    /// Sockets inherited from a predecessor, not yet claimed by a route.
    adopted: HashMap<SocketAddr, std::net::TcpListener>,
    /// Where each route on port 0 was bound, so it keeps its port across snapshots,
    /// restarts and successors.
    bound: std::collections::BTreeMap<String, SocketAddr>,
    /// The snapshot applied last (standalone routers).
    served: Option<snapshot::Snapshot>,
    /// Sockets bound for a table not yet swapped in: they accept once it is.
    unstarted: Vec<tokio::sync::oneshot::Sender<()>>,
}

/// A listening socket: its accept loop, and a copy of the socket for a successor.
struct Listening {
    task: tokio::task::JoinHandle<()>,
    socket: std::net::TcpListener,
}

pub struct Router {
    shared: Arc<Shared>,
    runtime: Option<Arc<tokio::runtime::Runtime>>,
    /// With one thread, the data plane is a current-thread runtime driven by a thread
    /// of its own: no cross-thread scheduling on the request path.
    driver: Option<(
        tokio::sync::oneshot::Sender<()>,
        std::thread::JoinHandle<()>,
    )>,
    control: Mutex<Control>,
}

impl Drop for Router {
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.driver.take() {
            let _ = stop.send(());
            let _ = thread.join();
        }
        if let Some(rt) = self.runtime.take().and_then(|rt| Arc::try_unwrap(rt).ok()) {
            rt.shutdown_background();
        }
    }
}

impl Router {
    /// Start the data plane with `threads` worker threads of its own.
    pub fn start(limits: Limits, threads: usize) -> Result<Router, RouterError> {
        let mut limits = limits;
        limits.max_header_bytes = limits.max_header_bytes.max(8192);
        let single = threads <= 1;
        let mut builder = if single {
            tokio::runtime::Builder::new_current_thread()
        } else {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(threads);
            b
        };
        let runtime = Arc::new(
            builder
                .thread_name("liftoff-router")
                .enable_all()
                .build()
                .map_err(RouterError::Runtime)?,
        );
        let shared = Arc::new(Shared::new(limits));
        runtime.spawn(tick(shared.clone()));
        let driver = if single {
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let rt = runtime.clone();
            let thread = std::thread::Builder::new()
                .name("liftoff-router".into())
                .spawn(move || {
                    let _ = rt.block_on(stopped);
                })
                .map_err(RouterError::Runtime)?;
            Some((stop, thread))
        } else {
            None
        };
        Ok(Router {
            shared,
            runtime: Some(runtime),
            driver,
            control: Mutex::new(Control::default()),
        })
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime
            .as_ref()
            .expect("runtime lives as long as the router")
    }

    fn control(&self) -> std::sync::MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Create or update a route. A new route, or a route given a different candidate,
    /// starts with all traffic on stable; otherwise it keeps its weight. Salt and
    /// maintenance state are kept. Returns the address it listens on.
    pub fn upsert_route(&self, spec: RouteSpec) -> Result<SocketAddr, RouterError> {
        let mut control = self.control();
        let urls = std::iter::once(spec.stable.as_str()).chain(spec.candidate.as_deref());
        let tls = self.client_tls(&mut control, &spec.name, urls, None)?;
        let stable = version(
            &self.shared,
            &mut control,
            &spec.name,
            &[&spec.stable],
            tls.as_ref(),
        )?;
        let candidate = spec
            .candidate
            .as_deref()
            .map(|u| version(&self.shared, &mut control, &spec.name, &[u], tls.as_ref()))
            .transpose()?;
        let table = self.shared.table.load();
        let existing = table.routes.iter().find(|r| r.name == spec.name).cloned();
        let listen = match &existing {
            Some(r) if r.listen == spec.listen || spec.listen.port() == 0 => r.listen,
            _ => self.listen(&mut control, spec.listen)?,
        };
        let route = Route {
            name: spec.name.clone(),
            listen,
            host: spec.host.clone(),
            stable: stable.clone(),
            candidate: candidate.clone(),
            // A new candidate starts with no traffic: keeping the old weight would send
            // users to an untested version until the next weight change.
            weight_bp: existing
                .as_ref()
                .filter(|r| match (&r.candidate, &candidate) {
                    (Some(old), Some(new)) => Arc::ptr_eq(old, new),
                    _ => false,
                })
                .map_or(0, |r| r.weight_bp),
            salt: spec
                .salt
                .or(existing.as_ref().map(|r| r.salt))
                .unwrap_or_else(|| fastrand::u64(..)),
            sticky: spec.sticky.clone(),
            version_override: spec.version_override.clone().map(Arc::new),
            maintenance: existing.as_ref().and_then(|r| r.maintenance.clone()),
            limits: Arc::new(self.shared.limits.clone()),
            host_policy: table::HostPolicy::Client,
        };
        let mut routes: Vec<Arc<Route>> = table
            .routes
            .iter()
            .filter(|r| r.name != spec.name)
            .cloned()
            .collect();
        routes.push(Arc::new(route));
        let table = Table { routes };
        forget_unused_versions(&mut control, &table);
        self.shared.table.store(Arc::new(table));
        Self::start_listeners(&mut control);
        for v in std::iter::once(&stable).chain(candidate.as_ref()) {
            self.health_checks(&mut control, &spec.name, v, spec.health.as_ref());
        }
        Ok(listen)
    }

    fn listen(&self, control: &mut Control, addr: SocketAddr) -> Result<SocketAddr, RouterError> {
        if let Some((bound, _)) = control.listeners.iter().find(|(a, _)| **a == addr) {
            return Ok(*bound);
        }
        let std_listener = match control.adopted.remove(&addr) {
            Some(inherited) => inherited,
            None => std::net::TcpListener::bind(addr)
                .map_err(|source| RouterError::Listen { addr, source })?,
        };
        let socket = std_listener
            .try_clone()
            .map_err(|source| RouterError::Listen { addr, source })?;
        std_listener
            .set_nonblocking(true)
            .map_err(|source| RouterError::Listen { addr, source })?;
        let bound = std_listener
            .local_addr()
            .map_err(|source| RouterError::Listen { addr, source })?;
        let listener = {
            let _enter = self.runtime().enter();
            tokio::net::TcpListener::from_std(std_listener)
                .map_err(|source| RouterError::Listen { addr, source })?
        };
        let shared = self.shared.clone();
        // It accepts once the table that routes its connections is in place: a client
        // that connects the moment the socket exists never finds "no route".
        let (go, ready) = tokio::sync::oneshot::channel();
        let task = self.runtime().spawn(async move {
            let _ = ready.await;
            accept_loop(listener, bound, shared).await
        });
        control.listeners.insert(bound, Listening { task, socket });
        control.unstarted.push(go);
        Ok(bound)
    }

    /// Let the sockets bound since the last table swap accept (after the swap).
    fn start_listeners(control: &mut Control) {
        for go in control.unstarted.drain(..) {
            let _ = go.send(());
        }
    }

    /// Start, change or stop the checks of each instance of a version. Health is per
    /// instance of a route: two routes to one upstream check it each with their own
    /// settings, and keep their own verdicts.
    fn health_checks(
        &self,
        control: &mut Control,
        route: &str,
        version: &Version,
        check: Option<&HealthCheck>,
    ) {
        for instance in &version.instances {
            let key = (route.to_string(), instance.upstream.url.clone());
            if let Some(check) = check
                && control
                    .health
                    .get(&key)
                    .is_some_and(|(c, i, _)| c == check && Arc::ptr_eq(i, instance))
            {
                continue;
            }
            if let Some((_, _, old)) = control.health.remove(&key) {
                old.abort();
            }
            if let Some(check) = check {
                let task = self.runtime().spawn(health_loop(
                    self.shared.clone(),
                    instance.clone(),
                    check.clone(),
                ));
                control
                    .health
                    .insert(key, (check.clone(), instance.clone(), task));
            }
        }
    }

    /// How a route's `https://` instances are verified: its `ca`, already loaded
    /// ([`ClientTls::load`]), or else the system's roots, loaded once. `None` when it
    /// names no `https://` instance and no `ca`.
    fn client_tls<'u>(
        &self,
        control: &mut Control,
        route: &str,
        mut urls: impl Iterator<Item = &'u str>,
        ca: Option<ClientTls>,
    ) -> Result<Option<ClientTls>, RouterError> {
        if ca.is_some() || !urls.any(|u| u.starts_with("https://")) {
            return Ok(ca);
        }
        let config = match &control.system_tls {
            Some(config) => config.clone(),
            None => {
                let config = tls::client_config(None).map_err(|source| RouterError::Tls {
                    route: route.to_string(),
                    source,
                })?;
                control.system_tls = Some(config.clone());
                config
            }
        };
        Ok(Some(ClientTls { ca: None, config }))
    }

    fn change(
        &self,
        name: &str,
        f: impl FnOnce(&Route) -> Result<Route, RouterError>,
    ) -> Result<(), RouterError> {
        let mut control = self.control(); // serialises writers; readers never wait
        self.change_locked(&mut control, name, f)
    }

    fn change_locked(
        &self,
        control: &mut Control,
        name: &str,
        f: impl FnOnce(&Route) -> Result<Route, RouterError>,
    ) -> Result<(), RouterError> {
        let table = self.shared.table.load();
        let Some(current) = table.routes.iter().find(|r| r.name == name) else {
            return Err(RouterError::NoSuchRoute(name.to_string()));
        };
        let next = Arc::new(f(current)?);
        let routes = table
            .routes
            .iter()
            .map(|r| {
                if r.name == name {
                    next.clone()
                } else {
                    r.clone()
                }
            })
            .collect();
        let table = Table { routes };
        forget_unused_versions(control, &table);
        self.shared.table.store(Arc::new(table));
        Ok(())
    }

    /// Candidate share in basis points (0..=10000).
    pub fn set_weight(&self, route: &str, weight_bp: u16) -> Result<(), RouterError> {
        if weight_bp > 10_000 {
            return Err(RouterError::BadWeight(weight_bp));
        }
        self.change(route, |r| {
            if weight_bp > 0 && r.candidate.is_none() {
                return Err(RouterError::NoCandidate {
                    route: route.to_string(),
                });
            }
            Ok(r.with(|f| f.weight_bp = weight_bp))
        })
    }

    /// Blue/green switch: the candidate becomes stable and stable the candidate; the
    /// weight is mirrored so every request keeps its version (100% candidate becomes
    /// 0% candidate on the swapped route).
    pub fn swap(&self, route: &str) -> Result<(), RouterError> {
        self.change(route, |r| {
            let Some(candidate) = r.candidate.clone() else {
                return Err(RouterError::NoCandidate {
                    route: route.to_string(),
                });
            };
            Ok(r.with(|f| {
                f.candidate = Some(f.stable.clone());
                f.stable = candidate;
                f.weight_bp = 10_000 - f.weight_bp;
            }))
        })
    }

    /// Remove (or replace) the candidate. Requests in flight to the old one finish.
    pub fn set_candidate(&self, route: &str, url: Option<&str>) -> Result<(), RouterError> {
        let mut control = self.control();
        if !self
            .shared
            .table
            .load()
            .routes
            .iter()
            .any(|r| r.name == route)
        {
            return Err(RouterError::NoSuchRoute(route.to_string()));
        }
        let tls = self.client_tls(&mut control, route, url.into_iter(), None)?;
        let candidate = url
            .map(|u| version(&self.shared, &mut control, route, &[u], tls.as_ref()))
            .transpose()?;
        self.change_locked(&mut control, route, |r| {
            Ok(r.with(|f| {
                if candidate.is_none() {
                    f.weight_bp = 0;
                }
                f.candidate = candidate;
            }))
        })
    }

    pub fn set_maintenance(
        &self,
        route: &str,
        maintenance: Option<Maintenance>,
    ) -> Result<(), RouterError> {
        self.change(route, |r| {
            Ok(r.with(|f| f.maintenance = maintenance.map(Arc::new)))
        })
    }

    /// What a version of a route saw in the last `secs` seconds.
    pub fn window(
        &self,
        route: &str,
        role: Role,
        secs: u64,
    ) -> Result<Option<Window>, RouterError> {
        let table = self.shared.table.load();
        let r = table
            .routes
            .iter()
            .find(|r| r.name == route)
            .ok_or_else(|| RouterError::NoSuchRoute(route.to_string()))?;
        Ok(r.version(role)
            .map(|v| v.stats.window(self.shared.second(), secs)))
    }

    /// What a version saw in the `secs` whole seconds before the current one and in
    /// the current one so far, counting only seconds that began after `since`: a launch
    /// judged from the moment it started sending traffic sees none of what came before
    /// (e.g. the errors that rolled the previous launch back). The current second alone
    /// may have only just begun, so it never stands for a whole window; `covered` says
    /// how much time the summed seconds span.
    pub fn window_since(
        &self,
        route: &str,
        role: Role,
        secs: u64,
        since: Instant,
    ) -> Result<Option<Window>, RouterError> {
        let first = since.saturating_duration_since(self.shared.epoch).as_secs() + 1;
        let elapsed = self.shared.epoch.elapsed();
        let now = elapsed.as_secs();
        let into_current = Duration::from_nanos(u64::from(elapsed.subsec_nanos()));
        let available = (now + 1).saturating_sub(first);
        if available == 0 {
            // No second begun since: nothing covered yet.
            return Ok(self.window(route, role, 1)?.map(|_| Window::default()));
        }
        let buckets = secs.saturating_add(1).min(available);
        Ok(self.window(route, role, buckets)?.map(|w| Window {
            covered: Duration::from_secs(buckets - 1) + into_current,
            ..w
        }))
    }

    /// A version's health as its route last checked it.
    pub fn health(&self, route: &str, role: Role) -> Option<HealthReport> {
        let table = self.shared.table.load();
        let r = table.routes.iter().find(|r| r.name == route)?;
        r.version(role).map(|v| v.health())
    }

    pub fn status(&self) -> Vec<RouteStatus> {
        let table = self.shared.table.load();
        let now = self.shared.second();
        table
            .routes
            .iter()
            .map(|r| RouteStatus {
                name: r.name.clone(),
                listen: r.listen,
                weight_bp: r.weight_bp,
                maintenance: r.maintenance.is_some(),
                versions: [Role::Stable, Role::Candidate]
                    .into_iter()
                    .filter_map(|role| {
                        let v = r.version(role)?;
                        Some(VersionStatus {
                            role,
                            url: v.label(),
                            in_flight: v.in_flight.load(Relaxed),
                            health: v.health(),
                            instances: v.instance_reports(self.shared.now_ms()),
                            last_10s: v.stats.window(now, 10),
                            last_60s: v.stats.window(now, 60),
                        })
                    })
                    .collect(),
            })
            .collect()
    }

    /// Keep-alive connections to upstreams that no request is using.
    pub fn idle_upstream_connections(&self) -> usize {
        self.shared.pools().iter().map(|p| p.idle_count()).sum()
    }

    /// Prometheus text exposition of every route.
    pub fn render_metrics(&self) -> String {
        metrics::render(&metrics::of_table(
            &self.shared.table.load(),
            self.shared.now_ms(),
        ))
    }
}

#[derive(Clone, Debug)]
pub struct RouteStatus {
    pub name: String,
    pub listen: SocketAddr,
    pub weight_bp: u16,
    pub maintenance: bool,
    pub versions: Vec<VersionStatus>,
}

#[derive(Clone, Debug)]
pub struct VersionStatus {
    pub role: Role,
    pub url: String,
    pub in_flight: i64,
    pub health: HealthReport,
    pub instances: Vec<InstanceReport>,
    pub last_10s: Window,
    pub last_60s: Window,
}

/// The version of `route` on the instances at `urls`: the one the route already has,
/// or a new one (with no figures yet) whose instances are the route's own where it
/// already had them, on each upstream's shared connections. `tls` verifies the
/// `https://` ones (given whenever there is one).
fn version(
    shared: &Shared,
    control: &mut Control,
    route: &str,
    urls: &[&str],
    tls: Option<&ClientTls>,
) -> Result<Arc<Version>, RouterError> {
    let mut probes = Vec::with_capacity(urls.len());
    for url in urls {
        let probe = Upstream::new(url)?;
        if probes.iter().any(|p: &Upstream| p.url == probe.url) {
            return Err(RouterError::BadUpstream {
                url: url.to_string(),
                why: "listed twice in one version".into(),
            });
        }
        probes.push(probe);
    }
    if probes.is_empty() {
        return Err(RouterError::BadUpstream {
            url: String::new(),
            why: "a version needs at least one instance".into(),
        });
    }
    let label: Vec<&str> = probes.iter().map(|p| p.url.as_str()).collect();
    let key = (route.to_string(), label.join(","));
    let mut upstreams = Vec::with_capacity(probes.len());
    for probe in probes {
        let ca = tls
            .filter(|_| probe.tls.is_some())
            .and_then(|t| t.ca.clone());
        let upstream = control
            .upstreams
            .entry((probe.url.clone(), ca))
            .or_insert_with(|| {
                let up = Arc::new(probe);
                shared.pools().push(up.pool.clone());
                up
            })
            .clone();
        if let Some(tls) = tls {
            upstream.set_tls(&tls.config);
        }
        upstreams.push(upstream);
    }
    // The route's version, unless it now reaches an instance another way (its `ca`).
    let on = |instances: &[Arc<Instance>]| {
        instances
            .iter()
            .zip(&upstreams)
            .all(|(i, u)| Arc::ptr_eq(&i.upstream, u))
    };
    if let Some(v) = control.versions.get(&key)
        && on(&v.instances)
    {
        return Ok(v.clone());
    }
    let mut instances = Vec::with_capacity(upstreams.len());
    for upstream in upstreams {
        let key = (route.to_string(), upstream.url.clone());
        let instance = match control.instances.get(&key) {
            Some(i) if Arc::ptr_eq(&i.upstream, &upstream) => i.clone(),
            _ => {
                let i = Arc::new(Instance::new(upstream));
                control.instances.insert(key, i.clone());
                i
            }
        };
        instances.push(instance);
    }
    let v = Arc::new(Version::new(instances));
    control.versions.insert(key, v.clone());
    Ok(v)
}

/// Drop the versions and instances `table` no longer holds, and stop their health
/// checks. (Requests still in flight on one hold it until they finish.)
fn forget_unused_versions(control: &mut Control, table: &Table) {
    fn versions<'t>(table: &'t Table, route: &'t str) -> impl Iterator<Item = &'t Arc<Version>> {
        table
            .routes
            .iter()
            .filter(move |r| r.name == route)
            .flat_map(|r| [r.version(Role::Stable), r.version(Role::Candidate)])
            .flatten()
    }
    control
        .versions
        .retain(|(route, label), _| versions(table, route).any(|v| v.label() == *label));
    let held = |(route, url): &InstanceKey| {
        versions(table, route).any(|v| v.instances.iter().any(|i| i.upstream.url == *url))
    };
    control.instances.retain(|key, _| held(key));
    control.health.retain(|key, (_, _, task)| {
        let keep = held(key);
        if !keep {
            task.abort();
        }
        keep
    });
}

/// Clears each stats slot a second before it is written; once a second, closes idle
/// upstream connections that were closed by the upstream or idle too long.
async fn tick(shared: Arc<Shared>) {
    let mut interval = tokio::time::interval(Duration::from_millis(250));
    for n in 0u64.. {
        interval.tick().await;
        if n % 4 == 0 {
            let pools = shared.pools().clone();
            for pool in pools {
                pool.sweep(shared.limits.upstream_idle_timeout);
            }
            shared.h2.sweep();
            // Certificates replaced on disk serve the next handshakes.
            for terminator in shared.tls.load().values() {
                terminator.reload();
            }
        }
        let next = shared.second() + 1;
        for route in &shared.table.load().routes {
            route.stable.stats.prepare(next);
            if let Some(c) = &route.candidate {
                c.stats.prepare(next);
            }
        }
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, local: SocketAddr, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(shared.limits.max_connections));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%local, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let admitted = Admitted::new(&shared, permit);
        let terminator = shared.tls.load().get(&local).cloned();
        let conn = Arc::new(proxy::ConnInfo::new(local, peer, terminator.is_some()));
        // A connection's task lives as long as the connection, idle ones included: what
        // its future holds is memory per connection (`tests::a_plain_connection_task`).
        match terminator {
            None => {
                let stream = stream::Stream::Tcp(stream);
                tokio::spawn(h1::serve(stream, conn, shared.clone(), admitted));
            }
            Some(terminator) => {
                tokio::spawn(tls_connection(
                    stream,
                    terminator,
                    conn,
                    shared.clone(),
                    admitted,
                ));
            }
        }
    }
}

/// A client connection, counted open and holding its place under the connection cap
/// until it is dropped (with its task).
pub(crate) struct Admitted {
    shared: Arc<Shared>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Admitted {
    fn new(shared: &Arc<Shared>, permit: tokio::sync::OwnedSemaphorePermit) -> Admitted {
        shared.open_connections.fetch_add(1, Relaxed);
        Admitted {
            shared: shared.clone(),
            _permit: permit,
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.shared.open_connections.fetch_sub(1, Relaxed);
    }
}

/// A connection to a listener with certificates: TLS terminated, then HTTP served.
async fn tls_connection(
    stream: tokio::net::TcpStream,
    terminator: Arc<tls::Terminator>,
    conn: Arc<proxy::ConnInfo>,
    shared: Arc<Shared>,
    admitted: Admitted,
) {
    // Boxed: rustls' handshake state would otherwise stay part of the task for the
    // connection's whole life.
    if let Some(stream) = Box::pin(handshake(stream, terminator, &shared)).await {
        h1::serve(stream, conn, shared, admitted).await;
    }
}

/// TLS terminated on a new connection (within the header timeout). `None` if the
/// handshake failed.
async fn handshake(
    stream: tokio::net::TcpStream,
    terminator: Arc<tls::Terminator>,
    shared: &Shared,
) -> Option<stream::Stream> {
    let acceptor = tokio_rustls::TlsAcceptor::from(terminator.config.clone());
    match tokio::time::timeout(shared.limits.header_read_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(stream::Stream::TlsIn(Box::new(tls))),
        Ok(Err(e)) => {
            shared.tls_handshake_failures.fetch_add(1, Relaxed);
            tracing::debug!(error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            shared.tls_handshake_failures.fetch_add(1, Relaxed);
            None
        }
    }
}

async fn health_loop(shared: Arc<Shared>, instance: Arc<Instance>, check: HealthCheck) {
    let request = health_request(&check.path);
    loop {
        let result = probe(&shared, &instance.upstream, &request, check.timeout).await;
        instance.health.record(&check, result);
        tokio::time::sleep(check.interval).await;
    }
}

/// A health check's request; the instance's own Host is added when it is sent.
fn health_request(path: &str) -> pool::Outgoing {
    let head = format!("GET {path} HTTP/1.1\r\nuser-agent: liftoff-health-check\r\n\r\n");
    pool::Outgoing {
        head: bytes::Bytes::from(head),
        body: wire::RequestBody::None,
        head_only: false,
        resendable: true,
        needs_host: true,
        upgrade: false,
    }
}

/// One check, sent the way requests are (the instance's pool, TLS and all), so it
/// fails for the reasons they would: a certificate that does not verify shows as
/// `TLS: invalid peer certificate: ...`.
async fn probe(
    shared: &Shared,
    upstream: &Upstream,
    request: &pool::Outgoing,
    timeout: Duration,
) -> Result<(), String> {
    use http_body_util::BodyExt;
    /// Read of a check's answer, at most: the connection is reused after it.
    const MAX_BODY_BYTES: usize = 64 * 1024;
    let exchange = async {
        let none = &mut None::<http_body_util::Empty<bytes::Bytes>>;
        let resp = upstream
            .pool
            .send(upstream, request, none, &shared.limits)
            .await?;
        let status = resp.head.status;
        // Read to its end, so the connection goes back to the pool.
        let _ = http_body_util::Limited::new(resp.body, MAX_BODY_BYTES)
            .collect()
            .await;
        Ok::<_, pool::SendError>(status)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(status)) if status.is_success() => Ok(()),
        Ok(Ok(status)) => Err(format!("status {}", status.as_u16())),
        Ok(Err(pool::SendError::Connect(e)))
            if e.kind() == std::io::ErrorKind::ConnectionRefused =>
        {
            Err("connection refused".into())
        }
        Ok(Err(pool::SendError::Connect(e))) => Err(e.to_string()),
        Ok(Err(pool::SendError::Timeout)) | Err(_) => {
            Err(format!("no answer within {} ms", timeout.as_millis()))
        }
        Ok(Err(pool::SendError::NoResponse(e) | pool::SendError::Exchange(e))) => {
            Err(format!("request failed: {e}"))
        }
        Ok(Err(pool::SendError::Client(_))) => Err("request failed".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of what an async fn returns, without calling it.
    fn returns4<A, B, C, D, F: std::future::Future>(_: fn(A, B, C, D) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    fn returns5<A, B, C, D, E, F: std::future::Future>(_: fn(A, B, C, D, E) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every open connection keeps its task for as long as it is open, idle ones
    /// included, so what the task holds is memory per connection. A plain connection's
    /// task is HTTP serving alone (`h1::serve`, its buffer given back between requests
    /// and its response path boxed); a TLS one's adds a few pointers (the handshake's
    /// state is boxed: inline, it more than doubled the task). The bound is for this
    /// build's layout (debug: 712 bytes now; a release build's is smaller).
    #[test]
    fn a_connection_task_holds_http_serving_and_no_handshake_state() {
        let plain = returns4(h1::serve);
        let tls = returns5(tls_connection);
        assert!(
            plain <= 768,
            "a plain connection's task holds {plain} bytes"
        );
        assert!(
            tls <= plain + 160,
            "a TLS connection's task holds {tls} bytes, a plain one's {plain}"
        );
    }

    /// A connection counts as open while its task exists, whatever ends it.
    #[tokio::test]
    async fn a_dropped_connection_task_counts_as_closed() {
        let shared = Arc::new(Shared::new(Limits::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let local = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(local).await.unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        let slots = Arc::new(Semaphore::new(1));
        let admitted = Admitted::new(&shared, slots.clone().try_acquire_owned().unwrap());
        let conn = Arc::new(proxy::ConnInfo::new(local, peer, false));
        let task = h1::serve(stream::Stream::Tcp(stream), conn, shared.clone(), admitted);
        assert_eq!(shared.open_connections.load(Relaxed), 1);
        assert_eq!(slots.available_permits(), 0);
        drop(task);
        assert_eq!(shared.open_connections.load(Relaxed), 0);
        assert_eq!(slots.available_permits(), 1);
    }
}
