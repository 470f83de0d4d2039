//! Typed handles on the director's pinned maps. Each user (the control loop, connection expiry,
//! the rate estimator) opens its own handles from the pins, so none waits on another's lock.

use std::path::Path;

use anyhow::{Context, Result};
use aya::maps::{Array, HashMap, LpmTrie, Map, MapData, PerCpuArray, PerCpuValues};
use rvs_common::{
    conn::{Conn, ConnKey},
    dest::DestEntry,
    maps::{self as names, Config, LblcEntry, LblcrEntry, LocalityKey},
    mark::{MarkPrefix, MarkRules},
    service::{SchedCounter, SchedDest, ServiceEntry, ServiceKey, SlotKey},
    stats::Stats,
};

use super::shared::{SharedConns, live};

pub struct DirectorMaps {
    pub services: HashMap<MapData, ServiceKey, ServiceEntry>,
    pub dests: Array<MapData, DestEntry>,
    /// Connection counters per dest, shared with the data plane through a memory mapping.
    pub dest_conns: SharedConns,
    pub slots: HashMap<MapData, SlotKey, u32>,
    pub sched_counters: Array<MapData, SchedCounter>,
    pub sched_list: Array<MapData, SchedDest>,
    pub conns: HashMap<MapData, ConnKey, Conn>,
    pub conns_new: HashMap<MapData, ConnKey, Conn>,
    pub nat_replies: HashMap<MapData, ConnKey, ConnKey>,
    pub svc_stats: PerCpuArray<MapData, Stats>,
    pub dest_stats: PerCpuArray<MapData, Stats>,
    pub counters: PerCpuArray<MapData, u64>,
    pub config: Array<MapData, Config>,
    pub lblc: HashMap<MapData, LocalityKey, LblcEntry>,
    pub lblcr: HashMap<MapData, LocalityKey, LblcrEntry>,
    pub mark_rules: LpmTrie<MapData, MarkPrefix, MarkRules>,
}

/// One connection table entry.
pub type ConnEntry = (ConnKey, Conn);

fn open_data(pin_dir: &Path, name: &str) -> Result<MapData> {
    let path = pin_dir.join(name);
    MapData::from_pin(&path).with_context(|| format!("opening pinned map {}", path.display()))
}

fn open(pin_dir: &Path, name: &str) -> Result<Map> {
    Ok(Map::from_map_data(open_data(pin_dir, name)?)?)
}

impl DirectorMaps {
    /// Opens every map from its pin under `pin_dir`.
    pub fn open(pin_dir: &Path) -> Result<DirectorMaps> {
        Ok(DirectorMaps {
            services: open(pin_dir, names::SERVICES)?.try_into()?,
            dests: open(pin_dir, names::DESTS)?.try_into()?,
            dest_conns: SharedConns::new(open_data(pin_dir, names::DEST_CONNS)?)?,
            slots: open(pin_dir, names::SCHED_SLOTS)?.try_into()?,
            sched_counters: open(pin_dir, names::SCHED_COUNTERS)?.try_into()?,
            sched_list: open(pin_dir, names::SCHED_LIST)?.try_into()?,
            conns: open(pin_dir, names::CONNS)?.try_into()?,
            conns_new: open(pin_dir, names::CONNS_NEW)?.try_into()?,
            nat_replies: open(pin_dir, names::NAT_REPLIES)?.try_into()?,
            svc_stats: open(pin_dir, names::SVC_STATS)?.try_into()?,
            dest_stats: open(pin_dir, names::DEST_STATS)?.try_into()?,
            counters: open(pin_dir, names::COUNTERS)?.try_into()?,
            config: open(pin_dir, names::CONFIG)?.try_into()?,
            lblc: open(pin_dir, names::LBLC)?.try_into()?,
            lblcr: open(pin_dir, names::LBLCR)?.try_into()?,
            mark_rules: open(pin_dir, names::MARK_RULES)?.try_into()?,
        })
    }

    /// A service's counters summed over CPUs.
    pub fn service_stats(&self, index: u32) -> Stats {
        sum(self.svc_stats.get(&index, 0).ok())
    }

    /// A real server's counters summed over CPUs.
    pub fn dest_stats(&self, id: u32) -> Stats {
        sum(self.dest_stats.get(&id, 0).ok())
    }

    pub fn zero_service_stats(&mut self, index: u32) -> Result<()> {
        let zeros = PerCpuValues::try_from(vec![Stats::default(); nr_cpus()?])?;
        self.svc_stats.set(index, zeros, 0)?;
        Ok(())
    }

    pub fn zero_dest(&mut self, id: u32) -> Result<()> {
        let zeros = PerCpuValues::try_from(vec![Stats::default(); nr_cpus()?])?;
        self.dest_stats.set(id, zeros, 0)?;
        self.dest_conns.zero(id);
        Ok(())
    }

    pub fn zero_dest_stats(&mut self, id: u32) -> Result<()> {
        let zeros = PerCpuValues::try_from(vec![Stats::default(); nr_cpus()?])?;
        self.dest_stats.set(id, zeros, 0)?;
        Ok(())
    }

    /// Active, inactive and persistent connections of a real server.
    pub fn dest_conn_counts(&self, id: u32) -> (u32, u32, u32) {
        let c = self.dest_conns.get(id);
        (live(c.active), live(c.inactive), live(c.persist))
    }

    /// The scheduler counter of a service: how many new flows it has scheduled in all.
    pub fn sched_counter(&self, index: u32) -> u64 {
        self.sched_counters
            .get(&index, 0)
            .map(|c| c.next)
            .unwrap_or(0)
    }

    /// Data-plane event counters summed over CPUs, in `stats::Counter` order.
    pub fn event_counters(&self) -> Vec<u64> {
        (0..self.counters.len())
            .map(|i| {
                self.counters
                    .get(&i, 0)
                    .map(|v| v.iter().fold(0u64, |a, b| a.wrapping_add(*b)))
                    .unwrap_or(0)
            })
            .collect()
    }
}

fn sum(values: Option<PerCpuValues<Stats>>) -> Stats {
    let mut total = Stats::default();
    if let Some(values) = values {
        for v in values.iter() {
            total.add(v);
        }
    }
    total
}

fn nr_cpus() -> Result<usize> {
    aya::util::nr_cpus().map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))
}
