//! Connection sync between two rvs directors (issue 12): how late the BACKUP learns a new
//! connection, how many it can learn per second and what that costs on the wire, how long a
//! starting director takes to receive a full table (bulk sync), and what sync costs the
//! MASTER's packet rate.
//!
//! - *Lag*: on an [`HaCluster`] (real TCP through the MASTER to real servers), from the moment
//!   the client starts a connection (`connect()`: SYN, then the handshake's ACK makes it
//!   ESTABLISHED, the first state IPVS syncs) to the entry appearing in the BACKUP's
//!   connection table, read straight from its pinned map.
//! - *Rate, bytes, bulk, cost*: on the packet line with a second director joined to the first
//!   by a link of their own (the sync link), UDP flows from the XDP-frame generator:
//!
//! ```text
//!   client eth0 -- eth0 director0 eth1 -- eth0 sink
//!                       director0 eth2 -- eth0 director1      (198.18.1.1 / 198.18.1.2)
//! ```

use std::{
    fmt::Write as _,
    io::Write as _,
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use ::rvs::dataplane::{DirectorMaps, ip_words, port_be};
use anyhow::{Context, Result, bail, ensure};
use rvs_common::{
    AF_INET, IPPROTO_TCP,
    conn::{ConnKey, KIND_CONN},
};
use rvs_testbed::{HaCluster, Netns, TcpServer, poll_until};

use crate::{
    Plan, capacity,
    line::{self, Line, VIP},
    pps::{Bench, Figure},
    progress,
    rvs::{self, Bins, Rvsd},
    xdp::UDP_PORT,
};

const SYNC_IP0: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const SYNC_IP1: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
/// The VRRP instance's address on the sync link (an instance is what `lvs_sync_daemon` follows).
const VRRP_VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 100);
/// Real servers of the UDP service.
const SERVERS: usize = 10;
const BOUND: Duration = Duration::from_secs(30);
/// The Ethernet, IPv4 and UDP headers around each sync datagram.
pub const WIRE_OVERHEAD: u64 = 14 + 20 + 8;

#[derive(Clone, Debug)]
pub struct LagFigure {
    pub lags: Vec<Duration>,
    /// Connections whose entry did not appear at the BACKUP within the bound.
    pub missed: usize,
}

#[derive(Clone, Debug)]
pub struct RateFigure {
    /// Flows the generator opened (each sent 3 times: IPVS syncs a UDP flow at its third packet).
    pub offered: u64,
    /// Flows the BACKUP wrote into its table.
    pub synced: u64,
    /// From the first frame to the last flow the BACKUP wrote.
    pub secs: f64,
    /// How long the generator took to send them all.
    pub offer_secs: f64,
    /// The MASTER's sync counters over the run.
    pub sent_msgs: u64,
    pub sent_conns: u64,
    pub sent_bytes: u64,
    /// Reports the MASTER's data plane could not make: its sync ring was full.
    pub ring_full: u64,
}

#[derive(Clone, Debug)]
pub struct BulkRow {
    /// Flows in the MASTER's table.
    pub flows: u64,
    /// Flows the new director received.
    pub received: u64,
    /// The bulk sync's own time, as rvsd reports it (`rvsadm --sync`: from its first request).
    pub millis: u64,
    /// From starting the second rvsd to its serving rvsadm (load, attach, bulk sync).
    pub wall: Duration,
}

#[derive(Clone, Debug)]
pub struct CostFigure {
    pub off: Figure,
    pub on: Figure,
    pub off_new: Figure,
    pub on_new: Figure,
    /// Flows the MASTER sent per second while its known-flow runs went (sync on).
    pub sent_per_s: f64,
}

/// The part's results; each figure may have failed alone.
#[derive(Clone, Debug)]
pub struct SyncReport {
    pub lag: Result<LagFigure, String>,
    pub rate: Result<RateFigure, String>,
    pub bulk: Vec<Result<BulkRow, (u64, String)>>,
    pub cost: Result<CostFigure, String>,
}

/// Connections of the lag figure.
fn lag_conns(plan: &Plan) -> usize {
    match plan.mode {
        "smoke" => 20,
        "quick" => 100,
        _ => 300,
    }
}

