//! What the sync task runs with, from keepalived.conf as operators write it
//! (`global_defs { lvs_sync_daemon IF [inst] VI [id N] [maxlen N] [port N] [ttl N] [group ADDR] }`,
//! or the older `lvs_sync_daemon_interface IF` inside a `vrrp_instance`), from ipvsadm's
//! `--start-daemon master|backup` at run time, and rvsd's own options (peers, key, bulk sync,
//! IPVS's sync sysctls), with IPVS's defaults.

use std::{net::IpAddr, path::PathBuf, time::Duration};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::{auth::Key, wire};
use crate::{dataplane::sync_feed::SyncRule, keepalived::KeepalivedConfig};

/// Which of IPVS's two daemons run: the master sends the flows this director forwards, the
/// backup writes what it receives. keepalived's `lvs_sync_daemon` runs both in rvs, so that the
/// table follows whichever director forwards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roles {
    pub master: bool,
    pub backup: bool,
}

impl Roles {
    pub const BOTH: Roles = Roles {
        master: true,
        backup: true,
    };

    pub fn any(self) -> bool {
        self.master || self.backup
    }

    pub fn overlaps(self, other: Roles) -> bool {
        (self.master && other.master) || (self.backup && other.backup)
    }

    pub fn union(self, other: Roles) -> Roles {
        Roles {
            master: self.master || other.master,
            backup: self.backup || other.backup,
        }
    }

    pub fn without(self, other: Roles) -> Roles {
        Roles {
            master: self.master && !other.master,
            backup: self.backup && !other.backup,
        }
    }
}

/// When flows are sent: IPVS's sysctls `sync_threshold` (threshold and period),
/// `sync_refresh_period` (seconds; 0 off) and `sync_retries` (0–3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncTiming {
    pub threshold: u32,
    pub period: u32,
    pub refresh_period: u32,
    pub retries: u8,
}

impl Default for SyncTiming {
    fn default() -> SyncTiming {
        let rule = SyncRule::default();
        SyncTiming {
            threshold: rule.threshold,
            period: rule.period,
            refresh_period: 0,
            retries: 0,
        }
    }
}

impl SyncTiming {
    /// Checked as the kernel's sysctl handlers check them.
    pub fn new(threshold: u32, period: u32, refresh_period: u32, retries: u8) -> Result<Self> {
        if period != 0 && threshold >= period {
            bail!("the sync threshold ({threshold}) must be below the sync period ({period})");
        }
        if retries > 3 {
            bail!("sync retries must be 0 to 3, not {retries}");
        }
        Ok(SyncTiming {
            threshold,
            period,
            refresh_period,
            retries,
        })
    }

    /// What the data plane reports: with a period of 0 and a refresh period, every packet (the
    /// refresh period then decides which go out).
    pub fn rule(self) -> SyncRule {
        SyncRule {
            threshold: self.threshold,
            period: self.period,
            by_time: self.period == 0 && self.refresh_period > 0,
        }
    }
}

/// `ipvsadm --start-daemon master|backup` with its options, as rvsadm sends it (0 and None:
/// the default).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonSpec {
    pub backup: bool,
    pub interface: String,
    pub syncid: u8,
    pub maxlen: u16,
    pub group: Option<IpAddr>,
    pub port: u16,
    pub ttl: u8,
}

/// rvsd's sync options (rvs extensions).
#[derive(Clone, Debug, Default)]
pub struct SyncOptions {
    /// Send to these directors instead of the multicast group, and accept only them.
    pub peers: Vec<IpAddr>,
    /// A file holding the shared key: messages carry an HMAC and a sequence number.
    pub key_file: Option<PathBuf>,
    /// How long a starting director waits for the whole table before VRRP starts (0: no bulk
    /// sync).
    pub bulk_timeout: Duration,
    pub timing: SyncTiming,
}

#[derive(Clone, Debug)]
pub struct SyncConfig {
    pub roles: Roles,
    pub interface: String,
    pub syncid: u8,
    /// `maxlen`: the largest datagram sent (None: IPVS's rule from the MTU).
    pub maxlen: Option<u16>,
    pub port: u16,
    pub ttl: u8,
    pub group: IpAddr,
    pub peers: Vec<IpAddr>,
    pub key: Option<Key>,
    /// The VRRP instance the daemon follows (keepalived's `inst`), if any.
    pub instance: Option<String>,
    pub bulk_timeout: Duration,
    pub timing: SyncTiming,
}

