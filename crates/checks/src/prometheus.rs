//! The one Prometheus instant-query client: the checklist's `prometheus` item and the
//! driver's PromQL gates and triggers both ask through [`InstantQuery`], so they read an
//! answer the same way and fail with the same words.
//!
//! **Several series are refused** ([`Rejected::SeveralSeries`], naming the count), as
//! gates always did; the checklist item used to take the first. Prometheus does not
//! order a vector's series, so "the first" is an arbitrary one: a check or gate could
//! pass on a healthy series while another one is failing, and pass or fail from one run
//! to the next. A threshold compares one number; the query says which with `sum()`,
//! `max()`, or a narrower selector.
//!
//! Errors tell [`Unavailable`] (Prometheus could not answer: no connection, a timeout,
//! a 5xx, a body cut short) from [`Rejected`] (it answered, but not with one number:
//! a bad query, several series, a range vector, a value that is not a number). An empty
//! vector is `Ok(None)`: no data, which callers must never read as a pass.
//!
//! Error text never holds the URL (it may carry credentials) nor the query (it may hold
//! resolved variables): callers name the query by its plan template.

use std::time::Duration;

/// Cap on an answer's body: a query that returns a huge vector is refused, not buffered.
const ANSWER_LIMIT_BYTES: usize = 16 << 20;

/// Instant queries (`GET /api/v1/query`) against one Prometheus server.
#[derive(Clone, Debug)]
pub struct InstantQuery {
    client: reqwest::Client,
    /// `http://host:9090`, no trailing slash. May hold credentials: never shown.
    base: String,
    timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    #[error(transparent)]
    Rejected(#[from] Rejected),
}

/// Prometheus could not answer: asking again later may work.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    #[error("Prometheus is unreachable")]
    Unreachable,
    #[error("Prometheus did not answer within {0} ms")]
    TimedOut(u128),
    #[error("Prometheus answered {0}")]
    ServerError(u16),
    #[error("request to Prometheus failed")]
    Failed,
}

/// Prometheus answered, but not with one number: asking again will not help.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum Rejected {
    #[error("Prometheus rejected the query: {0}")]
    BadQuery(String),
    #[error("Prometheus answered {0} without JSON")]
    NotJson(u16),
    #[error("the query returned {0} series; aggregate it to one (e.g. with sum())")]
    SeveralSeries(usize),
    #[error("the query gives a range vector; give an instant query")]
    RangeVector,
    #[error("unsupported result type {0}: use an instant vector or scalar")]
    ResultType(String),
    #[error("Prometheus returned a value that is not a number: {0}")]
    NotANumber(String),
}

impl InstantQuery {
    pub fn new(base: &str, timeout: Duration) -> Self {
        Self {
            client: crate::http_client(),
            base: base.trim_end_matches('/').to_string(),
            timeout,
        }
    }

    /// The query's one value; `Ok(None)`: an empty vector (no data).
    pub async fn value(&self, promql: &str) -> Result<Option<f64>, QueryError> {
        let url = format!("{}/api/v1/query", self.base);
        let sent = self
            .client
            .get(&url)
            .query(&[("query", promql)])
            .timeout(self.timeout)
            .send()
            .await;
        let mut answer = sent.map_err(|e| self.unavailable(&e))?;
        let status = answer.status();
        if status.is_server_error() {
            return Err(Unavailable::ServerError(status.as_u16()).into());
        }
        let mut body = Vec::new();
        while body.len() < ANSWER_LIMIT_BYTES {
            match answer.chunk().await.map_err(|e| self.unavailable(&e))? {
                Some(chunk) => {
                    let room = ANSWER_LIMIT_BYTES - body.len();
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                None => break,
            }
        }
        let json: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| Rejected::NotJson(status.as_u16()))?;
        Ok(read_answer(&json)?)
    }

    fn unavailable(&self, e: &reqwest::Error) -> Unavailable {
        if e.is_timeout() {
            Unavailable::TimedOut(self.timeout.as_millis())
        } else if e.is_connect() {
            Unavailable::Unreachable
        } else {
            Unavailable::Failed
        }
    }
}

/// The value of an instant query's answer (Prometheus HTTP API JSON): a vector's one
/// series or a scalar. `Ok(None)`: the vector is empty.
pub fn read_answer(answer: &serde_json::Value) -> Result<Option<f64>, Rejected> {
    if answer["status"] != "success" {
        let error = answer["error"].as_str().unwrap_or("no reason given");
        return Err(Rejected::BadQuery(error.to_string()));
    }
    let data = &answer["data"];
    let sample = match data["resultType"].as_str() {
        Some("vector") => match data["result"].as_array().map(Vec::as_slice) {
            None | Some([]) => return Ok(None),
            Some([one]) => &one["value"],
            Some(many) => return Err(Rejected::SeveralSeries(many.len())),
        },
        Some("scalar") => &data["result"],
        Some("matrix") => return Err(Rejected::RangeVector),
        other => return Err(Rejected::ResultType(format!("{other:?}"))),
    };
    // [unix time, "value"]; the value is a string so that NaN and ±Inf survive JSON.
    sample
        .get(1)
        .and_then(serde_json::Value::as_str)
        .and_then(|v| v.parse::<f64>().ok())
        .map(Some)
        .ok_or_else(|| Rejected::NotANumber(sample.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vector(series: &[&str]) -> serde_json::Value {
        let result: Vec<_> = series
            .iter()
            .map(|v| json!({"metric": {}, "value": [1.0, v]}))
            .collect();
        json!({"status": "success", "data": {"resultType": "vector", "result": result}})
    }

    #[test]
    fn several_series_are_refused_with_their_count() {
        assert_eq!(
            read_answer(&vector(&["0.25", "0.5", "1"])),
            Err(Rejected::SeveralSeries(3))
        );
        assert_eq!(
            Rejected::SeveralSeries(3).to_string(),
            "the query returned 3 series; aggregate it to one (e.g. with sum())"
        );
        assert_eq!(read_answer(&vector(&["0.25"])), Ok(Some(0.25)));
    }

    #[test]
    fn a_scalar_is_a_value_and_an_empty_vector_no_data() {
        let answer =
            json!({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "42"]}});
        assert_eq!(read_answer(&answer), Ok(Some(42.0)));
        assert_eq!(read_answer(&vector(&[])), Ok(None));
    }

    #[test]
    fn nan_survives() {
        assert!(read_answer(&vector(&["NaN"])).unwrap().unwrap().is_nan());
    }

    #[test]
    fn errors_range_vectors_and_garbled_samples_are_rejected() {
        let error = json!({"status": "error", "errorType": "bad_data", "error": "parse error"});
        assert_eq!(
            read_answer(&error),
            Err(Rejected::BadQuery("parse error".into()))
        );
        let matrix = json!({"status": "success", "data": {"resultType": "matrix", "result": []}});
        assert_eq!(read_answer(&matrix), Err(Rejected::RangeVector));
        let garbled =
            json!({"status": "success", "data": {"resultType": "scalar", "result": [1.0, 42]}});
        assert!(matches!(
            read_answer(&garbled),
            Err(Rejected::NotANumber(_))
        ));
    }
}
