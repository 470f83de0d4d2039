//! Telling the LAN where the virtual addresses are now: gratuitous ARP for IPv4 (a broadcast
//! ARP request for the address by itself, from our MAC, over AF_PACKET) and unsolicited
//! neighbour advertisements for IPv6 (override flag set, to all nodes). Hosts and switches then
//! send to the new MASTER from the first packet. Built by hand: a few fixed bytes, which no
//! maintained crate sends for us.

use std::{
    io, mem,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

const ETH_P_ARP: u16 = 0x0806;
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The gratuitous ARP frame for `ip` from `mac`.
pub fn garp_frame(mac: [u8; 6], ip: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ETH_P_ARP.to_be_bytes());
    // Ethernet, IPv4, 6-byte MACs, 4-byte addresses, request.
    f.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&ip.octets());
    f
}

/// The ICMPv6 neighbour advertisement for `ip` at `mac` (checksum left to the kernel).
pub fn na_message(mac: [u8; 6], ip: Ipv6Addr) -> Vec<u8> {
    let mut m = vec![136, 0, 0, 0];
    // Override: replace what neighbours have cached.
    m.extend_from_slice(&[0x20, 0, 0, 0]);
    m.extend_from_slice(&ip.octets());
    // Target link-layer address option.
    m.extend_from_slice(&[2, 1]);
    m.extend_from_slice(&mac);
    m
}

/// Sends announcements on one interface.
pub struct Announcer {
    ifindex: u32,
    mac: [u8; 6],
    packet: Option<OwnedFd>,
    icmp6: Option<OwnedFd>,
}

impl Announcer {
    pub fn new(ifname: &str, ifindex: u32, mac: [u8; 6]) -> Announcer {
        Announcer {
            ifindex,
            mac,
            packet: open_packet().ok(),
            icmp6: open_icmp6(ifname, ifindex).ok(),
        }
    }

    /// One message per address.
    pub fn announce(&self, addrs: &[IpAddr]) -> io::Result<()> {
        let mut last = Ok(());
        for a in addrs {
            let r = match a {
                IpAddr::V4(ip) => self.send_garp(*ip),
                IpAddr::V6(ip) => self.send_na(*ip),
            };
            if r.is_err() {
                last = r;
            }
        }
        last
    }

    fn send_garp(&self, ip: Ipv4Addr) -> io::Result<()> {
        let fd = self
            .packet
            .as_ref()
            .ok_or_else(|| io::Error::other("no AF_PACKET socket"))?;
        let frame = garp_frame(self.mac, ip);
        // SAFETY: zeroed sockaddr_ll is valid; fields set below.
        let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_ARP.to_be();
        sll.sll_ifindex = self.ifindex as i32;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        let n = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn send_na(&self, ip: Ipv6Addr) -> io::Result<()> {
        let fd = self
            .icmp6
            .as_ref()
            .ok_or_else(|| io::Error::other("no ICMPv6 socket"))?;
        let m = na_message(self.mac, ip);
        // SAFETY: zeroed sockaddr_in6 is valid; fields set below.
        let mut sin6: libc::sockaddr_in6 = unsafe { mem::zeroed() };
        sin6.sin6_family = libc::AF_INET6 as u16;
        sin6.sin6_addr.s6_addr = ALL_NODES.octets();
        sin6.sin6_scope_id = self.ifindex;
        let n = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                m.as_ptr().cast(),
                m.len(),
                0,
                (&sin6 as *const libc::sockaddr_in6).cast(),
                mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

fn open_packet() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2).
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn open_icmp6(ifname: &str, ifindex: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2).
    let fd = unsafe {
        libc::socket(
            libc::AF_INET6,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::IPPROTO_ICMPV6,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    super::socket::bind_device(fd.as_raw_fd(), ifname)?;
    let hops: libc::c_int = 255;
    let idx = ifindex as libc::c_int;
    for (name, val) in [
        (libc::IPV6_MULTICAST_HOPS, hops),
        (libc::IPV6_MULTICAST_IF, idx),
    ] {
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::IPPROTO_IPV6,
                name,
                (&val as *const libc::c_int).cast(),
                mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garp_is_a_broadcast_request_for_itself() {
        let f = garp_frame([2, 0, 0, 0, 0, 1], Ipv4Addr::new(198, 18, 0, 100));
        assert_eq!(f.len(), 42);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 1]);
        assert_eq!(&f[28..32], &f[38..42]);
    }

    #[test]
    fn na_overrides_with_the_target_mac() {
        let m = na_message([2, 0, 0, 0, 0, 1], "2001:db8::100".parse().unwrap());
        assert_eq!((m[0], m[4]), (136, 0x20));
        assert_eq!(&m[24..26], &[2, 1]);
        assert_eq!(m.len(), 32);
    }
}
