//! Direct routing: the IP packet is untouched but for the TTL; the frame is re-addressed to the
//! real server's MAC. The real server holds the VIP on a loopback address and answers the client
//! itself.

use aya_ebpf::programs::XdpContext;

use super::{decrement_ttl, send, target};
use crate::counters;

#[inline(always)]
pub fn run(ctx: &XdpContext) -> u32 {
    let (s, dest) = match target() {
        Ok(t) => t,
        Err(action) => return action,
    };
    if s.packet.l3_len as u32 > dest.mtu {
        return crate::icmp::send_too_big(ctx, &s.packet, dest.mtu);
    }
    counters::account_in(s.svc.id, s.dest_id, s.packet.l3_len as u64);
    if let Err(action) = decrement_ttl(ctx, s.packet.flow.af) {
        return action;
    }
    send(ctx, &s.packet, &dest.dmac, &dest.smac, dest.ifindex)
}
