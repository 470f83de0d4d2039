//! Traffic counters.

use crate::user_pod;

/// Per-CPU traffic counters of a service or a dest (IPVS's conns, inpkts, outpkts, inbytes,
/// outbytes; bytes are IP-layer lengths).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.conns = self.conns.wrapping_add(o.conns);
        self.inpkts = self.inpkts.wrapping_add(o.inpkts);
        self.outpkts = self.outpkts.wrapping_add(o.outpkts);
        self.inbytes = self.inbytes.wrapping_add(o.inbytes);
        self.outbytes = self.outbytes.wrapping_add(o.outbytes);
    }
}

/// Data-plane events counted per CPU in the `COUNTERS` array: what the director did with packets
/// it did not simply forward. Listed by `rvsadm --dataplane`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Packets forwarded to a real server.
    Forwarded = 0,
    /// TCP packets to a service without a connection entry and without SYN: passed to the stack.
    PassNoConn = 1,
    /// IP fragments: passed to the stack (rvs does not reassemble).
    PassFragment = 2,
    /// New flows dropped because no real server was available.
    DropNoDest = 3,
    /// Packets dropped because the real server's MAC is not resolved yet.
    DropNoNeigh = 4,
    /// Packets dropped because TTL would reach zero.
    DropTtl = 5,
    /// Truncated or malformed headers addressed to a service: dropped.
    DropMalformed = 6,
    /// New flows dropped because the connection could not be recorded.
    DropConnInsert = 7,
    /// Packets whose connection points at a dest id that has no entry: dropped.
    DropBadDest = 8,
    /// Redirects to another interface that failed.
    DropRedirect = 9,
    /// New flows refused by the admission limit (`rvsd --new-flow-rate`).
    DropAdmission = 10,
    /// New flows whose scheduling program could not be entered (a bug or a partial load).
    DropTailCall = 11,
    /// Packets longer than the egress MTU allows that could not be answered with ICMP.
    DropTooBig = 12,
    /// ICMP "fragmentation needed" / "packet too big" sent to clients.
    IcmpTooBigSent = 13,
    /// NAT replies passed to the kernel to forward (no neighbour entry for the client's next hop).
    PassNatReply = 14,
    /// ICMP errors about tracked flows forwarded to their real server or client.
    IcmpForwarded = 15,
    /// Flows to sync that the data plane could not report: the sync ring buffer was full.
    SyncRingFull = 16,
    /// Tunnelled packets for a service, decapsulated (`rvsd --accept-tunnelled`) and then
    /// handled as if they had arrived directly.
    TunnelDecap = 17,
    /// Tunnelled packets dropped on decapsulation because the inner TTL / hop limit would reach
    /// zero: ends the bounce between directors that tunnel to each other.
    DropTunnelTtl = 18,
    /// TCP packets without SYN of flows the director did not know, scheduled and forwarded
    /// because their service (or rvsd) is sloppy (`sloppy_tcp`, IPVS's sysctl of that name):
    /// behind ECMP, flows another director opened.
    SloppyScheduled = 19,
    /// Packets that would open a flow but whose IPv4 header checksum is wrong: dropped, as the
    /// kernel's ip_rcv drops them before IPVS sees them, and no flow is made.
    DropIpChecksum = 20,
}

/// Number of `Counter` values (size of the `COUNTERS` array).
pub const COUNTER_COUNT: u32 = 21;

/// Entries of the `COUNTERS` array: room for counters yet to come, so that adding one does not
/// change the pinned map's size (which would need `rvsd --cleanup` on upgrade).
pub const COUNTER_SLOTS: u32 = 32;

/// Names of the counters, in index order, as `rvsadm --dataplane` prints them.
pub const COUNTER_NAMES: [&str; COUNTER_COUNT as usize] = [
    "forwarded",
    "pass_no_conn",
    "pass_fragment",
    "drop_no_dest",
    "drop_no_neigh",
    "drop_ttl",
    "drop_malformed",
    "drop_conn_insert",
    "drop_bad_dest",
    "drop_redirect",
    "drop_admission",
    "drop_tail_call",
    "drop_too_big",
    "icmp_too_big_sent",
    "pass_nat_reply",
    "icmp_forwarded",
    "sync_ring_full",
    "tunnel_decap",
    "drop_tunnel_ttl",
    "sloppy_scheduled",
    "drop_ip_checksum",
];

user_pod!(Stats);
