//! Connection expiry: a background walk over the connection table that removes flows idle longer
//! than their state's timeout (IPVS's per-connection timers, done in bulk), flushes flows of
//! deleted services, and reports which real-server ids flows still refer to.

use std::collections::{BTreeMap, BTreeSet};

use aya::maps::{Array, HashMap, MapData};
use rvs_common::{
    IPPROTO_TCP,
    conn::{Conn, ConnKey, conn_flags},
    dest::DestConns,
    tcp_state,
};

use crate::model::Timeouts;

/// Seconds a connection in `state` lives without packets (IPVS defaults, with `--set` values for
/// ESTABLISHED, FIN_WAIT and UDP).
pub fn timeout_secs(proto: u8, state: u8, t: &Timeouts) -> u64 {
    if proto != IPPROTO_TCP {
        return t.udp as u64;
    }
    match state {
        tcp_state::ESTABLISHED => t.tcp as u64,
        tcp_state::FIN_WAIT => t.tcp_fin as u64,
        s => tcp_state::DEFAULT_TIMEOUTS
            .get(s as usize)
            .copied()
            .unwrap_or(tcp_state::DEFAULT_TIMEOUTS[tcp_state::CLOSE as usize]) as u64,
    }
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of bpf_ktime_get_ns.
pub fn monotonic_ns() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always available");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

/// What one walk found and did.
#[derive(Debug, Default)]
pub struct Sweep {
    pub walked: usize,
    pub expired: usize,
    pub flushed: usize,
    /// The walk saw the whole table (it stops early if the table churns too much to finish).
    pub complete: bool,
    /// Real-server ids that live connections refer to.
    pub referenced: BTreeSet<u32>,
}

/// Walks the table once. `flush` holds real-server ids whose service is gone: their flows are
/// removed at once. Expired flows are subtracted from the real servers' counts via `expired`.
pub fn sweep(
    conns: &mut HashMap<MapData, ConnKey, Conn>,
    expired: &mut Array<MapData, DestConns>,
    capacity: u32,
    timeouts: &Timeouts,
    flush: &BTreeSet<u32>,
) -> Sweep {
    let now = monotonic_ns();
    let mut out = Sweep::default();
    let mut doomed = Vec::new();
    // A walk restarts from the head when the key it stands on is deleted under it (LRU eviction),
    // so bound it: twice the capacity is far more than one pass.
    let limit = 2 * capacity as usize;
    let mut complete = true;
    for (n, item) in conns.iter().enumerate() {
        if n >= limit {
            complete = false;
            break;
        }
        let Ok((key, conn)) = item else { continue };
        out.walked += 1;
        let idle = now.saturating_sub(conn.last_seen_ns);
        let ttl = timeout_secs(key.proto, conn.state, timeouts) * 1_000_000_000;
        if flush.contains(&conn.dest_id) || idle > ttl {
            doomed.push(key);
        } else {
            out.referenced.insert(conn.dest_id);
        }
    }
    out.complete = complete;

    let mut gone: BTreeMap<u32, DestConns> = BTreeMap::new();
    for key in doomed {
        // Look again just before deleting: a packet may have refreshed the flow meanwhile.
        let Ok(conn) = conns.get(&key, 0) else {
            continue;
        };
        let idle = monotonic_ns().saturating_sub(conn.last_seen_ns);
        let ttl = timeout_secs(key.proto, conn.state, timeouts) * 1_000_000_000;
        let flushing = flush.contains(&conn.dest_id);
        if !flushing && idle <= ttl {
            out.referenced.insert(conn.dest_id);
            continue;
        }
        if conns.remove(&key).is_err() {
            continue;
        }
        if flushing {
            out.flushed += 1;
        } else {
            out.expired += 1;
        }
        let g = gone.entry(conn.dest_id).or_default();
        if conn.flags & conn_flags::INACTIVE != 0 {
            g.inactive += 1;
        } else {
            g.active += 1;
        }
    }
    for (id, g) in gone {
        let mut e = expired.get(&id, 0).unwrap_or_default();
        e.active = e.active.wrapping_add(g.active);
        e.inactive = e.inactive.wrapping_add(g.inactive);
        let _ = expired.set(id, e, 0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_follow_ipvs() {
        let t = Timeouts::default();
        assert_eq!(timeout_secs(IPPROTO_TCP, tcp_state::ESTABLISHED, &t), 900);
        assert_eq!(timeout_secs(IPPROTO_TCP, tcp_state::SYN_RECV, &t), 60);
        assert_eq!(timeout_secs(IPPROTO_TCP, tcp_state::FIN_WAIT, &t), 120);
        assert_eq!(timeout_secs(IPPROTO_TCP, tcp_state::CLOSE, &t), 10);
        assert_eq!(timeout_secs(17, 0, &t), 300);
        let set = Timeouts {
            tcp: 30,
            tcp_fin: 5,
            udp: 7,
        };
        assert_eq!(timeout_secs(IPPROTO_TCP, tcp_state::ESTABLISHED, &set), 30);
        assert_eq!(timeout_secs(IPPROTO_TCP, tcp_state::FIN_WAIT, &set), 5);
        assert_eq!(timeout_secs(17, 0, &set), 7);
    }
}
