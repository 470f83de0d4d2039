//! Reading the headers of a frame: what the director needs to know about a packet. IPv4 with or
//! without options, IPv6 without extension headers (a packet with them is left to the kernel).

use aya_ebpf::{bindings::xdp_action, programs::XdpContext};
use network_types::{
    eth::EthHdr,
    ip::{Ipv4Hdr, Ipv6Hdr},
};
use rvs_common::{
    AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP,
    conn::{ConnKey, KIND_CONN},
    csum,
    maps::{IfaceMac, MAX_IFACES},
    stats::Counter,
};
use rvs_ebpf::packet::ptr_at;

use crate::{counters, sched::Flow};

/// The MAC of each interface the director is attached to, set by rvsd when it loads the program
/// (`rvs_common::maps::IFACE_MACS`).
#[unsafe(no_mangle)]
static RVS_IFACE_MACS: [IfaceMac; MAX_IFACES] = [IfaceMac::NONE; MAX_IFACES];

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86DD;
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_ICMPV6: u8 = 58;
/// IPv4 and IPv6 in IP: another director's tunnel (`tunnel_in`).
pub const IPPROTO_IPIP: u8 = 4;
pub const IPPROTO_IPV6: u8 = 41;
/// What `parse` returns, in place of an XDP action, for IPIP and IPv6-in-IP.
pub const TUNNELLED: u32 = u32::MAX;
/// IPv6 fragment header.
const IPPROTO_FRAGMENT: u8 = 44;
/// IPv4 "more fragments" flag and fragment offset mask, in host order of the frags field.
const IP_MF_OFFSET: u16 = 0x3fff;
const TCP_HDR_LEN: usize = 20;
const UDP_HDR_LEN: usize = 8;

/// A MAC address as a number (arrays are not compared with a library call here).
#[inline(always)]
fn mac_word(m: &[u8; 6]) -> u64 {
    let mut w = 0u64;
    for b in m {
        w = (w << 8) | *b as u64;
    }
    w
}

/// Whether a frame to `dst` that came in on `ingress` is for this host: multicast and broadcast
/// frames are, a unicast one only to the interface's own MAC (a flooded frame for another
/// director is not this director's to forward). Interfaces not listed are not checked.
#[inline(always)]
fn addressed_here(ingress: u32, dst: &[u8; 6]) -> bool {
    if dst[0] & 1 != 0 {
        return true;
    }
    let want = mac_word(dst);
    for slot in &RVS_IFACE_MACS {
        // SAFETY: a reference to the global; read volatile so that the value the loader set is
        // read, not the initialiser the compiler sees.
        let e = unsafe { core::ptr::read_volatile(slot) };
        if e.ifindex == 0 {
            return true;
        }
        if e.ifindex == ingress {
            return mac_word(&e.mac) == want;
        }
    }
    true
}

/// The parts of a TCP header that drive IPVS's state machine.
#[derive(Clone, Copy)]
pub struct TcpFlags {
    pub syn: bool,
    pub fin: bool,
    pub ack: bool,
    pub rst: bool,
}

/// A parsed packet.
#[derive(Clone, Copy)]
pub struct Packet {
    pub flow: Flow,
    /// Offset of the transport header in the frame (the IP header starts at 14).
    pub l4_off: u16,
    /// Length of the IP packet (header included).
    pub l3_len: u16,
    /// IPv4 with "more fragments" or a fragment offset, or IPv6 with a fragment header.
    pub fragment: bool,
    /// The TCP flags, for TCP (filled by `check_l4`).
    pub tcp: Option<TcpFlags>,
    /// The interface it arrived on.
    pub ingress: u32,
}

impl Packet {
    #[inline(always)]
    pub fn ipv6(&self) -> bool {
        self.flow.af == AF_INET6
    }

    /// The connection-table key of the packet's flow.
    #[inline(always)]
    pub fn conn_key(&self) -> ConnKey {
        ConnKey {
            caddr: self.flow.saddr,
            vaddr: self.flow.daddr,
            cport: self.flow.sport,
            vport: self.flow.dport,
            proto: self.flow.proto,
            af: self.flow.af,
            kind: KIND_CONN,
            _pad0: 0,
        }
    }
}

