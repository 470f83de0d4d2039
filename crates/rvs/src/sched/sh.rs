//! sh (ip_vs_sh.c), source hashing: 256 buckets filled from the list in order, each real server
//! taking `max(weight, 1)` consecutive buckets, round and round until the table is full (so with
//! weights summing past 256 the later servers get none). A client's bucket is
//! `hash_32(port + addr, 8)`, the port counting only with sh-port. A bucket whose server is
//! unusable gives no server, unless sh-fallback probes on.

use std::net::IpAddr;

use super::{
    Plan,
    hash32::{fold, hash_32},
};
use crate::model::Dest;
use rvs_common::service::PickMethod;

pub const TAB_BITS: u32 = 8;
pub const TAB_SIZE: usize = 1 << TAB_BITS;

/// The bucket table: dest ids.
pub fn table(dests: &[Dest]) -> Vec<u32> {
    if dests.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(TAB_SIZE);
    let (mut p, mut count) = (0usize, 0i32);
    for _ in 0..TAB_SIZE {
        let d = &dests[p];
        out.push(d.id);
        count += 1;
        if count >= d.config.weight {
            p = (p + 1) % dests.len();
            count = 0;
        }
    }
    out
}

pub fn plan(dests: &[Dest]) -> Plan {
    Plan {
        pick: PickMethod::SourceHash,
        slots: table(dests),
        start: 0,
    }
}

/// The bucket of a client (ip_vs_sh_hashkey with offset 0).
pub fn bucket(addr: &IpAddr, port: u16) -> usize {
    hash_32((port as u32).wrapping_add(fold(addr)), TAB_BITS) as usize
}

/// The reference pick: `usable(id)` says whether a server may take new flows.
pub fn pick(
    table: &[u32],
    addr: &IpAddr,
    port: u16,
    fallback: bool,
    usable: impl Fn(u32) -> bool,
) -> Option<u32> {
    if table.len() != TAB_SIZE {
        return None;
    }
    let ihash = bucket(addr, port);
    let id = table[ihash];
    if usable(id) || !fallback {
        return usable(id).then_some(id);
    }
    // ip_vs_sh_get_fallback: probe at offsets from the bucket.
    (0..TAB_SIZE)
        .map(|offset| {
            let roffset = (offset + ihash) % TAB_SIZE;
            (roffset + hash_32((port as u32).wrapping_add(fold(addr)), TAB_BITS) as usize)
                & (TAB_SIZE - 1)
        })
        .map(|b| table[b])
        .find(|id| usable(*id))
}
