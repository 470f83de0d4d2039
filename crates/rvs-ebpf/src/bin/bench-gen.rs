//! Benchmark helper (crates/rvs-bench): a packet generator that stays in XDP frames end to end.
//!
//! The harness runs it with BPF_PROG_RUN and BPF_F_TEST_XDP_LIVE_FRAMES on the generator's
//! `eth0`: every run writes a whole UDP frame from the template in `RVS_BENCH_GEN` (the frame's
//! page is recycled after the director and the sink have rewritten it, so nothing of the last
//! run may be relied on), gives it the flow's source address and port, and returns XDP_TX, which
//! the kernel turns into a transmission out of `eth0` to the director as an XDP frame.
//!
//! Flows: CPU `c` sends flow `base + c * stride + i` for its i-th frame, or `... + i % flows`
//! when `flows` is non-zero (a fixed set cycled through). Flow `f` has source port
//! `port_base + f % port_span` and source address `saddr + f / port_span`.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    helpers::bpf_get_smp_processor_id,
    macros::{map, xdp},
    maps::{Array, PerCpuArray},
    programs::XdpContext,
};
use rvs_ebpf::packet::ptr_at;

/// Bytes of the template: Ethernet, IPv4 without options, UDP.
const HDR_LEN: usize = 42;
const IP_CHECK: usize = 24;
const IP_SADDR: usize = 26;
const UDP_SPORT: usize = 34;

/// Mirrored in crates/rvs-bench/src/xdp.rs.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct GenConfig {
    pub flows: u32,
    pub base: u32,
    pub stride: u32,
    pub port_base: u32,
    pub port_span: u32,
    /// First source address, host byte order.
    pub saddr: u32,
    /// One's complement sum of the template's IPv4 header words except the source address and
    /// the checksum, not folded.
    pub csum_rest: u32,
    pub _pad: u32,
    /// Ethernet + IPv4 + UDP headers (42 bytes used).
    pub hdr: [u8; 48],
}

#[map(name = "RVS_BENCH_GEN")]
static CONFIG: Array<GenConfig> = Array::with_max_entries(1, 0);

/// Frames generated on each CPU since the harness last zeroed it.
#[map(name = "RVS_BENCH_GEN_N")]
static SENT: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[xdp]
pub fn rvs_bench_gen(ctx: XdpContext) -> u32 {
    generate(&ctx).unwrap_or(xdp_action::XDP_ABORTED)
}

#[inline(always)]
fn generate(ctx: &XdpContext) -> Option<u32> {
    let cfg = CONFIG.get(0)?;
    let n = SENT.get_ptr_mut(0)?;
    // SAFETY: a per-CPU slot; this CPU runs one program at a time.
    let i = unsafe {
        let i = *n;
        *n = i + 1;
        i
    };
    let local = match cfg.flows {
        0 => i as u32,
        flows => (i % flows as u64) as u32,
    };
    // SAFETY: no preconditions.
    let cpu = unsafe { bpf_get_smp_processor_id() };
    let f = cfg
        .base
        .wrapping_add(cpu.wrapping_mul(cfg.stride))
        .wrapping_add(local);
    let span = cfg.port_span.max(1);
    let sport = (cfg.port_base + f % span) as u16;
    let saddr = cfg.saddr.wrapping_add(f / span);

    let p = ptr_at::<[u8; HDR_LEN]>(ctx, 0)? as *mut u8;
    let t = cfg.hdr.as_ptr();
    // SAFETY: ptr_at checked that HDR_LEN bytes lie inside the frame; the template holds 48.
    unsafe {
        for k in 0..5 {
            let w = (t.add(k * 8) as *const u64).read_unaligned();
            (p.add(k * 8) as *mut u64).write_unaligned(w);
        }
        (p.add(40) as *mut u16).write_unaligned((t.add(40) as *const u16).read_unaligned());
        let mut sum = cfg.csum_rest + (saddr >> 16) + (saddr & 0xffff);
        sum = (sum & 0xffff) + (sum >> 16);
        sum = (sum & 0xffff) + (sum >> 16);
        (p.add(IP_CHECK) as *mut [u8; 2]).write_unaligned((!(sum as u16)).to_be_bytes());
        (p.add(IP_SADDR) as *mut [u8; 4]).write_unaligned(saddr.to_be_bytes());
        (p.add(UDP_SPORT) as *mut [u8; 2]).write_unaligned(sport.to_be_bytes());
    }
    Some(xdp_action::XDP_TX)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
