//! A parsed command line: the service, real server, timeouts and daemon settings the options
//! build (ipvsadm's `struct ipvs_command_entry`), and what rvsd is sent from them.

use std::net::{IpAddr, Ipv4Addr};

use super::{
    check::{Cmd, OptSet},
    format::Format,
};
use crate::model::{DestAddr, DestConfig, MarkMatch, Protocol, ServiceConfig, ServiceId, Timeouts};

/// An address family as ipvsadm tracks it: unset until a service or server is given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Af {
    #[default]
    Unspec,
    Inet,
    Inet6,
}

impl Af {
    pub fn of(addr: IpAddr) -> Af {
        if addr.is_ipv4() { Af::Inet } else { Af::Inet6 }
    }
}

/// The virtual service as the options build it (ipvsadm's `ipvs_service_t`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SvcEntry {
    pub af: Af,
    /// 0 until `-t/-u/--sctp-service/-f`.
    pub protocol: u16,
    pub addr: IpAddr,
    pub port: u16,
    pub fwmark: u32,
    /// Empty means not given.
    pub scheduler: String,
    pub flags: u32,
    pub timeout: u32,
    /// An IPv4 mask in host order, or an IPv6 prefix length.
    pub netmask: u32,
    pub pe_name: String,
}

impl Default for SvcEntry {
    fn default() -> Self {
        SvcEntry {
            af: Af::Unspec,
            protocol: 0,
            addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 0,
            fwmark: 0,
            scheduler: String::new(),
            flags: 0,
            timeout: 0,
            netmask: 0xffff_ffff,
            pe_name: String::new(),
        }
    }
}

impl SvcEntry {
    /// The service the kernel would look up; `None` when no service was given.
    pub fn id(&self) -> Option<ServiceId> {
        if self.fwmark != 0 {
            return Some(ServiceId::Fwmark {
                mark: self.fwmark,
                ipv6: self.af == Af::Inet6,
            });
        }
        let proto = Protocol::from_number(u8::try_from(self.protocol).ok()?)?;
        Some(ServiceId::Inet {
            proto,
            addr: self.addr,
            port: self.port,
        })
    }

    /// For `-Z`: an all-zero service means "every service" (libipvs then sends none).
    pub fn is_unset(&self) -> bool {
        self.fwmark == 0 && self.addr.is_unspecified() && self.port == 0
    }

    pub fn config(&self) -> ServiceConfig {
        ServiceConfig {
            scheduler: self.scheduler.clone(),
            flags: self.flags,
            timeout: self.timeout,
            netmask: self.netmask,
            pe_name: (!self.pe_name.is_empty()).then(|| self.pe_name.clone()),
        }
    }
}

/// The real server as the options build it (ipvsadm's `ipvs_dest_t`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestEntry {
    pub af: Af,
    pub addr: IpAddr,
    pub port: u16,
    pub config: DestConfig,
}

impl Default for DestEntry {
    fn default() -> Self {
        DestEntry {
            af: Af::Unspec,
            addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 0,
            config: DestConfig::default(),
        }
    }
}

impl DestEntry {
    pub fn addr(&self) -> DestAddr {
        DestAddr {
            addr: self.addr,
            port: self.port,
        }
    }
}

/// The sync daemon options (parsed and checked in ranges that fit the spec's fields).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DaemonEntry {
    pub backup: bool,
    pub mcast_interface: String,
    pub syncid: u32,
    pub sync_maxlen: u32,
    pub mcast_group: Option<IpAddr>,
    pub mcast_port: u32,
    pub mcast_ttl: u32,
}

impl DaemonEntry {
    /// What rvsd is asked to start.
    pub fn spec(&self) -> crate::daemon::sync::DaemonSpec {
        crate::daemon::sync::DaemonSpec {
            backup: self.backup,
            interface: self.mcast_interface.clone(),
            syncid: self.syncid as u8,
            maxlen: self.sync_maxlen as u16,
            group: self.mcast_group,
            port: self.mcast_port as u16,
            ttl: self.mcast_ttl as u8,
        }
    }
}

/// One parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandEntry {
    pub cmd: Cmd,
    pub options: OptSet,
    pub format: Format,
    pub svc: SvcEntry,
    pub dest: DestEntry,
    pub timeouts: Timeouts,
    pub daemon: DaemonEntry,
    /// `--match` of the mark commands.
    pub mark_match: Option<MarkMatch>,
}
