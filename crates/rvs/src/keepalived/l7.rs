//! `rvs_l7_server ADDR PORT { ... }`, an rvs extension at the top level of keepalived.conf: a
//! layer-7 virtual service. rvsd accepts the client's TCP connection on ADDR:PORT itself, reads
//! each HTTP/1.1 request head (or, in `tls` mode, the ClientHello's server name), picks a pool
//! by the first rule that matches, and a real server in the pool with the IPVS schedulers and
//! keepalived's checkers. A pool's block takes what a `virtual_server` block takes (`lb_algo`,
//! `real_server` with its checkers, `sorry_server`, `persistence_timeout`, `quorum`...) and
//! three keywords of its own.
//!
//! ```text
//! rvs_l7_server 198.18.0.100 80 {
//!     mode http                 # or tls: routed by SNI, never decrypted
//!     head_timeout 10           # seconds for a whole request head (then 408)
//!     idle_timeout 60           # keep-alive: seconds between requests
//!     max_head 16384            # bytes of request head (then 431)
//!     rule {
//!         host api.example.com *.api.example.com
//!         path_prefix /v2/
//!         header X-Canary yes
//!         cookie beta 1
//!         pool api
//!     }
//!     default_pool web          # when no rule matches (else 404)
//!     pool web {
//!         lb_algo wrr
//!         persistence cookie RVSID   # or: persistence source (with persistence_timeout)
//!         forward_for x_forwarded_for # or proxy_v2, or none
//!         sorry_server 198.19.9.9 80
//!         real_server 198.19.1.1 8080 { weight 2  HTTP_GET { url { path / } } }
//!     }
//! }
//! ```
//!
//! Every condition of a rule must hold; a rule's several hosts are alternatives. keepalived itself
//! would warn about the unknown keyword and go on.

use std::{collections::HashSet, net::IpAddr, time::Duration};

use super::{
    config::{KeepalivedConfig, VirtualServer, VsAddr},
    diag::{ConfigError, Diagnostic, Pos},
    global::{block_name, single},
    parse::Ctx,
    tree::Node,
    value::{self, Args},
    virtual_server,
};
use crate::model::Protocol;

/// Bounds and defaults of the per-server settings.
pub mod limits {
    use std::time::Duration;

    pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    pub const MAX_HEAD: usize = 16 * 1024;
    pub const MAX_HEAD_RANGE: (usize, usize) = (256, 1024 * 1024);
    /// Source persistence without `persistence_timeout`.
    pub const PERSISTENCE_TIMEOUT: u32 = 360;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L7Mode {
    /// HTTP/1.1, routed request by request.
    Http,
    /// TLS passed through, routed by the ClientHello's server name.
    Tls,
}

/// How a real server learns the client's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardFor {
    XForwardedFor,
    ProxyV2,
    None,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Persistence {
    /// rvsd sets this cookie to name the server, and routes a request that carries it there.
    Cookie(String),
    /// A client address goes to the same server for this long after its last request.
    Source(Duration),
}

/// A host condition: an exact name or `*.suffix` (any name ending in `.suffix`), lowercase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostMatch {
    Exact(String),
    Suffix(String),
}

impl HostMatch {
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Exact(h) => host == h,
            HostMatch::Suffix(s) => host.len() > s.len() + 1 && host.ends_with(&format!(".{s}")),
        }
    }
}

impl std::fmt::Display for HostMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostMatch::Exact(h) => f.write_str(h),
            HostMatch::Suffix(s) => write!(f, "*.{s}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct L7Rule {
    pub pos: Pos,
    /// Any of these (empty: any host).
    pub hosts: Vec<HostMatch>,
    pub path_prefix: Option<String>,
    /// Header name (lowercase) and exact value.
    pub header: Option<(String, String)>,
    pub cookie: Option<(String, String)>,
    pub pool: String,
}

impl L7Rule {
    /// The rule as the command line and the monitor show it.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.hosts.is_empty() {
            let h: Vec<String> = self.hosts.iter().map(|h| h.to_string()).collect();
            parts.push(format!("host {}", h.join(" ")));
        }
        if let Some(p) = &self.path_prefix {
            parts.push(format!("path_prefix {p}"));
        }
        if let Some((n, v)) = &self.header {
            parts.push(format!("header {n} {v}"));
        }
        if let Some((n, v)) = &self.cookie {
            parts.push(format!("cookie {n} {v}"));
        }
        if parts.is_empty() {
            parts.push("any".into());
        }
        parts.join(", ")
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct L7Pool {
    pub pos: Pos,
    pub name: String,
    /// Scheduler, real servers and their checkers, sorry server, quorum: as a virtual server's.
    pub servers: VirtualServer,
    pub persistence: Option<Persistence>,
    pub forward_for: ForwardFor,
}

