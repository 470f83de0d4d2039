//! The vocabulary: protocols, service identities, service and real-server settings.

use std::{fmt, net::IpAddr};

use serde::{Deserialize, Serialize};

/// Transport protocol of a virtual service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    pub fn from_number(n: u8) -> Option<Protocol> {
        match n {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            132 => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The name ipvsadm prints (`TCP`, `UDP`, `SCTP`).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }

    /// The name for getservbyname/getservbyport (`tcp`, `udp`, `sctp`).
    pub fn service_db_name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// Identity of a virtual service: (protocol, VIP, port) or a firewall mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceId {
    Inet {
        proto: Protocol,
        addr: IpAddr,
        port: u16,
    },
    Fwmark {
        mark: u32,
        ipv6: bool,
    },
}

impl ServiceId {
    pub fn is_ipv6(&self) -> bool {
        match self {
            ServiceId::Inet { addr, .. } => addr.is_ipv6(),
            ServiceId::Fwmark { ipv6, .. } => *ipv6,
        }
    }

    pub fn protocol(&self) -> Option<Protocol> {
        match self {
            ServiceId::Inet { proto, .. } => Some(*proto),
            ServiceId::Fwmark { .. } => None,
        }
    }

    pub fn port(&self) -> u16 {
        match self {
            ServiceId::Inet { port, .. } => *port,
            ServiceId::Fwmark { .. } => 0,
        }
    }
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceId::Inet { proto, addr, port } => match addr {
                IpAddr::V4(a) => write!(f, "{} {}:{}", proto.name(), a, port),
                IpAddr::V6(a) => write!(f, "{} [{}]:{}", proto.name(), a, port),
            },
            ServiceId::Fwmark { mark, ipv6 } => {
                write!(f, "FWM {mark}{}", if *ipv6 { " IPv6" } else { "" })
            }
        }
    }
}

/// Service flag bits as IPVS numbers them (IP_VS_SVC_F_*).
pub mod svc_flags {
    pub const PERSISTENT: u32 = 0x1;
    pub const ONEPACKET: u32 = 0x4;
    pub const SCHED1: u32 = 0x8;
    pub const SCHED2: u32 = 0x10;
    pub const SCHED3: u32 = 0x20;
    pub const SCHED_MASK: u32 = SCHED1 | SCHED2 | SCHED3;
    /// rvs's own bit, outside IPVS's: a TCP packet without SYN of an unknown flow is scheduled
    /// (IPVS's sloppy_tcp, per service; `--sloppy-tcp`, keepalived.conf's `sloppy_tcp`).
    pub const SLOPPY_TCP: u32 = 0x1_0000;
}

/// Settings of a virtual service (what `ipvsadm -A/-E` sends).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceConfig {
    /// Scheduler name (`rr`, `wrr`, `wlc`, ...).
    pub scheduler: String,
    /// `svc_flags` bits: PERSISTENT, ONEPACKET, SCHED1..3.
    pub flags: u32,
    /// Persistence timeout in seconds (meaningful with PERSISTENT).
    pub timeout: u32,
    /// Persistence granularity: an IPv4 mask (host order, e.g. 0xffffff00) or an IPv6 prefix length.
    pub netmask: u32,
    /// Persistence engine name (`sip`), if any.
    pub pe_name: Option<String>,
}

impl ServiceConfig {
    /// ipvsadm's defaults for a service address family.
    pub fn new(scheduler: &str, ipv6: bool) -> ServiceConfig {
        ServiceConfig {
            scheduler: scheduler.to_owned(),
            flags: 0,
            timeout: 0,
            netmask: if ipv6 { 128 } else { 0xffff_ffff },
            pe_name: None,
        }
    }

    pub fn persistent(&self) -> bool {
        self.flags & svc_flags::PERSISTENT != 0
    }

    pub fn one_packet(&self) -> bool {
        self.flags & svc_flags::ONEPACKET != 0
    }

    pub fn sloppy_tcp(&self) -> bool {
        self.flags & svc_flags::SLOPPY_TCP != 0
    }
}

/// Address and port of a real server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DestAddr {
    pub addr: IpAddr,
    pub port: u16,
}

impl fmt::Display for DestAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            IpAddr::V4(a) => write!(f, "{}:{}", a, self.port),
            IpAddr::V6(a) => write!(f, "[{}]:{}", a, self.port),
        }
    }
}

/// Packet-forwarding method of a real server (IP_VS_CONN_F_FWD_MASK values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FwdMethod {
    Masq,
    Local,
    Tunnel,
    Route,
    Bypass,
}

impl FwdMethod {
    pub fn code(self) -> u8 {
        match self {
            FwdMethod::Masq => 0,
            FwdMethod::Local => 1,
            FwdMethod::Tunnel => 2,
            FwdMethod::Route => 3,
            FwdMethod::Bypass => 4,
        }
    }

    /// The name in ipvsadm's Forward column.
    pub fn name(self) -> &'static str {
        match self {
            FwdMethod::Masq => "Masq",
            FwdMethod::Local => "Local",
            FwdMethod::Tunnel => "Tunnel",
            FwdMethod::Route => "Route",
            FwdMethod::Bypass => "(null)",
        }
    }
}

/// Encapsulation for the Tunnel method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunType {
    Ipip,
    Gue,
    Gre,
}

impl TunType {
    pub fn name(self) -> &'static str {
        match self {
            TunType::Ipip => "ipip",
            TunType::Gue => "gue",
            TunType::Gre => "gre",
        }
    }
}

/// Tunnel checksum option (`--tun-nocsum`, `--tun-csum`, `--tun-remcsum`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunCsum {
    NoCsum,
    Csum,
    RemCsum,
}

/// Settings of a real server (what `ipvsadm -a/-e` sends).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestConfig {
    pub fwd: FwdMethod,
    pub weight: i32,
    pub u_threshold: u32,
    pub l_threshold: u32,
    pub tun_type: TunType,
    pub tun_port: u16,
    pub tun_csum: TunCsum,
}

impl Default for DestConfig {
    /// ipvsadm's defaults: direct routing, weight 1, no thresholds, ipip.
    fn default() -> Self {
        DestConfig {
            fwd: FwdMethod::Route,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            tun_type: TunType::Ipip,
            tun_port: 0,
            tun_csum: TunCsum::NoCsum,
        }
    }
}

/// A real server in a service's list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dest {
    pub addr: DestAddr,
    pub config: DestConfig,
    /// Data-plane index (stats, connection counters, forwarding entry).
    pub id: u32,
    /// Last non-zero weight (IPVS `last_weight`), used by mh.
    pub last_weight: i32,
}

/// Connection timeouts as `ipvsadm --set` and `-L --timeout` see them, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300,
        }
    }
}