/// An IPv6 address as four words in wire order.
#[inline(always)]
pub fn words6(a: &[u8; 16]) -> [u32; 4] {
    [
        u32::from_ne_bytes([a[0], a[1], a[2], a[3]]),
        u32::from_ne_bytes([a[4], a[5], a[6], a[7]]),
        u32::from_ne_bytes([a[8], a[9], a[10], a[11]]),
        u32::from_ne_bytes([a[12], a[13], a[14], a[15]]),
    ]
}

/// The packet's addresses and ports (for TCP and UDP; ICMP has ports 0), or the action for a frame
/// that is none of the director's business (passed untouched), or [`TUNNELLED`].
#[inline(always)]
pub fn parse(ctx: &XdpContext) -> Result<Packet, u32> {
    // Read first, from the context itself: later, LLVM may keep a pointer to the field rather
    // than to the context, and the verifier refuses a load through a moved context pointer.
    let ingress = ctx.ingress_ifindex() as u32;
    let pass = Err(xdp_action::XDP_PASS);
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return pass;
    };
    // SAFETY: ptr_at checked that the header lies inside the frame.
    let (ether_type, dst) = unsafe { ((*eth).ether_type, (*eth).dst_addr) };
    if !addressed_here(ingress, &dst) {
        return pass;
    }
    let (af, proto, saddr, daddr, l4, l3_len, fragment) = if ether_type == ETH_P_IP.to_be() {
        let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, EthHdr::LEN) else {
            return pass;
        };
        // SAFETY: as above, for the fixed 20-byte IPv4 header.
        let (vihl, proto, frags, saddr, daddr, tot_len) = unsafe {
            (
                (*ip).vihl,
                (*ip).proto,
                u16::from_be_bytes((*ip).frags),
                u32::from_ne_bytes((*ip).src_addr),
                u32::from_ne_bytes((*ip).dst_addr),
                u16::from_be_bytes((*ip).tot_len),
            )
        };
        let ihl = ((vihl & 0x0f) as usize) * 4;
        if vihl >> 4 != 4 || ihl < Ipv4Hdr::LEN {
            return pass;
        }
        (
            AF_INET,
            proto,
            [saddr, 0, 0, 0],
            [daddr, 0, 0, 0],
            EthHdr::LEN + ihl,
            tot_len,
            frags & IP_MF_OFFSET != 0,
        )
    } else if ether_type == ETH_P_IPV6.to_be() {
        let Some(ip) = ptr_at::<Ipv6Hdr>(ctx, EthHdr::LEN) else {
            return pass;
        };
        // SAFETY: as above, for the fixed 40-byte IPv6 header.
        let (version, nh, saddr, daddr, plen) = unsafe {
            (
                (*ip).vcf[0] >> 4,
                (*ip).next_hdr,
                words6(&(*ip).src_addr),
                words6(&(*ip).dst_addr),
                u16::from_be_bytes((*ip).payload_len),
            )
        };
        // Not IPv6 after all: the kernel's ipv6_rcv drops it, so it is not forwarded either
        // (found by tests/prog_test_run.rs).
        if version != 6 {
            return pass;
        }
        (
            AF_INET6,
            nh,
            saddr,
            daddr,
            EthHdr::LEN + Ipv6Hdr::LEN,
            plen.wrapping_add(Ipv6Hdr::LEN as u16),
            nh == IPPROTO_FRAGMENT,
        )
    } else {
        return pass;
    };
    let (sport, dport) = match proto {
        IPPROTO_TCP | IPPROTO_UDP => {
            // Both start with source and destination port.
            let Some(ports) = ptr_at::<[u16; 2]>(ctx, l4) else {
                return pass;
            };
            // SAFETY: checked by ptr_at.
            unsafe { ((*ports)[0], (*ports)[1]) }
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => (0, 0),
        // Past the fast path's protocols: a tunnel costs the other packets nothing.
        IPPROTO_IPIP | IPPROTO_IPV6 => return Err(TUNNELLED),
        _ => return pass,
    };
    Ok(Packet {
        flow: Flow {
            saddr,
            daddr,
            sport,
            dport,
            proto,
            af,
        },
        l4_off: l4 as u16,
        l3_len,
        fragment,
        tcp: None,
        ingress,
    })
}

