//! `liftoff`: the daemon and the CLI in one binary. Everything but `serve` and
//! `validate` is a thin client of the daemon's HTTP API.

mod alloc;
mod client;
mod demo;
mod demo_app;
mod exit;
mod flags;
mod load;
mod output;
mod router_cmd;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use liftoff_api as api;

use client::Client;

use exit::{EXIT_CODES_HELP, Exit, Failure};

#[derive(Parser)]
#[command(
    name = "liftoff",
    version,
    about = "Launch runbooks as code: checklists, traffic steps, gates, rollback."
)]
#[command(after_help = EXIT_CODES_HELP)]
struct Cli {
    /// The daemon's base URL.
    #[arg(
        long,
        global = true,
        env = "LIFTOFF_SERVER",
        default_value = "http://127.0.0.1:7070"
    )]
    server: String,
    /// The daemon's state directory (the CLI reads the admin token from it unless
    /// LIFTOFF_TOKEN is set).
    #[arg(
        long,
        global = true,
        env = "LIFTOFF_STATE_DIR",
        default_value = "./.liftoff"
    )]
    state_dir: PathBuf,
    /// Output format of read commands.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    output: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: launch engine and HTTP API.
    Serve {
        #[arg(long, default_value = "127.0.0.1:7070")]
        listen: SocketAddr,
        /// How long a stopping daemon lets in-flight commands finish.
        #[arg(long, default_value = "30s", value_parser = humantime_arg)]
        shutdown_grace: Duration,
        /// Worker threads of the builtin router (default: one per CPU).
        #[arg(long)]
        router_threads: Option<usize>,
        /// Where launches write their deployment logs (default: <state-dir>/logs/deployment).
        #[arg(long)]
        deployment_log_dir: Option<PathBuf>,
        /// Start no local router (in <state-dir>/router): routers run elsewhere,
        /// started with `liftoff router --server URL`.
        #[arg(long)]
        no_local_router: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Run a router: liftoff's data plane as a process of its own. It serves the
    /// routes the daemon at --server gives it, keeps serving them when the daemon is
    /// away, and reports what it sees. --state-dir is the router's own directory.
    Router {
        #[command(subcommand)]
        action: Option<router_cmd::RouterAction>,
        #[command(flatten)]
        args: router_cmd::RouterArgs,
    },
    /// Check plans without running them (no daemon needed). Every `${VAR}` must be
    /// set, as for `launch`, and the files the plan names on this host (TLS
    /// certificates and keys) must load, unless --no-env is given.
    Validate {
        #[arg(required = true)]
        plans: Vec<PathBuf>,
        /// Read no variable from the environment and no file the plan names: check
        /// everything that does not depend on them, list the variables each plan needs
        /// and where it uses them, and exit 0 when the plans are otherwise valid (for CI
        /// without production secrets or certificates).
        #[arg(long)]
        no_env: bool,
    },
    /// Run a plan's go/no-go checklist now and print GO or NO-GO (exit 0 or 1). Runs
    /// here, or on the daemon when --server is given.
    Check { plan: PathBuf },
    /// Start a launch; prints its id.
    Launch {
        plan: PathBuf,
        /// Stream progress until the launch ends; exit 0 only if it succeeded.
        #[arg(long)]
        follow: bool,
    },
    /// Show a launch (default: the newest).
    Status { id: Option<String> },
    /// List launches, newest first.
    History {
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Give the approval a launch is waiting for.
    Approve {
        id: String,
        /// The role the approval step asks for.
        #[arg(long = "as", value_name = "ROLE")]
        role: String,
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        who: Who,
    },
    /// Stop a launch: traffic to stable, rollback steps, status `aborted`.
    Abort {
        id: String,
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        who: Who,
    },
    /// Roll a launch back: traffic to stable, rollback steps, status `rolled-back`.
    Rollback {
        id: String,
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        who: Who,
    },
    /// Continue a launch: answer `needs-decision`, end a pause early, or release a
    /// hold (a `pause` trigger or an inconclusive analysis).
    Resume {
        id: String,
        /// Run the interrupted step again.
        #[arg(long, conflicts_with = "skip_step")]
        retry_step: bool,
        /// Treat the interrupted step as done and go on.
        #[arg(long)]
        skip_step: bool,
        #[command(flatten)]
        who: Who,
    },
    /// Switch a service's maintenance page (builtin router) on or off.
    Maintenance {
        service: String,
        #[arg(value_parser = ["on", "off"])]
        state: String,
        #[command(flatten)]
        who: Who,
    },
    /// See liftoff work: a bad release caught and rolled back, a good one promoted.
    /// Needs nothing but this binary; leaves nothing running.
    Demo {
        /// Leave the daemon and services up afterwards, to explore with the CLI.
        #[arg(long)]
        keep: bool,
    },
    /// A small web service for demos and tests: `/health`, and every other path
    /// answers with its version, failing a share of requests.
    /// Each option may come from the environment instead (`LIFTOFF_DEMO_PORT`, ...), as
    /// in a container.
    DemoApp {
        #[arg(long, env = "LIFTOFF_DEMO_PORT")]
        port: u16,
        #[arg(long, default_value = "1", env = "LIFTOFF_DEMO_VERSION")]
        version: String,
        /// Share of requests answered 500 (0.0–1.0), spread evenly.
        #[arg(long, default_value_t = 0.0, env = "LIFTOFF_DEMO_ERROR_RATE")]
        error_rate: f64,
        #[arg(long, default_value_t = 0, env = "LIFTOFF_DEMO_LATENCY_MS")]
        latency_ms: u64,
        /// Wait this long before listening (a version that starts slowly).
        #[arg(long, default_value_t = 0, env = "LIFTOFF_DEMO_START_DELAY_MS")]
        start_delay_ms: u64,
        /// Serve nothing: ask the demo-app on --port for /health and exit 0 if it
        /// answers 200, else 1 (a container HEALTHCHECK for an image without a shell).
        #[arg(long)]
        check: bool,
    },
    /// Steady traffic from sticky users (the `X-User-Id` header), for demos and tests.
    Load {
        url: String,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        #[arg(long, default_value_t = 1000)]
        users: u64,
        /// Stop after this long (default: run until interrupted).
        #[arg(long, value_parser = humantime_arg)]
        duration: Option<Duration>,
    },
    /// The daemon's public status page (also at /status and /status.json): show it, or
    /// post a message on a service.
    StatusPage {
        #[command(subcommand)]
        action: StatusPageAction,
    },
    /// A launch's report: timeline, checklist, gate evaluations, traffic and error-rate
    /// charts, the rollback and its cause, notifications.
    Report {
        id: String,
        #[arg(long, default_value = "md", value_parser = ["md", "html", "json"])]
        format: String,
        /// Write it to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Follow-ups (`after:` on steps): list them, or cancel one before it runs.
    Schedule {
        #[command(subcommand)]
        action: ScheduleAction,
    },
    /// Feature flags: list, change (sticky percentage rollouts, kill switch), history,
    /// and the read-only keys OpenFeature providers evaluate them with (OFREP).
    Flags(flags::FlagsArgs),
    /// Skip the remaining steps: traffic to 100% candidate and finish.
    Promote {
        id: String,
        #[command(flatten)]
        who: Who,
    },
}

/// What the HTTP API's clients may hold; the rest of the daemon's file descriptors stay
/// with the builtin router.
#[derive(clap::Args)]
struct ApiArgs {
    /// Connections the API holds at once; at the cap, idle ones are closed to make room
    /// (default: a quarter of the open-file limit, at most 1024).
    #[arg(long, env = "LIFTOFF_API_MAX_CONNECTIONS")]
    api_max_connections: Option<usize>,
    /// A request head must arrive within this; also how long a kept-alive connection
    /// may idle.
    #[arg(long, env = "LIFTOFF_API_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime_arg)]
    api_header_timeout: Duration,
    /// A request body must arrive within this, and a response must not stall longer.
    #[arg(long, env = "LIFTOFF_API_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime_arg)]
    api_request_timeout: Duration,
}

#[derive(Subcommand)]
enum StatusPageAction {
    /// Each service's state and recent launches.
    Show,
    /// Post a message on a service's status ("migrating the booking database").
    Post {
        service: String,
        message: String,
        #[command(flatten)]
        who: Who,
    },
}

#[derive(Subcommand)]
enum ScheduleAction {
    /// Every follow-up, newest due first.
    List {
        /// Only this launch's.
        #[arg(long)]
        launch: Option<String>,
    },
    /// Cancel a pending follow-up.
    Cancel {
        id: String,
        #[command(flatten)]
        who: Who,
    },
}

#[derive(clap::Args)]
struct Who {
    /// Who is acting, for the journal (default: $USER).
    #[arg(long = "by", value_name = "NAME")]
    by: Option<String>,
}

impl Who {
    fn name(&self) -> String {
        self.by
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .or_else(|| std::env::var("LOGNAME").ok())
            .unwrap_or_else(|| "unknown".into())
    }
}

fn humantime_arg(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("`{s}` is not a duration (e.g. 30s): {e}"))
}

fn main() -> ExitCode {
    alloc::tune();
    // TLS clients (checks, https waits) need rustls's crypto provider installed first.
    liftoff_checks::init_crypto();
    let matches = Cli::command().get_matches();
    // `liftoff check` runs on the daemon only when told where it is.
    let server_given = matches
        .value_source("server")
        .is_some_and(|s| s != clap::parser::ValueSource::DefaultValue);
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if !matches!(
        cli.command,
        Command::Serve { .. } | Command::Router { .. } | Command::DemoApp { .. }
    ) {
        die_quietly_on_closed_pipe();
    }
    // A router builds runtimes of its own (the data plane, its link to the daemon).
    let result = if let Command::Router { action, args } = &cli.command {
        Some(match action {
            None => {
                alloc::settle_router();
                init_logging();
                router_cmd::run(&cli.state_dir, &cli.server, args)
            }
            Some(router_cmd::RouterAction::Restart { timeout }) => {
                router_cmd::restart(&cli.state_dir, *timeout)
            }
        })
    } else {
        None
    };
    let result = match result {
        Some(r) => r,
        None => match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(run(cli, server_given)),
            Err(e) => {
                eprintln!("error: cannot start the async runtime: {e}");
                return ExitCode::from(Exit::Unreachable as u8);
            }
        },
    };
    let code = match result {
        Ok(exit) => exit,
        Err(f) => {
            eprintln!("error: {}", f.message);
            for p in &f.problems {
                eprintln!("  {}:{}: {}", p.line, p.col, p.message);
                if let Some(h) = &p.hint {
                    eprintln!("    hint: {h}");
                }
            }
            if let Some(h) = &f.hint {
                eprintln!("  hint: {h}");
            }
            f.exit
        }
    };
    ExitCode::from(code as u8)
}

