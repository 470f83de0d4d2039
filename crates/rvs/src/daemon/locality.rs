//! Expiry of the lblc and lblcr caches, after the kernel's GC timers: an entry unused for the
//! expiration time (`lblc_expiration`, `lblcr_expiration`, 24 hours by default) goes; while a
//! cache holds more than 16384 entries, entries unused for 6 minutes go too. Entries of services
//! that no longer use the scheduler go at once. (The kernel keeps a table per service and runs the
//! full check every 30 minutes; rvs keeps one table and checks every minute.)

use std::{collections::BTreeSet, os::fd::AsFd, time::Duration};

use aya::{
    Pod,
    maps::{HashMap, IterableMap, MapData},
};
use rvs_common::maps::{LblcEntry, LblcrEntry, LocalityKey};

use super::expiry::monotonic_ns;
use crate::dataplane::batch;

/// How often the caches are checked.
pub const INTERVAL: Duration = Duration::from_secs(60);
/// The kernel's per-table size above which idle entries are dropped early.
const MAX_SIZE: usize = 16384;
/// "Idle" for that early drop.
const ENTRY_TIMEOUT: Duration = Duration::from_secs(6 * 60);

/// Something with a last-use time.
pub trait Entry: Pod + Default {
    fn lastuse_ns(&self) -> u64;
}

impl Entry for LblcEntry {
    fn lastuse_ns(&self) -> u64 {
        self.lastuse_ns
    }
}

impl Entry for LblcrEntry {
    fn lastuse_ns(&self) -> u64 {
        self.lastuse_ns
    }
}

/// Removes stale entries from one cache; returns how many went.
pub fn sweep<V: Entry>(
    cache: &mut HashMap<MapData, LocalityKey, V>,
    services: &BTreeSet<u32>,
    expiration: Duration,
) -> usize {
    let now = monotonic_ns();
    let mut entries = Vec::new();
    let _ = batch::for_each::<LocalityKey, V>(cache.map().fd().as_fd(), 4096, |k, v| {
        entries.push((*k, v.lastuse_ns()));
    });
    let full = entries.len() > MAX_SIZE;
    let mut removed = 0;
    for (k, lastuse) in entries {
        let idle = now.saturating_sub(lastuse);
        let stale = !services.contains(&k.svc_id)
            || idle >= expiration.as_nanos() as u64
            || (full && idle >= ENTRY_TIMEOUT.as_nanos() as u64);
        if stale && cache.remove(&k).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Service indexes using lblc and using lblcr (their caches keep only these).
pub fn services(model: &crate::model::Model) -> (BTreeSet<u32>, BTreeSet<u32>) {
    use crate::sched::Scheduler;
    let of = |which: Scheduler| {
        model
            .services
            .iter()
            .filter(|s| Scheduler::from_name(&s.config.scheduler) == Some(which))
            .map(|s| s.index)
            .collect()
    };
    (of(Scheduler::Lblc), of(Scheduler::Lblcr))
}

/// The locality task: expires the lblc and lblcr caches every [`INTERVAL`], with its own handles.
pub async fn task(
    director: super::DirectorHandle,
    pin_dir: std::path::PathBuf,
    lblc: Duration,
    lblcr: Duration,
) {
    let mut maps = match crate::dataplane::DirectorMaps::open(&pin_dir) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!("locality cache expiry disabled: {e:#}");
            return;
        }
    };
    let mut tick = tokio::time::interval(INTERVAL);
    loop {
        tick.tick().await;
        let (lblc_services, lblcr_services) = services(&director.view().model);
        let gone = sweep(&mut maps.lblc, &lblc_services, lblc)
            + sweep(&mut maps.lblcr, &lblcr_services, lblcr);
        if gone > 0 {
            tracing::debug!("expired {gone} locality cache entries");
        }
    }
}
