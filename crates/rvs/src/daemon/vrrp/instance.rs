//! From the parsed `vrrp_instance` blocks to what the VRRP task runs: keepalived's defaults
//! filled in, the global `vrrp_version` applied, and the combinations that cannot work refused
//! with the instance's file:line:column.

use std::{net::IpAddr, time::Duration};

use super::{
    machine::Params,
    wire::{self, Auth, V3Ipv4Checksum},
};
use crate::keepalived::{
    ConfigError, KeepalivedConfig, Pos, Tracked, VirtualAddress, VrrpAuth, VrrpInstance,
};

/// keepalived's defaults.
pub const DEFAULT_PRIORITY: u8 = 100;
pub const DEFAULT_ADVERT_INT: Duration = Duration::from_secs(1);
pub const DEFAULT_GARP_DELAY: Duration = Duration::from_secs(5);
pub const DEFAULT_GARP_REPEAT: u32 = 5;
pub const DEFAULT_SCRIPT_INTERVAL: Duration = Duration::from_secs(1);

/// One instance, ready to run.
#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    pub version: u8,
    pub ipv6: bool,
    pub priority: u8,
    pub advert_int_cs: u16,
    pub start_master: bool,
    pub nopreempt: bool,
    pub preempt_delay: Duration,
    pub auth: Auth,
    /// Carried in adverts.
    pub vips: Vec<VirtualAddress>,
    /// Added and removed with them, not advertised.
    pub excluded: Vec<VirtualAddress>,
    pub unicast_src: Option<IpAddr>,
    pub unicast_peers: Vec<IpAddr>,
    /// Indexes into [`Scripts`] with the weight that applies here.
    pub track_scripts: Vec<TrackedScript>,
    pub track_interfaces: Vec<Tracked>,
    pub notify: Notify,
    pub garp_delay: Option<Duration>,
    pub garp_repeat: u32,
    pub garp_refresh: Option<Duration>,
    pub garp_refresh_repeat: u32,
    pub checksum: V3Ipv4Checksum,
    /// Index into the sync groups.
    pub sync_group: Option<usize>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notify {
    pub master: Option<String>,
    pub backup: Option<String>,
    pub fault: Option<String>,
    pub stop: Option<String>,
    pub generic: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackedScript {
    pub script: usize,
    pub weight: i32,
    pub reverse: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Script {
    pub name: String,
    pub command: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    pub init_fail: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub name: String,
    pub members: Vec<usize>,
    pub notify: Notify,
}

/// Everything the VRRP task runs.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Plan {
    pub instances: Vec<Instance>,
    pub scripts: Vec<Script>,
    pub groups: Vec<Group>,
}

impl Instance {
    pub fn multicast(&self) -> bool {
        self.unicast_peers.is_empty()
    }

    /// The advertised addresses.
    pub fn advertised(&self) -> Vec<IpAddr> {
        self.vips.iter().map(|v| v.addr).collect()
    }

    /// What the state machine needs; `primary` is the address our adverts come from.
    pub fn params(&self, primary: IpAddr) -> Params {
        Params {
            version: self.version,
            priority: self.priority,
            advert_int_cs: self.advert_int_cs,
            start_master: self.start_master,
            nopreempt: self.nopreempt,
            preempt_delay: self.preempt_delay,
            primary,
            garp_delay: self.garp_delay,
            garp_refresh: self.garp_refresh,
        }
    }

    pub fn expect<'a>(&self, addresses: &'a [IpAddr]) -> wire::Expect<'a> {
        wire::Expect {
            version: self.version,
            vrid: self.vrid,
            auth: self.auth,
            interval_cs: self.advert_int_cs,
            addresses,
            check_ttl: self.multicast(),
        }
    }
}

fn err(pos: &Option<Pos>, name: &str, msg: impl std::fmt::Display) -> ConfigError {
    let message = format!("vrrp_instance '{name}': {msg}");
    match pos {
        Some(p) => ConfigError::at(p, message),
        None => ConfigError::file("keepalived.conf", message),
    }
}

