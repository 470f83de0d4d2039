//! ipvsadm's `parse_options` and the checks `process_options` makes before running a command:
//! one command line becomes a [`CommandEntry`], or the reason ipvsadm stops.

use std::net::IpAddr;

use super::{
    addr::{
        self, PROTO_SCTP, PROTO_TCP, PROTO_UDP, parse_netmask, parse_service, string_to_number,
        truncate_bytes,
    },
    check::{self, Cmd, Opt, OptSet},
    entry::{Af, CommandEntry, DaemonEntry, DestEntry, SvcEntry},
    format::Format,
    options::Popt,
    resolve::{Resolver, pton4, pton6},
    table::{OPTIONS, OptId},
};
use crate::model::{FwdMethod, MarkMatch, Timeouts, TunCsum, TunType, svc_flags};
use crate::sched::Scheduler;

/// MAX_TIMEOUT: 31 days.
const MAX_TIMEOUT: i64 = 86400 * 31;
/// The persistence timeout when `-p` has no value.
const DEFAULT_PERSISTENT_TIMEOUT: u32 = 360;

/// Why a command line does not run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Abort {
    /// ipvsadm's `fail(2, ...)`: the message, then exit 2.
    Fail(String),
    /// `tryhelp_exit`: exit 255.
    TryHelp,
    /// `-h` as the command: usage on stdout, exit 0.
    Help,
    /// `-v` as the command: version on stdout, exit 0.
    Version,
    /// A popt error after the command: `<bad option>: <error>`; the command line fails (255) but
    /// a restore goes on.
    Popt(String),
}

impl From<String> for Abort {
    fn from(message: String) -> Abort {
        Abort::Fail(message)
    }
}

/// Parses one command line (`argv[0]` is the program) and makes `process_options`'s checks.
pub fn parse(
    argv: &[String],
    posixly_correct: bool,
    resolver: &dyn Resolver,
) -> Result<CommandEntry, Abort> {
    let mut ce = parse_options(argv, posixly_correct, resolver)?;
    ce.check()?;
    Ok(ce)
}

/// The first option alone: `-h`/`-v` are answered before anything else happens.
pub fn first_option(argv: &[String], posixly_correct: bool) -> Option<OptId> {
    let mut popt = Popt::new(OPTIONS, argv, posixly_correct);
    match popt.next_opt() {
        Some(Ok((id, _))) => Some(id),
        _ => None,
    }
}

fn parse_options(
    argv: &[String],
    posixly_correct: bool,
    resolver: &dyn Resolver,
) -> Result<CommandEntry, Abort> {
    let mut popt = Popt::new(OPTIONS, argv, posixly_correct);
    let (first, arg) = match popt.next_opt() {
        Some(Ok(first)) => first,
        _ => return Err(Abort::TryHelp),
    };
    let cmd = match first {
        OptId::Command(cmd) => cmd,
        OptId::Help => return Err(Abort::Help),
        OptId::Version => return Err(Abort::Version),
        _ => return Err(Abort::TryHelp),
    };
    let mut ce = CommandEntry {
        cmd,
        options: OptSet::default(),
        format: Format::default(),
        svc: SvcEntry::default(),
        dest: DestEntry::default(),
        timeouts: Timeouts {
            tcp: 0,
            tcp_fin: 0,
            udp: 0,
        },
        daemon: DaemonEntry::default(),
        mark_match: None,
    };
    if matches!(cmd, Cmd::StartDaemon | Cmd::StopDaemon) {
        ce.daemon.backup = match arg {
            Some("master") => false,
            Some("backup") => true,
            _ if cmd == Cmd::StartDaemon => {
                return Err(fail("illegal start-daemon parameter specified"));
            }
            _ => return Err(fail("illegal start_daemon specified")),
        };
    }

    let mut sched_flags_arg = String::new();
    while let Some(next) = popt.next_opt() {
        match next {
            Ok((id, arg)) => {
                if !ce.apply(id, arg, resolver, &mut sched_flags_arg)? {
                    return Err(fail(format!("invalid option `{}'", popt.bad_option())));
                }
            }
            Err(e) => {
                return Err(Abort::Popt(format!("{}: {}", popt.bad_option(), e.text())));
            }
        }
    }

    if cmd == Cmd::Set {
        let (Some(tcp), Some(fin), Some(udp)) = (popt.next_arg(), popt.next_arg(), popt.next_arg())
        else {
            return Err(fail("--set option requires 3 timeout values"));
        };
        ce.timeouts = Timeouts {
            tcp: parse_timeout(tcp, 0)?,
            tcp_fin: parse_timeout(fin, 0)?,
            udp: parse_timeout(udp, 0)?,
        };
    }
    if let Some(arg) = popt.next_arg() {
        return Err(fail(format!("unexpected argument {arg}")));
    }
    if !sched_flags_arg.is_empty() {
        ce.svc.flags &= !svc_flags::SCHED_MASK;
        ce.svc.flags |= parse_sched_flags(&ce.svc.scheduler, &sched_flags_arg)?;
    }
    Ok(ce)
}

