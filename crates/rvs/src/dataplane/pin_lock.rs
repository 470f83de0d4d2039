//! One rvsd per pin directory. Two daemons given the same pins would each take the maps for
//! theirs and the second would rewrite the first one's services, so the directory itself is
//! locked (flock works on bpffs directories; bpffs holds no regular files to lock instead). The
//! kernel drops the lock when the process ends, kill -9 included, so no stale lock survives.

use std::{fs::File, os::fd::AsRawFd, path::Path};

use anyhow::{Context, Result, bail};

/// Held while the daemon owns the pins.
#[derive(Debug)]
pub struct PinLock {
    _dir: File,
}

impl PinLock {
    /// Locks `dir` (which must exist), or says which daemon's pins these are.
    pub fn take(dir: &Path) -> Result<PinLock> {
        let f = File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
        // SAFETY: flock on a descriptor this function owns; no memory is passed.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                bail!(
                    "another rvsd owns the pinned maps in {}: stop it, or give this one another \
                     --pin-dir (and its own --socket and --state-file)",
                    dir.display()
                );
            }
            return Err(e).with_context(|| format!("locking {}", dir.display()));
        }
        Ok(PinLock { _dir: f })
    }
}
