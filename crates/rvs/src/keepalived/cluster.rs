//! `rvs_cluster { ... }`, an rvs extension at the top level of keepalived.conf: load exchange
//! and tunnel balancing between clusters in different data centres (the Chinese LVS paper,
//! §4.3). keepalived itself would warn about the unknown keyword and go on.
//!
//! ```text
//! rvs_cluster {
//!     name idc1
//!     listen 198.18.1.1:7240          # UDP, where load reports arrive (and leave from)
//!     key_file /etc/rvs/cluster.key   # shared secret (16 bytes or more), HMAC-SHA256
//!     period 120                      # seconds between reports (default 120)
//!     capacity_per_weight 100         # connections per unit of weight at load 1 (default 100)
//!     start_above 1.1                 # local load to start forwarding (default 1.1)
//!     stop_at 1.0                     # local load at which forwarding stops (default 1.0)
//!     remote_below 0.7                # a peer's load must be below this (default 0.7)
//!     peer idc2 {
//!         address 198.18.2.1:7240     # where its reports come from and go to
//!         director 198.18.2.1         # the tunnel endpoint: the remote director
//!         weight 1                    # its weight in the local services while forwarding
//!         services 198.19.4.1:80      # optional: the services that may be forwarded
//!     }
//! }
//! ```
//!
//! A cluster's **load** is the active connections of the real servers of its configured
//! virtual services over their capacity, Σ weight × `capacity_per_weight` (weights above 0;
//! the remote directors standing in those services are not counted). Loads are kept in
//! thousandths.

use std::{net::SocketAddr, path::PathBuf};

use super::{
    config::{ClusterBlock, ClusterPeer, KeepalivedConfig},
    diag::ConfigError,
    global::{block_name, single},
    parse::Ctx,
    tree::{Node, Word},
    value,
};
use crate::{daemon::cluster::show_load, model::ServiceId};

/// The largest load a threshold may have (1000.0).
const MAX_LOAD: u32 = 1_000_000;

pub(super) fn parse(ctx: &mut Ctx, node: &Node) -> Result<ClusterBlock, ConfigError> {
    value::Args::new(node).finish_header(&mut ctx.warnings);
    let mut name = None;
    let mut listen = None;
    let mut key_file = None;
    let mut c = ClusterBlock {
        pos: node.key.pos.clone(),
        name: String::new(),
        listen: SocketAddr::from(([0, 0, 0, 0], 0)),
        key_file: PathBuf::new(),
        period: ClusterBlock::DEFAULT_PERIOD,
        capacity_per_weight: ClusterBlock::DEFAULT_CAPACITY_PER_WEIGHT,
        start_above: ClusterBlock::DEFAULT_START_ABOVE,
        stop_at: ClusterBlock::DEFAULT_STOP_AT,
        remote_below: ClusterBlock::DEFAULT_REMOTE_BELOW,
        peers: Vec::new(),
    };
    for n in ctx.block(node)? {
        match n.key.text.as_str() {
            "name" => name = Some(cluster_name(ctx, n)?),
            "listen" => {
                let mut a = value::Args::new(n);
                let w = a.required("ADDR:PORT")?;
                let addr = socket_addr(w)?;
                if addr.ip().is_unspecified() || addr.port() == 0 {
                    return Err(ConfigError::at(
                        &w.pos,
                        "listen needs an address of this director and a port (reports are sent from it)",
                    ));
                }
                listen = Some(addr);
                a.finish(&mut ctx.warnings);
            }
            "key_file" => key_file = Some(PathBuf::from(single(ctx, n, "a file")?)),
            "period" => {
                let mut a = value::Args::new(n);
                let w = a.required("seconds")?;
                c.period = value::timer(w, "period")?;
                if c.period.as_millis() < 100 {
                    return Err(ConfigError::at(&w.pos, "period must be 0.1 s or more"));
                }
                a.finish(&mut ctx.warnings);
            }
            "capacity_per_weight" => {
                let mut a = value::Args::new(n);
                c.capacity_per_weight = value::int(
                    a.required("connections")?,
                    "capacity_per_weight",
                    1,
                    u32::MAX / 65_536,
                )?;
                a.finish(&mut ctx.warnings);
            }
            "start_above" => c.start_above = load_arg(ctx, n)?,
            "stop_at" => c.stop_at = load_arg(ctx, n)?,
            "remote_below" => c.remote_below = load_arg(ctx, n)?,
            "peer" => c.peers.push(parse_peer(ctx, n)?),
            _ => ctx.unknown(n),
        }
    }
    let missing =
        |what: &str| ConfigError::at(&node.key.pos, format!("rvs_cluster needs '{what}'"));
    c.name = name.ok_or_else(|| missing("name NAME"))?;
    c.listen = listen.ok_or_else(|| missing("listen ADDR:PORT"))?;
    c.key_file = key_file.ok_or_else(|| missing("key_file FILE"))?;
    if c.stop_at >= c.start_above {
        return Err(ConfigError::at(
            &node.key.pos,
            format!(
                "rvs_cluster: stop_at ({}) must be below start_above ({})",
                show_load(c.stop_at),
                show_load(c.start_above)
            ),
        ));
    }
    if c.peers.is_empty() {
        return Err(missing("peer NAME { ... }"));
    }
    for (i, p) in c.peers.iter().enumerate() {
        if p.name == c.name {
            return Err(ConfigError::at(
                &p.pos,
                format!("peer '{}' has this cluster's own name", p.name),
            ));
        }
        if let Some(q) = c.peers[..i]
            .iter()
            .find(|q| q.name == p.name || q.address.ip() == p.address.ip())
        {
            return Err(ConfigError::at(
                &p.pos,
                format!(
                    "peer '{}' has the name or address of peer '{}' (line {})",
                    p.name, q.name, q.pos.line
                ),
            ));
        }
        if p.address.ip() == c.listen.ip() {
            return Err(ConfigError::at(
                &p.pos,
                format!("peer '{}' has this cluster's own address", p.name),
            ));
        }
    }
    Ok(c)
}

