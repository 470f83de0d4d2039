//! The BGP speaker's task: decides which prefixes are announced whenever the director's table,
//! a service's quorum or a VRRP instance's state changes, hands the decisions to one task per
//! neighbor ([`super::peer`]), accepts the connections of passive neighbors (refusing every
//! other address), and re-reads keepalived.conf's rvs_bgp block on SIGHUP: a neighbor whose
//! settings did not change keeps its session, only the routes that changed are sent.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr, SocketAddr},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, Result};
use netgauze_bgp_pkt::notification::{BgpNotificationMessage, CeaseError};
use tokio::{
    net::{TcpListener, TcpStream},
    signal::unix::{SignalKind, signal},
    sync::{mpsc, oneshot, watch},
    task::JoinHandle,
};
use tracing::{error, info, warn};

use super::{
    md5,
    peer::{self, PeerConfig},
    routes::{self, Decision, Inputs},
    session::State,
    status::{self, BgpStatus, NeighborStatus, PrefixStatus},
    wire::OpenParams,
};
use crate::{
    daemon::{DirectorHandle, drain, health, view::DirectorView, vrrp},
    keepalived::bgp::{BgpBlock, Neighbor},
};

/// The running speaker.
pub struct Bgp {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Bgp {
    /// Binds the listener for passive neighbors (an error stops rvsd before it serves) and
    /// starts the task. `restarted`: the data plane was carried over from an earlier rvsd,
    /// which graceful restart tells the peers (the R bit).
    pub async fn start(
        path: PathBuf,
        block: BgpBlock,
        director: DirectorHandle,
        restarted: bool,
    ) -> Result<Bgp> {
        let hangup = signal(SignalKind::hangup())?;
        let listener = bind(&block).await?;
        let (stop, stopped) = oneshot::channel();
        let speaker = Speaker::new(path, director, restarted);
        let task = tokio::spawn(speaker.run(block, listener, hangup, stopped));
        Ok(Bgp {
            stop: Some(stop),
            task,
        })
    }

    /// Ends every session with a Cease (the peers withdraw the routes at once), within `grace`.
    pub async fn stop(mut self, grace: Duration) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if tokio::time::timeout(grace, &mut self.task).await.is_err() {
            self.task.abort();
        }
        status::clear();
    }
}

/// The listener for passive neighbors, on every address of both families.
async fn bind(block: &BgpBlock) -> Result<Option<TcpListener>> {
    if !block.neighbors.iter().any(|n| n.passive) {
        return Ok(None);
    }
    let addr = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), block.listen_port);
    let socket = socket2::Socket::new(
        socket2::Domain::IPV6,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_only_v6(false)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket
        .bind(&addr.into())
        .with_context(|| format!("rvs_bgp: listening on port {}", block.listen_port))?;
    socket.listen(64)?;
    let l = TcpListener::from_std(socket.into())?;
    set_keys(&l, block);
    Ok(Some(l))
}

/// The MD5 keys of the passive neighbors on the listener (IPv4 ones as mapped addresses).
fn set_keys(l: &TcpListener, block: &BgpBlock) {
    for n in block.neighbors.iter().filter(|n| n.passive) {
        let key = n.md5_password.as_deref().unwrap_or("");
        let peer = match n.address {
            IpAddr::V4(a) => IpAddr::V6(a.to_ipv6_mapped()),
            a => a,
        };
        if let Err(e) = md5::set_key(l, peer, key.as_bytes())
            && !key.is_empty()
        {
            error!("BGP neighbor {}: setting its TCP MD5 key: {e}", n.address);
        }
    }
}

struct PeerHandle {
    cfg: PeerConfig,
    stop: watch::Sender<Option<BgpNotificationMessage>>,
    task: JoinHandle<()>,
}

