//! The API client. Every failure is classified into the CLI's exit codes.

use std::path::PathBuf;
use std::time::Duration;

use liftoff_api as api;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::exit::{Exit, Failure};

pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    pub fn new(server: &str, token: Option<String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Self {
            base: server.trim_end_matches('/').to_string(),
            token,
            http,
        }
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        self.send(self.http.get(self.url(path))).await
    }

    /// A GET of a text body (a report), with the token.
    pub async fn get_text(&self, path: &str) -> Result<String, Failure> {
        let mut req = self.http.get(self.url(path));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let bytes = self.send_raw(req).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// A GET outside the API prefix (`/status.json`).
    pub async fn get_public<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, Failure> {
        let mut req = self.http.post(self.url(path)).json(body);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        self.send(req).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}{path}", self.base, api::API_PREFIX)
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T, Failure> {
        let bytes = self.send_raw(req).await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Failure::new(
                Exit::Unreachable,
                format!("unexpected answer from the daemon: {e}"),
            )
        })
    }

    /// The body of a successful answer; an API error as a [`Failure`] with its exit code.
    async fn send_raw(&self, req: reqwest::RequestBuilder) -> Result<bytes::Bytes, Failure> {
        let resp = req.send().await.map_err(|e| {
            Failure::new(
                Exit::Unreachable,
                format!(
                    "cannot reach the liftoff daemon at {}: {}",
                    self.base,
                    root_cause(&e)
                ),
            )
            .hint("start it with `liftoff serve`, or point --server / LIFTOFF_SERVER at it")
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| {
            Failure::new(
                Exit::Unreachable,
                format!("reading the daemon's answer: {e}"),
            )
        })?;
        if status.is_success() {
            return Ok(bytes);
        }
        let body: Option<api::ErrorBody> = serde_json::from_slice(&bytes).ok();
        let (code, message, problems) = match body {
            Some(b) => (b.error.code, b.error.message, b.error.problems),
            None => ("http".into(), format!("HTTP {status}"), Vec::new()),
        };
        let exit = match status.as_u16() {
            401 | 403 => Exit::Unreachable,
            400..=499 => Exit::Invalid,
            _ => Exit::Unreachable,
        };
        let mut failure = Failure::new(exit, format!("{message} ({code})"));
        if status.as_u16() == 401 {
            failure = failure
                .hint("set LIFTOFF_TOKEN, or run where the daemon's state dir is (--state-dir)");
        }
        failure.problems = problems;
        Err(failure)
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// `LIFTOFF_TOKEN`, else the admin token file in the state dir.
pub fn token(state_dir: &std::path::Path) -> Option<String> {
    if let Ok(t) = std::env::var("LIFTOFF_TOKEN")
        && !t.trim().is_empty()
    {
        return Some(t.trim().to_string());
    }
    let path: PathBuf = state_dir.join(liftoff_server::TOKEN_FILE);
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}
