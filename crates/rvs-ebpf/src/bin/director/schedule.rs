//! The new-flow path, run by each scheduling program after the entry program's tail call: pick a
//! real server with the program's method (through the persistence template for a persistent
//! service), record the flow, and hand the packet to the forwarding program of the server's
//! method.

use aya_ebpf::{bindings::xdp_action, programs::XdpContext};
use rvs_common::{
    conn::ConnKey,
    programs,
    service::{ServiceEntry, svc_flags},
    stats::Counter,
};

use crate::{
    conn, counters,
    maps::{PROGS, SCRATCH},
    parse::Packet,
    persist,
    sched::Flow,
};

/// What the entry program hands to the next program (one slot per CPU: a tail call runs on the
/// same CPU, with nothing in between).
#[derive(Clone, Copy)]
pub struct Scratch {
    pub packet: Packet,
    /// The flow's key (for a NAT reply: the flow the reply belongs to).
    pub key: ConnKey,
    /// The service (for programs after scheduling, only `id` is used).
    pub svc: ServiceEntry,
    pub now: u64,
    /// The flow's real server (0 before scheduling).
    pub dest_id: u32,
    /// The flow reaches its server on the client's port (`conn_flags::KEEP_PORT`).
    pub keep_port: bool,
}

/// A scheduler: the dest id for a new flow of a service, or None.
pub type Pick = fn(&ServiceEntry, &Flow) -> Option<u32>;

#[inline(always)]
pub fn run(ctx: &XdpContext, pick: Pick) -> u32 {
    let Some(s) = SCRATCH.get_ptr_mut(0) else {
        counters::count(Counter::DropTailCall);
        return xdp_action::XDP_DROP;
    };
    // SAFETY: a per-CPU map value, used by this program run alone.
    let s = unsafe { &mut *s };
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
    s.dest_id = dest_id;
    tail_call(ctx, programs::RECORD)
}

/// The program after a scheduler: record the flow to the server it picked (`Scratch::dest_id`)
/// and forward the packet.
#[inline(always)]
pub fn record(ctx: &XdpContext) -> u32 {
    let Some(s) = SCRATCH.get_ptr_mut(0) else {
        counters::count(Counter::DropTailCall);
        return xdp_action::XDP_DROP;
    };
    // SAFETY: a per-CPU map value, used by this program run alone.
    let s = unsafe { &mut *s };
    let (id, fwd) = match conn::record(&s.key, &s.svc, &s.packet, s.dest_id, s.now) {
        Ok(r) => r,
        Err(action) => return action,
    };
    s.dest_id = id;
    s.keep_port = conn::keeps_port(&s.svc);
    tail_call(ctx, programs::xmit_slot(fwd))
}

#[inline(always)]
fn tail_call(ctx: &XdpContext, slot: u32) -> u32 {
    // SAFETY: a tail call does not return when it succeeds.
    unsafe { PROGS.tail_call(ctx, slot) };
    counters::count(Counter::DropTailCall);
    xdp_action::XDP_DROP
}
