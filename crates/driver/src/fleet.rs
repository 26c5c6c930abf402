//! The daemon's side of the data plane: the routes every router should serve (a
//! versioned snapshot), the routers that serve them, and the sum of what they observe.
//!
//! Routers are separate processes (`liftoff router`) that outlive the daemon. They pull
//! (a long poll) and the daemon never dials them: a router behind NAT or on another host
//! needs only the daemon's address, a restarted daemon needs no list of routers, and a
//! dead router costs the daemon nothing but a missing report. Each router reports every
//! 100 ms what it saw per (route, version) per Unix second, and the snapshot version it
//! serves (its acknowledgement).
//!
//! Invariants:
//! - the desired routes change only here, and every change gets a new, larger version;
//! - a window is the sum over every router instance's reports for those seconds: a bad
//!   candidate whose traffic is spread over three routers is judged on all of it;
//! - a report replaces what it carries (idempotent): a retried report adds nothing;
//! - a router not heard from for [`MISSING_AFTER`] is missing: it holds back no step,
//!   and is named in `status` and in the step's journal line.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::time::Instant as Clock;

use liftoff_router::export::{Report, SecondCounts, Totals};
use liftoff_router::metrics::{RouteMetrics, VersionMetrics};
use liftoff_router::snapshot::{RouteConfig, Snapshot};
use liftoff_router::stats::WINDOW_SECS;
use liftoff_router::{HealthReport, InstanceReport, Role, RouteStatus, VersionStatus, Window};
use tokio::sync::{Notify, watch};

/// A router not heard from for this long is missing.
pub const MISSING_AFTER: Duration = Duration::from_secs(2);

pub struct Fleet {
    inner: Mutex<Inner>,
    published: watch::Sender<Arc<Snapshot>>,
    contact: Notify,
    /// Counts the reports that brought observations: triggers are judged as they come.
    observed: watch::Sender<u64>,
    /// Random per daemon process: a router resends all it holds to a new one.
    pub daemon: String,
}

#[derive(Default)]
struct Inner {
    routes: BTreeMap<String, RouteConfig>,
    version: u64,
    members: BTreeMap<String, Member>,
    /// Per (router instance, route, version).
    series: HashMap<(String, String, Role), Series>,
    /// Where each router listens for each route (routes on port 0 differ per router).
    listens: BTreeMap<(String, String), SocketAddr>,
}

struct Member {
    instance: String,
    last_contact: Clock,
    applied: u64,
    listening: Vec<SocketAddr>,
}

struct Series {
    router: String,
    url: String,
    in_flight: i64,
    health: HealthReport,
    instances: Vec<InstanceReport>,
    totals: Totals,
    overridden: Option<Totals>,
    seconds: BTreeMap<u64, SecondCounts>,
}

/// A router as `status` shows it.
#[derive(Clone, Debug)]
pub struct RouterInfo {
    pub id: String,
    pub instance: String,
    pub applied: u64,
    pub since_contact: Duration,
    pub missing: bool,
    pub listening: Vec<SocketAddr>,
    /// Requests it proxied in the last 10 s, all routes.
    pub requests_10s: u64,
}

/// What a change reached.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub version: u64,
    /// From the change to the last acknowledgement (or the deadline).
    pub elapsed: Duration,
    pub acknowledged: Vec<String>,
    /// Live routers that did not acknowledge within the deadline, and routers that were
    /// already missing.
    pub missing: Vec<String>,
}

