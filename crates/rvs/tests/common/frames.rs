//! Hand-made packets written onto a host's wire with a packet socket, for the tests of
//! malformed and unusual packets.

use std::{net::Ipv4Addr, os::fd::AsRawFd};

use rvs_testbed::Host;

/// An IPv4 packet in an Ethernet frame. `options` go after the 20-byte header (a multiple of
/// 4); `tot_len` overrides the IP length; `frags` is the flags/offset field.
pub struct V4 {
    pub proto: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub options: Vec<u8>,
    pub payload: Vec<u8>,
    pub tot_len: Option<u16>,
    pub ihl: Option<u8>,
    pub frags: u16,
    pub ttl: u8,
}

impl V4 {
    pub fn new(proto: u8, src: Ipv4Addr, dst: Ipv4Addr, payload: Vec<u8>) -> V4 {
        V4 {
            proto,
            src,
            dst,
            options: vec![],
            payload,
            tot_len: None,
            ihl: None,
            frags: 0x4000,
            ttl: 64,
        }
    }

    /// The IP packet: header, options, payload.
    pub fn packet(&self) -> Vec<u8> {
        let hlen = 20 + self.options.len();
        let tot = self.tot_len.unwrap_or((hlen + self.payload.len()) as u16);
        let ihl = self.ihl.unwrap_or((hlen / 4) as u8);
        let mut ip = vec![0x40 | ihl, 0];
        ip.extend(tot.to_be_bytes());
        ip.extend([0x12, 0x34]);
        ip.extend(self.frags.to_be_bytes());
        ip.extend([self.ttl, self.proto, 0, 0]);
        ip.extend(self.src.octets());
        ip.extend(self.dst.octets());
        ip.extend(&self.options);
        let c = super::inet_checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        ip.extend(&self.payload);
        ip
    }

    /// The packet in an Ethernet frame from `smac` to `dmac`.
    pub fn frame(&self, dmac: [u8; 6], smac: [u8; 6]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend(dmac);
        f.extend(smac);
        f.extend([0x08, 0x00]);
        f.extend(self.packet());
        f
    }
}

/// A TCP header: ports, SYN, data offset `doff` words.
pub fn tcp(sport: u16, dport: u16, doff: u8) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend(sport.to_be_bytes());
    h.extend(dport.to_be_bytes());
    h.extend(1000u32.to_be_bytes());
    h.extend(0u32.to_be_bytes());
    h.extend([doff << 4, 0x02]);
    h.extend(64240u16.to_be_bytes());
    h.extend([0, 0, 0, 0]);
    h
}

pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend(sport.to_be_bytes());
    h.extend(dport.to_be_bytes());
    h.extend(((8 + payload.len()) as u16).to_be_bytes());
    h.extend([0, 0]);
    h.extend(payload);
    h
}

/// Sends raw frames out of `host`'s eth0.
pub fn send_frames(host: &Host, frames: &[Vec<u8>]) {
    let ifindex = host.eth0().ifindex();
    let fd = host
        .netns()
        .enter(|| {
            // SAFETY: plain socket(2).
            let fd = unsafe {
                libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW,
                    (libc::ETH_P_ALL as u16).to_be() as i32,
                )
            };
            assert!(
                fd >= 0,
                "AF_PACKET socket: {}",
                std::io::Error::last_os_error()
            );
            // SAFETY: fd was just opened and is owned here.
            unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }
        })
        .unwrap();
    for f in frames {
        // SAFETY: an all-zero sockaddr_ll, then filled in.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = ifindex as i32;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&f[..6]);
        // SAFETY: the buffer and the address are valid for the lengths given.
        let n = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                f.as_ptr().cast(),
                f.len(),
                0,
                (&raw const sll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(
            n,
            f.len() as isize,
            "sendto: {}",
            std::io::Error::last_os_error()
        );
    }
}
