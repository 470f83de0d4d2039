//! Atomic add on map memory. The BPF target does not offer core's atomic types' read-modify-write
//! methods, so this uses the intrinsic the types are built on, compiling to BPF_ATOMIC with
//! BPF_ADD | BPF_FETCH (needs -C target-cpu=v3, set by crates/rvs/build.rs).
//!
//! The ordering is SeqCst on purpose: with Relaxed, LLVM 22's BPF backend was seen to emit a
//! plain `lock +=` (no BPF_FETCH) and hand back the operand as the "old value", which made every
//! round-robin pick read the same slot. `llvm-objdump -d` shows `atomic_fetch_add` for SeqCst.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

/// Adds `delta` to `*dst` atomically and returns the previous value.
///
/// # Safety
/// `dst` must point to a live, 8-byte aligned u64 (a map value) for the duration of the call.
#[inline(always)]
pub unsafe fn fetch_add(dst: *mut u64, delta: u64) -> u64 {
    // SAFETY: forwarded from the caller.
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::SeqCst }>(dst, delta) }
}
