//! One interface of a host: a veth whose far end is a port of a LAN's bridge.

use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::{Context, Result};

use crate::{Mac, Netns, addr::PREFIX6_LEN, cmd, lan::BRIDGE};

/// The addresses to give a new link.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LinkAddrs {
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub ip6: Option<Ipv6Addr>,
}

/// An interface of a host (`eth0`, `eth1`), plugged into a LAN bridge.
#[derive(Clone, Debug)]
pub struct Link {
    ifname: String,
    ifindex: u32,
    mac: Mac,
    addrs: LinkAddrs,
    host_ns: String,
    lan_ns: String,
    bridge_port: String,
}

impl Link {
    /// Creates `ifname` in `host`, its peer `bridge_port` in `lan` on the bridge, both up, with
    /// [`Mac::for_ipv4`] of `addrs.ip` and the addresses.
    pub(crate) fn plug(
        host: &Netns,
        lan: &Netns,
        ifname: &str,
        bridge_port: &str,
        addrs: LinkAddrs,
    ) -> Result<Self> {
        let mac = Mac::for_ipv4(addrs.ip);
        // Both ends are created directly in their namespaces: nothing touches the root one.
        let veth = format!(
            "link add name {bridge_port} type veth peer name {ifname} netns {}",
            host.name()
        );
        lan.ip(&words(&veth))
            .with_context(|| format!("cannot plug {} into {}", host.name(), lan.name()))?;
        lan.ip(&["link", "set", "dev", bridge_port, "master", BRIDGE, "up"])?;
        host.ip(&words(&format!("link set dev {ifname} address {mac} up")))?;
        let v4 = format!("{}/{}", addrs.ip, addrs.prefix_len);
        host.ip(&["addr", "add", &v4, "dev", ifname])?;
        if let Some(ip6) = addrs.ip6 {
            add_ip6(host, ifname, ip6, PREFIX6_LEN)?;
        }
        // A veth hands its peer packets whose TCP/UDP checksum is left for "hardware" to fill in
        // (CHECKSUM_PARTIAL). Native XDP on the director turns them into plain frames and that
        // note is lost, so the receiver would drop them as corrupt. Real hosts send complete
        // checksums on the wire; make the test hosts do the same.
        host.exec(&["ethtool", "-K", ifname, "tx", "off"])
            .with_context(|| format!("cannot turn off checksum offload in {}", host.name()))?;
        Ok(Self {
            ifname: ifname.to_owned(),
            ifindex: host.ifindex(ifname)?,
            mac,
            addrs,
            host_ns: host.name().to_owned(),
            lan_ns: lan.name().to_owned(),
            bridge_port: bridge_port.to_owned(),
        })
    }

    /// Its name in the host: `eth0`, `eth1`.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Its interface index in the host's namespace.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Its MAC.
    pub fn mac(&self) -> Mac {
        self.mac
    }

    /// Its IPv4 address.
    pub fn ip(&self) -> Ipv4Addr {
        self.addrs.ip
    }

    /// The prefix length of its IPv4 subnet.
    pub fn prefix_len(&self) -> u8 {
        self.addrs.prefix_len
    }

    /// Its IPv6 address (in a /64) if the topology has IPv6.
    pub fn ip6(&self) -> Option<Ipv6Addr> {
        self.addrs.ip6
    }

    /// The name of the namespace of the LAN it is plugged into.
    pub fn lan(&self) -> &str {
        &self.lan_ns
    }

    /// Its far end: a port of the bridge in the LAN's namespace.
    pub fn bridge_port(&self) -> &str {
        &self.bridge_port
    }

    /// Sets the MTU of both ends. Every other port of the LAN keeps its own: a bridge drops
    /// frames too big for the port they leave by, silently. An XDP program on one end limits the
    /// other's MTU to what fits a page (about 3500); above, this fails and changes nothing.
    pub fn set_mtu(&self, mtu: u32) -> Result<()> {
        let old = self.mtu()?;
        set_mtu(&self.host_ns, &self.ifname, mtu)?;
        set_mtu(&self.lan_ns, &self.bridge_port, mtu).inspect_err(|_| {
            // Both ends or neither: a veth with ends of two MTUs drops what one sends.
            let _ = set_mtu(&self.host_ns, &self.ifname, old);
        })
    }

    /// The MTU of its host end.
    pub fn mtu(&self) -> Result<u32> {
        let out = cmd::run(
            "ip",
            &["-n", &self.host_ns, "-o", "link", "show", &self.ifname],
        )?;
        let mut words = out.split_whitespace();
        words
            .find(|&w| w == "mtu")
            .and_then(|_| words.next())
            .and_then(|mtu| mtu.parse().ok())
            .with_context(|| format!("no MTU in {out:?}"))
    }

    /// Whether its host end is up and passing traffic (the kernel activates the queueing
    /// discipline shortly after the carrier comes up; frames sent before are dropped).
    pub(crate) fn host_end_ready(&self) -> Result<bool> {
        let out = cmd::run(
            "ip",
            &["-n", &self.host_ns, "-o", "link", "show", &self.ifname],
        )?;
        Ok(out.contains(" state UP "))
    }
}

fn set_mtu(ns: &str, dev: &str, mtu: u32) -> Result<()> {
    let mtu = mtu.to_string();
    cmd::run("ip", &["-n", ns, "link", "set", "dev", dev, "mtu", &mtu])
        .with_context(|| format!("cannot set the MTU of {dev} in {ns}"))
        .map(drop)
}

/// Adds an IPv6 address usable at once: `nodad` skips Duplicate Address Detection, which would
/// keep it "tentative" (unusable) for about a second.
pub(crate) fn add_ip6(ns: &Netns, dev: &str, ip: Ipv6Addr, prefix_len: u8) -> Result<()> {
    let addr = format!("{ip}/{prefix_len}");
    ns.ip(&["-6", "addr", "add", &addr, "dev", dev, "nodad"])
        .map(drop)
}

/// An `ip` command line as arguments (none of ours contains a space).
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}
