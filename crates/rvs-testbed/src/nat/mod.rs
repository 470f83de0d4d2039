//! The LVS NAT topology: clients on a front LAN, real servers on a back LAN, and the director
//! between them routing (its kernel forwards; rvs rewrites). Two-armed, the director has `eth0`
//! on the front LAN and `eth1` on the back one; one-armed, both subnets share one LAN and the
//! director's `eth0`.
//!
//! The real servers' default routes go through the director, so their answers come back to it
//! to be rewritten; they hold no VIP.

use std::{
    fmt,
    net::{Ipv4Addr, Ipv6Addr},
};

use anyhow::Result;
use rvs::dataplane::PassProgram;

use crate::{Host, Link, Netns, TcpServer, UdpServer};

mod build;
mod builder;

pub(crate) use build::build;
pub use builder::{BACK6, NatClusterBuilder};

/// The director's interface to the back LAN when it has two.
pub const BACK_IFNAME: &str = "eth1";

/// A built NAT topology. Dropping it deletes all its namespaces.
pub struct NatCluster {
    // Fields drop in order: the programs are detached before their interfaces go away.
    pass_programs: Vec<PassProgram>,
    id: String,
    clients: Vec<Host>,
    director: Host,
    real_servers: Vec<Host>,
    front: Netns,
    /// `None` when one-armed.
    back: Option<Netns>,
    vip: Ipv4Addr,
    vip6: Option<Ipv6Addr>,
    back_ip: Ipv4Addr,
    back_ip6: Option<Ipv6Addr>,
}

impl NatCluster {
    /// A builder with the defaults: two arms, one client, two real servers, IPv4 only.
    pub fn builder() -> NatClusterBuilder {
        NatClusterBuilder::default()
    }

    /// The prefix all its namespace names share, `rvs-<pid>-<n>`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The clients, `client0`...
    pub fn clients(&self) -> &[Host] {
        &self.clients
    }

    /// The first client.
    pub fn client(&self) -> &Host {
        &self.clients[0]
    }

    /// The director, where rvsd runs.
    pub fn director(&self) -> &Host {
        &self.director
    }

    /// The director's interface to the clients, `eth0`.
    pub fn director_front(&self) -> &Link {
        self.director.eth0()
    }

    /// The director's interface to the real servers: `eth1`, or `eth0` when one-armed.
    pub fn director_back(&self) -> &Link {
        (self.director.link(BACK_IFNAME)).unwrap_or(self.director.eth0())
    }

    /// The index of the director's `eth0`, where rvsd attaches.
    pub fn director_ifindex(&self) -> u32 {
        self.director_front().ifindex()
    }

    /// The director's address on the real servers' subnet, their gateway: 198.19.0.1, or
    /// 198.18.1.1 when one-armed.
    pub fn director_back_ip(&self) -> Ipv4Addr {
        self.back_ip
    }

    /// The director's IPv6 address on the real servers' subnet, 2001:db8:1::1, if IPv6 is on.
    pub fn director_back_ip6(&self) -> Option<Ipv6Addr> {
        self.back_ip6
    }

    /// Whether the director has one interface for both subnets.
    pub fn is_one_armed(&self) -> bool {
        self.back.is_none()
    }

    /// The real servers, `rs0`, `rs1`...
    pub fn real_servers(&self) -> &[Host] {
        &self.real_servers
    }

    /// Every host: clients, director, real servers.
    pub fn hosts(&self) -> impl Iterator<Item = &Host> {
        self.clients
            .iter()
            .chain([&self.director])
            .chain(&self.real_servers)
    }

    /// The namespace of the clients' LAN bridge.
    pub fn front_lan(&self) -> &Netns {
        &self.front
    }

    /// The namespace of the real servers' LAN bridge (the front one when one-armed).
    pub fn back_lan(&self) -> &Netns {
        self.back.as_ref().unwrap_or(&self.front)
    }

    /// The virtual service address, on the director's `eth0`.
    pub fn vip(&self) -> Ipv4Addr {
        self.vip
    }

    /// The virtual service's IPv6 address, 2001:db8::100, if IPv6 is on.
    pub fn vip6(&self) -> Option<Ipv6Addr> {
        self.vip6
    }

    /// Whether the pass program is attached to the director's bridge ports.
    pub fn has_pass_program(&self) -> bool {
        !self.pass_programs.is_empty()
    }

    /// The names of all its namespaces.
    pub fn netns_names(&self) -> Vec<String> {
        let lans = [Some(&self.front), self.back.as_ref()];
        self.hosts()
            .map(Host::netns)
            .chain(lans.into_iter().flatten())
            .map(|ns| ns.name().to_owned())
            .collect()
    }

    /// Sets the MTU of every link of the real servers' LAN, both ends: the director's back
    /// interface and the real servers' (and, one-armed, the clients' too: it is one LAN), so
    /// that the director routes between two MTUs.
    pub fn set_back_mtu(&self, mtu: u32) -> Result<()> {
        let back = self.back_lan().name();
        (self.hosts().flat_map(Host::links))
            .filter(|link| link.lan() == back)
            .try_for_each(|link| link.set_mtu(mtu))
    }

    /// Starts the test TCP server on `port` on every real server.
    pub fn serve_tcp(&self, port: u16) -> Result<Vec<TcpServer>> {
        self.real_servers
            .iter()
            .map(|rs| rs.serve_tcp(port))
            .collect()
    }

    /// Starts the test UDP server on `port` on every real server.
    pub fn serve_udp(&self, port: u16) -> Result<Vec<UdpServer>> {
        self.real_servers
            .iter()
            .map(|rs| rs.serve_udp(port))
            .collect()
    }
}

impl fmt::Debug for NatCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatCluster")
            .field("id", &self.id)
            .field("clients", &self.clients)
            .field("director", &self.director)
            .field("real_servers", &self.real_servers)
            .field("front", &self.front)
            .field("back", &self.back)
            .field("vip", &self.vip)
            .field("vip6", &self.vip6)
            .field("pass_programs", &self.pass_programs.len())
            .finish()
    }
}
