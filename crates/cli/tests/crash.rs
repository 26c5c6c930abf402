//! kill -9 the daemon at 20 moments across a launch; it must resume every time, run
//! no finished step again, re-run idempotent steps found in flight, and ask a human
//! about non-idempotent ones.

mod support;

use std::time::{Duration, Instant};

use support::{Daemon, read, stderr, wait_until, workdir};

const ROUNDS: usize = 6;
const KILLS: usize = 20;

/// Six rounds of: a non-idempotent command, a traffic step, an idempotent command, a
/// pause, another non-idempotent command (~3.6 s of steps, longer than 20 lives of
/// the daemon). Commands append their line *after* a sleep, so a kill during the sleep
/// leaves no line (the parent-death signal stops the shell) and a kill after it
/// leaves one; the non-idempotent `a` steps note in `started.log` that they began.
fn plan() -> (String, Vec<String>, Vec<String>, Vec<String>) {
    let mut steps = String::new();
    let (mut once, mut idem, mut weights) = (Vec::new(), Vec::new(), vec!["0".to_string()]);
    for r in 0..ROUNDS {
        let (a, b, c) = (format!("a{r}"), format!("b{r}"), format!("c{r}"));
        let weight = (r + 1) * 100 / (ROUNDS + 1);
        steps.push_str(&format!(
            "  - {{ name: {a}, run: \"echo {a} >> started.log; sleep 0.15; echo {a} >> out.log\" }}\n\
             \x20 - traffic: {weight}%\n\
             \x20 - {{ name: {b}, run: \"sleep 0.15; echo {b} >> out.log\", idempotent: true }}\n\
             \x20 - pause: 200ms\n\
             \x20 - {{ name: {c}, run: \"sleep 0.1; echo {c} >> out.log\" }}\n"
        ));
        once.extend([a, c]);
        idem.push(b);
        weights.push(weight.to_string());
    }
    weights.push("100".into());
    let plan = format!(
        "version: 1\nname: crash-test\nservice: crashy\n\
         router: {{ kind: command, command: \"./set-weight.sh {{weight}}\" }}\n\
         steps:\n{steps}  - traffic: 100%\n\
         rollback:\n  steps:\n    - run: echo rollback >> out.log\n"
    );
    (plan, once, idem, weights)
}

