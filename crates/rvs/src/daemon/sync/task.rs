//! The sync task: IPVS's master daemon (sending) and backup daemon (receiving), either or both
//! ([`Roles`]). keepalived's `lvs_sync_daemon` runs both at once in rvs, so the table follows
//! whichever director forwards, and a failback finds it too.
//!
//! - **Sending** (master): flows the data plane reports (new, state changes, every
//!   `sync_period` packets), less what the refresh period holds back, are turned into IPVS v1
//!   entries, packed into datagrams of at most `maxlen` bytes and sent to the group (or each
//!   peer) within [`FLUSH`] of the first one.
//! - **Receiving** (backup): datagrams from this host are ignored (loop protection), from an
//!   address that is not a configured peer dropped, authenticated when a key is set, decoded,
//!   and each entry written into this director's tables with its real server found by address.
//!   Everything dropped is counted by reason.
//! - **Bulk sync** (rvs): a starting backup asks (on the sync port) for the whole table; a
//!   master that hears it connects back by TCP and streams its live flows, then an end mark.
//!   VRRP starts only once that is over ([`SyncRunning::bulk_settled`]), so a returning director
//!   takes over with every connection the other one holds.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use futures::future::BoxFuture;
use rvs_common::conn::{Conn, ConnKey, KIND_TEMPLATE};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpSocket, TcpStream, UdpSocket},
    sync::{mpsc, watch},
    task::JoinSet,
};
use tracing::{debug, info, warn};

use super::{
    auth::{ReplayGuard, Sequence},
    config::{Roles, SyncConfig},
    convert::{self, LocalFlow},
    refresh::Refresh,
    socket,
    status::{BulkState, DaemonView, SyncStatus},
    wire,
};
use crate::{daemon::DirectorHandle, model::Model};

/// The longest an entry waits in a half-filled datagram.
pub const FLUSH: Duration = Duration::from_millis(50);
/// Flows the sender takes from the feed at a time.
const SEND_BATCH: usize = 1024;
/// How often a starting director repeats its bulk request, and how long it waits for any peer.
const BULK_ASK_EVERY: Duration = Duration::from_millis(500);
const BULK_NO_PEER: Duration = Duration::from_secs(3);
/// Datagrams of a bulk stream: as large as the header allows (TCP carries them).
const BULK_MAXLEN: usize = 65_000;
/// The bulk request: magic, version, syncid, the TCP port to connect back to.
const BULK_MAGIC: &[u8; 4] = b"RVSB";
const BULK_REQUEST_LEN: usize = 8;

/// A flow the data plane reported, and why (`rvs_common::sync::sync_reason`).
#[derive(Clone, Copy, Debug)]
pub struct Reported {
    pub key: ConnKey,
    pub conn: Conn,
    pub reason: u8,
}

/// The master's input: the queue of reported flows and the task that fills it.
pub type Feed = (mpsc::Receiver<Reported>, BoxFuture<'static, ()>);

/// Where synced flows are written and the live table is read: the connection maps.
pub trait FlowStore: Send + 'static {
    /// Writes a received flow; Err(reason) when it cannot be (counted under that name).
    fn write(&mut self, flow: &LocalFlow) -> Result<(), &'static str>;
    /// Every live flow and template, with the seconds it has left (timeouts from `model`).
    fn live(&self, model: &Model) -> Vec<(ConnKey, Conn, u32)>;
}

/// What the loops share.
struct Shared {
    cfg: SyncConfig,
    director: DirectorHandle,
    store: Mutex<Box<dyn FlowStore>>,
    status: watch::Sender<SyncStatus>,
    replay: Mutex<ReplayGuard>,
    seq: Mutex<Sequence>,
    /// This host's address on the sync interface (its own datagrams are ignored).
    local: IpAddr,
    maxlen: usize,
}

impl Shared {
    fn count(&self, f: impl FnOnce(&mut SyncStatus)) {
        self.status.send_modify(f);
    }

