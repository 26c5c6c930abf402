//! A real nginx of a test's own: its prefix, pid file, logs and temp paths in a
//! directory of the test's, `daemon off`, stopped by PID by its owner.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::wait_until;

/// An nginx.conf for `dir` whose `http` block holds `http` (after `access_log off`).
pub fn conf(dir: &Path, http: &str) -> String {
    let d = dir.display();
    format!(
        "daemon off;\nuser root;\nworker_processes 2;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n\
         \x20 client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         \x20 access_log off;\n{http}\n}}\n"
    )
}

/// nginx on `dir/nginx.conf`, once it writes its pid file and listens on `port`.
pub fn spawn(dir: &Path, port: u16) -> Child {
    let found = Command::new("nginx")
        .arg("-v")
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "nginx is not installed: apt-get install nginx-light (./test.sh installs it)"
    );
    let log = std::fs::File::create(dir.join("nginx.out")).unwrap();
    let child = Command::new("nginx")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start nginx");
    wait_until(Duration::from_secs(10), "nginx to start", || {
        dir.join("nginx.pid").exists() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    child
}

/// SIGTERM (a fast shutdown: the master stops its workers before it exits), and reap.
pub fn stop(child: &mut Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
}
