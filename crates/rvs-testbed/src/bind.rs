//! Binding a port that was just released.
//!
//! A socket closed by this process can live on for a moment: a child forked by another thread
//! (tests spawn `ip` all the time) holds a copy of every descriptor until it execs. Binding the
//! same port again in that window fails with EADDRINUSE, so binds retry briefly.

use std::{
    io::{self, ErrorKind},
    time::Duration,
};

use anyhow::Result;

use crate::poll::poll_until;

/// How long a port may stay held by a forked child.
const RETRY_FOR: Duration = Duration::from_secs(1);

/// Calls `bind` until it does not fail with EADDRINUSE, for at most [`RETRY_FOR`].
pub fn retry_in_use<T>(mut bind: impl FnMut() -> Result<io::Result<T>>) -> Result<io::Result<T>> {
    let mut last = None;
    let outcome = poll_until(RETRY_FOR, "a port in use to be released", || {
        match bind()? {
            Err(e) if e.kind() == ErrorKind::AddrInUse => {
                last = Some(e);
                Ok(None)
            }
            other => Ok(Some(other)),
        }
    });
    match (outcome, last) {
        (Ok(result), _) => Ok(result),
        (Err(_), Some(in_use)) => Ok(Err(in_use)),
        (Err(e), None) => Err(e),
    }
}
