//! NAT ("masquerading", IPVS's VS/NAT). Towards the real server the packet's destination becomes
//! the real server's address and port (port mapping included); the real server answers through
//! the director, whose entry program finds the flow by the reply's addresses (`NAT_REPLIES`),
//! and the reply's source becomes the VIP and virtual port again. Checksums are updated
//! incrementally (RFC 1624).

use aya_ebpf::{
    bindings::{BPF_FIB_LKUP_RET_SUCCESS, bpf_fib_lookup as FibParams, xdp_action},
    helpers::bpf_fib_lookup,
    programs::XdpContext,
};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};
use rvs_common::{AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP, csum, stats::Counter};
use rvs_ebpf::packet::ptr_at;

use super::{decrement_ttl, send, target};
use crate::{counters, maps::SCRATCH, parse::Packet};

/// Which end of a packet to rewrite.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum End {
    Source,
    Destination,
}

/// Offset of the address of `end` from the start of the IP header.
#[inline(always)]
fn addr_offset(af: u8, end: End) -> usize {
    match (af == AF_INET6, end) {
        (false, End::Source) => 12,
        (false, End::Destination) => 16,
        (true, End::Source) => 8,
        (true, End::Destination) => 24,
    }
}

/// Rewrites the address and port of one end of a TCP or UDP packet, updating the IPv4 header
/// checksum and the transport checksum (whose pseudo-header covers the addresses).
#[inline(always)]
pub fn rewrite(
    ctx: &XdpContext,
    p: &Packet,
    end: End,
    addr: &[u32; 4],
    port: u16,
) -> Result<(), u32> {
    let malformed = || {
        counters::count(Counter::DropMalformed);
        Err(xdp_action::XDP_DROP)
    };
    let ip = EthHdr::LEN;
    let old_addr = if end == End::Source {
        p.flow.saddr
    } else {
        p.flow.daddr
    };
    let old_port = if end == End::Source {
        p.flow.sport
    } else {
        p.flow.dport
    };
    if p.flow.af == AF_INET {
        let Some(h) = ptr_at::<Ipv4Hdr>(ctx, ip) else {
            return malformed();
        };
        // SAFETY: bounds checked by ptr_at; the address is 4 bytes at 12 or 16.
        unsafe {
            let a = (h as *mut u8).add(addr_offset(AF_INET, end)) as *mut [u8; 4];
            *a = addr[0].to_ne_bytes();
            let c = csum::replace32(
                u16::from_be_bytes((*h).check),
                u32::from_be(old_addr[0]),
                u32::from_be(addr[0]),
            );
            (*h).check = c.to_be_bytes();
        }
    } else {
        let Some(a) = ptr_at::<[u32; 4]>(ctx, ip + addr_offset(AF_INET6, end)) else {
            return malformed();
        };
        // SAFETY: bounds checked by ptr_at.
        unsafe { *a = *addr };
    }
    // The transport header: ports at 0 and 2, checksum at 16 (TCP) or 6 (UDP).
    let l4 = p.l4_off as usize & 0x7f;
    let (check_at, may_be_zero) = match p.flow.proto {
        IPPROTO_TCP => (16, false),
        IPPROTO_UDP => (6, p.flow.af == AF_INET),
        _ => return Ok(()),
    };
    let Some(th) = ptr_at::<[u8; 20]>(ctx, l4) else {
        // A UDP header is only 8 bytes; fall back to that size.
        let Some(uh) = ptr_at::<[u8; 8]>(ctx, l4) else {
            return malformed();
        };
        // SAFETY: bounds checked by ptr_at.
        return unsafe {
            patch(
                &mut *uh,
                end,
                check_at,
                may_be_zero,
                &old_addr,
                addr,
                old_port,
                port,
                p.flow.af,
            )
        };
    };
    // SAFETY: bounds checked by ptr_at.
    unsafe {
        patch(
            &mut *th,
            end,
            check_at,
            may_be_zero,
            &old_addr,
            addr,
            old_port,
            port,
            p.flow.af,
        )
    }
}

