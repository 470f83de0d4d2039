//! The director's maps. Names come from rvs_common::maps so the control plane can pin and open
//! them; sizes here are defaults that rvsd may override at load time.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray},
};
use rvs_common::{
    conn::{Conn, ConnKey},
    dest::{DestConns, DestEntry},
    maps::{BPF_F_NO_PREALLOC, DEFAULT_CONN_TABLE_SIZE, MAX_DESTS, MAX_SCHED_SLOTS, MAX_SERVICES},
    service::{SchedCounter, ServiceEntry, ServiceKey, SlotKey},
    stats::{COUNTER_COUNT, Stats},
};

#[map(name = "RVS_SERVICES")]
pub static SERVICES: HashMap<ServiceKey, ServiceEntry> = HashMap::with_max_entries(MAX_SERVICES, 0);

#[map(name = "RVS_DESTS")]
pub static DESTS: Array<DestEntry> = Array::with_max_entries(MAX_DESTS, 0);

#[map(name = "RVS_DEST_CONNS")]
pub static DEST_CONNS: Array<DestConns> = Array::with_max_entries(MAX_DESTS, 0);

#[map(name = "RVS_DEST_EXPIRED")]
pub static DEST_EXPIRED: Array<DestConns> = Array::with_max_entries(MAX_DESTS, 0);

#[map(name = "RVS_SCHED_SLOTS")]
pub static SCHED_SLOTS: HashMap<SlotKey, u32> =
    HashMap::with_max_entries(MAX_SCHED_SLOTS, BPF_F_NO_PREALLOC);

#[map(name = "RVS_SCHED_COUNTERS")]
pub static SCHED_COUNTERS: Array<SchedCounter> = Array::with_max_entries(MAX_SERVICES, 0);

#[map(name = "RVS_CONNS")]
pub static CONNS: LruHashMap<ConnKey, Conn> =
    LruHashMap::with_max_entries(DEFAULT_CONN_TABLE_SIZE, 0);

#[map(name = "RVS_SVC_STATS")]
pub static SVC_STATS: PerCpuArray<Stats> = PerCpuArray::with_max_entries(MAX_SERVICES, 0);

#[map(name = "RVS_DEST_STATS")]
pub static DEST_STATS: PerCpuArray<Stats> = PerCpuArray::with_max_entries(MAX_DESTS, 0);

#[map(name = "RVS_COUNTERS")]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_COUNT, 0);

/// A copy of the service entry for `key`, if it is a service.
#[inline(always)]
pub fn service(key: &ServiceKey) -> Option<ServiceEntry> {
    // SAFETY: the value is copied out at once; the control plane replaces entries whole.
    unsafe { SERVICES.get(key).copied() }
}

/// A copy of the dest entry `id`.
#[inline(always)]
pub fn dest(id: u32) -> Option<DestEntry> {
    DESTS.get(id).copied()
}
