//! The async shell around the engine.
//!
//! Invariants:
//! - a transition's records are durable in the journal before any of its effects
//!   starts; if the journal cannot be written, nothing happens;
//! - one actor task per unfinished launch owns its state; everything else reads
//!   snapshots rebuilt from the journal;
//! - step effects go through ports ([`ports`]), never directly to processes or sockets.

mod adapters;
mod analysis;
mod builtin;
mod checklist;
pub mod compose;
mod deploy;
mod deploy_log;
mod execute;
pub mod external;
pub mod fleet;
mod haproxy;
mod http;
mod nginx;
mod notify;
mod outbox;
pub mod ports;
pub mod preflight;
mod prometheus;
mod schedule;
mod shell;
mod traffic;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use liftoff_engine::{
    Action, Effect, Event, Launch, Record, Rejection, StepRef, decide, decide_draining,
};
use liftoff_plan::{BuiltinRouter, Plan, PlanErrors, RouterSpec, StepKind};

pub use adapters::PlanAdapters;
use liftoff_store::{Entry, LaunchRow, NewLaunch, ScheduleRow, Store, StoreError};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use execute::StepContext;
pub use http::ReqwestProbe;
pub use liftoff_checks::{REDACTED, Redactor};
pub use shell::ShellRunner;
pub use traffic::CommandRouter;

use ports::{AdapterFactory, Clock, CommandRunner, HttpProbe, LaunchSpec, SystemClock};

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("invalid plan")]
    Plan(PlanErrors),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error("no launch with id `{0}`")]
    NoSuchLaunch(String),
    #[error("no builtin route named `{0}`")]
    NoSuchRoute(String),
    #[error(transparent)]
    Store(StoreError),
    #[error("journal of launch {launch}: {message}")]
    Journal { launch: String, message: String },
    #[error("the daemon is shutting down")]
    ShuttingDown,
    #[error("{0}")]
    Conflict(String),
    /// The daemon failed itself (a task that panicked): no fault of the request.
    #[error("{0}")]
    Internal(String),
}

impl DriverError {
    /// Stored state is damaged: a journal that fails its checks or does not decode, or a
    /// registry row that does not read.
    pub fn is_corruption(&self) -> bool {
        match self {
            DriverError::Journal { .. } => true,
            DriverError::Store(e) => e.is_corruption(),
            _ => false,
        }
    }
}

impl From<StoreError> for DriverError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NoSuchLaunch(id) => DriverError::NoSuchLaunch(id),
            StoreError::NoSuchRoute(name) => DriverError::NoSuchRoute(name),
            e @ StoreError::LaunchInProgress { .. } => DriverError::Conflict(e.to_string()),
            other => DriverError::Store(other),
        }
    }
}

/// The production ports.
pub struct Ports {
    pub runner: Arc<dyn CommandRunner>,
    pub http: Arc<dyn HttpProbe>,
    pub clock: Arc<dyn Clock>,
    /// The routes every builtin router serves and what they observe, for plans with
    /// `router: { kind: builtin }`.
    pub fleet: Option<Arc<fleet::Fleet>>,
    /// Where `migrate` steps put their backups: `<dir>/<launch id>/`.
    pub backups: PathBuf,
    /// The daemon's feature flags, for `flag` steps and `disable_flag` triggers.
    pub flags: Option<Arc<dyn ports::FlagControl>>,
    /// Where each launch writes its human-readable deployment log; `None`: nowhere.
    pub deployment_logs: Option<PathBuf>,
    /// Delivers the plans' notifications.
    pub notifier: Arc<liftoff_notify::Notifier>,
    /// Makes each launch's traffic control and metric sources; `None`: what the plan
    /// names ([`PlanAdapters`] over this daemon's store, fleet and runner).
    pub adapters: Option<Arc<dyn AdapterFactory>>,
    /// The container engine `deploy` steps drive.
    pub containers: Arc<dyn ports::Containers>,
}

