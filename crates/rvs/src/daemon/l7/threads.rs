//! The L7 task's own threads, one per CPU, each a single-threaded tokio runtime with its own
//! listening sockets: a client connection and its connections to real servers live and die on
//! one thread, as in HAProxy's and nginx's event loops, so a request costs no wake-up of another
//! thread (on rvsd's shared runtime, work stealing moved them between threads; measured in the
//! l7 benchmark). Idle connections to real servers are kept per thread for the same reason.

use std::cell::Cell;

use anyhow::{Context, Result};

thread_local! {
    /// Which L7 thread this is (0 outside them).
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// This thread's index among the L7 threads.
pub fn index() -> usize {
    INDEX.with(Cell::get)
}

/// Starts the threads; each runs until rvsd exits.
pub fn start() -> Result<Vec<tokio::runtime::Handle>> {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    (0..n)
        .map(|i| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("L7: cannot make a runtime")?;
            let handle = rt.handle().clone();
            std::thread::Builder::new()
                .name(format!("rvsd-l7-{i}"))
                .spawn(move || {
                    INDEX.with(|c| c.set(i));
                    rt.block_on(std::future::pending::<()>());
                })
                .context("L7: cannot start a thread")?;
            Ok(handle)
        })
        .collect()
}
