//! Names and default sizes of the maps of the director program. The control plane pins them under
//! its pin directory by these names, so a restarted rvsd finds the same connections and counters.

use crate::user_pod;

/// Services: `ServiceKey` -> `ServiceEntry` (hash).
pub const SERVICES: &str = "RVS_SERVICES";
/// Real servers: dest id -> `DestEntry` (array).
pub const DESTS: &str = "RVS_DESTS";
/// Connection counters and OVERLOAD per dest id (array, memory-mapped by the control plane so
/// both sides use atomic adds on the same counters).
pub const DEST_CONNS: &str = "RVS_DEST_CONNS";
/// Scheduler slot tables: `SlotKey` -> dest id (hash, allocated on use).
pub const SCHED_SLOTS: &str = "RVS_SCHED_SLOTS";
/// Scheduler position per service id: one u64 counter advanced atomically per new flow (array).
pub const SCHED_COUNTERS: &str = "RVS_SCHED_COUNTERS";
/// Real-server lists of all services, each a range `[list_off, list_off + list_len)` (array).
pub const SCHED_LIST: &str = "RVS_SCHED_LIST";
/// Established and UDP connections: `ConnKey` -> `Conn` (hash; size set by rvsd).
pub const CONNS: &str = "RVS_CONNS";
/// Embryonic TCP connections (SYN seen, not yet ESTABLISHED), apart from the established ones so
/// that a SYN flood fills only this table (hash; a quarter of the connection table).
pub const CONNS_NEW: &str = "RVS_CONNS_NEW";
/// NAT replies: the reply's key (real server address and port as `caddr`/`cport`, the client's as
/// `vaddr`/`vport`, kind `KIND_REPLY`) -> the flow's `ConnKey` (hash, as large as `CONNS`).
pub const NAT_REPLIES: &str = "RVS_NAT_REPLIES";
/// Classification rules for fwmark services: `MarkPrefix` -> `MarkRules` (LPM trie).
pub const MARK_RULES: &str = "RVS_MARK_RULES";
/// Per-CPU traffic counters per service id.
pub const SVC_STATS: &str = "RVS_SVC_STATS";
/// Per-CPU traffic counters per dest id.
pub const DEST_STATS: &str = "RVS_DEST_STATS";
/// Per-CPU data-plane event counters (drops, passes), indexed by `stats::Counter`.
pub const COUNTERS: &str = "RVS_COUNTERS";
/// Global settings (array of one `Config`).
pub const CONFIG: &str = "RVS_CONFIG";
/// Per-CPU new-flow admission bucket (array of one `AdmitBucket`).
pub const ADMIT: &str = "RVS_ADMIT";
/// Flows to sync to the other directors: `sync::SyncEvent` records (BPF ring buffer).
pub const SYNC_RING: &str = "RVS_SYNC_RING";
/// Bytes of the sync ring buffer (a power-of-two number of pages): about 14,000 events, so
/// rvsd can fall behind by a fraction of a second at a high rate of new connections.
pub const SYNC_RING_SIZE: u32 = 1 << 20;
/// Unread bytes of the sync ring past which a report wakes rvsd (an eighth of the ring, some
/// 1,600 events). Below it, reports go without a wakeup and rvsd finds them at its next look,
/// every [`SYNC_FEED_POLL_MS`]. With a wakeup for every report (a known flow is reported
/// every 50th packet), a benchmark run put the director's known-flow rate with sync on at 0.68
/// of the rate with it off; after this change 0.81-0.90 in the same kind of run (rvs-bench's
/// `sync` part, on a shared 2-core machine).
pub const SYNC_RING_WAKE_AT: u64 = SYNC_RING_SIZE as u64 / 8;
/// How often rvsd reads the sync ring when no wakeup came, in milliseconds.
pub const SYNC_FEED_POLL_MS: u64 = 5;

/// lblc's cache: (service, destination address) -> server (LRU hash).
pub const LBLC: &str = "RVS_LBLC";
/// lblcr's cache: (service, destination address) -> set of servers (LRU hash).
pub const LBLCR: &str = "RVS_LBLCR";
/// Capacity of each locality cache (all services together).
pub const LBLC_CACHE_SIZE: u32 = 1 << 16;
/// Most servers an lblcr set holds (the kernel's sets are unbounded; rvs keeps the most recent).
pub const LBLCR_SET_MAX: usize = 8;

/// Capacity of the service map and of the per-service arrays.
pub const MAX_SERVICES: u32 = 4096;
/// Capacity of the dest arrays (live real servers plus deleted ones still referenced by flows).
pub const MAX_DESTS: u32 = 16384;
/// Capacity of the real-server list array: every service's list twice over (old and new).
pub const SCHED_LIST_SIZE: u32 = 2 * MAX_DESTS;
/// Longest list a scanning scheduler walks.
pub const MAX_LIST_LEN: u32 = MAX_DESTS;
/// Capacity of the slot map (entries exist only where used: BPF_F_NO_PREALLOC).
pub const MAX_SCHED_SLOTS: u32 = 1 << 22;
/// Default connection table size; `rvsd --conn-table-size` changes it.
pub const DEFAULT_CONN_TABLE_SIZE: u32 = 1 << 20;
/// BPF_F_NO_PREALLOC, for maps whose entries are allocated when inserted.
pub const BPF_F_NO_PREALLOC: u32 = 1;
/// BPF_F_MMAPABLE, for arrays the control plane maps into its memory.
pub const BPF_F_MMAPABLE: u32 = 0x400;