impl Default for Ports {
    fn default() -> Self {
        Self {
            runner: Arc::new(ShellRunner),
            http: Arc::new(ReqwestProbe::new()),
            clock: Arc::new(SystemClock),
            fleet: None,
            backups: std::env::temp_dir().join("liftoff-backups"),
            flags: None,
            deployment_logs: None,
            notifier: Arc::new(liftoff_notify::Notifier::new()),
            adapters: None,
            containers: Arc::new(compose::ComposeCli::new(Arc::new(ShellRunner))),
        }
    }
}

pub struct LaunchRequest {
    pub source: String,
    pub plan_path: String,
    /// Absolute directory that relative paths in the plan resolve against.
    pub workdir: String,
    /// Values for the plan's `${VAR}` references, from the launching user's environment.
    pub variables: HashMap<String, String>,
}

/// A launch as the journal says it is now.
pub struct Snapshot {
    pub row: LaunchRow,
    pub launch: Launch,
    pub records: Vec<(i64, Record)>,
}

struct Msg {
    event: Event,
    reply: Option<oneshot::Sender<Result<(), DriverError>>>,
}

pub struct Driver {
    store: Arc<Store>,
    ports: Ports,
    actors: Mutex<HashMap<String, mpsc::UnboundedSender<Msg>>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// How long a stopping daemon waits for in-flight commands to finish.
    grace: Duration,
    /// Delivers the notices the launches' transitions put in the store's outbox.
    outbox: Arc<outbox::Outbox>,
    adapters: Arc<dyn AdapterFactory>,
    /// The metric sources of running launches with HAProxy or nginx, for reads.
    external: external::Watched,
}