/// The plan of `cfg`, or the first thing that cannot run.
pub fn plan(cfg: &KeepalivedConfig) -> Result<Plan, ConfigError> {
    let mut plan = Plan::default();
    for s in &cfg.vrrp_scripts {
        let interval = s.interval.unwrap_or(DEFAULT_SCRIPT_INTERVAL);
        plan.scripts.push(Script {
            name: s.name.clone(),
            command: s.script.clone().ok_or_else(|| match &s.pos {
                Some(p) => ConfigError::at(p, format!("vrrp_script '{}' has no 'script'", s.name)),
                None => ConfigError::file("keepalived.conf", "vrrp_script without script"),
            })?,
            interval,
            timeout: s.timeout.unwrap_or(interval),
            rise: s.rise.unwrap_or(1),
            fall: s.fall.unwrap_or(1),
            init_fail: s.init_fail,
        });
    }
    for v in &cfg.vrrp_instances {
        plan.instances.push(instance(cfg, v, &plan.scripts)?);
    }
    for (gi, g) in cfg.vrrp_sync_groups.iter().enumerate() {
        let mut members = Vec::new();
        for name in &g.group {
            let Some(i) = plan.instances.iter().position(|v| &v.name == name) else {
                let msg = format!("vrrp_sync_group '{}': no vrrp_instance '{name}'", g.name);
                return Err(match &g.pos {
                    Some(p) => ConfigError::at(p, msg),
                    None => ConfigError::file("keepalived.conf", msg),
                });
            };
            plan.instances[i].sync_group = Some(gi);
            members.push(i);
        }
        plan.groups.push(Group {
            name: g.name.clone(),
            members,
            notify: Notify {
                master: g.notify_master.clone(),
                backup: g.notify_backup.clone(),
                fault: g.notify_fault.clone(),
                stop: g.notify_stop.clone(),
                generic: g.notify.clone(),
            },
        });
    }
    let mut seen: Vec<(&str, u8, bool)> = Vec::new();
    for (v, c) in plan.instances.iter().zip(&cfg.vrrp_instances) {
        let key = (v.interface.as_str(), v.vrid, v.ipv6);
        if seen.contains(&key) {
            return Err(err(
                &c.pos,
                &v.name,
                format!(
                    "virtual_router_id {} is used twice on {} for the same address family",
                    v.vrid, v.interface
                ),
            ));
        }
        seen.push(key);
    }
    Ok(plan)
}

