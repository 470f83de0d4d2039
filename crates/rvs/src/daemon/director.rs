//! The director: answers control requests by changing the model under the kernel's rules and
//! writing the result into the data plane's maps. A change is computed on a copy of the model and
//! committed only when the maps took it, so a refused or failed request changes nothing.

use std::{
    collections::{BTreeSet, HashMap},
    path::PathBuf,
    time::Duration,
};

use anyhow::Result;
use rvs_common::maps::config_flags;
use tracing::{info, warn};

use super::{
    estimator::Estimator,
    expiry::{self, Sweep},
    state, views,
};
use crate::{
    control::proto::{Info, Request, Response},
    dataplane::{self, DestPlacement, DirectorMaps, ListSpace, Neighbours, NextHop, Table},
    model::{Model, ModelError, Service, ServiceId},
    sched,
};

/// How long adding a real server waits for its MAC address to resolve.
const RESOLVE_WAIT: Duration = Duration::from_millis(1500);

pub struct DirectorOptions {
    /// Where the model is saved after each change (None: not saved).
    pub state_file: Option<PathBuf>,
    /// Capacity of the connection table (reported by rvsadm's banner).
    pub conn_table_size: u32,
}

/// The data plane as the director drives it.
pub struct Plane {
    pub maps: DirectorMaps,
    pub neigh: Neighbours,
    /// Resolved next hop of each real-server id (None: not resolved yet).
    pub hops: HashMap<u32, Option<NextHop>>,
    /// Room in the real-server list array.
    pub space: ListSpace,
}

impl Plane {
    pub fn new(maps: DirectorMaps, neigh: Neighbours) -> Plane {
        let mut space = ListSpace::new(rvs_common::maps::SCHED_LIST_SIZE);
        // Lists of services carried over from a previous rvsd keep their ranges.
        for entry in maps.services.iter().filter_map(|e| e.ok()) {
            space.reserve(entry.1.list_off, entry.1.list_len);
        }
        Plane {
            maps,
            neigh,
            hops: HashMap::new(),
            space,
        }
    }

    /// Resolves real server `d`'s next hop (waiting a little for address resolution), records it
    /// and writes the server's entry as available. An unresolved server is written all the same:
    /// its flows wait until the next-hop refresh finds its MAC.
    async fn place_dest(&mut self, svc_index: u32, d: &crate::model::Dest) -> Result<()> {
        let hop = match self.neigh.resolve(d.addr.addr, RESOLVE_WAIT).await {
            Ok(Some(hop)) => Some(hop),
            Ok(None) => {
                warn!(
                    "real server {}: no answer to address resolution yet; its flows wait",
                    d.addr
                );
                None
            }
            Err(e) => {
                warn!("real server {}: {e:#}", d.addr);
                None
            }
        };
        self.hops.insert(d.id, hop);
        dataplane::write_dest(
            &mut self.maps,
            svc_index,
            d,
            DestPlacement {
                next_hop: hop,
                available: true,
            },
        )
    }
}

/// Which estimator: a service (by index) or a real server (by id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum EstKey {
    Service(u32),
    Dest(u32),
}

pub struct Director {
    pub(super) model: Model,
    pub(super) plane: Option<Plane>,
    pub(super) estimators: HashMap<EstKey, Estimator>,
    /// Handshakes dropped by expiry because the embryonic table ran nearly full.
    pub(super) dropped_embryonic: u64,
    opts: DirectorOptions,
}

/// Whether a change needs a new scheduler table.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Replan {
    Yes,
    No,
}

