//! Virtual services as the data plane sees them.

use crate::user_pod;

/// Key of the service map: (protocol, VIP, port) as in the packet. A fwmark service has
/// `proto == 0`, `port == 0` and the mark in `addr[0]` (host order).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ServiceKey {
    /// VIP, network byte order words (IPv4 in `addr[0]`).
    pub addr: [u32; 4],
    /// Virtual port, network byte order.
    pub port: u16,
    pub proto: u8,
    pub af: u8,
}

/// How the data plane picks a real server for a new flow: one value per IPVS scheduler rule.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PickMethod {
    /// No real server can be chosen: drop and count.
    None = 0,
    /// rr, wrr: `slot[(start + counter - base) % len]`, with a counter advanced atomically per
    /// new flow: the kernel's sequences, precomputed by the control plane.
    Sequence = 1,
    /// lc: least `active * 256 + inactive`.
    LeastConn = 2,
    /// wlc: least overhead / weight.
    WeightedLeastConn = 3,
    /// sed: least (active + 1) / weight.
    ShortestExpectedDelay = 4,
    /// nq: an idle server if any, else sed.
    NeverQueue = 5,
    /// fo: the highest weight.
    WeightedFailover = 6,
    /// ovf: the highest weight among those with active <= weight.
    WeightedOverflow = 7,
    /// twos: the less loaded of two random weighted choices.
    TwoRandomChoices = 8,
    /// sh: a 256-slot table indexed by a hash of the source address (and port).
    SourceHash = 9,
    /// dh: a 256-slot table indexed by a hash of the destination address.
    DestinationHash = 10,
    /// mh: a Maglev lookup table indexed by a hash of the source address (and port).
    Maglev = 11,
    /// lblc: the destination address's cached server, else wlc.
    Lblc = 12,
    /// lblcr: the least loaded of the destination address's cached set, else wlc.
    Lblcr = 13,
}

impl PickMethod {
    pub fn from_u8(v: u8) -> PickMethod {
        match v {
            1 => PickMethod::Sequence,
            2 => PickMethod::LeastConn,
            3 => PickMethod::WeightedLeastConn,
            4 => PickMethod::ShortestExpectedDelay,
            5 => PickMethod::NeverQueue,
            6 => PickMethod::WeightedFailover,
            7 => PickMethod::WeightedOverflow,
            8 => PickMethod::TwoRandomChoices,
            9 => PickMethod::SourceHash,
            10 => PickMethod::DestinationHash,
            11 => PickMethod::Maglev,
            12 => PickMethod::Lblc,
            13 => PickMethod::Lblcr,
            _ => PickMethod::None,
        }
    }
}

/// Service flags (`ServiceEntry::flags`), numbered as IPVS's IP_VS_SVC_F_*.
pub mod svc_flags {
    /// `-p`: persistent service.
    pub const PERSISTENT: u8 = 0x1;
    /// `-o`: one-packet scheduling.
    pub const ONE_PACKET: u8 = 0x4;
    /// Scheduler flag 1 (sh-fallback, mh-fallback).
    pub const SCHED1: u8 = 0x8;
    /// Scheduler flag 2 (sh-port, mh-port).
    pub const SCHED2: u8 = 0x10;
    /// Scheduler flag 3.
    pub const SCHED3: u8 = 0x20;
    /// The service's port is 0: it takes every port of its VIP (rvs's own bit; IPVS's HASHED bit
    /// 0x2 has no meaning in the data plane).
    pub const PORT_ZERO: u8 = 0x2;
    /// A fwmark service (rvs's own bit): its mark is in `ServiceEntry::fwmark`.
    pub const FWMARK: u8 = 0x40;
    /// rvs's own bit: a TCP packet without SYN of an unknown flow is scheduled, not passed to
    /// the kernel (IPVS's sloppy_tcp, per service): behind ECMP it belongs to a flow another
    /// director opened.
    pub const SLOPPY_TCP: u8 = 0x80;
}

/// Value of the service map. Replaced as a whole by the control plane (hash map updates are atomic
/// for readers), so a packet sees either the old or the new table, never a mix.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceEntry {
    /// Index into the per-service arrays (stats, scheduler counters).
    pub id: u32,
    /// `PickMethod` as u8.
    pub pick: u8,
    /// `svc_flags`.
    pub flags: u8,
    /// Persistence granularity for IPv6: prefix length (0-128).
    pub prefix6: u8,
    pub _pad0: u8,
    /// Generation of the slot table in `SCHED_SLOTS` this entry refers to.
    pub table_gen: u32,
    /// Number of slots in the table (0: no real server available).
    pub table_len: u32,
    /// Slot that the counter value `counter_base` maps to.
    pub table_start: u32,
    /// The service's real servers in list order: `SCHED_LIST[list_off .. list_off + list_len]`.
    pub list_off: u32,
    pub list_len: u32,
    /// Persistence timeout in seconds (with `svc_flags::PERSISTENT`).
    pub persist_timeout: u32,
    /// Persistence granularity for IPv4: the mask, network byte order.
    pub netmask4: u32,
    /// The mark of a fwmark service (`svc_flags::FWMARK`), else 0.
    pub fwmark: u32,
    /// Value of the scheduler counter when this table was installed.
    pub counter_base: u64,
}

/// Key of one slot of a scheduler table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SlotKey {
    pub svc_id: u32,
    pub gen_: u32,
    pub index: u32,
}

/// Scheduler position of one service (array value, advanced with an atomic fetch-add).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedCounter {
    pub next: u64,
}

/// One real server in a service's list, as the scanning schedulers read it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedDest {
    pub dest_id: u32,
    pub weight: i32,
}

user_pod!(ServiceKey, ServiceEntry, SlotKey, SchedCounter, SchedDest);

/// The slot a counter value selects: the counter has advanced `counter - base` times since the
/// table was installed at `start`. Shared by the data plane and the control plane's model of it.
/// An empty table gives slot 0 (callers check the length; this stays free of panics, which
/// the BPF verifier would reject).
#[inline(always)]
pub fn sequence_slot(counter: u64, base: u64, start: u32, len: u32) -> u32 {
    let len = len as u64;
    let steps = counter.wrapping_sub(base);
    let Some(offset) = steps.checked_rem(len) else {
        return 0;
    };
    ((start as u64 + offset).checked_rem(len).unwrap_or(0)) as u32
}
