//! Launches for report tests, made by driving the real engine with a controlled clock:
//! the journal a daemon would have written, without a daemon.

#![allow(dead_code)] // Each test binary uses its own part of this.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use liftoff_engine::{
    CheckResult, Event, Launch, Outcome, Record, StepRef, StepResult, VersionSample, decide,
};
use liftoff_plan::TriggerAction;
use liftoff_report::Meta;

/// A shell without effects that journals every record with its sequence number and
/// checks that replaying the journal gives the live state.
pub struct Sim {
    plan: Arc<liftoff_plan::Plan>,
    pub state: Launch,
    pub journal: Vec<(i64, Record)>,
    pub now: Timestamp,
}

pub const START: &str = "2026-11-21T10:00:00Z";

impl Sim {
    pub fn new(src: &str) -> Self {
        let plan = Arc::new(liftoff_plan::parse(src, &|_| None).expect("valid plan"));
        Self {
            state: Launch::new(plan.clone()),
            plan,
            journal: Vec::new(),
            now: START.parse().unwrap(),
        }
    }

    pub fn tick_ms(&mut self, ms: i64) {
        self.now = self
            .now
            .checked_add(SignedDuration::from_millis(ms))
            .unwrap();
    }

    pub fn tick(&mut self, secs: i64) {
        self.tick_ms(secs * 1_000);
    }

    pub fn send(&mut self, event: Event) {
        let t = decide(&self.state, event, self.now).expect("the engine accepts the event");
        for record in t.records {
            let seq = self.journal.len() as i64 + 1;
            self.journal.push((seq, record));
        }
        self.state = t.state;
        let replayed = Launch::replay(self.plan.clone(), self.journal.iter().map(|(_, r)| r));
        assert_eq!(format!("{replayed:?}"), format!("{:?}", self.state));
    }

    pub fn in_flight(&self) -> StepRef {
        self.state.in_flight().expect("a step in flight").0
    }

    pub fn finish(&mut self, result: StepResult, message: &str) {
        let (step, attempt) = self.state.in_flight().expect("a step in flight");
        self.send(Event::StepFinished {
            step,
            attempt,
            outcome: Outcome::new(result, message),
        });
    }

    pub fn finish_with_output(&mut self, result: StepResult, message: &str, output: &str) {
        let (step, attempt) = self.state.in_flight().expect("a step in flight");
        self.send(Event::StepFinished {
            step,
            attempt,
            outcome: Outcome::new(result, message).with_output(output),
        });
    }

    pub fn ok(&mut self, message: &str) {
        self.finish(StepResult::Succeeded, message);
    }

    pub fn check(&mut self, result: CheckResult) {
        let (step, attempt) = self.state.in_flight().expect("a step in flight");
        self.send(Event::Checked {
            step,
            attempt,
            result,
        });
    }

    /// What the builtin router's sampler journals every 2 s; `None` leaves a version
    /// out (it served nothing).
    pub fn sample(&mut self, stable: Option<(f64, f64)>, candidate: Option<(f64, f64)>) {
        let version = |name: &str, (error_rate, p95_ms): (f64, f64)| VersionSample {
            version: name.into(),
            requests: 40,
            failed: None,
            error_rate: Some(error_rate),
            p95_ms: Some(p95_ms),
            rps: 20.0,
        };
        let versions = stable
            .map(|s| version("stable", s))
            .into_iter()
            .chain(candidate.map(|c| version("candidate", c)))
            .collect();
        self.send(Event::Sampled {
            window_secs: 2.0,
            versions,
            trigger: None,
        });
    }

    /// What the trigger watcher journals as `trigger` fires: the window it judged,
    /// `(requests, failed, p95_ms)` per version.
    pub fn judged(
        &mut self,
        trigger: &str,
        window_secs: f64,
        stable: (u64, u64, f64),
        candidate: (u64, u64, f64),
    ) {
        let version = |name: &str, (requests, failed, p95_ms): (u64, u64, f64)| VersionSample {
            version: name.into(),
            requests,
            failed: Some(failed),
            error_rate: Some(failed as f64 / requests as f64),
            p95_ms: Some(p95_ms),
            rps: requests as f64 / window_secs,
        };
        self.send(Event::Sampled {
            window_secs,
            versions: vec![version("stable", stable), version("candidate", candidate)],
            trigger: Some(trigger.into()),
        });
    }

    pub fn observe(&mut self, step: Option<StepRef>, subject: &str, verdict: &str, reason: &str) {
        self.observe_value(step, subject, verdict, None, reason, false);
    }

