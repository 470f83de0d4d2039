//! Raw sockets for IP protocol 112 on one interface: a receiving one (joined to 224.0.0.18 or
//! ff02::12 in multicast mode) and a sending one (TTL / hop limit 255, no multicast loop, bound
//! to the address our adverts come from). Written against libc/nix because no maintained crate
//! offers raw protocol-112 sockets with IPv6 hop-limit and packet-info ancillary data.

use std::{
    io::{self, IoSliceMut},
    mem,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrIn6, recvmsg};
use tokio::io::unix::AsyncFd;

use super::wire;

/// A received packet: where it came from and went, its TTL, the VRRP message.
#[derive(Clone, Debug)]
pub struct RxPacket {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: Option<u8>,
    pub message: Vec<u8>,
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn setopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, val: &T) -> io::Result<()> {
    // SAFETY: `val` points to a live T of the size passed.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (val as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

fn raw_socket(family: libc::c_int, protocol: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the descriptor is owned from here on.
    let fd = check(unsafe {
        libc::socket(
            family,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            protocol,
        )
    })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(super) fn bind_device(fd: RawFd, ifname: &str) -> io::Result<()> {
    let name = ifname.as_bytes();
    check(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in and suitably aligned.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin6) };
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

/// Where a link-local IPv6 address is reachable: its scope is the interface.
fn scoped(ip: IpAddr, ifindex: u32) -> SocketAddr {
    match ip {
        IpAddr::V4(a) => SocketAddr::new(IpAddr::V4(a), 0),
        IpAddr::V6(a) => {
            let scope = if a.segments()[0] & 0xffc0 == 0xfe80 || a.is_multicast() {
                ifindex
            } else {
                0
            };
            SocketAddr::V6(std::net::SocketAddrV6::new(a, 0, 0, scope))
        }
    }
}

/// The receiving socket.
pub struct Receiver {
    fd: AsyncFd<OwnedFd>,
    ipv6: bool,
}

impl Receiver {
    pub fn open(ifname: &str, ifindex: u32, ipv6: bool, multicast: bool) -> io::Result<Receiver> {
        let proto = libc::c_int::from(wire::PROTOCOL);
        let fd = raw_socket(if ipv6 { libc::AF_INET6 } else { libc::AF_INET }, proto)?;
        let raw = fd.as_raw_fd();
        bind_device(raw, ifname)?;
        let one: libc::c_int = 1;
        if ipv6 {
            setopt(raw, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, &one)?;
            setopt(raw, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, &one)?;
            if multicast {
                let mreq = libc::ipv6_mreq {
                    ipv6mr_multiaddr: libc::in6_addr {
                        s6_addr: wire::MCAST_V6.octets(),
                    },
                    ipv6mr_interface: ifindex,
                };
                setopt(raw, libc::IPPROTO_IPV6, libc::IPV6_ADD_MEMBERSHIP, &mreq)?;
            }
        } else if multicast {
            let mreq = libc::ip_mreqn {
                imr_multiaddr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(wire::MCAST_V4.octets()),
                },
                imr_address: libc::in_addr { s_addr: 0 },
                imr_ifindex: ifindex as libc::c_int,
            };
            setopt(raw, libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP, &mreq)?;
        }
        // SAFETY: the descriptor is owned by the AsyncFd and so outlives its registration.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)?;
        Ok(Receiver { fd, ipv6 })
    }

    /// The next packet. IPv4 raw sockets hand over the IP header; IPv6 ones give the payload,
    /// with the hop limit and the destination as ancillary data.
    pub async fn recv(&self) -> io::Result<Result<RxPacket, wire::Reject>> {
        let mut buf = vec![0u8; 2048];
        loop {
            let mut guard = self.fd.readable().await?;
            let r = guard.try_io(|fd| {
                let raw = fd.as_raw_fd();
                if self.ipv6 {
                    recv_v6(raw, &mut buf).map(Ok)
                } else {
                    // SAFETY: buf is valid for its length.
                    let n = unsafe {
                        libc::recv(raw, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT)
                    };
                    if n < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(wire::split_ipv4(&buf[..n as usize]).map(|r| RxPacket {
                        src: r.src,
                        dst: r.dst,
                        ttl: r.ttl,
                        message: r.message.to_vec(),
                    }))
                }
            });
            match r {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }
}

fn recv_v6(fd: RawFd, buf: &mut [u8]) -> io::Result<RxPacket> {
    let mut cmsg = nix::cmsg_space!(libc::c_int, libc::in6_pktinfo);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrIn6>(fd, &mut iov, Some(&mut cmsg), MsgFlags::MSG_DONTWAIT)
        .map_err(io::Error::from)?;
    let src = msg
        .address
        .map(|a| IpAddr::V6(a.ip()))
        .unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    let mut ttl = None;
    let mut dst = IpAddr::V6(wire::MCAST_V6);
    for c in msg.cmsgs().map_err(io::Error::from)? {
        match c {
            ControlMessageOwned::Ipv6HopLimit(h) => ttl = u8::try_from(h).ok(),
            ControlMessageOwned::Ipv6PacketInfo(info) => {
                dst = IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr))
            }
            _ => {}
        }
    }
    let n = msg.bytes;
    Ok(RxPacket {
        src,
        dst,
        ttl,
        message: buf[..n].to_vec(),
    })
}

/// The sending socket: from `src`, to the group or each unicast peer.
pub struct Sender {
    fd: OwnedFd,
    pub src: IpAddr,
    ifindex: u32,
}

impl Sender {
    pub fn open(ifname: &str, ifindex: u32, src: IpAddr) -> io::Result<Sender> {
        let ipv6 = src.is_ipv6();
        let proto = libc::c_int::from(wire::PROTOCOL);
        let fd = raw_socket(if ipv6 { libc::AF_INET6 } else { libc::AF_INET }, proto)?;
        let raw = fd.as_raw_fd();
        bind_device(raw, ifname)?;
        let ttl: libc::c_int = wire::TTL.into();
        let off: libc::c_int = 0;
        if ipv6 {
            let idx = ifindex as libc::c_int;
            setopt(raw, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF, &idx)?;
            setopt(raw, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, &ttl)?;
            setopt(raw, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &ttl)?;
            setopt(raw, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP, &off)?;
        } else {
            let mreq = libc::ip_mreqn {
                imr_multiaddr: libc::in_addr { s_addr: 0 },
                imr_address: libc::in_addr { s_addr: 0 },
                imr_ifindex: ifindex as libc::c_int,
            };
            setopt(raw, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &mreq)?;
            setopt(raw, libc::IPPROTO_IP, libc::IP_MULTICAST_TTL, &ttl)?;
            setopt(raw, libc::IPPROTO_IP, libc::IP_TTL, &ttl)?;
            setopt(raw, libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP, &off)?;
        }
        // The source is fixed: the pseudo-header checksum and the peers' comparison of primary
        // addresses depend on it.
        let (ss, len) = sockaddr(scoped(src, ifindex));
        // SAFETY: ss holds a sockaddr of length len.
        check(unsafe { libc::bind(raw, (&ss as *const libc::sockaddr_storage).cast(), len) })?;
        Ok(Sender { fd, src, ifindex })
    }

    pub fn send(&self, dst: IpAddr, message: &[u8]) -> io::Result<()> {
        let (ss, len) = sockaddr(scoped(dst, self.ifindex));
        // SAFETY: message and ss are valid for the lengths passed.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                message.as_ptr().cast(),
                message.len(),
                0,
                (&ss as *const libc::sockaddr_storage).cast(),
                len,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// The group address of a family.
pub fn group(ipv6: bool) -> IpAddr {
    if ipv6 {
        IpAddr::V6(wire::MCAST_V6)
    } else {
        IpAddr::V4(wire::MCAST_V4)
    }
}

/// An interface's facts, from getifaddrs (which asks netlink, so it sees this namespace).
#[derive(Clone, Debug, Default)]
pub struct Iface {
    pub ifindex: u32,
    pub up: bool,
    pub mac: Option<[u8; 6]>,
    pub ipv4: Vec<Ipv4Addr>,
    pub link_local: Option<Ipv6Addr>,
}

pub fn interface(ifname: &str) -> Option<Iface> {
    let ifindex = nix::net::if_::if_nametoindex(ifname).ok()?;
    let mut out = Iface {
        ifindex,
        ..Iface::default()
    };
    for a in nix::ifaddrs::getifaddrs().ok()? {
        if a.interface_name != ifname {
            continue;
        }
        use nix::net::if_::InterfaceFlags as F;
        if a.flags.contains(F::IFF_UP) && a.flags.contains(F::IFF_RUNNING) {
            out.up = true;
        }
        let Some(addr) = a.address else { continue };
        if let Some(l) = addr.as_link_addr() {
            out.mac = l.addr();
        } else if let Some(v4) = addr.as_sockaddr_in() {
            out.ipv4.push(v4.ip());
        } else if let Some(v6) = addr.as_sockaddr_in6() {
            let ip = v6.ip();
            if ip.segments()[0] & 0xffc0 == 0xfe80 {
                out.link_local = Some(ip);
            }
        }
    }
    Some(out)
}
