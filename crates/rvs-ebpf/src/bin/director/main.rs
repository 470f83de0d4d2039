//! The rvs director: an XDP program that balances connections to virtual services over real
//! servers, the way IPVS does, before the kernel allocates a socket buffer.
//!
//! Per packet: parse Ethernet/IPv4/TCP|UDP -> look up the service by (protocol, VIP, port) ->
//! look up the flow; a new flow (TCP SYN, any UDP datagram) is scheduled and recorded -> rewrite
//! and transmit by the flow's forwarding method. Anything that is not for a service passes to the
//! kernel untouched.
#![no_std]
#![no_main]

mod conn;
mod counters;
mod maps;
mod sched;
mod xmit;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};
use rvs_common::{
    AF_INET, IPPROTO_TCP, IPPROTO_UDP, conn::ConnKey, service::ServiceKey, stats::Counter,
};
use rvs_ebpf::packet::ptr_at;

const ETH_P_IP: u16 = 0x0800;
/// IPv4 "more fragments" flag and fragment offset mask, in host order of the frags field.
const IP_MF_OFFSET: u16 = 0x3fff;
const TCP_HDR_LEN: usize = 20;
const UDP_HDR_LEN: usize = 8;

#[xdp]
pub fn rvs_director(ctx: XdpContext) -> u32 {
    process(&ctx)
}

/// The parts of a TCP header that drive IPVS's state machine.
#[derive(Clone, Copy)]
pub struct TcpFlags {
    pub syn: bool,
    pub fin: bool,
    pub ack: bool,
    pub rst: bool,
}

#[inline(always)]
fn process(ctx: &XdpContext) -> u32 {
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return xdp_action::XDP_PASS;
    };
    // SAFETY: ptr_at checked that the header lies inside the frame.
    if unsafe { (*eth).ether_type } != ETH_P_IP.to_be() {
        return xdp_action::XDP_PASS;
    }
    let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, EthHdr::LEN) else {
        return xdp_action::XDP_PASS;
    };
    // SAFETY: as above, for the fixed 20-byte IPv4 header.
    let (vihl, proto, frags, saddr, daddr, tot_len) = unsafe {
        (
            (*ip).vihl,
            (*ip).proto,
            u16::from_be_bytes((*ip).frags),
            u32::from_ne_bytes((*ip).src_addr),
            u32::from_ne_bytes((*ip).dst_addr),
            u16::from_be_bytes((*ip).tot_len),
        )
    };
    if vihl >> 4 != 4 || (proto != IPPROTO_TCP && proto != IPPROTO_UDP) {
        return xdp_action::XDP_PASS;
    }
    let ihl = ((vihl & 0x0f) as usize) * 4;
    if ihl < Ipv4Hdr::LEN {
        return xdp_action::XDP_PASS;
    }
    let l4 = EthHdr::LEN + ihl;
    // Both TCP and UDP start with source and destination port.
    let Some(ports) = ptr_at::<[u16; 2]>(ctx, l4) else {
        return xdp_action::XDP_PASS;
    };
    // SAFETY: checked by ptr_at.
    let (sport, dport) = unsafe { ((*ports)[0], (*ports)[1]) };

    let svc_key = ServiceKey {
        addr: [daddr, 0, 0, 0],
        port: dport,
        proto,
        af: AF_INET,
    };
    let Some(svc) = maps::service(&svc_key) else {
        return xdp_action::XDP_PASS;
    };

    if frags & IP_MF_OFFSET != 0 {
        // A first fragment to a service; rvs does not reassemble, the kernel may.
        counters::count(Counter::PassFragment);
        return xdp_action::XDP_PASS;
    }

    let tcp = if proto == IPPROTO_TCP {
        let Some(th) = ptr_at::<[u8; TCP_HDR_LEN]>(ctx, l4) else {
            counters::count(Counter::DropMalformed);
            return xdp_action::XDP_DROP;
        };
        // SAFETY: checked by ptr_at; byte 13 holds the flags.
        let f = unsafe { (*th)[13] };
        Some(TcpFlags {
            fin: f & 0x01 != 0,
            syn: f & 0x02 != 0,
            rst: f & 0x04 != 0,
            ack: f & 0x10 != 0,
        })
    } else {
        if ptr_at::<[u8; UDP_HDR_LEN]>(ctx, l4).is_none() {
            counters::count(Counter::DropMalformed);
            return xdp_action::XDP_DROP;
        }
        None
    };

    let conn_key = ConnKey {
        caddr: [saddr, 0, 0, 0],
        vaddr: [daddr, 0, 0, 0],
        cport: sport,
        vport: dport,
        proto,
        af: AF_INET,
        _pad0: [0; 2],
    };
    let dest_id = match conn::lookup_or_schedule(&conn_key, &svc, tcp) {
        Ok(id) => id,
        Err(action) => return action,
    };
    let Some(dest) = maps::dest(dest_id) else {
        counters::count(Counter::DropBadDest);
        return xdp_action::XDP_DROP;
    };
    counters::account_in(svc.id, dest_id, tot_len as u64);
    xmit::direct_route(ctx, eth, ip, &dest)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
