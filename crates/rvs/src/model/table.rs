//! The table of virtual services, changed by the rules of the kernel's ip_vs_ctl.c: what exists,
//! what is refused with which errno, where a new real server goes in the list, and which deleted
//! real servers must stay known while flows still use them.

use std::{collections::BTreeSet, net::IpAddr};

use serde::{Deserialize, Serialize};

use super::{
    mark::{MarkRule, compile},
    types::*,
};
use crate::sched::{self, SchedState};

/// Why a change was refused: the errno the kernel would return (ipvsadm turns it into its message)
/// and, for logs and for rvs-specific refusals, a sentence.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct ModelError {
    pub errno: i32,
    pub detail: String,
}

impl ModelError {
    pub fn new(errno: i32, detail: impl Into<String>) -> ModelError {
        ModelError {
            errno,
            detail: detail.into(),
        }
    }
}

/// A virtual service with its real servers in the kernel's list order (newest first).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub id: ServiceId,
    pub config: ServiceConfig,
    pub dests: Vec<Dest>,
    /// Data-plane index of the service (stats, scheduler counter).
    pub index: u32,
    /// The scheduler's state as of the last table install (the kernel's sched_data).
    pub sched: SchedState,
}

impl Service {
    pub fn dest(&self, addr: &DestAddr) -> Option<&Dest> {
        self.dests.iter().find(|d| d.addr == *addr)
    }

    /// Whether its flows reach their real server on the port the client asked for, whatever
    /// the server's port (`conn_flags::KEEP_PORT`): a persistent service without a port of its
    /// own (port zero or fwmark), as the kernel's ip_vs_sched_persist connects them.
    pub fn keeps_client_port(&self) -> bool {
        self.config.persistent()
            && matches!(
                self.id,
                ServiceId::Fwmark { .. } | ServiceId::Inet { port: 0, .. }
            )
    }
}

/// A real server deleted from its service while flows may still use it. Its data-plane index is
/// not reused until no connection refers to it; adding it again revives it (as the kernel's trash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrashedDest {
    pub service: ServiceId,
    pub dest: Dest,
    /// The service itself was deleted: its flows are gone, not draining.
    pub service_deleted: bool,
}

/// All services, deleted dests still referenced, timeouts, and index allocation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Model {
    pub services: Vec<Service>,
    pub trash: Vec<TrashedDest>,
    pub timeouts: Timeouts,
    /// Classification rules for fwmark services, first match first.
    #[serde(default)]
    pub mark_rules: Vec<MarkRule>,
    used_service_indexes: BTreeSet<u32>,
    used_dest_ids: BTreeSet<u32>,
    max_services: u32,
    max_dests: u32,
}

const EEXIST: i32 = libc::EEXIST;
const ESRCH: i32 = libc::ESRCH;
const ENOENT: i32 = libc::ENOENT;
const EINVAL: i32 = libc::EINVAL;
const ERANGE: i32 = libc::ERANGE;
const ENOMEM: i32 = libc::ENOMEM;

impl Model {
    pub fn new(max_services: u32, max_dests: u32) -> Model {
        Model {
            max_services,
            max_dests,
            ..Model::default()
        }
    }

