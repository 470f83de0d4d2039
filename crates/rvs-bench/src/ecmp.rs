//! Part `ecmp`: a simulation of a group of active directors behind an ECMP router, run on rvs's
//! own code: each director is a `Model` of its own (the same virtual service, the same real
//! servers added in the same order, as one keepalived.conf gives every director) whose scheduler
//! plans are rvs's (`sched::plan`: the Maglev table for mh, the kernel's sequence for rr), and
//! connection sync goes through rvs's wire format and conversions (`to_wire`, `pack`, `decode`,
//! `from_wire`), as between real directors. Only the router is a model: Linux's multipath
//! hash-threshold (a hash of the 5-tuple cut into equal ranges, one per next hop).
//!
//! For each change it counts the flows whose real server changes:
//! - a director added (16 -> 17) or removed (16 -> 15), the real servers unchanged: the flows the
//!   router moves reach a director that never saw them, which schedules them (sloppy_tcp);
//! - a real server removed from 1000 (or one added), while a director leaves at the same time:
//!   with mh alone (the moved flows re-picked from the new table) and with mh + sync (every
//!   director holds every flow, learnt from the others' sync messages).
//!
//! The simulation is pure computation and runs in seconds. Then one director's own cost is
//! measured as the group grows: with sync, each director's table holds every director's flows
//! while it forwards only its own share, so its known-flow cost is measured with a table of N
//! shares and traffic over one share (the packet harness's line, rvs's program, real frames).

use std::{
    collections::HashMap,
    hash::{Hash, Hasher},
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use rvs::{
    daemon::sync::{convert, wire},
    dataplane::ip_words,
    model::{DestAddr, DestConfig, FwdMethod, Model, Protocol, ServiceConfig, ServiceId},
    sched,
};
use rvs_common::{
    AF_INET,
    conn::{Conn, ConnKey, KIND_CONN, conn_flags},
    tcp_state,
};

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const PORT: u16 = 80;
const SYNCID: u8 = 7;

/// One scenario's outcome.
#[derive(Clone, Debug)]
pub struct Row {
    pub what: String,
    pub flows: usize,
    pub changed: usize,
    /// The share the goal allows, as a fraction; None: reported only (a baseline).
    pub goal: Option<f64>,
}

impl Row {
    pub fn share(&self) -> f64 {
        self.changed as f64 / self.flows.max(1) as f64
    }

    pub fn met(&self) -> Option<bool> {
        self.goal.map(|g| self.share() <= g + 1e-12)
    }
}

/// One director of a group of `directors`, measured.
#[derive(Clone, Debug)]
pub struct CostRow {
    pub directors: usize,
    /// Flows in its table: every director's share, learnt by sync.
    pub table_flows: u64,
    /// The flows it forwards (its share), cycled over.
    pub own_flows: u64,
    pub steady: crate::pps::Figure,
}

#[derive(Clone, Debug, Default)]
pub struct EcmpReport {
    pub rows: Vec<Row>,
    pub sync_datagrams: usize,
    pub seconds: f64,
    pub costs: Vec<CostRow>,
    /// Why the measured part failed, if it did (the simulation still stands).
    pub cost_error: Option<String>,
}

impl EcmpReport {
    pub fn failures(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .rows
            .iter()
            .filter(|r| r.met() == Some(false))
            .map(|r| format!("ecmp: {}: {:.3}% changed", r.what, 100.0 * r.share()))
            .collect();
        v.extend(
            self.cost_error
                .iter()
                .map(|e| format!("ecmp, director cost: {e}")),
        );
        v
    }
}

fn service() -> ServiceId {
    ServiceId::Inet {
        proto: Protocol::Tcp,
        addr: IpAddr::V4(VIP),
        port: PORT,
    }
}

fn rs_addr(i: usize) -> DestAddr {
    // 198.19.0.0/16 holds the real servers (up to 65536).
    let a = u32::from(Ipv4Addr::new(198, 19, 0, 0)) + i as u32;
    DestAddr {
        addr: IpAddr::V4(Ipv4Addr::from(a)),
        port: PORT,
    }
}

/// A real server reached by direct routing, weight 1.
fn direct_routing() -> DestConfig {
    DestConfig {
        fwd: FwdMethod::Route,
        ..DestConfig::default()
    }
}

/// A flow: the client's address and port (the rest of the 5-tuple is the VIP and port 80).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Flow {
    caddr: Ipv4Addr,
    cport: u16,
}

