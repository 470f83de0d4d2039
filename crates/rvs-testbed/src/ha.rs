//! Two directors for failover (VRRP): two directors and real servers on one LAN, set up for LVS
//! direct routing, and a client behind a router. Neither director holds the VIPs: whichever is
//! VRRP MASTER adds them, and the router's neighbour cache must follow it. The real servers hold
//! every VIP on `lo` silently, so they accept what either director forwards, and answer the
//! client through the router.
//!
//! Addresses: LAN 198.18.0.0/24 (directors .2 and .3, real servers .11 on, VIPs .100 on, the
//! router .254); the client's side 198.19.0.0/24 (client .1, router .254); with IPv6 the twins
//! in 2001:db8::/64 and 2001:db8:1::/64.
//!
//! The NAT variant ([`HaCluster::build_nat`]) keeps the outside as it is (client, router, the
//! directors' `eth0` and the VIPs on the LAN 198.18.0.0/24) and moves the real servers to an
//! inside LAN 198.18.1.0/24, where the directors have `eth1` (.2 and .3) and the real servers
//! (.11 on) route everything through the floating gateway address 198.18.1.254, which whichever
//! director is VRRP MASTER holds. The directors forward (rvs rewrites; what it passes, their
//! kernels route); the real servers hold no VIP. IPv4 only.

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

/// NAT: the directors' interface on the inside LAN.
pub const INSIDE_IFNAME: &str = "eth1";

/// The client's address, behind the router.
pub const HA_CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
const ROUTER_WAN_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 254);
const ROUTER_LAN_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 254);
const WAN6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0);

/// The directors' addresses.
pub const DIRECTOR_IPS: [Ipv4Addr; 2] =
    [Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 0, 3)];

/// NAT: the directors' addresses on the inside LAN (`eth1`).
pub const INSIDE_DIRECTOR_IPS: [Ipv4Addr; 2] =
    [Ipv4Addr::new(198, 18, 1, 2), Ipv4Addr::new(198, 18, 1, 3)];
/// NAT: the real servers' gateway, held by the MASTER director on `eth1`.
pub const INSIDE_GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 254);
const INSIDE_REAL_SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 11);
const INSIDE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0);

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
    /// NAT: the real servers' LAN.
    inside: Option<Netns>,
    vips: Vec<Ipv4Addr>,
    ipv6: bool,
}

impl HaCluster {
    /// `real_servers` real servers, `vips` virtual addresses (198.18.0.100, .101, ...), with
    /// IPv6 twins when `ipv6`.
    pub fn build(real_servers: usize, vips: usize, ipv6: bool) -> Result<HaCluster> {
        Self::build_with(2, real_servers, vips, ipv6, false)
    }

    /// `directors` directors (198.18.0.2, .3, ...) on the LAN for a group of active directors
    /// behind the router (ECMP), `real_servers` real servers, one VIP, IPv4 only.
    pub fn build_group(directors: usize, real_servers: usize) -> Result<HaCluster> {
        Self::build_with(directors, real_servers, 1, false, false)
    }

    /// For NAT: `real_servers` real servers on the inside LAN behind the floating gateway
    /// [`INSIDE_GATEWAY`], `vips` virtual addresses on the outside one; IPv4 only.
    pub fn build_nat(real_servers: usize, vips: usize) -> Result<HaCluster> {
        Self::build_with(2, real_servers, vips, false, true)
    }