    /// A model read from disk, checked as the requests that built it were: every service and
    /// real server as `add_service` and `add_dest` check them, indexes in range and used once,
    /// wrr's period within the slot map. The limits are this rvsd's, not the file's, and the
    /// index allocation is rebuilt from what the file holds.
    pub fn checked(mut self, max_services: u32, max_dests: u32) -> Result<Model, ModelError> {
        let bad = |what: String| ModelError::new(EINVAL, what);
        let mut indexes = BTreeSet::new();
        let mut ids = BTreeSet::new();
        let mut seen = std::collections::HashSet::new();
        for svc in &self.services {
            let at = |e: ModelError| {
                ModelError::new(e.errno, format!("service {}: {}", svc.id, e.detail))
            };
            validate_service(&svc.id, &svc.config).map_err(at)?;
            if !seen.insert(svc.id) {
                return Err(bad(format!("service {} is listed twice", svc.id)));
            }
            if svc.index >= max_services || !indexes.insert(svc.index) {
                return Err(bad(format!(
                    "service {}: index {} out of range or used twice",
                    svc.id, svc.index
                )));
            }
            check_sequence(
                &svc.config.scheduler,
                svc.dests.iter().map(|d| d.config.weight),
            )
            .map_err(at)?;
            let mut addrs = std::collections::HashSet::new();
            for d in &svc.dests {
                validate_dest(svc, &d.addr, &d.config).map_err(|e| {
                    ModelError::new(
                        e.errno,
                        format!("service {}: {}: {}", svc.id, d.addr, e.detail),
                    )
                })?;
                if !addrs.insert(d.addr) {
                    return Err(bad(format!(
                        "service {}: {} is listed twice",
                        svc.id, d.addr
                    )));
                }
                if d.id >= max_dests || !ids.insert(d.id) {
                    return Err(bad(format!(
                        "service {}: {}: index {} out of range or used twice",
                        svc.id, d.addr, d.id
                    )));
                }
            }
        }
        for t in &self.trash {
            if t.dest.id >= max_dests || !ids.insert(t.dest.id) {
                return Err(bad(format!(
                    "deleted real server {}: index {} out of range or used twice",
                    t.dest.addr, t.dest.id
                )));
            }
        }
        for r in &self.mark_rules {
            if r.mark == 0 {
                return Err(bad("a mark rule with mark 0".to_owned()));
            }
        }
        self.used_service_indexes = indexes;
        self.used_dest_ids = ids;
        self.max_services = max_services;
        self.max_dests = max_dests;
        Ok(self)
    }

    pub fn service(&self, id: &ServiceId) -> Option<&Service> {
        self.services.iter().find(|s| s.id == *id)
    }

    fn service_mut(&mut self, id: &ServiceId) -> Result<&mut Service, ModelError> {
        self.services
            .iter_mut()
            .find(|s| s.id == *id)
            .ok_or_else(|| ModelError::new(ESRCH, format!("service {id} does not exist")))
    }

    /// `ipvsadm -A`.
    pub fn add_service(&mut self, id: ServiceId, config: ServiceConfig) -> Result<(), ModelError> {
        validate_service(&id, &config)?;
        if self.service(&id).is_some() {
            return Err(ModelError::new(EEXIST, format!("service {id} exists")));
        }
        let index = allocate(&mut self.used_service_indexes, self.max_services)
            .ok_or_else(|| ModelError::new(ENOMEM, "no free service slot"))?;
        let sched = SchedState::initial(&config.scheduler);
        self.services.push(Service {
            id,
            config,
            dests: Vec::new(),
            index,
            sched,
        });
        Ok(())
    }

    /// `ipvsadm -E`: replaces the settings; a new scheduler starts from its initial state.
    pub fn edit_service(
        &mut self,
        id: &ServiceId,
        config: ServiceConfig,
    ) -> Result<(), ModelError> {
        validate_service(id, &config)?;
        let svc = self.service_mut(id)?;
        check_sequence(&config.scheduler, svc.dests.iter().map(|d| d.config.weight))?;
        if svc.config.scheduler != config.scheduler {
            svc.sched = SchedState::initial(&config.scheduler);
        }
        svc.config = config;
        Ok(())
    }

    /// `ipvsadm -D`: the service's real servers move to the trash until their flows are flushed.
    pub fn delete_service(&mut self, id: &ServiceId) -> Result<(), ModelError> {
        let pos = self
            .services
            .iter()
            .position(|s| s.id == *id)
            .ok_or_else(|| ModelError::new(ESRCH, format!("service {id} does not exist")))?;
        let svc = self.services.remove(pos);
        self.used_service_indexes.remove(&svc.index);
        // Real servers deleted earlier and still draining now belong to a deleted service too.
        for t in self.trash.iter_mut().filter(|t| t.service == *id) {
            t.service_deleted = true;
        }
        for dest in svc.dests {
            self.trash.push(TrashedDest {
                service: *id,
                dest,
                service_deleted: true,
            });
        }
        Ok(())
    }

    /// `ipvsadm -C` (rvs also drops the mark rules, which `-S` saves with the services).
    pub fn clear(&mut self) {
        let ids: Vec<ServiceId> = self.services.iter().map(|s| s.id).collect();
        for id in ids {
            let _ = self.delete_service(&id);
        }
        self.mark_rules.clear();
    }