fn flows(n: usize) -> Vec<Flow> {
    (0..n)
        .map(|i| Flow {
            // Spread over 198.18.0.0/15's client half and many ports.
            caddr: Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 128, 0)) + (i % 30000) as u32),
            cport: 1024 + (i / 30000) as u16 * 7 + (i % 13) as u16,
        })
        .collect()
}

/// The router: hash-threshold over `n` next hops (equal ranges of a 32-bit 5-tuple hash), as
/// Linux's multipath routes with fib_multipath_hash_policy=1. The hash is fixed (SipHash with
/// zero keys), like a router's seed that does not change while the group does.
fn next_hop(f: &Flow, n: usize) -> usize {
    let mut h = std::hash::DefaultHasher::new();
    (f.caddr, f.cport, VIP, PORT, 6u8).hash(&mut h);
    let h32 = h.finish() >> 32;
    ((h32 * n as u64) >> 32) as usize
}

/// One director: its own model of the service and what its data plane recorded.
struct Director {
    model: Model,
    /// rr's picks so far (the sequence's position).
    picks: u64,
    /// Flow -> real server address.
    table: HashMap<Flow, DestAddr>,
}

impl Director {
    fn new(algo: &str, servers: usize) -> Result<Director> {
        let mut model = Model::new(4, servers as u32 + 16);
        model
            .add_service(service(), ServiceConfig::new(algo, false))
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        for i in 0..servers {
            model
                .add_dest(&service(), rs_addr(i), direct_routing())
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        }
        Ok(Director {
            model,
            picks: 0,
            table: HashMap::new(),
        })
    }

    fn plan(&self) -> sched::Plan {
        sched::installed_plan(self.model.service(&service()).expect("the service"))
    }

    /// The real server this director's scheduler picks for a new flow, by rvs's plan.
    fn pick(&mut self, plan: &sched::Plan, f: &Flow) -> Option<DestAddr> {
        let svc = self.model.service(&service())?;
        let id = match plan.pick {
            rvs_common::service::PickMethod::Maglev => {
                *plan.slots.get(sched::mh::slot(&IpAddr::V4(f.caddr), 0))?
            }
            _ => {
                let id = plan.slot(self.picks)?;
                self.picks += 1;
                id
            }
        };
        svc.dests.iter().find(|d| d.id == id).map(|d| d.addr)
    }

    /// A packet of `f` arrives: the recorded server, or a new pick (sloppy_tcp) recorded.
    fn forward(&mut self, plan: &sched::Plan, f: &Flow) -> Option<DestAddr> {
        let live = |a: &DestAddr, m: &Model| {
            m.service(&service())
                .is_some_and(|s| s.dests.iter().any(|d| d.addr == *a))
        };
        if let Some(a) = self.table.get(f).copied()
            && live(&a, &self.model)
        {
            return Some(a);
        }
        let a = self.pick(plan, f)?;
        self.table.insert(*f, a);
        Some(a)
    }

    fn remove_server(&mut self, addr: DestAddr) -> Result<()> {
        self.model
            .delete_dest(&service(), addr)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        self.replan()
    }

    fn add_server(&mut self, addr: DestAddr) -> Result<()> {
        self.model
            .add_dest(&service(), addr, direct_routing())
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        self.replan()
    }

    /// The kernel's "destinations changed" hook, as the director runs it.
    fn replan(&mut self) -> Result<()> {
        let svc = (self.model.services.iter_mut())
            .find(|s| s.id == service())
            .context("the service")?;
        sched::plan(svc);
        Ok(())
    }

    /// The flows this director opened, as its sync master sends them: IPVS sync datagrams.
    fn sync_datagrams(&self, own: &[Flow]) -> Result<Vec<Vec<u8>>> {
        let svc = self.model.service(&service()).context("the service")?;
        let mut entries = Vec::new();
        for f in own {
            let Some(addr) = self.table.get(f) else {
                continue;
            };
            let d = svc.dests.iter().find(|d| d.addr == *addr).context("dest")?;
            let key = ConnKey {
                caddr: ip_words(&IpAddr::V4(f.caddr)),
                vaddr: ip_words(&IpAddr::V4(VIP)),
                cport: f.cport.to_be(),
                vport: PORT.to_be(),
                proto: 6,
                af: AF_INET,
                kind: KIND_CONN,
                _pad0: 0,
            };
            let conn = Conn {
                dest_id: d.id,
                svc_id: svc.index,
                flags: conn_flags::NOOUTPUT,
                state: tcp_state::ESTABLISHED,
                ..Conn::default()
            };
            entries.push(convert::to_wire(&self.model, &key, &conn, 900).context("to_wire")?);
        }
        Ok(wire::pack(SYNCID, 1472, &entries))
    }

