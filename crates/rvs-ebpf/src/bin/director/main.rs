//! The rvs director: XDP programs that balance connections to virtual services over real
//! servers, the way IPVS does, before the kernel allocates a socket buffer.
//!
//! `rvs_director` (the entry, attached to the interfaces) parses the packet and looks up its
//! service and its flow. Everything after that is a tail call, with the packet's particulars in a
//! per-CPU scratch slot: a new flow goes to the scheduling program of its service's method
//! (`rvs_sched_*`), which picks a real server and records the flow; a flow with a real server goes
//! to the forwarding program of that server's method (`rvs_xmit_dr`, `_nat`, `_tun`); a NAT
//! server's reply to `rvs_nat_out`; an ICMP error about a flow to `rvs_icmp`. Anything that is not
//! for a service passes to the kernel untouched.
#![no_std]
#![no_main]

mod admit;
mod bind;
mod conn;
mod counters;
mod icmp;
mod maps;
mod mark;
mod parse;
mod persist;
mod sched;
mod schedule;
mod sync;
mod tunnel_in;
mod xmit;

use aya_ebpf::{
    bindings::xdp_action, helpers::bpf_ktime_get_coarse_ns, macros::xdp, programs::XdpContext,
};
use rvs_common::{
    IPPROTO_UDP,
    conn::{ConnKey, KIND_REPLY},
    maps::config_flags,
    programs,
    service::{PickMethod, ServiceEntry, ServiceKey, svc_flags},
    stats::Counter,
};
use rvs_ebpf::packet::ptr_at;

use crate::{
    conn::Existing,
    maps::{NAT_REPLIES, PROGS, SCRATCH},
    parse::{IPPROTO_ICMP, IPPROTO_ICMPV6},
    schedule::Scratch,
};

#[xdp]
pub fn rvs_director(ctx: XdpContext) -> u32 {
    entry(&ctx)
}

#[xdp]
pub fn rvs_sched_sequence(ctx: XdpContext) -> u32 {
    schedule::run(&ctx, sched::sequence::pick)
}

#[xdp]
pub fn rvs_sched_scan(ctx: XdpContext) -> u32 {
    schedule::run(&ctx, sched::scan::pick)
}

#[xdp]
pub fn rvs_sched_twos(ctx: XdpContext) -> u32 {
    schedule::run(&ctx, sched::twos::pick)
}

#[xdp]
pub fn rvs_sched_hash(ctx: XdpContext) -> u32 {
    schedule::run(&ctx, sched::hash::pick)
}

#[xdp]
pub fn rvs_sched_locality(ctx: XdpContext) -> u32 {
    schedule::run(&ctx, sched::locality::pick)
}

#[xdp]
pub fn rvs_record(ctx: XdpContext) -> u32 {
    schedule::record(&ctx)
}

#[xdp]
pub fn rvs_xmit_dr(ctx: XdpContext) -> u32 {
    xmit::dr::run(&ctx)
}

#[xdp]
pub fn rvs_xmit_nat(ctx: XdpContext) -> u32 {
    xmit::nat::run_in(&ctx)
}

#[xdp]
pub fn rvs_xmit_tun(ctx: XdpContext) -> u32 {
    xmit::tun::run(&ctx)
}

#[xdp]
pub fn rvs_nat_out(ctx: XdpContext) -> u32 {
    xmit::nat::run_out(&ctx)
}

#[xdp]
pub fn rvs_icmp(ctx: XdpContext) -> u32 {
    icmp::run(&ctx)
}

#[xdp]
pub fn rvs_tunnel_in(ctx: XdpContext) -> u32 {
    tunnel_in::run(&ctx)
}

/// Enters program `slot` of the program array; returns only if that fails.
#[inline(always)]
fn hand_over(ctx: &XdpContext, slot: u32) -> u32 {
    // SAFETY: a tail call does not return when it succeeds.
    unsafe { PROGS.tail_call(ctx, slot) };
    counters::count(Counter::DropTailCall);
    xdp_action::XDP_DROP
}

