//! `liftoff demo`: everything in one process tree, nothing to install. Starts the
//! daemon in-process (with its builtin router), two real demo services and 1,000
//! sticky users, then runs a bad release that a rollback trigger catches, and a good
//! one that goes 5% → 25% → 100% through its analysis gates.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use liftoff_api as api;
use tokio::sync::oneshot;

use crate::Format;
use crate::client::Client;
use crate::exit::{Exit, Failure};
use crate::output;

struct Services {
    children: Vec<Child>,
}

impl Drop for Services {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct Ports {
    stable: u16,
    candidate: u16,
    router: u16,
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn fail(e: impl std::fmt::Display) -> Failure {
    Failure::new(Exit::Invalid, format!("demo: {e}"))
}

pub async fn run(keep: bool) -> Result<Exit, Failure> {
    let started = Instant::now();
    let exe = std::env::current_exe().map_err(fail)?;
    let dir = std::env::temp_dir().join(format!("liftoff-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(fail)?;
    let state_dir = dir.join("state");

    println!("liftoff demo — a bad release caught and rolled back, then a good one promoted");
    println!("working in {}\n", dir.display());

    let ports = Ports {
        stable: free_port().map_err(fail)?,
        candidate: free_port().map_err(fail)?,
        router: free_port().map_err(fail)?,
    };
    let mut services = Services {
        children: Vec::new(),
    };
    services.children.push(
        Command::new(&exe)
            .args([
                "demo-app",
                "--port",
                &ports.stable.to_string(),
                "--version",
                "1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(fail)?,
    );
    println!("stable    v1 on 127.0.0.1:{}", ports.stable);

    let (stop_daemon, stopped) = oneshot::channel::<()>();
    let config = liftoff_server::ServeConfig {
        listen: "127.0.0.1:0".parse().map_err(fail)?,
        state_dir: state_dir.clone(),
        shutdown_grace: Duration::from_secs(5),
        router_threads: 1,
        local_router: liftoff_server::LocalRouter::StopWithDaemon,
        router_program: None,
        deployment_log_dir: None,
        api: liftoff_server::ApiLimits::default(),
    };
    let daemon = tokio::spawn(liftoff_server::serve(config, async {
        let _ = stopped.await;
    }));
    let server = wait_for_daemon(&state_dir).await?;
    let token =
        std::fs::read_to_string(state_dir.join(liftoff_server::TOKEN_FILE)).map_err(fail)?;
    let client = Client::new(&server, Some(token.trim().to_string()));
    println!("daemon    {server} (state in {})", state_dir.display());
    println!(
        "router    http://127.0.0.1:{} (liftoff's own), loaded by 1,000 sticky users\n",
        ports.router
    );
    write_scripts(&dir, &exe)?;

    // Users: steady traffic through the router from the moment it listens.
    let router_url = format!("http://127.0.0.1:{}/checkout", ports.router);
    let (users_stop, users_stopped) = oneshot::channel::<()>();
    let users = tokio::spawn({
        let port = ports.router;
        async move {
            while tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let stats = std::sync::Arc::new(crate::load::LoadStats::default());
            tokio::select! {
                () = crate::load::drive(&router_url, 8, 1000, stats.clone()) => {}
                _ = users_stopped => {}
            }
            stats
        }
    });

    let bad = release(&client, &dir, &ports, ("checkout-v3", "3", "0.3")).await?;
    // v2 is a new deployment, on a port of its own.
    let ports = Ports {
        candidate: free_port().map_err(fail)?,
        ..ports
    };
    let good = release(&client, &dir, &ports, ("checkout-v2", "2", "0")).await?;
    let _ = users_stop.send(());
    let stats = users.await.ok();

    println!("\nsummary");
    summarize("bad release v3 ", &bad);
    summarize("good release v2", &good);
    if let Some(stats) = stats {
        let (ok, failed) = (stats.ok.load(Relaxed), stats.failed.load(Relaxed));
        println!(
            "  users made {} requests; {failed} failed ({:.3}%): v3's share of traffic before liftoff caught it",
            ok + failed,
            100.0 * failed as f64 / (ok + failed).max(1) as f64
        );
    }
    if let Some(t) = &good.traffic {
        output::print_traffic(t);
    }
    // The reports outlive the demo's directory: that is what a reader keeps.
    match save_reports(&client, &[("v3-bad", &bad.id), ("v2-good", &good.id)]).await {
        Ok(dir) => println!(
            "  reports: {}/{{v3-bad,v2-good}}.{{html,md}} (timeline, gates, charts, the rollback)",
            dir.display()
        ),
        Err(e) => println!("  reports: not written ({e})"),
    }
    if keep {
        println!(
            "  details: liftoff status {} (v3), liftoff status {} (v2)",
            bad.id, good.id
        );
    } else {
        println!(
            "  (`liftoff demo --keep` leaves it all up to explore with `liftoff status` and `liftoff history`)"
        );
    }
    println!(
        "  demo took {}",
        liftoff_plan::human::duration(started.elapsed())
    );
    let ok = bad.status == "rolled-back" && good.status == "succeeded";

    if keep {
        println!("\nleft running (Ctrl-C to stop):");
        println!(
            "  export LIFTOFF_SERVER={server} LIFTOFF_STATE_DIR={}",
            state_dir.display()
        );
        println!("  liftoff history; liftoff status {}", good.id);
        liftoff_server::shutdown_signal().await;
    }
    let _ = stop_daemon.send(());
    let _ = daemon.await;
    drop(services);
    stop_candidate(&dir);
    if !keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(if ok {
        Exit::Success
    } else {
        Exit::LaunchFailed
    })
}

/// Each launch's report, HTML and Markdown, in a directory of its own under the system's
/// temporary directory.
async fn save_reports(client: &Client, launches: &[(&str, &str)]) -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("liftoff-demo-reports-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    for (name, id) in launches {
        for format in ["html", "md"] {
            let text = client
                .get_text(&format!("/launches/{id}/report?format={format}"))
                .await
                .map_err(|f| f.message)?;
            std::fs::write(dir.join(format!("{name}.{format}")), text)
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(dir)
}

async fn wait_for_daemon(state_dir: &Path) -> Result<String, Failure> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(url) = std::fs::read_to_string(state_dir.join(liftoff_server::ADDR_FILE))
            && url.ends_with('\n')
        {
            return Ok(url.trim().to_string());
        }
        if Instant::now() > deadline {
            return Err(fail("the in-process daemon did not start"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn write_scripts(dir: &Path, exe: &Path) -> Result<(), Failure> {
    let scripts = [
        (
            "deploy-candidate.sh",
            format!(
                "#!/bin/sh\n# Start candidate version $1 (failure rate $2) beside stable, on port $3.\n\
                 [ -f candidate.pid ] && kill \"$(cat candidate.pid)\" 2>/dev/null\n\
                 nohup '{}' demo-app --port \"$3\" --version \"$1\" --error-rate \"$2\" >/dev/null 2>&1 &\n\
                 echo $! > candidate.pid\necho \"candidate v$1 started on :$3\"\n",
                exe.display()
            ),
        ),
        (
            "stop-candidate.sh",
            "#!/bin/sh\n[ -f candidate.pid ] && kill \"$(cat candidate.pid)\" 2>/dev/null; rm -f candidate.pid; echo candidate stopped\n".to_string(),
        ),
    ];
    for (name, body) in scripts {
        let path = dir.join(name);
        std::fs::write(&path, body).map_err(fail)?;
        let mut perms = std::fs::metadata(&path).map_err(fail)?.permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&path, perms).map_err(fail)?;
    }
    Ok(())
}

fn plan(name: &str, version: &str, error_rate: &str, ports: &Ports) -> String {
    let Ports {
        stable,
        candidate,
        router,
    } = ports;
    format!(
        r#"version: 1
name: {name}
service: checkout
router:
  kind: builtin
  listen: 127.0.0.1:{router}
  stable: http://127.0.0.1:{stable}
  candidate: http://127.0.0.1:{candidate}
  sticky: {{ header: X-User-Id }}
  health: {{ interval: 500ms }}
steps:
  - {{ name: deploy v{version}, run: "./deploy-candidate.sh {version} {error_rate} {candidate}", timeout: 30s }}
  - {{ name: candidate healthy, wait: {{ http: "http://127.0.0.1:{candidate}/health", consecutive: 2, interval: 100ms, timeout: 10s }} }}
  - traffic: 5%
  - analyze: {{ for: 3s, interval: 1s, min_requests: 5, gates: ["error_rate < 2%", "p95 < 250ms"] }}
  - traffic: 25%
  - analyze: {{ for: 3s, interval: 1s, min_requests: 5, gates: ["error_rate < 2%", "p95 < 250ms"], compare: stable }}
  - traffic: 100%
  - bake: {{ for: 2s }}
rollback:
  on: ["error_rate > 5% over 2s"]
  check_every: 250ms
  steps:
    - {{ name: stop v{version}, run: ./stop-candidate.sh, idempotent: true }}
"#
    )
}

async fn release(
    client: &Client,
    dir: &Path,
    ports: &Ports,
    (name, version, error_rate): (&str, &str, &str),
) -> Result<api::LaunchStatus, Failure> {
    let what = match error_rate {
        "0" => "a good build".to_string(),
        rate => format!(
            "a bad build: {:.0}% of its checkouts fail",
            rate.parse::<f64>().unwrap_or(0.0) * 100.0
        ),
    };
    println!("── release v{version} ({what}) ──");
    let body = api::CreateLaunch {
        plan: plan(name, version, error_rate, ports),
        plan_path: format!("(demo) {name}.yaml"),
        workdir: dir.display().to_string(),
        variables: Default::default(),
    };
    let created: api::Created = client.post("/launches", &body).await?;
    output::follow(client, &created.id, Format::Text).await?;
    client.get(&format!("/launches/{}", created.id)).await
}

fn summarize(label: &str, s: &api::LaunchStatus) {
    let at = |t: &Option<String>| t.as_deref().and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let secs =
        |a: &Option<String>, b: &Option<String>| Some(at(b)?.duration_since(at(a)?).as_secs_f64());
    match s.status.as_str() {
        "rolled-back" => {
            // Detection: from the candidate's first traffic to the rollback decision.
            let first_traffic = s
                .steps
                .iter()
                .find(|st| st.kind == "traffic")
                .and_then(|st| at(&st.ended_at));
            let revert = s.rollback.first();
            let decided = revert.and_then(|r| at(&r.started_at));
            let detect = first_traffic
                .zip(decided)
                .map(|(a, b)| b.duration_since(a).as_secs_f64());
            let back = revert.and_then(|r| secs(&r.started_at, &r.ended_at));
            println!(
                "  {label}: rolled back — {}",
                s.reason.as_deref().unwrap_or("?")
            );
            let caught = match detect {
                Some(d) => format!(
                    "caught {} after it first took traffic",
                    liftoff_plan::human::duration_secs(d)
                ),
                None => "caught before it took any traffic".to_string(),
            };
            let back = match back {
                Some(b) => format!(
                    "all traffic back on stable {} later",
                    liftoff_plan::human::duration_secs(b)
                ),
                None => "traffic stayed on stable".to_string(),
            };
            println!("                   {caught}; {back}");
        }
        "succeeded" => println!(
            "  {label}: promoted 5% → 25% → 100% through its gates in {}",
            liftoff_plan::human::duration_secs(secs(&s.started_at, &s.ended_at).unwrap_or(0.0))
        ),
        other => println!(
            "  {label}: {other} ({})",
            s.reason.clone().unwrap_or_default()
        ),
    }
}

fn stop_candidate(dir: &Path) {
    let _ = Command::new("sh")
        .arg("-c")
        .arg("./stop-candidate.sh >/dev/null 2>&1")
        .current_dir(dir)
        .status();
}
