//! Real servers (IPVS "destinations") as the data plane sees them.

use crate::user_pod;

/// Forwarding methods, numbered as IPVS's IP_VS_CONN_F_FWD_MASK values.
pub mod fwd {
    pub const MASQ: u8 = 0;
    pub const LOCAL: u8 = 1;
    pub const TUNNEL: u8 = 2;
    pub const DROUTE: u8 = 3;
}

/// Dest flags (`DestEntry::flags`).
pub mod dest_flags {
    /// In the service's list (IPVS IP_VS_DEST_F_AVAILABLE); cleared when deleted while flows remain.
    pub const AVAILABLE: u8 = 1;
    /// `dmac`/`smac`/`ifindex` hold a resolved next hop.
    pub const NEIGH_OK: u8 = 2;
}

/// Value of the dest array: everything needed to forward a packet of a flow bound to this dest.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DestEntry {
    /// Real server address, network byte order words.
    pub addr: [u32; 4],
    /// Real server port, network byte order.
    pub port: u16,
    /// `fwd::*`.
    pub fwd: u8,
    /// `dest_flags::*`.
    pub flags: u8,
    /// Interface to transmit on (XDP_TX when it is the receiving one, else redirect).
    pub ifindex: u32,
    /// Source MAC for the rewritten frame: the egress interface's address.
    pub smac: [u8; 6],
    /// Destination MAC: the real server's (or next hop's) address.
    pub dmac: [u8; 6],
    /// Owning service id.
    pub svc_id: u32,
    pub weight: i32,
    pub af: u8,
    pub _pad0: [u8; 3],
    /// Upper connection threshold (`-x`), 0 for none.
    pub u_threshold: u32,
    /// Lower connection threshold (`-y`), 0 for none.
    pub l_threshold: u32,
    /// Tunnel encapsulation (`tun::*`), for the Tunnel method.
    pub tun_type: u8,
    /// Tunnel checksum option (`tun::NOCSUM`, `CSUM`, `REMCSUM`).
    pub tun_csum: u8,
    /// GUE destination port, network byte order.
    pub tun_port: u16,
    /// MTU of the egress link (larger packets get ICMP "too big" / "fragmentation needed").
    pub mtu: u32,
    /// Source address for the outer header of tunnelled packets: the director's address on the
    /// route to the real server (network byte order words; family as `af`).
    pub src_addr: [u32; 4],
}

/// Tunnel types and checksum options, numbered as ipvsadm's.
pub mod tun {
    pub const IPIP: u8 = 0;
    pub const GUE: u8 = 1;
    pub const GRE: u8 = 2;
    pub const NOCSUM: u8 = 0;
    pub const CSUM: u8 = 1;
    pub const REMCSUM: u8 = 2;
}

/// Connection counters of one dest (ActiveConn, InActConn, PersistConn) and its OVERLOAD state.
/// The map is memory-mapped by the control plane, so both sides change the counters with real
/// atomic adds: the data plane when it creates connections and moves them between states, the
/// control plane when it expires them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DestConns {
    pub active: u64,
    pub inactive: u64,
    /// Persistence templates pointing at this dest.
    pub persist: u64,
    /// Non-zero while the dest is over its upper threshold (IPVS IP_VS_DEST_F_OVERLOAD): set by
    /// the data plane when a connection is bound, cleared by the control plane by the kernel's
    /// rule when connections end.
    pub overloaded: u64,
}

impl DestConns {
    /// ip_vs_dest_conn_overhead: active connections weigh 256 times an inactive one.
    #[inline(always)]
    pub fn overhead(&self) -> u32 {
        ((self.active as u32) << 8).wrapping_add(self.inactive as u32)
    }
}

user_pod!(DestEntry, DestConns);
