//! rvs-bench: rvs against the XDP ceiling, nftables, HAProxy and no balancer at all, side by
//! side in one run on this machine, written to BENCHMARKS.md.
//!
//! ```text
//! rvs-bench [--quick | --smoke] [--out FILE] [--bin-dir DIR] [--only PARTS]
//! ```
//!
//! Everything runs in network namespaces it creates (`rvs-<pid>-…`, removed at the end, also on
//! failure) and needs root. Parts: `packets` (packet rates of every case on a line of
//! namespaces, with an XDP-frame generator), `tcp` (connections, HTTP and bulk through every
//! balancer to nginx/iperf3 real servers), `scaling` (1…1000 real servers), `table` (the
//! connection table at 1k…1M flows), `failover` (VRRP failover times of rvs and keepalived,
//! issue 11), `sync` (connection sync between two directors: lag, rate, bulk sync, cost; issue
//! 12), `monitor` (rvsd's CPU with the web console's live feed open or /metrics scraped, and
//! the time to render /metrics for 100 services × 10 real servers; issue 13), `bgp` (rvsd's BGP
//! speaker against BIRD: routes announced per second, and the time from a service going down to
//! the route gone at a BIRD peer; issue 14), `l7` (HTTP routed by Host through rvsd's
//! `rvs_l7_server`, HAProxy and nginx). A run of some
//! parts (`--only`) keeps the other parts' sections of an existing report.
//! `RVS_BENCH_DEBUG=1` prints every run.

mod bgp;
mod cpu;
mod ecmp;
mod failover;
mod https;
mod l7;
mod line;
mod monitor;
mod perf;
mod pps;
mod progs;
mod report;
mod rvs;
mod stats;
mod sync;
mod tcp;
mod tools;
mod xdp;

use std::{
    fmt::Write as _,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use clap::Parser;

use crate::{
    line::{Line, VIP},
    pps::{Bench, Figure},
    report::{Case, FillRow, Machine, PacketRow, Report, ScaleRow},
    rvs::{Bins, Rvsd},
    xdp::{Forwarder, Sink, UDP_PORT},
};

#[derive(Parser, Debug)]
#[command(
    name = "rvs-bench",
    about = "rvs against the XDP ceiling, nftables, HAProxy and no balancer, in one run"
)]
struct Args {
    /// About 7 minutes: fewer repetitions, shorter runs.
    #[arg(long, conflicts_with = "smoke")]
    quick: bool,
    /// A few seconds per case: checks that every part works, numbers mean little.
    #[arg(long)]
    smoke: bool,
    /// Where to write the Markdown report.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    /// Directory of rvsd, rvsadm and rvs-rs (default: beside this program, or RVS_BIN_DIR).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Only these parts (comma-separated): packets, tcp, scaling, table, failover, sync,
    /// monitor, bgp, ecmp, l7. The other parts' sections of an existing report are kept.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// The command line to print in the report (scripts/bench passes its own).
    #[arg(long, env = "RVS_BENCH_COMMAND")]
    command: Option<String>,
    /// Numbers of real servers of the scaling part (default 1,10,100,1000; quick: 1,1000;
    /// smoke: 1,10).
    #[arg(long, value_delimiter = ',')]
    scale_servers: Vec<usize>,
    /// Do not print the report on stdout.
    #[arg(long)]
    quiet: bool,
}

/// How long and how often everything is measured.
#[derive(Clone, Debug)]
pub struct Plan {
    pub mode: &'static str,
    /// Timed repetitions of each packet-rate figure over known flows.
    pub reps: usize,
    /// Timed repetitions of each new-flow figure (each fills the connection table further).
    pub new_reps: usize,
    /// Repetitions of each TCP figure.
    pub tcp_reps: usize,
    pub pps_time: Duration,
    pub tcp_secs: u32,
    /// Known flows per CPU in the packet-rate cases.
    pub flows_per_cpu: u32,
    /// New flows per CPU per run.
    pub new_per_cpu: u64,
    /// Real servers behind the VIP in the packet-rate cases.
    pub servers: usize,
    pub scale_servers: Vec<usize>,
    pub scale_scheds: Vec<&'static str>,
    pub scale_flows_per_cpu: u32,
    pub scale_new_per_cpu: u64,
    pub fills: Vec<u64>,
    /// Flows of each director's own share, and the group sizes, for ecmp's measured part.
    pub ecmp_share: u64,
    pub ecmp_groups: Vec<usize>,
    pub perf: bool,
}

