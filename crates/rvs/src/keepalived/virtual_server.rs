//! `virtual_server`, its `real_server`s, `sorry_server`, and `virtual_server_group`.

use std::{collections::HashSet, net::IpAddr};

use super::{
    checker::{self, Parsed},
    config::{
        CheckerDefaults, GroupEntry, KeepalivedConfig, LvsMethod, RealServer, SorryServerConf,
        VirtualServer, VirtualServerGroup, VsAddr, defaults,
    },
    diag::ConfigError,
    global::{block_name, single},
    parse::Ctx,
    tree::{Node, Word},
    value::{self, Args},
};
use crate::{
    model::{Protocol, TunCsum, TunType, svc_flags},
    sched::Scheduler,
};

/// The largest persistence timeout IPVS takes (31 days).
const MAX_PERSISTENCE: u32 = 31 * 86400;

pub(super) fn parse(ctx: &mut Ctx, node: &Node) -> Result<VirtualServer, ConfigError> {
    let mut a = Args::new(node);
    let first = a.required("an address and port, 'fwmark N' or 'group NAME'")?;
    let addr = match first.text.as_str() {
        "fwmark" => VsAddr::Fwmark {
            mark: value::int(a.required("a mark")?, "fwmark", 1u32, u32::MAX)?,
        },
        "group" => VsAddr::Group {
            name: a.required("a group name")?.text.clone(),
        },
        _ => VsAddr::Inet {
            addr: value::ip(first)?,
            port: a.optional().map(value::port).transpose()?,
        },
    };
    a.finish_header(&mut ctx.warnings);
    let mut vs = VirtualServer::new(node.key.pos.clone(), addr);
    for n in ctx.block(node)? {
        body_item(ctx, n, &mut vs)?;
    }
    // keepalived skips a real server of the other family unless it is reached by tunnel.
    if let VsAddr::Inet { addr, .. } = vs.addr {
        let method = vs.method;
        vs.real_servers.retain(|rs| {
            let tunnel = matches!(rs.method.unwrap_or(method), LvsMethod::Tun { .. });
            if rs.addr.is_ipv4() == addr.is_ipv4() || tunnel {
                return true;
            }
            ctx.warnings.push(super::diag::Diagnostic::new(
                &rs.pos,
                format!(
                    "real server {} is not of the virtual server's address family and not \
                     reached by TUN - ignoring (as keepalived does)",
                    rs.addr
                ),
            ));
            false
        });
    }
    let hashed = crate::sched::Scheduler::from_name(&vs.scheduler)
        .is_some_and(crate::sched::Scheduler::same_on_every_director);
    if vs.sloppy_tcp && !hashed {
        ctx.warnings.push(super::diag::Diagnostic::new(
            &vs.pos,
            format!(
                "sloppy_tcp with lb_algo {}: a flow another director opened may reach another \
                 real server here (only sh, dh and mh pick the same one on every director)",
                vs.scheduler
            ),
        ));
    }
    Ok(vs)
}

