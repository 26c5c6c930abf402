use std::sync::Arc;

use jiff::Timestamp;
use liftoff_engine::*;
use liftoff_plan::parse;

/// A shell without effects: journals records, checks that replaying the journal gives
/// the live state after every transition, and remembers what it was asked to do.
struct Sim {
    plan: Arc<liftoff_plan::Plan>,
    state: Launch,
    journal: Vec<Record>,
    executed: Vec<StepRef>,
    cancelled: Vec<StepRef>,
    /// Flags it was asked to turn off, with the journal's length at that moment.
    disabled: Vec<(FlagToDisable, usize)>,
    now: Timestamp,
}

impl Sim {
    fn new(src: &str) -> Self {
        let plan = Arc::new(parse(src, &|_| None).expect("valid plan"));
        Self {
            state: Launch::new(plan.clone()),
            plan,
            journal: Vec::new(),
            executed: Vec::new(),
            cancelled: Vec::new(),
            disabled: Vec::new(),
            now: "2026-11-21T10:00:00Z".parse().unwrap(),
        }
    }

    fn tick(&mut self, secs: i64) {
        self.now = self
            .now
            .checked_add(jiff::SignedDuration::from_secs(secs))
            .unwrap();
    }

    fn send(&mut self, event: Event) -> Result<(), Rejection> {
        let t = decide(&self.state, event, self.now)?;
        self.journal.extend(t.records.iter().cloned());
        self.state = t.state;
        let replayed = Launch::replay(self.plan.clone(), &self.journal);
        assert_eq!(
            format!("{replayed:?}"),
            format!("{:?}", self.state),
            "replay diverged"
        );
        for effect in t.effects {
            match effect {
                Effect::Execute { step, .. } => self.executed.push(step),
                Effect::Cancel { step, .. } => self.cancelled.push(step),
                Effect::DisableFlag(f) => self.disabled.push((f, self.journal.len())),
            }
        }
        Ok(())
    }

    fn finish(&mut self, result: StepResult, message: &str) {
        let (step, attempt) = self.state.in_flight().expect("a step in flight");
        self.send(Event::StepFinished {
            step,
            attempt,
            outcome: Outcome::new(result, message),
        })
        .unwrap();
    }

    /// Start the launch and let the traffic baseline succeed.
    fn start(&mut self) {
        self.send(Event::Start).unwrap();
        if self.state.in_flight().map(|(s, _)| s) == Some(StepRef::Baseline) {
            self.ok();
        }
    }

    fn ok(&mut self) {
        self.finish(StepResult::Succeeded, "ok");
    }

    /// Simulate kill -9 and restart: state comes from the journal alone.
    fn restart(&mut self) {
        self.state = Launch::replay(self.plan.clone(), &self.journal);
        self.send(Event::Recover).unwrap();
    }
}

const ROUTER: &str = "router: { kind: command, command: './w.sh {weight}' }\n";

fn plan(steps: &str, rollback: &str) -> String {
    format!(
        "version: 1\nname: t\nservice: svc\n{ROUTER}steps:\n{steps}rollback:\n  steps:\n{rollback}"
    )
}

#[test]
fn run_traffic_approve_traffic_succeeds_in_order() {
    let mut sim = Sim::new(&plan(
        "  - { name: deploy, run: ./deploy.sh }\n  - traffic: 50%\n  - approve: { role: sre }\n  - traffic: 100%\n",
        "    - run: ./cleanup.sh\n",
    ));
    assert_eq!(sim.state.status(), Status::Pending);
    sim.send(Event::Start).unwrap();
    assert_eq!(sim.state.status(), Status::Running);
    sim.ok(); // baseline
    assert_eq!(sim.state.weight().map(|w| w.basis_points()), Some(0));
    sim.ok();
    sim.ok();
    assert_eq!(sim.state.weight().map(|w| w.basis_points()), Some(5000));
    assert_eq!(sim.state.status(), Status::WaitingApproval);

    let wrong = sim.send(Event::Approve {
        role: "dev".into(),
        by: "bob".into(),
        comment: None,
    });
    assert_eq!(wrong.unwrap_err().code(), "wrong_role");
    sim.send(Event::Approve {
        role: "sre".into(),
        by: "ana".into(),
        comment: Some("dashboards green".into()),
    })
    .unwrap();
    assert_eq!(
        sim.cancelled,
        [StepRef::Forward(2)],
        "the approval timer is stopped"
    );
    let approval = sim.state.forward_steps()[2].approval.clone().unwrap();
    assert_eq!(
        (approval.by.as_str(), approval.comment.as_deref()),
        ("ana", Some("dashboards green"))
    );
    sim.ok();
    assert_eq!(sim.state.status(), Status::Succeeded);
    assert_eq!(
        sim.executed,
        [
            StepRef::Baseline,
            StepRef::Forward(0),
            StepRef::Forward(1),
            StepRef::Forward(2),
            StepRef::Forward(3)
        ],
        "traffic pinned to stable first; rollback steps never ran on success"
    );
    assert_eq!(sim.state.weight().map(|w| w.basis_points()), Some(10_000));
}

