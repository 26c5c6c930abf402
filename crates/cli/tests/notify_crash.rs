//! Notifications survive kill -9 (issue 18 item 2): a launch with a webhook channel
//! subscribed to every event, the daemon killed at 20 moments and restarted each time.
//! Every notice the journal says happened reaches the receiver at least once, and all
//! copies of one notice carry the same idempotency key.
//!
//! The moments come from state, not sleeps: kill n once the journal holds 5n records;
//! even kills land at once (a record written, its notice likely not yet sent), odd ones
//! as soon as the receiver gets its next POST (sent, likely not yet marked delivered:
//! the duplicate window).

mod support;

#[path = "../../notify/tests/support/mod.rs"]
mod receivers;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use receivers::HttpReceiver;
use support::{Daemon, read, stderr, stdout, wait_until, workdir};

const KILLS: usize = 20;
const ROUNDS: usize = 10;
const RECORDS_PER_KILL: usize = 5;
/// How long the receiver takes to answer: the window in which a kill leaves a notice
/// delivered but not marked so.
const ANSWER_AFTER: Duration = Duration::from_millis(50);
/// The webhook URL's path is a credential here: it must show nowhere but in the request.
const SECRET_PATH: &str = "/hooks/outbox-secret-7f3a9c";

/// Ten rounds of an idempotent command, a traffic step and a pause: ~31 forward steps,
/// two notices each, every step restartable after a kill.
fn plan() -> (String, Vec<String>) {
    let mut steps = String::new();
    let mut names = Vec::new();
    for r in 0..ROUNDS {
        let weight = (r + 1) * 100 / (ROUNDS + 1);
        steps.push_str(&format!(
            "  - {{ name: work{r}, run: \"sleep 0.2\", idempotent: true }}\n\
             \x20 - {{ name: shift{r}, traffic: {weight}% }}\n\
             \x20 - {{ name: watch{r}, pause: 300ms }}\n"
        ));
        names.extend([format!("work{r}"), format!("shift{r}"), format!("watch{r}")]);
    }
    names.push("traffic 100%".into());
    let plan = format!(
        "version: 1\nname: outbox-crash\nservice: outboxed\n\
         router: {{ kind: command, command: \"./set-weight.sh {{weight}}\" }}\n\
         notify:\n  retry: {{ attempts: 100, backoff: 50ms, timeout: 2s }}\n\
         \x20 channels:\n    - name: audit\n      webhook: ${{HOOK_URL}}\n\
         steps:\n{steps}  - traffic: 100%\n"
    );
    (plan, names)
}

fn launch(daemon: &Daemon, dir: &Path, hook_url: &str) -> String {
    let out = Command::new(support::BIN)
        .args(["launch", "plan.yaml"])
        .current_dir(dir)
        .env("LIFTOFF_SERVER", &daemon.url)
        .env("LIFTOFF_STATE_DIR", &daemon.state_dir)
        .env("HOOK_URL", hook_url)
        .output()
        .unwrap();
    assert!(out.status.success(), "launch: {}", stderr(&out));
    stdout(&out).trim().to_string()
}

/// The notices the journal says the launch caused on channel `audit`, by key: what the
/// driver's `notices_for` makes of each record kind this plan writes.
fn expected(daemon: &Daemon, id: &str, forward: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for r in daemon.journal(id) {
        let (seq, kind, summary) = (
            r["seq"].as_i64().unwrap(),
            r["kind"].as_str().unwrap(),
            r["summary"].as_str().unwrap(),
        );
        let step = summary.split('`').nth(1).unwrap_or_default();
        let event = match kind {
            "launch_started" => "launch_started",
            "launch_ended" => "succeeded",
            // A first attempt of a forward step ("`work0` started", not "(attempt 2)").
            "step_started"
                if forward.iter().any(|n| n == step) && !summary.contains("(attempt") =>
            {
                "step_started"
            }
            "step_finished" if forward.iter().any(|n| n == step) => "step_finished",
            _ => continue,
        };
        out.insert(format!("{id}:{seq}:{event}:audit"), event.to_string());
    }
    out
}

