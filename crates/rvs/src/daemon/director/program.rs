//! Writing one service, as a change brought it, into the maps, and putting it back when the
//! change is refused part-way (by the maps or by a failed save).

use std::collections::BTreeSet;

use anyhow::Result;
use tracing::error;

use super::{Director, EstKey, Replan};
use crate::{
    dataplane::{self, DestPlacement, Table},
    model::{Model, ServiceId},
    sched,
};

/// Why a service is written.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Mode {
    /// A change: new services and real servers start with zeroed counters.
    Change,
    /// Putting the model's version back after a refused change: counters are kept.
    Restore,
}

impl Director {
    /// Writes service `svc_id` as it is in `to` into the maps, which hold it as it is in `from`.
    pub(super) fn program(
        &mut self,
        from: &Model,
        to: &mut Model,
        svc_id: ServiceId,
        replan: Replan,
        mode: Mode,
    ) -> Result<()> {
        let before: BTreeSet<u32> = from
            .service(&svc_id)
            .map(|s| s.dests.iter().map(|d| d.id).collect())
            .unwrap_or_default();
        let revived: BTreeSet<u32> = from.trash.iter().map(|t| t.dest.id).collect();
        let old_index = from.service(&svc_id).map(|s| s.index);

        match to.services.iter_mut().find(|s| s.id == svc_id) {
            Some(svc) => {
                if old_index.is_none() && mode == Mode::Change {
                    self.maps.zero_service_stats(svc.index)?;
                    self.estimators.remove(&EstKey::Service(svc.index));
                }
                for d in &svc.dests {
                    // __ip_vs_update_dest: a new upper threshold of 0, or a higher one, clears
                    // OVERLOAD (an edit never sets it; the next connection bound does).
                    let old_upper = from
                        .service(&svc_id)
                        .and_then(|s| s.dest(&d.addr))
                        .map(|o| o.config.u_threshold);
                    if old_upper
                        .is_none_or(|u| d.config.u_threshold == 0 || d.config.u_threshold > u)
                    {
                        self.maps.clear_overloaded(d.id);
                    }
                    if !before.contains(&d.id) && !revived.contains(&d.id) && mode == Mode::Change {
                        self.maps.zero_dest(d.id)?;
                        self.estimators.remove(&EstKey::Dest(d.id));
                    }
                    self.place_dest(svc.index, d)?;
                }
                let table = match replan {
                    Replan::Yes => Some(sched::plan(svc)),
                    Replan::No => None,
                };
                let table = match &table {
                    Some(plan) => Table::New(plan, self.maps.sched_counter(svc.index)),
                    None => Table::Keep,
                };
                dataplane::program_service(&mut *self.maps, &mut self.space, svc, table)?;
            }
            None => {
                if let Some(old) = from.service(&svc_id) {
                    dataplane::remove_service(&mut *self.maps, &mut self.space, old)?;
                }
            }
        }
        // Real servers that left the list keep forwarding their flows but take no new ones.
        let now_live: BTreeSet<u32> = to
            .service(&svc_id)
            .map(|s| s.dests.iter().map(|d| d.id).collect())
            .unwrap_or_default();
        for t in to
            .trash
            .iter()
            .filter(|t| before.contains(&t.dest.id) && !now_live.contains(&t.dest.id))
        {
            let hop = self.hops.get(&t.dest.id).copied().flatten();
            dataplane::write_dest(
                &mut *self.maps,
                old_index.unwrap_or(u32::MAX),
                &t.dest,
                DestPlacement {
                    next_hop: hop,
                    available: false,
                },
            )?;
        }
        Ok(())
    }

    /// After a change to `svc_id` was refused part-way, with the maps holding some of
    /// `written`: writes the service back as the model has it, and clears real servers that
    /// only the refused change had.
    pub(super) fn restore(&mut self, written: &Model, svc_id: ServiceId) {
        let mut back = (*self.model).clone();
        if let Err(e) = self.program(written, &mut back, svc_id, Replan::Yes, Mode::Restore) {
            // The maps now match neither model; say so loudly, the next change rewrites them.
            error!("{svc_id}: putting the data plane back failed too: {e:#}");
            return;
        }
        let known: BTreeSet<u32> = back.every_dest().map(|d| d.id).collect();
        let added = written
            .services
            .iter()
            .flat_map(|s| s.dests.iter())
            .map(|d| d.id)
            .filter(|id| !known.contains(id));
        for id in added.collect::<Vec<_>>() {
            let _ = self
                .maps
                .set_dest(id, rvs_common::dest::DestEntry::default());
            self.hops.remove(&id);
        }
        // `back` differs from the model only in its scheduler state, which the new table follows.
        self.model = std::sync::Arc::new(back);
    }
}