/// One keyword of a `virtual_server` block (an L7 pool's block takes them too).
pub(super) fn body_item(
    ctx: &mut Ctx,
    n: &Node,
    vs: &mut VirtualServer,
) -> Result<(), ConfigError> {
    if checker::parse_default(ctx, n, &mut vs.checker_defaults)? {
        return Ok(());
    }
    match n.key.text.as_str() {
        "lb_algo" | "lvs_sched" => {
            let r = scheduler(ctx, n);
            let kept = format!("the scheduler stays {}", vs.scheduler);
            vs.scheduler = or_keep(ctx, r, vs.scheduler.clone(), &kept);
        }
        "lb_kind" | "lvs_method" => {
            let kept = format!("the method stays {}", method_name(&vs.method));
            if let Some(m) = known_method(ctx, n, &kept)? {
                vs.method = m;
            }
        }
        "flag-1" => vs.sched_flags |= flag(ctx, n, svc_flags::SCHED1)?,
        "flag-2" => vs.sched_flags |= flag(ctx, n, svc_flags::SCHED2)?,
        "flag-3" => vs.sched_flags |= flag(ctx, n, svc_flags::SCHED3)?,
        "sh-fallback" | "mh-fallback" => vs.sched_flags |= flag(ctx, n, svc_flags::SCHED1)?,
        "sh-port" | "mh-port" => vs.sched_flags |= flag(ctx, n, svc_flags::SCHED2)?,
        "ops" => vs.one_packet = value::boolean(n, &mut ctx.warnings)?,
        // rvs extension: schedule TCP packets of unknown flows without SYN (behind ECMP).
        "sloppy_tcp" => vs.sloppy_tcp = value::boolean(n, &mut ctx.warnings)?,
        "persistence_timeout" => {
            let mut a = Args::new(n);
            let timeout = match a.optional() {
                Some(w) => value::int(w, "persistence_timeout", 0, MAX_PERSISTENCE)?,
                None => defaults::PERSISTENCE_TIMEOUT,
            };
            // 0 is how some configurations say "not persistent".
            vs.persistence_timeout = (timeout > 0).then_some(timeout);
            a.finish(&mut ctx.warnings);
        }
        "persistence_granularity" => {
            let mut a = Args::new(n);
            vs.persistence_granularity = Some(value::netmask(a.required("a netmask")?)?);
            a.finish(&mut ctx.warnings);
        }
        "persistence_engine" => vs.persistence_engine = Some(single(ctx, n, "an engine name")?),
        "protocol" => {
            let mut a = Args::new(n);
            let w = a.required("TCP, UDP or SCTP")?;
            vs.protocol = match w.text.to_ascii_uppercase().as_str() {
                "TCP" => Protocol::Tcp,
                "UDP" => Protocol::Udp,
                "SCTP" => Protocol::Sctp,
                _ => {
                    return Err(ConfigError::at(
                        &w.pos,
                        format!("unknown protocol '{}' (expected TCP, UDP or SCTP)", w.text),
                    ));
                }
            };
            a.finish(&mut ctx.warnings);
        }
        "ip_family" => vs.ip_family = Some(family(ctx, n)?),
        "ha_suspend" => vs.ha_suspend = value::boolean(n, &mut ctx.warnings)?,
        "virtualhost" => vs.virtualhost = Some(single(ctx, n, "a host name")?),
        "omega" => vs.omega = value::boolean(n, &mut ctx.warnings)?,
        "quorum" => {
            let r = uint(ctx, n, "quorum", 1, u32::MAX);
            let kept = format!("quorum stays {}", vs.quorum);
            vs.quorum = or_keep(ctx, r, vs.quorum, &kept);
        }
        "hysteresis" => {
            let r = uint(ctx, n, "hysteresis", 0, u32::MAX);
            let kept = format!("hysteresis stays {}", vs.hysteresis);
            vs.hysteresis = or_keep(ctx, r, vs.hysteresis, &kept);
        }
        "quorum_up" => vs.quorum_up = Some(script(ctx, n)?),
        "quorum_down" => vs.quorum_down = Some(script(ctx, n)?),
        "sorry_server" => {
            let mut a = Args::new(n);
            let addr = value::ip(a.required("an address")?)?;
            let port = a.optional().map(value::port).transpose()?;
            a.finish(&mut ctx.warnings);
            let old = vs.sorry_server.take();
            vs.sorry_server = Some(SorryServerConf {
                addr,
                port,
                method: old.as_ref().and_then(|s| s.method),
                inhibit: old.is_some_and(|s| s.inhibit),
            });
        }
        "sorry_server_inhibit" => {
            let on = value::boolean(n, &mut ctx.warnings)?;
            sorry(vs).inhibit = on;
        }
        "sorry_server_lvs_method" => {
            let m = method(ctx, n)?;
            sorry(vs).method = Some(m);
        }
        "inhibit_on_failure" => vs.inhibit_on_failure = value::boolean(n, &mut ctx.warnings)?,
        "smtp_alert" => vs.smtp_alert = Some(value::boolean(n, &mut ctx.warnings)?),
        "real_server" => vs.real_servers.push(real_server(ctx, n)?),
        "rvs_mark" => {
            let VsAddr::Fwmark { mark } = vs.addr else {
                return Err(ConfigError::at(
                    &n.key.pos,
                    "'rvs_mark' belongs in a 'virtual_server fwmark N' block",
                ));
            };
            let mut a = Args::new(n);
            vs.mark_rules.extend(mark_matches(&mut a, mark)?);
            a.finish(&mut ctx.warnings);
        }
        "snmp_name" | "lvs_flush_on_stop" => ctx.unsupported(n),
        "nat_mask" => ctx.removed(n),
        _ => ctx.unknown(n),
    }
    Ok(())
}