impl Applied {
    /// For the journal: which routers serve the change.
    pub fn describe(&self) -> String {
        let ms = self.elapsed.as_secs_f64() * 1000.0;
        let mut s = match self.acknowledged.len() {
            0 => "no router has applied it yet".to_string(),
            1 => format!("applied by router {} in {ms:.1} ms", self.acknowledged[0]),
            n => format!("applied by {n} routers in {ms:.1} ms"),
        };
        if !self.missing.is_empty() {
            s.push_str(&format!("; missing: {}", self.missing.join(", ")));
        }
        s
    }
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn millis_now() -> u64 {
    u64::try_from(unix_now().as_millis()).unwrap_or(u64::MAX)
}

impl Default for Fleet {
    fn default() -> Self {
        Self::new()
    }
}

impl Fleet {
    pub fn new() -> Self {
        let mut id = [0u8; 8];
        let _ = getrandom::fill(&mut id);
        let version = millis_now();
        let (published, _) = watch::channel(Arc::new(Snapshot {
            version,
            routes: Vec::new(),
        }));
        Fleet {
            inner: Mutex::new(Inner {
                version,
                ..Inner::default()
            }),
            published,
            contact: Notify::new(),
            observed: watch::channel(0).0,
            daemon: id.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.published.borrow().clone()
    }

    /// Changes with every router report: new observations to judge.
    pub fn observed(&self) -> watch::Receiver<u64> {
        self.observed.subscribe()
    }

    /// For the long poll: changes as snapshots are published.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.published.subscribe()
    }

    pub fn route(&self, name: &str) -> Option<RouteConfig> {
        self.inner().routes.get(name).cloned()
    }

    /// Create or replace a route (the whole of it); returns the new snapshot version.
    pub fn upsert(&self, route: RouteConfig) -> u64 {
        self.change(|routes| {
            routes.insert(route.name.clone(), route);
        })
    }

    /// Change one route in place; `None` when there is no such route.
    pub fn update(&self, name: &str, f: impl FnOnce(&mut RouteConfig)) -> Option<u64> {
        let mut found = false;
        let version = self.change(|routes| {
            if let Some(r) = routes.get_mut(name) {
                f(r);
                found = true;
            }
        });
        found.then_some(version)
    }

    fn change(&self, f: impl FnOnce(&mut BTreeMap<String, RouteConfig>)) -> u64 {
        let mut inner = self.inner();
        f(&mut inner.routes);
        inner.version = (inner.version + 1).max(millis_now());
        let snapshot = Arc::new(Snapshot {
            version: inner.version,
            routes: inner.routes.values().cloned().collect(),
        });
        let version = snapshot.version;
        self.published.send_replace(snapshot);
        version
    }

    /// A router asked for the snapshot: it is alive. (Its acknowledgement comes with
    /// its next report, which it sends as soon as it has applied a snapshot, with where
    /// it listens: a change is acknowledged only once its listeners are known.)
    pub fn contact(&self, id: &str, instance: &str) {
        let mut inner = self.inner();
        let member = inner
            .members
            .entry(id.to_string())
            .or_insert_with(|| Member {
                instance: instance.to_string(),
                last_contact: Clock::now(),
                applied: 0,
                listening: Vec::new(),
            });
        if member.instance != instance {
            member.instance = instance.to_string();
            member.applied = 0;
        }
        member.last_contact = Clock::now();
    }

    /// A router's report: its acknowledgement and its observations.
    pub fn report(&self, report: Report) {
        let oldest = unix_now().as_secs().saturating_sub(WINDOW_SECS);
        {
            let mut inner = self.inner();
            inner
                .listens
                .retain(|(router, _), _| *router != report.router);
            for route in report.routes {
                inner
                    .listens
                    .insert((report.router.clone(), route.route.clone()), route.listen);
                for v in route.versions {
                    let key = (report.instance.clone(), route.route.clone(), v.role);
                    let series = inner.series.entry(key).or_insert_with(|| Series {
                        router: report.router.clone(),
                        url: v.url.clone(),
                        in_flight: 0,
                        health: HealthReport {
                            healthy: true,
                            ..HealthReport::default()
                        },
                        instances: Vec::new(),
                        totals: Totals::default(),
                        overridden: None,
                        seconds: BTreeMap::new(),
                    });
                    series.url = v.url;
                    series.in_flight = v.in_flight;
                    series.health = v.health;
                    series.instances = v.instances;
                    series.totals = v.totals;
                    series.overridden = v.overridden;
                    for s in v.seconds {
                        series.seconds.insert(s.second, s);
                    }
                    series.seconds = series.seconds.split_off(&oldest);
                }
            }
            // Instances whose every second has aged out are forgotten.
            inner
                .series
                .retain(|_, s| !s.seconds.is_empty() || s.in_flight > 0);
            let member = inner
                .members
                .entry(report.router.clone())
                .or_insert_with(|| Member {
                    instance: report.instance.clone(),
                    last_contact: Clock::now(),
                    applied: report.applied,
                    listening: Vec::new(),
                });
            member.instance = report.instance;
            member.last_contact = Clock::now();
            member.applied = report.applied;
            member.listening = report.listening;
        }
        self.contact.notify_waiters();
        self.observed.send_modify(|n| *n += 1);
    }