impl Driver {
    pub fn new(store: Arc<Store>, ports: Ports, grace: Duration) -> Arc<Self> {
        let adapters = ports.adapters.clone().unwrap_or_else(|| {
            Arc::new(PlanAdapters {
                store: store.clone(),
                fleet: ports.fleet.clone(),
                runner: ports.runner.clone(),
            })
        });
        Arc::new(Self {
            adapters,
            outbox: outbox::Outbox::new(store.clone(), ports.notifier.clone()),
            store,
            ports,
            actors: Mutex::new(HashMap::new()),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            grace,
            external: external::Watched::default(),
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Validate, register and start a launch. Returns its id.
    pub async fn create(self: &Arc<Self>, req: LaunchRequest) -> Result<String, DriverError> {
        if self.shutdown.is_cancelled() {
            return Err(DriverError::ShuttingDown);
        }
        // Decoding is CPU work proportional to the plan (and a plan comes from a client):
        // off the async workers, so a big one cannot stall the API or other launches.
        let (req, plan) = tokio::task::spawn_blocking(move || {
            let plan = liftoff_plan::parse(&req.source, &|name| req.variables.get(name).cloned());
            (req, plan)
        })
        .await
        .map_err(|e| DriverError::Internal(format!("plan decoding failed: {e}")))?;
        let plan = plan.map_err(DriverError::Plan)?;
        // The certificate files: a bad pair is the plan's problem at its key, now.
        let plan = tokio::task::spawn_blocking(move || preflight::check(&plan).map(|()| plan))
            .await
            .map_err(|e| DriverError::Internal(format!("plan checks failed: {e}")))?
            .map_err(DriverError::Plan)?;
        let workdir = PathBuf::from(&req.workdir);
        if !workdir.is_absolute() || !workdir.is_dir() {
            return Err(DriverError::Invalid(format!(
                "workdir `{}` is not an existing absolute directory",
                req.workdir
            )));
        }
        if let Some(RouterSpec::Builtin(_)) = &plan.router
            && self.ports.fleet.is_none()
        {
            return Err(DriverError::Invalid(
                "this daemon runs without the builtin router".into(),
            ));
        }
        let id = new_launch_id();
        let new = NewLaunch {
            id: id.clone(),
            name: plan.name.clone(),
            service: plan.service.clone(),
            created_at: self.ports.clock.now().to_string(),
            plan_source: req.source,
            plan_path: req.plan_path,
            workdir: req.workdir,
            variables: plan
                .variables
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let store = self.store.clone();
        blocking(move || store.create_launch(&new)).await?;
        let plan = Arc::new(plan);
        self.spawn_actor(&id, Launch::new(plan), workdir);
        self.send(&id, Event::Start).await?;
        tracing::info!(launch = %id, "launch created");
        Ok(id)
    }

    /// Deliver an operator's event (approve, abort, ...) and wait until it is journaled.
    pub async fn send(self: &Arc<Self>, id: &str, event: Event) -> Result<(), DriverError> {
        let actor = self
            .actors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned();
        if let Some(actor) = actor {
            let (reply, answer) = oneshot::channel();
            let msg = Msg {
                event: event.clone(),
                reply: Some(reply),
            };
            if actor.send(msg).is_ok()
                && let Ok(result) = answer.await
            {
                return result;
            }
            if self.shutdown.is_cancelled() {
                return Err(DriverError::ShuttingDown);
            }
            // The actor ended between the lookup and the send (its launch finished).
        }
        // Not running here: finished, or unknown. Let the engine say why.
        let snap = self.snapshot(id)?;
        decide(&snap.launch, event, self.ports.clock.now())?;
        Err(DriverError::Invalid(format!(
            "launch `{id}` is not active in this daemon"
        )))
    }

    pub fn snapshot(&self, id: &str) -> Result<Snapshot, DriverError> {
        let row = self.store.launch(id)?;
        let plan = Arc::new(load_plan(&self.store, &row)?);
        let records = load_records(&self.store, id)?;
        let launch = Launch::replay(plan, records.iter().map(|(_, r)| r));
        Ok(Snapshot {
            row,
            launch,
            records,
        })
    }

    /// Follow-ups, of one launch or all.
    pub fn schedules(&self, launch: Option<&str>) -> Result<Vec<ScheduleRow>, DriverError> {
        Ok(self.store.schedules(launch)?)
    }

    /// Cancel a follow-up that has not started.
    pub fn cancel_schedule(&self, id: &str, by: &str) -> Result<ScheduleRow, DriverError> {
        let now = self.ports.clock.now().to_string();
        let reason = format!("cancelled by {by}");
        if !self
            .store
            .transition_schedule(id, "pending", "cancelled", Some(&reason), &now)?
        {
            return match self.store.schedule(id)? {
                None => Err(DriverError::Invalid(format!("no follow-up with id `{id}`"))),
                Some(row) => Err(DriverError::Conflict(format!(
                    "follow-up `{id}` is {}, not pending",
                    row.status
                ))),
            };
        }
        tracing::info!(schedule = id, by, "follow-up cancelled");
        self.store
            .schedule(id)?
            .ok_or_else(|| DriverError::Invalid(format!("no follow-up with id `{id}`")))
    }

    pub fn list(&self, limit: usize) -> Result<Vec<LaunchRow>, DriverError> {
        Ok(self.store.launches(limit)?)
    }

    /// Publish every builtin route's last split again (after a restart), before any
    /// launch resumes. Returns how many routes came back. `serving`: what the local
    /// router serves now (its saved snapshot): a route the store cannot rebuild (a
    /// damaged launch, a lost row) is kept as it is served, never dropped from under
    /// its users.
    pub fn restore_routes(&self, serving: Option<&liftoff_router::snapshot::Snapshot>) -> usize {
        let Some(fleet) = &self.ports.fleet else {
            return 0;
        };
        for route in serving.map_or(&[][..], |s| &s.routes[..]) {
            fleet.upsert(route.clone());
        }
        let rows = match self.store.routes() {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "cannot read saved routes");
                return 0;
            }
        };
        let mut restored = 0;
        for row in rows {
            let result = self
                .snapshot(&row.launch_id)
                .map_err(|e| e.to_string())
                .and_then(|snap| {
                    let Some(RouterSpec::Builtin(b)) = &snap.launch.plan().router else {
                        return Err("its launch no longer has a builtin router".to_string());
                    };
                    let mut config = builtin::route_config(&row.name, b, row.salt)?;
                    config.weight_bp = row.weight_bp;
                    config.maintenance = row.maintenance.then(|| builtin::maintenance(b));
                    fleet.upsert(config);
                    Ok(())
                });
            match result {
                Ok(()) => restored += 1,
                Err(e) if fleet.route(&row.name).is_some() => tracing::error!(
                    route = %row.name,
                    error = %e,
                    "could not rebuild the route from its launch: keeping it as the router serves it"
                ),
                Err(e) => tracing::error!(route = %row.name, error = %e, "could not restore route"),
            }
        }
        restored
    }

    /// Switch a builtin route's maintenance page by hand (API, CLI), with the settings
    /// of the plan that configured the route.
    pub async fn set_route_maintenance(&self, route: &str, on: bool) -> Result<(), DriverError> {
        let Some(fleet) = self.ports.fleet.clone() else {
            return Err(DriverError::Invalid(
                "this daemon runs without the builtin router".into(),
            ));
        };
        let store = self.store.clone();
        let name = route.to_string();
        let row = blocking(move || store.route(&name))
            .await?
            .ok_or_else(|| DriverError::NoSuchRoute(route.to_string()))?;
        let snap = self.snapshot(&row.launch_id)?;
        let Some(RouterSpec::Builtin(b)) = snap.launch.plan().router.clone() else {
            return Err(DriverError::NoSuchRoute(route.to_string()));
        };
        let page = on.then(|| builtin::maintenance(&b));
        let version = fleet
            .update(route, |r| r.maintenance = page)
            .ok_or_else(|| DriverError::NoSuchRoute(route.to_string()))?;
        let (store, name) = (self.store.clone(), route.to_string());
        blocking(move || {
            store.set_route_maintenance(&name, on, &jiff::Timestamp::now().to_string())
        })
        .await?;
        let applied = fleet.applied(version, builtin::APPLY_DEADLINE).await;
        tracing::info!(route, on, routers = %applied.describe(), "maintenance switched");
        Ok(())
    }

    /// Resume every unfinished launch from its journal. Returns how many. A launch whose
    /// journal or registry row is damaged is logged and left alone (reads report the
    /// damage); the others, and the routes, go on.
    pub async fn recover(self: &Arc<Self>) -> Result<usize, DriverError> {
        // Notices left in the outbox go out, whether or not their launch still runs.
        self.tasks
            .spawn(self.outbox.clone().run(self.shutdown.clone()));
        let ids = self.store.unfinished_launches()?;
        let mut recovered = 0;
        for id in &ids {
            let snap = match self.snapshot(id) {
                Ok(snap) => snap,
                Err(e) if e.is_corruption() => {
                    tracing::error!(launch = %id, error = %e, "launch not recovered: its stored state is damaged");
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Some((step, attempt)) = snap.launch.in_flight() {
                // Whatever the interrupted attempt started must not finish unobserved.
                let tag = execute::attempt_tag(id, step, attempt);
                let killed = shell::kill_attempt_leftovers(&tag);
                if killed > 0 {
                    tracing::warn!(launch = %id, attempt = %tag, killed, "killed processes left by an interrupted step");
                }
            }
            let workdir = PathBuf::from(&snap.row.workdir);
            self.spawn_actor(id, snap.launch, workdir);
            if let Err(e) = self.send(id, Event::Recover).await {
                tracing::error!(launch = %id, error = %e, "recovery failed");
            } else {
                tracing::info!(launch = %id, "launch recovered from the journal");
            }
            recovered += 1;
        }
        self.start_scheduler();
        Ok(recovered)
    }

    /// The `router` settings of the launch that last configured a builtin route, as its
    /// plan wrote them (for showing upstreams without their resolved `${VAR}`s). `None`
    /// when no launch configured it.
    pub fn route_settings(&self, route: &str) -> Result<Option<BuiltinRouter>, DriverError> {
        let Some(row) = self.store.route(route)? else {
            return Ok(None);
        };
        let launch = self.store.launch(&row.launch_id)?;
        Ok(match load_plan(&self.store, &launch)?.router {
            Some(RouterSpec::Builtin(b)) => Some(*b),
            _ => None,
        })
    }

    /// Stop accepting launches, let in-flight commands finish (up to the grace period)
    /// and journal their outcome, then stop. Waiting steps (pause, approval, HTTP
    /// waits) simply resume after the restart.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    fn spawn_actor(self: &Arc<Self>, id: &str, launch: Launch, workdir: PathBuf) {
        let (tx, rx) = mpsc::unbounded_channel();
        let plan = launch.plan_arc();
        let ctx = Arc::new(self.step_context(id, plan.clone(), workdir));
        let metrics_for_notices = ctx.sources.metrics.clone();
        self.external.watch(id, &plan, ctx.sources.metrics.as_ref());
        let (armed, armed_rx) = tokio::sync::watch::channel(launch.triggers_armed());
        let report: analysis::Report = {
            let tx = tx.clone();
            Arc::new(move |event| {
                let _ = tx.send(Msg { event, reply: None });
            })
        };
        if let Some(metrics) = ctx.sources.metrics.clone() {
            tokio::spawn(analysis::sample_traffic(
                metrics,
                armed_rx.clone(),
                report.clone(),
            ));
        }
        if !ctx.sources.is_empty() {
            tokio::spawn(analysis::watch_triggers(
                ctx.sources.clone(),
                plan.rollback.clone(),
                armed_rx,
                report.clone(),
            ));
        }
        let actor = Actor {
            id: id.to_string(),
            store: self.store.clone(),
            clock: self.ports.clock.clone(),
            state: launch,
            ctx,
            tx: tx.clone(),
            rx,
            running: HashMap::new(),
            armed,
            report,
            log: self.deployment_log(id, &plan.service),
            notices: notify::Notices::new(id, plan.clone(), metrics_for_notices),
            outbox: self.outbox.clone(),
        };
        self.actors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), tx);
        let driver = self.clone();
        let shutdown = self.shutdown.clone();
        let grace = self.grace;
        self.tasks.spawn(async move {
            let id = actor.id.clone();
            actor.run(shutdown, grace).await;
            driver.external.forget(&id);
            driver
                .actors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        });
    }

    fn deployment_log(&self, id: &str, service: &str) -> deploy_log::DeploymentLog {
        let Some(dir) = &self.ports.deployment_logs else {
            return deploy_log::DeploymentLog::disabled();
        };
        match self.store.launch(id) {
            Ok(row) => deploy_log::DeploymentLog::new(dir, service, id, &row.created_at),
            Err(e) => {
                tracing::warn!(launch = %id, error = %e, "no deployment log");
                deploy_log::DeploymentLog::disabled()
            }
        }
    }

    /// The file a launch writes its deployment log to, if the daemon keeps them.
    pub fn deployment_log_path(&self, row: &LaunchRow) -> Option<PathBuf> {
        let dir = self.ports.deployment_logs.as_ref()?;
        deploy_log::DeploymentLog::new(dir, &row.service, &row.id, &row.created_at)
            .path()
            .map(Path::to_path_buf)
    }

    fn step_context(&self, id: &str, plan: Arc<Plan>, workdir: PathBuf) -> StepContext {
        let redactor = Redactor::new(plan.variables.redactable_values());
        let env = StepContext::base_env(&plan, id);
        let launch = LaunchSpec {
            id,
            plan: &plan,
            workdir: &workdir,
            env: &env,
            redactor: &redactor,
        };
        let traffic = self.adapters.traffic(&launch);
        let metrics = self.adapters.metrics(&launch);
        let queries = self.adapters.queries(&launch);
        let flags = self.ports.flags.clone().map(|control| analysis::Flags {
            control,
            actor: format!("launch {id}"),
        });
        let sources = analysis::Sources {
            metrics,
            queries,
            service: plan.service.clone(),
            flags,
        };
        let checks = liftoff_checks::Env {
            workdir: workdir.clone(),
            vars: env,
            prometheus: plan.metrics.as_ref().map(
                |liftoff_plan::MetricsSpec::Prometheus { url, timeout }| {
                    (url.expose().to_string(), *timeout)
                },
            ),
            redactor: redactor.clone(),
        };
        StepContext {
            checks,
            backups: self.ports.backups.join(id),
            launch_id: id.to_string(),
            sources,
            plan,
            workdir,
            traffic,
            runner: self.ports.runner.clone(),
            http: self.ports.http.clone(),
            clock: self.ports.clock.clone(),
            redactor,
            containers: self.ports.containers.clone(),
        }
    }
}

struct Actor {
    id: String,
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    state: Launch,
    ctx: Arc<StepContext>,
    tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
    running: HashMap<(StepRef, u32), CancellationToken>,
    /// Tells the trigger watcher whether to watch.
    armed: tokio::sync::watch::Sender<bool>,
    report: analysis::Report,
    log: deploy_log::DeploymentLog,
    notices: Option<notify::Notices>,
    outbox: Arc<outbox::Outbox>,
}

impl Actor {
    async fn run(mut self, shutdown: CancellationToken, grace: Duration) {
        loop {
            let msg = tokio::select! {
                msg = self.rx.recv() => msg,
                () = shutdown.cancelled() => {
                    self.drain(grace).await;
                    return;
                }
            };
            let Some(Msg { event, reply }) = msg else {
                return;
            };
            let result = self.handle(event, false).await;
            if let Err(e) = &result
                && !matches!(e, DriverError::Rejected(_))
            {
                tracing::error!(launch = %self.id, error = %e, "transition failed");
            }
            if let Some(reply) = reply {
                let _ = reply.send(result);
            }
            if self.state.status().is_terminal() {
                return;
            }
        }
    }

