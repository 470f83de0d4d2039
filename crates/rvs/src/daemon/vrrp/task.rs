//! The VRRP task: every instance of the configuration, their sockets and timers, in one task
//! that takes no lock anyone else holds, on a thread and tokio runtime of its own, so that no
//! busy worker of rvsd's runtime (a long control request, a reload, a table walk) can delay an
//! advert: the in-process equivalent of keepalived's separate VRRP process. Packets are read by
//! small reader tasks (one per instance) and handed over on a channel; vrrp_scripts run on
//! tasks of their own; notify scripts are started and not waited for (except STOP ones at
//! shutdown, for a bounded time, as keepalived does). So the only awaits on the advert path are
//! the channel and rtnetlink's address changes.

use std::{
    collections::{BTreeMap, VecDeque},
    net::IpAddr,
    time::Duration,
};

use anyhow::{Context, Result};
use tokio::{
    sync::{mpsc, oneshot, watch},
    task::JoinHandle,
    time::Instant,
};
use tracing::{debug, error, info, warn};

use super::{
    addrs::{Addresses, Vip},
    announce::Announcer,
    instance::{self, Group, Instance, Plan},
    machine::{Action, Event, Machine, NotifyState, Reason, State},
    notify::{self, Kind},
    socket::{self, Receiver, RxPacket, Sender},
    status::{InstanceStatus, VrrpStatus, unix_ms_now},
    track,
    wire::{self, Advert, Reject},
};
use crate::keepalived::KeepalivedConfig;

/// How often tracked interfaces are looked at.
const LINK_POLL: Duration = Duration::from_millis(200);
/// At most one log line about rejected packets per instance this often.
const REJECT_LOG_EVERY: Duration = Duration::from_secs(10);

/// The running VRRP task.
pub struct Vrrp {
    stop: oneshot::Sender<()>,
    done: oneshot::Receiver<()>,
}

impl Vrrp {
    /// Leaves MASTER everywhere (priority-0 adverts, addresses removed, notify_stop) and waits
    /// for the task to end, at most `within`.
    pub async fn stop(self, within: Duration) {
        let _ = self.stop.send(());
        if tokio::time::timeout(within, self.done).await.is_err() {
            warn!("VRRP did not stop within {within:?}");
        }
    }
}

/// How long STOP notify scripts get at shutdown.
const STOP_NOTIFY_WAIT: Duration = Duration::from_secs(2);

/// Starts the instances of `cfg`. An instance that cannot be set up (no such interface, no
/// address to send from) is logged and stays in FAULT; a configuration that cannot run at all
/// is an error before anything changes.
pub fn start(cfg: &KeepalivedConfig) -> Result<(Vrrp, watch::Receiver<VrrpStatus>)> {
    let plan = instance::plan(cfg)?;
    let (status_tx, status_rx) = watch::channel(VrrpStatus::default());
    let (stop, stopped) = oneshot::channel();
    let (done_tx, done) = oneshot::channel();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the VRRP runtime")?;
    // rtnetlink's connection task belongs on the VRRP runtime too.
    let addrs = {
        let _in_rt = rt.enter();
        Addresses::new()?
    };
    std::thread::Builder::new()
        .name("rvs-vrrp".into())
        .spawn(move || {
            rt.block_on(async move {
                let mut r = Runner::new(plan, addrs, status_tx).await;
                r.run(stopped).await;
            });
            let _ = done_tx.send(());
        })
        .context("starting the VRRP thread")?;
    Ok((Vrrp { stop, done }, status_rx))
}

#[derive(Default)]
struct Counters {
    adverts_rx: u64,
    adverts_tx: u64,
    became_master: u64,
    send_errors: u64,
    rejects: BTreeMap<Reject, u64>,
}

struct Live {
    cfg: Instance,
    machine: Machine,
    sender: Option<Sender>,
    announcer: Option<Announcer>,
    /// Advertised and excluded addresses, with their interfaces.
    vips: Vec<Vip>,
    advertised: Vec<IpAddr>,
    setup_error: Option<String>,
    tracking: Option<(bool, i32)>,
    counters: Counters,
    transition_unix_ms: u64,
    last_reject_log: Option<Instant>,
    suppressed: u64,
}

