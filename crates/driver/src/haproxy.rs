//! `router: { kind: haproxy }`: the user's HAProxy, driven through its runtime API
//! (`stats socket ... level admin`), never by editing its configuration or reloading it.
//!
//! Traffic: `set server BACKEND/SERVER weight N` on both servers, on a 0..100 scale
//! (candidate `w`, stable `100 - w`), each read back with `get weight`. Before every
//! change `show stat` must list the backend and both servers (the first change of a
//! launch pins traffic to stable, so a wrong name stops the launch there), and with a
//! sticky header the backend must balance by a header (`algo` `hdr`). A backend whose
//! algorithm is static (`hash-type map-based`, `static-rr`) refuses weights between 0%
//! and 100%; HAProxy's own message says so.
//!
//! Numbers: `show stat` counters of the two servers, polled every second (and on each
//! sample), kept in a ring of (instant, counters); a window is the difference between
//! the newest poll and the one at its start. Requests are `req_tot` (responses the
//! server sent) plus `econ` and `eresp` (requests it failed to answer); failures are
//! `hrsp_5xx` plus `econ` and `eresp`. HAProxy keeps no latency distribution, so samples
//! carry no histogram: the plan refuses latency conditions for `kind: haproxy`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use liftoff_plan::condition::Version;
use liftoff_plan::{HaproxyRouter, HaproxySocket, Weight};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::ports::{MetricSource, PortError, TrafficControl};

/// One runtime API command, answer included.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// An answer larger than this is not one we asked for.
const MAX_ANSWER_BYTES: usize = 4 << 20;
/// How often the metric source polls `show stat` by itself.
pub const POLL_EVERY: Duration = Duration::from_secs(1);
/// Polls closer together than this reuse the last one.
const MIN_POLL_GAP: Duration = Duration::from_millis(200);
/// How far back windows may reach (longer `over` windows get what there is).
const RETENTION: Duration = Duration::from_secs(2 * 3600);

/// HAProxy's runtime API at one address.
#[derive(Clone, Debug)]
pub struct RuntimeApi {
    pub socket: HaproxySocket,
}

