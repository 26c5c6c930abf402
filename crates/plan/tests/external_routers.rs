//! The routers liftoff drives but does not run — `kind: haproxy` (its runtime API) and
//! `kind: nginx` (an include, a reload and an access log): what the plan accepts, and
//! what it refuses because the router cannot give it.

use liftoff_plan::{HaproxyRouter, HaproxySocket, NginxRouter, Plan, RouterSpec, parse};

fn env(_: &str) -> Option<String> {
    None
}

fn ok(src: &str) -> Plan {
    parse(src, &env).unwrap_or_else(|e| panic!("expected a valid plan:\n{}", e.render("p")))
}

fn errors(src: &str) -> String {
    match parse(src, &env) {
        Ok(plan) => panic!("expected errors, got {plan:?}"),
        Err(e) => e.render("p"),
    }
}

fn plan(router: &str, rest: &str) -> String {
    format!("version: 1\nname: n\nservice: s\nrouter:\n{router}steps:\n  - traffic: 5%\n{rest}")
}

// kind: haproxy

const HAPROXY: &str = "  kind: haproxy\n  socket: /run/haproxy/admin.sock\n  backend: app\n  stable: blue\n  candidate: green\n";

#[test]
fn a_haproxy_router_names_socket_backend_and_servers() {
    let p = ok(&plan(
        &format!("{HAPROXY}  sticky: {{ header: X-User-Id }}\n"),
        "  - analyze: { for: 1m, gates: [\"error_rate < 1%\", \"requests >= 10\", \"rps > 1\"] }\nrollback:\n  on: [\"error_rate > 10% over 5s\"]\n",
    ));
    let Some(RouterSpec::Haproxy(h)) = &p.router else {
        panic!("{:?}", p.router)
    };
    assert_eq!(
        h,
        &HaproxyRouter {
            socket: HaproxySocket::Unix("/run/haproxy/admin.sock".into()),
            backend: "app".into(),
            stable: "blue".into(),
            candidate: "green".into(),
            sticky_header: Some("x-user-id".into()),
        }
    );
    let p = ok(&plan(
        "  kind: haproxy\n  socket: tcp:127.0.0.1:9999\n  backend: app\n  stable: blue\n  candidate: green\n",
        "",
    ));
    let Some(RouterSpec::Haproxy(h)) = &p.router else {
        panic!("{:?}", p.router)
    };
    assert_eq!(h.socket, HaproxySocket::Tcp("127.0.0.1:9999".into()));
    assert_eq!(h.socket.to_string(), "tcp:127.0.0.1:9999");
}

#[test]
fn haproxy_router_mistakes_are_reported_where_they_are() {
    let e = errors(&plan(
        "  kind: haproxy\n  socket: admin.sock\n  backend: 'app;shutdown'\n  stable: blue\n  candidate: blue\n  listen: 127.0.0.1:80\n  sockett: x\n",
        "",
    ));
    assert!(
        e.contains(
            "p:6:11: router.socket: `admin.sock` is neither an absolute path nor `tcp:HOST:PORT`"
        ),
        "{e}"
    );
    assert!(
        e.contains("p:7:12: router.backend: `app;shutdown` is not an HAProxy name"),
        "{e}"
    );
    assert!(
        e.contains("p:10:3: router: `listen` applies to `kind: builtin` routers only"),
        "{e}"
    );
    assert!(e.contains("p:11:3:"), "unknown key: {e}");
    let e = errors(&plan(
        "  kind: haproxy\n  socket: /s\n  backend: app\n  stable: blue\n  candidate: blue\n",
        "",
    ));
    assert!(
        e.contains("p:9:3: router.candidate: `blue` is also the stable server"),
        "{e}"
    );
    let e = errors(&plan("  kind: haproxy\n  socket: /s\n", ""));
    assert!(e.contains("backend"), "{e}");
    assert!(e.contains("stable"), "{e}");
    let e = errors(&plan(
        &format!("{HAPROXY}  sticky: {{ cookie: sid }}\n"),
        "",
    ));
    assert!(
        e.contains("p:10:11: router.sticky: HAProxy routers keep users by `header` only"),
        "{e}"
    );
    let e = errors(
        "version: 1\nname: n\nservice: s\nrouter: { kind: command, command: 'x {weight}', socket: /s }\nsteps:\n  - traffic: 5%\n",
    );
    assert!(
        e.contains("router: `socket` applies to `kind: haproxy` routers only"),
        "{e}"
    );
    let e = errors(
        "version: 1\nname: n\nservice: s\nrouter: { kind: command, command: 'x {weight}', stable: x }\nsteps:\n  - traffic: 5%\n",
    );
    assert!(
        e.contains("router: `stable` applies to `kind: builtin`, `kind: haproxy` and `kind: nginx` routers only"),
        "{e}"
    );
}

