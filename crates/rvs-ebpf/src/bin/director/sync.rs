//! Reporting flows to sync: when sync is on, a packet that makes a flow due by IPVS's rule
//! (`rvs_common::sync::due`) puts the flow into the sync ring buffer for rvsd to send. Off, the
//! cost is one test of a flag in the settings.

use rvs_common::{
    conn::{Conn, ConnKey},
    maps::config_flags,
    stats::Counter,
    sync::{SyncEvent, due},
};

use crate::{
    counters,
    maps::{SYNC_RING, config_ref},
};

/// Reports flow `key` (`c` as it is after this packet; `changed`: this packet changed its
/// state) if sync is on and the flow is due. A full ring drops the report and counts it.
#[inline(always)]
pub fn offer(key: &ConnKey, c: &Conn, changed: bool) {
    let Some(cfg) = config_ref() else { return };
    if cfg.flags & config_flags::SYNC_ACTIVE == 0 {
        return;
    }
    let Some(reason) = due(
        key.proto,
        c.state,
        changed,
        c.in_pkts,
        cfg.sync_threshold,
        cfg.sync_period,
        cfg.flags & config_flags::SYNC_BY_TIME != 0,
    ) else {
        return;
    };
    // Reserved in the ring and filled in place: the event never sits on the BPF stack.
    match SYNC_RING.reserve::<SyncEvent>(0) {
        Some(mut e) => {
            let p = e.as_mut_ptr();
            // SAFETY: `p` points at a reserved, writable SyncEvent in the ring.
            unsafe {
                (&raw mut (*p).key).write(*key);
                (&raw mut (*p).conn).write(*c);
                (&raw mut (*p).reason).write(reason);
                (&raw mut (*p)._pad0).write([0; 7]);
            }
            e.submit(0);
        }
        None => counters::count(Counter::SyncRingFull),
    }
}
