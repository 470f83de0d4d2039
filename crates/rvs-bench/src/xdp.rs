//! The harness's own XDP programs (crates/rvs-ebpf/src/bin/bench-*.rs): the sink that counts
//! what reaches a real server, the ceiling forwarder, and the generator that sends UDP frames as
//! XDP frames with BPF_PROG_RUN (BPF_F_TEST_XDP_LIVE_FRAMES), so the director receives them as a
//! NIC driver would hand them over, without the socket-buffer conversion a packet socket costs.

use std::{
    net::Ipv4Addr,
    sync::Barrier,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use aya::{
    Ebpf, Pod,
    maps::{Array, MapData, PerCpuArray, PerCpuValues},
    programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp, XdpMode},
    util::nr_cpus,
};
use nix::{
    sched::{CpuSet, sched_setaffinity},
    unistd::Pid,
};
use rvs_testbed::{Mac, Netns};

/// Mirror of `GenConfig` in bench-gen.rs.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct GenConfig {
    flows: u32,
    base: u32,
    stride: u32,
    port_base: u32,
    port_span: u32,
    saddr: u32,
    csum_rest: u32,
    _pad: u32,
    hdr: [u8; 48],
}

/// Mirror of `FwdConfig` in bench-fwd.rs.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct FwdConfig {
    vip: [u8; 4],
    ifindex: u32,
    dmac: [u8; 6],
    smac: [u8; 6],
}

// SAFETY: #[repr(C)], integers and byte arrays only, no implicit padding (checked by the
// size assertions below).
unsafe impl Pod for GenConfig {}
// SAFETY: as above.
unsafe impl Pod for FwdConfig {}
const _: () = assert!(size_of::<GenConfig>() == 80 && size_of::<FwdConfig>() == 20);

/// UDP destination port of the generated frames (discard).
pub const UDP_PORT: u16 = 9;
/// Generated frames are 60 bytes (64 on a wire with the FCS): the smallest Ethernet frame.
pub const FRAME_LEN: usize = 60;
/// Flows of one CPU are numbered from `base + cpu * STRIDE`.
pub const STRIDE: u32 = 1 << 24;
/// Source ports run over this many values before the source address moves on.
const PORT_SPAN: u32 = 60_000;
const PORT_BASE: u32 = 1024;
/// The first source address of generated flows (inside 198.18.0.0/15).
pub const FIRST_SOURCE: Ipv4Addr = Ipv4Addr::new(198, 18, 64, 1);

fn load_xdp(bytes: &[u8], name: &str) -> Result<Ebpf> {
    let mut bpf = Ebpf::load(bytes).with_context(|| format!("loading the {name} object"))?;
    let prog: &mut Xdp = bpf
        .program_mut(name)
        .with_context(|| format!("{name} missing from its object"))?
        .try_into()?;
    prog.load()
        .with_context(|| format!("loading {name} into the kernel"))?;
    Ok(bpf)
}

fn attach(bpf: &mut Ebpf, name: &str, ns: &Netns, ifname: &str) -> Result<()> {
    let ifindex = ns.ifindex(ifname)?;
    let prog: &mut Xdp = bpf.program_mut(name).context("program")?.try_into()?;
    // The kernel looks the ifindex up in the calling thread's namespace.
    ns.enter(|| prog.attach_to_if_index(ifindex, XdpMode::Driver))?
        .with_context(|| format!("attaching {name} to {ifname} in {}", ns.name()))?;
    Ok(())
}

fn prog_id(bpf: &Ebpf, name: &str) -> Result<u32> {
    let prog: &Xdp = bpf.program(name).context("program")?.try_into()?;
    Ok(prog.info()?.id())
}

/// The counting sink, attached to a real server's interface; detached when dropped.
pub struct Sink {
    bpf: Ebpf,
}

impl Sink {
    const PROG: &'static str = "rvs_bench_sink";

    pub fn attach(ns: &Netns, ifname: &str) -> Result<Sink> {
        let mut bpf = load_xdp(rvs::ebpf::BENCH_SINK, Self::PROG)?;
        attach(&mut bpf, Self::PROG, ns, ifname)?;
        Ok(Sink { bpf })
    }