/// Writes the port of `end` and updates the checksum at `check_at` for the new address and port.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn patch<const N: usize>(
    h: &mut [u8; N],
    end: End,
    check_at: usize,
    may_be_zero: bool,
    old_addr: &[u32; 4],
    addr: &[u32; 4],
    old_port: u16,
    port: u16,
    af: u8,
) -> Result<(), u32> {
    if check_at + 2 > N {
        return Err(xdp_action::XDP_DROP);
    }
    let port_at = if end == End::Source { 0 } else { 2 };
    h[port_at..port_at + 2].copy_from_slice(&port.to_ne_bytes());
    let old = u16::from_be_bytes([h[check_at], h[check_at + 1]]);
    if old == 0 && may_be_zero {
        // An IPv4 UDP datagram without a checksum stays without one.
        return Ok(());
    }
    let mut c = if af == AF_INET6 {
        csum::replace128(old, old_addr, addr)
    } else {
        csum::replace32(old, u32::from_be(old_addr[0]), u32::from_be(addr[0]))
    };
    c = csum::replace16(c, u16::from_be(old_port), u16::from_be(port));
    if c == 0 && may_be_zero {
        // Zero means "no checksum" in UDP: send the other zero.
        c = 0xffff;
    }
    h[check_at..check_at + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// Client to real server.
#[inline(always)]
pub fn run_in(ctx: &XdpContext) -> u32 {
    let (s, dest) = match target() {
        Ok(t) => t,
        Err(action) => return action,
    };
    if s.packet.l3_len as u32 > dest.mtu {
        return crate::icmp::send_too_big(ctx, &s.packet, dest.mtu);
    }
    counters::account_in(s.svc.id, s.dest_id, s.packet.l3_len as u64);
    if let Err(action) = rewrite(
        ctx,
        &s.packet,
        End::Destination,
        &dest.addr,
        s.key.server_port(dest.port, keep_port_flags(s.keep_port)),
    ) {
        return action;
    }
    if let Err(action) = decrement_ttl(ctx, s.packet.flow.af) {
        return action;
    }
    send(ctx, &s.packet, &dest.dmac, &dest.smac, dest.ifindex)
}

/// Real server to client: the reply leaves with the VIP and virtual port as its source, towards
/// the client's next hop as the director's routing table says.
#[inline(always)]
pub fn run_out(ctx: &XdpContext) -> u32 {
    let Some(s) = SCRATCH.get(0) else {
        counters::count(Counter::DropTailCall);
        return xdp_action::XDP_DROP;
    };
    let p = &s.packet;
    counters::account_out(s.svc.id, s.dest_id, p.l3_len as u64);
    // The flow's key holds the VIP and virtual port the client sent to.
    if let Err(action) = rewrite(ctx, p, End::Source, &s.key.vaddr, s.key.vport) {
        return action;
    }
    if let Err(action) = decrement_ttl(ctx, p.flow.af) {
        return action;
    }
    route_to(
        ctx,
        p,
        p.flow.proto,
        &s.key.vaddr,
        &p.flow.daddr,
        s.key.vport,
        p.flow.dport,
    )
}

/// Sends a packet towards `dst` as the director's routing table says (bpf_fib_lookup), or leaves
/// it to the kernel to forward when the next hop's MAC is not known yet.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn route_to(
    ctx: &XdpContext,
    p: &Packet,
    proto: u8,
    src: &[u32; 4],
    dst: &[u32; 4],
    sport: u16,
    dport: u16,
) -> u32 {
    let af = p.flow.af;
    // SAFETY: an all-zero bpf_fib_lookup is a valid request to fill in.
    let mut fib: FibParams = unsafe { core::mem::zeroed() };
    fib.family = if af == AF_INET6 { 10 } else { 2 };
    fib.l4_protocol = proto;
    fib.sport = sport;
    fib.dport = dport;
    fib.__bindgen_anon_1.tot_len = p.l3_len;
    fib.ifindex = p.ingress;
    if af == AF_INET6 {
        fib.__bindgen_anon_3.ipv6_src = *src;
        fib.__bindgen_anon_4.ipv6_dst = *dst;
    } else {
        fib.__bindgen_anon_3.ipv4_src = src[0];
        fib.__bindgen_anon_4.ipv4_dst = dst[0];
    }
    // SAFETY: the helper reads and writes the struct on our stack, of the size given.
    let rc = unsafe {
        bpf_fib_lookup(
            ctx.ctx as *mut _,
            &raw mut fib,
            core::mem::size_of::<FibParams>() as i32,
            0,
        )
    };
    if rc != BPF_FIB_LKUP_RET_SUCCESS as i64 {
        // No resolved next hop (or no route): the kernel forwards the rewritten packet itself.
        counters::count(Counter::PassNatReply);
        return xdp_action::XDP_PASS;
    }
    send(ctx, p, &fib.dmac, &fib.smac, fib.ifindex)
}

/// The `conn_flags` that [`rvs_common::conn::ConnKey::server_port`] reads, from the scratch's
/// note.
#[inline(always)]
fn keep_port_flags(keep: bool) -> u16 {
    if keep {
        rvs_common::conn::conn_flags::KEEP_PORT
    } else {
        0
    }
}
