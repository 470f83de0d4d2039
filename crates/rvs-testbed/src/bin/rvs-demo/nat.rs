//! Part two: a two-armed NAT director run by a keepalived.conf, its health checks taking a failed
//! real server out of the table and bringing it back.

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use rvs_testbed::NatCluster;

use crate::{
    STEPS,
    daemon::{Rvsd, Tools, ask_many, histogram, path_str, step},
};

const VPORT: u16 = 80;
const RPORT: u16 = 8080;
const REQUESTS: usize = 20;

fn keepalived_conf(cluster: &NatCluster) -> String {
    let mut s = format!(
        "global_defs {{\n    router_id rvs-demo\n}}\n\nvirtual_server {} {VPORT} {{\n    \
         delay_loop 1\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n",
        cluster.vip()
    );
    for rs in cluster.real_servers() {
        s.push_str(&format!(
            "\n    real_server {} {RPORT} {{\n        weight 1\n        TCP_CHECK {{\n            \
             connect_timeout 1\n            retry 1\n            delay_before_retry 1\n        \
             }}\n    }}\n",
            rs.ip()
        ));
    }
    s + "}\n"
}

/// Waits (10 s at most) until `rs` is, or is not, in rvsadm's listing; returns how long it took.
fn wait_listed(rvsd: &Rvsd, rs: &str, listed: bool) -> Result<Duration> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if rvsd.rvsadm(&["-L", "-n"], false)?.contains(rs) == listed {
            return Ok(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!(
        "{rs} did not {} the table:\n{}",
        if listed { "enter" } else { "leave" },
        rvsd.log()
    )
}

/// rvsd's log lines about `rs` going and coming (from the event's first word on).
fn transitions(rvsd: &Rvsd, rs: &str) -> Vec<String> {
    rvsd.log()
        .lines()
        .filter(|l| l.contains(rs))
        .filter_map(|l| {
            let at = l.find("Removing").or_else(|| l.find("Adding"))?;
            Some(l[at..].to_owned())
        })
        .collect()
}

pub fn run(tools: &Tools) -> Result<()> {
    step(
        4,
        STEPS,
        "A second network: real servers on a private subnet behind a NAT director",
    );
    let cluster = NatCluster::builder().real_servers(2).build()?;
    let mut servers = cluster.serve_tcp(RPORT)?;
    println!("  client    {}", cluster.client().ip());
    println!(
        "  director  {} (clients' side, VIP {}) and {} (servers' side)",
        cluster.director_front().ip(),
        cluster.vip(),
        cluster.director_back_ip()
    );
    for rs in cluster.real_servers() {
        println!(
            "  {:<9} {}  serves port {RPORT}, routes through the director",
            rs.name(),
            rs.ip()
        );
    }

    step(
        5,
        STEPS,
        "rvsd -f keepalived.conf: NAT with port mapping, TCP health checks",
    );
    let conf_text = keepalived_conf(&cluster);
    let dir = std::env::temp_dir().join(format!("rvs-demo-{}-conf", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let conf = dir.join("keepalived.conf");
    std::fs::write(&conf, &conf_text)?;
    for line in conf_text.lines() {
        println!("  | {line}");
    }
    let result = (|| -> Result<()> {
        let rvsd = Rvsd::start(
            tools,
            cluster.director(),
            "nat",
            &["eth0", "eth1"],
            &["-f", path_str(&conf)],
        )?;
        let rs_addr: Vec<String> = cluster
            .real_servers()
            .iter()
            .map(|h| format!("{}:{RPORT}", h.ip()))
            .collect();
        for a in &rs_addr {
            wait_listed(&rvsd, a, true)?;
        }
        rvsd.show(&["-L", "-n"])?;
        let names: Vec<&str> = cluster.real_servers().iter().map(|h| h.name()).collect();
        let labels: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let vip = IpAddr::V4(cluster.vip());
        println!(
            "\n  {REQUESTS} HTTP requests to http://{vip}:{VPORT}/ (rewritten to port {RPORT}):"
        );
        histogram(
            &ask_many(cluster.client(), vip, VPORT, REQUESTS, &names)?,
            &labels,
        );
        rvsd.show(&["-L", "-n", "--stats"])?;
        println!("  (OutPkts count the answers: with NAT they come back through the director)");

        step(
            6,
            STEPS,
            "Health checks: rs1's service stops, then comes back",
        );
        println!("  stopping the HTTP server on rs1 ...");
        drop(servers.remove(1));
        let took = wait_listed(&rvsd, &rs_addr[1], false)?;
        println!("  rvsd took rs1 out after {:.1} s:", took.as_secs_f64());
        for line in transitions(&rvsd, &rs_addr[1].replace(':', "]:")) {
            println!("    {line}");
        }
        let answers = ask_many(cluster.client(), vip, VPORT, 10, &names)?;
        println!("  10 requests while rs1 is down:");
        histogram(&answers, &labels);
        println!("  starting it again ...");
        servers.push(cluster.real_servers()[1].serve_tcp(RPORT)?);
        let took = wait_listed(&rvsd, &rs_addr[1], true)?;
        println!("  rvsd put rs1 back after {:.1} s:", took.as_secs_f64());
        if let Some(line) = transitions(&rvsd, &rs_addr[1].replace(':', "]:")).last() {
            println!("    {line}");
        }
        rvsd.show(&["-L", "-n"])?;
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}