    /// Frames counted so far (all CPUs).
    pub fn frames(&self) -> Result<u64> {
        let map = self.bpf.map("RVS_BENCH_SINK").context("sink map")?;
        let count: PerCpuArray<_, u64> = PerCpuArray::try_from(map)?;
        Ok(count.get(&0, 0)?.iter().sum())
    }
}

/// The ceiling: re-addresses frames to the VIP and sends them out of one interface.
pub struct Forwarder {
    bpf: Ebpf,
}

impl Forwarder {
    const PROG: &'static str = "rvs_bench_fwd";

    /// Attaches to `ifname` in `ns`: frames to `vip` get `smac` → `dmac` and leave by `out`
    /// (XDP_TX if it is `ifname`).
    pub fn attach(
        ns: &Netns,
        ifname: &str,
        vip: Ipv4Addr,
        out: &str,
        smac: Mac,
        dmac: Mac,
    ) -> Result<Forwarder> {
        let mut bpf = load_xdp(rvs::ebpf::BENCH_FWD, Self::PROG)?;
        let cfg = FwdConfig {
            vip: vip.octets(),
            ifindex: ns.ifindex(out)?,
            dmac: dmac.octets(),
            smac: smac.octets(),
        };
        let mut map: Array<_, FwdConfig> =
            Array::try_from(bpf.map_mut("RVS_BENCH_FWD").context("forwarder map")?)?;
        map.set(0, cfg, 0)?;
        attach(&mut bpf, Self::PROG, ns, ifname)?;
        Ok(Forwarder { bpf })
    }

    pub fn prog_id(&self) -> Result<u32> {
        prog_id(&self.bpf, Self::PROG)
    }
}

/// The flows of one generator run.
#[derive(Clone, Copy, Debug)]
pub struct Flows {
    /// Flow number of CPU 0's first flow; CPU c starts at `base + c * STRIDE`.
    pub base: u32,
    /// Each CPU cycles over this many flows; 0: every frame is a flow never sent before.
    pub per_cpu: u32,
}

/// How long and how much a run sends.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub time: Duration,
    /// Frames per CPU at most.
    pub frames_per_cpu: u64,
}

/// What a generator run did.
#[derive(Clone, Copy, Debug)]
pub struct Sent {
    pub frames: u64,
    pub elapsed: Duration,
}

/// The XDP-frame generator for one interface: UDP frames from `FIRST_SOURCE` onwards to
/// `vip:UDP_PORT`, addressed to the MAC of the interface's peer.
pub struct Generator {
    bpf: Ebpf,
    config: Array<MapData, GenConfig>,
    sent: PerCpuArray<MapData, u64>,
    ifindex: u32,
    cpus: Vec<usize>,
}

/// The idle veth that keeps the generator in the XDP dispatcher.
const HOLD_IF: &str = "xdpgen0";

/// How long each run warms up (caches, page pools, NAPI) before the timed part.
const WARM_UP: Duration = Duration::from_millis(100);

impl Generator {
    const PROG: &'static str = "rvs_bench_gen";

    /// Loads the generator for `ifname` in `ns` (MAC `smac`) towards `dmac`.
    pub fn new(ns: &Netns, ifname: &str, smac: Mac, dmac: Mac, vip: Ipv4Addr) -> Result<Self> {
        let mut bpf = load_xdp(rvs::ebpf::BENCH_GEN, Self::PROG)?;
        let hdr = template(smac, dmac, vip);
        let cfg = GenConfig {
            flows: 0,
            base: 0,
            stride: STRIDE,
            port_base: PORT_BASE,
            port_span: PORT_SPAN,
            saddr: u32::from(FIRST_SOURCE),
            csum_rest: csum_rest(&hdr),
            _pad: 0,
            hdr,
        };
        let mut config: Array<_, GenConfig> =
            Array::try_from(bpf.take_map("RVS_BENCH_GEN").context("generator map")?)?;
        config.set(0, cfg, 0)?;
        let sent = PerCpuArray::try_from(bpf.take_map("RVS_BENCH_GEN_N").context("counter")?)?;
        // BPF_PROG_RUN of an XDP program adds it to the kernel's XDP dispatcher and removes it
        // again, each time, and either change waits for an RCU grace period, which the other
        // CPU's generator, busy in the kernel, delays: the threads took turns sleeping. Attached
        // somewhere (in generic mode, to an idle veth that never carries a frame), the program
        // stays in the dispatcher and each run starts at once.
        ns.ip(&[
            "link", "add", HOLD_IF, "type", "veth", "peer", "name", "xdpgen1",
        ])?;
        let ifindex = ns.ifindex(HOLD_IF)?;
        let prog: &mut Xdp = bpf.program_mut(Self::PROG).context("program")?.try_into()?;
        ns.enter(|| prog.attach_to_if_index(ifindex, XdpMode::Skb))?
            .context("attaching the generator to its idle veth")?;
        Ok(Generator {
            bpf,
            config,
            sent,
            ifindex: ns.ifindex(ifname)?,
            cpus: online_cpus()?,
        })
    }