#[derive(Clone, Debug, PartialEq)]
pub struct L7Server {
    pub pos: Pos,
    pub addr: IpAddr,
    pub port: u16,
    pub mode: L7Mode,
    pub head_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_head: usize,
    pub rules: Vec<L7Rule>,
    pub default_pool: Option<String>,
    pub pools: Vec<L7Pool>,
}

impl L7Server {
    pub fn pool(&self, name: &str) -> Option<usize> {
        self.pools.iter().position(|p| p.name == name)
    }

    /// `[ADDR]:PORT`, as the logs and rvsadm name it.
    pub fn name(&self) -> String {
        std::net::SocketAddr::new(self.addr, self.port).to_string()
    }
}

/// Schedulers that hash the destination address: in a pool it is always the VIP.
const DESTINATION_HASHED: &[&str] = &["dh", "lblc", "lblcr"];

pub(super) fn parse(ctx: &mut Ctx, node: &Node) -> Result<L7Server, ConfigError> {
    let mut a = Args::new(node);
    let addr = value::ip(a.required("an address and a port")?)?;
    let port = value::port(a.required("a port")?)?;
    a.finish_header(&mut ctx.warnings);
    let mut s = L7Server {
        pos: node.key.pos.clone(),
        addr,
        port,
        mode: L7Mode::Http,
        head_timeout: limits::HEAD_TIMEOUT,
        idle_timeout: limits::IDLE_TIMEOUT,
        max_head: limits::MAX_HEAD,
        rules: Vec::new(),
        default_pool: None,
        pools: Vec::new(),
    };
    let mut default_pos = None;
    // Pools that did not say how to forward the client's address: X-Forwarded-For in http
    // mode, nothing in tls mode (it cannot be added to an encrypted stream).
    let mut defaulted = Vec::new();
    for n in ctx.block(node)? {
        match n.key.text.as_str() {
            "mode" => {
                let mut a = Args::new(n);
                let w = a.required("http or tls")?;
                s.mode = match w.text.as_str() {
                    "http" => L7Mode::Http,
                    "tls" => L7Mode::Tls,
                    other => {
                        return Err(ConfigError::at(
                            &w.pos,
                            format!("unknown mode '{other}' (expected http or tls)"),
                        ));
                    }
                };
                a.finish(&mut ctx.warnings);
            }
            "head_timeout" => s.head_timeout = seconds(ctx, n, "head_timeout")?,
            "idle_timeout" => s.idle_timeout = seconds(ctx, n, "idle_timeout")?,
            "max_head" => {
                let mut a = Args::new(n);
                let (lo, hi) = limits::MAX_HEAD_RANGE;
                s.max_head = value::int(a.required("bytes")?, "max_head", lo, hi)?;
                a.finish(&mut ctx.warnings);
            }
            "rule" => s.rules.push(rule(ctx, n)?),
            "default_pool" => {
                s.default_pool = Some(single(ctx, n, "a pool name")?);
                default_pos = Some(n.key.pos.clone());
            }
            "pool" => {
                let (p, explicit) = pool(ctx, n, addr, port)?;
                if !explicit {
                    defaulted.push(s.pools.len());
                }
                if s.pool(&p.name).is_some() {
                    return Err(ConfigError::at(
                        &n.key.pos,
                        format!("pool '{}' is defined twice", p.name),
                    ));
                }
                s.pools.push(p);
            }
            _ => ctx.unknown(n),
        }
    }
    for r in &s.rules {
        if s.pool(&r.pool).is_none() {
            return Err(ConfigError::at(
                &r.pos,
                format!("rule names pool '{}', which is not defined here", r.pool),
            ));
        }
    }
    if let (Some(d), Some(pos)) = (&s.default_pool, &default_pos)
        && s.pool(d).is_none()
    {
        return Err(ConfigError::at(
            pos,
            format!("default_pool '{d}' is not defined here"),
        ));
    }
    if s.rules.is_empty() && s.default_pool.is_none() {
        return Err(ConfigError::at(
            &s.pos,
            "rvs_l7_server needs a 'rule { ... pool NAME }' or a 'default_pool NAME'",
        ));
    }
    if s.mode == L7Mode::Tls {
        for i in defaulted {
            s.pools[i].forward_for = ForwardFor::None;
        }
        tls_only_names(&s)?;
    }
    Ok(s)
}

