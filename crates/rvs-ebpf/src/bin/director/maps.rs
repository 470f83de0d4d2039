//! The director's maps. Names come from rvs_common::maps so the control plane can pin and open
//! them; sizes here are defaults that rvsd may override at load time.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, ProgramArray, RingBuf},
};
use rvs_common::{
    conn::{Conn, ConnKey},
    dest::{DestConns, DestEntry},
    maps::{
        AdmitBucket, BPF_F_MMAPABLE, BPF_F_NO_PREALLOC, Config, DEFAULT_CONN_TABLE_SIZE,
        LBLC_CACHE_SIZE, LblcEntry, LblcrEntry, LocalityKey, MAX_DESTS, MAX_SCHED_SLOTS,
        MAX_SERVICES, SCHED_LIST_SIZE, SYNC_RING_SIZE,
    },
    mark::{MAX_PREFIXES, MarkPrefix, MarkRules},
    programs,
    service::{SchedCounter, SchedDest, ServiceEntry, ServiceKey, SlotKey},
    stats::{COUNTER_SLOTS, Stats},
};

use crate::schedule::Scratch;

#[map(name = "RVS_SERVICES")]
pub static SERVICES: HashMap<ServiceKey, ServiceEntry> = HashMap::with_max_entries(MAX_SERVICES, 0);

#[map(name = "RVS_DESTS")]
pub static DESTS: Array<DestEntry> = Array::with_max_entries(MAX_DESTS, 0);

#[map(name = "RVS_DEST_CONNS")]
pub static DEST_CONNS: Array<DestConns> = Array::with_max_entries(MAX_DESTS, BPF_F_MMAPABLE);

#[map(name = "RVS_SCHED_SLOTS")]
pub static SCHED_SLOTS: HashMap<SlotKey, u32> =
    HashMap::with_max_entries(MAX_SCHED_SLOTS, BPF_F_NO_PREALLOC);

#[map(name = "RVS_SCHED_COUNTERS")]
pub static SCHED_COUNTERS: Array<SchedCounter> = Array::with_max_entries(MAX_SERVICES, 0);

#[map(name = "RVS_SCHED_LIST")]
pub static SCHED_LIST: Array<SchedDest> = Array::with_max_entries(SCHED_LIST_SIZE, 0);

// Plain (not LRU) hash tables: a flow leaves only by expiry or by the data plane's own decision,
// never by a silent eviction that would break it and leave its server's counters wrong. When a
// table is full, new flows are refused and counted (drop_conn_insert).
#[map(name = "RVS_CONNS")]
pub static CONNS: HashMap<ConnKey, Conn> = HashMap::with_max_entries(DEFAULT_CONN_TABLE_SIZE, 0);

#[map(name = "RVS_CONNS_NEW")]
pub static CONNS_NEW: HashMap<ConnKey, Conn> =
    HashMap::with_max_entries(DEFAULT_CONN_TABLE_SIZE / 4, 0);

#[map(name = "RVS_NAT_REPLIES")]
pub static NAT_REPLIES: HashMap<ConnKey, ConnKey> =
    HashMap::with_max_entries(DEFAULT_CONN_TABLE_SIZE, 0);

#[map(name = "RVS_MARK_RULES")]
pub static MARK_RULES: LpmTrie<MarkPrefix, MarkRules> = LpmTrie::with_max_entries(MAX_PREFIXES, 0);

#[map(name = "RVS_SVC_STATS")]
pub static SVC_STATS: PerCpuArray<Stats> = PerCpuArray::with_max_entries(MAX_SERVICES, 0);

#[map(name = "RVS_DEST_STATS")]
pub static DEST_STATS: PerCpuArray<Stats> = PerCpuArray::with_max_entries(MAX_DESTS, 0);

#[map(name = "RVS_COUNTERS")]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

#[map(name = "RVS_LBLC")]
pub static LBLC: LruHashMap<LocalityKey, LblcEntry> =
    LruHashMap::with_max_entries(LBLC_CACHE_SIZE, 0);

#[map(name = "RVS_LBLCR")]
pub static LBLCR: LruHashMap<LocalityKey, LblcrEntry> =
    LruHashMap::with_max_entries(LBLC_CACHE_SIZE, 0);

#[map(name = "RVS_PROGS")]
pub static PROGS: ProgramArray = ProgramArray::with_max_entries(programs::COUNT, 0);

#[map(name = "RVS_SCRATCH")]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "RVS_CONFIG")]
pub static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

#[map(name = "RVS_ADMIT")]
pub static ADMIT: PerCpuArray<AdmitBucket> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "RVS_SYNC_RING")]
pub static SYNC_RING: RingBuf = RingBuf::with_byte_size(SYNC_RING_SIZE, 0);

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

/// The global settings.
#[inline(always)]
pub fn config() -> Config {
    CONFIG.get(0).copied().unwrap_or_default()
}

/// The global settings' flags (`config_flags::*`), read in place.
#[inline(always)]
pub fn config_flags() -> u32 {
    CONFIG.get(0).map_or(0, |c| c.flags)
}

/// The global settings, in place (no copy on the stack).
#[inline(always)]
pub fn config_ref() -> Option<&'static Config> {
    CONFIG.get(0)
}