    /// The source address and port of flow number `f`.
    #[cfg(test)]
    fn flow_source(f: u32) -> (Ipv4Addr, u16) {
        let ip = Ipv4Addr::from(u32::from(FIRST_SOURCE) + f / PORT_SPAN);
        (ip, (PORT_BASE + f % PORT_SPAN) as u16)
    }

    /// Switches to sending `flows` from their first frame.
    fn configure(
        config: &mut Array<MapData, GenConfig>,
        sent: &mut PerCpuArray<MapData, u64>,
        flows: Flows,
    ) -> Result<()> {
        let mut cfg = config.get(&0, 0)?;
        cfg.flows = flows.per_cpu;
        cfg.base = flows.base;
        let n = nr_cpus().map_err(|(_, e)| e)?;
        sent.set(0, PerCpuValues::try_from(vec![0u64; n])?, 0)?;
        config.set(0, cfg, 0)?;
        Ok(())
    }

    /// Sends `flows` from every CPU, one thread per CPU inside `ns`, until the budget is spent.
    /// Each thread first sends `warm` (known flows, so that no table grows) for [`WARM_UP`];
    /// then `at_switch` runs (to take the counters' starting values), and the run is timed from
    /// when all threads start sending `flows` until the last one stops.
    pub fn run<T>(
        &mut self,
        ns: &Netns,
        warm: Option<Flows>,
        flows: Flows,
        budget: Budget,
        at_switch: impl FnOnce() -> Result<T>,
    ) -> Result<(Sent, T)> {
        let warm_budget = Budget {
            time: if warm.is_some() {
                WARM_UP
            } else {
                Duration::ZERO
            },
            frames_per_cpu: u64::MAX,
        };
        Self::configure(&mut self.config, &mut self.sent, warm.unwrap_or(flows))?;
        let prog: &Xdp = self
            .bpf
            .program(Self::PROG)
            .context("program")?
            .try_into()?;
        let frame = [0u8; FRAME_LEN];
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
        // egress_ifindex.
        let md: [u32; 6] = [0, FRAME_LEN as u32, 0, self.ifindex, 0, 0];
        let ctx: Vec<u8> = md.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let (frame, ctx) = (&frame[..], &ctx[..]);
        // The threads and this one: warmed up, then switched to the flows, then go.
        let warmed = Barrier::new(self.cpus.len() + 1);
        let go = Barrier::new(self.cpus.len() + 1);
        let (config, sent) = (&mut self.config, &mut self.sent);
        let (switched, results) = thread::scope(|s| {
            let handles: Vec<_> = (self.cpus.iter())
                .map(|&cpu| {
                    let (warmed, go) = (&warmed, &go);
                    s.spawn(move || -> Result<(u64, Instant, Instant)> {
                        let mut set = CpuSet::new();
                        set.set(cpu)?;
                        let pinned = sched_setaffinity(Pid::from_raw(0), &set);
                        // Every thread passes both barriers, whatever fails.
                        let mut passed = false;
                        let r = ns.enter(|| -> Result<(u64, Instant, Instant)> {
                            let warm = pinned
                                .map_err(anyhow::Error::from)
                                .and_then(|()| send(prog, frame, ctx, warm_budget));
                            warmed.wait();
                            go.wait();
                            passed = true;
                            warm?;
                            let start = Instant::now();
                            let n = send(prog, frame, ctx, budget)?;
                            Ok((n, start, Instant::now()))
                        });
                        if !passed {
                            warmed.wait();
                            go.wait();
                        }
                        r?
                    })
                })
                .collect();
            warmed.wait();
            // Frames of the warm-up still in flight now are a few hundred at most.
            let switched = Self::configure(config, sent, flows).and_then(|()| at_switch());
            go.wait();
            let results: Vec<Result<(u64, Instant, Instant)>> = handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| bail!("a generator thread panicked"))
                })
                .collect();
            (switched, results)
        });
        let switched = switched?;
        let mut frames = 0;
        let mut span: Option<(Instant, Instant)> = None;
        for r in results {
            let (n, start, end) = r?;
            frames += n;
            span = Some(match span {
                None => (start, end),
                Some((s, e)) => (s.min(start), e.max(end)),
            });
        }
        let elapsed = span.map_or(Duration::ZERO, |(s, e)| e - s);
        Ok((Sent { frames, elapsed }, switched))
    }
}