impl RuntimeApi {
    /// Send one command (non-interactive: HAProxy answers and closes) and return the
    /// answer. Unreachable, slow or broken sockets are `Unavailable`.
    pub async fn run(&self, command: &str) -> Result<String, PortError> {
        let unavailable = |what: &str, e: &dyn std::fmt::Display| {
            PortError::Unavailable(format!(
                "HAProxy runtime API at {}: {what}: {e}",
                self.socket
            ))
        };
        let exchange = async {
            match &self.socket {
                HaproxySocket::Unix(path) => {
                    let stream = tokio::net::UnixStream::connect(path)
                        .await
                        .map_err(|e| unavailable("cannot connect", &e))?;
                    exchange(stream, command)
                        .await
                        .map_err(|e| unavailable("no answer", &e))
                }
                HaproxySocket::Tcp(addr) => {
                    let stream = tokio::net::TcpStream::connect(addr.as_str())
                        .await
                        .map_err(|e| unavailable("cannot connect", &e))?;
                    exchange(stream, command)
                        .await
                        .map_err(|e| unavailable("no answer", &e))
                }
            }
        };
        match tokio::time::timeout(COMMAND_TIMEOUT, exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(unavailable(
                "no answer",
                &format!("`{command}` took more than {} s", COMMAND_TIMEOUT.as_secs()),
            )),
        }
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    command: &str,
) -> std::io::Result<String> {
    stream.write_all(format!("{command}\n").as_bytes()).await?;
    let mut answer = Vec::new();
    (&mut stream)
        .take(MAX_ANSWER_BYTES as u64 + 1)
        .read_to_end(&mut answer)
        .await?;
    if answer.len() > MAX_ANSWER_BYTES {
        return Err(std::io::Error::other("answer too large"));
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// The counters of one server (or the backend) that analysis reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests the server answered, or failed to: `req_tot + econ + eresp`.
    pub requests: u64,
    /// `hrsp_5xx + econ + eresp`.
    pub failed: u64,
}

impl Counters {
    fn since(self, base: Counters) -> Counters {
        Counters {
            requests: self.requests.saturating_sub(base.requests),
            failed: self.failed.saturating_sub(base.failed),
        }
    }
}

/// One line of `show stat`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatRow {
    pub proxy: String,
    /// A server's name, or `BACKEND` / `FRONTEND`.
    pub name: String,
    pub counters: Counters,
    /// The load-balancing algorithm (on the `BACKEND` line): `roundrobin`, `hdr`, ...
    pub algo: String,
    pub weight: Option<u64>,
    /// `UP`, `DOWN`, `MAINT`, `no check`, ...
    pub status: String,
}

/// Parse `show stat`'s CSV: a `# pxname,svname,...` header naming the columns, then
/// one line per proxy, server, frontend and backend. Columns are found by name, so
/// versions that add columns parse alike; empty counters are 0.
pub fn parse_stat(csv: &str) -> Result<Vec<StatRow>, String> {
    let mut lines = csv.lines();
    let header = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .ok_or_else(|| {
            let first = csv.lines().next().unwrap_or("").trim();
            format!("`show stat` answered `{first}`, not its CSV header")
        })?;
    let columns: Vec<&str> = header.split(',').collect();
    let index = |name: &str| {
        columns
            .iter()
            .position(|c| *c == name)
            .ok_or_else(|| format!("`show stat` has no `{name}` column"))
    };
    let (pxname, svname) = (index("pxname")?, index("svname")?);
    let (req_tot, hrsp_5xx, econ, eresp) = (
        index("req_tot")?,
        index("hrsp_5xx")?,
        index("econ")?,
        index("eresp")?,
    );
    let (algo, weight, status) = (index("algo").ok(), index("weight")?, index("status")?);
    let mut rows = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        // Names are identifiers and counters numbers: no field is quoted.
        let fields: Vec<&str> = line.split(',').collect();
        let field = |i: usize| fields.get(i).copied().unwrap_or("");
        let number = |i: usize| field(i).parse::<u64>().unwrap_or(0);
        rows.push(StatRow {
            proxy: field(pxname).to_string(),
            name: field(svname).to_string(),
            counters: Counters {
                requests: number(req_tot) + number(econ) + number(eresp),
                failed: number(hrsp_5xx) + number(econ) + number(eresp),
            },
            algo: algo.map(field).unwrap_or("").to_string(),
            weight: field(weight).parse().ok(),
            status: field(status).to_string(),
        });
    }
    Ok(rows)
}

/// What a launch drives: one backend, its two servers.
#[derive(Clone, Debug)]
pub struct Backend {
    pub api: RuntimeApi,
    pub settings: HaproxyRouter,
}

impl Backend {
    pub fn new(settings: &HaproxyRouter) -> Backend {
        Backend {
            api: RuntimeApi {
                socket: settings.socket.clone(),
            },
            settings: settings.clone(),
        }
    }

    fn name(&self) -> &str {
        &self.settings.backend
    }

    /// The backend's `show stat` lines (itself and its servers). Every backend's are
    /// asked for and this one's kept: `show stat NAME` finds a frontend of the same
    /// name first (a common configuration), whose backend rows are none.
    pub async fn stat(&self) -> Result<Vec<StatRow>, PortError> {
        let answer = self.api.run("show stat -1 6 -1").await?;
        let rows = parse_stat(&answer).map_err(|e| refused(&self.api, &e))?;
        Ok(rows
            .into_iter()
            .filter(|r| r.proxy == self.settings.backend)
            .collect())
    }