/// For a packet to a service: refuses fragments and truncated transport headers, and reads the
/// TCP flags.
#[inline(always)]
pub fn check_l4(ctx: &XdpContext, p: &mut Packet) -> Result<(), u32> {
    if p.fragment {
        // rvs does not reassemble; the kernel may.
        counters::count(Counter::PassFragment);
        return Err(xdp_action::XDP_PASS);
    }
    let malformed = || {
        counters::count(Counter::DropMalformed);
        Err(xdp_action::XDP_DROP)
    };
    let l4 = p.l4_off as usize & 0xff;
    // The IP length must cover the headers and lie within the frame (Ethernet may pad beyond).
    let frame_len = ctx.data_end() - ctx.data();
    let l4_len = (p.l3_len as usize).wrapping_sub(l4 - EthHdr::LEN);
    if EthHdr::LEN + p.l3_len as usize > frame_len || l4_len > 0xffff {
        return malformed();
    }
    if p.flow.proto == IPPROTO_TCP {
        let Some(th) = ptr_at::<[u8; TCP_HDR_LEN]>(ctx, l4) else {
            return malformed();
        };
        // SAFETY: checked by ptr_at; byte 12 holds the data offset, byte 13 the flags.
        let (doff, f) = unsafe { (((*th)[12] >> 4) as usize * 4, (*th)[13]) };
        if doff < TCP_HDR_LEN || doff > l4_len {
            return malformed();
        }
        p.tcp = Some(TcpFlags {
            fin: f & 0x01 != 0,
            syn: f & 0x02 != 0,
            rst: f & 0x04 != 0,
            ack: f & 0x10 != 0,
        });
    } else if p.flow.proto == IPPROTO_UDP {
        let Some(uh) = ptr_at::<[u8; UDP_HDR_LEN]>(ctx, l4) else {
            return malformed();
        };
        // SAFETY: checked by ptr_at; bytes 4 and 5 hold the UDP length.
        let ulen = unsafe { u16::from_be_bytes([(*uh)[4], (*uh)[5]]) } as usize;
        // The length covers the header and lies within the IP payload (the kernel's udp_rcv
        // drops the rest; the real server's would).
        if l4_len < UDP_HDR_LEN || ulen < UDP_HDR_LEN || ulen > l4_len {
            return malformed();
        }
    }
    Ok(())
}

/// Whether a packet about to open a flow may: its IPv4 header checksum right (the kernel
/// checks it in ip_rcv, before IPVS), its TTL or hop limit above 1 (it could not be forwarded;
/// IPVS would make the entry and then drop the packet). Counted when not. Checked only for new
/// flows: a known flow's packets go through untouched but for the TTL, and the real server's
/// stack judges them.
#[inline(always)]
pub fn may_open_flow(ctx: &XdpContext, p: &Packet) -> Result<(), u32> {
    let ttl_at = if p.flow.af == AF_INET {
        if !ipv4_checksum_ok(ctx, p) {
            counters::count(Counter::DropIpChecksum);
            return Err(xdp_action::XDP_DROP);
        }
        EthHdr::LEN + 8
    } else {
        EthHdr::LEN + 7
    };
    let Some(ttl) = ptr_at::<u8>(ctx, ttl_at) else {
        return Err(xdp_action::XDP_DROP);
    };
    // SAFETY: checked by ptr_at.
    if unsafe { *ttl } <= 1 {
        counters::count(Counter::DropTtl);
        return Err(xdp_action::XDP_DROP);
    }
    Ok(())
}

/// The one's-complement sum of the IPv4 header, options included, is all ones.
#[inline(always)]
fn ipv4_checksum_ok(ctx: &XdpContext, p: &Packet) -> bool {
    let ihl = (p.l4_off as usize & 0xff).wrapping_sub(EthHdr::LEN);
    let mut sum: u32 = 0;
    // At most 15 words of 32 bits.
    for i in 0..15usize {
        if i * 4 >= ihl {
            break;
        }
        let Some(w) = ptr_at::<[u8; 4]>(ctx, EthHdr::LEN + i * 4) else {
            return false;
        };
        // SAFETY: checked by ptr_at.
        let w = unsafe { *w };
        sum += u32::from(u16::from_ne_bytes([w[0], w[1]]))
            + u32::from(u16::from_ne_bytes([w[2], w[3]]));
    }
    csum::fold(sum) == 0xffff
}