#[test]
fn failing_step_reverts_traffic_first_then_runs_rollback_steps() {
    let mut sim = Sim::new(&plan(
        "  - traffic: 25%\n  - { name: smoke, run: ./smoke.sh }\n  - traffic: 100%\n",
        "    - { name: page, run: ./page.sh }\n    - { name: cleanup, run: ./cleanup.sh }\n",
    ));
    sim.send(Event::Start).unwrap();
    sim.ok();
    sim.ok();
    sim.finish(StepResult::Failed, "exit status 1");
    assert_eq!(sim.state.status(), Status::RollingBack);
    sim.ok(); // revert
    assert_eq!(sim.state.weight().map(|w| w.basis_points()), Some(0));
    sim.ok();
    sim.ok();
    assert_eq!(sim.state.status(), Status::RolledBack);
    assert_eq!(
        sim.executed,
        [
            StepRef::Baseline,
            StepRef::Forward(0),
            StepRef::Forward(1),
            StepRef::RevertTraffic,
            StepRef::Rollback(0),
            StepRef::Rollback(1)
        ]
    );
    assert_eq!(
        sim.state.reason().unwrap(),
        "step `smoke` failed: exit status 1"
    );
}

#[test]
fn a_failed_rollback_ends_failed_and_says_where() {
    let mut sim = Sim::new(&plan(
        "  - run: a\n",
        "    - { name: page, run: ./page.sh }\n    - run: b\n",
    ));
    sim.send(Event::Start).unwrap();
    sim.finish(StepResult::TimedOut, "timed out after 10m");
    sim.ok();
    sim.finish(StepResult::Failed, "exit status 2");
    sim.ok();
    assert_eq!(sim.state.status(), Status::Failed);
    let reason = sim.state.reason().unwrap();
    assert!(
        reason.contains("timed out after 10m") && reason.contains("`page`"),
        "{reason}"
    );
}

#[test]
fn abort_during_pause_cancels_it_and_rolls_back_as_aborted() {
    let mut sim = Sim::new(&plan(
        "  - traffic: 5%\n  - pause: 1h\n  - traffic: 100%\n",
        "    - run: x\n",
    ));
    sim.start();
    sim.ok();
    assert_eq!(sim.state.status(), Status::Paused);
    sim.send(Event::Abort {
        by: "ana".into(),
        comment: Some("p95 looks odd".into()),
    })
    .unwrap();
    assert_eq!(sim.cancelled, [StepRef::Forward(1)]);
    assert_eq!(sim.state.status(), Status::RollingBack);
    assert!(
        sim.send(Event::Abort {
            by: "x".into(),
            comment: None
        })
        .is_err()
    );
    sim.finish(StepResult::Cancelled, "cancelled");
    assert_eq!(sim.executed.last(), Some(&StepRef::RevertTraffic));
    sim.ok();
    sim.ok();
    assert_eq!(sim.state.status(), Status::Aborted);
    assert_eq!(sim.state.reason().unwrap(), "aborted by ana: p95 looks odd");
}

#[test]
fn late_report_from_a_cancelled_timer_is_ignored() {
    let mut sim = Sim::new(&plan(
        "  - approve: { role: sre, timeout: 1m }\n  - run: b\n",
        "    - run: x\n",
    ));
    sim.start();
    sim.send(Event::Approve {
        role: "sre".into(),
        by: "ana".into(),
        comment: None,
    })
    .unwrap();
    let before = sim.journal.len();
    sim.send(Event::StepFinished {
        step: StepRef::Forward(0),
        attempt: 1,
        outcome: Outcome::new(StepResult::TimedOut, "approval timed out"),
    })
    .unwrap();
    assert_eq!(sim.journal.len(), before);
    assert_eq!(sim.state.status(), Status::Running);
}