/// HAProxy has no latency distribution and no consecutive check failures: a gate on
/// them would be half-enforced, so the plan is refused.
#[test]
fn latency_health_and_compare_are_refused_with_haproxy() {
    let e = errors(&plan(
        HAPROXY,
        "  - analyze: { for: 1m, gates: [\"p95 < 500ms\"] }\n  - analyze: { for: 1m, gates: [\"error_rate < 1%\"], compare: stable }\nrollback:\n  on: [\"p99 > 2s for 1m\", \"health_failures >= 3\", \"error_rate > 5%\"]\n",
    ));
    assert!(
        e.contains("`p95 < 500ms` cannot be judged with `router: { kind: haproxy }`: HAProxy reports only an average response time"),
        "{e}"
    );
    assert!(e.contains("`compare: stable` is not available"), "{e}");
    assert!(
        e.contains("rollback.on: `p99 > 2s for 1m` cannot be judged"),
        "{e}"
    );
    assert!(
        e.contains("rollback.on: `health_failures >= 3` cannot be judged"),
        "{e}"
    );
    assert!(!e.contains("error_rate > 5%` cannot"), "{e}");
}

#[test]
fn haproxy_weights_are_whole_percentages() {
    let e = errors(&plan(HAPROXY, "  - traffic: 12.5%\n"));
    assert!(
        e.contains("`traffic: 12.5%` is not a whole percentage"),
        "{e}"
    );
}

// kind: nginx

const NGINX: &str = "  kind: nginx\n  include: /etc/nginx/liftoff/shop.conf\n  upstream: shop\n  stable: 10.0.0.11:9000\n  candidate: [10.0.0.12:9000, '[::1]:9001']\n  access_log: /var/log/nginx/liftoff-shop.log\n";

#[test]
fn an_nginx_router_names_include_upstream_instances_and_access_log() {
    let p = ok(&plan(
        &format!(
            "{NGINX}  sticky: {{ header: X-User-Id }}\n  nginx: /usr/sbin/nginx\n  config: /etc/nginx/nginx.conf\n"
        ),
        "  - analyze: { for: 1m, gates: [\"error_rate < 1%\", \"p95 < 500ms\", \"rps > 1\"], compare: stable }\nrollback:\n  on: [\"error_rate > 10% over 5s\", \"p99 > 2s for 1m\"]\n",
    ));
    let Some(RouterSpec::Nginx(n)) = &p.router else {
        panic!("{:?}", p.router)
    };
    assert_eq!(
        n,
        &NginxRouter {
            include: "/etc/nginx/liftoff/shop.conf".into(),
            upstream: "shop".into(),
            stable: vec!["10.0.0.11:9000".into()],
            candidate: vec!["10.0.0.12:9000".into(), "[::1]:9001".into()],
            sticky_header: Some("x-user-id".into()),
            access_log: "/var/log/nginx/liftoff-shop.log".into(),
            nginx: "/usr/sbin/nginx".into(),
            config: Some("/etc/nginx/nginx.conf".into()),
        }
    );
    assert_eq!(n.log_format(), "liftoff_shop");
    let p = ok(&plan(NGINX, ""));
    let Some(RouterSpec::Nginx(n)) = &p.router else {
        panic!("{:?}", p.router)
    };
    assert_eq!((n.nginx.as_str(), n.config.as_deref()), ("nginx", None));
}

