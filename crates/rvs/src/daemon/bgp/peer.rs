//! One neighbor's task: the TCP connection (connecting out every connect_retry, or taking the
//! connections the listener hands over for a passive neighbor), the session over it, and the
//! routes it carries: on every change of the decisions only the difference is sent, and the
//! whole table when the session comes up (followed by End-of-RIB when graceful restart was
//! agreed). It never installs what the peer sends.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use netgauze_bgp_pkt::{BgpMessage, notification::BgpNotificationMessage};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
    sync::{mpsc, watch},
};
use tracing::{info, warn};

use super::{
    md5,
    routes::{Decision, attrs_for},
    session::{Output, Session, State},
    status,
    wire::{self, OpenParams, RouteAttrs},
};
use crate::keepalived::bgp::{IpPrefix, Neighbor};

/// What a neighbor's task needs from the rvs_bgp block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerConfig {
    pub neighbor: Neighbor,
    pub local_as: u32,
    pub open: OpenParams,
    pub connect_retry: Duration,
}

/// Tells a neighbor's task to end its session with this NOTIFICATION (a Cease).
pub type Stop = watch::Receiver<Option<BgpNotificationMessage>>;

pub async fn run(
    mut cfg: PeerConfig,
    mut decisions: watch::Receiver<Arc<Vec<Decision>>>,
    mut incoming: mpsc::Receiver<TcpStream>,
    mut stop: Stop,
) {
    let address = cfg.neighbor.address;
    let mut next: Option<TcpStream> = None;
    loop {
        let stream = match next.take() {
            Some(s) => s,
            None => {
                set_state(
                    address,
                    if cfg.neighbor.passive {
                        State::Active
                    } else {
                        State::Connect
                    },
                );
                tokio::select! {
                    s = connect(&cfg), if !cfg.neighbor.passive => match s {
                        Ok(s) => s,
                        Err(e) => {
                            status::update_neighbor(address, |n| n.last_error = Some(format!("connect: {e}")));
                            set_state(address, State::Idle);
                            tokio::select! {
                                _ = tokio::time::sleep(cfg.connect_retry) => {}
                                Some(s) = incoming.recv() => next = Some(s),
                                _ = stop.changed() => return,
                            }
                            continue;
                        }
                    },
                    Some(s) = incoming.recv() => s,
                    _ = stop.changed() => return,
                }
            }
        };
        let ended = session(&cfg, stream, &mut decisions, &mut incoming, &mut stop).await;
        if ended.was_established {
            // The R and F bits speak of the first session after a restart only.
            cfg.open.restarted = false;
        }
        info!("BGP neighbor {address}: session ended: {}", ended.why);
        status::update_neighbor(address, |n| {
            n.last_error = Some(ended.why.clone());
            n.announced.clear();
        });
        set_state(address, State::Idle);
        if ended.stopped {
            return;
        }
        if let Some(s) = ended.replaced_by {
            next = Some(s);
            continue;
        }
        if !cfg.neighbor.passive {
            tokio::select! {
                _ = tokio::time::sleep(cfg.connect_retry) => {}
                Some(s) = incoming.recv() => next = Some(s),
                _ = stop.changed() => return,
            }
        }
    }
}

fn set_state(address: IpAddr, state: State) {
    status::update_neighbor(address, |n| {
        if n.state != state {
            n.state = state;
            n.since_unix_ms = crate::daemon::vrrp::status::unix_ms_now();
        }
    });
}

async fn connect(cfg: &PeerConfig) -> std::io::Result<TcpStream> {
    let n = &cfg.neighbor;
    let socket = if n.address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(local) = n.local_address {
        socket.bind(SocketAddr::new(local, 0))?;
    }
    if let Some(key) = &n.md5_password {
        md5::set_key(&socket, n.address, key.as_bytes())?;
    }
    let remote = SocketAddr::new(n.address, n.port);
    match tokio::time::timeout(
        cfg.connect_retry.max(Duration::from_secs(1)),
        socket.connect(remote),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "timed out",
        )),
    }
}

struct Ended {
    why: String,
    /// The session reached Established.
    was_established: bool,
    /// rvsd asked the session to stop: the task ends.
    stopped: bool,
    /// A new connection from a passive neighbor replaced this one.
    replaced_by: Option<TcpStream>,
}

impl Ended {
    fn because(why: impl Into<String>) -> Ended {
        Ended {
            why: why.into(),
            was_established: false,
            stopped: false,
            replaced_by: None,
        }
    }
}