    pub fn observe_value(
        &mut self,
        step: Option<StepRef>,
        subject: &str,
        verdict: &str,
        value: Option<f64>,
        reason: &str,
        dry_run: bool,
    ) {
        self.send(Event::Observed {
            step,
            subject: subject.into(),
            verdict: verdict.into(),
            value,
            reason: reason.into(),
            dry_run,
        });
    }

    pub fn notify(
        &mut self,
        channel: &str,
        event: &str,
        delivered: bool,
        attempts: u32,
        detail: &str,
    ) {
        self.send(Event::Notified {
            channel: channel.into(),
            event: event.into(),
            delivered,
            attempts,
            detail: detail.into(),
        });
    }
}

pub fn meta() -> Meta {
    Meta {
        id: "lnch_7f3a".into(),
        plan_path: "plans/checkout.yaml".into(),
        created_at: "2026-11-21T09:59:58Z".into(),
        generated_at: "2026-11-21T11:00:00Z".parse().unwrap(),
    }
}

pub const TRIGGER: &str = "error_rate > 5% over 2s for 3s";
/// A rollback step whose name is hostile to HTML and to Markdown tables.
pub const HOSTILE: &str = "page <script>alert('pwned')</script> | on-call";
pub const CROSSING: &str = "candidate error_rate 12.50% > 5% over 2s (40 requests)";
pub const FIRING: &str =
    "candidate error_rate 14.29% > 5% over 2 s (42 requests), crossed for 3.2 s";

const ROUTER: &str = "router:
  kind: builtin
  listen: 127.0.0.1:18080
  stable: http://127.0.0.1:19000
  candidate: http://127.0.0.1:19001
";