    async fn handle(&mut self, event: Event, draining: bool) -> Result<(), DriverError> {
        if let Event::StepFinished { step, attempt, .. } = &event {
            self.running.remove(&(*step, *attempt));
        }
        let now = self.clock.now();
        let before = self.state.status();
        let t = if draining {
            decide_draining(&self.state, event, now)?
        } else {
            decide(&self.state, event, now)?
        };
        if !t.records.is_empty() {
            // Decided with the records, written with them: a notice is never lost to a
            // crash between the two.
            let notices = match &self.notices {
                Some(n) => n.for_transition(&t.state, before, &t.records).await,
                None => Vec::new(),
            };
            self.journal(&t.records, &t.state, &notices).await?;
            if !notices.is_empty() {
                self.outbox.wake();
            }
            for r in &t.records {
                log_record(&self.id, &t.state, r);
            }
            let lines = t
                .records
                .iter()
                .map(|r| {
                    format!(
                        "{}  {}",
                        r.at().strftime("%Y-%m-%dT%H:%M:%S%.3fZ"),
                        t.state.summarize(r)
                    )
                })
                .collect();
            self.log.append(lines).await;
        }
        self.state = t.state;
        let armed = self.state.triggers_armed();
        self.armed
            .send_if_modified(|a| std::mem::replace(a, armed) != armed);
        for effect in t.effects {
            match effect {
                Effect::Execute {
                    step,
                    attempt,
                    deadline,
                } => self.execute(step, attempt, deadline),
                Effect::Cancel { step, attempt } => {
                    if let Some(token) = self.running.remove(&(step, attempt)) {
                        token.cancel();
                    }
                }
                Effect::DisableFlag(f) => {
                    // At once, before the next event: a kill switch does not queue.
                    let result = analysis::disable_flag(&self.ctx.sources, &f.flag, &f.cause)
                        .await
                        .map_err(|e| e.to_string());
                    let event = Event::FlagDisabled {
                        trigger: f.trigger,
                        flag: f.flag,
                        result,
                    };
                    let _ = self.tx.send(Msg { event, reply: None });
                }
            }
        }
        Ok(())
    }