    /// `rvsadm --add-mark`: appends a rule (the last to be tried).
    pub fn add_mark_rule(&mut self, rule: MarkRule) -> Result<(), ModelError> {
        if rule.mark == 0 {
            return Err(ModelError::new(EINVAL, "mark 0 marks nothing"));
        }
        if rule.proto == Some(Protocol::Sctp) {
            return Err(not_yet("SCTP mark rules"));
        }
        if self
            .mark_rules
            .iter()
            .any(|r| r.matcher() == rule.matcher())
        {
            return Err(ModelError::new(
                EEXIST,
                format!("a mark rule for {} exists", rule.matcher()),
            ));
        }
        let mut next = self.mark_rules.clone();
        next.push(rule);
        compile(&next).map_err(|e| ModelError::new(libc::ENOSPC, e))?;
        self.mark_rules = next;
        Ok(())
    }

    /// `rvsadm --del-mark`: removes the rule that takes exactly these packets for this mark.
    pub fn delete_mark_rule(&mut self, rule: MarkRule) -> Result<(), ModelError> {
        let before = self.mark_rules.len();
        self.mark_rules.retain(|r| *r != rule);
        if self.mark_rules.len() == before {
            return Err(ModelError::new(ESRCH, format!("no mark rule {rule}")));
        }
        Ok(())
    }

    /// `ipvsadm -a`: the new real server goes to the head of the list, as in the kernel.
    pub fn add_dest(
        &mut self,
        svc_id: &ServiceId,
        addr: DestAddr,
        config: DestConfig,
    ) -> Result<u32, ModelError> {
        let svc = self
            .service(svc_id)
            .ok_or_else(|| ModelError::new(ESRCH, format!("service {svc_id} does not exist")))?;
        validate_dest(svc, &addr, &config)?;
        check_sequence(
            &svc.config.scheduler,
            svc.dests
                .iter()
                .map(|d| d.config.weight)
                .chain([config.weight]),
        )?;
        if svc.dest(&addr).is_some() {
            return Err(ModelError::new(
                EEXIST,
                format!("{addr} is already in {svc_id}"),
            ));
        }
        // A deleted real server still serving flows is revived with its index and counters.
        let revived = self
            .trash
            .iter()
            .position(|t| t.service == *svc_id && !t.service_deleted && t.dest.addr == addr);
        let id = match revived {
            Some(pos) => self.trash.remove(pos).dest.id,
            None => allocate(&mut self.used_dest_ids, self.max_dests)
                .ok_or_else(|| ModelError::new(ENOMEM, "no free real-server slot"))?,
        };
        let weight = config.weight;
        let svc = self.service_mut(svc_id)?;
        svc.dests.insert(
            0,
            Dest {
                addr,
                config,
                id,
                last_weight: weight,
            },
        );
        Ok(id)
    }

    /// `ipvsadm -e`.
    pub fn edit_dest(
        &mut self,
        svc_id: &ServiceId,
        addr: DestAddr,
        config: DestConfig,
    ) -> Result<(), ModelError> {
        let svc = self
            .service(svc_id)
            .ok_or_else(|| ModelError::new(ESRCH, format!("service {svc_id} does not exist")))?;
        validate_dest(svc, &addr, &config)?;
        check_sequence(
            &svc.config.scheduler,
            svc.dests.iter().map(|d| match d.addr == addr {
                true => config.weight,
                false => d.config.weight,
            }),
        )?;
        let svc = self.service_mut(svc_id)?;
        let dest = svc
            .dests
            .iter_mut()
            .find(|d| d.addr == addr)
            .ok_or_else(|| ModelError::new(ENOENT, format!("{addr} is not in {svc_id}")))?;
        if config.weight > 0 {
            dest.last_weight = config.weight;
        }
        dest.config = config;
        Ok(())
    }

    /// `ipvsadm -d`: the real server leaves the list; its flows drain.
    pub fn delete_dest(&mut self, svc_id: &ServiceId, addr: DestAddr) -> Result<(), ModelError> {
        let svc = self.service_mut(svc_id)?;
        let pos = svc
            .dests
            .iter()
            .position(|d| d.addr == addr)
            .ok_or_else(|| ModelError::new(ENOENT, format!("{addr} is not in {svc_id}")))?;
        let dest = svc.dests.remove(pos);
        svc.sched.dest_removed(&dest.addr, pos, &svc.dests);
        self.trash.push(TrashedDest {
            service: *svc_id,
            dest,
            service_deleted: false,
        });
        Ok(())
    }

