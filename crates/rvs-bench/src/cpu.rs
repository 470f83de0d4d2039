//! Machine CPU time from /proc/stat: how busy all CPUs were between two readings.

use std::time::Duration;

use anyhow::{Context, Result};

#[derive(Clone, Copy, Debug)]
pub struct CpuTimes {
    busy: u64,
    total: u64,
}

impl CpuTimes {
    pub fn read() -> Result<CpuTimes> {
        let stat = std::fs::read_to_string("/proc/stat")?;
        let line = stat.lines().next().context("empty /proc/stat")?;
        let f: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        let total: u64 = f.iter().take(8).sum();
        let idle = f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0);
        Ok(CpuTimes {
            busy: total - idle,
            total,
        })
    }

    /// CPU time all CPUs spent busy since `before`.
    pub fn busy_since(&self, before: &CpuTimes) -> Duration {
        ticks(self.busy.saturating_sub(before.busy))
    }

    /// Busy share of all CPUs' time since `before` (0..=1).
    pub fn load_since(&self, before: &CpuTimes) -> f64 {
        let total = self.total.saturating_sub(before.total);
        if total == 0 {
            return 0.0;
        }
        self.busy.saturating_sub(before.busy) as f64 / total as f64
    }
}

fn ticks(t: u64) -> Duration {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_nanos(t * 1_000_000_000 / hz)
}
