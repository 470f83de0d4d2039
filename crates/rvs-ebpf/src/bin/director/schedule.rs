//! The new-flow path, run by each scheduling program after the entry program's tail call: pick a
//! real server with the program's method (through the persistence template for a persistent
//! service), record the flow, forward the packet.

use aya_ebpf::{bindings::xdp_action, programs::XdpContext};
use rvs_common::{
    conn::ConnKey,
    service::{ServiceEntry, svc_flags},
    stats::Counter,
};

use crate::{conn, counters, forward, maps::SCRATCH, parse::Packet, persist, sched::Flow};

/// What the entry program hands to a scheduling program (one slot per CPU: a tail call runs on
/// the same CPU, with nothing in between).
#[derive(Clone, Copy)]
pub struct Scratch {
    pub packet: Packet,
    pub key: ConnKey,
    pub svc: ServiceEntry,
    pub now: u64,
}

#[inline(always)]
pub fn save(s: Scratch) -> bool {
    SCRATCH.set(0, s, 0).is_ok()
}

/// A scheduler: the dest id for a new flow of a service, or None.
pub type Pick = fn(&ServiceEntry, &Flow) -> Option<u32>;

#[inline(always)]
pub fn run(ctx: &XdpContext, pick: Pick) -> u32 {
    let Some(s) = SCRATCH.get(0).copied() else {
        counters::count(Counter::DropTailCall);
        return xdp_action::XDP_DROP;
    };
    let p = &s.packet;
    let persistent = s.svc.flags & svc_flags::PERSISTENT != 0;
    let picked = if persistent {
        persist::pick(&s.svc, &p.flow, p.tcp.is_some(), s.now, pick)
    } else {
        pick(&s.svc, &p.flow)
    };
    let Some(dest_id) = picked else {
        counters::count(Counter::DropNoDest);
        return xdp_action::XDP_DROP;
    };
    match conn::record(&s.key, &s.svc, p.tcp, dest_id, s.now) {
        Ok(id) => forward::to(ctx, s.svc.id, id, p.l3_len),
        Err(action) => action,
    }
}
