//! The sync sockets, as IPVS opens them: a sender bound to the sync interface with multicast
//! TTL 1 (or the configured one) and no loopback, and a receiver bound to the sync port that
//! joined the group on that interface. Both are tied to the interface (SO_BINDTODEVICE), so sync
//! never leaves by another link.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use anyhow::{Context, Result, bail};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// The index and first address (of the group's family) of interface `name`.
pub fn interface(name: &str, ipv6: bool) -> Result<(u32, IpAddr)> {
    let index = nix::net::if_::if_nametoindex(name)
        .with_context(|| format!("sync interface {name} not found"))?;
    let addrs = nix::ifaddrs::getifaddrs().context("listing the interfaces' addresses")?;
    for a in addrs.filter(|a| a.interface_name == name) {
        let Some(sa) = a.address else { continue };
        if let Some(v4) = sa.as_sockaddr_in()
            && !ipv6
        {
            return Ok((index, IpAddr::V4(v4.ip())));
        }
        if let Some(v6) = sa.as_sockaddr_in6()
            && ipv6
            && !v6.ip().is_loopback()
        {
            return Ok((index, IpAddr::V6(v6.ip())));
        }
    }
    bail!(
        "sync interface {name} has no IPv{} address",
        if ipv6 { 6 } else { 4 }
    )
}

/// Whether interface `name` exists (in this network namespace: sysfs may be another's).
pub fn exists(name: &str) -> bool {
    nix::net::if_::if_nametoindex(name).is_ok()
}

/// The MTU of interface `name` (SIOCGIFMTU: sysfs may show another namespace's interfaces).
pub fn mtu(name: &str) -> Option<u32> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, None).ok()?;
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= req.ifr_name.len() {
        return None;
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    use std::os::fd::AsRawFd;
    // SAFETY: SIOCGIFMTU reads the name and writes ifru_mtu of the ifreq it is given.
    let rc = unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCGIFMTU, &mut req) };
    if rc != 0 {
        return None;
    }
    // SAFETY: the ioctl succeeded, so ifru_mtu is the union's member it wrote.
    Some(unsafe { req.ifr_ifru.ifru_mtu } as u32)
}

fn socket(ipv6: bool, ifname: &str) -> Result<Socket> {
    let domain = if ipv6 { Domain::IPV6 } else { Domain::IPV4 };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).context("a UDP socket")?;
    s.bind_device(Some(ifname.as_bytes()))
        .with_context(|| format!("binding the sync socket to {ifname}"))?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// The sending socket: from the interface's address, multicast out of it with `ttl`, not
/// looped back to this host.
pub fn sender(ifname: &str, ifindex: u32, src: IpAddr, ttl: u8) -> Result<tokio::net::UdpSocket> {
    let s = socket(src.is_ipv6(), ifname)?;
    match src {
        IpAddr::V4(a) => {
            s.set_multicast_if_v4(&a)?;
            s.set_multicast_ttl_v4(ttl as u32)?;
            s.set_multicast_loop_v4(false)?;
            s.set_ttl_v4(ttl as u32)?;
        }
        IpAddr::V6(_) => {
            s.set_multicast_if_v6(ifindex)?;
            s.set_multicast_hops_v6(ttl as u32)?;
            s.set_multicast_loop_v6(false)?;
            s.set_unicast_hops_v6(ttl as u32)?;
        }
    }
    s.bind(&SockAddr::from(SocketAddr::new(src, 0)))
        .with_context(|| format!("binding the sync sender to {src}"))?;
    Ok(tokio::net::UdpSocket::from_std(s.into())?)
}

/// Room for a burst of datagrams while the receiver writes their entries into the tables (the
/// role of IPVS's `sync_sock_size`): at the default 208 KiB, a burst of a few thousand new
/// connections at the master overflowed it and most of their datagrams were lost.
const RECV_BUFFER: usize = 8 << 20;

/// Sets the receive buffer to `bytes`, past `net.core.rmem_max` when allowed (CAP_NET_ADMIN).
fn set_recv_buffer(s: &Socket, bytes: usize) {
    use std::os::fd::AsRawFd;
    let v = bytes as libc::c_int;
    // SAFETY: setsockopt reads an int of the size given from a live local.
    let forced = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&raw const v).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    } == 0;
    if !forced {
        let _ = s.set_recv_buffer_size(bytes);
    }
}

/// The receiving socket: the sync port on every address of the interface, in `group`.
pub fn receiver(
    ifname: &str,
    ifindex: u32,
    src: IpAddr,
    group: IpAddr,
    port: u16,
) -> Result<tokio::net::UdpSocket> {
    let s = socket(group.is_ipv6(), ifname)?;
    s.set_reuse_address(true)?;
    set_recv_buffer(&s, RECV_BUFFER);
    let any: IpAddr = if group.is_ipv6() {
        Ipv6Addr::UNSPECIFIED.into()
    } else {
        Ipv4Addr::UNSPECIFIED.into()
    };
    s.bind(&SockAddr::from(SocketAddr::new(any, port)))
        .with_context(|| format!("binding the sync receiver to port {port}"))?;
    match (group, src) {
        (IpAddr::V4(g), IpAddr::V4(a)) => s
            .join_multicast_v4(&g, &a)
            .with_context(|| format!("joining {g} on {ifname}"))?,
        (IpAddr::V6(g), _) => s
            .join_multicast_v6(&g, ifindex)
            .with_context(|| format!("joining {g} on {ifname}"))?,
        _ => bail!("the sync group {group} and interface address {src} differ in family"),
    }
    Ok(tokio::net::UdpSocket::from_std(s.into())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interfaces_are_looked_up_in_this_namespace() {
        assert!(exists("lo"));
        assert!(!exists("nosuch0"));
        assert_eq!(mtu("lo"), Some(65536));
        assert_eq!(mtu("nosuch0"), None);
    }
}
