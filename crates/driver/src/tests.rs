//! The driver with fake ports: what the journal holds when an effect happens.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use liftoff_engine::{Event, Record};
use liftoff_plan::TriggerAction;
use liftoff_store::Store;

use crate::ports::{FlagChange, FlagControl};
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
    ) -> Result<String, String> {
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
        .create(LaunchRequest {
            source: KILL_SWITCH_PLAN.into(),
            plan_path: "plan.yaml".into(),
            workdir: dir.path().to_string_lossy().into_owned(),
            variables: Default::default(),
        })
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