async fn run(cli: Cli, server_given: bool) -> Result<Exit, Failure> {
    let client = || Client::new(&cli.server, client::token(&cli.state_dir));
    match &cli.command {
        Command::Serve {
            listen,
            shutdown_grace,
            router_threads,
            deployment_log_dir,
            no_local_router,
            api,
        } => {
            let threads = router_threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let config = liftoff_server::ServeConfig {
                listen: *listen,
                state_dir: cli.state_dir.clone(),
                shutdown_grace: *shutdown_grace,
                router_threads: threads,
                local_router: if *no_local_router {
                    liftoff_server::LocalRouter::Off
                } else {
                    liftoff_server::LocalRouter::Keep
                },
                router_program: None,
                deployment_log_dir: deployment_log_dir.clone(),
                api: liftoff_server::ApiLimits {
                    max_connections: api.api_max_connections,
                    header_timeout: api.api_header_timeout,
                    request_timeout: api.api_request_timeout,
                },
            };
            serve(config).await
        }
        Command::Router { .. } => unreachable!("runs before the async runtime"),
        Command::Validate { plans, no_env } => Ok(validate(plans, *no_env, cli.output)),
        Command::Check { plan } => check(plan, server_given.then(client), cli.output).await,
        Command::Demo { keep } => demo::run(*keep).await,
        Command::Load {
            url,
            concurrency,
            users,
            duration,
        } => {
            let stats = load::run(url, *concurrency, *users, *duration).await;
            println!(
                "{} ok, {} failed",
                stats.ok.load(std::sync::atomic::Ordering::Relaxed),
                stats.failed.load(std::sync::atomic::Ordering::Relaxed)
            );
            Ok(Exit::Success)
        }
        Command::Maintenance {
            service,
            state,
            who,
        } => {
            let body = api::MaintenanceRequest {
                on: state == "on",
                by: who.name(),
            };
            let route: api::RouteView = client()
                .post(&format!("/routes/{service}/maintenance"), &body)
                .await?;
            match cli.output {
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&route).unwrap_or_default()
                ),
                Format::Text => println!(
                    "{service}: maintenance {state} (router on {})",
                    route.listen
                ),
            }
            Ok(Exit::Success)
        }
        Command::DemoApp {
            port, check: true, ..
        } => match demo_app::healthy(*port).await {
            Ok(()) => Ok(Exit::Success),
            Err(e) => Err(Failure::new(
                Exit::LaunchFailed,
                format!("demo-app on port {port}: {e}"),
            )),
        },
        Command::DemoApp {
            port,
            version,
            error_rate,
            latency_ms,
            start_delay_ms,
            check: false,
        } => {
            tokio::time::sleep(Duration::from_millis(*start_delay_ms)).await;
            demo_app::serve(*port, version.clone(), *error_rate, *latency_ms)
                .await
                .map_err(|e| {
                    Failure::new(Exit::Invalid, format!("demo-app on port {port}: {e}"))
                })?;
            Ok(Exit::Success)
        }
        Command::Launch { plan, follow } => {
            let id = launch(&client(), plan).await?;
            if *follow {
                output::follow(&client(), &id, cli.output).await
            } else {
                match cli.output {
                    Format::Json => println!("{}", serde_json::json!({ "id": id })),
                    Format::Text => println!("{id}"),
                }
                Ok(Exit::Success)
            }
        }
        Command::Status { id } => {
            let c = client();
            let id = match id {
                Some(id) => id.clone(),
                None => newest(&c).await?,
            };
            let status: api::LaunchStatus = c.get(&format!("/launches/{id}")).await?;
            output::print_status(&status, cli.output);
            Ok(Exit::Success)
        }
        Command::History { limit } => {
            let list: Vec<api::LaunchSummary> =
                client().get(&format!("/launches?limit={limit}")).await?;
            output::print_history(&list, cli.output);
            Ok(Exit::Success)
        }
        Command::Approve {
            id,
            role,
            comment,
            who,
        } => {
            let body = api::ApproveRequest {
                role: role.clone(),
                by: who.name(),
                comment: comment.clone(),
            };
            act(&client(), id, "approve", &body, cli.output).await
        }
        Command::Abort { id, comment, who } => {
            act(&client(), id, "abort", &actor(who, comment), cli.output).await
        }
        Command::Rollback { id, comment, who } => {
            act(&client(), id, "rollback", &actor(who, comment), cli.output).await
        }
        Command::StatusPage { action } => {
            let page: api::StatusPage = match action {
                StatusPageAction::Show => client().get_public("/status.json").await?,
                StatusPageAction::Post {
                    service,
                    message,
                    who,
                } => {
                    let body = api::PostStatusMessage {
                        service: service.clone(),
                        message: message.clone(),
                        by: who.name(),
                    };
                    client().post("/status/messages", &body).await?
                }
            };
            output::print_status_page(&page, cli.output);
            Ok(Exit::Success)
        }
        Command::Report { id, format, out } => {
            let text = client()
                .get_text(&format!("/launches/{id}/report?format={format}"))
                .await?;
            match out {
                Some(path) => std::fs::write(path, text).map_err(|e| {
                    Failure::new(
                        Exit::Invalid,
                        format!("cannot write {}: {e}", path.display()),
                    )
                })?,
                None => print!("{text}"),
            }
            Ok(Exit::Success)
        }
        Command::Schedule { action } => {
            let list = match action {
                ScheduleAction::List { launch } => {
                    let query = launch
                        .as_ref()
                        .map(|l| format!("?launch={l}"))
                        .unwrap_or_default();
                    client().get(&format!("/schedules{query}")).await?
                }
                ScheduleAction::Cancel { id, who } => {
                    let body = actor(who, &None);
                    let one: api::ScheduleView = client()
                        .post(&format!("/schedules/{id}/cancel"), &body)
                        .await?;
                    vec![one]
                }
            };
            output::print_schedules(&list, cli.output);
            Ok(Exit::Success)
        }
        Command::Flags(args) => flags::run(args, &client(), cli.output).await,
        Command::Promote { id, who } => {
            act(&client(), id, "promote", &actor(who, &None), cli.output).await
        }
        Command::Resume {
            id,
            retry_step,
            skip_step,
            who,
        } => {
            let decision = match (retry_step, skip_step) {
                (true, _) => Some(api::ResumeDecision::Retry),
                (_, true) => Some(api::ResumeDecision::Skip),
                _ => None,
            };
            let body = api::ResumeRequest {
                by: who.name(),
                decision,
            };
            act(&client(), id, "resume", &body, cli.output).await
        }
    }
}