fn parse_peer(ctx: &mut Ctx, node: &Node) -> Result<ClusterPeer, ConfigError> {
    let name = block_name(ctx, node)?;
    check_name(&node.args[0])?;
    let mut address = None;
    let mut director = None;
    let mut weight = 1;
    let mut services = Vec::new();
    for n in ctx.block(node)? {
        match n.key.text.as_str() {
            "address" => {
                let mut a = value::Args::new(n);
                let w = a.required("ADDR:PORT")?;
                let addr = socket_addr(w)?;
                if addr.ip().is_unspecified() || addr.port() == 0 {
                    return Err(ConfigError::at(
                        &w.pos,
                        "address needs an address and a port",
                    ));
                }
                address = Some(addr);
                a.finish(&mut ctx.warnings);
            }
            "director" => {
                let mut a = value::Args::new(n);
                let w = a.required("an address")?;
                let ip = value::ip(w)?;
                if ip.is_unspecified() {
                    return Err(ConfigError::at(&w.pos, "director needs an address"));
                }
                director = Some(ip);
                a.finish(&mut ctx.warnings);
            }
            "weight" => {
                let mut a = value::Args::new(n);
                weight = value::int(a.required("a weight")?, "weight", 1, 65_535)?;
                a.finish(&mut ctx.warnings);
            }
            "services" => {
                let mut a = value::Args::new(n);
                services.push(socket_addr(a.required("ADDR:PORT ...")?)?);
                while let Some(w) = a.optional() {
                    services.push(socket_addr(w)?);
                }
                a.finish(&mut ctx.warnings);
            }
            _ => ctx.unknown(n),
        }
    }
    let missing =
        |what: &str| ConfigError::at(&node.key.pos, format!("peer '{name}' needs '{what}'"));
    let address = address.ok_or_else(|| missing("address ADDR:PORT"))?;
    Ok(ClusterPeer {
        pos: node.key.pos.clone(),
        director: director.unwrap_or(address.ip()),
        name,
        address,
        weight,
        services,
    })
}

