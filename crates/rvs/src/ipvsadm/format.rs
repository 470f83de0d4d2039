//! The service listing (`-L` in all its modes) and the rules of `-S`.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::{
    addr::{addrport_to_anyname, truncate_bytes},
    resolve::Resolver,
    sort,
};
use crate::control::proto::{DestView, ServiceView};
use crate::model::{FwdMethod, ServiceId, TunCsum, TunType, svc_flags};
use crate::sched::Scheduler;

/// ipvsadm's `FMT_*` flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Format {
    pub numeric: bool,
    /// `-S`: rules instead of a table.
    pub rule: bool,
    pub stats: bool,
    pub rate: bool,
    pub thresholds: bool,
    pub persistent_conn: bool,
    pub nosort: bool,
    pub exact: bool,
    pub tun_info: bool,
}

/// Which columns a listing shows; several flags may be given, the first of these wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Rule,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    TunInfo,
    Plain,
}

impl Format {
    fn mode(&self) -> Mode {
        if self.rule {
            Mode::Rule
        } else if self.stats {
            Mode::Stats
        } else if self.rate {
            Mode::Rate
        } else if self.thresholds {
            Mode::Thresholds
        } else if self.persistent_conn {
            Mode::PersistentConn
        } else if self.tun_info {
            Mode::TunInfo
        } else {
            Mode::Plain
        }
    }
}

const REMOTE: &str = "  -> RemoteAddress:Port\n";

