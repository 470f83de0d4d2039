//! `rvs_bgp { ... }`, an rvs extension at the top level of keepalived.conf: the BGP speaker that
//! announces the VIPs' prefixes while the services behind them are up (daemon::bgp). keepalived
//! itself would warn about the unknown keyword and go on.
//!
//! ```text
//! rvs_bgp {
//!     router_id 198.18.1.1          # default: the first IPv4 local address of a neighbor
//!     local_as 65005                # 1..4294967295 (4-octet AS numbers)
//!     hold_time 90                  # default 90 (0, or 3..65535)
//!     connect_retry 120             # seconds between connection attempts (default 120)
//!     graceful_restart 120          # restart time announced (RFC 4724); absent: off
//!     listen 179                    # port passive neighbors connect to (default 179)
//!     neighbor 198.18.1.254 {
//!         remote_as 65001
//!         local_address 198.18.1.1  # source of the session; the default next hop
//!         passive                   # wait for the peer to connect
//!         port 179
//!         hold_time 9               # this neighbor's, instead of the block's
//!         md5_password "secret"     # TCP MD5 signature (RFC 2385)
//!         next_hop6 2001:db8::1     # next hop of IPv6 prefixes on an IPv4 session
//!     }
//!     prefix 198.19.4.0/24 {
//!         services 198.19.4.1:80 198.19.4.2   # default: every virtual server inside the prefix
//!         announce_when all         # all (default) or any of them up
//!         med 10
//!         community 65005:100 65005:200
//!         prepend 0                 # times the local AS is added in front
//!         next_hop 198.18.1.1       # default: the session's local address
//!         vrrp_instance VI_1        # while not MASTER, see 'backup'
//!         backup withdraw           # or 'med N' or 'prepend N' (default withdraw)
//!     }
//! }
//! ```

use std::{
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use super::{
    diag::{ConfigError, Pos},
    global::{block_name, single},
    parse::Ctx,
    tree::Node,
    value,
};

pub const DEFAULT_HOLD_TIME: u16 = 90;
pub const DEFAULT_CONNECT_RETRY: Duration = Duration::from_secs(120);
pub const BGP_PORT: u16 = 179;

#[derive(Clone, Debug, PartialEq)]
pub struct BgpBlock {
    pub router_id: Option<Ipv4Addr>,
    pub local_as: u32,
    pub hold_time: u16,
    pub connect_retry: Duration,
    /// The restart time announced with the graceful restart capability.
    pub graceful_restart: Option<u16>,
    pub listen_port: u16,
    pub neighbors: Vec<Neighbor>,
    pub prefixes: Vec<Prefix>,
    pub pos: Pos,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbor {
    pub address: IpAddr,
    pub remote_as: u32,
    pub port: u16,
    pub local_address: Option<IpAddr>,
    pub passive: bool,
    pub hold_time: Option<u16>,
    pub md5_password: Option<String>,
    pub next_hop6: Option<std::net::Ipv6Addr>,
    pub pos: Pos,
}

/// A prefix: an address and a length that leaves no host bits set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpPrefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl IpPrefix {
    pub fn parse(text: &str) -> Result<IpPrefix, String> {
        let (a, l) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("invalid prefix '{text}' (expected ADDR/LEN)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("invalid prefix length in '{text}' (0..{max})"))?,
            None => max,
        };
        let p = IpPrefix { addr, len };
        if p.network() != addr {
            return Err(format!(
                "prefix '{text}' has host bits set (the network is {}/{len})",
                p.network()
            ));
        }
        if !p.is_unicast() {
            return Err(format!(
                "prefix '{text}' is not unicast (it holds multicast or broadcast addresses)"
            ));
        }
        Ok(p)
    }

    /// Whether every address inside is unicast (what BGP's unicast NLRI may carry).
    pub fn is_unicast(&self) -> bool {
        match self.addr {
            IpAddr::V4(a) => {
                let last = Ipv4Addr::from(
                    u32::from(a) | u32::MAX.checked_shr(u32::from(self.len)).unwrap_or(0),
                );
                !a.is_multicast() && !last.is_multicast() && !last.is_broadcast()
            }
            IpAddr::V6(a) => {
                let last = std::net::Ipv6Addr::from(
                    u128::from(a) | u128::MAX.checked_shr(u32::from(self.len)).unwrap_or(0),
                );
                !a.is_multicast() && !last.is_multicast()
            }
        }
    }

    /// The address with the host bits cleared.
    pub fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                IpAddr::V6(std::net::Ipv6Addr::from(u128::from(a) & mask))
            }
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4()
            && IpPrefix {
                addr: ip,
                len: self.len,
            }
            .network()
                == self.addr
    }
}