impl SyncConfig {
    /// The sync daemon `cfg` asks for, if any.
    pub fn from_keepalived(cfg: &KeepalivedConfig, opts: &SyncOptions) -> Result<Option<Self>> {
        let instance_of = |name: &str| cfg.vrrp_instances.iter().find(|v| v.name == name);
        let (interface, instance, d) = match &cfg.global.lvs_sync_daemon {
            Some(d) => (d.interface.clone(), d.instance.clone(), Some(d)),
            None => match cfg
                .vrrp_instances
                .iter()
                .find(|v| v.lvs_sync_daemon_interface.is_some())
            {
                Some(v) => (
                    v.lvs_sync_daemon_interface.clone().expect("found"),
                    Some(v.name.clone()),
                    None,
                ),
                None => return Ok(None),
            },
        };
        let vrrp = match &instance {
            Some(name) => Some(instance_of(name).with_context(|| {
                format!("lvs_sync_daemon names vrrp_instance {name}, which is not configured")
            })?),
            None => None,
        };
        // keepalived's default sync id is the instance's router id.
        let syncid = d
            .and_then(|d| d.sync_id)
            .or_else(|| vrrp.and_then(|v| v.virtual_router_id))
            .unwrap_or(0);
        let group = d
            .and_then(|d| d.group)
            .unwrap_or(IpAddr::V4(wire::SYNC_GROUP_V4));
        if !group.is_multicast() {
            bail!("lvs_sync_daemon group {group} is not a multicast address");
        }
        // Unicast VRRP means a LAN without multicast: sync goes to the same peers.
        let peers = if opts.peers.is_empty() {
            vrrp.map(|v| v.unicast_peer.clone()).unwrap_or_default()
        } else {
            opts.peers.clone()
        };
        Ok(Some(SyncConfig {
            roles: Roles::BOTH,
            interface,
            syncid,
            maxlen: d.and_then(|d| d.maxlen),
            port: d.and_then(|d| d.port).unwrap_or(wire::SYNC_PORT),
            ttl: d.and_then(|d| d.ttl).unwrap_or(1),
            group,
            peers,
            key: key(opts)?,
            instance,
            bulk_timeout: opts.bulk_timeout,
            timing: opts.timing,
        }))
    }

    /// The daemon `ipvsadm --start-daemon` asks for: one role, IPVS's defaults for what it
    /// leaves out, rvsd's peers and key.
    pub fn from_spec(spec: &DaemonSpec, opts: &SyncOptions) -> Result<Self> {
        let group = spec.group.unwrap_or(IpAddr::V4(wire::SYNC_GROUP_V4));
        if !group.is_multicast() {
            bail!("the sync group {group} is not a multicast address");
        }
        Ok(SyncConfig {
            roles: Roles {
                master: !spec.backup,
                backup: spec.backup,
            },
            interface: spec.interface.clone(),
            syncid: spec.syncid,
            maxlen: (spec.maxlen != 0).then_some(spec.maxlen),
            port: if spec.port == 0 {
                wire::SYNC_PORT
            } else {
                spec.port
            },
            ttl: if spec.ttl == 0 { 1 } else { spec.ttl },
            group,
            peers: opts.peers.clone(),
            key: key(opts)?,
            instance: None,
            bulk_timeout: opts.bulk_timeout,
            timing: opts.timing,
        })
    }

    /// Whether `other` can run in the same daemon as this one: the same socket, the same peers
    /// and the same syncid (rvs runs both roles on one socket).
    pub fn shares_socket_with(&self, other: &SyncConfig) -> bool {
        (
            &self.interface,
            self.group,
            self.port,
            self.ttl,
            &self.peers,
            self.syncid,
        ) == (
            &other.interface,
            other.group,
            other.port,
            other.ttl,
            &other.peers,
            other.syncid,
        )
    }
}

