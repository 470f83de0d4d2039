//! New-flow admission: a token bucket per CPU (Katran's new-connection limit). Above the
//! configured rate, new flows are dropped and counted; flows already in the table are untouched.

use aya_ebpf::helpers::bpf_ktime_get_ns;

use crate::maps::{ADMIT, config};

/// Token scale: tokens are counted in 1/65536ths so slow refills are not lost to rounding.
const SCALE: u64 = 1 << 16;

/// Whether a new flow may be recorded now.
#[inline(always)]
pub fn admit() -> bool {
    let rate = config().new_flow_rate as u64;
    if rate == 0 {
        return true;
    }
    let Some(b) = ADMIT.get_ptr_mut(0) else {
        return true;
    };
    // SAFETY: per-CPU value, no other writer on this CPU while the program runs.
    let b = unsafe { &mut *b };
    // SAFETY: plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    // One second's worth of tokens at most (the burst).
    let cap = rate * SCALE;
    let elapsed = now.saturating_sub(b.last_ns).min(1_000_000_000);
    b.tokens = (b.tokens + elapsed * rate * SCALE / 1_000_000_000).min(cap);
    b.last_ns = now;
    if b.tokens < SCALE {
        return false;
    }
    b.tokens -= SCALE;
    true
}
