//! The files in `deploy/` work as shipped: `systemd-analyze verify` accepts the systemd
//! units (and `liftoff.service` keeps the router alive across daemon restarts), and
//! `deploy/Dockerfile` builds, with a real dockerd this test starts, a FROM scratch image
//! of liftoff that runs `--version` and `serve` as its non-root user.
//!
//! The image holds the binary cargo built for these tests, dynamically linked: its
//! loader and libraries go into the context's `rootfs/` at the paths `ldd` names, as the
//! Dockerfile documents for a dynamic binary. `LIFTOFF_DEPLOY_BIN` names another binary,
//! such as the static release build the Dockerfile recommends (nothing is added then).
//! Everything stays on loopback: dockerd has no bridge and containers use the host's
//! network.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::docker::{Dockerd, copy_tree, need, shared_libraries};
use support::{BIN, free_port, http, stderr, stdout, wait_until};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn deploy(file: &str) -> PathBuf {
    workspace().join("deploy").join(file)
}

// --- systemd ---------------------------------------------------------------------------

/// What `systemd-analyze verify` says about `unit`: every line of its output that names
/// the unit or liftoff, and its exit status when it failed. Empty when it is satisfied.
fn verify(analyze: &Path, unit: &Path) -> Vec<String> {
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(unit)
        .current_dir(unit.parent().unwrap())
        .output()
        .expect("run systemd-analyze");
    let name = unit.file_name().unwrap().to_str().unwrap();
    let mut complaints: Vec<String> = format!("{}{}", stdout(&out), stderr(&out))
        .lines()
        .filter(|l| l.contains(name) || l.contains("liftoff"))
        .map(str::to_string)
        .collect();
    if !out.status.success() {
        complaints.push(format!("systemd-analyze verify: {}", out.status));
    }
    complaints
}

/// The values of `key` in a unit file, comments skipped.
fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
        .collect()
}

#[test]
fn systemd_analyze_verifies_the_units_and_a_daemon_restart_spares_the_router() {
    let analyze = need("systemd-analyze", "systemd");
    let dir = tempfile::tempdir().unwrap();
    for name in ["liftoff.service", "liftoff-router.service"] {
        let text = std::fs::read_to_string(deploy(name)).unwrap();
        assert!(
            values(&text, "ExecStart")
                .iter()
                .all(|v| v.starts_with("/usr/local/bin/liftoff ")),
            "{name}: ExecStart runs /usr/local/bin/liftoff"
        );
        // verify wants the commands to exist: the binary under test stands in.
        let unit = dir.path().join(name);
        std::fs::write(&unit, text.replace("/usr/local/bin/liftoff", BIN)).unwrap();
        let complaints = verify(&analyze, &unit);
        assert!(
            complaints.is_empty(),
            "systemd-analyze verify deploy/{name}:\n{}",
            complaints.join("\n")
        );
    }

    // The check sees a mistake (warnings leave its exit status 0).
    let daemon = std::fs::read_to_string(deploy("liftoff.service")).unwrap();
    let bad = dir.path().join("liftoff-bad.service");
    let mistaken = daemon
        .replace("/usr/local/bin/liftoff", BIN)
        .replace("KillMode=process", "KillMode=proces")
        .replace("NoNewPrivileges=yes", "NoNewPrivilege=yes");
    std::fs::write(&bad, mistaken).unwrap();
    let complaints = verify(&analyze, &bad);
    assert!(
        complaints.iter().any(|l| l.contains("kill mode"))
            && complaints.iter().any(|l| l.contains("NoNewPrivilege")),
        "systemd-analyze missed a bad KillMode and an unknown key: {complaints:?}"
    );

    // A daemon restart signals the daemon only: the router it started keeps serving.
    assert_eq!(values(&daemon, "KillMode"), ["process"]);
    assert_eq!(values(&daemon, "StateDirectory"), ["liftoff"]);
    assert!(values(&daemon, "ExecStart")[0].contains("serve --state-dir /var/lib/liftoff "));
    assert_eq!(
        values(&daemon, "ExecReload"),
        ["/usr/local/bin/liftoff router restart --state-dir /var/lib/liftoff/router --timeout 60s"]
    );
    for key in ["NoNewPrivileges", "ProtectHome", "PrivateTmp"] {
        assert_eq!(values(&daemon, key), ["yes"], "{key}");
    }
    assert_eq!(values(&daemon, "ProtectSystem"), ["strict"]);
}

// --- the container image -----------------------------------------------------------------