/// In `tls` mode only the server name is seen: nothing of HTTP may be asked for.
fn tls_only_names(s: &L7Server) -> Result<(), ConfigError> {
    for r in &s.rules {
        if r.path_prefix.is_some() || r.header.is_some() || r.cookie.is_some() {
            return Err(ConfigError::at(
                &r.pos,
                "mode tls routes by server name only: path_prefix, header and cookie need mode \
                 http",
            ));
        }
    }
    for p in &s.pools {
        if matches!(p.persistence, Some(Persistence::Cookie(_))) {
            return Err(ConfigError::at(
                &p.pos,
                "mode tls cannot set a cookie (the stream is not decrypted): use 'persistence \
                 source'",
            ));
        }
        if p.forward_for == ForwardFor::XForwardedFor {
            return Err(ConfigError::at(
                &p.pos,
                "mode tls cannot add X-Forwarded-For (the stream is not decrypted): use \
                 'forward_for proxy_v2' or 'none'",
            ));
        }
    }
    Ok(())
}

fn seconds(ctx: &mut Ctx, n: &Node, what: &str) -> Result<Duration, ConfigError> {
    let mut a = Args::new(n);
    let d = value::timer(a.required("seconds")?, what)?;
    a.finish(&mut ctx.warnings);
    if d.is_zero() {
        return Err(ConfigError::at(
            &n.key.pos,
            format!("{what} must be above 0"),
        ));
    }
    Ok(d)
}

fn rule(ctx: &mut Ctx, node: &Node) -> Result<L7Rule, ConfigError> {
    Args::new(node).finish_header(&mut ctx.warnings);
    let mut r = L7Rule {
        pos: node.key.pos.clone(),
        hosts: Vec::new(),
        path_prefix: None,
        header: None,
        cookie: None,
        pool: String::new(),
    };
    for n in ctx.block(node)? {
        match n.key.text.as_str() {
            "host" => {
                if n.args.is_empty() {
                    return Err(ConfigError::at(&n.key.pos, "host needs a name"));
                }
                for w in &n.args {
                    r.hosts
                        .push(host_match(&w.text).map_err(|e| ConfigError::at(&w.pos, e))?);
                }
            }
            "path_prefix" => {
                let mut a = Args::new(n);
                let w = a.required("a path starting with /")?;
                if !w.text.starts_with('/') {
                    return Err(ConfigError::at(&w.pos, "path_prefix must start with /"));
                }
                r.path_prefix = Some(w.text.clone());
                a.finish(&mut ctx.warnings);
            }
            "header" => {
                let (name, v) = name_value(ctx, n, "a header name and a value")?;
                r.header = Some((name.to_ascii_lowercase(), v));
            }
            "cookie" => r.cookie = Some(name_value(ctx, n, "a cookie name and a value")?),
            "pool" => r.pool = single(ctx, n, "a pool name")?,
            _ => ctx.unknown(n),
        }
    }
    if r.pool.is_empty() {
        return Err(ConfigError::at(&r.pos, "rule needs 'pool NAME'"));
    }
    Ok(r)
}

fn name_value(ctx: &mut Ctx, n: &Node, what: &str) -> Result<(String, String), ConfigError> {
    let mut a = Args::new(n);
    let name = a.required(what)?;
    if !token(&name.text) {
        return Err(ConfigError::at(
            &name.pos,
            format!(
                "'{}' is not a valid name (letters, digits and !#$%&'*+-.^_`|~)",
                name.text
            ),
        ));
    }
    let v = a.required(what)?.text.clone();
    a.finish(&mut ctx.warnings);
    Ok((name.text.clone(), v))
}

/// RFC 9110's token: what header field and cookie names are made of.
pub fn token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn host_match(text: &str) -> Result<HostMatch, String> {
    let lower = text.to_ascii_lowercase();
    let (suffix, name) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest.to_owned()),
        None => (false, lower),
    };
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if !ok {
        return Err(format!(
            "'{text}' is not a host name (letters, digits, '-', '.', or '*.' before a suffix)"
        ));
    }
    Ok(if suffix {
        HostMatch::Suffix(name)
    } else {
        HostMatch::Exact(name)
    })
}