    /// Both servers exist, and the backend balances as the plan's stickiness needs.
    pub fn check(&self, rows: &[StatRow]) -> Result<(), PortError> {
        let servers: Vec<&str> = rows
            .iter()
            .map(|r| r.name.as_str())
            .filter(|n| *n != "BACKEND" && *n != "FRONTEND")
            .collect();
        if rows.is_empty() {
            return Err(PortError::Rejected(format!(
                "HAProxy (runtime API at {}) has no backend `{}`",
                self.api.socket,
                self.name()
            )));
        }
        for (role, server) in [
            ("stable", &self.settings.stable),
            ("candidate", &self.settings.candidate),
        ] {
            if !servers.contains(&server.as_str()) {
                return Err(PortError::Rejected(format!(
                    "HAProxy backend `{}` has no server `{server}` (router.{role}); its servers: {}",
                    self.name(),
                    if servers.is_empty() {
                        "none".to_string()
                    } else {
                        servers.join(", ")
                    }
                )));
            }
        }
        if let Some(header) = &self.settings.sticky_header {
            let algo = rows
                .iter()
                .find(|r| r.name == "BACKEND")
                .map_or("", |r| r.algo.as_str());
            if algo != "hdr" {
                return Err(PortError::Rejected(format!(
                    "HAProxy backend `{}` balances by `{algo}`, but the plan keeps users by header `{header}`: configure `balance hdr({header})` and `hash-type consistent` in the backend",
                    self.name()
                )));
            }
        }
        Ok(())
    }

    /// Set one server's weight and read it back.
    async fn set_weight(&self, server: &str, weight: u8) -> Result<(), PortError> {
        let target = format!("{}/{server}", self.name());
        let answer = self
            .api
            .run(&format!("set server {target} weight {weight}"))
            .await?;
        let answer = answer.trim();
        if !answer.is_empty() {
            return Err(self.answer_error(&target, answer));
        }
        let answer = self.api.run(&format!("get weight {target}")).await?;
        let answer = answer.trim();
        match answer.split_whitespace().next().map(str::parse::<u32>) {
            Some(Ok(w)) if w == u32::from(weight) => Ok(()),
            Some(Ok(w)) => Err(PortError::Unavailable(format!(
                "HAProxy server `{target}` has weight {w} after `set server {target} weight {weight}`"
            ))),
            _ => Err(self.answer_error(&target, answer)),
        }
    }

    fn answer_error(&self, target: &str, answer: &str) -> PortError {
        let first = answer.lines().next().unwrap_or("").trim();
        if first.starts_with("No such backend") {
            PortError::Rejected(format!(
                "HAProxy has no backend `{}` (server `{target}`)",
                self.name()
            ))
        } else if first.starts_with("No such server") {
            PortError::Rejected(format!(
                "HAProxy backend `{}` has no server `{}`",
                self.name(),
                target.split_once('/').map_or(target, |(_, s)| s)
            ))
        } else if first.starts_with("Permission denied") {
            PortError::Rejected(format!(
                "HAProxy refused `{target}`: {first} (the stats socket at {} needs `level admin`)",
                self.api.socket
            ))
        } else if first.contains("static LB algorithm") {
            PortError::Rejected(format!(
                "HAProxy refused a weight for `{target}`: {first} (give backend `{}` a dynamic algorithm: `balance roundrobin`, or `hash-type consistent` with `balance hdr(...)`)",
                self.name()
            ))
        } else {
            PortError::Rejected(format!("HAProxy refused a weight for `{target}`: {first}"))
        }
    }
}

fn refused(api: &RuntimeApi, why: &str) -> PortError {
    PortError::Rejected(format!("HAProxy runtime API at {}: {why}", api.socket))
}

/// Candidate weight `w`, stable `100 - w`: whole numbers (the plan refuses others).
pub fn server_weights(weight: Weight) -> (u8, u8) {
    let candidate = (weight.basis_points().min(10_000).div_ceil(100)) as u8;
    (100 - candidate, candidate)
}

/// `TrafficControl` for `kind: haproxy`.
pub struct HaproxyTraffic {
    pub backend: Backend,
}

#[async_trait]
impl TrafficControl for HaproxyTraffic {
    async fn set_weight(
        &self,
        weight: Weight,
        _cancel: &CancellationToken,
    ) -> Result<String, PortError> {
        let rows = self.backend.stat().await?;
        self.backend.check(&rows)?;
        let (stable, candidate) = server_weights(weight);
        let s = &self.backend.settings;
        // Grow the server that gains first, so the backend never has both at 0 and a
        // failure leaves the earlier split in place (or a share moving toward stable).
        let current = rows
            .iter()
            .find(|r| r.name == s.candidate)
            .and_then(|r| r.weight);
        let order = if current.is_some_and(|c| c > u64::from(candidate)) {
            [(&s.stable, stable), (&s.candidate, candidate)]
        } else {
            [(&s.candidate, candidate), (&s.stable, stable)]
        };
        for (server, w) in order {
            self.backend.set_weight(server, w).await?;
        }
        Ok(format!(
            "candidate weight set to {weight}% (HAProxy backend `{}`: {} weight {stable}, {} weight {candidate})",
            s.backend, s.stable, s.candidate
        ))
    }
}

