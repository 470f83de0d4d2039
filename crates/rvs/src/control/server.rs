//! The control task, in rvsd: a Unix socket, one task per client. Listings are answered from
//! the director's published view and the maps, changes are queued to the director; so a client
//! waiting for a slow change (a real server whose MAC does not resolve) holds up nobody else.

use std::{
    os::unix::fs::{FileTypeExt, PermissionsExt},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
};
use tracing::{debug, warn};

use super::proto::{Request, Response};
use crate::daemon::{DirectorHandle, sync::SyncDaemons};

/// Binds the control socket, refusing if another rvsd answers on it.
pub fn bind(path: &Path) -> Result<UnixListener> {
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
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves clients until the task is dropped: the sync daemons answer what is theirs, the
/// director everything else.
pub async fn serve(listener: UnixListener, director: DirectorHandle, sync: SyncDaemons) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let d = director.clone();
                let s = sync.clone();
                tokio::spawn(async move {
                    if let Err(e) = client(stream, d, s).await {
                        debug!("control client: {e:#}");
                    }
                });
            }
            Err(e) => warn!("control socket accept: {e}"),
        }
    }
}

async fn client(stream: UnixStream, director: DirectorHandle, sync: SyncDaemons) -> Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        let response = match serde_json::from_str::<Request>(&line) {
            Ok(req @ (Request::StartDaemon { .. } | Request::StopDaemon { .. })) => {
                sync.request(req).await
            }
            Ok(req) => director.request(req).await,
            Err(e) => Response::Error {
                errno: libc::EINVAL,
                detail: format!("rvs: malformed request: {e}"),
            },
        };
        let mut out = serde_json::to_string(&response)?;
        out.push('\n');
        write.write_all(out.as_bytes()).await?;
    }
    Ok(())
}

/// Removes the socket file when rvsd stops.
pub struct SocketFile(pub PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
