//! Rate estimation exactly as IPVS's estimator computes it: every 2 seconds the change of each
//! counter is scaled to a fixed-point rate and folded into an exponentially weighted average with
//! weight 1/4; ipvsadm shows the average rounded to whole units per second.

use serde::{Deserialize, Serialize};

use crate::control::proto::{RateView, StatsView};

/// Interval between samples.
pub const INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Estimator state of one service or real server (the kernel's struct ip_vs_estimator).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Estimator {
    last: StatsView,
    /// Averages: conns and packets scaled by 2^10, bytes by 2^5.
    cps: i64,
    inpps: i64,
    outpps: i64,
    inbps: i64,
    outbps: i64,
}

fn fold(avg: &mut i64, delta: u64, shift: u32) {
    let rate = (delta as i64) << shift;
    *avg += (rate - *avg) >> 2;
}

impl Estimator {
    /// Starts from the counters as they are now (after a reset or at start-up).
    pub fn new(now: StatsView) -> Estimator {
        Estimator {
            last: now,
            ..Estimator::default()
        }
    }

    /// One 2-second sample.
    pub fn sample(&mut self, now: StatsView) {
        let d = |new: u64, old: u64| new.wrapping_sub(old);
        fold(&mut self.cps, d(now.conns, self.last.conns), 9);
        fold(&mut self.inpps, d(now.inpkts, self.last.inpkts), 9);
        fold(&mut self.outpps, d(now.outpkts, self.last.outpkts), 9);
        fold(&mut self.inbps, d(now.inbytes, self.last.inbytes), 4);
        fold(&mut self.outbps, d(now.outbytes, self.last.outbytes), 4);
        self.last = now;
    }

    /// The rates as ipvsadm --rate shows them.
    pub fn rates(&self) -> RateView {
        let per_sec = |avg: i64| (avg.max(0) as u64 + 0x1ff) >> 10;
        let bytes_per_sec = |avg: i64| (avg.max(0) as u64 + 0xf) >> 5;
        RateView {
            cps: per_sec(self.cps),
            inpps: per_sec(self.inpps),
            outpps: per_sec(self.outpps),
            inbps: bytes_per_sec(self.inbps),
            outbps: bytes_per_sec(self.outbps),
        }
    }
}

/// The estimator task: asks the director to sample its counters every [`INTERVAL`].
pub async fn task(director: super::DirectorHandle) {
    let mut tick = tokio::time::interval(INTERVAL);
    loop {
        tick.tick().await;
        director.estimate().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(n: u64) -> StatsView {
        StatsView {
            conns: n,
            inpkts: n * 10,
            outpkts: 0,
            inbytes: n * 1000,
            outbytes: 0,
        }
    }

    #[test]
    fn steady_rate_converges_to_the_true_rate() {
        // 100 connections/s = 200 per 2-second sample. The average closes a quarter of the gap
        // per sample, so byte rates (scaled by only 2^5) need ~80 samples to round right.
        let mut e = Estimator::new(stats(0));
        for i in 1..=80 {
            e.sample(stats(200 * i));
        }
        let r = e.rates();
        assert_eq!(r.cps, 100);
        assert_eq!(r.inpps, 1000);
        assert_eq!(r.inbps, 100_000);
        assert_eq!(r.outpps, 0);
    }

    #[test]
    fn first_sample_is_a_quarter_of_the_rate() {
        // avg = (200 << 9) / 4 = 25600 -> (25600 + 511) >> 10 = 25
        let mut e = Estimator::new(stats(0));
        e.sample(stats(200));
        assert_eq!(e.rates().cps, 25);
    }

    #[test]
    fn decays_when_traffic_stops() {
        let mut e = Estimator::new(stats(0));
        for i in 1..=40 {
            e.sample(stats(200 * i));
        }
        for _ in 0..60 {
            e.sample(stats(8000));
        }
        assert_eq!(e.rates().cps, 0);
    }
}