    fn seal(&self, message: Vec<u8>) -> Vec<u8> {
        match &self.cfg.key {
            Some(key) => {
                let seq = self.seq.lock().expect("sync sequence").advance();
                key.seal(self.local, &message, seq)
            }
            None => message,
        }
    }

    /// The message inside a datagram from `from`, or the reason it is dropped. Replays are
    /// judged by `guard`: the multicast stream's, or a bulk stream's own (the two interleave
    /// their sequence numbers).
    fn open<'a>(
        &self,
        from: IpAddr,
        datagram: &'a [u8],
        guard: &Mutex<ReplayGuard>,
    ) -> Result<&'a [u8], &'static str> {
        if !self.cfg.peers.is_empty() && !self.cfg.peers.contains(&from) {
            return Err("not_a_peer");
        }
        let Some(key) = &self.cfg.key else {
            return Ok(datagram);
        };
        let (message, seq) = key.open(from, datagram).map_err(|e| e.name())?;
        guard
            .lock()
            .expect("sync replay guard")
            .accept(from, seq)
            .map_err(|e| e.name())?;
        Ok(message)
    }

    /// Where datagrams go: each peer, or the group.
    fn destinations(&self) -> Vec<SocketAddr> {
        if self.cfg.peers.is_empty() {
            vec![SocketAddr::new(self.cfg.group, self.cfg.port)]
        } else {
            self.cfg
                .peers
                .iter()
                .map(|p| SocketAddr::new(*p, self.cfg.port))
                .collect()
        }
    }

    /// Writes the entries of a decoded message; returns how many went in.
    fn apply(&self, model: &Model, entries: &[wire::ConnEntry]) -> u64 {
        let mut store = self.store.lock().expect("sync store");
        let mut written = 0;
        let mut dropped: Vec<&'static str> = Vec::new();
        for e in entries {
            match convert::from_wire(model, e) {
                Ok(flow) => match store.write(&flow) {
                    Ok(()) => written += 1,
                    Err(reason) => dropped.push(reason),
                },
                Err(u) => dropped.push(u.name()),
            }
        }
        drop(store);
        if !dropped.is_empty() {
            self.count(|s| dropped.iter().for_each(|r| s.drop(r)));
        }
        written
    }
}

/// A running sync task.
pub struct SyncRunning {
    tasks: JoinSet<()>,
    status: watch::Receiver<SyncStatus>,
}

impl SyncRunning {
    /// The status it publishes.
    pub fn status(&self) -> watch::Receiver<SyncStatus> {
        self.status.clone()
    }

    /// Stops every loop.
    pub fn stop(mut self) {
        self.tasks.abort_all();
    }
}

