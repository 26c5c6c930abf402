//! Which version serves a request. Pure: no I/O, no clock.
//!
//! A request with a sticky key goes to the candidate iff
//! `xxh3(key, seed = route salt) mod 10000 < weight in basis points`. The bucket of a
//! key never changes, so while the weight only grows, nobody moves back from the
//! candidate to stable.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName};

/// A request's fields, however they were parsed: hyper's map (HTTP/2) or the
/// parser's slice (HTTP/1, read in place).
pub trait Fields {
    /// The values of the fields called `name` (given in lowercase), in order.
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]>;

    fn first<'a>(&'a self, name: &'a str) -> Option<&'a [u8]> {
        self.values(name).next()
    }
}

impl Fields for HeaderMap {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> {
        self.get_all(name).into_iter().map(|v| v.as_bytes())
    }
}

impl Fields for [httparse::Header<'_>] {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> {
        self.iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Stable,
    Candidate,
}

impl Role {
    pub fn label(self) -> &'static str {
        match self {
            Role::Stable => "stable",
            Role::Candidate => "candidate",
        }
    }

    pub fn other(self) -> Role {
        match self {
            Role::Stable => Role::Candidate,
            Role::Candidate => Role::Stable,
        }
    }
}

/// What keeps a user on one version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sticky {
    /// A per-request random draw.
    None,
    Header(HeaderName),
    Cookie(String),
    ClientIp,
}

/// The bucket (0..10000) of a sticky key under a route's salt.
pub fn bucket(salt: u64, key: &[u8]) -> u16 {
    (xxhash_rust::xxh3::xxh3_64_with_seed(key, salt) % 10_000) as u16
}

pub struct SplitRule<'a> {
    pub weight_bp: u16,
    pub salt: u64,
    pub sticky: &'a Sticky,
    pub has_candidate: bool,
}

pub fn choose<F: Fields + ?Sized>(rule: &SplitRule<'_>, headers: &F, client: IpAddr) -> Role {
    if !rule.has_candidate {
        return Role::Stable;
    }
    match rule.weight_bp {
        0 => return Role::Stable,
        10_000.. => return Role::Candidate,
        _ => {}
    }
    let draw = match sticky_key(rule.sticky, headers, client) {
        Some(key) => bucket(rule.salt, key.as_ref()),
        None => fastrand::u16(0..10_000),
    };
    if draw < rule.weight_bp {
        Role::Candidate
    } else {
        Role::Stable
    }
}

enum Key<'h> {
    Borrowed(&'h [u8]),
    Ip([u8; 16]),
}

impl AsRef<[u8]> for Key<'_> {
    fn as_ref(&self) -> &[u8] {
        match self {
            Key::Borrowed(b) => b,
            Key::Ip(b) => b,
        }
    }
}

fn sticky_key<'h, F: Fields + ?Sized>(
    sticky: &'h Sticky,
    headers: &'h F,
    client: IpAddr,
) -> Option<Key<'h>> {
    match sticky {
        Sticky::None => None,
        Sticky::Header(name) => headers.first(name.as_str()).map(Key::Borrowed),
        Sticky::Cookie(name) => headers
            .values("cookie")
            .flat_map(|v| v.split(|b| *b == b';'))
            .find_map(|pair| {
                let pair = pair.trim_ascii();
                let (k, v) = pair.split_at(pair.iter().position(|b| *b == b'=')?);
                (k == name.as_bytes()).then(|| Key::Borrowed(&v[1..]))
            }),
        Sticky::ClientIp => Some(Key::Ip(match client {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header;

    fn rule(weight_bp: u16, sticky: &Sticky) -> SplitRule<'_> {
        SplitRule {
            weight_bp,
            salt: 42,
            sticky,
            has_candidate: true,
        }
    }

    fn user(id: usize) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-user-id", format!("user-{id}").parse().unwrap());
        h
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn ten_thousand_users_split_ten_percent_and_nobody_moves_back_as_weight_grows() {
        let sticky = Sticky::Header(HeaderName::from_static("x-user-id"));
        let users: Vec<HeaderMap> = (0..10_000).map(user).collect();
        let at = |bp| -> Vec<bool> {
            users
                .iter()
                .map(|h| choose(&rule(bp, &sticky), h, IP) == Role::Candidate)
                .collect()
        };
        let ten = at(1_000);
        let share = ten.iter().filter(|c| **c).count() as f64 / 10_000.0;
        assert!((0.09..=0.11).contains(&share), "10% ± 1%, got {share}");
        let twenty_five = at(2_500);
        let fifty = at(5_000);
        for i in 0..users.len() {
            assert!(!ten[i] || twenty_five[i], "user {i} moved back at 25%");
            assert!(!twenty_five[i] || fifty[i], "user {i} moved back at 50%");
        }
        assert_eq!(
            at(1_000),
            ten,
            "the same key gets the same version at a fixed weight"
        );
    }

    #[test]
    fn cookie_and_client_ip_keys_are_sticky_too() {
        let cookie = Sticky::Cookie("uid".into());
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "theme=dark; uid=abc123; x=1".parse().unwrap(),
        );
        let first = choose(&rule(5_000, &cookie), &h, IP);
        assert!((0..50).all(|_| choose(&rule(5_000, &cookie), &h, IP) == first));
        assert_eq!(
            sticky_key(&cookie, &h, IP).map(|k| k.as_ref().to_vec()),
            Some(b"abc123".to_vec())
        );
        let ip = Sticky::ClientIp;
        let first = choose(&rule(5_000, &ip), &HeaderMap::new(), IP);
        assert!((0..50).all(|_| choose(&rule(5_000, &ip), &HeaderMap::new(), IP) == first));
    }

    #[test]
    fn extremes_are_exact() {
        let none = Sticky::None;
        let no_key = HeaderMap::new();
        assert!((0..1000).all(|_| choose(&rule(0, &none), &no_key, IP) == Role::Stable));
        assert!((0..1000).all(|_| choose(&rule(10_000, &none), &no_key, IP) == Role::Candidate));
        let mut r = rule(10_000, &none);
        r.has_candidate = false;
        assert_eq!(choose(&r, &no_key, IP), Role::Stable, "no candidate");
    }
}