/// One poll of the two servers.
#[derive(Clone, Copy, Debug)]
struct Poll {
    at: Instant,
    stable: Counters,
    candidate: Counters,
}

impl Poll {
    fn of(&self, version: Version) -> Counters {
        match version {
            Version::Stable => self.stable,
            Version::Candidate => self.candidate,
        }
    }
}

/// The polls a launch keeps, oldest first.
#[derive(Debug, Default)]
struct Ring(VecDeque<Poll>);

impl Ring {
    fn push(&mut self, poll: Poll) {
        // A restarted HAProxy starts its counters again: earlier polls no longer compare.
        if let Some(last) = self.0.back()
            && (poll.stable.requests < last.stable.requests
                || poll.candidate.requests < last.candidate.requests)
        {
            self.0.clear();
        }
        self.0.push_back(poll);
        while self
            .0
            .front()
            .is_some_and(|p| poll.at.duration_since(p.at) > RETENTION)
        {
            self.0.pop_front();
        }
    }

    /// What `version` did in the last `window`, not before `since`: the newest poll
    /// against the latest one at the window's start, or the first one after it.
    fn window(&self, version: Version, window: Duration, since: Instant) -> (f64, Counters) {
        let Some(newest) = self.0.back() else {
            return (0.0, Counters::default());
        };
        let start = newest
            .at
            .checked_sub(window)
            .map_or(since, |s| s.max(since));
        let base = self
            .0
            .iter()
            .rev()
            .find(|p| p.at >= since && p.at <= start)
            .or_else(|| self.0.iter().find(|p| p.at >= since))
            .unwrap_or(newest);
        (
            newest.at.duration_since(base.at).as_secs_f64(),
            newest.of(version).since(base.of(version)),
        )
    }
}

struct Poller {
    backend: Backend,
    ring: Mutex<Ring>,
    observed: tokio::sync::watch::Sender<u64>,
}

impl Poller {
    async fn poll(&self) -> Result<(), PortError> {
        let fresh = |ring: &Ring| ring.0.back().is_some_and(|p| p.at.elapsed() < MIN_POLL_GAP);
        if fresh(&self.ring.lock().unwrap_or_else(|e| e.into_inner())) {
            return Ok(());
        }
        let rows = self.backend.stat().await?;
        self.backend.check(&rows)?;
        let s = &self.backend.settings;
        let counters = |name: &str| {
            rows.iter()
                .find(|r| r.name == name)
                .map_or_else(Counters::default, |r| r.counters)
        };
        let poll = Poll {
            at: Instant::now(),
            stable: counters(&s.stable),
            candidate: counters(&s.candidate),
        };
        self.ring
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(poll);
        Ok(())
    }
}

/// `MetricSource` for `kind: haproxy`: the two servers' `show stat` counters.
pub struct HaproxyMetrics {
    poller: Arc<Poller>,
}

impl HaproxyMetrics {
    /// Starts polling every [`POLL_EVERY`] (on the current tokio runtime, if any) until
    /// dropped, so a window has a poll at its start.
    pub fn new(backend: Backend) -> HaproxyMetrics {
        let poller = Arc::new(Poller {
            backend,
            ring: Mutex::new(Ring::default()),
            observed: tokio::sync::watch::channel(0).0,
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(poll_every_second(Arc::downgrade(&poller)));
        }
        HaproxyMetrics { poller }
    }
}

async fn poll_every_second(poller: Weak<Poller>) {
    let mut polls = 0u64;
    loop {
        let Some(p) = poller.upgrade() else {
            return;
        };
        match p.poll().await {
            Ok(()) => {
                polls += 1;
                p.observed.send_replace(polls);
            }
            Err(e) => tracing::debug!(error = %e, "HAProxy poll failed"),
        }
        drop(p);
        tokio::time::sleep(POLL_EVERY).await;
    }
}

#[async_trait]
impl MetricSource for HaproxyMetrics {
    async fn sample(
        &self,
        version: Version,
        window: Duration,
        since: Instant,
    ) -> Result<liftoff_analysis::Sample, PortError> {
        self.poller.poll().await?;
        let ring = self.poller.ring.lock().unwrap_or_else(|e| e.into_inner());
        let (window_secs, counters) = ring.window(version, window, since);
        Ok(liftoff_analysis::Sample {
            window_secs,
            requests: counters.requests,
            failed: counters.failed.min(counters.requests),
            latency: Vec::new(),
            health_failures: 0,
        })
    }

