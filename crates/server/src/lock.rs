//! One daemon per state directory. `serve` holds an exclusive `flock` on
//! `<state-dir>/lock` for as long as it runs, and writes its PID (and, once it listens,
//! its address) into the file, so a second `serve` on the same directory can say who
//! holds it instead of recovering the first one's launches and writing into their
//! journals. The kernel drops the lock when the holder exits, kill -9 included; the file
//! stays, and the next daemon overwrites what it says.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::StartError;

pub const LOCK_FILE: &str = "lock";

/// The held lock; released when dropped (or when the process ends).
pub struct StateLock {
    file: File,
    path: PathBuf,
}

impl StateLock {
    pub fn acquire(state_dir: &Path) -> Result<Self, StartError> {
        let path = state_dir.join(LOCK_FILE);
        let file_error = |source| StartError::File {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(file_error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                return Err(StartError::Locked {
                    holder: Holder::parse(&holder).describe(),
                    path,
                });
            }
            Err(TryLockError::Error(e)) => return Err(file_error(e)),
        }
        let mut lock = StateLock {
            file,
            path: path.clone(),
        };
        lock.write(None).map_err(file_error)?;
        Ok(lock)
    }

    /// Say where this daemon listens, for the next one that finds the lock held.
    pub fn record_listen(&mut self, addr: SocketAddr) -> Result<(), StartError> {
        self.write(Some(addr)).map_err(|source| StartError::File {
            path: self.path.clone(),
            source,
        })
    }

    fn write(&mut self, addr: Option<SocketAddr>) -> std::io::Result<()> {
        let mut text = format!("pid {}\n", std::process::id());
        if let Some(addr) = addr {
            text.push_str(&format!("listen http://{addr}\n"));
        }
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(text.as_bytes())
    }
}

/// What the lock file says about its holder.
#[derive(Debug, Default, PartialEq, Eq)]
struct Holder {
    pid: Option<u32>,
    listen: Option<String>,
}

impl Holder {
    fn parse(text: &str) -> Self {
        let mut holder = Holder::default();
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("pid", pid)) => holder.pid = pid.trim().parse().ok(),
                Some(("listen", addr)) => holder.listen = Some(addr.trim().to_string()),
                _ => {}
            }
        }
        holder
    }

    /// `pid 42, listening on http://127.0.0.1:7070`
    fn describe(&self) -> String {
        let pid = self
            .pid
            .map_or_else(|| "pid unknown".to_string(), |p| format!("pid {p}"));
        match &self.listen {
            Some(addr) => format!("{pid}, listening on {addr}"),
            None => format!("{pid}, not listening yet"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_state_directory_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = StateLock::acquire(dir.path()).unwrap();
        let pid = std::process::id();
        let err = StateLock::acquire(dir.path()).err().unwrap().to_string();
        assert!(
            err.contains(&format!("(pid {pid}, not listening yet)")),
            "{err}"
        );
        first
            .record_listen("127.0.0.1:7071".parse().unwrap())
            .unwrap();
        let err = StateLock::acquire(dir.path()).err().unwrap().to_string();
        assert_eq!(
            err,
            format!(
                "another liftoff serve (pid {pid}, listening on http://127.0.0.1:7071) holds {}",
                dir.path().join(LOCK_FILE).display()
            )
        );
        drop(first);
        let _again = StateLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn an_unreadable_lock_file_still_gives_a_message() {
        assert_eq!(
            Holder::parse("").describe(),
            "pid unknown, not listening yet"
        );
        assert_eq!(
            Holder::parse("pid 7\nlisten http://[::1]:80\n"),
            Holder {
                pid: Some(7),
                listen: Some("http://[::1]:80".into())
            }
        );
    }
}
