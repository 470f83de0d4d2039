//! ICMP, as IPVS handles it: errors about a tracked flow reach the flow's real server (or, for a
//! NAT real server's complaint about a client's packet, the client), rewritten where NAT changed
//! the addresses; and a packet too long for the way to the real server is answered with
//! "fragmentation needed" (ICMPv6 "packet too big") carrying the MTU, so the client's path MTU
//! discovery shrinks its segments.

use aya_ebpf::{
    bindings::xdp_action,
    helpers::{bpf_xdp_adjust_head, bpf_xdp_adjust_tail},
    programs::XdpContext,
};
use network_types::{
    eth::EthHdr,
    ip::{Ipv4Hdr, Ipv6Hdr},
};
use rvs_common::{
    IPPROTO_UDP,
    conn::{Conn, ConnKey, KIND_CONN, KIND_REPLY},
    csum,
    dest::fwd,
    maps::config_flags,
    programs,
    stats::Counter,
};
use rvs_ebpf::packet::ptr_at;

use crate::{
    counters,
    maps::{self, CONNS, CONNS_NEW, NAT_REPLIES, PROGS, SCRATCH},
    parse::{IPPROTO_ICMP, IPPROTO_ICMPV6, Packet, words6},
    schedule::Scratch,
    xmit::{self, nat},
};

/// Whether an ICMP message of this family and type is an error about some earlier packet
/// (destination unreachable, source quench, time exceeded; ICMPv6: any error type).
#[inline(always)]
pub fn is_error(ipv6: bool, icmp_type: u8) -> bool {
    if ipv6 {
        icmp_type < 128
    } else {
        matches!(icmp_type, 3 | 4 | 11)
    }
}

/// The packet an error is about, as its header shows it.
#[derive(Clone, Copy)]
struct Embedded {
    proto: u8,
    src: [u32; 4],
    dst: [u32; 4],
    sport: u16,
    dport: u16,
    /// Offset of the embedded IP header in the frame.
    ip_off: usize,
}

#[inline(always)]
fn embedded(ctx: &XdpContext, p: &Packet) -> Option<Embedded> {
    let ip_off = (p.l4_off as usize & 0x7f) + 8;
    if p.ipv6() {
        let h = ptr_at::<Ipv6Hdr>(ctx, ip_off)?;
        let ports = ptr_at::<[u16; 2]>(ctx, ip_off + Ipv6Hdr::LEN)?;
        // SAFETY: bounds checked by ptr_at.
        unsafe {
            Some(Embedded {
                proto: (*h).next_hdr,
                src: words6(&(*h).src_addr),
                dst: words6(&(*h).dst_addr),
                sport: (*ports)[0],
                dport: (*ports)[1],
                ip_off,
            })
        }
    } else {
        let h = ptr_at::<Ipv4Hdr>(ctx, ip_off)?;
        // SAFETY: bounds checked by ptr_at.
        unsafe {
            // Embedded headers with options are rare; they are left to the kernel.
            if (*h).vihl != 0x45 {
                return None;
            }
            let ports = ptr_at::<[u16; 2]>(ctx, ip_off + Ipv4Hdr::LEN)?;
            Some(Embedded {
                proto: (*h).proto,
                src: [u32::from_ne_bytes((*h).src_addr), 0, 0, 0],
                dst: [u32::from_ne_bytes((*h).dst_addr), 0, 0, 0],
                sport: (*ports)[0],
                dport: (*ports)[1],
                ip_off,
            })
        }
    }
}

/// The conn a key names, in either table.
#[inline(always)]
fn conn(key: &ConnKey) -> Option<Conn> {
    // SAFETY: copied out at once.
    unsafe { CONNS.get(key).or_else(|| CONNS_NEW.get(key)).copied() }
}

