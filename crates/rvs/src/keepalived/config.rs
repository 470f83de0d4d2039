//! The typed configuration: what keepalived.conf says, with keepalived's defaults filled in where
//! they do not depend on another level. Settings that inherit (virtual server → real server →
//! checker) stay `Option` here and are resolved by [`super::desired_services`].

use std::{net::IpAddr, time::Duration};

use super::{
    diag::{Diagnostic, Pos},
    value::Netmask,
};
use crate::{
    check::CheckKind,
    model::{Protocol, Timeouts, TunCsum, TunType},
};

/// keepalived's defaults.
pub mod defaults {
    use std::time::Duration;

    pub const DELAY_LOOP: Duration = Duration::from_secs(60);
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// keepalived's default scheduler, which is ipvsadm's.
    pub const SCHEDULER: crate::sched::Scheduler = crate::sched::Scheduler::DEFAULT;
    /// `persistence_timeout` without a value.
    pub const PERSISTENCE_TIMEOUT: u32 = 360;
    pub const QUORUM: u32 = 1;
    pub const WEIGHT: i32 = 1;
    pub const SMTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
    pub const SMTP_PORT: u16 = 25;
    pub const UDP_MAX_REPLY_LENGTH: usize = 255;
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct KeepalivedConfig {
    pub global: GlobalDefs,
    pub virtual_servers: Vec<VirtualServer>,
    pub groups: Vec<VirtualServerGroup>,
    /// Run by rvsd's VRRP task (daemon::vrrp).
    pub vrrp_instances: Vec<VrrpInstance>,
    pub vrrp_sync_groups: Vec<VrrpSyncGroup>,
    pub vrrp_scripts: Vec<VrrpScript>,
    /// `rvs_web { ... }`: the monitor's settings (an rvs extension).
    pub web: Option<WebBlock>,
    /// `rvs_bgp { ... }`: the BGP speaker's settings (an rvs extension).
    pub bgp: Option<super::bgp::BgpBlock>,
    /// `rvs_cluster { ... }`: load exchange and tunnel balancing with other clusters (an rvs
    /// extension; see [`ClusterBlock`]).
    pub cluster: Option<ClusterBlock>,
    /// `rvs_l7_server ADDR PORT { ... }`: layer-7 virtual services (an rvs extension).
    pub l7_servers: Vec<super::l7::L7Server>,
    /// Unknown keywords, skipped blocks, inactive parts: for rvsd to log.
    pub warnings: Vec<Diagnostic>,
}

impl KeepalivedConfig {
    pub fn group(&self, name: &str) -> Option<&VirtualServerGroup> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// Every `rvs_mark` rule, in file order (virtual servers, then groups), each once.
    pub fn mark_rules(&self) -> Vec<crate::model::MarkRule> {
        let mut out: Vec<crate::model::MarkRule> = Vec::new();
        let all = self
            .virtual_servers
            .iter()
            .flat_map(|vs| vs.mark_rules.iter())
            .chain(self.groups.iter().flat_map(|g| g.mark_rules.iter()));
        for r in all {
            if !out.contains(r) {
                out.push(*r);
            }
        }
        out
    }
}

/// The monitor's settings from `rvs_web { ... }` (the `--web*` options win).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WebBlock {
    pub listen: Option<std::net::SocketAddr>,
    pub users: Option<std::path::PathBuf>,
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
    pub session_idle: Option<std::time::Duration>,
}

/// `rvs_cluster { ... }`: this cluster's name, where its load reports arrive, the shared key,
/// how often reports go out, how load is measured and the thresholds of the decision to forward
/// new connections to another cluster. Loads are in thousandths (1100 = 1.1).
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterBlock {
    pub pos: Pos,
    pub name: String,
    /// Where reports arrive (UDP), and the address they are sent from.
    pub listen: std::net::SocketAddr,
    pub key_file: std::path::PathBuf,
    /// Between two reports to each peer (default 120 s, the seed's 2 minutes).
    pub period: Duration,
    /// Active connections one unit of weight takes at load 1 (default 100).
    pub capacity_per_weight: u32,
    /// Local load above which forwarding starts (default 1.1).
    pub start_above: u32,
    /// Local load at or below which it stops (default 1.0).
    pub stop_at: u32,
    /// A peer's load must be below this for forwarding to it (default 0.7).
    pub remote_below: u32,
    pub peers: Vec<ClusterPeer>,
}

