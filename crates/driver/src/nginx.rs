//! `router: { kind: nginx }`: the user's nginx, driven through one file liftoff owns.
//!
//! Traffic: liftoff writes `router.include` (which nginx.conf includes in its `http`
//! block): the `log_format liftoff_<upstream>` of the access log it reads, and
//! `upstream <name> { ... }` with a `server host:port weight=N;` line per instance, on a
//! 0..100 scale (the candidate's instances share `w`, the stable ones `100 - w`; nginx
//! refuses `weight=0`, so a version at 0 has its servers marked `down`). With a sticky
//! header the upstream hashes it (`hash $http_x_user_id consistent;`, which gives each
//! server points on the ring in proportion to its weight, so as the candidate grows its
//! users stay on it). The file is replaced atomically (temp file + rename), checked
//! with `nginx -t` and applied with `nginx -s reload` (graceful: old workers finish
//! their requests). When either fails, the previous file is put back, so nginx keeps
//! the old split and a later reload does not pick up the refused one; the step fails
//! with nginx's own message.
//!
//! Numbers: the access log, one line per request in liftoff's format
//! (`$msec $status $request_time "$upstream_addr" "$upstream_status"`), followed from
//! its end when the launch starts (and from the start of a new file after rotation, told
//! by a changed inode, or after truncation). Each upstream attempt counts for the
//! version its address belongs to, failed when its status is 5xx or there was no answer
//! (`-`: nginx could not connect or gave up); a request the client left (499) counts for
//! neither. The request's `$request_time` goes into
//! the latency histogram of the version of its last attempt. A ring of per-second counts
//! gives the windows.

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use liftoff_plan::condition::Version;
use liftoff_plan::{NginxRouter, Weight};
use tokio_util::sync::CancellationToken;

use crate::ports::{MetricSource, PortError, TrafficControl};

/// `nginx -t` or `nginx -s reload`, output included.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the metric source reads the access log by itself.
pub const POLL_EVERY: Duration = Duration::from_millis(250);
/// How far back windows may reach (longer `over` windows get what there is).
const RETENTION_SECS: u64 = 2 * 3600;
/// At most this much of the log is read per poll; the rest waits for the next.
const MAX_READ_BYTES: usize = 16 << 20;

/// The `log_format` liftoff's numbers come from (its name is `liftoff_<upstream>`).
pub const LOG_FORMAT: &str = r#"'$msec $status $request_time "$upstream_addr" "$upstream_status"'"#;

/// Upper bounds (seconds) of the latency histogram's buckets; nginx's `$request_time`
/// has millisecond resolution.
const LATENCY_BOUNDS: [f64; 29] = [
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    3.0,
    5.0,
    7.5,
    10.0,
    15.0,
    20.0,
    30.0,
    60.0,
    f64::INFINITY,
];

/// Per-instance weights: each stable instance, each candidate instance. The versions'
/// totals are in the proportion `100 - w` to `w`, whatever the number of instances.
/// Not reduced by a common divisor: with consistent hashing a server's points on the
/// ring are `160 * weight`, so a candidate whose weight only grows keeps its users.
pub fn instance_weights(weight: Weight, stable: usize, candidate: usize) -> (u32, u32) {
    let w = u32::from(weight.basis_points().min(10_000).div_ceil(100));
    let (ns, nc) = (stable.max(1) as u32, candidate.max(1) as u32);
    ((100 - w) * nc, w * ns)
}

/// The nginx variable of a request header: `X-User-Id` is `$http_x_user_id`.
fn header_variable(header: &str) -> String {
    let name: String = header
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("$http_{name}")
}