/// The embryonic table's size for a connection table of `conns` entries.
pub fn conns_new_size(conns: u32) -> u32 {
    (conns / 4).max(1024)
}

/// Global settings of the data plane.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// `config_flags::*`.
    pub flags: u32,
    /// New flows admitted per second per CPU; 0 admits all.
    pub new_flow_rate: u32,
    /// lblcr drops the most loaded server of a set unchanged this long (lblcr_expiration), ns.
    pub lblcr_expiration_ns: u64,
    /// IPVS sync_threshold: a flow is reported when its packet count reaches this (modulo
    /// `sync_period`). Read only with `config_flags::SYNC_ACTIVE`.
    pub sync_threshold: u32,
    /// IPVS sync_period: reported again every this many packets; 0 reports once.
    pub sync_period: u32,
    /// With `config_flags::ACCEPT_TUNNELLED`: GUE on this UDP port (network byte order) is
    /// decapsulated too; 0: IPIP only.
    pub accept_gue_port: u16,
    pub _pad0: [u8; 6],
}

/// Key of the lblc and lblcr caches.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LocalityKey {
    pub svc_id: u32,
    /// Destination address, network byte order words.
    pub addr: [u32; 4],
}

/// An lblc cache entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LblcEntry {
    pub dest_id: u32,
    pub _pad0: u32,
    pub lastuse_ns: u64,
}

/// An lblcr cache entry: a set of servers, newest first.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LblcrEntry {
    pub members: [u32; LBLCR_SET_MAX],
    pub size: u32,
    pub _pad0: u32,
    pub lastuse_ns: u64,
    pub lastmod_ns: u64,
}

/// The director program's global holding the MAC address of each interface it is attached to
/// (set when it is loaded): a unicast frame for another host's MAC is not the director's (the
/// kernel drops it as PACKET_OTHERHOST), even when a bridge or switch floods it to this port.
pub const IFACE_MACS: &str = "RVS_IFACE_MACS";
/// Interfaces whose MAC the director checks (beyond them, frames are not checked).
pub const MAX_IFACES: usize = 16;

/// One interface of [`IFACE_MACS`]; `ifindex` 0 ends the list.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfaceMac {
    pub ifindex: u32,
    pub mac: [u8; 6],
    pub _pad0: [u8; 2],
}

impl IfaceMac {
    pub const NONE: IfaceMac = IfaceMac {
        ifindex: 0,
        mac: [0; 6],
        _pad0: [0; 2],
    };
}

/// Settings in `Config::flags`.
pub mod config_flags {
    /// A packet of a flow whose real server was deleted ends the flow (and a SYN is scheduled
    /// again) instead of being forwarded to the draining server (IPVS expire_nodest_conn=1).
    pub const EXPIRE_NODEST_CONN: u32 = 1;
    /// A persistence template whose real server has weight 0 is not honoured (IPVS
    /// expire_quiescent_template=1); by default it is, as in the kernel.
    pub const EXPIRE_QUIESCENT_TEMPLATE: u32 = 2;
    /// Some real server is reached by NAT: look replies up (a hash lookup for traffic that is not
    /// for a service, skipped when no service uses NAT).
    pub const NAT_ACTIVE: u32 = 4;
    /// Some fwmark service and mark rule exist: classify packets (an LPM lookup, skipped when
    /// there is nothing to classify for).
    pub const MARKS_ACTIVE: u32 = 8;
    /// Connection sync is on: report flows to sync in the `SYNC_RING` ring buffer (by IPVS's
    /// rule, with `Config::sync_threshold` / `sync_period`). Off, the data plane tests only this.
    pub const SYNC_ACTIVE: u32 = 16;
    /// With `sync_period` 0, report a flow at every packet, not once at the threshold: rvsd's
    /// `sync_refresh_period` then decides by time (IPVS with sync_period 0 and a refresh
    /// period set).
    pub const SYNC_BY_TIME: u32 = 32;
    /// Tunnelled packets (IPIP, IPv6-in-IPv6, and GUE on `Config::accept_gue_port`) whose
    /// inner destination is a service are decapsulated and handled as if they had arrived
    /// directly (another director forwarding by TUN to this one). Off, they pass to the kernel.
    pub const ACCEPT_TUNNELLED: u32 = 64;
    /// Every TCP service is sloppy (`rvsd --sloppy-tcp`, IPVS's sloppy_tcp=1): see
    /// `svc_flags::SLOPPY_TCP`.
    pub const SLOPPY_TCP: u32 = 128;
}

/// Token bucket for new-flow admission, per CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdmitBucket {
    /// Tokens left, scaled by 2^16 for sub-token refills.
    pub tokens: u64,
    pub last_ns: u64,
}

user_pod!(
    Config,
    AdmitBucket,
    LocalityKey,
    LblcEntry,
    LblcrEntry,
    IfaceMac
);