/// The rvs_icmp program: an ICMP error addressed to the director.
#[inline(always)]
pub fn run(ctx: &XdpContext) -> u32 {
    let Some(s) = SCRATCH.get_ptr_mut(0) else {
        return xdp_action::XDP_PASS;
    };
    // SAFETY: a per-CPU map value, used by this program run alone.
    let s = unsafe { &mut *s };
    let p = s.packet;
    let Some(e) = embedded(ctx, &p) else {
        return xdp_action::XDP_PASS;
    };
    // Sent by a real server to a client (possibly rewritten by NAT on the way): the flow is the
    // client's, with the embedded destination as its client.
    let key = ConnKey {
        caddr: e.dst,
        vaddr: e.src,
        cport: e.dport,
        vport: e.sport,
        proto: e.proto,
        af: p.flow.af,
        kind: KIND_CONN,
        _pad0: 0,
    };
    if let Some(c) = conn(&key) {
        return towards_server(ctx, s, &e, &key, &c);
    }
    if maps::config().flags & config_flags::NAT_ACTIVE != 0 {
        // Sent by the director to a NAT real server: the real server complains to the client.
        let reply = ConnKey {
            caddr: e.dst,
            vaddr: e.src,
            cport: e.dport,
            vport: e.sport,
            proto: e.proto,
            af: p.flow.af,
            kind: KIND_REPLY,
            _pad0: 0,
        };
        // SAFETY: copied out at once.
        if let Some(flow) = unsafe { NAT_REPLIES.get(&reply).copied() }
            && let Some(c) = conn(&flow)
        {
            return towards_client(ctx, &p, &e, &flow, &c);
        }
    }
    xdp_action::XDP_PASS
}

/// An error about a flow, to the flow's real server by the flow's method.
#[inline(always)]
fn towards_server(ctx: &XdpContext, s: &mut Scratch, e: &Embedded, key: &ConnKey, c: &Conn) -> u32 {
    let p = &s.packet;
    let Some(dest) = maps::dest(c.dest_id) else {
        return xdp_action::XDP_DROP;
    };
    counters::count(Counter::IcmpForwarded);
    match dest.fwd {
        fwd::TUNNEL => {
            // Encapsulated like the flow's packets.
            s.dest_id = c.dest_id;
            s.svc.id = c.svc_id;
            // SAFETY: a tail call does not return when it succeeds.
            unsafe { PROGS.tail_call(ctx, programs::XMIT_TUN) };
            xdp_action::XDP_DROP
        }
        fwd::MASQ => {
            // Outer destination VIP -> real server; inner source VIP:vport -> real server:port.
            if rewrite_error(
                ctx,
                p,
                e,
                Outer::Destination,
                &dest.addr,
                &key.vaddr,
                key.server_port(dest.port, c.flags),
            )
            .is_err()
            {
                return xdp_action::XDP_DROP;
            }
            if xmit::decrement_ttl(ctx, p.flow.af).is_err() {
                return xdp_action::XDP_DROP;
            }
            xmit::send(ctx, p, &dest.dmac, &dest.smac, dest.ifindex)
        }
        _ => {
            if xmit::decrement_ttl(ctx, p.flow.af).is_err() {
                return xdp_action::XDP_DROP;
            }
            xmit::send(ctx, p, &dest.dmac, &dest.smac, dest.ifindex)
        }
    }
}