    fn build_with(
        directors: usize,
        real_servers: usize,
        vips: usize,
        ipv6: bool,
        nat: bool,
    ) -> Result<HaCluster> {
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
        let mut directors = (0..directors)
            .map(|i| host(&format!("director{i}"), nth_after(DIRECTOR_IPS[0], i)?))
            .collect::<Result<Vec<_>>>()?;
        let vips: Vec<Ipv4Addr> = (0..vips)
            .map(|i| nth_after(DEFAULT_VIP, i))
            .collect::<Result<_>>()?;
        let mut pass_programs = directors
            .iter()
            .map(|d| lan::attach_pass(&lan, d.eth0()))
            .collect::<Result<Vec<_>>>()?;
        let mut rs = Vec::new();
        let inside = match nat {
            false => {
                for i in 0..real_servers {
                    let h = host(&format!("rs{i}"), nth_after(DEFAULT_REAL_SERVER_IP, i)?)?;
                    for &vip in &vips {
                        hold_vip_silently(&h, vip, ipv6.then(|| subnet.twin(vip)))?;
                    }
                    default_route(&h, ROUTER_LAN_IP, ipv6.then(|| subnet.twin(ROUTER_LAN_IP)))?;
                    rs.push(h);
                }
                None
            }
            true => {
                let inside = lan::create(&id, "inside")?;
                let inside_subnet = Subnet::of(INSIDE_GATEWAY, 24, INSIDE6);
                for (d, &ip) in directors.iter_mut().zip(&INSIDE_DIRECTOR_IPS) {
                    d.plug(&inside, INSIDE_IFNAME, addrs(&inside_subnet, ip))?;
                    forward(d)?;
                    // The clients are reached through the router, for the replies rvs rewrites.
                    default_route(d, ROUTER_LAN_IP, None)?;
                    pass_programs.push(lan::attach_pass(
                        &inside,
                        d.link(INSIDE_IFNAME).expect("plugged"),
                    )?);
                }
                for i in 0..real_servers {
                    let ip = nth_after(INSIDE_REAL_SERVER_IP, i)?;
                    let h =
                        Host::create(&id, &inside, &format!("rs{i}"), addrs(&inside_subnet, ip))?;
                    default_route(&h, INSIDE_GATEWAY, None)?;
                    rs.push(h);
                }
                Some(inside)
            }
        };
        let c = HaCluster {
            _pass_programs: pass_programs,
            client,
            router,
            directors,
            real_servers: rs,
            lan,
            wan,
            inside,
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

    /// `director0` (198.18.0.2), `director1` (198.18.0.3), ...
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

    /// NAT: the namespace holding the real servers' LAN bridge.
    pub fn inside_lan(&self) -> Option<&Netns> {
        self.inside.as_ref()
    }

    /// Whether it was built for NAT ([`HaCluster::build_nat`]).
    pub fn is_nat(&self) -> bool {
        self.inside.is_some()
    }

    /// The interfaces of a director rvsd attaches to: `eth0`, and `eth1` for NAT.
    pub fn director_interfaces(&self) -> Vec<&'static str> {
        match self.is_nat() {
            false => vec!["eth0"],
            true => vec!["eth0", INSIDE_IFNAME],
        }
    }

    /// Takes every link of director `i` (see [`HaCluster::director_interfaces`]) down, or up
    /// again as its network configuration would: a NAT director's default route, which the
    /// kernel removes with its interface, comes back.
    pub fn set_director_links(&self, i: usize, up: bool) -> Result<()> {
        let d = &self.directors[i];
        for ifname in self.director_interfaces() {
            d.netns()
                .ip(&["link", "set", ifname, if up { "up" } else { "down" }])?;
        }
        if up && self.is_nat() {
            d.netns().ip(&[
                "route",
                "replace",
                "default",
                "via",
                &ROUTER_LAN_IP.to_string(),
            ])?;
        }
        Ok(())
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

/// Makes a NAT director a router, in its namespace only, that sends no ICMP redirects.
fn forward(director: &Host) -> Result<()> {
    director.netns().sysctl(&[
        "net.ipv4.ip_forward=1",
        "net.ipv4.conf.all.send_redirects=0",
        "net.ipv4.conf.default.send_redirects=0",
        "net.ipv4.conf.eth0.send_redirects=0",
        "net.ipv4.conf.eth1.send_redirects=0",
    ])
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
