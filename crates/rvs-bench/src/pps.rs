//! Packet-rate measurements on the line topology: small UDP frames from the XDP-frame generator
//! (one thread per CPU), counted where they arrive, at the sink.

use std::{
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, ensure};

use crate::{
    cpu::CpuTimes,
    line::Line,
    progs::{self, RunStats},
    stats::Sample,
    xdp::{Budget, Flows, Generator, STRIDE, Sent, Sink},
};

/// Flows per CPU that warm runs of new flows up.
const WARM_FLOWS: u32 = 256;
/// How long frames may still be in flight after the generator stops.
const SETTLE: Duration = Duration::from_millis(30);

/// What one timed run measured.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    /// Frames per second that reached the sink.
    pub pps: f64,
    /// Frames that reached the sink / frames generated.
    pub delivered: f64,
    /// All CPUs' busy time per frame that reached the sink, ns.
    pub cpu_ns: f64,
    /// The director program's run time per run, ns (when asked for and statistics are on).
    pub prog_ns: Option<f64>,
    /// CPU time of the watched daemon (rvsd) during the run, as a share of one CPU.
    pub daemon_cpu: Option<f64>,
}

/// A figure over repetitions: packet rate, delivery, and per-packet costs.
#[derive(Clone, Debug, Default)]
pub struct Figure {
    pub pps: Sample,
    pub delivered: Sample,
    pub cpu_ns: Sample,
    pub prog_ns: Sample,
    pub daemon_cpu: Sample,
}

impl Figure {
    /// Adds a run: its rates when `timed`, its program's run time when it was measured.
    pub fn add(&mut self, r: &Run, timed: bool) {
        if timed {
            self.pps.push(r.pps);
            self.delivered.push(r.delivered);
            self.cpu_ns.push(r.cpu_ns);
            if let Some(d) = r.daemon_cpu {
                self.daemon_cpu.push(d);
            }
        }
        if let Some(ns) = r.prog_ns {
            self.prog_ns.push(ns);
        }
    }
}

/// The generator and sink on a line, and the flow numbers used so far (each measurement takes
/// fresh flows, so a director never sees a flow of an earlier measurement as known).
pub struct Bench<'a> {
    pub line: &'a Line,
    pub sink: Sink,
    generator: Generator,
    next_flow: u32,
    /// The flows of the last steady-state measurement.
    last: Option<Flows>,
    /// A process (rvsd) whose CPU time each run reports.
    pub watch: Option<u32>,
    /// A few flows that warm runs of new flows up (they become known at their first use).
    warm_flows: Flows,
}

