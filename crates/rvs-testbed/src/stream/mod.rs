//! Long-lived streams through a virtual IP, for failover tests: many TCP connections echoing a
//! checked pattern both ways, and UDP flows, reporting exactly which ones were reset, cut,
//! corrupted, stalled or moved to another server.
//!
//! [`StreamServer`] answers every TCP connection with one line `NAME\n`, then echoes every byte
//! it receives; it answers every UDP datagram with `NAME\n` followed by the datagram, from the
//! address the datagram was sent to (so it works on a direct-routing real server holding the
//! VIP).
//!
//! [`StreamClient`] opens its connections `batch` at a time, reads each one's server name, then
//! on each sends `chunk` bytes of the [`Pattern`](crate::bulk::Pattern) seeded for that
//! connection every interval and waits for their echo, checked byte for byte; each UDP flow sends
//! a numbered, patterned datagram every interval and checks every answer. It logs one line per
//! problem to stderr as it happens, shows its progress while it runs ([`StreamClient::progress`])
//! and ends with a [`Report`].
//!
//! Both run in the network namespace of the thread that starts them (`start`), or of a given
//! namespace (`start_in`): a test runs them in-process on its topology's hosts, and the
//! `rvs-stream` binary runs them as programs (`rvs-stream serve` / `rvs-stream client`).

use std::{
    io::ErrorKind,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

mod client;
mod serve;

pub use client::{
    ClientConfig, Live, Progress, Report, StreamClient, run_client, tcp_server_of, udp_server_of,
};
pub use serve::{ServeConfig, StreamServer};

/// How often blocking calls wake up to look at the clock and the stop flag.
const TICK: Duration = Duration::from_millis(50);
/// The largest chunk: an echo of it always fits in the socket buffers of both ends, so the
/// send-then-read of one thread never deadlocks.
pub const MAX_CHUNK: usize = 64 * 1024;
/// The longest server name line.
pub const MAX_NAME: usize = 255;
/// The stack of each connection's thread.
const STACK: usize = 256 * 1024;

/// Lets this process have as many sockets as the hard limit allows.
fn raise_nofile() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain calls on a valid, owned struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn spawn_thread<T: Send + 'static>(
    name: String,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<thread::JoinHandle<T>> {
    thread::Builder::new()
        .name(name)
        .stack_size(STACK)
        .spawn(f)
        .context("cannot start a thread")
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

/// Joins `handle` if it finishes before `deadline`; otherwise leaves it running.
fn join_by<T>(handle: thread::JoinHandle<T>, deadline: Instant) -> Option<T> {
    while !handle.is_finished() {
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
    handle.join().ok()
}
