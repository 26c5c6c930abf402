//! Plan decoding time against plan size, for bench/plan-decode.sh:
//!
//!     cargo run --release -p liftoff-plan --example decode [RUNS [STEPS...]]
//!
//! For each size (default 1,000, 10,000 and 100,000), a plan of that many unnamed,
//! identical steps (`- run: t`: every name is derived, and all but the first are
//! numbered) is parsed with the step and size caps lifted. Prints the best of RUNS
//! (default 5) runs, the time per step, and the ratio of the largest size's time to the
//! one before it (linear decoding: about the ratio of the sizes). Then the largest plans
//! `parse` accepts: `MAX_STEPS` steps, and `MAX_PLAN_BYTES` of checklist items.

use std::time::{Duration, Instant};

use liftoff_plan::{Limits, MAX_PLAN_BYTES, MAX_STEPS, parse, parse_with_limits};

const HEAD: &str = "version: 1\nname: bench\nservice: bench\n";

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("a number"));
    let runs = args.next().unwrap_or(5);
    let mut sizes: Vec<usize> = args.collect();
    if sizes.is_empty() {
        sizes = vec![1_000, 10_000, 100_000];
    }

    println!("| steps | plan bytes | best of {runs} | per step |");
    println!("|---:|---:|---:|---:|");
    let mut times = Vec::new();
    for &steps in &sizes {
        let source = format!("{HEAD}steps:\n{}", "  - run: t\n".repeat(steps));
        let limits = Limits {
            max_bytes: usize::MAX,
            max_steps: steps,
            ..Limits::default()
        };
        let best = best_of(runs, || {
            let plan = parse_with_limits(&source, &|_| None, limits).expect("a valid plan");
            assert_eq!(plan.steps.len(), steps);
        });
        println!(
            "| {steps} | {} | {:.1} ms | {:.2} µs |",
            source.len(),
            ms(best),
            best.as_secs_f64() * 1e6 / steps as f64
        );
        times.push((steps, best));
    }
    if let [.., (n1, t1), (n2, t2)] = times[..] {
        println!(
            "\n{n2} steps took {:.1}× as long as {n1} (linear: {:.1}×)",
            t2.as_secs_f64() / t1.as_secs_f64(),
            n2 as f64 / n1 as f64
        );
    }

    println!("\nthe largest plans `parse` accepts (default limits):");
    let at_cap = format!("{HEAD}steps:\n{}", "  - run: t\n".repeat(MAX_STEPS));
    let best = best_of(runs, || {
        parse(&at_cap, &|_| None).expect("a valid plan");
    });
    println!(
        "  {MAX_STEPS} steps ({} bytes): {:.2} ms",
        at_cap.len(),
        ms(best)
    );

    let item = "  - command: \"true\"\n";
    let head = format!("{HEAD}steps:\n  - run: t\nchecklist:\n");
    let items = (MAX_PLAN_BYTES - head.len()) / item.len();
    let full = format!("{head}{}", item.repeat(items));
    let best = best_of(runs, || {
        let plan = parse(&full, &|_| None).expect("a valid plan");
        assert_eq!(plan.checklist.map(|c| c.items.len()), Some(items));
    });
    println!(
        "  {} bytes, {items} checklist items: {:.1} ms",
        full.len(),
        ms(best)
    );
}

fn best_of(runs: usize, mut f: impl FnMut()) -> Duration {
    (0..runs.max(1))
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
