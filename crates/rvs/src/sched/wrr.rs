//! Weighted round robin (ip_vs_wrr.c). The kernel walks the list in passes: in each pass it picks,
//! in list order, every real server whose weight is at least the current weight `cw`, then lowers
//! `cw` by the weights' gcd; below 1 it starts again at the top, `mw = max weight - (gcd - 1)`.
//! Laid out once, that is one period of the sequence: pass after pass from `cw = mw` down to 1.
//! A change to the real servers puts the cursor back at the list head and adjusts `cw`, so the
//! sequence resumes at the start of a pass.

use serde::{Deserialize, Serialize};

use super::{Plan, usable};
use crate::model::Dest;
use rvs_common::service::PickMethod;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Current weight (the kernel's mark->cw) at install: the plan starts at the pass for it.
    pub cw: i32,
}

/// gcd of the positive weights (1 if none), as ip_vs_wrr_gcd_weight.
pub fn gcd_weight(dests: &[Dest]) -> i32 {
    let mut g = 0;
    for d in dests.iter().filter(|d| d.config.weight > 0) {
        g = if g > 0 {
            gcd(d.config.weight, g)
        } else {
            d.config.weight
        };
    }
    if g > 0 { g } else { 1 }
}

/// Largest weight (0 if none), as ip_vs_wrr_max_weight.
pub fn max_weight(dests: &[Dest]) -> i32 {
    dests
        .iter()
        .map(|d| d.config.weight)
        .max()
        .unwrap_or(0)
        .max(0)
}

fn gcd(a: i32, b: i32) -> i32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The passes of one period: (cw of the pass, dest ids picked in it in list order).
fn passes(dests: &[Dest]) -> Vec<(i32, Vec<u32>)> {
    let di = gcd_weight(dests);
    let mw = max_weight(dests) - (di - 1);
    let mut out = Vec::new();
    let mut cw = mw;
    while cw > 0 {
        let picked = dests
            .iter()
            .filter(|d| usable(d) && d.config.weight >= cw)
            .map(|d| d.id)
            .collect();
        out.push((cw, picked));
        cw -= di;
    }
    out
}

impl State {
    pub fn plan(&self, dests: &[Dest]) -> Plan {
        let mut slots = Vec::new();
        let mut start = 0;
        for (cw, picked) in passes(dests) {
            if cw == self.cw {
                start = slots.len() as u32;
            }
            slots.extend(picked);
        }
        Plan {
            pick: PickMethod::Sequence,
            slots,
            start,
        }
    }

    /// After `picks` picks the kernel's cw is the weight of the pass the last pick was made in.
    pub fn settle(&mut self, dests: &[Dest], picks: u64) {
        let plan = self.plan(dests);
        if plan.slots.is_empty() {
            return;
        }
        let len = plan.slots.len() as u64;
        let last = ((plan.start as u64 + (picks - 1) % len) % len) as usize;
        let mut offset = 0;
        for (cw, picked) in passes(dests) {
            if last < offset + picked.len() {
                self.cw = cw;
                return;
            }
            offset += picked.len();
        }
    }

    /// ip_vs_wrr_dest_changed: new gcd and max weight; cw clamped to the new passes.
    pub fn dests_changed(&mut self, dests: &[Dest]) {
        let di = gcd_weight(dests);
        let mw = max_weight(dests) - (di - 1);
        if self.cw > mw || self.cw == 0 {
            self.cw = mw;
        } else if di > 1 {
            self.cw = (self.cw / di) * di + 1;
        }
    }
}
