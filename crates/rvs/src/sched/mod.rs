//! The IPVS schedulers.
//!
//! Each scheduler is written twice, on purpose: as a literal user-space model of the kernel's rule
//! (`reference`, used by tests as the oracle) and as the data the XDP program follows (a [`Plan`]).
//! For rr and wrr the plan is the kernel's sequence itself, precomputed: the data plane takes slot
//! `(start + n) % len` for its n-th new flow since the plan was installed, with one atomic counter
//! per service, so every CPU follows one sequence as the kernel's scheduler lock makes them do.
//!
//! The kernel keeps scheduler state between picks (rr's cursor, wrr's current weight) and changes
//! it when real servers are added, edited or removed. [`settle`] replays the picks the data plane
//! made since the last install onto that state, the kernel's hooks then run as the model changes,
//! and [`plan`] lays out the new sequence from the resulting state.

pub mod candidate;
pub mod dh;
pub mod fo;
mod hash32;
pub mod lblc;
pub mod lblcr;
pub mod lc;
pub mod mh;
pub mod nq;
pub mod ovf;
pub mod reference;
mod rr;
mod scheduler;
pub mod sed;
pub mod sh;
pub mod twos;
#[cfg(test)]
mod vectors;
pub mod wlc;
mod wrr;

pub use hash32::{fold, hash_32};

/// The scheduler name the kernel takes for "no scheduler" (`-s none`): the service picks no real
/// server for a new flow (its flows come from persistence templates or connection sync).
pub const NO_SCHEDULER: &str = "none";
use rvs_common::service::PickMethod;
pub use scheduler::{SchedFlag, Scheduler};
use serde::{Deserialize, Serialize};

use crate::model::{Dest, DestAddr, Service};

/// The kernel's per-service scheduler state, as of the last plan install.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchedState {
    Rr(rr::State),
    Wrr(wrr::State),
    /// Schedulers whose choice depends only on the list and the live counters (or a table built
    /// from the list), not on past picks.
    Stateless(String),
}

impl SchedState {
    /// The state a scheduler starts with when bound to a service (init_service).
    pub fn initial(scheduler: &str) -> SchedState {
        match Scheduler::from_name(scheduler) {
            Some(Scheduler::Rr) => SchedState::Rr(rr::State::default()),
            Some(Scheduler::Wrr) => SchedState::Wrr(wrr::State::default()),
            _ => SchedState::Stateless(scheduler.to_owned()),
        }
    }

    /// The kernel's del_dest hook: `removed` was at `pos` in the list, `remaining` is the list now.
    pub fn dest_removed(&mut self, removed: &DestAddr, pos: usize, remaining: &[Dest]) {
        if let SchedState::Rr(s) = self {
            s.dest_removed(removed, pos, remaining);
        }
    }
}

/// What the data plane follows to pick a real server for a new flow of one service (besides the
/// list of real servers, which every service has).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub pick: PickMethod,
    /// Dest ids, one per slot (rr/wrr sequences, sh/dh/mh tables).
    pub slots: Vec<u32>,
    /// The slot of the first pick after install (sequences).
    pub start: u32,
}

impl Plan {
    /// The slot the n-th pick since install takes (n = 0 for the first).
    pub fn slot(&self, n: u64) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let len = self.slots.len() as u64;
        Some(self.slots[((self.start as u64 + n % len) % len) as usize])
    }
}

/// Replays `picks` picks made with the plan installed for `svc` onto its scheduler state, so the
/// state is the kernel's at this moment (before a change to the service's real servers).
pub fn settle(svc: &mut Service, picks: u64) {
    if picks == 0 {
        return;
    }
    match &mut svc.sched {
        SchedState::Rr(s) => s.settle(&svc.dests, picks),
        SchedState::Wrr(s) => s.settle(&svc.dests, picks),
        SchedState::Stateless(_) => {}
    }
}

/// Lays out the plan for the service's current real servers, running the kernel's "destinations
/// changed" hook on the state first. Call once per change to the service's real servers.
pub fn plan(svc: &mut Service) -> Plan {
    if let SchedState::Wrr(s) = &mut svc.sched {
        s.dests_changed(&svc.dests);
    }
    installed_plan(svc)
}

/// The plan for `svc` as its state stands, without running any hook.
pub fn installed_plan(svc: &Service) -> Plan {
    match &svc.sched {
        SchedState::Rr(s) => s.plan(&svc.dests),
        SchedState::Wrr(s) => s.plan(&svc.dests),
        SchedState::Stateless(name) => match Scheduler::from_name(name) {
            Some(Scheduler::Sh) => sh::plan(&svc.dests),
            Some(Scheduler::Dh) => dh::plan(&svc.dests),
            Some(Scheduler::Mh) => mh::plan(&svc.dests),
            other => Plan {
                pick: other.map_or(PickMethod::None, |s| s.pick_method()),
                slots: Vec::new(),
                start: 0,
            },
        },
    }
}