/// Flows per CPU of the rate figure.
fn rate_flows(plan: &Plan) -> u32 {
    match plan.mode {
        "smoke" => 5_000,
        _ => 50_000,
    }
}

/// Table sizes of the bulk-sync figure.
pub fn bulk_fills(plan: &Plan) -> Vec<u64> {
    match plan.mode {
        "smoke" => vec![10_000],
        _ => vec![100_000, 1_000_000],
    }
}

pub fn run(plan: &Plan, bins: &Bins, dir: &Path) -> SyncReport {
    progress("connection sync: two rvs directors");
    let err = |what: &str, e: anyhow::Error| {
        let msg = format!("{e:#}");
        progress(&format!("  FAILED {what}: {msg}"));
        msg
    };
    let lag = lag(plan, bins, dir).map_err(|e| err("sync lag", e));
    let rate = rate(plan, bins, dir).map_err(|e| err("sync rate", e));
    let bulk = bulk_fills(plan)
        .into_iter()
        .map(|n| bulk(bins, dir, n).map_err(|e| (n, err(&format!("bulk sync of {n}"), e))))
        .collect();
    let cost = cost(plan, bins, dir).map_err(|e| err("sync cost", e));
    SyncReport {
        lag,
        rate,
        bulk,
        cost,
    }
}

static NEXT: AtomicU32 = AtomicU32::new(0);

fn write_conf(dir: &Path, text: &str) -> Result<PathBuf> {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("sync-{n}.conf"));
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// rvsd's counters and bulk state, from `rvsadm --sync`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counters {
    pub sent_msgs: u64,
    pub sent_conns: u64,
    pub sent_bytes: u64,
    pub recv_conns: u64,
    /// `bulk done from ...`: (connections, ms).
    pub bulk_done: Option<(u64, u64)>,
}

pub fn parse_counters(text: &str) -> Counters {
    let mut c = Counters::default();
    let nums = |l: &str| -> Vec<u64> {
        l.split(|ch: char| !ch.is_ascii_digit())
            .filter_map(|w| w.parse().ok())
            .collect()
    };
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("sent ") {
            let n = nums(rest);
            c.sent_msgs = n.first().copied().unwrap_or(0);
            c.sent_conns = n.get(1).copied().unwrap_or(0);
            c.sent_bytes = n.get(2).copied().unwrap_or(0);
        } else if let Some(rest) = l.strip_prefix("received ") {
            c.recv_conns = nums(rest).get(1).copied().unwrap_or(0);
        } else if let Some(rest) = l.strip_prefix("bulk done from ") {
            // "IP: N connections in M ms"
            if let Some((_, tail)) = rest.split_once(": ") {
                let n = nums(tail);
                if let (Some(&conns), Some(&ms)) = (n.first(), n.get(1)) {
                    c.bulk_done = Some((conns, ms));
                }
            }
        }
    }
    c
}

/// The data plane's count of reports lost to a full sync ring.
fn ring_full(rvsd: &Rvsd) -> Result<u64> {
    Ok(rvsd
        .dataplane()?
        .into_iter()
        .find(|(k, _)| k == "sync_ring_full")
        .map_or(0, |(_, v)| v))
}

fn counters(rvsd: &Rvsd) -> Result<Counters> {
    Ok(parse_counters(&rvsd.rvsadm(&["--sync"])?))
}

/// The keepalived.conf of a director of the sync line: the UDP service over the line's real
/// servers, a VRRP instance on `vrrp_if` and, with `sync_if`, the sync daemon following it.
fn line_conf(sync_if: Option<&str>, vrrp_if: &str, priority: u8) -> String {
    let mut s = String::new();
    if let Some(i) = sync_if {
        let _ = write!(s, "global_defs {{\n    lvs_sync_daemon {i} VI_1\n}}\n");
    }
    let _ = write!(
        s,
        "virtual_server {VIP} {UDP_PORT} {{\n    lb_algo rr\n    lb_kind DR\n    protocol UDP\n"
    );
    for i in 0..SERVERS {
        let _ = write!(
            s,
            "    real_server {} {UDP_PORT} {{\n        weight 1\n    }}\n",
            Line::real_server(i)
        );
    }
    let _ = write!(
        s,
        "}}\nvrrp_instance VI_1 {{\n    state BACKUP\n    interface {vrrp_if}\n    \
         virtual_router_id 52\n    priority {priority}\n    version 3\n    advert_int 1\n    \
         virtual_ipaddress {{\n        {VRRP_VIP}/24\n    }}\n}}\n"
    );
    s
}

