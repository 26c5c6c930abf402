//! The driver with fake ports: what the journal holds when an effect happens, and whole
//! launches on fake traffic and metrics on tokio's paused clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use liftoff_engine::{Event, Record};
use liftoff_plan::{TriggerAction, Weight};
use liftoff_store::Store;

use crate::analysis::tests::Scripted;
use crate::ports::{
    AdapterFactory, FlagChange, FlagControl, LaunchSpec, MetricSource, PortError, QuerySource,
    TrafficControl,
};
use crate::{Driver, LaunchRequest, Ports, fleet::Fleet};

/// A flag service that, when asked to change a flag, notes the journal's record kinds
/// at that moment.
struct JournalWatchingFlags {
    store: Arc<Store>,
    calls: Mutex<Vec<FlagCall>>,
}

/// One change asked of the flag service, and the journal's record kinds then.
#[derive(Clone, Debug)]
struct FlagCall {
    flag: String,
    change: FlagChange,
    cause: String,
    journal: Vec<String>,
}

#[async_trait]
impl FlagControl for JournalWatchingFlags {
    async fn change(
        &self,
        flag: &str,
        change: FlagChange,
        actor: &str,
        cause: &str,
    ) -> Result<String, PortError> {
        let id = actor.strip_prefix("launch ").unwrap();
        let kinds = self
            .store
            .journal(id)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        self.calls.lock().unwrap().push(FlagCall {
            flag: flag.into(),
            change,
            cause: cause.into(),
            journal: kinds,
        });
        Ok(format!("flag `{flag}`: enabled true → false"))
    }
}

/// A launch of `plan`, run in `workdir`.
pub(crate) fn request(plan: &str, workdir: &std::path::Path) -> LaunchRequest {
    LaunchRequest {
        source: plan.into(),
        plan_path: "plan.yaml".into(),
        workdir: workdir.to_string_lossy().into_owned(),
        variables: Default::default(),
    }
}

const KILL_SWITCH_PLAN: &str = "version: 1
name: kill switch
service: shop
router: { kind: builtin, listen: 127.0.0.1:9, stable: http://127.0.0.1:1, candidate: http://127.0.0.1:2 }
steps:
  - pause: 1h
rollback:
  on:
    - { when: \"error_rate > 10% over 1s\", disable_flag: new_checkout }
";

#[tokio::test]
async fn a_disable_flag_trigger_is_journaled_before_the_flag_is_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("state.db")).unwrap());
    let flags = Arc::new(JournalWatchingFlags {
        store: store.clone(),
        calls: Mutex::new(Vec::new()),
    });
    let ports = Ports {
        fleet: Some(Arc::new(Fleet::new())),
        flags: Some(flags.clone()),
        backups: dir.path().join("backups"),
        ..Ports::default()
    };
    let driver = Driver::new(store.clone(), ports, Duration::from_secs(1));
    let id = driver
        .create(request(KILL_SWITCH_PLAN, dir.path()))
        .await
        .unwrap();
    driver
        .send(
            &id,
            Event::TriggerFired {
                trigger: "error_rate > 10% over 1s".into(),
                action: TriggerAction::DisableFlag("new_checkout".into()),
                detail: "candidate error_rate 30.00%".into(),
            },
        )
        .await
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let records = driver.snapshot(&id).unwrap().records;
            if let Some(r) = records
                .into_iter()
                .find(|(_, r)| matches!(r, Record::FlagDisabled { .. }))
            {
                return r.1;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the outcome is journaled");

    let calls = flags.calls.lock().unwrap().clone();
    let [
        FlagCall {
            flag,
            change,
            cause,
            journal,
        },
    ] = calls.as_slice()
    else {
        panic!("one flag change: {calls:#?}");
    };
    assert_eq!(flag, "new_checkout");
    assert_eq!(*change, FlagChange::Enabled(false));
    assert_eq!(
        cause,
        "trigger `error_rate > 10% over 1s` fired: candidate error_rate 30.00%"
    );
    assert_eq!(
        journal.last().map(String::as_str),
        Some("trigger_fired"),
        "the firing is durable before the flag changes: {journal:?}"
    );
    assert!(!journal.iter().any(|k| k == "flag_disabled"), "{journal:?}");
    assert_eq!(
        outcome,
        Record::FlagDisabled {
            at: outcome.at(),
            trigger: "error_rate > 10% over 1s".into(),
            flag: "new_checkout".into(),
            ok: true,
            detail: "flag `new_checkout`: enabled true → false".into(),
        }
    );
    driver.shutdown().await;
}

/// Wall-clock time that moves with tokio's (paused) clock.
pub(crate) struct PausedClock {
    pub at: jiff::Timestamp,
    pub from: tokio::time::Instant,
}

impl crate::ports::Clock for PausedClock {
    fn now(&self) -> jiff::Timestamp {
        let elapsed = jiff::SignedDuration::try_from(self.from.elapsed()).unwrap();
        self.at.checked_add(elapsed).unwrap()
    }
}

/// A router that does what it is asked and remembers each weight.
#[derive(Default)]
struct RecordedTraffic(Mutex<Vec<String>>);