#[test]
fn crash_during_idempotent_step_reruns_it_keeping_the_pause_deadline() {
    let mut sim = Sim::new(&plan("  - pause: 10m\n  - run: b\n", "    - run: x\n"));
    sim.start();
    let deadline = sim.state.forward_steps()[0].deadline.unwrap();
    sim.tick(120);
    sim.restart();
    let step = &sim.state.forward_steps()[0];
    assert_eq!((step.attempts, step.status), (2, StepStatus::Running));
    assert_eq!(
        step.deadline,
        Some(deadline),
        "a pause counts wall-clock time across restarts"
    );
    assert_eq!(
        sim.executed,
        [StepRef::Baseline, StepRef::Forward(0), StepRef::Forward(0)]
    );
}

#[test]
fn crash_during_non_idempotent_step_needs_a_decision() {
    let mut sim = Sim::new(&plan(
        "  - { name: migrate, run: ./migrate.sh }\n  - { name: seed, run: ./seed.sh }\n  - { name: warm, run: ./warm.sh, idempotent: true }\n",
        "    - run: x\n",
    ));
    sim.start();
    sim.restart();
    assert_eq!(sim.state.status(), Status::NeedsDecision);
    assert!(
        sim.state
            .pending_decision()
            .unwrap()
            .1
            .contains("`migrate`")
    );
    assert!(
        sim.send(Event::Promote { by: "x".into() }).is_ok(),
        "promote settles it too"
    );

    let mut sim = Sim::new(&plan(
        "  - { name: migrate, run: ./migrate.sh }\n  - { name: seed, run: ./seed.sh }\n  - { name: warm, run: ./warm.sh, idempotent: true }\n",
        "    - run: x\n",
    ));
    sim.start();
    sim.restart();
    let no_choice = sim.send(Event::Resume {
        by: "ana".into(),
        decision: None,
    });
    assert_eq!(no_choice.unwrap_err().code(), "decision_required");
    sim.send(Event::Resume {
        by: "ana".into(),
        decision: Some(Decision::Retry),
    })
    .unwrap();
    assert_eq!(sim.state.forward_steps()[0].attempts, 2);
    sim.ok();
    sim.restart(); // `seed` in flight
    sim.send(Event::Resume {
        by: "ana".into(),
        decision: Some(Decision::Skip),
    })
    .unwrap();
    assert_eq!(sim.state.forward_steps()[1].status, StepStatus::Skipped);
    sim.restart(); // `warm` in flight, idempotent: rerun without asking
    assert_eq!(sim.state.status(), Status::Running);
    assert_eq!(sim.state.forward_steps()[2].attempts, 2);
    sim.ok();
    assert_eq!(sim.state.status(), Status::Succeeded);
    sim.restart(); // recovering a finished launch does nothing
    assert_eq!(sim.state.status(), Status::Succeeded);
}

#[test]
fn crash_while_cancelling_for_a_rollback_does_not_rerun_the_step() {
    let mut sim = Sim::new(&plan(
        "  - traffic: 5%\n  - { name: long, run: ./long.sh }\n",
        "    - run: x\n",
    ));
    sim.start();
    sim.ok();
    sim.send(Event::Rollback {
        by: "ana".into(),
        comment: None,
    })
    .unwrap();
    sim.restart();
    assert_eq!(sim.state.forward_steps()[1].status, StepStatus::Cancelled);
    assert_eq!(sim.executed.last(), Some(&StepRef::RevertTraffic));
    sim.ok();
    sim.ok();
    assert_eq!(sim.state.status(), Status::RolledBack);
}

