//! The director's XDP programs. The entry program handles packets of known flows itself and hands
//! a new flow to the scheduling program of its service's method with a tail call, so each program
//! stays small enough for the verifier and a new scheduler costs no instructions on the fast path.

use crate::service::PickMethod;

/// The entry program, attached to the interfaces.
pub const ENTRY: &str = "rvs_director";
/// The program array the entry program tail-calls into.
pub const PROGS: &str = "RVS_PROGS";

/// Slots of `PROGS`.
pub const SEQUENCE: u32 = 0;
pub const SCAN: u32 = 1;
pub const TWOS: u32 = 2;
pub const HASH: u32 = 3;
pub const LOCALITY: u32 = 4;
/// Recording a scheduled flow (its own program, so that the verifier checks the schedulers'
/// loops and the connection table's branches apart rather than every path through both).
pub const RECORD: u32 = 5;
/// Forwarding by direct routing.
pub const XMIT_DR: u32 = 6;
/// Forwarding by NAT (client to real server).
pub const XMIT_NAT: u32 = 7;
/// Forwarding by IP tunnelling.
pub const XMIT_TUN: u32 = 8;
/// A real server's reply through a NAT director (real server to client).
pub const NAT_OUT: u32 = 9;
/// An ICMP error about a tracked flow.
pub const ICMP: u32 = 10;
/// Decapsulating a tunnelled packet for one of the director's services.
pub const TUNNEL_IN: u32 = 11;
/// The entry program itself, entered again by `TUNNEL_IN` with the inner packet.
pub const REENTER: u32 = 12;
/// Number of slots.
pub const COUNT: u32 = 13;

/// Every program of the array, by slot.
pub const PROGRAMS: [&str; COUNT as usize] = [
    "rvs_sched_sequence",
    "rvs_sched_scan",
    "rvs_sched_twos",
    "rvs_sched_hash",
    "rvs_sched_locality",
    "rvs_record",
    "rvs_xmit_dr",
    "rvs_xmit_nat",
    "rvs_xmit_tun",
    "rvs_nat_out",
    "rvs_icmp",
    "rvs_tunnel_in",
    ENTRY,
];

/// The slot of the program that forwards by method `fwd` (`dest::fwd::*`).
#[inline(always)]
pub fn xmit_slot(fwd: u8) -> u32 {
    match fwd {
        crate::dest::fwd::MASQ => XMIT_NAT,
        crate::dest::fwd::TUNNEL => XMIT_TUN,
        _ => XMIT_DR,
    }
}

/// The slot of the program that schedules for `pick`.
#[inline(always)]
pub fn slot_for(pick: PickMethod) -> Option<u32> {
    match pick {
        PickMethod::Sequence => Some(SEQUENCE),
        PickMethod::LeastConn
        | PickMethod::WeightedLeastConn
        | PickMethod::ShortestExpectedDelay
        | PickMethod::NeverQueue
        | PickMethod::WeightedFailover
        | PickMethod::WeightedOverflow => Some(SCAN),
        PickMethod::TwoRandomChoices => Some(TWOS),
        PickMethod::SourceHash | PickMethod::DestinationHash | PickMethod::Maglev => Some(HASH),
        PickMethod::Lblc | PickMethod::Lblcr => Some(LOCALITY),
        PickMethod::None => None,
    }
}
