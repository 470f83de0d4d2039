//! The packet-rate topology: three namespaces in a line, joined by veth pairs with one queue per
//! CPU and no bridge, so a frame can stay an XDP frame from the generator to the sink:
//!
//! ```text
//!   client eth0 -- eth0 director eth1 ---- eth0 sink
//!   198.18.0.1    198.18.0.2 (+ VIP)      198.19.0.11
//!                 198.19.0.1
//! ```
//!
//! The real servers are addresses in 198.19.16.0/20 that the director routes through the sink
//! (one next hop for all, so a thousand of them need one neighbour entry); the sink counts every
//! IPv4 frame it receives and drops it. The director forwards (for nftables) and answers nothing.

use std::net::Ipv4Addr;

use anyhow::{Context, Result};
use rvs_testbed::{Mac, Netns};

pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const DIRECTOR_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
pub const DIRECTOR_BACK_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
pub const SINK_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 11);
/// Real servers: `RS_NET + 1 + i`, routed via the sink.
const RS_NET: Ipv4Addr = Ipv4Addr::new(198, 19, 16, 0);
const RS_PREFIX: u8 = 20;
pub const MAX_REAL_SERVERS: usize = (1 << (32 - RS_PREFIX)) - 2;

/// The built line; dropping it deletes the namespaces.
pub struct Line {
    pub client: Netns,
    pub director: Netns,
    pub sink: Netns,
}

impl Line {
    pub fn build(queues: usize) -> Result<Line> {
        let line = Line {
            client: Netns::new("client")?,
            director: Netns::new("director")?,
            sink: Netns::new("sink")?,
        };
        veth(&line.client, "eth0", &line.director, "eth0", queues)?;
        veth(&line.director, "eth1", &line.sink, "eth0", queues)?;
        setup(&line.client, "eth0", CLIENT_IP, 24)?;
        setup(&line.director, "eth0", DIRECTOR_IP, 24)?;
        setup(&line.director, "eth1", DIRECTOR_BACK_IP, 24)?;
        setup(&line.sink, "eth0", SINK_IP, 24)?;
        let d = &line.director;
        d.ip(&["addr", "add", &format!("{VIP}/32"), "dev", "eth0"])?;
        let rs = format!("{RS_NET}/{RS_PREFIX}");
        d.ip(&["route", "add", &rs, "via", &SINK_IP.to_string()])?;
        // The generator's sources (198.18.64.0/18) are not on eth0's subnet: no reverse-path
        // filter, and a route back for the kernel's own answers.
        d.sysctl(&[
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
            "net.ipv4.conf.eth0.rp_filter=0",
            "net.ipv4.conf.all.send_redirects=0",
        ])?;
        d.ip(&[
            "route",
            "add",
            "198.18.64.0/18",
            "via",
            &CLIENT_IP.to_string(),
        ])?;
        line.sink.ip(&[
            "route",
            "add",
            "default",
            "via",
            &DIRECTOR_BACK_IP.to_string(),
        ])?;
        Ok(line)
    }

    pub fn client_mac(&self) -> Mac {
        Mac::for_ipv4(CLIENT_IP)
    }
    pub fn director_mac(&self) -> Mac {
        Mac::for_ipv4(DIRECTOR_IP)
    }
    pub fn director_back_mac(&self) -> Mac {
        Mac::for_ipv4(DIRECTOR_BACK_IP)
    }
    pub fn sink_mac(&self) -> Mac {
        Mac::for_ipv4(SINK_IP)
    }

    /// The address of real server `i` (0-based).
    pub fn real_server(i: usize) -> Ipv4Addr {
        assert!(i < MAX_REAL_SERVERS);
        Ipv4Addr::from(u32::from(RS_NET) + 1 + i as u32)
    }

    /// Makes the director's kernel resolve the sink now (the first frames would otherwise wait
    /// for ARP).
    pub fn resolve_sink(&self) -> Result<()> {
        self.director
            .exec(&["ping", "-c", "1", "-W", "2", &SINK_IP.to_string()])
            .map(drop)
            .context("the director cannot reach the sink")
    }
}

/// A veth pair with `queues` queues each way, `a` in `ns_a` and `b` in `ns_b`.
pub fn veth(ns_a: &Netns, a: &str, ns_b: &Netns, b: &str, queues: usize) -> Result<()> {
    let q = queues.to_string();
    ns_a.ip(&[
        "link",
        "add",
        a,
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
        "type",
        "veth",
        "peer",
        "name",
        b,
        "netns",
        ns_b.name(),
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
    ])
    .with_context(|| format!("cannot join {} and {}", ns_a.name(), ns_b.name()))
    .map(drop)
}

pub fn setup(ns: &Netns, dev: &str, ip: Ipv4Addr, prefix: u8) -> Result<()> {
    let mac = Mac::for_ipv4(ip).to_string();
    ns.ip(&["link", "set", "dev", dev, "address", &mac, "up"])?;
    ns.ip(&["addr", "add", &format!("{ip}/{prefix}"), "dev", dev])?;
    Ok(())
}