#[inline(always)]
fn entry(ctx: &XdpContext) -> u32 {
    // The packet's particulars are kept in the per-CPU scratch slot from the start: the programs
    // after the tail call read them there, and the BPF stack (512 bytes) stays free.
    let Some(s) = SCRATCH.get_ptr_mut(0) else {
        return xdp_action::XDP_PASS;
    };
    // SAFETY: a per-CPU map value, used by this program run alone.
    let s = unsafe { &mut *s };
    s.packet = match parse::parse(ctx) {
        Ok(p) => p,
        Err(parse::TUNNELLED) => return tunnelled(ctx),
        Err(action) => return action,
    };
    // The coarse clock (CLOCK_MONOTONIC at tick resolution) costs no time-stamp-counter read;
    // timeouts are counted in seconds.
    // SAFETY: bpf_ktime_get_coarse_ns has no preconditions.
    s.now = unsafe { bpf_ktime_get_coarse_ns() };
    s.dest_id = 0;
    s.keep_port = false;
    if s.packet.flow.proto == IPPROTO_ICMP || s.packet.flow.proto == IPPROTO_ICMPV6 {
        return icmp_error(ctx, s);
    }
    s.key = s.packet.conn_key();
    // A known flow first, as IPVS looks the connection up before the service: one hash lookup
    // for most packets. Fragments go the service's way (they are counted and passed).
    if !s.packet.fragment
        && let Some(c) = conn::lookup_established(&s.key)
    {
        if let Err(action) = parse::check_l4(ctx, &mut s.packet) {
            return action;
        }
        match conn::established(&s.key, c, &s.packet, s.now) {
            (Existing::Forward(dest_id, fwd, keep_port), svc_id) => {
                s.dest_id = dest_id;
                s.keep_port = keep_port;
                // The forwarding programs read only the service's id.
                s.svc.id = svc_id;
                return hand_over(ctx, programs::xmit_slot(fwd));
            }
            (Existing::Action(action), _) => return action,
            // The flow ended (a SYN reusing a closed flow's ports): schedule it afresh.
            (Existing::New, _) => {}
        }
    }
    s.svc = match find_service(&s.packet.flow) {
        Some(svc) => svc,
        None if is_gue_in(&s.packet.flow) => return hand_over(ctx, programs::TUNNEL_IN),
        None => return reply(ctx, s),
    };
    if let Err(action) = parse::check_l4(ctx, &mut s.packet) {
        return action;
    }
    match conn::embryonic(&s.key, &s.svc, &s.packet, s.now) {
        Existing::Forward(dest_id, fwd, keep_port) => {
            s.dest_id = dest_id;
            s.keep_port = keep_port;
            hand_over(ctx, programs::xmit_slot(fwd))
        }
        Existing::Action(action) => action,
        Existing::New => {
            if let Some(f) = s.packet.tcp
                && (!f.syn || f.rst)
            {
                if f.rst || !sloppy(&s.svc) {
                    // Not the start of a connection we know: leave it to the kernel, as IPVS
                    // does.
                    counters::count(Counter::PassNoConn);
                    return xdp_action::XDP_PASS;
                }
                // Mid-way through a flow another director opened (behind ECMP): scheduled as
                // the kernel does with sloppy_tcp, and recorded ESTABLISHED.
                counters::count(Counter::SloppyScheduled);
            }
            if let Err(action) = parse::may_open_flow(ctx, &s.packet) {
                return action;
            }
            if !admit::admit() {
                counters::count(Counter::DropAdmission);
                return xdp_action::XDP_DROP;
            }
            let Some(slot) = programs::slot_for(PickMethod::from_u8(s.svc.pick)) else {
                counters::count(Counter::DropNoDest);
                return xdp_action::XDP_DROP;
            };
            hand_over(ctx, slot)
        }
    }
}

/// Whether a TCP packet without SYN of an unknown flow of `svc` is scheduled (IPVS's
/// sloppy_tcp, per service or for all).
#[inline(always)]
fn sloppy(svc: &ServiceEntry) -> bool {
    svc.flags & svc_flags::SLOPPY_TCP != 0 || maps::config_flags() & config_flags::SLOPPY_TCP != 0
}

