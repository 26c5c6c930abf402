//! WebSockets through the router, with Python's `websockets` on both ends: the upgrade
//! is tunnelled both ways and counted per version; a weight change and a rollback leave
//! an established connection be, and new connections follow the split.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

use liftoff_router::{Limits, Role, RouteSpec, Router, Sticky};

struct Py(Child);

impl Drop for Py {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn script(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/ws")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn python(args: &[&str]) -> (Py, BufReader<std::process::ChildStdout>, ChildStdin) {
    let mut child = Command::new("python3")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 (./test.sh installs it, with `pip install websockets`)");
    let out = BufReader::new(child.stdout.take().unwrap());
    let stdin = child.stdin.take().unwrap();
    (Py(child), out, stdin)
}

fn line(out: &mut BufReader<std::process::ChildStdout>) -> String {
    let mut l = String::new();
    out.read_line(&mut l).unwrap();
    assert!(
        !l.is_empty(),
        "the Python side ended early (is `websockets` installed? ./test.sh installs it)"
    );
    l.trim().to_string()
}

fn server(name: &str) -> (Py, String) {
    let (py, mut out, _) = python(&[&script("server.py"), name]);
    let port = line(&mut out);
    (py, format!("http://127.0.0.1:{port}"))
}

#[test]
fn a_websocket_survives_a_weight_change_and_a_rollback_and_new_ones_follow_the_split() {
    let (_s, stable) = server("stable");
    let (_c, candidate) = server("candidate");
    let router = Router::start(Limits::default(), 2).unwrap();
    let at = router
        .upsert_route(RouteSpec {
            name: "chat".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            host: None,
            stable,
            candidate: Some(candidate),
            sticky: Sticky::Header("x-user-id".parse().unwrap()),
            version_override: None,
            health: None,
            salt: Some(7),
        })
        .unwrap();
    router.set_weight("chat", 10_000).unwrap();
    let url = format!("ws://{at}/chat");

    let (_a, mut out, mut go) = python(&[&script("client.py"), &url, "ada", "1000"]);
    assert_eq!(line(&mut out), "half candidate");
    router.set_weight("chat", 5_000).unwrap();
    router.set_weight("chat", 0).unwrap(); // the rollback
    writeln!(go, "go").unwrap();
    assert_eq!(
        line(&mut out),
        "done candidate 1000",
        "the established connection was not cut and stayed on its version"
    );

    let (_b, mut out, mut go) = python(&[&script("client.py"), &url, "ada", "10"]);
    writeln!(go, "go").unwrap();
    assert_eq!(line(&mut out), "half stable");
    assert_eq!(
        line(&mut out),
        "done stable 10",
        "a new connection follows the split"
    );

    let status = router.status().remove(0);
    for (role, upgrades) in [(Role::Candidate, 1), (Role::Stable, 1)] {
        let v = status.versions.iter().find(|v| v.role == role).unwrap();
        assert_eq!(
            (v.last_60s.requests, v.last_60s.status[0]),
            (upgrades, upgrades),
            "{role:?}: each upgrade counts once, as a 1xx"
        );
    }
}