fn fail(message: impl Into<String>) -> Abort {
    Abort::Fail(message.into())
}

impl CommandEntry {
    /// Applies one option after the command. `Ok(false)` for an option that has no meaning
    /// there (a second command, `-h`, `-v`): ipvsadm's `invalid option`.
    fn apply(
        &mut self,
        id: OptId,
        arg: Option<&str>,
        resolver: &dyn Resolver,
        sched_flags_arg: &mut String,
    ) -> Result<bool, Abort> {
        // Every option but -p has its argument here (popt says "missing argument" otherwise).
        let text = arg.unwrap_or_default();
        match id {
            OptId::Command(_) | OptId::Help | OptId::Version => return Ok(false),
            OptId::TcpService | OptId::UdpService | OptId::SctpService => {
                self.options.set(Opt::Service)?;
                self.svc.protocol = match id {
                    OptId::TcpService => PROTO_TCP,
                    OptId::UdpService => PROTO_UDP,
                    _ => PROTO_SCTP,
                };
                let hp = parse_service(text, self.svc.protocol, resolver)
                    .ok_or_else(|| fail("illegal virtual server address[:port] specified"))?;
                self.svc.addr = hp.addr;
                self.svc.af = Af::of(hp.addr);
                if hp.addr.is_ipv6() {
                    self.svc.netmask = 128;
                }
                if let Some(port) = hp.port {
                    self.svc.port = port;
                }
            }
            OptId::FwmarkService => {
                self.options.set(Opt::Service)?;
                // The protocol is a placeholder: fwmark services have none.
                self.svc.af = Af::Inet;
                self.svc.protocol = PROTO_TCP;
                self.svc.fwmark = parse_fwmark(text)?;
            }
            OptId::Scheduler => {
                self.options.set(Opt::Scheduler)?;
                self.svc.scheduler = truncate_bytes(text.to_owned(), 15);
            }
            OptId::Persistent => {
                self.options.set(Opt::Persistent)?;
                self.svc.flags |= svc_flags::PERSISTENT;
                self.svc.timeout = match arg {
                    Some(t) => parse_timeout(t, 1)?,
                    None => DEFAULT_PERSISTENT_TIMEOUT,
                };
            }
            OptId::Netmask => {
                self.options.set(Opt::Netmask)?;
                // The family is the one known so far: `-M` before `-t [v6]` parses as IPv4.
                self.svc.netmask = if self.svc.af == Af::Inet6 {
                    u32::try_from(addr::atoi(text))
                        .ok()
                        .filter(|n| (1..=128).contains(n))
                        .ok_or_else(|| fail("illegal ipv6 netmask specified"))?
                } else {
                    parse_netmask(text, resolver)
                        .ok_or_else(|| fail("illegal virtual server persistent mask specified"))?
                };
            }
            OptId::RealServer => {
                self.options.set(Opt::Server)?;
                // Parsed with the service's protocol as it is now (0 before -t: no port names).
                let hp = parse_service(text, self.svc.protocol, resolver)
                    .ok_or_else(|| fail("illegal real server address[:port] specified"))?;
                self.dest.af = Af::of(hp.addr);
                self.dest.addr = hp.addr;
                self.dest.port = hp.port.unwrap_or(self.svc.port);
            }
            OptId::Forward(method) => {
                self.options.set(Opt::Forward)?;
                self.dest.config.fwd = method;
            }
            OptId::Weight => {
                self.options.set(Opt::Weight)?;
                self.dest.config.weight = number(text, 0, 65535, "illegal weight specified")?;
            }
            OptId::UThreshold => {
                self.options.set(Opt::UThreshold)?;
                self.dest.config.u_threshold =
                    number(text, 0, i32::MAX.into(), "illegal u_threshold specified")?;
            }
            OptId::LThreshold => {
                self.options.set(Opt::LThreshold)?;
                self.dest.config.l_threshold =
                    number(text, 0, i32::MAX.into(), "illegal l_threshold specified")?;
            }
            OptId::Connection => self.options.set(Opt::Connection)?,
            OptId::Numeric => {
                self.options.set(Opt::Numeric)?;
                self.format.numeric = true;
            }
            OptId::McastInterface => {
                self.options.set(Opt::McastInterface)?;
                self.daemon.mcast_interface = truncate_bytes(text.to_owned(), 15);
            }
            OptId::SyncId => {
                self.options.set(Opt::SyncId)?;
                self.daemon.syncid = number(text, 0, 255, "illegal syncid specified")?;
            }
            OptId::Timeout => self.options.set(Opt::Timeout)?,
            OptId::Daemon => self.options.set(Opt::Daemon)?,
            OptId::Stats => {
                self.options.set(Opt::Stats)?;
                self.format.stats = true;
            }
            OptId::Rate => {
                self.options.set(Opt::Rate)?;
                self.format.rate = true;
            }
            OptId::Thresholds => {
                self.options.set(Opt::Thresholds)?;
                self.format.thresholds = true;
            }
            OptId::PersistentConn => {
                self.options.set(Opt::PersistentConn)?;
                self.format.persistent_conn = true;
            }
            OptId::NoSort => {
                self.options.set(Opt::NoSort)?;
                self.format.nosort = true;
            }
            // Sorting is the default; kept for compatibility and not even recorded.
            OptId::Sort => {}
            OptId::Exact => {
                self.options.set(Opt::Exact)?;
                self.format.exact = true;
            }
            OptId::Ipv6 => {
                if self.svc.fwmark == 0 {
                    // ipvsadm's message ends with a newline of its own, before fail's.
                    return Err(fail("-6 used before -f\n"));
                }
                self.svc.af = Af::Inet6;
                self.svc.netmask = 128;
            }
            OptId::Ops => {
                self.options.set(Opt::OnePacket)?;
                self.svc.flags |= svc_flags::ONEPACKET;
            }
            OptId::SloppyTcp => {
                self.options.set(Opt::SloppyTcp)?;
                self.svc.flags |= svc_flags::SLOPPY_TCP;
            }
            OptId::Pe => {
                self.options.set(Opt::PersistenceEngine)?;
                self.svc.pe_name = truncate_bytes(text.to_owned(), 16);
            }
            OptId::SchedFlags => {
                self.options.set(Opt::SchedFlags)?;
                // Parsed after all options, against the final scheduler (ipvsadm's 128-byte copy).
                *sched_flags_arg = truncate_bytes(text.to_owned(), 127);
            }
            OptId::McastGroup => {
                self.options.set(Opt::McastGroup)?;
                self.daemon.mcast_group = Some(parse_mcast_group(text)?);
            }
            OptId::McastPort => {
                self.options.set(Opt::McastPort)?;
                self.daemon.mcast_port = number(text, 1, 65535, "illegal mcast-port specified")?;
            }
            OptId::McastTtl => {
                self.options.set(Opt::McastTtl)?;
                self.daemon.mcast_ttl = number(text, 1, 255, "illegal mcast-ttl specified")?;
            }
            OptId::SyncMaxlen => {
                self.options.set(Opt::SyncMaxlen)?;
                // The largest UDP payload in an IPv4 packet.
                self.daemon.sync_maxlen =
                    number(text, 1, 65535 - 20 - 8, "illegal sync-maxlen specified")?;
            }
            OptId::Match => {
                self.options.set(Opt::Match)?;
                let m: MarkMatch = text
                    .parse()
                    .map_err(|e| fail(format!("illegal match `{text}' specified: {e}")))?;
                self.mark_match = Some(m);
            }
            OptId::TunInfo => {
                self.options.set(Opt::TunInfo)?;
                self.format.tun_info = true;
            }
            OptId::TunType => {
                self.options.set(Opt::TunType)?;
                self.dest.config.tun_type = match text {
                    "ipip" => TunType::Ipip,
                    "gue" => TunType::Gue,
                    "gre" => TunType::Gre,
                    _ => return Err(fail("illegal tunnel type specified")),
                };
            }
            OptId::TunPort => {
                self.options.set(Opt::TunPort)?;
                self.dest.config.tun_port =
                    number(text, 1, 65535, "illegal tunnel port specified")?;
            }
            OptId::TunCsum(csum) => {
                self.options.set(match csum {
                    TunCsum::NoCsum => Opt::TunNoCsum,
                    TunCsum::Csum => Opt::TunCsum,
                    TunCsum::RemCsum => Opt::TunRemCsum,
                })?;
                self.dest.config.tun_csum = csum;
            }
        }
        Ok(true)
    }

