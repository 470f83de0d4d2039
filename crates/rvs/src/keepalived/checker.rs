//! Checker blocks (TCP_CHECK, HTTP_GET, SSL_GET, SMTP_CHECK, DNS_CHECK, UDP_CHECK, PING_CHECK,
//! MISC_CHECK) and the timing settings a virtual server, a real server or a checker may give.

use super::{
    config::{Checker, CheckerDefaults},
    diag::ConfigError,
    global::single,
    parse::Ctx,
    tree::Node,
    value::{self, Args},
    virtual_server::uint,
};
use crate::check::{
    CheckKind, DnsCheck, DnsType, HttpCheck, HttpProtocol, MiscCheck, SMTP_DEFAULT_HELO, SmtpCheck,
    TlsOptions, UdpCheck, UrlCheck,
};

/// Reads a timing setting shared by the three levels; false when `n` is not one.
pub(super) fn parse_default(
    ctx: &mut Ctx,
    n: &Node,
    d: &mut CheckerDefaults,
) -> Result<bool, ConfigError> {
    let key = n.key.text.as_str();
    match key {
        "delay_loop" | "connect_timeout" | "delay_before_retry" | "warmup" => {
            let mut a = Args::new(n);
            let t = value::timer(a.required("a time in seconds")?, key)?;
            a.finish(&mut ctx.warnings);
            let slot = match key {
                "delay_loop" => &mut d.delay_loop,
                "connect_timeout" => &mut d.connect_timeout,
                "delay_before_retry" => &mut d.delay_before_retry,
                _ => &mut d.warmup,
            };
            *slot = Some(t);
        }
        // nb_get_retry is the old name of retry.
        "retry" | "nb_get_retry" => d.retry = Some(uint(ctx, n, key, 0, u32::MAX)?),
        "alpha" => d.alpha = Some(value::boolean(n, &mut ctx.warnings)?),
        _ => return Ok(false),
    }
    Ok(true)
}

pub(super) enum Parsed {
    /// One checker, or several for an SMTP_CHECK with `host { }` blocks (one per host).
    Checkers(Vec<Checker>),
    /// A checker rvs does not have (BFD_CHECK, FILE_CHECK): warned about, left out.
    Skipped,
    NotAChecker,
}

