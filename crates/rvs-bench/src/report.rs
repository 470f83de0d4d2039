//! The results and BENCHMARKS.md: Markdown tables of every figure (median over the repetitions
//! and its spread), each with its ratio to nftables and to the ceiling, the machine, the command,
//! and the evidence of where the time goes.

use std::fmt::Write as _;

use crate::{
    bgp::{self, BgpReport},
    failover::{self, FailoverReport, Pair},
    monitor::{self, CpuFigure, MonitorReport, RenderFigure},
    pps::Figure,
    progs::Prog,
    stats::Sample,
    sync::{self, SyncReport},
};

/// Marks the hand-written part of BENCHMARKS.md, which a new run keeps.
pub const ANALYSIS_BEGIN: &str = "<!-- analysis: written by hand, kept by rvs-bench -->";
pub const ANALYSIS_END: &str = "<!-- end of analysis -->";
/// What a cell shows when a measurement failed (the smoke test looks for it).
pub const MISSING: &str = "missing";

/// The things measured, in table order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    Ceiling,
    RvsDr,
    RvsTun,
    RvsNat,
    Nft,
    Haproxy,
    Direct,
}

impl Case {
    pub const ALL: [Case; 7] = [
        Case::Ceiling,
        Case::RvsDr,
        Case::RvsTun,
        Case::RvsNat,
        Case::Nft,
        Case::Haproxy,
        Case::Direct,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Case::Ceiling => "ceiling",
            Case::RvsDr => "rvs DR",
            Case::RvsTun => "rvs TUN",
            Case::RvsNat => "rvs NAT",
            Case::Nft => "nftables",
            Case::Haproxy => "HAProxy",
            Case::Direct => "direct",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Case::Ceiling => {
                "minimal XDP program on the director: rewrite both MACs, XDP_TX or redirect \
                 (`rvs_bench_fwd`); no state, no choice of server"
            }
            Case::RvsDr => "rvsd + rvsadm, direct routing (`-g`), `rr`",
            Case::RvsTun => {
                "rvsd + rvsadm, IPIP tunnelling (`-i`), `rr`; TCP: `rvs-rs up --decap ipip`"
            }
            Case::RvsNat => "rvsd + rvsadm, NAT (`-m`), `rr`, attached to both interfaces",
            Case::Nft => {
                "nftables in the director: `dnat to numgen inc mod N map {…}` in prerouting, \
                 conntrack on, kernel forwarding"
            }
            Case::Haproxy => "HAProxy 2.6 in TCP mode on the director, `balance roundrobin`",
            Case::Direct => {
                "no balancer: packets: the generator straight into a sink; TCP: the client to \
                 the first real server's own address"
            }
        }
    }
}

/// Packet rates of one case: steady state over known flows, and new flows.
#[derive(Clone, Debug)]
pub struct PacketRow {
    pub case: Case,
    /// None: not applicable.
    pub steady: Option<Result<Figure, String>>,
    pub new: Option<Result<Figure, String>>,
}

#[derive(Clone, Debug)]
pub struct TcpRow {
    pub case: Case,
    pub conns: Sample,
    pub rps: Sample,
    pub p50_us: Sample,
    pub p99_us: Sample,
    pub bps: Sample,
    pub errors: u64,
}

#[derive(Clone, Debug)]
pub struct ScaleRow {
    pub sched: String,
    pub servers: usize,
    pub steady: Figure,
    pub new: Figure,
}

#[derive(Clone, Debug)]
pub struct FillRow {
    pub flows: u64,
    pub capacity: u64,
    pub fill_rate: f64,
    pub steady: Figure,
    pub new: Figure,
    /// rvsd's own CPU time while the steady runs went, as a share of one CPU.
    pub rvsd_cpu: f64,
    pub bytes_per_flow: Option<f64>,
    pub table_bytes: Option<u64>,
}

#[derive(Clone, Debug, Default)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub kernel: String,
    pub memory_gib: f64,
    pub virt: String,
}

#[derive(Clone, Debug)]
pub struct Profile {
    pub case: String,
    pub total_samples: u64,
    pub top: Vec<(f64, String)>,
    /// Shares by kind of work (perf::GROUPS), in that order.
    pub groups: Vec<(String, f64)>,
}

/// Everything one run produced.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub machine: Machine,
    pub command: String,
    pub mode: String,
    pub date: String,
    pub elapsed_s: f64,
    pub settings: Vec<String>,
    pub packets: Vec<PacketRow>,
    pub tcp: Vec<Result<TcpRow, (Case, String)>>,
    pub scaling: Vec<ScaleRow>,
    pub fill: Vec<FillRow>,
    pub programs: Vec<(String, Vec<Prog>)>,
    pub profiles: Vec<Profile>,
    pub notes: Vec<String>,
    pub failures: Vec<String>,
    /// None: the part did not run.
    pub failover: Option<Result<FailoverReport, String>>,
    pub sync: Option<SyncReport>,
    pub monitor: Option<Result<MonitorReport, String>>,
    pub bgp: Option<Result<BgpReport, String>>,
    pub ecmp: Option<Result<crate::ecmp::EcmpReport, String>>,
    pub l7: Option<Result<Vec<crate::l7::L7Row>, String>>,
}

fn median(s: &Sample) -> Option<f64> {
    s.median()
}

/// `value (min–max)`: for latencies, whose spread is wide.
pub(crate) fn range_cell(s: &Sample, fmt: impl Fn(f64) -> String) -> String {
    match (s.median(), s.range()) {
        (Some(m), Some((lo, hi))) if s.spread().is_some() => {
            format!("{} ({}–{})", fmt(m), fmt(lo), fmt(hi))
        }
        (Some(m), _) => fmt(m),
        (None, _) => MISSING.into(),
    }
}

/// `value ±spread%`.
pub(crate) fn cell(s: &Sample, fmt: impl Fn(f64) -> String) -> String {
    match (s.median(), s.spread()) {
        (Some(m), Some(sp)) => format!("{} ±{:.0}%", fmt(m), sp * 100.0),
        (Some(m), None) => fmt(m),
        (None, _) => MISSING.into(),
    }
}

pub(crate) fn mpps(v: f64) -> String {
    format!("{:.2} M", v / 1e6)
}

pub(crate) fn kilo(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

fn ns(v: f64) -> String {
    format!("{v:.0}")
}

pub(crate) fn us(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2} ms", v / 1000.0)
    } else {
        format!("{v:.0} µs")
    }
}

