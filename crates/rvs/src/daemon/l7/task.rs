//! The L7 task: a listener per `rvs_l7_server` (bound with IP_FREEBIND, so a VIP that VRRP has
//! not yet brought up can be listened on; the XDP director passes what is not an L4 service to
//! the stack), the checkers of every pool (a [`Runner`] of its own), and SIGHUP.
//!
//! A reload keeps every listener whose address stays, gives it the new configuration for the
//! connections accepted from then on, and lets established connections finish on the one they
//! started with. A server whose block did not change keeps its pools, counters and idle
//! connections; the health of a real server that stays is carried over.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    sync::{Arc, RwLock},
    time::Duration,
};

use anyhow::{Context, Result};
use tokio::{
    net::TcpListener,
    signal::unix::{Signal, SignalKind, signal},
    sync::mpsc,
    task::JoinHandle,
};
use tracing::{info, warn};

use super::{http, pool::Pool, site::Site, status, tls};
use crate::{
    check::{CheckEvent, DesiredService, Runner, ServerStates},
    control::server::Throttle,
    keepalived::{
        KeepalivedConfig,
        l7::{L7Mode, L7Server},
        l7_pool_service,
    },
    model::{DestAddr, ServiceId},
};

type Key = (IpAddr, u16);

/// The configuration new connections of one listener get.
type Current = Arc<RwLock<Arc<Site>>>;

struct Listening {
    current: Current,
    accept: JoinHandle<()>,
}

pub struct L7Task {
    path: PathBuf,
    listening: HashMap<Key, Listening>,
    /// Pool of each checker service: mark − 1 indexes it.
    marks: Vec<(Key, usize)>,
    runner: Runner,
    events: mpsc::Receiver<CheckEvent>,
    events_tx: mpsc::Sender<CheckEvent>,
    hangup: Signal,
}

impl L7Task {
    /// Binds every L7 server of `cfg` (a port that cannot be bound stops rvsd here) and starts
    /// the checkers of their pools.
    pub async fn start(path: PathBuf, cfg: &KeepalivedConfig) -> Result<L7Task> {
        let hangup = signal(SignalKind::hangup())?;
        let (events_tx, events) = mpsc::channel(1024);
        let mut t = L7Task {
            path,
            listening: HashMap::new(),
            marks: Vec::new(),
            runner: Runner::start(&[], events_tx.clone()),
            events,
            events_tx,
            hangup,
        };
        t.apply(cfg, &ServerStates::new())?;
        for s in &cfg.l7_servers {
            info!(
                "L7 {}: mode {}, {} rules, {} pools",
                s.name(),
                match s.mode {
                    L7Mode::Http => "http",
                    L7Mode::Tls => "tls",
                },
                s.rules.len(),
                s.pools.len()
            );
        }
        Ok(t)
    }

    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(crate::daemon::estimator::INTERVAL);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    for l in self.listening.values() {
                        l.current.read().expect("site").sample_rates();
                    }
                }
                Some(ev) = self.events.recv() => self.on_event(ev),
                _ = self.hangup.recv() => self.reload().await,
            }
        }
    }

    /// Brings the listeners, sites and checkers to `cfg`. `previous`: real servers' health by
    /// (server, pool, address), carried over.
    fn apply(&mut self, cfg: &KeepalivedConfig, previous: &ServerStates) -> Result<()> {
        let old_health = self.health_by_name(previous);
        // Bind what is new before anything changes, so a port that cannot be bound leaves the
        // running configuration as it was.
        let mut bound = HashMap::new();
        for s in &cfg.l7_servers {
            let key = (s.addr, s.port);
            if !self.listening.contains_key(&key) {
                bound.insert(key, bind(SocketAddr::new(s.addr, s.port))?);
            }
        }
        let mut services: Vec<DesiredService> = Vec::new();
        let mut marks = Vec::new();
        let mut kept = HashMap::new();
        for s in &cfg.l7_servers {
            let key = (s.addr, s.port);
            let unchanged = self
                .listening
                .get(&key)
                .map(|l| l.current.read().expect("site").clone())
                .filter(|site| site.config == *s);
            let site = match unchanged {
                Some(site) => site,
                None => Arc::new(new_site(cfg, s, &old_health)),
            };
            for (i, p) in s.pools.iter().enumerate() {
                marks.push((key, i));
                services.push(l7_pool_service(cfg, p, marks.len() as u32));
            }
            kept.insert(key, site);
        }
        // Health of servers now checked under other marks, for the new runner.
        let mut carried = ServerStates::new();
        for (mark, (key, pool)) in marks.iter().enumerate() {
            let site = &kept[key];
            for b in &site.pools[*pool].servers {
                let dest = DestAddr {
                    addr: b.addr.ip(),
                    port: b.addr.port(),
                };
                carried.insert((mark_service(mark as u32 + 1, key.0), dest), b.up());
            }
        }
        self.listening.retain(|key, l| {
            let stays = kept.contains_key(key);
            if !stays {
                l.accept.abort();
                info!("L7 {}: no longer listening", SocketAddr::new(key.0, key.1));
            }
            stays
        });
        for (key, site) in &kept {
            match self.listening.get(key) {
                Some(l) => *l.current.write().expect("site") = site.clone(),
                None => {
                    let current: Current = Arc::new(RwLock::new(site.clone()));
                    let listener = bound.remove(key).expect("bound above");
                    let accept = tokio::spawn(accept(listener, current.clone()));
                    self.listening.insert(*key, Listening { current, accept });
                }
            }
        }
        let old = std::mem::replace(
            &mut self.runner,
            Runner::start_from(&services, self.events_tx.clone(), &carried),
        );
        tokio::spawn(old.stop());
        self.marks = marks;
        status::publish(
            cfg.l7_servers
                .iter()
                .map(|s| kept[&(s.addr, s.port)].clone())
                .collect(),
        );
        Ok(())
    }

    /// Up or down of every checked server by where it is in the configuration.
    fn health_by_name(&self, states: &ServerStates) -> HashMap<(Key, String, SocketAddr), bool> {
        let mut out = HashMap::new();
        for ((service, dest), up) in states {
            let ServiceId::Fwmark { mark, .. } = service else {
                continue;
            };
            let Some((key, pool)) = self.marks.get(*mark as usize - 1) else {
                continue;
            };
            let Some(l) = self.listening.get(key) else {
                continue;
            };
            let site = l.current.read().expect("site").clone();
            let name = site.pools[*pool].name.clone();
            out.insert((*key, name, SocketAddr::new(dest.addr, dest.port)), *up);
        }
        out
    }

    fn on_event(&mut self, ev: CheckEvent) {
        let ServiceId::Fwmark { mark, .. } = ev.service else {
            return;
        };
        let Some((key, pool)) = self.marks.get(mark as usize - 1) else {
            return;
        };
        let Some(l) = self.listening.get(key) else {
            return;
        };
        let site = l.current.read().expect("site").clone();
        let pool = &site.pools[*pool];
        let Some(i) = pool.position(&ev.dest) else {
            return;
        };
        if pool.servers[i].up() != ev.up {
            info!(
                "L7 {} pool {}: real server {} {} ({})",
                site.config.name(),
                pool.name,
                pool.servers[i].addr,
                if ev.up { "up" } else { "down" },
                ev.reason
            );
        }
        pool.set_health(i, ev.up, ev.weight);
    }

    async fn reload(&mut self) {
        let cfg = match crate::daemon::keepalived::load_off_thread(&self.path).await {
            Ok(c) => c,
            Err(e) => {
                warn!("L7: {e}; the running L7 servers stay");
                return;
            }
        };
        let previous = self.runner.states();
        // Events queued under the old numbering of pools would land on the wrong ones: the
        // servers' states carry over through `previous` instead.
        while self.events.try_recv().is_ok() {}
        match self.apply(&cfg, &previous) {
            Ok(()) => info!(
                "{}: L7 reloaded ({} servers)",
                self.path.display(),
                cfg.l7_servers.len()
            ),
            Err(e) => warn!("{}: L7 not reloaded: {e:#}", self.path.display()),
        }
    }
}

