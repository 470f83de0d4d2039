//! BPF program statistics: run time and run count (while statistics are enabled), and sizes.
//!
//! Statistics are switched on with BPF_ENABLE_STATS, not the `kernel.bpf_stats_enabled` sysctl:
//! the effect is the same (machine-wide: every program's run is timed) but it lasts only while
//! the returned file descriptor is open, so the kernel switches it off again when the harness
//! ends, however it ends, and the sysctl's own value is never touched. It is held only during the
//! runs that read the director's cost, since timing each run costs a little.

use std::{collections::HashSet, os::fd::OwnedFd};

use anyhow::{Context, Result};
use aya::{
    programs::{ProgramInfo, loaded_programs},
    sys::{Stats, enable_stats},
};

/// Run-time statistics are on while this lives.
pub struct StatsOn(#[allow(dead_code)] OwnedFd);

pub fn stats_on() -> Result<StatsOn> {
    Ok(StatsOn(
        enable_stats(Stats::RunTime).context("BPF_ENABLE_STATS")?,
    ))
}

/// One program's numbers.
#[derive(Clone, Debug)]
pub struct Prog {
    pub id: u32,
    pub name: String,
    pub run_ns: u64,
    pub run_cnt: u64,
    /// Size after the verifier's rewrites in 8-byte instruction slots (`bpftool prog dump
    /// xlated` lines, a 64-bit immediate load taking two).
    pub xlated_insns: u32,
    pub jited_bytes: u32,
    /// Instructions the verifier walked to prove the program safe.
    pub verified_insns: u32,
    map_ids: Vec<u32>,
}

impl Prog {
    fn from_info(info: &ProgramInfo) -> Prog {
        Prog {
            id: info.id(),
            name: info.name_as_str().unwrap_or("?").to_owned(),
            run_ns: info.run_time().as_nanos() as u64,
            run_cnt: info.run_count(),
            xlated_insns: info.size_translated().unwrap_or(0) / 8,
            jited_bytes: info.size_jitted(),
            verified_insns: info.verified_instruction_count().unwrap_or(0),
            map_ids: info.map_ids().ok().flatten().unwrap_or_default(),
        }
    }
}

/// The program with id `id`.
pub fn prog(id: u32) -> Result<Prog> {
    for info in loaded_programs() {
        let Ok(info) = info else { continue };
        if info.id() == id {
            return Ok(Prog::from_info(&info));
        }
    }
    anyhow::bail!("no BPF program with id {id}")
}

/// The program `id` and every program sharing a map with it (a director's tail-called
/// programs), entry first.
pub fn family(id: u32) -> Result<Vec<Prog>> {
    let all: Vec<Prog> = loaded_programs()
        .filter_map(|i| i.ok())
        .map(|i| Prog::from_info(&i))
        .collect();
    let entry = all
        .iter()
        .find(|p| p.id == id)
        .with_context(|| format!("no BPF program with id {id}"))?
        .clone();
    let maps: HashSet<u32> = entry.map_ids.iter().copied().collect();
    let mut out = vec![entry.clone()];
    out.extend(
        all.into_iter()
            .filter(|p| p.id != id && p.map_ids.iter().any(|m| maps.contains(m))),
    );
    Ok(out)
}

/// The run time per run of program `id` between two readings.
#[derive(Clone, Copy, Debug)]
pub struct RunStats {
    pub ns: u64,
    pub cnt: u64,
}

impl RunStats {
    pub fn read(id: u32) -> Result<RunStats> {
        let p = prog(id)?;
        Ok(RunStats {
            ns: p.run_ns,
            cnt: p.run_cnt,
        })
    }

    /// Nanoseconds per run from `before` to `self`.
    pub fn ns_per_run_since(&self, before: &RunStats) -> Option<f64> {
        let cnt = self.cnt.checked_sub(before.cnt)?;
        (cnt > 0).then(|| (self.ns - before.ns) as f64 / cnt as f64)
    }
}