#[test]
fn promote_skips_what_is_left_and_goes_to_full_weight() {
    let mut sim = Sim::new(&plan(
        "  - traffic: 5%\n  - pause: 1h\n  - traffic: 50%\n  - run: c\n",
        "    - run: x\n",
    ));
    sim.start();
    sim.ok();
    sim.send(Event::Promote { by: "ana".into() }).unwrap();
    assert_eq!(sim.cancelled, [StepRef::Forward(1)]);
    sim.finish(StepResult::Cancelled, "cancelled");
    assert_eq!(sim.executed.last(), Some(&StepRef::Promote));
    sim.ok();
    assert_eq!(sim.state.status(), Status::Succeeded);
    assert_eq!(sim.state.forward_steps()[2].status, StepStatus::Skipped);
    assert_eq!(sim.state.weight().map(|w| w.basis_points()), Some(10_000));
    assert_eq!(sim.state.reason().unwrap(), "promoted to 100% by ana");
}

#[test]
fn resume_ends_a_pause_early_and_rejects_otherwise() {
    let mut sim = Sim::new(&plan("  - pause: 1h\n  - run: b\n", "    - run: x\n"));
    sim.start();
    sim.send(Event::Resume {
        by: "ana".into(),
        decision: None,
    })
    .unwrap();
    assert_eq!(sim.state.status(), Status::Running);
    let again = sim.send(Event::Resume {
        by: "ana".into(),
        decision: None,
    });
    assert_eq!(again.unwrap_err().code(), "not_paused");
    let retry = sim.send(Event::Resume {
        by: "ana".into(),
        decision: Some(Decision::Retry),
    });
    assert_eq!(retry.unwrap_err().code(), "no_decision_pending");
    let approve = sim.send(Event::Approve {
        role: "sre".into(),
        by: "ana".into(),
        comment: None,
    });
    assert_eq!(approve.unwrap_err().code(), "not_waiting_for_approval");
}

#[test]
fn records_keep_their_journal_shape() {
    let at: Timestamp = "2026-11-21T10:00:00Z".parse().unwrap();
    let record = Record::StepFinished {
        at,
        step: StepRef::Forward(2),
        attempt: 1,
        outcome: Outcome::new(StepResult::Failed, "exit status 1").with_output("boom"),
    };
    let json = serde_json::to_string(&record).unwrap();
    assert_eq!(
        json,
        r#"{"type":"step_finished","at":"2026-11-21T10:00:00Z","step":{"forward":2},"attempt":1,"outcome":{"result":"failed","message":"exit status 1","output":"boom"}}"#
    );
    let back: Record = serde_json::from_str(&json).unwrap();
    assert_eq!(back, record);
    let revert: Record = serde_json::from_str(
        r#"{"type":"step_started","at":"2026-11-21T10:00:00Z","step":"revert_traffic","attempt":1}"#,
    )
    .unwrap();
    assert_eq!(revert.kind(), "step_started");
}

#[test]
fn without_a_router_rollback_and_promote_move_no_traffic() {
    let src = "version: 1\nname: t\nservice: svc\nsteps:\n  - run: a\n  - pause: 1h\nrollback:\n  steps:\n    - run: x\n";
    let mut sim = Sim::new(src);
    sim.send(Event::Start).unwrap();
    sim.finish(StepResult::Failed, "exit status 1");
    sim.ok();
    assert_eq!(
        sim.state.status(),
        Status::RolledBack,
        "{:?}",
        sim.state.reason()
    );
    assert_eq!(sim.executed, [StepRef::Forward(0), StepRef::Rollback(0)]);

    let mut sim = Sim::new(src);
    sim.send(Event::Start).unwrap();
    sim.ok();
    sim.send(Event::Promote { by: "ana".into() }).unwrap();
    sim.finish(StepResult::Cancelled, "cancelled");
    assert_eq!(sim.state.status(), Status::Succeeded);
    assert_eq!(sim.executed, [StepRef::Forward(0), StepRef::Forward(1)]);
}

fn checked(item: &str, passed: bool) -> CheckResult {
    CheckResult {
        item: item.into(),
        critical: true,
        passed,
        evidence: if passed { "ok".into() } else { "down".into() },
        duration_ms: 3,
        request: None,
        expected: None,
        actual: None,
    }
}

impl Sim {
    fn check(&mut self, item: &str, passed: bool) {
        let (step, attempt) = self.state.in_flight().expect("a step in flight");
        self.send(Event::Checked {
            step,
            attempt,
            result: checked(item, passed),
        })
        .unwrap();
    }
}

const CHECKLIST: &str = "checklist:
  pass: { critical: 100%, overall: 50% }
  items:
    - { name: db, tcp: '127.0.0.1:5432' }
    - { name: cache, tcp: '127.0.0.1:6379', critical: false }
    - { name: sign-off, approval: release-manager }