/// The column headers (`print_title`); nothing for rules.
pub fn title(format: &Format) -> String {
    let local = "Prot LocalAddress:Port";
    match format.mode() {
        Mode::Rule => String::new(),
        Mode::Stats => format!(
            "{local:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n{REMOTE}",
            "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        ),
        Mode::Rate => format!(
            "{local:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n{REMOTE}",
            "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        ),
        Mode::Thresholds => format!(
            "{local:<33} {:<10} {:<10} {:<10} {:<10}\n{REMOTE}",
            "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        ),
        Mode::PersistentConn => format!(
            "{local:<33} {:<9} {:<11} {:<10} {:<10}\n{REMOTE}",
            "Weight", "PersistConn", "ActiveConn", "InActConn"
        ),
        Mode::TunInfo => "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n".to_owned(),
        Mode::Plain => "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n".to_owned(),
    }
}

/// A counter at least 9 columns wide; unless exact, shortened with K/M/G/T past 8 digits.
pub fn largenum(value: u64, exact: bool) -> String {
    if exact {
        let digits = value.to_string();
        let width = if digits.len() <= 8 {
            9
        } else {
            digits.len() + 1
        };
        return format!("{digits:>width$}");
    }
    match value {
        0..100_000_000 => format!("{value:>9}"),
        100_000_000..1_000_000_000 => format!("{:>8}K", value / 1_000),
        1_000_000_000..100_000_000_000 => format!("{:>8}M", value / 1_000_000),
        100_000_000_000..100_000_000_000_000 => format!("{:>8}G", value / 1_000_000_000),
        _ => format!("{:>8}T", value / 1_000_000_000_000),
    }
}

/// The protocol number the kernel reports for a service (0 for fwmark services).
fn protocol_number(id: &ServiceId) -> u16 {
    id.protocol().map_or(0, |p| p.number().into())
}

/// The service's name column (listing) or its `-t ADDR`-style prefix (rules).
fn svc_name(id: &ServiceId, format: &Format, resolver: &dyn Resolver) -> String {
    match *id {
        // ipvsadm prints the mark with %d.
        ServiceId::Fwmark { mark, ipv6 } => {
            let mark = mark as i32;
            match (format.rule, ipv6) {
                (true, false) => format!("-f {mark}"),
                (true, true) => format!("-f {mark} -6"),
                (false, false) => format!("FWM  {mark}"),
                (false, true) => format!("FWM  {mark} IPv6"),
            }
        }
        ServiceId::Inet { proto, addr, port } => {
            let name =
                addrport_to_anyname(addr, port, proto.number().into(), format.numeric, resolver);
            if format.rule {
                let switch = match proto {
                    crate::model::Protocol::Tcp => "-t",
                    crate::model::Protocol::Udp => "-u",
                    crate::model::Protocol::Sctp => "--sctp-service",
                };
                format!("{switch} {name}")
            } else {
                let text = format!("{:<4} {name}", proto.name());
                // IPv4 names are cut to fit the 33-column field; IPv6 ones push the columns.
                if addr.is_ipv4() {
                    truncate_bytes(text, 33)
                } else {
                    text
                }
            }
        }
    }
}

/// The scheduler flags by the names of the scheduler they belong to, comma-separated (an
/// unknown scheduler's as `flag-N`).
fn sched_flags(scheduler: &str, flags: u32) -> String {
    Scheduler::from_name(scheduler)
        .unwrap_or(Scheduler::DEFAULT)
        .flag_names(flags)
}

/// The persistence mask as shown after ` mask ` / ` -M `, when not the default.
fn mask_text(view: &ServiceView) -> Option<String> {
    let netmask = view.config.netmask;
    if view.service.is_ipv6() {
        (netmask != 128).then(|| netmask.to_string())
    } else {
        (netmask != 0xffff_ffff).then(|| Ipv4Addr::from(netmask).to_string())
    }
}

/// One service with its real servers (`print_service_entry`).
pub fn service_entry(view: &ServiceView, format: &Format, resolver: &dyn Resolver) -> String {
    let mode = format.mode();
    let name = svc_name(&view.service, format, resolver);
    let config = &view.config;
    let has_sched_flags = config.flags & svc_flags::SCHED_MASK != 0;
    let mut out = String::new();
    match mode {
        Mode::Rule => {
            let _ = write!(out, "-A {name} -s {}", config.scheduler);
            if config.persistent() {
                let _ = write!(out, " -p {}", config.timeout);
                if let Some(mask) = mask_text(view) {
                    let _ = write!(out, " -M {mask}");
                }
            }
            if let Some(pe) = config.pe_name.as_deref().filter(|p| !p.is_empty()) {
                let _ = write!(out, " --pe {pe}");
            }
            if config.one_packet() {
                out.push_str(" -o");
            }
            if config.sloppy_tcp() {
                out.push_str(" --sloppy-tcp");
            }
            if has_sched_flags {
                let _ = write!(out, " -b {}", sched_flags(&config.scheduler, config.flags));
            }
        }
        Mode::Stats => {
            let s = &view.stats;
            let _ = write!(out, "{name:<33}");
            for v in [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes] {
                out.push_str(&largenum(v, format.exact));
            }
        }
        Mode::Rate => {
            let r = &view.rate;
            let _ = write!(out, "{name:<33}");
            for v in [r.cps, r.inpps, r.outpps, r.inbps, r.outbps] {
                out.push_str(&largenum(v, format.exact));
            }
        }
        Mode::Thresholds | Mode::PersistentConn | Mode::TunInfo | Mode::Plain => {
            let _ = write!(out, "{name} {}", config.scheduler);
            if has_sched_flags {
                let _ = write!(out, " ({})", sched_flags(&config.scheduler, config.flags));
            }
            if config.persistent() {
                let _ = write!(out, " persistent {}", config.timeout);
                if let Some(mask) = mask_text(view) {
                    let _ = write!(out, " mask {mask}");
                }
                if let Some(pe) = config.pe_name.as_deref().filter(|p| !p.is_empty()) {
                    let _ = write!(out, " pe {pe}");
                }
            }
            if config.one_packet() {
                out.push_str(" ops");
            }
            if config.sloppy_tcp() {
                out.push_str(" sloppy_tcp");
            }
        }
    }
    out.push('\n');

    let mut dests = view.dests.clone();
    if !format.nosort {
        sort::sort_dests(&mut dests);
    }
    // Dest ports are named with the service's protocol: none for fwmark services.
    let protocol = protocol_number(&view.service);
    for dest in &dests {
        dest_line(&mut out, &name, dest, protocol, format, resolver);
    }
    out
}

fn dest_line(
    out: &mut String,
    svc_name: &str,
    dest: &DestView,
    protocol: u16,
    format: &Format,
    resolver: &dyn Resolver,
) {
    let mut dname = addrport_to_anyname(
        dest.dest.addr,
        dest.dest.port,
        protocol,
        format.numeric,
        resolver,
    );
    if !format.rule && dest.dest.addr.is_ipv4() {
        dname = truncate_bytes(dname, 28);
    }
    let c = &dest.config;
    let exact = format.exact;
    let _ = match format.mode() {
        Mode::Rule => writeln!(out, "{}", dest_rule(svc_name, &dname, dest)),
        Mode::Stats => {
            let s = &dest.stats;
            let nums: String = [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes]
                .into_iter()
                .map(|v| largenum(v, exact))
                .collect();
            writeln!(out, "  -> {dname:<28}{nums}")
        }
        Mode::Rate => {
            // ipvsadm prints the dest's packet and connection rates whole, never shortened.
            let r = &dest.rate;
            writeln!(
                out,
                "  -> {dname:<28} {:>8} {:>8} {:>8}{}{}",
                r.cps,
                r.inpps,
                r.outpps,
                largenum(r.inbps, exact),
                largenum(r.outbps, exact)
            )
        }
        Mode::Thresholds => writeln!(
            out,
            "  -> {dname:<28} {:<10} {:<10} {:<10} {:<10}",
            c.u_threshold, c.l_threshold, dest.active_conns, dest.inactive_conns
        ),
        Mode::PersistentConn => writeln!(
            out,
            "  -> {dname:<28} {:<9} {:<11} {:<10} {:<10}",
            c.weight, dest.persist_conns, dest.active_conns, dest.inactive_conns
        ),
        Mode::TunInfo => writeln!(
            out,
            "  -> {dname:<28} {:<7} {:<13} {:<6} {:<10} {:<10}",
            c.fwd.name(),
            tun_info(dest).unwrap_or_else(|| "n/a".to_owned()),
            c.weight,
            dest.active_conns,
            dest.inactive_conns
        ),
        Mode::Plain => writeln!(
            out,
            "  -> {dname:<28} {:<7} {:<6} {:<10} {:<10}",
            c.fwd.name(),
            c.weight,
            dest.active_conns,
            dest.inactive_conns
        ),
    };
}

fn csum_short(csum: TunCsum) -> &'static str {
    match csum {
        TunCsum::NoCsum => "-c",
        TunCsum::Csum => "+c",
        TunCsum::RemCsum => "r+c",
    }
}

fn csum_option(csum: TunCsum) -> &'static str {
    match csum {
        TunCsum::NoCsum => "--tun-nocsum",
        TunCsum::Csum => "--tun-csum",
        TunCsum::RemCsum => "--tun-remcsum",
    }
}

/// The TunnelInfo column: only for tunnelling servers.
fn tun_info(dest: &DestView) -> Option<String> {
    let c = &dest.config;
    if c.fwd != FwdMethod::Tunnel {
        return None;
    }
    Some(match c.tun_type {
        TunType::Ipip => "ipip".to_owned(),
        TunType::Gue => format!("gue:{}:{}", c.tun_port, csum_short(c.tun_csum)),
        TunType::Gre => format!("gre:{}", csum_short(c.tun_csum)),
    })
}

/// The `-a` rule of a real server (thresholds are not saved).
fn dest_rule(svc_name: &str, dname: &str, dest: &DestView) -> String {
    let c = &dest.config;
    let switch = match c.fwd {
        FwdMethod::Masq => "-m",
        FwdMethod::Tunnel => "-i",
        FwdMethod::Local | FwdMethod::Route => "-g",
        FwdMethod::Bypass => "(null)",
    };
    let base = format!("-a {svc_name} -r {dname} {switch} -w {}", c.weight);
    if c.fwd != FwdMethod::Tunnel {
        return base;
    }
    match c.tun_type {
        TunType::Ipip => format!("{base} --tun-type ipip"),
        TunType::Gue => format!(
            "{base} --tun-type gue --tun-port {} {}",
            c.tun_port,
            csum_option(c.tun_csum)
        ),
        TunType::Gre => format!("{base} --tun-type gre {}", csum_option(c.tun_csum)),
    }
}

#[cfg(test)]
mod tests;
