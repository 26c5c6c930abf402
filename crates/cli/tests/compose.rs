//! `deploy` steps against real docker compose, behind a real HAProxy and a real nginx:
//! the seed 001 and 004 examples on the infrastructure their runbooks run
//! (examples/retail-dashboard-compose.yaml, examples/hotel-agent-api-compose.yaml).
//!
//! Each test starts its own dockerd (no bridge, no iptables: containers use the host's
//! network on 127.0.0.1), builds FROM scratch images of this build's `liftoff demo-app`
//! (a good release, a release failing 30% of requests, a release slow to start), brings
//! stable up with `docker-compose` as an operator would, starts HAProxy or nginx from the
//! example's configuration on free ports, puts sticky users through it, and launches
//! the example plan against a daemon whose `DOCKER_HOST` is that dockerd. Everything is
//! stopped by PID when the test ends, also when it fails.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::docker::{Dockerd, need, shared_libraries};
use support::{BIN, Daemon, Proc, free_port, load_users, stderr, stdout, wait_until};

const LIMIT: Duration = Duration::from_secs(120);

fn examples() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples"))
        .canonicalize()
        .expect("examples/")
}

// --- the container engine and the images ----------------------------------------------

/// A dockerd of the test's own, with the images of one application: `NAME:1.0.0`,
/// `NAME:1.1.0` and `NAME:2.0.0` are good releases, `NAME:2.0.1` fails 30% of its requests, `NAME:2.0.2`
/// takes 5 s to start listening, `NAME:2.0.3` exits at once (a bad setting).
struct Engine {
    dockerd: Dockerd,
    compose: PathBuf,
    dir: tempfile::TempDir,
}

impl Engine {
    fn start(image: &str) -> Engine {
        let docker = need("docker", "docker.io");
        let dockerd_bin = need("dockerd", "docker.io");
        let compose = need("docker-compose", "docker-compose");
        need("ldd", "libc-bin");
        let dir = tempfile::tempdir().unwrap();
        let dockerd = Dockerd::start(&dockerd_bin, &docker, dir.path());
        let engine = Engine {
            dockerd,
            compose,
            dir,
        };
        engine.build(image);
        engine
    }

    fn docker(&self, args: &[&str]) -> Output {
        self.dockerd.docker(args)
    }

    fn ok(&self, args: &[&str]) -> String {
        self.dockerd.ok(args)
    }

