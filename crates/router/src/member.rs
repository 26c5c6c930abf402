//! The router as a member of a fleet: it serves exactly the snapshot it was given
//! (applied with one table swap), tells what it saw per Unix second, hands its sockets
//! to a successor and drains.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::export::{RouteReport, SecondCounts, VersionReport};
use crate::snapshot::{CertificateConfig, HostPolicy, RouteConfig, Snapshot};
use crate::split::Role;
use crate::table::{Route, Table, VersionOverride};
use crate::tls::Terminator;
use crate::{ClientTls, Router, RouterError, forget_unused_versions, version};

/// What a router keeps on disk and gives its successor: the snapshot, and the address
/// each route listening on port 0 got, so a restarted router listens where clients
/// already connect.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Served {
    pub snapshot: Snapshot,
    #[serde(default)]
    pub bound: BTreeMap<String, SocketAddr>,
}

impl Router {
    /// Serve exactly `snapshot`: every route it names with its weight, maintenance and
    /// settings; routes it does not name are removed and their sockets closed. Every
    /// route is checked before anything changes, and all of them change in one table
    /// swap: requests see the old snapshot or the new one, never a mix.
    pub fn apply(&self, snapshot: &Snapshot) -> Result<(), RouterError> {
        struct Prepared<'a> {
            config: &'a RouteConfig,
            sticky: crate::split::Sticky,
            version_override: Option<Arc<VersionOverride>>,
            maintenance: Option<Arc<crate::table::Maintenance>>,
            host_policy: HostPolicy,
            /// Its `ca`, read before anything changes.
            ca: Option<ClientTls>,
        }
        let mut prepared = Vec::with_capacity(snapshot.routes.len());
        for config in &snapshot.routes {
            config.check()?;
            let upstreams = config.upstreams.as_ref();
            prepared.push(Prepared {
                host_policy: upstreams.map(|u| u.host).unwrap_or_default(),
                ca: upstreams
                    .and_then(|u| u.ca.as_deref())
                    .map(|ca| ClientTls::load(&config.name, ca))
                    .transpose()?,
                config,
                sticky: config.sticky.to_sticky()?,
                version_override: config
                    .version_override
                    .as_ref()
                    .map(|o| o.to_override())
                    .transpose()?
                    .map(Arc::new),
                maintenance: config
                    .maintenance
                    .as_ref()
                    .map(|m| m.to_maintenance())
                    .transpose()?
                    .map(Arc::new),
            });
        }

        let mut control = self.control();
        let mut routes = Vec::with_capacity(prepared.len());
        for p in prepared {
            let c = p.config;
            let want = match c.listen.port() {
                0 => control.bound.get(&c.name).copied().unwrap_or(c.listen),
                _ => c.listen,
            };
            let listen = self.listen(&mut control, want)?;
            if c.listen.port() == 0 {
                control.bound.insert(c.name.clone(), listen);
            }
            let urls = c
                .stable
                .iter()
                .chain(c.candidate.iter().flat_map(|v| v.iter()));
            let tls = self.client_tls(&mut control, &c.name, urls, p.ca)?;
            let stable = version(
                &self.shared,
                &mut control,
                &c.name,
                &c.stable.urls(),
                tls.as_ref(),
            )?;
            let candidate = c
                .candidate
                .as_ref()
                .map(|u| version(&self.shared, &mut control, &c.name, &u.urls(), tls.as_ref()))
                .transpose()?;
            routes.push(Arc::new(Route {
                name: c.name.clone(),
                listen,
                host: c.host.clone(),
                stable,
                candidate,
                weight_bp: c.weight_bp,
                salt: c.salt,
                sticky: p.sticky,
                version_override: p.version_override,
                maintenance: p.maintenance,
                limits: Arc::new(match &c.timeouts {
                    Some(t) => t.apply(&self.shared.limits),
                    None => self.shared.limits.clone(),
                }),
                host_policy: p.host_policy,
            }));
        }
        // Certificates are loaded before anything changes; new listeners accept (after
        // the table swap) with theirs in place.
        let tls = self.terminators(snapshot, &routes)?;
        let table = Table { routes };
        forget_unused_versions(&mut control, &table);
        let used: Vec<SocketAddr> = table.routes.iter().map(|r| r.listen).collect();
        self.shared.tls.store(Arc::new(tls));
        self.shared.table.store(Arc::new(table));
        Self::start_listeners(&mut control);