    /// Wait until every live router serves `version` (or a newer one), at most
    /// `deadline`. Routers that were missing when asked are named, not waited for.
    pub async fn applied(&self, version: u64, deadline: Duration) -> Applied {
        let asked = tokio::time::Instant::now();
        let until = asked + deadline;
        loop {
            let notified = self.contact.notified();
            let (done, waiting, missing) = {
                let inner = self.inner();
                let mut done = Vec::new();
                let mut waiting = Vec::new();
                let mut missing = Vec::new();
                for (id, m) in &inner.members {
                    if m.applied >= version {
                        done.push(id.clone());
                    } else if m.last_contact.elapsed() > MISSING_AFTER {
                        missing.push(id.clone());
                    } else {
                        waiting.push(id.clone());
                    }
                }
                (done, waiting, missing)
            };
            let expired = tokio::time::Instant::now() >= until;
            if (waiting.is_empty() && !done.is_empty()) || expired {
                let mut missing = missing;
                missing.extend(waiting);
                return Applied {
                    version,
                    elapsed: asked.elapsed(),
                    acknowledged: done,
                    missing,
                };
            }
            let _ = tokio::time::timeout_at(until, notified).await;
        }
    }

    /// What a version of a route saw over the fleet in the `secs` whole seconds before
    /// the current one and in the current one so far, counting only seconds that began
    /// after `since` (as [`liftoff_router::Router::window_since`] for one router).
    pub fn window_since(
        &self,
        route: &str,
        role: Role,
        secs: u64,
        since: Instant,
    ) -> Option<Window> {
        let now = unix_now();
        let since_unix = now.saturating_sub(since.elapsed());
        let first = since_unix.as_secs() + 1;
        let current = now.as_secs();
        let into_current = Duration::from_nanos(u64::from(now.subsec_nanos()));
        let available = (current + 1).saturating_sub(first);
        let inner = self.inner();
        if !inner.routes.contains_key(route) {
            return None;
        }
        if available == 0 {
            // No second begun since: nothing covered yet.
            return Some(Window::default());
        }
        let buckets = secs.saturating_add(1).min(available).min(WINDOW_SECS - 1);
        let mut w = sum(&inner, route, role, current + 1 - buckets, current);
        w.seconds = buckets;
        w.covered = Duration::from_secs(buckets - 1) + into_current;
        Some(w)
    }

    /// The last `secs` seconds over the fleet, ending with the current one.
    pub fn window(&self, route: &str, role: Role, secs: u64) -> Window {
        let current = unix_now().as_secs();
        let secs = secs.clamp(1, WINDOW_SECS - 1);
        let mut w = sum(&self.inner(), route, role, current + 1 - secs, current);
        w.seconds = secs;
        w
    }

