//! Benchmark helper (crates/rvs-bench): the real servers' end of a packet-rate measurement.
//! Counts every IPv4 frame per CPU (frames and bytes) and drops it; passes the rest (ARP), so the
//! host still answers its neighbours.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::PerCpuArray,
    programs::XdpContext,
};
use rvs_ebpf::packet::{frame_len, ptr_at};

const ETH_P_IP: u16 = 0x0800;

/// Slot 0: frames, slot 1: bytes.
#[map(name = "RVS_BENCH_SINK")]
static COUNT: PerCpuArray<u64> = PerCpuArray::with_max_entries(2, 0);

#[xdp]
pub fn rvs_bench_sink(ctx: XdpContext) -> u32 {
    let Some(eth) = ptr_at::<[u8; 14]>(&ctx, 0) else {
        return xdp_action::XDP_PASS;
    };
    // SAFETY: bounds checked by ptr_at.
    let ether_type = unsafe { u16::from_be_bytes([(*eth)[12], (*eth)[13]]) };
    if ether_type != ETH_P_IP {
        return xdp_action::XDP_PASS;
    }
    if let Some(n) = COUNT.get_ptr_mut(0) {
        // SAFETY: a per-CPU slot; this CPU runs one program at a time.
        unsafe { *n += 1 };
    }
    if let Some(b) = COUNT.get_ptr_mut(1) {
        // SAFETY: as above.
        unsafe { *b += frame_len(&ctx) as u64 };
    }
    xdp_action::XDP_DROP
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
