//! lblc and lblcr (ip_vs_lblc.c, ip_vs_lblcr.c): locality-based least connection for cache
//! clusters. A destination address keeps going to the server (lblc) or set of servers (lblcr) it
//! went to, unless that server is "overloaded" in their sense: more active connections than its
//! weight while some server of the cluster is below half its weight. Otherwise wlc picks a server
//! and the cache learns it. rvsd expires idle cache entries.

use rvs_common::{
    dest::dest_flags,
    maps::{LBLCR_SET_MAX, LblcEntry, LblcrEntry, LocalityKey},
    service::{PickMethod, ServiceEntry},
};

use super::{Flow, conns, id, now, overloaded, scan};
use crate::maps::{DESTS, LBLC, LBLCR, config};

#[inline(always)]
fn key(svc: &ServiceEntry, flow: &Flow) -> LocalityKey {
    LocalityKey {
        svc_id: svc.id,
        addr: flow.daddr,
    }
}

/// The lblc/lblcr "overloaded" rule for `id`.
#[inline(always)]
fn is_overloaded(svc: &ServiceEntry, id: u32, weight: i32) -> bool {
    (conns(id).active as i64) > weight as i64 && scan::any_half_loaded(svc)
}

/// A cached server that may take the flow: listed, weight above zero, not overloaded in the lblc
/// sense (the OVERLOAD flag is not looked at here, as in the kernel).
#[inline(always)]
fn cached_usable(svc: &ServiceEntry, id: u32) -> bool {
    let Some(d) = DESTS.get(id) else { return false };
    d.flags & dest_flags::AVAILABLE != 0 && d.weight > 0 && !is_overloaded(svc, id, d.weight)
}

/// lblc's pick; returns the dest id, or u64::MAX for none (a separate BPF function, as lblcr's).
#[inline(never)]
pub fn pick_lblc(svc: &ServiceEntry, flow: &Flow, now: u64) -> u64 {
    pick_lblc_inner(svc, flow, now).map_or(u64::MAX, |id| id as u64)
}

#[inline(always)]
fn pick_lblc_inner(svc: &ServiceEntry, flow: &Flow, now: u64) -> Option<u32> {
    let k = key(svc, flow);
    let mut cached = None;
    if let Some(e) = LBLC.get_ptr_mut(&k) {
        // SAFETY: pointer into the map value, valid for this program run.
        let e = unsafe { &mut *e };
        e.lastuse_ns = now;
        cached = Some(e.dest_id);
        if cached_usable(svc, e.dest_id) {
            return Some(e.dest_id);
        }
    }
    let id = scan::pick_as(svc, PickMethod::WeightedLeastConn)?;
    if cached != Some(id) {
        let entry = LblcEntry {
            dest_id: id,
            _pad0: 0,
            lastuse_ns: now,
        };
        let _ = LBLC.insert(&k, &entry, 0);
    }
    Some(id)
}

/// The weights and loads of a set's members, for its min and max.
#[inline(always)]
fn member(id: u32) -> Option<(i32, i64, bool, bool)> {
    let d = DESTS.get(id)?;
    let oh = conns(id).overhead() as i32 as i64;
    Some((
        d.weight,
        oh,
        overloaded(id),
        d.flags & dest_flags::AVAILABLE != 0,
    ))
}

/// The least loaded usable member (ip_vs_dest_set_min), by position in the set.
#[inline(always)]
fn set_min(e: &LblcrEntry) -> Option<usize> {
    let mut least: Option<(usize, i64, i32)> = None;
    for i in 0..LBLCR_SET_MAX {
        if i as u32 >= e.size {
            break;
        }
        let Some((w, oh, over, avail)) = member(e.members[i]) else {
            continue;
        };
        match least {
            None => {
                if !over && w > 0 && avail {
                    least = Some((i, oh, w));
                }
            }
            Some((_, loh, lw)) => {
                if !over && loh * w as i64 > oh * lw as i64 && avail {
                    least = Some((i, oh, w));
                }
            }
        }
    }
    least.map(|(i, ..)| i)
}

