//! The server side, in rvsd: a Unix socket, one task per client, requests applied one at a time
//! to the director.

use std::{
    os::unix::fs::{FileTypeExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context, Result, bail};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    sync::Mutex,
};
use tracing::{debug, warn};

use super::proto::{Request, Response};
use crate::daemon::Director;

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

/// Serves clients until the task is dropped.
pub async fn serve(listener: UnixListener, director: Arc<Mutex<Director>>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let d = director.clone();
                tokio::spawn(async move {
                    if let Err(e) = client(stream, d).await {
                        debug!("control client: {e:#}");
                    }
                });
            }
            Err(e) => warn!("control socket accept: {e}"),
        }
    }
}

async fn client(stream: UnixStream, director: Arc<Mutex<Director>>) -> Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        let response = match serde_json::from_str::<Request>(&line) {
            // VRRP (issue 11): answered from its published snapshot, never the director's lock.
            Ok(Request::Vrrp) => crate::daemon::vrrp::status_response(),
            Ok(req) => director.lock().await.handle(req).await,
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
