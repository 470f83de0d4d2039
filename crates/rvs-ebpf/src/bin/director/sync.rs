//! Reporting flows to sync: when sync is on, a packet that makes a flow due by IPVS's rule
//! (`rvs_common::sync::due`) puts the flow into the sync ring buffer for rvsd to send. Off, the
//! cost is one test of a flag in the settings.

use aya_ebpf::bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP};
use rvs_common::{
    conn::{Conn, ConnKey},
    maps::{SYNC_RING_WAKE_AT, config_flags},
    stats::Counter,
    sync::{SyncEvent, due},
};

use crate::{
    counters,
    maps::{SYNC_RING, config_ref},
};

/// Reports flow `key` (`c` as it is after this packet; `changed`: this packet changed its
/// state) if sync is on and the flow is due. A full ring drops the report and counts it.
/// rvsd is woken only once the ring holds [`SYNC_RING_WAKE_AT`] bytes; it reads the ring every
/// few milliseconds anyway, well within the 50 ms a sync datagram waits to fill.
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
            let wake = if SYNC_RING.query(BPF_RB_AVAIL_DATA as u64) >= SYNC_RING_WAKE_AT {
                BPF_RB_FORCE_WAKEUP
            } else {
                BPF_RB_NO_WAKEUP
            };
            e.submit(wake as u64);
        }
        None => counters::count(Counter::SyncRingFull),
    }
}
