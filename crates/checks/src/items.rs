//! Checklist items and smoke requests: one function per kind, each turning what it saw
//! into an [`ItemResult`].
//!
//! Evidence rules (see the crate docs): targets are named by their plan template with any
//! URL password masked, and text from outside (errors, bodies, output) goes through
//! [`outside`] before it is shown.

use std::borrow::Cow;
use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use liftoff_plan::Text;
use liftoff_plan::checks::{
    CheckItem, CheckKind, CommandCheck, DbCheck, DiskCheck, DiskFree, Expected, FileCheck,
    HttpCheck, HttpExpect, PromCheck, RedisCheck, Value,
};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinSet;

use crate::prometheus::{InstantQuery, QueryError};
use crate::{Env, ItemResult, REDACTED};

/// How much of an HTTP body is read and judged.
const BODY_LIMIT_BYTES: usize = 1 << 20;
/// How much of each of a command's output streams is kept (the end of it).
const OUTPUT_LIMIT_BYTES: usize = 1 << 20;
/// Longest excerpt of outside text (a body, an output line, a value) in a result.
const EXCERPT_CHARS: usize = 200;

/// Run one item within its timeout. `approval` items are not run here (they wait for a
/// human through the launch): they fail with evidence saying the sign-off is missing.
pub async fn run_item(item: &CheckItem, env: &Env) -> ItemResult {
    let started = Instant::now();
    let mut result = match &item.kind {
        CheckKind::Approval { role } => ItemResult::fail(format!(
            "needs sign-off by role `{role}` (given with liftoff approve during a launch)"
        )),
        kind => match tokio::time::timeout(item.timeout, run_kind(kind, env)).await {
            Ok(result) => result,
            Err(_) => timed_out(kind, item.timeout),
        },
    };
    result.duration = started.elapsed();
    result
}

/// Run items concurrently; results in the items' order.
pub async fn run_items(items: &[CheckItem], env: &Env) -> Vec<ItemResult> {
    // A JoinSet aborts every item if the caller stops waiting; a panic stays one item's.
    let mut tasks = JoinSet::new();
    let mut slot_of = HashMap::new();
    for (slot, item) in items.iter().enumerate() {
        let (item, env) = (item.clone(), env.clone());
        let task = tasks.spawn(async move { run_item(&item, &env).await });
        slot_of.insert(task.id(), slot);
    }
    let mut results: Vec<Option<ItemResult>> = vec![None; items.len()];
    while let Some(done) = tasks.join_next_with_id().await {
        let (id, result) = match done {
            Ok((id, result)) => (id, result),
            Err(e) => (e.id(), ItemResult::fail(format!("the check crashed: {e}"))),
        };
        if let Some(&slot) = slot_of.get(&id) {
            results[slot] = Some(result);
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| ItemResult::fail("the check did not finish")))
        .collect()
}

async fn run_kind(kind: &CheckKind, env: &Env) -> ItemResult {
    match kind {
        CheckKind::Http(check) => run_http(check, env).await,
        CheckKind::Tcp { address } => run_tcp(address, env).await,
        CheckKind::Tls(check) => crate::tls::run_tls(check, env).await,
        CheckKind::Disk(check) => run_disk(check, env).await,
        CheckKind::Command(check) => run_command(check, env).await,
        CheckKind::Postgres(check) => run_postgres(check, env).await,
        CheckKind::Redis(check) => run_redis(check, env).await,
        CheckKind::Prometheus(check) => run_prometheus(check, env).await,
        CheckKind::File(check) => run_file(check, env).await,
        CheckKind::Approval { .. } => ItemResult::fail("approvals are not run as checks"),
    }
}

