//! The dependency rules ARCHITECTURE.md states, enforced with `cargo tree`.

use std::process::Command;

fn deps(package: &str) -> Vec<String> {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--locked",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "-p",
            package,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

fn assert_free_of(package: &str, forbidden: &[&str]) {
    let tree = deps(package);
    assert!(
        tree.len() > 1,
        "cargo tree printed nothing useful for {package}"
    );
    for f in forbidden {
        assert!(
            !tree.iter().any(|d| d == f),
            "{package} must not depend on {f}, but does"
        );
    }
}

#[test]
fn the_plan_model_engine_core_and_judge_do_no_io() {
    let io = ["tokio", "hyper", "axum", "reqwest", "rusqlite", "mio"];
    assert_free_of("liftoff-plan", &io);
    assert_free_of("liftoff-engine", &io);
    assert_free_of("liftoff-analysis", &io);
}

#[test]
fn the_store_knows_nothing_of_the_engine_and_the_driver_nothing_of_http_serving() {
    assert_free_of(
        "liftoff-store",
        &["liftoff-engine", "liftoff-plan", "tokio"],
    );
    assert_free_of("liftoff-driver", &["axum", "liftoff-server", "liftoff-api"]);
    assert_free_of(
        "liftoff-router",
        &[
            "liftoff-engine",
            "liftoff-plan",
            "liftoff-store",
            "liftoff-driver",
            "axum",
        ],
    );
    assert_free_of(
        "liftoff-api",
        &["liftoff-engine", "liftoff-driver", "liftoff-store", "tokio"],
    );
}

#[test]
fn the_tree_reading_sees_real_dependencies() {
    // A control: if parsing `cargo tree` broke, the tests above would pass vacuously.
    let driver = deps("liftoff-driver");
    for expected in ["tokio", "liftoff-engine", "liftoff-store", "rusqlite"] {
        assert!(
            driver.iter().any(|d| d == expected),
            "{expected} missing from {driver:?}"
        );
    }
}