/// The sorry server a `sorry_server_*` keyword refers to: keepalived takes them in any order,
/// so an option before `sorry_server` is kept for it.
/// Until `sorry_server` comes, the address is unspecified; [`validate`] refuses it if it stays so.
fn sorry(vs: &mut VirtualServer) -> &mut SorryServerConf {
    vs.sorry_server.get_or_insert(SorryServerConf {
        addr: IpAddr::from([0, 0, 0, 0]),
        port: None,
        method: None,
        inhibit: false,
    })
}

fn real_server(ctx: &mut Ctx, node: &Node) -> Result<RealServer, ConfigError> {
    let mut a = Args::new(node);
    let addr = value::ip(a.required("an address")?)?;
    let port = a.optional().map(value::port).transpose()?;
    a.finish_header(&mut ctx.warnings);
    let mut rs = RealServer {
        pos: node.key.pos.clone(),
        addr,
        port,
        weight: defaults::WEIGHT,
        method: None,
        uthreshold: 0,
        lthreshold: 0,
        inhibit_on_failure: None,
        notify_up: None,
        notify_down: None,
        virtualhost: None,
        smtp_alert: None,
        checker_defaults: CheckerDefaults::default(),
        checkers: Vec::new(),
    };
    // A real server without a block has no checker and is always up.
    let Some(block) = &node.block else {
        return Ok(rs);
    };
    for n in &block.nodes {
        match checker::parse(ctx, n)? {
            Parsed::Checkers(c) => {
                rs.checkers.extend(c);
                continue;
            }
            Parsed::Skipped => continue,
            Parsed::NotAChecker => {}
        }
        if checker::parse_default(ctx, n, &mut rs.checker_defaults)? {
            continue;
        }
        match n.key.text.as_str() {
            "weight" => rs.weight = uint(ctx, n, "weight", 0, 65535)? as i32,
            "lvs_method" | "lb_kind" => {
                // Unset, the real server takes its virtual server's method.
                let kept = match &rs.method {
                    Some(m) => format!("the method stays {}", method_name(m)),
                    None => "the real server keeps its virtual server's method".to_owned(),
                };
                if let Some(m) = known_method(ctx, n, &kept)? {
                    rs.method = Some(m);
                }
            }
            "uthreshold" => rs.uthreshold = uint(ctx, n, "uthreshold", 0, u32::MAX)?,
            "lthreshold" => rs.lthreshold = uint(ctx, n, "lthreshold", 0, u32::MAX)?,
            "inhibit_on_failure" => {
                rs.inhibit_on_failure = Some(value::boolean(n, &mut ctx.warnings)?)
            }
            "notify_up" => rs.notify_up = Some(script(ctx, n)?),
            "notify_down" => rs.notify_down = Some(script(ctx, n)?),
            "virtualhost" => rs.virtualhost = Some(single(ctx, n, "a host name")?),
            "smtp_alert" => rs.smtp_alert = Some(value::boolean(n, &mut ctx.warnings)?),
            "snmp_name" => ctx.unsupported(n),
            _ => ctx.unknown(n),
        }
    }
    Ok(rs)
}

/// A scheduler flag keyword (bare, or with a boolean).
fn flag(ctx: &mut Ctx, n: &Node, bit: u32) -> Result<u32, ConfigError> {
    Ok(if value::boolean(n, &mut ctx.warnings)? {
        bit
    } else {
        0
    })
}

pub(super) fn uint(
    ctx: &mut Ctx,
    n: &Node,
    what: &str,
    min: u32,
    max: u32,
) -> Result<u32, ConfigError> {
    let mut a = Args::new(n);
    let v = value::int(a.required("a number")?, what, min, max)?;
    a.finish(&mut ctx.warnings);
    Ok(v)
}

/// keepalived's way with a bad value it can do without: it logs an error and goes on with the
/// value as it was (its default, or an earlier line's), where rvs once refused the file. The
/// error becomes a warning at the same file:line, saying which value is used (`kept_text`).
fn or_keep<T>(ctx: &mut Ctx, r: Result<T, ConfigError>, kept: T, kept_text: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => {
            let pos = super::diag::Pos {
                file: e.file,
                line: e.line,
                col: e.col,
            };
            ctx.warnings.push(super::diag::Diagnostic::new(
                &pos,
                format!(
                    "{}; ignored, as keepalived ignores it: {kept_text}",
                    e.message
                ),
            ));
            kept
        }
    }
}

