//! Flows learnt from another director (connection sync) written into this director's tables so
//! that its XDP program forwards them from their first packet here; and the reverse, every live
//! flow with the time it has left, for a bulk sync to a peer.
//!
//! A written flow looks exactly as if this data plane had recorded it: the same table (the
//! embryonic one for a handshake, the main one otherwise), the same flags (NOOUTPUT by the local
//! real server's method, INACTIVE by the state, TEMPLATE by the key), the NAT reply entry, and
//! one count in its real server's Active/Inactive/Persist counter, so expiry's decrement later is
//! exact. `last_seen_ns` is set so that expiry (idle > the state's timeout) removes it when the
//! synced timeout runs out.
//!
//! Races with the data plane are resolved so that no entry it is using is overwritten:
//! - a new flow is inserted with BPF_NOEXIST: if a packet recorded the flow first, that entry
//!   stays and is then judged as an existing one;
//! - an existing entry is replaced only if this data plane has not forwarded a packet of it since
//!   sync wrote it (the `SYNC` flag, cleared by the data plane at each packet) or it has been idle
//!   for `LOCAL_GRACE`: a flow this director is forwarding is its own, and a peer's older view of
//!   it is ignored (`Outcome::LocalNewer`);
//! - the replacement is one BPF_EXIST update of the value read just before, so an entry removed
//!   meanwhile (expiry, a reused port) is inserted afresh rather than resurrected. What remains is
//!   a packet arriving between that read and the update (one system call): its timer refresh and
//!   state step are lost, and a state step that moved a counter leaves that counter off by one
//!   until the flow ends. It can happen only while the peer is still reporting a flow that this
//!   director has just begun to forward.

use std::os::fd::AsFd;

use aya::maps::IterableMap;

use anyhow::{Result, bail};
use aya::maps::{HashMap, MapData, MapError};
use rvs_common::{
    IPPROTO_TCP,
    conn::{Conn, ConnKey, KIND_TEMPLATE, conn_flags},
    dest::{DestEntry, fwd},
    maps::config_flags,
    sync::DEFAULT_SYNC_THRESHOLD,
    tcp_state,
};

use super::{Field, SharedConns, batch, maps::DirectorMaps, store::MapsWrite};

const NS: u64 = 1_000_000_000;
const BPF_NOEXIST: u64 = 1;
const BPF_EXIST: u64 = 2;
/// An entry this data plane forwarded a packet of within this long is its own.
pub const LOCAL_GRACE_NS: u64 = 3 * NS;
/// Attempts when the data plane or expiry changes the entry between read and write.
const ATTEMPTS: usize = 4;

/// A flow received from a peer, in this director's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncedFlow {
    /// The flow (`KIND_CONN`) or persistence template (`KIND_TEMPLATE`, client port 0).
    pub key: ConnKey,
    /// This director's id of the real server (found by address by the caller).
    pub dest_id: u32,
    /// This director's index of the service.
    pub svc_id: u32,
    /// `tcp_state::*` (`tcp_state::UDP` for UDP, `NONE` for a template).
    pub state: u8,
    /// `conn_flags::*`: INACTIVE, NOOUTPUT and TEMPLATE as the kernel's flags carry them,
    /// CONTROLLED when the local service is persistent and KEEP_PORT when it has no port of its
    /// own. Only CONTROLLED and KEEP_PORT are taken as given: the others follow from the state,
    /// the local real server's method and the key.
    pub flags: u16,
    /// Seconds the flow has left; 0: the whole `ttl_s`.
    pub timeout_s: u32,
    /// The timeout expiry applies to this entry here: `expiry::timeout_secs` of its protocol and
    /// state, or the service's persistence timeout for a template.
    pub ttl_s: u32,
}

/// What `write_synced` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A new entry, counted once on its real server.
    Inserted,
    /// An existing entry changed (state, flags, real server); counters moved with it.
    Updated,
    /// Only its timer changed.
    Refreshed,
    /// The entry was already as synced: nothing written.
    Unchanged,
    /// This director forwards the flow itself: left alone.
    LocalNewer,
    /// The connection table is full: not written.
    TableFull,
}

/// The `last_seen_ns` that makes expiry remove an entry with timeout `ttl_s` after `remaining_s`
/// more seconds (expiry removes it once `now - last_seen > ttl`). A remaining time longer than
/// the local timeout puts `last_seen` in the future, which expiry reads as idle 0 until then.
pub fn last_seen_for(now_ns: u64, remaining_s: u32, ttl_s: u32) -> u64 {
    (now_ns + remaining_s as u64 * NS).saturating_sub(ttl_s as u64 * NS)
}

