//! The flag crate is pure: `cargo tree` shows no runtime, network or database crate.

use std::process::Command;

#[test]
fn the_flag_crate_does_no_io() {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--locked",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .args(["--format", "{p}", "-p", "liftoff-flags"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    let names: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(names.contains(&"xxhash-rust"), "{tree}");
    for forbidden in [
        "tokio",
        "hyper",
        "axum",
        "reqwest",
        "rusqlite",
        "mio",
        "getrandom",
    ] {
        assert!(
            !names.contains(&forbidden),
            "liftoff-flags must not depend on {forbidden}"
        );
    }
}
