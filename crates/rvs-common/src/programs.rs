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
/// Number of slots.
pub const COUNT: u32 = 5;

/// The scheduling programs, by slot.
pub const SCHEDULERS: [&str; COUNT as usize] = [
    "rvs_sched_sequence",
    "rvs_sched_scan",
    "rvs_sched_twos",
    "rvs_sched_hash",
    "rvs_sched_locality",
];

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
