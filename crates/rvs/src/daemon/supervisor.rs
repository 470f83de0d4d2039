//! rvsd's supervisor: loads the data plane, makes the director and starts every task under a
//! name, then waits for a signal (or for a task that ends, which it reports by name) and stops
//! them. The tasks, each in its own file of `daemon/`:
//!
//! | task | owns | talks to the director by |
//! |---|---|---|
//! | `director` (owner.rs) | the model, the map writer | — |
//! | `control` (control/server.rs) | the rvsadm socket | reads: the view; changes: messages |
//! | `estimator` | — | a tick message every 2 s |
//! | `expiry` | its own map handles | reads the view; reports a walk |
//! | `next-hop` | an rtnetlink socket | reads the view; reports next hops |
//! | `locality` | its own map handles | reads the view |
//! | `keepalived` | the checkers, notify, mail | changes: messages |
//! | `vrrp` (own thread) | VRRP sockets, timers, virtual addresses | — |
//! | `sync` (sync/daemons.rs, task.rs) | sync sockets, its own map handles | reads the view |
//! | `cluster` (cluster/) | the load-report socket | reads: the view; changes: messages |
//! | `web` (web/) | the HTTPS listener, sessions, tokens | reads: the view; changes: messages |
//! | `l7` (l7/) | the L7 listeners, client and real-server connections, the pools' checkers | — |
//! | `bgp` (bgp/) | BGP sessions, the listener for passive neighbors | reads: the view, quorum, VRRP |

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::{Context, Result};
use rvs_common::maps::{Config, MAX_DESTS, MAX_SERVICES, config_flags};
use tokio::{signal::unix::SignalKind, sync::oneshot, task::JoinSet};
use tracing::{info, warn};

use super::{
    Director, DirectorOptions, estimator, expiry, keepalived::Keepalived, locality, next_hop,
    owner, state,
};
use crate::{
    control::server,
    dataplane::{AttachMode, Dataplane, DirectorMaps, LoadOptions, MapsRead, Neighbours},
    keepalived::KeepalivedConfig,
    model::Model,
};

/// What rvsd was asked to run.
pub struct Settings {
    pub socket: PathBuf,
    /// Who besides root may use the socket.
    pub socket_access: server::Access,
    pub pin_dir: PathBuf,
    pub state_file: PathBuf,
    pub interfaces: Vec<String>,
    pub mode: AttachMode,
    /// Detach the program when rvsd stops, instead of leaving it forwarding.
    pub detach_on_exit: bool,
    pub conn_table_size: u32,
    /// The data plane's settings (flags, admission rate, lblcr expiry).
    pub dataplane: Config,
    pub lblc_expiration: Duration,
    pub lblcr_expiration: Duration,
    /// keepalived.conf already loaded (it was checked before anything was touched).
    pub keepalived: Option<(PathBuf, KeepalivedConfig)>,
    /// Connection sync's own options (its daemon is keepalived.conf's `lvs_sync_daemon`, or
    /// rvsadm's `--start-daemon`).
    pub sync: super::sync::SyncOptions,
    /// The monitor (`--web`), if asked for.
    pub web: Option<super::web::WebOptions>,
    /// keepalived.conf's `rvs_cluster`, its key read.
    pub cluster: Option<super::cluster::ClusterSettings>,
}