/// A `peer NAME { ... }` of `rvs_cluster`.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterPeer {
    pub pos: Pos,
    pub name: String,
    /// Where its reports come from (its address) and go to (address and port).
    pub address: std::net::SocketAddr,
    /// The tunnel endpoint: the remote director's address.
    pub director: IpAddr,
    /// The weight of the remote director in the local services while forwarding (default 1).
    pub weight: i32,
    /// `services ADDR:PORT ...`: which virtual services may be forwarded (every service with
    /// that address and port, whatever its protocol); empty: all configured ones.
    pub services: Vec<std::net::SocketAddr>,
}

impl ClusterBlock {
    pub const DEFAULT_PERIOD: Duration = Duration::from_secs(120);
    pub const DEFAULT_CAPACITY_PER_WEIGHT: u32 = 100;
    pub const DEFAULT_START_ABOVE: u32 = 1100;
    pub const DEFAULT_STOP_AT: u32 = 1000;
    pub const DEFAULT_REMOTE_BELOW: u32 = 700;
}

#[derive(Clone, Debug, PartialEq)]
pub struct GlobalDefs {
    /// Names this director in mail subjects (keepalived's default: the host name).
    pub router_id: Option<String>,
    pub notification_email: Vec<String>,
    /// Default `keepalived@<host name>`.
    pub notification_email_from: Option<String>,
    pub smtp_server: Option<SmtpServer>,
    /// HELO name of notification mail (default: the host name).
    pub smtp_helo_name: Option<String>,
    pub smtp_connect_timeout: Duration,
    /// Global defaults of the per-server `smtp_alert`.
    pub smtp_alert: Option<bool>,
    pub smtp_alert_checker: Option<bool>,
    pub lvs_timeouts: LvsTimeouts,
    /// Parsed; connection sync is a later issue.
    pub lvs_sync_daemon: Option<LvsSyncDaemon>,
    pub lvs_flush: bool,
    /// `vrrp_version 2|3`: the default of every instance's `version`.
    pub vrrp_version: Option<u8>,
}

impl Default for GlobalDefs {
    fn default() -> Self {
        GlobalDefs {
            router_id: None,
            notification_email: Vec::new(),
            notification_email_from: None,
            smtp_server: None,
            smtp_helo_name: None,
            smtp_connect_timeout: defaults::SMTP_CONNECT_TIMEOUT,
            smtp_alert: None,
            smtp_alert_checker: None,
            lvs_timeouts: LvsTimeouts::default(),
            lvs_sync_daemon: None,
            lvs_flush: false,
            vrrp_version: None,
        }
    }
}

impl GlobalDefs {
    /// Whether state changes can be mailed: recipients and a server are configured.
    pub fn mail_configured(&self) -> bool {
        !self.notification_email.is_empty() && self.smtp_server.is_some()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpServer {
    /// An IP address or a host name.
    pub host: String,
    pub port: u16,
}

/// `lvs_timeouts`: values not given leave the running ones unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LvsTimeouts {
    pub tcp: Option<u32>,
    pub tcp_fin: Option<u32>,
    pub udp: Option<u32>,
}

impl LvsTimeouts {
    pub fn is_set(&self) -> bool {
        self.tcp.is_some() || self.tcp_fin.is_some() || self.udp.is_some()
    }

