//! Preparing a real server, what `rvs-rs up` does: hold the VIPs on `lo` without answering ARP
//! for them (arp_ignore=1, arp_announce=2), loosen reverse-path filtering, and for IP tunnelling
//! attach rvs's decapsulation program to the interface the tunnels arrive on. It serves direct
//! routing (VIPs and ARP only) and tunnelling (all of it); NAT real servers need none of it.
//!
//! The program is attached through netlink (the "legacy" attach): it stays on the interface after
//! this process exits, like `ip link set dev IF xdp ...`, and `rvs-rs down` (or
//! `ip link set dev IF xdp off`) removes it.

use std::{net::IpAddr, path::Path};

use anyhow::{Context, Result, bail};
use aya::{Ebpf, maps::Array, programs::Xdp};
use futures::TryStreamExt;
use netlink_packet_route::{
    address::{AddressAttribute, AddressFlags},
    link::{LinkAttribute, LinkMessage, LinkXdp},
};
use std::os::fd::{AsFd, AsRawFd};

use crate::ebpf;

/// Decapsulation to attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decap {
    Ipip,
    Gue(u16),
}

/// XDP_FLAGS_SKB_MODE, XDP_FLAGS_DRV_MODE.
const XDP_FLAGS_SKB_MODE: u32 = 2;
const XDP_FLAGS_DRV_MODE: u32 = 4;

/// Writes a sysctl of the current network namespace.
fn sysctl(key: &str, value: &str) -> Result<()> {
    let path = Path::new("/proc/sys").join(key.replace('.', "/"));
    std::fs::write(&path, value).with_context(|| format!("setting {key}={value}"))
}

/// Prepares this host as a real server for `vips`, tunnels arriving on `interface`.
pub async fn up(vips: &[IpAddr], interface: &str, decap: Option<Decap>) -> Result<()> {
    let ifindex = nix::net::if_::if_nametoindex(interface)
        .with_context(|| format!("no interface {interface}"))?;
    let lo = nix::net::if_::if_nametoindex("lo").context("no loopback interface")?;
    // Before the VIPs go on lo, so they are never announced (see arp(7)).
    if vips.iter().any(IpAddr::is_ipv4) {
        for dev in ["all", "lo", interface] {
            sysctl(&format!("net.ipv4.conf.{dev}.arp_ignore"), "1")?;
            sysctl(&format!("net.ipv4.conf.{dev}.arp_announce"), "2")?;
        }
    }
    // Packets to the VIP arrive on the interface from clients routed elsewhere: loose mode.
    for dev in ["all", interface] {
        sysctl(&format!("net.ipv4.conf.{dev}.rp_filter"), "2")?;
    }
    let (conn, handle, _) = rtnetlink::new_connection().context("opening rtnetlink")?;
    tokio::spawn(conn);
    for vip in vips {
        let prefix = if vip.is_ipv4() { 32 } else { 128 };
        let mut req = handle.address().add(lo, *vip, prefix);
        if vip.is_ipv6() {
            req.message_mut()
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        match req.execute().await {
            Ok(()) => {}
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => {}
            Err(e) => return Err(e).with_context(|| format!("adding {vip} to lo")),
        }
    }
    if let Some(decap) = decap {
        attach_decap(&handle, ifindex, decap).await?;
    }
    Ok(())
}

/// Undoes `up`: the VIPs leave lo and the decapsulation program leaves the interface.
pub async fn down(vips: &[IpAddr], interface: &str) -> Result<()> {
    let ifindex = nix::net::if_::if_nametoindex(interface)
        .with_context(|| format!("no interface {interface}"))?;
    let (conn, handle, _) = rtnetlink::new_connection().context("opening rtnetlink")?;
    tokio::spawn(conn);
    let mut addrs = handle.address().get().execute();
    while let Some(a) = addrs.try_next().await? {
        let mine = a
            .attributes
            .iter()
            .any(|attr| matches!(attr, AddressAttribute::Address(ip) if vips.contains(ip)));
        if mine && a.header.index == nix::net::if_::if_nametoindex("lo")? {
            handle
                .address()
                .del(a)
                .execute()
                .await
                .context("removing a VIP from lo")?;
        }
    }
    set_xdp(&handle, ifindex, -1, XDP_FLAGS_DRV_MODE).await.ok();
    set_xdp(&handle, ifindex, -1, XDP_FLAGS_SKB_MODE).await.ok();
    Ok(())
}

async fn attach_decap(handle: &rtnetlink::Handle, ifindex: u32, decap: Decap) -> Result<()> {
    let mut bpf = Ebpf::load(ebpf::DECAP).context("loading the decapsulation program")?;
    let port = match decap {
        Decap::Ipip => 0,
        Decap::Gue(p) => p.to_be(),
    };
    let mut ports: Array<_, u16> = bpf
        .map_mut("RVS_DECAP_GUE_PORT")
        .context("the GUE port map is missing")?
        .try_into()?;
    ports.set(0, port, 0)?;
    let prog: &mut Xdp = bpf
        .program_mut("rvs_decap")
        .context("rvs_decap missing from the object")?
        .try_into()?;
    prog.load()
        .context("the kernel refused the decapsulation program")?;
    let fd = prog.fd()?.as_fd().as_raw_fd();
    // Native mode first; a driver without XDP falls back to generic.
    if set_xdp(handle, ifindex, fd, XDP_FLAGS_DRV_MODE)
        .await
        .is_err()
    {
        set_xdp(handle, ifindex, fd, XDP_FLAGS_SKB_MODE)
            .await
            .context("attaching the decapsulation program")?;
    }
    Ok(())
}

/// `ip link set dev IF xdp fd FD` (fd -1 detaches).
async fn set_xdp(handle: &rtnetlink::Handle, ifindex: u32, fd: i32, flags: u32) -> Result<()> {
    let mut msg = LinkMessage::default();
    msg.header.index = ifindex;
    msg.attributes.push(LinkAttribute::Xdp(vec![
        LinkXdp::Fd(fd),
        LinkXdp::Flags(flags),
    ]));
    handle
        .link()
        .set(msg)
        .execute()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Parses `ipip` or `gre` (the program takes both), `gue` (needs a port; IPIP and GRE too).
pub fn parse_decap(kind: &str, port: Option<u16>) -> Result<Decap> {
    match (kind, port) {
        ("ipip" | "gre", _) => Ok(Decap::Ipip),
        ("gue", Some(p)) if p != 0 => Ok(Decap::Gue(p)),
        ("gue", _) => bail!("--decap gue needs --gue-port"),
        (other, _) => bail!("unknown tunnel type {other:?} (ipip, gre or gue)"),
    }
}
