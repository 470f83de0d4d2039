//! From the generic tree to the typed configuration: the top level, and what every level shares
//! (blocks required or refused, unknown and unsupported keywords).

use super::{
    config::KeepalivedConfig,
    diag::{ConfigError, Diagnostic},
    global,
    tree::Node,
    virtual_server, vrrp,
};

/// Collects warnings while the typed configuration is built.
pub(super) struct Ctx {
    pub warnings: Vec<Diagnostic>,
}

impl Ctx {
    /// keepalived logs an unknown keyword and skips it (with its block, if any).
    pub fn unknown(&mut self, node: &Node) {
        self.warnings.push(Diagnostic::new(
            &node.key.pos,
            format!("unknown keyword '{}'", node.key.text),
        ));
    }

    /// A keepalived keyword rvs reads past.
    pub fn unsupported(&mut self, node: &Node) {
        self.warnings.push(Diagnostic::new(
            &node.key.pos,
            format!("'{}' is not supported by rvs; ignored", node.key.text),
        ));
    }

    /// A keyword keepalived itself no longer has, which old configurations still carry.
    pub fn removed(&mut self, node: &Node) {
        self.warnings.push(Diagnostic::new(
            &node.key.pos,
            format!(
                "'{}' is no longer a keepalived keyword (keepalived dropped it); ignored",
                node.key.text
            ),
        ));
    }

    pub fn warn(&mut self, node: &Node, message: impl Into<String>) {
        self.warnings.push(Diagnostic::new(&node.key.pos, message));
    }

    /// The statements of a block the keyword needs.
    pub fn block<'a>(&self, node: &'a Node) -> Result<&'a [Node], ConfigError> {
        match &node.block {
            Some(b) => Ok(&b.nodes),
            None => Err(ConfigError::at(
                &node.key.pos,
                format!("'{}' needs a {{ ... }} block", node.key.text),
            )),
        }
    }
}

/// Top-level keywords of keepalived that concern neither LVS nor VRRP.
const OTHER_TOP_LEVEL: &[&str] = &[
    "SSL",
    "static_ipaddress",
    "static_routes",
    "static_rules",
    "linkbeat_interfaces",
    "static_track_group",
    "track_file",
    "vrrp_track_file",
    "track_process",
    "vrrp_track_process",
    "bfd_instance",
    "garp_group",
    "net_namespace",
    "net_namespace_ipvs",
    "namespace_with_ipsets",
    "instance",
    "use_pid_dir",
    "linkbeat_use_polling",
    "child_wait_time",
    "vrrp_garp_interval",
];

pub(super) fn parse(
    nodes: &[Node],
    warnings: Vec<Diagnostic>,
) -> Result<KeepalivedConfig, ConfigError> {
    let mut ctx = Ctx { warnings };
    let mut cfg = KeepalivedConfig::default();
    for node in nodes {
        match node.key.text.as_str() {
            "global_defs" => global::parse(&mut ctx, node, &mut cfg.global)?,
            "virtual_server" => {
                let vs = virtual_server::parse(&mut ctx, node)?;
                // keepalived drops a virtual server with no real servers (and no sorry server).
                if vs.real_servers.is_empty() && vs.sorry_server.is_none() {
                    ctx.warn(
                        node,
                        "virtual server has no real servers - ignoring (as keepalived does)",
                    );
                } else {
                    cfg.virtual_servers.push(vs);
                }
            }
            "virtual_server_group" => cfg
                .groups
                .push(virtual_server::parse_group(&mut ctx, node)?),
            "vrrp_instance" => cfg
                .vrrp_instances
                .push(vrrp::parse_instance(&mut ctx, node)?),
            "vrrp_sync_group" => cfg
                .vrrp_sync_groups
                .push(vrrp::parse_sync_group(&mut ctx, node)?),
            "vrrp_script" => cfg.vrrp_scripts.push(vrrp::parse_script(&mut ctx, node)?),
            "rvs_web" => cfg.web = Some(super::web::parse(&mut ctx, node)?),
            "rvs_bgp" => {
                if cfg.bgp.is_some() {
                    return Err(ConfigError::at(&node.key.pos, "rvs_bgp is given twice"));
                }
                cfg.bgp = Some(super::bgp::parse(&mut ctx, node)?)
            }
            "rvs_cluster" if cfg.cluster.is_some() => {
                return Err(ConfigError::at(&node.key.pos, "rvs_cluster is given twice"));
            }
            "rvs_cluster" => cfg.cluster = Some(super::cluster::parse(&mut ctx, node)?),
            "rvs_l7_server" => cfg.l7_servers.push(super::l7::parse(&mut ctx, node)?),
            k if OTHER_TOP_LEVEL.contains(&k) => ctx.unsupported(node),
            _ => ctx.unknown(node),
        }
    }
    virtual_server::validate(&cfg)?;
    super::bgp::check(&cfg)?;
    super::cluster::validate(&cfg)?;
    super::l7::validate(&cfg)?;
    cfg.warnings = ctx.warnings;
    Ok(cfg)
}
