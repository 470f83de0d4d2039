//! The one list of schedulers: each IPVS scheduler by its ipvsadm name, the `-b` flags it takes,
//! the data-plane rule it runs and the table it is planned from. rvsadm, keepalived.conf, the
//! model and the planner all ask this type; nothing else matches scheduler names.

use rvs_common::service::PickMethod;

use crate::model::svc_flags;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheduler {
    Rr,
    Wrr,
    Lc,
    Wlc,
    Lblc,
    Lblcr,
    Dh,
    Sh,
    Sed,
    Nq,
    Fo,
    Ovf,
    Twos,
    Mh,
}

/// A scheduler flag of `-b` (and of keepalived's `sh-port`, `flag-1`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedFlag {
    pub name: &'static str,
    pub bit: u32,
}

const GENERIC_FLAGS: &[SchedFlag] = &[
    SchedFlag {
        name: "flag-1",
        bit: svc_flags::SCHED1,
    },
    SchedFlag {
        name: "flag-2",
        bit: svc_flags::SCHED2,
    },
    SchedFlag {
        name: "flag-3",
        bit: svc_flags::SCHED3,
    },
];
const SH_FLAGS: &[SchedFlag] = &[
    SchedFlag {
        name: "sh-fallback",
        bit: svc_flags::SCHED1,
    },
    SchedFlag {
        name: "sh-port",
        bit: svc_flags::SCHED2,
    },
];
const MH_FLAGS: &[SchedFlag] = &[
    SchedFlag {
        name: "mh-fallback",
        bit: svc_flags::SCHED1,
    },
    SchedFlag {
        name: "mh-port",
        bit: svc_flags::SCHED2,
    },
];

impl Scheduler {
    /// Every scheduler IPVS has, in ipvsadm's order.
    pub const ALL: [Scheduler; 14] = [
        Scheduler::Rr,
        Scheduler::Wrr,
        Scheduler::Lc,
        Scheduler::Wlc,
        Scheduler::Lblc,
        Scheduler::Lblcr,
        Scheduler::Dh,
        Scheduler::Sh,
        Scheduler::Sed,
        Scheduler::Nq,
        Scheduler::Fo,
        Scheduler::Ovf,
        Scheduler::Twos,
        Scheduler::Mh,
    ];

    /// ipvsadm's default (`-s` not given).
    pub const DEFAULT: Scheduler = Scheduler::Wlc;

    pub fn name(self) -> &'static str {
        match self {
            Scheduler::Rr => "rr",
            Scheduler::Wrr => "wrr",
            Scheduler::Lc => "lc",
            Scheduler::Wlc => "wlc",
            Scheduler::Lblc => "lblc",
            Scheduler::Lblcr => "lblcr",
            Scheduler::Dh => "dh",
            Scheduler::Sh => "sh",
            Scheduler::Sed => "sed",
            Scheduler::Nq => "nq",
            Scheduler::Fo => "fo",
            Scheduler::Ovf => "ovf",
            Scheduler::Twos => "twos",
            Scheduler::Mh => "mh",
        }
    }

    pub fn from_name(name: &str) -> Option<Scheduler> {
        Scheduler::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The names of every scheduler, comma-separated (for messages).
    pub fn names() -> String {
        Scheduler::ALL.map(Scheduler::name).join(", ")
    }

    /// Whether every director with the same real servers (given in the same order) picks the
    /// same one for a flow from its headers alone: the stateless hash schedulers. Only these
    /// keep a flow on its real server when ECMP moves it to another director that never saw it
    /// (`sloppy_tcp`); the others pick by their own counters or cursor.
    pub fn same_on_every_director(self) -> bool {
        matches!(self, Scheduler::Sh | Scheduler::Dh | Scheduler::Mh)
    }

    /// The data-plane rule of the scheduler.
    pub fn pick_method(self) -> PickMethod {
        match self {
            Scheduler::Rr | Scheduler::Wrr => PickMethod::Sequence,
            Scheduler::Lc => PickMethod::LeastConn,
            Scheduler::Wlc => PickMethod::WeightedLeastConn,
            Scheduler::Sed => PickMethod::ShortestExpectedDelay,
            Scheduler::Nq => PickMethod::NeverQueue,
            Scheduler::Fo => PickMethod::WeightedFailover,
            Scheduler::Ovf => PickMethod::WeightedOverflow,
            Scheduler::Twos => PickMethod::TwoRandomChoices,
            Scheduler::Sh => PickMethod::SourceHash,
            Scheduler::Dh => PickMethod::DestinationHash,
            Scheduler::Mh => PickMethod::Maglev,
            Scheduler::Lblc => PickMethod::Lblc,
            Scheduler::Lblcr => PickMethod::Lblcr,
        }
    }

    /// The flags of its own that the scheduler takes (sh and mh); `flag-N` for the others.
    pub fn flags(self) -> &'static [SchedFlag] {
        match self {
            Scheduler::Sh => SH_FLAGS,
            Scheduler::Mh => MH_FLAGS,
            _ => GENERIC_FLAGS,
        }
    }

    /// The flag `name` as `-b` gives it to this scheduler: Ok(bit), or Err(true) when the flag
    /// belongs to another scheduler and Err(false) when no scheduler has it.
    pub fn flag(self, name: &str) -> Result<u32, bool> {
        if let Some(f) = GENERIC_FLAGS.iter().find(|f| f.name == name) {
            return Ok(f.bit);
        }
        if let Some(f) = self.flags().iter().find(|f| f.name == name) {
            return Ok(f.bit);
        }
        Err(SH_FLAGS.iter().chain(MH_FLAGS).any(|f| f.name == name))
    }

    /// The names of the flags set in `bits`, comma-separated, as ipvsadm lists them.
    pub fn flag_names(self, bits: u32) -> String {
        self.flags()
            .iter()
            .filter(|f| bits & f.bit != 0)
            .map(|f| f.name)
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl std::fmt::Display for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_comes_back() {
        for s in Scheduler::ALL {
            assert_eq!(Scheduler::from_name(s.name()), Some(s));
        }
        assert_eq!(Scheduler::from_name("wlc2"), None);
        assert_eq!(Scheduler::ALL.len(), 14);
    }

    #[test]
    fn flags_belong_to_their_scheduler() {
        assert_eq!(Scheduler::Sh.flag("sh-port"), Ok(svc_flags::SCHED2));
        assert_eq!(Scheduler::Mh.flag("sh-port"), Err(true));
        assert_eq!(Scheduler::Wlc.flag("flag-3"), Ok(svc_flags::SCHED3));
        assert_eq!(Scheduler::Wlc.flag("bogus"), Err(false));
        assert_eq!(
            Scheduler::Mh.flag_names(svc_flags::SCHED1 | svc_flags::SCHED2),
            "mh-fallback,mh-port"
        );
        assert_eq!(Scheduler::Rr.flag_names(svc_flags::SCHED3), "flag-3");
    }
}
