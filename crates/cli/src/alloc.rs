//! The allocator: mimalloc, and how it is tuned.
//!
//! The request path allocates per request (headers, bodies); mimalloc's thread-local
//! free lists make that cheaper than glibc malloc (docs/performance.md). Two of its
//! defaults cost memory a router holding thousands of idle connections keeps: freed
//! pages go back to the OS only a second after they empty, and then only if the
//! allocator is called again (an idle router's freed request buffers stayed
//! resident), and arenas are committed eagerly. Tuned, 9,000 idle plain connections
//! cost the router less memory than HAProxy takes for them (`bench/tls.sh`). A
//! `MIMALLOC_*` variable in the environment wins over this.

use libmimalloc_sys::{mi_option_set, mi_option_t};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_arena_eager_commit` in mimalloc.h's `mi_option_e` (v3).
const ARENA_EAGER_COMMIT: mi_option_t = 4;
/// `mi_option_purge_delay`: milliseconds between a page emptying and its return.
const PURGE_DELAY: mi_option_t = 15;
/// Long enough that a page emptied between two requests under load is reused, not
/// returned and faulted in again (0 cost a third of TLS keep-alive throughput), short
/// enough that an idle router has returned what its last requests used.
const PURGE_DELAY_MS: std::os::raw::c_long = 10;

/// The options mimalloc reads once, as the process starts (eager arena commit), come
/// only from the environment: a router started without them starts again with them
/// (the same process, `exec`), so it holds idle connections in the least memory
/// however it was started (by the daemon, systemd, a container). If that fails it
/// runs on as it is.
pub fn settle_router() {
    const SETTLED: &str = "MIMALLOC_ARENA_EAGER_COMMIT";
    if std::env::var_os(SETTLED).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut command = std::process::Command::new(exe);
    command.args(std::env::args_os().skip(1)).env(SETTLED, "0");
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        command.env("MIMALLOC_PURGE_DELAY", PURGE_DELAY_MS.to_string());
    }
    // Returns only if it failed.
    let _ = std::os::unix::process::CommandExt::exec(&mut command);
}

/// Sets the options this process runs with, before it does anything else.
#[allow(unsafe_code)]
pub fn tune() {
    for (option, variable, value) in [
        (ARENA_EAGER_COMMIT, "MIMALLOC_ARENA_EAGER_COMMIT", 0),
        (PURGE_DELAY, "MIMALLOC_PURGE_DELAY", PURGE_DELAY_MS),
    ] {
        if std::env::var_os(variable).is_none() {
            // SAFETY: sets one of mimalloc's option values; any value is valid.
            unsafe { mi_option_set(option, value) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libmimalloc_sys::mi_option_get;

    /// The option numbers are mimalloc.h's: before `tune`, each holds the default the
    /// source sets for the option it names (purge delay 1,000 ms, eager arena
    /// commit 2: mimalloc v3's options.c), and afterwards the value set.
    #[test]
    #[allow(unsafe_code)]
    fn the_options_set_are_the_ones_named() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some()
            || std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_some()
        {
            return;
        }
        // SAFETY: reads option values.
        let before = unsafe {
            (
                mi_option_get(PURGE_DELAY),
                mi_option_get(ARENA_EAGER_COMMIT),
            )
        };
        assert_eq!(before, (1000, 2));
        tune();
        let after = unsafe {
            (
                mi_option_get(PURGE_DELAY),
                mi_option_get(ARENA_EAGER_COMMIT),
            )
        };
        assert_eq!(after, (PURGE_DELAY_MS, 0));
    }
}
