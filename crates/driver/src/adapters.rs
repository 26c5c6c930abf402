//! The production [`AdapterFactory`]: what a plan names is what a launch gets (the
//! command router, the builtin router, HAProxy or nginx for traffic; the fleet's
//! observations, HAProxy's `show stat`, nginx's access log and Prometheus for analysis).

use std::sync::Arc;

use liftoff_plan::{MetricsSpec, RouterSpec};
use liftoff_store::Store;

use crate::fleet::Fleet;
use crate::ports::{
    AdapterFactory, CommandRunner, LaunchSpec, MetricSource, QuerySource, TrafficControl,
};
use crate::{CommandRouter, builtin, haproxy, nginx, prometheus};

pub struct PlanAdapters {
    pub store: Arc<Store>,
    /// `None`: this daemon runs without the builtin router.
    pub fleet: Option<Arc<Fleet>>,
    /// Runs the command router's weight command.
    pub runner: Arc<dyn CommandRunner>,
}

impl AdapterFactory for PlanAdapters {
    fn traffic(&self, launch: &LaunchSpec<'_>) -> Option<Arc<dyn TrafficControl>> {
        let plan = launch.plan;
        match &plan.router {
            Some(RouterSpec::Command { command, timeout }) => Some(Arc::new(CommandRouter {
                command: command.clone(),
                timeout: *timeout,
                dir: launch.workdir.to_path_buf(),
                env: launch.env.to_vec(),
                runner: self.runner.clone(),
                redactor: launch.redactor.clone(),
            })),
            Some(RouterSpec::Builtin(b)) => {
                let fleet = self.fleet.as_ref()?;
                let salt = builtin::salt_for(&self.store, &plan.service);
                match builtin::route_config(&plan.service, b, salt) {
                    Ok(config) => Some(Arc::new(builtin::BuiltinTraffic {
                        fleet: fleet.clone(),
                        store: self.store.clone(),
                        config,
                        plan: plan.clone(),
                        launch_id: launch.id.to_string(),
                    })),
                    Err(e) => {
                        tracing::error!(launch = %launch.id, error = %e, "bad builtin router settings");
                        None
                    }
                }
            }
            Some(RouterSpec::Haproxy(h)) => Some(Arc::new(haproxy::HaproxyTraffic {
                backend: haproxy::Backend::new(h),
            })),
            Some(RouterSpec::Nginx(n)) => Some(Arc::new(nginx::NginxTraffic {
                settings: n.clone(),
            })),
            None => None,
        }
    }

    fn metrics(&self, launch: &LaunchSpec<'_>) -> Option<Arc<dyn MetricSource>> {
        match (&launch.plan.router, &self.fleet) {
            (Some(RouterSpec::Builtin(_)), Some(fleet)) => {
                Some(Arc::new(builtin::BuiltinMetrics {
                    fleet: fleet.clone(),
                    route: launch.plan.service.clone(),
                }))
            }
            (Some(RouterSpec::Haproxy(h)), _) => Some(Arc::new(haproxy::HaproxyMetrics::new(
                haproxy::Backend::new(h),
            ))),
            (Some(RouterSpec::Nginx(n)), _) => Some(Arc::new(nginx::NginxMetrics::new(n))),
            _ => None,
        }
    }

    fn queries(&self, launch: &LaunchSpec<'_>) -> Option<Arc<dyn QuerySource>> {
        match &launch.plan.metrics {
            Some(MetricsSpec::Prometheus { url, timeout }) => Some(Arc::new(
                prometheus::PrometheusSource::new(url.expose(), *timeout),
            )),
            None => None,
        }
    }
}