/// The packet line and a second director on a sync link of its own.
struct SyncLine {
    line: Line,
    peer: Netns,
}

impl SyncLine {
    fn build() -> Result<SyncLine> {
        let cpus = std::thread::available_parallelism()?.get();
        let line = Line::build(cpus)?;
        line.resolve_sink()?;
        let peer = Netns::new("director1")?;
        line::veth(&line.director, "eth2", &peer, "eth0", 1)?;
        line::setup(&line.director, "eth2", SYNC_IP0, 24)?;
        line::setup(&peer, "eth0", SYNC_IP1, 24)?;
        // Datagrams from a local stack over veth carry their checksum left to "hardware",
        // which an XDP program on the receiving side loses (TOOLCHAIN.md).
        line.director
            .exec(&["ethtool", "-K", "eth2", "tx", "off"])?;
        peer.exec(&["ethtool", "-K", "eth0", "tx", "off"])?;
        // The second director reaches the real servers through the first.
        peer.ip(&[
            "route",
            "add",
            "198.19.16.0/20",
            "via",
            &SYNC_IP0.to_string(),
        ])?;
        peer.exec(&["ping", "-c", "1", "-W", "2", &SYNC_IP0.to_string()])
            .context("the sync link does not work")?;
        Ok(SyncLine { line, peer })
    }

    /// rvsd on director0 (on eth0; sync and VRRP on eth2).
    fn master(&self, bins: &Bins, dir: &Path, sync: bool, size: u32) -> Result<Rvsd> {
        let conf = write_conf(dir, &line_conf(sync.then_some("eth2"), "eth2", 150))?;
        Rvsd::start_with(
            &self.line.director,
            bins,
            &["eth0"],
            size,
            &["-f", path_str(&conf)?, "--sync-bulk-timeout", "0"],
        )
    }

    /// rvsd on director1, with sync, and a bulk sync of up to `bulk_timeout` seconds (0: none).
    fn backup(&self, bins: &Bins, dir: &Path, size: u32, bulk_timeout: u32) -> Result<Rvsd> {
        let conf = write_conf(dir, &line_conf(Some("eth0"), "eth0", 100))?;
        Rvsd::start_with(
            &self.peer,
            bins,
            &["eth0"],
            size,
            &[
                "-f",
                path_str(&conf)?,
                "--sync-bulk-timeout",
                &bulk_timeout.to_string(),
            ],
        )
    }
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str().context("a non-UTF-8 path")
}

