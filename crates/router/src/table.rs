//! The routing table: what the request path reads, through one atomic load.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::HeaderName;
use http::uri::Authority;
use rustls::pki_types::ServerName;

pub use crate::snapshot::HostPolicy;
use crate::split::{Fields, Role, Sticky};
use crate::stats::{Totals, VersionStats};

/// A deployed version's address and its keep-alive connections, shared by every route
/// that names the URL (and, for `https://`, the same `ca`), kept across table swaps.
pub struct Upstream {
    /// `http://host:port` or `https://host[:port]`, as configured.
    pub url: String,
    pub authority: Authority,
    /// The `Host` that names it: its authority without the scheme's default port.
    pub host: Bytes,
    /// For `https://`: how its connections are secured.
    pub tls: Option<UpstreamTls>,
    /// Idle keep-alive connections to it.
    pub pool: Arc<crate::pool::Pool>,
}

/// TLS to an `https://` instance: the name its certificate must carry (sent as SNI
/// unless it is an IP address), and the client settings of its routes' `ca`, set when
/// a snapshot is applied (read once per new connection, never per request).
pub struct UpstreamTls {
    pub name: ServerName<'static>,
    config: ArcSwapOption<rustls::ClientConfig>,
}

impl UpstreamTls {
    pub fn config(&self) -> Option<Arc<rustls::ClientConfig>> {
        self.config.load_full()
    }
}

impl Upstream {
    /// From a URL as configured: `http://host:port`, or `https://host` (port 443
    /// unless given). An `https://` one connects once given its TLS settings
    /// ([`Upstream::set_tls`]).
    pub fn new(url: &str) -> Result<Self, crate::RouterError> {
        let bad = |why: &str| crate::RouterError::BadUpstream {
            url: url.to_string(),
            why: why.to_string(),
        };
        let (https, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
            (Some(rest), _) => (false, rest),
            (_, Some(rest)) => (true, rest),
            _ => return Err(bad("an upstream is http:// or https://")),
        };
        let authority_text = rest.trim_end_matches('/');
        if authority_text.contains('/') {
            return Err(bad(
                "an upstream is a scheme, host and port, without a path",
            ));
        }
        let authority: Authority = authority_text.parse().map_err(|_| bad("not a host:port"))?;
        if authority.as_str().contains('@') {
            return Err(bad("an upstream carries no user information"));
        }
        let default_port = if https { 443 } else { 80 };
        if !https && authority.port_u16().is_none() {
            return Err(bad("give the port explicitly, e.g. http://127.0.0.1:9000"));
        }
        let host = match authority.port_u16() {
            Some(p) if p != default_port => authority.as_str(),
            _ => authority.host(),
        };
        let tls = if https {
            let name = authority
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']');
            let name = ServerName::try_from(name.to_string())
                .map_err(|_| bad("not a host name or IP address TLS can verify"))?;
            Some(UpstreamTls {
                name,
                config: ArcSwapOption::empty(),
            })
        } else {
            None
        };
        Ok(Self {
            url: format!("{}://{authority}", if https { "https" } else { "http" }),
            host: Bytes::copy_from_slice(host.as_bytes()),
            authority,
            tls,
            pool: Arc::default(),
        })
    }

    /// The client settings new connections to an `https://` upstream use (connections
    /// already open keep theirs); nothing for `http://`.
    pub fn set_tls(&self, config: &Arc<rustls::ClientConfig>) {
        if let Some(tls) = &self.tls {
            tls.config.store(Some(config.clone()));
        }
    }

    /// The port connections go to.
    pub fn port(&self) -> u16 {
        let default_port = if self.tls.is_some() { 443 } else { 80 };
        self.authority.port_u16().unwrap_or(default_port)
    }
}

/// One instance of a version: an upstream address, with what this route saw of it.
/// Kept across table swaps (with its version).
pub struct Instance {
    pub upstream: Arc<Upstream>,
    pub in_flight: AtomicI64,
    pub health: crate::health::HealthState,
    pub outlier: Outlier,
    /// Every attempt sent to this instance (retries included) and those that failed:
    /// per-instance figures for `status` and `/metrics`, not what gates judge.
    pub attempts: AtomicU64,
    pub failures: AtomicU64,
}