    fn observed(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.poller.observed.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `show stat app 6 -1` from HAProxy 2.6.12 after 33 requests to `stable` (one
    /// 404), 8 to `candidate`, then 5 refused connections and 5 closed ones on it.
    const STAT: &str = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,
app,stable,0,0,0,1,,33,3092,14964,,0,,0,0,0,0,no check,0,1,0,,,48,,,1,3,1,,33,,2,0,,1,,,,0,32,0,1,0,0,,,,33,0,0,,,,,40,,,0,0,2,2,,,,,,,,,,,,127.0.0.1:18001,,http,,,,,,,,0,0,33,,,0,,0,0,4,4,0,0,0,0,0,0,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
app,candidate,0,0,0,1,,33,1014,3900,,0,,5,5,15,0,no check,100,1,0,,,48,,,1,3,2,,33,,2,0,,1,,,,0,8,0,0,0,0,,,,8,0,0,,,,,12,,,0,0,1,2,,,,,,,,,,,,127.0.0.1:18002,,http,,,,,,,,0,0,33,,,0,,0,0,3,4,0,0,0,0,0,0,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,
app,BACKEND,0,0,0,1,999,51,4106,18864,0,0,,5,5,15,0,UP,100,1,0,,0,48,0,,1,3,0,,51,,1,0,,1,,,,0,40,0,1,10,0,,0,1,51,0,0,0,0,0,0,12,,,0,0,2,2,,,,,,,,,,,,,,http,hdr,,,,,,,0,0,51,,,0,0,4,4,0,,,,,100,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
";

    #[test]
    fn show_stat_csv_gives_each_servers_requests_and_failures() {
        let rows = parse_stat(STAT).unwrap();
        assert_eq!(rows.len(), 3);
        let row = |name: &str| rows.iter().find(|r| r.name == name).unwrap();
        // 32 2xx and a 404: a client error is no failure.
        assert_eq!(
            row("stable").counters,
            Counters {
                requests: 33,
                failed: 0
            }
        );
        // 8 answered, 5 never connected (503 from HAProxy), 5 closed without answer (502).
        assert_eq!(
            row("candidate").counters,
            Counters {
                requests: 18,
                failed: 10
            }
        );
        assert_eq!(row("candidate").weight, Some(100));
        assert_eq!(row("stable").weight, Some(0));
        assert_eq!(row("BACKEND").algo, "hdr");
        assert_eq!(row("BACKEND").status, "UP");
    }

    #[test]
    fn an_answer_that_is_not_csv_is_an_error() {
        let e = parse_stat("Unknown command.\n").unwrap_err();
        assert!(e.contains("Unknown command"), "{e}");
        let e = parse_stat("# pxname,svname\nx,y\n").unwrap_err();
        assert!(e.contains("req_tot"), "{e}");
    }

    fn settings() -> HaproxyRouter {
        HaproxyRouter {
            socket: HaproxySocket::Unix("/run/haproxy/admin.sock".into()),
            backend: "app".into(),
            stable: "stable".into(),
            candidate: "canary".into(),
            sticky_header: Some("x-user-id".into()),
        }
    }

    #[test]
    fn a_missing_server_is_refused_naming_backend_and_server() {
        let rows = parse_stat(STAT).unwrap();
        let e = Backend::new(&settings()).check(&rows).unwrap_err();
        assert_eq!(
            e,
            PortError::Rejected(
                "HAProxy backend `app` has no server `canary` (router.candidate); its servers: stable, candidate".into()
            )
        );
        let mut s = settings();
        s.candidate = "candidate".into();
        assert_eq!(Backend::new(&s).check(&rows), Ok(()));
        let rr: Vec<StatRow> = rows
            .into_iter()
            .map(|mut r| {
                r.algo = r.algo.replace("hdr", "roundrobin");
                r
            })
            .collect();
        let e = Backend::new(&s).check(&rr).unwrap_err().to_string();
        assert!(e.contains("balance hdr(x-user-id)"), "{e}");
    }

    #[test]
    fn weights_are_on_a_0_to_100_scale() {
        assert_eq!(server_weights(Weight::STABLE), (100, 0));
        assert_eq!(server_weights(Weight::FULL), (0, 100));
        assert_eq!(
            server_weights(Weight::from_basis_points(2500).unwrap()),
            (75, 25)
        );
    }

    #[test]
    fn a_window_is_the_newest_poll_against_the_one_at_its_start() {
        let t0 = Instant::now();
        let mut ring = Ring::default();
        for i in 0..10u64 {
            ring.push(Poll {
                at: t0 + Duration::from_secs(i),
                stable: Counters::default(),
                candidate: Counters {
                    requests: 100 * i,
                    failed: 10 * i,
                },
            });
        }
        // The last 5 s: polls 4..9.
        let (secs, c) = ring.window(Version::Candidate, Duration::from_secs(5), t0);
        assert_eq!(secs, 5.0);
        assert_eq!(
            c,
            Counters {
                requests: 500,
                failed: 50
            }
        );
        // Nothing from before `since` (the 8th second).
        let (secs, c) = ring.window(
            Version::Candidate,
            Duration::from_secs(60),
            t0 + Duration::from_secs(8),
        );
        assert_eq!((secs, c.requests), (1.0, 100));
        // A restarted HAProxy: counters fall, the history goes.
        ring.push(Poll {
            at: t0 + Duration::from_secs(10),
            stable: Counters::default(),
            candidate: Counters::default(),
        });
        let (secs, c) = ring.window(Version::Candidate, Duration::from_secs(5), t0);
        assert_eq!((secs, c.requests), (0.0, 0));
    }

    #[tokio::test]
    async fn a_socket_that_cannot_be_reached_is_unavailable_and_names_it() {
        let api = RuntimeApi {
            socket: HaproxySocket::Unix("/nonexistent/haproxy.sock".into()),
        };
        let e = api.run("show stat").await.unwrap_err();
        assert!(e.is_unavailable(), "{e:?}");
        assert!(
            e.to_string()
                .starts_with("HAProxy runtime API at /nonexistent/haproxy.sock: cannot connect"),
            "{e}"
        );
    }

    #[test]
    fn haproxys_refusals_name_backend_and_server() {
        let b = Backend::new(&settings());
        assert_eq!(
            b.answer_error("app/canary", "No such server.\n"),
            PortError::Rejected("HAProxy backend `app` has no server `canary`".into())
        );
        assert_eq!(
            b.answer_error("app/canary", "No such backend.\n"),
            PortError::Rejected("HAProxy has no backend `app` (server `app/canary`)".into())
        );
        let static_lb = b.answer_error(
            "app/canary",
            "Backend is using a static LB algorithm and only accepts weights '0%' and '100%'.",
        );
        assert!(
            static_lb.to_string().contains("static LB algorithm"),
            "{static_lb}"
        );
    }

    /// `tcp:HOST:PORT`: one command per connection, the answer read to its close.
    #[tokio::test]
    async fn a_tcp_stats_socket_gets_one_command_per_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut line = Vec::new();
            let mut byte = [0u8; 1];
            while conn.read_exact(&mut byte).await.is_ok() && byte[0] != b'\n' {
                line.push(byte[0]);
            }
            conn.write_all(b"25 (initial 0)\n\n").await.unwrap();
            String::from_utf8(line).unwrap()
        });
        let api = RuntimeApi {
            socket: HaproxySocket::Tcp(addr.to_string()),
        };
        let answer = api.run("get weight app/green").await.unwrap();
        assert_eq!(answer, "25 (initial 0)\n\n");
        assert_eq!(server.await.unwrap(), "get weight app/green");
    }
}
