//! The Prometheus provider of PromQL gates and triggers: the checks crate's
//! [`InstantQuery`] (the client the checklist's `prometheus` item uses too, with its rule
//! for several series: refused) behind the driver's [`QuerySource`] port.

use std::time::Duration;

use async_trait::async_trait;
use liftoff_checks::prometheus::{InstantQuery, QueryError};

use crate::ports::{PortError, QuerySource};

pub struct PrometheusSource {
    query: InstantQuery,
}

impl PrometheusSource {
    pub fn new(base: &str, timeout: Duration) -> Self {
        Self {
            query: InstantQuery::new(base, timeout),
        }
    }
}

#[async_trait]
impl QuerySource for PrometheusSource {
    async fn query(&self, promql: &str) -> Result<Option<f64>, PortError> {
        self.query.value(promql).await.map_err(|e| match e {
            QueryError::Unavailable(e) => PortError::Unavailable(e.to_string()),
            QueryError::Rejected(e) => PortError::Rejected(e.to_string()),
        })
    }
}
