//! Tunnelled traffic for the director's own services (`rvsd --accept-tunnelled`): another
//! director forwarding new connections by TUN to this one (geographic clusters) sends IPIP,
//! IPv6-in-IPv6 (or across families), or GUE on the port this director accepts it on. When the
//! inner destination is one of this director's services, the outer headers are stripped, the
//! inner TTL / hop limit is decremented as a router hop would (so directors tunnelling to each
//! other end the bounce), and the inner packet enters the director again, to be handled as if it
//! had arrived directly. Anything else passes to the kernel untouched: outer fragments, options
//! beyond GUE's base header, tunnels in tunnels, inner packets that are not TCP or UDP.

use aya_ebpf::{bindings::xdp_action, helpers::bpf_xdp_adjust_head, programs::XdpContext};
use network_types::{
    eth::EthHdr,
    ip::{Ipv4Hdr, Ipv6Hdr},
};
use rvs_common::{AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP, programs, stats::Counter};
use rvs_ebpf::packet::{frame_len, ptr_at};

use crate::{
    counters, maps,
    maps::PROGS,
    parse::{ETH_P_IP, ETH_P_IPV6, IPPROTO_IPIP, IPPROTO_IPV6, words6},
    sched::Flow,
    xmit,
};

const UDP_LEN: usize = 8;
const GUE_LEN: usize = 4;
/// IPv4 "more fragments" flag and fragment offset.
const IP_MF_OFFSET: u16 = 0x3fff;

#[inline(always)]
pub fn run(ctx: &XdpContext) -> u32 {
    if let Err(action) = decap(ctx) {
        return action;
    }
    counters::count(Counter::TunnelDecap);
    // SAFETY: a tail call does not return when it succeeds.
    unsafe { PROGS.tail_call(ctx, programs::REENTER) };
    counters::count(Counter::DropTailCall);
    xdp_action::XDP_DROP
}

