//! Picking a real server for a new flow, one module per family of IPVS rules. The control plane
//! lays out what can be precomputed (sequences, hash tables, the real-server list); this side
//! follows it and reads the live connection counts.

pub mod hash;
pub mod locality;
pub mod scan;
pub mod sequence;
pub mod twos;

use rvs_common::dest::DestConns;

use crate::maps::DEST_CONNS;

/// What a scheduler may look at in a packet.
#[derive(Clone, Copy)]
pub struct Flow {
    pub saddr: [u32; 4],
    pub daddr: [u32; 4],
    /// Network byte order.
    pub sport: u16,
    /// Network byte order.
    pub dport: u16,
    pub proto: u8,
    pub af: u8,
}

/// A dest id returned by a BPF subprogram as u64 (u64::MAX: none).
#[inline(always)]
pub fn id(v: u64) -> Option<u32> {
    (v <= u32::MAX as u64).then_some(v as u32)
}

#[inline(always)]
pub fn now() -> u64 {
    // SAFETY: plain helper call.
    unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() }
}

/// The live counters of a dest (zeros if the id is out of range).
#[inline(always)]
pub fn conns(dest_id: u32) -> DestConns {
    DEST_CONNS.get(dest_id).copied().unwrap_or_default()
}

/// IP_VS_DEST_F_OVERLOAD.
#[inline(always)]
pub fn overloaded(dest_id: u32) -> bool {
    DEST_CONNS.get(dest_id).is_some_and(|c| c.overloaded != 0)
}
