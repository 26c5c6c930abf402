//! A dockerd of a test's own (no bridge, no iptables: only loopback traffic), and what
//! a FROM scratch image of the binary under test needs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::stdout;

/// `tool` on the PATH (or in an sbin directory, where dockerd lives), else a failure
/// naming the package that provides it.
pub fn need(tool: &str, package: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"])
        .map(|dir| Path::new(dir).join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{tool} is not installed: apt-get install {package} (./test.sh does)")
        })
}

/// What a FROM scratch image must hold for `bin` to start: its ELF interpreter and each
/// library `ldd` resolves (`=> /path`), as absolute paths. Empty for a static binary.
pub fn shared_libraries(bin: &Path) -> Vec<PathBuf> {
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
pub struct Dockerd {
    child: Child,
    pub host: String,
    root: PathBuf,
    /// The `docker` CLI.
    cli: PathBuf,
}

impl Dockerd {
    pub fn start(dockerd: &Path, docker: &Path, root: &Path) -> Dockerd {
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
            cli: docker.to_path_buf(),
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

    /// `docker ARGS` against this dockerd.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new(&self.cli)
            .args(["--host", &self.host])
            .args(args)
            .output()
            .expect("run docker")
    }

    /// `docker ARGS`, which must succeed: its output.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {}: {}\n{}",
            args.join(" "),
            out.status,
            super::stderr(&out)
        );
        stdout(&out)
    }

    pub fn log(&self) -> String {
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

/// Copy the directory tree `from` to `to`.
pub fn copy_tree(from: &Path, to: &Path) {
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
