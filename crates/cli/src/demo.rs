//! `liftoff demo`: everything in one process tree, nothing to install. Starts the
//! daemon in-process and two real demo services, then runs a bad release that
//! liftoff catches and rolls back, and a good one that goes 5% → 25% → 100%.
//!
//! What it shows today: plans, the durable engine, the command router, HTTP checks
//! and automatic rollback. The builtin router, live metrics and gates come with their
//! own issues and will make this demo richer.

use std::path::Path;
use std::process::{Child, Command, Stdio};
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

    let (stable_port, candidate_port) = (free_port().map_err(fail)?, free_port().map_err(fail)?);
    let mut services = Services {
        children: Vec::new(),
    };
    services.children.push(
        Command::new(&exe)
            .args([
                "demo-app",
                "--port",
                &stable_port.to_string(),
                "--version",
                "1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(fail)?,
    );
    println!("stable    v1 on 127.0.0.1:{stable_port}");

    let (stop_daemon, stopped) = oneshot::channel::<()>();
    let config = liftoff_server::ServeConfig {
        listen: "127.0.0.1:0".parse().map_err(fail)?,
        state_dir: state_dir.clone(),
        shutdown_grace: Duration::from_secs(5),
        router_threads: 1,
    };
    let daemon = tokio::spawn(liftoff_server::serve(config, async {
        let _ = stopped.await;
    }));
    let server = wait_for_daemon(&state_dir).await?;
    let token =
        std::fs::read_to_string(state_dir.join(liftoff_server::TOKEN_FILE)).map_err(fail)?;
    let client = Client::new(&server, Some(token.trim().to_string()));
    println!("daemon    {server} (state in {})\n", state_dir.display());

    write_scripts(&dir, &exe, candidate_port)?;

    let bad = release(&client, &dir, candidate_port, ("checkout-v3", "3", "0.5")).await?;
    let good = release(&client, &dir, candidate_port, ("checkout-v2", "2", "0")).await?;

    println!("\nsummary");
    summarize("bad release v3 ", &bad);
    summarize("good release v2", &good);
    println!(
        "  traffic weights applied, in order: {}",
        read_weights(&dir)
    );
    println!("  demo took {:.1}s", started.elapsed().as_secs_f64());
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

fn write_scripts(dir: &Path, exe: &Path, candidate_port: u16) -> Result<(), Failure> {
    let scripts = [
        (
            "set-weight.sh",
            "#!/bin/sh\n# The demo's router: records the candidate share (a real one calls a load balancer).\necho \"$1\" >> weights.log\n".to_string(),
        ),
        (
            "deploy-candidate.sh",
            format!(
                "#!/bin/sh\n# Start candidate version $1 (failure rate $2) beside stable.\n\
                 [ -f candidate.pid ] && kill \"$(cat candidate.pid)\" 2>/dev/null\n\
                 nohup '{}' demo-app --port {candidate_port} --version \"$1\" --error-rate \"$2\" >/dev/null 2>&1 &\n\
                 echo $! > candidate.pid\necho \"candidate v$1 started on :{candidate_port}\"\n",
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

fn plan(name: &str, version: &str, error_rate: &str, port: u16) -> String {
    let url = format!("http://127.0.0.1:{port}");
    format!(
        r#"version: 1
name: {name}
service: checkout
router: {{ kind: command, command: "./set-weight.sh {{weight}}" }}
steps:
  - {{ name: deploy v{version}, run: "./deploy-candidate.sh {version} {error_rate}", timeout: 30s }}
  - {{ name: candidate healthy, wait: {{ http: "{url}/health", consecutive: 2, interval: 100ms, timeout: 10s }} }}
  - traffic: 5%
  - {{ name: smoke at 5%, wait: {{ http: "{url}/checkout", consecutive: 5, interval: 50ms, timeout: 2s }} }}
  - pause: 2s
  - traffic: 25%
  - {{ name: smoke at 25%, wait: {{ http: "{url}/checkout", consecutive: 5, interval: 50ms, timeout: 2s }} }}
  - pause: 2s
  - traffic: 100%
rollback:
  steps:
    - {{ name: stop v{version}, run: ./stop-candidate.sh, idempotent: true }}
"#
    )
}

async fn release(
    client: &Client,
    dir: &Path,
    candidate_port: u16,
    (name, version, error_rate): (&str, &str, &str),
) -> Result<api::LaunchStatus, Failure> {
    let what = if error_rate == "0" {
        "a good build"
    } else {
        "a bad build: half its checkouts fail"
    };
    println!("── release v{version} ({what}) ──");
    let body = api::CreateLaunch {
        plan: plan(name, version, error_rate, candidate_port),
        plan_path: format!("(demo) {name}.yaml"),
        workdir: dir.display().to_string(),
        variables: Default::default(),
    };
    let created: api::Created = client.post("/launches", &body).await?;
    output::follow(client, &created.id, Format::Text).await?;
    client.get(&format!("/launches/{}", created.id)).await
}

fn summarize(label: &str, s: &api::LaunchStatus) {
    let secs = |a: &Option<String>, b: &Option<String>| -> Option<f64> {
        let a: jiff::Timestamp = a.as_deref()?.parse().ok()?;
        let b: jiff::Timestamp = b.as_deref()?.parse().ok()?;
        Some(b.duration_since(a).as_secs_f64())
    };
    match s.status.as_str() {
        "rolled-back" => {
            let failed = s
                .steps
                .iter()
                .find(|st| matches!(st.status.as_str(), "failed" | "timed-out"));
            let revert = s.rollback.first();
            let detect = failed.and_then(|f| secs(&f.started_at, &f.ended_at));
            let back = revert.and_then(|r| secs(&r.started_at, &r.ended_at));
            println!(
                "  {label}: rolled back — `{}` caught it in {:.1}s; traffic back on stable in {:.0} ms",
                failed.map_or("?", |f| f.name.as_str()),
                detect.unwrap_or(0.0),
                back.unwrap_or(0.0) * 1000.0
            );
        }
        "succeeded" => println!(
            "  {label}: promoted 5% → 25% → 100% in {:.1}s",
            secs(&s.started_at, &s.ended_at).unwrap_or(0.0)
        ),
        other => println!(
            "  {label}: {other} ({})",
            s.reason.clone().unwrap_or_default()
        ),
    }
}

fn read_weights(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("weights.log"))
        .unwrap_or_default()
        .lines()
        .map(|w| format!("{w}%"))
        .collect::<Vec<_>>()
        .join(" → ")
}

fn stop_candidate(dir: &Path) {
    let _ = Command::new("sh")
        .arg("-c")
        .arg("./stop-candidate.sh >/dev/null 2>&1")
        .current_dir(dir)
        .status();
}
