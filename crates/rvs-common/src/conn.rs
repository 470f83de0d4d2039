//! Connection table entries.

use crate::user_pod;

/// Key of the connection table: the flow as the client sends it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConnKey {
    pub caddr: [u32; 4],
    pub vaddr: [u32; 4],
    /// Client port, network byte order.
    pub cport: u16,
    /// Virtual port, network byte order.
    pub vport: u16,
    pub proto: u8,
    pub af: u8,
    /// `KIND_CONN` or `KIND_TEMPLATE`: templates share the table but never a key with a flow.
    pub kind: u8,
    pub _pad0: u8,
}

impl ConnKey {
    /// The port this flow (with `conn_flags::*` `flags`) reaches its real server on: the
    /// server's own port, or the port the client asked for when the server has none (in fwmark
    /// and port-zero services, IPVS's `dest->port ?: vport`) or the flow is `KEEP_PORT`.
    #[inline(always)]
    pub fn server_port(&self, dest_port: u16, flags: u16) -> u16 {
        if dest_port == 0 || flags & conn_flags::KEEP_PORT != 0 {
            self.vport
        } else {
            dest_port
        }
    }

    /// The key under which this NAT flow's replies from real server `rs_addr`, port
    /// `server_port` (see [`ConnKey::server_port`]), are found in `NAT_REPLIES`: the server's
    /// address and port, the client's address and port.
    #[inline(always)]
    pub fn nat_reply(&self, rs_addr: [u32; 4], server_port: u16) -> ConnKey {
        ConnKey {
            caddr: rs_addr,
            vaddr: self.caddr,
            cport: server_port,
            vport: self.cport,
            proto: self.proto,
            af: self.af,
            kind: KIND_REPLY,
            _pad0: 0,
        }
    }
}

/// A connection (a flow).
pub const KIND_CONN: u8 = 0;
/// A persistence template: (client network, VIP, vport or 0) -> real server.
pub const KIND_TEMPLATE: u8 = 1;
/// A NAT reply's key: (real server, rport) -> (client, cport), in `NAT_REPLIES`.
pub const KIND_REPLY: u8 = 2;

/// Conn flags, numbered as IPVS's where they exist there.
pub mod conn_flags {
    /// Not counted in ActiveConn (state is not ESTABLISHED).
    pub const INACTIVE: u16 = 0x0100;
    /// Replies do not pass the director (DR, TUN): the INPUT-ONLY state table applies.
    pub const NOOUTPUT: u16 = 0x0080;
    /// A persistence template.
    pub const TEMPLATE: u16 = 0x1000;
    /// Written by connection sync and not yet seen by this data plane (IPVS's
    /// IP_VS_CONN_F_SYNC): the data plane clears it at the flow's first packet, so the sync
    /// writer knows which entries this director is forwarding itself.
    pub const SYNC: u16 = 0x0020;
    /// Created under a persistence template (the kernel's `cp->control`): such a flow is never
    /// "reused" by a new SYN, since its template would choose the same server anyway.
    pub const CONTROLLED: u16 = 0x8000;
    /// The flow reaches its real server on the port the client asked for, whatever the server's
    /// own port: a flow of a persistent port-zero or fwmark service, as the kernel's
    /// ip_vs_sched_persist connects it (the server's port only when the client asked for the
    /// service's port, which such a service does not have).
    pub const KEEP_PORT: u16 = 0x4000;
}

/// Value of the connection table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Conn {
    pub dest_id: u32,
    pub svc_id: u32,
    /// CLOCK_MONOTONIC nanoseconds of the last packet (bpf_ktime_get_ns).
    pub last_seen_ns: u64,
    /// `conn_flags::*`.
    pub flags: u16,
    /// `tcp_state::*` for TCP; `tcp_state::UDP` for UDP.
    pub state: u8,
    pub _pad0: u8,
    pub in_pkts: u32,
}

user_pod!(ConnKey, Conn);
