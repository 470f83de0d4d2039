//! Removing namespaces left behind by processes that died without dropping their topologies
//! (SIGKILL, abort, a panic with `panic = "abort"`).

use anyhow::{Result, anyhow};
use nix::{errno::Errno, sys::signal::kill, unistd::Pid};

use std::path::PathBuf;

use crate::{bird, names, netns};

/// Deletes every namespace named by this library whose creating process no longer exists, killing
/// the processes still inside, and such a process's BIRD directories (see [`crate::Bird::dir`]).
/// Returns the names (and the directories' paths) deleted.
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
    remove_stale_bird_dirs(&bird::dir_parents(), &mut deleted, &mut failures)?;
    if failures.is_empty() {
        Ok(deleted)
    } else {
        Err(anyhow!("deleted {deleted:?} but: {}", failures.join("; ")))
    }
}

/// Removes the BIRD directories in `parents` whose creating process no longer exists.
fn remove_stale_bird_dirs(
    parents: &[PathBuf],
    deleted: &mut Vec<String>,
    failures: &mut Vec<String>,
) -> Result<()> {
    for dir in bird::dirs_in(parents)? {
        let leaf = dir.file_name().unwrap_or_default().to_string_lossy();
        let Some(pid) = names::creator_pid(&leaf) else {
            continue;
        };
        if is_alive(pid) {
            continue;
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => deleted.push(dir.display().to_string()),
            Err(e) => failures.push(format!("cannot remove {}: {e}", dir.display())),
        }
    }
    Ok(())
}

fn is_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // Signal 0 checks existence; EPERM means it exists but belongs to someone else.
    pid > 0 && !matches!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_process_s_bird_directories_go_and_a_live_one_s_stay() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        // A parent of our own, so that nothing else's files are looked at.
        let parent = std::env::temp_dir().join(format!("birdlab-unit-{}", std::process::id()));
        let stale = parent.join(format!("rvs-{dead}-0-r11-bird-r11-0"));
        let live = parent.join(format!("rvs-{}-0-r11-bird-r11-0", std::process::id()));
        let other = parent.join(format!("rvs-{dead}-0-r11"));
        for dir in [&stale, &live, &other] {
            std::fs::create_dir_all(dir).unwrap();
        }
        let (mut deleted, mut failures) = (Vec::new(), Vec::new());
        remove_stale_bird_dirs(std::slice::from_ref(&parent), &mut deleted, &mut failures).unwrap();
        let (s, l, o) = (stale.exists(), live.exists(), other.exists());
        std::fs::remove_dir_all(&parent).unwrap();
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(deleted, [stale.display().to_string()]);
        assert!(!s && l && o);
    }
}
