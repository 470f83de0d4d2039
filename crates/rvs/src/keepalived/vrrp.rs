//! `vrrp_instance`, `vrrp_sync_group` and `vrrp_script`, read into the typed model that
//! rvsd's VRRP task (daemon::vrrp) runs. Values are checked here with their position; keywords
//! keepalived knows and rvs does not do are warnings with file:line.

use super::{
    config::{Tracked, VirtualAddress, VrrpAuth, VrrpInstance, VrrpScript, VrrpSyncGroup},
    diag::ConfigError,
    global::{block_name, single},
    parse::Ctx,
    tree::{Node, Word},
    value::{self, Args},
    virtual_server::{script, uint},
};

/// vrrp_instance keywords of keepalived.conf(5) that rvs reads past (with a warning).
const UNSUPPORTED_INSTANCE_KEYWORDS: &[&str] = &[
    "use_vmac",
    "vmac_xmit_base",
    "native_ipv6",
    "dont_track_primary",
    "track_file",
    "track_process",
    "track_bfd",
    "mcast_src_ip",
    "unicast_ttl",
    "virtual_routes",
    "virtual_rules",
    "accept",
    "no_accept",
    "skip_check_adv_addr",
    "strict_mode",
    "garp_lower_prio_delay",
    "garp_lower_prio_repeat",
    "garp_interval",
    "gna_interval",
    "lower_prio_no_advert",
    "higher_prio_send_advert",
    "kernel_rx_buf_size",
    "debug",
    "notify_deleted",
    "notify_master_rx_lower_pri",
    "smtp_alert",
    "notify_priority_changes",
    "mcast_dst_ip",
    "check_unicast_src",
    "unicast_fault_no_peer",
    "vrrp_garp_lower_prio_no_advert",
    "ifp_name",
    "linkbeat_use_polling",
    "down_timer_adverts",
    "use_ipvlan",
    "track_src_ip",
    "evip",
    "ipsets",
    "nftables",
    "auth_hmac",
    "promote_secondaries",
    "vrf",
];

pub(super) fn parse_instance(ctx: &mut Ctx, node: &Node) -> Result<VrrpInstance, ConfigError> {
    let mut v = VrrpInstance {
        pos: Some(node.key.pos.clone()),
        name: block_name(ctx, node)?,
        ..VrrpInstance::default()
    };
    for n in ctx.block(node)? {
        match n.key.text.as_str() {
            "state" => {
                let mut a = Args::new(n);
                let w = a.required("MASTER or BACKUP")?;
                v.state_master = Some(match w.text.as_str() {
                    "MASTER" => true,
                    "BACKUP" => false,
                    _ => {
                        return Err(ConfigError::at(
                            &w.pos,
                            format!("invalid state '{}' (expected MASTER or BACKUP)", w.text),
                        ));
                    }
                });
                a.finish(&mut ctx.warnings);
            }
            "interface" => v.interface = Some(single(ctx, n, "an interface")?),
            "virtual_router_id" => {
                v.virtual_router_id = Some(uint(ctx, n, "virtual_router_id", 1, 255)? as u8)
            }
            "priority" => v.priority = Some(uint(ctx, n, "priority", 1, 255)? as u8),
            "advert_int" => v.advert_int = Some(seconds(ctx, n)?),
            "version" => v.version = Some(uint(ctx, n, "version", 2, 3)? as u8),
            "nopreempt" => v.nopreempt = value::boolean(n, &mut ctx.warnings)?,
            "preempt" => v.nopreempt = !value::boolean(n, &mut ctx.warnings)?,
            "preempt_delay" => {
                let d = seconds(ctx, n)?;
                if d.as_secs() > 1000 {
                    return Err(ConfigError::at(
                        &n.args[0].pos,
                        "invalid preempt_delay (expected 0..1000 seconds)",
                    ));
                }
                v.preempt_delay = Some(d);
            }
            "authentication" => v.auth = auth(ctx, n)?,
            "virtual_ipaddress" => v.virtual_ipaddress = addresses(ctx, n)?,
            "virtual_ipaddress_excluded" => v.virtual_ipaddress_excluded = addresses(ctx, n)?,
            "unicast_src_ip" => {
                let mut a = Args::new(n);
                v.unicast_src_ip = Some(value::ip(a.required("an address")?)?);
                a.finish(&mut ctx.warnings);
            }
            "unicast_peer" => {
                for m in ctx.block(n)? {
                    v.unicast_peer.push(value::ip(&m.key)?);
                    // keepalived allows `min_ttl`/`max_ttl` after a peer.
                    if let Some(extra) = m.args.first() {
                        ctx.warnings.push(super::diag::Diagnostic::new(
                            &extra.pos,
                            format!(
                                "'{}' after a unicast peer is not supported; ignored",
                                extra.text
                            ),
                        ));
                    }
                }
            }
            "track_script" => v.track_script = tracked(ctx, n)?,
            "track_interface" => v.track_interface = tracked(ctx, n)?,
            "notify_master" => v.notify_master = Some(script(ctx, n)?),
            "notify_backup" => v.notify_backup = Some(script(ctx, n)?),
            "notify_fault" => v.notify_fault = Some(script(ctx, n)?),
            "notify_stop" => v.notify_stop = Some(script(ctx, n)?),
            "notify" => v.notify = Some(script(ctx, n)?),
            "garp_master_delay" => v.garp_master_delay = Some(seconds(ctx, n)?),
            "garp_master_repeat" => {
                v.garp_master_repeat = Some(uint(ctx, n, "garp_master_repeat", 1, 255)?)
            }
            "garp_master_refresh" => v.garp_master_refresh = Some(seconds(ctx, n)?),
            "garp_master_refresh_repeat" => {
                v.garp_master_refresh_repeat =
                    Some(uint(ctx, n, "garp_master_refresh_repeat", 1, 255)?)
            }
            "v3_checksum_as_v2" => v.v3_checksum_as_v2 = value::boolean(n, &mut ctx.warnings)?,
            "old_unicast_checksum" => {
                // An optional `never` turns the compatibility off.
                let mut a = Args::new(n);
                v.old_unicast_checksum = a.optional().is_none_or(|w| w.text != "never");
                a.finish(&mut ctx.warnings);
            }
            "lvs_sync_daemon_interface" => {
                v.lvs_sync_daemon_interface = Some(single(ctx, n, "an interface")?)
            }
            k if UNSUPPORTED_INSTANCE_KEYWORDS.contains(&k) => ctx.unsupported(n),
            _ => ctx.unknown(n),
        }
    }
    Ok(v)
}

