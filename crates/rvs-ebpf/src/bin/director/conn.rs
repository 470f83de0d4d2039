//! The connection tables: find the flow's real server, or schedule a new flow and record it;
//! follow IPVS's TCP state machine and keep the real servers' counters in step with it.
//!
//! Two tables: `CONNS` for established TCP flows and UDP flows, `CONNS_NEW` for TCP flows whose
//! handshake has not completed. A flow moves to `CONNS` when it reaches ESTABLISHED, so a flood of
//! SYNs from random sources fills only `CONNS_NEW` (rvsd drops its idle entries first when it runs
//! full, as IPVS's drop_entry does) and established flows stay put.

use aya_ebpf::{bindings::xdp_action, maps::HashMap};
use rvs_common::{
    conn::{Conn, ConnKey, conn_flags},
    dest::{DestEntry, dest_flags, fwd},
    maps::config_flags,
    service::{ServiceEntry, svc_flags},
    stats::Counter,
    tcp_state::{self, Direction},
};

use crate::{
    bind::{self, Slot},
    counters,
    maps::{CONNS, CONNS_NEW, NAT_REPLIES, config, dest},
    parse::{Packet, TcpFlags},
    persist,
    sched::Flow,
    sync,
};

/// BPF_NOEXIST: insert only if the key is absent.
const BPF_NOEXIST: u64 = 1;
const EEXIST: i64 = 17;

/// What the tables say about a packet.
pub enum Existing {
    /// A known flow: forward to this dest, by this method (`dest::fwd::*`), to the client's
    /// port if the flag says so (`conn_flags::KEEP_PORT`).
    Forward(u32, u8, bool),
    /// Drop or pass the packet with this action.
    Action(u32),
    /// No flow (or one that just ended): a new flow.
    New,
}

/// What to do with a flow found in a table.
enum Found {
    /// Forward to this dest, by this method, keeping the client's port or not.
    Forward(u32, u8, bool),
    /// The flow ended; schedule this packet as a new one.
    Reschedule,
    /// Drop the packet.
    Drop,
}

impl From<Found> for Existing {
    fn from(f: Found) -> Existing {
        match f {
            Found::Forward(id, fwd, keep) => Existing::Forward(id, fwd, keep),
            Found::Drop => Existing::Action(xdp_action::XDP_DROP),
            Found::Reschedule => Existing::New,
        }
    }
}

/// The packet's flow in the main table (established TCP flows, UDP flows), if there: found
/// without its service, so the entry program tries it first, as IPVS looks the connection up
/// before the service.
#[inline(always)]
pub fn lookup_established(key: &ConnKey) -> Option<*mut Conn> {
    CONNS.get_ptr_mut(key)
}

/// A packet of flow `c` of the main table: refresh it, advance its state or end it. Returns the
/// verdict and the flow's service id.
#[inline(always)]
pub fn established(key: &ConnKey, c: *mut Conn, p: &Packet, now: u64) -> (Existing, u32) {
    // SAFETY: a pointer into the map value, valid for this program run.
    let c = unsafe { &mut *c };
    let svc_id = c.svc_id;
    (found(key, c, p.tcp, now, &CONNS).into(), svc_id)
}

/// Looks the packet's flow up in the embryonic table (the main one was tried first), advancing
/// its state and promoting it (with its persistence template) when it is established.
#[inline(always)]
pub fn embryonic(key: &ConnKey, svc: &ServiceEntry, p: &Packet, now: u64) -> Existing {
    if let Some(c) = CONNS_NEW.get_ptr_mut(key) {
        // SAFETY: as above.
        let c = unsafe { &mut *c };
        let f = found(key, c, p.tcp, now, &CONNS_NEW);
        if let Found::Forward(..) = f
            && c.state == tcp_state::ESTABLISHED
        {
            promote(key, c, svc.flags & svc_flags::PERSISTENT != 0, svc, &p.flow);
        }
        return f.into();
    }
    Existing::New
}

/// A NAT real server's reply to the flow `key`: advances the flow's state in the output direction
/// and returns (dest id, service id).
#[inline(always)]
pub fn reply(key: &ConnKey, p: &Packet, now: u64) -> Option<(u32, u32)> {
    let (c, embryonic) = match CONNS.get_ptr_mut(key) {
        Some(c) => (c, false),
        None => (CONNS_NEW.get_ptr_mut(key)?, true),
    };
    // SAFETY: a pointer into the map value, valid for this program run.
    let c = unsafe { &mut *c };
    touch(key, c, p.tcp, now, Direction::Output);
    if embryonic && c.state == tcp_state::ESTABLISHED && CONNS.insert(key, &*c, 0).is_ok() {
        let _ = CONNS_NEW.remove(key);
    }
    Some((c.dest_id, c.svc_id))
}