    /// A version's instances over the live routers, in the plan's order: counts summed;
    /// ejected or unhealthy if any router has it so (that router does not send it
    /// traffic); an instance no router has reported yet shows as healthy, with nothing.
    fn instances(&self, route: &str, role: Role, urls: &[String]) -> Vec<InstanceReport> {
        let inner = self.inner();
        let mut out: Vec<InstanceReport> = urls
            .iter()
            .map(|url| InstanceReport {
                url: url.clone(),
                health: HealthReport {
                    healthy: true,
                    ..HealthReport::default()
                },
                ..InstanceReport::default()
            })
            .collect();
        let mut first = vec![true; urls.len()];
        for ((instance, r, ro), s) in &inner.series {
            if r != route || *ro != role || !live_instance(&inner, &s.router, instance) {
                continue;
            }
            for seen in &s.instances {
                let Some(k) = urls.iter().position(|u| *u == seen.url) else {
                    continue;
                };
                let acc = &mut out[k];
                acc.in_flight += seen.in_flight;
                acc.requests += seen.requests;
                acc.failures += seen.failures;
                acc.ejections += seen.ejections;
                acc.ejected |= seen.ejected;
                if std::mem::take(&mut first[k]) {
                    acc.health = seen.health.clone();
                } else {
                    merge_health(&mut acc.health, &seen.health);
                }
            }
        }
        out
    }

    /// A version's health over the live routers: unhealthy if any sees it unhealthy;
    /// `consecutive_failures` is the largest any of them counts.
    pub fn health(&self, route: &str, role: Role) -> Option<HealthReport> {
        let inner = self.inner();
        let mut out: Option<HealthReport> = None;
        for ((instance, r, ro), s) in &inner.series {
            if r != route || *ro != role || !live_instance(&inner, &s.router, instance) {
                continue;
            }
            match &mut out {
                None => out = Some(s.health.clone()),
                Some(acc) => merge_health(acc, &s.health),
            }
        }
        out
    }

    pub fn routers(&self) -> Vec<RouterInfo> {
        let inner = self.inner();
        let current = unix_now().as_secs();
        inner
            .members
            .iter()
            .map(|(id, m)| {
                let requests_10s = inner
                    .series
                    .iter()
                    .filter(|((instance, _, _), s)| s.router == *id && *instance == m.instance)
                    .flat_map(|(_, s)| s.seconds.range(current.saturating_sub(9)..=current))
                    .map(|(_, c)| c.requests)
                    .sum();
                RouterInfo {
                    id: id.clone(),
                    instance: m.instance.clone(),
                    applied: m.applied,
                    since_contact: m.last_contact.elapsed(),
                    missing: m.last_contact.elapsed() > MISSING_AFTER,
                    listening: m.listening.clone(),
                    requests_10s,
                }
            })
            .collect()
    }

    /// Every route as the fleet serves it, for `status`, the API and `/metrics`.
    pub fn status(&self) -> Vec<RouteStatus> {
        let routes: Vec<RouteConfig> = self.inner().routes.values().cloned().collect();
        routes
            .into_iter()
            .map(|r| {
                let versions = [Role::Stable, Role::Candidate]
                    .into_iter()
                    .filter_map(|role| {
                        let url = match role {
                            Role::Stable => r.stable.clone(),
                            Role::Candidate => r.candidate.clone()?,
                        };
                        let in_flight = {
                            let inner = self.inner();
                            inner
                                .series
                                .iter()
                                .filter(|((i, n, ro), s)| {
                                    *n == r.name
                                        && *ro == role
                                        && live_instance(&inner, &s.router, i)
                                })
                                .map(|(_, s)| s.in_flight)
                                .sum()
                        };
                        Some(VersionStatus {
                            role,
                            url: url.0.join(","),
                            in_flight,
                            instances: self.instances(&r.name, role, &url.0),
                            // No router has checked it: healthy until proven otherwise.
                            health: self.health(&r.name, role).unwrap_or(HealthReport {
                                healthy: true,
                                ..HealthReport::default()
                            }),
                            last_10s: self.window(&r.name, role, 10),
                            last_60s: self.window(&r.name, role, 60),
                        })
                    })
                    .collect();
                let listen = if r.listen.port() == 0 {
                    self.listen_of(&r.name).unwrap_or(r.listen)
                } else {
                    r.listen
                };
                RouteStatus {
                    name: r.name.clone(),
                    listen,
                    weight_bp: r.weight_bp,
                    maintenance: r.maintenance.is_some(),
                    versions,
                }
            })
            .collect()
    }