/// The method of an `lb_kind` / `lvs_method` line, or None when its word is not one keepalived
/// knows (it compares in capitals: `dr` is unknown), which keepalived logs and ignores. A known
/// method with bad tunnel options is still an error.
fn known_method(ctx: &mut Ctx, n: &Node, kept: &str) -> Result<Option<LvsMethod>, ConfigError> {
    let word = Args::new(n).required("NAT, DR or TUN")?.clone();
    if matches!(word.text.as_str(), "NAT" | "DR" | "TUN") {
        return method(ctx, n).map(Some);
    }
    ctx.warnings.push(super::diag::Diagnostic::new(
        &word.pos,
        format!(
            "unknown {} '{}' (keepalived knows NAT, DR and TUN, in capitals); ignored, as \
             keepalived ignores it: {kept}",
            n.key.text, word.text
        ),
    ));
    Ok(None)
}

/// A method as keepalived.conf writes it.
fn method_name(m: &LvsMethod) -> &'static str {
    match m {
        LvsMethod::Nat => "NAT",
        LvsMethod::Dr => "DR",
        LvsMethod::Tun { .. } => "TUN",
    }
}

fn scheduler(ctx: &mut Ctx, n: &Node) -> Result<String, ConfigError> {
    let mut a = Args::new(n);
    let w = a.required("a scheduler name")?;
    a.finish(&mut ctx.warnings);
    if Scheduler::from_name(&w.text).is_none() {
        return Err(ConfigError::at(
            &w.pos,
            format!(
                "unknown scheduler '{}' (expected one of {})",
                w.text,
                Scheduler::names()
            ),
        ));
    }
    Ok(w.text.clone())
}

fn family(ctx: &mut Ctx, n: &Node) -> Result<bool, ConfigError> {
    let mut a = Args::new(n);
    let w = a.required("inet or inet6")?;
    a.finish(&mut ctx.warnings);
    match w.text.as_str() {
        "inet" => Ok(false),
        "inet6" => Ok(true),
        _ => Err(ConfigError::at(
            &w.pos,
            format!("invalid ip_family '{}' (expected inet or inet6)", w.text),
        )),
    }
}

/// A notify or quorum script: the command (quoted when it has arguments), optionally followed
/// by the user to run it as, which rvs does not do.
pub(super) fn script(ctx: &mut Ctx, n: &Node) -> Result<String, ConfigError> {
    let mut a = Args::new(n);
    let cmd = a.required("a script")?.text.clone();
    if let Some(user) = a.optional() {
        ctx.warnings.push(super::diag::Diagnostic::new(
            &user.pos,
            format!(
                "running '{}' as user '{}' is not supported; it runs as rvsd's user",
                n.key.text, user.text
            ),
        ));
        while a.optional().is_some() {}
    }
    Ok(cmd)
}

/// `NAT | DR | TUN [type ipip | gue port N | gre] [nocsum | csum | remcsum]`.
pub(super) fn method(ctx: &mut Ctx, n: &Node) -> Result<LvsMethod, ConfigError> {
    let mut a = Args::new(n);
    let kind = a.required("NAT, DR or TUN")?;
    let m = match kind.text.as_str() {
        "NAT" => LvsMethod::Nat,
        "DR" => LvsMethod::Dr,
        "TUN" => tunnel(&mut a)?,
        _ => {
            return Err(ConfigError::at(
                &kind.pos,
                format!(
                    "unknown {} '{}' (expected NAT, DR or TUN)",
                    n.key.text, kind.text
                ),
            ));
        }
    };
    a.finish(&mut ctx.warnings);
    Ok(m)
}

