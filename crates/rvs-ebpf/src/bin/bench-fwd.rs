//! Benchmark helper (crates/rvs-bench): the ceiling. The least an XDP balancer must do on the
//! same path: frames to the VIP get the configured MACs and leave by the configured interface
//! (XDP_TX when it is the one they came in by, else bpf_redirect); everything else passes.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    helpers::bpf_redirect,
    macros::{map, xdp},
    maps::Array,
    programs::XdpContext,
};
use rvs_ebpf::packet::ptr_at;

const ETH_P_IP: u16 = 0x0800;

/// Mirrored in crates/rvs-bench/src/xdp.rs.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FwdConfig {
    /// The VIP, network byte order as it lies in the packet.
    pub vip: [u8; 4],
    pub ifindex: u32,
    pub dmac: [u8; 6],
    pub smac: [u8; 6],
}

#[map(name = "RVS_BENCH_FWD")]
static CONFIG: Array<FwdConfig> = Array::with_max_entries(1, 0);

#[xdp]
pub fn rvs_bench_fwd(ctx: XdpContext) -> u32 {
    forward(&ctx).unwrap_or(xdp_action::XDP_PASS)
}

#[inline(always)]
fn forward(ctx: &XdpContext) -> Option<u32> {
    let cfg = CONFIG.get(0)?;
    // Ethernet (14) and the IPv4 header up to its destination address (20).
    let h = ptr_at::<[u8; 34]>(ctx, 0)?;
    // SAFETY: bounds checked by ptr_at.
    let h = unsafe { &mut *h };
    if u16::from_be_bytes([h[12], h[13]]) != ETH_P_IP || h[30..34] != cfg.vip {
        return None;
    }
    h[0..6].copy_from_slice(&cfg.dmac);
    h[6..12].copy_from_slice(&cfg.smac);
    // SAFETY: xdp_md's ingress_ifindex is always readable.
    let ingress = unsafe { (*ctx.ctx).ingress_ifindex };
    if cfg.ifindex == ingress {
        return Some(xdp_action::XDP_TX);
    }
    // SAFETY: plain helper call.
    Some(unsafe { bpf_redirect(cfg.ifindex, 0) } as u32)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
