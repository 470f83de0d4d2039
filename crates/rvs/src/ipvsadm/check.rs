//! Which options each command accepts, and which tunnel options each tunnel type accepts, with
//! ipvsadm's messages. The tables are checked in option order and the first failure wins.

use crate::model::TunType;

/// The commands, in ipvsadm's order (their names appear in messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmd {
    AddService,
    EditService,
    DeleteService,
    Flush,
    List,
    AddServer,
    DeleteServer,
    EditServer,
    Set,
    StartDaemon,
    StopDaemon,
    Restore,
    Save,
    Zero,
    /// rvs extension: `--dataplane` prints the data plane's counters.
    Dataplane,
    /// rvs extension: `--vrrp` prints each VRRP instance's state.
    Vrrp,
    /// rvs extension: `--sync` prints the sync daemon's counters and bulk sync.
    Sync,
    /// rvs extension: `--bgp` prints the BGP speaker's sessions and prefixes.
    Bgp,
    /// rvs extension: `--l7` prints the L7 servers' rules, pools and counters.
    L7,
    /// rvs extension: `--cluster` prints cluster balancing's loads and decisions.
    Cluster,
    /// rvs extensions: `--drain` / `--undrain` take this director out of (and back into) an
    /// ECMP group.
    Drain,
    Undrain,
    /// rvs extensions: the rules that mark packets for fwmark services.
    AddMark,
    DelMark,
    ListMarks,
    /// `--save-marks`: the rules as `--add-mark` lines (`-S` saves what ipvsadm saves).
    SaveMarks,
}

impl Cmd {
    pub fn name(self) -> &'static str {
        match self {
            Cmd::AddService => "add-service",
            Cmd::EditService => "edit-service",
            Cmd::DeleteService => "delete-service",
            Cmd::Flush => "flush",
            Cmd::List => "list",
            Cmd::AddServer => "add-server",
            Cmd::DeleteServer => "delete-server",
            Cmd::EditServer => "edit-server",
            Cmd::Set => "set",
            Cmd::StartDaemon => "start-daemon",
            Cmd::StopDaemon => "stop-daemon",
            Cmd::Restore => "restore",
            Cmd::Save => "save",
            Cmd::Zero => "zero",
            Cmd::Dataplane => "dataplane",
            Cmd::Vrrp => "vrrp",
            Cmd::Sync => "sync",
            Cmd::Bgp => "bgp",
            Cmd::L7 => "l7",
            Cmd::Cluster => "cluster",
            Cmd::Drain => "drain",
            Cmd::Undrain => "undrain",
            Cmd::AddMark => "add-mark",
            Cmd::DelMark => "del-mark",
            Cmd::ListMarks => "list-marks",
            Cmd::SaveMarks => "save-marks",
        }
    }

    /// The command's row in [`COMMANDS_V_OPTIONS`]: one cell per [`Opt`], in order.
    /// `+` required, `x` illegal, `1` at most one of the `1` options, `.` optional.
    fn row(self) -> &'static [u8; Opt::COUNT] {
        //                       n c svc s p M r fwd w x y mc tot dmn st rt thr pc srt sid ex ops pe b grp port ttl size tinf type tprt nocs csum remc mtch slp
        const ALL_X: &[u8; Opt::COUNT] = b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
        match self {
            Cmd::AddService | Cmd::EditService => b"xx+...xxxxxxxxxxxxxxx...xxxxxxxxxxx.",
            Cmd::DeleteService => b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            Cmd::List => b".11xxxxxxxxx11.......xxxxxxx.xxxxxxx",
            Cmd::AddServer | Cmd::EditServer => b"xx+xxx+....xxxxxxxxxxxxxxxxxx.....xx",
            Cmd::DeleteServer => b"xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            Cmd::StartDaemon => b"xxxxxxxxxxx.xxxxxxx.xxxx....xxxxxxxx",
            Cmd::StopDaemon => b"xxxxxxxxxxxxxxxxxxx.xxxxxxxxxxxxxxxx",
            Cmd::Save => b".xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            Cmd::Zero => b"xx.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            // rvs's mark commands: a mark (-f, the service option) and a match.
            Cmd::AddMark | Cmd::DelMark => b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx+x",
            Cmd::ListMarks | Cmd::SaveMarks => b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            Cmd::Flush
            | Cmd::Set
            | Cmd::Restore
            | Cmd::Dataplane
            | Cmd::Vrrp
            | Cmd::Sync
            | Cmd::Bgp
            | Cmd::L7
            | Cmd::Cluster
            | Cmd::Drain
            | Cmd::Undrain => ALL_X,
        }
    }
}