fn tunnel(a: &mut Args<'_>) -> Result<LvsMethod, ConfigError> {
    let mut tun_type = TunType::Ipip;
    let mut port = 0;
    let mut csum = TunCsum::NoCsum;
    let mut csum_word: Option<&Word> = None;
    if a.peek().is_some_and(|w| w.text == "type") {
        a.optional();
        let t = a.required("a tunnel type after 'type'")?;
        tun_type = match t.text.as_str() {
            "ipip" => TunType::Ipip,
            "gre" => TunType::Gre,
            "gue" => {
                let p = a.required("'port N' after 'gue'")?;
                if p.text != "port" {
                    return Err(ConfigError::at(
                        &p.pos,
                        format!("expected 'port' after 'gue', found '{}'", p.text),
                    ));
                }
                port = value::int(
                    a.required("a port after 'gue port'")?,
                    "tunnel port",
                    1u16,
                    65535,
                )?;
                TunType::Gue
            }
            _ => {
                return Err(ConfigError::at(
                    &t.pos,
                    format!(
                        "unknown tunnel type '{}' (expected ipip, gue or gre)",
                        t.text
                    ),
                ));
            }
        };
    }
    if let Some(w) = a.peek()
        && let Some(c) = match w.text.as_str() {
            "nocsum" => Some(TunCsum::NoCsum),
            "csum" => Some(TunCsum::Csum),
            "remcsum" => Some(TunCsum::RemCsum),
            _ => None,
        }
    {
        a.optional();
        csum = c;
        csum_word = Some(w);
    }
    if let Some(w) = csum_word {
        let fits = match tun_type {
            TunType::Ipip => csum == TunCsum::NoCsum,
            TunType::Gre => csum != TunCsum::RemCsum,
            TunType::Gue => true,
        };
        if !fits {
            return Err(ConfigError::at(
                &w.pos,
                format!(
                    "checksum option '{}' does not apply to a {} tunnel",
                    w.text,
                    tun_type.name()
                ),
            ));
        }
    }
    Ok(LvsMethod::Tun {
        tun_type,
        port,
        csum,
    })
}

pub(super) fn parse_group(ctx: &mut Ctx, node: &Node) -> Result<VirtualServerGroup, ConfigError> {
    let name = block_name(ctx, node)?;
    let mut g = VirtualServerGroup {
        pos: node.key.pos.clone(),
        name,
        entries: Vec::new(),
        mark_rules: Vec::new(),
    };
    for n in ctx.block(node)? {
        let mut a = Args::new(n);
        if n.key.text == "rvs_mark" {
            let w = a.required("a mark and at least one match")?;
            let mark = value::int(w, "rvs_mark", 1u32, u32::MAX)?;
            g.mark_rules.extend(mark_matches(&mut a, mark)?);
            a.finish(&mut ctx.warnings);
            continue;
        }
        if n.key.text == "fwmark" {
            let mark = value::int(a.required("a mark")?, "fwmark", 1u32, u32::MAX)?;
            let ipv6 = match a.optional() {
                None => None,
                Some(w) if w.text == "inet" => Some(false),
                Some(w) if w.text == "inet6" => Some(true),
                Some(w) => {
                    return Err(ConfigError::at(
                        &w.pos,
                        format!("expected inet or inet6, found '{}'", w.text),
                    ));
                }
            };
            g.entries.push(GroupEntry::Fwmark { mark, ipv6 });
        } else {
            let (first, last) = address_range(&n.key)?;
            let port = a.optional().map(value::port).transpose()?;
            g.entries.push(GroupEntry::Addresses { first, last, port });
        }
        a.finish(&mut ctx.warnings);
    }
    for r in &g.mark_rules {
        if !g.entries.contains(&GroupEntry::Fwmark {
            mark: r.mark,
            ipv6: None,
        }) && !g
            .entries
            .iter()
            .any(|e| matches!(e, GroupEntry::Fwmark { mark, .. } if *mark == r.mark))
        {
            return Err(ConfigError::at(
                &g.pos,
                format!(
                    "rvs_mark {} names no 'fwmark {}' of group {}",
                    r.mark, r.mark, g.name
                ),
            ));
        }
    }
    Ok(g)
}

/// The matches of an `rvs_mark` line (`tcp:198.18.0.100:80-443` ..., as `rvsadm --match`
/// takes them), as rules for `mark`.
fn mark_matches(a: &mut Args<'_>, mark: u32) -> Result<Vec<crate::model::MarkRule>, ConfigError> {
    let mut out = Vec::new();
    let first = a.required("at least one match (PROTO:ADDRESS[/LEN][:PORT[-PORT]])")?;
    let mut next = Some(first);
    while let Some(w) = next {
        let m: crate::model::MarkMatch = w
            .text
            .parse()
            .map_err(|e: String| ConfigError::at(&w.pos, format!("rvs_mark '{}': {e}", w.text)))?;
        out.push(m.with_mark(mark));
        next = a.optional();
    }
    Ok(out)
}

/// The most addresses one group entry may expand to.
const MAX_RANGE: u128 = 65536;

