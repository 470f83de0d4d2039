//! Two directors for failover (VRRP): two directors and real servers on one LAN, set up for LVS
//! direct routing, and a client behind a router. Neither director holds the VIPs: whichever is
//! VRRP MASTER adds them, and the router's neighbour cache must follow it. The real servers hold
//! every VIP on `lo` silently, so they accept what either director forwards, and answer the
//! client through the router.
//!
//! Addresses: LAN 198.18.0.0/24 (directors .2 and .3, real servers .11 on, VIPs .100 on, the
//! router .254); the client's side 198.19.0.0/24 (client .1, router .254); with IPv6 the twins
//! in 2001:db8::/64 and 2001:db8:1::/64.

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

/// The client's address, behind the router.
pub const HA_CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
const ROUTER_WAN_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 254);
const ROUTER_LAN_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);
const WAN6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0);

/// The directors' addresses.
pub const DIRECTOR_IPS: [Ipv4Addr; 2] =
    [Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 0, 3)];

/// A built two-director topology. Dropping it deletes all its namespaces.
pub struct HaCluster {
    // Fields drop in order: the programs are detached before their interfaces go away.
    _pass_programs: Vec<PassProgram>,
    client: Host,
    router: Host,
    directors: Vec<Host>,
    real_servers: Vec<Host>,
    lan: Netns,
    wan: Netns,
    vips: Vec<Ipv4Addr>,
    ipv6: bool,
}

impl HaCluster {
    /// `real_servers` real servers, `vips` virtual addresses (198.18.0.100, .101, ...), with
    /// IPv6 twins when `ipv6`.
    pub fn build(real_servers: usize, vips: usize, ipv6: bool) -> Result<HaCluster> {
        let id = names::new_topology_id();
        let lan = lan::create(&id, "lan")?;
        let wan = lan::create(&id, "wan")?;
        let subnet = Subnet::of(DEFAULT_CLIENT_IP, 24, LAN6);
        let wan_subnet = Subnet::of(HA_CLIENT_IP, 24, WAN6);
        let addrs = |subnet: &Subnet, ip: Ipv4Addr| LinkAddrs {
            ip,
            prefix_len: 24,
            ip6: ipv6.then(|| subnet.twin(ip)),
        };
        let host = |name: &str, ip: Ipv4Addr| Host::create(&id, &lan, name, addrs(&subnet, ip));
        let client = Host::create(&id, &wan, "client0", addrs(&wan_subnet, HA_CLIENT_IP))?;
        let mut router = Host::create(&id, &wan, "router", addrs(&wan_subnet, ROUTER_WAN_IP))?;
        router.plug(&lan, "eth1", addrs(&subnet, ROUTER_LAN_IP))?;
        router
            .netns()
            .sysctl(&["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"])?;
        default_route(
            &client,
            ROUTER_WAN_IP,
            ipv6.then(|| wan_subnet.twin(ROUTER_WAN_IP)),
        )?;
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
            default_route(&h, ROUTER_LAN_IP, ipv6.then(|| subnet.twin(ROUTER_LAN_IP)))?;
            rs.push(h);
        }
        let pass_programs = directors
            .iter()
            .map(|d| lan::attach_pass(&lan, d.eth0()))
            .collect::<Result<Vec<_>>>()?;
        let c = HaCluster {
            _pass_programs: pass_programs,
            client,
            router,
            directors,
            real_servers: rs,
            lan,
            wan,
            vips,
            ipv6,
        };
        lan::wait_ready(
            [&c.client, &c.router]
                .into_iter()
                .chain(&c.directors)
                .chain(&c.real_servers)
                .flat_map(Host::links),
        )?;
        Ok(c)
    }

    /// The client, behind the router.
    pub fn client(&self) -> &Host {
        &self.client
    }

    /// Between the client's side (`eth0`) and the directors' LAN (`eth1`).
    pub fn router(&self) -> &Host {
        &self.router
    }

    /// `director0` (198.18.0.2) and `director1` (198.18.0.3).
    pub fn directors(&self) -> &[Host] {
        &self.directors
    }

    pub fn real_servers(&self) -> &[Host] {
        &self.real_servers
    }

    /// The namespace holding the directors' LAN bridge.
    pub fn lan(&self) -> &Netns {
        &self.lan
    }

    /// The namespace holding the client side's bridge.
    pub fn wan(&self) -> &Netns {
        &self.wan
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

fn default_route(h: &Host, via: Ipv4Addr, via6: Option<Ipv6Addr>) -> Result<()> {
    h.netns()
        .ip(&["route", "add", "default", "via", &via.to_string()])?;
    if let Some(v6) = via6 {
        h.netns()
            .ip(&["-6", "route", "add", "default", "via", &v6.to_string()])?;
    }
    Ok(())
}