/// The option classes ipvsadm records (a second use of one is an error). `-6` and `--sort` are
/// not recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opt {
    Numeric,
    Connection,
    Service,
    Scheduler,
    Persistent,
    Netmask,
    Server,
    Forward,
    Weight,
    UThreshold,
    LThreshold,
    McastInterface,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    SyncId,
    Exact,
    OnePacket,
    PersistenceEngine,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNoCsum,
    TunCsum,
    TunRemCsum,
    /// rvs extension: `--match` of the mark commands.
    Match,
    /// rvs extension: `--sloppy-tcp` of -A/-E.
    SloppyTcp,
}

impl Opt {
    pub const COUNT: usize = 36;

    const ALL: [Opt; Opt::COUNT] = [
        Opt::Numeric,
        Opt::Connection,
        Opt::Service,
        Opt::Scheduler,
        Opt::Persistent,
        Opt::Netmask,
        Opt::Server,
        Opt::Forward,
        Opt::Weight,
        Opt::UThreshold,
        Opt::LThreshold,
        Opt::McastInterface,
        Opt::Timeout,
        Opt::Daemon,
        Opt::Stats,
        Opt::Rate,
        Opt::Thresholds,
        Opt::PersistentConn,
        Opt::NoSort,
        Opt::SyncId,
        Opt::Exact,
        Opt::OnePacket,
        Opt::PersistenceEngine,
        Opt::SchedFlags,
        Opt::McastGroup,
        Opt::McastPort,
        Opt::McastTtl,
        Opt::SyncMaxlen,
        Opt::TunInfo,
        Opt::TunType,
        Opt::TunPort,
        Opt::TunNoCsum,
        Opt::TunCsum,
        Opt::TunRemCsum,
        Opt::Match,
        Opt::SloppyTcp,
    ];

    /// The name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Opt::Numeric => "numeric",
            Opt::Connection => "connection",
            Opt::Service => "service-address",
            Opt::Scheduler => "scheduler",
            Opt::Persistent => "persistent",
            Opt::Netmask => "netmask",
            Opt::Server => "real-server",
            Opt::Forward => "forwarding-method",
            Opt::Weight => "weight",
            Opt::UThreshold => "u-threshold",
            Opt::LThreshold => "l-threshold",
            Opt::McastInterface => "mcast-interface",
            Opt::Timeout => "timeout",
            Opt::Daemon => "daemon",
            Opt::Stats => "stats",
            Opt::Rate => "rate",
            Opt::Thresholds => "thresholds",
            Opt::PersistentConn => "persistent-conn",
            Opt::NoSort => "nosort",
            Opt::SyncId => "syncid",
            Opt::Exact => "exact",
            Opt::OnePacket => "ops",
            Opt::PersistenceEngine => "pe",
            Opt::SchedFlags => "sched-flags",
            Opt::McastGroup => "mcast-group",
            Opt::McastPort => "mcast-port",
            Opt::McastTtl => "mcast-ttl",
            Opt::SyncMaxlen => "sync-maxlen",
            Opt::TunInfo => "tun-info",
            Opt::TunType => "tun-type",
            Opt::TunPort => "tun-port",
            Opt::TunNoCsum => "tun-nocsum",
            Opt::TunCsum => "tun-csum",
            Opt::TunRemCsum => "tun-remcsum",
            Opt::Match => "match",
            Opt::SloppyTcp => "sloppy-tcp",
        }
    }

    fn bit(self) -> u64 {
        1 << self as u32
    }
}

/// The set of option classes given on a command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OptSet(u64);

impl OptSet {
    /// Records `opt`; a second use is ipvsadm's `multiple '%s' options specified`.
    pub fn set(&mut self, opt: Opt) -> Result<(), String> {
        if self.has(opt) {
            return Err(format!("multiple '{}' options specified", opt.name()));
        }
        self.0 |= opt.bit();
        Ok(())
    }

    pub fn has(self, opt: Opt) -> bool {
        self.0 & opt.bit() != 0
    }

    pub fn has_any(self, opts: &[Opt]) -> bool {
        opts.iter().any(|&o| self.has(o))
    }
}

