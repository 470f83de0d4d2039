//! The LVS direct-routing topology: clients, a director and real servers, each in its own
//! namespace, on one LAN made of a bridge in a namespace of its own.
//!
//! The director owns the VIP (and VIP6) on its `eth0` and so answers ARP (and Neighbour
//! Discovery) for it; the real servers hold it on `lo` without announcing it, and answer clients
//! directly.

use std::{
    fmt,
    net::{Ipv4Addr, Ipv6Addr},
};

use anyhow::Result;
use rvs::dataplane::PassProgram;

use crate::{
    DrClusterBuilder, Netns, TcpServer, UdpServer,
    builder::Plan,
    host::{Host, IFNAME},
    lan,
    link::{LinkAddrs, add_ip6},
    names,
};

/// A built DR topology. Dropping it deletes all its namespaces.
pub struct DrCluster {
    // Fields drop in order: the program is detached before its interface goes away.
    pass_program: Option<PassProgram>,
    id: String,
    clients: Vec<Host>,
    director: Host,
    real_servers: Vec<Host>,
    lan: Netns,
    vip: Ipv4Addr,
    vip6: Option<Ipv6Addr>,
    prefix_len: u8,
}

impl DrCluster {
    /// A builder with the defaults: one client, two real servers, at [`crate::DEFAULT_CLIENT_IP`],
    /// [`crate::DEFAULT_DIRECTOR_IP`], [`crate::DEFAULT_REAL_SERVER_IP`] and [`crate::DEFAULT_VIP`].
    pub fn builder() -> DrClusterBuilder {
        DrClusterBuilder::default()
    }

    /// The prefix all its namespace names share, `rvs-<pid>-<n>`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The clients.
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

    /// The index of the director's `eth0` in its namespace, the interface rvsd attaches to.
    pub fn director_ifindex(&self) -> u32 {
        self.director.eth0().ifindex()
    }

    /// The real servers, named `rs0`, `rs1`...
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

    /// The namespace holding the bridge.
    pub fn lan(&self) -> &Netns {
        &self.lan
    }

    /// The virtual service address.
    pub fn vip(&self) -> Ipv4Addr {
        self.vip
    }

    /// The virtual service's IPv6 address, 2001:db8::100 by default, if IPv6 is on.
    pub fn vip6(&self) -> Option<Ipv6Addr> {
        self.vip6
    }

    /// The LAN's prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether the pass program is attached to the director's bridge port.
    pub fn has_pass_program(&self) -> bool {
        self.pass_program.is_some()
    }

    /// The names of all its namespaces.
    pub fn netns_names(&self) -> Vec<String> {
        self.hosts()
            .map(|h| h.netns().name().to_owned())
            .chain([self.lan.name().to_owned()])
            .collect()
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

impl fmt::Debug for DrCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DrCluster")
            .field("id", &self.id)
            .field("clients", &self.clients)
            .field("director", &self.director)
            .field("real_servers", &self.real_servers)
            .field("lan", &self.lan)
            .field("vip", &self.vip)
            .field("vip6", &self.vip6)
            .field("pass_program", &self.pass_program.is_some())
            .finish()
    }
}

/// Builds the topology of `plan`. On failure, what was created is dropped, so deleted.
pub(crate) fn build(plan: Plan) -> Result<DrCluster> {
    let id = names::new_topology_id();
    let lan = lan::create(&id, "lan")?;
    let host = |name: &str, ip| {
        let addrs = LinkAddrs {
            ip,
            prefix_len: plan.prefix_len,
            ip6: plan.ip6(ip),
        };
        Host::create(&id, &lan, name, addrs)
    };

    let clients = (plan.clients.iter().enumerate())
        .map(|(i, &ip)| host(&format!("client{i}"), ip))
        .collect::<Result<Vec<_>>>()?;
    let director = host("director", plan.director)?;
    let vip6 = plan.ip6(plan.vip);
    director
        .netns()
        .ip(&["addr", "add", &format!("{}/32", plan.vip), "dev", IFNAME])?;
    if let Some(vip6) = vip6 {
        add_ip6(director.netns(), IFNAME, vip6, 128)?;
    }
    let real_servers = (plan.real_servers.iter().enumerate())
        .map(|(i, &ip)| host(&format!("rs{i}"), ip))
        .collect::<Result<Vec<_>>>()?;
    for rs in &real_servers {
        hold_vip_silently(rs, plan.vip, vip6)?;
    }

    let pass_program = match plan.pass_program {
        true => Some(lan::attach_pass(&lan, director.eth0())?),
        false => None,
    };
    let cluster = DrCluster {
        pass_program,
        id,
        clients,
        director,
        real_servers,
        lan,
        vip: plan.vip,
        vip6,
        prefix_len: plan.prefix_len,
    };
    lan::wait_ready(cluster.hosts().flat_map(Host::links))?;
    Ok(cluster)
}

/// Puts the VIP on a real server's `lo` so it accepts what the director forwards, without
/// answering ARP for it (arp_ignore=1: only for addresses of the asking interface) or using it
/// as an ARP source (arp_announce=2), which would steal the VIP from the director.
///
/// IPv6 needs no setting: Neighbour Discovery answers only for addresses of the interface asked
/// and takes its source from that interface, so VIP6 on `lo` is never announced on `eth0`.
pub(crate) fn hold_vip_silently(rs: &Host, vip: Ipv4Addr, vip6: Option<Ipv6Addr>) -> Result<()> {
    let mut settings = Vec::new();
    for dev in ["all", "lo", IFNAME] {
        settings.push(format!("net.ipv4.conf.{dev}.arp_ignore=1"));
        settings.push(format!("net.ipv4.conf.{dev}.arp_announce=2"));
    }
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    // Before the address, so the VIP is never announced.
    rs.netns().sysctl(&settings)?;
    rs.netns()
        .ip(&["addr", "add", &format!("{vip}/32"), "dev", "lo"])?;
    if let Some(vip6) = vip6 {
        add_ip6(rs.netns(), "lo", vip6, 128)?;
    }
    Ok(())
}
