//! The trigger watcher against deterministic sources, on tokio's paused clock: issue
//! 18's A/A run (no rollback on noise), its 30%-failing candidate (caught, fast), and
//! what the journal says when a trigger is held back for lack of evidence.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use liftoff_analysis::Sample;
use liftoff_engine::Event;
use liftoff_plan::condition::{Version, parse_condition};
use liftoff_plan::{Gate, RollbackSpec, Trigger, TriggerAction};
use tokio::time::Instant;

use super::{Report, Sources, watch_triggers};
use crate::ports::{MetricSource, PortError};

/// Requests reaching the candidate at a steady `rps` from the moment it is armed, each
/// failing with probability `failing` (a seeded generator: the same every run); none
/// reach stable.
struct SteadyTraffic {
    started: Instant,
    rps: f64,
    /// failed_before[i]: failures among the first i requests.
    failed_before: Vec<u64>,
}

impl SteadyTraffic {
    fn new(seed: u64, rps: f64, failing: f64, secs: u64) -> Self {
        let mut state = seed;
        let mut failed_before = vec![0];
        for _ in 0..(rps * secs as f64) as usize + 1 {
            // splitmix64
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            let fails = ((z >> 11) as f64 / (1u64 << 53) as f64) < failing;
            failed_before.push(failed_before.last().unwrap() + u64::from(fails));
        }
        Self {
            started: Instant::now(),
            rps,
            failed_before,
        }
    }
}

#[async_trait]
impl MetricSource for SteadyTraffic {
    async fn sample(
        &self,
        version: Version,
        window: Duration,
        _since: std::time::Instant,
    ) -> Result<Sample, PortError> {
        if version == Version::Stable {
            return Ok(Sample::default());
        }
        let now = self.started.elapsed().as_secs_f64();
        let from = (now - window.as_secs_f64()).max(0.0);
        let count = |t: f64| ((t * self.rps) as usize).min(self.failed_before.len() - 1);
        let (a, b) = (count(from), count(now));
        Ok(Sample {
            window_secs: now - from,
            requests: (b - a) as u64,
            failed: self.failed_before[b] - self.failed_before[a],
            ..Sample::default()
        })
    }
}

/// Answers the candidate with the next sample of a script at each evaluation (the last
/// one after), and stable with 100 requests, 1 failed.
pub(crate) struct Scripted(pub(crate) Mutex<Vec<(u64, u64)>>);

#[async_trait]
impl MetricSource for Scripted {
    async fn sample(
        &self,
        version: Version,
        _: Duration,
        _: std::time::Instant,
    ) -> Result<Sample, PortError> {
        if version == Version::Stable {
            return Ok(Sample {
                window_secs: 2.0,
                requests: 100,
                failed: 1,
                ..Sample::default()
            });
        }
        let mut script = self.0.lock().unwrap();
        let (requests, failed) = if script.len() > 1 {
            script.remove(0)
        } else {
            script[0]
        };
        Ok(Sample {
            window_secs: 2.0,
            requests,
            failed,
            ..Sample::default()
        })
    }
}

fn rollback(trigger: &str, check_every: Duration) -> RollbackSpec {
    RollbackSpec {
        triggers: vec![Trigger {
            gate: Gate::Builtin(parse_condition(trigger, true).unwrap()),
            action: TriggerAction::Rollback,
        }],
        check_every,
        ..RollbackSpec::default()
    }
}

/// Arm the triggers for `secs` of (paused) time; the events they reported, each with
/// when, from arming.
async fn watch(
    metrics: Arc<dyn MetricSource>,
    rollback: RollbackSpec,
    secs: f64,
) -> Vec<(Duration, Event)> {
    let events = Arc::new(Mutex::new(Vec::new()));
    let armed_at = Instant::now();
    let report: Report = {
        let events = events.clone();
        Arc::new(move |e| events.lock().unwrap().push((armed_at.elapsed(), e)))
    };
    let sources = Sources {
        metrics: Some(metrics),
        queries: None,
        service: "shop".into(),
        flags: None,
    };
    let (armed, armed_rx) = tokio::sync::watch::channel(true);
    let watcher = tokio::spawn(watch_triggers(sources, rollback, armed_rx, report));
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    drop(armed); // the launch ended
    watcher.await.unwrap();
    Arc::try_unwrap(events).unwrap().into_inner().unwrap()
}

fn fired(events: &[(Duration, Event)]) -> Vec<(Duration, String)> {
    events
        .iter()
        .filter_map(|(at, e)| match e {
            Event::TriggerFired { detail, .. } => Some((*at, detail.clone())),
            _ => None,
        })
        .collect()
}