    /// The application's releases: one FROM scratch image of `liftoff` (and, for a
    /// dynamic build, its loader and libraries), tagged per release with what makes it
    /// good, bad or slow in its environment.
    fn build(&self, name: &str) {
        let context = self.dir.path().join("context");
        let rootfs = context.join("rootfs");
        std::fs::create_dir_all(&rootfs).unwrap();
        for library in shared_libraries(Path::new(BIN)) {
            let to = rootfs.join(library.strip_prefix("/").unwrap());
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&library, &to).unwrap();
        }
        // Without its debug information the image is a fifth of the size.
        let binary = context.join("liftoff");
        let stripped = Command::new("strip")
            .args(["--strip-debug", "-o"])
            .arg(&binary)
            .arg(BIN)
            .status()
            .is_ok_and(|s| s.success());
        if !stripped {
            std::fs::copy(BIN, &binary).unwrap();
        }
        let releases = [
            ("1.0.0", ""),
            ("1.1.0", ""),
            ("2.0.0", ""),
            ("2.0.1", "ENV LIFTOFF_DEMO_ERROR_RATE=0.3\n"),
            ("2.0.2", "ENV LIFTOFF_DEMO_START_DELAY_MS=5000\n"),
            ("2.0.3", "ENV LIFTOFF_DEMO_ERROR_RATE=lots\n"),
        ];
        for (version, env) in releases {
            let dockerfile = context.join(format!("Dockerfile.{version}"));
            std::fs::write(
                &dockerfile,
                format!(
                    "FROM scratch\nCOPY rootfs/ /\nCOPY liftoff /liftoff\n{env}ENTRYPOINT [\"/liftoff\"]\nCMD [\"demo-app\"]\n"
                ),
            )
            .unwrap();
            self.ok(&[
                "build",
                "--quiet",
                "--tag",
                &format!("{name}:{version}"),
                "--file",
                dockerfile.to_str().unwrap(),
                context.to_str().unwrap(),
            ]);
        }
    }

    /// An engine with the images of `app`, its stable (1.0.0) running as compose
    /// `project` from examples/compose/DIR/docker-compose.yml and healthy; the ports
    /// stable and the candidate listen on.
    fn with_stable(app: &str, dir: &str, project: &str, service: &str) -> (Engine, u16, u16) {
        let engine = Engine::start(app);
        let (stable, candidate) = (free_port(), free_port());
        let file = examples().join(format!("compose/{dir}/docker-compose.yml"));
        engine.compose_up(project, &file, &[("STABLE_PORT", &stable.to_string())]);
        engine.wait_healthy(service, project);
        (engine, stable, candidate)
    }

    /// `docker-compose -p PROJECT -f FILE up -d`, as the operator started stable.
    fn compose_up(&self, project: &str, file: &Path, env: &[(&str, &str)]) {
        let out = Command::new(&self.compose)
            .args(["--project-name", project, "--file"])
            .arg(file)
            .args(["up", "--detach"])
            .env("DOCKER_HOST", &self.dockerd.host)
            .envs(env.iter().copied())
            .output()
            .expect("run docker-compose");
        assert!(out.status.success(), "docker-compose up: {}", stderr(&out));
    }

    /// Every container of `service` (running or not): `(name, state, labels)`.
    fn containers(&self, service: &str) -> Vec<(String, String, Value)> {
        // A container removed between `ps` and `inspect`: ask again.
        loop {
            if let Some(found) = self.try_containers(service) {
                return found;
            }
        }
    }

    fn try_containers(&self, service: &str) -> Option<Vec<(String, String, Value)>> {
        let ids = self.ok(&[
            "ps",
            "--all",
            "--quiet",
            "--filter",
            &format!("label=com.docker.compose.service={service}"),
        ]);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if ids.is_empty() {
            return Some(Vec::new());
        }
        let mut args = vec!["inspect"];
        args.extend(ids);
        let out = self.docker(&args);
        if !out.status.success() && stderr(&out).contains("No such object") {
            return None;
        }
        assert!(out.status.success(), "docker inspect: {}", stderr(&out));
        let all: Vec<Value> = serde_json::from_str(&stdout(&out)).unwrap();
        let found = all
            .iter()
            .map(|c| {
                (
                    c["Name"]
                        .as_str()
                        .unwrap()
                        .trim_start_matches('/')
                        .to_string(),
                    c["State"]["Status"].as_str().unwrap().to_string(),
                    c["Config"]["Labels"].clone(),
                )
            })
            .collect();
        Some(found)
    }

    /// The compose projects of `service`'s containers, running or not.
    fn projects(&self, service: &str) -> Vec<String> {
        let mut projects: Vec<String> = self
            .containers(service)
            .iter()
            .map(|(_, _, l)| {
                l["com.docker.compose.project"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        projects.sort();
        projects
    }

    fn wait_healthy(&self, service: &str, project: &str) {
        wait_until(
            Duration::from_secs(60),
            "stable's container to be healthy",
            || {
                let id = self.ok(&[
                    "ps",
                    "--quiet",
                    "--filter",
                    &format!("label=com.docker.compose.project={project}"),
                    "--filter",
                    &format!("label=com.docker.compose.service={service}"),
                ]);
                let id = id.trim();
                !id.is_empty()
                    && self
                        .ok(&["inspect", "--format", "{{.State.Health.Status}}", id])
                        .trim()
                        == "healthy"
            },
        );
    }
}

// --- the launch ----------------------------------------------------------------------

/// A daemon that reaches the test's dockerd, and the plan's variables.
struct Site {
    daemon: Daemon,
    state: tempfile::TempDir,
    docker_host: String,
    vars: Vec<(&'static str, String)>,
}

impl Site {
    fn new(engine: &Engine, vars: Vec<(&'static str, String)>) -> Site {
        let state = tempfile::tempdir().unwrap();
        let docker_host = engine.dockerd.host.clone();
        let daemon = Daemon::start_with(state.path(), &[("DOCKER_HOST", &docker_host)], None);
        Site {
            daemon,
            state,
            docker_host,
            vars,
        }
    }

    /// The daemon again, after a crash.
    fn restart(&mut self) {
        self.daemon = Daemon::start_with(
            self.state.path(),
            &[("DOCKER_HOST", &self.docker_host)],
            None,
        );
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .current_dir(examples())
            .env("LIFTOFF_SERVER", &self.daemon.url)
            .env("LIFTOFF_STATE_DIR", &self.daemon.state_dir)
            .env_remove("LIFTOFF_TOKEN")
            .envs(self.vars.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .output()
            .expect("run liftoff")
    }

    fn launch(&self, plan: &str) -> String {
        let out = self.cli(&["launch", plan]);
        assert!(out.status.success(), "launch: {}", stderr(&out));
        stdout(&out).trim().to_string()
    }

    fn status(&self, id: &str) -> Value {
        self.daemon.status_json(&examples(), id)
    }

    fn wait_for(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        self.daemon.wait_for(&examples(), id, LIMIT, done)
    }

    fn ended(&self, id: &str) -> Value {
        self.wait_for(id, |s| s["terminal"] == true)
    }
}

fn step<'s>(status: &'s Value, name: &str) -> &'s Value {
    status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .chain(status["rollback"].as_array().unwrap())
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step `{name}`: {status:#}"))
}

/// The body of a GET through the load balancer as `user`.
fn get_as(port: u16, user: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "-m", "5", "-H", &format!("X-User-Id: {user}")])
        .arg(format!("http://127.0.0.1:{port}/inventory"))
        .output()
        .unwrap();
    stdout(&out)
}

/// Which of 40 users the load balancer sends to `version`.
fn users_on(port: u16, version: &str) -> Vec<bool> {
    (0..40)
        .map(|u| get_as(port, &format!("user-{u}")).contains(&format!("v{version}")))
        .collect()
}

// --- HAProxy: seed 001 ---------------------------------------------------------------

/// HAProxy from the example's configuration (which reads its addresses from the
/// environment), on a free port.
struct Haproxy {
    port: u16,
    socket: PathBuf,
    _dir: tempfile::TempDir,
    _proc: Proc,
}

impl Haproxy {
    fn start(stable: u16, candidate: u16) -> Haproxy {
        need("haproxy", "haproxy");
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("admin.sock");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("haproxy.log")).unwrap();
        let proc = Proc(
            Command::new("haproxy")
                .arg("-f")
                .arg(examples().join("compose/retail-dashboard/haproxy.cfg"))
                .arg("-db")
                .env("HAPROXY_SOCKET", &socket)
                .env("HAPROXY_PORT", port.to_string())
                .env("STABLE_PORT", stable.to_string())
                .env("CANDIDATE_PORT", candidate.to_string())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start haproxy"),
        );
        wait_until(Duration::from_secs(10), "haproxy to start", || {
            std::os::unix::net::UnixStream::connect(&socket).is_ok()
                && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Haproxy {
            port,
            socket,
            _dir: dir,
            _proc: proc,
        }
    }
}

const RETAIL: &str = "retail-dashboard-compose.yaml";

/// Blue (1.0.0) running under compose behind HAProxy, users coming through it, and a
/// daemon; `version` is green's release.
struct Retail {
    // Dropped in this order: users, daemon, HAProxy, then the engine and its containers.
    _users: Proc,
    site: Site,
    haproxy: Haproxy,
    engine: Engine,
}

impl Retail {
    fn start(version: &str) -> Retail {
        let (engine, stable, candidate) = Engine::with_stable(
            "retail-dashboard",
            "retail-dashboard",
            "retail-blue",
            "dashboard",
        );
        let haproxy = Haproxy::start(stable, candidate);
        let site = Site::new(
            &engine,
            vec![
                ("VERSION", version.to_string()),
                ("STABLE_PORT", stable.to_string()),
                ("CANDIDATE_PORT", candidate.to_string()),
                ("HAPROXY_SOCKET", haproxy.socket.display().to_string()),
            ],
        );
        let users = load_users(&format!("http://127.0.0.1:{}/", haproxy.port), 8);
        Retail {
            _users: users,
            site,
            haproxy,
            engine,
        }
    }
}

#[test]
fn seed_001_on_compose_and_haproxy_goes_5_25_100_by_user_and_leaves_only_green() {
    let t = Retail::start("2.0.0");
    let id = t.site.launch(RETAIL);

    // At 25% a user keeps their version, and green has a share of them.
    let at_25 = t.site.wait_for(&id, |s| {
        s["current_step"] == "25% go/no-go" || s["terminal"] == true
    });
    let first = users_on(t.haproxy.port, "2.0.0");
    let again = users_on(t.haproxy.port, "2.0.0");
    let on_green = first.iter().filter(|g| **g).count();
    assert_eq!(first, again, "a user changed version at 25%");
    assert!(
        (2..=25).contains(&on_green),
        "{on_green} of 40 users on green at 25%: {at_25:#}"
    );

    let s = t.site.ended(&id);
    assert_eq!(s["status"], "succeeded", "{s:#}");
    let deployed = step(&s, "deploy green");
    assert!(
        deployed["message"]
            .as_str()
            .unwrap()
            .contains("dashboard of project `retail-green` running and healthy"),
        "{deployed:#}"
    );
    let weights: Vec<&str> = ["traffic 5%", "traffic 25%", "traffic 100%"]
        .iter()
        .map(|name| step(&s, name)["status"].as_str().unwrap())
        .collect();
    assert_eq!(weights, ["succeeded"; 3]);
    assert!(users_on(t.haproxy.port, "2.0.0").iter().all(|g| *g));

    // Blue is retired once green has won: only green's container is left, running, with
    // this launch's labels.
    wait_until(Duration::from_secs(60), "blue to be retired", || {
        t.engine.projects("dashboard") == ["retail-green"]
    });
    let left = t.engine.containers("dashboard");
    let [(name, state, labels)] = left.as_slice() else {
        panic!("{left:?}")
    };
    assert_eq!(state, "running", "{name}");
    assert_eq!(labels["io.liftoff.launch"], id.as_str());
    assert_eq!(
        labels["io.liftoff.attempt"],
        format!("{id}/step-0/1").as_str()
    );
    let follow_ups = stdout(&t.site.cli(&["schedule", "list"]));
    assert!(
        follow_ups.contains("retire `dashboard` of compose project `retail-blue`")
            && follow_ups.contains("succeeded"),
        "{follow_ups}"
    );
}

#[test]
fn a_bad_green_behind_haproxy_is_rolled_back_on_haproxys_numbers_and_removed() {
    let t = Retail::start("2.0.1");
    let id = t.site.launch(RETAIL);
    let s = t.site.ended(&id);
    assert_eq!(s["status"], "rolled-back", "{s:#}");
    // A trigger on HAProxy's own counters, with no Prometheus: not the analyze gate.
    let reason = s["reason"].as_str().unwrap();
    assert!(
        reason.contains("trigger") && reason.contains("error_rate >"),
        "{reason}"
    );
    let removal = step(&s, "remove retail-green");
    assert_eq!(removal["status"], "succeeded", "{removal:#}");
    assert!(
        removal["message"]
            .as_str()
            .unwrap()
            .starts_with("removed compose project `retail-green`: "),
        "{removal:#}"
    );
    // No container of green is left, in any state; blue runs on and has every user.
    assert_eq!(t.engine.projects("dashboard"), ["retail-blue"]);
    let blue = t.engine.containers("dashboard");
    assert_eq!(blue[0].1, "running");
    assert!(users_on(t.haproxy.port, "1.0.0").iter().all(|b| *b));
}

#[test]
fn a_green_that_exits_fails_the_deploy_with_its_output_and_is_removed() {
    let t = Retail::start("2.0.3");
    let id = t.site.launch(RETAIL);
    let s = t.site.ended(&id);
    assert_eq!(s["status"], "rolled-back", "{s:#}");
    let deployed = step(&s, "deploy green");
    // (Or caught between two of its restarts.)
    assert!(
        deployed["message"]
            .as_str()
            .unwrap()
            .starts_with("container retail-green_dashboard_1: exited with status 2"),
        "{deployed:#}"
    );
    // Its own words, from `docker logs`, in the journal.
    let output = deployed["output"].as_str().unwrap();
    assert!(
        output.starts_with("--- retail-green_dashboard_1 (last 50 lines) ---\n")
            && output.contains("invalid value 'lots' for '--error-rate <ERROR_RATE>'"),
        "{output}"
    );
    assert_eq!(step(&s, "remove retail-green")["status"], "succeeded");
    assert_eq!(t.engine.projects("dashboard"), ["retail-blue"]);
}

#[test]
fn a_daemon_killed_during_a_compose_deploy_resumes_and_leaves_no_container_of_the_attempt() {
    // 2.0.2 takes 5 s to listen: the deploy is still waiting for its health when the
    // daemon dies.
    let mut t = Retail::start("2.0.2");
    let id = t.site.launch(RETAIL);
    let attempt = |n: u32| format!("{id}/step-0/{n}");
    wait_until(LIMIT, "the first attempt's container", || {
        t.engine
            .containers("dashboard")
            .iter()
            .any(|(_, _, l)| l["io.liftoff.attempt"] == attempt(1).as_str())
    });
    let s = t.site.status(&id);
    assert_eq!(s["current_step"], "deploy green", "{s:#}");
    t.site.daemon.kill9();
    t.site.restart();

    let s = t.site.ended(&id);
    assert_eq!(s["status"], "succeeded", "{s:#}");
    let deployed = step(&s, "deploy green");
    assert_eq!(deployed["attempts"], 2, "{deployed:#}");
    assert!(
        deployed["message"]
            .as_str()
            .unwrap()
            .starts_with("removed 1 container(s) of an earlier attempt; "),
        "{deployed:#}"
    );
    // The interrupted attempt's container is gone; green is the second attempt's.
    wait_until(Duration::from_secs(60), "blue to be retired", || {
        t.engine.projects("dashboard") == ["retail-green"]
    });
    let left = t.engine.containers("dashboard");
    let attempts: Vec<&str> = left
        .iter()
        .map(|(_, _, l)| l["io.liftoff.attempt"].as_str().unwrap())
        .collect();
    assert_eq!(attempts, [attempt(2).as_str()]);
}

// --- nginx: seed 004 -----------------------------------------------------------------

/// nginx with the example's server block (its paths and port made the test's own),
/// in front of stable alone until liftoff writes the include.
struct Nginx {
    dir: tempfile::TempDir,
    port: u16,
    child: std::process::Child,
}

impl Nginx {
    fn start(stable: u16, candidate: u16) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let port = free_port();
        let site =
            std::fs::read_to_string(examples().join("compose/hotel-agent-api/nginx-site.conf"))
                .unwrap()
                .replace(
                    "/etc/nginx/liftoff/agente-hotel-api.conf",
                    &format!("{d}/include.conf"),
                )
                .replace(
                    "/var/log/nginx/agente-hotel-api.liftoff.log",
                    &format!("{d}/access.log"),
                )
                .replace(
                    "listen 127.0.0.1:8080;",
                    &format!("listen 127.0.0.1:{port};"),
                );
        // What the server block's comment says to create before nginx first starts.
        std::fs::write(
            dir.path().join("include.conf"),
            format!(
                "log_format liftoff_agente_api '$msec $status $request_time \"$upstream_addr\" \"$upstream_status\"';\n\
                 upstream agente_api {{ hash $http_x_user_id consistent; server 127.0.0.1:{stable} weight=100; server 127.0.0.1:{candidate} down; }}\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("nginx.conf"),
            support::nginx::conf(dir.path(), &site),
        )
        .unwrap();
        let child = support::nginx::spawn(dir.path(), port);
        Nginx { dir, port, child }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        support::nginx::stop(&mut self.child);
    }
}

const HOTEL: &str = "hotel-agent-api-compose.yaml";

/// The running agente-api (1.0.0) under compose behind nginx, users coming through it,
/// and a daemon; `version` is the new release. The launch is started and given its GO.
struct Hotel {
    _users: Proc,
    site: Site,
    nginx: Nginx,
    engine: Engine,
    id: String,
}

impl Hotel {
    fn launch(version: &str) -> Hotel {
        let (engine, stable, candidate) = Engine::with_stable(
            "agente-hotel-api",
            "hotel-agent-api",
            "agente-blue",
            "agente-api",
        );
        let nginx = Nginx::start(stable, candidate);
        let site = Site::new(
            &engine,
            vec![
                ("VERSION", version.to_string()),
                ("STABLE_PORT", stable.to_string()),
                ("CANDIDATE_PORT", candidate.to_string()),
                ("NGINX_INCLUDE", nginx.path("include.conf")),
                ("NGINX_ACCESS_LOG", nginx.path("access.log")),
                ("NGINX_CONF", nginx.path("nginx.conf")),
            ],
        );
        let users = load_users(&format!("http://127.0.0.1:{}/", nginx.port), 8);
        let id = site.launch(HOTEL);
        site.wait_for(&id, |s| s["status"] == "waiting-approval");
        let out = site.cli(&["approve", &id, "--as", "launch-commander"]);
        assert!(out.status.success(), "approve: {}", stderr(&out));
        Hotel {
            _users: users,
            site,
            nginx,
            engine,
            id,
        }
    }
}

#[test]
fn seed_004_on_compose_and_nginx_cuts_over_and_retires_the_old_containers() {
    let t = Hotel::launch("1.1.0");
    let s = t.site.ended(&t.id);
    assert_eq!(s["status"], "succeeded", "{s:#}");
    let validation = step(&s, "T+30 validation");
    assert_eq!(validation["status"], "succeeded", "{validation:#}");
    assert!(users_on(t.nginx.port, "1.1.0").iter().all(|n| *n));
    let include = std::fs::read_to_string(t.nginx.path("include.conf")).unwrap();
    assert!(include.contains("Written by liftoff"), "{include}");
    wait_until(
        Duration::from_secs(60),
        "the old version to be retired",
        || t.engine.projects("agente-api") == ["agente-green"],
    );
}

#[test]
fn a_bad_release_behind_nginx_is_rolled_back_on_its_access_log_and_removed() {
    let t = Hotel::launch("2.0.1");
    let s = t.site.ended(&t.id);
    assert_eq!(s["status"], "rolled-back", "{s:#}");
    let reason = s["reason"].as_str().unwrap();
    assert!(
        reason.contains("trigger") && reason.contains("error_rate > 5%"),
        "{reason}"
    );
    assert_eq!(step(&s, "remove agente-green")["status"], "succeeded");
    assert_eq!(t.engine.projects("agente-api"), ["agente-blue"]);
    assert!(users_on(t.nginx.port, "1.0.0").iter().all(|o| *o));
}