/// A packet of a flow in a table: refresh it, advance its state, or end it.
#[inline(always)]
fn found(
    key: &ConnKey,
    c: &mut Conn,
    tcp: Option<TcpFlags>,
    now: u64,
    table: &HashMap<ConnKey, Conn>,
) -> Found {
    let id = c.dest_id;
    let Some(d) = dest(id) else {
        return Found::Drop;
    };
    let syn = tcp.is_some_and(|f| f.syn);
    let nodest = config().flags & config_flags::EXPIRE_NODEST_CONN != 0;
    let deleted = d.flags & dest_flags::AVAILABLE == 0;
    if nodest && deleted {
        // expire_nodest_conn: the flow of a deleted server ends now; a SYN starts afresh.
        end(key, c, &d, table);
        return if syn { Found::Reschedule } else { Found::Drop };
    }
    if syn && (deleted || (nodest && d.weight == 0) || reusable(c)) {
        // conn_reuse_mode: a SYN on a closed flow's ports is a new connection (with
        // expire_nodest_conn, so is any SYN on a flow to a quiesced server). So is a SYN on a
        // draining flow of a deleted server (one the client closed, its last ACK unseen): the
        // new connection must not go to a server out of the table, nor ride a flow that is
        // about to be flushed, which would leave the connection without a flow mid-way.
        end(key, c, &d, table);
        return Found::Reschedule;
    }
    let dir = if c.flags & conn_flags::NOOUTPUT != 0 {
        Direction::InputOnly
    } else {
        Direction::Input
    };
    touch(key, c, tcp, now, dir);
    Found::Forward(id, d.fwd, c.flags & conn_flags::KEEP_PORT != 0)
}

/// is_new_conn_expected: an uncontrolled TCP flow in TIME_WAIT or CLOSE.
#[inline(always)]
fn reusable(c: &Conn) -> bool {
    c.flags & conn_flags::CONTROLLED == 0
        && (c.state == tcp_state::TIME_WAIT || c.state == tcp_state::CLOSE)
}

/// The key under which a NAT flow (with `conn_flags` `flags`) finds its replies: the real
/// server's address and port, the client's address and port.
#[inline(always)]
pub fn reply_key(key: &ConnKey, d: &DestEntry, flags: u16) -> ConnKey {
    key.nat_reply(d.addr, key.server_port(d.port, flags))
}

/// Whether a new flow of `svc` keeps the client's port (`conn_flags::KEEP_PORT`): a persistent
/// service without a port of its own.
#[inline(always)]
pub fn keeps_port(svc: &ServiceEntry) -> bool {
    svc.flags & svc_flags::PERSISTENT != 0
        && svc.flags & (svc_flags::PORT_ZERO | svc_flags::FWMARK) != 0
}

/// Removes a flow the data plane ends itself, taking it off its server's counters.
#[inline(always)]
fn end(key: &ConnKey, c: &Conn, d: &DestEntry, table: &HashMap<ConnKey, Conn>) {
    if table.remove(key).is_ok() {
        let slot = if c.flags & conn_flags::INACTIVE != 0 {
            Slot::Inactive
        } else {
            Slot::Active
        };
        bind::unbind(c.dest_id, d, slot);
        if d.fwd == fwd::MASQ {
            let _ = NAT_REPLIES.remove(&reply_key(key, d, c.flags));
        }
    }
}

/// Moves a flow that reached ESTABLISHED (and its persistence template) to the main table.
#[inline(always)]
fn promote(key: &ConnKey, c: &Conn, controlled: bool, svc: &ServiceEntry, flow: &Flow) {
    if CONNS.insert(key, c, 0).is_ok() {
        let _ = CONNS_NEW.remove(key);
    }
    if controlled && c.flags & conn_flags::CONTROLLED != 0 {
        persist::promote(svc, flow);
    }
}

