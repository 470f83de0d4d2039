//! Per-CPU counters: traffic per service and dest, and data-plane events.

use rvs_common::stats::Counter;

use crate::maps::{COUNTERS, DEST_STATS, SVC_STATS};

#[inline(always)]
pub fn count(c: Counter) {
    if let Some(p) = COUNTERS.get_ptr_mut(c as u32) {
        // SAFETY: per-CPU slot, no other writer on this CPU while the program runs.
        unsafe { *p += 1 };
    }
}

/// One packet of `bytes` (IP length) from a client, for the service and the dest.
#[inline(always)]
pub fn account_in(svc_id: u32, dest_id: u32, bytes: u64) {
    if let Some(s) = SVC_STATS.get_ptr_mut(svc_id) {
        // SAFETY: per-CPU slot.
        unsafe {
            (*s).inpkts += 1;
            (*s).inbytes += bytes;
        }
    }
    if let Some(s) = DEST_STATS.get_ptr_mut(dest_id) {
        // SAFETY: per-CPU slot.
        unsafe {
            (*s).inpkts += 1;
            (*s).inbytes += bytes;
        }
    }
}

/// One packet of `bytes` from a real server to a client (NAT replies).
#[inline(always)]
pub fn account_out(svc_id: u32, dest_id: u32, bytes: u64) {
    if let Some(s) = SVC_STATS.get_ptr_mut(svc_id) {
        // SAFETY: per-CPU slot.
        unsafe {
            (*s).outpkts += 1;
            (*s).outbytes += bytes;
        }
    }
    if let Some(s) = DEST_STATS.get_ptr_mut(dest_id) {
        // SAFETY: per-CPU slot.
        unsafe {
            (*s).outpkts += 1;
            (*s).outbytes += bytes;
        }
    }
}

/// A new connection scheduled to `dest_id`.
#[inline(always)]
pub fn account_conn(svc_id: u32, dest_id: u32) {
    if let Some(s) = SVC_STATS.get_ptr_mut(svc_id) {
        // SAFETY: per-CPU slot.
        unsafe { (*s).conns += 1 };
    }
    if let Some(s) = DEST_STATS.get_ptr_mut(dest_id) {
        // SAFETY: per-CPU slot.
        unsafe { (*s).conns += 1 };
    }
}