";

fn checklist_plan() -> String {
    format!(
        "version: 1\nname: t\nservice: svc\n{ROUTER}{CHECKLIST}steps:\n  - traffic: 100%\nrollback:\n  steps:\n    - run: ./cleanup.sh\n"
    )
}

#[test]
fn the_checklist_runs_first_and_a_sign_off_completes_it() {
    let mut sim = Sim::new(&checklist_plan());
    sim.send(Event::Start).unwrap();
    assert_eq!(
        sim.executed,
        [StepRef::Checklist],
        "before any traffic moves"
    );
    sim.check("db", true);
    assert_eq!(sim.state.status(), Status::Running);
    sim.check("cache", false);
    assert_eq!(sim.state.status(), Status::WaitingApproval);
    let wrong = sim.send(Event::Approve {
        role: "sre".into(),
        by: "bo".into(),
        comment: None,
    });
    assert_eq!(wrong.unwrap_err().code(), "wrong_role");
    sim.send(Event::Approve {
        role: "release-manager".into(),
        by: "ana".into(),
        comment: Some("ship it".into()),
    })
    .unwrap();
    let outcome = sim.state.checklist_step().outcome.clone().unwrap();
    assert_eq!(outcome.result, StepResult::Succeeded);
    assert_eq!(
        outcome.message.as_deref(),
        Some("GO: 2/2 critical, 2/3 overall; failed: `cache`")
    );
    assert_eq!(sim.cancelled, [StepRef::Checklist]);
    assert_eq!(sim.executed.last(), Some(&StepRef::Baseline));
}

#[test]
fn a_failed_critical_item_ends_the_launch_no_go_without_touching_traffic() {
    let mut sim = Sim::new(&checklist_plan());
    sim.send(Event::Start).unwrap();
    sim.check("db", false);
    sim.check("cache", true);
    sim.send(Event::Approve {
        role: "release-manager".into(),
        by: "ana".into(),
        comment: None,
    })
    .unwrap();
    assert_eq!(sim.state.status(), Status::NoGo);
    assert_eq!(
        sim.executed,
        [StepRef::Checklist],
        "no baseline, no rollback"
    );
    let reason = sim.state.reason().unwrap();
    assert!(reason.contains("NO-GO: 1/2 critical"), "{reason}");
    assert!(reason.contains("`db` (critical)"), "{reason}");
}

#[test]
fn a_sign_off_survives_a_restart_and_results_of_another_attempt_are_ignored() {
    let mut sim = Sim::new(&checklist_plan());
    sim.send(Event::Start).unwrap();
    sim.send(Event::Approve {
        role: "release-manager".into(),
        by: "ana".into(),
        comment: None,
    })
    .unwrap();
    sim.check("db", true);
    sim.restart();
    let (step, attempt) = sim.state.in_flight().unwrap();
    assert_eq!((step, attempt), (StepRef::Checklist, 2));
    let state = sim.state.checklist_step();
    assert!(
        state.check("sign-off").is_some_and(|c| c.passed),
        "carried over"
    );
    assert!(state.check("db").is_none(), "automatic items run again");
    // A straggler from the first attempt changes nothing.
    sim.send(Event::Checked {
        step,
        attempt: 1,
        result: checked("db", false),
    })
    .unwrap();
    assert!(sim.state.checklist_step().check("db").is_none());
    sim.check("db", true);
    sim.check("cache", true);
    assert_eq!(
        sim.state.checklist_step().status,
        StepStatus::Succeeded,
        "{:?}",
        sim.state.checklist_step().outcome
    );
}