/// Starts the roles of `cfg`: sending (from `feed`, the flows the data plane reports; needed by
/// a master) and receiving into `store`.
pub fn start(
    cfg: SyncConfig,
    director: DirectorHandle,
    store: Box<dyn FlowStore>,
    feed: Option<Feed>,
) -> Result<SyncRunning> {
    let (ifindex, local) = socket::interface(&cfg.interface, cfg.group.is_ipv6())?;
    let mtu = socket::mtu(&cfg.interface).unwrap_or(1500);
    let maxlen = wire::sync_maxlen(
        wire::Role::Master,
        cfg.group.is_ipv6(),
        mtu,
        cfg.maxlen.unwrap_or(0) as u32,
    ) - cfg.key.as_ref().map_or(0, |_| super::auth::TRAILER_LEN);
    let sender = socket::sender(&cfg.interface, ifindex, local, cfg.ttl)?;
    let receiver = socket::receiver(&cfg.interface, ifindex, local, cfg.group, cfg.port)?;
    let bulk = cfg.roles.backup && !cfg.bulk_timeout.is_zero();
    let status = SyncStatus {
        daemon: Some(DaemonView {
            roles: cfg.roles,
            interface: cfg.interface.clone(),
            syncid: cfg.syncid,
            maxlen: maxlen as u32,
            group: cfg.group,
            port: cfg.port,
            ttl: cfg.ttl,
            peers: cfg.peers.clone(),
            authenticated: cfg.key.is_some(),
        }),
        bulk: if bulk {
            BulkState::Running {
                from: None,
                received: 0,
            }
        } else {
            BulkState::Off
        },
        ..SyncStatus::default()
    };
    let (status_tx, status_rx) = watch::channel(status);
    super::status::publish(status_rx.clone());
    info!(
        "connection sync ({}) on {} ({local}) syncid {} with {}{}",
        roles_text(cfg.roles),
        cfg.interface,
        cfg.syncid,
        if cfg.peers.is_empty() {
            format!("{}:{}", cfg.group, cfg.port)
        } else {
            format!("peers {:?}", cfg.peers)
        },
        if cfg.key.is_some() {
            ", authenticated"
        } else {
            ""
        }
    );
    let shared = Arc::new(Shared {
        cfg,
        director,
        store: Mutex::new(store),
        status: status_tx,
        replay: Mutex::default(),
        seq: Mutex::default(),
        local,
        maxlen,
    });
    let sender = Arc::new(sender);
    let mut tasks = JoinSet::new();
    if let (true, Some((feed, reader))) = (shared.cfg.roles.master, feed) {
        tasks.spawn(reader);
        tasks.spawn(send_loop(shared.clone(), sender.clone(), feed));
    }
    // A master listens too: for the bulk requests of starting backups.
    tasks.spawn(receive_loop(shared.clone(), receiver));
    if bulk {
        tasks.spawn(bulk_request(shared, sender));
    }
    Ok(SyncRunning {
        tasks,
        status: status_rx,
    })
}

/// "master", "backup" or "master and backup".
pub fn roles_text(r: Roles) -> &'static str {
    match (r.master, r.backup) {
        (true, true) => "master and backup",
        (true, false) => "master",
        (false, true) => "backup",
        (false, false) => "none",
    }
}

/// The seconds a flow just seen has left: its state's timeout (a template's: its service's).
fn full_timeout(model: &Model, key: &ConnKey, conn: &Conn) -> u32 {
    if key.kind == KIND_TEMPLATE {
        return model
            .services
            .iter()
            .find(|s| s.index == conn.svc_id)
            .map_or(0, |s| s.config.timeout);
    }
    crate::daemon::expiry::timeout_secs(key.proto, conn.state, &model.timeouts) as u32
}

async fn send_loop(
    shared: Arc<Shared>,
    socket: Arc<UdpSocket>,
    mut feed: mpsc::Receiver<Reported>,
) {
    let mut packer = wire::Packer::new(shared.cfg.syncid, shared.maxlen);
    let timing = shared.cfg.timing;
    let mut refresh = Refresh::new(timing.refresh_period, timing.retries);
    let started = Instant::now();
    let mut deadline: Option<tokio::time::Instant> = None;
    // Flows taken from the feed at a time, with one look at the model for all of them.
    let mut batch = Vec::with_capacity(SEND_BATCH);
    loop {
        let flush_at = deadline.unwrap_or_else(|| tokio::time::Instant::now() + FLUSH);
        tokio::select! {
            got = feed.recv_many(&mut batch, SEND_BATCH) => {
                if got == 0 {
                    return;
                }
                let model = shared.director.view().model;
                let now_ms = started.elapsed().as_millis() as u64;
                for Reported { key, conn, reason } in batch.drain(..) {
                    let timeout = full_timeout(&model, &key, &conn);
                    if !refresh.admit(&key, reason, timeout, now_ms) {
                        continue;
                    }
                    // A flow of a service deleted since has nothing to say.
                    let Some(e) = convert::to_wire(&model, &key, &conn, timeout) else {
                        continue;
                    };
                    let packed = packer.count() as u64;
                    // A full datagram goes at once; the entry that did not fit starts the next.
                    if let Some(full) = packer.push(&e) {
                        send(&shared, &socket, full, packed).await;
                        deadline = None;
                    }
                    deadline.get_or_insert_with(|| tokio::time::Instant::now() + FLUSH);
                }
            }
            _ = tokio::time::sleep_until(flush_at), if deadline.is_some() => {
                let packed = packer.count() as u64;
                if let Some(d) = packer.flush() {
                    send(&shared, &socket, d, packed).await;
                }
                deadline = None;
            }
        }
    }
}

