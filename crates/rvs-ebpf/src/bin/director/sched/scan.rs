//! The counting schedulers, each a walk over the service's real servers in list order with the
//! kernel's cost formula and tie-break (first wins unless the rule says otherwise):
//! lc: least `active*256 + inactive` (strict <); wlc: least overhead/weight by cross-multiplying
//! (strict >, 64-bit signed); sed: as wlc with cost `active + 1`; nq: the first idle server, else
//! sed; fo: the highest weight (strict >); ovf: the highest weight with `active <= weight`.
//! Overloaded servers are skipped; weight 0 takes no new flows.

use aya_ebpf::helpers::bpf_loop;
use rvs_common::service::{PickMethod, SchedDest, ServiceEntry};

use super::{Flow, conns};
use crate::maps::SCHED_LIST;

struct Walk {
    list_off: u32,
    method: u8,
    /// nq found an idle server: stop (1). A u64 rather than a bool so the callback's return
    /// value can be masked to 0..=1, which the verifier insists on.
    done: u64,
    have: bool,
    best: u32,
    best_cost: i64,
    best_weight: i64,
}

#[inline(always)]
pub fn pick(svc: &ServiceEntry, _flow: &Flow) -> Option<u32> {
    pick_as(svc, PickMethod::from_u8(svc.pick))
}

/// The walk of `method` over the service's list (lblc and lblcr fall back on wlc's).
#[inline(always)]
pub fn pick_as(svc: &ServiceEntry, method: PickMethod) -> Option<u32> {
    let mut walk = Walk {
        list_off: svc.list_off,
        method: method as u8,
        done: 0,
        have: false,
        best: 0,
        best_cost: 0,
        best_weight: 0,
    };
    // SAFETY: the callback only touches `walk` through the context pointer, for this call.
    unsafe {
        bpf_loop(svc.list_len, step as *mut _, &raw mut walk as *mut _, 0);
    }
    walk.have.then_some(walk.best)
}

extern "C" fn step(i: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: bpf_loop passes back the pointer given in `pick`.
    let w = unsafe { &mut *(ctx as *mut Walk) };
    let Some(d) = SCHED_LIST.get(w.list_off.wrapping_add(i as u32)).copied() else {
        return 1;
    };
    consider(w, &d);
    (w.done & 1) as i64
}

#[inline(always)]
fn take(w: &mut Walk, d: &SchedDest, cost: i64) {
    w.have = true;
    w.best = d.dest_id;
    w.best_cost = cost;
    w.best_weight = d.weight as i64;
}

#[inline(always)]
fn consider(w: &mut Walk, d: &SchedDest) {
    let c = conns(d.dest_id);
    if c.overloaded != 0 {
        return;
    }
    let weight = d.weight as i64;
    let method = PickMethod::from_u8(w.method);
    match method {
        PickMethod::LeastConn => {
            if d.weight == 0 {
                return;
            }
            let cost = c.overhead() as i64;
            if !w.have || cost < w.best_cost {
                take(w, d, cost);
            }
        }
        PickMethod::WeightedLeastConn | PickMethod::ShortestExpectedDelay => {
            let cost = if method == PickMethod::WeightedLeastConn {
                c.overhead() as i32 as i64
            } else {
                (c.active as i32).wrapping_add(1) as i64
            };
            if !w.have {
                if weight > 0 {
                    take(w, d, cost);
                }
            } else if w.best_cost * weight > cost * w.best_weight {
                take(w, d, cost);
            }
        }
        PickMethod::NeverQueue => {
            if d.weight == 0 {
                return;
            }
            let cost = (c.active as i32).wrapping_add(1) as i64;
            if c.active == 0 {
                take(w, d, cost);
                w.done = 1;
            } else if !w.have || w.best_cost * weight > cost * w.best_weight {
                take(w, d, cost);
            }
        }
        PickMethod::WeightedFailover => {
            let best = if w.have { w.best_weight } else { 0 };
            if weight > best {
                take(w, d, 0);
            }
        }
        PickMethod::WeightedOverflow => {
            if d.weight == 0 || c.active as i64 > weight {
                return;
            }
            if !w.have || weight > w.best_weight {
                take(w, d, 0);
            }
        }
        _ => {}
    }
}

struct HalfWalk {
    list_off: u32,
    found: u64,
}

/// lblc's test of whether the cluster has room: some server of the list has fewer active
/// connections than half its weight (`active * 2 < weight`).
#[inline(always)]
pub fn any_half_loaded(svc: &ServiceEntry) -> bool {
    let mut w = HalfWalk {
        list_off: svc.list_off,
        found: 0,
    };
    // SAFETY: the callback only touches `w` through the context pointer, for this call.
    unsafe { bpf_loop(svc.list_len, half_step as *mut _, &raw mut w as *mut _, 0) };
    w.found != 0
}

extern "C" fn half_step(i: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: bpf_loop passes back the pointer given in `any_half_loaded`.
    let w = unsafe { &mut *(ctx as *mut HalfWalk) };
    let Some(d) = SCHED_LIST.get(w.list_off.wrapping_add(i as u32)).copied() else {
        return 1;
    };
    let active = conns(d.dest_id).active as i32;
    if active.wrapping_mul(2) < d.weight {
        w.found = 1;
        return 1;
    }
    0
}
