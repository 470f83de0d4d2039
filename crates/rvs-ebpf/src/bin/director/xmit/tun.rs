//! IP tunnelling (IPVS's VS/TUN): the packet is wrapped in an outer IP header addressed to the
//! real server (IPIP: IPv4 in IPv4, IPv6 in IPv6 and across families), in IP + UDP + a 4-byte
//! GUE header (`--tun-type gue --tun-port P`), or in IP + GRE (`--tun-type gre`, 4 bytes, or 8
//! with `--tun-csum`). The outer header takes the inner TTL (after the
//! decrement), DSCP/ECN and, for IPv4, DF. The real server decapsulates (rvs ships an XDP program
//! for that) and answers the client directly.

use aya_ebpf::{bindings::xdp_action, helpers::bpf_xdp_adjust_head, programs::XdpContext};
use network_types::{
    eth::EthHdr,
    ip::{Ipv4Hdr, Ipv6Hdr},
};
use rvs_common::{
    AF_INET6, IPPROTO_TCP, IPPROTO_UDP, csum,
    dest::{DestEntry, tun},
    hash::hash_32,
};
use rvs_ebpf::packet::ptr_at;

use super::{decrement_ttl, target, transmit};
use crate::{
    counters,
    parse::{ETH_P_IP, ETH_P_IPV6, Packet},
};

const IPPROTO_IPIP: u8 = 4;
const IPPROTO_IPV6: u8 = 41;
const IPPROTO_GRE: u8 = 47;
const UDP_LEN: usize = 8;
const GUE_LEN: usize = 4;
/// A GRE header without options, and with the checksum option (checksum + reserved word).
const GRE_LEN: usize = 4;
const GRE_CSUM_LEN: usize = 8;
/// GRE's "checksum present" flag.
const GRE_CSUM: u16 = 0x8000;

/// What the outer header copies from the inner one.
struct Inner {
    tos: u8,
    ttl: u8,
    df: bool,
}

#[inline(always)]
fn inner_fields(ctx: &XdpContext, ipv6: bool) -> Option<Inner> {
    if ipv6 {
        let ip = ptr_at::<Ipv6Hdr>(ctx, EthHdr::LEN)?;
        // SAFETY: bounds checked by ptr_at.
        let (vcf, hop) = unsafe { ((*ip).vcf, (*ip).hop_limit) };
        return Some(Inner {
            tos: (vcf[0] << 4) | (vcf[1] >> 4),
            ttl: hop,
            df: true,
        });
    }
    let ip = ptr_at::<Ipv4Hdr>(ctx, EthHdr::LEN)?;
    // SAFETY: bounds checked by ptr_at.
    unsafe {
        Some(Inner {
            tos: (*ip).tos,
            ttl: (*ip).ttl,
            df: (*ip).frags[0] & 0x40 != 0,
        })
    }
}

/// A per-flow value for the GUE source port and the IPv6 flow label, so the real server's NIC
/// spreads flows over its queues (as Katran and IPVS do).
#[inline(always)]
fn flow_hash(p: &Packet) -> u32 {
    let f = &p.flow;
    let x = f.saddr[0]
        ^ f.saddr[3]
        ^ f.daddr[0]
        ^ f.daddr[3]
        ^ ((f.sport as u32) << 16 | f.dport as u32);
    hash_32(x, 20)
}