fn timed_out(kind: &CheckKind, timeout: Duration) -> ItemResult {
    let within = human(timeout);
    match kind {
        CheckKind::Http(check) => http_result(
            check,
            ItemResult::fail(format!(
                "{} → no answer within {within}",
                request_line(check)
            )),
        ),
        CheckKind::Tcp { address } => ItemResult::fail(format!(
            "no connection to {} within {within}",
            target(address)
        )),
        CheckKind::Tls(check) => ItemResult::fail(format!(
            "no TLS handshake with {} within {within}",
            target(&check.address)
        )),
        CheckKind::Command(_) => ItemResult::fail(format!(
            "still running after {within}; killed it and everything it started"
        )),
        CheckKind::Postgres(DbCheck { url, .. }) | CheckKind::Redis(RedisCheck { url, .. }) => {
            ItemResult::fail(format!("no answer from {} within {within}", target(url)))
        }
        CheckKind::Prometheus(_) => {
            ItemResult::fail(format!("no answer from Prometheus within {within}"))
        }
        CheckKind::Disk(DiskCheck { path, .. }) | CheckKind::File(FileCheck { path, .. }) => {
            ItemResult::fail(format!(
                "no answer from the filesystem about {path} within {within}"
            ))
        }
        CheckKind::Approval { .. } => ItemResult::fail(format!("no answer within {within}")),
    }
}

// --- http ---------------------------------------------------------------------------

async fn run_http(check: &HttpCheck, env: &Env) -> ItemResult {
    let request = request_line(check);
    let Ok(method) = reqwest::Method::from_bytes(check.method.as_bytes()) else {
        return http_result(
            check,
            ItemResult::fail(format!("`{}` is not an HTTP method", check.method)),
        );
    };
    let mut builder = crate::http_client().request(method, check.url.expose());
    for (name, value) in &check.headers {
        builder = builder.header(name.as_str(), value.expose());
    }
    if let Some(body) = &check.body {
        builder = builder.body(body.expose().to_string());
    }
    // Latency: until the whole (capped) body is in, which is what a user waits for.
    let started = Instant::now();
    let answer = match builder.send().await {
        Ok(answer) => answer,
        Err(e) => {
            let why = outside(env, &http_error(e), &check.url);
            return http_result(check, ItemResult::fail(format!("{request} → {why}")));
        }
    };
    let status = answer.status().as_u16();
    let body = match read_capped(answer, BODY_LIMIT_BYTES).await {
        Ok(body) => body,
        Err(e) => {
            let why = outside(env, &http_error(e), &check.url);
            let mut result = ItemResult::fail(format!("{request} → {status}, then {why}"));
            result.actual = Some(format!("status {status}, body unreadable: {why}"));
            return http_result(check, result);
        }
    };
    let latency = started.elapsed();
    let body = String::from_utf8_lossy(&body);
    let problems = judge_http(&check.expect, status, &body, latency, |text| {
        clip(&outside(env, text, &check.url), EXCERPT_CHARS / 2)
    });
    let answered = format!("{request} → {status} in {}", human(latency));
    let mut result = if problems.is_empty() {
        ItemResult::pass(answered)
    } else {
        ItemResult::fail(format!("{answered}; {}", problems.join("; ")))
    };
    let excerpt = clip(&outside(env, &body, &check.url), EXCERPT_CHARS);
    result.actual = Some(if excerpt.is_empty() {
        format!("status {status} in {}, empty body", human(latency))
    } else {
        format!("status {status} in {}, body: {excerpt}", human(latency))
    });
    http_result(check, result)
}

/// Adds what was sent and what was expected, for smoke reports.
fn http_result(check: &HttpCheck, mut result: ItemResult) -> ItemResult {
    result.request = Some(request_line(check));
    result.expected = Some(expected_line(&check.expect));
    result
}

fn request_line(check: &HttpCheck) -> String {
    format!("{} {}", check.method, target(&check.url))
}

fn expected_line(expect: &HttpExpect) -> String {
    let mut parts = vec![format!("status {}", expect.status)];
    if let Some(needle) = &expect.body_contains {
        parts.push(format!("body contains {needle:?}"));
    }
    for (pointer, expected) in &expect.json {
        parts.push(format!("{pointer} {expected}"));
    }
    if let Some(max) = expect.max_latency {
        parts.push(format!("within {}", human(max)));
    }
    parts.join(", ")
}

