//! dh (ip_vs_dh.c), destination hashing: 256 buckets given to the real servers one each in list
//! order, round and round (weights ignored); a flow's bucket is `hash_32(daddr, 8)`; an unusable
//! server gives none.

use std::net::IpAddr;

use super::{
    Plan,
    hash32::{fold, hash_32},
};
use crate::model::Dest;
use rvs_common::service::PickMethod;

pub const TAB_BITS: u32 = 8;
pub const TAB_SIZE: usize = 1 << TAB_BITS;

pub fn table(dests: &[Dest]) -> Vec<u32> {
    if dests.is_empty() {
        return Vec::new();
    }
    (0..TAB_SIZE).map(|i| dests[i % dests.len()].id).collect()
}

pub fn plan(dests: &[Dest]) -> Plan {
    Plan {
        pick: PickMethod::DestinationHash,
        slots: table(dests),
        start: 0,
    }
}

pub fn bucket(daddr: &IpAddr) -> usize {
    hash_32(fold(daddr), TAB_BITS) as usize
}
