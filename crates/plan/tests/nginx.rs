//! `router: { kind: nginx }`: what the plan accepts, and what it refuses because nginx's
//! access log cannot give it.

use liftoff_plan::{NginxRouter, Plan, RouterSpec, parse};

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

const ROUTER: &str = "  kind: nginx\n  include: /etc/nginx/liftoff/shop.conf\n  upstream: shop\n  stable: 10.0.0.11:9000\n  candidate: [10.0.0.12:9000, '[::1]:9001']\n  access_log: /var/log/nginx/liftoff-shop.log\n";

#[test]
fn an_nginx_router_names_include_upstream_instances_and_access_log() {
    let p = ok(&plan(
        &format!(
            "{ROUTER}  sticky: {{ header: X-User-Id }}\n  nginx: /usr/sbin/nginx\n  config: /etc/nginx/nginx.conf\n"
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
    let p = ok(&plan(ROUTER, ""));
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
    let e = errors(&plan(&format!("{ROUTER}  sticky: {{ cookie: sid }}\n"), ""));
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
        ROUTER,
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
