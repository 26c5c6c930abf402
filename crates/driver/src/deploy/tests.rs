//! `deploy` steps on a fake container engine, on tokio's paused clock: what is brought
//! up with which labels, what a failure journals, what a rollback and a success remove.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use liftoff_engine::{Event, Outcome, Record, Status, StepRef, StepResult};
use liftoff_store::Store;
use tokio_util::sync::CancellationToken;

use crate::ports::{ComposeUp, Container, ContainerState, Containers, Health, PortError, labels};
use crate::tests::{PausedClock, request};
use crate::{Driver, Ports};

/// A container engine in memory. Containers `up` creates follow `script`, one entry per
/// `list` (the last repeats).
#[derive(Default)]
struct FakeEngine {
    state: Mutex<Engine>,
}

#[derive(Default)]
struct Engine {
    containers: Vec<(Container, bool)>,
    script: Vec<(ContainerState, Option<Health>)>,
    lists: usize,
    ups: Vec<ComposeUp>,
    overlays: Vec<serde_json::Value>,
    removed: Vec<String>,
    logs: String,
    next: u32,
}

impl FakeEngine {
    fn new(script: Vec<(ContainerState, Option<Health>)>, logs: &str) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(Engine {
                script,
                logs: logs.into(),
                ..Engine::default()
            }),
        })
    }

    /// A running container of `project`'s `service`, with `extra` labels.
    fn seed(&self, project: &str, service: &str, extra: &[(&str, &str)]) -> String {
        let mut e = self.state.lock().unwrap();
        e.next += 1;
        let n = e.next;
        let id = format!("seeded{n}");
        let mut labels: std::collections::BTreeMap<String, String> = extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels.insert(labels::PROJECT.into(), project.into());
        labels.insert(labels::SERVICE.into(), service.into());
        e.containers.push((
            Container {
                id: id.clone(),
                name: format!("{project}-{service}-{n}"),
                labels,
                state: ContainerState::Running,
                health: Some(Health::Healthy),
            },
            false,
        ));
        id
    }

    fn present(&self) -> Vec<String> {
        let e = self.state.lock().unwrap();
        e.containers.iter().map(|(c, _)| c.name.clone()).collect()
    }
}

#[async_trait]
impl Containers for FakeEngine {
    async fn up(&self, up: &ComposeUp, _: &CancellationToken) -> Result<String, PortError> {
        let overlay: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(up.files.last().unwrap()).unwrap())
                .unwrap();
        let mut e = self.state.lock().unwrap();
        let mut labels: std::collections::BTreeMap<String, String> = overlay["services"]
            [&up.service]["labels"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        labels.insert(labels::PROJECT.into(), up.project.clone());
        labels.insert(labels::SERVICE.into(), up.service.clone());
        e.next += 1;
        let n = e.next;
        e.containers.push((
            Container {
                id: format!("c{n}"),
                name: format!("{}-{}-{n}", up.project, up.service),
                labels,
                state: ContainerState::Created,
                health: None,
            },
            true,
        ));
        e.ups.push(up.clone());
        e.overlays.push(overlay);
        Ok("Creating ... done".into())
    }

    async fn list(&self, filter: &[(&str, &str)]) -> Result<Vec<Container>, PortError> {
        let mut e = self.state.lock().unwrap();
        let step = e.lists.min(e.script.len().saturating_sub(1));
        let now = e.script.get(step).cloned();
        e.lists += 1;
        if let Some((state, health)) = now {
            for (c, scripted) in &mut e.containers {
                if *scripted {
                    c.state = state.clone();
                    c.health = health;
                }
            }
        }
        Ok(e.containers
            .iter()
            .map(|(c, _)| c)
            .filter(|c| filter.iter().all(|(k, v)| c.label(k) == Some(v)))
            .cloned()
            .collect())
    }

    async fn remove(&self, ids: &[String]) -> Result<(), PortError> {
        let mut e = self.state.lock().unwrap();
        e.containers.retain(|(c, _)| !ids.contains(&c.id));
        e.removed.extend(ids.iter().cloned());
        Ok(())
    }

    async fn logs(&self, _: &str, _: usize) -> Result<String, PortError> {
        Ok(self.state.lock().unwrap().logs.clone())
    }
}

struct Deploying {
    dir: tempfile::TempDir,
    driver: Arc<Driver>,
}

