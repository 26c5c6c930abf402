//! Judges the world a launch runs in: checklist items (HTTP, TCP, TLS, disk, command,
//! PostgreSQL, Redis, Prometheus, file), smoke requests, and database backups,
//! restores and verify queries for `migrate` steps.
//!
//! Every function here returns a result for humans (`evidence`) and never panics on bad
//! input or a misbehaving peer. Evidence never holds a resolved secret: it names things
//! by their plan template (`${DATABASE_URL}`), and error text from libraries passes
//! through [`Env::redact`] before it is returned.

mod items;
pub mod migrate;
pub mod prometheus;
mod redact;
mod tls;

use std::path::PathBuf;
use std::sync::Once;
use std::time::Duration;

pub use items::{run_item, run_items};
pub use redact::{REDACTED, Redactor};

/// What items need from their surroundings.
#[derive(Clone, Debug)]
pub struct Env {
    /// Relative paths in the plan (files, disks, command `dir`) resolve against this.
    pub workdir: PathBuf,
    /// Environment of `command` items (the plan's variables and liftoff's own).
    pub vars: Vec<(String, String)>,
    /// The plan's Prometheus (`metrics.url`, resolved) and its query timeout.
    pub prometheus: Option<(String, Duration)>,
    /// Removes secret values from text that came from outside (errors, bodies, output).
    pub redactor: Redactor,
}

impl Env {
    pub fn redact(&self, text: &str) -> String {
        self.redactor.redact(text)
    }
}

/// The result of one checklist item or smoke request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemResult {
    pub passed: bool,
    /// One line for humans: "certificate for api.example.com expires in 187 days",
    /// "GET http://.../health → 503 in 12ms, expected 200".
    pub evidence: String,
    pub duration: Duration,
    /// For requests: what was sent (`GET http://...`), what was expected, what came back
    /// (status, latency, the start of the body). Shown by status for failed smoke tests.
    pub request: Option<String>,
    pub expected: Option<String>,
    pub actual: Option<String>,
}

impl ItemResult {
    pub fn pass(evidence: impl Into<String>) -> Self {
        Self::new(true, evidence)
    }

    pub fn fail(evidence: impl Into<String>) -> Self {
        Self::new(false, evidence)
    }

    fn new(passed: bool, evidence: impl Into<String>) -> Self {
        Self {
            passed,
            evidence: evidence.into(),
            duration: Duration::ZERO,
            request: None,
            expected: None,
            actual: None,
        }
    }
}

/// rustls needs a process-wide crypto provider before any TLS client is built (reqwest's
/// included); liftoff uses ring. Idempotent; call before building HTTP clients.
pub fn init_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err: another provider is already installed, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// An HTTP client for checks, waits and smoke tests: http and https (system roots).
/// On a host without root certificates (a bare container) it still serves http, and
/// an https request fails to verify its server, with that reason; the daemon starts.
pub fn http_client() -> reqwest::Client {
    init_crypto();
    let builder = || reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    match builder().build() {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!(error = %e, "no usable root certificates on this host: https requests of checks, waits and smoke tests will fail to verify their servers");
            builder()
                .tls_certs_only(std::iter::empty())
                .build()
                .unwrap_or_default()
        }
    }
}