#[test]
fn a_rollback_restores_migration_backups_newest_first_before_the_rollback_steps() {
    let mut sim = Sim::new(&plan(
        "  - migrate: { database: 'sqlite:a.db', command: ./m1.sh, restore_on_rollback: true }
  - migrate: { database: 'sqlite:b.db', command: ./m2.sh }
  - migrate: { database: 'sqlite:c.db', command: ./m3.sh, restore_on_rollback: true }
  - traffic: 10%
",
        "    - run: ./cleanup.sh\n",
    ));
    sim.start();
    for _ in 0..3 {
        let (step, attempt) = sim.state.in_flight().unwrap();
        sim.send(Event::BackupTaken {
            step,
            attempt,
            backup: BackupInfo {
                path: "/b".into(),
                bytes: 10,
                duration_ms: 1,
                detail: "ok".into(),
            },
        })
        .unwrap();
        sim.ok();
    }
    sim.finish(StepResult::Failed, "router down");
    assert_eq!(
        sim.state.in_flight().map(|(s, _)| s),
        Some(StepRef::RevertTraffic)
    );
    sim.ok();
    assert_eq!(
        sim.state.in_flight().map(|(s, _)| s),
        Some(StepRef::Restore(2))
    );
    sim.ok();
    assert_eq!(
        sim.state.in_flight().map(|(s, _)| s),
        Some(StepRef::Restore(0))
    );
    sim.finish(StepResult::Failed, "pg_restore failed");
    assert_eq!(
        sim.state.in_flight().map(|(s, _)| s),
        Some(StepRef::Rollback(0))
    );
    sim.ok();
    assert_eq!(sim.state.status(), Status::Failed);
    let reason = sim.state.reason().unwrap();
    assert!(
        reason.contains("the rollback failed at `restore backup of `migrate ./m1.sh``"),
        "{reason}"
    );
}

fn kill_switch_plan() -> &'static str {
    "version: 1\nname: t\nservice: svc\n\
     router: { kind: builtin, listen: 127.0.0.1:9, stable: http://127.0.0.1:1, candidate: http://127.0.0.1:2 }\n\
     steps:\n  - traffic: 10%\n  - pause: 1h\n\
     rollback:\n  on:\n    - { when: \"error_rate > 10% over 1s\", disable_flag: new_checkout }\n"
}

fn kill_switch_fired() -> Event {
    Event::TriggerFired {
        trigger: "error_rate > 10% over 1s".into(),
        action: liftoff_plan::TriggerAction::DisableFlag("new_checkout".into()),
        detail: "candidate error_rate 30.00%".into(),
    }
}

#[test]
fn a_disable_flag_trigger_turns_its_flag_off_only_after_its_firing_is_journaled() {
    let mut sim = Sim::new(kill_switch_plan());
    sim.start();
    sim.ok(); // 10%
    sim.send(kill_switch_fired()).unwrap();
    let [(flag, journaled)] = sim.disabled.as_slice() else {
        panic!("one flag change: {:?}", sim.disabled);
    };
    assert_eq!(flag.flag, "new_checkout");
    assert_eq!(
        flag.cause,
        "trigger `error_rate > 10% over 1s` fired: candidate error_rate 30.00%"
    );
    assert!(
        matches!(&sim.journal[*journaled - 1], Record::TriggerFired { action, .. } if action == "disable_flag"),
        "the firing is in the journal the effect follows: {:?}",
        sim.journal
    );
    sim.send(Event::FlagDisabled {
        trigger: flag.trigger.clone(),
        flag: flag.flag.clone(),
        result: Err("the flag service is down".into()),
    })
    .unwrap();
    let Some(Record::FlagDisabled { ok, detail, .. }) = sim.journal.last() else {
        panic!("{:?}", sim.journal);
    };
    assert!(!ok);
    assert_eq!(detail, "the flag service is down");
    assert!(
        sim.state.rollback_cause().is_none() && sim.state.in_flight().is_some(),
        "a kill switch instead of a rollback: the launch goes on"
    );
}

#[test]
fn a_restart_between_a_disable_flag_firing_and_its_outcome_turns_the_flag_off_again() {
    let mut sim = Sim::new(kill_switch_plan());
    sim.start();
    sim.ok();
    sim.send(kill_switch_fired()).unwrap();
    sim.restart(); // kill -9 before the flag service answered
    assert_eq!(sim.disabled.len(), 2, "asked again: {:?}", sim.disabled);
    assert_eq!(sim.disabled[0].0, sim.disabled[1].0);
    sim.send(Event::FlagDisabled {
        trigger: "error_rate > 10% over 1s".into(),
        flag: "new_checkout".into(),
        result: Ok("flag `new_checkout`: enabled true → false".into()),
    })
    .unwrap();
    sim.restart();
    assert_eq!(
        sim.disabled.len(),
        2,
        "done once journaled: {:?}",
        sim.disabled
    );
}