#[test]
fn kill_dash_nine_at_twenty_moments_and_every_notice_arrives_with_one_key() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = rt.block_on(HttpReceiver::start(|_, _| {
        std::thread::sleep(ANSWER_AFTER);
        (200, "ok".into())
    }));
    let posts = || {
        receiver
            .requests()
            .into_iter()
            .filter(|r| r.path == SECRET_PATH)
            .collect::<Vec<_>>()
    };
    let work = workdir();
    let state = tempfile::tempdir().unwrap();
    let (plan, forward) = plan();
    std::fs::write(work.path().join("plan.yaml"), plan).unwrap();

    let started = Instant::now();
    let mut daemon = Daemon::start(state.path());
    let id = launch(&daemon, work.path(), &receiver.url(SECRET_PATH));
    let mut kills = 0;
    while kills < KILLS {
        // Spread over the launch: kill n once the journal holds 5n records (about a step
        // and a half of this plan), then at once or at the next POST.
        let target = (kills + 1) * RECORDS_PER_KILL;
        let after_delivery = kills % 2 == 1;
        let waiting = Instant::now();
        loop {
            let s = daemon.status_json(work.path(), &id);
            if s["terminal"] == true || daemon.journal(&id).len() >= target {
                break;
            }
            assert!(
                waiting.elapsed() < Duration::from_secs(20),
                "no progress after kill {kills}: {s:#}\n{}",
                read(&state.path().join("daemon.log"))
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        if after_delivery {
            // The receiver holds each answer a while: a kill now finds the POST unanswered.
            let sent = posts().len();
            let waiting = Instant::now();
            while posts().len() == sent && waiting.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        if daemon.status_json(work.path(), &id)["terminal"] == true {
            break;
        }
        daemon.kill9();
        kills += 1;
        daemon = Daemon::start(state.path());
    }
    assert_eq!(
        kills, KILLS,
        "the launch ended before every kill: lengthen the plan"
    );
    let s = daemon.ended(work.path(), &id, Duration::from_secs(30));
    assert_eq!(s["status"], "succeeded", "{s:#}");

    // Every notice the journal implies arrives, under the key naming its record.
    let expected = expected(&daemon, &id, &forward);
    assert_eq!(
        expected.len(),
        2 + 2 * forward.len(),
        "launch_started, succeeded, and each forward step started and finished: {expected:#?}"
    );
    wait_until(Duration::from_secs(20), "every notice to arrive", || {
        let keys: BTreeSet<String> = posts()
            .iter()
            .filter_map(|r| r.header("idempotency-key").map(str::to_string))
            .collect();
        expected.keys().all(|k| keys.contains(k))
    });
    let posts = posts();
    let mut copies: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for post in &posts {
        let key = post
            .header("idempotency-key")
            .expect("Idempotency-Key")
            .to_string();
        let body = post.json();
        assert_eq!(body["id"], key.as_str(), "the payload carries the key too");
        assert_eq!(post.header("x-liftoff-delivery"), Some(key.as_str()));
        assert_eq!(
            expected.get(&key).map(String::as_str),
            body["event"].as_str(),
            "a notice the journal does not imply: {body:#}"
        );
        copies.entry(key).or_default().push(body);
    }
    // Copies of one notice are the same notice, and one notice has one key.
    let mut by_notice: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (key, bodies) in &copies {
        let first = &bodies[0];
        for b in bodies {
            assert_eq!(b, first, "copies of {key} differ");
        }
        let what = format!("{} {} {}", first["event"], first["step"], first["at"]);
        by_notice.entry(what).or_default().insert(key.clone());
    }
    for (notice, keys) in &by_notice {
        assert_eq!(
            keys.len(),
            1,
            "{notice} arrived under several keys: {keys:?}"
        );
    }
    let duplicates = posts.len() - copies.len();
    println!(
        "kills: {kills}; notices: {}; POSTs: {}; duplicates: {duplicates}; {:.1} s",
        copies.len(),
        posts.len(),
        started.elapsed().as_secs_f64()
    );

    // The URL's secret path is in no log, journal line or status.
    let status = daemon.status_json(work.path(), &id).to_string();
    let journal = serde_json::to_string(&daemon.journal(&id)).unwrap();
    let log = read(&state.path().join("daemon.log"));
    for (what, text) in [("status", &status), ("journal", &journal), ("log", &log)] {
        assert!(
            !text.contains("outbox-secret"),
            "the webhook URL leaked into the {what}"
        );
    }
    assert!(daemon.stop().success());
}
