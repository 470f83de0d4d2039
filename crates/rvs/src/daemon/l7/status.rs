//! What the L7 task shows of itself: each server's rules and the requests they took, each pool
//! and real server with health and counters. The task publishes the live sites after every
//! start and reload; a reader takes a snapshot of their counters (it never waits on a request).

use std::sync::{Arc, Mutex, OnceLock, atomic::Ordering};

use serde::{Deserialize, Serialize};

use super::site::Site;
use crate::keepalived::l7::{ForwardFor, L7Mode, Persistence};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct L7Status {
    pub servers: Vec<ServerStatus>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerStatus {
    /// `ADDR:PORT`.
    pub address: String,
    pub mode: String,
    pub connections: u64,
    pub active_connections: u64,
    pub requests: u64,
    /// Requests per second (IPVS's estimator: 2-second samples, averaged).
    pub rate: u64,
    /// Requests no rule and no default pool took (404).
    pub unrouted: u64,
    /// Refused before routing, by the status answered.
    pub refused: Vec<(u16, u64)>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub rules: Vec<RuleStatus>,
    pub default_pool: Option<RuleStatus>,
    pub pools: Vec<PoolStatus>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleStatus {
    pub rule: String,
    pub pool: String,
    pub hits: u64,
    pub rate: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoolStatus {
    pub name: String,
    pub scheduler: String,
    pub persistence: String,
    pub forward_for: String,
    pub quorum: bool,
    pub requests: u64,
    pub rate: u64,
    /// Answered 503: no usable server and no sorry server.
    pub unavailable: u64,
    pub to_sorry: u64,
    pub servers: Vec<BackendStatus>,
    pub sorry_server: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackendStatus {
    pub address: String,
    pub up: bool,
    pub weight: i32,
    pub active: u32,
    pub requests: u64,
    pub rate: u64,
    pub failures: u64,
    pub idle_connections: usize,
}

static PUBLISHED: OnceLock<Mutex<Option<Vec<Arc<Site>>>>> = OnceLock::new();

fn slot() -> &'static Mutex<Option<Vec<Arc<Site>>>> {
    PUBLISHED.get_or_init(Default::default)
}

/// The L7 task's sites, after a start or a reload.
pub fn publish(sites: Vec<Arc<Site>>) {
    *slot().lock().expect("l7 status") = Some(sites);
}

/// A snapshot, or None when rvsd runs no L7 task.
pub fn current() -> Option<L7Status> {
    let sites = slot().lock().expect("l7 status").clone()?;
    Some(L7Status {
        servers: sites.iter().map(|s| snapshot(s)).collect(),
    })
}

fn snapshot(s: &Site) -> ServerStatus {
    let c = &s.counters;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let pool_name = |name: &str| name.to_owned();
    ServerStatus {
        address: s.config.name(),
        mode: match s.config.mode {
            L7Mode::Http => "http",
            L7Mode::Tls => "tls",
        }
        .into(),
        connections: load(&c.connections),
        active_connections: load(&c.active_connections),
        requests: load(&c.requests),
        rate: s.rate.per_second(),
        unrouted: load(&c.unrouted),
        refused: c
            .refused
            .lock()
            .expect("refused")
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect(),
        bytes_in: load(&c.bytes_in),
        bytes_out: load(&c.bytes_out),
        rules: s
            .config
            .rules
            .iter()
            .zip(s.rule_hits.iter().zip(&s.rule_rates))
            .map(|(r, (h, rate))| RuleStatus {
                rule: r.describe(),
                pool: pool_name(&r.pool),
                hits: load(h),
                rate: rate.per_second(),
            })
            .collect(),
        default_pool: s.config.default_pool.as_ref().map(|p| RuleStatus {
            rule: "default".into(),
            pool: pool_name(p),
            hits: load(&s.default_hits),
            rate: s.default_rate.per_second(),
        }),
        pools: s
            .pools
            .iter()
            .map(|p| PoolStatus {
                name: p.name.clone(),
                scheduler: p.config.servers.scheduler.clone(),
                persistence: match &p.config.persistence {
                    None => "none".into(),
                    Some(Persistence::Cookie(n)) => format!("cookie {n}"),
                    Some(Persistence::Source(t)) => format!("source {}s", t.as_secs()),
                },
                forward_for: match p.config.forward_for {
                    ForwardFor::XForwardedFor => "x_forwarded_for",
                    ForwardFor::ProxyV2 => "proxy_v2",
                    ForwardFor::None => "none",
                }
                .into(),
                quorum: p.has_quorum(),
                requests: load(&p.requests),
                rate: p.rate.per_second(),
                unavailable: load(&p.unavailable),
                to_sorry: load(&p.to_sorry),
                servers: p
                    .servers
                    .iter()
                    .map(|b| BackendStatus {
                        address: b.addr.to_string(),
                        up: b.up(),
                        weight: b.weight(),
                        active: b.active.load(Ordering::Relaxed),
                        requests: load(&b.requests),
                        rate: b.rate.per_second(),
                        failures: load(&b.failures),
                        idle_connections: b.idle_count(),
                    })
                    .collect(),
                sorry_server: p.sorry.as_ref().map(|b| b.addr.to_string()),
            })
            .collect(),
    }
}

/// `rvsadm --l7`.
pub fn render(status: Option<&L7Status>) -> String {
    let Some(st) = status else {
        return "no L7 servers (rvs_l7_server in keepalived.conf)\n".into();
    };
    let mut out = String::new();
    for s in &st.servers {
        let refused: Vec<String> = s.refused.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        out += &format!(
            "L7 {} mode {}: {} connections ({} active), {} requests ({}/s), {} unrouted, refused {}\n",
            s.address,
            s.mode,
            s.connections,
            s.active_connections,
            s.requests,
            s.rate,
            s.unrouted,
            if refused.is_empty() {
                "0".to_owned()
            } else {
                refused.join(" ")
            }
        );
        for r in s.rules.iter().chain(&s.default_pool) {
            out += &format!(
                "  rule {} -> pool {}: {} requests ({}/s)\n",
                r.rule, r.pool, r.hits, r.rate
            );
        }
        for p in &s.pools {
            out += &format!(
                "  pool {} {} persistence {} forward_for {}{}: {} requests ({}/s), {} unavailable, {} to \
                 sorry server\n",
                p.name,
                p.scheduler,
                p.persistence,
                p.forward_for,
                if p.quorum { "" } else { " (no quorum)" },
                p.requests,
                p.rate,
                p.unavailable,
                p.to_sorry
            );
            for b in &p.servers {
                out += &format!(
                    "    -> {:<24} {:<4} weight {:<5} active {:<5} requests {:<8} {:>6}/s failures {:<5} \
                     idle {}\n",
                    b.address,
                    if b.up { "up" } else { "down" },
                    b.weight,
                    b.active,
                    b.requests,
                    b.rate,
                    b.failures,
                    b.idle_connections
                );
            }
            if let Some(sorry) = &p.sorry_server {
                out += &format!("    sorry server {sorry}\n");
            }
        }
    }
    out
}