impl Instance {
    pub fn new(upstream: Arc<Upstream>) -> Self {
        Self {
            upstream,
            in_flight: AtomicI64::new(0),
            health: crate::health::HealthState::default(),
            outlier: Outlier::default(),
            attempts: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    /// Whether the balancer may choose it: healthy by its checks and not ejected.
    pub fn usable(&self, now_ms: u64) -> bool {
        self.health.is_healthy() && !self.outlier.ejected(now_ms)
    }

    pub fn report(&self, now_ms: u64) -> InstanceReport {
        InstanceReport {
            url: self.upstream.url.clone(),
            in_flight: self.in_flight.load(Relaxed),
            health: self.health.report(),
            ejected: self.outlier.ejected(now_ms),
            ejections: self.outlier.ejections.load(Relaxed),
            requests: self.attempts.load(Relaxed),
            failures: self.failures.load(Relaxed),
        }
    }
}

/// One instance as `status`, `/metrics` and the daemon see it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceReport {
    pub url: String,
    pub in_flight: i64,
    pub health: crate::health::HealthReport,
    /// Taken out of the balancer by passive outlier detection, for now.
    pub ejected: bool,
    /// Times it was ejected since the router started.
    pub ejections: u64,
    /// Attempts sent to it (retries included), and those that failed (no connection,
    /// a broken exchange, a timeout or a 5xx).
    pub requests: u64,
    pub failures: u64,
}

/// Passive outlier detection (Envoy's `consecutive_5xx`): an instance that fails
/// [`EJECT_AFTER`] attempts in a row is taken out of its version's balancer for a time
/// that doubles with each ejection (`Limits::base_ejection`, 10 s: 10 s, 20 s, ... at
/// most 5 min), as long as no more
/// than half the version's instances (at least one) are out. An ejected instance
/// comes back when its time is up; a failure then sends it out again, for longer.
#[derive(Default)]
pub struct Outlier {
    consecutive: AtomicU32,
    /// Router milliseconds until which it is out; 0 when in.
    until_ms: AtomicU64,
    /// Ejections so far: the next lasts `EJECT_BASE << ejections`.
    pub ejections: AtomicU64,
}

/// Failures in a row that eject an instance.
pub const EJECT_AFTER: u32 = 5;
/// The longest ejection, in base ejections.
const EJECT_MAX_FACTOR: u64 = 30;

impl Outlier {
    pub fn ejected(&self, now_ms: u64) -> bool {
        now_ms < self.until_ms.load(Relaxed)
    }

    fn succeeded(&self) {
        if self.consecutive.load(Relaxed) != 0 {
            self.consecutive.store(0, Relaxed);
        }
    }

    /// A failure; true when it is the one that should eject the instance.
    fn failed(&self) -> bool {
        self.consecutive.fetch_add(1, Relaxed) + 1 >= EJECT_AFTER
    }

    fn eject(&self, now_ms: u64, base_ms: u64) -> u64 {
        let n = self.ejections.fetch_add(1, Relaxed);
        let ms = base_ms
            .saturating_mul(1 << n.min(16))
            .min(base_ms.saturating_mul(EJECT_MAX_FACTOR));
        self.until_ms.store(now_ms + ms, Relaxed);
        self.consecutive.store(0, Relaxed);
        ms
    }
}

/// One version of one route (its stable or its candidate): a pool of instances and
/// what the router saw of the version as a whole. Two routes naming the same upstream
/// have a `Version` each: their figures are their own, only the connections are
/// shared. Outlives table swaps (it follows its instances within the route, whatever
/// its role); in-flight requests hold it, which is what lets a removed version drain.
pub struct Version {
    /// In the order the plan gives them; never empty.
    pub instances: Box<[Arc<Instance>]>,
    /// What the route's gates and triggers judge: one outcome per client request,
    /// whichever instances it was tried on.
    pub stats: VersionStats,
    /// Requests a tester sent here with the override header: shown in `/metrics`,
    /// never judged (unless the route counts them, then they are in `stats`).
    pub overridden: Totals,
    pub in_flight: AtomicI64,
    pub retry_budget: RetryBudget,
}

/// Retries a version may take, so that a failing version is not hammered (Finagle's
/// retry budget): each client request deposits a tenth of a retry, each retry
/// withdraws one, and the balance holds at most [`RetryBudget::BURST`] retries (the
/// start, so a quiet service can still retry a few). Over time, at most one request in
/// ten (plus the burst) is a retry, however badly the version fails.
pub struct RetryBudget {
    /// In tenths of a retry.
    tenths: AtomicI64,
}

impl RetryBudget {
    pub const BURST: i64 = 10;

