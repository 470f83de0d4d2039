//! Bounded waiting: every wait in this crate polls a condition until a deadline.

use std::{
    thread,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};

/// How long to sleep between two checks of a condition.
const INTERVAL: Duration = Duration::from_millis(10);

/// Calls `check` until it returns `Ok(Some(value))`, for at most `timeout`.
///
/// `Ok(None)` means "not yet"; an error ends the wait at once. The error after the deadline names
/// `what`.
pub fn poll_until<T>(
    timeout: Duration,
    what: &str,
    check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    poll_every(INTERVAL, timeout, what, check)
}

/// [`poll_until`] with `interval` between two checks, for checks that cost more (running a
/// command).
pub fn poll_every<T>(
    interval: Duration,
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check()? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(interval);
    }
}