/// A pool, and whether it said `forward_for`.
fn pool(ctx: &mut Ctx, node: &Node, vip: IpAddr, port: u16) -> Result<(L7Pool, bool), ConfigError> {
    let name = block_name(ctx, node)?;
    let mut servers = VirtualServer::new(
        node.key.pos.clone(),
        VsAddr::Inet {
            addr: vip,
            port: Some(port),
        },
    );
    let mut persistence_kind: Option<(Pos, Option<String>)> = None;
    let mut forward_for = ForwardFor::XForwardedFor;
    let mut explicit = false;
    for n in ctx.block(node)? {
        match n.key.text.as_str() {
            "persistence" => {
                let mut a = Args::new(n);
                let w = a.required("'cookie NAME' or 'source'")?;
                let cookie = match w.text.as_str() {
                    "cookie" => {
                        let c = a.required("a cookie name")?;
                        if !token(&c.text) {
                            return Err(ConfigError::at(
                                &c.pos,
                                format!("'{}' is not a valid cookie name", c.text),
                            ));
                        }
                        Some(c.text.clone())
                    }
                    "source" => None,
                    other => {
                        return Err(ConfigError::at(
                            &w.pos,
                            format!(
                                "unknown persistence '{other}' (expected cookie NAME or source)"
                            ),
                        ));
                    }
                };
                a.finish(&mut ctx.warnings);
                persistence_kind = Some((n.key.pos.clone(), cookie));
            }
            "forward_for" => {
                let mut a = Args::new(n);
                let w = a.required("x_forwarded_for, proxy_v2 or none")?;
                forward_for = match w.text.as_str() {
                    "x_forwarded_for" => ForwardFor::XForwardedFor,
                    "proxy_v2" => ForwardFor::ProxyV2,
                    "none" => ForwardFor::None,
                    other => {
                        return Err(ConfigError::at(
                            &w.pos,
                            format!(
                                "unknown forward_for '{other}' (expected x_forwarded_for, \
                                 proxy_v2 or none)"
                            ),
                        ));
                    }
                };
                a.finish(&mut ctx.warnings);
                explicit = true;
            }
            // What only the L4 director does: rvsd connects to the real servers itself.
            "lb_kind"
            | "lvs_method"
            | "protocol"
            | "ops"
            | "sloppy_tcp"
            | "rvs_mark"
            | "persistence_granularity"
            | "persistence_engine"
            | "sorry_server_lvs_method" => {
                ctx.warn(
                    n,
                    format!(
                        "'{}' has no meaning in an L7 pool (rvsd connects to the real servers \
                         itself) - ignoring",
                        n.key.text
                    ),
                );
            }
            _ => virtual_server::body_item(ctx, n, &mut servers)?,
        }
    }
    // A real server (and the sorry server) without a port listens on the L7 port.
    for rs in &mut servers.real_servers {
        rs.port.get_or_insert(port);
    }
    if let Some(s) = servers.sorry_server.as_mut() {
        s.port.get_or_insert(port);
    }
    if DESTINATION_HASHED.contains(&servers.scheduler.as_str())
        || servers.scheduler == crate::sched::NO_SCHEDULER
    {
        return Err(ConfigError::at(
            &node.key.pos,
            format!(
                "lb_algo {} cannot choose in an L7 pool (every request has the VIP as its \
                 destination): use sh or mh to hash the client, or rr, wrr, lc, wlc...",
                servers.scheduler
            ),
        ));
    }
    for rs in &servers.real_servers {
        if rs.method.is_some() {
            ctx.warnings.push(Diagnostic::new(
                &rs.pos,
                "lb_kind of an L7 real server has no meaning (rvsd connects to it) - ignoring",
            ));
        }
    }
    let persistence = match persistence_kind {
        Some((_, Some(cookie))) => Some(Persistence::Cookie(cookie)),
        Some((_, None)) => Some(Persistence::Source(Duration::from_secs(
            servers
                .persistence_timeout
                .unwrap_or(limits::PERSISTENCE_TIMEOUT)
                .into(),
        ))),
        None => servers
            .persistence_timeout
            .map(|t| Persistence::Source(Duration::from_secs(t.into()))),
    };
    if servers.real_servers.is_empty() && servers.sorry_server.is_none() {
        ctx.warn(
            node,
            format!("pool '{name}' has no real servers: its requests get 503"),
        );
    }
    Ok((
        L7Pool {
            pos: node.key.pos.clone(),
            name,
            servers,
            persistence,
            forward_for,
        },
        explicit,
    ))
}

