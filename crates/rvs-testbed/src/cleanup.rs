//! Removing namespaces left behind by processes that died without dropping their topologies
//! (SIGKILL, abort, a panic with `panic = "abort"`).

use anyhow::{Result, anyhow};
use nix::{errno::Errno, sys::signal::kill, unistd::Pid};

use crate::{names, netns};

/// Deletes every namespace named by this library whose creating process no longer exists, killing
/// the processes still inside. Returns the names deleted.
///
/// A namespace whose creator's pid has been reused by another process stays until that process
/// exits too.
pub fn cleanup_stale() -> Result<Vec<String>> {
    let mut deleted = Vec::new();
    let mut failures = Vec::new();
    for name in netns::list()? {
        let Some(pid) = names::creator_pid(&name) else {
            continue;
        };
        if is_alive(pid) {
            continue;
        }
        match netns::remove(&name) {
            Ok(()) => deleted.push(name),
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    if failures.is_empty() {
        Ok(deleted)
    } else {
        Err(anyhow!("deleted {deleted:?} but: {}", failures.join("; ")))
    }
}

fn is_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // Signal 0 checks existence; EPERM means it exists but belongs to someone else.
    pid > 0 && !matches!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH))
}
