//! The director: the one owner of the model and the map writer. It answers control requests by
//! changing the model under the kernel's rules and writing the result into the data plane's maps.
//! A change is computed on a copy of the model and committed only when the maps took it and the
//! state file was saved; otherwise the maps are put back as the model has them and the caller is
//! told, so a refused or failed request changes nothing.
//!
//! It does no waiting of its own: next hops are resolved by whoever sends a request (or by the
//! next-hop refresh task) and handed in with [`Director::learn_next_hops`], and readers never ask
//! it for anything but work from the [`DirectorView`] it publishes after every change.

mod program;
#[cfg(test)]
mod tests;

use std::{
    collections::{BTreeSet, HashMap},
    net::IpAddr,
    path::PathBuf,
    sync::Arc,
};

use anyhow::Result;
use rvs_common::maps::config_flags;
use tracing::{error, info, warn};

use super::{
    estimator::Estimator,
    expiry::Sweep,
    state,
    view::{self, DirectorView, EstKey},
};
use crate::{
    control::proto::{Request, Response},
    dataplane::{self, DestPlacement, ListSpace, MapsWrite, NextHop, Table},
    model::{Model, ModelError, Service, ServiceId},
    sched,
};

pub struct DirectorOptions {
    /// Where the model is saved after each change (None: not saved).
    pub state_file: Option<PathBuf>,
    /// Capacity of the connection table (reported by rvsadm's banner).
    pub conn_table_size: u32,
}

/// Whether a change needs a new scheduler table.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Replan {
    Yes,
    No,
}

pub struct Director {
    model: Arc<Model>,
    maps: Box<dyn MapsWrite>,
    /// The next hop each real-server id was last written with (None: written unresolved).
    hops: HashMap<u32, Option<NextHop>>,
    /// Next hops learned by address, from resolutions made outside the director.
    known_hops: HashMap<IpAddr, NextHop>,
    /// Room in the real-server list array.
    space: ListSpace,
    estimators: HashMap<EstKey, Estimator>,
    /// Rates as last estimated, published with the view.
    rates: Arc<HashMap<EstKey, crate::control::proto::RateView>>,
    /// Handshakes dropped by expiry because the embryonic table ran nearly full.
    dropped_embryonic: u64,
    opts: DirectorOptions,
}

