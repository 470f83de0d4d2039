//! The rvs director: XDP programs that balance connections to virtual services over real
//! servers, the way IPVS does, before the kernel allocates a socket buffer.
//!
//! `rvs_director` (the entry, attached to the interfaces): parse Ethernet/IPv4/TCP|UDP -> look up
//! the service by (protocol, VIP, port) -> look up the flow; a known flow is forwarded at once.
//! A new flow (TCP SYN, any UDP datagram) is handed, through a per-CPU scratch slot and a tail
//! call, to the scheduling program of its service's method (`rvs_sched_*`), which picks a real
//! server (through its persistence template if any), records the flow and forwards it. Anything
//! that is not for a service passes to the kernel untouched.
#![no_std]
#![no_main]

mod admit;
mod bind;
mod conn;
mod counters;
mod forward;
mod maps;
mod parse;
mod persist;
mod sched;
mod schedule;

use aya_ebpf::{
    bindings::xdp_action, helpers::bpf_ktime_get_ns, macros::xdp, programs::XdpContext,
};
use rvs_common::{
    programs,
    service::{PickMethod, ServiceKey, svc_flags},
    stats::Counter,
};

use crate::{conn::Existing, maps::PROGS, schedule::Scratch};

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

#[inline(always)]
fn entry(ctx: &XdpContext) -> u32 {
    let p = match parse::parse(ctx) {
        Ok(p) => p,
        Err(action) => return action,
    };
    let mut svc_key = ServiceKey {
        addr: p.flow.daddr,
        port: p.flow.dport,
        proto: p.flow.proto,
        af: p.flow.af,
    };
    let svc = match maps::service(&svc_key) {
        Some(s) => s,
        None => {
            // A persistent port-zero service takes every port of its VIP.
            svc_key.port = 0;
            match maps::service(&svc_key) {
                Some(s) if s.flags & svc_flags::PORT_ZERO != 0 => s,
                _ => return xdp_action::XDP_PASS,
            }
        }
    };
    let mut p = p;
    if let Err(action) = parse::check_l4(ctx, &mut p) {
        return action;
    }
    let key = p.conn_key();
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    match conn::existing(&key, &svc, &p, now) {
        Existing::Forward(dest_id) => forward::to(ctx, svc.id, dest_id, p.l3_len),
        Existing::Action(action) => action,
        Existing::New => {
            if let Some(f) = p.tcp
                && (!f.syn || f.rst)
            {
                // Not the start of a connection we know: leave it to the kernel, as IPVS does.
                counters::count(Counter::PassNoConn);
                return xdp_action::XDP_PASS;
            }
            if !admit::admit() {
                counters::count(Counter::DropAdmission);
                return xdp_action::XDP_DROP;
            }
            let Some(slot) = programs::slot_for(PickMethod::from_u8(svc.pick)) else {
                counters::count(Counter::DropNoDest);
                return xdp_action::XDP_DROP;
            };
            if !schedule::save(Scratch {
                packet: p,
                key,
                svc,
                now,
            }) {
                counters::count(Counter::DropTailCall);
                return xdp_action::XDP_DROP;
            }
            // SAFETY: a tail call does not return when it succeeds.
            unsafe { PROGS.tail_call(ctx, slot) };
            counters::count(Counter::DropTailCall);
            xdp_action::XDP_DROP
        }
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