impl Plan {
    fn full() -> Plan {
        Plan {
            mode: "full",
            reps: 5,
            new_reps: 3,
            tcp_reps: 3,
            pps_time: Duration::from_millis(1500),
            tcp_secs: 3,
            flows_per_cpu: 8192,
            new_per_cpu: 100_000,
            servers: 10,
            scale_servers: vec![1, 10, 100, 1000],
            scale_scheds: vec!["mh", "rr", "wlc"],
            scale_flows_per_cpu: 4096,
            scale_new_per_cpu: 60_000,
            fills: vec![1_000, 100_000, 1_000_000],
            ecmp_share: 20_000,
            ecmp_groups: vec![1, 4, 16],
            perf: true,
        }
    }

    fn quick() -> Plan {
        Plan {
            mode: "quick",
            reps: 2,
            new_reps: 1,
            tcp_reps: 1,
            pps_time: Duration::from_millis(500),
            tcp_secs: 2,
            // The ends only.
            scale_servers: vec![1, 1000],
            perf: false,
            ..Plan::full()
        }
    }

    fn smoke() -> Plan {
        Plan {
            mode: "smoke",
            reps: 1,
            new_reps: 1,
            tcp_reps: 1,
            pps_time: Duration::from_millis(200),
            tcp_secs: 1,
            flows_per_cpu: 1024,
            new_per_cpu: 20_000,
            servers: 4,
            scale_servers: vec![1, 10],
            scale_scheds: vec!["mh", "wlc"],
            scale_flows_per_cpu: 1024,
            scale_new_per_cpu: 10_000,
            fills: vec![1_000, 10_000],
            ecmp_share: 1_000,
            ecmp_groups: vec![1, 4],
            perf: false,
        }
    }
}

static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// A line on stderr, with the time since the start.
pub fn progress(msg: &str) {
    let t = START.get_or_init(Instant::now).elapsed().as_secs_f64();
    eprintln!("[{t:6.1}s] {msg}");
}