/// A time in seconds with a fraction (advert_int 0.1).
fn seconds(ctx: &mut Ctx, n: &Node) -> Result<std::time::Duration, ConfigError> {
    let mut a = Args::new(n);
    let d = value::timer(a.required("a time in seconds")?, &n.key.text)?;
    a.finish(&mut ctx.warnings);
    Ok(d)
}

fn auth(ctx: &mut Ctx, n: &Node) -> Result<Option<VrrpAuth>, ConfigError> {
    let mut kind: Option<&Word> = None;
    let mut pass: Option<String> = None;
    for m in ctx.block(n)? {
        match m.key.text.as_str() {
            "auth_type" => {
                let mut a = Args::new(m);
                kind = Some(a.required("PASS or AH")?);
                a.finish(&mut ctx.warnings);
            }
            "auth_pass" => pass = Some(single(ctx, m, "a password")?),
            _ => ctx.unknown(m),
        }
    }
    match kind {
        None => Ok(None),
        Some(w) if w.text == "PASS" => Ok(Some(VrrpAuth::Pass(pass.unwrap_or_default()))),
        Some(w) if w.text == "AH" => Ok(Some(VrrpAuth::Ah)),
        Some(w) => Err(ConfigError::at(
            &w.pos,
            format!("invalid auth_type '{}' (expected PASS or AH)", w.text),
        )),
    }
}

/// The lines of `virtual_ipaddress`: `ADDR[/PREFIX] [dev IF] [label L] [scope S] [brd B]`.
fn addresses(ctx: &mut Ctx, n: &Node) -> Result<Vec<VirtualAddress>, ConfigError> {
    let mut out = Vec::new();
    for m in ctx.block(n)? {
        out.push(address(ctx, m)?);
    }
    Ok(out)
}

fn address(ctx: &mut Ctx, m: &Node) -> Result<VirtualAddress, ConfigError> {
    let (text, prefix) = match m.key.text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (m.key.text.as_str(), None),
    };
    let addr_word = Word {
        text: text.to_owned(),
        pos: m.key.pos.clone(),
    };
    let addr = value::ip(&addr_word)?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix_len = match prefix {
        None => max,
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= max => n,
            _ => {
                return Err(ConfigError::at(
                    &m.key.pos,
                    format!("invalid prefix length '{p}' (expected 0..{max})"),
                ));
            }
        },
    };
    let mut v = VirtualAddress {
        addr,
        prefix_len,
        dev: None,
        label: None,
        scope: None,
    };
    let mut a = Args::new(m);
    while let Some(w) = a.optional() {
        // The value after an option word, or an error at that word.
        let mut value = |what: &str| {
            a.optional()
                .ok_or_else(|| ConfigError::at(&w.pos, format!("'{}' needs {what}", w.text)))
        };
        match w.text.as_str() {
            "dev" => v.dev = Some(value("an interface")?.text.clone()),
            "label" => v.label = Some(value("a label")?.text.clone()),
            "scope" => {
                let s = value("a scope")?;
                const SCOPES: &[&str] = &["global", "site", "link", "host", "nowhere"];
                if !SCOPES.contains(&s.text.as_str()) && s.text.parse::<u8>().is_err() {
                    return Err(ConfigError::at(
                        &s.pos,
                        format!(
                            "invalid scope '{}' (expected global, site, link, host, nowhere or 0..255)",
                            s.text
                        ),
                    ));
                }
                v.scope = Some(s.text.clone());
            }
            "brd" | "broadcast" | "preferred_lft" => {
                let what = value("a value")?;
                ctx.warnings.push(super::diag::Diagnostic::new(
                    &w.pos,
                    format!(
                        "'{} {}' is not supported by rvs; ignored",
                        w.text, what.text
                    ),
                ));
            }
            "no_track" | "home" | "-nodad" | "nodad" | "noprefixroute" | "autojoin" => {
                ctx.warnings.push(super::diag::Diagnostic::new(
                    &w.pos,
                    format!("'{}' is not supported by rvs; ignored", w.text),
                ));
            }
            _ => {
                return Err(ConfigError::at(
                    &w.pos,
                    format!(
                        "unexpected '{}' in a virtual address (expected dev, label or scope)",
                        w.text
                    ),
                ));
            }
        }
    }
    a.finish(&mut ctx.warnings);
    Ok(v)
}