/// Records a new flow to `dest_id` (picked by the scheduling program), binding it to the real
/// server. Returns the dest id to forward to and its method, or the action for a packet that
/// must not go on.
#[inline(always)]
pub fn record(
    key: &ConnKey,
    svc: &ServiceEntry,
    p: &Packet,
    dest_id: u32,
    now: u64,
) -> Result<(u32, u8), u32> {
    let Some(d) = dest(dest_id) else {
        counters::count(Counter::DropBadDest);
        return Err(xdp_action::XDP_DROP);
    };
    let tcp = p.tcp;
    counters::account_conn(svc.id, dest_id);
    if tcp.is_none() && svc.flags & svc_flags::ONE_PACKET != 0 {
        // One-packet scheduling: each datagram is scheduled on its own, nothing is recorded.
        return Ok((dest_id, d.fwd));
    }
    // Replies of DR and TUN flows bypass the director: the input-only state table applies.
    let nat = d.fwd == fwd::MASQ;
    let dir = if nat {
        Direction::Input
    } else {
        Direction::InputOnly
    };
    let state = match tcp {
        Some(f) => tcp_state::next_state(
            dir,
            tcp_state::event(f.syn, f.fin, f.ack, f.rst),
            tcp_state::NONE,
        ),
        None => tcp_state::UDP,
    };
    // The kernel binds a new connection as inactive and then applies the first packet's state
    // change (SYN -> SYN_RECV, an active state); the net effect is counted here in one go.
    let active = tcp.is_some() && tcp_state::is_active(state);
    let mut flags = if nat { 0 } else { conn_flags::NOOUTPUT };
    if !active {
        flags |= conn_flags::INACTIVE;
    }
    if svc.flags & svc_flags::PERSISTENT != 0 {
        flags |= conn_flags::CONTROLLED;
    }
    if keeps_port(svc) {
        flags |= conn_flags::KEEP_PORT;
    }
    let conn = Conn {
        dest_id,
        svc_id: svc.id,
        last_seen_ns: now,
        flags,
        state,
        _pad0: 0,
        in_pkts: 1,
    };
    // Handshakes wait in the embryonic table; UDP flows have none.
    let table = if tcp.is_some() { &CONNS_NEW } else { &CONNS };
    match table.insert(key, &conn, BPF_NOEXIST) {
        Ok(()) => {}
        Err(e) if e as i64 == -EEXIST => {
            // Another CPU recorded the same flow first: follow its choice.
            // SAFETY: copied out at once.
            return match unsafe { table.get(key).copied() } {
                Some(c) => Ok((c.dest_id, dest(c.dest_id).map_or(fwd::DROUTE, |d| d.fwd))),
                None => {
                    counters::count(Counter::DropConnInsert);
                    Err(xdp_action::XDP_DROP)
                }
            };
        }
        Err(_) => {
            counters::count(Counter::DropConnInsert);
            return Err(xdp_action::XDP_DROP);
        }
    }
    if nat
        && NAT_REPLIES
            .insert(&reply_key(key, &d, flags), key, 0)
            .is_err()
    {
        // Its replies could not be matched: the flow cannot work.
        let _ = table.remove(key);
        counters::count(Counter::DropConnInsert);
        return Err(xdp_action::XDP_DROP);
    }
    bind::bind(
        dest_id,
        &d,
        if active { Slot::Active } else { Slot::Inactive },
    );
    sync::offer(key, &conn, tcp.is_some());
    Ok((dest_id, d.fwd))
}

/// A packet of a known flow: refresh its timer, advance the TCP state in direction `dir`, and
/// report the flow for sync when IPVS's rule says so.
#[inline(always)]
fn touch(key: &ConnKey, c: &mut Conn, tcp: Option<TcpFlags>, now: u64, dir: Direction) {
    c.last_seen_ns = now;
    c.in_pkts = c.in_pkts.wrapping_add(1);
    // Seen here: from now on this director's own flow, not a synced copy.
    c.flags &= !conn_flags::SYNC;
    let changed = match tcp {
        Some(f) => advance(c, f, dir),
        None => false,
    };
    sync::offer(key, c, changed);
}

/// Advances a TCP flow's state by one packet, moving it between its server's counters; returns
/// whether the state changed.
#[inline(always)]
fn advance(c: &mut Conn, f: TcpFlags, dir: Direction) -> bool {
    if dir == Direction::Output {
        // A reply seen: the flow is no longer input-only (IPVS clears NOOUTPUT).
        c.flags &= !conn_flags::NOOUTPUT;
    }
    let new = tcp_state::next_state(dir, tcp_state::event(f.syn, f.fin, f.ack, f.rst), c.state);
    if new == c.state {
        return false;
    }
    let inactive = c.flags & conn_flags::INACTIVE != 0;
    let active = tcp_state::is_active(new);
    if !inactive && !active {
        bind::shift(c.dest_id, Slot::Active, Slot::Inactive);
        c.flags |= conn_flags::INACTIVE;
    } else if inactive && active {
        bind::shift(c.dest_id, Slot::Inactive, Slot::Active);
        c.flags &= !conn_flags::INACTIVE;
    }
    c.state = new;
    true
}