#[test]
fn nginx_router_mistakes_are_reported_where_they_are() {
    let e = errors(&plan(
        "  kind: nginx\n  include: shop.conf\n  upstream: 'shop; }'\n  stable: 10.0.0.11\n  candidate: [10.0.0.11:9000, '1.2.3.4:80;']\n  access_log: /l\n  socket: /s\n  includ: x\n",
        "",
    ));
    assert!(
        e.contains("p:6:12: router.include: `shop.conf` is not an absolute path"),
        "{e}"
    );
    assert!(
        e.contains("p:7:13: router.upstream: `shop; }` is not an nginx upstream name"),
        "{e}"
    );
    assert!(
        e.contains("p:8:11: router.stable: `10.0.0.11` is not `host:port`"),
        "{e}"
    );
    assert!(
        e.contains("p:9:31: router.candidate: `1.2.3.4:80;` is not `host:port`"),
        "{e}"
    );
    assert!(
        e.contains("p:11:3: router: `socket` applies to `kind: haproxy` routers only"),
        "{e}"
    );
    assert!(e.contains("p:12:3:"), "unknown key: {e}");
    let e = errors(&plan(
        "  kind: nginx\n  include: /i\n  upstream: u\n  stable: 10.0.0.1:80\n  candidate: 10.0.0.1:80\n  access_log: /l\n",
        "",
    ));
    assert!(
        e.contains("p:9:14: router.candidate: `10.0.0.1:80` is listed twice"),
        "{e}"
    );
    let e = errors(&plan("  kind: nginx\n  include: /i\n", ""));
    for key in ["upstream", "stable", "candidate", "access_log"] {
        assert!(e.contains(key), "{key}: {e}");
    }
    let e = errors(&plan(&format!("{NGINX}  sticky: {{ cookie: sid }}\n"), ""));
    assert!(
        e.contains("router.sticky: nginx routers keep users by `header` only"),
        "{e}"
    );
    let e = errors(
        "version: 1\nname: n\nservice: s\nrouter: { kind: builtin, listen: '127.0.0.1:80', stable: 'http://a:1', candidate: 'http://b:1', include: /x }\nsteps:\n  - traffic: 5%\n",
    );
    assert!(
        e.contains("router: `include` applies to `kind: nginx` routers only"),
        "{e}"
    );
    let e = errors(
        "version: 1\nname: n\nservice: s\nrouter: { kind: command, command: 'x {weight}', stable: x }\nsteps:\n  - traffic: 5%\n",
    );
    assert!(
        e.contains(
            "router: `stable` applies to `kind: builtin`, `kind: haproxy` and `kind: nginx` routers only"
        ),
        "{e}"
    );
}

#[test]
fn health_failures_and_fractional_weights_are_refused_with_nginx() {
    let e = errors(&plan(
        NGINX,
        "  - traffic: 12.5%\n  - analyze: { for: 1m, gates: [\"health_failures < 3\"] }\nrollback:\n  on: [\"health_failures >= 3\", \"p99 > 1s\"]\n",
    ));
    assert!(
        e.contains("`traffic: 12.5%` is not a whole percentage"),
        "{e}"
    );
    assert!(
        e.contains("`health_failures < 3` cannot be judged with `router: { kind: nginx }`"),
        "{e}"
    );
    assert!(
        e.contains("rollback.on: `health_failures >= 3` cannot be judged"),
        "{e}"
    );
    assert!(!e.contains("p99 > 1s` cannot"), "{e}");
}
