//! The cluster task: sends this cluster's load to every peer each `period` (and once at start),
//! receives theirs, decides per peer ([`super::balance`]) every second and on every report, and
//! applies the decision through the director: the peer's director as a tunnel destination of
//! each forwarded service, with the peer's weight while forwarding, weight 0 otherwise. It reads
//! the director's view and asks for changes with messages, as rvsadm does; it never waits on
//! another task but the director.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use anyhow::{Context, Result};
use tokio::{net::UdpSocket, time::Instant};
use tracing::{debug, info, warn};

use super::{
    ClusterSettings,
    balance::{self, PeerBalance, Thresholds},
    show_load,
    status::{self, ClusterStatus, PeerStatus},
    wire::{self, Report},
};
use crate::{
    control::proto::{Request, Response, ServiceView},
    daemon::{
        DirectorHandle,
        sync::auth::{ReplayGuard, Sequence},
        vrrp::status::unix_ms_now,
    },
    model::{DestAddr, DestConfig, FwdMethod, ServiceId, TunCsum, TunType},
};

/// The longest between two decisions.
const DECIDE_EVERY: Duration = Duration::from_secs(1);

/// The running task's state.
pub struct ClusterTask {
    s: ClusterSettings,
    director: DirectorHandle,
    socket: UdpSocket,
    seq: Sequence,
    guard: ReplayGuard,
    balance: Vec<PeerBalance>,
    thresholds: Thresholds,
    status: ClusterStatus,
    start: Instant,
    /// The last error each destination change met (logged once until it changes).
    errors: HashMap<(ServiceId, DestAddr), String>,
}

/// A tunnel destination of `weight`: IPIP, as `-i` gives it.
fn tunnel(weight: i32) -> DestConfig {
    DestConfig {
        fwd: FwdMethod::Tunnel,
        weight,
        u_threshold: 0,
        l_threshold: 0,
        tun_type: TunType::Ipip,
        tun_port: 0,
        tun_csum: TunCsum::NoCsum,
    }
}

/// The destination a peer's director is in `service`: on the service's port (a fwmark service's
/// 0, the port the client asked for).
fn remote_dest(service: &ServiceId, director: IpAddr) -> DestAddr {
    let port = match service {
        ServiceId::Inet { port, .. } => *port,
        ServiceId::Fwmark { .. } => 0,
    };
    DestAddr {
        addr: director,
        port,
    }
}