impl<'a> Bench<'a> {
    /// Attaches the sink at the far end of the line; the generator sends to the director.
    pub fn new(line: &'a Line) -> Result<Bench<'a>> {
        let generator = Generator::new(
            &line.client,
            "eth0",
            line.client_mac(),
            line.director_mac(),
            crate::line::VIP,
        )?;
        Ok(Bench {
            line,
            sink: Sink::attach(&line.sink, "eth0")?,
            generator,
            next_flow: WARM_FLOWS,
            last: None,
            watch: None,
            warm_flows: Flows {
                base: 0,
                per_cpu: WARM_FLOWS,
            },
        })
    }

    /// `n` fresh flow numbers on each CPU.
    fn fresh(&mut self, n: u64) -> Result<u32> {
        let base = self.next_flow;
        let end = u64::from(base) + n;
        ensure!(end < u64::from(STRIDE), "out of flow numbers");
        self.next_flow = end as u32;
        Ok(base)
    }

    /// One run of the generator, measured at `sink` (the line's sink unless told otherwise),
    /// after a warm-up on `warm`.
    pub fn run(
        &mut self,
        warm: Option<Flows>,
        flows: Flows,
        budget: Budget,
        prog: Option<u32>,
        sink: Option<&Sink>,
    ) -> Result<Run> {
        let _stats = prog.map(|_| progs::stats_on()).transpose()?;
        let sink = sink.unwrap_or(&self.sink);
        let watch = self.watch;
        let (sent, before) = self
            .generator
            .run(&self.line.client, warm, flows, budget, || {
                Ok((
                    sink.frames()?,
                    CpuTimes::read()?,
                    prog.map(RunStats::read).transpose()?,
                    watch.and_then(|pid| crate::rvs::process_cpu(pid).ok()),
                ))
            })?;
        let end = Instant::now();
        thread::sleep(SETTLE);
        let (frames_before, cpu_before, stats_before, daemon_before) = before;
        let got = sink.frames()? - frames_before;
        let cpu_after = CpuTimes::read()?;
        let stats_after = prog.map(RunStats::read).transpose()?;
        let daemon_after = watch.and_then(|pid| crate::rvs::process_cpu(pid).ok());
        let secs = sent.elapsed.as_secs_f64().max(1e-6);
        // The daemon's CPU share over the whole time between the readings.
        let span = (end - sent.elapsed).elapsed().as_secs_f64().max(secs);
        let busy = cpu_after.busy_since(&cpu_before);
        if std::env::var_os("RVS_BENCH_DEBUG").is_some() {
            crate::progress(&format!(
                "    run: sent {} got {got} in {secs:.3} s = {:.3} Mpps, load {:.2}, daemon {:?}",
                sent.frames,
                got as f64 / secs / 1e6,
                cpu_after.load_since(&cpu_before),
                daemon_before
                    .zip(daemon_after)
                    .map(|(b, a)| a.saturating_sub(b))
            ));
        }
        Ok(Run {
            pps: got as f64 / secs,
            delivered: got as f64 / sent.frames.max(1) as f64,
            cpu_ns: busy.as_nanos() as f64 / got.max(1) as f64,
            prog_ns: match (stats_before, stats_after) {
                (Some(b), Some(a)) => a.ns_per_run_since(&b),
                _ => None,
            },
            daemon_cpu: daemon_before
                .zip(daemon_after)
                .map(|(b, a)| a.saturating_sub(b).as_secs_f64() / span),
        })
    }

    /// Steady state: `flows_per_cpu` flows per CPU, made known to the director by one pass,
    /// then sent round and round: `reps` timed runs of `time`, and one more with run-time
    /// statistics for `prog`.
    pub fn steady(
        &mut self,
        flows_per_cpu: u32,
        time: Duration,
        reps: usize,
        prog: Option<u32>,
        sink: Option<&Sink>,
    ) -> Result<Figure> {
        let flows = Flows {
            base: self.fresh(u64::from(flows_per_cpu))?,
            per_cpu: flows_per_cpu,
        };
        // Warm: every flow once, plus a little time for the director to settle.
        let warm = Budget {
            time: Duration::from_secs(10),
            frames_per_cpu: u64::from(flows_per_cpu),
        };
        self.run(None, flows, warm, None, sink)
            .context("warming the flows")?;
        let timed = Budget {
            time,
            frames_per_cpu: u64::MAX,
        };
        self.last = Some(flows);
        let mut fig = Figure::default();
        for _ in 0..reps {
            let r = self.run(Some(flows), flows, timed, None, sink)?;
            fig.add(&r, true);
        }
        if prog.is_some() {
            let r = self.run(Some(flows), flows, timed, prog, sink)?;
            fig.add(&r, false);
        }
        Ok(fig)
    }

    /// Sends the flows of the last steady-state measurement again for `time` (to profile it).
    pub fn rerun(&mut self, time: Duration, sink: Option<&Sink>) -> Result<Run> {
        let flows = self.last.context("no steady-state flows yet")?;
        let budget = Budget {
            time,
            frames_per_cpu: u64::MAX,
        };
        self.run(Some(flows), flows, budget, None, sink)
    }

    /// The flows of the last steady-state measurement again for `time`, with run-time
    /// statistics of `prog` when given.
    pub fn again(&mut self, time: Duration, prog: Option<u32>) -> Result<Run> {
        let flows = self.last.context("no steady-state flows yet")?;
        let budget = Budget {
            time,
            frames_per_cpu: u64::MAX,
        };
        self.run(Some(flows), flows, budget, prog, None)
    }

    /// New flows: every frame starts a flow never sent before, at most `per_cpu` frames per
    /// CPU per run (bounding what a connection table receives), `reps` timed runs and one with
    /// statistics for `prog`.
    pub fn new_flows(
        &mut self,
        per_cpu: u64,
        time: Duration,
        reps: usize,
        prog: Option<u32>,
    ) -> Result<Figure> {
        let mut fig = Figure::default();
        let budget = Budget {
            time,
            frames_per_cpu: per_cpu,
        };
        for i in 0..=reps {
            let stats = (i == reps).then_some(prog).flatten();
            if i == reps && stats.is_none() {
                break;
            }
            let flows = Flows {
                base: self.fresh(per_cpu)?,
                per_cpu: 0,
            };
            let r = self.run(Some(self.warm_flows), flows, budget, stats, None)?;
            fig.add(&r, i < reps);
        }
        Ok(fig)
    }

    /// Sends `per_cpu` new flows per CPU as fast as the director takes them (filling its
    /// connection table), bounded by `time`; returns the flows sent and the flow range used.
    pub fn fill(&mut self, per_cpu: u64, time: Duration) -> Result<(Sent, Flows)> {
        let flows = Flows {
            base: self.fresh(per_cpu)?,
            per_cpu: 0,
        };
        let budget = Budget {
            time,
            frames_per_cpu: per_cpu,
        };
        let warm = Some(self.warm_flows);
        let (sent, ()) = self
            .generator
            .run(&self.line.client, warm, flows, budget, || Ok(()))?;
        thread::sleep(SETTLE);
        Ok((sent, flows))
    }

    /// `per_cpu` fresh flows per CPU, each sent `passes` times (the flows round and round, no
    /// warm-up), bounded by `time`.
    pub fn passes(&mut self, per_cpu: u32, passes: u64, time: Duration) -> Result<(Sent, Flows)> {
        let flows = Flows {
            base: self.fresh(u64::from(per_cpu))?,
            per_cpu,
        };
        let budget = Budget {
            time,
            frames_per_cpu: u64::from(per_cpu) * passes,
        };
        let (sent, ()) = self
            .generator
            .run(&self.line.client, None, flows, budget, || Ok(()))?;
        thread::sleep(SETTLE);
        Ok((sent, flows))
    }

    /// Steady state over flows sent before by [`Bench::fill`] (the director knows them all).
    pub fn steady_over(
        &mut self,
        filled: Flows,
        per_cpu: u32,
        time: Duration,
        reps: usize,
        prog: Option<u32>,
    ) -> Result<Figure> {
        let flows = Flows {
            base: filled.base,
            per_cpu,
        };
        let timed = Budget {
            time,
            frames_per_cpu: u64::MAX,
        };
        let mut fig = Figure::default();
        for _ in 0..reps {
            let r = self.run(Some(flows), flows, timed, None, None)?;
            fig.add(&r, true);
        }
        if prog.is_some() {
            let r = self.run(Some(flows), flows, timed, prog, None)?;
            fig.add(&r, false);
        }
        Ok(fig)
    }
}
