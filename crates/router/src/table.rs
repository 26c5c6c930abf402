//! The routing table: what the request path reads, through one atomic load.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use http::HeaderName;
use http::uri::Authority;

use crate::split::{Fields, Role, Sticky};
use crate::stats::{Totals, VersionStats};

/// A deployed version's address and its keep-alive connections, shared by every route
/// that names the URL (and kept across table swaps).
pub struct Upstream {
    /// `http://host:port`, as configured.
    pub url: String,
    pub authority: Authority,
    /// Idle keep-alive connections to it.
    pub pool: Arc<crate::pool::Pool>,
}

impl Upstream {
    pub fn new(url: &str) -> Result<Self, crate::RouterError> {
        let bad = |why: &str| crate::RouterError::BadUpstream {
            url: url.to_string(),
            why: why.to_string(),
        };
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| bad("only http:// upstreams are supported"))?;
        let authority_text = rest.trim_end_matches('/');
        if authority_text.contains('/') {
            return Err(bad(
                "an upstream is a scheme, host and port, without a path",
            ));
        }
        let authority: Authority = authority_text.parse().map_err(|_| bad("not a host:port"))?;
        if authority.port_u16().is_none() {
            return Err(bad("give the port explicitly, e.g. http://127.0.0.1:9000"));
        }
        Ok(Self {
            url: format!("http://{authority}"),
            authority,
            pool: Arc::default(),
        })
    }
}

/// One version of one route (its stable or its candidate) and what the router saw of
/// it. Two routes naming the same upstream have a `Version` each: their figures are
/// their own, only the connections are shared. Outlives table swaps (it follows its
/// upstream within the route, whatever its role); in-flight requests hold it, which is
/// what lets a removed version drain.
pub struct Version {
    pub upstream: Arc<Upstream>,
    /// What the route's gates and triggers judge.
    pub stats: VersionStats,
    /// Requests a tester sent here with the override header: shown in `/metrics`,
    /// never judged (unless the route counts them, then they are in `stats`).
    pub overridden: Totals,
    pub in_flight: AtomicI64,
    pub health: crate::health::HealthState,
}

impl Version {
    pub fn new(upstream: Arc<Upstream>) -> Self {
        Self {
            upstream,
            stats: VersionStats::new(),
            overridden: Totals::default(),
            in_flight: AtomicI64::new(0),
            health: crate::health::HealthState::default(),
        }
    }
}

#[derive(Clone)]
pub struct Maintenance {
    pub retry_after_secs: u32,
    pub page: bytes::Bytes,
    /// Clients from these networks go through.
    pub allow: Vec<ipnet::IpNet>,
    /// `name: secret`: a request carrying it goes through.
    pub bypass_header: Option<(HeaderName, String)>,
}

impl Maintenance {
    /// From settings as written: networks like `10.0.0.0/8` or `192.168.1.20`.
    pub fn new(
        retry_after_secs: u32,
        page: &str,
        allow: &[String],
        bypass_header: Option<(&str, &str)>,
    ) -> Result<Self, crate::RouterError> {
        let bad = |what: String| crate::RouterError::BadMaintenance(what);
        let allow = allow
            .iter()
            .map(|n| {
                n.parse::<ipnet::IpNet>()
                    .or_else(|_| n.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| bad(format!("`{n}` is not an address or network")))
            })
            .collect::<Result<_, _>>()?;
        let bypass_header = bypass_header
            .map(|(name, value)| {
                HeaderName::from_bytes(name.as_bytes())
                    .map(|h| (h, value.to_string()))
                    .map_err(|_| bad(format!("`{name}` is not a header name")))
            })
            .transpose()?;
        Ok(Self {
            retry_after_secs,
            page: bytes::Bytes::copy_from_slice(page.as_bytes()),
            allow,
            bypass_header,
        })
    }

    pub fn lets_through<F: Fields + ?Sized>(&self, client: std::net::IpAddr, headers: &F) -> bool {
        let client = client.to_canonical();
        self.allow.iter().any(|net| net.contains(&client))
            || self.bypass_header.as_ref().is_some_and(|(name, secret)| {
                headers
                    .first(name.as_str())
                    .is_some_and(|v| v == secret.as_bytes())
            })
    }
}

pub struct Route {
    pub name: String,
    pub listen: SocketAddr,
    /// Only requests for this Host (port ignored) match, when set.
    pub host: Option<String>,
    pub stable: Arc<Version>,
    pub candidate: Option<Arc<Version>>,
    pub weight_bp: u16,
    pub salt: u64,
    pub sticky: Sticky,
    pub override_header: Option<HeaderName>,
    pub maintenance: Option<Arc<Maintenance>>,
}

