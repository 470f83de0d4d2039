//! An XDP program that passes every frame. The testbed attaches it to the far end of each veth a
//! director transmits into: a veth delivers XDP_TX / redirected frames only when its peer runs
//! NAPI, which an attached XDP program turns on (see ../shared/TOOLCHAIN.md).
#![no_std]
#![no_main]

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

#[xdp]
pub fn rvs_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
