use std::time::Duration;

use async_trait::async_trait;

use crate::ports::{HttpProbe, PortError};

pub struct ReqwestProbe {
    client: reqwest::Client,
}

impl ReqwestProbe {
    pub fn new() -> Self {
        Self {
            client: liftoff_checks::http_client(),
        }
    }
}

impl Default for ReqwestProbe {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl HttpProbe for ReqwestProbe {
    /// Any status is an answer (the step judges it); only no answer is an error.
    async fn get(&self, url: &str, timeout: Duration) -> Result<u16, PortError> {
        match self.client.get(url).timeout(timeout).send().await {
            Ok(resp) => Ok(resp.status().as_u16()),
            Err(e) if e.is_timeout() => Err(PortError::Unavailable(format!(
                "no answer within {}",
                crate::traffic::humantime_short(timeout)
            ))),
            Err(e) if e.is_connect() => Err(PortError::Unavailable(
                "connection refused or unreachable".into(),
            )),
            Err(e) if e.is_builder() => Err(PortError::Rejected(without_url(&e))),
            Err(e) => Err(PortError::Unavailable(without_url(&e))),
        }
    }
}

/// reqwest errors embed the URL, which may hold a secret from `${VAR}`.
fn without_url(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    if let Some(url) = e.url() {
        msg = msg.replace(url.as_str(), "<url>");
    }
    msg
}
