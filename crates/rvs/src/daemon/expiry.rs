//! Connection expiry: a background walk over the connection tables that removes flows idle longer
//! than their state's timeout (IPVS's per-connection timers, done in bulk), removes persistence
//! templates idle past the service's timeout once no live flow of theirs remains, flushes flows of
//! deleted services, and reports which real-server ids are still in use. The tables are read in
//! batches; counters are changed through the shared mapping with atomics; OVERLOAD is cleared by
//! the kernel's rule as connections go.

use std::{
    collections::{BTreeSet, HashMap as StdHashMap, HashSet},
    os::fd::AsFd,
};

use aya::maps::{HashMap, IterableMap, MapData};
use rvs_common::{
    AF_INET6, IPPROTO_TCP,
    conn::{Conn, ConnKey, KIND_TEMPLATE, conn_flags},
    tcp_state,
};

use crate::{
    dataplane::{Field, SharedConns, batch},
    model::Timeouts,
};

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

/// How a persistent service forms its templates.
#[derive(Clone, Copy, Debug, Default)]
pub struct PersistRule {
    pub timeout_s: u32,
    /// IPv4 mask, network byte order.
    pub netmask4: u32,
    pub prefix6: u8,
    /// One template for every port of the VIP (port-zero and FTP services).
    pub any_port: bool,
}

/// What a walk needs from the model.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    pub timeouts: Timeouts,
    /// Real-server ids whose service was deleted: their flows are removed at once.
    pub flush: BTreeSet<u32>,
    /// (upper, lower) thresholds per real-server id.
    pub thresholds: StdHashMap<u32, (u32, u32)>,
    /// Template rules per service index.
    pub persist: StdHashMap<u32, PersistRule>,
    /// Capacity of the embryonic table.
    pub embryonic_capacity: u32,
    /// Real servers reached by NAT: (address words, port in network order), whose flows have
    /// reply entries to remove with them.
    pub nat_dests: StdHashMap<u32, ([u32; 4], u16)>,
}

/// Above this share of the embryonic table, handshakes idle for `EMBRYONIC_GRACE` are dropped
/// first (IPVS's drop_entry drops SYN_RECV entries under pressure).
const EMBRYONIC_PRESSURE: (u32, u32) = (3, 4);
const EMBRYONIC_GRACE_NS: u64 = 1_000_000_000;

/// What one walk found and did.
#[derive(Debug, Default)]
pub struct Sweep {
    pub walked: usize,
    /// Entries of the main table walked (0 when only the embryonic one was).
    pub walked_main: usize,
    pub expired: usize,
    pub flushed: usize,
    /// Idle handshakes dropped because the embryonic table was nearly full.
    pub dropped_embryonic: usize,
    /// Every table was read to its end.
    pub complete: bool,
    /// Real-server ids that live connections and templates refer to.
    pub referenced: BTreeSet<u32>,
}

/// The template key the data plane uses for a connection of a persistent service.
pub fn template_key(key: &ConnKey, rule: &PersistRule) -> ConnKey {
    let mut caddr = key.caddr;
    if key.af == AF_INET6 {
        let prefix = rule.prefix6.min(128) as u32;
        for (i, w) in caddr.iter_mut().enumerate() {
            let bits = prefix.saturating_sub(i as u32 * 32).min(32);
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            *w &= mask.to_be();
        }
    } else {
        caddr[0] &= rule.netmask4;
    }
    ConnKey {
        caddr,
        vaddr: key.vaddr,
        cport: 0,
        vport: if rule.any_port { 0 } else { key.vport },
        proto: key.proto,
        af: key.af,
        kind: KIND_TEMPLATE,
        _pad0: 0,
    }
}

type Table = HashMap<MapData, ConnKey, Conn>;

