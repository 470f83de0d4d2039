//! This rvsd's sync daemon, whoever starts it: keepalived.conf's `lvs_sync_daemon` (both roles,
//! before VRRP starts) or `ipvsadm --start-daemon master|backup` at run time, and
//! `--stop-daemon`. One task runs the roles on one socket; adding or removing a role restarts it
//! with the roles it now has (its counters start again, as a new kernel daemon's would). The
//! data plane reports flows only while a master runs.

use std::{path::PathBuf, sync::Arc, time::Duration};

use tokio::sync::Mutex;
use tracing::{info, warn};

use super::{
    config::{Roles, SyncConfig, SyncOptions},
    plane::{self, PlaneStore},
    status,
    task::{self, SyncRunning, roles_text},
};
use crate::{
    control::proto::{Request, Response},
    daemon::DirectorHandle,
    dataplane::sync_feed::SyncRule,
};

/// A refusal, with the errno the kernel gives for it.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub errno: i32,
    pub detail: String,
}

impl Refused {
    fn new(errno: i32, detail: impl Into<String>) -> Refused {
        Refused {
            errno,
            detail: detail.into(),
        }
    }
}

impl From<Refused> for Response {
    fn from(r: Refused) -> Response {
        Response::Error {
            errno: r.errno,
            detail: r.detail,
        }
    }
}

/// The sync daemon's handle; clones share it.
#[derive(Clone)]
pub struct SyncDaemons {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    pin_dir: PathBuf,
    director: DirectorHandle,
    opts: SyncOptions,
    running: Option<(SyncConfig, SyncRunning)>,
}

impl SyncDaemons {
    /// No daemon runs yet; `opts` are rvsd's (peers, key, bulk sync, timing).
    pub fn new(pin_dir: PathBuf, director: DirectorHandle, opts: SyncOptions) -> SyncDaemons {
        SyncDaemons {
            inner: Arc::new(Mutex::new(Inner {
                pin_dir,
                director,
                opts,
                running: None,
            })),
        }
    }

    /// Starts the roles of `cfg` (besides any running on the same socket).
    pub async fn start(&self, cfg: SyncConfig) -> Result<(), Refused> {
        if !super::socket::exists(&cfg.interface) {
            return Err(Refused::new(
                libc::ENODEV,
                format!("rvs: no interface {}", cfg.interface),
            ));
        }
        let mut inner = self.inner.lock().await;
        let Some((old, running)) = inner.running.take() else {
            return inner.launch(cfg).await;
        };
        let refusal = if old.roles.overlaps(cfg.roles) {
            Some(Refused::new(
                libc::EEXIST,
                "rvs: that sync daemon runs already",
            ))
        } else if !old.shares_socket_with(&cfg) {
            // rvs has one socket for both roles, the kernel one per daemon.
            Some(Refused::new(
                libc::ENOSYS,
                "rvs runs the master and backup sync daemons on one socket: start the second \
                 with the first one's interface, syncid, group, port and ttl",
            ))
        } else {
            None
        };
        if let Some(r) = refusal {
            inner.running = Some((old, running));
            return Err(r);
        }
        running.stop();
        let mut merged = old.clone();
        merged.roles = old.roles.union(cfg.roles);
        if cfg.roles.master {
            merged.maxlen = cfg.maxlen;
        }
        // Only a backup that starts now asks for the whole table.
        merged.bulk_timeout = if cfg.roles.backup {
            cfg.bulk_timeout
        } else {
            Duration::ZERO
        };
        let result = inner.launch(merged).await;
        if result.is_err() {
            // What ran before runs again.
            let _ = inner
                .launch(SyncConfig {
                    bulk_timeout: Duration::ZERO,
                    ..old
                })
                .await;
        }
        result
    }

    /// Stops `roles`; the others keep running.
    pub async fn stop(&self, roles: Roles) -> Result<(), Refused> {
        let mut inner = self.inner.lock().await;
        let running_roles = inner.running.as_ref().map(|(c, _)| c.roles);
        let Some(now) = running_roles.filter(|r| r.overlaps(roles)) else {
            return Err(Refused::new(libc::ESRCH, "rvs: no such sync daemon runs"));
        };
        let (cfg, running) = inner.running.take().expect("checked");
        running.stop();
        let left = now.without(roles);
        if left.any() {
            return inner
                .launch(SyncConfig {
                    roles: left,
                    bulk_timeout: Duration::ZERO,
                    ..cfg
                })
                .await;
        }
        info!("connection sync stopped");
        set_reports(&inner.director, None).await;
        status::clear();
        Ok(())
    }

    /// Waits until the running daemon's bulk sync is over (at once if none runs or none was
    /// asked for).
    pub async fn bulk_settled(&self) {
        let status = self
            .inner
            .lock()
            .await
            .running
            .as_ref()
            .map(|(_, r)| r.status());
        if let Some(mut s) = status {
            let _ = s.wait_for(|s| s.bulk.settled()).await;
        }
    }

    /// Stops whatever runs (rvsd is stopping).
    pub async fn stop_all(&self) {
        if let Some((_, running)) = self.inner.lock().await.running.take() {
            running.stop();
        }
    }

    /// `--start-daemon` and `--stop-daemon` from rvsadm.
    pub async fn request(&self, req: Request) -> Response {
        let result = match req {
            Request::StartDaemon { daemon } => {
                let opts = self.inner.lock().await.opts.clone();
                match SyncConfig::from_spec(&daemon, &opts) {
                    Ok(cfg) => self.start(cfg).await,
                    Err(e) => Err(Refused::new(libc::EINVAL, format!("rvs: {e:#}"))),
                }
            }
            Request::StopDaemon { backup } => {
                self.stop(Roles {
                    master: !backup,
                    backup,
                })
                .await
            }
            other => Err(Refused::new(
                libc::EINVAL,
                format!("rvs: the sync daemon cannot answer {other:?}"),
            )),
        };
        match result {
            Ok(()) => Response::Ok,
            Err(r) => r.into(),
        }
    }
}

impl Inner {
    /// Starts a task for `cfg`, with the data plane's reports on while it has a master.
    async fn launch(&mut self, cfg: SyncConfig) -> Result<(), Refused> {
        let io = |e: anyhow::Error| Refused::new(libc::EIO, format!("rvs: {e:#}"));
        let feed = if cfg.roles.master {
            Some(plane::feed(&self.pin_dir, self.director.clone()).map_err(io)?)
        } else {
            None
        };
        let store = PlaneStore::open(&self.pin_dir).map_err(io)?;
        let rule = cfg.roles.master.then(|| cfg.timing.rule());
        let roles = cfg.roles;
        let running =
            task::start(cfg.clone(), self.director.clone(), Box::new(store), feed).map_err(io)?;
        self.running = Some((cfg, running));
        // The reports follow the master role; turned on once the ring has its reader.
        set_reports(&self.director, rule).await;
        info!("connection sync runs as {}", roles_text(roles));
        Ok(())
    }
}

/// Turns the data plane's sync reports on (by `rule`) or off.
async fn set_reports(director: &DirectorHandle, rule: Option<SyncRule>) {
    if let Some(Err(e)) = director.with(Vec::new(), move |d| d.set_sync(rule)).await {
        let on = if rule.is_some() { "on" } else { "off" };
        warn!("turning the data plane's sync reports {on}: {e:#}");
    }
}