/// The routes a session carries to this neighbor, from the decisions.
fn wanted(
    cfg: &PeerConfig,
    decisions: &[Decision],
    local: IpAddr,
    ipv4: bool,
    ipv6: bool,
) -> BTreeMap<IpPrefix, RouteAttrs> {
    decisions
        .iter()
        .filter(|d| if d.prefix.addr.is_ipv4() { ipv4 } else { ipv6 })
        .filter_map(|d| {
            let a = d.announce.as_ref()?;
            Some((
                d.prefix,
                attrs_for(&d.prefix, a, cfg.local_as, &cfg.neighbor, local)?,
            ))
        })
        .collect()
}

/// The UPDATEs that take the peer from `sent` to `want`.
fn difference(
    sent: &BTreeMap<IpPrefix, RouteAttrs>,
    want: &BTreeMap<IpPrefix, RouteAttrs>,
    asn4: bool,
) -> Vec<BgpMessage> {
    let gone: Vec<IpPrefix> = sent
        .keys()
        .filter(|p| !want.contains_key(p))
        .copied()
        .collect();
    let mut by_attrs: BTreeMap<&RouteAttrs, Vec<IpPrefix>> = BTreeMap::new();
    for (p, a) in want {
        if sent.get(p) != Some(a) {
            by_attrs.entry(a).or_default().push(*p);
        }
    }
    let mut out = wire::withdraw(&gone);
    for (a, ps) in by_attrs {
        out.extend(wire::announce(&ps, a, asn4));
    }
    out
}

async fn session(
    cfg: &PeerConfig,
    stream: TcpStream,
    decisions: &mut watch::Receiver<Arc<Vec<Decision>>>,
    incoming: &mut mpsc::Receiver<TcpStream>,
    stop: &mut Stop,
) -> Ended {
    let mut established = false;
    let mut ended = run_session(cfg, stream, decisions, incoming, stop, &mut established).await;
    ended.was_established = established;
    ended
}

/// How long a write may wait on a peer that does not read before the session is given up
/// (RFC 4271 §6.5's hold timer would fire were the session not blocked in the write).
fn write_limit(cfg: &PeerConfig) -> Duration {
    Duration::from_secs(u64::from(cfg.open.hold_time).max(10))
}