    pub fn new() -> Self {
        Self {
            tenths: AtomicI64::new(Self::BURST * 10),
        }
    }

    pub fn deposit(&self) {
        if self.tenths.load(Relaxed) < Self::BURST * 10 {
            self.tenths.fetch_add(1, Relaxed);
        }
    }

    /// Take one retry if the balance has one.
    pub fn withdraw(&self) -> bool {
        self.tenths
            .fetch_update(Relaxed, Relaxed, |t| (t >= 10).then_some(t - 10))
            .is_ok()
    }
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self::new()
    }
}

impl Version {
    pub fn new(instances: Vec<Arc<Instance>>) -> Self {
        assert!(!instances.is_empty(), "a version has at least one instance");
        Self {
            instances: instances.into(),
            stats: VersionStats::new(),
            overridden: Totals::default(),
            in_flight: AtomicI64::new(0),
            retry_budget: RetryBudget::new(),
        }
    }

    /// The version's name in reports: its instance URLs, comma-separated.
    pub fn label(&self) -> String {
        let urls: Vec<&str> = self
            .instances
            .iter()
            .map(|i| i.upstream.url.as_str())
            .collect();
        urls.join(",")
    }

    /// The instance for the next attempt, by power of two choices on requests in
    /// flight among the usable ones (healthy, not ejected), skipping those in `tried`
    /// (a bit set by index). When none is usable the version is in *panic*: any
    /// untried instance is chosen (a sick pool serves what it can rather than nothing;
    /// Envoy's panic routing). `None` once every instance was tried.
    pub fn choose(&self, now_ms: u64, tried: u64) -> Option<usize> {
        let n = self.instances.len();
        if n == 1 {
            return (tried & 1 == 0).then_some(0);
        }
        let untried = |i: usize| i >= 64 || tried & (1 << i) == 0;
        let usable = |i: usize| untried(i) && self.instances[i].usable(now_ms);
        let a = fastrand::usize(..n);
        let b = (a + 1 + fastrand::usize(..n - 1)) % n;
        let load = |i: usize| self.instances[i].in_flight.load(Relaxed);
        match (usable(a), usable(b)) {
            (true, true) => return Some(if load(b) < load(a) { b } else { a }),
            (true, false) => return Some(a),
            (false, true) => return Some(b),
            (false, false) => {}
        }
        let start = fastrand::usize(..n);
        let scan = (0..n).map(|k| (start + k) % n);
        scan.clone().find(|&i| usable(i)).or_else(|| {
            scan.min_by_key(|&i| (!untried(i), load(i)))
                .filter(|&i| untried(i))
        })
    }

    /// Record an attempt's outcome on instance `i`; ejects it when it has failed too
    /// often in a row and the version can spare it. Returns the ejection's length.
    pub fn attempted(&self, i: usize, failed: bool, now_ms: u64, base_ms: u64) -> Option<u64> {
        let instance = &self.instances[i];
        instance.attempts.fetch_add(1, Relaxed);
        if !failed {
            instance.outlier.succeeded();
            return None;
        }
        instance.failures.fetch_add(1, Relaxed);
        if !instance.outlier.failed() || self.instances.len() == 1 {
            return None;
        }
        let out = self
            .instances
            .iter()
            .filter(|x| x.outlier.ejected(now_ms))
            .count();
        let cap = (self.instances.len() / 2).max(1);
        (out < cap && !instance.outlier.ejected(now_ms))
            .then(|| instance.outlier.eject(now_ms, base_ms))
    }