/// What is wrong with an answer, one phrase per unmet expectation. `show` makes a piece
/// of the body fit to show.
fn judge_http(
    expect: &HttpExpect,
    status: u16,
    body: &str,
    latency: Duration,
    show: impl Fn(&str) -> String,
) -> Vec<String> {
    let mut problems = Vec::new();
    if status != expect.status {
        problems.push(format!("expected status {}", expect.status));
    }
    if let Some(needle) = &expect.body_contains
        && !body.contains(needle.as_str())
    {
        problems.push(format!("body does not contain {needle:?}"));
    }
    if !expect.json.is_empty() {
        match serde_json::from_str::<serde_json::Value>(body) {
            Err(_) => problems.push("body is not JSON".to_string()),
            Ok(json) => {
                for (pointer, expected) in &expect.json {
                    match json.pointer(pointer) {
                        None => problems.push(format!("{pointer} is missing, expected {expected}")),
                        Some(actual) if !json_matches(expected, actual) => problems.push(format!(
                            "{pointer} is {}, expected {expected}",
                            show(&actual.to_string())
                        )),
                        Some(_) => {}
                    }
                }
            }
        }
    }
    if let Some(max) = expect.max_latency
        && latency > max
    {
        problems.push(format!("slower than {}", human(max)));
    }
    problems
}

/// JSON types must agree: `"1"` does not equal `1`, and comparisons need a number.
fn json_matches(expected: &Expected, actual: &serde_json::Value) -> bool {
    use serde_json::Value as Json;
    match (expected, actual) {
        (Expected::Equals(Value::Null), Json::Null) => true,
        (Expected::Equals(Value::Bool(want)), Json::Bool(got)) => want == got,
        (Expected::Equals(Value::Number(want)), Json::Number(got)) => got.as_f64() == Some(*want),
        (Expected::Equals(Value::String(want)), Json::String(got)) => want == got,
        (Expected::Compare(op, threshold), Json::Number(got)) => {
            got.as_f64().is_some_and(|got| op.holds(got, *threshold))
        }
        _ => false,
    }
}