/// Sync lag on an HA cluster, over real TCP connections.
fn lag(plan: &Plan, bins: &Bins, dir: &Path) -> Result<LagFigure> {
    const PORT: u16 = 80;
    let c = HaCluster::build(2, 1, false)?;
    let _tcp: Vec<TcpServer> = c.serve_tcp(PORT)?;
    let vip = c.vips()[0];
    let conf = |priority: u8| -> Result<PathBuf> {
        let mut s = format!(
            "global_defs {{\n    lvs_sync_daemon eth0 VI_1\n}}\nvirtual_server {vip} {PORT} {{\n    \
             lb_algo rr\n    lb_kind DR\n    protocol TCP\n"
        );
        for rs in c.real_servers() {
            let _ = write!(
                s,
                "    real_server {} {PORT} {{\n        weight 1\n    }}\n",
                rs.ip()
            );
        }
        let _ = write!(
            s,
            "}}\nvrrp_instance VI_1 {{\n    state BACKUP\n    interface eth0\n    \
             virtual_router_id 51\n    priority {priority}\n    version 3\n    advert_int 0.2\n    \
             garp_master_delay 1\n    virtual_ipaddress {{\n        {vip}\n    }}\n}}\n"
        );
        write_conf(dir, &s)
    };
    let start = |i: usize, priority: u8, want: &str| -> Result<Rvsd> {
        let conf = conf(priority)?;
        let r = Rvsd::start_with(
            c.directors()[i].netns(),
            bins,
            &["eth0"],
            65_536,
            &["-f", path_str(&conf)?, "--sync-bulk-timeout", "5"],
        )?;
        poll_until(BOUND, &format!("director{i} to be {want}"), || {
            let out = r.rvsadm(&["--vrrp"])?;
            Ok(out
                .lines()
                .find(|l| l.starts_with("VI_1"))
                .and_then(|l| l.split_whitespace().nth(4))
                .filter(|s| *s == want)
                .map(drop))
        })
        .with_context(|| r.log())?;
        Ok(r)
    };
    let master = start(0, 150, "MASTER")?;
    let backup = start(1, 100, "BACKUP")?;
    poll_until(BOUND, "a connection through the MASTER", || {
        Ok(c.client().tcp_request(IpAddr::V4(vip), PORT).ok())
    })?;
    let maps = DirectorMaps::open(backup.pin_dir())?;
    let addr = SocketAddr::new(IpAddr::V4(vip), PORT);
    let mut fig = LagFigure {
        lags: Vec::new(),
        missed: 0,
    };
    // Held open to the end, so that no closing connection adds to the sync traffic.
    let mut open = Vec::new();
    for i in 0..lag_conns(plan) {
        // Spaced, so that each connection waits for its own datagram (one every 50 ms at most)
        // rather than riding in its predecessor's; varied, so that the phase varies.
        std::thread::sleep(Duration::from_millis(20 + (i as u64 * 7) % 60));
        let t0 = Instant::now();
        let mut stream = c
            .client()
            .netns()
            .enter(|| TcpStream::connect_timeout(&addr, Duration::from_secs(2)))?
            .context("connecting through the MASTER")?;
        // The flow's third packet from the client (SYN, ACK, this), where IPVS's rule first
        // syncs an ESTABLISHED connection (sync_threshold 3).
        stream
            .write_all(format!("lag {i}\n").as_bytes())
            .context("writing to the connection")?;
        let local = stream.local_addr()?;
        let key = ConnKey {
            caddr: ip_words(&local.ip()),
            vaddr: ip_words(&IpAddr::V4(vip)),
            cport: port_be(local.port()),
            vport: port_be(PORT),
            proto: IPPROTO_TCP,
            af: AF_INET,
            kind: KIND_CONN,
            _pad0: 0,
        };
        let deadline = t0 + Duration::from_secs(2);
        loop {
            if maps.conns.get(&key, 0).is_ok() || maps.conns_new.get(&key, 0).is_ok() {
                fig.lags.push(t0.elapsed());
                break;
            }
            if Instant::now() > deadline {
                fig.missed += 1;
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        open.push(stream);
    }
    drop(open);
    ensure!(
        !fig.lags.is_empty(),
        "no connection reached the BACKUP:\n{}",
        backup.rvsadm(&["--sync"]).unwrap_or_default()
    );
    drop(master);
    Ok(fig)
}

/// Connections synced per second, and bytes on the wire: a burst of new UDP flows at the
/// MASTER, each sent three times.
fn rate(plan: &Plan, bins: &Bins, dir: &Path) -> Result<RateFigure> {
    let sl = SyncLine::build()?;
    let mut bench = Bench::new(&sl.line)?;
    let cpus = std::thread::available_parallelism()?.get() as u64;
    let per_cpu = rate_flows(plan);
    let size = capacity(u64::from(per_cpu) * cpus * 2);
    let master = sl.master(bins, dir, true, size)?;
    let backup = sl.backup(bins, dir, size, 0)?;
    let m0 = counters(&master)?;
    let b0 = counters(&backup)?;
    let full0 = ring_full(&master)?;
    let t0 = Instant::now();
    let (sent, _) = bench.passes(per_cpu, 3, Duration::from_secs(30))?;
    let offered = sent.frames / 3;
    // Until the BACKUP has them all, or has written nothing new for a second.
    let mut last = b0.recv_conns;
    let mut last_at = t0;
    let limit = Instant::now() + Duration::from_secs(120);
    loop {
        let now = Instant::now();
        let c = counters(&backup)?;
        if c.recv_conns != last {
            last = c.recv_conns;
            last_at = now;
        }
        if last - b0.recv_conns >= offered
            || now.duration_since(last_at) > Duration::from_secs(1)
            || now > limit
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let m1 = counters(&master)?;
    let fig = RateFigure {
        offered,
        synced: last - b0.recv_conns,
        secs: last_at.duration_since(t0).as_secs_f64(),
        offer_secs: sent.elapsed.as_secs_f64(),
        sent_msgs: m1.sent_msgs - m0.sent_msgs,
        sent_conns: m1.sent_conns - m0.sent_conns,
        sent_bytes: m1.sent_bytes - m0.sent_bytes,
        ring_full: ring_full(&master)? - full0,
    };
    progress(&format!(
        "  rate: {} of {} flows synced in {:.2} s ({:.0}/s); {} datagrams, {} bytes for {} entries sent; ring full {}",
        fig.synced,
        fig.offered,
        fig.secs,
        fig.synced as f64 / fig.secs.max(1e-6),
        fig.sent_msgs,
        fig.sent_bytes,
        fig.sent_conns,
        fig.ring_full
    ));
    ensure!(fig.synced > 0, "the BACKUP received nothing");
    Ok(fig)
}

/// Bulk sync: the MASTER's table filled with `flows` UDP flows, then the second director
/// starts and takes it.
fn bulk(bins: &Bins, dir: &Path, flows: u64) -> Result<BulkRow> {
    let sl = SyncLine::build()?;
    let mut bench = Bench::new(&sl.line)?;
    let cpus = std::thread::available_parallelism()?.get() as u64;
    let size = capacity(flows);
    let master = sl.master(bins, dir, true, size)?;
    bench.fill(flows.div_ceil(cpus), Duration::from_secs(60))?;
    let in_table = table_len(master.pin_dir())?;
    let t0 = Instant::now();
    // Serves rvsadm once the bulk sync is over.
    let backup = sl.backup(bins, dir, size, 300)?;
    let wall = t0.elapsed();
    let c = counters(&backup)?;
    let Some((received, millis)) = c.bulk_done else {
        bail!(
            "the bulk sync did not end well:\n{}",
            backup.rvsadm(&["--sync"]).unwrap_or_default()
        );
    };
    progress(&format!(
        "  bulk: {received} of {in_table} flows in {millis} ms (rvsd up after {} ms)",
        wall.as_millis()
    ));
    drop(backup);
    drop(master);
    Ok(BulkRow {
        flows: in_table,
        received,
        millis,
        wall,
    })
}

/// Flows and templates in both connection tables under `pin_dir`.
fn table_len(pin_dir: &Path) -> Result<u64> {
    use aya::maps::IterableMap as _;
    use std::os::fd::AsFd as _;
    let maps = DirectorMaps::open(pin_dir)?;
    let mut n = 0u64;
    for t in [&maps.conns, &maps.conns_new] {
        ::rvs::dataplane::batch::for_each::<ConnKey, rvs_common::conn::Conn>(
            t.map().fd().as_fd(),
            4096,
            |_, _| n += 1,
        )?;
    }
    Ok(n)
}

/// The MASTER's packet rates with sync off and on, in alternate runs of one rvsd that runs the
/// sync daemon: "off" clears the data plane's sync switch (what an rvsd without
/// `lvs_sync_daemon` runs with), "on" sets it again, so load on the machine that drifts during
/// the part weighs on both alike. No second director runs: its work would share this machine's
/// two CPUs with the chain measured.
fn cost(plan: &Plan, bins: &Bins, dir: &Path) -> Result<CostFigure> {
    use ::rvs::dataplane::sync_feed::{SyncRule, set_sync};
    let sl = SyncLine::build()?;
    let mut bench = Bench::new(&sl.line)?;
    let cpus = std::thread::available_parallelism()?.get() as u64;
    let need =
        (u64::from(plan.flows_per_cpu) + 2 * (plan.new_reps as u64 + 1) * plan.new_per_cpu) * cpus;
    let t = plan.pps_time;
    let rvsd = sl.master(bins, dir, true, capacity(need))?;
    let id = rvs::xdp_prog_id(&sl.line.director, "eth0")?;
    let mut maps = DirectorMaps::open(rvsd.pin_dir())?;
    let mut switch = |on: bool| set_sync(&mut maps, on.then(SyncRule::default));
    bench.watch = rvsd.pid();
    let mut fig = CostFigure {
        off: Figure::default(),
        on: Figure::default(),
        off_new: Figure::default(),
        on_new: Figure::default(),
        sent_per_s: 0.0,
    };
    // Known flows: made known once (sync off), then timed runs, off and on by turns.
    switch(false)?;
    bench.steady(plan.flows_per_cpu, t, 0, None, None)?;
    let (mut sent, mut on_time) = (0u64, 0.0f64);
    for rep in 0..plan.reps {
        for on in order(rep) {
            switch(on)?;
            let c0 = counters(&rvsd)?;
            let started = Instant::now();
            let r = bench.again(t, None)?;
            if on {
                on_time += started.elapsed().as_secs_f64();
                sent += counters(&rvsd)?.sent_conns - c0.sent_conns;
                fig.on.add(&r, true);
            } else {
                fig.off.add(&r, true);
            }
        }
    }
    fig.sent_per_s = sent as f64 / on_time.max(1e-6);
    for on in [false, true] {
        switch(on)?;
        let r = bench.again(t, Some(id))?;
        if on { &mut fig.on } else { &mut fig.off }.add(&r, false);
    }
    // New flows, likewise (each run opens flows of its own, in a table that grows from run to
    // run, so neither side may always come second).
    for rep in 0..plan.new_reps {
        for on in order(rep) {
            switch(on)?;
            let f = bench.new_flows(plan.new_per_cpu, t, 1, None)?;
            let into = if on {
                &mut fig.on_new
            } else {
                &mut fig.off_new
            };
            merge(into, &f);
        }
    }
    for on in [false, true] {
        switch(on)?;
        let f = bench.new_flows(plan.new_per_cpu, t, 0, Some(id))?;
        let into = if on {
            &mut fig.on_new
        } else {
            &mut fig.off_new
        };
        merge(into, &f);
    }
    bench.watch = None;
    progress(&format!(
        "  sync off / on: known {:.3} / {:.3} Mpps, new {:.0} / {:.0} k/s; {:.0} entries/s sent",
        fig.off.pps.median().unwrap_or(0.0) / 1e6,
        fig.on.pps.median().unwrap_or(0.0) / 1e6,
        fig.off_new.pps.median().unwrap_or(0.0) / 1e3,
        fig.on_new.pps.median().unwrap_or(0.0) / 1e3,
        fig.sent_per_s,
    ));
    Ok(fig)
}

/// Sync off then on in even repetitions, on then off in odd ones.
fn order(rep: usize) -> [bool; 2] {
    if rep.is_multiple_of(2) {
        [false, true]
    } else {
        [true, false]
    }
}

/// Adds the samples of `f` to `into`.
fn merge(into: &mut Figure, f: &Figure) {
    for (to, from) in [
        (&mut into.pps, &f.pps),
        (&mut into.delivered, &f.delivered),
        (&mut into.cpu_ns, &f.cpu_ns),
        (&mut into.prog_ns, &f.prog_ns),
        (&mut into.daemon_cpu, &f.daemon_cpu),
    ] {
        to.extend(from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_counters_are_read_from_rvsadm_sync() {
        let text = "master sync daemon (mcast=eth0, syncid=51, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n\
                    authenticated no\n\
                    sent 12 messages 345 connections 6789 bytes\n\
                    received 3 messages 40 connections 500 bytes\n\
                    bulk done from 198.18.1.1: 100000 connections in 1234 ms\n";
        let c = parse_counters(text);
        assert_eq!(
            c,
            Counters {
                sent_msgs: 12,
                sent_conns: 345,
                sent_bytes: 6789,
                recv_conns: 40,
                bulk_done: Some((100_000, 1234)),
            }
        );
    }
}
