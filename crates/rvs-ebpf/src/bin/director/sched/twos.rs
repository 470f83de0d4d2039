//! twos (ip_vs_twos.c): draw two real servers at random in proportion to their weights and take
//! the less loaded one (overhead/weight, cross-multiplied).

use aya_ebpf::helpers::{bpf_get_prandom_u32, bpf_loop};
use rvs_common::service::ServiceEntry;

use super::{Flow, conns};
use crate::maps::SCHED_LIST;

struct Walk {
    list_off: u32,
    total: i32,
    any: bool,
    r1: i32,
    r2: i32,
    c1: u32,
    w1: i32,
    oh1: i32,
    c2: u32,
    w2: i32,
    oh2: i32,
}

#[inline(always)]
pub fn pick(svc: &ServiceEntry, _flow: &Flow) -> Option<u32> {
    let mut w = Walk {
        list_off: svc.list_off,
        total: 0,
        any: false,
        r1: 0,
        r2: 0,
        c1: 0,
        w1: -1,
        oh1: 0,
        c2: 0,
        w2: -1,
        oh2: 0,
    };
    // SAFETY: the callbacks only touch `w` through the context pointer, for these calls.
    unsafe { bpf_loop(svc.list_len, sum_step as *mut _, &raw mut w as *mut _, 0) };
    if !w.any || w.total <= 0 {
        return None;
    }
    // One more so that the draws run from 0 to the total weight inclusive, as the kernel does.
    let total = (w.total + 1) as u32;
    // SAFETY: plain helper calls.
    w.r1 = unsafe { bpf_get_prandom_u32() }
        .checked_rem(total)
        .unwrap_or(0) as i32;
    w.r2 = unsafe { bpf_get_prandom_u32() }
        .checked_rem(total)
        .unwrap_or(0) as i32;
    unsafe { bpf_loop(svc.list_len, choose_step as *mut _, &raw mut w as *mut _, 0) };
    if w.w1 == -1 {
        return None;
    }
    // Plain int products, as the kernel compares them.
    if w.w2 != -1 && w.w2.wrapping_mul(w.oh1) > w.w1.wrapping_mul(w.oh2) {
        return Some(w.c2);
    }
    Some(w.c1)
}

extern "C" fn sum_step(i: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: bpf_loop passes back the pointer given in `pick`.
    let w = unsafe { &mut *(ctx as *mut Walk) };
    let Some(d) = SCHED_LIST.get(w.list_off.wrapping_add(i as u32)).copied() else {
        return 1;
    };
    if conns(d.dest_id).overloaded == 0 && d.weight > 0 {
        w.total = w.total.wrapping_add(d.weight);
        w.any = true;
    }
    0
}

extern "C" fn choose_step(i: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: bpf_loop passes back the pointer given in `pick`.
    let w = unsafe { &mut *(ctx as *mut Walk) };
    let Some(d) = SCHED_LIST.get(w.list_off.wrapping_add(i as u32)).copied() else {
        return 1;
    };
    let c = conns(d.dest_id);
    if c.overloaded != 0 || d.weight <= 0 {
        return 0;
    }
    w.r1 -= d.weight;
    w.r2 -= d.weight;
    if w.r1 <= 0 && w.w1 == -1 {
        w.c1 = d.dest_id;
        w.w1 = d.weight;
        w.oh1 = c.overhead() as i32;
    }
    if w.r2 <= 0 && w.w2 == -1 {
        w.c2 = d.dest_id;
        w.w2 = d.weight;
        w.oh2 = c.overhead() as i32;
    }
    if w.w1 != -1 && w.w2 != -1 { 1 } else { 0 }
}