async fn read_capped(mut answer: reqwest::Response, limit: usize) -> reqwest::Result<Vec<u8>> {
    let mut body = Vec::new();
    while body.len() < limit {
        match answer.chunk().await? {
            Some(chunk) => {
                let room = limit - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            None => break,
        }
    }
    Ok(body)
}

/// reqwest's errors name the URL (resolved: it may hold a token) and wrap the cause in
/// layers; say what failed and the innermost cause.
fn http_error(e: reqwest::Error) -> String {
    let what = if e.is_connect() {
        "cannot connect"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_body() || e.is_decode() {
        "the body broke off"
    } else if e.is_builder() {
        "cannot build the request"
    } else {
        "request failed"
    };
    let e = e.without_url();
    let mut cause: &dyn std::error::Error = &e;
    while let Some(source) = cause.source() {
        cause = source;
    }
    format!("{what}: {}", tidy_error(&cause.to_string()))
}

// --- tcp ----------------------------------------------------------------------------

async fn run_tcp(address: &Text, env: &Env) -> ItemResult {
    let started = Instant::now();
    match tokio::net::TcpStream::connect(address.expose()).await {
        Ok(_) => ItemResult::pass(format!(
            "connected to {} in {}",
            target(address),
            human(started.elapsed())
        )),
        Err(e) => ItemResult::fail(format!(
            "cannot connect to {}: {}",
            target(address),
            outside(env, &tidy_error(&e.to_string()), address)
        )),
    }
}

// --- disk ---------------------------------------------------------------------------

async fn run_disk(check: &DiskCheck, env: &Env) -> ItemResult {
    let path = env.workdir.join(check.path.expose());
    // statvfs on a hung network mount blocks: keep it off the runtime's threads so the
    // item's timeout still fires.
    let stat = tokio::task::spawn_blocking(move || nix::sys::statvfs::statvfs(&path)).await;
    let stat = match stat {
        Ok(Ok(stat)) => stat,
        Ok(Err(errno)) => {
            return ItemResult::fail(format!(
                "cannot read the filesystem of {}: {errno}",
                check.path
            ));
        }
        Err(e) => {
            return ItemResult::fail(format!("cannot read the filesystem of {}: {e}", check.path));
        }
    };
    // The field types differ between platforms (u32, u64, c_ulong).
    #[allow(clippy::unnecessary_cast)]
    let (fragment, blocks, available) = (
        stat.fragment_size() as u64,
        stat.blocks() as u64,
        stat.blocks_available() as u64,
    );
    let total = blocks.saturating_mul(fragment);
    let free = available.saturating_mul(fragment);
    let percent = if total == 0 {
        0.0
    } else {
        free as f64 / total as f64 * 100.0
    };
    let (enough, needs) = match check.min_free {
        DiskFree::Percent(min) => (percent >= min, format!("{min}%")),
        DiskFree::Bytes(min) => (free >= min, bytes(min)),
    };
    let evidence = format!(
        "{} has {percent:.1}% free ({} of {}); needs {needs}",
        check.path,
        bytes(free),
        bytes(total)
    );
    if enough {
        ItemResult::pass(evidence)
    } else {
        ItemResult::fail(evidence)
    }
}

// --- command ------------------------------------------------------------------------

async fn run_command(check: &CommandCheck, env: &Env) -> ItemResult {
    let (dir, dir_name) = match &check.dir {
        Some(dir) => (env.workdir.join(dir.expose()), dir.to_string()),
        None => (env.workdir.clone(), "the working directory".to_string()),
    };
    let mut command = tokio::process::Command::new("sh");
    command
        .arg("-c")
        .arg(check.command.shell_command())
        .envs(env.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            return ItemResult::fail(format!(
                "cannot start `sh` in {dir_name}: {}",
                env.redact(&tidy_error(&e.to_string()))
            ));
        }
    };
    let group = GroupKiller(
        child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw),
    );
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let (stdout, stderr, status) = tokio::join!(read_tail(stdout), read_tail(stderr), child.wait());
    group.disarm();
    let status = match status {
        Ok(status) => status,
        Err(e) => return ItemResult::fail(format!("cannot wait for the command: {e}")),
    };
    let (stdout, stderr) = (
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr),
    );

    let mut parts = Vec::new();
    let code_ok = status.code() == Some(check.exit_code);
    parts.push(match (status.code(), status.signal()) {
        (Some(code), _) if code_ok => format!("exit {code}"),
        (Some(code), _) => format!("exit {code} (expected {})", check.exit_code),
        (None, Some(signal)) => format!(
            "killed by signal {signal} (expected exit {})",
            check.exit_code
        ),
        (None, None) => format!("ended without an exit code (expected {})", check.exit_code),
    });
    let output_ok = match &check.output_contains {
        Some(needle) if !stdout.contains(needle.as_str()) && !stderr.contains(needle.as_str()) => {
            parts.push(format!("output does not contain {needle:?}"));
            false
        }
        _ => true,
    };
    // A failure is usually explained on stderr; a success's result is usually on stdout.
    let streams = if code_ok {
        [&stdout, &stderr]
    } else {
        [&stderr, &stdout]
    };
    match streams.iter().find_map(|s| last_line(s)) {
        Some(line) => parts.push(format!(
            "last line: {}",
            clip(&env.redact(line), EXCERPT_CHARS)
        )),
        None => parts.push("no output".to_string()),
    }
    let evidence = parts.join("; ");
    if code_ok && output_ok {
        ItemResult::pass(evidence)
    } else {
        ItemResult::fail(evidence)
    }
}

