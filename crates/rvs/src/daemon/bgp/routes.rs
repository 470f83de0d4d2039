//! Which prefixes are announced, and with what, from the director's health: pure, so each rule
//! is a unit test.
//! - A prefix stands for the virtual services it names, or by default every virtual service
//!   whose address lies inside it. With `announce_when all` (the default) it is announced while
//!   every one of them is up; with `any`, while one is. A prefix that stands for no service is
//!   never announced.
//! - A service is up while it has quorum as keepalived defines it (the sum of the weights of its
//!   live real servers); a service rvsadm added, which no checker watches, while it has a real
//!   server of weight above 0.
//! - Tied to a VRRP instance, a prefix is announced as configured while the instance is MASTER;
//!   otherwise withdrawn, or announced with the backup's MED or AS-path prepend.
//! - While the director drains (`rvsadm --drain`), every prefix is withdrawn.

use std::{collections::BTreeMap, net::IpAddr};

use super::wire::RouteAttrs;
use crate::{
    keepalived::bgp::{AnnounceWhen, BackupPolicy, BgpBlock, IpPrefix, Neighbor, Prefix},
    model::ServiceId,
};

/// What the decision looks at.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inputs {
    /// Every virtual service the director holds, and whether it is up.
    pub services: Vec<(ServiceId, bool)>,
    /// VRRP instances by name: whether each is MASTER.
    pub vrrp: BTreeMap<String, bool>,
    /// The director is being taken out of its ECMP group (`rvsadm --drain`).
    pub draining: bool,
}

/// How a prefix is announced (the session adds the AS path and the next hop).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announce {
    pub med: Option<u32>,
    pub communities: Vec<u32>,
    pub prepend: u8,
    pub next_hop: Option<IpAddr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub prefix: IpPrefix,
    pub announce: Option<Announce>,
    /// Why, for rvsadm --bgp: "up (2 of 2 services)", "down: 198.19.4.1:80 lost quorum", ...
    pub why: String,
}

/// The services by address, so that a prefix finds its own by a range, not by a walk over all
/// of them (a director may announce thousands of prefixes over thousands of services).
type ByAddr<'a> = BTreeMap<IpAddr, Vec<&'a (ServiceId, bool)>>;

fn index(inputs: &Inputs) -> ByAddr<'_> {
    let mut by: ByAddr = BTreeMap::new();
    for s in &inputs.services {
        if let ServiceId::Inet { addr, .. } = s.0 {
            by.entry(addr).or_default().push(s);
        }
    }
    by
}

/// The services a prefix stands for, in address order, each once.
fn behind<'a>(p: &Prefix, by: &ByAddr<'a>) -> Vec<&'a (ServiceId, bool)> {
    if p.services.is_empty() {
        let first = p.prefix.network();
        let last = match first {
            IpAddr::V4(a) => IpAddr::V4(std::net::Ipv4Addr::from(
                u32::from(a) | u32::MAX.checked_shr(u32::from(p.prefix.len)).unwrap_or(0),
            )),
            IpAddr::V6(a) => IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(a) | u128::MAX.checked_shr(u32::from(p.prefix.len)).unwrap_or(0),
            )),
        };
        return by
            .range(first..=last)
            .flat_map(|(_, v)| v.iter().copied())
            .collect();
    }
    let mut out: Vec<&(ServiceId, bool)> = Vec::new();
    for m in &p.services {
        for s in by.get(&m.addr).into_iter().flatten() {
            if m.matches(&s.0) && !out.iter().any(|o| o.0 == s.0) {
                out.push(s);
            }
        }
    }
    out
}

pub fn decide(block: &BgpBlock, inputs: &Inputs) -> Vec<Decision> {
    let by = index(inputs);
    block
        .prefixes
        .iter()
        .map(|p| decide_one(p, &behind(p, &by), inputs))
        .collect()
}