/// Runs rvsd until SIGTERM or SIGINT.
pub async fn run(s: Settings) -> Result<()> {
    let listener = server::bind(&s.socket, s.socket_access)?;
    let _socket_file = server::SocketFile(s.socket.clone());
    let opts = LoadOptions {
        pin_dir: s.pin_dir.clone(),
        interfaces: s.interfaces.clone(),
        mode: s.mode,
        conn_table_size: s.conn_table_size,
    };
    let program = Dataplane::load(&opts)?;
    for (name, ifindex) in &program.interfaces {
        info!(
            "director attached to {name} (ifindex {ifindex}, {:?} mode)",
            s.mode
        );
    }
    let model = load_model(&s, program.resumed)?;
    let mut writer = DirectorMaps::open(&s.pin_dir)?;
    let mut config = s.dataplane;
    if program.resumed {
        // What the director derives from its table stays as the running data plane has it
        // until the director writes it again: meanwhile a carried-over NAT flow's replies must
        // still be rewritten, not left to the kernel (which forwards them unrewritten, and the
        // client resets the connection).
        use crate::dataplane::MapsWrite;
        let derived = config_flags::NAT_ACTIVE | config_flags::MARKS_ACTIVE;
        config.flags |= writer.config().flags & derived;
    }
    crate::dataplane::MapsWrite::set_config(&mut writer, config)?;
    let readers: Arc<dyn MapsRead> = Arc::new(DirectorMaps::open(&s.pin_dir)?);
    let neigh = Neighbours::new()?;
    let director = Director::new(
        model,
        Box::new(writer),
        DirectorOptions {
            state_file: Some(s.state_file.clone()),
            conn_table_size: s.conn_table_size,
        },
    );
    // Next hops of the saved real servers are found before they are written, all at once.
    let saved: Vec<_> = director.model().every_dest().map(|d| d.addr.addr).collect();
    let (handle, owner_task) = owner::spawn(director, readers.clone(), Some(neigh.clone()));
    let hops = handle.resolve(saved).await;
    handle
        .with(Vec::new(), move |d| {
            d.learn_next_hops(hops);
            d.reconcile(program.resumed)
        })
        .await
        .context("the director stopped")??;

    // The configured services are in place before rvsadm is served.
    let (stop_keepalived, stopped) = oneshot::channel();
    let mut tasks = JoinSet::new();
    let mut spawn = |name: &'static str, f: futures::future::BoxFuture<'static, ()>| {
        tasks.spawn(async move {
            f.await;
            name
        });
    };
    let vrrp_config = s.keepalived.as_ref().map(|(_, c)| c.clone());
    let l7_config = s.keepalived.as_ref().map(|(p, c)| (p.clone(), c.clone()));
    let bgp_config = s
        .keepalived
        .as_ref()
        .and_then(|(p, c)| Some((p.clone(), c.bgp.clone()?)));
    let keepalived = match s.keepalived {
        Some((path, cfg)) => {
            let k = Keepalived::start(path, cfg, handle.clone()).await?;
            Some(tokio::spawn(k.run(stopped)))
        }
        None => None,
    };
    // Connection sync, sending and receiving; a starting director first takes the whole table
    // from its peer, and only then may VRRP make it MASTER.
    let sync_config = match &vrrp_config {
        Some(c) => super::sync::SyncConfig::from_keepalived(c, &s.sync)?,
        None => None,
    };
    let sync = super::sync::SyncDaemons::new(s.pin_dir.clone(), handle.clone(), s.sync.clone());
    // The monitor's certificate and port are checked before anything is served.
    let monitor = match s.web.clone() {
        Some(w) => Some(
            super::web::Monitor::bind(
                w,
                handle.clone(),
                s.interfaces.clone(),
                format!("{:?}", s.mode).to_lowercase(),
            )
            .await?,
        ),
        None => None,
    };
    // Cluster balancing, once the configured services are in place; its socket is bound
    // before rvsadm is served, so a port in use stops rvsd here.
    let cluster = match s.cluster.clone() {
        Some(c) => Some(super::cluster::task::ClusterTask::bind(c, handle.clone()).await?),
        None => None,
    };
    // The L7 servers' ports are bound before rvsadm is served: one in use stops rvsd here.
    let l7 = match l7_config {
        Some((path, cfg)) => Some(super::l7::L7Task::start(path, &cfg).await?),
        None => None,
    };
    // rvsadm is served from here on: during the bulk sync, --sync shows its progress and --vrrp
    // the instances waiting for it.
    spawn(
        "control",
        Box::pin(server::serve(
            listener,
            s.socket_access,
            handle.clone(),
            sync.clone(),
        )),
    );
    if let Some(m) = monitor {
        spawn("web", Box::pin(m.serve()));
    }
    if let Some(c) = cluster {
        spawn("cluster", Box::pin(c.run()));
    }
    if let Some(t) = l7 {
        spawn("l7", Box::pin(t.run()));
    }
    if let Some(cfg) = sync_config {
        sync.start(cfg)
            .await
            .map_err(|r| anyhow::anyhow!("starting connection sync: {}", r.detail))?;
        if let Some(c) = vrrp_config
            .as_ref()
            .filter(|c| !c.vrrp_instances.is_empty())
        {
            let plan = super::vrrp::instance::plan(c)?;
            super::vrrp::status::publish_waiting(&plan, super::vrrp::status::unix_ms_now());
            info!("VRRP waits for the bulk sync");
        }
        sync.bulk_settled().await;
    }
    // The BGP speaker, once the configured services are in place: it announces what is up.
    let bgp = match bgp_config {
        Some((path, block)) => {
            Some(super::bgp::Bgp::start(path, block, handle.clone(), program.resumed).await?)
        }
        None => None,
    };
    // VRRP runs on a thread and runtime of its own, once the services are in place (a backup
    // forwards from the first packet it receives); rvsadm --vrrp reads its published status.
    let vrrp = super::vrrp::start_published(vrrp_config.as_ref())?;
    spawn("estimator", Box::pin(estimator::task(handle.clone())));
    spawn(
        "next-hop",
        Box::pin(next_hop::task(handle.clone(), neigh.clone())),
    );
    spawn(
        "expiry",
        Box::pin(expiry::task(handle.clone(), s.pin_dir.clone())),
    );
    spawn(
        "locality",
        Box::pin(locality::task(
            handle.clone(),
            s.pin_dir.clone(),
            s.lblc_expiration,
            s.lblcr_expiration,
        )),
    );
    info!("serving rvsadm on {}", s.socket.display());

    let mut term = tokio::signal::unix::signal(SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(SignalKind::interrupt())?;
    let mut keepalived = keepalived;
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: exiting"),
        _ = int.recv() => info!("SIGINT: exiting"),
        r = tasks.join_next() => match r {
            Some(Ok(name)) => warn!("the {name} task ended unexpectedly"),
            other => warn!("a task ended unexpectedly: {other:?}"),
        },
        r = async { keepalived.as_mut().expect("guarded").await }, if keepalived.is_some() => {
            warn!("the keepalived task ended unexpectedly: {r:?}");
            keepalived = None;
        }
    }
    tasks.abort_all();
    if let Some(b) = bgp {
        // The routes go first, so that traffic moves to another cluster before this one stops.
        b.stop(Duration::from_secs(3)).await;
    }
    if let Some(v) = vrrp {
        // Priority 0 to the backups and the addresses removed before anything else stops.
        v.stop(Duration::from_secs(5)).await;
    }
    if let Some(k) = keepalived {
        // Lets omega notifiers run; the table is kept for the next rvsd.
        let _ = stop_keepalived.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), k).await;
    }
    sync.stop_all().await;
    drop(handle);
    owner_task.abort();
    let names: Vec<&str> = program.interfaces.iter().map(|(n, _)| n.as_str()).collect();
    let names = names.join(", ");
    if s.detach_on_exit {
        drop(program);
        info!("detached; pinned maps kept in {}", s.pin_dir.display());
    } else {
        program.leave_attached();
        info!(
            "exited; the director stays attached to {names} and forwards the flows it holds until \
             the next rvsd takes over (rvsd --detach takes it off); pinned maps kept in {}",
            s.pin_dir.display()
        );
    }
    Ok(())
}

/// The saved model, or an empty one.
fn load_model(s: &Settings, resumed: bool) -> Result<Model> {
    Ok(match state::load(&s.state_file)? {
        Some(m) => {
            let m = m.checked(MAX_SERVICES, MAX_DESTS).map_err(|e| {
                anyhow::anyhow!(
                    "{}: {} (not loaded; fix or remove the file, or rvsd --cleanup)",
                    s.state_file.display(),
                    e.detail
                )
            })?;
            info!(
                "loaded {} services from {}{}",
                m.services.len(),
                s.state_file.display(),
                if resumed {
                    "; connections carried over"
                } else {
                    "; maps are new, connections start afresh"
                }
            );
            m
        }
        None => Model::new(MAX_SERVICES, MAX_DESTS),
    })
}
