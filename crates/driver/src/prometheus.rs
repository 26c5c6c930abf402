//! The Prometheus provider: instant PromQL queries over its HTTP API.

use std::time::Duration;

use async_trait::async_trait;

use crate::ports::QuerySource;

pub struct PrometheusSource {
    client: reqwest::Client,
    /// `http://host:9090`, no trailing slash. May hold credentials: never logged.
    base: String,
    timeout: Duration,
}

impl PrometheusSource {
    pub fn new(base: &str, timeout: Duration) -> Self {
        Self {
            client: liftoff_checks::http_client(),
            base: base.trim_end_matches('/').to_string(),
            timeout,
        }
    }
}

#[async_trait]
impl QuerySource for PrometheusSource {
    async fn query(&self, promql: &str) -> Result<Option<f64>, String> {
        let url = format!("{}/api/v1/query", self.base);
        let resp = self
            .client
            .get(&url)
            .query(&[("query", promql)])
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    format!(
                        "Prometheus did not answer within {} ms",
                        self.timeout.as_millis()
                    )
                } else if e.is_connect() {
                    "Prometheus is unreachable".to_string()
                } else {
                    "request to Prometheus failed".to_string()
                }
            })?;
        let status = resp.status();
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(|_| format!("Prometheus answered {status} with no JSON"))?;
        if body["status"] != "success" {
            let error = body["error"].as_str().unwrap_or("unknown error");
            return Err(format!("Prometheus rejected the query: {error}"));
        }
        let data = &body["data"];
        let number = |v: &serde_json::Value| -> Result<f64, String> {
            v[1].as_str()
                .and_then(|s| s.parse::<f64>().ok())
                .ok_or_else(|| "Prometheus returned a value that is not a number".to_string())
        };
        match data["resultType"].as_str() {
            Some("scalar") => number(&data["result"]).map(Some),
            Some("vector") => {
                let series = data["result"].as_array().cloned().unwrap_or_default();
                match series.as_slice() {
                    [] => Ok(None),
                    [one] => number(&one["value"]).map(Some),
                    many => Err(format!(
                        "the query returned {} series; aggregate it to one (e.g. with sum())",
                        many.len()
                    )),
                }
            }
            other => Err(format!(
                "unsupported result type {other:?}: use an instant vector or scalar"
            )),
        }
    }
}