    /// Where a live router listens for a route.
    pub fn listen_of(&self, route: &str) -> Option<SocketAddr> {
        let inner = self.inner();
        inner
            .listens
            .iter()
            .find(|((router, r), _)| {
                r == route
                    && inner
                        .members
                        .get(router)
                        .is_some_and(|m| m.last_contact.elapsed() <= MISSING_AFTER)
            })
            .map(|(_, a)| *a)
    }

    /// Every route's series summed over the router instances still remembered (a
    /// router that restarted keeps its predecessor's totals until they age out, so
    /// counters do not go back), for `/metrics`.
    pub fn metrics(&self) -> Vec<RouteMetrics> {
        let status = self.status();
        let inner = self.inner();
        status
            .into_iter()
            .map(|r| RouteMetrics {
                versions: r
                    .versions
                    .iter()
                    .map(|v| {
                        let mut totals = Totals::default();
                        let mut overridden: Option<Totals> = None;
                        for ((_, route, role), s) in &inner.series {
                            if *route != r.name || *role != v.role {
                                continue;
                            }
                            add_totals(&mut totals, &s.totals);
                            if let Some(o) = &s.overridden {
                                add_totals(overridden.get_or_insert_with(Totals::default), o);
                            }
                        }
                        VersionMetrics {
                            route: r.name.clone(),
                            role: v.role,
                            url: v.url.clone(),
                            totals,
                            overridden,
                            in_flight: v.in_flight,
                            health: v.health.clone(),
                            instances: v.instances.clone(),
                        }
                    })
                    .collect(),
                name: r.name,
                weight_bp: r.weight_bp,
                maintenance: r.maintenance,
            })
            .collect()
    }

    /// Prometheus text of every route over the fleet, and of the routers themselves.
    pub fn render_metrics(&self) -> String {
        let mut out = liftoff_router::metrics::render(&self.metrics());
        let routers = self.routers();
        out.push_str(
            "# HELP liftoff_fleet_router_up 1 while a router reports (heard from in the last 2 s).\n\
             # TYPE liftoff_fleet_router_up gauge\n",
        );
        for r in &routers {
            out.push_str(&format!(
                "liftoff_fleet_router_up{{router=\"{}\"}} {}\n",
                r.id.replace('\\', "\\\\").replace('"', "\\\""),
                u8::from(!r.missing)
            ));
        }
        out.push_str(
            "# HELP liftoff_fleet_router_snapshot_version The snapshot version a router serves.\n\
             # TYPE liftoff_fleet_router_snapshot_version gauge\n",
        );
        for r in &routers {
            out.push_str(&format!(
                "liftoff_fleet_router_snapshot_version{{router=\"{}\"}} {}\n",
                r.id.replace('\\', "\\\\").replace('"', "\\\""),
                r.applied
            ));
        }
        out.push_str(&format!(
            "# HELP liftoff_fleet_snapshot_version The snapshot version routers should serve.\n\
             # TYPE liftoff_fleet_snapshot_version gauge\n\
             liftoff_fleet_snapshot_version {}\n",
            self.snapshot().version
        ));
        out
    }
}

/// One health over several routers' checks: unhealthy if any router sees it so; the
/// longest failure streak; failures added up; the first error given.
fn merge_health(acc: &mut HealthReport, h: &HealthReport) {
    acc.checked |= h.checked;
    acc.healthy &= h.healthy;
    acc.consecutive_failures = acc.consecutive_failures.max(h.consecutive_failures);
    acc.total_failures += h.total_failures;
    if acc.last_error.is_none() {
        acc.last_error = h.last_error.clone();
    }
}

fn live_instance(inner: &Inner, router: &str, instance: &str) -> bool {
    inner
        .members
        .get(router)
        .is_some_and(|m| m.instance == instance && m.last_contact.elapsed() <= MISSING_AFTER)
}

fn sum(inner: &Inner, route: &str, role: Role, from: u64, to: u64) -> Window {
    let mut w = Window::default();
    for ((_, r, ro), s) in &inner.series {
        if r != route || *ro != role {
            continue;
        }
        for (_, counts) in s.seconds.range(from..=to) {
            w.add(counts);
        }
    }
    w
}

fn add_totals(acc: &mut Totals, t: &Totals) {
    fn add(a: &mut Vec<u64>, b: &[u64]) {
        if a.len() < b.len() {
            a.resize(b.len(), 0);
        }
        for (x, y) in a.iter_mut().zip(b) {
            *x += y;
        }
    }
    add(&mut acc.status, &t.status);
    add(&mut acc.errors, &t.errors);
    add(&mut acc.prom_buckets, &t.prom_buckets);
    acc.latency_sum_secs += t.latency_sum_secs;
    acc.count += t.count;
}

#[cfg(test)]
mod tests {
    use super::*;
    use liftoff_router::export::{Health, RouteReport, VersionReport};
    use liftoff_router::snapshot::Instances;
    use liftoff_router::snapshot::StickyConfig;