impl Director {
    /// A director over `model`; `plane` is None for a model-only director (tests, --check).
    pub fn new(model: Model, plane: Option<Plane>, opts: DirectorOptions) -> Director {
        Director {
            model,
            plane,
            estimators: HashMap::new(),
            dropped_embryonic: 0,
            opts,
        }
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Brings the maps in line with the model at start-up. With fresh maps every service is
    /// programmed; with maps carried over from a previous rvsd the installed tables are kept (their
    /// scheduler positions continue) and only what is missing or stale is rewritten.
    pub async fn reconcile(&mut self, resumed: bool) -> Result<()> {
        let Some(plane) = self.plane.as_mut() else {
            return Ok(());
        };
        let services = self.model.services.clone();
        for svc in &services {
            for d in &svc.dests {
                plane.place_dest(svc.index, d).await?;
            }
            let key = dataplane_service_key(&svc.id);
            if !resumed || plane.maps.services.get(&key, 0).is_err() {
                if !resumed {
                    plane.maps.zero_service_stats(svc.index)?;
                    for d in &svc.dests {
                        plane.maps.zero_dest(d.id)?;
                    }
                }
                let plan = sched::installed_plan(svc);
                let base = plane.maps.sched_counter(svc.index);
                dataplane::program_service(
                    &mut plane.maps,
                    &mut plane.space,
                    svc,
                    Table::New(&plan, base),
                )?;
            }
        }
        for t in &self.model.trash {
            let hop = plane.hops.get(&t.dest.id).copied().flatten();
            dataplane::write_dest(
                &mut plane.maps,
                u32::MAX,
                &t.dest,
                DestPlacement {
                    next_hop: hop,
                    available: false,
                },
            )?;
        }
        dataplane::write_mark_rules(&mut plane.maps, &self.model.mark_rules)?;
        self.sync_config();
        let Some(plane) = self.plane.as_mut() else {
            return Ok(());
        };
        // Services the maps hold but the model does not (a stale state file): remove them.
        let wanted: std::collections::HashSet<_> = services
            .iter()
            .map(|s| dataplane_service_key(&s.id))
            .collect();
        let stale: Vec<_> = plane
            .maps
            .services
            .keys()
            .filter_map(|k| k.ok())
            .filter(|k| !wanted.contains(k))
            .collect();
        for k in stale {
            warn!("removing a service the saved model does not know");
            let _ = plane.maps.services.remove(&k);
        }
        Ok(())
    }

    pub async fn handle(&mut self, req: Request) -> Response {
        match req {
            Request::Info => Response::Info(Info {
                ipvs_version: crate::IPVS_VERSION.to_owned(),
                rvs_version: crate::VERSION.to_owned(),
                conn_table_size: self.opts.conn_table_size,
            }),
            Request::AddService { service, config } => {
                let fresh = !self.model.services.iter().any(|s| s.id == service);
                let resp = self
                    .apply(service, Replan::Yes, |m| m.add_service(service, config))
                    .await;
                if fresh && resp == Response::Ok {
                    info!("added service {service}");
                }
                resp
            }
            Request::EditService { service, config } => {
                let replan = match self.model.service(&service) {
                    Some(s) if s.config.scheduler != config.scheduler => Replan::Yes,
                    _ => Replan::No,
                };
                self.apply(service, replan, |m| m.edit_service(&service, config))
                    .await
            }
            Request::DeleteService { service } => {
                self.apply(service, Replan::Yes, |m| m.delete_service(&service))
                    .await
            }
            Request::Clear => {
                let ids: Vec<ServiceId> = self.model.services.iter().map(|s| s.id).collect();
                for id in ids {
                    let r = self.apply(id, Replan::Yes, |m| m.delete_service(&id)).await;
                    if r != Response::Ok {
                        return r;
                    }
                }
                self.change_marks(|m| {
                    m.mark_rules.clear();
                    Ok(())
                })
            }
            Request::AddMarkRule { rule } => {
                let r = self.change_marks(|m| m.add_mark_rule(rule));
                if r == Response::Ok {
                    info!("added mark rule {rule}");
                }
                r
            }
            Request::DeleteMarkRule { rule } => self.change_marks(|m| m.delete_mark_rule(rule)),
            Request::ListMarkRules => Response::MarkRules {
                rules: self.model.mark_rules.clone(),
            },
            Request::AddDest {
                service,
                dest,
                config,
            } => {
                self.apply(service, Replan::Yes, |m| {
                    m.add_dest(&service, dest, config).map(|_| ())
                })
                .await
            }
            Request::EditDest {
                service,
                dest,
                config,
            } => {
                self.apply(service, Replan::Yes, |m| {
                    m.edit_dest(&service, dest, config)
                })
                .await
            }
            Request::DeleteDest { service, dest } => {
                self.apply(service, Replan::Yes, |m| m.delete_dest(&service, dest))
                    .await
            }
            Request::Zero { service } => self.zero(service),
            Request::SetTimeouts { timeouts } => {
                let mut next = self.model.clone();
                next.set_timeouts(timeouts);
                self.commit(next)
            }
            Request::GetTimeouts => Response::Timeouts {
                timeouts: self.model.timeouts,
            },
            Request::ListServices { service } => views::services(self, service),
            Request::ListConns => views::conns(self),
            Request::Counters => views::counters(self),
            // VRRP (issue 11): its own snapshot; the control server answers it before locking.
            Request::Vrrp => super::vrrp::status_response(),
        }
    }

    /// How many flows the data plane scheduled for `svc` since its table was installed.
    fn picks_since_install(&self, svc: &Service) -> u64 {
        let Some(plane) = &self.plane else { return 0 };
        let Ok(entry) = plane.maps.services.get(&dataplane_service_key(&svc.id), 0) else {
            return 0;
        };
        plane
            .maps
            .sched_counter(svc.index)
            .wrapping_sub(entry.counter_base)
    }

    /// Applies `f` to a copy of the model, writes the affected service into the maps and commits.
    async fn apply(
        &mut self,
        svc_id: ServiceId,
        replan: Replan,
        f: impl FnOnce(&mut Model) -> Result<(), ModelError>,
    ) -> Response {
        let mut next = self.model.clone();
        if replan == Replan::Yes
            && let Some(svc) = self.model.service(&svc_id)
        {
            let picks = self.picks_since_install(svc);
            if let Some(s) = next.services.iter_mut().find(|s| s.id == svc_id) {
                sched::settle(s, picks);
            }
        }
        if let Err(e) = f(&mut next) {
            return Response::Error {
                errno: e.errno,
                detail: e.detail,
            };
        }
        if let Err(e) = self.program(&mut next, svc_id, replan).await {
            warn!("{svc_id}: the data plane refused the change: {e:#}");
            return Response::Error {
                errno: libc::EIO,
                detail: format!("rvs: the data plane refused the change: {e:#}"),
            };
        }
        self.commit(next)
    }

    /// Writes service `svc_id` as it is in `next` into the maps.
    async fn program(&mut self, next: &mut Model, svc_id: ServiceId, replan: Replan) -> Result<()> {
        let Some(plane) = self.plane.as_mut() else {
            // Without a data plane, still run the scheduler hooks so the model's state is right.
            if replan == Replan::Yes
                && let Some(s) = next.services.iter_mut().find(|s| s.id == svc_id)
            {
                sched::plan(s);
            }
            return Ok(());
        };
        let before: BTreeSet<u32> = self
            .model
            .service(&svc_id)
            .map(|s| s.dests.iter().map(|d| d.id).collect())
            .unwrap_or_default();
        let revived: BTreeSet<u32> = self.model.trash.iter().map(|t| t.dest.id).collect();
        let old_index = self.model.service(&svc_id).map(|s| s.index);

        match next.services.iter_mut().find(|s| s.id == svc_id) {
            Some(svc) => {
                if old_index.is_none() {
                    plane.maps.zero_service_stats(svc.index)?;
                    self.estimators.remove(&EstKey::Service(svc.index));
                }
                for d in &svc.dests {
                    // __ip_vs_update_dest: a new upper threshold of 0, or a higher one, clears
                    // OVERLOAD (an edit never sets it; the next connection bound does).
                    let old_upper = self
                        .model
                        .service(&svc_id)
                        .and_then(|s| s.dest(&d.addr))
                        .map(|o| o.config.u_threshold);
                    if old_upper
                        .is_none_or(|u| d.config.u_threshold == 0 || d.config.u_threshold > u)
                    {
                        plane
                            .maps
                            .dest_conns
                            .set(d.id, dataplane::Field::Overloaded, 0);
                    }
                    if before.contains(&d.id) && plane.hops.get(&d.id).copied().flatten().is_some()
                    {
                        // Known real server: refresh its entry (weight may have changed).
                        let hop = plane.hops[&d.id];
                        dataplane::write_dest(
                            &mut plane.maps,
                            svc.index,
                            d,
                            DestPlacement {
                                next_hop: hop,
                                available: true,
                            },
                        )?;
                        continue;
                    }
                    if !before.contains(&d.id) && !revived.contains(&d.id) {
                        plane.maps.zero_dest(d.id)?;
                        self.estimators.remove(&EstKey::Dest(d.id));
                    }
                    plane.place_dest(svc.index, d).await?;
                }
                if replan == Replan::Yes {
                    let plan = sched::plan(svc);
                    let base = plane.maps.sched_counter(svc.index);
                    dataplane::program_service(
                        &mut plane.maps,
                        &mut plane.space,
                        svc,
                        Table::New(&plan, base),
                    )?;
                } else {
                    dataplane::program_service(
                        &mut plane.maps,
                        &mut plane.space,
                        svc,
                        Table::Keep,
                    )?;
                }
            }
            None => {
                if let Some(old) = self.model.service(&svc_id) {
                    dataplane::remove_service(&mut plane.maps, &mut plane.space, old)?;
                }
            }
        }
        // Real servers that left the list keep forwarding their flows but take no new ones.
        let now_live: BTreeSet<u32> = next
            .service(&svc_id)
            .map(|s| s.dests.iter().map(|d| d.id).collect())
            .unwrap_or_default();
        for t in next
            .trash
            .iter()
            .filter(|t| before.contains(&t.dest.id) && !now_live.contains(&t.dest.id))
        {
            let hop = plane.hops.get(&t.dest.id).copied().flatten();
            dataplane::write_dest(
                &mut plane.maps,
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

    /// Tells the data plane whether any real server (listed or draining) is reached by NAT, so
    /// that it looks replies up only when there can be some.
    fn sync_config(&mut self) {
        let Some(plane) = self.plane.as_mut() else {
            return;
        };
        let nat = self
            .model
            .services
            .iter()
            .flat_map(|s| s.dests.iter())
            .chain(self.model.trash.iter().map(|t| &t.dest))
            .any(|d| d.config.fwd == crate::model::FwdMethod::Masq);
        let marks = !self.model.mark_rules.is_empty()
            && self
                .model
                .services
                .iter()
                .any(|s| matches!(s.id, ServiceId::Fwmark { .. }));
        let mut config = plane.maps.config.get(&0, 0).unwrap_or_default();
        let mut flags = config.flags & !(config_flags::NAT_ACTIVE | config_flags::MARKS_ACTIVE);
        if nat {
            flags |= config_flags::NAT_ACTIVE;
        }
        if marks {
            flags |= config_flags::MARKS_ACTIVE;
        }
        if flags != config.flags {
            config.flags = flags;
            if let Err(e) = plane.maps.config.set(0, config, 0) {
                warn!("writing the data plane's settings: {e}");
            }
        }
    }

    /// Applies `f` to the mark rules of a copy of the model, writes them into the classification
    /// trie and commits; if the trie refuses, it is put back as it was.
    fn change_marks(&mut self, f: impl FnOnce(&mut Model) -> Result<(), ModelError>) -> Response {
        let mut next = self.model.clone();
        if let Err(e) = f(&mut next) {
            return Response::Error {
                errno: e.errno,
                detail: e.detail,
            };
        }
        if let Some(plane) = self.plane.as_mut()
            && let Err(e) = dataplane::write_mark_rules(&mut plane.maps, &next.mark_rules)
        {
            warn!("the data plane refused the mark rules: {e:#}");
            let _ = dataplane::write_mark_rules(&mut plane.maps, &self.model.mark_rules);
            return Response::Error {
                errno: libc::EIO,
                detail: format!("rvs: the data plane refused the mark rules: {e:#}"),
            };
        }
        self.commit(next)
    }

    fn commit(&mut self, next: Model) -> Response {
        if let Some(path) = &self.opts.state_file
            && let Err(e) = state::save(path, &next)
        {
            warn!("saving the model: {e:#}");
            return Response::Error {
                errno: libc::EIO,
                detail: format!("rvs: saving the model failed: {e:#}"),
            };
        }
        self.model = next;
        self.sync_config();
        Response::Ok
    }

    fn zero(&mut self, service: Option<ServiceId>) -> Response {
        let targets: Vec<&Service> = match &service {
            Some(id) => match self.model.service(id) {
                Some(s) => vec![s],
                None => {
                    return Response::Error {
                        errno: libc::ESRCH,
                        detail: format!("service {id} does not exist"),
                    };
                }
            },
            None => self.model.services.iter().collect(),
        };
        let mut keys = Vec::new();
        for s in &targets {
            keys.push((EstKey::Service(s.index), s.index, true));
            for d in &s.dests {
                keys.push((EstKey::Dest(d.id), d.id, false));
            }
        }
        if let Some(plane) = self.plane.as_mut() {
            for (_, id, is_service) in &keys {
                let r = if *is_service {
                    plane.maps.zero_service_stats(*id)
                } else {
                    plane.maps.zero_dest_stats(*id)
                };
                if let Err(e) = r {
                    return Response::Error {
                        errno: libc::EIO,
                        detail: format!("rvs: zeroing counters failed: {e:#}"),
                    };
                }
            }
        }
        for (key, ..) in keys {
            self.estimators.insert(key, Estimator::default());
        }
        Response::Ok
    }

    /// One estimator tick (every 2 s).
    pub fn estimate(&mut self) {
        let Some(plane) = &self.plane else { return };
        let mut seen = BTreeSet::new();
        for s in &self.model.services {
            let now = views::stats_view(plane.maps.service_stats(s.index));
            self.estimators
                .entry(EstKey::Service(s.index))
                .or_insert_with(|| Estimator::new(now))
                .sample(now);
            seen.insert(EstKey::Service(s.index));
            for d in &s.dests {
                let now = views::stats_view(plane.maps.dest_stats(d.id));
                self.estimators
                    .entry(EstKey::Dest(d.id))
                    .or_insert_with(|| Estimator::new(now))
                    .sample(now);
                seen.insert(EstKey::Dest(d.id));
            }
        }
        self.estimators.retain(|k, _| seen.contains(k));
    }

    /// What a connection-expiry walk needs, and the ids in the trash when the walk starts.
    pub fn expiry_inputs(&self) -> (expiry::Inputs, BTreeSet<u32>) {
        let trash = self.model.trash.iter().map(|t| t.dest.id).collect();
        let mut inputs = expiry::Inputs {
            timeouts: self.model.timeouts,
            flush: self.model.flushed_dest_ids(),
            embryonic_capacity: rvs_common::maps::conns_new_size(self.opts.conn_table_size),
            ..Default::default()
        };
        for s in &self.model.services {
            for d in &s.dests {
                inputs
                    .thresholds
                    .insert(d.id, (d.config.u_threshold, d.config.l_threshold));
            }
            if s.config.persistent() {
                let port = s.id.port();
                inputs.persist.insert(
                    s.index,
                    expiry::PersistRule {
                        timeout_s: s.config.timeout,
                        netmask4: if s.id.is_ipv6() {
                            0
                        } else {
                            s.config.netmask.to_be()
                        },
                        prefix6: if s.id.is_ipv6() {
                            s.config.netmask.min(128) as u8
                        } else {
                            0
                        },
                        any_port: port == 0 || port == 21,
                    },
                );
            }
        }
        for t in &self.model.trash {
            inputs.thresholds.insert(
                t.dest.id,
                (t.dest.config.u_threshold, t.dest.config.l_threshold),
            );
        }
        for d in self
            .model
            .services
            .iter()
            .flat_map(|s| s.dests.iter())
            .chain(self.model.trash.iter().map(|t| &t.dest))
            .filter(|d| d.config.fwd == crate::model::FwdMethod::Masq)
        {
            inputs.nat_dests.insert(
                d.id,
                (dataplane::ip_words(&d.addr.addr), d.addr.port.to_be()),
            );
        }
        (inputs, trash)
    }

    /// Service indexes using lblc and using lblcr (their caches keep only these).
    pub fn locality_services(&self) -> (BTreeSet<u32>, BTreeSet<u32>) {
        let of = |name: &str| {
            self.model
                .services
                .iter()
                .filter(|s| s.config.scheduler == name)
                .map(|s| s.index)
                .collect()
        };
        (of("lblc"), of("lblcr"))
    }

    /// Frees trashed real servers that no flow referred to during a complete walk.
    pub fn expiry_done(&mut self, sweep: &Sweep, trash_at_start: &BTreeSet<u32>) {
        self.dropped_embryonic += sweep.dropped_embryonic as u64;
        if !sweep.complete {
            return;
        }
        // Ids trashed after the walk started may have flows the walk did not reach: keep them.
        let mut keep = sweep.referenced.clone();
        keep.extend(
            self.model
                .trash
                .iter()
                .map(|t| t.dest.id)
                .filter(|id| !trash_at_start.contains(id)),
        );
        let mut next = self.model.clone();
        let released = next.release_unreferenced(&keep);
        if released.is_empty() {
            return;
        }
        if let Some(plane) = self.plane.as_mut() {
            for id in &released {
                let _ = plane
                    .maps
                    .dests
                    .set(*id, rvs_common::dest::DestEntry::default(), 0);
                plane.hops.remove(id);
            }
        }
        let _ = self.commit(next);
    }

    /// Re-resolves next hops and rewrites real servers whose MAC or interface changed.
    pub async fn refresh_next_hops(&mut self) {
        let Some(plane) = self.plane.as_mut() else {
            return;
        };
        for svc in &self.model.services {
            for d in &svc.dests {
                let wait = Duration::ZERO;
                let hop = match plane.neigh.resolve(d.addr.addr, wait).await {
                    Ok(h) => h,
                    Err(e) => {
                        warn!("real server {}: {e:#}", d.addr);
                        None
                    }
                };
                let old = plane.hops.get(&d.id).copied().flatten();
                if hop.is_some() && hop != old {
                    info!("real server {}: next hop now {:?}", d.addr, hop);
                    plane.hops.insert(d.id, hop);
                    let at = DestPlacement {
                        next_hop: hop,
                        available: true,
                    };
                    if let Err(e) = dataplane::write_dest(&mut plane.maps, svc.index, d, at) {
                        warn!("real server {}: {e:#}", d.addr);
                    }
                }
            }
        }
    }
}

fn dataplane_service_key(id: &ServiceId) -> rvs_common::service::ServiceKey {
    dataplane::service_key(id)
}