fn decide_one(p: &Prefix, behind: &[&(ServiceId, bool)], inputs: &Inputs) -> Decision {
    let up = behind.iter().filter(|(_, up)| *up).count();
    let decision = |announce, why: String| Decision {
        prefix: p.prefix,
        announce,
        why,
    };
    if behind.is_empty() {
        return decision(None, "withdrawn: no virtual service behind it".into());
    }
    if inputs.draining {
        return decision(
            None,
            "withdrawn: this director drains (rvsadm --drain)".into(),
        );
    }
    let healthy = match p.when {
        AnnounceWhen::All => up == behind.len(),
        AnnounceWhen::Any => up > 0,
    };
    if !healthy {
        let down: Vec<String> = behind
            .iter()
            .filter(|(_, up)| !*up)
            .map(|(id, _)| id.to_string())
            .collect();
        return decision(
            None,
            format!(
                "withdrawn: {} of {} services down ({})",
                down.len(),
                behind.len(),
                down.join(", ")
            ),
        );
    }
    let mut a = Announce {
        med: p.med,
        communities: p.communities.clone(),
        prepend: p.prepend,
        next_hop: p.next_hop,
    };
    let services = format!("{up} of {} services up", behind.len());
    let Some(inst) = &p.vrrp_instance else {
        return decision(Some(a), format!("announced: {services}"));
    };
    if inputs.vrrp.get(inst).copied().unwrap_or(false) {
        return decision(Some(a), format!("announced: {services}, {inst} MASTER"));
    }
    match p.backup {
        BackupPolicy::Withdraw => decision(
            None,
            format!("withdrawn: {inst} is not MASTER ({services})"),
        ),
        BackupPolicy::Med(m) => {
            a.med = Some(m);
            decision(
                Some(a),
                format!("announced as backup (MED {m}): {inst} is not MASTER"),
            )
        }
        BackupPolicy::Prepend(n) => {
            a.prepend = a.prepend.saturating_add(n);
            decision(
                Some(a),
                format!("announced as backup (prepend {n}): {inst} is not MASTER"),
            )
        }
    }
}