impl std::fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Which virtual services a prefix stands for: an address (every port and protocol), or an
/// address and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceMatch {
    pub addr: IpAddr,
    pub port: Option<u16>,
}

impl ServiceMatch {
    pub fn matches(&self, id: &crate::model::ServiceId) -> bool {
        match id {
            crate::model::ServiceId::Inet { addr, port, .. } => {
                *addr == self.addr && self.port.is_none_or(|p| p == *port)
            }
            crate::model::ServiceId::Fwmark { .. } => false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AnnounceWhen {
    #[default]
    All,
    Any,
}

/// What a prefix tied to a VRRP instance does while the instance is not MASTER.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BackupPolicy {
    #[default]
    Withdraw,
    Med(u32),
    Prepend(u8),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prefix {
    pub prefix: IpPrefix,
    /// Empty: every virtual server whose address is inside the prefix.
    pub services: Vec<ServiceMatch>,
    pub when: AnnounceWhen,
    pub med: Option<u32>,
    /// Standard communities, `high << 16 | low`.
    pub communities: Vec<u32>,
    pub prepend: u8,
    pub next_hop: Option<IpAddr>,
    pub vrrp_instance: Option<String>,
    pub backup: BackupPolicy,
    pub pos: Pos,
}

fn as_number(w: &super::tree::Word, what: &str) -> Result<u32, ConfigError> {
    value::int::<u32>(w, what, 1, u32::MAX)
}

fn hold_time(w: &super::tree::Word) -> Result<u16, ConfigError> {
    let h = value::int::<u16>(w, "hold_time", 0, u16::MAX)?;
    if h == 1 || h == 2 {
        return Err(ConfigError::at(
            &w.pos,
            format!(
                "invalid hold_time '{}' (0, or 3..65535 seconds: RFC 4271)",
                w.text
            ),
        ));
    }
    Ok(h)
}

fn one_arg<'a>(
    ctx: &mut Ctx,
    n: &'a Node,
    what: &str,
) -> Result<&'a super::tree::Word, ConfigError> {
    let mut a = value::Args::new(n);
    let w = a.required(what)?;
    a.finish(&mut ctx.warnings);
    Ok(w)
}

pub(super) fn parse(ctx: &mut Ctx, node: &Node) -> Result<BgpBlock, ConfigError> {
    value::Args::new(node).finish_header(&mut ctx.warnings);
    let mut b = BgpBlock {
        router_id: None,
        local_as: 0,
        hold_time: DEFAULT_HOLD_TIME,
        connect_retry: DEFAULT_CONNECT_RETRY,
        graceful_restart: None,
        listen_port: BGP_PORT,
        neighbors: Vec::new(),
        prefixes: Vec::new(),
        pos: node.key.pos.clone(),
    };
    for n in ctx.block(node)? {
        match n.key.text.as_str() {
            "router_id" => {
                let w = one_arg(ctx, n, "an IPv4 address")?;
                b.router_id = Some(w.text.parse().map_err(|_| {
                    ConfigError::at(
                        &w.pos,
                        format!("invalid router_id '{}' (expected an IPv4 address)", w.text),
                    )
                })?);
            }
            "local_as" => b.local_as = as_number(one_arg(ctx, n, "an AS number")?, "local_as")?,
            "hold_time" => b.hold_time = hold_time(one_arg(ctx, n, "seconds")?)?,
            "connect_retry" => {
                b.connect_retry = value::timer(one_arg(ctx, n, "seconds")?, "connect_retry")?
                    .max(Duration::from_millis(100))
            }
            "graceful_restart" => {
                let w = one_arg(ctx, n, "the restart time in seconds")?;
                b.graceful_restart = Some(value::int::<u16>(w, "graceful_restart", 1, 4095)?);
            }
            "listen" => b.listen_port = value::port(one_arg(ctx, n, "a port")?)?,
            "neighbor" => b.neighbors.push(neighbor(ctx, n)?),
            "prefix" => b.prefixes.push(prefix(ctx, n)?),
            _ => ctx.unknown(n),
        }
    }
    if b.local_as == 0 {
        return Err(ConfigError::at(
            &node.key.pos,
            "rvs_bgp needs 'local_as AS'",
        ));
    }
    if b.neighbors.is_empty() {
        return Err(ConfigError::at(
            &node.key.pos,
            "rvs_bgp needs at least one 'neighbor ADDR { ... }'",
        ));
    }
    for (i, n) in b.neighbors.iter().enumerate() {
        if b.neighbors[..i].iter().any(|m| m.address == n.address) {
            return Err(ConfigError::at(
                &n.pos,
                format!("neighbor {} is given twice", n.address),
            ));
        }
    }
    if b.router_id.is_none() {
        let v4 = b.neighbors.iter().find_map(|n| match n.local_address {
            Some(IpAddr::V4(a)) => Some(a),
            _ => None,
        });
        b.router_id = v4;
        if v4.is_none() {
            return Err(ConfigError::at(
                &node.key.pos,
                "rvs_bgp needs 'router_id ADDR' (no neighbor has an IPv4 local_address to take it from)",
            ));
        }
    }
    Ok(b)
}

fn neighbor(ctx: &mut Ctx, node: &Node) -> Result<Neighbor, ConfigError> {
    let name = block_name(ctx, node)?;
    let address: IpAddr = name.parse().map_err(|_| {
        ConfigError::at(
            &node.args[0].pos,
            format!("invalid neighbor '{name}' (expected an IP address)"),
        )
    })?;
    let mut nb = Neighbor {
        address,
        remote_as: 0,
        port: BGP_PORT,
        local_address: None,
        passive: false,
        hold_time: None,
        md5_password: None,
        next_hop6: None,
        pos: node.key.pos.clone(),
    };
    for n in ctx.block(node)? {
        match n.key.text.as_str() {
            "remote_as" => nb.remote_as = as_number(one_arg(ctx, n, "an AS number")?, "remote_as")?,
            "local_address" => {
                let w = one_arg(ctx, n, "an IP address")?;
                let a = value::ip(w)?;
                if a.is_ipv4() != address.is_ipv4() {
                    return Err(ConfigError::at(
                        &w.pos,
                        "local_address must be of the neighbor's family",
                    ));
                }
                nb.local_address = Some(a);
            }
            "passive" => {
                value::Args::new(n).finish(&mut ctx.warnings);
                nb.passive = true;
            }
            "port" => nb.port = value::port(one_arg(ctx, n, "a port")?)?,
            "hold_time" => nb.hold_time = Some(hold_time(one_arg(ctx, n, "seconds")?)?),
            "md5_password" => {
                let p = single(ctx, n, "a password")?;
                if p.is_empty() || p.len() > 80 {
                    return Err(ConfigError::at(
                        &n.key.pos,
                        "md5_password takes 1..80 characters",
                    ));
                }
                nb.md5_password = Some(p);
            }
            "next_hop6" => {
                let w = one_arg(ctx, n, "an IPv6 address")?;
                nb.next_hop6 = Some(w.text.parse().map_err(|_| {
                    ConfigError::at(
                        &w.pos,
                        format!("invalid next_hop6 '{}' (expected an IPv6 address)", w.text),
                    )
                })?);
            }
            _ => ctx.unknown(n),
        }
    }
    if nb.remote_as == 0 {
        return Err(ConfigError::at(
            &node.key.pos,
            format!("neighbor {address} needs 'remote_as AS'"),
        ));
    }
    Ok(nb)
}

fn prefix(ctx: &mut Ctx, node: &Node) -> Result<Prefix, ConfigError> {
    let name = block_name(ctx, node)?;
    let prefix = IpPrefix::parse(&name).map_err(|e| ConfigError::at(&node.args[0].pos, e))?;
    let mut p = Prefix {
        prefix,
        services: Vec::new(),
        when: AnnounceWhen::All,
        med: None,
        communities: Vec::new(),
        prepend: 0,
        next_hop: None,
        vrrp_instance: None,
        backup: BackupPolicy::Withdraw,
        pos: node.key.pos.clone(),
    };
    // A prefix with no block is announced as the defaults say.
    let empty = Vec::new();
    let nodes = node.block.as_ref().map(|b| &b.nodes).unwrap_or(&empty);
    for n in nodes {
        match n.key.text.as_str() {
            "services" => {
                if n.args.is_empty() {
                    return Err(ConfigError::at(
                        &n.key.pos,
                        "'services' needs ADDR[:PORT] ...",
                    ));
                }
                for w in &n.args {
                    let m = service_match(&w.text).map_err(|e| ConfigError::at(&w.pos, e))?;
                    if m.addr.is_ipv4() != prefix.addr.is_ipv4() {
                        return Err(ConfigError::at(
                            &w.pos,
                            format!("service {} is not of the prefix's family", w.text),
                        ));
                    }
                    p.services.push(m);
                }
            }
            "announce_when" => {
                let w = one_arg(ctx, n, "all or any")?;
                p.when = match w.text.as_str() {
                    "all" => AnnounceWhen::All,
                    "any" => AnnounceWhen::Any,
                    _ => {
                        return Err(ConfigError::at(
                            &w.pos,
                            format!("invalid announce_when '{}' (expected all or any)", w.text),
                        ));
                    }
                };
            }
            "med" => {
                p.med = Some(value::int::<u32>(
                    one_arg(ctx, n, "a metric")?,
                    "med",
                    0,
                    u32::MAX,
                )?)
            }
            "community" => {
                if n.args.is_empty() {
                    return Err(ConfigError::at(
                        &n.key.pos,
                        "'community' needs ASN:VALUE ...",
                    ));
                }
                for w in &n.args {
                    p.communities
                        .push(community(&w.text).map_err(|e| ConfigError::at(&w.pos, e))?);
                }
            }
            "prepend" => {
                p.prepend = value::int::<u8>(one_arg(ctx, n, "a count")?, "prepend", 0, 10)?
            }
            "next_hop" => {
                let w = one_arg(ctx, n, "an IP address")?;
                p.next_hop = Some(value::ip(w)?);
            }
            "vrrp_instance" => p.vrrp_instance = Some(single(ctx, n, "an instance name")?),
            "backup" => {
                let mut a = value::Args::new(n);
                let w = a.required("withdraw, med N or prepend N")?;
                p.backup = match w.text.as_str() {
                    "withdraw" => BackupPolicy::Withdraw,
                    "med" => BackupPolicy::Med(value::int::<u32>(
                        a.required("a metric")?,
                        "med",
                        0,
                        u32::MAX,
                    )?),
                    "prepend" => BackupPolicy::Prepend(value::int::<u8>(
                        a.required("a count")?,
                        "prepend",
                        1,
                        10,
                    )?),
                    _ => {
                        return Err(ConfigError::at(
                            &w.pos,
                            format!(
                                "invalid backup '{}' (expected withdraw, med N or prepend N)",
                                w.text
                            ),
                        ));
                    }
                };
                a.finish(&mut ctx.warnings);
            }
            _ => ctx.unknown(n),
        }
    }
    Ok(p)
}

/// `198.19.4.1`, `198.19.4.1:80`, `2001:db8::1`, `[2001:db8::1]:80`.
fn service_match(text: &str) -> Result<ServiceMatch, String> {
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Ok(ServiceMatch { addr, port: None });
    }
    text.parse::<std::net::SocketAddr>()
        .map(|s| ServiceMatch {
            addr: s.ip(),
            port: Some(s.port()),
        })
        .map_err(|_| format!("invalid service '{text}' (expected ADDR, ADDR:PORT or [ADDR6]:PORT)"))
}

/// `ASN:VALUE`, each 0..65535.
fn community(text: &str) -> Result<u32, String> {
    let bad = || format!("invalid community '{text}' (expected ASN:VALUE, each 0..65535)");
    let (h, l) = text.split_once(':').ok_or_else(bad)?;
    let h: u16 = h.parse().map_err(|_| bad())?;
    let l: u16 = l.parse().map_err(|_| bad())?;
    Ok(u32::from(h) << 16 | u32::from(l))
}

/// Checks that need the whole configuration: the VRRP instances named exist, and every prefix
/// stands for at least one virtual server of the file or one the operator names.
pub(super) fn check(cfg: &super::config::KeepalivedConfig) -> Result<(), ConfigError> {
    let Some(b) = &cfg.bgp else { return Ok(()) };
    for p in &b.prefixes {
        if let Some(i) = &p.vrrp_instance
            && !cfg.vrrp_instances.iter().any(|v| &v.name == i)
        {
            return Err(ConfigError::at(
                &p.pos,
                format!("prefix {}: no vrrp_instance {i}", p.prefix),
            ));
        }
    }
    Ok(())
}
