//! One host of a topology: a namespace whose `eth0` (and maybe `eth1`) is a veth plugged into a
//! LAN bridge.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::Path,
    process::Command,
};

use anyhow::{Context, Result};

use crate::{
    Link, Mac, Netns, NsProcess, TcpConn, TcpServer, UdpServer,
    addr::PREFIX6_LEN,
    client,
    link::{LinkAddrs, add_ip6},
    names, spawn_in,
};

/// The name of every host's first interface.
pub const IFNAME: &str = "eth0";

/// A host on a LAN: its namespace, links, and helpers to run clients and servers there.
#[derive(Debug)]
pub struct Host {
    name: String,
    netns: Netns,
    /// `eth0` first; never empty.
    links: Vec<Link>,
}

impl Host {
    /// Creates the namespace for `name` in `topology` and plugs its `eth0` into `lan`'s bridge
    /// with `addrs`.
    pub(crate) fn create(
        topology: &str,
        lan: &Netns,
        name: &str,
        addrs: LinkAddrs,
    ) -> Result<Self> {
        let netns = Netns::create(names::netns_name(topology, name))?;
        // Duplicate Address Detection would keep addresses "tentative", unusable, for a second.
        // `default` is what the interfaces created next inherit.
        netns.sysctl(&[
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
            "net.ipv6.conf.lo.accept_dad=0",
        ])?;
        let link = Link::plug(&netns, lan, IFNAME, &format!("v-{name}"), addrs)
            .with_context(|| format!("cannot plug {name} into its LAN"))?;
        Ok(Self {
            name: name.to_owned(),
            netns,
            links: vec![link],
        })
    }

    /// Plugs one more interface, `ifname`, into `lan`'s bridge.
    pub(crate) fn plug(&mut self, lan: &Netns, ifname: &str, addrs: LinkAddrs) -> Result<()> {
        let port = format!("v-{}-{}", self.name, self.links.len());
        let link = Link::plug(&self.netns, lan, ifname, &port, addrs)
            .with_context(|| format!("cannot plug {}'s {ifname} into {}", self.name, lan.name()))?;
        self.links.push(link);
        Ok(())
    }

    /// Its role in the topology: `client0`, `director`, `rs0`...
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its namespace.
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// Its links, `eth0` first.
    pub fn links(&self) -> &[Link] {
        &self.links
    }