#[inline(always)]
pub fn run(ctx: &XdpContext) -> u32 {
    let (s, dest) = match target() {
        Ok(t) => t,
        Err(action) => return action,
    };
    let p = &s.packet;
    let outer6 = dest.af == AF_INET6;
    let gue = dest.tun_type == tun::GUE;
    let gre = dest.tun_type == tun::GRE;
    let csum = dest.tun_csum == tun::CSUM;
    let outer_ip_len = if outer6 { Ipv6Hdr::LEN } else { Ipv4Hdr::LEN };
    // The most this packet's encapsulation can add (GRE's checksum option may be left out).
    let most = outer_ip_len
        + if gue {
            UDP_LEN + GUE_LEN
        } else if gre && csum {
            GRE_CSUM_LEN
        } else if gre {
            GRE_LEN
        } else {
            0
        };
    if p.l3_len as u32 + most as u32 > dest.mtu {
        // The client's packets must shrink by the tunnel's overhead.
        return crate::icmp::send_too_big(ctx, p, dest.mtu.saturating_sub(most as u32));
    }
    counters::account_in(s.svc.id, s.dest_id, p.l3_len as u64);
    if let Err(action) = decrement_ttl(ctx, p.flow.af) {
        return action;
    }
    let Some(inner) = inner_fields(ctx, p.ipv6()) else {
        return xdp_action::XDP_DROP;
    };
    // The inner packet's sum (after the TTL decrement), for outer checksums computed without
    // reading the payload. A GRE packet whose sum cannot be had that way goes without the
    // checksum option; a GUE one with a zero UDP checksum.
    let inner_sum = if (gue || gre) && csum {
        inner_sum(ctx, p)
    } else {
        None
    };
    let overhead = if gre && inner_sum.is_none() {
        outer_ip_len + GRE_LEN
    } else {
        most
    };
    // SAFETY: grows the frame at its head; every pointer is taken again afterwards.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(overhead as i32)) } != 0 {
        return xdp_action::XDP_DROP;
    }
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return xdp_action::XDP_DROP;
    };
    let inner_proto = if p.ipv6() { IPPROTO_IPV6 } else { IPPROTO_IPIP };
    let outer_proto = if gue {
        IPPROTO_UDP
    } else if gre {
        IPPROTO_GRE
    } else {
        inner_proto
    };
    let total = p.l3_len as usize + overhead;
    // SAFETY: bounds checked by ptr_at.
    unsafe {
        (*eth).dst_addr = dest.dmac;
        (*eth).src_addr = dest.smac;
        (*eth).ether_type = if outer6 { ETH_P_IPV6 } else { ETH_P_IP }.to_be();
    }
    let hash = flow_hash(p);
    let ip_len = if outer6 {
        write_ipv6(
            ctx,
            &dest,
            &inner,
            outer_proto,
            (total - Ipv6Hdr::LEN) as u16,
            hash,
        )
    } else {
        write_ipv4(ctx, &dest, &inner, outer_proto, total as u16)
    };
    let Some(ip_len) = ip_len else {
        return xdp_action::XDP_DROP;
    };
    if gue
        && !write_gue(
            ctx,
            &dest,
            ip_len,
            total - ip_len,
            inner_proto,
            hash,
            inner_sum,
        )
    {
        return xdp_action::XDP_DROP;
    }
    if gre && !write_gre(ctx, ip_len, p.ipv6(), inner_sum) {
        return xdp_action::XDP_DROP;
    }
    transmit(p, dest.ifindex)
}

/// The GRE header after the outer IP header: version 0, the inner packet's EtherType, and with
/// `inner_sum` the checksum option over the GRE header and the inner packet.
#[inline(always)]
fn write_gre(ctx: &XdpContext, ip_len: usize, inner6: bool, inner_sum: Option<u32>) -> bool {
    let at = EthHdr::LEN + (ip_len & 0x3f);
    let ether_type = if inner6 { ETH_P_IPV6 } else { ETH_P_IP };
    match inner_sum {
        Some(inner) => {
            let Some(h) = ptr_at::<[u8; GRE_CSUM_LEN]>(ctx, at) else {
                return false;
            };
            let mut b = [0u8; GRE_CSUM_LEN];
            b[0..2].copy_from_slice(&GRE_CSUM.to_be_bytes());
            b[2..4].copy_from_slice(&ether_type.to_be_bytes());
            let sum = inner + GRE_CSUM as u32 + ether_type as u32;
            b[4..6].copy_from_slice(&(!csum::fold(sum)).to_be_bytes());
            // SAFETY: bounds checked by ptr_at.
            unsafe { *h = b };
        }
        None => {
            let Some(h) = ptr_at::<[u8; GRE_LEN]>(ctx, at) else {
                return false;
            };
            let mut b = [0u8; GRE_LEN];
            b[2..4].copy_from_slice(&ether_type.to_be_bytes());
            // SAFETY: bounds checked by ptr_at.
            unsafe { *h = b };
        }
    }
    true
}

#[inline(always)]
fn write_ipv4(
    ctx: &XdpContext,
    dest: &DestEntry,
    inner: &Inner,
    proto: u8,
    total: u16,
) -> Option<usize> {
    let ip = ptr_at::<Ipv4Hdr>(ctx, EthHdr::LEN)?;
    let frags: u16 = if inner.df { 0x4000 } else { 0 };
    let mut h = Ipv4Hdr {
        vihl: 0x45,
        tos: inner.tos,
        tot_len: total.to_be_bytes(),
        id: [0, 0],
        frags: frags.to_be_bytes(),
        ttl: inner.ttl,
        proto,
        check: [0, 0],
        src_addr: dest.src_addr[0].to_ne_bytes(),
        dst_addr: dest.addr[0].to_ne_bytes(),
    };
    // SAFETY: an Ipv4Hdr is 20 bytes; viewed as ten big-endian words for the checksum.
    let words: [u16; 10] =
        unsafe { core::mem::transmute::<Ipv4Hdr, [u16; 10]>(h) }.map(u16::from_be);
    h.check = csum::ipv4_header(&words).to_be_bytes();
    // SAFETY: bounds checked by ptr_at.
    unsafe { *ip = h };
    Some(Ipv4Hdr::LEN)
}

