//! Persistence (ip_vs_sched_persist): a template (client network, VIP, vport) -> real server sends
//! a client's new connections to the server its first one went to, for the persistence timeout
//! after the last of them. The template shares the connection tables (kind TEMPLATE, client port
//! 0); rvsd expires it once it is idle and no live connection of the client remains.

use rvs_common::{
    AF_INET6,
    conn::{Conn, ConnKey, KIND_TEMPLATE, conn_flags},
    dest::dest_flags,
    maps::config_flags,
    service::{ServiceEntry, svc_flags},
    tcp_state,
};

use crate::{
    bind::{self, Slot},
    maps::{CONNS, CONNS_NEW, config, dest},
    sched::Flow,
    schedule::Pick,
};

const FTP_PORT: u16 = 21;

/// The template key of `flow` for `svc`.
#[inline(always)]
pub fn template_key(svc: &ServiceEntry, flow: &Flow, svc_port: u16) -> ConnKey {
    let mut caddr = flow.saddr;
    if flow.af == AF_INET6 {
        mask_prefix(&mut caddr, svc.prefix6);
    } else {
        caddr[0] &= svc.netmask4;
    }
    if svc.flags & svc_flags::FWMARK != 0 {
        // A fwmark service's template covers every address, port and protocol of the mark, as
        // IPVS's does: the "VIP" is the mark, the protocol IPPROTO_IP.
        return ConnKey {
            caddr,
            vaddr: [svc.fwmark.to_be(), 0, 0, 0],
            cport: 0,
            vport: 0,
            proto: 0,
            af: flow.af,
            kind: KIND_TEMPLATE,
            _pad0: 0,
        };
    }
    // The template's vport: the service port, except for FTP and port-zero services, where one
    // template covers every port of the VIP.
    let vport = if flow.dport == svc_port && u16::from_be(svc_port) != FTP_PORT {
        flow.dport
    } else {
        0
    };
    ConnKey {
        caddr,
        vaddr: flow.daddr,
        cport: 0,
        vport,
        proto: flow.proto,
        af: flow.af,
        kind: KIND_TEMPLATE,
        _pad0: 0,
    }
}

/// Keeps the first `prefix` bits of an IPv6 address (words in network byte order).
#[inline(always)]
fn mask_prefix(a: &mut [u32; 4], prefix: u8) {
    let prefix = prefix.min(128) as u32;
    for (i, w) in a.iter_mut().enumerate() {
        let bits = prefix.saturating_sub(i as u32 * 32).min(32);
        let mask = if bits == 0 {
            0
        } else {
            u32::MAX << (32 - bits)
        };
        *w &= mask.to_be();
    }
}

/// The real server for a new flow of a persistent service: the template's, while it is valid;
/// otherwise the scheduler's choice, recorded in a new template.
#[inline(always)]
pub fn pick(svc: &ServiceEntry, flow: &Flow, tcp: bool, now: u64, pick: Pick) -> Option<u32> {
    let key = template_key(svc, flow, svc_port(svc, flow));
    let (found, in_new) = match CONNS.get_ptr_mut(&key) {
        Some(t) => (Some(t), false),
        None => (CONNS_NEW.get_ptr_mut(&key), true),
    };
    if let Some(t) = found {
        // SAFETY: a pointer into the map value, valid for this program run.
        let t = unsafe { &mut *t };
        if let Some(d) = dest(t.dest_id) {
            let quiescent_expires =
                config().flags & config_flags::EXPIRE_QUIESCENT_TEMPLATE != 0 && d.weight <= 0;
            if d.flags & dest_flags::AVAILABLE != 0 && !quiescent_expires {
                // Re-armed by every connection it sends; now this director's own.
                t.last_seen_ns = now;
                t.flags &= !conn_flags::SYNC;
                return Some(t.dest_id);
            }
            // The server is gone: drop the template and schedule afresh.
            let removed = if in_new {
                CONNS_NEW.remove(&key)
            } else {
                CONNS.remove(&key)
            };
            if removed.is_ok() {
                bind::unbind(t.dest_id, &d, Slot::Template);
            }
        }
    }
    let dest_id = pick(svc, flow)?;
    let d = dest(dest_id)?;
    let template = Conn {
        dest_id,
        svc_id: svc.id,
        last_seen_ns: now,
        flags: conn_flags::TEMPLATE | conn_flags::INACTIVE,
        state: tcp_state::NONE,
        _pad0: 0,
        in_pkts: 0,
    };
    // A TCP client's template waits with its handshake in the embryonic table.
    let table = if tcp { &CONNS_NEW } else { &CONNS };
    if table.insert(&key, &template, 0).is_ok() {
        bind::bind(dest_id, &d, Slot::Template);
    }
    Some(dest_id)
}

/// Moves the template of `flow` to the main table when one of its connections is established.
#[inline(always)]
pub fn promote(svc: &ServiceEntry, flow: &Flow) {
    let key = template_key(svc, flow, svc_port(svc, flow));
    // SAFETY: copied out at once.
    if let Some(t) = unsafe { CONNS_NEW.get(&key).copied() }
        && CONNS.insert(&key, &t, 0).is_ok()
    {
        let _ = CONNS_NEW.remove(&key);
    }
}

/// The service's own port (network order), from the packet: a port-zero service matched on
/// port 0 has `port_zero` set by the caller.
#[inline(always)]
fn svc_port(svc: &ServiceEntry, flow: &Flow) -> u16 {
    if svc.flags & svc_flags::PORT_ZERO != 0 {
        0
    } else {
        flow.dport
    }
}
