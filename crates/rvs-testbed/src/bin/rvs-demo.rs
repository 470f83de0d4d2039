//! The rvs demo: a director balancing HTTP over three real servers of different weights by
//! direct routing, all in network namespaces on this machine, configured with rvsadm.
//! Run as root; rvsd and rvsadm are taken from the directory this program is in.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use rvs_testbed::DrCluster;

const PORT: u16 = 80;
const REQUESTS: usize = 60;
const WEIGHTS: [u32; 3] = [3, 2, 1];

fn main() {
    if let Err(e) = run() {
        eprintln!("rvs-demo: {e:#}");
        std::process::exit(1);
    }
}

fn bin_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe
        .parent()
        .context("no directory for this program")?
        .to_owned())
}

fn step(n: usize, text: &str) {
    println!("\n\x1b[1m[{n}/5] {text}\x1b[0m");
}

fn run() -> Result<()> {
    let bin = bin_dir()?;
    let (rvsd, rvsadm) = (bin.join("rvsd"), bin.join("rvsadm"));
    for b in [&rvsd, &rvsadm] {
        if !b.exists() {
            bail!(
                "{} is missing; build with `cargo build --release` first",
                b.display()
            );
        }
    }
    println!("rvs demo: one virtual server on one IP, three real servers behind it, packets");
    println!(
        "balanced by the director's XDP program (direct routing: replies bypass the director)."
    );

    step(1, "Building the network in namespaces");
    let cluster = DrCluster::builder().real_servers(3).build()?;
    let servers = cluster.serve_tcp(PORT)?;
    println!("  client    {}", cluster.client().ip());
    println!(
        "  director  {}  holds the VIP {}",
        cluster.director().ip(),
        cluster.vip()
    );
    for rs in cluster.real_servers() {
        println!(
            "  {:<9} {}  VIP on lo, answers clients directly",
            rs.name(),
            rs.ip()
        );
    }

    step(2, "Starting rvsd on the director");
    let work = std::env::temp_dir().join(format!("rvs-demo-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let socket = work.join("rvsd.sock");
    let pin_dir = PathBuf::from(format!("/sys/fs/bpf/rvs-demo-{}", std::process::id()));
    let state = work.join("state.json");
    let mut cmd = Command::new(&rvsd);
    cmd.args(["--interface", "eth0", "--conn-table-size", "65536"])
        .arg("--socket")
        .arg(&socket)
        .arg("--pin-dir")
        .arg(&pin_dir)
        .arg("--state-file")
        .arg(&state)
        .env("RVS_LOG", "warn,rvsd=info");
    let mut daemon = cluster.director().spawn(&mut cmd, work.join("rvsd.log"))?;
    daemon.wait_for_log("serving rvsadm", Duration::from_secs(20))?;
    println!("  rvsd attached the director program to eth0 (XDP, driver mode)");

    let result = demo(&cluster, &rvsadm, &socket);

    let _ = daemon.stop(Duration::from_secs(5));
    let _ = Command::new(&rvsd)
        .arg("--cleanup")
        .arg("--pin-dir")
        .arg(&pin_dir)
        .arg("--state-file")
        .arg(&state)
        .arg("--socket")
        .arg(&socket)
        .output();
    drop(servers);
    drop(cluster);
    let _ = std::fs::remove_dir_all(&work);
    println!("\nTorn down: namespaces, pinned maps and files removed.");
    result
}

fn rvsadm(rvsadm: &Path, socket: &Path, args: &[&str], show: bool) -> Result<String> {
    if show {
        println!("  $ rvsadm {}", args.join(" "));
    }
    let out = Command::new(rvsadm)
        .args(args)
        .env("RVS_SOCKET", socket)
        .output()?;
    if !out.status.success() {
        bail!(
            "rvsadm {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

fn demo(cluster: &DrCluster, bin: &Path, socket: &Path) -> Result<()> {
    step(
        3,
        "Configuring the virtual server with rvsadm (ipvsadm's syntax)",
    );
    let vip = format!("{}:{PORT}", cluster.vip());
    rvsadm(bin, socket, &["-A", "-t", &vip, "-s", "wrr"], true)?;
    for (rs, w) in cluster.real_servers().iter().zip(WEIGHTS) {
        let r = format!("{}:{PORT}", rs.ip());
        rvsadm(
            bin,
            socket,
            &["-a", "-t", &vip, "-r", &r, "-g", "-w", &w.to_string()],
            true,
        )?;
    }

    step(
        4,
        &format!("{REQUESTS} HTTP requests from the client to http://{vip}/"),
    );
    let mut counts = [0usize; 3];
    let mut order = String::new();
    for _ in 0..REQUESTS {
        let name = cluster.client().http_get(IpAddr::V4(cluster.vip()), PORT)?;
        let i = cluster
            .real_servers()
            .iter()
            .position(|rs| rs.name() == name)
            .with_context(|| format!("unexpected answer {name:?}"))?;
        counts[i] += 1;
        order.push_str(&i.to_string());
    }
    println!("  answered by (0=rs0 1=rs1 2=rs2): {order}");
    for ((rs, w), n) in cluster.real_servers().iter().zip(WEIGHTS).zip(counts) {
        println!("  {} weight {w}: {n:>3} {}", rs.name(), "#".repeat(n));
    }

    step(5, "What the director counted");
    let stats = rvsadm(bin, socket, &["-L", "-n", "--stats"], true)?;
    for line in stats.lines() {
        println!("  {line}");
    }
    println!(
        "  (OutPkts stay 0: with direct routing the real servers answer the client themselves)"
    );
    let list = rvsadm(bin, socket, &["-L", "-n"], true)?;
    for line in list.lines() {
        println!("  {line}");
    }
    Ok(())
}
