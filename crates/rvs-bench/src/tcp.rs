//! TCP measurements through each balancer, with real servers running nginx and iperf3: new
//! connections per second and HTTP requests per second with latency (wrk), bulk throughput
//! (iperf3, client to server: the direction every balancer carries).
//!
//! Direct routing, tunnelling, the ceiling and "direct" run on the testbed's DR cluster (one
//! bridged LAN); NAT, nftables and HAProxy on its two-armed NAT cluster, where the answers come
//! back through the director as they must.

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    path::Path,
    process::Command,
    time::Duration,
};

use anyhow::{Context, Result, ensure};
use rvs_testbed::{DrCluster, Host, NatCluster, Netns, NsProcess};

use crate::{
    Plan,
    report::{Case, TcpRow},
    rvs::{Bins, Rvsd},
    stats::Sample,
    tools::{self, BULK_PORT, HTTP_PORT},
    xdp::Forwarder,
};

/// Concurrent connections of wrk.
const CONNS: u32 = 32;

/// The servers of a cluster's real servers; stopped when dropped.
struct Servers {
    _procs: Vec<NsProcess>,
}

fn tune_client(ns: &Netns) -> Result<()> {
    // Many short connections: a wide port range, and ports in TIME_WAIT reused.
    ns.sysctl(&[
        "net.ipv4.ip_local_port_range=1024 65535",
        "net.ipv4.tcp_tw_reuse=1",
    ])
}

fn tune_server(ns: &Netns) -> Result<()> {
    ns.sysctl(&[
        "net.core.somaxconn=4096",
        "net.ipv4.tcp_max_syn_backlog=4096",
        "net.ipv4.ip_local_port_range=1024 65535",
        "net.ipv4.tcp_tw_reuse=1",
    ])
}

fn start_servers(real_servers: &[Host], dir: &Path) -> Result<Servers> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut procs = Vec::new();
    for rs in real_servers {
        tune_server(rs.netns())?;
        procs.push(tools::start_nginx(rs.netns(), rs.name(), dir, workers)?);
    }
    procs.push(tools::start_iperf3(
        real_servers[0].netns(),
        real_servers[0].name(),
        dir,
    )?);
    Ok(Servers { _procs: procs })
}