        for c in &snapshot.routes {
            let table = self.shared.table.load();
            let Some(route) = table.routes.iter().find(|r| r.name == c.name) else {
                continue;
            };
            let check = c.health.as_ref().map(|h| h.to_check());
            for v in std::iter::once(&route.stable).chain(route.candidate.as_ref()) {
                self.health_checks(&mut control, &c.name, v, check.as_ref());
            }
        }
        // Sockets no route uses any more are closed; connections on them finish.
        control.listeners.retain(|addr, l| {
            let keep = used.contains(addr);
            if !keep {
                l.task.abort();
            }
            keep
        });
        control
            .bound
            .retain(|name, _| snapshot.routes.iter().any(|r| r.name == *name));
        control.served = Some(snapshot.clone());
        Ok(())
    }

    /// Each listener's TLS certificates: the pairs of every route on it, loaded and
    /// checked (a listener whose pairs did not change keeps its terminator, which
    /// reloads replaced files itself). The routes sharing a listener all terminate
    /// TLS, or none does.
    fn terminators(
        &self,
        snapshot: &Snapshot,
        routes: &[Arc<Route>],
    ) -> Result<HashMap<SocketAddr, Arc<Terminator>>, RouterError> {
        /// A listener's pairs, and its routes with whether each terminates TLS.
        type Wanted<'a> = (Vec<CertificateConfig>, Vec<(&'a str, bool)>);
        let mut wanted: BTreeMap<SocketAddr, Wanted<'_>> = BTreeMap::new();
        for (config, route) in snapshot.routes.iter().zip(routes) {
            let (pairs, names) = wanted.entry(route.listen).or_default();
            names.push((&config.name, config.tls.is_some()));
            for pair in config.tls.iter().flat_map(|t| &t.certificates) {
                if !pairs.contains(pair) {
                    pairs.push(pair.clone());
                }
            }
        }
        let current = self.shared.tls.load();
        let mut out = HashMap::new();
        for (listen, (pairs, names)) in wanted {
            let Some((route, _)) = names.iter().find(|(_, tls)| *tls) else {
                continue;
            };
            if let Some((plain, _)) = names.iter().find(|(_, tls)| !*tls) {
                return Err(RouterError::Tls {
                    route: route.to_string(),
                    source: crate::tls::TlsError::Config(format!(
                        "it terminates TLS on {listen}, which route `{plain}` serves without"
                    )),
                });
            }
            let terminator = match current.get(&listen) {
                Some(t) if t.sources == pairs => t.clone(),
                _ => Arc::new(Terminator::load(&pairs).map_err(|source| RouterError::Tls {
                    route: route.to_string(),
                    source,
                })?),
            };
            out.insert(listen, terminator);
        }
        Ok(out)
    }

    /// What this router serves, for its state file and its successor.
    pub fn served(&self) -> Option<Served> {
        let control = self.control();
        control.served.clone().map(|snapshot| Served {
            snapshot,
            bound: control.bound.clone(),
        })
    }

    /// Remember where port-0 routes were bound before applying a saved snapshot.
    pub fn remember_bound(&self, bound: &BTreeMap<String, SocketAddr>) {
        self.control().bound.extend(bound.clone());
    }

    /// Sockets inherited from a predecessor: `apply` listens on them instead of binding.
    pub fn adopt_listeners(&self, listeners: Vec<(SocketAddr, std::net::TcpListener)>) {
        self.control().adopted.extend(listeners);
    }

    /// Copies of every listening socket, for a successor.
    pub fn handoff_listeners(&self) -> Vec<(SocketAddr, std::net::TcpListener)> {
        self.control()
            .listeners
            .iter()
            .filter_map(|(addr, l)| l.socket.try_clone().ok().map(|s| (*addr, s)))
            .collect()
    }

    pub fn listening(&self) -> Vec<SocketAddr> {
        let mut v: Vec<_> = self.control().listeners.keys().copied().collect();
        v.sort();
        v
    }

    /// The stats clock: Unix seconds.
    pub fn current_second(&self) -> u64 {
        self.shared.second()
    }

    /// Per-second observations of every (route, version), for the seconds in `ranges`
    /// (inclusive) that saw anything, with health and totals.
    pub fn export(&self, ranges: &[(u64, u64)]) -> Vec<RouteReport> {
        let now = self.current_second();
        let now_ms = self.shared.now_ms();
        let oldest = now.saturating_sub(crate::stats::WINDOW_SECS - 2);
        let table = self.shared.table.load();
        table
            .routes
            .iter()
            .map(|r| RouteReport {
                route: r.name.clone(),
                listen: r.listen,
                weight_bp: r.weight_bp,
                versions: [Role::Stable, Role::Candidate]
                    .into_iter()
                    .filter_map(|role| {
                        let v = r.version(role)?;
                        let apart = r.version_override.as_ref().is_some_and(|o| !o.count);
                        Some(VersionReport {
                            role,
                            url: v.label(),
                            in_flight: v.in_flight.load(Relaxed),
                            health: v.health(),
                            instances: v.instance_reports(now_ms),
                            totals: v.stats.totals(),
                            overridden: apart.then(|| v.overridden.snapshot()),
                            seconds: ranges
                                .iter()
                                .flat_map(|&(from, to)| from.max(oldest)..=to)
                                .filter_map(|s| v.stats.second(s))
                                .collect::<Vec<SecondCounts>>(),
                        })
                    })
                    .collect(),
            })
            .collect()
    }

    /// Stop accepting, let open connections finish (keep-alive clients are told
    /// `Connection: close` with their next response, idle ones are closed after 500 ms,
    /// HTTP/2 clients get GOAWAY), and return once none is open or `deadline` has
    /// passed; returns how many were still open (the process then exits, closing them).
    pub fn drain(&self, deadline: Duration) -> usize {
        {
            let mut control = self.control();
            for (_, l) in control.listeners.drain() {
                l.task.abort();
            }
        }
        self.shared.draining.store(true, Relaxed);
        self.shared.drain.cancel();
        let until = Instant::now() + deadline;
        loop {
            let open = self.shared.open_connections.load(Relaxed);
            if open <= 0 || Instant::now() >= until {
                return open.max(0) as usize;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