/// The include at candidate weight `weight`.
pub fn render_include(settings: &NginxRouter, weight: Weight) -> String {
    let (stable, candidate) =
        instance_weights(weight, settings.stable.len(), settings.candidate.len());
    let mut out = format!(
        "# Written by liftoff (router: {{ kind: nginx }}), rewritten at every weight change: do not edit.\n\
         # candidate {weight}%\n\
         log_format {} {LOG_FORMAT};\n\
         upstream {} {{\n",
        settings.log_format(),
        settings.upstream
    );
    if let Some(h) = &settings.sticky_header {
        out.push_str(&format!("    hash {} consistent;\n", header_variable(h)));
    }
    for (addrs, w) in [(&settings.stable, stable), (&settings.candidate, candidate)] {
        for addr in addrs {
            if w == 0 {
                // nginx refuses `weight=0`.
                out.push_str(&format!("    server {addr} down;\n"));
            } else {
                out.push_str(&format!("    server {addr} weight={w};\n"));
            }
        }
    }
    out.push_str("}\n");
    out
}

/// Write `contents` to `path` atomically: a temp file beside it, then a rename.
fn replace_file(path: &Path, contents: Option<&str>) -> std::io::Result<()> {
    let Some(contents) = contents else {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        };
    };
    let name = path
        .file_name()
        .map_or_else(|| "include".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.liftoff-tmp"));
    std::fs::write(&tmp, contents)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// nginx's own words from `nginx -t` / `-s`: its `[emerg]`, `[crit]` and `[error]`
/// lines (the others say only that the test failed), without the `nginx: ` or
/// `2026/12/06 09:17:33 ` and `PID#TID: ` prefixes.
pub fn nginx_message(stderr: &str) -> String {
    let levels = ["[emerg]", "[crit]", "[error]", "[alert]"];
    let mut lines: Vec<String> = Vec::new();
    for line in stderr.lines() {
        let Some((level, at)) = levels.iter().find_map(|l| Some((*l, line.find(l)?))) else {
            continue;
        };
        let rest = line[at + level.len()..].trim_start();
        // `26049#26049: ` when the message went through the error log's format.
        let rest = match rest.split_once(": ") {
            Some((pid, text)) if pid.bytes().all(|b| b.is_ascii_digit() || b == b'#') => text,
            _ => rest,
        };
        lines.push(format!("{level} {rest}"));
    }
    if lines.is_empty() {
        return stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| l.strip_prefix("nginx: ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("; ");
    }
    lines.join("; ")
}

/// `TrafficControl` for `kind: nginx`.
pub struct NginxTraffic {
    pub settings: NginxRouter,
}

impl NginxTraffic {
    /// Run `nginx [-c CONFIG] ARGS`; Err is nginx's message.
    async fn nginx(&self, args: &[&str]) -> Result<(), PortError> {
        let s = &self.settings;
        let mut cmd = tokio::process::Command::new(&s.nginx);
        if let Some(config) = &s.config {
            cmd.arg("-c").arg(config);
        }
        cmd.args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let what = match &s.config {
            Some(config) => format!("`{} -c {config} {}`", s.nginx, args.join(" ")),
            None => format!("`{} {}`", s.nginx, args.join(" ")),
        };
        let out = match tokio::time::timeout(COMMAND_TIMEOUT, cmd.output()).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => {
                return Err(PortError::Unavailable(format!(
                    "{what} could not be started: {e}"
                )));
            }
            Err(_) => {
                return Err(PortError::Unavailable(format!(
                    "{what} took more than {} s",
                    COMMAND_TIMEOUT.as_secs()
                )));
            }
        };
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(PortError::Rejected(format!(
            "{what} failed: {}",
            nginx_message(&stderr)
        )))
    }
}

#[async_trait]
impl TrafficControl for NginxTraffic {
    async fn set_weight(
        &self,
        weight: Weight,
        _cancel: &CancellationToken,
    ) -> Result<String, PortError> {
        let s = &self.settings;
        let path = Path::new(&s.include);
        let (stable_w, candidate_w) = instance_weights(weight, s.stable.len(), s.candidate.len());
        let done = format!(
            "candidate weight set to {weight}% (nginx upstream `{}` in {}: stable weight {stable_w}, candidate weight {candidate_w} per instance)",
            s.upstream, s.include
        );
        let io = |what: &str, e: std::io::Error| {
            PortError::Unavailable(format!("nginx include {}: {what}: {e}", s.include))
        };
        let previous = match std::fs::read_to_string(path) {
            Ok(p) => Some(p),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io("cannot read", e)),
        };
        let next = render_include(s, weight);
        if previous.as_deref() == Some(next.as_str()) {
            return Ok(format!("{done}; already in place"));
        }
        replace_file(path, Some(&next)).map_err(|e| io("cannot write", e))?;
        let applied = match self.nginx(&["-t"]).await {
            Ok(()) => self.nginx(&["-s", "reload"]).await,
            Err(e) => Err(e),
        };
        if let Err(e) = applied {
            // nginx keeps serving the old split; the file says so again.
            replace_file(path, previous.as_deref()).map_err(|re| {
                io(
                    &format!("{e}; and the previous file could not be put back"),
                    re,
                )
            })?;
            return Err(e);
        }
        Ok(done)
    }
}

