//! The table schedulers: sh and dh (256 slots indexed by hash_32 of the source or destination
//! address) and mh (4093 Maglev slots indexed by hsiphash of the source address). The control
//! plane lays out the tables; sh-port / mh-port add the source port to the key; sh-fallback and
//! mh-fallback look further when the hashed server is unusable.

use aya_ebpf::helpers::bpf_loop;
use rvs_common::{
    AF_INET6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP,
    hash::{MH_KEY1, MH_TAB_SIZE, fold_words, hash_32, mh_hash},
    service::{PickMethod, ServiceEntry, SlotKey, svc_flags},
};

use super::{Flow, overloaded};
use crate::maps::{DESTS, SCHED_SLOTS};

const SH_BITS: u32 = 8;
const SH_SIZE: u32 = 1 << SH_BITS;

#[inline(always)]
fn slot(svc: &ServiceEntry, index: u32) -> Option<u32> {
    let key = SlotKey {
        svc_id: svc.id,
        gen_: svc.table_gen,
        index,
    };
    // SAFETY: copied out at once.
    unsafe { SCHED_SLOTS.get(&key).copied() }
}

/// The server in `index` if it may take new flows: weight above zero and not overloaded (dh
/// also wants it in the list; sh and mh tables only ever hold listed servers).
#[inline(always)]
fn usable_slot(svc: &ServiceEntry, index: u32, need_available: bool) -> Option<u32> {
    let id = slot(svc, index)?;
    let dest = DESTS.get(id)?;
    if need_available && dest.flags & rvs_common::dest::dest_flags::AVAILABLE == 0 {
        return None;
    }
    (dest.weight > 0 && !overloaded(id)).then_some(id)
}

/// The client's port for sh-port / mh-port (host order), else 0.
#[inline(always)]
fn key_port(svc: &ServiceEntry, flow: &Flow) -> u16 {
    if svc.flags & svc_flags::SCHED2 != 0
        && matches!(flow.proto, IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP)
    {
        u16::from_be(flow.sport)
    } else {
        0
    }
}

struct Probe {
    svc: ServiceEntry,
    addr: u32,
    port: u16,
    ihash: u32,
    found: u32,
    ok: u64,
}

#[inline(always)]
pub fn pick(svc: &ServiceEntry, flow: &Flow) -> Option<u32> {
    let ipv6 = flow.af == AF_INET6;
    match PickMethod::from_u8(svc.pick) {
        PickMethod::DestinationHash => {
            if svc.table_len != SH_SIZE {
                return None;
            }
            usable_slot(svc, hash_32(fold_words(&flow.daddr, ipv6), SH_BITS), true)
        }
        PickMethod::SourceHash => {
            if svc.table_len != SH_SIZE {
                return None;
            }
            let addr = fold_words(&flow.saddr, ipv6);
            let port = key_port(svc, flow);
            let ihash = hash_32((port as u32).wrapping_add(addr), SH_BITS);
            first_usable(svc, addr, port, ihash, sh_step)
        }
        PickMethod::Maglev => {
            if svc.table_len != MH_TAB_SIZE {
                return None;
            }
            let addr = fold_words(&flow.saddr, ipv6);
            let port = key_port(svc, flow);
            let ihash = mh_hash(addr, port, 0, MH_KEY1) % MH_TAB_SIZE;
            first_usable(svc, addr, port, ihash, mh_step)
        }
        _ => None,
    }
}

/// The hashed slot's server if usable; otherwise, with the fallback flag, the first usable one
/// the scheduler's probe sequence finds.
#[inline(always)]
fn first_usable(
    svc: &ServiceEntry,
    addr: u32,
    port: u16,
    ihash: u32,
    step: extern "C" fn(u64, *mut core::ffi::c_void) -> i64,
) -> Option<u32> {
    if let Some(id) = usable_slot(svc, ihash, false) {
        return Some(id);
    }
    if svc.flags & svc_flags::SCHED1 == 0 {
        return None;
    }
    let mut p = Probe {
        svc: *svc,
        addr,
        port,
        ihash,
        found: 0,
        ok: 0,
    };
    // SAFETY: the callback only touches `p` through the context pointer, for this call.
    unsafe { bpf_loop(svc.table_len, step as *mut _, &raw mut p as *mut _, 0) };
    (p.ok != 0).then_some(p.found)
}

/// sh-fallback's probe k: the kernel adds the offset to an already offset hash, so it visits
/// `(k + 2 * ihash) mod 256`.
extern "C" fn sh_step(k: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: bpf_loop passes back the pointer given in `first_usable`.
    let p = unsafe { &mut *(ctx as *mut Probe) };
    let index = (k as u32).wrapping_add(p.ihash.wrapping_mul(2)) & (SH_SIZE - 1);
    take(p, index)
}

/// mh-fallback's probe k: a fresh hash with the offset `(k + ihash) mod M` added to the key.
extern "C" fn mh_step(k: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: bpf_loop passes back the pointer given in `first_usable`.
    let p = unsafe { &mut *(ctx as *mut Probe) };
    let roffset = (k as u32).wrapping_add(p.ihash) % MH_TAB_SIZE;
    let index = mh_hash(p.addr, p.port, roffset, MH_KEY1) % MH_TAB_SIZE;
    take(p, index)
}

#[inline(always)]
fn take(p: &mut Probe, index: u32) -> i64 {
    match usable_slot(&p.svc, index, false) {
        Some(id) => {
            p.found = id;
            p.ok = 1;
            1
        }
        None => 0,
    }
}