impl Route {
    pub fn version(&self, role: Role) -> Option<&Arc<Version>> {
        match role {
            Role::Stable => Some(&self.stable),
            Role::Candidate => self.candidate.as_ref(),
        }
    }

    /// A copy with new settings; versions are shared, not copied.
    pub fn with(&self, change: impl FnOnce(&mut RouteFields)) -> Route {
        let mut f = RouteFields {
            stable: self.stable.clone(),
            candidate: self.candidate.clone(),
            weight_bp: self.weight_bp,
            maintenance: self.maintenance.clone(),
        };
        change(&mut f);
        Route {
            name: self.name.clone(),
            listen: self.listen,
            host: self.host.clone(),
            stable: f.stable,
            candidate: f.candidate,
            weight_bp: f.weight_bp,
            salt: self.salt,
            sticky: self.sticky.clone(),
            override_header: self.override_header.clone(),
            maintenance: f.maintenance,
        }
    }
}

/// What a control-plane change may touch.
pub struct RouteFields {
    pub stable: Arc<Version>,
    pub candidate: Option<Arc<Version>>,
    pub weight_bp: u16,
    pub maintenance: Option<Arc<Maintenance>>,
}

#[derive(Default)]
pub struct Table {
    pub routes: Vec<Arc<Route>>,
}

impl Table {
    /// The route for a request that arrived on `listen` for `host`.
    pub fn find(&self, listen: SocketAddr, host: Option<&str>) -> Option<&Arc<Route>> {
        let host = host.map(|h| {
            h.rsplit_once(':').map_or(h, |(name, port)| {
                if port.bytes().all(|b| b.is_ascii_digit()) {
                    name
                } else {
                    h
                }
            })
        });
        let mut fallback = None;
        for route in self.routes.iter().filter(|r| r.listen == listen) {
            match (&route.host, host) {
                (Some(want), Some(got)) if want.eq_ignore_ascii_case(got) => return Some(route),
                (None, _) => fallback = fallback.or(Some(route)),
                _ => {}
            }
        }
        fallback
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maintenance_bypass_by_network_or_secret_header() {
        let m = Maintenance {
            retry_after_secs: 60,
            page: bytes::Bytes::new(),
            allow: vec!["10.0.0.0/8".parse().unwrap()],
            bypass_header: Some((HeaderName::from_static("x-bypass"), "s3cret".into())),
        };
        let none = http::HeaderMap::new();
        assert!(m.lets_through("10.1.2.3".parse().unwrap(), &none));
        assert!(
            m.lets_through("::ffff:10.0.0.1".parse().unwrap(), &none),
            "v4-mapped clients match v4 nets"
        );
        assert!(!m.lets_through("11.0.0.1".parse().unwrap(), &none));
        let mut h = http::HeaderMap::new();
        h.insert("x-bypass", "s3cret".parse().unwrap());
        assert!(m.lets_through("11.0.0.1".parse().unwrap(), &h));
        h.insert("x-bypass", "guess".parse().unwrap());
        assert!(!m.lets_through("11.0.0.1".parse().unwrap(), &h));
    }

    #[test]
    fn routes_match_host_without_port_and_fall_back_to_hostless() {
        let up = Arc::new(Version::new(Arc::new(
            Upstream::new("http://127.0.0.1:9000").unwrap(),
        )));
        let route = |name: &str, host: Option<&str>| {
            Arc::new(Route {
                name: name.into(),
                listen: "127.0.0.1:8080".parse().unwrap(),
                host: host.map(String::from),
                stable: up.clone(),
                candidate: None,
                weight_bp: 0,
                salt: 1,
                sticky: Sticky::None,
                override_header: None,
                maintenance: None,
            })
        };
        let t = Table {
            routes: vec![route("any", None), route("shop", Some("shop.example"))],
        };
        let at = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(t.find(at, Some("shop.example:8080")).unwrap().name, "shop");
        assert_eq!(t.find(at, Some("SHOP.example")).unwrap().name, "shop");
        assert_eq!(t.find(at, Some("other")).unwrap().name, "any");
        assert!(t.find("127.0.0.1:1".parse().unwrap(), None).is_none());
        assert!(Upstream::new("https://x:1").is_err());
        assert!(Upstream::new("http://x").is_err());
        assert!(Upstream::new("http://x:1/path").is_err());
    }
}
