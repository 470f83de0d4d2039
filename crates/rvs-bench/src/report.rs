//! The results and BENCHMARKS.md: Markdown tables of every figure (median over the repetitions
//! and its spread), each with its ratio to nftables and to the ceiling, the machine, the command,
//! and the evidence of where the time goes.

use std::fmt::Write as _;

use crate::{pps::Figure, progs::Prog, stats::Sample};

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
}

fn median(s: &Sample) -> Option<f64> {
    s.median()
}

/// `value (min–max)`: for latencies, whose spread is wide.
fn range_cell(s: &Sample, fmt: impl Fn(f64) -> String) -> String {
    match (s.median(), s.range()) {
        (Some(m), Some((lo, hi))) if s.spread().is_some() => {
            format!("{} ({}–{})", fmt(m), fmt(lo), fmt(hi))
        }
        (Some(m), _) => fmt(m),
        (None, _) => MISSING.into(),
    }
}

/// `value ±spread%`.
fn cell(s: &Sample, fmt: impl Fn(f64) -> String) -> String {
    match (s.median(), s.spread()) {
        (Some(m), Some(sp)) => format!("{} ±{:.0}%", fmt(m), sp * 100.0),
        (Some(m), None) => fmt(m),
        (None, _) => MISSING.into(),
    }
}

fn mpps(v: f64) -> String {
    format!("{:.2} M", v / 1e6)
}

fn kilo(v: f64) -> String {
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

fn us(v: f64) -> String {
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
}
