//! Requests and responses. They mirror what ipvsadm asks of the kernel, so rvsadm can keep
//! ipvsadm's parsing, messages and formats on its side and rvsd keeps the kernel's rules on its.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::model::{DestAddr, DestConfig, MarkRule, Protocol, ServiceConfig, ServiceId, Timeouts};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Version and table size (ipvsadm's "Can't initialize ipvs" check and banner).
    Info,
    AddService {
        service: ServiceId,
        config: ServiceConfig,
    },
    EditService {
        service: ServiceId,
        config: ServiceConfig,
    },
    DeleteService {
        service: ServiceId,
    },
    Clear,
    AddDest {
        service: ServiceId,
        dest: DestAddr,
        config: DestConfig,
    },
    EditDest {
        service: ServiceId,
        dest: DestAddr,
        config: DestConfig,
    },
    DeleteDest {
        service: ServiceId,
        dest: DestAddr,
    },
    /// Zero counters of one service (and its real servers), or of everything.
    Zero {
        service: Option<ServiceId>,
    },
    SetTimeouts {
        timeouts: Timeouts,
    },
    /// rvs extension: a rule that marks packets for fwmark services (appended: tried last).
    AddMarkRule {
        rule: MarkRule,
    },
    DeleteMarkRule {
        rule: MarkRule,
    },
    ListMarkRules,
    GetTimeouts,
    /// All services, or one; with counters, rates and connection counts.
    ListServices {
        service: Option<ServiceId>,
    },
    /// The connection table.
    ListConns,
    /// The data plane's event counters (drops, passes), an rvs extension.
    Counters,
    /// Each VRRP instance's state (rvs extension); answered from the VRRP task's snapshot.
    Vrrp,
    /// The sync daemon's settings and counters; answered from the sync task's snapshot.
    SyncStatus,
    /// The BGP speaker's sessions and prefixes (rvs extension); from the BGP task's snapshot.
    Bgp,
    /// The L7 servers' rules, pools and counters (rvs extension); from the L7 task's snapshot.
    L7,
    /// Cluster balancing's loads, decisions and counters (rvs extension); answered from the
    /// cluster task's snapshot.
    Cluster,
    /// `--start-daemon master|backup`: answered by the sync daemons, not the director.
    StartDaemon {
        daemon: crate::daemon::sync::DaemonSpec,
    },
    /// `--stop-daemon master|backup`.
    StopDaemon {
        backup: bool,
    },
    /// `--drain` / `--undrain` (rvs extension): withdraw or announce again this director's BGP
    /// routes, and say how many flows still arrive.
    Drain {
        action: crate::daemon::drain::DrainOp,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Ok,
    /// The kernel errno the operation would have failed with, and rvs's own explanation.
    Error {
        errno: i32,
        detail: String,
    },
    Info(Info),
    Services {
        services: Vec<ServiceView>,
    },
    Timeouts {
        timeouts: Timeouts,
    },
    Conns {
        conns: Vec<ConnView>,
    },
    Counters {
        counters: Vec<(String, u64)>,
    },
    MarkRules {
        rules: Vec<MarkRule>,
    },
    Vrrp {
        status: crate::daemon::vrrp::VrrpStatus,
    },
    Sync {
        status: Box<crate::daemon::sync::SyncStatus>,
    },
    Bgp {
        status: Option<crate::daemon::bgp::BgpStatus>,
    },
    /// None: no L7 task runs.
    L7 {
        status: Option<crate::daemon::l7::L7Status>,
    },
    /// None: no `rvs_cluster` runs.
    Cluster {
        status: Option<Box<crate::daemon::cluster::ClusterStatus>>,
    },
    Drain {
        status: crate::daemon::drain::DrainStatus,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Info {
    /// IPVS version rvs reports ("1.2.1").
    pub ipvs_version: String,
    /// rvs's version.
    pub rvs_version: String,
    /// Capacity of the connection table.
    pub conn_table_size: u32,
}

/// Counters as ipvsadm --stats shows them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsView {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

/// Rates as ipvsadm --rate shows them (per second, from the 2-second estimator).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateView {
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceView {
    pub service: ServiceId,
    pub config: ServiceConfig,
    pub stats: StatsView,
    pub rate: RateView,
    /// Real servers in the kernel's list order (newest first); ipvsadm sorts for display.
    pub dests: Vec<DestView>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DestView {
    pub dest: DestAddr,
    pub config: DestConfig,
    pub active_conns: u32,
    pub inactive_conns: u32,
    pub persist_conns: u32,
    pub stats: StatsView,
    pub rate: RateView,
}

/// One connection, as /proc/net/ip_vs_conn describes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConnView {
    /// None for persistence templates of fwmark services (shown as `IP`).
    pub protocol: Option<Protocol>,
    pub client: IpAddr,
    pub client_port: u16,
    pub virtual_addr: IpAddr,
    pub virtual_port: u16,
    pub dest: IpAddr,
    pub dest_port: u16,
    /// State name as ipvsadm prints it (`ESTABLISHED`, `UDP`, ...).
    pub state: String,
    /// Seconds until the connection expires.
    pub expires: u64,
    pub pe_name: Option<String>,
    pub pe_data: Option<String>,
}