/// Sends one datagram of `conns` entries to the group or each peer.
async fn send(shared: &Shared, socket: &UdpSocket, datagram: Vec<u8>, conns: u64) {
    let datagram = shared.seal(datagram);
    let mut sent = 0;
    for to in shared.destinations() {
        match socket.send_to(&datagram, to).await {
            Ok(_) => sent += 1,
            Err(e) => debug!("sync send to {to}: {e}"),
        }
    }
    shared.count(|s| {
        s.sent_msgs += sent;
        s.sent_conns += conns;
        s.sent_bytes += sent * datagram.len() as u64;
    });
}

async fn receive_loop(shared: Arc<Shared>, socket: UdpSocket) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                warn!("sync receive: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if from.ip() == shared.local {
            continue;
        }
        receive(&shared, from.ip(), &buf[..n]).await;
    }
}

/// One datagram from `from`: a bulk request, or a sync message.
async fn receive(shared: &Arc<Shared>, from: IpAddr, datagram: &[u8]) {
    let message = match shared.open(from, datagram, &shared.replay) {
        Ok(m) => m,
        Err(reason) => {
            shared.count(|s| s.drop(reason));
            return;
        }
    };
    if message.len() == BULK_REQUEST_LEN && &message[..4] == BULK_MAGIC {
        if !shared.cfg.roles.master {
            // Only a master has a table to give.
            return;
        }
        if message[5] == shared.cfg.syncid || shared.cfg.syncid == 0 {
            let port = u16::from_be_bytes([message[6], message[7]]);
            tokio::spawn(bulk_answer(shared.clone(), SocketAddr::new(from, port)));
        } else {
            shared.count(|s| s.drop("other_syncid"));
        }
        return;
    }
    if !shared.cfg.roles.backup {
        shared.count(|s| s.drop("no_backup_daemon"));
        return;
    }
    let decoded = match wire::decode(message, shared.cfg.syncid) {
        Ok(d) => d,
        Err(reject) => {
            shared.count(|s| s.drop(reject.name()));
            return;
        }
    };
    let model = shared.director.view().model;
    let written = shared.apply(&model, &decoded.message.entries);
    shared.count(|s| {
        s.recv_msgs += 1;
        s.recv_conns += written;
        s.recv_bytes += datagram.len() as u64;
        for r in &decoded.dropped {
            s.drop(r.name());
        }
    });
}

/// Streams the live table to a director that asked for it.
async fn bulk_answer(shared: Arc<Shared>, to: SocketAddr) {
    let started = Instant::now();
    let result = async {
        // From this director's sync address: the receiver authenticates by it.
        let socket = if to.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.bind(SocketAddr::new(shared.local, 0))?;
        let mut stream = tokio::time::timeout(Duration::from_secs(3), socket.connect(to))
            .await
            .context("connecting")??;
        let s = shared.clone();
        let model = shared.director.view().model;
        let m = model.clone();
        let live =
            tokio::task::spawn_blocking(move || s.store.lock().expect("sync store").live(&m))
                .await?;
        let entries: Vec<wire::ConnEntry> = live
            .iter()
            .filter_map(|(k, c, left)| convert::to_wire(&model, k, c, *left))
            .collect();
        for d in wire::pack(shared.cfg.syncid, BULK_MAXLEN, &entries) {
            let d = shared.seal(d);
            stream.write_all(&(d.len() as u32).to_be_bytes()).await?;
            stream.write_all(&d).await?;
        }
        stream.write_all(&0u32.to_be_bytes()).await?;
        stream.flush().await?;
        anyhow::Ok(entries.len())
    }
    .await;
    match result {
        Ok(n) => info!(
            "bulk sync: sent {n} connections to {to} in {} ms",
            started.elapsed().as_millis()
        ),
        Err(e) => warn!("bulk sync to {to}: {e:#}"),
    }
}

