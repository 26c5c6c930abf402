//! Running shell commands: own process group (so a timeout or cancel stops the whole
//! tree), parent-death signal (so a killed daemon leaves no half-run step behind to
//! finish unobserved), and bounded output capture.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio_util::sync::CancellationToken;

use crate::ports::{CommandOutcome, CommandRunner, CommandSpec, CommandStatus};

/// How long a process group gets between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// How long to keep reading output after the shell exits (a backgrounded child may
/// hold the pipe open for much longer; we do not wait for it).
const OUTPUT_LINGER: Duration = Duration::from_millis(100);

pub const OUTPUT_HEAD_BYTES: usize = 4 * 1024;
pub const OUTPUT_TAIL_BYTES: usize = 12 * 1024;

pub struct ShellRunner;

#[async_trait]
impl CommandRunner for ShellRunner {
    async fn run(&self, spec: CommandSpec, cancel: &CancellationToken) -> CommandOutcome {
        let capture = Arc::new(Mutex::new(Capture::default()));
        let (reader, writer) = match std::io::pipe() {
            Ok(pair) => pair,
            Err(e) => return spawn_failed(format!("cannot create a pipe: {e}")),
        };
        let stderr = match writer.try_clone() {
            Ok(w) => w,
            Err(e) => return spawn_failed(format!("cannot create a pipe: {e}")),
        };
        let mut std_cmd = std::process::Command::new("sh");
        std_cmd
            .arg("-c")
            .arg(&spec.command)
            .current_dir(&spec.dir)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(stderr)
            .process_group(0);
        set_parent_death_signal(&mut std_cmd);
        let mut cmd = tokio::process::Command::from(std_cmd);
        cmd.kill_on_drop(false);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return spawn_failed(format!("cannot start `sh` in {}: {e}", spec.dir.display()));
            }
        };
        // Drop our copies of the pipe's write end, or the reader never sees EOF.
        drop(cmd);
        let pgid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw);
        let reader_capture = capture.clone();
        let reader_done = CancellationToken::new();
        let reader_signal = reader_done.clone();
        std::thread::spawn(move || {
            let mut reader = reader;
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                reader_capture
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(&buf[..n]);
            }
            reader_signal.cancel();
        });

        let status = tokio::select! {
            status = child.wait() => match status {
                Ok(s) => match (s.code(), std::os::unix::process::ExitStatusExt::signal(&s)) {
                    (Some(code), _) => CommandStatus::Exited(code),
                    (None, Some(sig)) => CommandStatus::Signaled(sig),
                    (None, None) => CommandStatus::Exited(-1),
                },
                Err(e) => CommandStatus::SpawnFailed(format!("waiting for the command failed: {e}")),
            },
            () = tokio::time::sleep(spec.timeout) => {
                stop_group(pgid, &mut child).await;
                CommandStatus::TimedOut
            }
            () = cancel.cancelled() => {
                stop_group(pgid, &mut child).await;
                CommandStatus::Cancelled
            }
        };
        let _ = tokio::time::timeout(OUTPUT_LINGER, reader_done.cancelled()).await;
        let output = capture.lock().unwrap_or_else(|p| p.into_inner()).render();
        CommandOutcome { status, output }
    }
}

fn spawn_failed(message: String) -> CommandOutcome {
    CommandOutcome {
        status: CommandStatus::SpawnFailed(message),
        output: String::new(),
    }
}

async fn stop_group(pgid: Option<Pid>, child: &mut tokio::process::Child) {
    if let Some(pgid) = pgid {
        let _ = killpg(pgid, Signal::SIGTERM);
        if tokio::time::timeout(KILL_GRACE, child.wait()).await.is_ok() {
            let _ = killpg(pgid, Signal::SIGKILL); // stragglers in the group
            return;
        }
        let _ = killpg(pgid, Signal::SIGKILL);
    }
    let _ = child.kill().await;
}

#[allow(unsafe_code)]
fn set_parent_death_signal(cmd: &mut std::process::Command) {
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs between fork and exec and only calls prctl(2) and
    // getppid(2), which are async-signal-safe; it allocates nothing and takes no locks.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            // The daemon may have died between fork and prctl: then nobody would kill us.
            if nix::unistd::getppid() != parent {
                return Err(std::io::Error::other(
                    "the daemon exited while starting the command",
                ));
            }
            Ok(())
        });
    }
}