impl ClusterTask {
    /// Binds the report socket (an error stops rvsd before it serves).
    pub async fn bind(s: ClusterSettings, director: DirectorHandle) -> Result<ClusterTask> {
        let socket = UdpSocket::bind(s.block.listen)
            .await
            .with_context(|| format!("rvs_cluster: binding {}", s.block.listen))?;
        let period = s.block.period.as_millis() as u64;
        let thresholds = Thresholds {
            start_above: s.block.start_above,
            stop_at: s.block.stop_at,
            remote_below: s.block.remote_below,
            stale_after_ms: period * balance::STALE_PERIODS,
        };
        let status = ClusterStatus {
            name: s.block.name.clone(),
            listen: Some(s.block.listen),
            period_ms: period,
            capacity_per_weight: s.block.capacity_per_weight,
            start_above: s.block.start_above,
            stop_at: s.block.stop_at,
            remote_below: s.block.remote_below,
            ..ClusterStatus::default()
        };
        let balance = s.block.peers.iter().map(|_| PeerBalance::new(0)).collect();
        status::publish(status.clone());
        info!(
            "cluster {}: reports on {} every {:?} to {} peers",
            s.block.name,
            s.block.listen,
            s.block.period,
            s.block.peers.len()
        );
        Ok(ClusterTask {
            s,
            director,
            socket,
            seq: Sequence::new(),
            guard: ReplayGuard::default(),
            balance,
            thresholds,
            status,
            start: Instant::now(),
            errors: HashMap::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Runs until the task is aborted.
    pub async fn run(mut self) {
        let mut send = tokio::time::interval(self.s.block.period);
        send.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut decide = tokio::time::interval(self.s.block.period.min(DECIDE_EVERY));
        decide.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut buf = vec![0u8; 2048];
        loop {
            tokio::select! {
                _ = send.tick() => self.send().await,
                _ = decide.tick() => self.decide().await,
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        if self.receive(&buf[..n], from) {
                            self.decide().await;
                        } else {
                            status::publish(self.status.clone());
                        }
                    }
                    Err(e) => {
                        debug!("cluster: receiving: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
    }

    /// The services as rvsadm lists them (counters, active connections).
    async fn services(&self) -> Option<Vec<ServiceView>> {
        match self
            .director
            .request(Request::ListServices { service: None })
            .await
        {
            Response::Services { services } => Some(services),
            other => {
                debug!("cluster: cannot list the services: {other:?}");
                None
            }
        }
    }

    fn local_load(&self, services: &[ServiceView]) -> Option<u32> {
        balance::local_load(
            services,
            &self.s.services,
            &self.s.directors(),
            self.s.block.capacity_per_weight,
        )
    }

    /// This cluster's report to each peer.
    async fn send(&mut self) {
        let Some(services) = self.services().await else {
            return;
        };
        let local = self.local_load(&services);
        self.status.local_load = local;
        let report = Report {
            cluster: self.s.block.name.clone(),
            // A cluster without capacity takes nothing.
            load: local.unwrap_or(u32::MAX),
            sent_at_ms: unix_ms_now(),
        };
        for p in &self.s.block.peers {
            let sealed = wire::seal(
                &self.s.key,
                self.s.block.listen.ip(),
                &report,
                self.seq.advance(),
            );
            match self.socket.send_to(&sealed, p.address).await {
                Ok(_) => self.status.reports_sent += 1,
                Err(e) => {
                    self.status.send_errors += 1;
                    debug!("cluster: report to {} ({}): {e}", p.name, p.address);
                }
            }
        }
        status::publish(self.status.clone());
    }

    /// Takes a datagram; true when it was a report.
    fn receive(&mut self, datagram: &[u8], from: SocketAddr) -> bool {
        let peers = &self.s.block.peers;
        let opened = wire::open(&self.s.key, &mut self.guard, from.ip(), datagram, |a| {
            peers
                .iter()
                .find(|p| p.address.ip() == a)
                .map(|p| p.name.clone())
        });
        match opened {
            Ok(r) => {
                let now = self.now_ms();
                if let Some(i) = peers.iter().position(|p| p.name == r.cluster) {
                    self.balance[i].report(r.load, now);
                    self.status.reports_received += 1;
                    debug!("cluster: {} reports load {}", r.cluster, show_load(r.load));
                }
                true
            }
            Err(why) => {
                let first = !self.status.dropped.contains_key(why.name());
                self.status.drop(why.name());
                if first {
                    warn!(
                        "cluster: dropped a report from {from}: {} (counted; logged once)",
                        why.name()
                    );
                }
                false
            }
        }
    }

    /// Decides with the local load now, applies, publishes.
    async fn decide(&mut self) {
        let Some(services) = self.services().await else {
            return;
        };
        let local = self.local_load(&services);
        self.status.local_load = local;
        let now = self.now_ms();
        for (i, p) in self.s.block.peers.iter().enumerate() {
            let b = &mut self.balance[i];
            if b.decide(&self.thresholds, local, now) {
                info!(
                    "cluster: {} forwarding new connections to {} ({}): local load {}, {} load {}",
                    if b.forwarding { "starts" } else { "stops" },
                    p.name,
                    b.reason.describe(),
                    local.map_or("unknown".to_owned(), show_load),
                    p.name,
                    b.remote_load(&self.thresholds, now)
                        .map_or("unknown".to_owned(), show_load),
                );
            }
        }
        self.apply(&services).await;
        self.publish(&services);
    }

    /// Brings each peer's tunnel destinations to the decided weight.
    async fn apply(&mut self, services: &[ServiceView]) {
        let mut changes = Vec::new();
        for (i, p) in self.s.block.peers.iter().enumerate() {
            let on = self.balance[i].forwarding;
            let wanted = tunnel(if on { p.weight } else { 0 });
            for id in &self.s.forwarded[i] {
                let Some(svc) = services.iter().find(|s| s.service == *id) else {
                    continue;
                };
                let dest = remote_dest(id, p.director);
                let current = svc.dests.iter().find(|d| d.dest == dest);
                let req = match current {
                    Some(d) if d.config == wanted => continue,
                    Some(_) => Request::EditDest {
                        service: *id,
                        dest,
                        config: wanted.clone(),
                    },
                    None if on => Request::AddDest {
                        service: *id,
                        dest,
                        config: wanted.clone(),
                    },
                    None => continue,
                };
                changes.push((*id, dest, req));
            }
        }
        for (id, dest, req) in changes {
            let what = match &req {
                Request::AddDest { config, .. } => {
                    format!("adding {dest} to {id} (tunnel, weight {})", config.weight)
                }
                Request::EditDest { config, .. } => {
                    format!("setting {dest} of {id} to weight {}", config.weight)
                }
                _ => unreachable!("only adds and edits"),
            };
            match self.director.request(req).await {
                Response::Error { detail, .. } => {
                    if self.errors.get(&(id, dest)) != Some(&detail) {
                        warn!("cluster: {what}: {detail}");
                        self.errors.insert((id, dest), detail);
                    }
                }
                _ => {
                    info!("cluster: {what}");
                    self.errors.remove(&(id, dest));
                }
            }
        }
    }

    fn publish(&mut self, services: &[ServiceView]) {
        let now = self.now_ms();
        let wall = unix_ms_now();
        let at = |ms: u64| wall.saturating_sub(now.saturating_sub(ms));
        self.status.peers = self
            .s
            .block
            .peers
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let b = &self.balance[i];
                let (mut fwd, mut total, mut fwd_cps, mut total_cps) = (0, 0, 0, 0);
                for id in &self.s.forwarded[i] {
                    let Some(svc) = services.iter().find(|s| s.service == *id) else {
                        continue;
                    };
                    total += svc.stats.conns;
                    total_cps += svc.rate.cps;
                    if let Some(d) = svc
                        .dests
                        .iter()
                        .find(|d| d.dest == remote_dest(id, p.director))
                    {
                        fwd += d.stats.conns;
                        fwd_cps += d.rate.cps;
                    }
                }
                PeerStatus {
                    name: p.name.clone(),
                    address: p.address,
                    director: p.director,
                    weight: p.weight,
                    load: b.remote.map(|(l, _)| l),
                    report_unix_ms: b.remote.map(|(_, t)| at(t)),
                    stale: b.remote.is_some() && b.remote_load(&self.thresholds, now).is_none(),
                    forwarding: b.forwarding,
                    reason: b.reason,
                    since_unix_ms: at(b.since_ms),
                    services: self.s.forwarded[i].clone(),
                    forwarded_conns: fwd,
                    total_conns: total,
                    forwarded_cps: fwd_cps,
                    total_cps,
                }
            })
            .collect();
        status::publish(self.status.clone());
    }
}