/// Seconds an entry last seen at `last_seen_ns` with timeout `ttl_s` has left at `now_ns`,
/// rounded up (0: expiry removes it at its next walk).
pub fn remaining_for(now_ns: u64, last_seen_ns: u64, ttl_s: u32) -> u32 {
    let end = last_seen_ns.saturating_add(ttl_s as u64 * NS);
    (end.saturating_sub(now_ns).div_ceil(NS)).min(u32::MAX as u64) as u32
}

/// Which of a real server's counters an entry is in.
fn slot(c: &Conn) -> Field {
    if c.flags & conn_flags::TEMPLATE != 0 {
        Field::Persist
    } else if c.flags & conn_flags::INACTIVE != 0 {
        Field::Inactive
    } else {
        Field::Active
    }
}

/// Whether a synced flow belongs in the embryonic table: a TCP flow still in its handshake, as
/// the data plane keeps those until ESTABLISHED.
fn embryonic(key: &ConnKey, state: u8) -> bool {
    key.kind != KIND_TEMPLATE
        && key.proto == IPPROTO_TCP
        && matches!(
            state,
            tcp_state::NONE
                | tcp_state::SYN_SENT
                | tcp_state::SYN_RECV
                | tcp_state::SYNACK
                | tcp_state::LISTEN
        )
}

/// The flags this data plane would give the flow, with `SYNC` set.
pub fn local_flags(flow: &SyncedFlow, dest: &DestEntry) -> u16 {
    if flow.key.kind == KIND_TEMPLATE {
        return conn_flags::TEMPLATE | conn_flags::INACTIVE | conn_flags::SYNC;
    }
    let mut f = conn_flags::SYNC | (flow.flags & (conn_flags::CONTROLLED | conn_flags::KEEP_PORT));
    if dest.fwd != fwd::MASQ {
        f |= conn_flags::NOOUTPUT;
    }
    // The data plane counts only TCP flows in an active state as active (UDP is inactive).
    if !(flow.key.proto == IPPROTO_TCP && tcp_state::is_active(flow.state)) {
        f |= conn_flags::INACTIVE;
    }
    f
}

fn errno(e: &MapError) -> Option<i32> {
    match e {
        MapError::SyscallError(s) => s.io_error.raw_os_error(),
        _ => None,
    }
}

type Table = HashMap<MapData, ConnKey, Conn>;

/// Writes `flow` into the tables of `maps` (see the module's comment for the rules and races).
pub fn write_synced(maps: &mut DirectorMaps, flow: &SyncedFlow, now_ns: u64) -> Result<Outcome> {
    let template = flow.key.kind == KIND_TEMPLATE;
    if template != (flow.flags & conn_flags::TEMPLATE != 0) {
        bail!("a template's key and its TEMPLATE flag disagree");
    }
    let dest = maps.dests.get(&flow.dest_id, 0)?;
    if dest.svc_id != flow.svc_id {
        bail!(
            "real server {} belongs to service {}, not {}",
            flow.dest_id,
            dest.svc_id,
            flow.svc_id
        );
    }
    let remaining = if flow.timeout_s == 0 {
        flow.ttl_s
    } else {
        flow.timeout_s
    };
    let config = maps.config();
    let threshold = if config.flags & config_flags::SYNC_ACTIVE != 0 {
        config.sync_threshold
    } else {
        DEFAULT_SYNC_THRESHOLD
    };
    let want = Conn {
        dest_id: flow.dest_id,
        svc_id: flow.svc_id,
        last_seen_ns: last_seen_for(now_ns, remaining, flow.ttl_s),
        flags: local_flags(flow, &dest),
        state: if template {
            tcp_state::NONE
        } else {
            flow.state
        },
        _pad0: 0,
        // As the kernel's backup does: the next packets count on from the threshold.
        in_pkts: if template { 0 } else { threshold },
    };
    for _ in 0..ATTEMPTS {
        // The main table first, as the data plane looks; a flow there never moves back.
        let (found, in_main) = match maps.conns.get(&flow.key, 0) {
            Ok(c) => (Some(c), true),
            Err(_) => (maps.conns_new.get(&flow.key, 0).ok(), false),
        };
        let Some(old) = found else {
            let main = !embryonic(&flow.key, flow.state);
            match insert_new(maps, flow, &want, &dest, main)? {
                Some(o) => return Ok(o),
                None => continue,
            }
        };
        if old.flags & conn_flags::SYNC == 0
            && now_ns.saturating_sub(old.last_seen_ns) < LOCAL_GRACE_NS
        {
            return Ok(Outcome::LocalNewer);
        }
        let mut next = want;
        if !template {
            next.in_pkts = old.in_pkts;
        }
        let same = (old.dest_id, old.svc_id, old.flags, old.state)
            == (next.dest_id, next.svc_id, next.flags, next.state);
        if same && old.last_seen_ns == next.last_seen_ns {
            return Ok(Outcome::Unchanged);
        }
        // A handshake synced as established moves to the main table, as the data plane's
        // promotion does; otherwise the entry stays where it is.
        let to_main = in_main || !embryonic(&flow.key, flow.state);
        let written = if in_main || !to_main {
            let table = if in_main {
                &mut maps.conns
            } else {
                &mut maps.conns_new
            };
            match table.insert(flow.key, next, BPF_EXIST) {
                Ok(()) => true,
                Err(e) if errno(&e) == Some(libc::ENOENT) => false,
                Err(e) => return Err(e.into()),
            }
        } else {
            match maps.conns.insert(flow.key, next, BPF_NOEXIST) {
                Ok(()) => {
                    let _ = maps.conns_new.remove(&flow.key);
                    true
                }
                Err(e) if errno(&e) == Some(libc::EEXIST) => false,
                Err(e) => return Err(e.into()),
            }
        };
        if !written {
            continue;
        }
        if !same {
            moved(maps, &old, &next, &flow.key, &dest)?;
            return Ok(Outcome::Updated);
        }
        return Ok(Outcome::Refreshed);
    }
    bail!("the flow kept changing under the writer")
}