    /// The version's health from its instances': healthy while one is; the failure
    /// streak is the shortest (the `health_failures` signal says the whole version is
    /// failing); the last error is the first failing instance's, with its address.
    pub fn health(&self) -> crate::health::HealthReport {
        let reports: Vec<_> = self
            .instances
            .iter()
            .map(|i| (i, i.health.report()))
            .collect();
        if let [(_, only)] = reports.as_slice() {
            return only.clone();
        }
        crate::health::HealthReport {
            checked: reports.iter().any(|(_, r)| r.checked),
            healthy: reports.iter().any(|(_, r)| r.healthy),
            consecutive_failures: reports
                .iter()
                .map(|(_, r)| r.consecutive_failures)
                .min()
                .unwrap_or(0),
            total_failures: reports.iter().map(|(_, r)| r.total_failures).sum(),
            last_error: reports.iter().find_map(|(i, r)| {
                r.last_error
                    .as_ref()
                    .filter(|_| !r.healthy)
                    .map(|e| format!("{}: {e}", i.upstream.url))
            }),
        }
    }

    pub fn instance_reports(&self, now_ms: u64) -> Vec<InstanceReport> {
        self.instances.iter().map(|i| i.report(now_ms)).collect()
    }
}

/// A secret a request must carry (a bypass header's value, the override's secret).
/// Compared in constant time; never printed, not even by `Debug`.
#[derive(Clone)]
pub struct Secret(Box<[u8]>);

impl Secret {
    pub fn new(secret: &str) -> Self {
        Secret(secret.as_bytes().into())
    }

    /// Whether `given` is the secret. The time taken tells nothing of how much of it
    /// matched (only, at most, whether its length did).
    pub fn matches(&self, given: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(self.0.ct_eq(given))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Client networks from settings as written: `10.0.0.0/8` or a single address.
fn networks(list: &[String]) -> Result<Vec<ipnet::IpNet>, String> {
    list.iter()
        .map(|n| {
            n.parse::<ipnet::IpNet>()
                .or_else(|_| n.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("`{n}` is not an address or network"))
        })
        .collect()
}

/// Whether `client` is in one of `nets` (a v4-mapped v6 client as its v4 address).
fn in_networks(nets: &[ipnet::IpNet], client: std::net::IpAddr) -> bool {
    let client = client.to_canonical();
    nets.iter().any(|net| net.contains(&client))
}

fn header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("`{name}` is not a header name"))
}

#[derive(Clone)]
pub struct Maintenance {
    pub retry_after_secs: u32,
    pub page: bytes::Bytes,
    /// Clients from these networks go through.
    pub allow: Vec<ipnet::IpNet>,
    /// `name: secret`: a request carrying it goes through.
    pub bypass_header: Option<(HeaderName, Secret)>,
}

impl Maintenance {
    /// From settings as written: networks like `10.0.0.0/8` or `192.168.1.20`.
    pub fn new(
        retry_after_secs: u32,
        page: &str,
        allow: &[String],
        bypass_header: Option<(&str, &str)>,
    ) -> Result<Self, crate::RouterError> {
        let allow = networks(allow).map_err(crate::RouterError::BadMaintenance)?;
        let bypass_header = bypass_header
            .map(|(name, value)| header_name(name).map(|h| (h, Secret::new(value))))
            .transpose()
            .map_err(crate::RouterError::BadMaintenance)?;
        Ok(Self {
            retry_after_secs,
            page: bytes::Bytes::copy_from_slice(page.as_bytes()),
            allow,
            bypass_header,
        })
    }

    pub fn lets_through<F: Fields + ?Sized>(&self, client: std::net::IpAddr, headers: &F) -> bool {
        in_networks(&self.allow, client)
            || self.bypass_header.as_ref().is_some_and(|(name, secret)| {
                headers
                    .first(name.as_str())
                    .is_some_and(|v| secret.matches(v))
            })
    }
}

