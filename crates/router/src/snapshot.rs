//! The routes a router serves, as the daemon gives them: a versioned snapshot of every
//! route, applied atomically (one table swap) and kept in the router's state file so a
//! restarted router serves the same split before it has talked to the daemon.
//!
//! A compatibility boundary (a router and a daemon of different builds talk during an
//! upgrade; a state file outlives the binary that wrote it): plain data, unknown fields
//! refused, converted explicitly to the router's own types.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::RouterError;
use crate::health::HealthCheck;
use crate::split::Sticky;
use crate::table::{Maintenance, VersionOverride};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Grows with every change the daemon makes (even across daemon restarts: it is
    /// at least the daemon's clock in milliseconds). A router applies any snapshot whose
    /// version differs from its own: the daemon is the authority.
    pub version: u64,
    pub routes: Vec<RouteConfig>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub name: String,
    pub listen: SocketAddr,
    #[serde(default)]
    pub host: Option<String>,
    pub stable: Instances,
    #[serde(default)]
    pub candidate: Option<Instances>,
    /// The candidate's share in basis points (0..=10000).
    pub weight_bp: u16,
    pub salt: u64,
    pub sticky: StickyConfig,
    /// Who may pick a version by header; nobody when absent.
    #[serde(default)]
    pub version_override: Option<OverrideConfig>,
    #[serde(default)]
    pub health: Option<HealthConfig>,
    /// Serving the maintenance page when set.
    #[serde(default)]
    pub maintenance: Option<MaintenanceConfig>,
    /// The route's own timeouts; the router's defaults where absent.
    #[serde(default)]
    pub timeouts: Option<TimeoutsConfig>,
    /// Terminate TLS on the route's listener (every route sharing it must).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// How the router talks to the route's instances; the defaults where absent.
    #[serde(default)]
    pub upstreams: Option<UpstreamsConfig>,
}

/// How the router talks to a route's instances: `https://` ones are verified against
/// `ca` (PEM, on the router's host) or the system's roots; `host` says what `Host`
/// they are sent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamsConfig {
    #[serde(default)]
    pub ca: Option<String>,
    #[serde(default)]
    pub host: HostPolicy,
}

/// The `Host` an instance is sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostPolicy {
    /// The client's, as it came (the instance serves the public name).
    #[default]
    Client,
    /// The instance's own `host[:port]` from its URL (a PaaS routes by it); the
    /// client's goes in `X-Forwarded-Host`.
    Instance,
}

/// A listener's certificates: the client's SNI picks one ([`crate::tls`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub certificates: Vec<CertificateConfig>,
}

/// PEM files on the router's host: a certificate chain (leaf first) and its key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    pub cert: String,
    pub key: String,
}

/// Per-route timeouts: connecting to an instance, waiting for the response head (or
/// for the upstream to take more of a request body), and a response body going quiet.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsConfig {
    #[serde(default)]
    pub connect_ms: Option<u64>,
    #[serde(default)]
    pub response_ms: Option<u64>,
    #[serde(default)]
    pub idle_ms: Option<u64>,
}

impl TimeoutsConfig {
    /// `base` with this route's timeouts in place.
    pub fn apply(&self, base: &crate::Limits) -> crate::Limits {
        let ms = |v: Option<u64>, d: Duration| v.map_or(d, |ms| Duration::from_millis(ms.max(1)));
        crate::Limits {
            connect_timeout: ms(self.connect_ms, base.connect_timeout),
            request_timeout: ms(self.response_ms, base.request_timeout),
            stream_idle_timeout: self
                .idle_ms
                .map(|v| Duration::from_millis(v.max(1)))
                .or(base.stream_idle_timeout),
            ..base.clone()
        }
    }
}

/// A version's instances: written as one URL when there is one (what routers of the
/// first fleet release read), as a list otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instances(pub Vec<String>);

impl Instances {
    pub fn one(url: impl Into<String>) -> Self {
        Instances(vec![url.into()])
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        self.0.iter().map(String::as_str)
    }

    pub fn urls(&self) -> Vec<&str> {
        self.iter().collect()
    }
}