/// The service of a packet, as IPVS looks it up: a fwmark service for the packet's mark first,
/// then (protocol, VIP, port), then a persistent port-zero service of the VIP.
#[inline(always)]
pub(crate) fn find_service(f: &sched::Flow) -> Option<ServiceEntry> {
    let flags = maps::config_flags();
    if flags & config_flags::MARKS_ACTIVE != 0
        && !(flags & config_flags::NAT_ACTIVE != 0 && is_nat_reply(f))
        && let Some(mark) = mark::classify(f)
        && let Some(svc) = maps::service(&ServiceKey {
            addr: [mark, 0, 0, 0],
            port: 0,
            proto: 0,
            af: f.af,
        })
    {
        return Some(svc);
    }
    let mut svc_key = ServiceKey {
        addr: f.daddr,
        port: f.dport,
        proto: f.proto,
        af: f.af,
    };
    if let Some(svc) = maps::service(&svc_key) {
        return Some(svc);
    }
    svc_key.port = 0;
    maps::service(&svc_key).filter(|svc| svc.flags & svc_flags::PORT_ZERO != 0)
}

/// IPIP or IPv6-in-IP: decapsulated when the director accepts tunnelled traffic (the next
/// program checks that the inner packet is for a service), passed to the kernel otherwise.
#[inline(always)]
fn tunnelled(ctx: &XdpContext) -> u32 {
    if maps::config_flags() & config_flags::ACCEPT_TUNNELLED == 0 {
        return xdp_action::XDP_PASS;
    }
    hand_over(ctx, programs::TUNNEL_IN)
}

/// Whether a UDP datagram for no service may be GUE from another director (to the port it
/// accepts GUE on).
#[inline(always)]
fn is_gue_in(f: &sched::Flow) -> bool {
    if f.proto != IPPROTO_UDP {
        return false;
    }
    let Some(c) = maps::config_ref() else {
        return false;
    };
    c.flags & config_flags::ACCEPT_TUNNELLED != 0
        && c.accept_gue_port != 0
        && c.accept_gue_port == f.dport
}

/// The key under which a NAT real server's reply is found in `NAT_REPLIES`.
#[inline(always)]
fn nat_reply_key(f: &sched::Flow) -> ConnKey {
    ConnKey {
        caddr: f.saddr,
        vaddr: f.daddr,
        cport: f.sport,
        vport: f.dport,
        proto: f.proto,
        af: f.af,
        kind: KIND_REPLY,
        _pad0: 0,
    }
}

/// Whether a packet is a NAT real server's reply: a mark rule wide enough to cover the clients'
/// addresses must not turn replies into new flows.
#[inline(always)]
fn is_nat_reply(f: &sched::Flow) -> bool {
    // SAFETY: only tested for presence.
    unsafe { NAT_REPLIES.get(&nat_reply_key(f)).is_some() }
}

/// A packet for no service: a NAT real server's reply, or none of the director's business.
#[inline(always)]
fn reply(ctx: &XdpContext, s: &mut Scratch) -> u32 {
    if maps::config_flags() & config_flags::NAT_ACTIVE == 0 {
        return xdp_action::XDP_PASS;
    }
    // SAFETY: copied out at once.
    let Some(key) = (unsafe { NAT_REPLIES.get(&nat_reply_key(&s.packet.flow)).copied() }) else {
        return xdp_action::XDP_PASS;
    };
    if let Err(action) = parse::check_l4(ctx, &mut s.packet) {
        return action;
    }
    s.key = key;
    let Some((dest_id, svc_id)) = conn::reply(&s.key, &s.packet, s.now) else {
        return xdp_action::XDP_PASS;
    };
    s.dest_id = dest_id;
    s.svc.id = svc_id;
    hand_over(ctx, programs::NAT_OUT)
}

/// An ICMP message: errors go to the ICMP program, which finds their flow; the rest (echo and
/// friends) are the kernel's.
#[inline(always)]
fn icmp_error(ctx: &XdpContext, s: &mut Scratch) -> u32 {
    let l4 = s.packet.l4_off as usize & 0x7f;
    let Some(h) = ptr_at::<[u8; 8]>(ctx, l4) else {
        return xdp_action::XDP_PASS;
    };
    // SAFETY: bounds checked by ptr_at.
    let icmp_type = unsafe { (*h)[0] };
    if !icmp::is_error(s.packet.ipv6(), icmp_type) {
        return xdp_action::XDP_PASS;
    }
    hand_over(ctx, programs::ICMP)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
