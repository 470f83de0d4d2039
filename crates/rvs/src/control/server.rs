//! The control task, in rvsd: a Unix socket, one task per client. Listings are answered from
//! the director's published view and the maps, changes are queued to the director; so a client
//! waiting for a slow change (a real server whose MAC does not resolve) holds up nobody else.

use std::{
    os::{
        fd::AsRawFd,
        unix::fs::{FileTypeExt, PermissionsExt},
    },
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
};
use tracing::{debug, warn};

use super::proto::{Request, Response};
use crate::daemon::{DirectorHandle, sync::SyncDaemons};

/// Who may use the control socket: root, rvsd's own user, and the members of `group` if one
/// is given (`rvsd --socket-group`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Access {
    pub group: Option<u32>,
}

/// Binds the control socket, refusing if another rvsd answers on it. The socket is created
/// private (rvsd runs with umask 077) and only then opened to `access.group`, never wider.
pub fn bind(path: &Path, access: Access) -> Result<UnixListener> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            bail!("{} exists and is not a socket", path.display());
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!("another rvsd is serving {}", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("removing stale {}", path.display()))?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    let mode = match access.group {
        Some(gid) => {
            std::os::unix::fs::chown(path, None, Some(gid))
                .with_context(|| format!("giving {} to group {gid}", path.display()))?;
            0o660
        }
        None => 0o600,
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(listener)
}

/// The longest request line taken; every request is a few hundred bytes.
pub const MAX_REQUEST: usize = 64 * 1024;

/// Serves clients until the task is dropped: the sync daemons answer what is theirs, the
/// director everything else.
pub async fn serve(
    listener: UnixListener,
    access: Access,
    director: DirectorHandle,
    sync: SyncDaemons,
) {
    let mut refused_log = Throttle::default();
    let mut accept_log = Throttle::default();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                if let Err(why) = allowed(&stream, access) {
                    if refused_log.allow() {
                        warn!("control socket: refused {why}{}", refused_log.suppressed());
                    }
                    tokio::spawn(refuse(stream, why));
                    continue;
                }
                let d = director.clone();
                let s = sync.clone();
                tokio::spawn(async move {
                    if let Err(e) = client(stream, d, s).await {
                        debug!("control client: {e:#}");
                    }
                });
            }
            Err(e) => {
                // Out of descriptors (EMFILE, ENFILE) the pending connection stays queued and
                // every accept fails at once: wait instead of spinning, and log once a second.
                if accept_log.allow() {
                    warn!("control socket accept: {e}{}", accept_log.suppressed());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The peer's credentials, from the kernel (SO_PEERCRED and SO_PEERGROUPS), against `access`.
fn allowed(stream: &UnixStream, access: Access) -> Result<(), String> {
    let cred = stream
        .peer_cred()
        .map_err(|e| format!("a client whose credentials cannot be read: {e}"))?;
    let uid = cred.uid();
    // SAFETY: geteuid cannot fail.
    if uid == 0 || uid == unsafe { libc::geteuid() } {
        return Ok(());
    }
    if let Some(gid) = access.group
        && (cred.gid() == gid || peer_groups(stream).contains(&gid))
    {
        return Ok(());
    }
    Err(format!(
        "uid {uid} (pid {}): not root{}",
        cred.pid().map_or("?".to_owned(), |p| p.to_string()),
        access
            .group
            .map_or(String::new(), |g| format!(" nor in group {g}"))
    ))
}

/// The peer's supplementary groups (SO_PEERGROUPS, Linux 4.13); tokio and nix read only the
/// primary one.
fn peer_groups(stream: &UnixStream) -> Vec<u32> {
    let mut groups = vec![0 as libc::gid_t; 64];
    for _ in 0..2 {
        let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: the buffer is writable for `len` bytes and outlives the call.
        let rc = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let n = len as usize / std::mem::size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(n);
            return groups;
        }
        // ERANGE: `len` now says how much is needed.
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::ERANGE) || n <= groups.len()
        {
            break;
        }
        groups.resize(n, 0);
    }
    Vec::new()
}

/// Tells a refused peer why, in ipvsadm's words for a user who is not root, and closes.
async fn refuse(mut stream: UnixStream, why: String) {
    // The client writes its request before it reads: take that line (bounded, briefly), so the
    // answer reaches it instead of a broken pipe.
    let mut line = Vec::new();
    let mut read = BufReader::new(&mut stream).take(MAX_REQUEST as u64);
    let _ = tokio::time::timeout(Duration::from_secs(5), read.read_until(b'\n', &mut line)).await;
    let response = Response::Error {
        errno: libc::EPERM,
        detail: format!("rvs: permission denied for {why}"),
    };
    if let Ok(mut out) = serde_json::to_string(&response) {
        out.push('\n');
        let _ = stream.write_all(out.as_bytes()).await;
    }
}

async fn client(stream: UnixStream, director: DirectorHandle, sync: SyncDaemons) -> Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut read)
            .take(MAX_REQUEST as u64 + 1)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Ok(());
        }
        if line.len() > MAX_REQUEST {
            // The rest of an endless line is not read: answer and close.
            let response = Response::Error {
                errno: libc::E2BIG,
                detail: format!("rvs: request longer than {MAX_REQUEST} bytes; connection closed"),
            };
            write_response(&mut write, &response).await?;
            return Ok(());
        }
        let response = match serde_json::from_slice::<Request>(&line) {
            Ok(req @ (Request::StartDaemon { .. } | Request::StopDaemon { .. })) => {
                sync.request(req).await
            }
            Ok(req) => director.request(req).await,
            Err(e) => Response::Error {
                errno: libc::EINVAL,
                // serde's message can quote the input (an unknown name): never all of it.
                detail: format!("rvs: malformed request: {}", clip(&e.to_string(), 200)),
            },
        };
        write_response(&mut write, &response).await?;
    }
}

async fn write_response(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    response: &Response,
) -> Result<()> {
    let mut out = serde_json::to_string(response)?;
    out.push('\n');
    write.write_all(out.as_bytes()).await?;
    Ok(())
}

/// At most `max` characters of `s`, marked when cut.
fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}... ({} bytes in all)", &s[..i], s.len()),
        None => s.to_owned(),
    }
}

/// One log line a second at most; counts what it held back.
#[derive(Default)]
pub(crate) struct Throttle {
    last: Option<Instant>,
    held: u64,
}

impl Throttle {
    pub(crate) fn allow(&mut self) -> bool {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|l| now.duration_since(l) < Duration::from_secs(1))
        {
            self.held += 1;
            return false;
        }
        self.last = Some(now);
        true
    }

    /// ` (N more since the last line)`, once.
    pub(crate) fn suppressed(&mut self) -> String {
        let held = std::mem::take(&mut self.held);
        match held {
            0 => String::new(),
            n => format!(" ({n} more since the last line)"),
        }
    }
}

/// Removes the socket file when rvsd stops.
pub struct SocketFile(pub PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_cuts_long_text_and_keeps_short_text() {
        assert_eq!(clip("abc", 5), "abc");
        let long = "é".repeat(1000);
        let c = clip(&long, 10);
        assert!(c.starts_with(&"é".repeat(10)));
        assert!(c.ends_with("(2000 bytes in all)"), "{c}");
    }

    #[test]
    fn throttle_lets_one_line_a_second_through_and_counts_the_rest() {
        let mut t = Throttle::default();
        assert!(t.allow());
        assert!(!t.allow());
        assert!(!t.allow());
        assert_eq!(t.suppressed(), " (2 more since the last line)");
        assert_eq!(t.suppressed(), "");
    }
}