/// Inserts a flow that is in neither table. None: something inserted it meanwhile (look again).
fn insert_new(
    maps: &mut DirectorMaps,
    flow: &SyncedFlow,
    want: &Conn,
    dest: &DestEntry,
    main: bool,
) -> Result<Option<Outcome>> {
    let table: &mut Table = if main {
        &mut maps.conns
    } else {
        &mut maps.conns_new
    };
    match table.insert(flow.key, *want, BPF_NOEXIST) {
        Ok(()) => {}
        Err(e) if errno(&e) == Some(libc::EEXIST) => return Ok(None),
        Err(e) if errno(&e) == Some(libc::E2BIG) => return Ok(Some(Outcome::TableFull)),
        Err(e) => return Err(e.into()),
    }
    if flow.key.kind != KIND_TEMPLATE && dest.fwd == fwd::MASQ {
        let reply = flow
            .key
            .nat_reply(dest.addr, flow.key.server_port(dest.port, want.flags));
        if let Err(e) = maps.nat_replies.insert(reply, flow.key, 0) {
            // Without its reply entry the flow cannot work: take it out again.
            let _ = table.remove(&flow.key);
            return Err(e.into());
        }
    }
    bind(&maps.dest_conns, want, dest);
    Ok(Some(Outcome::Inserted))
}

/// An entry rewritten from `old` to `new`: its counters and NAT reply entry follow it.
fn moved(
    maps: &mut DirectorMaps,
    old: &Conn,
    new: &Conn,
    key: &ConnKey,
    dest: &DestEntry,
) -> Result<()> {
    if (old.dest_id, slot(old)) != (new.dest_id, slot(new)) {
        maps.dest_conns.add(old.dest_id, slot(old), u64::MAX);
        bind(&maps.dest_conns, new, dest);
    }
    if key.kind != KIND_TEMPLATE && old.dest_id != new.dest_id {
        if let Ok(d) = maps.dests.get(&old.dest_id, 0)
            && d.fwd == fwd::MASQ
        {
            let _ = maps
                .nat_replies
                .remove(&key.nat_reply(d.addr, key.server_port(d.port, old.flags)));
        }
        if dest.fwd == fwd::MASQ {
            maps.nat_replies.insert(
                key.nat_reply(dest.addr, key.server_port(dest.port, new.flags)),
                *key,
                0,
            )?;
        }
    }
    Ok(())
}

/// ip_vs_bind_dest as the data plane does it: one more in the entry's counter, and OVERLOAD set
/// when the total reaches the upper threshold.
fn bind(counters: &SharedConns, c: &Conn, dest: &DestEntry) {
    let s = slot(c);
    counters.add(c.dest_id, s, 1);
    if s == Field::Persist || dest.u_threshold == 0 {
        return;
    }
    let n = counters.get(c.dest_id);
    if n.active.wrapping_add(n.inactive) >= dest.u_threshold as u64 {
        counters.set(c.dest_id, Field::Overloaded, 1);
    }
}