    /// The timeouts to set, given the running ones.
    pub fn apply(&self, current: Timeouts) -> Timeouts {
        Timeouts {
            tcp: self.tcp.unwrap_or(current.tcp),
            tcp_fin: self.tcp_fin.unwrap_or(current.tcp_fin),
            udp: self.udp.unwrap_or(current.udp),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LvsSyncDaemon {
    pub interface: String,
    pub instance: Option<String>,
    pub sync_id: Option<u8>,
    pub maxlen: Option<u16>,
    pub port: Option<u16>,
    pub ttl: Option<u8>,
    pub group: Option<IpAddr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualServerGroup {
    pub pos: Pos,
    pub name: String,
    pub entries: Vec<GroupEntry>,
    /// rvs's `rvs_mark MARK MATCH...` lines, for the group's fwmark entries.
    pub mark_rules: Vec<crate::model::MarkRule>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupEntry {
    /// An address, or an inclusive range of them (`10.0.0.1-10`, `10.0.0.0/29`).
    Addresses {
        first: IpAddr,
        last: IpAddr,
        port: Option<u16>,
    },
    Fwmark {
        mark: u32,
        /// `inet6` (true) or `inet` (false) when given.
        ipv6: Option<bool>,
    },
}

/// What a `virtual_server` line names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VsAddr {
    Inet { addr: IpAddr, port: Option<u16> },
    Fwmark { mark: u32 },
    Group { name: String },
}

/// Forwarding method as `lb_kind`/`lvs_method` write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LvsMethod {
    Nat,
    Dr,
    Tun {
        tun_type: TunType,
        port: u16,
        csum: TunCsum,
    },
}

/// Settings a virtual server or real server gives its checkers as defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckerDefaults {
    pub delay_loop: Option<Duration>,
    pub connect_timeout: Option<Duration>,
    pub retry: Option<u32>,
    pub delay_before_retry: Option<Duration>,
    pub warmup: Option<Duration>,
    pub alpha: Option<bool>,
}

impl CheckerDefaults {
    /// `self` where set, `parent` otherwise.
    pub fn or(self, parent: CheckerDefaults) -> CheckerDefaults {
        CheckerDefaults {
            delay_loop: self.delay_loop.or(parent.delay_loop),
            connect_timeout: self.connect_timeout.or(parent.connect_timeout),
            retry: self.retry.or(parent.retry),
            delay_before_retry: self.delay_before_retry.or(parent.delay_before_retry),
            warmup: self.warmup.or(parent.warmup),
            alpha: self.alpha.or(parent.alpha),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct VirtualServer {
    pub pos: Pos,
    pub addr: VsAddr,
    /// `lb_algo`/`lvs_sched`, default wlc.
    pub scheduler: String,
    /// svc_flags SCHED1..3 from flag-N, sh-/mh-port, sh-/mh-fallback.
    pub sched_flags: u32,
    /// `ops`.
    pub one_packet: bool,
    /// rvs extension `sloppy_tcp`: see `model::svc_flags::SLOPPY_TCP`.
    pub sloppy_tcp: bool,
    /// `lb_kind`/`lvs_method`, default NAT.
    pub method: LvsMethod,
    pub persistence_timeout: Option<u32>,
    pub persistence_granularity: Option<Netmask>,
    pub persistence_engine: Option<String>,
    /// `protocol`, default TCP.
    pub protocol: Protocol,
    /// `ip_family inet6` (true) or `inet` (false).
    pub ip_family: Option<bool>,
    pub ha_suspend: bool,
    pub virtualhost: Option<String>,
    pub omega: bool,
    pub quorum: u32,
    pub hysteresis: u32,
    pub quorum_up: Option<String>,
    pub quorum_down: Option<String>,
    pub sorry_server: Option<SorryServerConf>,
    pub inhibit_on_failure: bool,
    pub smtp_alert: Option<bool>,
    /// delay_loop, connect_timeout, retry, ..., alpha as defaults for the checkers.
    pub checker_defaults: CheckerDefaults,
    pub real_servers: Vec<RealServer>,
    /// rvs's `rvs_mark` rules (a `virtual_server fwmark N` only): which packets get mark N.
    pub mark_rules: Vec<crate::model::MarkRule>,
}

impl VirtualServer {
    pub fn new(pos: Pos, addr: VsAddr) -> VirtualServer {
        VirtualServer {
            pos,
            addr,
            scheduler: defaults::SCHEDULER.name().to_owned(),
            sched_flags: 0,
            one_packet: false,
            sloppy_tcp: false,
            method: LvsMethod::Nat,
            persistence_timeout: None,
            persistence_granularity: None,
            persistence_engine: None,
            protocol: Protocol::Tcp,
            ip_family: None,
            ha_suspend: false,
            virtualhost: None,
            omega: false,
            quorum: defaults::QUORUM,
            hysteresis: 0,
            quorum_up: None,
            quorum_down: None,
            sorry_server: None,
            inhibit_on_failure: false,
            smtp_alert: None,
            checker_defaults: CheckerDefaults::default(),
            real_servers: Vec::new(),
            mark_rules: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SorryServerConf {
    pub addr: IpAddr,
    pub port: Option<u16>,
    /// `sorry_server_lvs_method`, default the virtual server's.
    pub method: Option<LvsMethod>,
    /// `sorry_server_inhibit`.
    pub inhibit: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RealServer {
    pub pos: Pos,
    pub addr: IpAddr,
    /// Default: the virtual server's port.
    pub port: Option<u16>,
    pub weight: i32,
    /// Default: the virtual server's method.
    pub method: Option<LvsMethod>,
    pub uthreshold: u32,
    pub lthreshold: u32,
    /// Default: the virtual server's.
    pub inhibit_on_failure: Option<bool>,
    pub notify_up: Option<String>,
    pub notify_down: Option<String>,
    pub virtualhost: Option<String>,
    pub smtp_alert: Option<bool>,
    pub checker_defaults: CheckerDefaults,
    pub checkers: Vec<Checker>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Checker {
    pub pos: Pos,
    /// The check itself; its virtualhost and misc timeout are resolved later.
    pub kind: CheckKind,
    pub connect_ip: Option<IpAddr>,
    pub connect_port: Option<u16>,
    pub bindto: Option<IpAddr>,
    pub bind_port: Option<u16>,
    pub defaults: CheckerDefaults,
}

/// A `vrrp_instance`. keepalived's defaults are filled in by the VRRP task, which also knows
/// the global `vrrp_version`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VrrpInstance {
    pub pos: Option<Pos>,
    pub name: String,
    /// `state MASTER` (true) or `BACKUP` (false); keepalived starts as BACKUP unless MASTER.
    pub state_master: Option<bool>,
    pub interface: Option<String>,
    pub virtual_router_id: Option<u8>,
    /// 1..255; keepalived's default is 100 (255 for `state MASTER` owners is set explicitly).
    pub priority: Option<u8>,
    /// Default 1 s; v3 carries it in centiseconds.
    pub advert_int: Option<Duration>,
    /// `version 2|3`: default the global `vrrp_version`, else 2 (3 for IPv6 addresses).
    pub version: Option<u8>,
    pub nopreempt: bool,
    pub preempt_delay: Option<Duration>,
    pub auth: Option<VrrpAuth>,
    pub virtual_ipaddress: Vec<VirtualAddress>,
    /// Added and removed with the others, but not carried in adverts.
    pub virtual_ipaddress_excluded: Vec<VirtualAddress>,
    pub unicast_src_ip: Option<IpAddr>,
    pub unicast_peer: Vec<IpAddr>,
    pub track_script: Vec<Tracked>,
    pub track_interface: Vec<Tracked>,
    pub notify_master: Option<String>,
    pub notify_backup: Option<String>,
    pub notify_fault: Option<String>,
    pub notify_stop: Option<String>,
    /// The generic `notify`, called with `INSTANCE name state priority` appended.
    pub notify: Option<String>,
    /// Delay of the second gratuitous ARP burst after becoming MASTER (default 5 s; 0 = none).
    pub garp_master_delay: Option<Duration>,
    /// Messages per burst (default 5).
    pub garp_master_repeat: Option<u32>,
    /// Period of repeated bursts while MASTER (default 0 = never).
    pub garp_master_refresh: Option<Duration>,
    pub garp_master_refresh_repeat: Option<u32>,
    /// VRRPv3 over IPv4 checksum without the pseudo-header (what RFC 9568 settled on).
    pub v3_checksum_as_v2: bool,
    /// keepalived before 1.3.6: unicast v3 IPv4 checksums over the multicast destination.
    pub old_unicast_checksum: bool,
    /// The old per-instance form of `lvs_sync_daemon`; kept for connection sync.
    pub lvs_sync_daemon_interface: Option<String>,
}

/// `authentication { auth_type PASS; auth_pass ... }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VrrpAuth {
    /// Up to 8 bytes, zero-padded on the wire (keepalived truncates longer ones).
    Pass(String),
    /// IPSEC-AH: parsed, refused by the VRRP task (deprecated by RFC 3768, unsupported in v3).
    Ah,
}

/// One line of `virtual_ipaddress`: `ADDR[/PREFIX] [dev IF] [label LABEL] [scope SCOPE]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualAddress {
    pub addr: IpAddr,
    /// Default 32 (IPv4) or 128 (IPv6), as keepalived adds them.
    pub prefix_len: u8,
    /// Default: the instance's interface.
    pub dev: Option<String>,
    pub label: Option<String>,
    /// `host`, `link`, `global`, `site`, `nowhere` or a number (default global).
    pub scope: Option<String>,
}

/// An entry of `track_script` or `track_interface`: `NAME [weight W [reverse]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracked {
    pub name: String,
    /// None: the script's own weight (for scripts) or 0 (interfaces): failure means FAULT.
    pub weight: Option<i32>,
    pub reverse: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VrrpSyncGroup {
    pub pos: Option<Pos>,
    pub name: String,
    pub group: Vec<String>,
    pub notify_master: Option<String>,
    pub notify_backup: Option<String>,
    pub notify_fault: Option<String>,
    pub notify_stop: Option<String>,
    /// Called with `GROUP name state priority` appended.
    pub notify: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VrrpScript {
    pub pos: Option<Pos>,
    pub name: String,
    pub script: Option<String>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub weight: Option<i32>,
    /// `weight W reverse`: success lowers, failure raises.
    pub weight_reverse: bool,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
    /// `init_fail`: start as failed.
    pub init_fail: bool,
}