/// Walks both tables once: the embryonic one first, so a flow promoted during the walk is met in
/// the main one afterwards.
pub fn sweep(
    conns_new: &mut Table,
    conns: &mut Table,
    replies: &mut HashMap<MapData, ConnKey, ConnKey>,
    counters: &SharedConns,
    inputs: &Inputs,
    walk_main: bool,
) -> Sweep {
    let now = monotonic_ns();
    // Without the main table, the walk does not know every live flow: templates are left for a
    // whole walk to judge, and nothing can be said about which servers are still referenced.
    let mut out = Sweep {
        complete: walk_main,
        ..Sweep::default()
    };
    let mut live_templates: HashSet<ConnKey> = HashSet::new();
    let mut templates: Vec<(bool, ConnKey, Conn)> = Vec::new();
    let mut doomed: Vec<(bool, ConnKey)> = Vec::new();
    let mut embryonic = 0u32;
    let mut idle_handshakes: Vec<ConnKey> = Vec::new();
    for (is_new, table) in [(true, &*conns_new), (false, &*conns)] {
        if !is_new && !walk_main {
            continue;
        }
        let walk = batch::for_each::<ConnKey, Conn>(table.map().fd().as_fd(), 4096, |key, conn| {
            out.walked += 1;
            if !is_new {
                out.walked_main += 1;
            }
            if key.kind == KIND_TEMPLATE {
                templates.push((is_new, *key, *conn));
                return;
            }
            let idle = now.saturating_sub(conn.last_seen_ns);
            let ttl = timeout_secs(key.proto, conn.state, &inputs.timeouts) * 1_000_000_000;
            if inputs.flush.contains(&conn.dest_id) || idle > ttl {
                doomed.push((is_new, *key));
                return;
            }
            if is_new {
                embryonic += 1;
                if idle > EMBRYONIC_GRACE_NS {
                    idle_handshakes.push(*key);
                }
            }
            out.referenced.insert(conn.dest_id);
            if conn.flags & conn_flags::CONTROLLED != 0
                && let Some(rule) = inputs.persist.get(&conn.svc_id)
            {
                live_templates.insert(template_key(key, rule));
            }
        });
        if let Err(e) = walk {
            tracing::warn!("reading the connection table: {e}");
            out.complete = false;
        }
    }
    let (num, den) = EMBRYONIC_PRESSURE;
    let pressure = embryonic as u64 * den as u64 > inputs.embryonic_capacity as u64 * num as u64;
    if pressure {
        doomed.extend(idle_handshakes.into_iter().map(|k| (true, k)));
    }
    for (is_new, key, t) in templates.into_iter().filter(|_| walk_main) {
        let idle = now.saturating_sub(t.last_seen_ns);
        let ttl = inputs
            .persist
            .get(&t.svc_id)
            .map_or(0, |r| r.timeout_s as u64)
            * 1_000_000_000;
        let flushing = inputs.flush.contains(&t.dest_id);
        if flushing || (idle > ttl && !live_templates.contains(&key)) {
            doomed.push((is_new, key));
        } else {
            out.referenced.insert(t.dest_id);
        }
    }

    for (is_new, key) in doomed {
        let table = if is_new { &mut *conns_new } else { &mut *conns };
        // Look again just before deleting: a packet may have refreshed the flow meanwhile.
        let Ok(conn) = table.get(&key, 0) else {
            continue;
        };
        let flushing = inputs.flush.contains(&conn.dest_id);
        // Under pressure, an idle handshake goes whatever its timeout.
        let shed = pressure
            && is_new
            && key.kind != KIND_TEMPLATE
            && monotonic_ns().saturating_sub(conn.last_seen_ns) > EMBRYONIC_GRACE_NS;
        if !flushing && !shed {
            let idle = monotonic_ns().saturating_sub(conn.last_seen_ns);
            let ttl = if key.kind == KIND_TEMPLATE {
                inputs
                    .persist
                    .get(&conn.svc_id)
                    .map_or(0, |r| r.timeout_s as u64)
            } else {
                timeout_secs(key.proto, conn.state, &inputs.timeouts)
            } * 1_000_000_000;
            if idle <= ttl {
                out.referenced.insert(conn.dest_id);
                continue;
            }
        }
        if table.remove(&key).is_err() {
            continue;
        }
        if key.kind != KIND_TEMPLATE
            && let Some((addr, port)) = inputs.nat_dests.get(&conn.dest_id)
        {
            let _ = replies.remove(&key.nat_reply(*addr, key.server_port(*port, conn.flags)));
        }
        if flushing {
            out.flushed += 1;
        } else if shed {
            out.dropped_embryonic += 1;
        } else {
            out.expired += 1;
        }
        unbind(
            counters,
            &conn,
            inputs.thresholds.get(&conn.dest_id).copied(),
        );
    }
    out
}

/// ip_vs_unbind_dest: takes the connection off its server's counter and clears OVERLOAD when the
/// total falls below the lower threshold, or (without one) below 3/4 of the upper one.
fn unbind(counters: &SharedConns, conn: &Conn, thresholds: Option<(u32, u32)>) {
    let id = conn.dest_id;
    if conn.flags & conn_flags::TEMPLATE != 0 {
        counters.add(id, Field::Persist, u64::MAX);
        return;
    }
    let field = if conn.flags & conn_flags::INACTIVE != 0 {
        Field::Inactive
    } else {
        Field::Active
    };
    counters.add(id, field, u64::MAX);
    let c = counters.get(id);
    let total = c.active.wrapping_add(c.inactive) as i64;
    let (upper, lower) = thresholds.unwrap_or((0, 0));
    let clear = if lower != 0 {
        total < lower as i64
    } else if upper != 0 {
        total * 4 < upper as i64 * 3
    } else {
        true
    };
    if clear && c.overloaded != 0 {
        counters.set(id, Field::Overloaded, 0);
    }
}

