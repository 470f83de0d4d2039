//! ipvsadm's popt option table: every option word and what it means.

use super::{
    check::Cmd,
    options::{ArgKind, OptionDef},
};
use crate::model::{FwdMethod, TunCsum};

/// What each word of the option table means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptId {
    Command(Cmd),
    Help,
    Version,
    TcpService,
    UdpService,
    SctpService,
    FwmarkService,
    Scheduler,
    Persistent,
    Netmask,
    RealServer,
    Forward(FwdMethod),
    Weight,
    UThreshold,
    LThreshold,
    Numeric,
    Connection,
    McastInterface,
    SyncId,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Sort,
    Exact,
    Ipv6,
    Ops,
    SloppyTcp,
    Pe,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunCsum(TunCsum),
    Match,
}

/// A row of the table; `short` 0 means the option has no short form.
const fn opt(long: &'static str, short: u8, arg: ArgKind, id: OptId) -> OptionDef<OptId> {
    let short = if short == 0 { None } else { Some(short) };
    OptionDef {
        long,
        short,
        arg,
        id,
    }
}

const fn cmd(long: &'static str, short: u8, cmd: Cmd) -> OptionDef<OptId> {
    opt(long, short, ArgKind::None, OptId::Command(cmd))
}

const fn flag(long: &'static str, short: u8, id: OptId) -> OptionDef<OptId> {
    opt(long, short, ArgKind::None, id)
}

const fn arg(long: &'static str, short: u8, id: OptId) -> OptionDef<OptId> {
    opt(long, short, ArgKind::Required, id)
}

/// ipvsadm's popt table, in its order (the first match wins: `--list` is `-L`).
pub const OPTIONS: &[OptionDef<OptId>] = &[
    cmd("add-service", b'A', Cmd::AddService),
    cmd("edit-service", b'E', Cmd::EditService),
    cmd("delete-service", b'D', Cmd::DeleteService),
    cmd("clear", b'C', Cmd::Flush),
    cmd("list", b'L', Cmd::List),
    cmd("list", b'l', Cmd::List),
    cmd("zero", b'Z', Cmd::Zero),
    cmd("add-server", b'a', Cmd::AddServer),
    cmd("edit-server", b'e', Cmd::EditServer),
    cmd("delete-server", b'd', Cmd::DeleteServer),
    cmd("set", 0, Cmd::Set),
    flag("help", b'h', OptId::Help),
    flag("version", b'v', OptId::Version),
    cmd("restore", b'R', Cmd::Restore),
    cmd("save", b'S', Cmd::Save),
    arg("start-daemon", 0, OptId::Command(Cmd::StartDaemon)),
    arg("stop-daemon", 0, OptId::Command(Cmd::StopDaemon)),
    arg("tcp-service", b't', OptId::TcpService),
    arg("udp-service", b'u', OptId::UdpService),
    arg("sctp-service", 0, OptId::SctpService),
    arg("fwmark-service", b'f', OptId::FwmarkService),
    arg("scheduler", b's', OptId::Scheduler),
    opt("persistent", b'p', ArgKind::Optional, OptId::Persistent),
    arg("netmask", b'M', OptId::Netmask),
    arg("real-server", b'r', OptId::RealServer),
    flag("masquerading", b'm', OptId::Forward(FwdMethod::Masq)),
    flag("ipip", b'i', OptId::Forward(FwdMethod::Tunnel)),
    flag("gatewaying", b'g', OptId::Forward(FwdMethod::Route)),
    arg("weight", b'w', OptId::Weight),
    arg("u-threshold", b'x', OptId::UThreshold),
    arg("l-threshold", b'y', OptId::LThreshold),
    flag("numeric", b'n', OptId::Numeric),
    flag("connection", b'c', OptId::Connection),
    arg("mcast-interface", 0, OptId::McastInterface),
    arg("syncid", 0, OptId::SyncId),
    flag("timeout", 0, OptId::Timeout),
    flag("daemon", 0, OptId::Daemon),
    flag("stats", 0, OptId::Stats),
    flag("rate", 0, OptId::Rate),
    flag("thresholds", 0, OptId::Thresholds),
    flag("persistent-conn", 0, OptId::PersistentConn),
    flag("nosort", 0, OptId::NoSort),
    flag("sort", 0, OptId::Sort),
    flag("exact", b'X', OptId::Exact),
    flag("ipv6", b'6', OptId::Ipv6),
    flag("ops", b'o', OptId::Ops),
    arg("pe", 0, OptId::Pe),
    arg("sched-flags", b'b', OptId::SchedFlags),
    arg("mcast-group", 0, OptId::McastGroup),
    arg("mcast-port", 0, OptId::McastPort),
    arg("mcast-ttl", 0, OptId::McastTtl),
    arg("sync-maxlen", 0, OptId::SyncMaxlen),
    flag("tun-info", 0, OptId::TunInfo),
    arg("tun-type", 0, OptId::TunType),
    arg("tun-port", 0, OptId::TunPort),
    flag("tun-nocsum", 0, OptId::TunCsum(TunCsum::NoCsum)),
    flag("tun-csum", 0, OptId::TunCsum(TunCsum::Csum)),
    flag("tun-remcsum", 0, OptId::TunCsum(TunCsum::RemCsum)),
    // rvs extensions, not in ipvsadm: the data plane's counters, and the rules that mark
    // packets for fwmark services (iptables' job for IPVS).
    cmd("dataplane", 0, Cmd::Dataplane),
    cmd("vrrp", 0, Cmd::Vrrp),
    cmd("sync", 0, Cmd::Sync),
    cmd("bgp", 0, Cmd::Bgp),
    cmd("cluster", 0, Cmd::Cluster),
    cmd("l7", 0, Cmd::L7),
    cmd("drain", 0, Cmd::Drain),
    cmd("undrain", 0, Cmd::Undrain),
    cmd("add-mark", 0, Cmd::AddMark),
    cmd("del-mark", 0, Cmd::DelMark),
    cmd("list-marks", 0, Cmd::ListMarks),
    cmd("save-marks", 0, Cmd::SaveMarks),
    arg("match", 0, OptId::Match),
    flag("sloppy-tcp", 0, OptId::SloppyTcp),
];
