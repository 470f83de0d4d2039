//! The connection table: find the flow's real server, or schedule a new flow and record it;
//! follow IPVS's TCP state machine and keep ActiveConn / InActConn in step with it.

use aya_ebpf::{bindings::xdp_action, helpers::bpf_ktime_get_ns};
use rvs_common::{
    conn::{Conn, ConnKey, conn_flags},
    service::ServiceEntry,
    stats::Counter,
    tcp_state::{self, Direction},
};

use crate::{
    TcpFlags, counters,
    maps::{CONNS, DEST_CONNS},
    sched,
};

/// BPF_NOEXIST: insert only if the key is absent.
const BPF_NOEXIST: u64 = 1;
const EEXIST: i64 = 17;

/// The dest id of the flow `key`, creating the connection for a new flow. `Err` carries the XDP
/// action for a packet that must not be forwarded.
#[inline(always)]
pub fn lookup_or_schedule(
    key: &ConnKey,
    svc: &ServiceEntry,
    tcp: Option<TcpFlags>,
) -> Result<u32, u32> {
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    if let Some(c) = CONNS.get_ptr_mut(key) {
        // SAFETY: a pointer into the map value, valid for this program run.
        unsafe { touch(&mut *c, tcp, now) };
        return Ok(unsafe { (*c).dest_id });
    }
    if let Some(f) = tcp
        && (!f.syn || f.rst)
    {
        // Not the start of a connection we know: leave it to the kernel, as IPVS does.
        counters::count(Counter::PassNoConn);
        return Err(xdp_action::XDP_PASS);
    }
    let Some(dest_id) = sched::pick(svc) else {
        counters::count(Counter::DropNoDest);
        return Err(xdp_action::XDP_DROP);
    };
    let state = match tcp {
        Some(f) => tcp_state::next_state(
            Direction::InputOnly,
            tcp_state::event(f.syn, f.fin, f.ack, f.rst),
            tcp_state::NONE,
        ),
        None => tcp_state::UDP,
    };
    let conn = Conn {
        dest_id,
        svc_id: svc.id,
        last_seen_ns: now,
        // A new connection is inactive until ESTABLISHED; DR replies bypass the director.
        flags: conn_flags::INACTIVE | conn_flags::NOOUTPUT,
        state,
        _pad0: 0,
        in_pkts: 1,
    };
    match CONNS.insert(key, &conn, BPF_NOEXIST) {
        Ok(()) => {}
        Err(e) if e as i64 == -EEXIST => {
            // Another CPU recorded the same flow first: follow its choice.
            return match CONNS.get_ptr_mut(key) {
                // SAFETY: pointer into the map value.
                Some(c) => Ok(unsafe { (*c).dest_id }),
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
    add_conn_count(dest_id, false, 1);
    counters::account_conn(svc.id, dest_id);
    Ok(dest_id)
}

/// A packet of a known flow: refresh its timer and advance the TCP state.
#[inline(always)]
fn touch(c: &mut Conn, tcp: Option<TcpFlags>, now: u64) {
    c.last_seen_ns = now;
    c.in_pkts = c.in_pkts.wrapping_add(1);
    let Some(f) = tcp else { return };
    let dir = if c.flags & conn_flags::NOOUTPUT != 0 {
        Direction::InputOnly
    } else {
        Direction::Input
    };
    let new = tcp_state::next_state(dir, tcp_state::event(f.syn, f.fin, f.ack, f.rst), c.state);
    if new == c.state {
        return;
    }
    let inactive = c.flags & conn_flags::INACTIVE != 0;
    if !inactive && new != tcp_state::ESTABLISHED {
        add_conn_count(c.dest_id, true, u64::MAX);
        add_conn_count(c.dest_id, false, 1);
        c.flags |= conn_flags::INACTIVE;
    } else if inactive && new == tcp_state::ESTABLISHED {
        add_conn_count(c.dest_id, true, 1);
        add_conn_count(c.dest_id, false, u64::MAX);
        c.flags &= !conn_flags::INACTIVE;
    }
    c.state = new;
}

/// Atomically adds `delta` (u64::MAX to subtract one) to a dest's active or inactive count.
#[inline(always)]
fn add_conn_count(dest_id: u32, active: bool, delta: u64) {
    let Some(p) = DEST_CONNS.get_ptr_mut(dest_id) else {
        return;
    };
    // SAFETY: array values are stable, aligned memory, changed only atomically.
    unsafe {
        let field = if active {
            &raw mut (*p).active
        } else {
            &raw mut (*p).inactive
        };
        rvs_ebpf::atomic::fetch_add(field, delta);
    }
}
