//! `router:`: what moves traffic. A command that sets the weight, the user's HAProxy
//! (runtime API address, backend, the two servers), the user's nginx (the include file
//! liftoff writes, its upstream, the instances, the access log), or liftoff's builtin router: its
//! address, each version's instances, stickiness, the override header, health checks,
//! timeouts and the maintenance page. Decoding only; routing is
//! `liftoff-router`'s job.

use crate::decode::{Decoder, Fields, Node, location};
use crate::model::{
    BuiltinRouter, HaproxyRouter, HaproxySocket, HealthSpec, Known, MaintenanceSpec, NginxRouter,
    OverrideSpec, RouteTimeouts, RouterSpec, Sticky, Text, TlsPair, UpstreamHost, UpstreamsSpec,
    defaults,
};
use crate::schema;

pub(crate) fn decode_router(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<RouterSpec> {
    let mut f = dec.fields(node, &schema::ROUTER)?;
    let kind_node = f.require(dec, "kind");
    let kind = kind_node.and_then(|k| dec.string(k, "router.kind"));
    // Keys of another kind are mistakes, not options.
    for key in schema::ROUTER.keys.iter().filter(|k| **k != "kind") {
        let wrong = kind
            .as_deref()
            .and_then(|k| schema::router_kind_takes(k, key))
            .is_some_and(|takes| !takes);
        if wrong && f.take(key).is_some() {
            let owners: Vec<String> = ["builtin", "command", "haproxy", "nginx"]
                .iter()
                .filter(|k| schema::router_kind_takes(k, key) == Some(true))
                .map(|k| format!("`kind: {k}`"))
                .collect();
            let owners = match owners.split_last() {
                Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
                _ => owners.concat(),
            };
            dec.error(
                f.key_location(key).unwrap_or(f.at),
                format!("router: `{key}` applies to {owners} routers only"),
            );
        }
    }
    let spec = match kind.as_deref() {
        Some("command") => {
            let command = f
                .require(dec, "command")
                .and_then(|c| dec.text(c, "router.command"));
            let timeout = match f.take("timeout") {
                Some(t) => dec.duration(t, "router.timeout"),
                None => Some(defaults::ROUTER_COMMAND_TIMEOUT),
            };
            if let Some(c) = &command
                && !c.template().contains("{weight}")
            {
                dec.error_hint(
                        kind_node.map_or(f.at, location),
                        "router.command never mentions `{weight}`",
                        "the command must receive the weight, as `{weight}` or by reading $LIFTOFF_WEIGHT; add `{weight}` to make that explicit",
                    );
            }
            Some(RouterSpec::Command {
                command: command?,
                timeout: timeout?,
            })
        }
        Some("builtin") => decode_builtin(dec, &mut f).map(|b| RouterSpec::Builtin(Box::new(b))),
        Some("haproxy") => decode_haproxy(dec, &mut f).map(RouterSpec::Haproxy),
        Some("nginx") => decode_nginx(dec, &mut f).map(RouterSpec::Nginx),
        Some(other @ "kubernetes") => {
            dec.error_hint(
                kind_node.map_or(f.at, location),
                format!("router.kind `{other}` is not available in this version of liftoff"),
                "use `kind: builtin` (liftoff's own router), `kind: haproxy`, `kind: nginx` or `kind: command` with a script",
            );
            None
        }
        Some(other) => {
            dec.error_hint(
                kind_node.map_or(f.at, location),
                format!("router.kind: unknown router kind `{other}`"),
                "known kinds: builtin, command, haproxy, nginx",
            );
            None
        }
        None => None,
    };
    f.finish(dec);
    spec
}

/// `kind: haproxy`: the runtime API's address, and the backend and servers it changes.
fn decode_haproxy(dec: &mut Decoder<'_>, f: &mut Fields<'_, '_>) -> Option<HaproxyRouter> {
    let socket = f.require(dec, "socket").and_then(|n| {
        let given = dec.text(n, "router.socket")?;
        let text = given.expose().to_string();
        let socket = match given.known() {
            // `lint`: checked as far as the variables left unset allow.
            Known::Prefix(_) => given
                .known()
                .may_start_with(&["/", "tcp:"])
                .then(|| HaproxySocket::Unix(text.clone())),
            Known::All(_) => match text.strip_prefix("tcp:") {
                Some(addr) if valid_host_port(addr) => Some(HaproxySocket::Tcp(addr.to_string())),
                Some(_) => None,
                None if text.starts_with('/') => Some(HaproxySocket::Unix(text.clone())),
                None => None,
            },
        };
        if socket.is_none() {
            dec.error_hint(
                location(n),
                format!("router.socket: `{text}` is neither an absolute path nor `tcp:HOST:PORT`"),
                "HAProxy's runtime API, as its `stats socket` line says: e.g. `/run/haproxy/admin.sock` or `tcp:127.0.0.1:9999` (with `level admin`)",
            );
        }
        socket
    });
    let mut name = |key: &'static str| {
        let n = f.require(dec, key)?;
        let what = format!("router.{key}");
        let text = dec.string(n, &what)?;
        let valid = !text.is_empty()
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b));
        if !valid {
            dec.error_hint(
                location(n),
                format!("{what}: `{text}` is not an HAProxy name"),
                "a backend or server name as haproxy.cfg writes it: letters, digits, `.`, `_`, `-`, `:`",
            );
            return None;
        }
        Some(text)
    };
    let backend = name("backend");
    let stable = name("stable");
    let candidate = name("candidate");
    if let (Some(s), Some(c)) = (&stable, &candidate)
        && s == c
    {
        dec.error(
            f.key_location("candidate").unwrap_or(f.at),
            format!("router.candidate: `{c}` is also the stable server"),
        );
        return None;
    }
    let sticky_header = match f.take("sticky") {
        None => Some(None),
        Some(n) => match decode_sticky(dec, n)? {
            Sticky::Header(h) => Some(Some(h)),
            Sticky::None => Some(None),
            Sticky::Cookie(_) | Sticky::ClientIp => {
                dec.error_hint(
                    location(n),
                    "router.sticky: HAProxy routers keep users by `header` only",
                    "`sticky: { header: X-User-Id }`, with `balance hdr(X-User-Id)` and `hash-type consistent` in the backend",
                );
                None
            }
        },
    };
    Some(HaproxyRouter {
        socket: socket?,
        backend: backend?,
        stable: stable?,
        candidate: candidate?,
        sticky_header: sticky_header?,
    })
}