fn gbps(v: f64) -> String {
    format!("{:.2}", v / 1e9)
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "—".into(),
    }
}

impl Report {
    fn packet(&self, case: Case) -> Option<&PacketRow> {
        self.packets.iter().find(|r| r.case == case)
    }

    fn steady_pps(&self, case: Case) -> Option<f64> {
        match &self.packet(case)?.steady {
            Some(Ok(f)) => f.pps.median(),
            _ => None,
        }
    }

    fn new_pps(&self, case: Case) -> Option<f64> {
        match &self.packet(case)?.new {
            Some(Ok(f)) => f.pps.median(),
            _ => None,
        }
    }

    fn tcp_row(&self, case: Case) -> Option<&TcpRow> {
        self.tcp
            .iter()
            .find_map(|r| r.as_ref().ok().filter(|r| r.case == case))
    }

    /// The goals of the issue, checked against this run.
    pub fn goals(&self) -> Vec<String> {
        let mut out = Vec::new();
        let ceil = self.steady_pps(Case::Ceiling);
        let nft = self.steady_pps(Case::Nft);
        let verdict = |ok: bool| if ok { "met" } else { "**not met**" };
        for (case, of_ceiling, of_nft) in [
            (Case::RvsDr, Some(0.9), 4.0),
            (Case::RvsTun, Some(0.9), 4.0),
            (Case::RvsNat, None, 3.0),
        ] {
            let Some(v) = self.steady_pps(case) else {
                out.push(format!("- {}: {MISSING}", case.name()));
                continue;
            };
            let mut line = format!("- {}:", case.name());
            if let (Some(goal), Some(c)) = (of_ceiling, ceil) {
                let r = v / c;
                let _ = write!(
                    line,
                    " {r:.2} of the ceiling (goal ≥ {goal}: {});",
                    verdict(r >= goal)
                );
            }
            if let Some(n) = nft {
                let r = v / n;
                let _ = write!(
                    line,
                    " {r:.2}× nftables (goal ≥ {of_nft}×: {}).",
                    verdict(r >= of_nft)
                );
            }
            out.push(line);
        }
        for sched in ["mh", "rr", "wlc"] {
            let rows: Vec<&ScaleRow> = self.scaling.iter().filter(|r| r.sched == sched).collect();
            let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
                continue;
            };
            if first.servers == last.servers {
                continue;
            }
            let (Some(a), Some(b)) = (first.new.prog_ns.median(), last.new.prog_ns.median()) else {
                continue;
            };
            let table = sched != "wlc";
            let growth = b / a;
            let flat = growth <= 1.25;
            out.push(format!(
                "- {sched} ({}): director cost of a new flow {a:.0} ns with {} real server(s), \
                 {b:.0} ns with {} ({growth:.2}×){}",
                if table {
                    "table-driven"
                } else {
                    "counting scan, for contrast"
                },
                first.servers,
                last.servers,
                if table {
                    format!("; flat (≤ 1.25×): {}.", verdict(flat))
                } else {
                    ".".into()
                }
            ));
        }
        out
    }

    /// The Markdown document. `analysis` is the hand-written section to keep.
    pub fn render(&self, analysis: Option<&str>) -> String {
        let mut m = String::new();
        let w = &mut m;
        let _ = writeln!(w, "# rvs benchmarks\n");
        let _ = writeln!(
            w,
            "Produced by `{}` ({} mode) on {}, in {:.0} s. Every figure is the median of the \
             repetitions, ± half their range as a share of the median. All of it runs on one \
             machine in network namespaces over veth links, so only ratios between rows of the \
             same run mean anything; absolute numbers are far below what a NIC would show.\n",
            self.command, self.mode, self.date, self.elapsed_s
        );
        let mc = &self.machine;
        let _ = writeln!(
            w,
            "**Machine:** {} cores ({}), {:.1} GiB, kernel {}, {}.\n",
            mc.cores, mc.cpu, mc.memory_gib, mc.kernel, mc.virt
        );
        for s in &self.settings {
            let _ = writeln!(w, "- {s}");
        }
        let _ = writeln!(w);
        if !self.failures.is_empty() {
            let _ = writeln!(w, "**Failures in this run:**\n");
            for f in &self.failures {
                let _ = writeln!(w, "- {f}");
            }
            let _ = writeln!(w);
        }

        let _ = writeln!(w, "## Goals\n");
        for g in self.goals() {
            let _ = writeln!(w, "{g}");
        }
        let _ = writeln!(w);

        self.render_packets(w);
        self.render_tcp(w);
        self.render_scaling(w);
        self.render_fill(w);
        self.render_failover(w);
        self.render_sync(w);
        self.render_monitor(w);
        self.render_bgp(w);
        if let Some(e) = &self.ecmp {
            w.push_str(&crate::ecmp::render(e));
        }
        if let Some(l) = &self.l7 {
            w.push_str(&crate::l7::render(l));
        }
        self.render_evidence(w);

        let _ = writeln!(w, "## Cases\n");
        for c in Case::ALL {
            let _ = writeln!(w, "- **{}**: {}", c.name(), c.what());
        }
        let _ = writeln!(w);
        if !self.notes.is_empty() {
            let _ = writeln!(w, "## Notes\n");
            for n in &self.notes {
                let _ = writeln!(w, "- {n}");
            }
            let _ = writeln!(w);
        }
        let _ = writeln!(w, "{ANALYSIS_BEGIN}");
        match analysis {
            Some(a) => {
                let _ = writeln!(w, "{}", a.trim_matches('\n'));
            }
            None => {
                let _ = writeln!(
                    w,
                    "## Analysis\n\n(Write here: this section, between the two markers, is kept \
                     when the benchmark runs again.)"
                );
            }
        }
        let _ = writeln!(w, "{ANALYSIS_END}");
        m
    }

    fn render_packets(&self, w: &mut String) {
        let _ = writeln!(
            w,
            "## Packet forwarding (UDP, 64-byte frames, many flows)\n\n\
             Frames per second that reached the real servers' sink. *Known flows*: a fixed set of \
             flows, each already in the balancer's table. *New flows*: every frame opens a flow \
             never seen before (connection-table insert and scheduling). *Director ns/pkt*: the \
             director's XDP program's own run time per packet (BPF run-time statistics, tail \
             calls included; the timing adds some 15-20 ns itself, which is most of the \
             ceiling's figure), the cost that decides its rate on a NIC. *Machine CPU ns/pkt*: \
             all CPUs' busy time per delivered frame, generator and sink included.\n"
        );
        let _ = writeln!(
            w,
            "| case | known flows, pps | × nftables | × ceiling | new flows/s | × nftables | \
             director ns/pkt, known | director ns/pkt, new | machine CPU ns/pkt |\n\
             |---|---|---|---|---|---|---|---|---|"
        );
        let ceil = self.steady_pps(Case::Ceiling);
        let nft = self.steady_pps(Case::Nft);
        let nft_new = self.new_pps(Case::Nft);
        for r in &self.packets {
            let (pps, r_nft, r_ceil, cpu, prog) = match &r.steady {
                None => (
                    "n/a".into(),
                    "n/a".into(),
                    "n/a".into(),
                    "n/a".into(),
                    "n/a".into(),
                ),
                Some(Err(_)) => (
                    MISSING.into(),
                    "—".into(),
                    "—".into(),
                    MISSING.into(),
                    MISSING.into(),
                ),
                Some(Ok(f)) => (
                    cell(&f.pps, mpps),
                    ratio(median(&f.pps), nft),
                    ratio(median(&f.pps), ceil),
                    cell(&f.cpu_ns, ns),
                    if f.prog_ns.is_empty() {
                        "n/a".into()
                    } else {
                        cell(&f.prog_ns, ns)
                    },
                ),
            };
            let (new, new_nft, new_prog) = match &r.new {
                None => ("n/a".into(), "n/a".into(), "n/a".into()),
                Some(Err(_)) => (MISSING.into(), "—".into(), MISSING.into()),
                Some(Ok(f)) => (
                    cell(&f.pps, kilo),
                    ratio(median(&f.pps), nft_new),
                    if f.prog_ns.is_empty() {
                        "n/a".into()
                    } else {
                        cell(&f.prog_ns, ns)
                    },
                ),
            };
            let _ = writeln!(
                w,
                "| {} | {pps} | {r_nft} | {r_ceil} | {new} | {new_nft} | {prog} | {new_prog} | {cpu} |",
                r.case.name()
            );
        }
        let _ = writeln!(w);
    }

    fn render_tcp(&self, w: &mut String) {
        let _ = writeln!(
            w,
            "## TCP through each balancer (nginx real servers, wrk, iperf3)\n\n\
             *New conn/s*: wrk with `Connection: close`, one TCP connection per request. \
             *HTTP req/s*: wrk over kept-alive connections, with its latency percentiles. \
             *Bulk*: iperf3, one stream, client to server (the direction every balancer carries; \
             with DR and TUN the answers bypass the director).\n"
        );
        let _ = writeln!(
            w,
            "| case | new conn/s | × nftables | × ceiling | HTTP req/s | × nftables | × ceiling | \
             p50 | p99 | bulk Gbit/s | × nftables | × ceiling |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        let get =
            |case: Case, f: fn(&TcpRow) -> &Sample| self.tcp_row(case).and_then(|r| f(r).median());
        for r in &self.tcp {
            match r {
                Err((case, _)) => {
                    let _ = writeln!(
                        w,
                        "| {} | {MISSING} | — | — | {MISSING} | — | — | {MISSING} | {MISSING} | {MISSING} | — | — |",
                        case.name()
                    );
                }
                Ok(r) => {
                    let col = |f: fn(&TcpRow) -> &Sample| {
                        let v = f(r).median();
                        (ratio(v, get(Case::Nft, f)), ratio(v, get(Case::Ceiling, f)))
                    };
                    let (cn, cc) = col(|r| &r.conns);
                    let (rn, rc) = col(|r| &r.rps);
                    let (bn, bc) = col(|r| &r.bps);
                    let _ = writeln!(
                        w,
                        "| {} | {} | {cn} | {cc} | {} | {rn} | {rc} | {} | {} | {} | {bn} | {bc} |",
                        r.case.name(),
                        cell(&r.conns, kilo),
                        cell(&r.rps, kilo),
                        range_cell(&r.p50_us, us),
                        range_cell(&r.p99_us, us),
                        cell(&r.bps, gbps),
                    );
                }
            }
        }
        let errors: Vec<String> = self
            .tcp
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .filter(|r| r.errors > 0)
            .map(|r| format!("{} {}", r.case.name(), r.errors))
            .collect();
        if !errors.is_empty() {
            let _ = writeln!(
                w,
                "\nwrk reported socket errors or failed responses: {}.",
                errors.join(", ")
            );
        }
        let _ = writeln!(w);
    }

    fn render_scaling(&self, w: &mut String) {
        if self.scaling.is_empty() {
            return;
        }
        let _ = writeln!(
            w,
            "## Scaling with the number of real servers (rvs DR, packets)\n\n\
             One UDP service; the scheduler switched with `rvsadm -E`, a fresh rvsd for each \
             number of servers. *Known flows* as above (measured for every scheduler before any \
             new flows); *new flow* cost is what the director's program spends on a packet that \
             opens a flow (lookup miss, scheduling, insert). *rvsd CPU*: the daemon's CPU time \
             during the known-flow runs, as a share of one CPU.\n"
        );
        let _ = writeln!(
            w,
            "| scheduler | real servers | known flows, pps | director ns/pkt, known | new flows/s | director ns/pkt, new | rvsd CPU |\n\
             |---|---|---|---|---|---|---|"
        );
        for r in &self.scaling {
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.sched,
                r.servers,
                cell(&r.steady.pps, mpps),
                cell(&r.steady.prog_ns, ns),
                cell(&r.new.pps, kilo),
                cell(&r.new.prog_ns, ns),
                r.steady.daemon_cpu.median().map_or(MISSING.into(), pct),
            );
        }
        let _ = writeln!(w);
    }

    fn render_fill(&self, w: &mut String) {
        if self.fill.is_empty() {
            return;
        }
        let _ = writeln!(
            w,
            "## Connection table: cost as it fills (rvs DR, `mh`, 10 real servers)\n\n\
             A fresh rvsd for each level; the table is first filled with that many UDP flows \
             (*fill rate*: new flows per second while filling), then *known flows* cycles over \
             all of them (every packet a lookup in a table that full) and *new flows* adds more \
             (inserts). *rvsd CPU*: the daemon's own CPU time while the known-flow runs went \
             (its once-a-second expiry walk over the table), as a share of one CPU. *Memory*: \
             the kernel's accounting of the flow table (`bpftool map show`: memlock / \
             max_entries, preallocated).\n"
        );
        let _ = writeln!(
            w,
            "| flows in table | fill rate, flows/s | known flows, pps | director ns/pkt, lookup | new flows/s | director ns/pkt, insert | rvsd CPU | bytes per flow | table memory |\n\
             |---|---|---|---|---|---|---|---|---|"
        );
        for r in &self.fill {
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} | {:.1}% | {} | {} |",
                kilo(r.flows as f64),
                kilo(r.fill_rate),
                cell(&r.steady.pps, mpps),
                cell(&r.steady.prog_ns, ns),
                cell(&r.new.pps, kilo),
                cell(&r.new.prog_ns, ns),
                r.rvsd_cpu * 100.0,
                r.bytes_per_flow
                    .map_or(MISSING.into(), |b| format!("{b:.0}")),
                r.table_bytes.map_or(MISSING.into(), |b| format!(
                    "{:.0} MiB for {} flows",
                    b as f64 / (1 << 20) as f64,
                    kilo(r.capacity as f64)
                )),
            );
        }
        let _ = writeln!(w);
    }

    /// The line each part's section starts with: which run produced it (a run of some parts
    /// keeps the other parts' sections of the file, each with its own line).
    fn measured_by(&self) -> String {
        format!(
            "Measured by `{}` ({} mode) on {}.",
            self.command, self.mode, self.date
        )
    }

    fn render_failover(&self, w: &mut String) {
        let Some(f) = &self.failover else { return };
        let _ = writeln!(w, "## Failover (VRRP): kill -9 of the MASTER\n");
        let trials = f.as_ref().map_or(0, |f| f.trials);
        let _ = writeln!(
            w,
            "{} {trials} trial(s) per pair and setting; median (worst) in ms. Two directors and \
             two real servers on one LAN (the testbed's `HaCluster`), the client behind a router whose \
             neighbour cache must follow the MASTER; `garp_master_delay 1`. Each trial: the \
             pair settled (the MASTER holds the VIP, a connection went through it, 2.5 s more: \
             past its second gratuitous ARP and the router's lock time), then `kill -9` of the \
             MASTER's VRRP process; *to VIP*: until the BACKUP has the VIP on its interface \
             (`ip addr`, polled every 10 ms); *to connection*: until a new TCP connection from \
             the client (50 ms connect timeout per try) succeeds and the BACKUP's data plane has \
             counted it. Then the killed director restarts and preempts. keepalived is Debian's \
             2.2.7, its VRRP part (`keepalived --vrrp`), with an rvsd beside it that runs the \
             same virtual service without VRRP as its data plane: this kernel has no IPVS \
             (`CONFIG_IP_VS` is off), and as the kernel's IPVS table outlives a killed \
             keepalived, that rvsd keeps running when keepalived is killed. So the connection \
             column times the same probe for every pair, and its keepalived figures are \
             keepalived's VRRP with rvs's forwarding.\n",
            self.measured_by()
        );
        let rows = match f {
            Ok(f) => &f.rows,
            Err(e) => {
                let _ = writeln!(w, "{MISSING}: {e}\n");
                return;
            }
        };
        let mut settings: Vec<failover::Setting> = Vec::new();
        for r in rows {
            if !settings.contains(&r.setting) {
                settings.push(r.setting);
            }
        }
        let mut pairs: Vec<Pair> = Vec::new();
        for r in rows {
            if !pairs.contains(&r.pair) {
                pairs.push(r.pair);
            }
        }
        let mut head = String::from("| pair (master → backup) |");
        let mut rule = String::from("|---|");
        for st in &settings {
            let _ = write!(
                head,
                " v{} {} s: to VIP | v{} {} s: to connection |",
                st.version, st.advert_int, st.version, st.advert_int
            );
            rule.push_str("---|---|");
        }
        let _ = writeln!(w, "{head}\n{rule}");
        let find =
            |p: Pair, st: failover::Setting| rows.iter().find(|r| r.pair == p && r.setting == st);
        let cell = |v: &[std::time::Duration]| match failover::median_and_worst(v) {
            Some((m, x)) => format!("{} ({})", m.as_millis(), x.as_millis()),
            None => MISSING.into(),
        };
        for &p in &pairs {
            let mut line = format!("| {} |", p.name());
            for &st in &settings {
                match find(p, st) {
                    Some(r) => {
                        let _ = write!(line, " {} | {} |", cell(&r.to_vip), cell(&r.to_conn));
                    }
                    None => line.push_str(" — | — |"),
                }
            }
            let _ = writeln!(w, "{line}");
        }
        let _ = writeln!(w);
        let errors: Vec<String> = rows
            .iter()
            .filter_map(|r| {
                r.error.as_ref().map(|e| {
                    format!(
                        "v{} {} s, {}: {e}",
                        r.setting.version,
                        r.setting.advert_int,
                        r.pair.name()
                    )
                })
            })
            .collect();
        if !errors.is_empty() {
            let _ = writeln!(w, "Trials that failed:\n");
            for e in errors {
                let _ = writeln!(w, "- {e}");
            }
            let _ = writeln!(w);
        }
        let _ = writeln!(
            w,
            "Goals (issue 11): rvs no slower than keepalived at every setting, and under 400 ms \
             at 0.1 s.\n"
        );
        let verdict = |ok: bool| if ok { "met" } else { "**not met**" };
        let median = |p: Pair, st: failover::Setting, conn: bool| {
            find(p, st)
                .and_then(|r| failover::median_and_worst(if conn { &r.to_conn } else { &r.to_vip }))
        };
        for &st in &settings {
            for (what, conn) in [("to the VIP", false), ("to the first connection", true)] {
                let rvs = median(Pair::RvsRvs, st, conn);
                let ka = median(Pair::KeepalivedKeepalived, st, conn);
                let mut line = format!("- v{} {} s, {what}:", st.version, st.advert_int);
                match (rvs, ka) {
                    (Some((r, rw)), Some((k, kw))) => {
                        let _ = write!(
                            line,
                            " rvs → rvs {} ms (worst {}), keepalived → keepalived {} ms (worst \
                             {}): no slower: {}",
                            r.as_millis(),
                            rw.as_millis(),
                            k.as_millis(),
                            kw.as_millis(),
                            verdict(r <= k)
                        );
                    }
                    _ => line.push_str(" rvs → rvs or keepalived → keepalived missing"),
                }
                if st.advert_int == "0.1"
                    && let Some((r, rw)) = rvs
                {
                    let _ = write!(
                        line,
                        "; under 400 ms: {} (median; worst {})",
                        verdict(r.as_millis() < 400),
                        if rw.as_millis() < 400 {
                            "too"
                        } else {
                            "**not**"
                        }
                    );
                }
                line.push('.');
                let _ = writeln!(w, "{line}");
            }
        }
        let _ = writeln!(w);
    }

    fn render_sync(&self, w: &mut String) {
        let Some(s) = &self.sync else { return };
        let _ = writeln!(
            w,
            "## Connection sync (two rvs directors, `lvs_sync_daemon`)\n\n{} Both directors \
             run rvsd from a keepalived.conf with `global_defs {{ lvs_sync_daemon IF VI_1 }}` \
             and a VRRP instance; IPVS's sync protocol v1 to 224.0.0.81:8848, rvs's defaults \
             (a UDP flow synced at its 3rd packet and every 50th after, TCP on entering \
             ESTABLISHED and on each state change, a half-full datagram sent within 50 ms). \
             *Lag*: two directors and two real servers on one LAN, TCP connections from a \
             client behind a router, one at a time, 20 to 80 ms apart; from `connect()` (SYN, \
             the handshake's ACK, then the client's first data: its third packet, where IPVS's \
             rule first syncs an ESTABLISHED connection) to the entry in the BACKUP's \
             connection table, read from its pinned map every 0.2 ms. *Rate*, *bytes*, *bulk* \
             and *cost*: the packet line with a second director on a link of its own (the \
             sync link), UDP flows from the XDP-frame generator. *Rate*: a burst of new flows \
             at the MASTER, each sent 3 times; the BACKUP's `rvsadm --sync` polled until it has \
             them all (or nothing new for 1 s); flows per second from the first frame to the \
             last flow written. *Bytes*: the MASTER's sync counters over that burst (UDP \
             payload; on the wire adds {} bytes of Ethernet, IPv4 and UDP headers a \
             datagram). *Bulk*: the MASTER's table filled first (one packet a flow), then the \
             second rvsd started; its own timing (`rvsadm --sync`: `bulk done from … in N \
             ms`, from its first request to the end mark) and the time until it serves \
             rvsadm (program load and attach included). *Cost*: the packet part's runs at \
             the MASTER, one rvsd with `lvs_sync_daemon` whose data plane's sync switch is \
             cleared for the *off* runs (as in an rvsd without it: no reports) and set for the \
             *on* runs, by turns (off first in one repetition, on first in the next), so that \
             load drifting on the machine and a table that fills run by run weigh on both; no second director running (its work would share the two CPUs with the \
             chain measured).\n",
            self.measured_by(),
            sync::WIRE_OVERHEAD
        );
        let _ = writeln!(w, "| figure | value | goal |\n|---|---|---|");
        let verdict = |ok: bool| if ok { "met" } else { "**not met**" };
        let ms = |d: std::time::Duration| format!("{:.1}", d.as_secs_f64() * 1e3);
        match &s.lag {
            Ok(l) => {
                let mut v = l.lags.clone();
                v.sort();
                let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
                let _ = writeln!(
                    w,
                    "| sync lag, SYN at the MASTER to the entry at the BACKUP: p50 / p99 / worst | \
                     {} / {} / {} ms ({} connections{}) | — |",
                    ms(at(0.5)),
                    ms(at(0.99)),
                    ms(at(1.0)),
                    v.len(),
                    if l.missed > 0 {
                        format!(", {} never seen within 2 s", l.missed)
                    } else {
                        String::new()
                    }
                );
            }
            Err(e) => {
                let _ = writeln!(w, "| sync lag | {MISSING}: {e} | — |");
            }
        }
        match &s.rate {
            Ok(r) => {
                let _ = writeln!(
                    w,
                    "| connections synced per second (UDP flows) | {}/s: {} of {} new flows \
                     reached the BACKUP's table in {:.2} s (the generator sent them in {:.2} s; \
                     the MASTER sent {}, its sync ring was full for {}) | — |",
                    kilo(r.synced as f64 / r.secs.max(1e-6)),
                    r.synced,
                    r.offered,
                    r.secs,
                    r.offer_secs,
                    r.sent_conns,
                    r.ring_full,
                );
                let per = |b: u64| b as f64 * 1000.0 / r.sent_conns.max(1) as f64;
                let _ = writeln!(
                    w,
                    "| bytes per 1000 new connections | {:.1} kB of UDP payload, {:.1} kB on the \
                     wire ({:.1} datagrams; {} entries in {} datagrams over the burst) | — |",
                    per(r.sent_bytes) / 1e3,
                    per(r.sent_bytes + r.sent_msgs * sync::WIRE_OVERHEAD) / 1e3,
                    per(r.sent_msgs),
                    r.sent_conns,
                    r.sent_msgs,
                );
            }
            Err(e) => {
                let _ = writeln!(w, "| connections synced per second | {MISSING}: {e} | — |");
                let _ = writeln!(w, "| bytes per 1000 new connections | {MISSING} | — |");
            }
        }
        for b in &s.bulk {
            match b {
                Ok(b) => {
                    let goal = if b.flows >= 1_000_000 {
                        format!("< 10 s: {}", verdict(b.millis < 10_000))
                    } else {
                        "—".into()
                    };
                    let _ = writeln!(
                        w,
                        "| bulk sync of {} connections | {:.2} s ({} received; rvsd serving after \
                         {:.2} s) | {goal} |",
                        kilo(b.flows as f64),
                        b.millis as f64 / 1e3,
                        b.received,
                        b.wall.as_secs_f64(),
                    );
                }
                Err((n, e)) => {
                    let _ = writeln!(
                        w,
                        "| bulk sync of {} connections | {MISSING}: {e} | — |",
                        kilo(*n as f64)
                    );
                }
            }
        }
        match &s.cost {
            Ok(c) => {
                for (what, on, off, goal) in [
                    ("known flows, pps", &c.on, &c.off, true),
                    ("new flows/s", &c.on_new, &c.off_new, false),
                ] {
                    let (a, b) = (on.pps.median(), off.pps.median());
                    let r = match (a, b) {
                        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
                        _ => None,
                    };
                    let _ = writeln!(
                        w,
                        "| MASTER's {what}, sync on / off | {} / {} = {} | {} |",
                        cell(&on.pps, kilo),
                        cell(&off.pps, kilo),
                        r.map_or("—".into(), |r| format!("{r:.3}")),
                        match (goal, r) {
                            (true, Some(r)) => format!("≥ 0.95: {}", verdict(r >= 0.95)),
                            (true, None) => format!("≥ 0.95: {MISSING}"),
                            _ => "—".into(),
                        }
                    );
                }
                let _ = writeln!(
                    w,
                    "| MASTER's director ns/pkt (BPF run-time statistics), known / new flows, \
                     sync on / off | {} / {} and {} / {} | — |",
                    cell(&c.on.prog_ns, ns),
                    cell(&c.off.prog_ns, ns),
                    cell(&c.on_new.prog_ns, ns),
                    cell(&c.off_new.prog_ns, ns),
                );
                let _ = writeln!(
                    w,
                    "| MASTER's sync sending during the known-flow runs | {} entries/s; rvsd {} \
                     of a CPU (off: {}) | — |",
                    kilo(c.sent_per_s),
                    c.on.daemon_cpu.median().map_or(MISSING.into(), pct),
                    c.off.daemon_cpu.median().map_or(MISSING.into(), pct),
                );
            }
            Err(e) => {
                let _ = writeln!(
                    w,
                    "| MASTER's packet rate, sync on / off | {MISSING}: {e} | — |"
                );
            }
        }
        let _ = writeln!(
            w,
            "\nThe lag is mostly the 50 ms a half-filled datagram waits for more entries (IPVS's \
             master thread waits for a full buffer, or up to 2 s), plus up to 5 ms until rvsd \
             next reads the data plane's ring (it is woken only when an eighth of the ring is \
             full). The bulk sync's time runs from the new director's first request to the end \
             mark: the peer reads its tables in batches (BPF_MAP_LOOKUP_BATCH) and streams them \
             over TCP, the new director writes each flow with a few map calls; its rvsd serves \
             rvsadm (and starts VRRP) only then, after loading its programs and allocating its \
             tables. The cost figures are of a chain that runs in the sending CPU's softirq on \
             this 2-core machine, where rvsd's sync work takes CPU from the chain itself; their \
             spread says how much the machine's other load moved them.\n"
        );
    }

    fn render_monitor(&self, w: &mut String) {
        let Some(m) = &self.monitor else { return };
        let _ = writeln!(w, "## Monitor: the web console and /metrics\n");
        let secs = m.as_ref().map_or(0, |m| m.window.as_secs());
        let _ = writeln!(
            w,
            "{} rvsd with `--web` and a users file (`rvsd --add-web-user`) on a director in a \
             namespace, no traffic; the client is a Rust HTTPS client (rustls) in the client's \
             namespace that trusts exactly rvsd's self-signed certificate. *CPU*: rvsd's user + \
             system time (/proc/PID/stat) over {secs} s with one service of {} real servers, as \
             a share of one CPU: idle; with the console's live feed (`/api/v1/events`, server-sent \
             events, one page of 50 real servers, as the console asks) open by a logged-in \
             client; with `/metrics` scraped every second (basic auth, as Prometheus is \
             configured, on one kept-alive connection). *Render*: `/metrics` for {} services × \
             {} real servers, timed by the client from the request to the last byte on a \
             kept-alive connection (no TLS handshake in it), after one untimed scrape.\n",
            self.measured_by(),
            monitor::CPU_SERVERS,
            monitor::RENDER_SERVICES,
            monitor::RENDER_EACH,
        );
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                let _ = writeln!(w, "| figure | value |\n|---|---|");
                let _ = writeln!(w, "| rvsd's CPU and /metrics | {MISSING}: {e} |\n");
                return;
            }
        };
        let _ = writeln!(w, "| figure | value |\n|---|---|");
        let cpu = |f: &Result<CpuFigure, String>, what: &str| match f {
            Ok(f) => format!(
                "{:.2}% of a CPU{}",
                f.share * 100.0,
                if what.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({} {what}, {:.1} kB received, in {:.1} s)",
                        f.count,
                        f.bytes as f64 / 1e3,
                        f.secs
                    )
                }
            ),
            Err(e) => format!("{MISSING}: {e}"),
        };
        let n = monitor::CPU_SERVERS;
        let _ = writeln!(
            w,
            "| rvsd CPU, {n} real servers, idle | {} |",
            cpu(&m.idle, "")
        );
        let _ = writeln!(
            w,
            "| rvsd CPU, {n} real servers, console's live feed open | {} |",
            cpu(&m.feed, "events")
        );
        let _ = writeln!(
            w,
            "| rvsd CPU, {n} real servers, /metrics scraped every second | {} |",
            cpu(&m.scraped, "scrapes")
        );
        let render = |f: &Result<RenderFigure, String>| match f {
            Ok(f) => format!(
                "median {:.2} ms, worst {:.2} ms of {} scrapes; {:.1} kB",
                f.median.as_secs_f64() * 1e3,
                f.worst.as_secs_f64() * 1e3,
                f.scrapes,
                f.bytes as f64 / 1e3
            ),
            Err(e) => format!("{MISSING}: {e}"),
        };
        let (s, e) = (monitor::RENDER_SERVICES, monitor::RENDER_EACH);
        let _ = writeln!(
            w,
            "| /metrics, {s} services × {e} real servers, API token | {} |",
            render(&m.token)
        );
        let _ = writeln!(
            w,
            "| /metrics, {s} services × {e} real servers, basic auth | {} |",
            render(&m.basic)
        );
        let _ = writeln!(
            w,
            "\nA scrape with basic auth also verifies the user's argon2id hash (on a blocking \
             thread), each time: the difference between the two /metrics rows is that \
             verification; a token is checked by its SHA-256. The feed sends its page and the \
             whole director's figures once a second. One window each, on a machine that may be \
             doing other work: differences of a fraction of a percent between the CPU rows \
             are noise.\n"
        );
    }

    fn render_bgp(&self, w: &mut String) {
        let Some(b) = &self.bgp else { return };
        let _ = writeln!(
            w,
            "## BGP: routes announced and withdrawn (rvsd's speaker, BIRD)\n"
        );
        let (reps, trials, background) = b
            .as_ref()
            .map_or((0, 0, 0), |b| (b.reps, b.trials, b.background));
        let _ = writeln!(
            w,
            "{} The receiver is BIRD 2 in one namespace (passive, AS 65002, importing \
             everything, no kernel protocol); the speaker, in the director's namespace over a \
             veth, is rvsd (`rvs_bgp`, eBGP from AS 65001) or, as the reference, a second BIRD \
             announcing the same prefixes as static routes. Every time is read at the receiver, \
             through its control socket held open and asked every 2 ms (`show protocols all` for \
             the session's state and imported routes, `show route PREFIX`). *Announce*: N /32 \
             prefixes in keepalived.conf's `rvs_bgp`, each standing for one of {} DR virtual \
             services with one real server and no checker (`services VIP:80`: rvsd saves its \
             whole model after each change, so one service per prefix would take minutes to \
             load at 10000); the time from the session's Established to the receiver holding all N \
             routes, and from the speaker's start (rvsd: its process spawned, the \
             configuration loaded and the XDP program attached; BIRD: spawned), median and worst \
             of {reps} fresh start(s) each. *Withdraw*: with {background} other prefixes \
             announced (standing for the same services), from the change to the route gone at the receiver, median and worst of \
             {trials} trial(s): `rvsadm -d` of the last real server of a service rvsadm added \
             (timed from rvsadm's start) against BIRD's static route deleted from its file and \
             `birdc configure` (timed from the file's write); TCP_CHECK on the real server \
             ({}) failing once its listener is closed, with the BGP share: from rvsd's own log \
             line of the removal (`Removing service ... from VS`) to the route gone; SIGTERM of \
             the speaker, to the receiver holding none of its routes (both end the session \
             with a Cease).\n",
            self.measured_by(),
            bgp::SERVICES,
            bgp::CHECK_TIMERS
        );
        let b = match b {
            Ok(b) => b,
            Err(e) => {
                let _ = writeln!(w, "| figure | value |\n|---|---|");
                let _ = writeln!(w, "| BGP | {MISSING}: {e} |\n");
                return;
            }
        };
        let _ = writeln!(
            w,
            "| announce | rvsd, Established → all | rvsd, start → all | BIRD, Established → \
             all | BIRD, start → all |\n|---|---|---|---|---|"
        );
        let mut counts: Vec<usize> = b.announce.iter().map(|r| r.prefixes).collect();
        counts.dedup();
        for n in counts {
            let cell = |s: bgp::Speaker, start: bool| match b
                .announce
                .iter()
                .find(|r| r.speaker == s && r.prefixes == n)
            {
                Some(r) if r.error.is_none() || !r.from_start.is_empty() => {
                    let v = if start {
                        &r.from_start
                    } else {
                        &r.from_established
                    };
                    if start {
                        bgp::summary(v)
                    } else {
                        format!("{}, {}", bgp::summary(v), bgp::rate(n, v))
                    }
                }
                Some(r) => format!("{MISSING}: {}", r.error.as_deref().unwrap_or("")),
                None => MISSING.into(),
            };
            let _ = writeln!(
                w,
                "| {n} prefixes | {} | {} | {} | {} |",
                cell(bgp::Speaker::Rvsd, false),
                cell(bgp::Speaker::Rvsd, true),
                cell(bgp::Speaker::Bird, false),
                cell(bgp::Speaker::Bird, true),
            );
        }
        let _ = writeln!(
            w,
            "\n| withdrawal | speaker | to the route gone, median (worst) | BGP share, median \
             (worst) |\n|---|---|---|---|"
        );
        for r in &b.withdraw {
            let time = match &r.error {
                Some(e) if r.times.is_empty() => format!("{MISSING}: {e}"),
                _ => bgp::summary(&r.times),
            };
            let share = if r.bgp_share.is_empty() {
                "n/a".into()
            } else {
                bgp::summary(&r.bgp_share)
            };
            let _ = writeln!(
                w,
                "| {} | {} | {time} | {share} |",
                r.what,
                r.speaker.name()
            );
        }
        let _ = writeln!(
            w,
            "\nThe Established is the receiver's own time of it (`show protocols`, in ms, \
             set against its clock by `show status`), the end the first poll that saw all N \
             routes; the rate is N over the median time, a bound when that is below the 2 ms \
             polling. rvsd sends its whole table at once after its KEEPALIVE (500 prefixes an \
             UPDATE); BIRD's export trails its Established by tens of milliseconds and then \
             runs at about ten thousand routes a second here. *start → all* is mostly each \
             speaker's own start: rvsd loads and attaches its XDP programs (about 2 s), BIRD \
             waits its `connect delay time` (1 s). The rvsadm row includes rvsadm's start and \
             the director's save of its state; the checker's is dominated by its timers, its \
             BGP share is the speaker's decision and UPDATE. A BIRD beside keepalived has no \
             equivalent of the checker row: keepalived's notify script would run `birdc`, \
             adding its own start to the checker's timers.\n"
        );
    }

    fn render_evidence(&self, w: &mut String) {
        if self.programs.is_empty() && self.profiles.is_empty() {
            return;
        }
        let _ = writeln!(w, "## Where the time goes\n");
        if !self.programs.is_empty() {
            let _ = writeln!(
                w,
                "Program sizes: *xlated* is the program after the verifier's rewrites in 8-byte \
                 instruction slots (what `bpftool prog dump xlated` lists), *JIT* its x86 code, \
                 *verified* the instructions the verifier walked. A packet of a known flow runs \
                 `rvs_director` and one `rvs_xmit_*` (tail call); a new flow adds a scheduler \
                 and `rvs_record`.\n"
            );
            let _ = writeln!(
                w,
                "| program | of | xlated insns | JIT bytes | verified insns |\n|---|---|---|---|---|"
            );
            for (set, progs) in &self.programs {
                for p in progs {
                    let _ = writeln!(
                        w,
                        "| `{}` | {set} | {} | {} | {} |",
                        p.name, p.xlated_insns, p.jited_bytes, p.verified_insns
                    );
                }
            }
            let _ = writeln!(w);
        }
        if !self.profiles.is_empty() {
            let _ = writeln!(
                w,
                "CPU profiles over known flows (`perf record -a` on both CPUs while the chain \
                 runs flat out, so the generator and the sink are in it too), symbols grouped \
                 by kind of work (a rough grouping by name; the largest symbols follow). Time \
                 per packet = share × machine CPU ns/pkt of the packet table.\n"
            );
            let mut head = String::from("| kind of work |");
            let mut rule = String::from("|---|");
            for p in &self.profiles {
                let _ = write!(head, " {} |", p.case);
                rule.push_str("---|");
            }
            let _ = writeln!(w, "{head}\n{rule}");
            let kinds: Vec<&String> = self.profiles[0].groups.iter().map(|(k, _)| k).collect();
            for (i, kind) in kinds.iter().enumerate() {
                let mut line = format!("| {kind} |");
                for p in &self.profiles {
                    let v = p.groups.get(i).map_or(0.0, |g| g.1);
                    let _ = write!(line, " {v:.1}% |");
                }
                let _ = writeln!(w, "{line}");
            }
            let _ = writeln!(w);
        }
        for p in &self.profiles {
            let _ = writeln!(
                w,
                "Largest symbols of **{}** ({} samples):\n",
                p.case, p.total_samples
            );
            let _ = writeln!(w, "| share | symbol |\n|---|---|");
            for (pct, sym) in &p.top {
                let _ = writeln!(w, "| {pct:.1}% | `{sym}` |");
            }
            let _ = writeln!(w);
        }
    }
}

