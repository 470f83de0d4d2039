//! The LVS direct-routing topology: clients, a director and real servers, each in its own
//! namespace, on one LAN made of a bridge in a namespace of its own.
//!
//! The director owns the VIP on its `eth0` and so answers ARP for it; the real servers hold the
//! VIP on `lo` without announcing it, and answer clients directly.

use std::{fmt, net::Ipv4Addr, time::Duration};

use anyhow::{Context, Result};
use rvs::dataplane::{PassProgram, attach_pass_program};

use crate::{
    DrClusterBuilder, Netns, TcpServer, UdpServer,
    builder::Plan,
    cmd,
    host::{BRIDGE, Host, IFNAME},
    names,
    poll::poll_until,
};

/// How long the LAN may take to pass traffic after its links are up.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

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
    prefix_len: u8,
    director_ifindex: u32,
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
        self.director_ifindex
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
            .field("director_ifindex", &self.director_ifindex)
            .field("pass_program", &self.pass_program.is_some())
            .finish()
    }
}

/// Builds the topology of `plan`. On failure, what was created is dropped, so deleted.
pub(crate) fn build(plan: Plan) -> Result<DrCluster> {
    let id = names::new_topology_id();
    let lan = Netns::create(names::netns_name(&id, "lan"))?;
    lan.ip(&["link", "add", "name", BRIDGE, "type", "bridge"])?;
    lan.ip(&["link", "set", "dev", BRIDGE, "up"])?;
    let host = |name: &str, ip| Host::create(&id, &lan, name, ip, plan.prefix_len);

    let clients = (plan.clients.iter().enumerate())
        .map(|(i, &ip)| host(&format!("client{i}"), ip))
        .collect::<Result<Vec<_>>>()?;
    let director = host("director", plan.director)?;
    let vip = format!("{}/32", plan.vip);
    director.netns().ip(&["addr", "add", &vip, "dev", IFNAME])?;
    let real_servers = (plan.real_servers.iter().enumerate())
        .map(|(i, &ip)| host(&format!("rs{i}"), ip))
        .collect::<Result<Vec<_>>>()?;
    for rs in &real_servers {
        hold_vip_silently(rs, &vip)?;
    }

    let pass_program = match plan.pass_program {
        true => Some(attach_pass(&lan, director.bridge_port())?),
        false => None,
    };
    let director_ifindex = director.ifindex()?;
    let cluster = DrCluster {
        pass_program,
        id,
        clients,
        director,
        real_servers,
        lan,
        vip: plan.vip,
        prefix_len: plan.prefix_len,
        director_ifindex,
    };
    wait_ready(&cluster)?;
    Ok(cluster)
}

/// Puts the VIP on a real server's `lo` so it accepts what the director forwards, without
/// answering ARP for it (arp_ignore=1: only for addresses of the asking interface) or using it
/// as an ARP source (arp_announce=2), which would steal the VIP from the director.
fn hold_vip_silently(rs: &Host, vip: &str) -> Result<()> {
    let mut settings = Vec::new();
    for dev in ["all", "lo", IFNAME] {
        settings.push(format!("net.ipv4.conf.{dev}.arp_ignore=1"));
        settings.push(format!("net.ipv4.conf.{dev}.arp_announce=2"));
    }
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    // Before the address, so the VIP is never announced.
    rs.netns().sysctl(&settings)?;
    rs.netns().ip(&["addr", "add", vip, "dev", "lo"])?;
    Ok(())
}

/// Attaches the pass program to the director's bridge port, so that frames the director sends
/// with XDP_TX are delivered (see TOOLCHAIN.md).
fn attach_pass(lan: &Netns, port: &str) -> Result<PassProgram> {
    let ifindex = lan.ifindex(port)?;
    // The kernel looks the ifindex up in the calling thread's namespace.
    lan.enter(|| attach_pass_program(ifindex))?
        .with_context(|| format!("cannot attach the pass program to {port} in {}", lan.name()))
}

/// Waits until every bridge port forwards and every host's `eth0` is up.
fn wait_ready(cluster: &DrCluster) -> Result<()> {
    let mut pending: Vec<&Host> = cluster.hosts().collect();
    poll_until(READY_TIMEOUT, "the LAN links to come up", || {
        let forwarding = forwarding_ports(&cluster.lan)?;
        let mut still = Vec::new();
        for host in pending.drain(..) {
            if !(forwarding.iter().any(|p| p == host.bridge_port()) && host.link_ready()?) {
                still.push(host);
            }
        }
        pending = still;
        Ok(pending.is_empty().then_some(()))
    })
}

/// The bridge ports in the forwarding state.
fn forwarding_ports(lan: &Netns) -> Result<Vec<String>> {
    // Lines look like `3: v-rs0@if2: <...> master br0 state forwarding priority 32 cost 2`.
    let out = cmd::run("bridge", &["-n", lan.name(), "link", "show"])?;
    Ok(out
        .lines()
        .filter(|line| line.contains(" state forwarding "))
        .filter_map(|line| line.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name).to_owned())
        .collect())
}
