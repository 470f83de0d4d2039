//! rr and wrr: the next slot of the service's precomputed sequence. One atomic fetch-add per slot
//! keeps the sequence global across CPUs, as the kernel's scheduler lock does. An overloaded real
//! server's slot is passed over, as the kernel's walk passes it over, consuming a step.

use aya_ebpf::helpers::bpf_loop;
use rvs_common::service::{ServiceEntry, SlotKey, sequence_slot};

use super::{Flow, overloaded};
use crate::maps::{SCHED_COUNTERS, SCHED_SLOTS};

struct Walk {
    svc: ServiceEntry,
    found: u32,
    ok: bool,
}

#[inline(always)]
pub fn pick(svc: &ServiceEntry, _flow: &Flow) -> Option<u32> {
    if svc.table_len == 0 {
        return None;
    }
    let mut walk = Walk {
        svc: *svc,
        found: 0,
        ok: false,
    };
    // SAFETY: the callback only touches `walk` through the context pointer, for this call.
    unsafe {
        bpf_loop(svc.table_len, step as *mut _, &raw mut walk as *mut _, 0);
    }
    walk.ok.then_some(walk.found)
}

/// One slot: returns 1 (stop) at a real server that is not overloaded.
extern "C" fn step(_i: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: bpf_loop passes back the pointer given in `pick`.
    let walk = unsafe { &mut *(ctx as *mut Walk) };
    let svc = &walk.svc;
    let Some(ctr) = SCHED_COUNTERS.get_ptr_mut(svc.id) else {
        return 1;
    };
    // SAFETY: array values are stable, aligned memory, changed only atomically.
    let n = unsafe { rvs_ebpf::atomic::fetch_add(&raw mut (*ctr).next, 1) };
    let index = sequence_slot(n, svc.counter_base, svc.table_start, svc.table_len);
    let key = SlotKey {
        svc_id: svc.id,
        gen_: svc.table_gen,
        index,
    };
    // SAFETY: copied out at once.
    let Some(id) = (unsafe { SCHED_SLOTS.get(&key).copied() }) else {
        return 1;
    };
    if overloaded(id) {
        return 0;
    }
    walk.found = id;
    walk.ok = true;
    1
}