/// Checks that need the whole file: the services a peer names are configured, and a peer's
/// director is none of their real servers (the cluster task owns that destination).
pub(super) fn validate(cfg: &KeepalivedConfig) -> Result<(), ConfigError> {
    let Some(c) = &cfg.cluster else {
        return Ok(());
    };
    let all: Vec<ServiceId> = cfg
        .virtual_servers
        .iter()
        .flat_map(|vs| super::expand(cfg, vs))
        .collect();
    for p in &c.peers {
        for s in &p.services {
            if !all.iter().any(|id| matches(id, s)) {
                return Err(ConfigError::at(
                    &p.pos,
                    format!(
                        "peer '{}': services names {s}, which no virtual_server configures",
                        p.name
                    ),
                ));
            }
        }
        for vs in &cfg.virtual_servers {
            let forwarded = super::expand(cfg, vs)
                .iter()
                .any(|id| p.services.is_empty() || p.services.iter().any(|s| matches(id, s)));
            let clash = vs
                .real_servers
                .iter()
                .map(|rs| (rs.addr, rs.pos.line))
                .chain(vs.sorry_server.iter().map(|s| (s.addr, vs.pos.line)))
                .find(|(a, _)| *a == p.director);
            if let (true, Some((_, line))) = (forwarded, clash) {
                return Err(ConfigError::at(
                    &p.pos,
                    format!(
                        "peer '{}': its director {} is also a real server of a forwarded service (line {line})",
                        p.name, p.director
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The services of `cfg` a peer may take new connections of: those it names, or all.
pub fn forwarded_services(cfg: &KeepalivedConfig, peer: &ClusterPeer) -> Vec<ServiceId> {
    cfg.virtual_servers
        .iter()
        .flat_map(|vs| super::expand(cfg, vs))
        .filter(|id| peer.services.is_empty() || peer.services.iter().any(|s| matches(id, s)))
        .collect()
}

fn matches(id: &ServiceId, s: &SocketAddr) -> bool {
    matches!(id, ServiceId::Inet { addr, port, .. } if *addr == s.ip() && *port == s.port())
}

fn socket_addr(w: &Word) -> Result<SocketAddr, ConfigError> {
    w.text.parse().map_err(|_| {
        ConfigError::at(
            &w.pos,
            format!(
                "invalid address '{}' (expected ADDR:PORT, [IPv6]:PORT)",
                w.text
            ),
        )
    })
}

fn cluster_name(ctx: &mut Ctx, n: &Node) -> Result<String, ConfigError> {
    let mut a = value::Args::new(n);
    let w = a.required("a name")?;
    check_name(w)?;
    a.finish(&mut ctx.warnings);
    Ok(w.text.clone())
}

/// Names travel in reports: 1 to 64 bytes of letters, digits, `-`, `_` and `.`.
fn check_name(w: &Word) -> Result<(), ConfigError> {
    let ok = (1..=crate::daemon::cluster::wire::MAX_NAME).contains(&w.text.len())
        && w.text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::at(
            &w.pos,
            format!(
                "invalid cluster name '{}' (expected 1 to 64 letters, digits, '-', '_' or '.')",
                w.text
            ),
        ))
    }
}

fn load_arg(ctx: &mut Ctx, n: &Node) -> Result<u32, ConfigError> {
    let mut a = value::Args::new(n);
    let w = a.required("a load, e.g. 1.1")?;
    let v = load(w)?;
    a.finish(&mut ctx.warnings);
    Ok(v)
}

/// A load as a decimal with up to 3 places (`1.1`, `0.75`, `2`), in thousandths.
fn load(w: &Word) -> Result<u32, ConfigError> {
    let bad = || {
        ConfigError::at(
            &w.pos,
            format!(
                "invalid load '{}' (expected a number 0..1000 with up to 3 decimals, e.g. 1.1)",
                w.text
            ),
        )
    };
    let (whole, frac) = w.text.split_once('.').unwrap_or((&w.text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || whole.len() > 4 || !digits(whole) || !digits(frac) || frac.len() > 3 {
        return Err(bad());
    }
    let whole: u32 = whole.parse().map_err(|_| bad())?;
    let frac: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<3}").parse().map_err(|_| bad())?
    };
    let v = whole * 1000 + frac;
    if v > MAX_LOAD {
        return Err(bad());
    }
    Ok(v)
}
