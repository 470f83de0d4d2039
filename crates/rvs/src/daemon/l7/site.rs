//! One `rvs_l7_server` at run time: its configuration, its pools, which rule a request matches,
//! and the counters rvsadm and the monitor show.

use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use super::pool::Pool;
use crate::keepalived::l7::{L7Rule, L7Server};

/// What a request (or, in tls mode, a ClientHello) offers to match on.
pub struct Request<'a> {
    pub host: &'a str,
    pub path: &'a str,
    pub field: &'a dyn Fn(&str) -> Option<String>,
    pub cookie: &'a dyn Fn(&str) -> Option<String>,
}

pub struct Site {
    pub config: L7Server,
    pub pools: Vec<Pool>,
    /// Requests each rule took, and those that fell to the default pool.
    pub rule_hits: Vec<AtomicU64>,
    pub default_hits: AtomicU64,
    pub counters: Counters,
}

#[derive(Default)]
pub struct Counters {
    pub connections: AtomicU64,
    pub active_connections: AtomicU64,
    pub requests: AtomicU64,
    /// Requests no rule matched and no default pool took (404).
    pub unrouted: AtomicU64,
    /// Requests refused before routing, by the status answered (400, 408, 431, 505; in tls mode
    /// 400 for a ClientHello that does not parse).
    pub refused: Mutex<BTreeMap<u16, u64>>,
    /// Bytes relayed from clients and to them.
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

impl Counters {
    pub fn refuse(&self, status: u16) {
        *self
            .refused
            .lock()
            .expect("refused")
            .entry(status)
            .or_default() += 1;
    }
}

impl Site {
    pub fn new(config: L7Server, pools: Vec<Pool>) -> Site {
        Site {
            rule_hits: config.rules.iter().map(|_| AtomicU64::new(0)).collect(),
            config,
            pools,
            default_hits: AtomicU64::new(0),
            counters: Counters::default(),
        }
    }

    /// The pool for a request: the first rule whose conditions all hold, else the default pool.
    pub fn route(&self, r: &Request<'_>) -> Option<usize> {
        let hit = self.config.rules.iter().position(|rule| matches(rule, r));
        let name = match hit {
            Some(i) => {
                self.rule_hits[i].fetch_add(1, Ordering::Relaxed);
                &self.config.rules[i].pool
            }
            None => {
                let d = self.config.default_pool.as_ref()?;
                self.default_hits.fetch_add(1, Ordering::Relaxed);
                d
            }
        };
        self.config.pool(name)
    }
}

fn matches(rule: &L7Rule, r: &Request<'_>) -> bool {
    (rule.hosts.is_empty() || rule.hosts.iter().any(|h| h.matches(r.host)))
        && rule
            .path_prefix
            .as_ref()
            .is_none_or(|p| r.path.starts_with(p.as_str()))
        && rule
            .header
            .as_ref()
            .is_none_or(|(n, v)| (r.field)(n).as_deref() == Some(v.as_str()))
        && rule
            .cookie
            .as_ref()
            .is_none_or(|(n, v)| (r.cookie)(n).as_deref() == Some(v.as_str()))
}
