//! Names and default sizes of the maps of the director program. The control plane pins them under
//! its pin directory by these names, so a restarted rvsd finds the same connections and counters.

/// Services: `ServiceKey` -> `ServiceEntry` (hash).
pub const SERVICES: &str = "RVS_SERVICES";
/// Real servers: dest id -> `DestEntry` (array).
pub const DESTS: &str = "RVS_DESTS";
/// Active/inactive connection counters per dest id, as the data plane counts them: created and
/// moved between active and inactive (array, updated atomically; only the data plane writes it).
pub const DEST_CONNS: &str = "RVS_DEST_CONNS";
/// Connections the control plane expired per dest id, by the state they were in (only the control
/// plane writes it). A dest's live count is DEST_CONNS minus DEST_EXPIRED: two writers never share
/// a counter, so neither needs the other's atomicity.
pub const DEST_EXPIRED: &str = "RVS_DEST_EXPIRED";
/// Scheduler slot tables: `SlotKey` -> dest id (hash, allocated on use).
pub const SCHED_SLOTS: &str = "RVS_SCHED_SLOTS";
/// Scheduler position per service id: one u64 counter advanced atomically per new flow (array).
pub const SCHED_COUNTERS: &str = "RVS_SCHED_COUNTERS";
/// Connection table: `ConnKey` -> `Conn` (LRU hash; size set by rvsd).
pub const CONNS: &str = "RVS_CONNS";
/// Per-CPU traffic counters per service id.
pub const SVC_STATS: &str = "RVS_SVC_STATS";
/// Per-CPU traffic counters per dest id.
pub const DEST_STATS: &str = "RVS_DEST_STATS";
/// Per-CPU data-plane event counters (drops, passes), indexed by `stats::Counter`.
pub const COUNTERS: &str = "RVS_COUNTERS";

/// Capacity of the service map and of the per-service arrays.
pub const MAX_SERVICES: u32 = 4096;
/// Capacity of the dest arrays (live real servers plus deleted ones still referenced by flows).
pub const MAX_DESTS: u32 = 16384;
/// Capacity of the slot map (entries exist only where used: BPF_F_NO_PREALLOC).
pub const MAX_SCHED_SLOTS: u32 = 1 << 22;
/// Default connection table size; `rvsd --conn-table-size` changes it.
pub const DEFAULT_CONN_TABLE_SIZE: u32 = 1 << 20;
/// BPF_F_NO_PREALLOC, for maps whose entries are allocated when inserted.
pub const BPF_F_NO_PREALLOC: u32 = 1;