/// A NAT real server's error about a client's packet, to the client with the VIP restored.
#[inline(always)]
fn towards_client(ctx: &XdpContext, p: &Packet, e: &Embedded, flow: &ConnKey, _c: &Conn) -> u32 {
    // Outer source real server -> VIP; inner destination real server:port -> VIP:vport.
    let real = e.dst;
    if rewrite_error(ctx, p, e, Outer::Source, &flow.vaddr, &real, flow.vport).is_err() {
        return xdp_action::XDP_DROP;
    }
    if xmit::decrement_ttl(ctx, p.flow.af).is_err() {
        return xdp_action::XDP_DROP;
    }
    counters::count(Counter::IcmpForwarded);
    nat::route_to(ctx, p, IPPROTO_ICMP, &flow.vaddr, &p.flow.daddr, 0, 0)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Outer {
    Source,
    Destination,
}

/// Rewrites an error for NAT: the outer address at `outer` becomes `new_outer`; the embedded
/// packet's address `old_inner` (its source when the outer destination changes, its destination
/// otherwise) becomes `new_outer` too, with port `new_port`. All checksums are patched
/// incrementally: the outer IPv4 header, the ICMP checksum (which covers the embedded bytes, and
/// for ICMPv6 the outer addresses), the embedded IPv4 header and a UDP checksum inside it.
#[inline(always)]
fn rewrite_error(
    ctx: &XdpContext,
    p: &Packet,
    e: &Embedded,
    outer: Outer,
    new_outer: &[u32; 4],
    old_inner: &[u32; 4],
    new_port: u16,
) -> Result<(), ()> {
    let ipv6 = p.ipv6();
    let ip = EthHdr::LEN;
    let l4 = p.l4_off as usize & 0x7f;
    let inner_src_changes = outer == Outer::Destination;
    let old_outer = if outer == Outer::Destination {
        p.flow.daddr
    } else {
        p.flow.saddr
    };
    let icmp = ptr_at::<[u8; 8]>(ctx, l4).ok_or(())?;
    // SAFETY: bounds checked by ptr_at.
    let mut icmp_csum = unsafe { u16::from_be_bytes([(*icmp)[2], (*icmp)[3]]) };
    if ipv6 {
        let at = ip + if outer == Outer::Destination { 24 } else { 8 };
        let a = ptr_at::<[u32; 4]>(ctx, at).ok_or(())?;
        // SAFETY: bounds checked by ptr_at.
        unsafe { *a = *new_outer };
        // The ICMPv6 checksum covers the outer addresses.
        icmp_csum = csum::replace128(icmp_csum, &old_outer, new_outer);
        let at = e.ip_off + if inner_src_changes { 8 } else { 24 };
        let a = ptr_at::<[u32; 4]>(ctx, at).ok_or(())?;
        // SAFETY: bounds checked by ptr_at.
        unsafe { *a = *new_outer };
        icmp_csum = csum::replace128(icmp_csum, old_inner, new_outer);
    } else {
        let h = ptr_at::<Ipv4Hdr>(ctx, ip).ok_or(())?;
        let (old4, new4) = (u32::from_be(old_outer[0]), u32::from_be(new_outer[0]));
        // SAFETY: bounds checked by ptr_at.
        unsafe {
            if outer == Outer::Destination {
                (*h).dst_addr = new_outer[0].to_ne_bytes();
            } else {
                (*h).src_addr = new_outer[0].to_ne_bytes();
            }
            (*h).check = csum::replace32(u16::from_be_bytes((*h).check), old4, new4).to_be_bytes();
        }
        let ih = ptr_at::<Ipv4Hdr>(ctx, e.ip_off).ok_or(())?;
        let (oi, ni) = (u32::from_be(old_inner[0]), new4);
        // SAFETY: bounds checked by ptr_at.
        unsafe {
            if inner_src_changes {
                (*ih).src_addr = new_outer[0].to_ne_bytes();
            } else {
                (*ih).dst_addr = new_outer[0].to_ne_bytes();
            }
            let old_check = u16::from_be_bytes((*ih).check);
            let new_check = csum::replace32(old_check, oi, ni);
            (*ih).check = new_check.to_be_bytes();
            icmp_csum = csum::replace32(icmp_csum, oi, ni);
            icmp_csum = csum::replace16(icmp_csum, old_check, new_check);
        }
    }
    // The embedded transport header's port, and a UDP checksum (it lies in the first 8 bytes).
    let l4_in = e.ip_off + if ipv6 { Ipv6Hdr::LEN } else { Ipv4Hdr::LEN };
    let th = ptr_at::<[u8; 8]>(ctx, l4_in).ok_or(())?;
    let port_at = if inner_src_changes { 0 } else { 2 };
    let old_port = if inner_src_changes { e.sport } else { e.dport };
    // SAFETY: bounds checked by ptr_at; no other reference to these bytes exists.
    let (th, icmp) = unsafe { (&mut *th, &mut *icmp) };
    {
        th[port_at..port_at + 2].copy_from_slice(&new_port.to_ne_bytes());
        icmp_csum = csum::replace16(icmp_csum, u16::from_be(old_port), u16::from_be(new_port));
        if e.proto == IPPROTO_UDP {
            let old = u16::from_be_bytes([th[6], th[7]]);
            if old != 0 {
                let mut new = if ipv6 {
                    csum::replace128(old, old_inner, new_outer)
                } else {
                    csum::replace32(old, u32::from_be(old_inner[0]), u32::from_be(new_outer[0]))
                };
                new = csum::replace16(new, u16::from_be(old_port), u16::from_be(new_port));
                th[6..8].copy_from_slice(&new.to_be_bytes());
                icmp_csum = csum::replace16(icmp_csum, old, new);
            }
        }
        icmp[2..4].copy_from_slice(&icmp_csum.to_be_bytes());
    }
    Ok(())
}

/// Answers a packet too long for the way to its real server with ICMP "fragmentation needed"
/// (IPv4, only when the packet says DF) or "packet too big" (IPv6), reporting `mtu`, from the
/// address the client sent to. The frame is turned around in place: XDP_TX.
#[inline(always)]
pub fn send_too_big(ctx: &XdpContext, p: &Packet, mtu: u32) -> u32 {
    if p.ipv6() {
        return too_big6(ctx, mtu);
    }
    let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, EthHdr::LEN) else {
        return xdp_action::XDP_DROP;
    };
    // SAFETY: bounds checked by ptr_at.
    let (vihl, df) = unsafe { ((*ip).vihl, (*ip).frags[0] & 0x40 != 0) };
    if !df || vihl != 0x45 {
        return xmit::too_big();
    }
    too_big4(ctx, mtu)
}