fn actor(who: &Who, comment: &Option<String>) -> api::ActorRequest {
    api::ActorRequest {
        by: who.name(),
        comment: comment.clone(),
    }
}

async fn act<B: serde::Serialize>(
    c: &Client,
    id: &str,
    verb: &str,
    body: &B,
    format: Format,
) -> Result<Exit, Failure> {
    let status: api::LaunchStatus = c.post(&format!("/launches/{id}/{verb}"), body).await?;
    output::print_status(&status, format);
    Ok(Exit::Success)
}

async fn newest(c: &Client) -> Result<String, Failure> {
    let list: Vec<api::LaunchSummary> = c.get("/launches?limit=1").await?;
    list.into_iter()
        .next()
        .map(|l| l.id)
        .ok_or_else(|| Failure::new(Exit::Invalid, "there are no launches yet"))
}

/// A client command whose reader goes away (`liftoff status | head -1`) ends as Unix
/// tools do, by SIGPIPE, instead of panicking on the failed write. Not for the daemon,
/// the router or the demo app: a closed log pipe must not stop them. (Sockets are
/// written with MSG_NOSIGNAL by std, so a peer that left never raises it.)
fn die_quietly_on_closed_pipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: restoring the default disposition installs no handler code; it runs
    // before any other thread exists.
    #[allow(unsafe_code)]
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