struct Runner {
    epoch: Instant,
    live: Vec<Live>,
    groups: Vec<Group>,
    group_state: Vec<Option<State>>,
    scripts_ok: Vec<bool>,
    addrs: Addresses,
    status_tx: watch::Sender<VrrpStatus>,
    packets: mpsc::Receiver<(usize, Result<RxPacket, Reject>)>,
    script_results: mpsc::Receiver<(usize, bool)>,
    stopping: bool,
    /// STOP notify scripts still running.
    stop_scripts: Vec<JoinHandle<()>>,
}

impl Runner {
    async fn new(plan: Plan, addrs: Addresses, status_tx: watch::Sender<VrrpStatus>) -> Runner {
        let (pkt_tx, packets) = mpsc::channel(1024);
        let (script_tx, script_results) = mpsc::channel(64);
        let scripts_ok = plan.scripts.iter().map(|s| !s.init_fail).collect();
        for (i, s) in plan.scripts.iter().enumerate() {
            tokio::spawn(track::run_script(i, s.clone(), script_tx.clone()));
        }
        let mut live = Vec::new();
        for (i, cfg) in plan.instances.into_iter().enumerate() {
            live.push(setup(i, cfg, &pkt_tx, &addrs).await);
        }
        Runner {
            epoch: Instant::now(),
            group_state: vec![None; plan.groups.len()],
            groups: plan.groups,
            live,
            scripts_ok,
            addrs,
            status_tx,
            packets,
            script_results,
            stopping: false,
            stop_scripts: Vec::new(),
        }
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    async fn run(&mut self, mut stopped: oneshot::Receiver<()>) {
        let mut queue = VecDeque::new();
        self.retrack(&mut queue);
        for i in 0..self.live.len() {
            queue.push_back((i, Event::Start));
        }
        self.process(queue).await;
        let mut link_poll = tokio::time::interval(LINK_POLL);
        loop {
            self.publish();
            let deadline = self
                .live
                .iter()
                .filter_map(|l| l.machine.deadline())
                .min()
                .map(|d| self.epoch + d);
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let mut queue = VecDeque::new();
            tokio::select! {
                biased;
                _ = &mut stopped => {
                    self.stopping = true;
                    for i in 0..self.live.len() {
                        queue.push_back((i, Event::Shutdown));
                    }
                    self.process(queue).await;
                    for g in &self.groups {
                        let argv = notify::commands(&g.notify, Kind::Group, &g.name, NotifyState::Stop, 0);
                        self.stop_scripts.extend(argv.into_iter().filter_map(notify::run));
                    }
                    self.publish();
                    let scripts = std::mem::take(&mut self.stop_scripts);
                    let _ = tokio::time::timeout(STOP_NOTIFY_WAIT, futures::future::join_all(scripts)).await;
                    info!("VRRP stopped");
                    return;
                }
                _ = sleep => {
                    let now = self.now();
                    for (i, l) in self.live.iter().enumerate() {
                        if l.machine.deadline().is_some_and(|d| d <= now) {
                            queue.push_back((i, Event::Timer));
                        }
                    }
                }
                Some((i, pkt)) = self.packets.recv() => self.on_packet(i, pkt, &mut queue),
                Some((s, ok)) = self.script_results.recv() => {
                    self.scripts_ok[s] = ok;
                    self.retrack(&mut queue);
                }
                _ = link_poll.tick() => self.retrack(&mut queue),
            }
            self.process(queue).await;
        }
    }

    fn on_packet(
        &mut self,
        i: usize,
        pkt: Result<RxPacket, Reject>,
        queue: &mut VecDeque<(usize, Event)>,
    ) {
        let others: Vec<(String, bool, u8)> = (self.live.iter().enumerate())
            .filter(|&(j, _)| j != i)
            .map(|(_, o)| (o.cfg.interface.clone(), o.cfg.ipv6, o.cfg.vrid))
            .collect();
        let vrid_of = pkt.as_ref().ok().and_then(|p| p.message.get(1).copied());
        let l = &mut self.live[i];
        let result = pkt.and_then(|p| {
            if l.sender.as_ref().is_some_and(|s| s.src == p.src) {
                return Err(Reject::OwnAdvert);
            }
            let rx = wire::Received {
                src: p.src,
                dst: p.dst,
                ttl: p.ttl,
                message: &p.message,
            };
            wire::decode(&rx, &l.cfg.expect(&l.advertised)).map(|a| (p.src, a))
        });
        match result {
            Ok((from, a)) => {
                l.counters.adverts_rx += 1;
                queue.push_back((
                    i,
                    Event::Advert {
                        from,
                        priority: a.priority,
                        interval_cs: a.interval_cs,
                    },
                ));
            }
            Err(Reject::Vrid)
                if others.iter().any(|(ifname, v6, vrid)| {
                    *ifname == l.cfg.interface && *v6 == l.cfg.ipv6 && Some(*vrid) == vrid_of
                }) =>
            {
                // Another of our instances' router on the same wire: not foreign.
            }
            Err(r) => {
                *l.counters.rejects.entry(r).or_default() += 1;
                // Other routers' adverts on a shared LAN and our own are normal, not worth a line.
                if matches!(r, Reject::Vrid | Reject::OwnAdvert) {
                    return;
                }
                let now = Instant::now();
                if l.last_reject_log
                    .is_none_or(|t| now - t >= REJECT_LOG_EVERY)
                {
                    warn!(
                        "VRRP {}: ignored an advert: {r} ({} more ignored since the last report)",
                        l.cfg.name, l.suppressed
                    );
                    l.last_reject_log = Some(now);
                    l.suppressed = 0;
                } else {
                    l.suppressed += 1;
                }
            }
        }
    }

    /// Recomputes every instance's fault and priority shift; queues the changes.
    fn retrack(&mut self, queue: &mut VecDeque<(usize, Event)>) {
        let mut own: Vec<(bool, i32)> = Vec::new();
        for l in &self.live {
            let mut fault = l.setup_error.is_some()
                || !socket::interface(&l.cfg.interface).is_some_and(|f| f.up);
            let mut shift = 0;
            for t in &l.cfg.track_interfaces {
                let up = socket::interface(&t.name).is_some_and(|f| f.up);
                let (f, s) = track::effect(up, t.weight.unwrap_or(0), t.reverse);
                fault |= f;
                shift += s;
            }
            for t in &l.cfg.track_scripts {
                let (f, s) = track::effect(self.scripts_ok[t.script], t.weight, t.reverse);
                fault |= f;
                shift += s;
            }
            own.push((fault, shift));
        }
        for (i, l) in self.live.iter_mut().enumerate() {
            let (mut fault, shift) = own[i];
            // A sync group is in FAULT when any member is.
            if let Some(g) = l.cfg.sync_group {
                fault |= self.groups[g].members.iter().any(|&m| own[m].0);
            }
            if l.tracking != Some((fault, shift)) {
                l.tracking = Some((fault, shift));
                queue.push_back((i, Event::Tracking { fault, shift }));
            }
        }
    }

    /// Feeds events to their machines and carries out the actions, including what a
    /// transition means for the other members of a sync group.
    async fn process(&mut self, mut queue: VecDeque<(usize, Event)>) {
        // Bounded: each sync event can cause at most one transition per member.
        let mut budget = 64 + 8 * self.live.len();
        while let Some((i, ev)) = queue.pop_front() {
            budget = budget.saturating_sub(1);
            if budget == 0 {
                error!("VRRP: too many chained events; the rest are dropped");
                break;
            }
            let now = self.now();
            let actions = self.live[i].machine.handle(ev, now);
            for a in actions {
                self.act(i, a, &mut queue).await;
            }
        }
    }

    async fn act(&mut self, i: usize, a: Action, queue: &mut VecDeque<(usize, Event)>) {
        match a {
            Action::SendAdvert { priority } => self.send_advert(i, priority),
            Action::AddAddresses => {
                let l = &self.live[i];
                for (addr, r) in self.addrs.add(&l.vips).await {
                    match r {
                        Ok(true) => debug!("VRRP {}: added {addr}", l.cfg.name),
                        Ok(false) => debug!("VRRP {}: {addr} was already there", l.cfg.name),
                        Err(e) => error!("VRRP {}: {e:#}", l.cfg.name),
                    }
                }
            }
            Action::RemoveAddresses => {
                let l = &self.live[i];
                match self.addrs.remove(&l.vips).await {
                    Ok(gone) => debug!("VRRP {}: removed {gone:?}", l.cfg.name),
                    Err(e) => error!("VRRP {}: {e:#}", l.cfg.name),
                }
            }
            Action::Announce | Action::Refresh => {
                let l = &self.live[i];
                let repeat = if a == Action::Refresh {
                    l.cfg.garp_refresh_repeat
                } else {
                    l.cfg.garp_repeat
                };
                if let Some(an) = &l.announcer {
                    let addrs: Vec<IpAddr> = l.vips.iter().map(|v| v.addr).collect();
                    for _ in 0..repeat {
                        if let Err(e) = an.announce(&addrs) {
                            debug!("VRRP {}: announcing: {e}", l.cfg.name);
                        }
                    }
                }
            }
            Action::Notify(state) => {
                let l = &self.live[i];
                let prio = l.machine.effective_priority();
                for argv in
                    notify::commands(&l.cfg.notify, Kind::Instance, &l.cfg.name, state, prio)
                {
                    let h = notify::run(argv);
                    if self.stopping {
                        self.stop_scripts.extend(h);
                    }
                }
            }
            Action::Transition { from, to, reason } => {
                self.transition(i, from, to, &reason, queue);
            }
        }
    }

    fn transition(
        &mut self,
        i: usize,
        from: State,
        to: State,
        reason: &Reason,
        queue: &mut VecDeque<(usize, Event)>,
    ) {
        let l = &mut self.live[i];
        l.transition_unix_ms = unix_ms_now();
        if to == State::Master {
            l.counters.became_master += 1;
        }
        info!(
            "VRRP {} (vrid {} on {}): {from} -> {to}: {reason}",
            l.cfg.name, l.cfg.vrid, l.cfg.interface
        );
        let Some(g) = l.cfg.sync_group else { return };
        if *reason != Reason::SyncGroup && matches!(to, State::Master | State::Backup) {
            for &m in &self.groups[g].members {
                if m != i {
                    queue.push_back((m, Event::Sync(to)));
                }
            }
        }
        // The group's own state: MASTER or BACKUP as its members, FAULT when any is.
        let states: Vec<State> = self.groups[g]
            .members
            .iter()
            .map(|&m| {
                if m == i {
                    to
                } else {
                    self.live[m].machine.state()
                }
            })
            .collect();
        let group_state = if states.contains(&State::Fault) {
            State::Fault
        } else {
            to
        };
        if self.group_state[g] != Some(group_state) && group_state != State::Init {
            self.group_state[g] = Some(group_state);
            let group = &self.groups[g];
            info!("VRRP sync group {}: now {group_state}", group.name);
            let ns = match group_state {
                State::Master => NotifyState::Master,
                State::Backup => NotifyState::Backup,
                _ => NotifyState::Fault,
            };
            for argv in notify::commands(&group.notify, Kind::Group, &group.name, ns, 0) {
                notify::run(argv);
            }
        }
    }

    fn send_advert(&mut self, i: usize, priority: u8) {
        let l = &mut self.live[i];
        let Some(sender) = &l.sender else { return };
        let advert = Advert {
            version: l.cfg.version,
            vrid: l.cfg.vrid,
            priority,
            interval_cs: l.cfg.advert_int_cs,
            auth: l.cfg.auth,
            addresses: l.advertised.clone(),
        };
        let dsts: Vec<IpAddr> = if l.cfg.multicast() {
            vec![socket::group(l.cfg.ipv6)]
        } else {
            l.cfg.unicast_peers.clone()
        };
        for dst in dsts {
            let m = advert.encode(sender.src, dst, l.cfg.checksum);
            match sender.send(dst, &m) {
                Ok(()) => l.counters.adverts_tx += 1,
                Err(e) => {
                    l.counters.send_errors += 1;
                    debug!("VRRP {}: sending to {dst}: {e}", l.cfg.name);
                }
            }
        }
    }

    fn publish(&self) {
        let instances = self
            .live
            .iter()
            .map(|l| {
                let (_, reason) = l.machine.last_transition();
                let mut counters = vec![
                    ("adverts_rx".to_owned(), l.counters.adverts_rx),
                    ("adverts_tx".to_owned(), l.counters.adverts_tx),
                    ("became_master".to_owned(), l.counters.became_master),
                    ("send_errors".to_owned(), l.counters.send_errors),
                ];
                for r in Reject::ALL {
                    counters.push((
                        format!("rx_{}", r.name()),
                        l.counters.rejects.get(&r).copied().unwrap_or(0),
                    ));
                }
                InstanceStatus {
                    name: l.cfg.name.clone(),
                    interface: l.cfg.interface.clone(),
                    vrid: l.cfg.vrid,
                    version: l.cfg.version,
                    state: l.machine.state(),
                    priority: l.cfg.priority,
                    effective_priority: l.machine.effective_priority(),
                    master: l.machine.master(),
                    master_priority: l.machine.master_priority(),
                    last_transition_unix_ms: l.transition_unix_ms,
                    reason: match &l.setup_error {
                        Some(e) if l.machine.state() == State::Fault => e.clone(),
                        _ => reason.to_string(),
                    },
                    sync_group: l.cfg.sync_group.map(|g| self.groups[g].name.clone()),
                    counters,
                }
            })
            .collect();
        let next = VrrpStatus { instances };
        self.status_tx.send_if_modified(|cur| {
            if *cur == next {
                false
            } else {
                *cur = next;
                true
            }
        });
    }
}

/// Opens an instance's sockets and resolves its addresses; what fails leaves it in FAULT with
/// the reason.
async fn setup(
    i: usize,
    cfg: Instance,
    pkt_tx: &mpsc::Sender<(usize, Result<RxPacket, Reject>)>,
    addrs: &Addresses,
) -> Live {
    let advertised = cfg.advertised();
    let mut live = Live {
        machine: Machine::new(cfg.params(advertised[0])),
        cfg,
        sender: None,
        announcer: None,
        vips: Vec::new(),
        advertised,
        setup_error: None,
        tracking: None,
        counters: Counters::default(),
        transition_unix_ms: unix_ms_now(),
        last_reject_log: None,
        suppressed: 0,
    };
    if let Err(e) = open(i, &mut live, pkt_tx, addrs).await {
        let msg = format!("cannot run: {e:#}");
        error!("VRRP {}: {msg}; it stays in FAULT", live.cfg.name);
        live.setup_error = Some(msg);
    }
    live
}

async fn open(
    i: usize,
    live: &mut Live,
    pkt_tx: &mpsc::Sender<(usize, Result<RxPacket, Reject>)>,
    addrs: &Addresses,
) -> Result<()> {
    let cfg = &live.cfg;
    let iface = socket::interface(&cfg.interface)
        .with_context(|| format!("no interface {}", cfg.interface))?;
    let all: Vec<&crate::keepalived::VirtualAddress> =
        cfg.vips.iter().chain(&cfg.excluded).collect();
    let primary = match cfg.unicast_src {
        Some(a) => a,
        None if cfg.ipv6 => IpAddr::V6(
            iface
                .link_local
                .with_context(|| format!("{} has no IPv6 link-local address", cfg.interface))?,
        ),
        None => IpAddr::V4(
            iface
                .ipv4
                .iter()
                .copied()
                .find(|a| !all.iter().any(|v| v.addr == IpAddr::V4(*a)))
                .with_context(|| format!("{} has no IPv4 address to send from", cfg.interface))?,
        ),
    };
    let mut vips = Vec::new();
    for v in &all {
        let ifindex = match &v.dev {
            Some(d) => nix::net::if_::if_nametoindex(d.as_str())
                .with_context(|| format!("no interface {d} for {}", v.addr))?,
            None => iface.ifindex,
        };
        vips.push(Vip {
            addr: v.addr,
            prefix_len: v.prefix_len,
            ifindex,
            label: v.label.clone(),
            scope: v.scope.clone(),
        });
    }
    let rx = Receiver::open(&cfg.interface, iface.ifindex, cfg.ipv6, cfg.multicast())
        .context("opening the receiving socket")?;
    let sender = Sender::open(&cfg.interface, iface.ifindex, primary)
        .context("opening the sending socket")?;
    // What a killed rvsd left behind is not ours to keep while BACKUP.
    match addrs.remove(&vips).await {
        Ok(gone) if !gone.is_empty() => {
            info!("VRRP {}: removed leftover addresses {gone:?}", cfg.name)
        }
        Ok(_) => {}
        Err(e) => warn!("VRRP {}: {e:#}", cfg.name),
    }
    let name = cfg.name.clone();
    let tx = pkt_tx.clone();
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(p) => {
                    if tx.send((i, p)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    warn!("VRRP {name}: receiving: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    if let Some(mac) = iface.mac {
        live.announcer = Some(Announcer::new(&cfg.interface, iface.ifindex, mac));
    }
    live.machine = Machine::new(cfg.params(primary));
    live.sender = Some(sender);
    live.vips = vips;
    info!(
        "VRRP {}: vrid {} v{} on {} from {primary}, priority {}, {}",
        cfg.name,
        cfg.vrid,
        cfg.version,
        cfg.interface,
        cfg.priority,
        if cfg.multicast() {
            "multicast".to_owned()
        } else {
            format!("unicast to {:?}", cfg.unicast_peers)
        }
    );
    Ok(())
}