/// `kind: nginx`: the file liftoff writes, the upstream in it, the instances, the
/// access log liftoff reads, and how to run nginx.
fn decode_nginx(dec: &mut Decoder<'_>, f: &mut Fields<'_, '_>) -> Option<NginxRouter> {
    let hint = "the daemon writes and reads it on its own host, whatever the plan's directory";
    let mut path = |key: &'static str, required: bool| -> Option<Option<String>> {
        let node = if required {
            Some(f.require(dec, key)?)
        } else {
            f.take(key)
        };
        let Some(n) = node else {
            return Some(None);
        };
        let what = format!("router.{key}");
        let given = dec.text(n, &what)?;
        let text = given.expose().to_string();
        if !given.known().may_start_with(&["/"]) {
            dec.error_hint(
                location(n),
                format!("{what}: `{text}` is not an absolute path"),
                hint,
            );
            return None;
        }
        Some(Some(text))
    };
    let include = path("include", true).map(Option::unwrap_or_default);
    let access_log = path("access_log", true).map(Option::unwrap_or_default);
    let config = path("config", false);
    let nginx = match f.take("nginx") {
        None => Some("nginx".to_string()),
        Some(n) => dec.string(n, "router.nginx").filter(|s| {
            let ok = !s.is_empty();
            if !ok {
                dec.error(location(n), "router.nginx: an empty command");
            }
            ok
        }),
    };
    let upstream = f.require(dec, "upstream").and_then(|n| {
        let text = dec.string(n, "router.upstream")?;
        if text.is_empty()
            || !text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        {
            dec.error_hint(
                location(n),
                format!("router.upstream: `{text}` is not an nginx upstream name"),
                "letters, digits, `_`, `-`, `.`: the name `proxy_pass http://NAME;` uses",
            );
            return None;
        }
        Some(text)
    });
    let mut seen: Vec<String> = Vec::new();
    let mut addresses = |key: &'static str| {
        let node = f.require(dec, key)?;
        let nodes = dec.one_or_more(
            node,
            &format!("router.{key}"),
            "give at least one instance, e.g. `[10.0.0.11:9000, 10.0.0.12:9000]`",
        )?;
        let mut out = Vec::with_capacity(nodes.len());
        let mut ok = true;
        for n in nodes {
            let Some(given) = dec.text(n, &format!("router.{key}")) else {
                ok = false;
                continue;
            };
            let addr = given.expose().to_string();
            // Checked whole once its variables are set (`lint` leaves them unset).
            let checked = matches!(given.known(), Known::All(_));
            let plain = addr
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-:[]".contains(&b));
            if checked && (!plain || !valid_host_port(&addr)) {
                dec.error_hint(
                    location(n),
                    format!("router.{key}: `{addr}` is not `host:port`"),
                    "an instance as nginx's `server` line takes it, e.g. `10.0.0.11:9000` or `[::1]:9000`",
                );
                ok = false;
            } else if seen.contains(&addr) {
                dec.error_hint(
                    location(n),
                    format!("router.{key}: `{addr}` is listed twice"),
                    "liftoff tells the versions apart by nginx's `$upstream_addr`: each address belongs to one version",
                );
                ok = false;
            } else {
                seen.push(addr.clone());
                out.push(addr);
            }
        }
        ok.then_some(out)
    };
    let stable = addresses("stable");
    let candidate = addresses("candidate");
    let sticky_header = match f.take("sticky") {
        None => Some(None),
        Some(n) => match decode_sticky(dec, n)? {
            Sticky::Header(h) => Some(Some(h)),
            Sticky::None => Some(None),
            Sticky::Cookie(_) | Sticky::ClientIp => {
                dec.error_hint(
                    location(n),
                    "router.sticky: nginx routers keep users by `header` only",
                    "`sticky: { header: X-User-Id }`: liftoff writes `hash $http_x_user_id consistent;` in the upstream",
                );
                None
            }
        },
    };
    Some(NginxRouter {
        include: include?,
        upstream: upstream?,
        stable: stable?,
        candidate: candidate?,
        sticky_header: sticky_header?,
        access_log: access_log?,
        nginx: nginx?,
        config: config?,
    })
}

