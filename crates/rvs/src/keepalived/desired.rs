//! From the configuration to what the director and the checkers need: each virtual server as the
//! services it stands for (a group expands into several), IPVS settings in the model's terms,
//! real servers with forwarding method and weight, checkers with keepalived's inheritance and
//! per-checker defaults resolved.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use super::{
    config::{
        Checker, GlobalDefs, GroupEntry, KeepalivedConfig, LvsMethod, RealServer, VirtualServer,
        VsAddr, defaults,
    },
    diag::ConfigError,
    value::Netmask,
    virtual_server::{from_u128, to_u128},
};
use crate::{
    check::{
        CheckKind, CheckSpec, DesiredDest, DesiredService, SorryServer,
        notify::{MailSettings, hostname},
    },
    model::{
        DestAddr, DestConfig, FwdMethod, ServiceConfig, ServiceId, TunCsum, TunType, svc_flags,
    },
};

/// The services of every virtual server, in file order.
pub fn desired_services(cfg: &KeepalivedConfig) -> Vec<DesiredService> {
    let mail = cfg.global.mail_configured();
    let mut out = Vec::new();
    for (index, vs) in cfg.virtual_servers.iter().enumerate() {
        for service in expand(cfg, vs) {
            out.push(service_of(cfg, vs, index, service, mail));
        }
    }
    out
}

/// An L7 pool's real servers and checkers, as a service of its own that no director holds: the
/// L7 task runs its checkers and tells services apart by `mark`.
pub fn l7_pool_service(
    cfg: &KeepalivedConfig,
    pool: &super::l7::L7Pool,
    mark: u32,
) -> DesiredService {
    let VsAddr::Inet { addr, .. } = pool.servers.addr else {
        unreachable!("an L7 pool is made with its server's address");
    };
    let service = ServiceId::Fwmark {
        mark,
        ipv6: addr.is_ipv6(),
    };
    let mut d = service_of(
        cfg,
        &pool.servers,
        mark as usize,
        service,
        cfg.global.mail_configured(),
    );
    d.name = format!("L7 pool {}", pool.name);
    d
}

/// `router_id`, or the host name as keepalived defaults it: names the director in mail.
pub fn router_id(global: &GlobalDefs) -> String {
    global.router_id.clone().unwrap_or_else(hostname)
}

/// Where notification mail goes, when `notification_email` and `smtp_server` are set; the sender
/// defaults to `keepalived@<host name>` and the HELO name to the host name, as in keepalived.
pub fn mail_settings(global: &GlobalDefs) -> Option<MailSettings> {
    let server = global
        .smtp_server
        .as_ref()
        .filter(|_| !global.notification_email.is_empty())?;
    Some(MailSettings {
        server: server.host.clone(),
        port: server.port,
        from: global
            .notification_email_from
            .clone()
            .unwrap_or_else(|| format!("keepalived@{}", hostname())),
        to: global.notification_email.clone(),
        helo_name: global.smtp_helo_name.clone().unwrap_or_else(hostname),
        timeout: global.smtp_connect_timeout,
    })
}