struct Speaker {
    path: PathBuf,
    director: DirectorHandle,
    restarted: bool,
    peers: HashMap<IpAddr, PeerHandle>,
    /// Where the listener hands a passive neighbor's connections.
    passive: Arc<Mutex<HashMap<IpAddr, mpsc::Sender<TcpStream>>>>,
    decisions: watch::Sender<Arc<Vec<Decision>>>,
}

/// A neighbor's settings without where they were written, to tell a real change from a line
/// that moved.
fn same_neighbor(a: &Neighbor, b: &Neighbor) -> bool {
    Neighbor {
        pos: b.pos.clone(),
        ..a.clone()
    } == *b
}

fn peer_config(block: &BgpBlock, n: &Neighbor, restarted: bool) -> PeerConfig {
    PeerConfig {
        neighbor: n.clone(),
        local_as: block.local_as,
        open: OpenParams {
            local_as: block.local_as,
            hold_time: n.hold_time.unwrap_or(block.hold_time),
            router_id: block.router_id.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
            ipv4: true,
            ipv6: true,
            graceful_restart: block.graceful_restart,
            restarted,
        },
        connect_retry: block.connect_retry,
    }
}

fn neighbor_status(n: &Neighbor) -> NeighborStatus {
    NeighborStatus {
        address: n.address,
        remote_as: n.remote_as,
        passive: n.passive,
        state: State::Idle,
        since_unix_ms: vrrp::status::unix_ms_now(),
        last_error: None,
        hold_time: None,
        graceful_restart: false,
        announced: Vec::new(),
        established: 0,
        messages_in: 0,
        messages_out: 0,
        updates_out: 0,
        notifications_in: 0,
        notifications_out: 0,
        malformed: 0,
    }
}

fn cease(e: CeaseError) -> BgpNotificationMessage {
    BgpNotificationMessage::CeaseError(e)
}

impl Speaker {
    fn new(path: PathBuf, director: DirectorHandle, restarted: bool) -> Speaker {
        Speaker {
            path,
            director,
            restarted,
            peers: HashMap::new(),
            passive: Default::default(),
            decisions: watch::channel(Arc::new(Vec::new())).0,
        }
    }