    async fn journal(
        &self,
        records: &[Record],
        next: &Launch,
        notices: &[liftoff_store::NewNotice],
    ) -> Result<(), DriverError> {
        let entries = records
            .iter()
            .map(|r| {
                serde_json::to_string(r).map(|payload| Entry {
                    kind: r.kind().to_string(),
                    at: r.at().to_string(),
                    payload,
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| DriverError::Journal {
                launch: self.id.clone(),
                message: e.to_string(),
            })?;
        let status = next.status();
        let followups = followups(&self.id, next, records, self.clock.now());
        let (store, id, notices) = (self.store.clone(), self.id.clone(), notices.to_vec());
        blocking(move || {
            store.append_with(
                &id,
                &entries,
                status.as_str(),
                status.is_terminal(),
                &followups,
                &notices,
            )
        })
        .await
    }

    fn execute(&mut self, step: StepRef, attempt: u32, deadline: Option<jiff::Timestamp>) {
        let token = CancellationToken::new();
        self.running.insert((step, attempt), token.clone());
        let (ctx, tx, weight) = (self.ctx.clone(), self.tx.clone(), self.state.weight());
        let report = self.report.clone();
        let first_started = self
            .state
            .step(step)
            .first_started_at
            .unwrap_or_else(|| self.clock.now());
        let checkpoints_done = self.state.step(step).checkpoints.clone();
        // A restore needs the backup its migrate step took.
        let backup = match step {
            StepRef::Restore(i) => self.state.forward_steps()[i].backup.clone(),
            _ => None,
        };
        if let Action::Announce = Action::of(&self.ctx.plan, step) {
            let (outbox, store, state, id) = (
                self.outbox.clone(),
                self.store.clone(),
                self.state.clone(),
                self.id.clone(),
            );
            tokio::spawn(async move {
                let outcome = tokio::select! {
                    o = notify::announce(&outbox, &store, &id, &state) => o,
                    () = token.cancelled() => execute::cancelled(),
                };
                let event = Event::StepFinished {
                    step,
                    attempt,
                    outcome,
                };
                let _ = tx.send(Msg { event, reply: None });
            });
            return;
        }
        tokio::spawn(async move {
            let action = Action::of(&ctx.plan, step);
            let tag = execute::attempt_tag(&ctx.launch_id, step, attempt);
            let at = execute::Attempt {
                step,
                attempt,
                tag: &tag,
                deadline,
                weight,
                backup: backup.as_ref(),
                first_started,
                checkpoints_done: &checkpoints_done,
            };
            let outcome = execute::execute(&ctx, &at, &report, action, &token).await;
            let event = Event::StepFinished {
                step,
                attempt,
                outcome,
            };
            let _ = tx.send(Msg { event, reply: None });
        });
    }

    /// Shutdown: commands in flight get up to `grace` to finish and be journaled (so a
    /// clean restart never has to ask about them); nothing new starts.
    async fn drain(&mut self, grace: Duration) {
        let in_flight_command =
            self.state
                .in_flight()
                .filter(|(step, _)| match self.state.action(*step) {
                    Action::SetWeight(_) | Action::Restore(_) => true,
                    Action::Checklist(_) | Action::Announce => false,
                    Action::Step(s) => matches!(
                        s.kind,
                        StepKind::Run(_) | StepKind::Traffic(_) | StepKind::Migrate(_)
                    ),
                });
        if in_flight_command.is_some() {
            let deadline = tokio::time::Instant::now() + grace;
            while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
                let finished = matches!(msg.event, Event::StepFinished { .. });
                let result = self.handle(msg.event, true).await;
                if let Some(reply) = msg.reply {
                    let _ = reply.send(result.and(Err(DriverError::ShuttingDown)));
                }
                if finished && self.state.in_flight().is_none() {
                    break;
                }
            }
        }
        for token in self.running.values() {
            token.cancel();
        }
    }
}

/// The follow-ups a transition's records schedule or cancel.
fn followups(
    id: &str,
    launch: &Launch,
    records: &[Record],
    now: jiff::Timestamp,
) -> liftoff_store::Followups {
    let mut f = liftoff_store::Followups {
        now: now.to_string(),
        ..Default::default()
    };
    for record in records {
        match record {
            Record::FollowUpScheduled {
                step: step @ StepRef::Forward(i),
                due,
                ..
            } => {
                let Some(after) = launch.plan().steps[*i].after.as_ref() else {
                    continue;
                };
                f.schedule.push(liftoff_store::NewSchedule {
                    id: format!("{id}-{i}"),
                    step: launch.step_name(*step),
                    due_at: due.to_string(),
                    command: after.command.to_string(),
                    timeout_ms: u64::try_from(after.timeout.as_millis()).unwrap_or(u64::MAX),
                });
            }
            // Stable's containers go once the candidate has won.
            Record::LaunchEnded { status, .. }
                if *status == liftoff_engine::EndStatus::Succeeded =>
            {
                for (i, step) in launch.plan().steps.iter().enumerate() {
                    let liftoff_plan::StepKind::Deploy(d) = &step.kind else {
                        continue;
                    };
                    let Some(retire) = &d.retire else {
                        continue;
                    };
                    let due = jiff::SignedDuration::try_from(retire.after)
                        .ok()
                        .and_then(|d| now.checked_add(d).ok())
                        .unwrap_or(now);
                    f.schedule.push(liftoff_store::NewSchedule {
                        id: format!("{id}-{i}{}", schedule::RETIRE_SUFFIX),
                        step: step.name.clone(),
                        due_at: due.to_string(),
                        command: format!(
                            "retire `{}` of compose project `{}`",
                            d.service, retire.project
                        ),
                        timeout_ms: u64::try_from(schedule::RETIRE_TIMEOUT.as_millis())
                            .unwrap_or(u64::MAX),
                    });
                }
            }
            Record::LaunchEnded { status, .. }
                if *status != liftoff_engine::EndStatus::Succeeded =>
            {
                f.cancel_pending = Some(format!(
                    "cancelled: the launch ended {}",
                    liftoff_engine::Status::from(*status).as_str()
                ));
            }
            _ => {}
        }
    }
    f
}

fn log_record(id: &str, launch: &Launch, record: &Record) {
    match record {
        Record::StepStarted { step, attempt, .. } => {
            tracing::info!(launch = %id, step = %launch.step_name(*step), attempt, "step started");
        }
        Record::StepFinished { step, outcome, .. } => tracing::info!(
            launch = %id,
            step = %launch.step_name(*step),
            result = ?outcome.result,
            message = outcome.message.as_deref().unwrap_or(""),
            "step finished"
        ),
        Record::LaunchEnded { status, reason, .. } => {
            tracing::info!(launch = %id, status = ?status, reason = %reason, "launch ended");
        }
        Record::Sampled { .. } => tracing::debug!(launch = %id, "traffic sampled"),
        other => tracing::info!(launch = %id, record = other.kind(), "journaled"),
    }
}

fn load_plan(store: &Store, row: &LaunchRow) -> Result<Plan, DriverError> {
    let vars: HashMap<String, String> = store.variables(&row.id)?.into_iter().collect();
    liftoff_plan::parse(&row.plan_source, &|name| vars.get(name).cloned())
        .map_err(DriverError::Plan)
}

fn load_records(store: &Store, id: &str) -> Result<Vec<(i64, Record)>, DriverError> {
    store
        .journal(id)?
        .into_iter()
        .map(|e| {
            serde_json::from_str(&e.payload)
                .map(|r| (e.seq, r))
                .map_err(|err| DriverError::Journal {
                    launch: id.to_string(),
                    message: format!("record {} ({}): {err}", e.seq, e.kind),
                })
        })
        .collect()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, DriverError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| DriverError::Internal(format!("store task failed: {e}")))?
        .map_err(DriverError::from)
}

fn new_launch_id() -> String {
    let mut bytes = [0u8; 5];
    // The OS RNG failing is not something a launch can recover from meaningfully;
    // fall back to the clock so the daemon keeps working.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes.copy_from_slice(&nanos.to_le_bytes()[..5]);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