/// The tester override: a request whose `header` says `candidate` or `stable` goes to
/// that version whatever the weight, if it is allowed to: its client is in `allow`
/// (when given) and the value carries the secret after a `;` (when there is one), as
/// in `candidate;s3cret`. Off unless a route sets it. Requests it routes are a tester's,
/// not users': recorded apart, not in the windows gates and triggers judge, unless
/// `count`.
#[derive(Clone, Debug)]
pub struct VersionOverride {
    pub header: HeaderName,
    pub secret: Option<Secret>,
    pub allow: Vec<ipnet::IpNet>,
    pub count: bool,
}

/// What the override header asks of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverrideAsk {
    /// No override header: the split decides.
    Absent,
    Granted(Role),
    /// Neither `candidate` nor `stable`.
    Unknown,
    /// Not from an allowed network, or without the right secret.
    Refused,
}

impl VersionOverride {
    /// From settings as written. At least one of `secret` and `allow`: without either,
    /// any client could send its traffic to a version of its choosing.
    pub fn new(
        header: &str,
        secret: Option<&str>,
        allow: &[String],
        count: bool,
    ) -> Result<Self, crate::RouterError> {
        let bad = crate::RouterError::BadOverride;
        if secret.is_none() && allow.is_empty() {
            return Err(bad("give a secret, client networks, or both".into()));
        }
        if secret.is_some_and(str::is_empty) {
            return Err(bad("the secret is empty".into()));
        }
        Ok(Self {
            header: header_name(header).map_err(bad)?,
            secret: secret.map(Secret::new),
            allow: networks(allow).map_err(bad)?,
            count,
        })
    }

    pub fn ask<F: Fields + ?Sized>(&self, headers: &F, client: std::net::IpAddr) -> OverrideAsk {
        let Some(value) = headers.first(self.header.as_str()) else {
            return OverrideAsk::Absent;
        };
        let (word, given) = match value.iter().position(|b| *b == b';') {
            Some(at) => (&value[..at], Some(value[at + 1..].trim_ascii())),
            None => (value, None),
        };
        let role = match word.trim_ascii() {
            b"candidate" => Role::Candidate,
            b"stable" => Role::Stable,
            _ => return OverrideAsk::Unknown,
        };
        let from_allowed = self.allow.is_empty() || in_networks(&self.allow, client);
        let knows_secret = match &self.secret {
            Some(secret) => given.is_some_and(|g| secret.matches(g)),
            None => true,
        };
        if from_allowed && knows_secret {
            OverrideAsk::Granted(role)
        } else {
            OverrideAsk::Refused
        }
    }
}

pub struct Route {
    pub name: String,
    pub listen: SocketAddr,
    /// Only requests for this Host (port ignored) match, when set.
    pub host: Option<String>,
    pub stable: Arc<Version>,
    pub candidate: Option<Arc<Version>>,
    pub weight_bp: u16,
    pub salt: u64,
    pub sticky: Sticky,
    pub version_override: Option<Arc<VersionOverride>>,
    pub maintenance: Option<Arc<Maintenance>>,
    /// The router's limits with this route's timeouts.
    pub limits: Arc<crate::Limits>,
    /// The `Host` its instances are sent.
    pub host_policy: HostPolicy,
}

impl Route {
    pub fn version(&self, role: Role) -> Option<&Arc<Version>> {
        match role {
            Role::Stable => Some(&self.stable),
            Role::Candidate => self.candidate.as_ref(),
        }
    }

    /// A copy with new settings; versions are shared, not copied.
    pub fn with(&self, change: impl FnOnce(&mut RouteFields)) -> Route {
        let mut f = RouteFields {
            stable: self.stable.clone(),
            candidate: self.candidate.clone(),
            weight_bp: self.weight_bp,
            maintenance: self.maintenance.clone(),
        };
        change(&mut f);
        Route {
            name: self.name.clone(),
            listen: self.listen,
            host: self.host.clone(),
            stable: f.stable,
            candidate: f.candidate,
            weight_bp: f.weight_bp,
            salt: self.salt,
            sticky: self.sticky.clone(),
            version_override: self.version_override.clone(),
            maintenance: f.maintenance,
            limits: self.limits.clone(),
            host_policy: self.host_policy,
        }
    }
}

