//! One host of a topology: a namespace whose `eth0` is a veth plugged into the LAN bridge.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::Path,
    process::Command,
};

use anyhow::{Context, Result};

use crate::{Mac, Netns, NsProcess, TcpConn, TcpServer, UdpServer, client, names, spawn_in};

/// The name of every host's interface to the LAN.
pub const IFNAME: &str = "eth0";
/// The name of the bridge in the LAN namespace.
pub const BRIDGE: &str = "br0";

/// A host on the LAN: its namespace, address, and helpers to run clients and servers there.
#[derive(Debug)]
pub struct Host {
    name: String,
    netns: Netns,
    ip: Ipv4Addr,
    prefix_len: u8,
    mac: Mac,
    bridge_port: String,
}

impl Host {
    /// Creates the namespace for `name` in `topology` and plugs it into `lan`'s bridge, with
    /// `ip/prefix_len` and [`Mac::for_ipv4`] on an `eth0` that is up.
    pub(crate) fn create(
        topology: &str,
        lan: &Netns,
        name: &str,
        ip: Ipv4Addr,
        prefix_len: u8,
    ) -> Result<Self> {
        let netns = Netns::create(names::netns_name(topology, name))?;
        let bridge_port = format!("v-{name}");
        let mac = Mac::for_ipv4(ip);
        // Both ends are created directly in their namespaces: nothing touches the root one.
        let veth = format!(
            "link add name {bridge_port} type veth peer name {IFNAME} netns {}",
            netns.name()
        );
        lan.ip(&words(&veth))
            .with_context(|| format!("cannot plug {name} into the LAN"))?;
        lan.ip(&["link", "set", "dev", &bridge_port, "master", BRIDGE, "up"])?;
        netns.ip(&words(&format!("link set dev {IFNAME} address {mac} up")))?;
        netns.ip(&["addr", "add", &format!("{ip}/{prefix_len}"), "dev", IFNAME])?;
        // A veth hands its peer packets whose TCP/UDP checksum is left for "hardware" to fill in
        // (CHECKSUM_PARTIAL). Native XDP on the director turns them into plain frames and that
        // note is lost, so the real server would drop them as corrupt. Real hosts send complete
        // checksums on the wire; make the test hosts do the same.
        netns
            .exec(&["ethtool", "-K", IFNAME, "tx", "off"])
            .with_context(|| format!("cannot turn off checksum offload on {name}"))?;
        let host = Self {
            name: name.to_owned(),
            netns,
            ip,
            prefix_len,
            mac,
            bridge_port,
        };
        Ok(host)
    }

    /// Its role in the topology: `client0`, `director`, `rs0`...
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its namespace.
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// Its address on the LAN.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The prefix length of the LAN.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The MAC of its `eth0`.
    pub fn mac(&self) -> Mac {
        self.mac
    }

    /// The name of its interface to the LAN, `eth0`.
    pub fn ifname(&self) -> &'static str {
        IFNAME
    }

    /// The index of its `eth0` in its namespace.
    pub fn ifindex(&self) -> Result<u32> {
        self.netns.ifindex(IFNAME)
    }

    /// The far end of its `eth0`, a port of the bridge in the LAN namespace.
    pub fn bridge_port(&self) -> &str {
        &self.bridge_port
    }

    /// Starts the test TCP server on every address, port `port`, answering with this host's name.
    pub fn serve_tcp(&self, port: u16) -> Result<TcpServer> {
        TcpServer::start(
            &self.netns,
            &self.name,
            (Ipv4Addr::UNSPECIFIED, port).into(),
        )
    }

    /// Starts the test UDP server on every address, port `port`, answering with this host's name.
    pub fn serve_udp(&self, port: u16) -> Result<UdpServer> {
        UdpServer::start(
            &self.netns,
            &self.name,
            (Ipv4Addr::UNSPECIFIED, port).into(),
        )
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

    /// Adds an address (with the host's prefix length) to its interface, so it can send from it.
    pub fn add_address(&self, ip: IpAddr) -> Result<()> {
        self.netns
            .ip(&[
                "addr",
                "add",
                &format!("{ip}/{}", self.prefix_len),
                "dev",
                IFNAME,
            ])
            .map(drop)
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

    /// Starts a long-running program here; see [`spawn_in`].
    pub fn spawn(&self, cmd: &mut Command, log: impl AsRef<Path>) -> Result<NsProcess> {
        spawn_in(&self.netns, cmd, log)
    }

    /// The address of `port` on this host.
    pub fn socket_addr(&self, port: u16) -> SocketAddr {
        (self.ip, port).into()
    }

    /// Whether its `eth0` is up and passing traffic (the kernel activates the queueing
    /// discipline shortly after the carrier comes up; frames sent before are dropped).
    pub(crate) fn link_ready(&self) -> Result<bool> {
        let out = self.netns.ip(&["-o", "link", "show", "dev", IFNAME])?;
        Ok(out.contains(" state UP "))
    }
}

/// An `ip` command line as arguments (none of ours contains a space).
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}