    /// A sync datagram from a peer, taken as its backup takes it.
    fn receive(&mut self, datagram: &[u8]) -> Result<()> {
        let decoded = wire::decode(datagram, SYNCID).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        for e in &decoded.message.entries {
            let Ok(local) = convert::from_wire(&self.model, e) else {
                continue;
            };
            let svc = self.model.service(&service()).context("the service")?;
            let Some(d) = svc.dests.iter().find(|d| d.id == local.conn.dest_id) else {
                continue;
            };
            let caddr = match e.addrs.caddr() {
                IpAddr::V4(a) => a,
                IpAddr::V6(_) => bail!("an IPv6 client in an IPv4 run"),
            };
            self.table
                .entry(Flow {
                    caddr,
                    cport: e.cport,
                })
                .or_insert(d.addr);
        }
        Ok(())
    }
}

/// `n` directors of `servers` real servers each, and the flows opened through them (each by the
/// director the router hashes it to). Returns the directors and which flows each opened.
fn group(algo: &str, n: usize, servers: usize, fl: &[Flow]) -> Result<Vec<Director>> {
    let mut ds = (0..n)
        .map(|_| Director::new(algo, servers))
        .collect::<Result<Vec<_>>>()?;
    let plan = ds[0].plan();
    for f in fl {
        let d = &mut ds[next_hop(f, n)];
        d.forward(&plan, f).context("no real server")?;
    }
    Ok(ds)
}

/// What each flow's server is after the router spreads the flows over `live` of the directors.
fn after(ds: &mut [Director], live: &[usize], fl: &[Flow]) -> Result<Vec<Option<DestAddr>>> {
    let plans: Vec<sched::Plan> = ds.iter().map(Director::plan).collect();
    fl.iter()
        .map(|f| {
            let i = live[next_hop(f, live.len())];
            Ok(ds[i].forward(&plans[i], f))
        })
        .collect()
}

fn count_changed(before: &[Option<DestAddr>], now: &[Option<DestAddr>]) -> usize {
    before.iter().zip(now).filter(|(a, b)| a != b).count()
}

fn servers_of(ds: &[Director], n: usize, fl: &[Flow]) -> Vec<Option<DestAddr>> {
    fl.iter()
        .map(|f| ds[next_hop(f, n)].table.get(f).copied())
        .collect()
}

/// Director changes, the real servers unchanged.
fn director_change(algo: &str, add: bool, fl: &[Flow]) -> Result<Row> {
    let n = 16;
    let mut ds = group(algo, if add { n + 1 } else { n }, 64, fl)?;
    // With `add`, director 16 exists but gets no flows until it joins.
    let first: Vec<usize> = (0..n).collect();
    let before: Vec<Option<DestAddr>> = if add {
        // Re-open through the first 16 only (group() spread over 17).
        for d in ds.iter_mut() {
            d.table.clear();
            d.picks = 0;
        }
        after(&mut ds, &first, fl)?
    } else {
        servers_of(&ds, n, fl)
    };
    let live: Vec<usize> = if add {
        (0..=n).collect()
    } else {
        (0..n - 1).collect()
    };
    let now = after(&mut ds, &live, fl)?;
    Ok(Row {
        what: format!(
            "{algo}: a director {} ({} -> {} directors, 64 real servers, no sync)",
            if add { "added" } else { "removed" },
            n,
            live.len()
        ),
        flows: fl.len(),
        changed: count_changed(&before, &now),
        goal: (algo == "mh").then_some(0.0),
    })
}