/// `host:port` with a port, the host a name or an address (`[::1]:9999` for IPv6).
fn valid_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    }
}

fn decode_builtin(dec: &mut Decoder<'_>, f: &mut Fields<'_, '_>) -> Option<BuiltinRouter> {
    let listen = f.require(dec, "listen").and_then(|n| {
        let text = dec.string(n, "router.listen")?;
        match text.parse::<std::net::SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                dec.error_hint(
                    location(n),
                    format!("router.listen: `{text}` is not an address:port"),
                    "e.g. `127.0.0.1:8080` or `0.0.0.0:80`",
                );
                None
            }
        }
    });
    let host = f.take("host").and_then(|n| dec.string(n, "router.host"));
    // One URL, or a list of them: the version's instances.
    let mut upstream = |key: &'static str| {
        let node = f.require(dec, key)?;
        let nodes = dec.one_or_more(
            node,
            &format!("router.{key}"),
            "give at least one instance, e.g. `[http://10.0.0.11:9000, http://10.0.0.12:9000]`",
        )?;
        let mut urls: Vec<Text> = Vec::with_capacity(nodes.len());
        let mut ok = true;
        for n in nodes {
            let Some(url) = dec.text(n, key) else {
                ok = false;
                continue;
            };
            if let Err(why) = check_upstream_url(&url) {
                dec.error_hint(
                    location(n),
                    format!("router.{key}: `{url}` {why}"),
                    "e.g. `http://127.0.0.1:9001`",
                );
                ok = false;
            } else if urls.iter().any(|u| same_instance(u, &url)) {
                dec.error(
                    location(n),
                    format!("router.{key}: `{url}` is listed twice"),
                );
                ok = false;
            }
            urls.push(url);
        }
        ok.then_some(urls)
    };
    let stable = upstream("stable");
    let candidate = upstream("candidate");
    let sticky = match f.take("sticky") {
        None => Some(Sticky::None),
        Some(n) => decode_sticky(dec, n),
    };
    let version_override = match f.take("override") {
        None => Some(None),
        Some(n) => decode_override(dec, n).map(Some),
    };
    let health = f.take("health").map(|n| decode_health(dec, n));
    let timeouts = match f.take("timeouts") {
        None => Some(RouteTimeouts::default()),
        Some(n) => decode_timeouts(dec, n),
    };
    let maintenance = match f.take("maintenance") {
        Some(n) => decode_maintenance(dec, n),
        None => Some(MaintenanceSpec::default()),
    };
    let tls = match f.take("tls") {
        Some(n) => decode_tls(dec, n),
        None => Some(Vec::new()),
    };
    let upstreams = match f.take("upstreams") {
        Some(n) => decode_upstreams(dec, n),
        None => Some(UpstreamsSpec::default()),
    };
    Some(BuiltinRouter {
        listen: listen?,
        host,
        stable: stable?,
        candidate: candidate?,
        sticky: sticky?,
        version_override: version_override?,
        health: match health {
            Some(h) => Some(h?),
            None => None,
        },
        maintenance: maintenance?,
        timeouts: timeouts?,
        tls: tls?,
        upstreams: upstreams?,
    })
}