/// ipvsadm's `generic_opt_check`.
pub fn generic_opt_check(cmd: Cmd, options: OptSet) -> Result<(), String> {
    let row = cmd.row();
    let mut first_exclusive: Option<Opt> = None;
    for (opt, &cell) in Opt::ALL.iter().zip(row.iter()) {
        let given = options.has(*opt);
        match (cell, given) {
            (b'+', false) => {
                return Err(format!(
                    "You need to supply the '{}' option for the '{}' command",
                    opt.name(),
                    cmd.name()
                ));
            }
            (b'x', true) => {
                return Err(format!(
                    "Illegal '{}' option with the '{}' command",
                    opt.name(),
                    cmd.name()
                ));
            }
            (b'1', true) => match first_exclusive {
                None => first_exclusive = Some(*opt),
                Some(first) => {
                    return Err(format!(
                        "The option '{}' conflicts with the '{}' option in the '{}' command",
                        opt.name(),
                        first.name(),
                        cmd.name()
                    ));
                }
            },
            _ => {}
        }
    }
    Ok(())
}

/// The tunnel options, in the tunnel table's column order.
const TUNNEL_OPTS: [Opt; 4] = [Opt::TunPort, Opt::TunNoCsum, Opt::TunCsum, Opt::TunRemCsum];

/// The tunnel options [`tunnel_opt_check`] looks at, plus `--tun-type`: any of them with a
/// forwarding method other than tunnelling is an error.
pub const TUNNEL_OPTIONS: [Opt; 5] = [
    Opt::TunType,
    Opt::TunPort,
    Opt::TunNoCsum,
    Opt::TunCsum,
    Opt::TunRemCsum,
];

/// ipvsadm's `tunnel_opt_check` (run for -a/-e whatever the forwarding method).
pub fn tunnel_opt_check(tun_type: TunType, options: OptSet) -> Result<(), String> {
    let row: &[u8; 4] = match tun_type {
        TunType::Ipip => b"xxxx",
        TunType::Gue => b"+111",
        TunType::Gre => b"x11x",
    };
    let name = tun_type.name();
    let mut first_exclusive: Option<Opt> = None;
    for (opt, &cell) in TUNNEL_OPTS.iter().zip(row.iter()) {
        match (cell, options.has(*opt)) {
            (b'+', false) => {
                return Err(format!(
                    "You need to supply the '{}' option for the '{name}' tunnel type",
                    opt.name()
                ));
            }
            (b'x', true) => {
                return Err(format!(
                    "Illegal '{}' option with the '{name}' tunnel type",
                    opt.name()
                ));
            }
            (b'1', true) => match first_exclusive {
                None => first_exclusive = Some(*opt),
                Some(first) => {
                    return Err(format!(
                        "The option '{}' conflicts with the '{}' option in the '{name}' tunnel type",
                        opt.name(),
                        first.name()
                    ));
                }
            },
            _ => {}
        }
    }
    Ok(())
}