async fn serve(config: liftoff_server::ServeConfig) -> Result<Exit, Failure> {
    init_logging();
    liftoff_server::serve(config, liftoff_server::shutdown_signal())
        .await
        .map_err(|e| Failure::new(Exit::Unreachable, e.to_string()))?;
    Ok(Exit::Success)
}

/// A plan file's text, reading no more than a plan may hold (`/dev/zero` or a log file
/// given by mistake is refused at once, not read to the end).
fn read_plan(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let limit = liftoff_plan::MAX_PLAN_BYTES as u64;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("more than {limit} bytes, the most a plan may hold"),
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// Read and parse a plan with the caller's environment.
fn load(path: &Path) -> Result<(String, liftoff_plan::Plan), Failure> {
    let source = read_plan(path).map_err(|e| {
        Failure::new(
            Exit::Invalid,
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    match liftoff_plan::parse(&source, &|name| std::env::var(name).ok()) {
        Ok(plan) => Ok((source, plan)),
        Err(errors) => {
            eprint!("{}", errors.render(&path.display().to_string()));
            Err(Failure::new(
                Exit::Invalid,
                format!("{}: {} problem(s)", path.display(), errors.len()),
            ))
        }
    }
}

fn validate(plans: &[PathBuf], no_env: bool, format: Format) -> Exit {
    let mut worst = Exit::Success;
    let mut results = Vec::new();
    for path in plans {
        let file = path.display().to_string();
        let source = match read_plan(path) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: cannot read {file}: {e}");
                results
                    .push(serde_json::json!({ "file": file, "ok": false, "error": e.to_string() }));
                worst = Exit::Invalid;
                continue;
            }
        };
        // Steps, rollback steps, and under --no-env what the plan needs.
        let checked = if no_env {
            liftoff_plan::lint(&source).map(|l| (l.steps, l.rollback_steps, Some(l)))
        } else {
            liftoff_plan::parse(&source, &|name| std::env::var(name).ok())
                // The files it names on this host (certificates), as the daemon will.
                .and_then(|plan| liftoff_server::preflight::check(&plan).map(|()| plan))
                .map(|plan| (plan.steps.len(), plan.rollback.steps.len(), None))
        };
        match checked {
            Ok((steps, rollback_steps, lint)) => {
                let mut result = serde_json::json!({ "file": file, "ok": true, "problems": [] });
                match &lint {
                    Some(lint) => {
                        if format == Format::Text {
                            output::print_needed_variables(&file, lint);
                        }
                        result["variables"] = output::needed_variables_json(lint);
                    }
                    None if format == Format::Text => {
                        println!("{file}: ok ({steps} steps, {rollback_steps} rollback steps)");
                    }
                    None => {}
                }
                results.push(result);
            }
            Err(errors) => {
                worst = Exit::Invalid;
                if format == Format::Text {
                    eprint!("{}", errors.render(&file));
                }
                let problems: Vec<_> = errors
                    .0
                    .iter()
                    .map(|d| {
                        serde_json::json!({
                            "line": d.location.line, "col": d.location.col,
                            "message": d.message, "hint": d.hint,
                        })
                    })
                    .collect();
                results
                    .push(serde_json::json!({ "file": file, "ok": false, "problems": problems }));
            }
        }
    }
    if format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&results).unwrap_or_default()
        );
    }
    worst
}