/// Every live flow and template of both tables with the seconds it has left, for a bulk sync.
/// `ttl` gives an entry's timeout here (as `SyncedFlow::ttl_s`), or None to leave it out (a
/// template of a service no longer persistent); entries with no time left are left out too.
pub fn live_flows(
    maps: &DirectorMaps,
    now_ns: u64,
    mut ttl: impl FnMut(&ConnKey, &Conn) -> Option<u32>,
) -> std::io::Result<Vec<(ConnKey, Conn, u32)>> {
    let mut out = Vec::new();
    for table in [&maps.conns_new, &maps.conns] {
        batch::for_each::<ConnKey, Conn>(table.map().fd().as_fd(), 4096, |k, c| {
            if let Some(t) = ttl(k, c) {
                let left = remaining_for(now_ns, c.last_seen_ns, t);
                if left > 0 {
                    out.push((*k, *c, left));
                }
            }
        })?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_common::{AF_INET, IPPROTO_UDP, conn::KIND_CONN};

    const NOW: u64 = 1_000_000 * NS;

    #[test]
    fn remaining_time_and_last_seen_convert_both_ways() {
        let seen = last_seen_for(NOW, 600, 900);
        assert_eq!(NOW - seen, 300 * NS, "idle as if 300 s of 900 had passed");
        assert_eq!(remaining_for(NOW, seen, 900), 600);
        // Expiry's rule: removed once idle > ttl, i.e. just after the remaining time.
        let at = NOW + 600 * NS;
        assert!(at - seen <= 900 * NS);
        assert!(at + 1 - seen > 900 * NS);
        assert_eq!(remaining_for(at + 1, seen, 900), 0);
        // Longer than the local timeout: last_seen in the future, exact all the same.
        let seen = last_seen_for(NOW, 1000, 900);
        assert_eq!(seen, NOW + 100 * NS);
        assert_eq!(remaining_for(NOW, seen, 900), 1000);
        // Part of a second left is a second.
        assert_eq!(remaining_for(NOW, NOW - 899 * NS - 1, 900), 1);
    }

    fn flow(proto: u8, state: u8, kind: u8) -> SyncedFlow {
        SyncedFlow {
            key: ConnKey {
                proto,
                af: AF_INET,
                kind,
                ..ConnKey::default()
            },
            dest_id: 1,
            svc_id: 0,
            state,
            flags: if kind == KIND_TEMPLATE {
                conn_flags::TEMPLATE
            } else {
                // Whatever the sender said; the local rules decide.
                conn_flags::INACTIVE
            },
            timeout_s: 0,
            ttl_s: 900,
        }
    }

    #[test]
    fn flags_follow_the_state_the_local_method_and_the_key() {
        let dr = DestEntry {
            fwd: fwd::DROUTE,
            ..DestEntry::default()
        };
        let nat = DestEntry {
            fwd: fwd::MASQ,
            ..DestEntry::default()
        };
        let es = flow(IPPROTO_TCP, tcp_state::ESTABLISHED, KIND_CONN);
        assert_eq!(
            local_flags(&es, &dr),
            conn_flags::NOOUTPUT | conn_flags::SYNC
        );
        assert_eq!(local_flags(&es, &nat), conn_flags::SYNC);
        let fw = flow(IPPROTO_TCP, tcp_state::FIN_WAIT, KIND_CONN);
        assert_eq!(
            local_flags(&fw, &nat),
            conn_flags::INACTIVE | conn_flags::SYNC
        );
        let udp = flow(IPPROTO_UDP, tcp_state::UDP, KIND_CONN);
        assert_eq!(
            slot(&Conn {
                flags: local_flags(&udp, &dr),
                ..Conn::default()
            }),
            Field::Inactive
        );
        let t = flow(IPPROTO_TCP, tcp_state::NONE, KIND_TEMPLATE);
        assert_eq!(
            slot(&Conn {
                flags: local_flags(&t, &dr),
                ..Conn::default()
            }),
            Field::Persist
        );
    }

    #[test]
    fn handshakes_go_to_the_embryonic_table_and_the_rest_to_the_main_one() {
        let k = |proto, kind| ConnKey {
            proto,
            kind,
            ..ConnKey::default()
        };
        assert!(embryonic(&k(IPPROTO_TCP, KIND_CONN), tcp_state::SYN_RECV));
        assert!(!embryonic(
            &k(IPPROTO_TCP, KIND_CONN),
            tcp_state::ESTABLISHED
        ));
        assert!(!embryonic(&k(IPPROTO_TCP, KIND_CONN), tcp_state::TIME_WAIT));
        assert!(!embryonic(&k(IPPROTO_UDP, KIND_CONN), tcp_state::UDP));
        assert!(!embryonic(&k(IPPROTO_TCP, KIND_TEMPLATE), tcp_state::NONE));
    }
}
