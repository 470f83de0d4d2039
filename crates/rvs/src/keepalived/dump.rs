//! `rvsd --check-config -f FILE --dump`: what rvsd understood of a keepalived.conf, after
//! keepalived's inheritance and defaults, so a user can hold it against the file: each virtual
//! service with its scheduler and persistence, each real server with its method and weight, and
//! each checker with the timings it will really run with.

use std::fmt::Write as _;

use super::KeepalivedConfig;
use crate::{
    check::{CheckSpec, DesiredService},
    model::{DestConfig, FwdMethod, TunType, svc_flags},
    sched::Scheduler,
};

/// The dump of `cfg`, whose services are `services` (from `desired_services`).
pub fn dump(cfg: &KeepalivedConfig, services: &[DesiredService]) -> String {
    let mut out = String::new();
    for svc in services {
        let c = &svc.config;
        let _ = write!(out, "virtual_server {} ({})", svc.name, svc.service);
        let _ = write!(out, " lvs_sched {}", c.scheduler);
        let flags = c.flags & svc_flags::SCHED_MASK;
        if flags != 0 {
            let names = Scheduler::from_name(&c.scheduler)
                .unwrap_or(Scheduler::DEFAULT)
                .flag_names(flags);
            let _ = write!(out, " flags {names}");
        }
        if c.flags & svc_flags::PERSISTENT != 0 {
            let _ = write!(out, " persistence_timeout {}", c.timeout);
        }
        if c.flags & svc_flags::ONEPACKET != 0 {
            out.push_str(" ops");
        }
        if c.flags & svc_flags::SLOPPY_TCP != 0 {
            out.push_str(" sloppy_tcp");
        }
        let _ = writeln!(out, " quorum {} hysteresis {}", svc.quorum, svc.hysteresis);
        for d in &svc.dests {
            let _ = write!(out, "  real_server {} {}", d.addr, dest(&d.config));
            if d.inhibit_on_failure {
                out.push_str(" inhibit_on_failure");
            }
            out.push('\n');
            for check in &d.checkers {
                let _ = writeln!(out, "    {}", checker(check));
            }
        }
        if let Some(s) = &svc.sorry_server {
            let _ = writeln!(out, "  sorry_server {} {}", s.addr, dest(&s.config));
        }
    }
    for v in &cfg.vrrp_instances {
        let _ = writeln!(out, "vrrp_instance {}", v.name);
    }
    out
}

fn dest(c: &DestConfig) -> String {
    let method = match c.fwd {
        FwdMethod::Masq => "NAT".to_owned(),
        FwdMethod::Route => "DR".to_owned(),
        FwdMethod::Tunnel => match c.tun_type {
            TunType::Ipip => "TUN".to_owned(),
            TunType::Gue => format!("TUN type gue port {}", c.tun_port),
            TunType::Gre => "TUN type gre".to_owned(),
        },
        FwdMethod::Local => "local".to_owned(),
        FwdMethod::Bypass => "bypass".to_owned(),
    };
    let mut s = format!("lvs_method {method} weight {}", c.weight);
    if c.u_threshold != 0 {
        let _ = write!(s, " uthreshold {}", c.u_threshold);
    }
    if c.l_threshold != 0 {
        let _ = write!(s, " lthreshold {}", c.l_threshold);
    }
    s
}

fn checker(c: &CheckSpec) -> String {
    let mut s = format!(
        "{} {} connect_timeout {} retry {} delay_before_retry {} delay_loop {}",
        c.kind.name(),
        c.target,
        secs(c.connect_timeout),
        c.retry,
        secs(c.delay_before_retry),
        secs(c.delay_loop),
    );
    if !c.warmup.is_zero() {
        let _ = write!(s, " warmup {}", secs(c.warmup));
    }
    if let Some(b) = c.bind {
        let _ = write!(s, " bindto {b}");
    }
    if c.alpha {
        s.push_str(" alpha");
    }
    s
}

/// Seconds as keepalived.conf writes them (fractions where there are some).
fn secs(d: std::time::Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}
