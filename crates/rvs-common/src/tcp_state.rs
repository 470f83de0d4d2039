//! IPVS's TCP connection states, their transition tables and default timeouts.
//!
//! The data plane applies `next_state` to every TCP packet of a tracked flow; the control plane
//! expires a flow when it has been idle longer than its state's timeout. Tables follow
//! net/netfilter/ipvs/ip_vs_proto_tcp.c (the normal table, secure_tcp off).

pub const NONE: u8 = 0;
pub const ESTABLISHED: u8 = 1;
pub const SYN_SENT: u8 = 2;
pub const SYN_RECV: u8 = 3;
pub const FIN_WAIT: u8 = 4;
pub const TIME_WAIT: u8 = 5;
pub const CLOSE: u8 = 6;
pub const CLOSE_WAIT: u8 = 7;
pub const LAST_ACK: u8 = 8;
pub const LISTEN: u8 = 9;
pub const SYNACK: u8 = 10;
/// Number of TCP states.
pub const COUNT: usize = 11;
/// The single state of a UDP flow (IPVS names it "UDP").
pub const UDP: u8 = 0;

/// Which table applies: packets from the client, replies from the real server (NAT), or client
/// packets of a flow whose replies bypass the director (DR, TUN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Direction {
    Input = 0,
    Output = 1,
    InputOnly = 2,
}

/// The event a TCP header represents: the first of RST, SYN, FIN, ACK that is set.
#[inline(always)]
pub fn event(syn: bool, fin: bool, ack: bool, rst: bool) -> Option<usize> {
    if rst {
        Some(3)
    } else if syn {
        Some(0)
    } else if fin {
        Some(1)
    } else if ack {
        Some(2)
    } else {
        None
    }
}

const ES: u8 = ESTABLISHED;
const SS: u8 = SYN_SENT;
const SR: u8 = SYN_RECV;
const FW: u8 = FIN_WAIT;
const TW: u8 = TIME_WAIT;
const CL: u8 = CLOSE;
const CW: u8 = CLOSE_WAIT;
const LA: u8 = LAST_ACK;
const LI: u8 = LISTEN;

/// `TABLE[direction][event][state]`; columns in state order NONE ES SS SR FW TW CL CW LA LI SYNACK.
/// An ACK on NONE (a flow first seen mid-way, scheduled only by a sloppy service) is ESTABLISHED,
/// as in the kernel's table since sloppy_tcp.
#[rustfmt::skip]
static TABLE: [[[u8; COUNT]; 4]; 3] = [
    // Input
    [
        /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        /* fin */ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
        /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
    ],
    // Output
    [
        /* syn */ [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
        /* fin */ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        /* rst */ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    ],
    // InputOnly
    [
        /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        /* fin */ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
];

/// The state after a packet with the given event; a packet with none of RST/SYN/FIN/ACK closes.
#[inline(always)]
pub fn next_state(dir: Direction, event: Option<usize>, state: u8) -> u8 {
    match event {
        Some(e) if (state as usize) < COUNT && e < 4 => TABLE[dir as usize][e][state as usize],
        _ => CLOSE,
    }
}

/// Whether a connection in `state` counts in ActiveConn (the kernel's tcp_state_active_table):
/// the handshake states and ESTABLISHED; every closing state counts as inactive.
#[inline(always)]
pub fn is_active(state: u8) -> bool {
    matches!(state, ESTABLISHED | SYN_SENT | SYN_RECV | SYNACK)
}

/// State names as ipvsadm -L -c prints them.
pub fn name(state: u8) -> &'static str {
    match state {
        NONE => "NONE",
        ESTABLISHED => "ESTABLISHED",
        SYN_SENT => "SYN_SENT",
        SYN_RECV => "SYN_RECV",
        FIN_WAIT => "FIN_WAIT",
        TIME_WAIT => "TIME_WAIT",
        CLOSE => "CLOSE",
        CLOSE_WAIT => "CLOSE_WAIT",
        LAST_ACK => "LAST_ACK",
        LISTEN => "LISTEN",
        SYNACK => "SYNACK",
        _ => "ERR!",
    }
}

/// IPVS default timeouts in seconds, indexed by state.
pub const DEFAULT_TIMEOUTS: [u32; COUNT] = [2, 900, 120, 60, 120, 120, 10, 60, 30, 120, 120];
/// IPVS default UDP timeout in seconds.
pub const DEFAULT_UDP_TIMEOUT: u32 = 300;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dr_handshake_and_close() {
        // Client SYN, ACK, data, FIN, ACK through a DR director (input-only table).
        let d = Direction::InputOnly;
        let mut s = NONE;
        s = next_state(d, event(true, false, false, false), s);
        assert_eq!(s, SYN_RECV);
        s = next_state(d, event(false, false, true, false), s);
        assert_eq!(s, ESTABLISHED);
        s = next_state(d, event(false, true, true, false), s);
        assert_eq!(s, FIN_WAIT);
        s = next_state(d, event(false, false, true, false), s);
        assert_eq!(s, FIN_WAIT);
        s = next_state(d, event(false, false, true, true), s);
        assert_eq!(s, CLOSE);
    }

    #[test]
    fn nat_close_sequence() {
        let mut s = NONE;
        s = next_state(Direction::Input, event(true, false, false, false), s);
        assert_eq!(s, SYN_RECV);
        s = next_state(Direction::Output, event(true, false, true, false), s);
        assert_eq!(s, SYN_RECV);
        s = next_state(Direction::Input, event(false, false, true, false), s);
        assert_eq!(s, ESTABLISHED);
        s = next_state(Direction::Input, event(false, true, true, false), s);
        assert_eq!(s, CLOSE_WAIT);
        s = next_state(Direction::Output, event(false, true, true, false), s);
        assert_eq!(s, TIME_WAIT);
    }

    #[test]
    fn flagless_packet_closes() {
        assert_eq!(next_state(Direction::Input, None, ESTABLISHED), CLOSE);
    }
}