#[async_trait]
impl TrafficControl for RecordedTraffic {
    async fn set_weight(
        &self,
        weight: Weight,
        _: &tokio_util::sync::CancellationToken,
    ) -> Result<String, PortError> {
        self.0.lock().unwrap().push(weight.to_string());
        Ok(format!("candidate weight set to {weight}%"))
    }
}

struct FakeAdapters {
    traffic: Arc<RecordedTraffic>,
    metrics: Arc<dyn MetricSource>,
}

impl AdapterFactory for FakeAdapters {
    fn traffic(&self, _: &LaunchSpec<'_>) -> Option<Arc<dyn TrafficControl>> {
        Some(self.traffic.clone())
    }

    fn metrics(&self, _: &LaunchSpec<'_>) -> Option<Arc<dyn MetricSource>> {
        Some(self.metrics.clone())
    }

    fn queries(&self, _: &LaunchSpec<'_>) -> Option<Arc<dyn QuerySource>> {
        None
    }
}

/// A launch of `plan` on fake traffic and metrics, on tokio's paused clock: no process,
/// no socket, no waiting.
struct FakeLaunch {
    _dir: tempfile::TempDir,
    driver: Arc<Driver>,
    id: String,
    traffic: Arc<RecordedTraffic>,
}

impl FakeLaunch {
    async fn start(plan: &str, metrics: Scripted) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("state.db")).unwrap());
        let traffic = Arc::new(RecordedTraffic::default());
        let ports = Ports {
            // Builtin conditions need a plan with the builtin router, which needs a fleet;
            // the fakes stand in for what the fleet would route and observe.
            fleet: Some(Arc::new(Fleet::new())),
            clock: Arc::new(PausedClock {
                at: jiff::Timestamp::now(),
                from: tokio::time::Instant::now(),
            }),
            adapters: Some(Arc::new(FakeAdapters {
                traffic: traffic.clone(),
                metrics: Arc::new(metrics),
            })),
            backups: dir.path().join("backups"),
            ..Ports::default()
        };
        let driver = Driver::new(store, ports, Duration::from_secs(1));
        let id = driver.create(request(plan, dir.path())).await.unwrap();
        Self {
            _dir: dir,
            driver,
            id,
            traffic,
        }
    }

    /// Waits (paused time) until the journal holds a record that `pick` picks, at most
    /// `within`; what it picked, and when from the start.
    async fn wait_for<T>(
        &self,
        within: Duration,
        pick: impl Fn(&Record) -> Option<T>,
    ) -> (Duration, T) {
        let started = tokio::time::Instant::now();
        loop {
            let snap = self.driver.snapshot(&self.id).unwrap();
            if let Some(found) = snap.records.iter().find_map(|(_, r)| pick(r)) {
                return (started.elapsed(), found);
            }
            assert!(
                started.elapsed() < within,
                "not journaled within {within:?}: {:#?}",
                snap.records
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn status(&self) -> liftoff_engine::Status {
        self.driver.snapshot(&self.id).unwrap().launch.status()
    }

    fn weights(&self) -> Vec<String> {
        self.traffic.0.lock().unwrap().clone()
    }
}

const TRIGGERED_PLAN: &str = "version: 1
name: triggered
service: shop
router: { kind: builtin, listen: 127.0.0.1:9, stable: http://127.0.0.1:1, candidate: http://127.0.0.1:2 }
steps:
  - traffic: 25%
  - pause: 10s
  - traffic: 100%
  - pause: 1h
rollback:
  check_every: 1s
  on:
    - { when: \"error_rate > 5% over 10s\", action: ACTION }
";

/// Why the launch was held, if `record` holds it.
fn held(record: &Record) -> Option<String> {
    match record {
        Record::Held { reason, .. } => Some(reason.clone()),
        _ => None,
    }
}

/// [`TRIGGERED_PLAN`] with its trigger's `action`, while 30% of the candidate's
/// requests fail (stable's 1%).
async fn failing_candidate(action: &str) -> FakeLaunch {
    let candidate = Scripted(Mutex::new(vec![(400, 120)]));
    FakeLaunch::start(&TRIGGERED_PLAN.replace("ACTION", action), candidate).await
}

#[tokio::test(start_paused = true)]
async fn a_trigger_crossing_rolls_the_launch_back() {
    let launch = failing_candidate("rollback").await;
    let (after, reason) = launch
        .wait_for(Duration::from_secs(60), |r| match r {
            Record::LaunchEnded { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .await;
    assert_eq!(launch.status(), liftoff_engine::Status::RolledBack);
    assert!(
        reason.contains("error_rate > 5% over 10s"),
        "the trigger is named: {reason}"
    );
    assert_eq!(
        launch.weights(),
        ["0", "25", "0"],
        "the baseline, 25%, back to stable; never on to 100%"
    );
    assert!(
        after < Duration::from_secs(10),
        "before the pause ended: {after:?}"
    );
    launch.driver.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_pause_trigger_holds_the_launch_where_it_is() {
    let launch = failing_candidate("pause").await;
    let (_, reason) = launch.wait_for(Duration::from_secs(60), held).await;
    assert!(
        reason.starts_with("trigger `error_rate > 5% over 10s` fired: "),
        "{reason}"
    );
    // Well past the 10 s pause: a held launch starts no further step.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(launch.status(), liftoff_engine::Status::Paused);
    assert_eq!(
        launch.weights(),
        ["0", "25"],
        "the traffic stays where it was"
    );
    launch.driver.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_analyze_step_past_its_inconclusive_limit_holds_the_launch() {
    let plan = "version: 1
name: analyzed
service: shop
router: { kind: builtin, listen: 127.0.0.1:9, stable: http://127.0.0.1:1, candidate: http://127.0.0.1:2 }
steps:
  - traffic: 25%
  - analyze:
      for: 1m
      interval: 1s
      gates: [\"error_rate < 1%\"]
      min_requests: 100
      inconclusive_limit: 2
      on_inconclusive: pause
  - traffic: 100%
";
    // Healthy, but too few requests to tell.
    let quiet = Scripted(Mutex::new(vec![(5, 0)]));
    let launch = FakeLaunch::start(plan, quiet).await;
    let (after, reason) = launch.wait_for(Duration::from_secs(120), held).await;
    assert!(
        reason.starts_with("3 inconclusive evaluation(s), 2 allowed"),
        "{reason}"
    );
    assert!(
        after < Duration::from_secs(10),
        "held at the third evaluation, not at the step's end: {after:?}"
    );
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(launch.status(), liftoff_engine::Status::Paused);
    assert_eq!(launch.weights(), ["0", "25"], "never on to 100%");
    launch.driver.shutdown().await;
}

/// A router that takes `delay` to apply any weight but 0 (ignoring cancellation, as a
/// slow load balancer's API would), and remembers each weight it was asked for.
struct SlowTraffic {
    delay: Duration,
    asked: Mutex<Vec<String>>,
}

#[async_trait]
impl TrafficControl for SlowTraffic {
    async fn set_weight(
        &self,
        weight: Weight,
        _: &tokio_util::sync::CancellationToken,
    ) -> Result<String, PortError> {
        self.asked.lock().unwrap().push(weight.to_string());
        if weight != Weight::STABLE {
            tokio::time::sleep(self.delay).await;
        }
        Ok(format!("candidate weight set to {weight}%"))
    }
}

struct SlowAdapters(Arc<SlowTraffic>);

impl AdapterFactory for SlowAdapters {
    fn traffic(&self, _: &LaunchSpec<'_>) -> Option<Arc<dyn TrafficControl>> {
        Some(self.0.clone())
    }

    fn metrics(&self, _: &LaunchSpec<'_>) -> Option<Arc<dyn MetricSource>> {
        None
    }

    fn queries(&self, _: &LaunchSpec<'_>) -> Option<Arc<dyn QuerySource>> {
        None
    }
}

/// Shut the driver down (grace 1 s) while a traffic change taking `delay` is in flight:
/// how long the shutdown took, and whether the step's outcome was journaled.
async fn shutdown_during_a_change(delay: Duration) -> (Duration, bool) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("state.db")).unwrap());
    let traffic = Arc::new(SlowTraffic {
        delay,
        asked: Mutex::new(Vec::new()),
    });
    let ports = Ports {
        fleet: Some(Arc::new(Fleet::new())),
        clock: Arc::new(PausedClock {
            at: jiff::Timestamp::now(),
            from: tokio::time::Instant::now(),
        }),
        adapters: Some(Arc::new(SlowAdapters(traffic.clone()))),
        backups: dir.path().join("backups"),
        ..Ports::default()
    };
    let plan = "version: 1
name: slow router
service: shop
router: { kind: builtin, listen: 127.0.0.1:9, stable: http://127.0.0.1:1, candidate: http://127.0.0.1:2 }
steps:
  - traffic: 25%
  - pause: 1h
";
    let driver = Driver::new(store.clone(), ports, Duration::from_secs(1));
    let id = driver.create(request(plan, dir.path())).await.unwrap();
    while !traffic.asked.lock().unwrap().iter().any(|w| w == "25") {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let asked = tokio::time::Instant::now();
    driver.shutdown().await;
    let took = asked.elapsed();
    let finished =
        store.journal(&id).unwrap().iter().any(|e| {
            e.kind == "step_finished" && e.payload.contains("candidate weight set to 25%")
        });
    (took, finished)
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_lets_a_traffic_change_in_flight_finish_and_journals_it() {
    let (took, finished) = shutdown_during_a_change(Duration::from_millis(500)).await;
    assert!(finished, "the change's outcome is in the journal");
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(1),
        "waited for the change, not for the grace period: {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_waits_no_longer_than_its_grace_for_a_change_in_flight() {
    let (took, finished) = shutdown_during_a_change(Duration::from_secs(30)).await;
    assert!(
        !finished,
        "not finished: the restarted daemon finds it in flight and does it again"
    );
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(2),
        "the grace period, then stop: {took:?}"
    );
}