/// xorshift64*: a reproducible sequence of kill moments; the seed is printed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// What an operator does with `needs-decision`: look whether the step took effect.
fn decide_if_needed(
    daemon: &Daemon,
    work: &std::path::Path,
    id: &str,
    once: &[String],
    retried: &mut Vec<String>,
) {
    let s = daemon.status_json(work, id);
    if s["status"] != "needs-decision" {
        return;
    }
    let step = s["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|st| st["status"] == "interrupted")
        .unwrap_or_else(|| panic!("needs-decision without an interrupted step: {s:#}"));
    let name = step["name"].as_str().unwrap().to_string();
    assert!(
        once.contains(&name),
        "only non-idempotent steps ask: {name}"
    );
    let done = read(&work.join("out.log")).lines().any(|l| l == name);
    let flag = if done { "--skip-step" } else { "--retry-step" };
    let out = daemon.cli(work, &["resume", id, flag, "--by", "crash-test"]);
    assert!(out.status.success(), "resume {flag}: {}", stderr(&out));
    if !done {
        retried.push(name);
    }
}

#[test]
fn kill_dash_nine_at_twenty_moments_and_the_launch_still_completes_exactly_once() {
    let seed = std::env::var("LIFTOFF_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("LIFTOFF_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let work = workdir();
    let state = tempfile::tempdir().unwrap();
    let (plan, once, idempotent, expected_weights) = plan();
    std::fs::write(work.path().join("plan.yaml"), plan).unwrap();

    let mut daemon = Daemon::start(state.path());
    let out = daemon.cli(work.path(), &["launch", "plan.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let mut retried = Vec::new();

    // Kill 1 is placed: in the middle of a0, a non-idempotent step.
    daemon.wait_for(work.path(), &id, Duration::from_secs(10), |s| {
        s["current_step"] == "a0"
    });
    wait_until(Duration::from_secs(10), "a0's command to start", || {
        read(&work.path().join("started.log")).contains("a0")
    });
    daemon.kill9();
    daemon = Daemon::start(state.path());
    let s = daemon.status_json(work.path(), &id);
    assert_eq!(s["status"], "needs-decision", "{s:#}");
    assert!(
        s["decision_needed"].as_str().unwrap().contains("`a0`"),
        "{s:#}"
    );
    decide_if_needed(&daemon, work.path(), &id, &once, &mut retried);
    assert_eq!(retried, ["a0"], "a0 was killed mid-sleep, so it is retried");

    // Kills 2..=20 land at random moments: during steps and between them (the sleep is
    // the point: no state to wait for).
    let mut kills = 1;
    while kills < KILLS {
        std::thread::sleep(Duration::from_millis(20 + rng.below(200)));
        let s = daemon.status_json(work.path(), &id);
        if s["terminal"] == true {
            break;
        }
        daemon.kill9();
        kills += 1;
        daemon = Daemon::start(state.path());
        decide_if_needed(&daemon, work.path(), &id, &once, &mut retried);
    }
    println!("kills: {kills}, retried after a decision: {retried:?}");
    assert_eq!(
        kills, KILLS,
        "the launch ended before every kill landed: lengthen the plan"
    );

    let started = Instant::now();
    let s = loop {
        decide_if_needed(&daemon, work.path(), &id, &once, &mut retried);
        let s = daemon.status_json(work.path(), &id);
        if s["terminal"] == true {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "launch stuck: {s:#}"
        );
        std::thread::sleep(Duration::from_millis(25));
    };
    assert_eq!(s["status"], "succeeded", "{s:#}");

    let out = read(&work.path().join("out.log"));
    let count = |name: &str| out.lines().filter(|l| *l == name).count();
    for name in &once {
        assert_eq!(
            count(name),
            1,
            "non-idempotent step {name} must run exactly once:\n{out}"
        );
    }
    for name in &idempotent {
        let step = s["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|st| st["name"] == *name)
            .unwrap();
        let attempts = step["attempts"].as_u64().unwrap() as usize;
        let n = count(name);
        // An attempt killed after its echo but before the journal saw it finish runs again.
        assert!(
            n >= 1 && n <= attempts,
            "{name}: {n} lines for {attempts} attempts:\n{out}"
        );
    }
    assert_eq!(count("rollback"), 0);
    let mut weights: Vec<String> = read(&work.path().join("weights.log"))
        .lines()
        .map(String::from)
        .collect();
    weights.dedup();
    assert_eq!(weights, expected_weights, "weights moved in plan order");
    // The last daemon stops gracefully on SIGTERM.
    assert!(daemon.stop().success());
}

#[test]
fn what_an_interrupted_step_started_in_the_background_does_not_finish_unobserved() {
    let work = workdir();
    let state = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("plan.yaml"),
        "version: 1\nname: n\nservice: s\nsteps:\n  - { name: migrate, run: \"(sleep 0.6; touch late) & echo $! > child.pid; sleep 30\" }\n",
    )
    .unwrap();
    let mut daemon = Daemon::start(state.path());
    let out = daemon.cli(work.path(), &["launch", "plan.yaml"]);
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    daemon.wait_for(work.path(), &id, Duration::from_secs(10), |s| {
        s["current_step"] == "migrate"
    });
    let pid_file = work.path().join("child.pid");
    wait_until(
        Duration::from_secs(10),
        "the background child to start",
        || read(&pid_file).ends_with('\n'),
    );
    let child: i32 = read(&pid_file).trim().parse().unwrap();
    daemon.kill9();
    let daemon = Daemon::start(state.path());
    let s = daemon.status_json(work.path(), &id);
    assert_eq!(s["status"], "needs-decision", "{s:#}");
    // Gone, killed or done: from then on it touches nothing.
    wait_until(
        Duration::from_secs(10),
        "the background child to end",
        || !running(child),
    );
    assert!(
        !work.path().join("late").exists(),
        "the background child of the interrupted step kept running"
    );
    let log = read(&state.path().join("daemon.log"));
    assert!(
        log.contains("killed processes left by an interrupted step"),
        "{log}"
    );
}

/// Whether process `pid` runs (a zombie has ended).
fn running(pid: i32) -> bool {
    let stat = read(std::path::Path::new(&format!("/proc/{pid}/stat")));
    // `pid (comm) state ...`; comm may hold spaces and parentheses.
    stat.rsplit_once(')')
        .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
}
