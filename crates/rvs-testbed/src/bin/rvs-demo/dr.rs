//! Part one: direct routing with wrr 3:2:1, then the same real servers reached through GUE
//! tunnels.

use std::{net::IpAddr, process::Command};

use anyhow::Result;
use rvs_testbed::DrCluster;

use crate::{
    STEPS,
    daemon::{Rvsd, Tools, ask_many, histogram, step},
};

const PORT: u16 = 80;
const REQUESTS: usize = 60;
const WEIGHTS: [u32; 3] = [3, 2, 1];
const GUE_PORT: &str = "6080";

pub fn run(tools: &Tools) -> Result<()> {
    step(
        1,
        STEPS,
        "A LAN in namespaces: a client, a director, three real servers",
    );
    let cluster = DrCluster::builder().real_servers(3).build()?;
    let _servers = cluster.serve_tcp(PORT)?;
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

    step(
        2,
        STEPS,
        "rvsd on the director, configured with rvsadm (ipvsadm's syntax)",
    );
    let rvsd = Rvsd::start(tools, cluster.director(), "dr", &["eth0"], &[])?;
    let vip = format!("{}:{PORT}", cluster.vip());
    rvsd.rvsadm(&["-A", "-t", &vip, "-s", "wrr"], true)?;
    for (rs, w) in cluster.real_servers().iter().zip(WEIGHTS) {
        let r = format!("{}:{PORT}", rs.ip());
        rvsd.rvsadm(
            &["-a", "-t", &vip, "-r", &r, "-g", "-w", &w.to_string()],
            true,
        )?;
    }

    let names: Vec<&str> = cluster.real_servers().iter().map(|h| h.name()).collect();
    let labels: Vec<String> = names
        .iter()
        .zip(WEIGHTS)
        .map(|(n, w)| format!("{n} weight {w}"))
        .collect();
    let client = cluster.client();
    let vip_ip = IpAddr::V4(cluster.vip());
    println!("\n  {REQUESTS} HTTP requests from the client to http://{vip}/ (direct routing):");
    histogram(&ask_many(client, vip_ip, PORT, REQUESTS, &names)?, &labels);
    rvsd.show(&["-L", "-n", "--stats"])?;
    println!("  (OutPkts stay 0: the real servers answer the client themselves)");

    step(3, STEPS, "The same real servers through GUE tunnels");
    for rs in cluster.real_servers() {
        let vip_text = cluster.vip().to_string();
        let args = [
            "up",
            "--vip",
            &vip_text,
            "--interface",
            "eth0",
            "--decap",
            "gue",
            "--gue-port",
            GUE_PORT,
        ];
        println!("  {}# rvs-rs {}", rs.name(), args.join(" "));
        rs.run(Command::new(&tools.rvs_rs).args(args))?;
    }
    for (rs, w) in cluster.real_servers().iter().zip(WEIGHTS) {
        let r = format!("{}:{PORT}", rs.ip());
        let w = w.to_string();
        let args = [
            "-e",
            "-t",
            &vip,
            "-r",
            &r,
            "-i",
            "--tun-type",
            "gue",
            "--tun-port",
            GUE_PORT,
            "-w",
            &w,
        ];
        rvsd.rvsadm(&args, true)?;
    }
    println!("\n  {REQUESTS} more requests, now encapsulated in UDP/GUE to port {GUE_PORT}:");
    histogram(&ask_many(client, vip_ip, PORT, REQUESTS, &names)?, &labels);
    rvsd.show(&["-L", "-n", "--tun-info"])?;
    Ok(())
}