/// The outer headers: how many bytes follow Ethernet up to the inner packet, whether it is IPv6,
/// and the outer IP length.
#[inline(always)]
fn outer(ctx: &XdpContext) -> Option<(usize, bool, usize)> {
    let eth = ptr_at::<EthHdr>(ctx, 0)?;
    // SAFETY: bounds checked by ptr_at.
    let ether_type = unsafe { (*eth).ether_type };
    let (ip_len, proto, l3_len) = if ether_type == ETH_P_IP.to_be() {
        let ip = ptr_at::<Ipv4Hdr>(ctx, EthHdr::LEN)?;
        // SAFETY: bounds checked by ptr_at.
        let (vihl, proto, frags, tot_len) = unsafe {
            (
                (*ip).vihl,
                (*ip).proto,
                u16::from_be_bytes((*ip).frags),
                u16::from_be_bytes((*ip).tot_len),
            )
        };
        let ihl = ((vihl & 0x0f) as usize) * 4;
        // Fragments of a tunnel are the kernel's to reassemble (rvs does not).
        if vihl >> 4 != 4 || ihl < Ipv4Hdr::LEN || frags & IP_MF_OFFSET != 0 {
            return None;
        }
        (ihl, proto, tot_len as usize)
    } else if ether_type == ETH_P_IPV6.to_be() {
        let ip = ptr_at::<Ipv6Hdr>(ctx, EthHdr::LEN)?;
        // SAFETY: bounds checked by ptr_at.
        let (nh, plen) = unsafe { ((*ip).next_hdr, u16::from_be_bytes((*ip).payload_len)) };
        (Ipv6Hdr::LEN, nh, plen as usize + Ipv6Hdr::LEN)
    } else {
        return None;
    };
    match proto {
        IPPROTO_IPIP | IPPROTO_IPV6 => Some((ip_len, proto == IPPROTO_IPV6, l3_len)),
        IPPROTO_UDP => {
            let port = maps::config_ref()?.accept_gue_port;
            let h = ptr_at::<[u8; UDP_LEN + GUE_LEN]>(ctx, EthHdr::LEN + (ip_len & 0x3f))?;
            // SAFETY: bounds checked by ptr_at.
            let h = unsafe { *h };
            // GUE as rvs's TUN sends it: version 0, no control message, no options (first byte
            // zero), then the inner protocol.
            if port == 0 || u16::from_ne_bytes([h[2], h[3]]) != port || h[8] != 0 {
                return None;
            }
            match h[9] {
                IPPROTO_IPIP | IPPROTO_IPV6 => {
                    Some((ip_len + UDP_LEN + GUE_LEN, h[9] == IPPROTO_IPV6, l3_len))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// The inner packet at `off`: its flow, IP length and TTL / hop limit, if it is TCP or UDP.
#[inline(always)]
fn inner(ctx: &XdpContext, off: usize, ipv6: bool) -> Option<(Flow, usize, u8)> {
    let (af, proto, saddr, daddr, l4, l3_len, ttl) = if ipv6 {
        let ip = ptr_at::<Ipv6Hdr>(ctx, off)?;
        // SAFETY: bounds checked by ptr_at.
        let (nh, s, d, plen, hop) = unsafe {
            (
                (*ip).next_hdr,
                words6(&(*ip).src_addr),
                words6(&(*ip).dst_addr),
                u16::from_be_bytes((*ip).payload_len),
                (*ip).hop_limit,
            )
        };
        let len = plen as usize + Ipv6Hdr::LEN;
        (AF_INET6, nh, s, d, off + Ipv6Hdr::LEN, len, hop)
    } else {
        let ip = ptr_at::<Ipv4Hdr>(ctx, off)?;
        // SAFETY: bounds checked by ptr_at.
        let (vihl, proto, s, d, tot_len, ttl) = unsafe {
            (
                (*ip).vihl,
                (*ip).proto,
                u32::from_ne_bytes((*ip).src_addr),
                u32::from_ne_bytes((*ip).dst_addr),
                u16::from_be_bytes((*ip).tot_len),
                (*ip).ttl,
            )
        };
        let ihl = ((vihl & 0x0f) as usize) * 4;
        if vihl >> 4 != 4 || ihl < Ipv4Hdr::LEN {
            return None;
        }
        let (s, d) = ([s, 0, 0, 0], [d, 0, 0, 0]);
        (AF_INET, proto, s, d, off + ihl, tot_len as usize, ttl)
    };
    if proto != IPPROTO_TCP && proto != IPPROTO_UDP {
        return None;
    }
    let ports = ptr_at::<[u16; 2]>(ctx, l4 & 0xff)?;
    // SAFETY: bounds checked by ptr_at.
    let (sport, dport) = unsafe { ((*ports)[0], (*ports)[1]) };
    let flow = Flow {
        saddr,
        daddr,
        sport,
        dport,
        proto,
        af,
    };
    Some((flow, l3_len, ttl))
}

/// Strips the outer headers of a tunnelled packet for a service and decrements the inner TTL;
/// Err with the action for anything else.
#[inline(always)]
fn decap(ctx: &XdpContext) -> Result<(), u32> {
    let pass = Err(xdp_action::XDP_PASS);
    let Some((strip, ipv6, outer_len)) = outer(ctx) else {
        return pass;
    };
    let strip = strip & 0x7f;
    let Some((flow, inner_len, ttl)) = inner(ctx, EthHdr::LEN + strip, ipv6) else {
        return pass;
    };
    if crate::find_service(&flow).is_none() {
        return pass;
    }
    // For a service from here on: inconsistent lengths are dropped, as they are for packets
    // that arrive directly (the inner headers are checked again when the packet re-enters).
    if EthHdr::LEN + outer_len > frame_len(ctx) || strip + inner_len > outer_len {
        counters::count(Counter::DropMalformed);
        return Err(xdp_action::XDP_DROP);
    }
    if ttl <= 1 {
        counters::count(Counter::DropTunnelTtl);
        return Err(xdp_action::XDP_DROP);
    }
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return pass;
    };
    // SAFETY: bounds checked by ptr_at.
    let (dst, src) = unsafe { ((*eth).dst_addr, (*eth).src_addr) };
    // SAFETY: shrinks the frame at its head; pointers are taken again afterwards.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, strip as i32) } != 0 {
        return Err(xdp_action::XDP_DROP);
    }
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return Err(xdp_action::XDP_DROP);
    };
    // SAFETY: bounds checked by ptr_at.
    unsafe {
        (*eth).dst_addr = dst;
        (*eth).src_addr = src;
        (*eth).ether_type = if ipv6 { ETH_P_IPV6 } else { ETH_P_IP }.to_be();
    }
    // A router's hop: checked above, so this cannot count drop_ttl.
    xmit::decrement_ttl(ctx, flow.af)
}