/// One access log line in liftoff's format.
#[derive(Clone, Debug, PartialEq)]
pub struct LogLine {
    /// `$msec`: when the request ended, in milliseconds since the epoch.
    pub at_ms: u64,
    pub status: u16,
    pub request_time_secs: f64,
    /// Each upstream attempt: its address and status (`None`: no answer).
    pub attempts: Vec<(String, Option<u16>)>,
}

/// Parse `$msec $status $request_time "$upstream_addr" "$upstream_status"`. Several
/// attempts are `, `-separated (`" : "` between internal redirects); a request nginx
/// answered itself has `"-"`.
pub fn parse_line(line: &str) -> Option<LogLine> {
    let mut parts = line.splitn(4, ' ');
    let msec = parts.next()?;
    let status = parts.next()?.parse().ok()?;
    let request_time_secs: f64 = parts.next()?.parse().ok()?;
    let rest = parts.next()?.trim_end();
    let (addrs, statuses) = rest
        .strip_prefix('"')?
        .strip_suffix('"')?
        .split_once("\" \"")?;
    let (secs, millis) = msec.split_once('.')?;
    let at_ms = secs.parse::<u64>().ok()? * 1000 + millis.parse::<u64>().ok()?;
    let split = |s: &str| -> Vec<String> {
        s.split(" : ")
            .flat_map(|group| group.split(", "))
            .map(|v| v.trim().to_string())
            .collect()
    };
    let statuses = split(statuses);
    let attempts = split(addrs)
        .into_iter()
        .enumerate()
        .filter(|(_, a)| a != "-")
        .map(|(i, a)| (a, statuses.get(i).and_then(|s| s.parse().ok())))
        .collect();
    Some(LogLine {
        at_ms,
        status,
        request_time_secs,
        attempts,
    })
}

/// What one version did in one second (or a window).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counts {
    pub requests: u64,
    pub failed: u64,
    /// Per [`LATENCY_BOUNDS`] bucket.
    pub latency: [u64; LATENCY_BOUNDS.len()],
}

impl Default for Counts {
    fn default() -> Counts {
        Counts {
            requests: 0,
            failed: 0,
            latency: [0; LATENCY_BOUNDS.len()],
        }
    }
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.requests += other.requests;
        self.failed += other.failed;
        for (a, b) in self.latency.iter_mut().zip(other.latency) {
            *a += b;
        }
    }
}

#[derive(Debug, Default)]
struct Second {
    sec: u64,
    stable: Counts,
    candidate: Counts,
}

/// Per-second counts, oldest first (only seconds with requests).
#[derive(Debug, Default)]
struct Ring(VecDeque<Second>);

