//! Bounded load through a router: many users, each on a keep-alive connection of its
//! own, every failure and every change of version counted.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Many users, each on a keep-alive connection of its own, sending requests in a loop:
/// every failure (connect, reset, timeout, a non-2xx) and every user that changes
/// version is counted.
pub struct Load {
    pub stop: Arc<AtomicBool>,
    pub threads: Vec<std::thread::JoinHandle<()>>,
    pub ok: Arc<AtomicU64>,
    pub failures: Arc<Mutex<Vec<String>>>,
    /// The version each user was served first, and whether it ever changed.
    pub moved: Arc<Mutex<Vec<String>>>,
    pub versions: Arc<Mutex<Vec<Option<String>>>>,
}

impl Load {
    pub fn start(listen: SocketAddr, users: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let moved = Arc::new(Mutex::new(Vec::new()));
        let versions = Arc::new(Mutex::new(vec![None; users]));
        let threads = (0..users)
            .map(|user| {
                let (stop, ok, failures, moved, versions) = (
                    stop.clone(),
                    ok.clone(),
                    failures.clone(),
                    moved.clone(),
                    versions.clone(),
                );
                std::thread::spawn(move || {
                    let mut conn: Option<BufReader<TcpStream>> = None;
                    while !stop.load(Ordering::Relaxed) {
                        match request(&mut conn, listen, user) {
                            Ok(version) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                                let mut v = versions.lock().unwrap();
                                match &v[user] {
                                    None => v[user] = Some(version),
                                    Some(first) if *first != version => moved
                                        .lock()
                                        .unwrap()
                                        .push(format!("user {user}: {first} then {version}")),
                                    Some(_) => {}
                                }
                            }
                            Err(e) => {
                                failures.lock().unwrap().push(format!("user {user}: {e}"));
                                conn = None;
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            threads,
            ok,
            failures,
            moved,
            versions,
        }
    }

    /// Wait until `n` more requests have succeeded.
    pub fn wait_for(&self, n: u64) {
        let target = self.ok.load(Ordering::Relaxed) + n;
        super::wait_until(
            Duration::from_secs(20),
            "requests through the router",
            || self.ok.load(Ordering::Relaxed) >= target,
        );
    }

    pub fn finish(self) -> (u64, Vec<String>, Vec<String>, Vec<Option<String>>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        let failures = self.failures.lock().unwrap().clone();
        let moved = self.moved.lock().unwrap().clone();
        let versions = self.versions.lock().unwrap().clone();
        (self.ok.load(Ordering::Relaxed), failures, moved, versions)
    }
}

/// One request on the user's keep-alive connection (opened if needed); the version
/// that answered. The connection is dropped when the response says `Connection: close`.
pub fn request(
    conn: &mut Option<BufReader<TcpStream>>,
    listen: SocketAddr,
    user: usize,
) -> Result<String, String> {
    if conn.is_none() {
        let s = TcpStream::connect_timeout(&listen, Duration::from_secs(5))
            .map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        *conn = Some(BufReader::new(s));
    }
    let c = conn.as_mut().unwrap();
    c.get_mut()
        .write_all(
            format!("GET /checkout HTTP/1.1\r\nHost: shop\r\nX-User-Id: user-{user}\r\n\r\n")
                .as_bytes(),
        )
        .map_err(|e| format!("write: {e}"))?;
    let mut status = String::new();
    c.read_line(&mut status).map_err(|e| format!("read: {e}"))?;
    if status.is_empty() {
        return Err("the connection closed before a response".into());
    }
    let mut length = 0usize;
    let mut close = false;
    loop {
        let mut line = String::new();
        c.read_line(&mut line).map_err(|e| format!("read: {e}"))?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("connection:") && lower.contains("close") {
            close = true;
        }
    }
    let mut body = vec![0; length];
    c.read_exact(&mut body)
        .map_err(|e| format!("read body: {e}"))?;
    if close {
        *conn = None;
    }
    if !status.starts_with("HTTP/1.1 2") {
        return Err(format!(
            "{}: {}",
            status.trim(),
            String::from_utf8_lossy(&body)
        ));
    }
    Ok(String::from_utf8_lossy(&body).trim().to_string())
}

pub fn assert_clean(what: &str, ok: u64, failures: &[String], moved: &[String]) {
    assert!(ok > 0, "{what}: no request succeeded");
    assert!(
        failures.is_empty(),
        "{what}: {} of {} requests failed: {:?}",
        failures.len(),
        ok as usize + failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(moved.is_empty(), "{what}: users changed version: {moved:?}");
}
