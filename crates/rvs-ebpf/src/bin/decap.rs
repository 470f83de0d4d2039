//! The real-server side of rvs's IP tunnelling: an XDP program that strips the outer header of
//! IPIP (IPv4 or IPv6 outer, either inner family), GRE and GUE packets and passes the inner
//! packet —
//! addressed to the VIP, which the real server holds on `lo` — to the kernel, which answers the
//! client directly. The kernel here has no ipip or fou device, so rvs ships this instead;
//! `rvs-rs up --decap ipip|gue` attaches it.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    helpers::bpf_xdp_adjust_head,
    macros::{map, xdp},
    maps::Array,
    programs::XdpContext,
};
use network_types::{
    eth::EthHdr,
    ip::{Ipv4Hdr, Ipv6Hdr},
};
use rvs_ebpf::packet::ptr_at;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const IPPROTO_IPIP: u8 = 4;
const IPPROTO_IPV6: u8 = 41;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_GRE: u8 = 47;
/// GRE flags: checksum, routing, key and sequence number present; the version bits.
const GRE_C: u16 = 0x8000;
const GRE_R: u16 = 0x4000;
const GRE_K: u16 = 0x2000;
const GRE_S: u16 = 0x1000;
const GRE_VERSION: u16 = 0x0007;
const UDP_LEN: usize = 8;
const GUE_LEN: usize = 4;

/// The GUE port to decapsulate, network byte order (0: GUE off).
#[map(name = "RVS_DECAP_GUE_PORT")]
static GUE_PORT: Array<u16> = Array::with_max_entries(1, 0);

#[xdp]
pub fn rvs_decap(ctx: XdpContext) -> u32 {
    decap(&ctx).unwrap_or(xdp_action::XDP_PASS)
}

#[inline(always)]
fn decap(ctx: &XdpContext) -> Option<u32> {
    let eth = ptr_at::<EthHdr>(ctx, 0)?;
    // SAFETY: bounds checked by ptr_at.
    let ether_type = unsafe { (*eth).ether_type };
    let (outer_len, proto) = if ether_type == ETH_P_IP.to_be() {
        let ip = ptr_at::<Ipv4Hdr>(ctx, EthHdr::LEN)?;
        // SAFETY: bounds checked by ptr_at.
        let (vihl, proto, frags) = unsafe { ((*ip).vihl, (*ip).proto, (*ip).frags) };
        if u16::from_be_bytes(frags) & 0x3fff != 0 {
            // Fragments of tunnelled packets are the kernel's to reassemble.
            return None;
        }
        (((vihl & 0x0f) as usize) * 4, proto)
    } else if ether_type == ETH_P_IPV6.to_be() {
        let ip = ptr_at::<Ipv6Hdr>(ctx, EthHdr::LEN)?;
        // SAFETY: bounds checked by ptr_at.
        (Ipv6Hdr::LEN, unsafe { (*ip).next_hdr })
    } else {
        return None;
    };
    if outer_len < Ipv4Hdr::LEN {
        return None;
    }
    let (strip, inner) = match proto {
        IPPROTO_IPIP | IPPROTO_IPV6 => (outer_len, proto),
        IPPROTO_GRE => {
            let h = ptr_at::<[u8; 4]>(ctx, EthHdr::LEN + (outer_len & 0x7f))?;
            // SAFETY: bounds checked by ptr_at.
            let h = unsafe { *h };
            let flags = u16::from_be_bytes([h[0], h[1]]);
            if flags & (GRE_R | GRE_VERSION) != 0 {
                return None;
            }
            let inner = match u16::from_be_bytes([h[2], h[3]]) {
                ETH_P_IP => IPPROTO_IPIP,
                ETH_P_IPV6 => IPPROTO_IPV6,
                _ => return None,
            };
            // The checksum is not verified here (as for GUE); the inner packet's own are.
            let options = [GRE_C, GRE_K, GRE_S]
                .iter()
                .filter(|&&f| flags & f != 0)
                .count();
            (outer_len + 4 + 4 * options, inner)
        }
        IPPROTO_UDP => {
            let port = *GUE_PORT.get(0)?;
            let udp = ptr_at::<[u8; UDP_LEN + GUE_LEN]>(ctx, EthHdr::LEN + (outer_len & 0x7f))?;
            // SAFETY: bounds checked by ptr_at.
            let h = unsafe { *udp };
            if port == 0 || u16::from_ne_bytes([h[2], h[3]]) != port {
                return None;
            }
            // GUE version 0 without options: the first byte is zero; the protocol follows.
            if h[8] != 0 || !matches!(h[9], IPPROTO_IPIP | IPPROTO_IPV6) {
                return None;
            }
            (outer_len + UDP_LEN + GUE_LEN, h[9])
        }
        _ => return None,
    };
    // SAFETY: bounds checked by ptr_at.
    let (dst, src) = unsafe { ((*eth).dst_addr, (*eth).src_addr) };
    // SAFETY: shrinks the frame at its head; pointers are taken again afterwards.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, (strip & 0xff) as i32) } != 0 {
        return Some(xdp_action::XDP_DROP);
    }
    let eth = ptr_at::<EthHdr>(ctx, 0)?;
    // SAFETY: bounds checked by ptr_at.
    unsafe {
        (*eth).dst_addr = dst;
        (*eth).src_addr = src;
        (*eth).ether_type = if inner == IPPROTO_IPV6 {
            ETH_P_IPV6
        } else {
            ETH_P_IP
        }
        .to_be();
    }
    Some(xdp_action::XDP_PASS)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
