//! Round robin (ip_vs_rr.c): the cursor is the last chosen real server; the next pick is the
//! first usable one after it in list order, wrapping round.

use serde::{Deserialize, Serialize};

use super::{Plan, usable};
use crate::model::{Dest, DestAddr};
use rvs_common::service::PickMethod;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The last chosen real server; None is the list head (nothing chosen yet).
    pub cursor: Option<DestAddr>,
}

impl State {
    /// The plan is the usable real servers in list order, starting after the cursor.
    pub fn plan(&self, dests: &[Dest]) -> Plan {
        let slots: Vec<u32> = dests.iter().filter(|d| usable(d)).map(|d| d.id).collect();
        if slots.is_empty() {
            return Plan::none_with(PickMethod::Sequence);
        }
        let first_after = match self
            .cursor
            .and_then(|c| dests.iter().position(|d| d.addr == c))
        {
            None => 0,
            Some(pos) => pos + 1,
        };
        // The first usable real server at or after `first_after`, wrapping round.
        let next = (0..dests.len())
            .map(|k| &dests[(first_after + k) % dests.len()])
            .find(|d| usable(d))
            .expect("slots is not empty");
        let start = slots.iter().position(|&id| id == next.id).unwrap_or(0) as u32;
        Plan {
            pick: PickMethod::Sequence,
            slots,
            start,
        }
    }

    pub fn settle(&mut self, dests: &[Dest], picks: u64) {
        let plan = self.plan(dests);
        if let Some(id) = plan.slot(picks - 1) {
            self.cursor = dests.iter().find(|d| d.id == id).map(|d| d.addr);
        }
    }

    /// ip_vs_rr_del_dest: a cursor on the removed real server moves to the one before it.
    pub fn dest_removed(&mut self, removed: &DestAddr, pos: usize, remaining: &[Dest]) {
        if self.cursor == Some(*removed) {
            self.cursor = if pos == 0 {
                None
            } else {
                Some(remaining[pos - 1].addr)
            };
        }
    }
}

impl Plan {
    pub(super) fn none_with(pick: PickMethod) -> Plan {
        Plan {
            pick,
            slots: Vec::new(),
            start: 0,
        }
    }
}
