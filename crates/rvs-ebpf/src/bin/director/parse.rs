//! Reading the headers of a frame: what the director needs to know about a packet.

use aya_ebpf::{bindings::xdp_action, programs::XdpContext};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};
use rvs_common::{
    AF_INET, IPPROTO_TCP, IPPROTO_UDP,
    conn::{ConnKey, KIND_CONN},
    stats::Counter,
};
use rvs_ebpf::packet::ptr_at;

use crate::{counters, sched::Flow};

const ETH_P_IP: u16 = 0x0800;
/// IPv4 "more fragments" flag and fragment offset mask, in host order of the frags field.
const IP_MF_OFFSET: u16 = 0x3fff;
const TCP_HDR_LEN: usize = 20;
const UDP_HDR_LEN: usize = 8;

/// The parts of a TCP header that drive IPVS's state machine.
#[derive(Clone, Copy)]
pub struct TcpFlags {
    pub syn: bool,
    pub fin: bool,
    pub ack: bool,
    pub rst: bool,
}

/// A parsed packet.
#[derive(Clone, Copy)]
pub struct Packet {
    pub flow: Flow,
    /// Offset of the transport header in the frame.
    pub l4_off: u16,
    /// Length of the IP packet (for the byte counters).
    pub l3_len: u16,
    /// IP "more fragments" or a fragment offset is set.
    pub fragment: bool,
    /// The TCP flags, for TCP.
    pub tcp: Option<TcpFlags>,
}

impl Packet {
    /// The connection-table key of the packet's flow.
    #[inline(always)]
    pub fn conn_key(&self) -> ConnKey {
        ConnKey {
            caddr: self.flow.saddr,
            vaddr: self.flow.daddr,
            cport: self.flow.sport,
            vport: self.flow.dport,
            proto: self.flow.proto,
            af: self.flow.af,
            kind: KIND_CONN,
            _pad0: 0,
        }
    }
}

/// The packet's addresses and ports, or the action for a frame that is none of the director's
/// business (passed untouched).
#[inline(always)]
pub fn parse(ctx: &XdpContext) -> Result<Packet, u32> {
    let pass = Err(xdp_action::XDP_PASS);
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return pass;
    };
    // SAFETY: ptr_at checked that the header lies inside the frame.
    if unsafe { (*eth).ether_type } != ETH_P_IP.to_be() {
        return pass;
    }
    let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, EthHdr::LEN) else {
        return pass;
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
        return pass;
    }
    let ihl = ((vihl & 0x0f) as usize) * 4;
    if ihl < Ipv4Hdr::LEN {
        return pass;
    }
    let l4 = EthHdr::LEN + ihl;
    // Both TCP and UDP start with source and destination port.
    let Some(ports) = ptr_at::<[u16; 2]>(ctx, l4) else {
        return pass;
    };
    // SAFETY: checked by ptr_at.
    let (sport, dport) = unsafe { ((*ports)[0], (*ports)[1]) };
    Ok(Packet {
        flow: Flow {
            saddr: [saddr, 0, 0, 0],
            daddr: [daddr, 0, 0, 0],
            sport,
            dport,
            proto,
            af: AF_INET,
        },
        l4_off: l4 as u16,
        l3_len: tot_len,
        fragment: frags & IP_MF_OFFSET != 0,
        tcp: None,
    })
}

/// For a packet to a service: refuses fragments and truncated transport headers, and reads the
/// TCP flags.
#[inline(always)]
pub fn check_l4(ctx: &XdpContext, p: &mut Packet) -> Result<(), u32> {
    if p.fragment {
        // rvs does not reassemble; the kernel may.
        counters::count(Counter::PassFragment);
        return Err(xdp_action::XDP_PASS);
    }
    let l4 = p.l4_off as usize & 0xff;
    if p.flow.proto == IPPROTO_TCP {
        let Some(th) = ptr_at::<[u8; TCP_HDR_LEN]>(ctx, l4) else {
            counters::count(Counter::DropMalformed);
            return Err(xdp_action::XDP_DROP);
        };
        // SAFETY: checked by ptr_at; byte 13 holds the flags.
        let f = unsafe { (*th)[13] };
        p.tcp = Some(TcpFlags {
            fin: f & 0x01 != 0,
            syn: f & 0x02 != 0,
            rst: f & 0x04 != 0,
            ack: f & 0x10 != 0,
        });
    } else if ptr_at::<[u8; UDP_HDR_LEN]>(ctx, l4).is_none() {
        counters::count(Counter::DropMalformed);
        return Err(xdp_action::XDP_DROP);
    }
    Ok(())
}