/// Refuses a configuration in which two virtual servers stand for the same service.
pub(super) fn check_unique(cfg: &KeepalivedConfig) -> Result<(), ConfigError> {
    let mut seen: HashMap<ServiceId, usize> = HashMap::new();
    for (index, vs) in cfg.virtual_servers.iter().enumerate() {
        for service in expand(cfg, vs) {
            if let Some(first) = seen.insert(service, index) {
                let p = &cfg.virtual_servers[first].pos;
                return Err(ConfigError::at(
                    &vs.pos,
                    format!(
                        "service {service} is already defined at {}:{}",
                        p.file, p.line
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The services a virtual server stands for.
pub fn expand(cfg: &KeepalivedConfig, vs: &VirtualServer) -> Vec<ServiceId> {
    let inet = |addr: IpAddr, port: Option<u16>| ServiceId::Inet {
        proto: vs.protocol,
        addr,
        port: port.unwrap_or(0),
    };
    match &vs.addr {
        VsAddr::Inet { addr, port } => vec![inet(*addr, *port)],
        VsAddr::Fwmark { mark } => vec![ServiceId::Fwmark {
            mark: *mark,
            ipv6: family_of(vs),
        }],
        VsAddr::Group { name } => {
            let Some(group) = cfg.group(name) else {
                return Vec::new();
            };
            let mut out = Vec::new();
            for entry in &group.entries {
                match entry {
                    GroupEntry::Addresses { first, last, port } => {
                        for v in to_u128(*first)..=to_u128(*last) {
                            out.push(inet(from_u128(v, first.is_ipv4()), *port));
                        }
                    }
                    GroupEntry::Fwmark { mark, ipv6 } => out.push(ServiceId::Fwmark {
                        mark: *mark,
                        ipv6: ipv6.unwrap_or_else(|| family_of(vs)),
                    }),
                }
            }
            out
        }
    }
}

/// The address family of a fwmark service: `ip_family`, else that of its servers, else IPv4.
fn family_of(vs: &VirtualServer) -> bool {
    vs.ip_family
        .or_else(|| vs.real_servers.first().map(|rs| rs.addr.is_ipv6()))
        .or_else(|| vs.sorry_server.as_ref().map(|s| s.addr.is_ipv6()))
        .unwrap_or(false)
}

/// keepalived's name of a virtual service in logs and mails.
pub fn service_name(service: &ServiceId) -> String {
    match service {
        ServiceId::Inet { proto, addr, port } => {
            format!("[{addr}]:{}:{port}", proto.service_db_name())
        }
        ServiceId::Fwmark { mark, .. } => format!("FWM {mark}"),
    }
}

fn service_of(
    cfg: &KeepalivedConfig,
    vs: &VirtualServer,
    index: usize,
    service: ServiceId,
    mail: bool,
) -> DesiredService {
    let global = &cfg.global;
    let vs_port = match vs.addr {
        VsAddr::Inet { port, .. } => port.unwrap_or(0),
        _ => 0,
    };
    let dests = vs
        .real_servers
        .iter()
        .map(|rs| DesiredDest {
            addr: DestAddr {
                addr: rs.addr,
                port: rs.port.unwrap_or(service.port()),
            },
            config: dest_config(
                rs.method.unwrap_or(vs.method),
                rs.weight,
                rs.uthreshold,
                rs.lthreshold,
            ),
            checkers: rs
                .checkers
                .iter()
                .map(|c| check_spec(vs, rs, rs.port.unwrap_or(vs_port), c))
                .collect(),
            inhibit_on_failure: rs.inhibit_on_failure.unwrap_or(vs.inhibit_on_failure),
            notify_up: rs.notify_up.clone(),
            notify_down: rs.notify_down.clone(),
            smtp_alert: mail
                && rs
                    .smtp_alert
                    .or(global.smtp_alert_checker)
                    .or(global.smtp_alert)
                    .unwrap_or(true),
        })
        .collect();
    DesiredService {
        service,
        config: service_config(vs, service.is_ipv6()),
        virtual_server: index,
        name: service_name(&service),
        dests,
        sorry_server: vs.sorry_server.as_ref().map(|s| SorryServer {
            addr: DestAddr {
                addr: s.addr,
                port: s.port.unwrap_or(service.port()),
            },
            config: dest_config(s.method.unwrap_or(vs.method), defaults::WEIGHT, 0, 0),
            inhibit: s.inhibit,
        }),
        quorum: vs.quorum,
        hysteresis: vs.hysteresis,
        quorum_up: vs.quorum_up.clone(),
        quorum_down: vs.quorum_down.clone(),
        smtp_alert: mail
            && vs
                .smtp_alert
                .or(global.smtp_alert_checker)
                .or(global.smtp_alert)
                .unwrap_or(false),
        omega: vs.omega,
        ha_suspend: vs.ha_suspend,
    }
}

fn service_config(vs: &VirtualServer, ipv6: bool) -> ServiceConfig {
    let mut c = ServiceConfig::new(&vs.scheduler, ipv6);
    c.flags |= vs.sched_flags;
    if vs.one_packet {
        c.flags |= svc_flags::ONEPACKET;
    }
    if vs.sloppy_tcp {
        c.flags |= svc_flags::SLOPPY_TCP;
    }
    if let Some(t) = vs.persistence_timeout {
        c.flags |= svc_flags::PERSISTENT;
        c.timeout = t;
    }
    if let Some(g) = vs.persistence_granularity {
        c.netmask = match (g, ipv6) {
            (Netmask::V4(m), false) => u32::from(m),
            (Netmask::Prefix(n), false) => prefix_mask(n.min(32)),
            (Netmask::Prefix(n), true) => u32::from(n),
            (Netmask::V4(m), true) => u32::from(m).leading_ones(),
        };
    }
    c.pe_name = vs.persistence_engine.clone();
    c
}

/// An IPv4 mask of `len` leading ones, host order.
fn prefix_mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

fn dest_config(method: LvsMethod, weight: i32, u_threshold: u32, l_threshold: u32) -> DestConfig {
    let (fwd, tun_type, tun_port, tun_csum) = match method {
        LvsMethod::Nat => (FwdMethod::Masq, TunType::Ipip, 0, TunCsum::NoCsum),
        LvsMethod::Dr => (FwdMethod::Route, TunType::Ipip, 0, TunCsum::NoCsum),
        LvsMethod::Tun {
            tun_type,
            port,
            csum,
        } => (FwdMethod::Tunnel, tun_type, port, csum),
    };
    DestConfig {
        fwd,
        weight,
        u_threshold,
        l_threshold,
        tun_type,
        tun_port,
        tun_csum,
    }
}

/// A checker with the inheritance virtual server → real server → checker and keepalived's
/// per-type defaults applied.
fn check_spec(vs: &VirtualServer, rs: &RealServer, rs_port: u16, c: &Checker) -> CheckSpec {
    let d = c.defaults.or(rs.checker_defaults).or(vs.checker_defaults);
    let delay_loop = d.delay_loop.unwrap_or(defaults::DELAY_LOOP);
    let mut kind = c.kind.clone();
    let retry = d.retry.unwrap_or(match kind {
        CheckKind::Dns(_) => 3,
        CheckKind::Misc(_) => 0,
        _ => 1,
    });
    let delay_before_retry = d.delay_before_retry.unwrap_or(match kind {
        CheckKind::Http(_) => Duration::from_secs(3),
        CheckKind::Dns(_) => delay_loop,
        _ => Duration::from_secs(1),
    });
    match &mut kind {
        CheckKind::Http(h) => {
            h.virtualhost = h
                .virtualhost
                .take()
                .or_else(|| rs.virtualhost.clone())
                .or_else(|| vs.virtualhost.clone());
        }
        CheckKind::Misc(m) => m.timeout = Some(m.timeout.unwrap_or(delay_loop)),
        _ => {}
    }
    let target_ip = c.connect_ip.unwrap_or(rs.addr);
    let bind = match (c.bindto, c.bind_port) {
        (None, None) => None,
        (ip, port) => {
            let unspecified = if target_ip.is_ipv4() {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            } else {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            };
            Some(SocketAddr::new(
                ip.unwrap_or(unspecified),
                port.unwrap_or(0),
            ))
        }
    };
    CheckSpec {
        kind,
        target: SocketAddr::new(target_ip, c.connect_port.unwrap_or(rs_port)),
        bind,
        connect_timeout: d.connect_timeout.unwrap_or(defaults::CONNECT_TIMEOUT),
        retry,
        delay_before_retry,
        delay_loop,
        warmup: d.warmup.unwrap_or(delay_loop),
        alpha: d.alpha.unwrap_or(false),
    }
}