    async fn run(
        mut self,
        mut block: BgpBlock,
        mut listener: Option<TcpListener>,
        mut hangup: tokio::signal::unix::Signal,
        mut stopped: oneshot::Receiver<()>,
    ) {
        status::update(|s| {
            *s = BgpStatus {
                router_id: block.router_id.map(|r| r.to_string()).unwrap_or_default(),
                local_as: block.local_as,
                ..Default::default()
            }
        });
        let mut view = self.director.subscribe();
        let mut quorum = health::quorum();
        let mut vrrp_status = vrrp::status::subscribe();
        let mut drain_state = drain::subscribe();
        self.apply(&block, None).await;
        self.decide(
            &block,
            &view.borrow_and_update(),
            &quorum.borrow_and_update(),
        );
        // VRRP starts after the speaker: its status is looked for until it appears.
        let mut look_for_vrrp = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = view.changed() => {}
                _ = quorum.changed() => {}
                _ = drain_state.changed() => {}
                r = async { vrrp_status.as_mut().expect("guarded").changed().await }, if vrrp_status.is_some() => {
                    if r.is_err() {
                        vrrp_status = None;
                    }
                }
                _ = look_for_vrrp.tick(), if vrrp_status.is_none() => {
                    vrrp_status = vrrp::status::subscribe();
                    if vrrp_status.is_none() {
                        continue;
                    }
                }
                accepted = accept(listener.as_ref()) => {
                    self.hand_over(accepted);
                    continue;
                }
                _ = hangup.recv() => {
                    let (b, l) = self.reload(&block, listener.take()).await;
                    block = b;
                    listener = l;
                }
                _ = &mut stopped => break,
            }
            let v = view.borrow_and_update().clone();
            let q = quorum.borrow_and_update().clone();
            self.decide(&block, &v, &q);
        }
        let shutdown = cease(CeaseError::AdministrativeShutdown {
            value: vec![].into(),
        });
        // Every session is told at once, so that one slow peer delays no other's Cease.
        let peers: Vec<PeerHandle> = self.peers.drain().map(|(_, p)| p).collect();
        for p in &peers {
            let _ = p.stop.send(Some(shutdown.clone()));
        }
        for p in peers {
            let _ = p.task.await;
        }
    }

    /// Whether each service is up, and each VRRP instance MASTER, right now.
    fn inputs(view: &DirectorView, quorum: &[(crate::model::ServiceId, bool)]) -> Inputs {
        let quorum: HashMap<_, _> = quorum.iter().copied().collect();
        let services = view
            .model
            .services
            .iter()
            .map(|s| {
                let up = quorum
                    .get(&s.id)
                    .copied()
                    .unwrap_or_else(|| s.dests.iter().any(|d| d.config.weight > 0));
                (s.id, up)
            })
            .collect();
        let vrrp = vrrp::status::current()
            .instances
            .into_iter()
            .map(|i| (i.name, i.state == vrrp::machine::State::Master))
            .collect();
        Inputs {
            services,
            vrrp,
            draining: drain::draining(),
        }
    }

    fn decide(
        &mut self,
        block: &BgpBlock,
        view: &DirectorView,
        quorum: &[(crate::model::ServiceId, bool)],
    ) {
        let decisions = routes::decide(block, &Self::inputs(view, quorum));
        if **self.decisions.borrow() == decisions {
            return;
        }
        let now = vrrp::status::unix_ms_now();
        // Looked up by prefix, not searched: a decision covers every prefix, and a director may
        // announce thousands.
        status::update(|s| {
            let old: HashMap<(String, bool), u64> = std::mem::take(&mut s.prefixes)
                .into_iter()
                .map(|p| ((p.prefix, p.announced), p.since_unix_ms))
                .collect();
            s.prefixes = decisions
                .iter()
                .map(|d| {
                    let announced = d.announce.is_some();
                    let prefix = d.prefix.to_string();
                    let since = old
                        .get(&(prefix.clone(), announced))
                        .copied()
                        .unwrap_or(now);
                    PrefixStatus {
                        prefix,
                        announced,
                        why: d.why.clone(),
                        since_unix_ms: since,
                    }
                })
                .collect();
        });
        let before: HashMap<_, bool> = self
            .decisions
            .borrow()
            .iter()
            .map(|o| (o.prefix, o.announce.is_some()))
            .collect();
        for d in &decisions {
            let was = before.get(&d.prefix).copied();
            if was != Some(d.announce.is_some()) {
                info!("BGP prefix {}: {}", d.prefix, d.why);
            }
        }
        self.decisions.send_replace(Arc::new(decisions));
    }

    /// Starts, keeps or restarts each neighbor's task for `block` (`old`: the block before a
    /// reload).
    async fn apply(&mut self, block: &BgpBlock, old: Option<&BgpBlock>) {
        let global_same = old.is_some_and(|o| {
            o.local_as == block.local_as
                && o.router_id == block.router_id
                && o.hold_time == block.hold_time
                && o.graceful_restart == block.graceful_restart
                && o.connect_retry == block.connect_retry
        });
        // Neighbors that left, or whose settings changed.
        let addrs: Vec<IpAddr> = self.peers.keys().copied().collect();
        for a in addrs {
            let keep = block.neighbors.iter().find(|n| n.address == a);
            let reason = match keep {
                None => Some(CeaseError::PeerDeConfigured {
                    value: vec![].into(),
                }),
                Some(n) if !global_same || !same_neighbor(&self.peers[&a].cfg.neighbor, n) => {
                    Some(CeaseError::OtherConfigurationChange {
                        value: vec![].into(),
                    })
                }
                Some(_) => None,
            };
            if let Some(r) = reason {
                let p = self.peers.remove(&a).expect("listed");
                let _ = p.stop.send(Some(cease(r)));
                // The old task's last words reach the status before the new task's first.
                let mut task = p.task;
                if tokio::time::timeout(Duration::from_secs(3), &mut task)
                    .await
                    .is_err()
                {
                    task.abort();
                }
                self.passive.lock().expect("passive").remove(&a);
                info!(
                    "BGP neighbor {a}: {}",
                    if keep.is_some() {
                        "settings changed, session restarted"
                    } else {
                        "no longer configured"
                    }
                );
            }
        }
        status::update(|s| {
            s.router_id = block.router_id.map(|r| r.to_string()).unwrap_or_default();
            s.local_as = block.local_as;
            s.neighbors
                .retain(|st| block.neighbors.iter().any(|n| n.address == st.address));
        });
        for n in &block.neighbors {
            if self.peers.contains_key(&n.address) {
                continue;
            }
            let cfg = peer_config(block, n, self.restarted);
            let (stop, stop_rx) = watch::channel(None);
            let (incoming, incoming_rx) = mpsc::channel(2);
            status::update(|s| {
                s.neighbors.retain(|st| st.address != n.address);
                s.neighbors.push(neighbor_status(n));
            });
            if n.passive {
                self.passive
                    .lock()
                    .expect("passive")
                    .insert(n.address, incoming.clone());
            }
            let task = tokio::spawn(peer::run(
                cfg.clone(),
                self.decisions.subscribe(),
                incoming_rx,
                stop_rx,
            ));
            self.peers.insert(n.address, PeerHandle { cfg, stop, task });
        }
    }

    /// A connection on the listener: to its passive neighbor's task, or refused.
    fn hand_over(&mut self, accepted: std::io::Result<(TcpStream, SocketAddr)>) {
        let (stream, from) = match accepted {
            Ok(a) => a,
            Err(e) => {
                warn!("BGP listener: {e}");
                return;
            }
        };
        let ip = from.ip().to_canonical();
        let to = self.passive.lock().expect("passive").get(&ip).cloned();
        match to {
            Some(tx) if tx.try_send(stream).is_ok() => {}
            _ => {
                warn!("BGP: connection from {from} refused: not a passive neighbor");
                status::update(|s| s.refused += 1);
            }
        }
    }

    /// SIGHUP: the new block, or None when the file does not load (the running one stays).
    async fn reload(
        &mut self,
        block: &BgpBlock,
        listener: Option<TcpListener>,
    ) -> (BgpBlock, Option<TcpListener>) {
        let new = match crate::daemon::keepalived::load_off_thread(&self.path).await {
            Ok(cfg) => match cfg.bgp {
                Some(b) => b,
                None => {
                    warn!(
                        "{}: reloaded without rvs_bgp: every session ends",
                        self.path.display()
                    );
                    let mut empty = block.clone();
                    empty.neighbors.clear();
                    empty.prefixes.clear();
                    empty
                }
            },
            Err(e) => {
                error!("{e}");
                error!(
                    "{}: rvs_bgp not reloaded; the running sessions stay",
                    self.path.display()
                );
                return (block.clone(), listener);
            }
        };
        let listener = if new.listen_port != block.listen_port
            || new.neighbors.iter().any(|n| n.passive) != listener.is_some()
        {
            drop(listener);
            match bind(&new).await {
                Ok(l) => l,
                Err(e) => {
                    error!("{e:#}; passive neighbors are not served");
                    None
                }
            }
        } else {
            if let Some(l) = &listener {
                set_keys(l, &new);
            }
            listener
        };
        self.apply(&new, Some(block)).await;
        info!(
            "{}: rvs_bgp reloaded ({} neighbors, {} prefixes)",
            self.path.display(),
            new.neighbors.len(),
            new.prefixes.len()
        );
        (new, listener)
    }
}

async fn accept(l: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}