/// `track_script`/`track_interface` entries: `NAME [weight W [reverse]]`.
fn tracked(ctx: &mut Ctx, n: &Node) -> Result<Vec<Tracked>, ConfigError> {
    let mut out = Vec::new();
    for m in ctx.block(n)? {
        let mut t = Tracked {
            name: m.key.text.clone(),
            weight: None,
            reverse: false,
        };
        let mut a = Args::new(m);
        while let Some(w) = a.optional() {
            match w.text.as_str() {
                "weight" => {
                    t.weight = Some(value::int(a.required("a weight")?, "weight", -253, 253)?)
                }
                "reverse" if t.weight.is_some() => t.reverse = true,
                _ => {
                    return Err(ConfigError::at(
                        &w.pos,
                        format!("unexpected '{}' (expected weight W [reverse])", w.text),
                    ));
                }
            }
        }
        a.finish(&mut ctx.warnings);
        out.push(t);
    }
    Ok(out)
}

/// The lines of a list block, each as written.
fn lines(ctx: &Ctx, n: &Node) -> Result<Vec<String>, ConfigError> {
    Ok(ctx
        .block(n)?
        .iter()
        .map(|m| {
            std::iter::once(m.key.text.as_str())
                .chain(m.args.iter().map(|w| w.text.as_str()))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect())
}

pub(super) fn parse_sync_group(ctx: &mut Ctx, node: &Node) -> Result<VrrpSyncGroup, ConfigError> {
    let mut g = VrrpSyncGroup {
        pos: Some(node.key.pos.clone()),
        name: block_name(ctx, node)?,
        ..VrrpSyncGroup::default()
    };
    for n in ctx.block(node)? {
        match n.key.text.as_str() {
            "group" => g.group = lines(ctx, n)?,
            "notify_master" => g.notify_master = Some(script(ctx, n)?),
            "notify_backup" => g.notify_backup = Some(script(ctx, n)?),
            "notify_fault" => g.notify_fault = Some(script(ctx, n)?),
            "notify_stop" => g.notify_stop = Some(script(ctx, n)?),
            "notify" => g.notify = Some(script(ctx, n)?),
            k if k.starts_with("notify")
                || k.starts_with("track_")
                || k == "smtp_alert"
                || k == "global_tracking"
                || k == "sync_group_tracking_weight" =>
            {
                ctx.unsupported(n)
            }
            _ => ctx.unknown(n),
        }
    }
    Ok(g)
}

pub(super) fn parse_script(ctx: &mut Ctx, node: &Node) -> Result<VrrpScript, ConfigError> {
    let mut s = VrrpScript {
        pos: Some(node.key.pos.clone()),
        name: block_name(ctx, node)?,
        ..VrrpScript::default()
    };
    for n in ctx.block(node)? {
        let mut a = Args::new(n);
        match n.key.text.as_str() {
            "script" => s.script = Some(script(ctx, n)?),
            "interval" => {
                s.interval = Some(value::timer(a.required("a time in seconds")?, "interval")?)
            }
            "timeout" => {
                s.timeout = Some(value::timer(a.required("a time in seconds")?, "timeout")?)
            }
            "weight" => {
                s.weight = Some(value::int(a.required("a weight")?, "weight", -253, 253)?);
                if let Some(w) = a.optional() {
                    if w.text != "reverse" {
                        return Err(ConfigError::at(
                            &w.pos,
                            format!("unexpected '{}' (expected reverse)", w.text),
                        ));
                    }
                    s.weight_reverse = true;
                }
            }
            "rise" => s.rise = Some(uint(ctx, n, "rise", 1, u32::MAX)?),
            "fall" => s.fall = Some(uint(ctx, n, "fall", 1, u32::MAX)?),
            "init_fail" => s.init_fail = value::boolean(n, &mut ctx.warnings)?,
            "user" => ctx.unsupported(n),
            _ => ctx.unknown(n),
        }
    }
    Ok(s)
}