/// The liftoff for the image: `LIFTOFF_DEPLOY_BIN`, else the binary under test.
fn image_binary() -> PathBuf {
    std::env::var_os("LIFTOFF_DEPLOY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(BIN))
}

#[test]
fn the_dockerfile_builds_a_scratch_image_of_liftoff_that_serves() {
    let started = Instant::now();
    let docker_cli = need("docker", "docker.io");
    let dockerd_bin = need("dockerd", "docker.io");
    need("ldd", "libc-bin");
    let bin = image_binary();
    let libraries = shared_libraries(&bin);

    // Nothing but what the context brings: one stage, FROM scratch.
    let dockerfile = std::fs::read_to_string(deploy("Dockerfile")).unwrap();
    let froms: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| l.to_ascii_uppercase().starts_with("FROM "))
        .collect();
    assert_eq!(froms, ["FROM scratch"], "deploy/Dockerfile's base");

    let tmp = tempfile::tempdir().unwrap();
    let dockerd = Dockerd::start(&dockerd_bin, &docker_cli, tmp.path());
    let docker = |args: &[&str]| dockerd.docker(args);
    let ok = |args: &[&str]| dockerd.ok(args);

    // The context the Dockerfile documents: deploy/ with the binary, the CA bundle and,
    // for a dynamic binary, its loader and libraries in rootfs/ where ldd found them.
    let context = tmp.path().join("context");
    for dir in ["rootfs", "state"] {
        copy_tree(&deploy(dir), &context.join(dir));
    }
    for file in ["Dockerfile", ".dockerignore"] {
        std::fs::copy(deploy(file), context.join(file)).unwrap();
    }
    std::fs::copy(&bin, context.join("liftoff")).unwrap();
    for library in &libraries {
        let to = context
            .join("rootfs")
            .join(library.strip_prefix("/").unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        // Follows the host's symlinks: the image gets the file at the path ldd named.
        std::fs::copy(library, &to).unwrap();
    }
    let roots = Path::new("/etc/ssl/certs/ca-certificates.crt");
    assert!(
        roots.is_file(),
        "no {}: apt-get install ca-certificates (./test.sh does)",
        roots.display()
    );
    std::fs::copy(roots, context.join("ca-certificates.crt")).unwrap();
    let tag = format!("liftoff-deploy-test:{}", std::process::id());
    ok(&["build", "--tag", &tag, context.to_str().unwrap()]);

    let version = ok(&["run", "--rm", "--network", "host", &tag, "--version"]);
    assert_eq!(
        version.trim(),
        format!("liftoff {}", env!("CARGO_PKG_VERSION"))
    );
    // Scratch: no shell came with it.
    let shell = docker(&["run", "--rm", "--entrypoint", "/bin/sh", &tag, "-c", "true"]);
    assert!(!shell.status.success(), "the image has a /bin/sh");

    // The image's default user and state directory: the daemon starts, its local router
    // (a child in the same container) reports, and SIGTERM stops it cleanly.
    let port = free_port();
    let api = format!("http://127.0.0.1:{port}");
    let name = format!("liftoff-deploy-test-{}", std::process::id());
    let listen = format!("127.0.0.1:{port}");
    ok(&[
        "run",
        "--detach",
        "--name",
        &name,
        "--network",
        "host",
        &tag,
        "serve",
        "--state-dir",
        "/var/lib/liftoff",
        "--listen",
        &listen,
    ]);
    let logs = || {
        let out = docker(&["logs", &name]);
        format!("{}{}", stdout(&out), stderr(&out))
    };
    let answered = std::panic::catch_unwind(|| {
        wait_until(
            Duration::from_secs(30),
            "the daemon in the container",
            || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                    && http("GET", &format!("{api}/healthz"), &[], None).status == 200
            },
        );
        wait_until(Duration::from_secs(30), "its local router", || {
            http("GET", &format!("{api}/api/v1/routers"), &[], None)
                .body
                .contains("\"local\"")
        });
    });
    if answered.is_err() {
        panic!("liftoff serve in the container:\n{}", logs());
    }
    let user = ok(&["exec", &name, "/usr/local/bin/liftoff", "--version"]);
    assert!(user.starts_with("liftoff "), "{user}");
    let top = ok(&["top", &name, "-o", "pid,user,args"]);
    assert!(
        top.lines()
            .skip(1)
            .all(|l| matches!(l.split_whitespace().nth(1), Some("65532" | "liftoff"))),
        "every process runs as the image's user:\n{top}"
    );
    assert!(top.contains("liftoff router"), "no local router:\n{top}");
    ok(&["stop", "--time", "20", &name]);
    let exit = ok(&["inspect", "--format", "{{.State.ExitCode}}", &name]);
    assert_eq!(exit.trim(), "0", "serve's exit on SIGTERM:\n{}", logs());
    ok(&["rm", &name]);
    ok(&["rmi", &tag]);
    drop(dockerd);
    eprintln!(
        "image of {} ({} libraries from the host) built and run in {:.1} s",
        bin.display(),
        libraries.len(),
        started.elapsed().as_secs_f64()
    );
}