/// The part that writes each section, by the start of its heading (a section runs from its
/// `## ` heading to the next).
const OWNERS: [(&str, &str); 14] = [
    ("## Goals", "packets"),
    ("## Packet forwarding", "packets"),
    ("## TCP through", "tcp"),
    ("## Scaling", "scaling"),
    ("## Connection table", "table"),
    ("## Failover", "failover"),
    ("## Connection sync", "sync"),
    ("## Monitor", "monitor"),
    ("## BGP", "bgp"),
    ("## Scale-out behind ECMP", "ecmp"),
    ("## Layer-7 dispatch", "l7"),
    ("## Where the time goes", "packets"),
    ("## Cases", "packets"),
    ("## Notes", "packets"),
];

fn owner(heading: &str) -> Option<&'static str> {
    OWNERS
        .iter()
        .find(|(h, _)| heading.starts_with(h))
        .map(|(_, o)| *o)
}

/// The document before the analysis, cut into sections: (heading line, whole text); the text
/// before the first heading comes first, with an empty heading.
fn sections(body: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = vec![(String::new(), String::new())];
    for line in body.split_inclusive('\n') {
        if line.starts_with("## ") {
            out.push((line.trim_end().to_owned(), String::new()));
        }
        if let Some(last) = out.last_mut() {
            last.1.push_str(line);
        }
    }
    out
}