/// Usable for new flows by the table schedulers: weight above zero.
fn usable(d: &Dest) -> bool {
    d.config.weight > 0
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use proptest::prelude::*;

    use super::{reference::*, *};
    use crate::model::{DestConfig, Model, Protocol, ServiceConfig, ServiceId};

    #[derive(Clone, Debug)]
    enum Op {
        Add(i32),
        Delete(usize),
        Edit(usize, i32),
        Picks(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..6i32).prop_map(Op::Add),
            (0..8usize).prop_map(Op::Delete),
            (0..8usize, 0..6i32).prop_map(|(i, w)| Op::Edit(i, w)),
            (0..40u8).prop_map(Op::Picks),
        ]
    }

    fn svc_id() -> ServiceId {
        ServiceId::Inet {
            proto: Protocol::Tcp,
            addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100)),
            port: 80,
        }
    }

    enum Kernel {
        Rr(KernelRr),
        Wrr(KernelWrr),
    }

    /// Runs the same operations through the model + plans + a counter (what rvsd and the data
    /// plane do) and through the literal kernel walk; returns both pick sequences.
    fn run(scheduler: &str, ops: &[Op]) -> (Vec<Option<DestAddr>>, Vec<Option<DestAddr>>) {
        let mut model = Model::new(4, 64);
        model
            .add_service(svc_id(), ServiceConfig::new(scheduler, false))
            .unwrap();
        let mut installed = plan(&mut model.services[0]);
        let mut steps = 0u64;
        let mut list: Vec<RefDest> = Vec::new();
        let mut kernel = match scheduler {
            "rr" => Kernel::Rr(KernelRr::default()),
            _ => Kernel::Wrr(KernelWrr::init(&list)),
        };
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        let mut next_addr = 1u8;
        for op in ops {
            if let Op::Picks(n) = op {
                for _ in 0..*n {
                    let id = if installed.slots.is_empty() {
                        None
                    } else {
                        installed.slot(steps)
                    };
                    if id.is_some() {
                        steps += 1;
                    }
                    let svc = &model.services[0];
                    ours.push(id.map(|id| svc.dests.iter().find(|d| d.id == id).unwrap().addr));
                    theirs.push(match &mut kernel {
                        Kernel::Rr(k) => k.schedule(&list),
                        Kernel::Wrr(k) => k.schedule(&list),
                    });
                }
                continue;
            }
            let applies = match *op {
                Op::Delete(i) | Op::Edit(i, _) => i < list.len(),
                _ => true,
            };
            if applies {
                settle(&mut model.services[0], steps);
            }
            let changed = match *op {
                Op::Add(w) => {
                    let addr = DestAddr {
                        addr: IpAddr::V4(Ipv4Addr::new(198, 18, 1, next_addr)),
                        port: 80,
                    };
                    next_addr += 1;
                    let cfg = DestConfig {
                        weight: w,
                        ..DestConfig::default()
                    };
                    model.add_dest(&svc_id(), addr, cfg).unwrap();
                    list.insert(0, RefDest { addr, weight: w });
                    true
                }
                Op::Delete(i) if i < list.len() => {
                    let addr = list[i].addr;
                    model.delete_dest(&svc_id(), addr).unwrap();
                    list.remove(i);
                    if let Kernel::Rr(k) = &mut kernel {
                        k.del_dest(&addr, i, &list);
                    }
                    true
                }
                Op::Edit(i, w) if i < list.len() => {
                    let addr = list[i].addr;
                    let cfg = DestConfig {
                        weight: w,
                        ..DestConfig::default()
                    };
                    model.edit_dest(&svc_id(), addr, cfg).unwrap();
                    list[i].weight = w;
                    true
                }
                _ => false,
            };
            if changed {
                if let Kernel::Wrr(k) = &mut kernel {
                    k.dest_changed(&list);
                }
                installed = plan(&mut model.services[0]);
                steps = 0;
            }
        }
        (ours, theirs)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn rr_plans_follow_the_kernel(ops in proptest::collection::vec(op(), 1..40)) {
            let (ours, theirs) = run("rr", &ops);
            prop_assert_eq!(ours, theirs);
        }

        #[test]
        fn wrr_plans_follow_the_kernel(ops in proptest::collection::vec(op(), 1..40)) {
            let (ours, theirs) = run("wrr", &ops);
            prop_assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn wrr_plan_for_weights_4_3_2() {
        // Added C, B, A so that the list (newest first) is A B C. Added one by one, the kernel's
        // cw stays at the first server's pass (gcd 2 -> cw 1), so the period AABABCABC is entered
        // at its last pass.
        let (ours, theirs) = run("wrr", &[Op::Add(2), Op::Add(3), Op::Add(4), Op::Picks(9)]);
        assert_eq!(ours, theirs);
        let names: String = ours
            .iter()
            .map(|a| match a.unwrap().addr {
                IpAddr::V4(v4) => (b'A' + 3 - v4.octets()[3]) as char,
                _ => '?',
            })
            .collect();
        assert_eq!(names, "ABCAABABC");
    }
}
