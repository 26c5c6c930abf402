//! The builtin router as a traffic port: a launch's `traffic` steps move the weight of
//! the route named after its service, and every applied split is remembered in the
//! store so a restarted daemon serves it again before anything else happens.

use std::sync::Arc;

use async_trait::async_trait;
use liftoff_plan::{BuiltinRouter, HealthSpec, Sticky, Weight};
use liftoff_router::{HealthCheck, Maintenance, RouteSpec, Router, VersionOverride};
use liftoff_store::{RouteRow, Store};
use tokio_util::sync::CancellationToken;

use crate::ports::TrafficControl;

pub struct BuiltinTraffic {
    pub router: Arc<Router>,
    pub store: Arc<Store>,
    pub spec: RouteSpec,
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
}

/// The router's view of a plan's `router: { kind: builtin }`.
pub fn route_spec(service: &str, b: &BuiltinRouter, salt: u64) -> Result<RouteSpec, String> {
    let header = |name: &str| {
        http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("`{name}` is not a valid header name"))
    };
    Ok(RouteSpec {
        name: service.to_string(),
        listen: b.listen,
        host: b.host.clone(),
        stable: b.stable.expose().to_string(),
        candidate: Some(b.candidate.expose().to_string()),
        sticky: match &b.sticky {
            Sticky::None => liftoff_router::Sticky::None,
            Sticky::Header(h) => liftoff_router::Sticky::Header(header(h)?),
            Sticky::Cookie(c) => liftoff_router::Sticky::Cookie(c.clone()),
            Sticky::ClientIp => liftoff_router::Sticky::ClientIp,
        },
        version_override: b
            .version_override
            .as_ref()
            .map(|o| {
                let secret = o.secret.as_ref().map(|s| s.expose());
                VersionOverride::new(&o.header, secret, &o.allow, o.count)
                    .map_err(|e| e.to_string())
            })
            .transpose()?,
        health: b.health.as_ref().map(|h: &HealthSpec| HealthCheck {
            path: h.path.clone(),
            interval: h.interval,
            timeout: h.timeout,
            healthy_threshold: h.healthy_threshold,
            unhealthy_threshold: h.unhealthy_threshold,
        }),
        salt: Some(salt),
    })
}

/// The router's maintenance settings from the plan's.
pub fn maintenance(b: &BuiltinRouter) -> Result<Maintenance, String> {
    let m = &b.maintenance;
    let secs = u32::try_from(m.retry_after.as_secs()).unwrap_or(u32::MAX);
    let bypass = m
        .bypass_header
        .as_ref()
        .map(|(name, value)| (name.as_str(), value.expose()));
    Maintenance::new(secs, &m.page, &m.allow, bypass).map_err(|e| e.to_string())
}

/// Switch a route's maintenance page and remember the switch.
pub fn apply_maintenance(
    router: &Router,
    store: &Store,
    service: &str,
    b: &BuiltinRouter,
    on: bool,
) -> Result<(), String> {
    let setting = if on { Some(maintenance(b)?) } else { None };
    router
        .set_maintenance(service, setting)
        .map_err(|e| e.to_string())?;
    store
        .set_route_maintenance(service, on, &jiff::Timestamp::now().to_string())
        .map_err(|e| e.to_string())
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
    ) -> Result<String, String> {
        let name = self.spec.name.clone();
        let listen = self
            .router
            .upsert_route(self.spec.clone())
            .map_err(|e| e.to_string())?;
        self.router
            .set_weight(&name, weight.basis_points())
            .map_err(|e| e.to_string())?;
        let row = RouteRow {
            name,
            launch_id: self.launch_id.clone(),
            weight_bp: weight.basis_points(),
            salt: self.spec.salt.unwrap_or_default(),
            maintenance: false,
            updated_at: jiff::Timestamp::now().to_string(),
        };
        let store = self.store.clone();
        // The split is live either way; failing to remember it only matters after a
        // restart, and the journal still records the weight the launch applied.
        match tokio::task::spawn_blocking(move || store.save_route(&row)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "could not persist the route's split"),
            Err(e) => tracing::error!(error = %e, "could not persist the route's split"),
        }
        Ok(format!(
            "candidate weight set to {weight}% (builtin router on {listen})"
        ))
    }

    async fn set_maintenance(&self, on: bool) -> Result<String, String> {
        let settings = self
            .settings()
            .ok_or("the plan has no builtin router")?
            .clone();
        let listen = self
            .router
            .upsert_route(self.spec.clone())
            .map_err(|e| e.to_string())?;
        let (router, store, spec) = (self.router.clone(), self.store.clone(), self.spec.clone());
        let launch_id = self.launch_id.clone();
        tokio::task::spawn_blocking(move || {
            // A route is saved on its first weight change; make sure it exists before
            // its switch is remembered.
            if store
                .route(&spec.name)
                .map_err(|e| e.to_string())?
                .is_none()
            {
                let row = RouteRow {
                    name: spec.name.clone(),
                    launch_id,
                    weight_bp: 0,
                    salt: spec.salt.unwrap_or_default(),
                    maintenance: false,
                    updated_at: jiff::Timestamp::now().to_string(),
                };
                store.save_route(&row).map_err(|e| e.to_string())?;
            }
            apply_maintenance(&router, &store, &spec.name, &settings, on)
        })
        .await
        .map_err(|e| e.to_string())??;
        let state = if on {
            "on: clients get the maintenance page"
        } else {
            "off"
        };
        Ok(format!("maintenance {state} (builtin router on {listen})"))
    }
}

/// The builtin router's observations of a route, as samples for gates and triggers.
pub struct BuiltinMetrics {
    pub router: Arc<Router>,
    pub route: String,
}

#[async_trait]
impl crate::ports::MetricSource for BuiltinMetrics {
    async fn sample(
        &self,
        version: liftoff_plan::condition::Version,
        window: std::time::Duration,
        since: std::time::Instant,
    ) -> Result<liftoff_analysis::Sample, String> {
        let role = match version {
            liftoff_plan::condition::Version::Candidate => liftoff_router::Role::Candidate,
            liftoff_plan::condition::Version::Stable => liftoff_router::Role::Stable,
        };
        let secs = window.as_secs().max(1);
        let w = self
            .router
            .window_since(&self.route, role, secs, since)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("route `{}` has no {} upstream", self.route, version.label()))?;
        let health = self.router.health(&self.route, role);
        Ok(liftoff_analysis::Sample {
            window_secs: w.span_secs(),
            requests: w.requests,
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
            health_failures: health.map_or(0, |h| h.consecutive_failures),
        })
    }
}
