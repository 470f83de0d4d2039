//! Virtual services as the data plane sees them.

use crate::user_pod;

/// Key of the service map: (protocol, VIP, port) as in the packet. A fwmark service would use
/// `proto == 0` and the mark in `addr[0]`.
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

/// How the data plane picks a real server for a new flow.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PickMethod {
    /// No real server can be chosen: drop and count.
    None = 0,
    /// `slot[(start + counter - base) % len]`, with a counter advanced atomically per new flow:
    /// the kernel's rr and wrr sequences, precomputed by the control plane.
    Sequence = 1,
}

/// Service flags (`ServiceEntry::flags`).
pub mod svc_flags {
    /// `-p`: persistent service.
    pub const PERSISTENT: u8 = 1;
    /// `-o`: one-packet scheduling.
    pub const ONE_PACKET: u8 = 4;
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
    pub _pad0: u16,
    /// Generation of the slot table in `SCHED_SLOTS` this entry refers to.
    pub table_gen: u32,
    /// Number of slots in the table (0: no real server available).
    pub table_len: u32,
    /// Slot that the counter value `counter_base` maps to.
    pub table_start: u32,
    pub _pad1: u32,
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

user_pod!(ServiceKey, ServiceEntry, SlotKey, SchedCounter);

/// The slot a counter value selects: the counter has advanced `counter - base` times since the
/// table was installed at `start`. Shared by the data plane and the control plane's model of it.
#[inline(always)]
pub fn sequence_slot(counter: u64, base: u64, start: u32, len: u32) -> u32 {
    let steps = counter.wrapping_sub(base);
    ((start as u64 + steps % len as u64) % len as u64) as u32
}