    fn route(name: &str, weight_bp: u16) -> RouteConfig {
        RouteConfig {
            name: name.into(),
            listen: "127.0.0.1:8080".parse().unwrap(),
            host: None,
            stable: Instances::one("http://127.0.0.1:9000"),
            candidate: Some(Instances::one("http://127.0.0.1:9001")),
            weight_bp,
            salt: 7,
            sticky: StickyConfig::None,
            version_override: None,
            health: None,
            maintenance: None,
            timeouts: None,
            tls: None,
            upstreams: None,
        }
    }

    fn counts(second: u64, requests: u64, failed: u64) -> SecondCounts {
        SecondCounts {
            second,
            requests,
            status: [0, requests - failed, 0, 0, failed],
            errors: [failed, 0, 0, 0],
            latency: vec![(10, requests)],
        }
    }

    fn report(router: &str, instance: &str, applied: u64, seconds: Vec<SecondCounts>) -> Report {
        Report {
            router: router.into(),
            instance: instance.into(),
            applied,
            listening: vec![],
            routes: vec![RouteReport {
                route: "shop".into(),
                listen: "127.0.0.1:8080".parse().unwrap(),
                weight_bp: 5000,
                versions: vec![VersionReport {
                    role: Role::Candidate,
                    url: "http://127.0.0.1:9001".into(),
                    in_flight: 0,
                    health: Health {
                        checked: false,
                        healthy: true,
                        consecutive_failures: 0,
                        total_failures: 0,
                        last_error: None,
                    },
                    instances: vec![],
                    totals: Totals::default(),
                    overridden: None,
                    seconds,
                }],
            }],
        }
    }

    /// A router's acknowledgement: a report that it serves `applied`.
    fn ack(fleet: &Fleet, router: &str, instance: &str, applied: u64) {
        fleet.report(report(router, instance, applied, vec![]));
    }

    #[test]
    fn a_window_is_the_sum_over_every_router() {
        let fleet = Fleet::new();
        let v = fleet.upsert(route("shop", 5000));
        let now = unix_now().as_secs();
        for r in ["a", "b", "c"] {
            fleet.report(report(
                r,
                r,
                v,
                vec![counts(now - 1, 10, 3), counts(now, 4, 1)],
            ));
        }
        let w = fleet.window("shop", Role::Candidate, 5);
        assert_eq!(w.requests, 42);
        assert_eq!(w.failed(), 12);
        assert!(fleet.window("shop", Role::Stable, 5).requests == 0);
    }