/// Kills a command's whole process group when dropped: the item timed out, and `sh -c`
/// may have started children that killing `sh` alone would leave running.
struct GroupKiller(Option<Pid>);

impl GroupKiller {
    /// The command finished: its group leader is reaped and the id may be reused.
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if let Some(group) = self.0 {
            // Err: the group is already gone.
            let _ = killpg(group, Signal::SIGKILL);
        }
    }
}

/// Reads a pipe to its end, keeping the last [`OUTPUT_LIMIT_BYTES`] or a little more.
async fn read_tail(pipe: Option<impl AsyncRead + Unpin>) -> Vec<u8> {
    let Some(mut pipe) = pipe else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * OUTPUT_LIMIT_BYTES {
                    kept.drain(..kept.len() - OUTPUT_LIMIT_BYTES);
                }
            }
        }
    }
}

fn last_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).rfind(|line| !line.is_empty())
}

// --- postgres -----------------------------------------------------------------------

async fn run_postgres(check: &DbCheck, env: &Env) -> ItemResult {
    let query = clip(&check.query, 80);
    let (client, connection) =
        match tokio_postgres::connect(check.url.expose(), tokio_postgres::NoTls).await {
            Ok(connected) => connected,
            Err(e) => {
                return ItemResult::fail(format!(
                    "cannot connect to {}: {}",
                    target(&check.url),
                    outside(env, &error_chain(&e), &check.url)
                ));
            }
        };
    // The connection ends when `client` is dropped.
    tokio::spawn(connection);
    let messages = match client.simple_query(&check.query).await {
        Ok(messages) => messages,
        Err(e) => {
            return ItemResult::fail(format!(
                "{query} failed: {}",
                outside(env, &error_chain(&e), &check.url)
            ));
        }
    };
    // Outer None: no row; inner None: NULL.
    let cell: Option<Option<String>> = messages.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(row) => {
            Some(row.try_get(0).ok().flatten().map(str::to_string))
        }
        _ => None,
    });
    let shown = match &cell {
        None => "no row".to_string(),
        Some(None) => "NULL".to_string(),
        Some(Some(value)) => clip(&outside(env, value, &check.url), EXCERPT_CHARS),
    };
    match &check.expect {
        None => ItemResult::pass(format!("{query} → {shown}")),
        Some(expected) => {
            let evidence = format!("{query} → {shown} (expected {expected})");
            if expected.matches_text(cell.flatten().as_deref()) {
                ItemResult::pass(evidence)
            } else {
                ItemResult::fail(evidence)
            }
        }
    }
}

// --- redis --------------------------------------------------------------------------

async fn run_redis(check: &RedisCheck, env: &Env) -> ItemResult {
    let failed = |what: &str, e: redis::RedisError| {
        ItemResult::fail(format!(
            "{what} {}: {}",
            target(&check.url),
            outside(env, &error_chain(&e), &check.url)
        ))
    };
    let client = match redis::Client::open(check.url.expose()) {
        Ok(client) => client,
        Err(e) => return failed("cannot use", e),
    };
    let mut connection = match client.get_multiplexed_async_connection().await {
        Ok(connection) => connection,
        Err(e) => return failed("cannot connect to", e),
    };
    let Some(field) = &check.info else {
        return match redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
        {
            Ok(answer) if answer == "PONG" => ItemResult::pass("PING → PONG"),
            Ok(answer) => ItemResult::fail(format!(
                "PING → {} (expected PONG)",
                clip(&outside(env, &answer, &check.url), EXCERPT_CHARS)
            )),
            Err(e) => failed("PING failed on", e),
        };
    };
    let info = match redis::cmd("INFO")
        .query_async::<String>(&mut connection)
        .await
    {
        Ok(info) => info,
        Err(e) => return failed("INFO failed on", e),
    };
    let Some(value) = info_field(&info, field) else {
        return ItemResult::fail(format!("INFO has no field `{field}`"));
    };
    let shown = clip(&outside(env, value, &check.url), EXCERPT_CHARS);
    match &check.expect {
        None => ItemResult::pass(format!("{field} = {shown}")),
        Some(expected) if expected.matches_text(Some(value)) => {
            ItemResult::pass(format!("{field} = {shown}"))
        }
        Some(expected) => ItemResult::fail(format!("{field} = {shown} (expected {expected})")),
    }
}