impl Deploying {
    async fn start(engine: Arc<FakeEngine>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("state.db")).unwrap());
        let ports = Ports {
            clock: Arc::new(PausedClock {
                at: jiff::Timestamp::now(),
                from: tokio::time::Instant::now(),
            }),
            backups: dir.path().join("launches"),
            containers: engine.clone(),
            ..Ports::default()
        };
        let driver = Driver::new(store, ports, Duration::from_secs(1));
        // Starts the scheduler, which retires stable.
        driver.recover().await.unwrap();
        Self { dir, driver }
    }

    async fn launch(&self, plan: &str) -> String {
        let mut req = request(plan, self.dir.path());
        req.variables
            .insert("TOKEN".into(), "s3cret-token-value".into());
        self.driver.create(req).await.unwrap()
    }

    async fn until_ended(&self, id: &str) -> liftoff_engine::Launch {
        for _ in 0..2000 {
            let snap = self.driver.snapshot(id).unwrap();
            if snap.launch.status().is_terminal() {
                return snap.launch;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the launch did not end");
    }

    /// How `step`'s last attempt ended.
    fn outcome(&self, id: &str, step: StepRef) -> Outcome {
        let snap = self.driver.snapshot(id).unwrap();
        snap.records
            .into_iter()
            .rev()
            .find_map(|(_, r)| match r {
                Record::StepFinished {
                    step: s, outcome, ..
                } if s == step => Some(outcome),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{step:?} did not finish: {:#?}", self.records(id)))
    }

    fn records(&self, id: &str) -> Vec<Record> {
        let snap = self.driver.snapshot(id).unwrap();
        snap.records.into_iter().map(|(_, r)| r).collect()
    }
}

const PLAN: &str = "version: 1
name: deploy green
service: web
steps:
  - deploy:
      compose: compose.yml
      service: web
      project: green
      image: shop:2.0
      env: { PORT: \"9001\", TOKEN: \"${TOKEN}\" }
      timeout: 30s
      retire: { project: blue, after: 5s }
  - pause: 1s
";

fn healthy_after_starting() -> Vec<(ContainerState, Option<Health>)> {
    vec![
        (ContainerState::Created, None),
        (ContainerState::Running, Some(Health::Starting)),
        (ContainerState::Running, Some(Health::Starting)),
        (ContainerState::Running, Some(Health::Healthy)),
    ]
}

#[tokio::test(start_paused = true)]
async fn a_deploy_waits_for_health_labels_its_containers_and_stable_retires_after_success() {
    let engine = FakeEngine::new(healthy_after_starting(), "");
    let t = Deploying::start(engine.clone()).await;
    let blue = engine.seed("blue", "web", &[]);
    let other = engine.seed("blue", "postgres", &[]);
    let id = t.launch(PLAN).await;
    let launch = t.until_ended(&id).await;
    assert_eq!(launch.status(), Status::Succeeded, "{:#?}", t.records(&id));

    {
        let e = engine.state.lock().unwrap();
        let [up] = e.ups.as_slice() else {
            panic!("one `up`: {:?}", e.ups)
        };
        assert_eq!((up.project.as_str(), up.service.as_str()), ("green", "web"));
        assert_eq!(up.files[0], t.dir.path().join("compose.yml"));
        assert!(
            up.env
                .iter()
                .any(|(k, v)| k == "LIFTOFF_ATTEMPT" && *v == format!("{id}/step-0/1")),
            "compose runs with the attempt's tag, so a recovering daemon can kill it"
        );
        let service = &e.overlays[0]["services"]["web"];
        assert_eq!(service["image"], "shop:2.0");
        assert_eq!(service["environment"]["PORT"], "9001");
        assert_eq!(service["environment"]["TOKEN"], "s3cret-token-value");
        assert_eq!(service["labels"][labels::LAUNCH], id.as_str());
        assert_eq!(service["labels"][labels::ATTEMPT], format!("{id}/step-0/1"));
        let mode = std::fs::metadata(up.files.last().unwrap()).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600,
            "the overlay holds resolved values"
        );
    }

    let deployed = t.outcome(&id, StepRef::Forward(0));
    assert_eq!(deployed.result, StepResult::Succeeded);
    assert!(
        deployed
            .message
            .as_deref()
            .unwrap()
            .contains("web of project `green` running and healthy: green-web-3"),
        "{deployed:?}"
    );

    // Retired 5 s after the success: stable's `web`, not the project's other services.
    assert!(engine.present().iter().any(|n| n.starts_with("blue-web")));
    tokio::time::sleep(Duration::from_secs(6)).await;
    let rows = t.driver.schedules(Some(&id)).unwrap();
    let [row] = rows.as_slice() else {
        panic!("one follow-up: {rows:?}")
    };
    assert_eq!(row.status, "succeeded", "{row:?}");
    assert!(
        row.command
            .contains("retire `web` of compose project `blue`")
    );
    let e = engine.state.lock().unwrap();
    assert_eq!(e.removed, [blue]);
    let left: Vec<&str> = e.containers.iter().map(|(c, _)| c.id.as_str()).collect();
    assert_eq!(left, [other.as_str(), "c3"]);
}

#[tokio::test(start_paused = true)]
async fn an_unhealthy_candidate_fails_with_its_redacted_logs_and_the_rollback_removes_it() {
    let engine = FakeEngine::new(
        vec![
            (ContainerState::Running, Some(Health::Starting)),
            (ContainerState::Running, Some(Health::Unhealthy)),
        ],
        "listening on :9001\npanic: cannot log in with s3cret-token-value\n",
    );
    let t = Deploying::start(engine.clone()).await;
    let blue = engine.seed("blue", "web", &[]);
    let id = t.launch(PLAN).await;
    let launch = t.until_ended(&id).await;
    assert_eq!(launch.status(), Status::RolledBack);

    let failed = &t.outcome(&id, StepRef::Forward(0));
    assert_eq!(failed.result, StepResult::Failed);
    assert_eq!(
        failed.message.as_deref(),
        Some("container green-web-2: its healthcheck failed (unhealthy)")
    );
    let logs = failed.output.as_deref().unwrap();
    assert!(
        logs.contains("--- green-web-2 (last 50 lines) ---"),
        "{logs}"
    );
    assert!(logs.contains("panic: cannot log in with"), "{logs}");
    assert!(
        !logs.contains("s3cret-token-value"),
        "a secret in the journal: {logs}"
    );

    // The rollback's own step removed the candidate; stable runs on, nothing retires.
    let removal = &t.outcome(&id, StepRef::Rollback(0));
    assert_eq!(removal.result, StepResult::Succeeded);
    assert_eq!(
        removal.message.as_deref(),
        Some("removed compose project `green`: green-web-2")
    );
    assert_eq!(engine.present(), ["blue-web-1"]);
    assert_eq!(engine.state.lock().unwrap().removed, ["c2"]);
    assert!(!engine.state.lock().unwrap().removed.contains(&blue));
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(t.driver.schedules(Some(&id)).unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_attempt_removes_what_an_earlier_one_left_and_refuses_a_project_it_does_not_own() {
    const GATED: &str = "version: 1
name: gated deploy
service: web
steps:
  - approve: { role: ops }
  - deploy: { compose: compose.yml, service: web, project: green, timeout: 30s }
";
    let engine = FakeEngine::new(vec![(ContainerState::Running, None)], "");
    let t = Deploying::start(engine.clone()).await;
    let id = t.launch(GATED).await;
    // What a daemon killed during an earlier attempt left: this launch's labels.
    let stale = engine.seed(
        "green",
        "web",
        &[
            (labels::LAUNCH, id.as_str()),
            (labels::ATTEMPT, &format!("{id}/step-1/1-before-the-crash")),
        ],
    );
    t.driver
        .send(
            &id,
            Event::Approve {
                role: "ops".into(),
                by: "ana".into(),
                comment: None,
            },
        )
        .await
        .unwrap();
    let launch = t.until_ended(&id).await;
    assert_eq!(launch.status(), Status::Succeeded, "{:#?}", t.records(&id));
    let message = t.outcome(&id, StepRef::Forward(1)).message.unwrap();
    assert!(
        message.starts_with("removed 1 container(s) of an earlier attempt; web of project `green` running and healthy"),
        "{message}"
    );
    assert_eq!(engine.state.lock().unwrap().removed, [stale]);

    // A project with containers no launch of ours started is stable's, or someone's.
    let engine = FakeEngine::new(vec![(ContainerState::Running, None)], "");
    let t = Deploying::start(engine.clone()).await;
    engine.seed("green", "web", &[]);
    let id = t.launch(GATED).await;
    t.driver
        .send(
            &id,
            Event::Approve {
                role: "ops".into(),
                by: "ana".into(),
                comment: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(t.until_ended(&id).await.status(), Status::RolledBack);
    let message = t.outcome(&id, StepRef::Forward(1)).message.unwrap();
    assert_eq!(
        message,
        "compose project `green` already has containers this launch did not start (green-web-1): is it stable's? The candidate needs a project of its own"
    );
    let e = engine.state.lock().unwrap();
    assert!(
        e.ups.is_empty() && e.removed.is_empty(),
        "it touched stable"
    );
}
