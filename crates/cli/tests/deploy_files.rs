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
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

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

/// `tool` on the PATH (or in an sbin directory, where dockerd lives), else a failure
/// naming the package that provides it.
fn need(tool: &str, package: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"])
        .map(|dir| Path::new(dir).join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{tool} is not installed: apt-get install {package} (./test.sh does)")
        })
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

/// What a FROM scratch image must hold for `bin` to start: its ELF interpreter and each
/// library `ldd` resolves (`=> /path`), as absolute paths. Empty for a static binary.
fn shared_libraries(bin: &Path) -> Vec<PathBuf> {
    let ldd = Command::new("ldd").arg(bin).output().expect("run ldd");
    let listed = stdout(&ldd);
    let what = Command::new("file")
        .arg(bin)
        .output()
        .map(|out| stdout(&out))
        .unwrap_or_default();
    // "not a dynamic executable" (exit 1) or "statically linked" (static-pie).
    if !ldd.status.success() || listed.contains("statically linked") {
        assert!(
            what.is_empty() || what.contains("static"),
            "ldd calls {} static, file does not: {what}",
            bin.display()
        );
        return Vec::new();
    }
    assert!(
        !listed.contains("not found"),
        "{} misses libraries on this host:\n{listed}",
        bin.display()
    );
    let libraries: Vec<PathBuf> = listed
        .lines()
        .filter_map(|line| {
            // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)", the loader as
            // "/lib64/ld-linux-x86-64.so.2 (0x...)", the vDSO without a path.
            let path = line.split_once("=>").map_or(line, |(_, to)| to);
            let path = path.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect();
    // The interpreter the kernel starts is among them (file names it, when installed).
    if let Some(interpreter) = what
        .split("interpreter ")
        .nth(1)
        .and_then(|rest| rest.split([',', ' ']).next())
    {
        assert!(
            libraries.iter().any(|l| l == Path::new(interpreter)),
            "ldd does not list the interpreter {interpreter}:\n{listed}"
        );
    }
    assert!(
        libraries
            .iter()
            .any(|l| l.ends_with("ld-linux-x86-64.so.2"))
            || !cfg!(target_arch = "x86_64"),
        "no dynamic loader in ldd's output:\n{listed}"
    );
    libraries
}

/// A dockerd of this test's own (no bridge, no iptables, everything under `root`),
/// stopped by PID when dropped, also when the test panics.
struct Dockerd {
    child: Child,
    host: String,
    root: PathBuf,
}

impl Dockerd {
    fn start(dockerd: &Path, docker: &Path, root: &Path) -> Dockerd {
        let sock = root.join("docker.sock");
        let log = std::fs::File::create(root.join("dockerd.log")).unwrap();
        let child = Command::new(dockerd)
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
            .arg("--host")
            .arg(format!("unix://{}", sock.display()))
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("exec"))
            .arg("--pidfile")
            .arg(root.join("dockerd.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let mut daemon = Dockerd {
            child,
            host: format!("unix://{}", sock.display()),
            root: root.to_path_buf(),
        };
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                panic!(
                    "dockerd exited ({status}; it must run as root):\n{}",
                    daemon.log()
                );
            }
            let up = Command::new(docker)
                .args(["--host", &daemon.host, "version"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if up {
                return daemon;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "dockerd did not answer within 60 s:\n{}",
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("dockerd.log")).unwrap_or_default()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // SIGTERM: dockerd stops its containers and its containerd, and unmounts.
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.unmount_leftovers();
    }
}

impl Dockerd {
    /// Unmount what dockerd left mounted under its directories (its default network
    /// namespace, a container's layers after a SIGKILL), deepest first, so that the
    /// temporary directory can go.
    fn unmount_leftovers(&self) {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let mut under: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| Path::new(m).starts_with(&self.root))
            .collect();
        under.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in under {
            let _ = Command::new("umount").args(["--lazy", m]).status();
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
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
    let docker = |args: &[&str]| -> Output {
        Command::new(&docker_cli)
            .args(["--host", &dockerd.host])
            .args(args)
            .output()
            .expect("run docker")
    };
    let ok = |args: &[&str]| -> String {
        let out = docker(args);
        assert!(
            out.status.success(),
            "docker {}: {}\n{}",
            args.join(" "),
            out.status,
            stderr(&out)
        );
        stdout(&out)
    };

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