    /// The checks `process_options` makes between parsing and running, with its defaults.
    fn check(&mut self) -> Result<(), Abort> {
        check::generic_opt_check(self.cmd, self.options)?;
        let svc = &mut self.svc;
        if matches!(self.cmd, Cmd::AddService | Cmd::EditService) {
            if svc.fwmark == 0 && svc.port == 0 && svc.flags & svc_flags::PERSISTENT == 0 {
                return Err(fail("Zero port specified for non-persistent service"));
            }
            if svc.flags & svc_flags::ONEPACKET != 0 && svc.fwmark == 0 && svc.protocol != PROTO_UDP
            {
                return Err(fail(
                    "One-Packet Scheduling is only for UDP virtual services",
                ));
            }
            if svc.scheduler.is_empty() {
                svc.scheduler = Scheduler::DEFAULT.name().to_owned();
            }
        }
        if self.cmd == Cmd::StartDaemon && self.daemon.mcast_interface.is_empty() {
            self.daemon.mcast_interface = "eth0".to_owned();
        }
        if matches!(self.cmd, Cmd::AddServer | Cmd::EditServer) {
            let fwd = self.dest.config.fwd;
            // Direct routing and tunnelling cannot change the port.
            if svc.fwmark == 0 && matches!(fwd, FwdMethod::Tunnel | FwdMethod::Route) {
                self.dest.port = svc.port;
            }
            if self.dest.af != svc.af && fwd != FwdMethod::Tunnel {
                return Err(fail(
                    "Different address family is allowed only for tunneling servers",
                ));
            }
            if self.options.has_any(&check::TUNNEL_OPTIONS) && fwd != FwdMethod::Tunnel {
                return Err(fail("Tunnel options conflict with forward method"));
            }
            check::tunnel_opt_check(self.dest.config.tun_type, self.options)?;
        }
        if self.cmd == Cmd::List {
            check::list_conflicts(self.options)?;
        }
        if matches!(self.cmd, Cmd::AddMark | Cmd::DelMark) && svc.fwmark == 0 {
            return Err(fail("the mark commands take the mark as -f MARK"));
        }
        Ok(())
    }
}