/// How each persistent service of `model` (by index) forms its templates.
pub fn persist_rules(model: &crate::model::Model) -> StdHashMap<u32, PersistRule> {
    model
        .services
        .iter()
        .filter(|s| s.config.persistent())
        .map(|s| {
            let ipv6 = s.id.is_ipv6();
            let port = s.id.port();
            let rule = PersistRule {
                timeout_s: s.config.timeout,
                netmask4: if ipv6 { 0 } else { s.config.netmask.to_be() },
                prefix6: if ipv6 {
                    s.config.netmask.min(128) as u8
                } else {
                    0
                },
                any_port: port == 0 || port == 21,
            };
            (s.index, rule)
        })
        .collect()
}

/// What a walk needs from `model`, and the real-server ids in its trash when the walk starts.
pub fn inputs(model: &crate::model::Model, conn_table_size: u32) -> (Inputs, BTreeSet<u32>) {
    let trash = model.trash.iter().map(|t| t.dest.id).collect();
    let mut inputs = Inputs {
        timeouts: model.timeouts,
        flush: model.flushed_dest_ids(),
        embryonic_capacity: rvs_common::maps::conns_new_size(conn_table_size),
        persist: persist_rules(model),
        ..Default::default()
    };
    for d in model.every_dest() {
        inputs
            .thresholds
            .insert(d.id, (d.config.u_threshold, d.config.l_threshold));
    }
    for d in model
        .every_dest()
        .filter(|d| d.config.fwd == crate::model::FwdMethod::Masq)
    {
        inputs.nat_dests.insert(
            d.id,
            (
                crate::dataplane::ip_words(&d.addr.addr),
                d.addr.port.to_be(),
            ),
        );
    }
    (inputs, trash)
}

/// Flows of the main table walked per second at most, on average; the period between walks is
/// between 1 and 8 seconds.
const MAIN_WALK_RATE: usize = 250_000;

fn main_walk_period(entries: usize) -> std::time::Duration {
    std::time::Duration::from_millis((entries * 1000 / MAIN_WALK_RATE).clamp(1000, 8000) as u64)
}

/// The expiry task: walks the connection tables about once a second (back to back when a walk
/// takes longer) with its own handles on the maps, off the runtime's threads, and tells the
/// director which trashed real servers no flow refers to any more.
pub async fn task(director: super::DirectorHandle, pin_dir: std::path::PathBuf) {
    let maps = match crate::dataplane::DirectorMaps::open(&pin_dir) {
        Ok(m) => std::sync::Arc::new(std::sync::Mutex::new(m)),
        Err(e) => {
            tracing::warn!("connection expiry disabled: {e:#}");
            return;
        }
    };
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    // The embryonic table is walked every second (a SYN flood is shed from it); the main table
    // as often while it is small, and less often as it grows, so that a table of millions of
    // flows does not keep a CPU busy walking it (flows then expire up to a few seconds late).
    let mut main_due = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        let view = director.view();
        let (inputs, trash) = inputs(&view.model, view.conn_table_size);
        let m = maps.clone();
        let walk_main = tokio::time::Instant::now() >= main_due;
        let walked = tokio::task::spawn_blocking(move || {
            let mut m = m.lock().expect("expiry maps");
            let m = &mut *m;
            sweep(
                &mut m.conns_new,
                &mut m.conns,
                &mut m.nat_replies,
                &m.dest_conns,
                &inputs,
                walk_main,
            )
        })
        .await;
        match walked {
            Ok(s) => {
                if walk_main {
                    main_due = tokio::time::Instant::now() + main_walk_period(s.walked_main);
                }
                if s.expired + s.flushed > 0 {
                    tracing::debug!(
                        "expired {} and flushed {} of {} connections",
                        s.expired,
                        s.flushed,
                        s.walked
                    );
                }
                director.expiry_done(s, trash).await;
            }
            Err(e) => tracing::warn!("connection expiry walk failed: {e}"),
        }
    }
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

    #[test]
    fn template_keys_mask_the_client_and_drop_its_port() {
        let key = ConnKey {
            caddr: [u32::from_ne_bytes([198, 18, 7, 9]), 0, 0, 0],
            vaddr: [u32::from_ne_bytes([198, 18, 0, 100]), 0, 0, 0],
            cport: 40000u16.to_be(),
            vport: 80u16.to_be(),
            proto: IPPROTO_TCP,
            af: 2,
            kind: 0,
            _pad0: 0,
        };
        let rule = PersistRule {
            timeout_s: 60,
            netmask4: 0xffff_ff00u32.to_be(),
            prefix6: 0,
            any_port: false,
        };
        let t = template_key(&key, &rule);
        assert_eq!(t.caddr[0].to_ne_bytes(), [198, 18, 7, 0]);
        assert_eq!(
            (t.cport, t.vport, t.kind),
            (0, 80u16.to_be(), KIND_TEMPLATE)
        );
        let any = template_key(
            &key,
            &PersistRule {
                any_port: true,
                ..rule
            },
        );
        assert_eq!(any.vport, 0);
    }
}