/// The value of `field:value` in an INFO answer.
fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .map(str::trim)
}

// --- prometheus ---------------------------------------------------------------------

async fn run_prometheus(check: &PromCheck, env: &Env) -> ItemResult {
    let Some((base, timeout)) = &env.prometheus else {
        return ItemResult::fail("the plan has no metrics: { kind: prometheus }");
    };
    let query = clip(check.query.template(), 80);
    let asked = InstantQuery::new(base, *timeout)
        .value(check.query.expose())
        .await;
    match asked {
        Err(QueryError::Unavailable(why)) => {
            ItemResult::fail(outside(env, &why.to_string(), &check.query))
        }
        Err(QueryError::Rejected(why)) => ItemResult::fail(format!(
            "{query}: {}",
            outside(env, &why.to_string(), &check.query)
        )),
        Ok(None) => ItemResult::fail(format!("{query}: no data")),
        Ok(Some(value)) => {
            let evidence = format!(
                "{query} = {value} (needs {} {})",
                check.op.symbol(),
                check.threshold
            );
            if check.op.holds(value, check.threshold) {
                ItemResult::pass(evidence)
            } else {
                ItemResult::fail(evidence)
            }
        }
    }
}

// --- file ---------------------------------------------------------------------------

async fn run_file(check: &FileCheck, env: &Env) -> ItemResult {
    let path = env.workdir.join(check.path.expose());
    let meta = match tokio::fs::metadata(&path).await {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return ItemResult::fail(format!("{} does not exist", check.path));
        }
        Err(e) => {
            return ItemResult::fail(format!(
                "cannot read {}: {}",
                check.path,
                outside(env, &tidy_error(&e.to_string()), &check.path)
            ));
        }
    };
    // A modification time in the future counts as new.
    let age = meta.modified().ok().map(|modified| {
        let age = SystemTime::now()
            .duration_since(modified)
            .unwrap_or_default();
        Duration::from_secs(age.as_secs())
    });
    match (check.max_age, age) {
        (None, Some(age)) => {
            ItemResult::pass(format!("{} exists ({} old)", check.path, human(age)))
        }
        (None, None) => ItemResult::pass(format!("{} exists", check.path)),
        (Some(_), None) => ItemResult::fail(format!(
            "{}: the filesystem gives no modification time",
            check.path
        )),
        (Some(max), Some(age)) => {
            let evidence = format!("{} is {} old (max {})", check.path, human(age), human(max));
            if age <= max {
                ItemResult::pass(evidence)
            } else {
                ItemResult::fail(evidence)
            }
        }
    }
}

// --- showing things -----------------------------------------------------------------

/// A target (URL, address, path) as the plan wrote it, with a literal password masked:
/// `${VAR}` references are safe to show, a password written into the plan is not.
pub(crate) fn target(text: &Text) -> String {
    mask_password(text.template()).into_owned()
}

fn mask_password(url: &str) -> Cow<'_, str> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Cow::Borrowed(url);
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else {
        return Cow::Borrowed(url);
    };
    let Some((user, password)) = authority[..at].split_once(':') else {
        return Cow::Borrowed(url);
    };
    if password.is_empty() || (password.starts_with("${") && password.ends_with('}')) {
        return Cow::Borrowed(url);
    }
    Cow::Owned(format!("{scheme}://{user}:{REDACTED}{}", &rest[at..]))
}