/// One of 1000 real servers removed (or one added) while a director leaves (16 -> 15).
fn server_change(remove: bool, with_sync: bool, fl: &[Flow], datagrams: &mut usize) -> Result<Row> {
    let (n, servers) = (16, 1000);
    let mut ds = group("mh", n, servers, fl)?;
    let before = servers_of(&ds, n, fl);
    if with_sync {
        // Each director sends the flows it opened; every other director receives them.
        let mut sent = Vec::new();
        for (i, d) in ds.iter().enumerate() {
            let own: Vec<Flow> = fl.iter().copied().filter(|f| next_hop(f, n) == i).collect();
            sent.push(d.sync_datagrams(&own)?);
        }
        for (i, msgs) in sent.iter().enumerate() {
            *datagrams += msgs.len();
            for (j, d) in ds.iter_mut().enumerate() {
                if j != i {
                    for m in msgs {
                        d.receive(m)?;
                    }
                }
            }
        }
    }
    let victim = rs_addr(500);
    for d in ds.iter_mut() {
        if remove {
            d.remove_server(victim)?;
        } else {
            d.add_server(rs_addr(servers))?;
        }
    }
    let live: Vec<usize> = (0..n - 1).collect();
    let now = after(&mut ds, &live, fl)?;
    // The removed server's flows must move: the goal counts the others.
    let on_victim = before.iter().filter(|b| **b == Some(victim)).count();
    let changed = count_changed(&before, &now);
    let goal = if with_sync {
        Some(if remove {
            on_victim as f64 / fl.len() as f64
        } else {
            0.0
        })
    } else {
        Some(1.0 / servers as f64 + 0.01)
    };
    Ok(Row {
        what: format!(
            "mh{}: a real server {} ({} -> {}), a director removed at once (16 -> 15)",
            if with_sync { " + sync" } else { "" },
            if remove { "removed" } else { "added" },
            servers,
            if remove { servers - 1 } else { servers + 1 },
        ),
        flows: fl.len(),
        changed,
        goal,
    })
}

pub fn run(plan: &crate::Plan, bins: &crate::rvs::Bins) -> Result<EcmpReport> {
    let start = std::time::Instant::now();
    let many = flows(100_000);
    let some = flows(20_000);
    let mut rep = EcmpReport::default();
    for algo in ["mh", "rr"] {
        for add in [true, false] {
            rep.rows.push(director_change(algo, add, &many)?);
        }
    }
    let mut datagrams = 0;
    for with_sync in [false, true] {
        for remove in [true, false] {
            rep.rows
                .push(server_change(remove, with_sync, &some, &mut datagrams)?);
        }
    }
    rep.sync_datagrams = datagrams;
    rep.seconds = start.elapsed().as_secs_f64();
    match director_cost(plan, bins) {
        Ok(c) => rep.costs = c,
        Err(e) => rep.cost_error = Some(format!("{e:#}")),
    }
    Ok(rep)
}

/// One director's known-flow cost in groups of each of `plan.ecmp_groups` directors: a fresh
/// rvsd (mh, 10 real servers, DR) whose table is filled with N shares of `plan.ecmp_share`
/// flows, then traffic cycling over one share.
fn director_cost(plan: &crate::Plan, bins: &crate::rvs::Bins) -> Result<Vec<CostRow>> {
    use crate::{line::Line, pps::Bench, rvs::Rvsd};
    crate::progress("one director's cost as the ECMP group grows (its table holds every share)");
    let cpus = std::thread::available_parallelism()?.get() as u64;
    let line = Line::build(cpus as usize)?;
    line.resolve_sink()?;
    let mut bench = Bench::new(&line)?;
    let most = plan.ecmp_groups.iter().copied().max().unwrap_or(1) as u64 * plan.ecmp_share;
    let capacity = crate::capacity(most);
    let mut rows = Vec::new();
    for &n in &plan.ecmp_groups {
        let rvsd = Rvsd::start(&line.director, bins, &["eth0"], capacity)?;
        rvsd.configure(&crate::udp_rules("mh", 10, "-g"))?;
        let id = crate::rvs::xdp_prog_id(&line.director, "eth0")?;
        let table_per_cpu = (n as u64 * plan.ecmp_share).div_ceil(cpus);
        let (sent, filled) = bench.fill(table_per_cpu, Duration::from_secs(60))?;
        let own_per_cpu = u32::try_from(plan.ecmp_share.div_ceil(cpus))?;
        let steady = bench.steady_over(filled, own_per_cpu, plan.pps_time, plan.reps, Some(id))?;
        crate::progress(&format!(
            "  {n:>3} directors: {} flows in the table, {} of its own: {:.3} Mpps, {:.0} ns/pkt",
            sent.frames,
            u64::from(own_per_cpu) * cpus,
            steady.pps.median().unwrap_or(0.0) / 1e6,
            steady.prog_ns.median().unwrap_or(f64::NAN)
        ));
        crate::tcp::check_dataplane(&rvsd)?;
        rows.push(CostRow {
            directors: n,
            table_flows: sent.frames,
            own_flows: u64::from(own_per_cpu) * cpus,
            steady,
        });
    }
    Ok(rows)
}