fn observed(events: &[(Duration, Event)]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Observed {
                verdict, reason, ..
            } => Some((verdict.clone(), reason.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn fifty_a_a_launches_at_forty_requests_a_second_roll_back_none() {
    let mut held_back = 0;
    for launch in 0..50 {
        let traffic = SteadyTraffic::new(launch, 40.0, 0.02, 31);
        let events = watch(
            Arc::new(traffic),
            rollback("error_rate > 5% over 2s", Duration::from_millis(100)),
            30.0,
        )
        .await;
        assert!(fired(&events).is_empty(), "launch {launch}: {events:#?}");
        let observed = observed(&events);
        // Quiet for 300 evaluations, with at most the first held-back one journaled.
        assert!(observed.len() <= 1, "launch {launch}: {observed:#?}");
        for (verdict, reason) in &observed {
            assert_eq!(verdict, "inconclusive");
            assert!(
                reason.contains(": held back, past 5.00% but not with 99.999% confidence")
                    || reason.contains(": held back, 10 requests needed"),
                "{reason}"
            );
            held_back += 1;
        }
    }
    println!("50 A/A launches: no rollback; {held_back} journaled a held-back evaluation");
    assert!(
        held_back > 0,
        "some launches saw noise over 5% and said why they held"
    );
}

#[tokio::test(start_paused = true)]
async fn a_candidate_failing_thirty_percent_is_caught_in_every_launch_within_a_second_or_two() {
    let mut caught_after = Vec::new();
    for launch in 0..50 {
        let traffic = SteadyTraffic::new(1000 + launch, 40.0, 0.30, 11);
        let events = watch(
            Arc::new(traffic),
            rollback("error_rate > 5% over 2s", Duration::from_millis(100)),
            10.0,
        )
        .await;
        // (The first firing rolls a launch back, which disarms the triggers; here
        // nothing does, so it may fire again.)
        let fired = fired(&events);
        let (at, detail) = fired
            .first()
            .unwrap_or_else(|| panic!("launch {launch}: {events:#?}"));
        assert!(
            detail.starts_with("candidate error_rate ")
                && detail.contains("(99.999% bound ")
                && detail.contains("> 5.00% over ")
                && detail.contains(" requests), crossed for "),
            "{detail}"
        );
        caught_after.push(at.as_secs_f64());
    }
    caught_after.sort_by(f64::total_cmp);
    let (median, worst) = (caught_after[25], caught_after[49]);
    println!("30% failing at 40/s, caught after: median {median:.1}s, worst {worst:.1}s");
    assert!(median <= 0.5, "median {median}s: {caught_after:?}");
    assert!(worst <= 2.0, "worst {worst}s: {caught_after:?}");
}

#[tokio::test(start_paused = true)]
async fn a_crossing_that_loses_its_evidence_clears_and_says_it_was_held_back() {
    let script = vec![(40, 12), (10, 2), (40, 12), (5, 5), (80, 2)];
    let events = watch(
        Arc::new(Scripted(Mutex::new(script))),
        // `for 1h`: crossings and clearings only, no firing.
        rollback("error_rate > 5% over 2s for 1h", Duration::from_secs(1)),
        4.5,
    )
    .await;
    let observed = observed(&events);
    let verdicts: Vec<&str> = observed.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(
        verdicts,
        ["crossed", "clear", "crossed", "clear"],
        "{observed:#?}"
    );
    assert!(
        observed[0]
            .1
            .contains("30.00% (99.999% bound 9.88%) > 5.00%")
    );
    assert!(
        observed[1]
            .1
            .ends_with("(10 requests): held back, past 5.00% but not with 99.999% confidence"),
        "{}",
        observed[1].1
    );
    assert!(
        observed[3]
            .1
            .ends_with("(5 requests): held back, 10 requests needed"),
        "{}",
        observed[3].1
    );
}

#[tokio::test(start_paused = true)]
async fn held_back_evaluations_are_journaled_once_until_the_next_crossing() {
    let script = vec![
        (10, 1),
        (10, 1),
        (80, 1),
        (10, 1),
        (40, 12),
        (80, 1),
        (10, 1),
    ];
    let events = watch(
        Arc::new(Scripted(Mutex::new(script))),
        rollback("error_rate > 5% over 2s for 1h", Duration::from_secs(1)),
        6.5,
    )
    .await;
    let verdicts: Vec<String> = observed(&events).into_iter().map(|(v, _)| v).collect();
    assert_eq!(
        verdicts,
        ["inconclusive", "crossed", "clear", "inconclusive"],
        "{events:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_plan_can_ask_for_more_requests_and_less_confidence() {
    let mut spec = rollback("error_rate > 5% over 2s", Duration::from_secs(1));
    // 2 of 10 fails at 95% (bound 6.9%), but 20 requests are asked for.
    spec.confidence = 0.95;
    spec.min_requests = 20;
    let script = vec![(10, 2), (20, 4)];
    let events = watch(Arc::new(Scripted(Mutex::new(script))), spec, 1.5).await;
    let fired = fired(&events);
    assert_eq!(fired.len(), 1, "{events:#?}");
    assert!(fired[0].1.contains("(95% bound "), "{}", fired[0].1);
    assert!(
        fired[0].0 >= Duration::from_secs(1),
        "not on the 10 requests"
    );
}

#[tokio::test(start_paused = true)]
async fn the_window_a_trigger_fires_on_is_journaled_just_before_it_fires() {
    // Issue 18: a launch rolled back in its first second had no traffic sample, so its
    // report could not show why.
    let script = vec![(5, 0), (12, 5)];
    let events = watch(
        Arc::new(Scripted(Mutex::new(script))),
        rollback("error_rate > 5% over 2s", Duration::from_millis(100)),
        0.25,
    )
    .await;
    let fired_at = events
        .iter()
        .position(|(_, e)| matches!(e, Event::TriggerFired { .. }))
        .unwrap_or_else(|| panic!("{events:#?}"));
    let Event::Sampled {
        window_secs,
        versions,
        trigger,
    } = &events[fired_at - 1].1
    else {
        panic!("no sample before the firing: {events:#?}");
    };
    assert_eq!(trigger.as_deref(), Some("error_rate > 5% over 2s"));
    assert_eq!(*window_secs, 2.0);
    let figures: Vec<(&str, u64, Option<u64>)> = versions
        .iter()
        .map(|v| (v.version.as_str(), v.requests, v.failed))
        .collect();
    assert_eq!(
        figures,
        [("stable", 100, Some(1)), ("candidate", 12, Some(5))],
        "the judged window, and stable's beside it"
    );
    let evidence = events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Sampled { .. }))
        .count();
    assert_eq!(evidence, 1, "one window per firing: {events:#?}");
}

#[tokio::test(start_paused = true)]
async fn the_sampler_samples_when_a_rollback_disarms_the_triggers() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let report: Report = {
        let events = events.clone();
        Arc::new(move |e| events.lock().unwrap().push((started.elapsed(), e)))
    };
    let traffic = SteadyTraffic::new(7, 40.0, 0.3, 10);
    let (armed, armed_rx) = tokio::sync::watch::channel(false);
    let sampler = tokio::spawn(super::sample_traffic(Arc::new(traffic), armed_rx, report));
    tokio::time::sleep(Duration::from_millis(100)).await;
    armed.send(true).unwrap(); // the candidate takes traffic
    tokio::time::sleep(Duration::from_millis(600)).await;
    armed.send(false).unwrap(); // a rollback began, before the first 2 s sample
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(armed);
    sampler.await.unwrap();
    let events = Arc::try_unwrap(events).unwrap().into_inner().unwrap();
    let [
        (
            at,
            Event::Sampled {
                versions, trigger, ..
            },
        ),
    ] = events.as_slice()
    else {
        panic!("one sample, at the rollback: {events:#?}");
    };
    assert_eq!(*at, Duration::from_millis(700));
    assert_eq!(*trigger, None);
    assert_eq!(versions.len(), 1, "stable served nothing: {versions:#?}");
    assert_eq!(versions[0].version, "candidate");
    assert!(versions[0].requests > 0);
}

/// A source whose routers report every 100 ms: it says so through `observed`.
struct Reporting {
    traffic: SteadyTraffic,
    reports: tokio::sync::watch::Receiver<u64>,
}

#[async_trait]
impl MetricSource for Reporting {
    async fn sample(
        &self,
        version: Version,
        window: Duration,
        since: std::time::Instant,
    ) -> Result<Sample, PortError> {
        self.traffic.sample(version, window, since).await
    }

    fn observed(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.reports.clone())
    }
}

