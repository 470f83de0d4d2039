//! Picking a real server for a new flow. The control plane turns each scheduler's rule into data
//! (see crates/rvs/src/sched/); this side only follows it.

use rvs_common::service::{PickMethod, ServiceEntry, SlotKey, sequence_slot};

use crate::maps::{SCHED_COUNTERS, SCHED_SLOTS};

/// The dest id for a new flow of `svc`, or None when no real server is available.
#[inline(always)]
pub fn pick(svc: &ServiceEntry) -> Option<u32> {
    if svc.pick == PickMethod::Sequence as u8 {
        return pick_sequence(svc);
    }
    None
}

/// rr / wrr: the next slot of the service's precomputed sequence. One atomic fetch-add per new
/// flow keeps the sequence global across CPUs, as the kernel's scheduler lock does.
#[inline(always)]
fn pick_sequence(svc: &ServiceEntry) -> Option<u32> {
    if svc.table_len == 0 {
        return None;
    }
    let ctr = SCHED_COUNTERS.get_ptr_mut(svc.id)?;
    // SAFETY: array values are stable, 8-byte aligned memory; all access to it is atomic.
    let n = unsafe { rvs_ebpf::atomic::fetch_add(&raw mut (*ctr).next, 1) };
    let index = sequence_slot(n, svc.counter_base, svc.table_start, svc.table_len);
    let key = SlotKey {
        svc_id: svc.id,
        gen_: svc.table_gen,
        index,
    };
    // SAFETY: copied out at once.
    unsafe { SCHED_SLOTS.get(&key).copied() }
}