/// What a run of only `parts` writes: the `old` document with those parts' sections replaced by
/// the ones of `new` (a section new to the file goes before "Where the time goes", or the
/// cases), and everything else as it was: the other parts' figures, the header of the run that
/// made them, the hand-written analysis. Each part's section says which run measured it.
pub fn merge(old: &str, new: &str, parts: &[String]) -> String {
    let Some(cut) = old.find(ANALYSIS_BEGIN) else {
        return new.to_owned();
    };
    let (old_body, old_tail) = old.split_at(cut);
    let new_body = new.find(ANALYSIS_BEGIN).map_or(new, |c| &new[..c]);
    let ran = |h: &str| owner(h).is_some_and(|o| parts.iter().any(|p| p == o));
    let fresh: Vec<(String, String)> = sections(new_body)
        .into_iter()
        .filter(|(h, _)| ran(h))
        .collect();
    let old_secs = sections(old_body);
    let known: Vec<&str> = old_secs.iter().map(|(h, _)| h.as_str()).collect();
    let mut added: Vec<&(String, String)> = fresh
        .iter()
        .filter(|(h, _)| !known.contains(&h.as_str()))
        .collect();
    let mut out = String::new();
    for (h, text) in &old_secs {
        if (h.starts_with("## Where the time goes") || h.starts_with("## Cases"))
            && !added.is_empty()
        {
            for (_, t) in added.drain(..) {
                out.push_str(t);
            }
        }
        if ran(h) {
            if let Some((_, t)) = fresh.iter().find(|(fh, _)| fh == h) {
                out.push_str(t);
            }
        } else {
            out.push_str(text);
        }
    }
    for (_, t) in added {
        out.push_str(t);
    }
    out.push_str(old_tail);
    out
}

