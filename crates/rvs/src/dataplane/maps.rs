//! Typed handles on the director's pinned maps. Each user (the control loop, connection expiry,
//! the rate estimator) opens its own handles from the pins, so none waits on another's lock.

use std::path::Path;

use anyhow::{Context, Result};
use aya::maps::{Array, HashMap, Map, MapData, PerCpuArray, PerCpuValues};
use rvs_common::{
    conn::{Conn, ConnKey},
    dest::{DestConns, DestEntry},
    maps as names,
    service::{SchedCounter, ServiceEntry, ServiceKey, SlotKey},
    stats::Stats,
};

pub struct DirectorMaps {
    pub services: HashMap<MapData, ServiceKey, ServiceEntry>,
    pub dests: Array<MapData, DestEntry>,
    pub dest_conns: Array<MapData, DestConns>,
    pub dest_expired: Array<MapData, DestConns>,
    pub slots: HashMap<MapData, SlotKey, u32>,
    pub sched_counters: Array<MapData, SchedCounter>,
    pub conns: HashMap<MapData, ConnKey, Conn>,
    pub svc_stats: PerCpuArray<MapData, Stats>,
    pub dest_stats: PerCpuArray<MapData, Stats>,
    pub counters: PerCpuArray<MapData, u64>,
}

/// One connection table entry.
pub type ConnEntry = (ConnKey, Conn);

fn open(pin_dir: &Path, name: &str) -> Result<Map> {
    let path = pin_dir.join(name);
    let data = MapData::from_pin(&path)
        .with_context(|| format!("opening pinned map {}", path.display()))?;
    Ok(Map::from_map_data(data)?)
}

impl DirectorMaps {
    /// Opens every map from its pin under `pin_dir`.
    pub fn open(pin_dir: &Path) -> Result<DirectorMaps> {
        Ok(DirectorMaps {
            services: open(pin_dir, names::SERVICES)?.try_into()?,
            dests: open(pin_dir, names::DESTS)?.try_into()?,
            dest_conns: open(pin_dir, names::DEST_CONNS)?.try_into()?,
            dest_expired: open(pin_dir, names::DEST_EXPIRED)?.try_into()?,
            slots: open(pin_dir, names::SCHED_SLOTS)?.try_into()?,
            sched_counters: open(pin_dir, names::SCHED_COUNTERS)?.try_into()?,
            conns: open(pin_dir, names::CONNS)?.try_into()?,
            svc_stats: open(pin_dir, names::SVC_STATS)?.try_into()?,
            dest_stats: open(pin_dir, names::DEST_STATS)?.try_into()?,
            counters: open(pin_dir, names::COUNTERS)?.try_into()?,
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
        self.dest_conns.set(id, DestConns::default(), 0)?;
        self.dest_expired.set(id, DestConns::default(), 0)?;
        Ok(())
    }

    pub fn zero_dest_stats(&mut self, id: u32) -> Result<()> {
        let zeros = PerCpuValues::try_from(vec![Stats::default(); nr_cpus()?])?;
        self.dest_stats.set(id, zeros, 0)?;
        Ok(())
    }

    /// Active and inactive connections of a real server.
    pub fn dest_conn_counts(&self, id: u32) -> (u32, u32) {
        let c = self.dest_conns.get(&id, 0).unwrap_or_default();
        let e = self.dest_expired.get(&id, 0).unwrap_or_default();
        // The data plane moves connections between its counters with atomic adds of +1 and -1
        // (as u64); a reader may catch one half of a move, so clamp at zero.
        let live = |made: u64, gone: u64| {
            (made.wrapping_sub(gone) as i64).clamp(0, u32::MAX as i64) as u32
        };
        (live(c.active, e.active), live(c.inactive, e.inactive))
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