/// Bytes of the original packet an ICMPv4 error carries: its header and 8 bytes.
const KEEP4: usize = 28;
/// ... and an ICMPv6 error: its header and 8 bytes (well under the 1280-byte minimum).
const KEEP6: usize = 48;

/// Makes the frame room for an ICMP error about the packet in it: `room` more bytes at the head
/// (for the error's IP and ICMP headers) and the packet cut to its first `keep` bytes. Returns
/// the frame's (source, destination) MACs; every pointer must be taken again afterwards.
#[inline(always)]
fn make_room(ctx: &XdpContext, room: usize, keep: usize) -> Option<([u8; 6], [u8; 6])> {
    let eth = ptr_at::<EthHdr>(ctx, 0)?;
    // SAFETY: bounds checked by ptr_at.
    let macs = unsafe { ((*eth).src_addr, (*eth).dst_addr) };
    let len = rvs_ebpf::packet::frame_len(ctx);
    // SAFETY: grows the head and trims the tail; the caller takes its pointers again.
    unsafe {
        if bpf_xdp_adjust_head(ctx.ctx, -(room as i32)) != 0 {
            return None;
        }
        let want = EthHdr::LEN + room + keep;
        let have = len + room;
        if have > want && bpf_xdp_adjust_tail(ctx.ctx, -((have - want) as i32)) != 0 {
            return None;
        }
    }
    Some(macs)
}

/// The frame turned around for an ICMP error (`make_room`), its Ethernet header addressed back
/// to the sender with `ethertype`: the `N` bytes of Ethernet header, `room` and `keep`.
#[inline(always)]
// The context is a handle on the packet: the bytes it reaches are the program's to change.
#[allow(clippy::mut_from_ref)]
fn error_frame<const N: usize>(
    ctx: &XdpContext,
    room: usize,
    keep: usize,
    ethertype: u16,
) -> Option<&mut [u8; N]> {
    let (src_mac, dst_mac) = make_room(ctx, room, keep)?;
    let frame = ptr_at::<[u8; N]>(ctx, 0)?;
    // SAFETY: bounds checked by ptr_at.
    let f = unsafe { &mut *frame };
    f[0..6].copy_from_slice(&src_mac);
    f[6..12].copy_from_slice(&dst_mac);
    f[12..14].copy_from_slice(&ethertype.to_be_bytes());
    Some(f)
}

