//! What the data plane reports for connection sync, and IPVS's rule for when it reports
//! (ip_vs_sync_conn_needed, without the refresh period, which rvsd applies: it keeps the time
//! each flow was last sent, which the data plane does not).

use crate::{IPPROTO_TCP, conn::Conn, conn::ConnKey, tcp_state, user_pod};

/// IPVS's default sync_threshold.
pub const DEFAULT_SYNC_THRESHOLD: u32 = 3;
/// IPVS's default sync_period.
pub const DEFAULT_SYNC_PERIOD: u32 = 50;

/// Why a flow was reported (`SyncEvent::reason`).
pub mod sync_reason {
    /// Its packet count reached the threshold (modulo the period).
    pub const PACKETS: u8 = 0;
    /// Its TCP state changed to a synced state other than ESTABLISHED.
    pub const STATE: u8 = 1;
}

/// One record of the sync ring buffer: the flow as it is in the connection table right after
/// the packet that made it due (`conn.in_pkts` counts that packet).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncEvent {
    pub key: ConnKey,
    pub conn: Conn,
    /// `sync_reason::*`.
    pub reason: u8,
    pub _pad0: [u8; 7],
}

/// Whether a flow is due to be synced after a packet: TCP only in ESTABLISHED, FIN_WAIT, CLOSE,
/// CLOSE_WAIT and TIME_WAIT; at once when this packet changed its state to one of those other
/// than ESTABLISHED; otherwise when `in_pkts % period == threshold` (period 0: only when
/// `in_pkts == threshold`, or at every packet `by_time`, when a refresh period decides).
/// Returns the reason, or None.
#[inline(always)]
pub fn due(
    proto: u8,
    state: u8,
    changed: bool,
    in_pkts: u32,
    threshold: u32,
    period: u32,
    by_time: bool,
) -> Option<u8> {
    if proto == IPPROTO_TCP {
        if !matches!(
            state,
            tcp_state::ESTABLISHED
                | tcp_state::FIN_WAIT
                | tcp_state::CLOSE
                | tcp_state::CLOSE_WAIT
                | tcp_state::TIME_WAIT
        ) {
            return None;
        }
        if changed && state != tcp_state::ESTABLISHED {
            return Some(sync_reason::STATE);
        }
    }
    let at = if period > 0 {
        in_pkts % period == threshold
    } else {
        by_time || in_pkts == threshold
    };
    at.then_some(sync_reason::PACKETS)
}

user_pod!(SyncEvent);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IPPROTO_UDP;

    const TCP: u8 = IPPROTO_TCP;

    /// The packet counts in 1..=n at which a flow in `state` (unchanged) is due.
    fn due_at(proto: u8, state: u8, n: u32, threshold: u32, period: u32) -> ([u32; 8], usize) {
        let mut at = [0; 8];
        let mut len = 0;
        for k in 1..=n {
            if due(proto, state, false, k, threshold, period, false).is_some() {
                at[len] = k;
                len += 1;
            }
        }
        (at, len)
    }

    #[test]
    fn packets_at_threshold_then_every_period() {
        let (at, len) = due_at(TCP, tcp_state::ESTABLISHED, 160, 3, 50);
        assert_eq!(at[..len], [3, 53, 103, 153]);
        let (at, len) = due_at(IPPROTO_UDP, tcp_state::UDP, 60, 3, 50);
        assert_eq!(at[..len], [3, 53]);
    }

    #[test]
    fn period_zero_reports_once() {
        let (at, len) = due_at(TCP, tcp_state::ESTABLISHED, 200, 3, 0);
        assert_eq!(at[..len], [3]);
    }

    #[test]
    fn period_zero_by_time_reports_every_packet_of_a_synced_state() {
        for k in 1..5 {
            assert_eq!(
                due(TCP, tcp_state::ESTABLISHED, false, k, 3, 0, true),
                Some(sync_reason::PACKETS)
            );
            assert_eq!(due(TCP, tcp_state::SYN_RECV, false, k, 3, 0, true), None);
        }
        assert_eq!(
            due(TCP, tcp_state::ESTABLISHED, false, 4, 3, 50, true),
            None
        );
    }

    #[test]
    fn state_changes_to_closing_states_are_immediate_but_not_to_established() {
        for s in [
            tcp_state::FIN_WAIT,
            tcp_state::CLOSE,
            tcp_state::CLOSE_WAIT,
            tcp_state::TIME_WAIT,
        ] {
            assert_eq!(due(TCP, s, true, 7, 3, 50, false), Some(sync_reason::STATE));
            assert_eq!(due(TCP, s, false, 7, 3, 50, false), None);
        }
        assert_eq!(
            due(TCP, tcp_state::ESTABLISHED, true, 2, 3, 50, false),
            None
        );
        assert_eq!(
            due(TCP, tcp_state::ESTABLISHED, true, 3, 3, 50, false),
            Some(sync_reason::PACKETS)
        );
    }

    #[test]
    fn handshake_states_are_never_synced() {
        for s in [
            tcp_state::NONE,
            tcp_state::SYN_RECV,
            tcp_state::SYN_SENT,
            tcp_state::SYNACK,
            tcp_state::LAST_ACK,
            tcp_state::LISTEN,
        ] {
            assert_eq!(due(TCP, s, true, 3, 3, 50, true), None);
        }
    }

    #[test]
    fn event_layout_is_fixed() {
        assert_eq!(core::mem::size_of::<SyncEvent>(), 72);
        assert_eq!(core::mem::align_of::<SyncEvent>(), 8);
    }
}