/// The most loaded member (ip_vs_dest_set_max), by position in the set.
#[inline(always)]
fn set_max(e: &LblcrEntry) -> Option<usize> {
    let mut most: Option<(usize, i64, i32)> = None;
    for i in 0..LBLCR_SET_MAX {
        if i as u32 >= e.size {
            break;
        }
        let Some((w, oh, ..)) = member(e.members[i]) else {
            continue;
        };
        match most {
            None => {
                if w > 0 {
                    most = Some((i, oh, w));
                }
            }
            Some((_, moh, mw)) => {
                if moh * (w as i64) < oh * mw as i64 && w > 0 {
                    most = Some((i, oh, w));
                }
            }
        }
    }
    most.map(|(i, ..)| i)
}

/// Removes the member at `pos`, keeping the order of the rest.
#[inline(always)]
fn erase(e: &mut LblcrEntry, pos: usize, now: u64) {
    for i in 0..LBLCR_SET_MAX - 1 {
        if i >= pos && (i as u32) + 1 < e.size {
            e.members[i] = e.members[i + 1];
        }
    }
    e.size = e.size.saturating_sub(1);
    e.lastmod_ns = now;
}

/// Adds `id` at the head of the set unless it is there (the oldest falls off a full set).
#[inline(always)]
fn insert(e: &mut LblcrEntry, id: u32, now: u64) {
    for i in 0..LBLCR_SET_MAX {
        if (i as u32) < e.size && e.members[i] == id {
            return;
        }
    }
    let mut i = LBLCR_SET_MAX - 1;
    while i > 0 {
        e.members[i] = e.members[i - 1];
        i -= 1;
    }
    e.members[0] = id;
    if (e.size as usize) < LBLCR_SET_MAX {
        e.size += 1;
    }
    e.lastmod_ns = now;
}

/// lblcr's pick. A separate BPF function (not inlined) so the verifier checks it on its own;
/// returns the dest id, or u64::MAX for none.
#[inline(never)]
pub fn pick_lblcr(svc: &ServiceEntry, flow: &Flow, now: u64) -> u64 {
    let k = key(svc, flow);
    // SAFETY: copied out at once; written back whole below.
    let Some(mut e) = (unsafe { LBLCR.get(&k).copied() }) else {
        let Some(id) = scan::pick_as(svc, PickMethod::WeightedLeastConn) else {
            return u64::MAX;
        };
        let mut entry = LblcrEntry {
            lastuse_ns: now,
            ..LblcrEntry::default()
        };
        insert(&mut entry, id, now);
        let _ = LBLCR.insert(&k, &entry, 0);
        return id as u64;
    };
    e.lastuse_ns = now;
    let chosen = set_min(&e).map(|i| e.members[i & (LBLCR_SET_MAX - 1)]);
    // A set unchanged for lblcr_expiration sheds its most loaded member.
    if e.size > 1
        && now > e.lastmod_ns.wrapping_add(config().lblcr_expiration_ns)
        && let Some(m) = set_max(&e)
    {
        erase(&mut e, m, now);
    }
    let result = match chosen {
        Some(id)
            if DESTS
                .get(id)
                .is_some_and(|d| !is_overloaded(svc, id, d.weight)) =>
        {
            Some(id)
        }
        _ => {
            scan::pick_as(svc, PickMethod::WeightedLeastConn).inspect(|&id| insert(&mut e, id, now))
        }
    };
    let _ = LBLCR.insert(&k, &e, 0);
    result.map_or(u64::MAX, |id| id as u64)
}

/// lblc or lblcr, by the service's method.
#[inline(always)]
pub fn pick(svc: &ServiceEntry, flow: &Flow) -> Option<u32> {
    if PickMethod::from_u8(svc.pick) == PickMethod::Lblcr {
        id(pick_lblcr(svc, flow, now()))
    } else {
        id(pick_lblc(svc, flow, now()))
    }
}