impl Ring {
    /// Count `line`, each address's attempts for its version.
    fn record(&mut self, line: &LogLine, versions: &HashMap<String, Version>) {
        // 499: the client left before the answer. Its, not the version's: neither a
        // failure nor a request (as with the builtin router's client aborts).
        if line.status == 499 {
            return;
        }
        let sec = line.at_ms / 1000;
        // Lines of one second arrive together; an out-of-order one joins its second.
        let at = match self.0.iter().rposition(|s| s.sec <= sec) {
            Some(i) if self.0[i].sec == sec => i,
            Some(i) => {
                self.0.insert(
                    i + 1,
                    Second {
                        sec,
                        ..Default::default()
                    },
                );
                i + 1
            }
            None => {
                self.0.push_front(Second {
                    sec,
                    ..Default::default()
                });
                0
            }
        };
        let second = &mut self.0[at];
        for (addr, status) in &line.attempts {
            let Some(v) = versions.get(addr) else {
                continue;
            };
            let c = match v {
                Version::Stable => &mut second.stable,
                Version::Candidate => &mut second.candidate,
            };
            c.requests += 1;
            if status.is_none_or(|s| s >= 500) {
                c.failed += 1;
            }
        }
        if let Some(v) = line.attempts.last().and_then(|(a, _)| versions.get(a)) {
            let c = match v {
                Version::Stable => &mut second.stable,
                Version::Candidate => &mut second.candidate,
            };
            let bucket = LATENCY_BOUNDS
                .iter()
                .position(|b| line.request_time_secs <= *b)
                .unwrap_or(LATENCY_BOUNDS.len() - 1);
            c.latency[bucket] += 1;
        }
        let newest = self.0.back().map_or(sec, |s| s.sec);
        while self
            .0
            .front()
            .is_some_and(|s| newest.saturating_sub(s.sec) > RETENTION_SECS)
        {
            self.0.pop_front();
        }
    }

    /// What `version` did in the seconds `from_sec..=to_sec`.
    fn window(&self, version: Version, from_sec: u64, to_sec: u64) -> Counts {
        let mut total = Counts::default();
        for s in self
            .0
            .iter()
            .filter(|s| s.sec >= from_sec && s.sec <= to_sec)
        {
            total.add(match version {
                Version::Stable => &s.stable,
                Version::Candidate => &s.candidate,
            });
        }
        total
    }
}

/// Follows one file as `tail -F` does: from its end when created, across rotation.
#[derive(Debug)]
struct Follow {
    path: String,
    file: Option<(std::fs::File, u64)>,
    /// Where reading continues.
    pos: u64,
    /// A line not yet ended.
    partial: Vec<u8>,
}

impl Follow {
    /// Start at the file's end (what was logged before the launch is not its).
    fn at_end(path: &str) -> Follow {
        let mut f = Follow {
            path: path.to_string(),
            file: None,
            pos: 0,
            partial: Vec::new(),
        };
        if let Ok(file) = std::fs::File::open(path)
            && let Ok(meta) = file.metadata()
        {
            f.pos = meta.len();
            f.file = Some((file, meta.ino()));
        }
        f
    }

    /// The complete lines written since the last call.
    fn read_lines(&mut self) -> std::io::Result<Vec<String>> {
        let mut bytes = Vec::new();
        if self.file.is_none() {
            // Created after the launch started: all of it is new.
            match std::fs::File::open(&self.path) {
                Ok(file) => {
                    let ino = file.metadata()?.ino();
                    self.file = Some((file, ino));
                    self.pos = 0;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e),
            }
        }
        self.read_open(&mut bytes)?;
        match std::fs::metadata(&self.path) {
            // Rotated: the old file is read to its end above; the new one from its start.
            Ok(meta)
                if self
                    .file
                    .as_ref()
                    .is_some_and(|(_, ino)| *ino != meta.ino()) =>
            {
                if let Ok(file) = std::fs::File::open(&self.path) {
                    let ino = file.metadata()?.ino();
                    self.file = Some((file, ino));
                    self.pos = 0;
                    self.partial.clear();
                    self.read_open(&mut bytes)?;
                }
            }
            // Truncated in place (copytruncate).
            Ok(meta) if meta.len() < self.pos => {
                self.pos = 0;
                self.partial.clear();
                self.read_open(&mut bytes)?;
            }
            _ => {}
        }
        let mut data = std::mem::take(&mut self.partial);
        data.extend_from_slice(&bytes);
        let complete = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        self.partial = data.split_off(complete);
        Ok(String::from_utf8_lossy(&data)
            .lines()
            .map(str::to_string)
            .collect())
    }

    fn read_open(&mut self, into: &mut Vec<u8>) -> std::io::Result<()> {
        let Some((file, _)) = &mut self.file else {
            return Ok(());
        };
        file.seek(SeekFrom::Start(self.pos))?;
        let n = file
            .take((MAX_READ_BYTES - into.len().min(MAX_READ_BYTES)) as u64)
            .read_to_end(into)?;
        self.pos += n as u64;
        Ok(())
    }
}