/// Across the file: one L7 server per address and port, and none where a TCP virtual server is.
pub(super) fn validate(cfg: &KeepalivedConfig) -> Result<(), ConfigError> {
    let mut seen = HashSet::new();
    for s in &cfg.l7_servers {
        if !seen.insert((s.addr, s.port)) {
            return Err(ConfigError::at(
                &s.pos,
                format!("rvs_l7_server {} is given twice", s.name()),
            ));
        }
        for vs in &cfg.virtual_servers {
            if let VsAddr::Inet { addr, port } = vs.addr
                && addr == s.addr
                && port.unwrap_or(0) == s.port
                && vs.protocol == Protocol::Tcp
            {
                return Err(ConfigError::at(
                    &s.pos,
                    format!(
                        "rvs_l7_server {} is also a TCP virtual_server (line {}): the director \
                         would forward its packets before rvsd sees them",
                        s.name(),
                        vs.pos.line
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<KeepalivedConfig, ConfigError> {
        crate::keepalived::parse_str("l7.conf", text)
    }

    const GOOD: &str = "rvs_l7_server 198.18.0.100 80 {
    head_timeout 5
    rule {
        host API.example.com *.api.example.com
        path_prefix /v2/
        pool api
    }
    default_pool web
    pool web {
        lb_algo wrr
        persistence cookie RVSID
        real_server 198.19.0.11 8080 { weight 2 }
        real_server 198.19.0.12 8080 { TCP_CHECK { connect_timeout 1 } }
    }
    pool api {
        lb_algo mh
        persistence_timeout 30
        forward_for proxy_v2
        sorry_server 198.19.0.99 80
        real_server 198.19.0.13 9000
    }
}
";

    #[test]
    fn a_server_with_rules_and_pools() {
        let cfg = load(GOOD).unwrap();
        let s = &cfg.l7_servers[0];
        assert_eq!((s.port, s.head_timeout), (80, Duration::from_secs(5)));
        assert_eq!(
            s.rules[0].hosts[0],
            HostMatch::Exact("api.example.com".into())
        );
        assert!(s.rules[0].hosts[1].matches("a.api.example.com"));
        assert!(!s.rules[0].hosts[1].matches("api.example.com"));
        let web = &s.pools[s.pool("web").unwrap()];
        assert_eq!(web.persistence, Some(Persistence::Cookie("RVSID".into())));
        assert_eq!(web.servers.real_servers[0].weight, 2);
        assert_eq!(web.servers.real_servers[1].checkers.len(), 1);
        let api = &s.pools[s.pool("api").unwrap()];
        assert_eq!(
            api.persistence,
            Some(Persistence::Source(Duration::from_secs(30)))
        );
        assert_eq!(api.forward_for, ForwardFor::ProxyV2);
        assert!(api.servers.sorry_server.is_some());
        assert_eq!(
            s.rules[0].describe(),
            "host api.example.com *.api.example.com, path_prefix /v2/"
        );
    }

    #[test]
    fn mistakes_are_refused_with_their_line() {
        let cases = [
            (
                GOOD.replace("pool api\n", "pool nope\n"),
                "l7.conf:3:5: rule names pool 'nope'",
            ),
            (
                GOOD.replace("default_pool web", "default_pool x"),
                "l7.conf:8:5: default_pool 'x'",
            ),
            (
                GOOD.replace("lb_algo mh", "lb_algo dh"),
                "l7.conf:15:5: lb_algo dh cannot choose",
            ),
            (
                GOOD.replace("path_prefix /v2/", "path_prefix v2"),
                "l7.conf:5:21: path_prefix must start",
            ),
            (
                GOOD.replace("mode http", "")
                    .replace("head_timeout 5", "mode tls"),
                "l7.conf:3:5: mode tls routes by server name only",
            ),
            (
                GOOD.replace("*.api.example.com", "a/b"),
                "l7.conf:4:30: 'a/b' is not a host name",
            ),
            (
                GOOD.replace("RVSID", "R;ID"),
                "l7.conf:11:28: 'R;ID' is not a valid cookie name",
            ),
            (
                GOOD.replace("head_timeout 5", "max_head 10"),
                "l7.conf:2:14: ",
            ),
            (
                format!("{GOOD}{GOOD}"),
                "rvs_l7_server 198.18.0.100:80 is given twice",
            ),
            (
                format!(
                    "{GOOD}virtual_server 198.18.0.100 80 {{\n real_server 198.19.0.1 80\n}}\n"
                ),
                "is also a TCP virtual_server (line 23)",
            ),
            (
                "rvs_l7_server 198.18.0.1 80 {\n pool a {\n }\n}\n".into(),
                "needs a 'rule",
            ),
        ];
        for (text, want) in cases {
            let e = load(&text).expect_err(want).to_string();
            assert!(e.contains(want), "{e}\nwanted: {want}");
        }
    }

    #[test]
    fn l4_keywords_are_warned_and_ignored() {
        let cfg = load(&GOOD.replace("lb_algo wrr", "lb_algo wrr\n        lb_kind DR")).unwrap();
        let w: Vec<String> = cfg.warnings.iter().map(|w| w.to_string()).collect();
        assert!(
            w.iter()
                .any(|w| w.contains("'lb_kind' has no meaning in an L7 pool")),
            "{w:?}"
        );
    }
}
