//! The builtin router as a traffic port: a launch's `traffic` steps move the weight of
//! the route named after its service in the fleet's snapshot, wait until every live
//! router serves it, and remember the split in the store so a restarted daemon gives
//! routers the same snapshot again.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use liftoff_plan::{BuiltinRouter, HealthSpec, Sticky, UpstreamHost, UpstreamsSpec, Weight};
use liftoff_router::snapshot::{
    CertificateConfig, HealthConfig, HostPolicy, Instances, MaintenanceConfig, OverrideConfig,
    RouteConfig, StickyConfig, TimeoutsConfig, TlsConfig, UpstreamsConfig,
};
use liftoff_store::{RouteRow, Store};
use tokio_util::sync::CancellationToken;

use crate::fleet::Fleet;
use crate::ports::{PortError, TrafficControl};

/// How long a change waits for the routers: every live one acknowledges in well under
/// a second; a daemon that has just started waits for its routers to reconnect.
pub const APPLY_DEADLINE: Duration = Duration::from_secs(5);

pub struct BuiltinTraffic {
    pub fleet: Arc<Fleet>,
    pub store: Arc<Store>,
    /// The route as the plan configures it (weight and maintenance are set per change).
    pub config: RouteConfig,
    pub plan: Arc<liftoff_plan::Plan>,
    pub launch_id: String,
}

impl BuiltinTraffic {
    fn settings(&self) -> Option<&BuiltinRouter> {
        match &self.plan.router {
            Some(liftoff_plan::RouterSpec::Builtin(b)) => Some(b),
            _ => None,
        }
    }

    fn row(&self, weight_bp: u16, maintenance: bool) -> RouteRow {
        RouteRow {
            name: self.config.name.clone(),
            launch_id: self.launch_id.clone(),
            weight_bp,
            salt: self.config.salt,
            maintenance,
            updated_at: jiff::Timestamp::now().to_string(),
        }
    }

    async fn save(&self, row: RouteRow) {
        let store = self.store.clone();
        // The split is published either way; failing to remember it only matters after
        // a restart, and the journal still records what the launch applied.
        match tokio::task::spawn_blocking(move || store.save_route(&row)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "could not persist the route's split"),
            Err(e) => tracing::error!(error = %e, "could not persist the route's split"),
        }
    }

    fn listen(&self) -> String {
        self.fleet
            .listen_of(&self.config.name)
            .unwrap_or(self.config.listen)
            .to_string()
    }
}

fn instances(urls: &[liftoff_plan::Text]) -> Instances {
    Instances(urls.iter().map(|u| u.expose().to_string()).collect())
}

/// A plan's `router: { kind: builtin }` as a route of the snapshot, with no traffic on
/// the candidate and no maintenance page. Checked as a router will check it.
pub fn route_config(service: &str, b: &BuiltinRouter, salt: u64) -> Result<RouteConfig, String> {
    let config = RouteConfig {
        name: service.to_string(),
        listen: b.listen,
        host: b.host.clone(),
        stable: instances(&b.stable),
        candidate: Some(instances(&b.candidate)),
        weight_bp: 0,
        salt,
        sticky: match &b.sticky {
            Sticky::None => StickyConfig::None,
            Sticky::Header(h) => StickyConfig::Header { name: h.clone() },
            Sticky::Cookie(c) => StickyConfig::Cookie { name: c.clone() },
            Sticky::ClientIp => StickyConfig::ClientIp,
        },
        version_override: b.version_override.as_ref().map(|o| OverrideConfig {
            header: o.header.clone(),
            secret: o.secret.as_ref().map(|s| s.expose().to_string()),
            allow: o.allow.clone(),
            count: o.count,
        }),
        timeouts: Some(TimeoutsConfig {
            connect_ms: Some(b.timeouts.connect.as_millis() as u64),
            response_ms: Some(b.timeouts.response.as_millis() as u64),
            idle_ms: b.timeouts.idle.map(|d| d.as_millis() as u64),
        }),
        // Written only when used: a router of an earlier release still reads the rest.
        tls: (!b.tls.is_empty()).then(|| TlsConfig {
            certificates: b
                .tls
                .iter()
                .map(|p| CertificateConfig {
                    cert: p.cert.clone(),
                    key: p.key.clone(),
                })
                .collect(),
        }),
        upstreams: (b.upstreams != UpstreamsSpec::default()).then(|| UpstreamsConfig {
            ca: b.upstreams.ca.as_ref().map(|(path, _)| path.clone()),
            host: match b.upstreams.host {
                UpstreamHost::Client => HostPolicy::Client,
                UpstreamHost::Instance => HostPolicy::Instance,
            },
        }),
        health: b.health.as_ref().map(|h: &HealthSpec| HealthConfig {
            path: h.path.clone(),
            interval_ms: h.interval.as_millis() as u64,
            timeout_ms: h.timeout.as_millis() as u64,
            healthy_threshold: h.healthy_threshold,
            unhealthy_threshold: h.unhealthy_threshold,
        }),
        maintenance: None,
    };
    let mut checked = config.clone();
    checked.maintenance = Some(maintenance(b));
    checked.check().map_err(|e| e.to_string())?;
    Ok(config)
}