/// `A`, `A-B` (B the last part of the address, or a whole address) or `A/len`.
fn address_range(w: &Word) -> Result<(IpAddr, IpAddr), ConfigError> {
    let bad = || {
        ConfigError::at(
            &w.pos,
            format!(
                "invalid address range '{}' (expected IP, IP-LAST, IP-IP or IP/LEN)",
                w.text
            ),
        )
    };
    let text = w.text.as_str();
    let (first, last) = if let Some((addr, len)) = text.split_once('/') {
        let first: IpAddr = addr.parse().map_err(|_| bad())?;
        let bits = if first.is_ipv4() { 32 } else { 128 };
        let len: u32 = len.parse().ok().filter(|l| *l <= bits).ok_or_else(bad)?;
        let host_bits = bits - len;
        let v = to_u128(first);
        let mask = if host_bits == 0 {
            0
        } else {
            (1u128 << host_bits) - 1
        };
        (
            from_u128(v & !mask, first.is_ipv4()),
            from_u128(v | mask, first.is_ipv4()),
        )
    } else if let Some((addr, end)) = text.split_once('-') {
        let first: IpAddr = addr.parse().map_err(|_| bad())?;
        let last = if let Ok(full) = end.parse::<IpAddr>() {
            full
        } else if first.is_ipv4() {
            let n: u8 = end.parse().map_err(|_| bad())?;
            let mut o = match first {
                IpAddr::V4(a) => a.octets(),
                IpAddr::V6(_) => return Err(bad()),
            };
            o[3] = n;
            IpAddr::from(o)
        } else {
            // IPv6: the last group, in hex.
            let n = u16::from_str_radix(end, 16).map_err(|_| bad())?;
            let mut s = match first {
                IpAddr::V6(a) => a.segments(),
                IpAddr::V4(_) => return Err(bad()),
            };
            s[7] = n;
            IpAddr::from(s)
        };
        (first, last)
    } else {
        let a: IpAddr = text.parse().map_err(|_| {
            ConfigError::at(
                &w.pos,
                format!(
                    "invalid IP address '{}' (expected an IPv4 or IPv6 address)",
                    w.text
                ),
            )
        })?;
        (a, a)
    };
    if first.is_ipv4() != last.is_ipv4() || to_u128(last) < to_u128(first) {
        return Err(bad());
    }
    if to_u128(last) - to_u128(first) >= MAX_RANGE {
        return Err(ConfigError::at(
            &w.pos,
            format!(
                "address range '{}' has more than {MAX_RANGE} addresses",
                w.text
            ),
        ));
    }
    Ok((first, last))
}

pub(super) fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

pub(super) fn from_u128(v: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::from(u32::try_from(v).unwrap_or(u32::MAX).to_be_bytes())
    } else {
        IpAddr::from(v.to_be_bytes())
    }
}

/// Checks that need the whole file: groups exist, ports are there when needed, nothing is
/// defined twice.
pub(super) fn validate(cfg: &KeepalivedConfig) -> Result<(), ConfigError> {
    let mut group_names = HashSet::new();
    for g in &cfg.groups {
        if !group_names.insert(g.name.as_str()) {
            return Err(ConfigError::at(
                &g.pos,
                format!("virtual_server_group '{}' is defined twice", g.name),
            ));
        }
    }
    for vs in &cfg.virtual_servers {
        match &vs.addr {
            VsAddr::Group { name } if cfg.group(name).is_none() => {
                return Err(ConfigError::at(
                    &vs.pos,
                    format!("virtual_server_group '{name}' is not defined"),
                ));
            }
            VsAddr::Inet { port: None, .. } if vs.persistence_timeout.is_none() => {
                return Err(ConfigError::at(
                    &vs.pos,
                    "a virtual server without a port must be persistent (persistence_timeout)",
                ));
            }
            _ => {}
        }
        if let Some(s) = &vs.sorry_server
            && s.addr.is_unspecified()
        {
            return Err(ConfigError::at(
                &vs.pos,
                "sorry_server options given without a sorry_server",
            ));
        }
        let vs_port = match vs.addr {
            VsAddr::Inet { port, .. } => port.unwrap_or(0),
            _ => 0,
        };
        let mut seen = HashSet::new();
        for rs in &vs.real_servers {
            let port = rs.port.unwrap_or(vs_port);
            if !seen.insert((rs.addr, port)) {
                return Err(ConfigError::at(
                    &rs.pos,
                    format!(
                        "real server {} port {port} is listed twice in this virtual server",
                        rs.addr
                    ),
                ));
            }
            for c in &rs.checkers {
                checker::validate(c, port)?;
            }
        }
    }
    Ok(())
}