/// The extra check of `-L`: connections, timeouts and daemons have no counters or thresholds to
/// show, and timeouts and daemons no persistence data.
pub fn list_conflicts(options: OptSet) -> Result<(), String> {
    let modes = options.has_any(&[Opt::Connection, Opt::Timeout, Opt::Daemon]);
    let counters = options.has_any(&[Opt::Stats, Opt::Rate, Opt::Thresholds]);
    let no_persist = options.has_any(&[Opt::Timeout, Opt::Daemon]);
    if (modes && counters) || (no_persist && options.has(Opt::PersistentConn)) {
        return Err("options conflicts in the list command".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(opts: &[Opt]) -> OptSet {
        let mut s = OptSet::default();
        for &o in opts {
            s.set(o).unwrap();
        }
        s
    }

    #[test]
    fn option_classes_are_numbered_as_in_ipvsadm() {
        for (i, opt) in Opt::ALL.iter().enumerate() {
            assert_eq!(*opt as usize, i);
        }
        assert_eq!(Opt::TunRemCsum.bit(), 0x2_0000_0000);
    }

    #[test]
    fn duplicates() {
        let mut s = set(&[Opt::Scheduler]);
        assert_eq!(
            s.set(Opt::Scheduler).unwrap_err(),
            "multiple 'scheduler' options specified"
        );
    }

    #[test]
    fn command_table() {
        let check = |cmd, opts: &[Opt]| generic_opt_check(cmd, set(opts));
        assert_eq!(
            check(Cmd::AddService, &[]).unwrap_err(),
            "You need to supply the 'service-address' option for the 'add-service' command"
        );
        assert_eq!(
            check(Cmd::AddServer, &[Opt::Service]).unwrap_err(),
            "You need to supply the 'real-server' option for the 'add-server' command"
        );
        assert_eq!(
            check(Cmd::List, &[Opt::Scheduler]).unwrap_err(),
            "Illegal 'scheduler' option with the 'list' command"
        );
        assert_eq!(
            check(Cmd::Flush, &[Opt::Numeric]).unwrap_err(),
            "Illegal 'numeric' option with the 'flush' command"
        );
        assert_eq!(
            check(Cmd::Restore, &[Opt::Numeric]).unwrap_err(),
            "Illegal 'numeric' option with the 'restore' command"
        );
        assert_eq!(
            check(Cmd::List, &[Opt::Connection, Opt::Service]).unwrap_err(),
            "The option 'service-address' conflicts with the 'connection' option in the 'list' command"
        );
        assert_eq!(
            check(Cmd::List, &[Opt::Timeout, Opt::Daemon]).unwrap_err(),
            "The option 'daemon' conflicts with the 'timeout' option in the 'list' command"
        );
        // The first failure in option order wins: numeric (0) before the missing service (2).
        assert_eq!(
            check(Cmd::DeleteService, &[Opt::Numeric]).unwrap_err(),
            "Illegal 'numeric' option with the 'delete-service' command"
        );
        assert!(
            check(
                Cmd::List,
                &[Opt::SyncId, Opt::Numeric, Opt::Stats, Opt::TunInfo]
            )
            .is_ok()
        );
        assert!(check(Cmd::Zero, &[]).is_ok());
        assert!(check(Cmd::Save, &[Opt::Numeric]).is_ok());
        assert!(
            check(
                Cmd::StartDaemon,
                &[
                    Opt::McastInterface,
                    Opt::SyncId,
                    Opt::McastGroup,
                    Opt::McastPort,
                    Opt::McastTtl,
                    Opt::SyncMaxlen
                ]
            )
            .is_ok()
        );
        assert!(
            check(
                Cmd::EditServer,
                &[
                    Opt::Service,
                    Opt::Server,
                    Opt::Forward,
                    Opt::Weight,
                    Opt::TunType
                ]
            )
            .is_ok()
        );
    }

    #[test]
    fn tunnel_table() {
        assert_eq!(
            tunnel_opt_check(TunType::Gue, set(&[Opt::TunType])).unwrap_err(),
            "You need to supply the 'tun-port' option for the 'gue' tunnel type"
        );
        assert_eq!(
            tunnel_opt_check(TunType::Ipip, set(&[Opt::TunPort])).unwrap_err(),
            "Illegal 'tun-port' option with the 'ipip' tunnel type"
        );
        assert_eq!(
            tunnel_opt_check(
                TunType::Gue,
                set(&[Opt::TunPort, Opt::TunCsum, Opt::TunRemCsum])
            )
            .unwrap_err(),
            "The option 'tun-remcsum' conflicts with the 'tun-csum' option in the 'gue' tunnel type"
        );
        assert_eq!(
            tunnel_opt_check(TunType::Gre, set(&[Opt::TunRemCsum])).unwrap_err(),
            "Illegal 'tun-remcsum' option with the 'gre' tunnel type"
        );
        assert!(tunnel_opt_check(TunType::Ipip, set(&[Opt::TunInfo])).is_ok());
        assert!(tunnel_opt_check(TunType::Gre, set(&[Opt::TunCsum])).is_ok());
    }

    #[test]
    fn list_extra_check() {
        let msg = "options conflicts in the list command";
        assert_eq!(
            list_conflicts(set(&[Opt::Connection, Opt::Stats])).unwrap_err(),
            msg
        );
        assert_eq!(
            list_conflicts(set(&[Opt::Timeout, Opt::PersistentConn])).unwrap_err(),
            msg
        );
        assert!(list_conflicts(set(&[Opt::Connection, Opt::PersistentConn])).is_ok());
        assert!(list_conflicts(set(&[Opt::Stats, Opt::Rate])).is_ok());
    }
}
