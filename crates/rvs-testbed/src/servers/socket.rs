//! Server sockets made inside a namespace, taking both families when bound to `[::]`.

use std::{
    io,
    net::SocketAddr,
    os::fd::{AsRawFd, OwnedFd},
};

use anyhow::{Context, Result};
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrStorage, bind, setsockopt, socket,
    sockopt::{Ipv6V6Only, ReuseAddr},
};

use crate::{Netns, bind::retry_in_use};

/// A socket of type `ty` bound to `addr` inside `ns`. An IPv6 socket also takes IPv4
/// (IPV6_V6ONLY off, whatever `net.ipv6.bindv6only` says), as `::ffff:a.b.c.d`.
pub fn bound(ns: &Netns, addr: SocketAddr, ty: SockType) -> Result<OwnedFd> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = ns
        .enter(|| socket(family, ty, SockFlag::SOCK_CLOEXEC, None))?
        .with_context(|| format!("cannot make a socket in {}", ns.name()))?;
    if addr.is_ipv6() {
        setsockopt(&fd, Ipv6V6Only, &false).context("cannot turn IPV6_V6ONLY off")?;
    }
    if ty == SockType::Stream {
        // As std's TcpListener does: a restarted server can listen while old connections linger.
        setsockopt(&fd, ReuseAddr, &true)?;
    }
    let sockaddr = SockaddrStorage::from(addr);
    retry_in_use(|| Ok(bind(fd.as_raw_fd(), &sockaddr).map_err(io::Error::from)))?
        .with_context(|| format!("cannot bind {addr} in {}", ns.name()))?;
    Ok(fd)
}
