//! Forwarding a packet to its real server.

use aya_ebpf::{bindings::xdp_action, helpers::bpf_redirect, programs::XdpContext};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};
use rvs_common::{csum, dest::dest_flags, stats::Counter};
use rvs_ebpf::packet::ptr_at;

use crate::{counters, maps};

/// Counts the packet for its service and real server and sends it on.
#[inline(always)]
pub fn to(ctx: &XdpContext, svc_id: u32, dest_id: u32, l3_len: u16) -> u32 {
    let Some(dest) = maps::dest(dest_id) else {
        counters::count(Counter::DropBadDest);
        return xdp_action::XDP_DROP;
    };
    if dest.flags & dest_flags::NEIGH_OK == 0 {
        counters::count(Counter::DropNoNeigh);
        return xdp_action::XDP_DROP;
    }
    counters::account_in(svc_id, dest_id, l3_len as u64);
    direct_route(ctx, &dest.dmac, &dest.smac, dest.ifindex)
}

/// Direct routing: the IP packet is untouched but for the TTL; the frame is re-addressed to the
/// real server's MAC, which holds the VIP on a loopback address and answers the client itself.
#[inline(always)]
fn direct_route(ctx: &XdpContext, dmac: &[u8; 6], smac: &[u8; 6], ifindex: u32) -> u32 {
    let (Some(eth), Some(ip)) = (
        ptr_at::<EthHdr>(ctx, 0),
        ptr_at::<Ipv4Hdr>(ctx, EthHdr::LEN),
    ) else {
        counters::count(Counter::DropMalformed);
        return xdp_action::XDP_DROP;
    };
    // SAFETY: both headers were bounds-checked just above.
    unsafe {
        let ttl = (*ip).ttl;
        if ttl <= 1 {
            counters::count(Counter::DropTtl);
            return xdp_action::XDP_DROP;
        }
        let old = u16::from_be_bytes([ttl, (*ip).proto]);
        let new = u16::from_be_bytes([ttl - 1, (*ip).proto]);
        (*ip).ttl = ttl - 1;
        let check = csum::replace16(u16::from_be_bytes((*ip).check), old, new);
        (*ip).check = check.to_be_bytes();
        (*eth).dst_addr = *dmac;
        (*eth).src_addr = *smac;
    }
    transmit(ctx, ifindex)
}

/// XDP_TX back out of the receiving interface, or a redirect to another one.
#[inline(always)]
fn transmit(ctx: &XdpContext, ifindex: u32) -> u32 {
    if ifindex == ctx.ingress_ifindex() as u32 {
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
