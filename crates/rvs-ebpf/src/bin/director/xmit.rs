//! Transmitting a packet to its real server.

use aya_ebpf::{bindings::xdp_action, helpers::bpf_redirect, programs::XdpContext};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};
use rvs_common::{
    csum,
    dest::{DestEntry, dest_flags},
    stats::Counter,
};

use crate::counters;

/// Direct routing: the IP packet is untouched but for the TTL; the frame is re-addressed to the
/// real server's MAC, which holds the VIP on a loopback address and answers the client itself.
#[inline(always)]
pub fn direct_route(ctx: &XdpContext, eth: *mut EthHdr, ip: *mut Ipv4Hdr, dest: &DestEntry) -> u32 {
    if dest.flags & dest_flags::NEIGH_OK == 0 {
        counters::count(Counter::DropNoNeigh);
        return xdp_action::XDP_DROP;
    }
    // SAFETY: both headers were bounds-checked by the caller.
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
        (*eth).dst_addr = dest.dmac;
        (*eth).src_addr = dest.smac;
    }
    transmit(ctx, dest.ifindex)
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