    #[test]
    fn a_repeated_report_replaces_and_a_successor_instance_adds() {
        let fleet = Fleet::new();
        let v = fleet.upsert(route("shop", 5000));
        let now = unix_now().as_secs();
        fleet.report(report("a", "a1", v, vec![counts(now, 10, 0)]));
        fleet.report(report("a", "a1", v, vec![counts(now, 10, 0)]));
        assert_eq!(
            fleet.window("shop", Role::Candidate, 2).requests,
            10,
            "idempotent"
        );
        fleet.report(report("a", "a1", v, vec![counts(now, 12, 0)]));
        assert_eq!(
            fleet.window("shop", Role::Candidate, 2).requests,
            12,
            "a second grows"
        );
        // An upgraded router (same name, new process) overlapping in the same second.
        fleet.report(report("a", "a2", v, vec![counts(now, 5, 0)]));
        assert_eq!(fleet.window("shop", Role::Candidate, 2).requests, 17);
        assert_eq!(fleet.routers().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_waits_for_live_routers_and_names_the_missing() {
        let fleet = Arc::new(Fleet::new());
        let v0 = fleet.upsert(route("shop", 0));
        ack(&fleet, "a", "a", v0);
        ack(&fleet, "b", "b", v0);
        ack(&fleet, "dead", "dead", v0);
        tokio::time::advance(Duration::from_millis(1500)).await;
        ack(&fleet, "a", "a", v0);
        ack(&fleet, "b", "b", v0);
        tokio::time::advance(Duration::from_millis(600)).await;
        // "dead" has not been heard from for 2.1 s: missing. a and b are live.
        let v1 = fleet.upsert(route("shop", 500));
        let waiter = {
            let fleet = fleet.clone();
            tokio::spawn(async move { fleet.applied(v1, crate::builtin::APPLY_DEADLINE).await })
        };
        tokio::task::yield_now().await;
        ack(&fleet, "a", "a", v1);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "b has not applied it yet");
        ack(&fleet, "b", "b", v1);
        let applied = waiter.await.unwrap();
        assert_eq!(applied.acknowledged, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(applied.missing, vec!["dead".to_string()]);
        assert!(fleet.routers().iter().any(|r| r.id == "dead" && r.missing));
    }

    #[tokio::test(start_paused = true)]
    async fn a_router_that_never_answers_is_named_after_the_deadline() {
        let fleet = Fleet::new();
        let v0 = fleet.upsert(route("shop", 0));
        ack(&fleet, "a", "a", v0);
        ack(&fleet, "slow", "slow", v0);
        let v1 = fleet.upsert(route("shop", 10_000));
        let applied = tokio::join!(fleet.applied(v1, crate::builtin::APPLY_DEADLINE), async {
            ack(&fleet, "a", "a", v1);
        })
        .0;
        assert_eq!(applied.acknowledged, vec!["a".to_string()]);
        assert_eq!(applied.missing, vec!["slow".to_string()]);
    }

    #[test]
    fn a_window_since_counts_what_came_after() {
        let fleet = Fleet::new();
        let v = fleet.upsert(route("shop", 10_000));
        let now = unix_now().as_secs();
        fleet.report(report("a", "a", v, vec![counts(now, 18, 5)]));
        let since = Instant::now() - Duration::from_secs(3);
        let w = fleet
            .window_since("shop", Role::Candidate, 10, since)
            .unwrap();
        assert_eq!((w.requests, w.failed()), (18, 5));
    }

    #[test]
    fn versions_grow_with_every_change() {
        let fleet = Fleet::new();
        let a = fleet.upsert(route("shop", 0));
        let b = fleet.update("shop", |r| r.weight_bp = 100).unwrap();
        assert!(b > a);
        assert_eq!(fleet.snapshot().version, b);
        assert_eq!(fleet.snapshot().routes[0].weight_bp, 100);
        assert!(fleet.update("nope", |_| {}).is_none());
    }
}
