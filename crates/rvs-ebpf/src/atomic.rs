//! Atomic add on map memory. The BPF target does not offer core's atomic types' read-modify-write
//! methods, so this uses the intrinsic the types are built on; it compiles to BPF_ATOMIC_ADD
//! (with BPF_FETCH when the old value is used).

use core::intrinsics::{AtomicOrdering, atomic_xadd};

/// Adds `delta` to `*dst` atomically and returns the previous value.
///
/// # Safety
/// `dst` must point to a live, 8-byte aligned u64 (a map value) for the duration of the call.
#[inline(always)]
pub unsafe fn fetch_add(dst: *mut u64, delta: u64) -> u64 {
    // SAFETY: forwarded from the caller.
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(dst, delta) }
}