fn instance(
    cfg: &KeepalivedConfig,
    v: &VrrpInstance,
    scripts: &[Script],
) -> Result<Instance, ConfigError> {
    let e = |m: String| err(&v.pos, &v.name, m);
    let interface = v
        .interface
        .clone()
        .ok_or_else(|| e("needs 'interface'".into()))?;
    let vrid = v
        .virtual_router_id
        .ok_or_else(|| e("needs 'virtual_router_id'".into()))?;
    if v.virtual_ipaddress.is_empty() {
        return Err(e("needs at least one address in 'virtual_ipaddress'".into()));
    }
    let ipv6 = v.virtual_ipaddress[0].addr.is_ipv6();
    if v.virtual_ipaddress.iter().any(|a| a.addr.is_ipv6() != ipv6) {
        return Err(e(
            "virtual_ipaddress mixes IPv4 and IPv6 (use one instance per family, or \
             virtual_ipaddress_excluded)"
                .into(),
        ));
    }
    let version = v
        .version
        .or(cfg.global.vrrp_version)
        .unwrap_or(if ipv6 { 3 } else { 2 });
    if ipv6 && version == 2 {
        return Err(e("IPv6 needs VRRP version 3".into()));
    }
    let interval = v.advert_int.unwrap_or(DEFAULT_ADVERT_INT);
    let advert_int_cs = if version == 2 {
        if interval.subsec_nanos() != 0 || interval.as_secs() == 0 || interval.as_secs() > 255 {
            return Err(e(format!(
                "advert_int {} s: VRRPv2 carries whole seconds 1..255 (use version 3 for shorter)",
                interval.as_secs_f64()
            )));
        }
        interval.as_secs() as u16 * 100
    } else {
        let c = interval.as_millis() / 10;
        if c == 0 || c > u128::from(wire::MAX_INTERVAL_CS) {
            return Err(e(format!(
                "advert_int {} s: VRRPv3 carries 0.01..40.95 s",
                interval.as_secs_f64()
            )));
        }
        c as u16
    };
    let auth = match (&v.auth, version) {
        (Some(VrrpAuth::Ah), _) => {
            return Err(e("auth_type AH is not supported (use PASS, or none)".into()));
        }
        (Some(VrrpAuth::Pass(p)), 2) => Auth::pass(p),
        _ => Auth::None,
    };
    for p in v.unicast_peer.iter().chain(v.unicast_src_ip.iter()) {
        if p.is_ipv6() != ipv6 {
            return Err(e(format!(
                "unicast address {p} is not of the family of the virtual addresses"
            )));
        }
    }
    let mut track_scripts = Vec::new();
    for t in &v.track_script {
        let Some(i) = scripts.iter().position(|s| s.name == t.name) else {
            return Err(e(format!("track_script '{}': no such vrrp_script", t.name)));
        };
        let weight = t.weight.or(cfg.vrrp_scripts[i].weight).unwrap_or(0);
        track_scripts.push(TrackedScript {
            script: i,
            weight,
            reverse: t.reverse || (t.weight.is_none() && cfg.vrrp_scripts[i].weight_reverse),
        });
    }
    let checksum = if v.v3_checksum_as_v2 {
        V3Ipv4Checksum::MessageOnly
    } else if v.old_unicast_checksum && !v.unicast_peer.is_empty() {
        V3Ipv4Checksum::MulticastDestination
    } else {
        V3Ipv4Checksum::PseudoHeader
    };
    Ok(Instance {
        name: v.name.clone(),
        interface,
        vrid,
        version,
        ipv6,
        priority: v.priority.unwrap_or(DEFAULT_PRIORITY),
        advert_int_cs,
        start_master: v.state_master == Some(true),
        nopreempt: v.nopreempt,
        preempt_delay: v.preempt_delay.unwrap_or_default(),
        auth,
        vips: v.virtual_ipaddress.clone(),
        excluded: v.virtual_ipaddress_excluded.clone(),
        unicast_src: v.unicast_src_ip,
        unicast_peers: v.unicast_peer.clone(),
        track_scripts,
        track_interfaces: v.track_interface.clone(),
        notify: Notify {
            master: v.notify_master.clone(),
            backup: v.notify_backup.clone(),
            fault: v.notify_fault.clone(),
            stop: v.notify_stop.clone(),
            generic: v.notify.clone(),
        },
        garp_delay: Some(v.garp_master_delay.unwrap_or(DEFAULT_GARP_DELAY)),
        garp_repeat: v.garp_master_repeat.unwrap_or(DEFAULT_GARP_REPEAT),
        garp_refresh: v.garp_master_refresh.filter(|d| !d.is_zero()),
        garp_refresh_repeat: v.garp_master_refresh_repeat.unwrap_or(1),
        checksum,
        sync_group: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(text: &str) -> Result<Plan, String> {
        let cfg = crate::keepalived::parse_str("k.conf", text).map_err(|e| e.to_string())?;
        plan(&cfg).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_keepalived_s() {
        let p = plan_of(
            "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 51\n \
             virtual_ipaddress {\n  198.18.0.100/24 dev eth0 label eth0:vip\n }\n}\n",
        )
        .unwrap();
        let i = &p.instances[0];
        assert_eq!((i.version, i.priority, i.advert_int_cs), (2, 100, 100));
        assert_eq!(
            (i.garp_delay, i.garp_repeat),
            (Some(Duration::from_secs(5)), 5)
        );
        assert!(!i.start_master && i.multicast());
        assert_eq!(i.vips[0].prefix_len, 24);
        assert_eq!(i.vips[0].label.as_deref(), Some("eth0:vip"));
    }

    #[test]
    fn version_3_subsecond_ipv6_and_global_version() {
        let p = plan_of(
            "global_defs {\n vrrp_version 3\n}\nvrrp_instance A {\n interface eth0\n \
             virtual_router_id 1\n advert_int 0.1\n virtual_ipaddress {\n  198.18.0.100\n }\n}\n\
             vrrp_instance B {\n interface eth0\n virtual_router_id 1\n \
             virtual_ipaddress {\n  2001:db8::100/64\n }\n}\n",
        )
        .unwrap();
        assert_eq!(
            (p.instances[0].version, p.instances[0].advert_int_cs),
            (3, 10)
        );
        assert!(p.instances[1].ipv6);
    }

    #[test]
    fn what_cannot_run_is_refused_with_its_place() {
        let e = plan_of(
            "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n advert_int 0.5\n \
             virtual_ipaddress {\n  198.18.0.100\n }\n}\n",
        )
        .unwrap_err();
        assert!(
            e.starts_with("k.conf:1:1: vrrp_instance 'A': advert_int 0.5 s"),
            "{e}"
        );
        let e = plan_of(
            "vrrp_instance A {\n interface eth0\n virtual_ipaddress {\n 198.18.0.1\n }\n}\n",
        )
        .unwrap_err();
        assert!(e.contains("needs 'virtual_router_id'"), "{e}");
        let e = plan_of(
            "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n track_script {\n  nope\n }\n \
             virtual_ipaddress {\n  198.18.0.1\n }\n}\n",
        )
        .unwrap_err();
        assert!(e.contains("no such vrrp_script"), "{e}");
        let e = plan_of(
            "vrrp_sync_group G {\n group {\n  X\n }\n}\nvrrp_instance A {\n interface eth0\n \
             virtual_router_id 1\n virtual_ipaddress {\n  198.18.0.1\n }\n}\n",
        )
        .unwrap_err();
        assert!(
            e.contains("vrrp_sync_group 'G': no vrrp_instance 'X'"),
            "{e}"
        );
    }

    #[test]
    fn script_weights_and_sync_groups() {
        let p = plan_of(
            "vrrp_script chk {\n script \"/bin/true\"\n weight -20\n fall 2\n}\n\
             vrrp_sync_group G {\n group {\n  A\n  B\n }\n notify \"/n.sh\"\n}\n\
             vrrp_instance A {\n interface eth0\n virtual_router_id 1\n track_script {\n  chk\n }\n \
             virtual_ipaddress {\n  198.18.0.1\n }\n}\n\
             vrrp_instance B {\n interface eth1\n virtual_router_id 2\n track_script {\n  chk weight 5\n }\n \
             virtual_ipaddress {\n  198.18.1.1\n }\n}\n",
        )
        .unwrap();
        assert_eq!(p.instances[0].track_scripts[0].weight, -20);
        assert_eq!(p.instances[1].track_scripts[0].weight, 5);
        assert_eq!(p.scripts[0].fall, 2);
        assert_eq!(p.groups[0].members, [0, 1]);
        assert_eq!(p.instances[1].sync_group, Some(0));
        assert_eq!(p.groups[0].notify.generic.as_deref(), Some("/n.sh"));
    }
}
