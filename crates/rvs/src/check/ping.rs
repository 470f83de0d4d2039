//! PING_CHECK: an ICMP (ICMPv6) echo request; it passes on the matching echo reply. It uses an
//! ICMP datagram socket where `ping_group_range` allows one, else a raw socket (root).

use std::{
    net::{IpAddr, SocketAddr},
    os::fd::{AsRawFd, OwnedFd},
};

use nix::sys::socket::{
    self, AddressFamily, SockFlag, SockProtocol, SockType, SockaddrStorage, socket,
};
use tokio::net::UdpSocket;

use super::{CheckSpec, net};

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;

pub async fn check(spec: &CheckSpec) -> Result<String, String> {
    let ip = spec.target.ip();
    let (sock, raw) = open(ip)?;
    if let Some(bind) = spec.bind {
        socket::bind(sock.as_raw_fd(), &SockaddrStorage::from(bind))
            .map_err(|e| format!("bind to {bind}: {e}"))?;
    }
    let sock = UdpSocket::from_std(std::net::UdpSocket::from(sock))
        .map_err(|e| format!("ICMP socket: {e}"))?;
    sock.connect(SocketAddr::new(ip, 0))
        .await
        .map_err(|e| format!("connect to {ip}: {}", net::describe(&e)))?;
    let random = net::random_u64();
    let (id, seq) = (random as u16, (random >> 16) as u16);
    let request = echo_request(ip.is_ipv4(), id, seq);
    sock.send(&request)
        .await
        .map_err(|e| format!("sending echo request: {}", net::describe(&e)))?;
    let mut buf = [0u8; 2048];
    loop {
        let n = sock
            .recv(&mut buf)
            .await
            .map_err(|e| format!("receiving: {}", net::describe(&e)))?;
        // A raw IPv4 socket hands over the IP header too; it also sees other ICMP traffic
        // (on loopback, our own request), which is skipped.
        let icmp = if raw && ip.is_ipv4() {
            strip_ipv4(&buf[..n])
        } else {
            Some(&buf[..n])
        };
        // The kernel sets the id of a datagram socket's echo: only the sequence can be checked.
        if let Some(icmp) = icmp
            && is_reply(icmp, ip.is_ipv4(), raw.then_some(id), seq)
        {
            return Ok(format!("echo reply from {ip}"));
        }
    }
}

/// An ICMP socket for the family of `ip`: (socket, is raw).
fn open(ip: IpAddr) -> Result<(OwnedFd, bool), String> {
    let (family, proto) = match ip {
        IpAddr::V4(_) => (AddressFamily::Inet, SockProtocol::Icmp),
        IpAddr::V6(_) => (AddressFamily::Inet6, SockProtocol::IcmpV6),
    };
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    match socket(family, SockType::Datagram, flags, proto) {
        Ok(fd) => Ok((fd, false)),
        Err(dgram) => socket(family, SockType::Raw, flags, proto)
            .map(|fd| (fd, true))
            .map_err(|raw| format!("no ICMP socket: datagram: {dgram}, raw: {raw}")),
    }
}

fn echo_request(v4: bool, id: u16, seq: u16) -> Vec<u8> {
    let mut p = vec![if v4 { ECHO_REQUEST_V4 } else { ECHO_REQUEST_V6 }, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(b"rvs health check");
    // ICMPv6 checksums cover a pseudo-header the kernel fills in; IPv4's are ours to set.
    if v4 {
        let sum = checksum(&p);
        p[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    p
}

fn is_reply(icmp: &[u8], v4: bool, id: Option<u16>, seq: u16) -> bool {
    let want = if v4 { ECHO_REPLY_V4 } else { ECHO_REPLY_V6 };
    icmp.len() >= 8
        && icmp[0] == want
        && id.is_none_or(|id| u16::from_be_bytes([icmp[4], icmp[5]]) == id)
        && u16::from_be_bytes([icmp[6], icmp[7]]) == seq
}

fn strip_ipv4(packet: &[u8]) -> Option<&[u8]> {
    let ihl = usize::from(packet.first()? & 0x0f) * 4;
    packet.get(ihl..)
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{CheckKind, run_once, testing::spec};

    #[test]
    fn request_checksum_verifies() {
        let p = echo_request(true, 0x1234, 7);
        assert_eq!(checksum(&p), 0);
        assert!(
            !is_reply(&p, true, Some(0x1234), 7),
            "a request is not a reply"
        );
    }

    #[tokio::test]
    async fn pings_loopback() {
        // Needs root or a ping_group_range that includes us; say so rather than fail elsewhere.
        if open("127.0.0.1".parse().unwrap()).is_err() {
            eprintln!("skipped: no ICMP socket available to this user");
            return;
        }
        let out = run_once(&spec(CheckKind::Ping, "127.0.0.1:0".parse().unwrap())).await;
        assert!(out.ok, "{out:?}");
    }
}