async fn check(path: &Path, daemon: Option<Client>, format: Format) -> Result<Exit, Failure> {
    let (source, plan) = load(path)?;
    if plan.checklist.is_none() {
        return Err(Failure::new(
            Exit::Invalid,
            format!("{}: the plan has no `checklist`", path.display()),
        ));
    }
    let abs = std::fs::canonicalize(path)
        .map_err(|e| Failure::new(Exit::Invalid, format!("{}: {e}", path.display())))?;
    let workdir = abs.parent().unwrap_or(Path::new("/")).to_path_buf();
    let report = match daemon {
        Some(c) => {
            let body = api::CheckRequest {
                plan: source,
                plan_path: abs.display().to_string(),
                workdir: workdir.display().to_string(),
                variables: variables_of(&plan),
            };
            c.post("/checks", &body).await?
        }
        None => liftoff_server::check::run(&plan, workdir).await,
    };
    output::print_check_report(&report, format);
    Ok(if report.verdict == "GO" {
        Exit::Success
    } else {
        Exit::LaunchFailed
    })
}

fn variables_of(plan: &liftoff_plan::Plan) -> BTreeMap<String, String> {
    plan.variables
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn launch(c: &Client, path: &Path) -> Result<String, Failure> {
    let (source, plan) = load(path)?;
    let abs = std::fs::canonicalize(path)
        .map_err(|e| Failure::new(Exit::Invalid, format!("{}: {e}", path.display())))?;
    let workdir = abs.parent().unwrap_or(Path::new("/")).display().to_string();
    let variables = variables_of(&plan);
    let body = api::CreateLaunch {
        plan: source,
        plan_path: abs.display().to_string(),
        workdir,
        variables,
    };
    let created: api::Created = c.post("/launches", &body).await?;
    Ok(created.id)
}