fn main() -> ExitCode {
    START.get_or_init(Instant::now);
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("rvs-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs everything; `Ok(false)` when some measurement failed (the report says which).
fn run(args: &Args) -> Result<bool> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("rvs-bench needs root: it creates network namespaces and loads XDP programs");
    }
    tools::check_installed()?;
    let bins = Bins::find(args.bin_dir.as_deref())?;
    let plan = if args.smoke {
        Plan::smoke()
    } else if args.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    let mut plan = plan;
    if !args.scale_servers.is_empty() {
        if let Some(&n) = args
            .scale_servers
            .iter()
            .find(|&&n| n == 0 || n > line::MAX_REAL_SERVERS)
        {
            bail!(
                "--scale-servers {n}: between 1 and {}",
                line::MAX_REAL_SERVERS
            );
        }
        plan.scale_servers = args.scale_servers.clone();
    }
    let parts = [
        "packets", "tcp", "scaling", "table", "failover", "sync", "monitor", "bgp", "ecmp", "l7",
    ];
    for p in &args.only {
        if !parts.contains(&p.as_str()) {
            bail!("unknown part {p:?}; the parts are {}", parts.join(", "));
        }
    }
    let want = |p: &str| args.only.is_empty() || args.only.iter().any(|o| o == p);
    // What dead runs left behind (their namespaces and pins) would disturb this one.
    let _ = rvs_testbed::cleanup_stale();
    rvs::cleanup_stale(&bins);

    let dir = std::env::temp_dir().join(format!("rvs-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let _remove_dir = RemoveDir(dir.clone());

    let mut rep = Report {
        machine: machine(),
        command: args.command.clone().unwrap_or_else(|| {
            let mut c = String::from("rvs-bench");
            for a in std::env::args().skip(1) {
                let _ = write!(c, " {a}");
            }
            c
        }),
        mode: plan.mode.into(),
        date: date(),
        ..Report::default()
    };
    let load = loadavg();
    progress(&format!(
        "rvs-bench, {} mode, {} CPUs, load average {load}",
        plan.mode, rep.machine.cores
    ));
    rep.settings = settings(&plan, load.as_str());

    if want("packets") {
        packets(&plan, &bins, &dir, &mut rep).context("the packet-rate cases")?;
    }
    if want("tcp") {
        match tcp::run(&plan, &bins, &dir) {
            Ok(rows) => rep.tcp = rows.into_iter().map(Ok).collect(),
            Err(e) => {
                rep.failures.push(format!("TCP: {e:#}"));
                rep.tcp = Case::ALL
                    .iter()
                    .map(|&c| Err((c, format!("{e:#}"))))
                    .collect();
            }
        }
    }
    if want("scaling")
        && let Err(e) = scaling(&plan, &bins, &mut rep)
    {
        rep.failures.push(format!("scaling: {e:#}"));
    }
    if want("table")
        && let Err(e) = table(&plan, &bins, &mut rep)
    {
        rep.failures.push(format!("connection table: {e:#}"));
    }
    if want("failover") {
        let f = failover::run(&plan, &bins, &dir).map_err(|e| format!("{e:#}"));
        match &f {
            Ok(f) => rep.failures.extend(f.rows.iter().filter_map(|r| {
                r.error.as_ref().map(|e| {
                    format!(
                        "failover, v{} {} s, {}: {e}",
                        r.setting.version,
                        r.setting.advert_int,
                        r.pair.name()
                    )
                })
            })),
            Err(e) => rep.failures.push(format!("failover: {e}")),
        }
        rep.failover = Some(f);
    }
    if want("sync") {
        let s = sync::run(&plan, &bins, &dir);
        let mut failed = Vec::new();
        for (what, r) in [
            ("lag", s.lag.as_ref().err()),
            ("rate", s.rate.as_ref().err()),
            ("cost", s.cost.as_ref().err()),
        ] {
            if let Some(e) = r {
                failed.push(format!("sync {what}: {e}"));
            }
        }
        for b in &s.bulk {
            if let Err((n, e)) = b {
                failed.push(format!("sync, bulk of {n}: {e}"));
            }
        }
        rep.failures.extend(failed);
        rep.sync = Some(s);
    }
    if want("monitor") {
        let m = monitor::run(&plan, &bins, &dir).map_err(|e| format!("{e:#}"));
        match &m {
            Ok(m) => {
                for (what, e) in [
                    ("idle CPU", m.idle.as_ref().err()),
                    ("CPU with the feed open", m.feed.as_ref().err()),
                    ("CPU with /metrics scraped", m.scraped.as_ref().err()),
                    ("/metrics with a token", m.token.as_ref().err()),
                    ("/metrics with basic auth", m.basic.as_ref().err()),
                ] {
                    if let Some(e) = e {
                        rep.failures.push(format!("monitor, {what}: {e}"));
                    }
                }
            }
            Err(e) => rep.failures.push(format!("monitor: {e}")),
        }
        rep.monitor = Some(m);
    }
    if want("bgp") {
        let b = bgp::run(&plan, &bins, &dir).map_err(|e| format!("{e:#}"));
        match &b {
            Ok(b) => rep.failures.extend(b.failures()),
            Err(e) => rep.failures.push(format!("bgp: {e}")),
        }
        rep.bgp = Some(b);
    }
    if want("ecmp") {
        let e = ecmp::run(&plan, &bins).map_err(|e| format!("{e:#}"));
        match &e {
            Ok(e) => rep.failures.extend(e.failures()),
            Err(e) => rep.failures.push(format!("ecmp: {e}")),
        }
        rep.ecmp = Some(e);
    }
    if want("l7") {
        let l = l7::run(&plan, &bins, &dir).map_err(|e| format!("{e:#}"));
        match &l {
            Ok(rows) => rep.failures.extend(l7::failures(rows)),
            Err(e) => rep.failures.push(format!("l7: {e}")),
        }
        rep.l7 = Some(l);
    }
    rep.elapsed_s = START.get().map_or(0.0, |s| s.elapsed().as_secs_f64());
    let old = std::fs::read_to_string(&args.out).ok();
    let kept = old.as_deref().and_then(report::kept_analysis);
    let mut doc = rep.render(kept.as_deref());
    if !args.only.is_empty()
        && let Some(old) = &old
    {
        doc = report::merge(old, &doc, &args.only);
    }
    std::fs::write(&args.out, &doc).with_context(|| format!("writing {}", args.out.display()))?;
    if !args.quiet {
        println!("{doc}");
    }
    progress(&format!(
        "wrote {} in {:.0} s",
        args.out.display(),
        rep.elapsed_s
    ));
    for f in &rep.failures {
        eprintln!("rvs-bench: failed: {f}");
    }
    Ok(rep.failures.is_empty())
}

struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn settings(plan: &Plan, load: &str) -> Vec<String> {
    vec![
        format!(
            "Packets: 60-byte UDP frames (64 on a wire) to VIP:{UDP_PORT} from an XDP-frame \
             generator (`rvs_bench_gen`, BPF_PROG_RUN with live frames, one thread pinned to \
             each CPU), {} known flows per CPU, {} real servers; {} timed runs of {:.1} s over \
             known flows and {} of {} new flows per CPU (up to that time), plus one run of each \
             with BPF run-time statistics on for the director ns/pkt columns (timing every BPF \
             program run slows the whole chain, so those runs are not timed). Topology: client — director — sink, \
             veth pairs with one queue per CPU, no bridge, so a frame stays an XDP frame from \
             generator to sink (except where the director hands it to the kernel).",
            plan.flows_per_cpu,
            plan.servers,
            plan.reps,
            plan.pps_time.as_secs_f64(),
            plan.new_reps,
            plan.new_per_cpu,
        ),
        format!(
            "TCP: {} run(s) of {} s per figure; wrk with {} threads and 32 connections, nginx \
             with one worker per CPU on each of 2 real servers, iperf3 to the first.",
            plan.tcp_reps,
            plan.tcp_secs,
            std::thread::available_parallelism().map_or(1, |n| n.get())
        ),
        "BPF run-time statistics are switched on with the BPF_ENABLE_STATS command (the same \
         machine-wide switch as `sysctl kernel.bpf_stats_enabled=1`, held only during the runs \
         that read them and released by the kernel when the harness exits); the sysctl itself \
         is not changed."
            .into(),
        format!(
            "On veth the whole path (generator, director, sink) runs in the sending CPU's \
             softirq: a packet rate is the rate of the chain, so differences between directors \
             are diluted; the director ns/pkt columns show the director alone. Load average at \
             the start: {load} (other work on the machine disturbs the figures)."
        ),
    ]
}

/// The connection-table size every rvsd of a run gets: 2^21 flows, or more if the plan's flows
/// need it (`need` flows at most in one table).
fn capacity(need: u64) -> u32 {
    let want = (need + need / 8).next_power_of_two().max(1 << 21);
    u32::try_from(want).unwrap_or(1 << 31)
}

/// Runs `f`, recording a failure in the report instead of stopping.
fn attempt<T>(rep: &mut Report, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T, String> {
    f().map_err(|e| {
        let msg = format!("{what}: {e:#}");
        progress(&format!("FAILED {msg}"));
        rep.failures.push(msg.clone());
        msg
    })
}

/// `-A -u VIP:9 -s SCHED` and `servers` real servers by `method`.
fn udp_rules(sched: &str, servers: usize, method: &str) -> String {
    let mut r = format!("-A -u {VIP}:{UDP_PORT} -s {sched}\n");
    for i in 0..servers {
        let _ = writeln!(
            r,
            "-a -u {VIP}:{UDP_PORT} -r {}:{UDP_PORT} {method} -w 1",
            Line::real_server(i)
        );
    }
    r
}

fn show(case: &str, what: &str, f: &Figure) {
    progress(&format!(
        "  {case:<10} {what:<6} {:>8.3} Mpps  director {:>5.0} ns/pkt  machine {:>5.0} ns/pkt",
        f.pps.median().unwrap_or(0.0) / 1e6,
        f.prog_ns.median().unwrap_or(f64::NAN),
        f.cpu_ns.median().unwrap_or(f64::NAN),
    ));
}

fn packets(plan: &Plan, bins: &Bins, dir: &Path, rep: &mut Report) -> Result<()> {
    progress("packet rates: client — director — sink");
    let cpus = std::thread::available_parallelism()?.get();
    let line = Line::build(cpus)?;
    line.resolve_sink()?;
    let mut bench = Bench::new(&line)?;
    let t = plan.pps_time;

    // No balancer: the generator's frames counted as they reach the director's namespace.
    let steady = attempt(rep, "direct", || {
        let sink = Sink::attach(&line.director, "eth0")?;
        let f = bench.steady(plan.flows_per_cpu, t, plan.reps, None, Some(&sink))?;
        show("direct", "known", &f);
        Ok(f)
    });
    let direct = PacketRow {
        case: Case::Direct,
        steady: Some(steady),
        new: None,
    };

    let mut ceiling_progs = Vec::new();
    let ceiling = {
        let fwd = Forwarder::attach(
            &line.director,
            "eth0",
            VIP,
            "eth1",
            line.director_back_mac(),
            line.sink_mac(),
        );
        match fwd {
            Ok(fwd) => {
                let id = fwd.prog_id().ok();
                if let Some(id) = id
                    && let Ok(p) = progs::prog(id)
                {
                    ceiling_progs.push(p);
                }
                let steady = attempt(rep, "ceiling, known flows", || {
                    let f = bench.steady(plan.flows_per_cpu, t, plan.reps, id, None)?;
                    show("ceiling", "known", &f);
                    Ok(f)
                });
                if plan.perf {
                    profile(&mut bench, dir, "ceiling", t, rep);
                }
                let new = attempt(rep, "ceiling, new flows", || {
                    let f = bench.new_flows(plan.new_per_cpu, t, plan.new_reps, id)?;
                    show("ceiling", "new", &f);
                    Ok(f)
                });
                PacketRow {
                    case: Case::Ceiling,
                    steady: Some(steady),
                    new: Some(new),
                }
            }
            Err(e) => {
                let msg = format!("ceiling: {e:#}");
                rep.failures.push(msg.clone());
                PacketRow {
                    case: Case::Ceiling,
                    steady: Some(Err(msg.clone())),
                    new: Some(Err(msg)),
                }
            }
        }
    };
    rep.packets.push(ceiling);

    for (case, method, interfaces) in [
        (Case::RvsDr, "-g", &["eth0"][..]),
        (Case::RvsTun, "-i", &["eth0"][..]),
        (Case::RvsNat, "-m", &["eth0", "eth1"][..]),
    ] {
        let name = case.name();
        let setup = attempt(rep, name, || {
            let need = (u64::from(plan.flows_per_cpu)
                + (plan.new_reps as u64 + 1) * plan.new_per_cpu)
                * cpus as u64;
            let rvsd = Rvsd::start(&line.director, bins, interfaces, capacity(need))?;
            rvsd.configure(&udp_rules("rr", plan.servers, method))?;
            let id = rvs::xdp_prog_id(&line.director, "eth0")?;
            Ok((rvsd, id))
        });
        bench.watch = setup.as_ref().ok().and_then(|(r, _)| r.pid());
        let (rvsd, id) = match setup {
            Ok(s) => s,
            Err(msg) => {
                rep.packets.push(PacketRow {
                    case,
                    steady: Some(Err(msg.clone())),
                    new: Some(Err(msg)),
                });
                continue;
            }
        };
        if case == Case::RvsDr
            && let Ok(family) = progs::family(id)
        {
            rep.programs.push(("rvs director".into(), family));
            rep.programs.push(("ceiling".into(), ceiling_progs.clone()));
        }
        let steady = attempt(rep, &format!("{name}, known flows"), || {
            let f = bench.steady(plan.flows_per_cpu, t, plan.reps, Some(id), None)?;
            show(name, "known", &f);
            Ok(f)
        });
        if plan.perf && case != Case::RvsTun {
            profile(&mut bench, dir, name, t, rep);
        }
        let new = attempt(rep, &format!("{name}, new flows"), || {
            let f = bench.new_flows(plan.new_per_cpu, t, plan.new_reps, Some(id))?;
            show(name, "new", &f);
            Ok(f)
        });
        if let Err(e) = tcp::check_dataplane(&rvsd) {
            rep.failures.push(format!("{name}: {e:#}"));
        }
        rep.packets.push(PacketRow {
            case,
            steady: Some(steady),
            new: Some(new),
        });
        bench.watch = None;
    }

    // nftables: the director's kernel forwards. A pass-all XDP program on its eth0 lets the
    // generator's XDP frames in (a veth receives them only with NAPI on), then the kernel builds
    // socket buffers from them as a NIC driver would.
    let nft = attempt(rep, "nftables set-up", || {
        let ifindex = line.director.ifindex("eth0")?;
        let pass = line
            .director
            .enter(|| ::rvs::dataplane::attach_pass_program(ifindex))??;
        let servers: Vec<Ipv4Addr> = (0..plan.servers).map(Line::real_server).collect();
        tools::nft_balance(&line.director, VIP, &servers, UDP_PORT, dir)?;
        Ok(pass)
    });
    let row = match nft {
        Ok(pass) => {
            let steady = attempt(rep, "nftables, known flows", || {
                let f = bench.steady(plan.flows_per_cpu, t, plan.reps, None, None)?;
                show("nftables", "known", &f);
                Ok(f)
            });
            if plan.perf {
                profile(&mut bench, dir, "nftables", t, rep);
            }
            // Conntrack holds at most nf_conntrack_max (262144 here) entries per namespace and
            // keeps an unanswered UDP flow 30 s: fewer new flows per run.
            let per_cpu = (plan.new_per_cpu / 4).max(1000);
            let new = attempt(rep, "nftables, new flows", || {
                let f = bench.new_flows(per_cpu, t, plan.new_reps, None)?;
                show("nftables", "new", &f);
                Ok(f)
            });
            let _ = tools::nft_clear(&line.director);
            drop(pass);
            PacketRow {
                case: Case::Nft,
                steady: Some(steady),
                new: Some(new),
            }
        }
        Err(msg) => PacketRow {
            case: Case::Nft,
            steady: Some(Err(msg.clone())),
            new: Some(Err(msg)),
        },
    };
    rep.packets.push(row);
    rep.packets.push(PacketRow {
        case: Case::Haproxy,
        steady: None,
        new: None,
    });
    rep.packets.push(direct);
    rep.notes.push(
        "HAProxy has no packet-rate row: a TCP proxy terminates connections and forwards no \
         packets (and no UDP)."
            .into(),
    );
    rep.notes.push(format!(
        "nftables' new-flow runs send {} flows per CPU (a quarter of the others): its \
         connection tracking table holds 262144 entries and keeps an unanswered UDP flow 30 s.",
        (plan.new_per_cpu / 4).max(1000)
    ));
    Ok(())
}

/// A `perf record -a` profile of the last steady-state flows.
fn profile(bench: &mut Bench, dir: &Path, case: &str, t: Duration, rep: &mut Report) {
    let r = (|| -> Result<report::Profile> {
        let file = dir.join("perf.data");
        let rec = perf::record(&file, t)?;
        std::thread::sleep(Duration::from_millis(100));
        bench.rerun(t, None)?;
        rec.finish(case, 14)
    })();
    match r {
        Ok(p) => rep.profiles.push(p),
        Err(e) => rep.notes.push(format!("no profile of {case}: {e:#}")),
    }
}

/// Adds real servers `from..to` to the UDP service, in one `rvsadm -R`.
fn add_servers(rvsd: &Rvsd, from: usize, to: usize) -> Result<()> {
    let mut batch = String::new();
    for n in from..to {
        let _ = writeln!(
            batch,
            "-a -u {VIP}:{UDP_PORT} -r {}:{UDP_PORT} -g -w 1",
            Line::real_server(n)
        );
    }
    rvsd.rvsadm_in(&["-R"], &batch)?;
    Ok(())
}

fn scaling(plan: &Plan, bins: &Bins, rep: &mut Report) -> Result<()> {
    progress("scaling with the number of real servers (rvs DR)");
    let cpus = std::thread::available_parallelism()?.get();
    let line = Line::build(cpus)?;
    line.resolve_sink()?;
    let mut bench = Bench::new(&line)?;
    let per_sched = (u64::from(plan.scale_flows_per_cpu)
        + (plan.new_reps as u64 + 1) * plan.scale_new_per_cpu)
        * cpus as u64;
    let size = capacity(per_sched * plan.scale_scheds.len() as u64);
    let t = plan.pps_time;
    for &n in &plan.scale_servers {
        // A fresh rvsd (an empty connection table) for each number of servers.
        let rvsd = Rvsd::start(&line.director, bins, &["eth0"], size)?;
        // wlc while adding: a counting scheduler has no table to rebuild at each addition.
        rvsd.configure(&format!("-A -u {VIP}:{UDP_PORT} -s wlc\n"))?;
        let id = rvs::xdp_prog_id(&line.director, "eth0")?;
        bench.watch = rvsd.pid();
        let started = Instant::now();
        add_servers(&rvsd, 0, n)?;
        progress(&format!(
            "  {n} real servers (added in {:.1} s)",
            started.elapsed().as_secs_f64()
        ));
        // Known flows of every scheduler first, while the table is small (rvsd's expiry walk
        // over a fuller table would take CPU from them), then new flows.
        let svc = format!("{VIP}:{UDP_PORT}");
        let mut known = Vec::new();
        for &sched in &plan.scale_scheds {
            rvsd.rvsadm(&["-E", "-u", &svc, "-s", sched])?;
            known.push(bench.steady(plan.scale_flows_per_cpu, t, plan.reps, Some(id), None)?);
        }
        for (&sched, steady) in plan.scale_scheds.iter().zip(known) {
            rvsd.rvsadm(&["-E", "-u", &svc, "-s", sched])?;
            let new = bench.new_flows(plan.scale_new_per_cpu, t, plan.new_reps, Some(id))?;
            progress(&format!(
                "  {sched:<4} {n:>5} servers: known {:.3} Mpps {:.0} ns/pkt, new {:.0} k/s {:.0} ns/pkt",
                steady.pps.median().unwrap_or(0.0) / 1e6,
                steady.prog_ns.median().unwrap_or(f64::NAN),
                new.pps.median().unwrap_or(0.0) / 1e3,
                new.prog_ns.median().unwrap_or(f64::NAN),
            ));
            rep.scaling.push(ScaleRow {
                sched: sched.into(),
                servers: n,
                steady,
                new,
            });
        }
        tcp::check_dataplane(&rvsd)?;
    }
    Ok(())
}

fn table(plan: &Plan, bins: &Bins, rep: &mut Report) -> Result<()> {
    progress("connection table as it fills (rvs DR, mh)");
    let cpus = std::thread::available_parallelism()?.get();
    let line = Line::build(cpus)?;
    line.resolve_sink()?;
    let mut bench = Bench::new(&line)?;
    let t = plan.pps_time;
    let most = plan.fills.iter().copied().max().unwrap_or(0);
    let capacity = capacity(most + (plan.new_reps as u64 + 1) * plan.new_per_cpu * cpus as u64);
    for &fill in &plan.fills {
        let rvsd = Rvsd::start(&line.director, bins, &["eth0"], capacity)?;
        rvsd.configure(&udp_rules("mh", 10, "-g"))?;
        let id = rvs::xdp_prog_id(&line.director, "eth0")?;
        let per_cpu = fill.div_ceil(cpus as u64);
        let (sent, flows) = bench.fill(per_cpu, Duration::from_secs(60))?;
        let fill_rate = sent.frames as f64 / sent.elapsed.as_secs_f64().max(1e-6);
        bench.watch = rvsd.pid();
        let steady = bench.steady_over(flows, u32::try_from(per_cpu)?, t, plan.reps, Some(id))?;
        let rvsd_cpu = steady.daemon_cpu.median().unwrap_or(0.0);
        let new = bench.new_flows(plan.new_per_cpu, t, plan.new_reps, Some(id))?;
        let (bytes_per_flow, table_bytes) = match map_memory(&rvsd.pin("RVS_CONNS")) {
            Ok((bytes, entries)) => (Some(bytes as f64 / entries.max(1) as f64), Some(bytes)),
            Err(e) => {
                rep.notes
                    .push(format!("no memory figure for the flow table: {e:#}"));
                (None, None)
            }
        };
        progress(&format!(
            "  {fill:>8} flows: filled at {:.0} k/s; known {:.3} Mpps {:.0} ns/pkt; new {:.0} k/s {:.0} ns/pkt; rvsd {:.1}% CPU",
            fill_rate / 1e3,
            steady.pps.median().unwrap_or(0.0) / 1e6,
            steady.prog_ns.median().unwrap_or(f64::NAN),
            new.pps.median().unwrap_or(0.0) / 1e3,
            new.prog_ns.median().unwrap_or(f64::NAN),
            rvsd_cpu * 100.0
        ));
        tcp::check_dataplane(&rvsd)?;
        rep.fill.push(FillRow {
            flows: sent.frames,
            capacity: u64::from(capacity),
            fill_rate,
            steady,
            new,
            rvsd_cpu,
            bytes_per_flow,
            table_bytes,
        });
    }
    Ok(())
}

/// (bytes_memlock, max_entries) of a pinned map, from bpftool.
fn map_memory(pin: &Path) -> Result<(u64, u64)> {
    let out = std::process::Command::new("bpftool")
        .args(["-j", "map", "show", "pinned"])
        .arg(pin)
        .output()
        .context("running bpftool")?;
    if !out.status.success() {
        bail!(
            "bpftool map show pinned {}: {}",
            pin.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let bytes = v
        .get("bytes_memlock")
        .and_then(|b| b.as_u64())
        .context("no bytes_memlock")?;
    let entries = v
        .get("max_entries")
        .and_then(|b| b.as_u64())
        .context("no max_entries")?;
    Ok((bytes, entries))
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    let virt = std::process::Command::new("systemd-detect-virt")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|v| !v.is_empty())
        .map_or_else(
            || "virtualisation unknown".into(),
            |v| format!("virtualisation: {v}"),
        );
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned(),
        memory_gib: kib / (1 << 20) as f64,
        virt,
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