/// The environment variable that marks every process of one step attempt, so the
/// processes an interrupted attempt left behind can be found after a crash.
pub const ATTEMPT_ENV: &str = "LIFTOFF_ATTEMPT";

/// SIGKILL every process whose environment carries `LIFTOFF_ATTEMPT=<tag>`: what an
/// attempt interrupted by a daemon crash left running (the parent-death signal only
/// reaches the shell itself, not what it started in the background). Returns how many.
pub fn kill_attempt_leftovers(tag: &str) -> usize {
    let needle = format!("{ATTEMPT_ENV}={tag}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut killed = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ
            .split(|b| *b == 0)
            .any(|var| var == needle.as_bytes())
            && nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok()
        {
            killed += 1;
        }
    }
    killed
}

/// Keeps the first `OUTPUT_HEAD_BYTES` and the last `OUTPUT_TAIL_BYTES` of output:
/// the command line echo and the error at the end are what an operator reads.
#[derive(Default)]
struct Capture {
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    dropped: usize,
}

impl Capture {
    fn push(&mut self, mut bytes: &[u8]) {
        if self.head.len() < OUTPUT_HEAD_BYTES {
            let n = bytes.len().min(OUTPUT_HEAD_BYTES - self.head.len());
            self.head.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
        }
        self.tail.extend(bytes);
        let excess = self.tail.len().saturating_sub(OUTPUT_TAIL_BYTES);
        if excess > 0 {
            self.tail.drain(..excess);
            self.dropped += excess;
        }
    }

    fn render(&self) -> String {
        let mut out = String::from_utf8_lossy(&self.head).into_owned();
        if self.dropped > 0 {
            out.push_str(&format!(
                "\n[… {} bytes of output omitted …]\n",
                self.dropped
            ));
        }
        let tail: Vec<u8> = self.tail.iter().copied().collect();
        out.push_str(&String::from_utf8_lossy(&tail));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(command: &str, timeout_ms: u64) -> CommandSpec {
        CommandSpec {
            command: command.into(),
            dir: std::env::temp_dir(),
            env: vec![("GREETING".into(), "hello".into())],
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    #[tokio::test]
    async fn captures_both_streams_and_exit_code() {
        let out = ShellRunner
            .run(
                spec("echo $GREETING; echo oops >&2; exit 3", 5_000),
                &CancellationToken::new(),
            )
            .await;
        assert_eq!(out.status, CommandStatus::Exited(3));
        assert_eq!(out.output, "hello\noops\n");
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survived");
        let cmd = format!("(sleep 0.5; touch {}) & sleep 30", marker.display());
        let out = ShellRunner
            .run(spec(&cmd, 100), &CancellationToken::new())
            .await;
        assert_eq!(out.status, CommandStatus::TimedOut);
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(
            !marker.exists(),
            "a child of the timed-out command kept running"
        );
    }

    #[tokio::test]
    async fn cancel_stops_the_command() {
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            trigger.cancel();
        });
        let out = ShellRunner.run(spec("sleep 30", 60_000), &cancel).await;
        assert_eq!(out.status, CommandStatus::Cancelled);
    }

    #[tokio::test]
    async fn output_is_truncated_to_head_and_tail() {
        let out = ShellRunner
            .run(
                spec("yes line | head -n 20000; echo THE-END", 5_000),
                &CancellationToken::new(),
            )
            .await;
        assert!(out.output.starts_with("line\n"));
        assert!(out.output.ends_with("THE-END\n"));
        assert!(out.output.contains("bytes of output omitted"));
        assert!(out.output.len() < OUTPUT_HEAD_BYTES + OUTPUT_TAIL_BYTES + 100);
    }

    #[tokio::test]
    async fn background_child_holding_the_pipe_does_not_block() {
        let started = std::time::Instant::now();
        let out = ShellRunner
            .run(
                spec("sleep 5 & echo started", 10_000),
                &CancellationToken::new(),
            )
            .await;
        assert_eq!(out.status, CommandStatus::Exited(0));
        assert_eq!(out.output, "started\n");
        assert!(started.elapsed() < Duration::from_secs(4));
    }
}