/// Deploy, 10%, bake: the candidate's error rate climbs during the bake, the trigger
/// fires, traffic goes back to stable and the on-call is paged.
pub fn rolled_back_by_trigger() -> Sim {
    let src = format!(
        "version: 1
name: checkout-2.4
service: checkout
{ROUTER}steps:
  - {{ name: deploy candidate, run: ./deploy.sh }}
  - traffic: 10%
  - bake: {{ for: 10m }}
  - traffic: 100%
rollback:
  on:
    - \"{TRIGGER}\"
  check_every: 200ms
  steps:
    - {{ name: \"{HOSTILE}\", run: ./page.sh }}
"
    );
    let mut sim = Sim::new(&src);
    sim.send(Event::Start);
    sim.notify("slack", "launch_started", true, 1, "HTTP 200");
    sim.tick(1);
    sim.ok("weight set to 0%"); // baseline, at 10:00:01
    sim.tick(20);
    sim.ok("exit status 0"); // deploy, at 10:00:21
    sim.tick(1);
    sim.ok("weight set to 10%"); // at 10:00:22; the bake begins
    // Healthy for 52 s; at 10:01:16 the candidate's errors and latency climb and the
    // trigger's condition is crossed; it has held for its 3 s at 10:01:21.2.
    for i in 0..28 {
        sim.tick(2);
        let (err, p95) = match i {
            0..26 => (0.005, 95.0),
            26 => (0.125, 180.0),
            _ => (0.1429, 240.0),
        };
        sim.sample(Some((0.002, 80.0)), Some((err, p95)));
        if i == 26 {
            sim.observe(None, TRIGGER, "crossed", CROSSING);
        }
    }
    sim.tick_ms(3_200);
    sim.judged(TRIGGER, 2.0, (400, 1, 82.0), (42, 6, 240.0));
    sim.send(Event::TriggerFired {
        trigger: TRIGGER.into(),
        action: TriggerAction::Rollback,
        detail: FIRING.into(),
    });
    sim.notify("slack", "rollback_started", true, 1, "HTTP 200");
    sim.notify(
        "email",
        "rollback_started",
        false,
        3,
        "HTTP 503 from smtp relay",
    );
    sim.tick_ms(200);
    sim.finish(StepResult::Cancelled, "cancelled"); // the bake
    assert_eq!(sim.in_flight(), StepRef::RevertTraffic);
    sim.tick_ms(1_000);
    sim.ok("weight set to 0%");
    sim.tick(2);
    sim.sample(Some((0.002, 82.0)), None);
    sim.tick(2);
    sim.ok("exit status 0"); // the page
    assert!(sim.state.status().is_terminal());
    sim.notify("slack", "launch_ended", true, 2, "HTTP 200");
    sim
}

/// Checklist with a sign-off, smoke requests, 10%, analysis, an approval, 100%.
pub fn succeeded() -> Sim {
    let src = format!(
        "version: 1
name: checkout-2.3
service: checkout
{ROUTER}checklist:
  items:
    - {{ name: postgres listens, tcp: '127.0.0.1:5432' }}
    - {{ name: disk, disk: /var/lib, min_free: 10%, critical: false }}
    - {{ name: release sign-off, approval: release-manager }}
steps:
  - {{ name: deploy candidate, run: ./deploy.sh }}
  - name: candidate smoke
    smoke:
      - {{ name: health, url: 'http://127.0.0.1:19001/health' }}
  - traffic: 10%
  - analyze: {{ for: 1m, interval: 10s, gates: [\"error_rate < 1%\"] }}
  - approve: {{ role: sre }}
  - traffic: 100%
rollback:
  steps:
    - run: ./cleanup.sh
"
    );
    let mut sim = Sim::new(&src);
    sim.send(Event::Start);
    assert_eq!(sim.in_flight(), StepRef::Checklist);
    sim.tick(1);
    sim.check(check(
        "postgres listens",
        true,
        "127.0.0.1:5432 accepted in 2ms",
    ));
    sim.check(check("disk", false, "/var/lib has 4% free, wants 10%"));
    sim.tick(30);
    sim.send(Event::Approve {
        role: "release-manager".into(),
        by: "ana".into(),
        comment: Some("change CHG-1234 approved".into()),
    });
    assert_eq!(sim.in_flight(), StepRef::Baseline);
    sim.tick(1);
    sim.ok("weight set to 0%");
    sim.tick(15);
    sim.ok("exit status 0");
    sim.tick(1);
    sim.check(CheckResult {
        request: Some("GET http://127.0.0.1:19001/health".into()),
        expected: Some("status 200".into()),
        actual: Some("status 200 in 12ms: {\"ok\":true}".into()),
        ..check("health", true, "200 OK in 12ms")
    });
    sim.ok("1/1 requests as expected");
    sim.tick(1);
    sim.ok("weight set to 10%");
    let analyze = sim.in_flight();
    for i in 0..6 {
        sim.tick(10);
        sim.sample(Some((0.001, 70.0)), Some((0.002, 75.0 + i as f64)));
        if i == 2 {
            sim.observe(
                Some(analyze),
                "error_rate < 1%",
                "inconclusive",
                "8 requests, fewer than 100",
            );
        } else {
            sim.observe_value(
                Some(analyze),
                "error_rate < 1%",
                "successful",
                Some(0.002),
                "candidate error_rate 0.20% < 1% over 1m (400 requests)",
                false,
            );
        }
    }
    sim.ok("6 evaluations, 0 failed, 1 inconclusive");
    sim.tick(90);
    sim.send(Event::Approve {
        role: "sre".into(),
        by: "bo".into(),
        comment: Some("dashboards green".into()),
    });
    sim.tick(1);
    sim.ok("weight set to 100%");
    assert_eq!(sim.state.status().as_str(), "succeeded");
    sim.notify("slack", "launch_ended", true, 1, "HTTP 200");
    sim
}

pub fn check(item: &str, passed: bool, evidence: &str) -> CheckResult {
    CheckResult {
        item: item.into(),
        critical: !item.starts_with("disk"),
        passed,
        evidence: evidence.into(),
        duration_ms: 3,
        request: None,
        expected: None,
        actual: None,
    }
}

pub const FAST_TRIGGER: &str = "error_rate > 5% over 2s";

/// Issue 18's bad release: 5% of traffic to a candidate that fails a third of its
/// requests, caught 44 ms after the weight moved, before the traffic sampler's first
/// sample (2 s in). Only the trigger's own window shows the spike.
pub fn rolled_back_after_44_ms() -> Sim {
    let src = format!(
        "version: 1
name: checkout-3.0
service: checkout
{ROUTER}steps:
  - traffic: 5%
  - bake: {{ for: 1m }}
rollback:
  on: [\"{FAST_TRIGGER}\"]
  check_every: 250ms
"
    );
    let mut sim = Sim::new(&src);
    sim.send(Event::Start);
    sim.tick_ms(100);
    sim.ok("weight set to 0%"); // baseline
    sim.tick_ms(300);
    sim.ok("weight set to 5%"); // 10:00:00.400; the bake begins, triggers are armed
    sim.tick_ms(44);
    sim.judged(FAST_TRIGGER, 0.044, (230, 0, 12.0), (12, 5, 25.0));
    sim.send(Event::TriggerFired {
        trigger: FAST_TRIGGER.into(),
        action: TriggerAction::Rollback,
        detail: "candidate error_rate 41.67% (99.999% bound 9.93%) > 5.00% over 44 ms (12 requests), crossed for 0 ms".into(),
    });
    sim.tick_ms(5);
    sim.finish(StepResult::Cancelled, "cancelled"); // the bake
    sim.tick_ms(12);
    sim.ok("weight set to 0%");
    assert!(sim.state.status().is_terminal());
    sim
}