impl Serialize for Instances {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => s.serialize_str(one),
            many => many.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Instances {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            One(String),
            Many(Vec<String>),
        }
        Ok(match Written::deserialize(d)? {
            Written::One(url) => Instances(vec![url]),
            Written::Many(urls) => Instances(urls),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StickyConfig {
    None,
    Header { name: String },
    Cookie { name: String },
    ClientIp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    pub path: String,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceConfig {
    pub retry_after_secs: u32,
    pub page: String,
    /// Networks like `10.0.0.0/8`, or addresses, that go through.
    #[serde(default)]
    pub allow: Vec<String>,
    /// `[name, secret]`: a request carrying it goes through.
    #[serde(default)]
    pub bypass_header: Option<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideConfig {
    pub header: String,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub allow: Vec<String>,
    /// Whether overridden requests count toward gates and triggers.
    #[serde(default)]
    pub count: bool,
}

impl OverrideConfig {
    pub fn to_override(&self) -> Result<VersionOverride, RouterError> {
        VersionOverride::new(
            &self.header,
            self.secret.as_deref(),
            &self.allow,
            self.count,
        )
    }
}

impl RouteConfig {
    /// Every check a router makes before applying the route.
    pub fn check(&self) -> Result<(), RouterError> {
        if self.weight_bp > 10_000 {
            return Err(RouterError::BadWeight(self.weight_bp));
        }
        if self.weight_bp > 0 && self.candidate.is_none() {
            return Err(RouterError::NoCandidate {
                route: self.name.clone(),
            });
        }
        for url in self
            .stable
            .iter()
            .chain(self.candidate.iter().flat_map(Instances::iter))
        {
            crate::table::Upstream::new(url)?;
        }
        for version in std::iter::once(&self.stable).chain(&self.candidate) {
            if version.0.is_empty() {
                return Err(RouterError::BadUpstream {
                    url: String::new(),
                    why: format!(
                        "route `{}`: a version needs at least one instance",
                        self.name
                    ),
                });
            }
        }
        self.sticky.to_sticky()?;
        if let Some(o) = &self.version_override {
            o.to_override()?;
        }
        if let Some(m) = &self.maintenance {
            m.to_maintenance()?;
        }
        Ok(())
    }
}

impl StickyConfig {
    pub fn to_sticky(&self) -> Result<Sticky, RouterError> {
        Ok(match self {
            StickyConfig::None => Sticky::None,
            StickyConfig::Header { name } => Sticky::Header(header_name(name)?),
            StickyConfig::Cookie { name } => Sticky::Cookie(name.clone()),
            StickyConfig::ClientIp => Sticky::ClientIp,
        })
    }

    pub fn from_sticky(sticky: &Sticky) -> Self {
        match sticky {
            Sticky::None => StickyConfig::None,
            Sticky::Header(h) => StickyConfig::Header {
                name: h.as_str().to_string(),
            },
            Sticky::Cookie(c) => StickyConfig::Cookie { name: c.clone() },
            Sticky::ClientIp => StickyConfig::ClientIp,
        }
    }
}

impl HealthConfig {
    pub fn to_check(&self) -> HealthCheck {
        HealthCheck {
            path: self.path.clone(),
            interval: Duration::from_millis(self.interval_ms.max(10)),
            timeout: Duration::from_millis(self.timeout_ms.max(1)),
            healthy_threshold: self.healthy_threshold.max(1),
            unhealthy_threshold: self.unhealthy_threshold.max(1),
        }
    }

    pub fn from_check(check: &HealthCheck) -> Self {
        Self {
            path: check.path.clone(),
            interval_ms: check.interval.as_millis() as u64,
            timeout_ms: check.timeout.as_millis() as u64,
            healthy_threshold: check.healthy_threshold,
            unhealthy_threshold: check.unhealthy_threshold,
        }
    }
}

impl MaintenanceConfig {
    pub fn to_maintenance(&self) -> Result<Maintenance, RouterError> {
        Maintenance::new(
            self.retry_after_secs,
            &self.page,
            &self.allow,
            self.bypass_header
                .as_ref()
                .map(|(n, v)| (n.as_str(), v.as_str())),
        )
    }
}

fn header_name(name: &str) -> Result<http::HeaderName, RouterError> {
    http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| RouterError::BadHeader(name.to_string()))
}