/// Asks for the whole table until a peer streams it, no peer answers, or time runs out.
async fn bulk_request(shared: Arc<Shared>, sender: Arc<UdpSocket>) {
    let started = Instant::now();
    let settle = |state: BulkState| shared.count(|s| s.bulk = state);
    let listener = match TcpListener::bind(SocketAddr::new(shared.local, 0)).await {
        Ok(l) => l,
        Err(e) => {
            warn!("bulk sync: cannot listen on {}: {e}", shared.local);
            return settle(BulkState::NoPeer);
        }
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let mut request = Vec::with_capacity(BULK_REQUEST_LEN);
    request.extend_from_slice(BULK_MAGIC);
    request.extend_from_slice(&[1, shared.cfg.syncid]);
    request.extend_from_slice(&port.to_be_bytes());
    let deadline = started + shared.cfg.bulk_timeout;
    let mut received = 0u64;
    loop {
        if Instant::now() >= deadline {
            warn!("bulk sync timed out after {received} connections; VRRP starts");
            return settle(BulkState::TimedOut { received });
        }
        if received == 0 && started.elapsed() >= BULK_NO_PEER {
            info!("bulk sync: no peer answered; this director starts with its own table");
            return settle(BulkState::NoPeer);
        }
        let sealed = shared.seal(request.clone());
        for to in shared.destinations() {
            if let Err(e) = sender.send_to(&sealed, to).await {
                debug!("bulk request to {to}: {e}");
            }
        }
        let accepted = tokio::time::timeout(BULK_ASK_EVERY, listener.accept()).await;
        let Ok(Ok((stream, from))) = accepted else {
            continue;
        };
        if !shared.cfg.peers.is_empty() && !shared.cfg.peers.contains(&from.ip()) {
            shared.count(|s| s.drop("not_a_peer"));
            continue;
        }
        settle(BulkState::Running {
            from: Some(from.ip()),
            received,
        });
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(
            left,
            receive_bulk(&shared, stream, from.ip(), &mut received),
        )
        .await
        {
            Ok(Ok(())) => {
                let millis = started.elapsed().as_millis() as u64;
                info!("bulk sync: {received} connections from {from} in {millis} ms");
                return settle(BulkState::Done {
                    from: from.ip(),
                    received,
                    millis,
                });
            }
            // Broken off: ask again (what came stays, and comes again).
            Ok(Err(e)) => warn!("bulk sync from {from} broke off: {e:#}; asking again"),
            Err(_) => {}
        }
    }
}

/// Reads one bulk stream to its end mark.
async fn receive_bulk(
    shared: &Shared,
    mut stream: TcpStream,
    from: IpAddr,
    received: &mut u64,
) -> Result<()> {
    let mut buf = Vec::new();
    let guard = Mutex::default();
    loop {
        let len = stream.read_u32().await.context("reading a frame length")? as usize;
        if len == 0 {
            return Ok(());
        }
        if len > 70_000 {
            anyhow::bail!("a frame of {len} bytes");
        }
        buf.resize(len, 0);
        stream
            .read_exact(&mut buf)
            .await
            .context("reading a frame")?;
        let message = match shared.open(from, &buf, &guard) {
            Ok(m) => m,
            Err(reason) => {
                shared.count(|s| s.drop(reason));
                anyhow::bail!("a frame was refused: {reason}");
            }
        };
        let decoded = match wire::decode(message, shared.cfg.syncid) {
            Ok(d) => d,
            Err(r) => {
                shared.count(|s| s.drop(r.name()));
                continue;
            }
        };
        let model = shared.director.view().model;
        let written = shared.apply(&model, &decoded.message.entries);
        *received += written;
        let total = *received;
        shared.count(|s| {
            s.recv_msgs += 1;
            s.recv_conns += written;
            s.bulk = BulkState::Running {
                from: Some(from),
                received: total,
            };
        });
    }
}