/// `router.tls`: one `{ cert, key }`, or a list of them (SNI picks one).
fn decode_tls(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<Vec<TlsPair>> {
    let items = match &node.data {
        saphyr::YamlData::Sequence(_) => dec.sequence(node, "router.tls")?,
        _ => std::slice::from_ref(node),
    };
    if items.is_empty() {
        dec.error_hint(
            location(node),
            "router.tls: an empty list",
            "give `{ cert: /etc/liftoff/tls/shop.pem, key: /etc/liftoff/tls/shop.key }`, or leave `tls` out for plain HTTP",
        );
        return None;
    }
    let mut pairs = Vec::with_capacity(items.len());
    let mut ok = true;
    for item in items {
        let Some(mut f) = dec.fields(item, &schema::TLS) else {
            ok = false;
            continue;
        };
        let cert = f
            .require(dec, "cert")
            .and_then(|n| Some((absolute_path(dec, n, "router.tls.cert")?, location(n))));
        let key = f
            .require(dec, "key")
            .and_then(|n| Some((absolute_path(dec, n, "router.tls.key")?, location(n))));
        f.finish(dec);
        match (cert, key) {
            (Some((cert, cert_at)), Some((key, key_at))) => pairs.push(TlsPair {
                cert,
                key,
                cert_at,
                key_at,
            }),
            _ => ok = false,
        }
    }
    ok.then_some(pairs)
}

fn decode_upstreams(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<UpstreamsSpec> {
    let mut f = dec.fields(node, &schema::UPSTREAMS)?;
    let ca = match f.take("ca") {
        None => Some(None),
        Some(n) => absolute_path(dec, n, "router.upstreams.ca").map(|p| Some((p, location(n)))),
    };
    let host = match f.take("host") {
        None => Some(UpstreamHost::Client),
        Some(n) => match dec.string(n, "router.upstreams.host").as_deref() {
            Some("client") => Some(UpstreamHost::Client),
            Some("instance") => Some(UpstreamHost::Instance),
            Some(other) => {
                dec.error_hint(
                    location(n),
                    format!("router.upstreams.host: unknown policy `{other}`"),
                    "`client` sends the client's Host (the default); `instance` sends each instance's own host, as PaaS platforms route by it",
                );
                None
            }
            None => None,
        },
    };
    f.finish(dec);
    Some(UpstreamsSpec {
        ca: ca?,
        host: host?,
    })
}

/// A file the router process reads on its own host (which may not be where the plan
/// is): an absolute path.
fn absolute_path(dec: &mut Decoder<'_>, node: &Node<'_>, what: &str) -> Option<String> {
    let path = dec.string(node, what)?;
    if !path.starts_with('/') {
        dec.error_hint(
            location(node),
            format!("{what}: `{path}` is not an absolute path"),
            "the router process reads it on its own host, whatever the plan's directory; e.g. `/etc/liftoff/tls/shop.pem`",
        );
        return None;
    }
    Some(path)
}

fn decode_maintenance(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<MaintenanceSpec> {
    let mut f = dec.fields(node, &schema::MAINTENANCE)?;
    let retry_after = match f.take("retry_after") {
        Some(n) => dec.duration(n, "router.maintenance.retry_after"),
        None => Some(defaults::MAINTENANCE_RETRY_AFTER),
    };
    let page = match f.take("page") {
        Some(n) => dec.string(n, "router.maintenance.page"),
        None => Some(defaults::MAINTENANCE_PAGE.to_string()),
    };
    let allow = match f.take("allow") {
        Some(n) => decode_networks(dec, n, "router.maintenance.allow"),
        None => Some(Vec::new()),
    };
    let bypass_header = match f.take("bypass_header") {
        None => Some(None),
        Some(n) => dec.fields(n, &schema::BYPASS_HEADER).and_then(|mut b| {
            let name = b.require(dec, "name").and_then(|h| {
                let name = dec.string(h, "router.maintenance.bypass_header.name")?;
                header_name(dec, h, name)
            });
            let value = b
                .require(dec, "value")
                .and_then(|v| dec.text(v, "router.maintenance.bypass_header.value"));
            b.finish(dec);
            Some(Some((name?, value?)))
        }),
    };
    f.finish(dec);
    Some(MaintenanceSpec {
        retry_after: retry_after?,
        page: page?,
        allow: allow?,
        bypass_header: bypass_header?,
    })
}

/// `router.override`: who may pick a version by header.
fn decode_override(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<OverrideSpec> {
    let mut f = dec.fields(node, &schema::OVERRIDE)?;
    let header = match f.take("header") {
        Some(n) => dec
            .string(n, "router.override.header")
            .and_then(|h| header_name(dec, n, h)),
        None => Some(defaults::OVERRIDE_HEADER.to_string()),
    };
    let secret = match f.take("secret") {
        None => Some(None),
        Some(n) => dec.text(n, "router.override.secret").and_then(|secret| {
            // Never quoted in the message: it is a secret.
            let visible = |s: &str| s.bytes().all(|b| b.is_ascii_graphic());
            let valid = match secret.known() {
                Known::All(s) => !s.is_empty() && visible(s),
                Known::Prefix(s) => visible(s),
            };
            if !valid {
                dec.error_hint(
                    location(n),
                    "router.override.secret: must be non-empty visible ASCII, without spaces",
                    "it is sent in a header value, after `candidate;`",
                );
                return None;
            }
            Some(Some(secret))
        }),
    };
    let allow = match f.take("allow") {
        Some(n) => decode_networks(dec, n, "router.override.allow"),
        None => Some(Vec::new()),
    };
    let count = match f.take("count") {
        Some(n) => dec.boolean(n, "router.override.count"),
        None => Some(false),
    };
    let neither = matches!(secret, Some(None)) && allow.as_ref().is_some_and(Vec::is_empty);
    if neither {
        dec.error_hint(
            f.at,
            "router.override: give `secret`, `allow` or both",
            "without either, any client could send its requests to the candidate; e.g. `secret: \"${TESTER_TOKEN}\"`, and testers send `X-Liftoff-Version: candidate;<secret>`",
        );
    }
    f.finish(dec);
    if neither {
        return None;
    }
    Some(OverrideSpec {
        header: header?,
        secret: secret?,
        allow: allow?,
        count: count?,
    })
}

/// A list of client addresses or CIDR networks (an `allow`).
fn decode_networks(dec: &mut Decoder<'_>, node: &Node<'_>, what: &str) -> Option<Vec<String>> {
    let items = dec.sequence(node, what)?;
    let mut nets = Some(Vec::new());
    for item in items {
        match dec.string(item, what) {
            Some(net) if valid_network(&net) => {
                if let Some(nets) = nets.as_mut() {
                    nets.push(net);
                }
            }
            Some(net) => {
                dec.error_hint(
                    location(item),
                    format!("{what}: `{net}` is not an address or CIDR network"),
                    "e.g. `10.0.0.0/8` or `192.168.1.20`",
                );
                nets = None;
            }
            None => nets = None,
        }
    }
    nets
}

fn valid_network(s: &str) -> bool {
    let (addr, prefix) = s.split_once('/').map_or((s, None), |(a, p)| (a, Some(p)));
    let Ok(ip) = addr.parse::<std::net::IpAddr>() else {
        return false;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    prefix.is_none_or(|p| p.parse::<u8>().is_ok_and(|p| p <= max))
}

/// Two instance URLs that name one address (a trailing slash aside). Unresolved ones
/// (linting without variables) are never the same.
fn same_instance(a: &Text, b: &Text) -> bool {
    match (a.known(), b.known()) {
        (Known::All(a), Known::All(b)) => a.trim_end_matches('/') == b.trim_end_matches('/'),
        _ => false,
    }
}

fn check_upstream_url(url: &Text) -> Result<(), &'static str> {
    let url = match url.known() {
        Known::All(s) => s,
        Known::Prefix(_) if url.known().may_start_with(&["http://", "https://"]) => return Ok(()),
        Known::Prefix(s) => s,
    };
    let (rest, https) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(rest), _) => (rest, false),
        (_, Some(rest)) => (rest, true),
        _ => return Err("is not an http:// or https:// URL"),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') {
        return Err("has a path; give only scheme, host and port");
    }
    if rest.is_empty() {
        return Err("has no host");
    }
    // https instances (a PaaS service's URL) are on 443 unless they say otherwise.
    let port = match rest.rsplit_once(':') {
        Some((_, p)) if !p.ends_with(']') => p,
        _ if https => return Ok(()),
        _ => return Err("has no port"),
    };
    port.parse::<u16>()
        .map(|_| ())
        .map_err(|_| "has no valid port")
}

fn header_name(dec: &mut Decoder<'_>, node: &Node<'_>, name: String) -> Option<String> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if valid {
        Some(name.to_ascii_lowercase())
    } else {
        dec.error(
            location(node),
            format!("`{name}` is not a valid HTTP header name"),
        );
        None
    }
}

fn decode_sticky(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<Sticky> {
    let mut f = dec.fields(node, &schema::STICKY)?;
    let header = f.take("header");
    let cookie = f.take("cookie");
    let client_ip = f.take("client_ip");
    let given = [header.is_some(), cookie.is_some(), client_ip.is_some()]
        .iter()
        .filter(|g| **g)
        .count();
    let at = f.at;
    f.finish(dec);
    if given != 1 {
        dec.error_hint(
            at,
            "router.sticky: give exactly one of `header`, `cookie`, `client_ip`",
            "e.g. `sticky: { header: X-User-Id }`",
        );
        return None;
    }
    if let Some(n) = header {
        let name = dec.string(n, "router.sticky.header")?;
        return header_name(dec, n, name).map(Sticky::Header);
    }
    if let Some(n) = cookie {
        return dec.string(n, "router.sticky.cookie").map(Sticky::Cookie);
    }
    match client_ip.and_then(|n| dec.boolean(n, "router.sticky.client_ip")) {
        Some(true) => Some(Sticky::ClientIp),
        Some(false) => Some(Sticky::None),
        None => None,
    }
}

fn decode_timeouts(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<RouteTimeouts> {
    let mut f = dec.fields(node, &schema::TIMEOUTS)?;
    let defaults = RouteTimeouts::default();
    let mut duration = |key: &'static str, what: &str| match f.take(key) {
        Some(n) => dec.duration(n, what).map(Some),
        None => Some(None),
    };
    let connect = duration("connect", "router.timeouts.connect");
    let response = duration("response", "router.timeouts.response");
    let idle = duration("idle", "router.timeouts.idle");
    f.finish(dec);
    Some(RouteTimeouts {
        connect: connect?.unwrap_or(defaults.connect),
        response: response?.unwrap_or(defaults.response),
        idle: idle?,
    })
}

fn decode_health(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<HealthSpec> {
    let mut f = dec.fields(node, &schema::HEALTH)?;
    let path = match f.take("path") {
        Some(n) => dec.string(n, "router.health.path").and_then(|p| {
            if p.starts_with('/') {
                Some(p)
            } else {
                dec.error(
                    location(n),
                    format!("router.health.path: `{p}` must start with `/`"),
                );
                None
            }
        }),
        None => Some(defaults::HEALTH_PATH.to_string()),
    };
    let mut duration = |key: &'static str, what: &str, default| match f.take(key) {
        Some(n) => dec.duration(n, what),
        None => Some(default),
    };
    let interval = duration(
        "interval",
        "router.health.interval",
        defaults::HEALTH_INTERVAL,
    );
    let timeout = duration("timeout", "router.health.timeout", defaults::HEALTH_TIMEOUT);
    let mut threshold = |key: &'static str, what: &str, default| match f.take(key) {
        Some(n) => dec.integer(n, what, 1, 100).map(|v| v as u32),
        None => Some(default),
    };
    let healthy_threshold = threshold(
        "healthy_threshold",
        "router.health.healthy_threshold",
        defaults::HEALTHY_THRESHOLD,
    );
    let unhealthy_threshold = threshold(
        "unhealthy_threshold",
        "router.health.unhealthy_threshold",
        defaults::UNHEALTHY_THRESHOLD,
    );
    f.finish(dec);
    Some(HealthSpec {
        path: path?,
        interval: interval?,
        timeout: timeout?,
        healthy_threshold: healthy_threshold?,
        unhealthy_threshold: unhealthy_threshold?,
    })
}
