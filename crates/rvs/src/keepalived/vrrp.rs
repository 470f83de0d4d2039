//! `vrrp_instance`, `vrrp_sync_group` and `vrrp_script`: read into the model so a keepalived.conf
//! with them loads, checked where a value is easy to get wrong, and reported as not active: VRRP
//! is a later issue.

use super::{
    config::{VrrpInstance, VrrpScript, VrrpSyncGroup},
    diag::ConfigError,
    global::{block_name, single},
    parse::Ctx,
    tree::Node,
    value::{self, Args},
    virtual_server::{script, uint},
};

/// vrrp_instance keywords of keepalived.conf(5) that the model does not keep.
const OTHER_INSTANCE_KEYWORDS: &[&str] = &[
    "use_vmac",
    "vmac_xmit_base",
    "native_ipv6",
    "dont_track_primary",
    "track_file",
    "track_process",
    "track_bfd",
    "mcast_src_ip",
    "unicast_ttl",
    "version",
    "virtual_ipaddress_excluded",
    "virtual_routes",
    "virtual_rules",
    "accept",
    "no_accept",
    "skip_check_adv_addr",
    "strict_mode",
    "preempt_delay",
    "preempt",
    "garp_master_delay",
    "garp_master_repeat",
    "garp_lower_prio_delay",
    "garp_lower_prio_repeat",
    "garp_master_refresh",
    "garp_master_refresh_repeat",
    "garp_interval",
    "gna_interval",
    "lower_prio_no_advert",
    "higher_prio_send_advert",
    "kernel_rx_buf_size",
    "debug",
    "notify_stop",
    "notify_deleted",
    "notify",
    "notify_master_rx_lower_pri",
    "smtp_alert",
    "notify_priority_changes",
    "mcast_dst_ip",
    "check_unicast_src",
    "unicast_fault_no_peer",
    "old_unicast_checksum",
    "vrrp_garp_lower_prio_no_advert",
    "ifp_name",
    "linkbeat_use_polling",
    "down_timer_adverts",
    "no_accept",
    "use_ipvlan",
    "track_src_ip",
    "evip",
    "ipsets",
    "nftables",
    "strict_mode",
    "auth_hmac",
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
                if w.text != "MASTER" && w.text != "BACKUP" {
                    return Err(ConfigError::at(
                        &w.pos,
                        format!("invalid state '{}' (expected MASTER or BACKUP)", w.text),
                    ));
                }
                v.state = Some(w.text.clone());
                a.finish(&mut ctx.warnings);
            }
            "interface" => v.interface = Some(single(ctx, n, "an interface")?),
            "virtual_router_id" => {
                v.virtual_router_id = Some(uint(ctx, n, "virtual_router_id", 1, 255)? as u8)
            }
            "priority" => v.priority = Some(uint(ctx, n, "priority", 1, 255)? as u8),
            "advert_int" => {
                let mut a = Args::new(n);
                v.advert_int = Some(value::timer(
                    a.required("a time in seconds")?,
                    "advert_int",
                )?);
                a.finish(&mut ctx.warnings);
            }
            "nopreempt" => v.nopreempt = value::boolean(n, &mut ctx.warnings)?,
            "authentication" => {
                for m in ctx.block(n)? {
                    match m.key.text.as_str() {
                        "auth_type" => v.auth_type = Some(single(ctx, m, "PASS or AH")?),
                        "auth_pass" => v.auth_pass = Some(single(ctx, m, "a password")?),
                        _ => ctx.unknown(m),
                    }
                }
            }
            "virtual_ipaddress" => v.virtual_ipaddress = lines(ctx, n)?,
            "unicast_src_ip" => {
                let mut a = Args::new(n);
                v.unicast_src_ip = Some(value::ip(a.required("an address")?)?);
                a.finish(&mut ctx.warnings);
            }
            "unicast_peer" => {
                for m in ctx.block(n)? {
                    v.unicast_peer.push(value::ip(&m.key)?);
                }
            }
            "track_script" => v.track_script = lines(ctx, n)?,
            "track_interface" => v.track_interface = lines(ctx, n)?,
            "notify_master" => v.notify_master = Some(script(ctx, n)?),
            "notify_backup" => v.notify_backup = Some(script(ctx, n)?),
            "notify_fault" => v.notify_fault = Some(script(ctx, n)?),
            k if OTHER_INSTANCE_KEYWORDS.contains(&k) => {}
            _ => ctx.unknown(n),
        }
    }
    ctx.warn(
        node,
        format!(
            "vrrp_instance '{}' is parsed but not active: VRRP is not implemented yet",
            v.name
        ),
    );
    Ok(v)
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
        group: Vec::new(),
    };
    for n in ctx.block(node)? {
        match n.key.text.as_str() {
            "group" => g.group = lines(ctx, n)?,
            k if k.starts_with("notify")
                || k.starts_with("track_")
                || k == "smtp_alert"
                || k == "global_tracking" => {}
            _ => ctx.unknown(n),
        }
    }
    ctx.warn(
        node,
        format!(
            "vrrp_sync_group '{}' is parsed but not active: VRRP is not implemented yet",
            g.name
        ),
    );
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
                // `reverse` may follow.
                a.optional();
            }
            "rise" => s.rise = Some(uint(ctx, n, "rise", 1, u32::MAX)?),
            "fall" => s.fall = Some(uint(ctx, n, "fall", 1, u32::MAX)?),
            "user" | "init_fail" => {}
            _ => ctx.unknown(n),
        }
    }
    ctx.warn(
        node,
        format!(
            "vrrp_script '{}' is parsed but not active: VRRP is not implemented yet",
            s.name
        ),
    );
    Ok(s)
}