    /// `ipvsadm --set`: zero leaves a value unchanged.
    pub fn set_timeouts(&mut self, t: Timeouts) {
        if t.tcp != 0 {
            self.timeouts.tcp = t.tcp;
        }
        if t.tcp_fin != 0 {
            self.timeouts.tcp_fin = t.tcp_fin;
        }
        if t.udp != 0 {
            self.timeouts.udp = t.udp;
        }
    }

    /// Forgets trashed real servers that no connection refers to any more, freeing their indexes.
    /// Returns the ids released.
    pub fn release_unreferenced(&mut self, referenced: &BTreeSet<u32>) -> Vec<u32> {
        let mut released = Vec::new();
        self.trash.retain(|t| {
            if referenced.contains(&t.dest.id) {
                true
            } else {
                released.push(t.dest.id);
                false
            }
        });
        for id in &released {
            self.used_dest_ids.remove(id);
        }
        released
    }

    /// Every real server: those listed in a service, then those draining in the trash.
    pub fn every_dest(&self) -> impl Iterator<Item = &Dest> {
        self.services
            .iter()
            .flat_map(|s| s.dests.iter())
            .chain(self.trash.iter().map(|t| &t.dest))
    }

    /// Ids of trashed real servers whose service was deleted: their flows are flushed.
    pub fn flushed_dest_ids(&self) -> BTreeSet<u32> {
        self.trash
            .iter()
            .filter(|t| t.service_deleted)
            .map(|t| t.dest.id)
            .collect()
    }
}

/// A refusal for what this rvs does not do yet. ENOSYS is not in ipvsadm's message table, so
/// rvsadm prints this sentence rather than a kernel message that would mislead.
fn not_yet(what: impl std::fmt::Display) -> ModelError {
    ModelError::new(
        libc::ENOSYS,
        format!("rvs: {what} not available in this version yet"),
    )
}

fn allocate(used: &mut BTreeSet<u32>, max: u32) -> Option<u32> {
    let id = (0..max).find(|i| !used.contains(i))?;
    used.insert(id);
    Some(id)
}

fn validate_service(id: &ServiceId, config: &ServiceConfig) -> Result<(), ModelError> {
    // "none" is the kernel's service without a scheduler: it picks no server for a new flow.
    if config.scheduler != sched::NO_SCHEDULER
        && sched::Scheduler::from_name(&config.scheduler).is_none()
    {
        return Err(ModelError::new(
            ENOENT,
            format!("unknown scheduler {:?}", config.scheduler),
        ));
    }
    if let Some(pe) = &config.pe_name {
        return Err(ModelError::new(
            ENOENT,
            format!("persistence engine {pe:?} is not available"),
        ));
    }
    // Any service address is taken, as the kernel takes it (`-A -t 0.0.0.0:80` included).
    if let ServiceId::Inet { port: 0, .. } = id
        && !config.persistent()
    {
        return Err(ModelError::new(
            EINVAL,
            "zero port for a non-persistent service",
        ));
    }
    if id.protocol() == Some(Protocol::Sctp) {
        return Err(not_yet("SCTP services"));
    }
    Ok(())
}

/// The highest weight taken: ipvsadm's and keepalived's (the kernel's int is wider, but only
/// a raw request could ask for more, and wrr's sequence grows with it).
pub const MAX_WEIGHT: i32 = 65535;

fn validate_dest(svc: &Service, addr: &DestAddr, config: &DestConfig) -> Result<(), ModelError> {
    if config.weight < 0 {
        return Err(ModelError::new(ERANGE, "negative weight"));
    }
    if config.weight > MAX_WEIGHT {
        return Err(ModelError::new(
            ERANGE,
            format!("weight {} above {MAX_WEIGHT}", config.weight),
        ));
    }
    if config.l_threshold > config.u_threshold {
        return Err(ModelError::new(
            ERANGE,
            "lower threshold above upper threshold",
        ));
    }
    if addr.addr.is_ipv6() != svc.id.is_ipv6() && config.fwd != FwdMethod::Tunnel {
        return Err(ModelError::new(
            EINVAL,
            "a real server of another address family needs tunnelling",
        ));
    }
    if is_not_unicast(&addr.addr) {
        return Err(ModelError::new(
            EINVAL,
            format!("{} is not unicast", addr.addr),
        ));
    }
    match config.fwd {
        FwdMethod::Route | FwdMethod::Masq | FwdMethod::Tunnel => {}
        other => return Err(not_yet(format!("forwarding method {}", other.name()))),
    }
    Ok(())
}