/// One HTTP request from `ns` to `ip`: the path works before it is measured.
fn check_http(ns: &Netns, ip: Ipv4Addr) -> Result<()> {
    let addr = SocketAddr::from((ip, HTTP_PORT));
    let mut last = None;
    for _ in 0..20 {
        let r = ns.enter(|| -> Result<String> {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        })?;
        match r {
            Ok(out) if out.contains(" 200 ") => return Ok(()),
            Ok(out) => last = Some(anyhow::anyhow!("unexpected answer {out:?}")),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(last.expect("tried"))
        .with_context(|| format!("no HTTP answer from {addr} through the path"))
}

/// Measures one case from `client` to `ip`.
fn measure(plan: &Plan, case: Case, client: &Netns, ip: Ipv4Addr) -> Result<TcpRow> {
    check_http(client, ip).context(case.name())?;
    let mut row = TcpRow {
        case,
        conns: Sample::new(),
        rps: Sample::new(),
        p50_us: Sample::new(),
        p99_us: Sample::new(),
        bps: Sample::new(),
        errors: 0,
    };
    let secs = plan.tcp_secs;
    for _ in 0..plan.tcp_reps {
        let c = tools::wrk(client, ip, secs, CONNS, true)?;
        row.conns.push(c.rps);
        row.errors += c.errors;
        let k = tools::wrk(client, ip, secs, CONNS, false)?;
        row.rps.push(k.rps);
        row.p50_us.push(k.p50_us);
        row.p99_us.push(k.p99_us);
        row.errors += k.errors;
        row.bps.push(tools::iperf3(client, ip, secs)?);
    }
    crate::progress(&format!(
        "  {:<10} {:>9.0} conn/s {:>9.0} req/s p99 {:>7.0} us {:>6.2} Gbit/s",
        case.name(),
        row.conns.median().unwrap_or(0.0),
        row.rps.median().unwrap_or(0.0),
        row.p99_us.median().unwrap_or(0.0),
        row.bps.median().unwrap_or(0.0) / 1e9
    ));
    Ok(row)
}

/// `ipvsadm-save` lines: TCP HTTP_PORT round robin over `servers` and BULK_PORT to the first,
/// forwarded by `method` (`-g`, `-i`, `-m`).
fn rules(vip: Ipv4Addr, servers: &[Ipv4Addr], method: &str) -> String {
    let mut r = format!("-A -t {vip}:{HTTP_PORT} -s rr\n");
    for s in servers {
        r += &format!("-a -t {vip}:{HTTP_PORT} -r {s}:{HTTP_PORT} {method} -w 1\n");
    }
    r += &format!("-A -t {vip}:{BULK_PORT} -s rr\n");
    r += &format!(
        "-a -t {vip}:{BULK_PORT} -r {}:{BULK_PORT} {method} -w 1\n",
        servers[0]
    );
    r
}

/// Every TCP case, in order.
pub fn run(plan: &Plan, bins: &Bins, dir: &Path) -> Result<Vec<TcpRow>> {
    let mut rows = Vec::new();
    {
        crate::progress("TCP on the DR cluster (client, director, 2 real servers on one LAN)");
        let c = DrCluster::builder().real_servers(2).build()?;
        tune_client(c.client().netns())?;
        let _servers = start_servers(c.real_servers(), dir)?;
        let client = c.client().netns();
        let rs: Vec<Ipv4Addr> = c.real_servers().iter().map(Host::ip).collect();
        let vip = c.vip();

        rows.push(measure(plan, Case::Direct, client, rs[0])?);
        {
            let d = c.director();
            let _fwd = Forwarder::attach(
                d.netns(),
                "eth0",
                vip,
                "eth0",
                d.mac(),
                c.real_servers()[0].mac(),
            )?;
            rows.push(measure(plan, Case::Ceiling, client, vip)?);
        }
        let rvsd = Rvsd::start(c.director().netns(), bins, &["eth0"], 1 << 20)?;
        rvsd.configure(&rules(vip, &rs, "-g"))?;
        rows.push(measure(plan, Case::RvsDr, client, vip)?);
        for r in c.real_servers() {
            let vip = vip.to_string();
            r.run(Command::new(&bins.rvs_rs).args([
                "up",
                "--vip",
                &vip,
                "--interface",
                "eth0",
                "--decap",
                "ipip",
            ]))
            .with_context(|| format!("rvs-rs up on {}", r.name()))?;
        }
        rvsd.configure(&rules(vip, &rs, "-i"))?;
        rows.push(measure(plan, Case::RvsTun, client, vip)?);
        check_dataplane(&rvsd)?;
    }
    {
        crate::progress("TCP on the NAT cluster (client | director | 2 real servers, two LANs)");
        let c = NatCluster::builder().real_servers(2).build()?;
        tune_client(c.client().netns())?;
        tune_server(c.director().netns())?;
        let _servers = start_servers(c.real_servers(), dir)?;
        let client = c.client().netns();
        let rs: Vec<Ipv4Addr> = c.real_servers().iter().map(Host::ip).collect();
        let vip = c.vip();
        {
            let rvsd = Rvsd::start(c.director().netns(), bins, &["eth0", "eth1"], 1 << 20)?;
            rvsd.configure(&rules(vip, &rs, "-m"))?;
            rows.push(measure(plan, Case::RvsNat, client, vip)?);
            check_dataplane(&rvsd)?;
        }
        tools::nft_balance(c.director().netns(), vip, &rs, crate::xdp::UDP_PORT, dir)?;
        rows.push(measure(plan, Case::Nft, client, vip)?);
        tools::nft_clear(c.director().netns())?;
        {
            let _haproxy = tools::start_haproxy(c.director().netns(), vip, &rs, dir)?;
            rows.push(measure(plan, Case::Haproxy, client, vip)?);
        }
    }
    Ok(rows)
}

/// Fails if the data plane dropped packets for a reason that means the setup is wrong.
pub fn check_dataplane(rvsd: &Rvsd) -> Result<()> {
    let counters = rvsd.dataplane()?;
    for (name, v) in &counters {
        let bad = matches!(
            name.as_str(),
            "drop_no_dest"
                | "drop_no_neigh"
                | "drop_bad_dest"
                | "drop_redirect"
                | "drop_tail_call"
                | "drop_conn_insert"
        );
        ensure!(
            !(bad && *v > 0),
            "the data plane counted {v} {name}: the benchmark's set-up is wrong\n{counters:?}"
        );
    }
    Ok(())
}
