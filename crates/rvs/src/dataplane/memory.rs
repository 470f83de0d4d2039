//! An in-memory stand-in for the director's maps, for unit tests of the director's rules: the
//! same reads and writes as the pinned maps, a way to refuse the n-th write (to check that a
//! refused change leaves nothing half-written), and counters and flows a test can set.
//! Clones share the same tables, as two handles on the same pins do.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard},
};

use anyhow::{Result, bail};
use rvs_common::{
    conn::{Conn, ConnKey},
    dest::DestEntry,
    maps::Config,
    mark::{MarkPrefix, MarkRules},
    service::{SchedDest, ServiceEntry, ServiceKey, SlotKey},
    stats::Stats,
};

use super::store::{MapsRead, MapsWrite};

/// Everything the data plane would see, comparable as a whole.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tables {
    pub services: Vec<(ServiceKey, ServiceEntry)>,
    pub slots: BTreeMap<(u32, u32, u32), u32>,
    pub list: BTreeMap<u32, SchedDest>,
    pub dests: BTreeMap<u32, DestEntry>,
    pub config: Config,
    pub marks: Vec<((u32, MarkPrefix), MarkRules)>,
    pub svc_stats: BTreeMap<u32, Stats>,
    pub dest_stats: BTreeMap<u32, Stats>,
    /// Active, inactive, persistent, overloaded.
    pub dest_conns: BTreeMap<u32, [u32; 4]>,
    pub sched_counters: BTreeMap<u32, u64>,
    pub counters: Vec<u64>,
    pub conns: Vec<(ConnKey, Conn)>,
}

#[derive(Default)]
struct Inner {
    tables: Tables,
    /// Writes still allowed before one is refused (None: never refuse).
    writes_left: Option<usize>,
}

#[derive(Clone, Default)]
pub struct MemoryMaps(Arc<Mutex<Inner>>);

impl MemoryMaps {
    pub fn new() -> MemoryMaps {
        MemoryMaps::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().expect("memory maps")
    }

    /// A copy of every table.
    pub fn tables(&self) -> Tables {
        self.lock().tables.clone()
    }

    /// Changes tables directly (counters, flows), as the data plane would.
    pub fn with(&self, f: impl FnOnce(&mut Tables)) {
        f(&mut self.lock().tables)
    }

    /// Refuses the write that comes after the next `n` (once; None: refuse none).
    pub fn refuse_after(&self, n: Option<usize>) {
        self.lock().writes_left = n;
    }

    /// Makes a write, or refuses it.
    fn write<T>(&self, f: impl FnOnce(&mut Tables) -> T) -> Result<T> {
        let mut inner = self.lock();
        match &mut inner.writes_left {
            Some(0) => {
                inner.writes_left = None;
                bail!("refused by the test");
            }
            Some(n) => *n -= 1,
            None => {}
        }
        Ok(f(&mut inner.tables))
    }
}

impl MapsRead for MemoryMaps {
    fn service_stats(&self, index: u32) -> Stats {
        self.lock()
            .tables
            .svc_stats
            .get(&index)
            .copied()
            .unwrap_or_default()
    }
    fn dest_stats(&self, id: u32) -> Stats {
        self.lock()
            .tables
            .dest_stats
            .get(&id)
            .copied()
            .unwrap_or_default()
    }
    fn dest_conn_counts(&self, id: u32) -> (u32, u32, u32) {
        let c = self
            .lock()
            .tables
            .dest_conns
            .get(&id)
            .copied()
            .unwrap_or_default();
        (c[0], c[1], c[2])
    }
    fn event_counters(&self) -> Vec<u64> {
        self.lock().tables.counters.clone()
    }
    fn sched_counter(&self, index: u32) -> u64 {
        self.lock()
            .tables
            .sched_counters
            .get(&index)
            .copied()
            .unwrap_or(0)
    }
    fn service(&self, key: &ServiceKey) -> Option<ServiceEntry> {
        self.lock()
            .tables
            .services
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, e)| *e)
    }
    fn service_keys(&self) -> Vec<ServiceKey> {
        self.lock()
            .tables
            .services
            .iter()
            .map(|(k, _)| *k)
            .collect()
    }
    fn for_each_conn(&self, f: &mut dyn FnMut(&ConnKey, &Conn)) {
        let conns = self.lock().tables.conns.clone();
        for (k, c) in &conns {
            f(k, c);
        }
    }
}

impl MapsWrite for MemoryMaps {
    fn set_service(&mut self, key: ServiceKey, entry: ServiceEntry) -> Result<()> {
        self.write(|t| match t.services.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = entry,
            None => t.services.push((key, entry)),
        })
    }
    fn remove_service(&mut self, key: &ServiceKey) -> Result<()> {
        self.write(|t| t.services.retain(|(k, _)| k != key))
    }
    fn set_slot(&mut self, key: SlotKey, dest_id: u32) -> Result<()> {
        self.write(|t| {
            t.slots.insert((key.svc_id, key.gen_, key.index), dest_id);
        })
    }
    fn remove_slot(&mut self, key: &SlotKey) {
        self.lock()
            .tables
            .slots
            .remove(&(key.svc_id, key.gen_, key.index));
    }
    fn set_list_item(&mut self, index: u32, item: SchedDest) -> Result<()> {
        self.write(|t| {
            t.list.insert(index, item);
        })
    }
    fn set_dest(&mut self, id: u32, entry: DestEntry) -> Result<()> {
        // An array entry of zeroes is an absent one.
        self.write(|t| {
            if entry == DestEntry::default() {
                t.dests.remove(&id);
            } else {
                t.dests.insert(id, entry);
            }
        })
    }
    fn zero_service_stats(&mut self, index: u32) -> Result<()> {
        self.write(|t| {
            t.svc_stats.remove(&index);
        })
    }
    fn zero_dest(&mut self, id: u32) -> Result<()> {
        self.write(|t| {
            t.dest_stats.remove(&id);
            t.dest_conns.remove(&id);
        })
    }
    fn zero_dest_stats(&mut self, id: u32) -> Result<()> {
        self.write(|t| {
            t.dest_stats.remove(&id);
        })
    }
    fn clear_overloaded(&mut self, id: u32) {
        if let Some(c) = self.lock().tables.dest_conns.get_mut(&id) {
            c[3] = 0;
        }
    }
    fn config(&self) -> Config {
        self.lock().tables.config
    }
    fn set_config(&mut self, config: Config) -> Result<()> {
        self.write(|t| t.config = config)
    }
    fn mark_prefixes(&self) -> Vec<(u32, MarkPrefix)> {
        self.lock().tables.marks.iter().map(|(k, _)| *k).collect()
    }
    fn set_mark_prefix(&mut self, bits: u32, key: MarkPrefix, rules: MarkRules) -> Result<()> {
        self.write(
            |t| match t.marks.iter_mut().find(|(k, _)| *k == (bits, key)) {
                Some(slot) => slot.1 = rules,
                None => t.marks.push(((bits, key), rules)),
            },
        )
    }
    fn remove_mark_prefix(&mut self, bits: u32, key: MarkPrefix) -> Result<()> {
        self.write(|t| t.marks.retain(|(k, _)| *k != (bits, key)))
    }
}