struct Reader {
    follow: Mutex<Follow>,
    ring: Mutex<Ring>,
    /// Which version each instance address is (names resolved as nginx does, since
    /// `$upstream_addr` shows addresses).
    versions: tokio::sync::OnceCell<HashMap<String, Version>>,
    settings: NginxRouter,
    observed: tokio::sync::watch::Sender<u64>,
}

impl Reader {
    async fn versions(&self) -> &HashMap<String, Version> {
        self.versions
            .get_or_init(|| async {
                let mut map = HashMap::new();
                let s = &self.settings;
                for (addrs, v) in [
                    (&s.stable, Version::Stable),
                    (&s.candidate, Version::Candidate),
                ] {
                    for addr in addrs {
                        map.insert(addr.clone(), v);
                        if let Ok(resolved) = tokio::net::lookup_host(addr.as_str()).await {
                            for a in resolved {
                                map.insert(a.to_string(), v);
                            }
                        }
                    }
                }
                map
            })
            .await
    }

    async fn read(&self) -> Result<usize, PortError> {
        let versions = self.versions().await;
        let lines = self
            .follow
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .read_lines()
            .map_err(|e| {
                PortError::Unavailable(format!(
                    "nginx access log {}: {e}",
                    self.settings.access_log
                ))
            })?;
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let mut counted = 0;
        for line in lines.iter().filter_map(|l| parse_line(l)) {
            ring.record(&line, versions);
            counted += 1;
        }
        Ok(counted)
    }
}

/// `MetricSource` for `kind: nginx`: the access log, followed from the launch's start.
pub struct NginxMetrics {
    reader: Arc<Reader>,
}

impl NginxMetrics {
    /// Starts following the access log at its end and reading it every [`POLL_EVERY`]
    /// (on the current tokio runtime, if any) until dropped.
    pub fn new(settings: &NginxRouter) -> NginxMetrics {
        let reader = Arc::new(Reader {
            follow: Mutex::new(Follow::at_end(&settings.access_log)),
            ring: Mutex::new(Ring::default()),
            versions: tokio::sync::OnceCell::new(),
            settings: settings.clone(),
            observed: tokio::sync::watch::channel(0).0,
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(read_every(Arc::downgrade(&reader)));
        }
        NginxMetrics { reader }
    }
}

async fn read_every(reader: Weak<Reader>) {
    let mut reads = 0u64;
    loop {
        let Some(r) = reader.upgrade() else {
            return;
        };
        match r.read().await {
            Ok(0) => {}
            Ok(_) => {
                reads += 1;
                r.observed.send_replace(reads);
            }
            Err(e) => tracing::debug!(error = %e, "nginx access log read failed"),
        }
        drop(r);
        tokio::time::sleep(POLL_EVERY).await;
    }
}

fn unix_ms(at: Instant) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    now.saturating_sub(Instant::now().saturating_duration_since(at).as_millis() as u64)
}

#[async_trait]
impl MetricSource for NginxMetrics {
    async fn sample(
        &self,
        version: Version,
        window: Duration,
        since: Instant,
    ) -> Result<liftoff_analysis::Sample, PortError> {
        self.reader.read().await?;
        let now = Instant::now();
        let start = now.checked_sub(window).map_or(since, |s| s.max(since));
        let counts = self
            .reader
            .ring
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .window(version, unix_ms(start) / 1000, unix_ms(now) / 1000);
        Ok(liftoff_analysis::Sample {
            window_secs: now.duration_since(start).as_secs_f64(),
            requests: counts.requests,
            failed: counts.failed.min(counts.requests),
            latency: LATENCY_BOUNDS
                .iter()
                .zip(counts.latency)
                .map(|(b, n)| (*b, n))
                .collect(),
            health_failures: 0,
        })
    }

