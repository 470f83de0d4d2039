//! One `rvs_l7_server` at run time: its configuration, its pools, which rule a request matches,
//! and the counters rvsadm and the monitor show.

use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
};

use super::pool::Pool;
use crate::keepalived::l7::{L7Rule, L7Server};

/// Requests per second of one counter, as IPVS's estimator averages them: every 2 s the change,
/// scaled by 2^10, folded into an average with weight 1/4 (see `daemon/estimator.rs`).
#[derive(Default)]
pub struct Rate {
    last: AtomicU64,
    avg: AtomicI64,
}

impl Rate {
    /// One 2-second sample of the counter's value `now`.
    pub fn sample(&self, now: u64) {
        let delta = now.wrapping_sub(self.last.swap(now, Ordering::Relaxed));
        // Per second, scaled by 2^10: delta << 10 over 2 s.
        let rate = (delta as i64) << 9;
        let avg = self.avg.load(Ordering::Relaxed);
        self.avg.store(avg + ((rate - avg) >> 2), Ordering::Relaxed);
    }

    pub fn per_second(&self) -> u64 {
        ((self.avg.load(Ordering::Relaxed) + 0x1FF) >> 10).max(0) as u64
    }
}

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
    /// Requests per second: the server's, each rule's and the default pool's.
    pub rate: Rate,
    pub rule_rates: Vec<Rate>,
    pub default_rate: Rate,
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
            rule_rates: config.rules.iter().map(|_| Rate::default()).collect(),
            rate: Rate::default(),
            default_rate: Rate::default(),
            config,
            pools,
            default_hits: AtomicU64::new(0),
            counters: Counters::default(),
        }
    }

    /// Every rate's 2-second sample.
    pub fn sample_rates(&self) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        self.rate.sample(load(&self.counters.requests));
        for (r, h) in self.rule_rates.iter().zip(&self.rule_hits) {
            r.sample(load(h));
        }
        self.default_rate.sample(load(&self.default_hits));
        for p in &self.pools {
            p.rate.sample(load(&p.requests));
            for b in &p.servers {
                b.rate.sample(load(&b.requests));
            }
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