/// The hand-written analysis in an existing document, if any.
pub fn kept_analysis(doc: &str) -> Option<String> {
    let start = doc.find(ANALYSIS_BEGIN)? + ANALYSIS_BEGIN.len();
    let end = doc[start..].find(ANALYSIS_END)? + start;
    Some(doc[start..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_analysis_survives_a_new_run() {
        let mut r = Report::default();
        r.packets.push(PacketRow {
            case: Case::Haproxy,
            steady: None,
            new: None,
        });
        let doc = r.render(Some("\n## Analysis\n\nBy hand.\n"));
        assert_eq!(
            kept_analysis(&doc).unwrap().trim(),
            "## Analysis\n\nBy hand."
        );
        assert!(doc.contains("| HAProxy | n/a |"));
    }

    #[test]
    fn a_run_of_some_parts_keeps_the_others_sections() {
        let old = format!(
            "# rvs benchmarks\n\nProduced by the full run.\n\n## Goals\n\n- packets goal\n\n\
             ## Packet forwarding (UDP)\n\nold packets\n\n## Connection sync (old)\n\nold \
             sync\n\n## Where the time goes\n\nold profile\n\n## Cases\n\n- cases\n\n\
             {ANALYSIS_BEGIN}\n## Analysis\n\nBy hand.\n{ANALYSIS_END}\n"
        );
        let new = format!(
            "# rvs benchmarks\n\nProduced by a sync run.\n\n## Goals\n\n\n\
             ## Packet forwarding (UDP)\n\n(empty)\n\n## Failover (VRRP)\n\nnew failover\n\n\
             ## Connection sync (old)\n\nnew sync\n\n## Cases\n\n- cases\n\n{ANALYSIS_BEGIN}\n\
             ## Analysis\n\n(Write here)\n{ANALYSIS_END}\n"
        );
        let parts = ["failover".to_owned(), "sync".to_owned()];
        let doc = merge(&old, &new, &parts);
        for kept in [
            "Produced by the full run.",
            "- packets goal",
            "old packets",
            "old profile",
            "By hand.",
            "new sync",
            "new failover",
        ] {
            assert!(doc.contains(kept), "{kept:?} missing:\n{doc}");
        }
        for gone in [
            "old sync",
            "(empty)",
            "Produced by a sync run",
            "(Write here)",
        ] {
            assert!(!doc.contains(gone), "{gone:?} kept:\n{doc}");
        }
        // A section new to the file goes before the evidence.
        assert!(doc.find("new failover").unwrap() < doc.find("old profile").unwrap());
        // Run again: the same document.
        assert_eq!(merge(&doc, &new, &parts), doc);
    }
}