/// wrr's period is laid out in the data plane as a sequence of picks, each server `weight /
/// gcd` times; the kernel walks it on the fly instead. A period longer than the slot map is
/// refused rather than truncated (weights of one server per service rarely share no divisor).
fn check_sequence(
    scheduler: &str,
    weights: impl Iterator<Item = i32> + Clone,
) -> Result<(), ModelError> {
    if scheduler != "wrr" {
        return Ok(());
    }
    let gcd = weights
        .clone()
        .filter(|w| *w > 0)
        .fold(0i64, |g, w| num_gcd(g, i64::from(w)));
    if gcd == 0 {
        return Ok(());
    }
    let picks: i64 = weights.filter(|w| *w > 0).map(|w| i64::from(w) / gcd).sum();
    if picks > i64::from(rvs_common::maps::MAX_SCHED_SLOTS) {
        return Err(ModelError::new(
            libc::E2BIG,
            format!(
                "wrr's period for these weights is {picks} picks, more than the data plane's {} \
                 (weights with a common divisor, or fewer distinct ones, make it shorter)",
                rvs_common::maps::MAX_SCHED_SLOTS
            ),
        ));
    }
    Ok(())
}

fn num_gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { num_gcd(b, a % b) }
}

/// A real-server address the kernel refuses (ip_vs_new_dest): for IPv4, what inet_addr_type
/// does not call unicast or local without a route lookup (0.0.0.0/8, the limited broadcast,
/// multicast; a subnet's broadcast address needs the director's interfaces, which the daemon
/// checks); for IPv6, what ipv6_addr_type does not call unicast (the unspecified address,
/// multicast, IPv4-mapped addresses) and link-local addresses.
fn is_not_unicast(a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => v4.octets()[0] == 0 || v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => {
            v6.is_unspecified()
                || v6.is_multicast()
                || v6.to_ipv4_mapped().is_some()
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn svc() -> ServiceId {
        ServiceId::Inet {
            proto: Protocol::Tcp,
            addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100)),
            port: 80,
        }
    }

    fn rs(last: u8) -> DestAddr {
        DestAddr {
            addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, last)),
            port: 80,
        }
    }

    fn model() -> Model {
        let mut m = Model::new(16, 16);
        m.add_service(svc(), ServiceConfig::new("rr", false))
            .unwrap();
        m
    }

    fn weighted(w: i32) -> DestConfig {
        DestConfig {
            weight: w,
            ..DestConfig::default()
        }
    }

    #[test]
    fn weights_above_65535_and_wrr_periods_beyond_the_slot_map_are_refused() {
        let mut m = Model::new(16, 256);
        m.add_service(svc(), ServiceConfig::new("wrr", false))
            .unwrap();
        let e = m.add_dest(&svc(), rs(1), weighted(65536)).unwrap_err();
        assert_eq!(e.errno, ERANGE);
        // 64 servers of coprime weights near 65535 fit (about 4.19 M picks); a 65th does not.
        for i in 0..64u8 {
            m.add_dest(&svc(), rs(i + 1), weighted(65535 - i32::from(i % 2)))
                .unwrap();
        }
        let e = m.add_dest(&svc(), rs(100), weighted(65535)).unwrap_err();
        assert_eq!(e.errno, libc::E2BIG, "{}", e.detail);
        // Nor may an edit or a change of scheduler make one.
        let e = m.edit_dest(&svc(), rs(1), weighted(65535)).map(|_| ());
        assert!(e.is_ok(), "an edit within the bound: {e:?}");
        // Weights with a common divisor make a short period: all fit.
        let mut m = Model::new(16, 256);
        m.add_service(svc(), ServiceConfig::new("rr", false))
            .unwrap();
        for i in 0..100u8 {
            m.add_dest(&svc(), rs(i + 1), weighted(65535 - i32::from(i % 2)))
                .unwrap();
        }
        let e = m
            .edit_service(&svc(), ServiceConfig::new("wrr", false))
            .unwrap_err();
        assert_eq!(e.errno, libc::E2BIG);
        m.edit_service(&svc(), ServiceConfig::new("wlc", false))
            .unwrap();
    }

    #[test]
    fn a_loaded_model_is_checked_as_requests_are() {
        let mut m = model();
        m.add_dest(&svc(), rs(1), weighted(3)).unwrap();
        m.add_dest(&svc(), rs(2), weighted(1)).unwrap();
        let text = serde_json::to_string(&m).unwrap();
        let back: Model = serde_json::from_str(&text).unwrap();
        assert_eq!(back.clone().checked(16, 16).unwrap(), back);

        let absurd: Model =
            serde_json::from_str(&text.replace("\"weight\":3", "\"weight\":2147483647")).unwrap();
        let e = absurd.checked(16, 16).unwrap_err();
        assert!(
            e.detail.contains("weight 2147483647 above 65535"),
            "{}",
            e.detail
        );

        let mut twice = back.clone();
        let d = twice.services[0].dests[0].clone();
        twice.services[0].dests.push(d);
        assert!(
            twice
                .checked(16, 16)
                .unwrap_err()
                .detail
                .contains("listed twice")
        );

        let mut wide = back.clone();
        wide.services[0].dests[0].id = 1000;
        assert!(
            wide.checked(16, 16)
                .unwrap_err()
                .detail
                .contains("out of range")
        );

        let mut unknown = back;
        unknown.services[0].config.scheduler = "nope".into();
        assert_eq!(unknown.checked(16, 16).unwrap_err().errno, ENOENT);
    }

    #[test]
    fn new_dests_go_to_the_head() {
        let mut m = model();
        for i in 1..=3 {
            m.add_dest(&svc(), rs(i), DestConfig::default()).unwrap();
        }
        let order: Vec<_> = m
            .service(&svc())
            .unwrap()
            .dests
            .iter()
            .map(|d| d.addr)
            .collect();
        assert_eq!(order, vec![rs(3), rs(2), rs(1)]);
    }

    #[test]
    fn kernel_errnos() {
        let mut m = model();
        assert_eq!(
            m.add_service(svc(), ServiceConfig::new("rr", false))
                .unwrap_err()
                .errno,
            EEXIST
        );
        m.add_dest(&svc(), rs(1), DestConfig::default()).unwrap();
        assert_eq!(
            m.add_dest(&svc(), rs(1), DestConfig::default())
                .unwrap_err()
                .errno,
            EEXIST
        );
        assert_eq!(
            m.edit_dest(&svc(), rs(2), DestConfig::default())
                .unwrap_err()
                .errno,
            ENOENT
        );
        assert_eq!(m.delete_dest(&svc(), rs(2)).unwrap_err().errno, ENOENT);
        let other = ServiceId::Inet {
            proto: Protocol::Udp,
            addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100)),
            port: 80,
        };
        assert_eq!(
            m.add_dest(&other, rs(1), DestConfig::default())
                .unwrap_err()
                .errno,
            ESRCH
        );
        assert_eq!(m.delete_service(&other).unwrap_err().errno, ESRCH);
        let bad = DestConfig {
            l_threshold: 5,
            ..DestConfig::default()
        };
        assert_eq!(m.add_dest(&svc(), rs(3), bad).unwrap_err().errno, ERANGE);
        assert_eq!(
            m.add_service(
                ServiceId::Inet {
                    proto: Protocol::Tcp,
                    addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 101)),
                    port: 80
                },
                ServiceConfig::new("nosuch", false)
            )
            .unwrap_err()
            .errno,
            ENOENT
        );
    }

    #[test]
    fn deleted_dest_is_revived_with_its_id() {
        let mut m = model();
        let id = m.add_dest(&svc(), rs(1), DestConfig::default()).unwrap();
        m.delete_dest(&svc(), rs(1)).unwrap();
        assert_eq!(m.trash.len(), 1);
        let again = m.add_dest(&svc(), rs(1), DestConfig::default()).unwrap();
        assert_eq!(id, again);
        assert!(m.trash.is_empty());
    }

    #[test]
    fn trashed_ids_are_released_only_when_unreferenced() {
        let mut m = model();
        let id = m.add_dest(&svc(), rs(1), DestConfig::default()).unwrap();
        m.delete_dest(&svc(), rs(1)).unwrap();
        assert!(m.release_unreferenced(&BTreeSet::from([id])).is_empty());
        assert_eq!(m.release_unreferenced(&BTreeSet::new()), vec![id]);
        let next = m.add_dest(&svc(), rs(2), DestConfig::default()).unwrap();
        assert_eq!(next, id, "released index is reused");
    }
}