/// The shared key rvsd was given, if any.
fn key(opts: &SyncOptions) -> Result<Option<Key>> {
    match &opts.key_file {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading the sync key {}", path.display()))?;
            Ok(Some(
                Key::new(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
            ))
        }
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> KeepalivedConfig {
        crate::keepalived::parse_str("test.conf", text).unwrap()
    }

    const INSTANCE: &str = "vrrp_instance VI_1 {\n state BACKUP\n interface eth0\n \
                            virtual_router_id 51\n priority 100\n virtual_ipaddress {\n \
                            198.18.0.100\n }\n";

    #[test]
    fn the_global_form_with_keepalived_defaults() {
        let cfg = load(&format!(
            "global_defs {{\n lvs_sync_daemon eth1 VI_1 maxlen 1400\n}}\n{INSTANCE}}}\n"
        ));
        let s = SyncConfig::from_keepalived(&cfg, &SyncOptions::default())
            .unwrap()
            .unwrap();
        assert_eq!(s.interface, "eth1");
        assert_eq!(s.syncid, 51, "the instance's router id");
        assert_eq!(s.maxlen, Some(1400));
        assert_eq!((s.port, s.ttl), (8848, 1));
        assert_eq!(s.group, IpAddr::V4(wire::SYNC_GROUP_V4));
        assert_eq!(s.instance.as_deref(), Some("VI_1"));
        assert!(s.peers.is_empty() && s.key.is_none());
    }

    #[test]
    fn the_old_per_instance_form_and_unicast_peers() {
        let cfg = load(&format!(
            "{INSTANCE} lvs_sync_daemon_interface eth0\n unicast_peer {{\n 198.18.0.3\n }}\n}}\n"
        ));
        let s = SyncConfig::from_keepalived(&cfg, &SyncOptions::default())
            .unwrap()
            .unwrap();
        assert_eq!(s.interface, "eth0");
        assert_eq!(s.syncid, 51);
        assert_eq!(s.peers, vec!["198.18.0.3".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn no_daemon_and_bad_references() {
        assert!(
            SyncConfig::from_keepalived(&load(&format!("{INSTANCE}}}\n")), &Default::default())
                .unwrap()
                .is_none()
        );
        let cfg = load("global_defs {\n lvs_sync_daemon eth0 VI_9\n}\n");
        let e = SyncConfig::from_keepalived(&cfg, &Default::default()).unwrap_err();
        assert!(e.to_string().contains("VI_9"), "{e}");
    }

    #[test]
    fn ipvsadm_s_daemon_with_ipvs_defaults() {
        let spec = DaemonSpec {
            backup: true,
            interface: "eth1".into(),
            syncid: 7,
            ..DaemonSpec::default()
        };
        let s = SyncConfig::from_spec(&spec, &SyncOptions::default()).unwrap();
        assert_eq!(
            s.roles,
            Roles {
                master: false,
                backup: true
            }
        );
        assert_eq!((s.syncid, s.port, s.ttl, s.maxlen), (7, 8848, 1, None));
        assert_eq!(s.group, IpAddr::V4(wire::SYNC_GROUP_V4));
        let master = SyncConfig::from_spec(
            &DaemonSpec {
                backup: false,
                ..spec.clone()
            },
            &SyncOptions::default(),
        )
        .unwrap();
        assert!(master.roles.master && !master.roles.backup);
        assert!(s.shares_socket_with(&master));
        let other_id = SyncConfig::from_spec(
            &DaemonSpec {
                syncid: 8,
                ..spec.clone()
            },
            &SyncOptions::default(),
        )
        .unwrap();
        assert!(!s.shares_socket_with(&other_id));
        let unicast_group = DaemonSpec {
            group: Some("198.18.0.9".parse().unwrap()),
            ..spec
        };
        assert!(SyncConfig::from_spec(&unicast_group, &SyncOptions::default()).is_err());
    }

    #[test]
    fn timing_is_checked_as_the_sysctls_are() {
        assert!(SyncTiming::new(3, 50, 0, 0).is_ok());
        assert!(SyncTiming::new(50, 50, 0, 0).is_err());
        assert!(SyncTiming::new(7, 0, 0, 0).is_ok());
        assert!(SyncTiming::new(3, 50, 10, 4).is_err());
        assert!(!SyncTiming::new(3, 0, 0, 0).unwrap().rule().by_time);
        assert!(SyncTiming::new(3, 0, 10, 1).unwrap().rule().by_time);
        assert!(!SyncTiming::new(3, 50, 10, 1).unwrap().rule().by_time);
        let r = Roles::BOTH.without(Roles {
            master: true,
            backup: false,
        });
        assert!(!r.master && r.backup && r.any());
        assert!(r.overlaps(Roles::BOTH) && !r.overlaps(Roles::default()));
    }
}
