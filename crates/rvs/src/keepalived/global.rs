//! `global_defs`: identity and mail settings, LVS timeouts and the sync daemon. The many VRRP,
//! SNMP, D-Bus and process settings keepalived has there are read past with a warning.

use super::{
    config::{GlobalDefs, LvsSyncDaemon, SmtpServer, defaults},
    diag::ConfigError,
    parse::Ctx,
    tree::Node,
    value::{self, Args},
};

/// Prefixes of global_defs keywords keepalived knows that concern what rvs does not do (yet).
const UNSUPPORTED_PREFIXES: &[&str] = &[
    "vrrp_",
    "bfd_",
    "snmp_",
    "enable_snmp",
    "enable_traps",
    "enable_dbus",
    "dbus_",
    "notify_fifo",
    "lvs_notify_fifo",
    "script_",
    "enable_script_security",
    "checker_",
    "process_",
    "use_symlink_paths",
    "startup_script",
    "shutdown_script",
    "dynamic_interfaces",
    "default_interface",
    "max_auto_priority",
    "min_auto_priority_delay",
    "no_email_faults",
    "log_unknown_vrrps",
    "nftables",
    "iptables",
    "ipset",
    "lvs_flush_on_stop",
    "smtp_alert_vrrp",
    "tmp_config_directory",
    "config_save_dir",
    "random_seed",
    "rs_init_notifies",
    "no_checker_emails",
    "umask",
    "fifo_write_vrrp_states_on_reload",
    "linkbeat_",
    "network_timeout",
    "mem_check",
    "instance",
    "net_namespace",
    "set_supplementary_groups",
    "reload_",
    "include_check",
    "data_use_instance",
    "json_version",
    "use_pid_dir",
];

pub(super) fn parse(ctx: &mut Ctx, node: &Node, g: &mut GlobalDefs) -> Result<(), ConfigError> {
    Args::new(node).finish_header(&mut ctx.warnings);
    for n in ctx.block(node)? {
        match n.key.text.as_str() {
            "router_id" => g.router_id = Some(single(ctx, n, "a name")?),
            "lvs_id" => ctx.removed(n),
            "notification_email" => {
                let mut list: Vec<String> = n.args.iter().map(|w| w.text.clone()).collect();
                for line in ctx.block(n)? {
                    list.push(line.key.text.clone());
                    list.extend(line.args.iter().map(|w| w.text.clone()));
                }
                g.notification_email.extend(list);
            }
            "notification_email_from" => {
                g.notification_email_from = Some(single(ctx, n, "an address")?)
            }
            "smtp_server" => {
                let mut a = Args::new(n);
                let host = a.required("an address or host name")?.text.clone();
                let port = a
                    .optional()
                    .map(value::port)
                    .transpose()?
                    .unwrap_or(defaults::SMTP_PORT);
                a.finish(&mut ctx.warnings);
                g.smtp_server = Some(SmtpServer { host, port });
            }
            "smtp_helo_name" => g.smtp_helo_name = Some(single(ctx, n, "a name")?),
            "smtp_connect_timeout" => {
                let mut a = Args::new(n);
                g.smtp_connect_timeout =
                    value::timer(a.required("a time in seconds")?, "smtp_connect_timeout")?;
                a.finish(&mut ctx.warnings);
            }
            "smtp_alert" => g.smtp_alert = Some(value::boolean(n, &mut ctx.warnings)?),
            "smtp_alert_checker" => {
                g.smtp_alert_checker = Some(value::boolean(n, &mut ctx.warnings)?)
            }
            "lvs_timeouts" => parse_timeouts(n, g)?,
            "lvs_sync_daemon" => g.lvs_sync_daemon = Some(parse_sync_daemon(ctx, n)?),
            "lvs_flush" => g.lvs_flush = value::boolean(n, &mut ctx.warnings)?,
            "vrrp_version" => {
                let mut a = Args::new(n);
                g.vrrp_version = Some(value::int(a.required("2 or 3")?, "vrrp_version", 2u8, 3)?);
                a.finish(&mut ctx.warnings);
            }
            k if UNSUPPORTED_PREFIXES.iter().any(|p| k.starts_with(p)) => ctx.unsupported(n),
            _ => ctx.unknown(n),
        }
    }
    Ok(())
}

/// A keyword with one word of value.
pub(super) fn single(ctx: &mut Ctx, node: &Node, what: &str) -> Result<String, ConfigError> {
    let mut a = Args::new(node);
    let v = a.required(what)?.text.clone();
    a.finish(&mut ctx.warnings);
    Ok(v)
}

/// The one word (a name) after a keyword that opens a block.
pub(super) fn block_name(ctx: &mut Ctx, node: &Node) -> Result<String, ConfigError> {
    let mut a = Args::new(node);
    let v = a.required("a name")?.text.clone();
    a.finish_header(&mut ctx.warnings);
    Ok(v)
}

/// `lvs_timeouts [tcp S] [tcpfin S] [udp S]`.
fn parse_timeouts(n: &Node, g: &mut GlobalDefs) -> Result<(), ConfigError> {
    let mut a = Args::new(n);
    let first = a.required("tcp, tcpfin or udp with seconds")?;
    let mut next = Some(first);
    while let Some(w) = next {
        let slot = match w.text.as_str() {
            "tcp" => &mut g.lvs_timeouts.tcp,
            "tcpfin" => &mut g.lvs_timeouts.tcp_fin,
            "udp" => &mut g.lvs_timeouts.udp,
            _ => {
                return Err(ConfigError::at(
                    &w.pos,
                    format!(
                        "unknown lvs_timeouts item '{}' (expected tcp, tcpfin or udp)",
                        w.text
                    ),
                ));
            }
        };
        let what = format!("seconds after '{}'", w.text);
        *slot = Some(value::int(a.required(&what)?, "timeout", 1u32, 86400 * 31)?);
        next = a.optional();
    }
    Ok(())
}

/// `lvs_sync_daemon IF [[inst] VI] [id N] [maxlen N] [port N] [ttl N] [group IP]`.
fn parse_sync_daemon(ctx: &mut Ctx, n: &Node) -> Result<LvsSyncDaemon, ConfigError> {
    let mut a = Args::new(n);
    let mut d = LvsSyncDaemon {
        interface: a.required("an interface")?.text.clone(),
        instance: None,
        sync_id: None,
        maxlen: None,
        port: None,
        ttl: None,
        group: None,
    };
    while let Some(w) = a.optional() {
        match w.text.as_str() {
            "inst" => d.instance = Some(a.required("a vrrp instance name")?.text.clone()),
            "id" => d.sync_id = Some(value::int(a.required("a sync id")?, "sync id", 0u8, 255)?),
            "maxlen" => {
                d.maxlen = Some(value::int(a.required("a length")?, "maxlen", 1u16, 65507)?)
            }
            "port" => d.port = Some(value::int(a.required("a port")?, "port", 1u16, 65535)?),
            "ttl" => d.ttl = Some(value::int(a.required("a ttl")?, "ttl", 1u8, 255)?),
            "group" => d.group = Some(value::ip(a.required("a multicast address")?)?),
            // The instance name may stand without `inst` (the old form).
            _ if d.instance.is_none() => d.instance = Some(w.text.clone()),
            _ => {
                return Err(ConfigError::at(
                    &w.pos,
                    format!("unexpected '{}' in lvs_sync_daemon", w.text),
                ));
            }
        }
    }
    a.finish(&mut ctx.warnings);
    Ok(d)
}