#[inline(always)]
fn write_ipv6(
    ctx: &XdpContext,
    dest: &DestEntry,
    inner: &Inner,
    next: u8,
    payload: u16,
    hash: u32,
) -> Option<usize> {
    let ip = ptr_at::<Ipv6Hdr>(ctx, EthHdr::LEN)?;
    let label = hash & 0x000f_ffff;
    let vcf = (6u32 << 28) | ((inner.tos as u32) << 20) | label;
    let mut h = Ipv6Hdr {
        vcf: vcf.to_be_bytes(),
        payload_len: payload.to_be_bytes(),
        next_hdr: next,
        hop_limit: inner.ttl,
        src_addr: [0; 16],
        dst_addr: [0; 16],
    };
    for i in 0..4 {
        h.src_addr[i * 4..i * 4 + 4].copy_from_slice(&dest.src_addr[i].to_ne_bytes());
        h.dst_addr[i * 4..i * 4 + 4].copy_from_slice(&dest.addr[i].to_ne_bytes());
    }
    // SAFETY: bounds checked by ptr_at.
    unsafe { *ip = h };
    Some(Ipv6Hdr::LEN)
}

/// The UDP and GUE headers after the outer IP header; `udp_len` covers UDP header, GUE header and
/// the inner packet.
#[inline(always)]
fn write_gue(
    ctx: &XdpContext,
    dest: &DestEntry,
    ip_len: usize,
    udp_len: usize,
    inner_proto: u8,
    hash: u32,
    inner_sum: Option<u32>,
) -> bool {
    let at = EthHdr::LEN + (ip_len & 0x3f);
    let Some(h) = ptr_at::<[u8; UDP_LEN + GUE_LEN]>(ctx, at) else {
        return false;
    };
    // An ephemeral source port per flow.
    let sport = 49152 + (hash & 0x3fff) as u16;
    let mut b = [0u8; UDP_LEN + GUE_LEN];
    b[0..2].copy_from_slice(&sport.to_be_bytes());
    b[2..4].copy_from_slice(&dest.tun_port.to_ne_bytes());
    b[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    // GUE version 0, no control, no options; the payload's protocol; no flags.
    b[9] = inner_proto;
    if let Some(inner) = inner_sum {
        // Local checksum offload (RFC 7059 style): the inner packet's own checksums make its sum
        // computable from its headers, so the outer UDP checksum needs no pass over the payload.
        let mut sum = inner;
        for w in b.chunks_exact(2) {
            sum += u16::from_be_bytes([w[0], w[1]]) as u32;
        }
        sum += pseudo_sum(dest, udp_len as u32);
        let mut c = !csum::fold(sum);
        if c == 0 {
            c = 0xffff;
        }
        b[6..8].copy_from_slice(&c.to_be_bytes());
    }
    // SAFETY: bounds checked by ptr_at.
    unsafe { *h = b };
    true
}

/// The outer UDP pseudo-header's one's-complement sum.
#[inline(always)]
fn pseudo_sum(dest: &DestEntry, udp_len: u32) -> u32 {
    let words = |a: &[u32; 4], n: usize| {
        let mut s = 0u32;
        for w in a.iter().take(n) {
            let v = u32::from_be(*w);
            s += (v >> 16) + (v & 0xffff);
        }
        s
    };
    let n = if dest.af == AF_INET6 { 4 } else { 1 };
    words(&dest.src_addr, n) + words(&dest.addr, n) + IPPROTO_UDP as u32 + udp_len
}

/// The one's-complement sum of the whole inner packet, derived from its headers: an IPv4 header
/// with a valid checksum sums to 0xffff; a TCP or UDP segment with a valid checksum sums to the
/// complement of its pseudo-header's sum. None when that does not hold (an IPv4 UDP datagram
/// without checksum, ICMP), and the outer checksum is then left at zero.
#[inline(always)]
fn inner_sum(ctx: &XdpContext, p: &Packet) -> Option<u32> {
    let l4 = p.l4_off as usize & 0x7f;
    let l4_len = (p.l3_len as u32).checked_sub((l4 - EthHdr::LEN) as u32)?;
    let header_sum: u32 = if p.ipv6() {
        let ip = ptr_at::<[u16; 20]>(ctx, EthHdr::LEN)?;
        // SAFETY: bounds checked by ptr_at.
        let words = unsafe { *ip };
        let mut s = 0u32;
        for w in words {
            s += u16::from_be(w) as u32;
        }
        s
    } else {
        // The IPv4 header and its options sum to 0xffff.
        0xffff
    };
    match p.flow.proto {
        IPPROTO_TCP => {}
        IPPROTO_UDP if p.ipv6() => {}
        IPPROTO_UDP => {
            let uh = ptr_at::<[u8; 8]>(ctx, l4)?;
            // SAFETY: bounds checked by ptr_at.
            if unsafe { (*uh)[6] == 0 && (*uh)[7] == 0 } {
                return None;
            }
        }
        _ => return None,
    }
    let f = &p.flow;
    let n = if p.ipv6() { 4 } else { 1 };
    let mut pseudo = p.flow.proto as u32 + l4_len;
    for i in 0..n {
        for a in [f.saddr[i], f.daddr[i]] {
            let v = u32::from_be(a);
            pseudo += (v >> 16) + (v & 0xffff);
        }
    }
    let segment = !csum::fold(pseudo) as u32;
    Some(header_sum + segment)
}
