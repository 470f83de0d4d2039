//! Forwarding programs, one per IPVS method, entered by tail call with the flow's real server in
//! the scratch slot: `dr` (re-address the frame), `nat` (rewrite the destination; and the replies'
//! source on their way back), `tun` (encapsulate, IPIP or GUE). What they share lives here.

pub mod dr;
pub mod nat;
pub mod tun;

use aya_ebpf::{bindings::xdp_action, helpers::bpf_redirect, programs::XdpContext};
use network_types::{
    eth::EthHdr,
    ip::{Ipv4Hdr, Ipv6Hdr},
};
use rvs_common::{
    AF_INET6, csum,
    dest::{DestEntry, dest_flags},
    stats::Counter,
};
use rvs_ebpf::packet::ptr_at;

use crate::{counters, maps, maps::SCRATCH, parse::Packet, schedule::Scratch};

/// The scratch slot (in map memory: the stack is too small to copy it) and the real server it
/// names, or the action when they are missing.
#[inline(always)]
pub fn target() -> Result<(&'static Scratch, DestEntry), u32> {
    let Some(s) = SCRATCH.get(0) else {
        counters::count(Counter::DropTailCall);
        return Err(xdp_action::XDP_DROP);
    };
    let Some(dest) = maps::dest(s.dest_id) else {
        counters::count(Counter::DropBadDest);
        return Err(xdp_action::XDP_DROP);
    };
    if dest.flags & dest_flags::NEIGH_OK == 0 {
        counters::count(Counter::DropNoNeigh);
        return Err(xdp_action::XDP_DROP);
    }
    Ok((s, dest))
}

/// Decrements the TTL (IPv4, with its checksum) or hop limit (IPv6) of the IP header at 14.
/// Err when it would reach zero (the packet is dropped and counted).
#[inline(always)]
pub fn decrement_ttl(ctx: &XdpContext, af: u8) -> Result<(), u32> {
    let expired = || {
        counters::count(Counter::DropTtl);
        Err(xdp_action::XDP_DROP)
    };
    if af == AF_INET6 {
        let Some(ip) = ptr_at::<Ipv6Hdr>(ctx, EthHdr::LEN) else {
            return Err(xdp_action::XDP_DROP);
        };
        // SAFETY: bounds checked by ptr_at.
        unsafe {
            if (*ip).hop_limit <= 1 {
                return expired();
            }
            (*ip).hop_limit -= 1;
        }
        return Ok(());
    }
    let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, EthHdr::LEN) else {
        return Err(xdp_action::XDP_DROP);
    };
    // SAFETY: bounds checked by ptr_at.
    unsafe {
        let ttl = (*ip).ttl;
        if ttl <= 1 {
            return expired();
        }
        let old = u16::from_be_bytes([ttl, (*ip).proto]);
        let new = u16::from_be_bytes([ttl - 1, (*ip).proto]);
        (*ip).ttl = ttl - 1;
        let check = csum::replace16(u16::from_be_bytes((*ip).check), old, new);
        (*ip).check = check.to_be_bytes();
    }
    Ok(())
}

/// Re-addresses the frame and sends it out of `ifindex`.
#[inline(always)]
pub fn send(ctx: &XdpContext, p: &Packet, dmac: &[u8; 6], smac: &[u8; 6], ifindex: u32) -> u32 {
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return xdp_action::XDP_DROP;
    };
    // SAFETY: bounds checked by ptr_at.
    unsafe {
        (*eth).dst_addr = *dmac;
        (*eth).src_addr = *smac;
    }
    transmit(p, ifindex)
}

/// XDP_TX back out of the receiving interface, or a redirect to another one.
#[inline(always)]
pub fn transmit(p: &Packet, ifindex: u32) -> u32 {
    counters::count(Counter::Forwarded);
    if ifindex == p.ingress {
        return xdp_action::XDP_TX;
    }
    // SAFETY: plain helper call.
    let rc = unsafe { bpf_redirect(ifindex, 0) };
    if rc as u32 != xdp_action::XDP_REDIRECT {
        counters::count(Counter::DropRedirect);
        return xdp_action::XDP_DROP;
    }
    xdp_action::XDP_REDIRECT
}

/// A packet longer than the egress MTU allows: counted and dropped (rvs does not fragment).
#[inline(always)]
pub fn too_big() -> u32 {
    counters::count(Counter::DropTooBig);
    xdp_action::XDP_DROP
}
