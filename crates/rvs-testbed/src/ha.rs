//! Two directors for failover (VRRP): a client, two directors and real servers on one LAN, set
//! up for LVS direct routing. Neither director holds the VIPs: whichever is VRRP MASTER adds
//! them. The real servers hold every VIP on `lo` silently, so they accept what either director
//! forwards. Addresses: client 198.18.0.1, directors .2 and .3, real servers .11 on, VIPs .100
//! on (2001:db8:: twins with IPv6).

use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::Result;
use rvs::dataplane::PassProgram;

use crate::{
    Host, Netns, TcpServer,
    addr::{Subnet, nth_after},
    builder::{DEFAULT_CLIENT_IP, DEFAULT_REAL_SERVER_IP, DEFAULT_VIP, LAN6},
    cluster::hold_vip_silently,
    lan,
    link::LinkAddrs,
    names,
};

/// The directors' addresses.
pub const DIRECTOR_IPS: [Ipv4Addr; 2] =
    [Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 0, 3)];

/// A built two-director topology. Dropping it deletes all its namespaces.
pub struct HaCluster {
    // Fields drop in order: the programs are detached before their interfaces go away.
    _pass_programs: Vec<PassProgram>,
    client: Host,
    directors: Vec<Host>,
    real_servers: Vec<Host>,
    lan: Netns,
    vips: Vec<Ipv4Addr>,
    ipv6: bool,
}

impl HaCluster {
    /// `real_servers` real servers, `vips` virtual addresses (198.18.0.100, .101, ...), with
    /// IPv6 twins when `ipv6`.
    pub fn build(real_servers: usize, vips: usize, ipv6: bool) -> Result<HaCluster> {
        let id = names::new_topology_id();
        let lan = lan::create(&id, "lan")?;
        let subnet = Subnet::of(DEFAULT_CLIENT_IP, 24, LAN6);
        let host = |name: &str, ip: Ipv4Addr| {
            let addrs = LinkAddrs {
                ip,
                prefix_len: 24,
                ip6: ipv6.then(|| subnet.twin(ip)),
            };
            Host::create(&id, &lan, name, addrs)
        };
        let client = host("client0", DEFAULT_CLIENT_IP)?;
        let directors = DIRECTOR_IPS
            .iter()
            .enumerate()
            .map(|(i, &ip)| host(&format!("director{i}"), ip))
            .collect::<Result<Vec<_>>>()?;
        let vips: Vec<Ipv4Addr> = (0..vips)
            .map(|i| nth_after(DEFAULT_VIP, i))
            .collect::<Result<_>>()?;
        let mut rs = Vec::new();
        for i in 0..real_servers {
            let h = host(&format!("rs{i}"), nth_after(DEFAULT_REAL_SERVER_IP, i)?)?;
            for &vip in &vips {
                hold_vip_silently(&h, vip, ipv6.then(|| subnet.twin(vip)))?;
            }
            rs.push(h);
        }
        let pass_programs = directors
            .iter()
            .map(|d| lan::attach_pass(&lan, d.eth0()))
            .collect::<Result<Vec<_>>>()?;
        let c = HaCluster {
            _pass_programs: pass_programs,
            client,
            directors,
            real_servers: rs,
            lan,
            vips,
            ipv6,
        };
        lan::wait_ready(
            std::iter::once(&c.client)
                .chain(&c.directors)
                .chain(&c.real_servers)
                .flat_map(Host::links),
        )?;
        Ok(c)
    }

    pub fn client(&self) -> &Host {
        &self.client
    }

    /// `director0` (198.18.0.2) and `director1` (198.18.0.3).
    pub fn directors(&self) -> &[Host] {
        &self.directors
    }

    pub fn real_servers(&self) -> &[Host] {
        &self.real_servers
    }

    /// The namespace holding the bridge.
    pub fn lan(&self) -> &Netns {
        &self.lan
    }

    pub fn vips(&self) -> &[Ipv4Addr] {
        &self.vips
    }

    /// The IPv6 twin of a VIP, if IPv6 is on.
    pub fn vip6(&self, i: usize) -> Option<Ipv6Addr> {
        self.ipv6
            .then(|| Subnet::of(DEFAULT_CLIENT_IP, 24, LAN6).twin(self.vips[i]))
    }

    /// Starts the test TCP server on `port` on every real server.
    pub fn serve_tcp(&self, port: u16) -> Result<Vec<TcpServer>> {
        self.real_servers
            .iter()
            .map(|rs| rs.serve_tcp(port))
            .collect()
    }
}