impl Director {
    /// A director over `model` writing into `maps` (the pinned maps, or a fake in tests).
    pub fn new(model: Model, maps: Box<dyn MapsWrite>, opts: DirectorOptions) -> Director {
        let mut space = ListSpace::new(rvs_common::maps::SCHED_LIST_SIZE);
        // Lists of services carried over from a previous rvsd keep their ranges.
        for key in maps.service_keys() {
            if let Some(e) = maps.service(&key) {
                space.reserve(e.list_off, e.list_len);
            }
        }
        Director {
            model: Arc::new(model),
            maps,
            hops: HashMap::new(),
            known_hops: HashMap::new(),
            space,
            estimators: HashMap::new(),
            rates: Arc::default(),
            dropped_embryonic: 0,
            opts,
        }
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// What readers see: the model, rates and counters as of the last change.
    pub fn view(&self) -> DirectorView {
        DirectorView {
            model: self.model.clone(),
            rates: self.rates.clone(),
            dropped_embryonic: self.dropped_embryonic,
            conn_table_size: self.opts.conn_table_size,
        }
    }

    /// Turns the data plane's reports of flows to sync on (IPVS's threshold and period) or off.
    pub fn set_sync(&mut self, rule: Option<dataplane::sync_feed::SyncRule>) -> Result<()> {
        dataplane::sync_feed::set_sync(&mut *self.maps, rule)
    }

    /// Next hops resolved outside the director; used when a real server of that address is
    /// written next. `None` results are ignored (an unresolved server waits for the refresh).
    pub fn learn_next_hops(&mut self, found: impl IntoIterator<Item = (IpAddr, Option<NextHop>)>) {
        for (addr, hop) in found {
            if let Some(hop) = hop {
                self.known_hops.insert(addr, hop);
            }
        }
    }

    /// Brings the maps in line with the model at start-up. With fresh maps every service is
    /// programmed; with maps carried over from a previous rvsd the installed tables are kept (their
    /// scheduler positions continue) and only what is missing or stale is rewritten.
    pub fn reconcile(&mut self, resumed: bool) -> Result<()> {
        let services = self.model.services.clone();
        for svc in &services {
            for d in &svc.dests {
                self.place_dest(svc.index, d)?;
            }
            let key = dataplane::service_key(&svc.id);
            if !resumed || self.maps.service(&key).is_none() {
                if !resumed {
                    self.maps.zero_service_stats(svc.index)?;
                    for d in &svc.dests {
                        self.maps.zero_dest(d.id)?;
                    }
                }
                let plan = sched::installed_plan(svc);
                let base = self.maps.sched_counter(svc.index);
                dataplane::program_service(
                    &mut *self.maps,
                    &mut self.space,
                    svc,
                    Table::New(&plan, base),
                )?;
            }
        }
        for t in &self.model.trash {
            let hop = self.hop_for(t.dest.id, t.dest.addr.addr);
            self.hops.insert(t.dest.id, hop);
            dataplane::write_dest(
                &mut *self.maps,
                u32::MAX,
                &t.dest,
                DestPlacement {
                    next_hop: hop,
                    available: false,
                },
            )?;
        }
        dataplane::write_mark_rules(&mut *self.maps, &self.model.mark_rules)?;
        self.sync_config();
        // Services the maps hold but the model does not (a stale state file): remove them.
        let wanted: std::collections::HashSet<_> = services
            .iter()
            .map(|s| dataplane::service_key(&s.id))
            .collect();
        for k in self.maps.service_keys() {
            if !wanted.contains(&k) {
                warn!("removing a service the saved model does not know");
                let _ = self.maps.remove_service(&k);
            }
        }
        Ok(())
    }

    /// Applies one request. Requests that only read are answered from the view, as the control
    /// socket answers them without the director.
    pub fn handle(&mut self, req: Request) -> Response {
        match req {
            Request::AddService { service, config } => {
                let fresh = self.model.service(&service).is_none();
                let warning = sloppy_warning(&service, &config);
                let resp = self.apply(service, Replan::Yes, |m| m.add_service(service, config));
                if fresh && resp == Response::Ok {
                    info!("added service {service}");
                }
                if let (Some(w), Response::Ok) = (warning, &resp) {
                    warn!("{w}");
                }
                resp
            }
            Request::EditService { service, config } => {
                let replan = match self.model.service(&service) {
                    Some(s) if s.config.scheduler != config.scheduler => Replan::Yes,
                    _ => Replan::No,
                };
                let warning = sloppy_warning(&service, &config);
                let resp = self.apply(service, replan, |m| m.edit_service(&service, config));
                if let (Some(w), Response::Ok) = (warning, &resp) {
                    warn!("{w}");
                }
                resp
            }
            Request::DeleteService { service } => {
                self.apply(service, Replan::Yes, |m| m.delete_service(&service))
            }
            Request::Clear => {
                let ids: Vec<ServiceId> = self.model.services.iter().map(|s| s.id).collect();
                for id in ids {
                    let r = self.apply(id, Replan::Yes, |m| m.delete_service(&id));
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
            Request::AddDest {
                service,
                dest,
                config,
            } => {
                if let Some(refusal) = subnet_broadcast(&dest.addr) {
                    return refusal;
                }
                self.apply(service, Replan::Yes, |m| {
                    m.add_dest(&service, dest, config).map(|_| ())
                })
            }
            Request::EditDest {
                service,
                dest,
                config,
            } => self.apply(service, Replan::Yes, |m| {
                m.edit_dest(&service, dest, config)
            }),
            Request::DeleteDest { service, dest } => {
                self.apply(service, Replan::Yes, |m| m.delete_dest(&service, dest))
            }
            Request::Zero { service } => self.zero(service),
            Request::SetTimeouts { timeouts } => {
                let mut next = (*self.model).clone();
                next.set_timeouts(timeouts);
                match self.save(&next) {
                    Ok(()) => {
                        self.model = Arc::new(next);
                        Response::Ok
                    }
                    Err(r) => r,
                }
            }
            read => view::answer_read(&self.view(), &*self.maps, &read).unwrap_or_else(|| {
                Response::Error {
                    errno: libc::EINVAL,
                    detail: format!("rvs: the director cannot answer {read:?}"),
                }
            }),
        }
    }

    /// How many flows the data plane scheduled for `svc` since its table was installed.
    fn picks_since_install(&self, svc: &Service) -> u64 {
        let Some(entry) = self.maps.service(&dataplane::service_key(&svc.id)) else {
            return 0;
        };
        self.maps
            .sched_counter(svc.index)
            .wrapping_sub(entry.counter_base)
    }

    /// Applies `f` to a copy of the model, writes the affected service into the maps and commits.
    fn apply(
        &mut self,
        svc_id: ServiceId,
        replan: Replan,
        f: impl FnOnce(&mut Model) -> Result<(), ModelError>,
    ) -> Response {
        let mut next = (*self.model).clone();
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
        let current = self.model.clone();
        if let Err(e) = self.program(&current, &mut next, svc_id, replan, program::Mode::Change) {
            warn!("{svc_id}: the data plane refused the change: {e:#}");
            self.restore(&next, svc_id);
            return Response::Error {
                errno: libc::EIO,
                detail: format!("rvs: the data plane refused the change: {e:#}"),
            };
        }
        if let Err(r) = self.save(&next) {
            self.restore(&next, svc_id);
            return r;
        }
        self.model = Arc::new(next);
        self.sync_config();
        Response::Ok
    }

    /// Saves `next` as the state file; the error is the caller's answer.
    fn save(&self, next: &Model) -> Result<(), Response> {
        let Some(path) = &self.opts.state_file else {
            return Ok(());
        };
        state::save(path, next).map_err(|e| {
            error!("saving the model to {}: {e:#}", path.display());
            Response::Error {
                errno: libc::EIO,
                detail: format!("rvs: saving the model failed, nothing was changed: {e:#}"),
            }
        })
    }

    /// Tells the data plane whether any real server (listed or draining) is reached by NAT, so
    /// that it looks replies up only when there can be some.
    fn sync_config(&mut self) {
        let nat = self
            .model
            .every_dest()
            .any(|d| d.config.fwd == crate::model::FwdMethod::Masq);
        let marks = !self.model.mark_rules.is_empty()
            && self
                .model
                .services
                .iter()
                .any(|s| matches!(s.id, ServiceId::Fwmark { .. }));
        let mut config = self.maps.config();
        let mut flags = config.flags & !(config_flags::NAT_ACTIVE | config_flags::MARKS_ACTIVE);
        if nat {
            flags |= config_flags::NAT_ACTIVE;
        }
        if marks {
            flags |= config_flags::MARKS_ACTIVE;
        }
        if flags != config.flags {
            config.flags = flags;
            if let Err(e) = self.maps.set_config(config) {
                warn!("writing the data plane's settings: {e:#}");
            }
        }
    }

    /// Applies `f` to the mark rules of a copy of the model, writes them into the classification
    /// trie and commits; if the trie or the save refuses, the trie is put back as it was.
    fn change_marks(&mut self, f: impl FnOnce(&mut Model) -> Result<(), ModelError>) -> Response {
        let mut next = (*self.model).clone();
        if let Err(e) = f(&mut next) {
            return Response::Error {
                errno: e.errno,
                detail: e.detail,
            };
        }
        let refused = match dataplane::write_mark_rules(&mut *self.maps, &next.mark_rules) {
            Err(e) => {
                warn!("the data plane refused the mark rules: {e:#}");
                Some(Response::Error {
                    errno: libc::EIO,
                    detail: format!("rvs: the data plane refused the mark rules: {e:#}"),
                })
            }
            Ok(()) => self.save(&next).err(),
        };
        if let Some(r) = refused {
            if let Err(e) = dataplane::write_mark_rules(&mut *self.maps, &self.model.mark_rules) {
                error!("putting the mark rules back: {e:#}");
            }
            return r;
        }
        self.model = Arc::new(next);
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
            keys.push(EstKey::Service(s.index));
            for d in &s.dests {
                keys.push(EstKey::Dest(d.id));
            }
        }
        for key in &keys {
            let r = match *key {
                EstKey::Service(index) => self.maps.zero_service_stats(index),
                EstKey::Dest(id) => self.maps.zero_dest_stats(id),
            };
            if let Err(e) = r {
                return Response::Error {
                    errno: libc::EIO,
                    detail: format!("rvs: zeroing counters failed: {e:#}"),
                };
            }
        }
        for key in keys {
            self.estimators.insert(key, Estimator::default());
        }
        self.publish_rates();
        Response::Ok
    }

    /// One estimator tick (every 2 s).
    pub fn estimate(&mut self) {
        let mut seen = BTreeSet::new();
        for s in &self.model.services {
            let keys = std::iter::once(EstKey::Service(s.index))
                .chain(s.dests.iter().map(|d| EstKey::Dest(d.id)));
            for key in keys {
                let now = view::stats_view(match key {
                    EstKey::Service(index) => self.maps.service_stats(index),
                    EstKey::Dest(id) => self.maps.dest_stats(id),
                });
                self.estimators
                    .entry(key)
                    .or_insert_with(|| Estimator::new(now))
                    .sample(now);
                seen.insert(key);
            }
        }
        self.estimators.retain(|k, _| seen.contains(k));
        self.publish_rates();
    }

    fn publish_rates(&mut self) {
        self.rates = Arc::new(
            self.estimators
                .iter()
                .map(|(k, e)| (*k, e.rates()))
                .collect(),
        );
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
        let mut next = (*self.model).clone();
        let released = next.release_unreferenced(&keep);
        if released.is_empty() {
            return;
        }
        // Saved first: a saved model that still lists a freed id only costs a stale trash
        // entry after a restart, while the reverse would lose a draining server.
        if self.save(&next).is_err() {
            return;
        }
        for id in &released {
            if let Err(e) = self
                .maps
                .set_dest(*id, rvs_common::dest::DestEntry::default())
            {
                warn!("clearing freed real server {id}: {e:#}");
            }
            self.hops.remove(id);
        }
        self.model = Arc::new(next);
    }

    /// Next hops found by the refresh task: real servers whose MAC or interface changed (or that
    /// were unresolved) are rewritten.
    pub fn next_hops(&mut self, found: Vec<(IpAddr, Option<NextHop>)>) {
        self.learn_next_hops(found);
        let model = self.model.clone();
        for svc in &model.services {
            for d in &svc.dests {
                let Some(hop) = self.known_hops.get(&d.addr.addr).copied() else {
                    continue;
                };
                if self.hops.get(&d.id).copied().flatten() == Some(hop) {
                    continue;
                }
                info!("real server {}: next hop now {:?}", d.addr, hop);
                self.hops.insert(d.id, Some(hop));
                let at = DestPlacement {
                    next_hop: Some(hop),
                    available: true,
                };
                if let Err(e) = dataplane::write_dest(&mut *self.maps, svc.index, d, at) {
                    warn!("real server {}: {e:#}", d.addr);
                }
            }
        }
    }

    /// The hop real server `id` at `addr` is written with.
    fn hop_for(&self, id: u32, addr: IpAddr) -> Option<NextHop> {
        self.known_hops
            .get(&addr)
            .copied()
            .or_else(|| self.hops.get(&id).copied().flatten())
    }

    /// Writes real server `d` as available, with the next hop known for its address. An
    /// unresolved server is written all the same: its flows wait until the next-hop refresh
    /// finds its MAC.
    fn place_dest(&mut self, svc_index: u32, d: &crate::model::Dest) -> Result<()> {
        let hop = self.hop_for(d.id, d.addr.addr);
        if hop.is_none() {
            warn!(
                "real server {}: no answer to address resolution yet; its flows wait",
                d.addr
            );
        }
        self.hops.insert(d.id, hop);
        dataplane::write_dest(
            &mut *self.maps,
            svc_index,
            d,
            DestPlacement {
                next_hop: hop,
                available: true,
            },
        )
    }
}

/// The warning for a sloppy service whose scheduler picks by its own state: behind ECMP, a flow
/// another director opened may reach another real server here.
fn sloppy_warning(service: &ServiceId, config: &crate::model::ServiceConfig) -> Option<String> {
    let hashed = crate::sched::Scheduler::from_name(&config.scheduler)
        .is_some_and(crate::sched::Scheduler::same_on_every_director);
    (config.sloppy_tcp() && !hashed).then(|| {
        format!(
            "service {service} is sloppy with scheduler {}: a flow another director opened may \
             reach another real server here (only sh, dh and mh pick the same one on every \
             director)",
            config.scheduler
        )
    })
}

/// The kernel's refusal of a real server at the broadcast address of one of the director's
/// subnets (inet_addr_type says RTN_BROADCAST: the kernel adds a broadcast route for each
/// address with a prefix shorter than /31), which only the director's interfaces tell.
fn subnet_broadcast(addr: &std::net::IpAddr) -> Option<Response> {
    let std::net::IpAddr::V4(v4) = addr else {
        return None;
    };
    let ifaddrs = nix::ifaddrs::getifaddrs().ok()?;
    for a in ifaddrs {
        let sin = |s: &Option<nix::sys::socket::SockaddrStorage>| {
            s.as_ref()
                .and_then(|s| s.as_sockaddr_in())
                .map(|s| u32::from(s.ip()))
        };
        let (Some(ip), Some(mask)) = (sin(&a.address), sin(&a.netmask)) else {
            continue;
        };
        let subnet = (mask.count_ones() < 31).then_some(ip | !mask);
        if subnet == Some(u32::from(*v4)) || sin(&a.broadcast) == Some(u32::from(*v4)) {
            return Some(Response::Error {
                errno: libc::EINVAL,
                detail: format!(
                    "{v4} is the broadcast address of {}'s subnet",
                    a.interface_name
                ),
            });
        }
    }
    None
}