/// Text from outside (an error, a body, output) fit for a one-line result: `about` (a
/// URL or address, resolved: it may hold a password) named by its template, its password
/// and the plan's secrets redacted, whitespace collapsed.
pub(crate) fn outside(env: &Env, text: &str, about: &Text) -> String {
    let mut text = Cow::Borrowed(text);
    let resolved = about.expose();
    if !resolved.is_empty() && text.contains(resolved) {
        text = Cow::Owned(text.replace(resolved, &target(about)));
    }
    if let Some(password) = url_password(resolved)
        && text.contains(password)
    {
        text = Cow::Owned(text.replace(password, REDACTED));
    }
    env.redact(&text)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn url_password(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    (!password.is_empty()).then_some(password)
}

/// At most `max` characters, whitespace collapsed, `…` when cut.
pub(crate) fn clip(text: &str, max: usize) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// An error and its causes, `: `-separated; a cause already in the text is left out.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = tidy_error(&e.to_string());
    let mut cause = e.source();
    while let Some(e) = cause {
        let more = tidy_error(&e.to_string());
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = e.source();
    }
    text
}

/// `Connection refused (os error 111)` → `connection refused`.
pub(crate) fn tidy_error(message: &str) -> String {
    let message = match message.rfind(" (os error ") {
        Some(at) if message.ends_with(')') => &message[..at],
        _ => message,
    };
    let mut chars = message.chars();
    match (chars.next(), chars.next()) {
        (Some(first), Some(second)) if first.is_uppercase() && second.is_lowercase() => {
            format!("{}{}", first.to_lowercase(), &message[first.len_utf8()..])
        }
        _ => message.to_string(),
    }
}

/// `12ms`, `1.5s`, `10s`, `5m 10s`, `2h 3m`, `24h`.
pub(crate) fn human(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_string();
    }
    let ms = d.as_millis();
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    if secs < 60 {
        return if d.subsec_millis() == 0 {
            format!("{secs}s")
        } else {
            format!("{:.1}s", d.as_secs_f64())
        };
    }
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m, s) {
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m {s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h {m}m"),
    }
}

/// `512 B`, `1.5 KiB`, `12.3 GiB`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn literal_passwords_are_masked_and_variables_kept() {
        assert_eq!(
            mask_password("postgres://app:s3cret@db:5432/shop"),
            "postgres://app:[redacted]@db:5432/shop"
        );
        assert_eq!(
            mask_password("postgres://app:${PGPASSWORD}@db/shop"),
            "postgres://app:${PGPASSWORD}@db/shop"
        );
        assert_eq!(
            mask_password("http://127.0.0.1:8080/a@b"),
            "http://127.0.0.1:8080/a@b"
        );
        assert_eq!(url_password("redis://:pw@127.0.0.1:6379"), Some("pw"));
    }

    #[test]
    fn json_types_must_agree() {
        let one = Expected::Equals(Value::Number(1.0));
        assert!(json_matches(&one, &json!(1)));
        assert!(json_matches(&one, &json!(1.0)));
        assert!(!json_matches(&one, &json!("1")));
        assert!(!json_matches(
            &Expected::Compare(liftoff_plan::condition::Op::Lt, 5.0),
            &json!("3")
        ));
    }

    #[test]
    fn durations_read_like_a_person_wrote_them() {
        assert_eq!(human(Duration::from_millis(12)), "12ms");
        assert_eq!(human(Duration::from_secs(10)), "10s");
        assert_eq!(human(Duration::from_millis(1500)), "1.5s");
        assert_eq!(human(Duration::from_secs(2 * 3600 + 3 * 60 + 4)), "2h 3m");
        assert_eq!(human(Duration::from_secs(24 * 3600)), "24h");
        assert_eq!(human(Duration::from_secs(310)), "5m 10s");
    }

    #[test]
    fn clip_counts_characters() {
        assert_eq!(clip("héllo\n  wörld", 7), "héllo w…");
        assert_eq!(clip("ok", 7), "ok");
        assert_eq!(
            tidy_error("Connection refused (os error 111)"),
            "connection refused"
        );
    }
}