/// One thread's share: BPF_PROG_RUN in chunks until the time or the frames run out.
fn send(prog: &Xdp, frame: &[u8], ctx: &[u8], budget: Budget) -> Result<u64> {
    const CHUNK: u64 = 1 << 14;
    let deadline = Instant::now() + budget.time;
    let mut sent = 0u64;
    while sent < budget.frames_per_cpu && Instant::now() < deadline {
        let n = CHUNK.min(budget.frames_per_cpu - sent);
        let opts = TestRunOptions {
            data_in: Some(frame),
            ctx_in: Some(ctx),
            repeat: n as u32,
            attrs: TestRunAttrs::new().xdp_live_frames(0),
            ..TestRunOptions::new()
        };
        // In live-frame mode the kernel reports no verdict: what was sent shows at the sink.
        prog.test_run(opts)
            .context("BPF_PROG_RUN of the generator")?;
        sent += n;
    }
    Ok(sent)
}

/// Ethernet + IPv4 + UDP headers of a 60-byte frame to `vip:UDP_PORT` (source filled per frame).
fn template(smac: Mac, dmac: Mac, vip: Ipv4Addr) -> [u8; 48] {
    let mut h = [0u8; 48];
    h[0..6].copy_from_slice(&dmac.octets());
    h[6..12].copy_from_slice(&smac.octets());
    h[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (FRAME_LEN - 14) as u16;
    h[14] = 0x45;
    h[16..18].copy_from_slice(&ip_len.to_be_bytes());
    h[20..22].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
    h[22] = 64; // TTL
    h[23] = 17; // UDP
    h[30..34].copy_from_slice(&vip.octets());
    h[36..38].copy_from_slice(&UDP_PORT.to_be_bytes());
    h[38..40].copy_from_slice(&(ip_len - 20).to_be_bytes());
    // UDP checksum 0: none, allowed over IPv4.
    h
}

/// The IPv4 header's 16-bit words summed, except the checksum (10..12) and source (12..16).
fn csum_rest(h: &[u8; 48]) -> u32 {
    let ip = &h[14..34];
    (0..10)
        .filter(|&w| !(5..=7).contains(&w))
        .map(|w| u32::from(u16::from_be_bytes([ip[2 * w], ip[2 * w + 1]])))
        .sum()
}

/// The CPUs this process may run on.
fn online_cpus() -> Result<Vec<usize>> {
    let n = thread::available_parallelism()?.get();
    ensure!(n >= 1, "no CPU");
    Ok((0..n).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_checksum_matches_a_full_computation() {
        let hdr = template(
            Mac([2, 0, 0, 0, 0, 1]),
            Mac([2, 0, 0, 0, 0, 2]),
            Ipv4Addr::new(198, 18, 0, 100),
        );
        let saddr = u32::from(FIRST_SOURCE) + 7;
        let mut sum = csum_rest(&hdr) + (saddr >> 16) + (saddr & 0xffff);
        sum = (sum & 0xffff) + (sum >> 16);
        sum = (sum & 0xffff) + (sum >> 16);
        let mut ip = hdr[14..34].to_vec();
        ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        ip[12..16].copy_from_slice(&saddr.to_be_bytes());
        let total: u32 = ip
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        let folded = (total & 0xffff) + (total >> 16);
        assert_eq!((folded & 0xffff) + (folded >> 16), 0xffff);
        assert_eq!(
            Generator::flow_source(60_001),
            (Ipv4Addr::new(198, 18, 64, 2), 1025)
        );
    }
}