    /// The link named `ifname`.
    pub fn link(&self, ifname: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.ifname() == ifname)
    }

    /// Its `eth0`.
    pub fn eth0(&self) -> &Link {
        &self.links[0]
    }

    /// Its IPv4 address on `eth0`.
    pub fn ip(&self) -> Ipv4Addr {
        self.eth0().ip()
    }

    /// Its IPv6 address on `eth0`, if the topology has IPv6.
    pub fn ip6(&self) -> Option<Ipv6Addr> {
        self.eth0().ip6()
    }

    /// The prefix length of `eth0`'s IPv4 subnet.
    pub fn prefix_len(&self) -> u8 {
        self.eth0().prefix_len()
    }

    /// The MAC of its `eth0`.
    pub fn mac(&self) -> Mac {
        self.eth0().mac()
    }

    /// The name of its first interface, `eth0`.
    pub fn ifname(&self) -> &'static str {
        IFNAME
    }

    /// The index of its `eth0` in its namespace.
    pub fn ifindex(&self) -> Result<u32> {
        Ok(self.eth0().ifindex())
    }

    /// The far end of its `eth0`, a port of the bridge in the LAN namespace.
    pub fn bridge_port(&self) -> &str {
        self.eth0().bridge_port()
    }

    /// Sets the MTU of both ends of its `eth0`; see [`Link::set_mtu`].
    pub fn set_mtu(&self, mtu: u32) -> Result<()> {
        self.eth0().set_mtu(mtu)
    }

    /// The MTU of its `eth0`.
    pub fn mtu(&self) -> Result<u32> {
        self.eth0().mtu()
    }

    /// Starts the test TCP server on every address of both families, port `port`, answering
    /// with this host's name; it also serves bulk transfers ([`client::bulk_download`]).
    pub fn serve_tcp(&self, port: u16) -> Result<TcpServer> {
        TcpServer::start(&self.netns, &self.name, any(port))
    }

    /// Starts the test UDP server on every address of both families, port `port`, answering
    /// with this host's name.
    pub fn serve_udp(&self, port: u16) -> Result<UdpServer> {
        UdpServer::start(&self.netns, &self.name, any(port))
    }

    /// See [`client::open_tcp_from`].
    pub fn open_tcp_from(
        &self,
        from: SocketAddr,
        ip: impl Into<IpAddr>,
        port: u16,
    ) -> Result<TcpConn> {
        client::open_tcp_from(&self.netns, from, ip.into(), port)
    }

    /// Adds an address to its `eth0`, so it can send from it: IPv4 with `eth0`'s prefix length,
    /// IPv6 in a /64.
    pub fn add_address(&self, ip: IpAddr) -> Result<()> {
        match ip {
            IpAddr::V4(ip) => {
                let addr = format!("{ip}/{}", self.prefix_len());
                self.netns
                    .ip(&["addr", "add", &addr, "dev", IFNAME])
                    .map(drop)
            }
            IpAddr::V6(ip) => add_ip6(&self.netns, IFNAME, ip, PREFIX6_LEN),
        }
    }

    /// See [`client::tcp_request`].
    pub fn tcp_request(&self, ip: impl Into<IpAddr>, port: u16) -> Result<String> {
        client::tcp_request(&self.netns, ip.into(), port)
    }

    /// See [`client::open_tcp`].
    pub fn open_tcp(&self, ip: impl Into<IpAddr>, port: u16) -> Result<TcpConn> {
        client::open_tcp(&self.netns, ip.into(), port)
    }

    /// See [`client::http_get`].
    pub fn http_get(&self, ip: impl Into<IpAddr>, port: u16) -> Result<String> {
        client::http_get(&self.netns, ip.into(), port)
    }

    /// See [`client::udp_request`].
    pub fn udp_request(
        &self,
        ip: impl Into<IpAddr>,
        port: u16,
        payload: &[u8],
        from_port: u16,
    ) -> Result<String> {
        client::udp_request(&self.netns, ip.into(), port, payload, from_port)
    }

    /// See [`client::bulk_download`].
    pub fn bulk_download(&self, ip: impl Into<IpAddr>, port: u16, len: u64) -> Result<String> {
        client::bulk_download(&self.netns, ip.into(), port, len)
    }

    /// See [`client::bulk_upload`].
    pub fn bulk_upload(&self, ip: impl Into<IpAddr>, port: u16, len: u64) -> Result<String> {
        client::bulk_upload(&self.netns, ip.into(), port, len)
    }

    /// Starts a long-running program here; see [`spawn_in`].
    pub fn spawn(&self, cmd: &mut Command, log: impl AsRef<Path>) -> Result<NsProcess> {
        spawn_in(&self.netns, cmd, log)
    }

    /// Runs a command here to completion (to prepare the host, e.g. with `rvs-rs`) and returns
    /// its stdout; see [`Netns::run`]. Unlike [`Host::exec`], it sees the machine's
    /// /sys/fs/bpf.
    pub fn run(&self, cmd: &mut Command) -> Result<String> {
        self.netns.run(cmd, crate::netns::RUN_TIMEOUT)
    }

    /// Runs a short command here through `ip netns exec`; see [`Netns::exec`].
    pub fn exec(&self, argv: &[&str]) -> Result<String> {
        self.netns.exec(argv)
    }

    /// The IPv4 address of `port` on this host.
    pub fn socket_addr(&self, port: u16) -> SocketAddr {
        (self.ip(), port).into()
    }
}

/// Every address of both families: `[::]` takes IPv4 too (as `::ffff:a.b.c.d`), since the
/// servers turn IPV6_V6ONLY off.
fn any(port: u16) -> SocketAddr {
    (Ipv6Addr::UNSPECIFIED, port).into()
}