async fn run_session(
    cfg: &PeerConfig,
    stream: TcpStream,
    decisions: &mut watch::Receiver<Arc<Vec<Decision>>>,
    incoming: &mut mpsc::Receiver<TcpStream>,
    stop: &mut Stop,
    was_established: &mut bool,
) -> Ended {
    let address = cfg.neighbor.address;
    let limit = write_limit(cfg);
    let local = match stream.local_addr() {
        Ok(a) => a.ip().to_canonical(),
        Err(e) => return Ended::because(format!("local address: {e}")),
    };
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let mut s = Session::new(cfg.open.clone(), cfg.neighbor.remote_as);
    let mut buf: Vec<u8> = Vec::with_capacity(2 * wire::MAX_MESSAGE_LEN);
    let mut sent: BTreeMap<IpPrefix, RouteAttrs> = BTreeMap::new();
    let mut outputs = s.connected(Instant::now());
    let mut families = (false, false);
    loop {
        // Carry out what the session asked for, in order.
        for o in std::mem::take(&mut outputs) {
            match o {
                Output::Send(m) => {
                    if let Err(e) = send(&mut wr, address, &m, limit).await {
                        return Ended::because(format!("write: {e}"));
                    }
                }
                Output::Established(n) => {
                    families = (n.ipv4, n.ipv6);
                    *was_established = true;
                    info!(
                        "BGP neighbor {address}: Established (hold time {} s{})",
                        n.hold_time.as_secs(),
                        if n.graceful_restart {
                            ", graceful restart"
                        } else {
                            ""
                        }
                    );
                    status::update_neighbor(address, |st| {
                        st.established += 1;
                        st.hold_time = Some(n.hold_time.as_secs());
                        st.graceful_restart = n.graceful_restart;
                        st.last_error = None;
                    });
                    set_state(address, State::Established);
                    let want = wanted(cfg, &decisions.borrow_and_update(), local, n.ipv4, n.ipv6);
                    let mut msgs = difference(&sent, &want, n.asn4);
                    if n.graceful_restart {
                        msgs.extend(wire::end_of_rib(n.ipv4, n.ipv6));
                    }
                    for m in &msgs {
                        if let Err(e) = send(&mut wr, address, m, limit).await {
                            return Ended::because(format!("write: {e}"));
                        }
                    }
                    sent = want;
                    publish_announced(address, &sent);
                }
                Output::Close(why) => {
                    linger(wr, rd).await;
                    return Ended::because(why);
                }
            }
        }
        let deadline = s.next_deadline();
        let established = s.state() == State::Established;
        tokio::select! {
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) => {
                    s.disconnected();
                    return Ended::because("the peer closed the connection");
                }
                Ok(_) => {
                    let now = Instant::now();
                    while let Some(len) = wire::frame_len(&buf) {
                        let frame: Vec<u8> = buf.drain(..len.min(buf.len())).collect();
                        status::update_neighbor(address, |n| n.messages_in += 1);
                        match wire::decode(&frame, s.asn4()) {
                            Ok(m) => {
                                if matches!(m, BgpMessage::Notification(_)) {
                                    status::update_neighbor(address, |n| n.notifications_in += 1);
                                }
                                outputs.extend(s.received(m, now));
                            }
                            Err(_) if frame.get(18) == Some(&3) => {
                                // A NOTIFICATION is never answered with one (RFC 4271 §6.4).
                                status::update_neighbor(address, |st| st.malformed += 1);
                                s.disconnected();
                                linger(wr, rd).await;
                                return Ended::because("received a malformed NOTIFICATION");
                            }
                            Err(n) => {
                                warn!("BGP neighbor {address}: malformed message: {}", wire::notification_name(&n));
                                status::update_neighbor(address, |st| st.malformed += 1);
                                outputs.extend(s.malformed(n));
                                // Nothing after a malformed message can be trusted.
                                buf.clear();
                                break;
                            }
                        }
                        if outputs.iter().any(|o| matches!(o, Output::Close(_))) {
                            break;
                        }
                    }
                }
                Err(e) => {
                    s.disconnected();
                    return Ended::because(format!("read: {e}"));
                }
            },
            _ = sleep_until(deadline) => outputs = s.tick(Instant::now()),
            r = decisions.changed(), if established => {
                if r.is_err() {
                    outputs = s.stop(wire::cease_shutdown());
                    continue;
                }
                let want = wanted(cfg, &decisions.borrow_and_update(), local, families.0, families.1);
                for m in difference(&sent, &want, s.asn4()) {
                    if let Err(e) = send(&mut wr, address, &m, limit).await {
                        return Ended::because(format!("write: {e}"));
                    }
                }
                sent = want;
                publish_announced(address, &sent);
            }
            Some(newer) = incoming.recv() => {
                // RFC 4271 §6.8: an Established session stays and the newer connection goes,
                // unless graceful restart was agreed, when a new connection means the peer
                // restarted (RFC 4724 §4.2). Before Established, the newer one is taken.
                let graceful = s.negotiated().is_some_and(|n| n.graceful_restart);
                if established && !graceful {
                    warn!("BGP neighbor {address}: a second connection refused (the session is Established)");
                    drop(newer);
                    continue;
                }
                let _ = wr.shutdown().await;
                return Ended {
                    why: "replaced by a new connection from the peer".into(),
                    was_established: false,
                    stopped: false,
                    replaced_by: Some(newer),
                };
            }
            _ = stop.changed() => {
                let n = stop.borrow().clone().unwrap_or_else(wire::cease_shutdown);
                for o in s.stop(n) {
                    if let Output::Send(m) = o {
                        let _ = send(&mut wr, address, &m, limit).await;
                    }
                }
                linger(wr, rd).await;
                return Ended { why: "stopped by rvsd".into(), was_established: false, stopped: true, replaced_by: None };
            }
        }
    }
}

/// Closes our side and reads what the peer still sends (for a second at most), so that the
/// kernel does not answer unread data with a reset that would drop the NOTIFICATION unsent.
async fn linger(mut wr: tokio::net::tcp::OwnedWriteHalf, mut rd: tokio::net::tcp::OwnedReadHalf) {
    let _ = wr.shutdown().await;
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while matches!(rd.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

async fn send(
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    address: IpAddr,
    m: &BgpMessage,
    limit: Duration,
) -> std::io::Result<()> {
    let bytes = wire::send_bytes(m)?;
    match tokio::time::timeout(limit, wr.write_all(&bytes)).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the peer read nothing for the hold time",
            ));
        }
    }
    status::update_neighbor(address, |n| {
        n.messages_out += 1;
        match m {
            BgpMessage::Update(_) => n.updates_out += 1,
            BgpMessage::Notification(_) => n.notifications_out += 1,
            _ => {}
        }
    });
    Ok(())
}

fn publish_announced(address: IpAddr, sent: &BTreeMap<IpPrefix, RouteAttrs>) {
    let list = sent.keys().map(|p| p.to_string()).collect();
    status::update_neighbor(address, |n| n.announced = list);
}