fn mark_service(mark: u32, addr: IpAddr) -> ServiceId {
    ServiceId::Fwmark {
        mark,
        ipv6: addr.is_ipv6(),
    }
}

fn new_site(
    cfg: &KeepalivedConfig,
    s: &L7Server,
    health: &HashMap<(Key, String, SocketAddr), bool>,
) -> Site {
    let key = (s.addr, s.port);
    let pools = s
        .pools
        .iter()
        .map(|p| {
            let desired = l7_pool_service(cfg, p, 1);
            let up: Vec<bool> = desired
                .dests
                .iter()
                .map(|d| {
                    let addr = SocketAddr::new(d.addr.addr, d.addr.port);
                    health
                        .get(&(key, p.name.clone(), addr))
                        .copied()
                        .unwrap_or_else(|| d.initially_up())
                })
                .collect();
            Pool::new(p, &up)
        })
        .collect();
    Site::new(s.clone(), pools)
}

/// A listening socket on `addr`, which need not be configured yet (IP_FREEBIND).
fn bind(addr: SocketAddr) -> Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let what = || format!("L7 server {addr}: cannot listen");
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None).with_context(what)?;
    s.set_reuse_address(true).with_context(what)?;
    if addr.is_ipv6() {
        s.set_only_v6(true).with_context(what)?;
        s.set_freebind_v6(true).with_context(what)?;
    } else {
        s.set_freebind_v4(true).with_context(what)?;
    }
    s.set_nonblocking(true).with_context(what)?;
    s.bind(&addr.into()).with_context(what)?;
    s.listen(1024).with_context(what)?;
    TcpListener::from_std(s.into()).with_context(what)
}

async fn accept(listener: TcpListener, current: Current) {
    let mut log = Throttle::default();
    loop {
        match listener.accept().await {
            Ok((stream, client)) => {
                let local = stream.local_addr().unwrap_or_else(|_| {
                    listener
                        .local_addr()
                        .expect("a bound listener has an address")
                });
                let _ = stream.set_nodelay(true);
                let site = current.read().expect("site").clone();
                match site.config.mode {
                    L7Mode::Http => tokio::spawn(http::serve(site, stream, client, local)),
                    L7Mode::Tls => tokio::spawn(tls::serve(site, stream, client, local)),
                };
            }
            Err(e) => {
                // Out of descriptors every accept fails at once: wait instead of spinning.
                if log.allow() {
                    warn!("L7 accept: {e}{}", log.suppressed());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