pub(super) fn parse(ctx: &mut Ctx, node: &Node) -> Result<Parsed, ConfigError> {
    let kind = match node.key.text.as_str() {
        "TCP_CHECK" => CheckKind::Tcp,
        "HTTP_GET" => CheckKind::Http(HttpCheck {
            urls: Vec::new(),
            virtualhost: None,
            protocol: HttpProtocol::Http10,
            tls: None,
        }),
        "SSL_GET" => CheckKind::Http(HttpCheck {
            urls: Vec::new(),
            virtualhost: None,
            protocol: HttpProtocol::Http10,
            tls: Some(TlsOptions::default()),
        }),
        "SMTP_CHECK" => CheckKind::Smtp(SmtpCheck {
            helo_name: SMTP_DEFAULT_HELO.to_owned(),
        }),
        "DNS_CHECK" => CheckKind::Dns(DnsCheck {
            qtype: DnsType::Soa,
            name: ".".to_owned(),
        }),
        "UDP_CHECK" => CheckKind::Udp(UdpCheck {
            payload: None,
            require_reply: None,
            min_reply_length: 0,
            max_reply_length: super::config::defaults::UDP_MAX_REPLY_LENGTH,
        }),
        "PING_CHECK" | "ICMP_CHECK" => CheckKind::Ping,
        "MISC_CHECK" => CheckKind::Misc(MiscCheck {
            path: String::new(),
            timeout: None,
            dynamic: false,
        }),
        "BFD_CHECK" | "FILE_CHECK" => {
            ctx.unsupported(node);
            return Ok(Parsed::Skipped);
        }
        _ => return Ok(Parsed::NotAChecker),
    };
    Args::new(node).finish_header(&mut ctx.warnings);
    let mut c = Checker {
        pos: node.key.pos.clone(),
        kind,
        connect_ip: None,
        connect_port: None,
        bindto: None,
        bind_port: None,
        defaults: CheckerDefaults::default(),
    };
    // `TCP_CHECK` without a block is a plain check with every default.
    let nodes = node
        .block
        .as_ref()
        .map(|b| b.nodes.as_slice())
        .unwrap_or_default();
    let mut hosts: Vec<Checker> = Vec::new();
    for n in nodes {
        if n.key.text == "host" && matches!(c.kind, CheckKind::Smtp(_)) {
            hosts.push(smtp_host(ctx, n, &c)?);
            continue;
        }
        if n.key.text == "nb_get_retry" && !matches!(c.kind, CheckKind::Http(_)) {
            // keepalived has it only in HTTP_GET and SSL_GET: elsewhere it warns and the retry
            // count stays at its default, so rvs must not count it either.
            ctx.warn(
                n,
                format!(
                    "'nb_get_retry' is not a {} keyword in keepalived (only HTTP_GET and SSL_GET \
                     have it): ignored, as keepalived ignores it (use 'retry')",
                    node.key.text
                ),
            );
            continue;
        }
        if parse_default(ctx, n, &mut c.defaults)? || common(ctx, n, &mut c)? {
            continue;
        }
        let handled = match &mut c.kind {
            CheckKind::Tcp | CheckKind::Ping => false,
            CheckKind::Http(h) => http(ctx, n, h)?,
            CheckKind::Smtp(s) => smtp(ctx, n, s)?,
            CheckKind::Dns(d) => dns(ctx, n, d)?,
            CheckKind::Udp(u) => udp(ctx, n, u)?,
            CheckKind::Misc(m) => misc(ctx, n, m)?,
        };
        if !handled {
            ctx.unknown(n);
        }
    }
    match &c.kind {
        CheckKind::Http(h) if h.urls.is_empty() => {
            return Err(ConfigError::at(
                &c.pos,
                format!("{} has no url {{ path ... }}", node.key.text),
            ));
        }
        CheckKind::Misc(m) if m.path.is_empty() => {
            return Err(ConfigError::at(&c.pos, "MISC_CHECK needs misc_path"));
        }
        _ => {}
    }
    if !hosts.is_empty() {
        // keepalived's older form: each `host { }` is a checker of its own, with the
        // SMTP_CHECK's settings and its own address, port and source.
        let checkers = hosts
            .iter()
            .map(|h| {
                let mut one = c.clone();
                one.pos = h.pos.clone();
                one.connect_ip = h.connect_ip.or(c.connect_ip);
                one.connect_port = h.connect_port.or(c.connect_port);
                one.bindto = h.bindto.or(c.bindto);
                one.bind_port = h.bind_port.or(c.bind_port);
                one
            })
            .collect();
        return Ok(Parsed::Checkers(checkers));
    }
    Ok(Parsed::Checkers(vec![c]))
}

/// A `host { }` block of an SMTP_CHECK: where one of its checkers connects (connect_ip,
/// connect_port, bindto, bind_port; what is not given comes from the SMTP_CHECK).
fn smtp_host(ctx: &mut Ctx, n: &Node, parent: &Checker) -> Result<Checker, ConfigError> {
    Args::new(n).finish_header(&mut ctx.warnings);
    let mut h = Checker {
        pos: n.key.pos.clone(),
        connect_ip: None,
        connect_port: None,
        bindto: None,
        bind_port: None,
        ..parent.clone()
    };
    for inner in ctx.block(n)? {
        if !common(ctx, inner, &mut h)? {
            ctx.unknown(inner);
        }
    }
    Ok(h)
}

