//! What the sync task runs with, from keepalived.conf as operators write it
//! (`global_defs { lvs_sync_daemon IF [inst] VI [id N] [maxlen N] [port N] [ttl N] [group ADDR] }`,
//! or the older `lvs_sync_daemon_interface IF` inside a `vrrp_instance`) and rvsd's own options
//! (peers, key, bulk sync), with IPVS's defaults.

use std::{net::IpAddr, path::PathBuf, time::Duration};

use anyhow::{Context, Result, bail};

use super::{auth::Key, wire};
use crate::keepalived::KeepalivedConfig;

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
}

#[derive(Clone, Debug)]
pub struct SyncConfig {
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
        let key = match &opts.key_file {
            Some(path) => {
                let bytes = std::fs::read(path)
                    .with_context(|| format!("reading the sync key {}", path.display()))?;
                Some(Key::new(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?)
            }
            None => None,
        };
        Ok(Some(SyncConfig {
            interface,
            syncid,
            maxlen: d.and_then(|d| d.maxlen),
            port: d.and_then(|d| d.port).unwrap_or(wire::SYNC_PORT),
            ttl: d.and_then(|d| d.ttl).unwrap_or(1),
            group,
            peers,
            key,
            instance,
            bulk_timeout: opts.bulk_timeout,
        }))
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
}