#[tokio::test(start_paused = true)]
async fn triggers_are_judged_as_observations_arrive_not_only_at_check_every() {
    let mut caught_after = Vec::new();
    for launch in 0..20 {
        let (tx, reports) = tokio::sync::watch::channel(0u64);
        let reporter = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                tx.send_modify(|n| *n += 1);
            }
        });
        let traffic = Reporting {
            traffic: SteadyTraffic::new(2000 + launch, 40.0, 0.30, 11),
            reports,
        };
        // A check every 10 s: only the routers' reports can make it fast.
        let events = watch(
            Arc::new(traffic),
            rollback("error_rate > 5% over 2s", Duration::from_secs(10)),
            5.0,
        )
        .await;
        reporter.abort();
        let (at, _) = fired(&events)
            .first()
            .cloned()
            .unwrap_or_else(|| panic!("launch {launch}: not caught in 5 s: {events:#?}"));
        caught_after.push(at.as_secs_f64());
    }
    caught_after.sort_by(f64::total_cmp);
    let (median, worst) = (caught_after[10], caught_after[19]);
    println!("judged on each report: median {median:.1}s, worst {worst:.1}s");
    assert!(median <= 0.6, "median {median}s: {caught_after:?}");
    assert!(worst <= 2.0, "worst {worst}s: {caught_after:?}");
}

