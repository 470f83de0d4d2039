//! The director's maps as the control plane sees them: what it reads ([`MapsRead`]: counters,
//! connection tables) and what it writes ([`MapsWrite`]: services, scheduler tables, real
//! servers, settings, mark rules). The real implementation is the pinned aya maps
//! ([`DirectorMaps`]); the tests use an in-memory one, so the director's rules are checked
//! without a kernel.

use std::os::fd::AsFd;

use aya::maps::IterableMap;

use anyhow::{Context, Result};
use aya::maps::lpm_trie::Key;
use rvs_common::{
    conn::{Conn, ConnKey},
    dest::DestEntry,
    maps::Config,
    mark::{MarkPrefix, MarkRules},
    service::{SchedDest, ServiceEntry, ServiceKey, SlotKey},
    stats::Stats,
};

use super::{batch, maps::DirectorMaps, shared::Field};

/// Reads that never change the data plane; safe from any task at any time.
pub trait MapsRead: Send + Sync {
    /// A service's counters summed over CPUs.
    fn service_stats(&self, index: u32) -> Stats;
    /// A real server's counters summed over CPUs.
    fn dest_stats(&self, id: u32) -> Stats;
    /// Active, inactive and persistent connections of a real server.
    fn dest_conn_counts(&self, id: u32) -> (u32, u32, u32);
    /// Data-plane event counters, in `stats::Counter` order.
    fn event_counters(&self) -> Vec<u64>;
    /// How many new flows service `index` has scheduled in all.
    fn sched_counter(&self, index: u32) -> u64;
    /// The installed entry of a service.
    fn service(&self, key: &ServiceKey) -> Option<ServiceEntry>;
    /// Every installed service key.
    fn service_keys(&self) -> Vec<ServiceKey>;
    /// Calls `f` on every flow of the embryonic and then the main connection table.
    fn for_each_conn(&self, f: &mut dyn FnMut(&ConnKey, &Conn));
}

/// Writes, made only by the director (the one owner of the model).
pub trait MapsWrite: MapsRead {
    fn set_service(&mut self, key: ServiceKey, entry: ServiceEntry) -> Result<()>;
    fn remove_service(&mut self, key: &ServiceKey) -> Result<()>;
    fn set_slot(&mut self, key: SlotKey, dest_id: u32) -> Result<()>;
    /// Removing a slot that is not there is not an error.
    fn remove_slot(&mut self, key: &SlotKey);
    fn set_list_item(&mut self, index: u32, item: SchedDest) -> Result<()>;
    fn set_dest(&mut self, id: u32, entry: DestEntry) -> Result<()>;
    fn zero_service_stats(&mut self, index: u32) -> Result<()>;
    /// Zeroes a fresh real server's counters and connection counts.
    fn zero_dest(&mut self, id: u32) -> Result<()>;
    /// Zeroes a real server's traffic counters (-Z), not its connection counts.
    fn zero_dest_stats(&mut self, id: u32) -> Result<()>;
    fn clear_overloaded(&mut self, id: u32);
    fn config(&self) -> Config;
    fn set_config(&mut self, config: Config) -> Result<()>;
    /// Installed mark prefixes as (prefix length in bits, key).
    fn mark_prefixes(&self) -> Vec<(u32, MarkPrefix)>;
    fn set_mark_prefix(&mut self, bits: u32, key: MarkPrefix, rules: MarkRules) -> Result<()>;
    fn remove_mark_prefix(&mut self, bits: u32, key: MarkPrefix) -> Result<()>;
}

impl MapsRead for DirectorMaps {
    fn service_stats(&self, index: u32) -> Stats {
        DirectorMaps::service_stats(self, index)
    }
    fn dest_stats(&self, id: u32) -> Stats {
        DirectorMaps::dest_stats(self, id)
    }
    fn dest_conn_counts(&self, id: u32) -> (u32, u32, u32) {
        DirectorMaps::dest_conn_counts(self, id)
    }
    fn event_counters(&self) -> Vec<u64> {
        DirectorMaps::event_counters(self)
    }
    fn sched_counter(&self, index: u32) -> u64 {
        DirectorMaps::sched_counter(self, index)
    }
    fn service(&self, key: &ServiceKey) -> Option<ServiceEntry> {
        self.services.get(key, 0).ok()
    }
    fn service_keys(&self) -> Vec<ServiceKey> {
        self.services.keys().filter_map(|k| k.ok()).collect()
    }
    fn for_each_conn(&self, f: &mut dyn FnMut(&ConnKey, &Conn)) {
        for table in [&self.conns_new, &self.conns] {
            let _ = batch::for_each::<ConnKey, Conn>(table.map().fd().as_fd(), 4096, &mut *f);
        }
    }
}

impl MapsWrite for DirectorMaps {
    fn set_service(&mut self, key: ServiceKey, entry: ServiceEntry) -> Result<()> {
        Ok(self.services.insert(key, entry, 0)?)
    }
    fn remove_service(&mut self, key: &ServiceKey) -> Result<()> {
        Ok(self.services.remove(key)?)
    }
    fn set_slot(&mut self, key: SlotKey, dest_id: u32) -> Result<()> {
        Ok(self.slots.insert(key, dest_id, 0)?)
    }
    fn remove_slot(&mut self, key: &SlotKey) {
        let _ = self.slots.remove(key);
    }
    fn set_list_item(&mut self, index: u32, item: SchedDest) -> Result<()> {
        Ok(self.sched_list.set(index, item, 0)?)
    }
    fn set_dest(&mut self, id: u32, entry: DestEntry) -> Result<()> {
        Ok(self.dests.set(id, entry, 0)?)
    }
    fn zero_service_stats(&mut self, index: u32) -> Result<()> {
        DirectorMaps::zero_service_stats(self, index)
    }
    fn zero_dest(&mut self, id: u32) -> Result<()> {
        DirectorMaps::zero_dest(self, id)
    }
    fn zero_dest_stats(&mut self, id: u32) -> Result<()> {
        DirectorMaps::zero_dest_stats(self, id)
    }
    fn clear_overloaded(&mut self, id: u32) {
        self.dest_conns.set(id, Field::Overloaded, 0);
    }
    fn config(&self) -> Config {
        self.config.get(&0, 0).unwrap_or_default()
    }
    fn set_config(&mut self, config: Config) -> Result<()> {
        self.config
            .set(0, config, 0)
            .context("writing the data plane's settings")
    }
    fn mark_prefixes(&self) -> Vec<(u32, MarkPrefix)> {
        self.mark_rules
            .keys()
            .filter_map(|k| k.ok())
            .map(|k| (k.prefix_len(), k.data()))
            .collect()
    }
    fn set_mark_prefix(&mut self, bits: u32, key: MarkPrefix, rules: MarkRules) -> Result<()> {
        Ok(self.mark_rules.insert(&Key::new(bits, key), rules, 0)?)
    }
    fn remove_mark_prefix(&mut self, bits: u32, key: MarkPrefix) -> Result<()> {
        Ok(self.mark_rules.remove(&Key::new(bits, key))?)
    }
}