/// connect_ip, connect_port, bindto, bind_port, and the options rvs reads past.
fn common(ctx: &mut Ctx, n: &Node, c: &mut Checker) -> Result<bool, ConfigError> {
    let mut a = Args::new(n);
    match n.key.text.as_str() {
        "connect_ip" => c.connect_ip = Some(value::ip(a.required("an address")?)?),
        "connect_port" => c.connect_port = Some(value::port(a.required("a port")?)?),
        "bindto" => c.bindto = Some(value::ip(a.required("an address")?)?),
        "bind_port" => c.bind_port = Some(value::port(a.required("a port")?)?),
        "bind_if" | "fwmark" | "log_all_failures" => {
            ctx.unsupported(n);
            return Ok(true);
        }
        _ => return Ok(false),
    }
    a.finish(&mut ctx.warnings);
    Ok(true)
}

fn http(ctx: &mut Ctx, n: &Node, h: &mut HttpCheck) -> Result<bool, ConfigError> {
    match n.key.text.as_str() {
        "url" => h.urls.push(url(ctx, n)?),
        "virtualhost" => h.virtualhost = Some(single(ctx, n, "a host name")?),
        "http_protocol" => {
            let mut a = Args::new(n);
            let w = a.required("1.0, 1.0C or 1.1")?;
            h.protocol = match w.text.as_str() {
                "1.0" => HttpProtocol::Http10,
                "1.0C" | "1.0c" => HttpProtocol::Http10Close,
                "1.1" => HttpProtocol::Http11,
                _ => {
                    return Err(ConfigError::at(
                        &w.pos,
                        format!(
                            "invalid http_protocol '{}' (expected 1.0, 1.0C or 1.1)",
                            w.text
                        ),
                    ));
                }
            };
            a.finish(&mut ctx.warnings);
        }
        "enable_sni" | "sni_name" if h.tls.is_none() => {
            ctx.warn(
                n,
                format!("'{}' applies to SSL_GET only; ignored", n.key.text),
            );
        }
        "enable_sni" => {
            let on = value::boolean(n, &mut ctx.warnings)?;
            if let Some(t) = h.tls.as_mut() {
                t.enable_sni = on;
            }
        }
        "sni_name" => {
            let name = single(ctx, n, "a server name")?;
            if let Some(t) = h.tls.as_mut() {
                t.sni_name = Some(name);
            }
        }
        // Keepalived's own scheduling refinements and TLS shutdown detail: the check is the same.
        "fast_recovery" | "tls_compliant" => {
            value::boolean(n, &mut ctx.warnings)?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn url(ctx: &mut Ctx, node: &Node) -> Result<UrlCheck, ConfigError> {
    let mut u = UrlCheck {
        path: String::new(),
        status: Vec::new(),
        digest: None,
        virtualhost: None,
    };
    for n in ctx.block(node)? {
        match n.key.text.as_str() {
            "path" => u.path = single(ctx, n, "a path")?,
            "digest" => {
                let mut a = Args::new(n);
                let w = a.required("an MD5 digest")?;
                if w.text.len() != 32 || !w.text.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(ConfigError::at(
                        &w.pos,
                        format!(
                            "invalid digest '{}' (expected 32 hex digits, as genhash prints)",
                            w.text
                        ),
                    ));
                }
                u.digest = Some(w.text.to_ascii_lowercase());
                a.finish(&mut ctx.warnings);
            }
            "status_code" => {
                let mut a = Args::new(n);
                a.required("a status code or range")?;
                for w in &n.args {
                    let code = |s: &str| {
                        s.parse::<u16>().ok().filter(|c| (100..=599).contains(c)).ok_or_else(|| {
                            ConfigError::at(
                                &w.pos,
                                format!("invalid status_code '{}' (expected codes or ranges within 100-599)", w.text),
                            )
                        })
                    };
                    let (lo, hi) = match w.text.split_once('-') {
                        Some((lo, hi)) => (code(lo)?, code(hi)?),
                        None => (code(&w.text)?, code(&w.text)?),
                    };
                    if lo > hi {
                        return Err(ConfigError::at(
                            &w.pos,
                            format!("empty status_code range '{}'", w.text),
                        ));
                    }
                    u.status.push((lo, hi));
                }
            }
            "virtualhost" => u.virtualhost = Some(single(ctx, n, "a host name")?),
            "regex" | "regex_no_match" | "regex_options" | "regex_stack" | "regex_min_offset"
            | "regex_max_offset" => ctx.unsupported(n),
            "tls_compliant" => {
                value::boolean(n, &mut ctx.warnings)?;
            }
            _ => ctx.unknown(n),
        }
    }
    if u.path.is_empty() {
        return Err(ConfigError::at(&node.key.pos, "url has no path"));
    }
    Ok(u)
}

fn smtp(ctx: &mut Ctx, n: &Node, s: &mut SmtpCheck) -> Result<bool, ConfigError> {
    match n.key.text.as_str() {
        "helo_name" => s.helo_name = single(ctx, n, "a name")?,
        _ => return Ok(false),
    }
    Ok(true)
}

fn dns(ctx: &mut Ctx, n: &Node, d: &mut DnsCheck) -> Result<bool, ConfigError> {
    match n.key.text.as_str() {
        "type" => {
            let mut a = Args::new(n);
            let w = a.required("a query type")?;
            d.qtype = DnsType::from_name(&w.text).ok_or_else(|| {
                ConfigError::at(
                    &w.pos,
                    format!(
                        "unknown DNS type '{}' (expected A, NS, CNAME, SOA, MX, TXT or AAAA)",
                        w.text
                    ),
                )
            })?;
            a.finish(&mut ctx.warnings);
        }
        "name" => {
            let mut a = Args::new(n);
            let w = a.required("a domain name")?;
            let labels_ok = w.text == "."
                || w.text
                    .trim_end_matches('.')
                    .split('.')
                    .all(|l| !l.is_empty() && l.len() <= 63);
            if !labels_ok || w.text.len() > 253 {
                return Err(ConfigError::at(
                    &w.pos,
                    format!("invalid DNS name '{}'", w.text),
                ));
            }
            d.name = w.text.clone();
            a.finish(&mut ctx.warnings);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn udp(ctx: &mut Ctx, n: &Node, u: &mut UdpCheck) -> Result<bool, ConfigError> {
    match n.key.text.as_str() {
        "payload" => {
            Args::new(n).required("a hex string")?;
            u.payload = Some(
                value::hex_pattern(&n.args, false)?
                    .into_iter()
                    .map(|(b, _)| b)
                    .collect(),
            );
        }
        "require_reply" => u.require_reply = Some(value::hex_pattern(&n.args, true)?),
        "min_reply_length" => {
            u.min_reply_length = uint(ctx, n, "min_reply_length", 0, 65535)? as usize
        }
        "max_reply_length" => {
            u.max_reply_length = uint(ctx, n, "max_reply_length", 0, 65535)? as usize
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn misc(ctx: &mut Ctx, n: &Node, m: &mut MiscCheck) -> Result<bool, ConfigError> {
    match n.key.text.as_str() {
        "misc_path" => {
            let mut a = Args::new(n);
            m.path = a.required("a script")?.text.clone();
            a.finish(&mut ctx.warnings);
        }
        "misc_timeout" => {
            let mut a = Args::new(n);
            m.timeout = Some(value::timer(
                a.required("a time in seconds")?,
                "misc_timeout",
            )?);
            a.finish(&mut ctx.warnings);
        }
        "misc_dynamic" => m.dynamic = value::boolean(n, &mut ctx.warnings)?,
        "user" => ctx.warn(
            n,
            "running MISC_CHECK as another user is not supported; it runs as rvsd's user",
        ),
        _ => return Ok(false),
    }
    Ok(true)
}

/// A checker that talks to a port needs one: its own connect_port or the real server's.
pub(super) fn validate(c: &Checker, rs_port: u16) -> Result<(), ConfigError> {
    let needs_port = !matches!(c.kind, CheckKind::Ping | CheckKind::Misc(_));
    if needs_port && c.connect_port.unwrap_or(rs_port) == 0 {
        return Err(ConfigError::at(
            &c.pos,
            format!(
                "{} needs a port: give the real server a port or set connect_port",
                c.kind.name()
            ),
        ));
    }
    Ok(())
}