/// What a control-plane change may touch.
pub struct RouteFields {
    pub stable: Arc<Version>,
    pub candidate: Option<Arc<Version>>,
    pub weight_bp: u16,
    pub maintenance: Option<Arc<Maintenance>>,
}

#[derive(Default)]
pub struct Table {
    pub routes: Vec<Arc<Route>>,
}

impl Table {
    /// The route for a request that arrived on `listen` for `host`.
    pub fn find(&self, listen: SocketAddr, host: Option<&str>) -> Option<&Arc<Route>> {
        let host = host.map(|h| {
            h.rsplit_once(':').map_or(h, |(name, port)| {
                if port.bytes().all(|b| b.is_ascii_digit()) {
                    name
                } else {
                    h
                }
            })
        });
        let mut fallback = None;
        for route in self.routes.iter().filter(|r| r.listen == listen) {
            match (&route.host, host) {
                (Some(want), Some(got)) if want.eq_ignore_ascii_case(got) => return Some(route),
                (None, _) => fallback = fallback.or(Some(route)),
                _ => {}
            }
        }
        fallback
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maintenance_bypass_by_network_or_secret_header() {
        let m = Maintenance {
            retry_after_secs: 60,
            page: bytes::Bytes::new(),
            allow: vec!["10.0.0.0/8".parse().unwrap()],
            bypass_header: Some((HeaderName::from_static("x-bypass"), Secret::new("s3cret"))),
        };
        let none = http::HeaderMap::new();
        assert!(m.lets_through("10.1.2.3".parse().unwrap(), &none));
        assert!(
            m.lets_through("::ffff:10.0.0.1".parse().unwrap(), &none),
            "v4-mapped clients match v4 nets"
        );
        assert!(!m.lets_through("11.0.0.1".parse().unwrap(), &none));
        let mut h = http::HeaderMap::new();
        h.insert("x-bypass", "s3cret".parse().unwrap());
        assert!(m.lets_through("11.0.0.1".parse().unwrap(), &h));
        h.insert("x-bypass", "guess".parse().unwrap());
        assert!(!m.lets_through("11.0.0.1".parse().unwrap(), &h));
        h.insert("x-bypass", "s3cret2".parse().unwrap());
        assert!(!m.lets_through("11.0.0.1".parse().unwrap(), &h));
    }

    #[test]
    fn the_override_needs_its_secret_and_its_networks() {
        let ask = |o: &VersionOverride, value: &str, client: &str| {
            let mut h = http::HeaderMap::new();
            h.insert("x-liftoff-version", value.parse().unwrap());
            o.ask(&h, client.parse().unwrap())
        };
        let secret = VersionOverride::new("X-Liftoff-Version", Some("t0ken"), &[], false).unwrap();
        let inside = "203.0.113.9";
        assert_eq!(
            ask(&secret, "candidate;t0ken", inside),
            OverrideAsk::Granted(Role::Candidate)
        );
        assert_eq!(
            ask(&secret, " stable ; t0ken ", inside),
            OverrideAsk::Granted(Role::Stable)
        );
        for refused in [
            "candidate",
            "candidate;",
            "candidate;t0ke",
            "candidate;t0ken2",
        ] {
            assert_eq!(
                ask(&secret, refused, inside),
                OverrideAsk::Refused,
                "{refused}"
            );
        }
        assert_eq!(ask(&secret, "canary;t0ken", inside), OverrideAsk::Unknown);
        assert_eq!(
            secret.ask(&http::HeaderMap::new(), inside.parse().unwrap()),
            OverrideAsk::Absent
        );

        let nets = ["10.0.0.0/8".to_string()];
        let net = VersionOverride::new("x-liftoff-version", None, &nets, false).unwrap();
        assert_eq!(
            ask(&net, "candidate", "10.1.2.3"),
            OverrideAsk::Granted(Role::Candidate)
        );
        assert_eq!(
            ask(&net, "candidate", "::ffff:10.1.2.3"),
            OverrideAsk::Granted(Role::Candidate)
        );
        assert_eq!(ask(&net, "candidate", inside), OverrideAsk::Refused);
        let both = VersionOverride::new("x-liftoff-version", Some("t0ken"), &nets, false).unwrap();
        assert_eq!(ask(&both, "candidate;t0ken", inside), OverrideAsk::Refused);
        assert_eq!(ask(&both, "candidate", "10.0.0.1"), OverrideAsk::Refused);
        assert_eq!(
            ask(&both, "candidate;t0ken", "10.0.0.1"),
            OverrideAsk::Granted(Role::Candidate)
        );

        assert!(VersionOverride::new("x-liftoff-version", None, &[], false).is_err());
        assert!(VersionOverride::new("x-liftoff-version", Some(""), &[], false).is_err());
        assert!(VersionOverride::new("bad header", Some("t"), &[], false).is_err());
        assert!(!format!("{secret:?}").contains("t0ken"), "{secret:?}");
    }

    #[test]
    fn routes_match_host_without_port_and_fall_back_to_hostless() {
        let up = Arc::new(Version::new(vec![Arc::new(Instance::new(Arc::new(
            Upstream::new("http://127.0.0.1:9000").unwrap(),
        )))]));
        let route = |name: &str, host: Option<&str>| {
            Arc::new(Route {
                name: name.into(),
                listen: "127.0.0.1:8080".parse().unwrap(),
                host: host.map(String::from),
                stable: up.clone(),
                candidate: None,
                weight_bp: 0,
                salt: 1,
                sticky: Sticky::None,
                version_override: None,
                maintenance: None,
                limits: Arc::default(),
                host_policy: HostPolicy::Client,
            })
        };
        let t = Table {
            routes: vec![route("any", None), route("shop", Some("shop.example"))],
        };
        let at = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(t.find(at, Some("shop.example:8080")).unwrap().name, "shop");
        assert_eq!(t.find(at, Some("SHOP.example")).unwrap().name, "shop");
        assert_eq!(t.find(at, Some("other")).unwrap().name, "any");
        assert!(t.find("127.0.0.1:1".parse().unwrap(), None).is_none());
        assert!(Upstream::new("ftp://x:1").is_err());
        assert!(Upstream::new("http://x").is_err());
        assert!(Upstream::new("http://x:1/path").is_err());
        assert!(Upstream::new("https://u@x").is_err());
    }

    #[test]
    fn https_upstreams_default_to_port_443_and_name_themselves_without_it() {
        let host = |url: &str| {
            let up = Upstream::new(url).unwrap();
            (
                up.url.clone(),
                String::from_utf8(up.host.to_vec()).unwrap(),
                up.port(),
                up.tls.map(|t| t.name.to_str().into_owned()),
            )
        };
        let own = |url: &str, host: &str, port, name: Option<&str>| {
            (
                url.to_string(),
                host.to_string(),
                port,
                name.map(String::from),
            )
        };
        assert_eq!(
            host("https://app.run.app/"),
            own(
                "https://app.run.app",
                "app.run.app",
                443,
                Some("app.run.app")
            )
        );
        assert_eq!(
            host("https://app.test:443"),
            own("https://app.test:443", "app.test", 443, Some("app.test"))
        );
        assert_eq!(
            host("https://127.0.0.1:8443"),
            own(
                "https://127.0.0.1:8443",
                "127.0.0.1:8443",
                8443,
                Some("127.0.0.1")
            )
        );
        assert_eq!(
            host("https://[::1]:8443"),
            own("https://[::1]:8443", "[::1]:8443", 8443, Some("::1"))
        );
        assert_eq!(
            host("http://10.0.0.1:80"),
            own("http://10.0.0.1:80", "10.0.0.1", 80, None)
        );
        assert_eq!(
            host("http://10.0.0.1:9000"),
            own("http://10.0.0.1:9000", "10.0.0.1:9000", 9000, None)
        );
    }
}