/// The maintenance page the plan configures.
pub fn maintenance(b: &BuiltinRouter) -> MaintenanceConfig {
    let m = &b.maintenance;
    MaintenanceConfig {
        retry_after_secs: u32::try_from(m.retry_after.as_secs()).unwrap_or(u32::MAX),
        page: m.page.clone(),
        allow: m.allow.clone(),
        bypass_header: m
            .bypass_header
            .as_ref()
            .map(|(name, value)| (name.clone(), value.expose().to_string())),
    }
}

/// The salt a service's route keeps for life: the stored one, or a fresh one.
pub fn salt_for(store: &Store, service: &str) -> u64 {
    match store.route(service) {
        Ok(Some(row)) => row.salt,
        _ => {
            let mut bytes = [0u8; 8];
            let _ = getrandom::fill(&mut bytes);
            u64::from_le_bytes(bytes)
        }
    }
}

#[async_trait]
impl TrafficControl for BuiltinTraffic {
    async fn set_weight(
        &self,
        weight: Weight,
        _cancel: &CancellationToken,
    ) -> Result<String, PortError> {
        let weight_bp = weight.basis_points();
        let current = self.fleet.route(&self.config.name);
        let mut config = self.config.clone();
        config.weight_bp = weight_bp;
        // The maintenance switch belongs to the route, not to the weight.
        config.maintenance = current.and_then(|r| r.maintenance);
        let maintenance_on = config.maintenance.is_some();
        let version = self.fleet.upsert(config);
        // Timed from the publication: the save runs while the routers apply it.
        let (_, applied) = tokio::join!(
            self.save(self.row(weight_bp, maintenance_on)),
            self.fleet.applied(version, APPLY_DEADLINE)
        );
        if applied.acknowledged.is_empty() && weight_bp > 0 {
            // Moving users to the candidate is only done once a router does it; moving
            // them back (0%) is published and applies as routers come back.
            return Err(PortError::Unavailable(format!(
                "no router applied the split within {} s ({})",
                APPLY_DEADLINE.as_secs(),
                applied.describe()
            )));
        }
        Ok(format!(
            "candidate weight set to {weight}% (builtin router on {}; {})",
            self.listen(),
            applied.describe()
        ))
    }

    async fn set_maintenance(&self, on: bool) -> Result<String, PortError> {
        let settings = self
            .settings()
            .ok_or_else(|| PortError::Rejected("the plan has no builtin router".into()))?
            .clone();
        let page = on.then(|| maintenance(&settings));
        let version = match self
            .fleet
            .update(&self.config.name, |r| r.maintenance = page.clone())
        {
            Some(v) => v,
            None => {
                // A route is published on its first weight change; maintenance may come
                // first.
                let mut config = self.config.clone();
                config.maintenance = page;
                self.fleet.upsert(config)
            }
        };
        let weight_bp = self
            .fleet
            .route(&self.config.name)
            .map_or(0, |r| r.weight_bp);
        let (store, row) = (self.store.clone(), self.row(weight_bp, on));
        // Saving a route keeps its stored switch; the switch is saved by itself.
        let saved = tokio::task::spawn_blocking(move || {
            store.save_route(&row)?;
            store.set_route_maintenance(&row.name, on, &row.updated_at)
        })
        .await;
        if !matches!(saved, Ok(Ok(_))) {
            tracing::error!(route = %self.config.name, "could not persist the maintenance switch");
        }
        let applied = self.fleet.applied(version, APPLY_DEADLINE).await;
        let state = if on {
            "on: clients get the maintenance page"
        } else {
            "off"
        };
        Ok(format!(
            "maintenance {state} (builtin router on {}; {})",
            self.listen(),
            applied.describe()
        ))
    }
}

/// The fleet's observations of a route, as samples for gates and triggers.
pub struct BuiltinMetrics {
    pub fleet: Arc<Fleet>,
    pub route: String,
}

#[async_trait]
impl crate::ports::MetricSource for BuiltinMetrics {
    async fn sample(
        &self,
        version: liftoff_plan::condition::Version,
        window: std::time::Duration,
        since: std::time::Instant,
    ) -> Result<liftoff_analysis::Sample, PortError> {
        let role = match version {
            liftoff_plan::condition::Version::Candidate => liftoff_router::Role::Candidate,
            liftoff_plan::condition::Version::Stable => liftoff_router::Role::Stable,
        };
        let secs = window.as_secs().max(1);
        let w = self
            .fleet
            .window_since(&self.route, role, secs, since)
            .ok_or_else(|| {
                PortError::Rejected(format!("no route `{}` is published", self.route))
            })?;
        let health = self.fleet.health(&self.route, role);
        Ok(sample(&w, health.map_or(0, |h| h.consecutive_failures)))
    }

    fn observed(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.fleet.observed())
    }
}

/// A window as analysis sees it. Requests the client botched or left are the client's:
/// they count neither as failures nor toward the request total (else a flood of them
/// would dilute a failing candidate's error rate and fill `min_requests`).
pub fn sample(w: &liftoff_router::Window, health_failures: u32) -> liftoff_analysis::Sample {
    let client_aborts = w.errors[liftoff_router::ErrorSource::ClientAbort as usize];
    liftoff_analysis::Sample {
        window_secs: w.span_secs(),
        requests: w.requests.saturating_sub(client_aborts),
        failed: w.failed(),
        latency: w
            .latency
            .iter()
            .enumerate()
            .map(|(i, n)| {
                (
                    liftoff_router::stats::bucket_upper_micros(i) as f64 / 1e6,
                    *n,
                )
            })
            .collect(),
        health_failures,
    }
}