#[inline(always)]
fn too_big4(ctx: &XdpContext, mtu: u32) -> u32 {
    const ROOM: usize = Ipv4Hdr::LEN + 8;
    let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, EthHdr::LEN) else {
        return xdp_action::XDP_DROP;
    };
    // SAFETY: bounds checked by ptr_at.
    let (client, vip) = unsafe { ((*ip).src_addr, (*ip).dst_addr) };
    let Some(f) =
        error_frame::<{ EthHdr::LEN + ROOM + KEEP4 }>(ctx, ROOM, KEEP4, crate::parse::ETH_P_IP)
    else {
        return xdp_action::XDP_DROP;
    };
    let total = (ROOM + KEEP4) as u16;
    let h = &mut f[14..34];
    h.copy_from_slice(&[
        0x45,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        64,
        IPPROTO_ICMP,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ]);
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h[12..16].copy_from_slice(&vip);
    h[16..20].copy_from_slice(&client);
    let mut words = [0u16; 10];
    for (i, w) in words.iter_mut().enumerate() {
        *w = u16::from_be_bytes([h[i * 2], h[i * 2 + 1]]);
    }
    h[10..12].copy_from_slice(&csum::ipv4_header(&words).to_be_bytes());
    let m = &mut f[34..];
    // Type 3 (unreachable), code 4 (fragmentation needed), next-hop MTU in the low 16 bits.
    m[0..8].copy_from_slice(&[3, 4, 0, 0, 0, 0, 0, 0]);
    m[6..8].copy_from_slice(&(mtu.min(0xffff) as u16).to_be_bytes());
    let mut sum = 0u32;
    for i in 0..(8 + KEEP4) / 2 {
        sum += u16::from_be_bytes([m[i * 2], m[i * 2 + 1]]) as u32;
    }
    m[2..4].copy_from_slice(&(!csum::fold(sum)).to_be_bytes());
    counters::count(Counter::IcmpTooBigSent);
    xdp_action::XDP_TX
}

#[inline(always)]
fn too_big6(ctx: &XdpContext, mtu: u32) -> u32 {
    const ROOM: usize = Ipv6Hdr::LEN + 8;
    let Some(ip) = ptr_at::<Ipv6Hdr>(ctx, EthHdr::LEN) else {
        return xdp_action::XDP_DROP;
    };
    // SAFETY: bounds checked by ptr_at.
    let (client, vip) = unsafe { ((*ip).src_addr, (*ip).dst_addr) };
    let Some(f) =
        error_frame::<{ EthHdr::LEN + ROOM + KEEP6 }>(ctx, ROOM, KEEP6, crate::parse::ETH_P_IPV6)
    else {
        return xdp_action::XDP_DROP;
    };
    let plen = (8 + KEEP6) as u16;
    let h = &mut f[14..54];
    h[0..4].copy_from_slice(&(6u32 << 28).to_be_bytes());
    h[4..6].copy_from_slice(&plen.to_be_bytes());
    h[6] = IPPROTO_ICMPV6;
    h[7] = 64;
    h[8..24].copy_from_slice(&vip);
    h[24..40].copy_from_slice(&client);
    let m = &mut f[54..];
    // Type 2 (packet too big), code 0, the MTU as 32 bits.
    m[0..8].copy_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0]);
    m[4..8].copy_from_slice(&mtu.to_be_bytes());
    // Checksum over the pseudo-header (addresses, length, next header) and the message.
    let mut sum = plen as u32 + IPPROTO_ICMPV6 as u32;
    for i in 0..8 {
        sum += u16::from_be_bytes([vip[i * 2], vip[i * 2 + 1]]) as u32;
        sum += u16::from_be_bytes([client[i * 2], client[i * 2 + 1]]) as u32;
    }
    for i in 0..(8 + KEEP6) / 2 {
        sum += u16::from_be_bytes([m[i * 2], m[i * 2 + 1]]) as u32;
    }
    m[2..4].copy_from_slice(&(!csum::fold(sum)).to_be_bytes());
    counters::count(Counter::IcmpTooBigSent);
    xdp_action::XDP_TX
}