/// The section of BENCHMARKS.md.
pub fn render(r: &Result<EcmpReport, String>) -> String {
    let mut s =
        String::from("## Scale-out behind ECMP (simulation on rvs's scheduler and sync code)\n\n");
    s.push_str(
        "`sudo ./scripts/bench --only ecmp` (pure computation; no kernel). Each director is an \
         rvs `Model` of its own with the same real servers added in the same order (one \
         keepalived.conf); new flows are picked by rvs's scheduler plans (`sched::plan`: mh's \
         Maglev table, M = 4093 as the kernel's default; rr's sequence), and in the sync rows \
         every director's flows cross to every other director through rvs's sync code (`to_wire`, \
         IPVS sync datagrams of 1472 bytes, `decode`, `from_wire`). The router is modelled as \
         Linux's multipath hash-threshold (a hash of the 5-tuple in equal ranges). A flow \
         counts as changed when the real server its packets reach after the change differs from \
         the one before.\n\n",
    );
    let r = match r {
        Ok(r) => r,
        Err(e) => {
            s.push_str(&format!("The part failed: {e}\n\n"));
            return s;
        }
    };
    s.push_str("| change | flows | changed | share | goal |\n|---|---|---|---|---|\n");
    for row in &r.rows {
        let goal = match (row.goal, row.met()) {
            (Some(g), Some(met)) => format!(
                "≤ {:.3}% {}",
                100.0 * g,
                if met { "met" } else { "**not met**" }
            ),
            _ => "baseline".to_owned(),
        };
        s.push_str(&format!(
            "| {} | {} | {} | {:.3}% | {} |\n",
            row.what,
            row.flows,
            row.changed,
            100.0 * row.share(),
            goal
        ));
    }
    s.push_str(&format!(
        "\n{} sync datagrams carried the flows between the directors; the simulation ran in \
         {:.1} s. In the mh + sync rows with a server removed, the goal is exactly the removed \
         server's own flows (they must move); with mh alone it is 1/N + 1% of all flows (N = \
         1000).\n\n",
        r.sync_datagrams, r.seconds
    ));
    s.push_str(
        "### One director's cost as the group grows (measured)\n\nWith connection sync every \
         director holds the whole group's flows and forwards its own share. Each row is a fresh \
         rvsd (DR, `mh`, 10 real servers) on the packet harness's line, its table filled with N \
         shares of flows, then traffic cycling over one share: the director's known-flow cost \
         (the program's run time per packet, from the kernel's statistics) with the table a \
         group of N gives it. The group's own packet rate is not measured: on this 2-core \
         machine every director would share the same CPUs (and the generator's), so a group \
         figure would measure the machine. With a CPU set per director, the group forwards N \
         times one director's rate as long as that cost stays flat; the column says what that \
         would be at one CPU per director (1 s / ns per packet), a derived figure. Without sync \
         (mh and sloppy_tcp alone) a director's table holds only its own share: the first \
         row's cost at any N. The rows compare with each other; their absolute figures depend \
         on the machine at the time of this part's run (other sections may come from other \
         runs).\n\n",
    );
    if let Some(e) = &r.cost_error {
        s.push_str(&format!("The measurement failed: {e}\n\n"));
    } else {
        s.push_str(
            "| directors | flows in each table | its own flows | known flows, pps (this machine) \
             | director ns/pkt | the group at one CPU each, derived |\n|---|---|---|---|---|---|\n",
        );
        for c in &r.costs {
            let ns = c.steady.prog_ns.median();
            let group = ns.map_or("—".to_owned(), |ns| {
                format!("{:.1} Mpps", c.directors as f64 * 1e3 / ns.max(1e-9))
            });
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                c.directors,
                crate::report::kilo(c.table_flows as f64),
                crate::report::kilo(c.own_flows as f64),
                crate::report::cell(&c.steady.pps, crate::report::mpps),
                ns.map_or("—".to_owned(), |ns| format!("{ns:.0}")),
                group
            ));
        }
        s.push('\n');
    }
    s.push_str("The end-to-end behaviour over real packets is `tests/ecmp.rs`.\n\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mh_moves_no_flow_when_a_director_joins_and_rr_moves_most() {
        let fl = flows(3000);
        assert_eq!(director_change("mh", true, &fl).unwrap().changed, 0);
        assert!(director_change("rr", true, &fl).unwrap().share() > 0.01);
    }

    #[test]
    fn with_sync_only_the_removed_servers_flows_move() {
        let fl = flows(2000);
        let mut n = 0;
        let row = server_change(true, true, &fl, &mut n).unwrap();
        assert_eq!(row.met(), Some(true), "{row:?}");
        assert!(n > 0);
    }
}