/// The attributes of `prefix` as sent to `neighbor` over a session from `local`: the next hop
/// is the prefix's own, or the session's address for its family (for an IPv6 prefix on an IPv4
/// session, the neighbor's next_hop6). None when no next hop fits: the prefix is not sent.
pub fn attrs_for(
    prefix: &IpPrefix,
    a: &Announce,
    local_as: u32,
    neighbor: &Neighbor,
    local: IpAddr,
) -> Option<RouteAttrs> {
    let v4 = prefix.addr.is_ipv4();
    let next_hop = match a.next_hop {
        Some(nh) if nh.is_ipv4() == v4 => nh,
        _ if local.is_ipv4() == v4 => local,
        _ if !v4 => IpAddr::V6(neighbor.next_hop6?),
        _ => return None,
    };
    let ibgp = neighbor.remote_as == local_as;
    let mut as_path = vec![local_as; usize::from(a.prepend)];
    if !ibgp {
        as_path.push(local_as);
    }
    Some(RouteAttrs {
        next_hop,
        as_path,
        med: a.med,
        communities: a.communities.clone(),
        local_pref: ibgp.then_some(100),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;

    fn svc(addr: &str, port: u16) -> ServiceId {
        ServiceId::Inet {
            proto: Protocol::Tcp,
            addr: addr.parse().unwrap(),
            port,
        }
    }

    fn block(text: &str) -> BgpBlock {
        let dir = std::env::temp_dir().join(format!("rvs-bgp-routes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join(format!("{}.conf", text.len()));
        std::fs::write(&f, text).unwrap();
        let cfg = crate::keepalived::load(&f).unwrap();
        std::fs::remove_file(&f).unwrap();
        cfg.bgp.unwrap()
    }

    const BASE: &str = "rvs_bgp {\n local_as 65005\n router_id 198.18.1.1\n neighbor 198.18.1.254 {\n  remote_as 65001\n }\n";

    #[test]
    fn all_services_inside_the_prefix_must_be_up() {
        let b = block(&format!(
            "{BASE} prefix 198.19.4.0/24 {{\n med 10\n }}\n}}\n"
        ));
        let mut inputs = Inputs {
            services: vec![
                (svc("198.19.4.1", 80), true),
                (svc("198.19.4.2", 80), true),
                (svc("198.18.9.9", 80), false),
            ],
            ..Default::default()
        };
        let d = decide(&b, &inputs);
        assert_eq!(d[0].announce.as_ref().unwrap().med, Some(10));
        assert_eq!(d[0].why, "announced: 2 of 2 services up");
        inputs.services[1].1 = false;
        let d = decide(&b, &inputs);
        assert!(d[0].announce.is_none());
        assert_eq!(
            d[0].why,
            "withdrawn: 1 of 2 services down (TCP 198.19.4.2:80)"
        );
    }

    #[test]
    fn a_draining_director_withdraws_healthy_prefixes() {
        let b = block(&format!("{BASE} prefix 198.19.4.0/24\n}}\n"));
        let mut inputs = Inputs {
            services: vec![(svc("198.19.4.1", 80), true)],
            ..Default::default()
        };
        assert!(decide(&b, &inputs)[0].announce.is_some());
        inputs.draining = true;
        let d = decide(&b, &inputs);
        assert!(d[0].announce.is_none());
        assert_eq!(d[0].why, "withdrawn: this director drains (rvsadm --drain)");
    }

    #[test]
    fn any_named_services_and_no_service() {
        let b = block(&format!(
            "{BASE} prefix 198.19.4.0/24 {{\n services 198.19.4.1:80 198.19.4.2\n announce_when any\n }}\n prefix 198.19.7.0/24\n}}\n"
        ));
        let inputs = Inputs {
            services: vec![
                (svc("198.19.4.1", 80), false),
                (svc("198.19.4.2", 443), true),
                (svc("198.19.4.3", 80), false),
            ],
            ..Default::default()
        };
        let d = decide(&b, &inputs);
        assert!(d[0].announce.is_some(), "{d:?}");
        assert_eq!(d[1].why, "withdrawn: no virtual service behind it");
    }

    #[test]
    fn a_prefix_finds_its_services_by_range_and_each_once() {
        let b = block(&format!(
            "{BASE} prefix 198.19.4.0/30\n prefix 2001:db8:4::/126\n prefix 198.19.9.1/32 {{\n services 198.19.9.1 198.19.9.1:80\n }}\n}}\n"
        ));
        let svc6 = |a: &str| ServiceId::Inet {
            proto: Protocol::Udp,
            addr: a.parse().unwrap(),
            port: 53,
        };
        let inputs = Inputs {
            services: vec![
                (svc("198.19.4.3", 80), true),
                (svc("198.19.4.4", 80), false),
                (svc("198.19.3.255", 80), false),
                (svc6("2001:db8:4::3"), true),
                (svc6("2001:db8:4::4"), false),
                (svc("198.19.9.1", 80), true),
            ],
            ..Default::default()
        };
        let d = decide(&b, &inputs);
        assert_eq!(d[0].why, "announced: 1 of 1 services up", "{d:?}");
        assert_eq!(d[1].why, "announced: 1 of 1 services up", "{d:?}");
        assert_eq!(d[2].why, "announced: 1 of 1 services up", "{d:?}");
    }

    #[test]
    fn vrrp_backup_withdraws_or_announces_worse() {
        let text = |backup: &str| {
            format!(
                "vrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 1\n priority 100\n virtual_ipaddress {{\n 198.19.4.1\n }}\n}}\n{BASE} prefix 198.19.4.0/24 {{\n vrrp_instance VI_1\n {backup}\n prepend 1\n }}\n}}\n"
            )
        };
        let mut inputs = Inputs {
            services: vec![(svc("198.19.4.1", 80), true)],
            ..Default::default()
        };
        let b = block(&text("backup withdraw"));
        assert!(decide(&b, &inputs)[0].announce.is_none());
        inputs.vrrp.insert("VI_1".into(), true);
        assert_eq!(decide(&b, &inputs)[0].announce.as_ref().unwrap().prepend, 1);
        inputs.vrrp.insert("VI_1".into(), false);
        let b = block(&text("backup prepend 3"));
        assert_eq!(decide(&b, &inputs)[0].announce.as_ref().unwrap().prepend, 4);
        let b = block(&text("backup med 500"));
        assert_eq!(
            decide(&b, &inputs)[0].announce.as_ref().unwrap().med,
            Some(500)
        );
    }

    #[test]
    fn next_hop_and_as_path_per_session() {
        let b = block(&format!(
            "{BASE} prefix 2001:db8:4::/48\n prefix 198.19.4.0/24\n}}\n"
        ));
        let n = &b.neighbors[0];
        let a = Announce {
            med: None,
            communities: vec![],
            prepend: 2,
            next_hop: None,
        };
        let local: IpAddr = "198.18.1.1".parse().unwrap();
        let r = attrs_for(&b.prefixes[1].prefix, &a, 65005, n, local).unwrap();
        assert_eq!(r.next_hop, local);
        assert_eq!(r.as_path, vec![65005, 65005, 65005]);
        // No IPv6 next hop on an IPv4 session without next_hop6.
        assert!(attrs_for(&b.prefixes[0].prefix, &a, 65005, n, local).is_none());
    }
}