/// Counts like the builtin router: in whole seconds from `t0`, only those begun after
/// `since`, the current one so far; `rps` good requests a second to either version.
struct WholeSeconds {
    t0: Instant,
    rps: f64,
}

#[async_trait]
impl MetricSource for WholeSeconds {
    async fn sample(
        &self,
        _: Version,
        window: Duration,
        since: std::time::Instant,
    ) -> Result<Sample, PortError> {
        let t0 = self.t0.into_std();
        let now = Instant::now().into_std().duration_since(t0).as_secs_f64();
        let first = since.duration_since(t0).as_secs() + 1;
        let available = (now as u64 + 1).saturating_sub(first);
        if available == 0 {
            return Ok(Sample {
                window_secs: 0.001,
                ..Sample::default()
            });
        }
        let buckets = (window.as_secs().max(1) + 1).min(available);
        let covered = (buckets - 1) as f64 + now.fract();
        Ok(Sample {
            window_secs: covered,
            requests: (covered * self.rps) as u64,
            latency: vec![(0.01, (covered * self.rps) as u64)],
            ..Sample::default()
        })
    }
}

/// Issue 18's CI failure: an `analyze` with a 500 ms interval begun 30 ms into a
/// second judged nothing at its first evaluation (no whole second had begun since)
/// and 30 ms at its second, so two "too little data" rounds of two subjects
/// each held a healthy launch for a human. Evaluations due before the router's seconds
/// cover half an interval are put off; the step still ends with a judged evaluation.
#[tokio::test(start_paused = true)]
async fn an_analyze_step_puts_off_evaluations_due_before_the_routers_seconds_cover_them() {
    let source = WholeSeconds {
        t0: Instant::now(),
        rps: 200.0,
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    let events = Arc::new(Mutex::new(Vec::new()));
    let report: Report = {
        let events = events.clone();
        Arc::new(move |e| events.lock().unwrap().push(e))
    };
    let sources = Sources {
        metrics: Some(Arc::new(source)),
        queries: None,
        service: "shop".into(),
        flags: None,
    };
    let step = liftoff_plan::AnalyzeStep {
        duration: Duration::from_secs(2),
        interval: Duration::from_millis(500),
        gates: vec![Gate::Builtin(
            parse_condition("error_rate < 2%", false).unwrap(),
        )],
        min_requests: 5,
        failure_limit: 0,
        inconclusive_limit: 0,
        on_inconclusive: liftoff_plan::OnInconclusive::Fail,
        dry_run: false,
        compare: Some(liftoff_plan::CompareSpec::default()),
    };
    let outcome = super::analyze(
        &sources,
        liftoff_engine::StepRef::Forward(2),
        &step,
        &report,
        &tokio_util::sync::CancellationToken::new(),
    )
    .await;
    let events = events.lock().unwrap();
    assert_eq!(
        outcome.result,
        liftoff_engine::StepResult::Succeeded,
        "{outcome:?} {events:#?}"
    );
    let judged: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Observed {
                subject, verdict, ..
            } => Some((subject.as_str(), verdict.as_str())),
            _ => None,
        })
        .collect();
    // Put off at 0.53 s (nothing covered) and 1.03 s (30 ms); judged at 1.53 and 2.03 s.
    assert_eq!(
        judged,
        [
            ("error_rate < 2%", "successful"),
            ("compare: stable", "successful"),
            ("error_rate < 2%", "successful"),
            ("compare: stable", "successful"),
        ],
        "{events:#?}"
    );
    assert_eq!(
        outcome.message.as_deref(),
        Some("2 evaluations, 0 failed, 0 inconclusive")
    );
}
