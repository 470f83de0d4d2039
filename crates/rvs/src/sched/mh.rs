//! mh (ip_vs_mh.c), Maglev hashing: a table of M = 4093 slots, filled round by round from the
//! list with each real server's own permutation (offset and skip from hsiphash of its address and
//! port), each taking `turns` slots per round. Built from `last_weight`, so quiescing a server
//! (weight 0) leaves the table as it is and only makes it unusable at lookup. The same list and
//! weights give the same table on every director, which is what ECMP in front needs.

use std::net::IpAddr;

use rvs_common::{
    hash::{MH_KEY1, MH_KEY2, MH_TAB_BITS, MH_TAB_SIZE, mh_hash},
    service::PickMethod,
};

use super::{Plan, hash32::fold};
use crate::model::Dest;

fn gcd(a: i32, b: i32) -> i32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// 1-based index of the highest set bit (fls), 0 for 0.
fn fls(v: u32) -> u32 {
    32 - v.leading_zeros()
}

/// The lookup table: a dest id per slot (empty when no server has a non-zero last weight).
/// `fold_ipv6` says how addresses are folded: by the service's address family.
pub fn table(dests: &[Dest]) -> Vec<u32> {
    let m = MH_TAB_SIZE as usize;
    let g = dests
        .iter()
        .map(|d| d.last_weight)
        .filter(|w| *w > 0)
        .fold(0, |g, w| if g == 0 { w } else { gcd(w, g) });
    if g < 1 || dests.len() > m {
        return Vec::new();
    }
    let mw = dests.iter().map(|d| d.last_weight).max().unwrap_or(0) / g;
    let rshift = fls(mw.max(0) as u32).saturating_sub(MH_TAB_BITS);
    struct Perm {
        id: u32,
        perm: usize,
        skip: usize,
        turns: i32,
    }
    let mut perms: Vec<Perm> = dests
        .iter()
        .map(|d| {
            let a = fold(&d.addr.addr);
            let offset = mh_hash(a, d.addr.port, 0, MH_KEY1) as usize % m;
            let skip = mh_hash(a, d.addr.port, 0, MH_KEY2) as usize % (m - 1) + 1;
            let mut turns = (d.last_weight / g) >> rshift;
            if turns == 0 {
                turns = (d.last_weight != 0) as i32;
            }
            Perm {
                id: d.id,
                perm: offset,
                skip,
                turns,
            }
        })
        .collect();
    let mut lookup = vec![u32::MAX; m];
    let mut taken = vec![false; m];
    let mut filled = 0;
    'rounds: loop {
        for p in perms.iter_mut() {
            for _ in 0..p.turns.max(0) {
                let mut c = p.perm;
                while taken[c] {
                    p.perm += p.skip;
                    if p.perm >= m {
                        p.perm -= m;
                    }
                    c = p.perm;
                }
                taken[c] = true;
                lookup[c] = p.id;
                filled += 1;
                if filled == m {
                    break 'rounds;
                }
            }
        }
    }
    lookup
}

pub fn plan(dests: &[Dest]) -> Plan {
    Plan {
        pick: PickMethod::Maglev,
        slots: table(dests),
        start: 0,
    }
}

/// A client's slot (`port` is its source port with mh-port, else 0).
pub fn slot(addr: &IpAddr, port: u16) -> usize {
    (mh_hash(fold(addr), port, 0, MH_KEY1) % MH_TAB_SIZE) as usize
}

/// The reference pick: `usable(id)` says whether a server may take new flows (weight > 0 and not
/// overloaded). With mh-fallback, unusable slots are rehashed with the offset folded in.
pub fn pick(
    table: &[u32],
    addr: &IpAddr,
    port: u16,
    fallback: bool,
    usable: impl Fn(u32) -> bool,
) -> Option<u32> {
    if table.len() != MH_TAB_SIZE as usize {
        return None;
    }
    let ihash = slot(addr, port);
    let id = table[ihash];
    if usable(id) || !fallback {
        return usable(id).then_some(id);
    }
    (0..MH_TAB_SIZE)
        .map(|offset| {
            let roffset = (offset + ihash as u32) % MH_TAB_SIZE;
            (mh_hash(fold(addr), port, roffset, MH_KEY1) % MH_TAB_SIZE) as usize
        })
        .map(|s| table[s])
        .find(|id| usable(*id))
}
