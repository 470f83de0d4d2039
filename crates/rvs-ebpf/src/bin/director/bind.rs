//! Binding connections to real servers: the counters behind ActiveConn, InActConn and
//! PersistConn, and OVERLOAD set and cleared by the kernel's rule (ip_vs_bind_dest and
//! ip_vs_unbind_dest): set when the total reaches the upper threshold; cleared when it falls below
//! the lower one, or, without a lower one, below 3/4 of the upper one.

use rvs_common::dest::DestEntry;

use crate::maps::DEST_CONNS;

/// Which counter a connection is in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Active,
    Inactive,
    Template,
}

#[inline(always)]
fn add(dest_id: u32, slot: Slot, delta: u64) {
    let Some(p) = DEST_CONNS.get_ptr_mut(dest_id) else {
        return;
    };
    // SAFETY: array values are stable, aligned memory, changed only atomically (the control plane
    // maps this array and uses atomics too).
    unsafe {
        let field = match slot {
            Slot::Active => &raw mut (*p).active,
            Slot::Inactive => &raw mut (*p).inactive,
            Slot::Template => &raw mut (*p).persist,
        };
        rvs_ebpf::atomic::fetch_add(field, delta);
    }
}

/// Moves a connection from one counter to another (a state change).
#[inline(always)]
pub fn shift(dest_id: u32, from: Slot, to: Slot) {
    add(dest_id, from, u64::MAX);
    add(dest_id, to, 1);
}

/// A new connection (or template) of `dest`.
#[inline(always)]
pub fn bind(dest_id: u32, dest: &DestEntry, slot: Slot) {
    add(dest_id, slot, 1);
    if slot == Slot::Template || dest.u_threshold == 0 {
        return;
    }
    if let Some(p) = DEST_CONNS.get_ptr_mut(dest_id) {
        // SAFETY: as above; a plain store of the flag, racing only with the same rule.
        unsafe {
            let total = (*p).active.wrapping_add((*p).inactive);
            if total >= dest.u_threshold as u64 {
                (*p).overloaded = 1;
            }
        }
    }
}

/// A connection the data plane ends itself (a reused or expired-now flow).
#[inline(always)]
pub fn unbind(dest_id: u32, dest: &DestEntry, slot: Slot) {
    add(dest_id, slot, u64::MAX);
    if slot == Slot::Template {
        return;
    }
    if let Some(p) = DEST_CONNS.get_ptr_mut(dest_id) {
        // SAFETY: as above.
        unsafe {
            let total = (*p).active.wrapping_add((*p).inactive) as i64;
            let clear = if dest.l_threshold != 0 {
                total < dest.l_threshold as i64
            } else if dest.u_threshold != 0 {
                total * 4 < dest.u_threshold as i64 * 3
            } else {
                true
            };
            if clear {
                (*p).overloaded = 0;
            }
        }
    }
}