    fn observed(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.reader.observed.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> NginxRouter {
        NginxRouter {
            include: "/etc/nginx/liftoff/shop.conf".into(),
            upstream: "shop".into(),
            stable: vec!["10.0.0.11:9000".into()],
            candidate: vec!["10.0.0.12:9000".into()],
            sticky_header: Some("x-user-id".into()),
            access_log: "/var/log/nginx/liftoff-shop.log".into(),
            nginx: "nginx".into(),
            config: None,
        }
    }

    #[test]
    fn the_include_has_the_log_format_and_the_weighted_upstream() {
        let w = Weight::from_basis_points(2500).unwrap();
        assert_eq!(
            render_include(&settings(), w),
            "# Written by liftoff (router: { kind: nginx }), rewritten at every weight change: do not edit.\n\
             # candidate 25%\n\
             log_format liftoff_shop '$msec $status $request_time \"$upstream_addr\" \"$upstream_status\"';\n\
             upstream shop {\n\
             \x20   hash $http_x_user_id consistent;\n\
             \x20   server 10.0.0.11:9000 weight=75;\n\
             \x20   server 10.0.0.12:9000 weight=25;\n\
             }\n"
        );
        // nginx refuses weight=0: a version at 0 is `down`.
        let mut s = settings();
        s.sticky_header = None;
        let at_0 = render_include(&s, Weight::STABLE);
        assert!(
            at_0.contains("server 10.0.0.11:9000 weight=100;\n"),
            "{at_0}"
        );
        assert!(at_0.contains("server 10.0.0.12:9000 down;\n"), "{at_0}");
        assert!(!at_0.contains("hash"), "{at_0}");
        let at_100 = render_include(&s, Weight::FULL);
        assert!(at_100.contains("server 10.0.0.11:9000 down;\n"), "{at_100}");
    }

    #[test]
    fn versions_share_their_weight_among_their_instances() {
        let w = |bp| Weight::from_basis_points(bp).unwrap();
        assert_eq!(instance_weights(w(500), 1, 1), (95, 5));
        // 2 stable, 3 candidate at 25%: 2 * 225 to 3 * 50 is 75 to 25.
        assert_eq!(instance_weights(w(2500), 2, 3), (225, 50));
        assert_eq!(instance_weights(Weight::FULL, 2, 2), (0, 200));
    }

    #[test]
    fn a_log_line_gives_each_attempt_and_its_status() {
        let l = parse_line(r#"1733475600.123 200 0.004 "10.0.0.12:9000" "200""#).unwrap();
        assert_eq!(
            l,
            LogLine {
                at_ms: 1_733_475_600_123,
                status: 200,
                request_time_secs: 0.004,
                attempts: vec![("10.0.0.12:9000".into(), Some(200))],
            }
        );
        // The candidate refused the connection; nginx tried stable.
        let l =
            parse_line(r#"1733475600.500 200 0.010 "10.0.0.12:9000, 10.0.0.11:9000" "502, 200""#)
                .unwrap();
        assert_eq!(
            l.attempts,
            vec![
                ("10.0.0.12:9000".into(), Some(502)),
                ("10.0.0.11:9000".into(), Some(200))
            ]
        );
        // An internal redirect, and an attempt without an answer.
        let l = parse_line(r#"1.000 504 60.001 "[::1]:9000 : 10.0.0.11:9000" "- : 504""#).unwrap();
        assert_eq!(
            l.attempts,
            vec![
                ("[::1]:9000".into(), None),
                ("10.0.0.11:9000".into(), Some(504))
            ]
        );
        // nginx answered itself: no attempt.
        let l = parse_line(r#"1.000 404 0.000 "-" "-""#).unwrap();
        assert!(l.attempts.is_empty());
        assert_eq!(
            parse_line("127.0.0.1 - - [06/Dec/2026] \"GET /\" 200"),
            None
        );
        assert_eq!(parse_line(""), None);
    }

    #[test]
    fn attempts_count_for_their_version_and_latency_for_the_last() {
        let versions: HashMap<String, Version> = [
            ("10.0.0.11:9000".to_string(), Version::Stable),
            ("10.0.0.12:9000".to_string(), Version::Candidate),
        ]
        .into();
        let mut ring = Ring::default();
        for line in [
            r#"100.100 200 0.004 "10.0.0.12:9000" "200""#,
            r#"100.200 500 0.020 "10.0.0.12:9000" "500""#,
            r#"101.200 200 0.300 "10.0.0.12:9000, 10.0.0.11:9000" "502, 200""#,
            r#"101.300 502 0.001 "shop" "502""#,
            r#"101.400 499 0.001 "10.0.0.12:9000" "-""#,
            r#"99.900 200 0.001 "10.0.0.11:9000" "200""#,
        ] {
            ring.record(&parse_line(line).unwrap(), &versions);
        }
        let c = ring.window(Version::Candidate, 100, 101);
        assert_eq!((c.requests, c.failed), (3, 2));
        assert_eq!(c.latency.iter().sum::<u64>(), 2);
        let s = ring.window(Version::Stable, 99, 101);
        assert_eq!((s.requests, s.failed), (2, 0));
        let sample = liftoff_analysis::Sample {
            window_secs: 2.0,
            requests: s.requests,
            failed: 0,
            latency: LATENCY_BOUNDS
                .iter()
                .zip(s.latency)
                .map(|(b, n)| (*b, n))
                .collect(),
            health_failures: 0,
        };
        assert_eq!(sample.quantile(0.99), 0.3);
        // Seconds are kept in order, an out-of-order line in its own second.
        let secs: Vec<u64> = ring.0.iter().map(|s| s.sec).collect();
        assert_eq!(secs, vec![99, 100, 101]);
        assert_eq!(ring.window(Version::Stable, 100, 100).requests, 0);
    }

    #[test]
    fn the_log_is_followed_from_its_end_across_rotation_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let p = path.to_str().unwrap();
        std::fs::write(&path, "before the launch\n").unwrap();
        let mut follow = Follow::at_end(p);
        assert!(follow.read_lines().unwrap().is_empty());
        let append = |s: &str| {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            f.write_all(s.as_bytes()).unwrap();
        };
        append("one\ntw");
        assert_eq!(follow.read_lines().unwrap(), vec!["one"]);
        append("o\n");
        assert_eq!(follow.read_lines().unwrap(), vec!["two"]);
        // logrotate: rename, nginx reopens (USR1) a new file.
        append("three\n");
        std::fs::rename(&path, dir.path().join("access.log.1")).unwrap();
        std::fs::write(&path, "four\n").unwrap();
        assert_eq!(follow.read_lines().unwrap(), vec!["three", "four"]);
        // copytruncate (a file shorter than where reading was).
        std::fs::write(&path, "").unwrap();
        append("5\n");
        assert_eq!(follow.read_lines().unwrap(), vec!["5"]);
        // A log that does not exist yet is read from its start once it does.
        let later = dir.path().join("later.log");
        let mut follow = Follow::at_end(later.to_str().unwrap());
        assert!(follow.read_lines().unwrap().is_empty());
        std::fs::write(&later, "first\n").unwrap();
        assert_eq!(follow.read_lines().unwrap(), vec!["first"]);
    }

    #[test]
    fn nginx_messages_are_its_error_lines() {
        let stderr = "nginx: [emerg] invalid number of arguments in \"server\" directive in /etc/nginx/liftoff/shop.conf:6\nnginx: configuration file /etc/nginx/nginx.conf test failed\n";
        assert_eq!(
            nginx_message(stderr),
            "[emerg] invalid number of arguments in \"server\" directive in /etc/nginx/liftoff/shop.conf:6"
        );
        // Once nginx.conf's `error_log` is read, messages come in its format.
        let stderr = "2026/12/06 09:17:33 [emerg] 26049#26049: host not found in upstream \"no-such-host.invalid:9000\" in /etc/nginx/liftoff/shop.conf:6\nnginx: configuration file /etc/nginx/nginx.conf test failed\n";
        assert_eq!(
            nginx_message(stderr),
            "[emerg] host not found in upstream \"no-such-host.invalid:9000\" in /etc/nginx/liftoff/shop.conf:6"
        );
        assert_eq!(
            nginx_message("nginx: invalid option: \"x\"\n"),
            "invalid option: \"x\""
        );
    }
}