/// `string_to_number` with ipvsadm's message on failure.
fn number<T: TryFrom<i64>>(text: &str, min: i64, max: i64, message: &str) -> Result<T, Abort> {
    string_to_number(text, min, max)
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| fail(message))
}

/// `parse_timeout(text, min, MAX_TIMEOUT)`.
fn parse_timeout(text: &str, min: i64) -> Result<u32, Abort> {
    number(
        text,
        min,
        MAX_TIMEOUT,
        &format!("invalid timeout value `{text}' specified"),
    )
}

/// `-f`: decimal 1..=4294967295 (strtol rules: whitespace and a sign may lead).
fn parse_fwmark(text: &str) -> Result<u32, Abort> {
    addr::strtol(text)
        .filter(|(_, rest)| rest.is_empty())
        .and_then(|(n, _)| u32::try_from(n).ok())
        .filter(|&n| n > 0)
        .ok_or_else(|| fail(format!("invalid fwmark value `{text}' specified")))
}

/// `-b`: comma-separated flags, checked against the scheduler (`wlc` when none was given).
fn parse_sched_flags(scheduler: &str, text: &str) -> Result<u32, Abort> {
    // An unknown name takes only the generic flags; the daemon refuses the name itself.
    let scheduler = Scheduler::from_name(scheduler).unwrap_or(Scheduler::DEFAULT);
    let mut flags = 0;
    for flag in text.split(',').filter(|f| !f.is_empty()) {
        flags |= match scheduler.flag(flag) {
            Ok(bit) => bit,
            Err(true) => return Err(fail(format!("incompatible scheduler flag `{flag}'"))),
            Err(false) => return Err(fail(format!("invalid scheduler flag `{flag}'"))),
        };
    }
    Ok(flags)
}

/// `--mcast-group`: IPv6 when the text has a colon, else IPv4; it must be multicast.
fn parse_mcast_group(text: &str) -> Result<IpAddr, Abort> {
    if text.contains(':') {
        pton6(text)
            .filter(|a| a.is_multicast())
            .map(IpAddr::V6)
            .ok_or_else(|| fail(format!("invalid IPv6 mcast-group `{text}'")))
    } else {
        pton4(text)
            .filter(|a| a.is_multicast())
            .map(IpAddr::V4)
            .ok_or_else(|| fail(format!("invalid IPv4 mcast-group `{text}'")))
    }
}
