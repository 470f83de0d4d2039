//! The IPVS connection-sync wire format, version 1 (sent and received) and version 0 (received,
//! and sent for old backups), as net/netfilter/ipvs/ip_vs_sync.c lays it out.
//!
//! Pure functions over byte slices: no sockets, no clocks, no maps. Everything on the wire is big
//! endian except the sequence options of version 0, which old kernels copied in host order.
//!
//! Version 1 datagram:
//!
//! ```text
//!  0        1        2        3        4        5        6        7
//! +--------+--------+--------+--------+--------+--------+--------+--------+
//! | 0      | syncid | size (whole datagram)   | count  | ver=1  | spare=0         |
//! +--------+--------+--------+--------+--------+--------+--------+--------+
//! entries, each starting on a 4-byte boundary of the datagram:
//! | type   | proto  | ver(4b)|len(12b)| flags (32)                        |
//! | state (16)      | cport           | vport           | dport           |
//! | fwmark (32)                       | timeout, seconds (32)             |
//! | caddr, vaddr, daddr: 4 bytes each (type bit 0 clear) or 16 (set)     |
//! | options: {type u8, len u8, data[len]}...  (the entry length covers them)|
//! ```
//!
//! The padding that aligns the next entry is counted in the header's size but not in the entry's
//! length; the last entry is not padded.
//!
//! Version 0 datagram: a 4-byte header {count, syncid, size} and IPv4-only 24-byte entries
//! {reserved, proto, cport, vport, dport, caddr, vaddr, daddr, flags16, state16}, each followed by
//! 24 bytes of sequence data when its flags carry IN_SEQ or OUT_SEQ.
//!
//! The receiving side follows ip_vs_process_message and ip_vs_proc_sync_conn check for check, in
//! their order, and says why with a [`Reject`]: the kernel either drops the whole datagram, drops
//! the rest of it (keeping the entries already read), or drops one entry and goes on, and so does
//! [`decode`].

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

/// The default multicast group of the sync daemon (IPv4).
pub const SYNC_GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
/// The default UDP port (sync thread `n` of `sync_ports` uses `SYNC_PORT + n`).
pub const SYNC_PORT: u16 = 8848;
/// The protocol version in a version 1 header.
pub const SYNC_PROTO_VER: u8 = 1;

/// Version 1 header length.
pub const HEADER_LEN: usize = 8;
/// Version 0 header length (also the shortest datagram a receiver looks at).
pub const HEADER_V0_LEN: usize = 4;
/// Fixed part of a version 1 IPv4 entry.
pub const ENTRY_V4_LEN: usize = 36;
/// Fixed part of a version 1 IPv6 entry.
pub const ENTRY_V6_LEN: usize = 72;
/// A version 0 entry without sequence data.
pub const ENTRY_V0_LEN: usize = 24;
/// The sequence data: in_seq then out_seq, each {init_seq, delta, previous_delta} as u32.
pub const SEQ_DATA_LEN: usize = 24;
/// Longest persistence-engine data (the option length is one byte).
pub const PE_DATA_MAXLEN: usize = 255;
/// Longest persistence-engine name.
pub const PE_NAME_MAXLEN: usize = 16;
/// Most entries in one datagram: the header's count is one byte.
pub const MAX_ENTRIES: usize = 255;
/// Longest entry rvs can produce: IPv6, sequence data, 255 bytes of PE data and a 16-byte name.
pub const MAX_ENTRY_LEN: usize =
    ENTRY_V6_LEN + 2 + SEQ_DATA_LEN + 2 + PE_DATA_MAXLEN + 2 + PE_NAME_MAXLEN;

/// Bit 0 of an entry's type: the addresses are IPv6.
const TYPE_F_INET6: u8 = 1;
/// The entry version sits in the top 4 bits of `ver_size`, the entry length in the low 12.
const VER_SHIFT: u16 = 12;
const SIZE_MASK: u16 = 0x0fff;

/// Option (parameter) types of a version 1 entry.
pub mod opt {
    /// in_seq and out_seq, 24 bytes.
    pub const SEQ_DATA: u8 = 1;
    /// Persistence-engine data (the SIP Call-ID for the sip engine).
    pub const PE_DATA: u8 = 2;
    /// Persistence-engine name.
    pub const PE_NAME: u8 = 3;
    /// Set on an option a receiver may skip when it does not know it; an unknown option without
    /// it makes the receiver drop the entry.
    pub const F_OPTIONAL: u8 = 0x40;
}

/// Connection flags (IP_VS_CONN_F_*, include/uapi/linux/ip_vs.h).
pub mod flags {
    /// The forwarding method, in the low 3 bits.
    pub const FWD_MASK: u32 = 0x0007;
    pub const MASQ: u32 = 0x0000;
    pub const LOCALNODE: u32 = 0x0001;
    pub const TUNNEL: u32 = 0x0002;
    pub const DROUTE: u32 = 0x0003;
    pub const BYPASS: u32 = 0x0004;
    /// Created by sync (set by the receiver on every entry it takes).
    pub const SYNC: u32 = 0x0020;
    /// In the sender's hash table: never sent.
    pub const HASHED: u32 = 0x0040;
    pub const NOOUTPUT: u32 = 0x0080;
    /// Not established (not counted as active).
    pub const INACTIVE: u32 = 0x0100;
    pub const OUT_SEQ: u32 = 0x0200;
    pub const IN_SEQ: u32 = 0x0400;
    pub const SEQ_MASK: u32 = IN_SEQ | OUT_SEQ;
    pub const NO_CPORT: u32 = 0x0800;
    /// A persistence template, not a connection.
    pub const TEMPLATE: u32 = 0x1000;
    /// Never synced.
    pub const ONE_PACKET: u32 = 0x2000;
    /// Netfilter conntrack; from bit 16 on, flags are local and ignored by a receiver.
    pub const NFCT: u32 = 1 << 16;
    /// What a backup keeps of a version 1 entry's flags (before it adds SYNC).
    pub const BACKUP_MASK: u32 = FWD_MASK | NOOUTPUT | INACTIVE | SEQ_MASK | NO_CPORT | TEMPLATE;
    /// What a backup updates on a connection it already has.
    pub const BACKUP_UPD_MASK: u32 = INACTIVE | SEQ_MASK;
}

/// IP protocol numbers IPVS knows.
pub mod proto {
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const SCTP: u8 = 132;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
}

/// IPVS's TCP states (include/net/ip_vs.h).
pub mod tcp {
    pub const NONE: u16 = 0;
    pub const ESTABLISHED: u16 = 1;
    pub const SYN_SENT: u16 = 2;
    pub const SYN_RECV: u16 = 3;
    pub const FIN_WAIT: u16 = 4;
    pub const TIME_WAIT: u16 = 5;
    pub const CLOSE: u16 = 6;
    pub const CLOSE_WAIT: u16 = 7;
    pub const LAST_ACK: u16 = 8;
    pub const LISTEN: u16 = 9;
    pub const SYNACK: u16 = 10;
    /// Number of states: a received state must be below it.
    pub const LAST: u16 = 11;
}

/// IPVS's UDP state.
pub mod udp {
    pub const NORMAL: u16 = 0;
    pub const LAST: u16 = 1;
}

/// IPVS's SCTP states, as numbered since the SCTP state machine was reworked (around Linux
/// 3.18). Older kernels had other numbers (ESTABLISHED was 7, 13 states): an SCTP entry from such
/// a master would be read with another state.
pub mod sctp {
    pub const NONE: u16 = 0;
    pub const INIT1: u16 = 1;
    pub const INIT: u16 = 2;
    pub const COOKIE_SENT: u16 = 3;
    pub const COOKIE_REPLIED: u16 = 4;
    pub const COOKIE_WAIT: u16 = 5;
    pub const COOKIE: u16 = 6;
    pub const COOKIE_ECHOED: u16 = 7;
    pub const ESTABLISHED: u16 = 8;
    pub const SHUTDOWN_SENT: u16 = 9;
    pub const SHUTDOWN_RECEIVED: u16 = 10;
    pub const SHUTDOWN_ACK_SENT: u16 = 11;
    pub const REJECTED: u16 = 12;
    pub const CLOSED: u16 = 13;
    pub const LAST: u16 = 14;
}

/// States of persistence templates (IP_VS_CTPL_S_*). A receiver does not check them.
pub mod template {
    pub const NONE: u16 = 0;
    pub const ASSURED: u16 = 1;
    pub const LAST: u16 = 2;
}

/// How many states IPVS has for `protocol`, or None when IPVS does not handle it (a receiver
/// drops a non-template entry of such a protocol). AH and ESP have one state.
pub fn num_states(protocol: u8) -> Option<u16> {
    match protocol {
        proto::TCP => Some(tcp::LAST),
        proto::UDP => Some(udp::LAST),
        proto::SCTP => Some(sctp::LAST),
        proto::AH | proto::ESP => Some(1),
        _ => None,
    }
}

/// Sequence adjustment of one direction (struct ip_vs_seq), used by NAT helpers that resize
/// packets (FTP).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SeqDelta {
    pub init_seq: u32,
    pub delta: u32,
    pub previous_delta: u32,
}

/// Both directions' sequence adjustment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SeqData {
    pub in_seq: SeqDelta,
    pub out_seq: SeqDelta,
}

/// Persistence-engine data and the engine's name: 1 to 255 bytes of data, a 1 to 16 byte name.
/// The kernel sends the name only along with data, and a receiver drops data without a name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeInfo {
    name: Vec<u8>,
    data: Vec<u8>,
}

impl PeInfo {
    /// None when either is empty or too long for the wire.
    pub fn new(name: &[u8], data: &[u8]) -> Option<PeInfo> {
        let ok = (1..=PE_NAME_MAXLEN).contains(&name.len())
            && (1..=PE_DATA_MAXLEN).contains(&data.len());
        ok.then(|| PeInfo {
            name: name.to_vec(),
            data: data.to_vec(),
        })
    }

    pub fn name(&self) -> &[u8] {
        &self.name
    }

    pub fn data(&self) -> &[u8] {
        &self.data
    }
}

/// The three addresses of an entry, of one family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnAddrs {
    V4 {
        caddr: Ipv4Addr,
        vaddr: Ipv4Addr,
        daddr: Ipv4Addr,
    },
    V6 {
        caddr: Ipv6Addr,
        vaddr: Ipv6Addr,
        daddr: Ipv6Addr,
    },
}

impl ConnAddrs {
    pub fn is_ipv6(&self) -> bool {
        matches!(self, ConnAddrs::V6 { .. })
    }

    pub fn caddr(&self) -> IpAddr {
        match *self {
            ConnAddrs::V4 { caddr, .. } => caddr.into(),
            ConnAddrs::V6 { caddr, .. } => caddr.into(),
        }
    }

    pub fn vaddr(&self) -> IpAddr {
        match *self {
            ConnAddrs::V4 { vaddr, .. } => vaddr.into(),
            ConnAddrs::V6 { vaddr, .. } => vaddr.into(),
        }
    }

    pub fn daddr(&self) -> IpAddr {
        match *self {
            ConnAddrs::V4 { daddr, .. } => daddr.into(),
            ConnAddrs::V6 { daddr, .. } => daddr.into(),
        }
    }
}

/// One connection (or persistence template) as the sync protocol carries it. Ports are numbers
/// (host order here, big endian on the wire).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConnEntry {
    /// IP protocol number; a template of a fwmark service has 0 (IPPROTO_IP).
    pub protocol: u8,
    /// IP_VS_CONN_F_* ([`flags`]). Sent with HASHED cleared; a receiver keeps
    /// [`flags::BACKUP_MASK`] and adds [`flags::SYNC`].
    pub flags: u32,
    /// The protocol's state ([`tcp`], [`udp`], [`sctp`]) or a template state ([`template`]).
    pub state: u16,
    pub cport: u16,
    pub vport: u16,
    pub dport: u16,
    pub fwmark: u32,
    /// Seconds. Version 0 has no timeout: a decoded version 0 entry has 0, which tells the receiver
    /// to use its own timeout for the state (180 s for templates), as the kernel does.
    pub timeout: u32,
    pub addrs: ConnAddrs,
    /// Sent when `flags` has IN_SEQ or OUT_SEQ (zeros when None), as the kernel ties the option to
    /// those flags; set on receipt when the entry carried it.
    pub seq: Option<SeqData>,
    /// Persistence-engine data and name (version 1 only).
    pub pe: Option<PeInfo>,
}

impl ConnEntry {
    pub fn is_template(&self) -> bool {
        self.flags & flags::TEMPLATE != 0
    }

    pub fn is_ipv6(&self) -> bool {
        self.addrs.is_ipv6()
    }

    fn sends_seq(&self) -> bool {
        self.flags & flags::SEQ_MASK != 0
    }

    /// The entry's version 1 length (the low 12 bits of `ver_size`): the fixed part and its
    /// options, without the padding that aligns the next entry.
    pub fn wire_len(&self) -> usize {
        let mut len = if self.is_ipv6() {
            ENTRY_V6_LEN
        } else {
            ENTRY_V4_LEN
        };
        if self.sends_seq() {
            len += 2 + SEQ_DATA_LEN;
        }
        if let Some(pe) = &self.pe {
            len += 2 + pe.data.len() + 2 + pe.name.len();
        }
        len
    }

    /// What a version 1 receiver makes of this entry: flags masked to [`flags::BACKUP_MASK`] plus
    /// [`flags::SYNC`], the sequence data present exactly when it was sent.
    pub fn as_received(&self) -> ConnEntry {
        let mut e = self.clone();
        e.flags = (self.flags & flags::BACKUP_MASK) | flags::SYNC;
        e.seq = self.sends_seq().then(|| self.seq.unwrap_or_default());
        e
    }
}

/// Which layout a datagram has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    V0,
    V1,
}

/// One datagram's worth of entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncMessage {
    pub syncid: u8,
    pub version: Version,
    pub entries: Vec<ConnEntry>,
}

/// Why a message could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("more than 255 entries in one message")]
    TooManyEntries,
    #[error("message longer than 65535 bytes")]
    TooLong,
    #[error("version 0 carries IPv4 connections only")]
    Ipv6InV0,
}

fn pad4(len: usize) -> usize {
    (4 - (len & 3)) & 3
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_seq(out: &mut Vec<u8>, s: &SeqDelta, to_bytes: fn(u32) -> [u8; 4]) {
    out.extend_from_slice(&to_bytes(s.init_seq));
    out.extend_from_slice(&to_bytes(s.delta));
    out.extend_from_slice(&to_bytes(s.previous_delta));
}

/// Appends `e` as a version 1 entry (unpadded, [`ConnEntry::wire_len`] bytes).
pub fn encode_entry(out: &mut Vec<u8>, e: &ConnEntry) {
    let len = e.wire_len();
    out.push(if e.is_ipv6() { TYPE_F_INET6 } else { 0 });
    out.push(e.protocol);
    // Entry version 0 in the top 4 bits.
    put_u16(out, len as u16 & SIZE_MASK);
    put_u32(out, e.flags & !flags::HASHED);
    put_u16(out, e.state);
    put_u16(out, e.cport);
    put_u16(out, e.vport);
    put_u16(out, e.dport);
    put_u32(out, e.fwmark);
    put_u32(out, e.timeout);
    match e.addrs {
        ConnAddrs::V4 {
            caddr,
            vaddr,
            daddr,
        } => {
            for a in [caddr, vaddr, daddr] {
                out.extend_from_slice(&a.octets());
            }
        }
        ConnAddrs::V6 {
            caddr,
            vaddr,
            daddr,
        } => {
            for a in [caddr, vaddr, daddr] {
                out.extend_from_slice(&a.octets());
            }
        }
    }
    if e.sends_seq() {
        let seq = e.seq.unwrap_or_default();
        out.push(opt::SEQ_DATA);
        out.push(SEQ_DATA_LEN as u8);
        put_seq(out, &seq.in_seq, u32::to_be_bytes);
        put_seq(out, &seq.out_seq, u32::to_be_bytes);
    }
    if let Some(pe) = &e.pe {
        out.push(opt::PE_DATA);
        out.push(pe.data.len() as u8);
        out.extend_from_slice(&pe.data);
        out.push(opt::PE_NAME);
        out.push(pe.name.len() as u8);
        out.extend_from_slice(&pe.name);
    }
}

fn start_v1(out: &mut Vec<u8>, syncid: u8) {
    out.clear();
    out.extend_from_slice(&[0, syncid, 0, HEADER_LEN as u8, 0, SYNC_PROTO_VER, 0, 0]);
}

fn finish_header(out: &mut [u8], count: usize) {
    let size = out.len() as u16;
    out[2..4].copy_from_slice(&size.to_be_bytes());
    out[4] = count as u8;
}

/// Encodes a whole message in its version. Version 0 drops what it cannot carry (fwmark, timeout,
/// persistence-engine data, flags above bit 15) and writes the sequence data in little-endian
/// order, which is what an x86 kernel, copying its host-order struct, sends.
pub fn encode(msg: &SyncMessage) -> Result<Vec<u8>, EncodeError> {
    if msg.entries.len() > MAX_ENTRIES {
        return Err(EncodeError::TooManyEntries);
    }
    let mut out = Vec::new();
    match msg.version {
        Version::V1 => {
            start_v1(&mut out, msg.syncid);
            for e in &msg.entries {
                out.resize(out.len() + pad4(out.len()), 0);
                encode_entry(&mut out, e);
            }
            if out.len() > u16::MAX as usize {
                return Err(EncodeError::TooLong);
            }
            finish_header(&mut out, msg.entries.len());
        }
        Version::V0 => {
            out.extend_from_slice(&[msg.entries.len() as u8, msg.syncid, 0, 0]);
            for e in &msg.entries {
                let ConnAddrs::V4 {
                    caddr,
                    vaddr,
                    daddr,
                } = e.addrs
                else {
                    return Err(EncodeError::Ipv6InV0);
                };
                out.push(0);
                out.push(e.protocol);
                put_u16(&mut out, e.cport);
                put_u16(&mut out, e.vport);
                put_u16(&mut out, e.dport);
                for a in [caddr, vaddr, daddr] {
                    out.extend_from_slice(&a.octets());
                }
                put_u16(&mut out, (e.flags & !flags::HASHED) as u16);
                put_u16(&mut out, e.state);
                if e.sends_seq() {
                    let seq = e.seq.unwrap_or_default();
                    put_seq(&mut out, &seq.in_seq, u32::to_le_bytes);
                    put_seq(&mut out, &seq.out_seq, u32::to_le_bytes);
                }
            }
            if out.len() > u16::MAX as usize {
                return Err(EncodeError::TooLong);
            }
            let size = out.len() as u16;
            out[2..4].copy_from_slice(&size.to_be_bytes());
        }
    }
    Ok(out)
}

/// The sender or the receiver of a sync daemon, for [`sync_maxlen`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Master,
    Backup,
}

/// IPv4 + UDP header bytes.
pub const IPV4_UDP_HLEN: usize = 20 + 8;
/// IPv6 + UDP header bytes.
pub const IPV6_UDP_HLEN: usize = 40 + 8;

/// The longest datagram a sync daemon sends (master) or reads (backup), as start_sync_thread
/// computes it since Linux 4.3 (`sync_maxlen`): with `configured` 0, the MTU less the IP and UDP
/// headers, where a master always takes 1500 (so 1472 over IPv4) and a backup its interface's MTU
/// clamped to 1500..=65535; a configured value is clamped to 1..=65535−headers for a master and
/// 1024..=65535−headers for a backup. (Before 4.3, set_sync_mesg_maxlen gave a master
/// 4 + 24·min((mtu − 28 − 4 − 20) / 24, 255) bytes, 1444 at MTU 1500, and a backup mtu − 28.)
pub fn sync_maxlen(role: Role, ipv6: bool, dev_mtu: u32, configured: u32) -> usize {
    let hlen = if ipv6 { IPV6_UDP_HLEN } else { IPV4_UDP_HLEN };
    let (mtu, min) = match role {
        Role::Master => (1500, 1),
        Role::Backup => (dev_mtu.clamp(1500, 65535) as usize, 1024),
    };
    if configured != 0 {
        (configured as usize).clamp(min, 65535 - hlen)
    } else {
        mtu - hlen
    }
}

/// Fills version 1 datagrams of at most `maxlen` bytes, as the kernel fills its sync buffers: an
/// entry goes into the current datagram when its padding and length still fit (and the count is
/// below 255), otherwise the datagram is finished and the entry starts the next one. An entry that
/// does not fit even an empty datagram (only with a `maxlen` below header + entry) travels alone,
/// as the kernel then sizes its buffer for it.
#[derive(Clone, Debug)]
pub struct Packer {
    syncid: u8,
    maxlen: usize,
    buf: Vec<u8>,
    count: usize,
}

impl Packer {
    /// `maxlen` above 65535 counts as 65535, what the header's size can say.
    pub fn new(syncid: u8, maxlen: usize) -> Packer {
        let maxlen = maxlen.min(u16::MAX as usize);
        let mut buf = Vec::with_capacity(maxlen.max(HEADER_LEN));
        start_v1(&mut buf, syncid);
        Packer {
            syncid,
            maxlen,
            buf,
            count: 0,
        }
    }

    /// Entries in the current datagram.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Length of the current datagram, header included.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether `e` still fits the current datagram.
    pub fn fits(&self, e: &ConnEntry) -> bool {
        self.count < MAX_ENTRIES
            && self.buf.len() + pad4(self.buf.len()) + e.wire_len() <= self.maxlen
    }

    /// Adds `e`; when it did not fit, returns the finished datagram it could not join.
    pub fn push(&mut self, e: &ConnEntry) -> Option<Vec<u8>> {
        let done = if self.count > 0 && !self.fits(e) {
            self.flush()
        } else {
            None
        };
        let at = self.buf.len() + pad4(self.buf.len());
        self.buf.resize(at, 0);
        encode_entry(&mut self.buf, e);
        self.count += 1;
        done
    }

    /// The current datagram, when it has entries; the packer starts a new one.
    pub fn flush(&mut self) -> Option<Vec<u8>> {
        if self.count == 0 {
            return None;
        }
        finish_header(&mut self.buf, self.count);
        let mut next = Vec::with_capacity(self.buf.capacity());
        start_v1(&mut next, self.syncid);
        self.count = 0;
        Some(std::mem::replace(&mut self.buf, next))
    }
}

/// Writes into `out` one version 1 datagram of at most `maxlen` bytes holding as many of
/// `entries`, in order, as fit, and returns how many that is (at least one when `entries` is not
/// empty, see [`Packer`]).
pub fn pack_one(syncid: u8, maxlen: usize, entries: &[ConnEntry], out: &mut Vec<u8>) -> usize {
    let maxlen = maxlen.min(u16::MAX as usize);
    start_v1(out, syncid);
    let mut n = 0;
    for e in entries {
        let at = out.len() + pad4(out.len());
        if n > 0 && (n == MAX_ENTRIES || at + e.wire_len() > maxlen) {
            break;
        }
        out.resize(at, 0);
        encode_entry(out, e);
        n += 1;
    }
    finish_header(out, n);
    n
}

/// All of `entries` as version 1 datagrams of at most `maxlen` bytes each.
pub fn pack(syncid: u8, maxlen: usize, entries: &[ConnEntry]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = entries;
    while !rest.is_empty() {
        let mut d = Vec::new();
        let n = pack_one(syncid, maxlen, rest, &mut d);
        out.push(d);
        rest = &rest[n..];
    }
    out
}

/// How much a [`Reject`] throws away, as the kernel does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The whole datagram: nothing of it is used.
    Message,
    /// This entry and every one after it; the entries before it are kept.
    Rest,
    /// This entry only; decoding goes on with the next.
    Entry,
}

/// Why a received datagram, or part of it, was dropped. One variant per check of
/// ip_vs_process_message, ip_vs_process_message_v0 and ip_vs_proc_sync_conn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Reject {
    /// Shorter than the 4-byte version 0 header.
    ShortHeader,
    /// The header's size is not the datagram's length.
    BadSize,
    /// Another syncid than ours (and ours is not 0).
    OtherSyncid,
    /// First byte 0 (a version 1 header) but the version is not 1 or the spare bytes are not 0;
    /// the kernel reads it as an empty version 0 message.
    BadVersion,
    /// An entry's fixed part runs past the end of the datagram.
    Truncated,
    /// An entry's length runs past the end of the datagram.
    BadEntryLen,
    /// An entry's version (top 4 bits of ver_size) is not 0.
    EntryVersion,
    /// An entry's type is neither 0 (IPv4) nor has bit 0 set (IPv6).
    BadFamily,
    /// An entry's length is shorter than its fixed part.
    EntryTooShort,
    /// An option header runs past the end of its entry.
    OptionTruncated,
    /// An option's length is 0 or runs past the end of its entry.
    BadOptionLen,
    /// The sequence option is not 24 bytes long.
    BadSeqLen,
    /// An option appears twice in one entry.
    DuplicateOption,
    /// The persistence-engine name is longer than 16 bytes.
    PeNameTooLong,
    /// A version 0 entry's sequence data runs past the end of the datagram.
    SeqTruncated,
    /// An option the receiver does not know, not marked optional.
    UnknownOption,
    /// A connection of a protocol IPVS does not handle.
    UnknownProtocol,
    /// A connection state beyond its protocol's states.
    BadState,
    /// Persistence-engine data without the engine's name.
    PeWithoutName,
}

impl Reject {
    /// Every reason, in the order of their `index`.
    pub const ALL: [Reject; 19] = [
        Reject::ShortHeader,
        Reject::BadSize,
        Reject::OtherSyncid,
        Reject::BadVersion,
        Reject::Truncated,
        Reject::BadEntryLen,
        Reject::EntryVersion,
        Reject::BadFamily,
        Reject::EntryTooShort,
        Reject::OptionTruncated,
        Reject::BadOptionLen,
        Reject::BadSeqLen,
        Reject::DuplicateOption,
        Reject::PeNameTooLong,
        Reject::SeqTruncated,
        Reject::UnknownOption,
        Reject::UnknownProtocol,
        Reject::BadState,
        Reject::PeWithoutName,
    ];

    /// A position in [`Reject::ALL`], for arrays of counters.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The stable short name counters are reported under.
    pub fn name(self) -> &'static str {
        match self {
            Reject::ShortHeader => "short_header",
            Reject::BadSize => "bad_size",
            Reject::OtherSyncid => "other_syncid",
            Reject::BadVersion => "bad_version",
            Reject::Truncated => "truncated",
            Reject::BadEntryLen => "bad_entry_len",
            Reject::EntryVersion => "entry_version",
            Reject::BadFamily => "bad_family",
            Reject::EntryTooShort => "entry_too_short",
            Reject::OptionTruncated => "option_truncated",
            Reject::BadOptionLen => "bad_option_len",
            Reject::BadSeqLen => "bad_seq_len",
            Reject::DuplicateOption => "duplicate_option",
            Reject::PeNameTooLong => "pe_name_too_long",
            Reject::SeqTruncated => "seq_truncated",
            Reject::UnknownOption => "unknown_option",
            Reject::UnknownProtocol => "unknown_protocol",
            Reject::BadState => "bad_state",
            Reject::PeWithoutName => "pe_without_name",
        }
    }

    pub fn scope(self) -> Scope {
        match self {
            Reject::ShortHeader | Reject::BadSize | Reject::OtherSyncid | Reject::BadVersion => {
                Scope::Message
            }
            Reject::UnknownOption
            | Reject::UnknownProtocol
            | Reject::BadState
            | Reject::PeWithoutName => Scope::Entry,
            _ => Scope::Rest,
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A received datagram: the entries it delivers and, in order, the reasons entries were dropped.
/// At most the last reason has [`Scope::Rest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    pub message: SyncMessage,
    pub dropped: Vec<Reject>,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn v4(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

fn v6(b: &[u8], at: usize) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(o)
}

fn seq_at(b: &[u8], at: usize, from: fn([u8; 4]) -> u32) -> SeqData {
    let w = |i: usize| from([b[at + i], b[at + i + 1], b[at + i + 2], b[at + i + 3]]);
    SeqData {
        in_seq: SeqDelta {
            init_seq: w(0),
            delta: w(4),
            previous_delta: w(8),
        },
        out_seq: SeqDelta {
            init_seq: w(12),
            delta: w(16),
            previous_delta: w(20),
        },
    }
}

/// The receiver's check of a non-template connection's protocol and state.
fn check_proto_state(flags: u32, protocol: u8, state: u16) -> Result<(), Reject> {
    if flags & flags::TEMPLATE != 0 {
        // The kernel only logs a template state beyond IP_VS_CTPL_S_LAST.
        return Ok(());
    }
    match num_states(protocol) {
        None => Err(Reject::UnknownProtocol),
        Some(n) if state >= n => Err(Reject::BadState),
        Some(_) => Ok(()),
    }
}

/// Decodes a received datagram. `our_syncid` 0 accepts every syncid.
///
/// `Err` means the whole datagram is dropped; otherwise [`Decoded`] holds the entries to apply and
/// the reasons for those dropped. Allocates at most one entry per header count (255).
pub fn decode(buf: &[u8], our_syncid: u8) -> Result<Decoded, Reject> {
    if buf.len() < HEADER_V0_LEN {
        return Err(Reject::ShortHeader);
    }
    if be16(buf, 2) as usize != buf.len() {
        return Err(Reject::BadSize);
    }
    let syncid = buf[1];
    if our_syncid != 0 && syncid != our_syncid {
        return Err(Reject::OtherSyncid);
    }
    if buf[0] != 0 {
        return Ok(decode_v0(buf, syncid));
    }
    if buf.len() < HEADER_LEN || buf[5] != SYNC_PROTO_VER || buf[6] != 0 || buf[7] != 0 {
        return Err(Reject::BadVersion);
    }
    let count = buf[4] as usize;
    let mut entries = Vec::with_capacity(count);
    let mut dropped = Vec::new();
    let mut p = HEADER_LEN;
    for _ in 0..count {
        if p + ENTRY_V4_LEN > buf.len() {
            dropped.push(Reject::Truncated);
            break;
        }
        let ver_size = be16(buf, p + 2);
        let size = (ver_size & SIZE_MASK) as usize;
        if p + size > buf.len() {
            dropped.push(Reject::BadEntryLen);
            break;
        }
        if ver_size >> VER_SHIFT != 0 {
            dropped.push(Reject::EntryVersion);
            break;
        }
        match decode_entry_v1(&buf[p..p + size], buf[p]) {
            Ok(e) => entries.push(e),
            Err(r) => {
                dropped.push(r);
                if r.scope() != Scope::Entry {
                    break;
                }
            }
        }
        p += (size + 3) & !3;
    }
    Ok(Decoded {
        message: SyncMessage {
            syncid,
            version: Version::V1,
            entries,
        },
        dropped,
    })
}

/// One version 1 entry: `e` is exactly its `size` bytes (possibly fewer than its fixed part),
/// `ty` its first byte, readable even when `e` is empty.
fn decode_entry_v1(e: &[u8], ty: u8) -> Result<ConnEntry, Reject> {
    let fixed = if ty & TYPE_F_INET6 != 0 {
        ENTRY_V6_LEN
    } else if ty == 0 {
        ENTRY_V4_LEN
    } else {
        return Err(Reject::BadFamily);
    };
    if e.len() < fixed {
        return Err(Reject::EntryTooShort);
    }

    let mut seq = None;
    let mut pe_data: Option<&[u8]> = None;
    let mut pe_name: Option<&[u8]> = None;
    let mut p = fixed;
    while p < e.len() {
        if p + 2 > e.len() {
            return Err(Reject::OptionTruncated);
        }
        let (ptype, plen) = (e[p], e[p + 1] as usize);
        p += 2;
        if plen == 0 || p + plen > e.len() {
            return Err(Reject::BadOptionLen);
        }
        let data = &e[p..p + plen];
        match ptype & !opt::F_OPTIONAL {
            opt::SEQ_DATA => {
                if plen != SEQ_DATA_LEN {
                    return Err(Reject::BadSeqLen);
                }
                if seq.is_some() {
                    return Err(Reject::DuplicateOption);
                }
                seq = Some(seq_at(data, 0, u32::from_be_bytes));
            }
            // One length byte: never above PE_DATA_MAXLEN.
            opt::PE_DATA if pe_data.is_some() => return Err(Reject::DuplicateOption),
            opt::PE_DATA => pe_data = Some(data),
            opt::PE_NAME => {
                if plen > PE_NAME_MAXLEN {
                    return Err(Reject::PeNameTooLong);
                }
                if pe_name.replace(data).is_some() {
                    return Err(Reject::DuplicateOption);
                }
            }
            _ if ptype & opt::F_OPTIONAL == 0 => return Err(Reject::UnknownOption),
            _ => {}
        }
        p += plen;
    }

    let flags = (be32(e, 4) & flags::BACKUP_MASK) | flags::SYNC;
    let protocol = e[1];
    let state = be16(e, 8);
    check_proto_state(flags, protocol, state)?;
    let pe = match (pe_data, pe_name) {
        (Some(data), Some(name)) => Some(PeInfo {
            name: name.to_vec(),
            data: data.to_vec(),
        }),
        (Some(_), None) => return Err(Reject::PeWithoutName),
        // A name without data is ignored.
        (None, _) => None,
    };
    let addrs = if fixed == ENTRY_V6_LEN {
        ConnAddrs::V6 {
            caddr: v6(e, 24),
            vaddr: v6(e, 40),
            daddr: v6(e, 56),
        }
    } else {
        ConnAddrs::V4 {
            caddr: v4(e, 24),
            vaddr: v4(e, 28),
            daddr: v4(e, 32),
        }
    };
    Ok(ConnEntry {
        protocol,
        flags,
        state,
        cport: be16(e, 10),
        vport: be16(e, 12),
        dport: be16(e, 14),
        fwmark: be32(e, 16),
        timeout: be32(e, 20),
        addrs,
        seq,
        pe,
    })
}

/// A version 0 datagram (first byte, the count, not 0). Its size and syncid are already checked.
fn decode_v0(buf: &[u8], syncid: u8) -> Decoded {
    let count = buf[0] as usize;
    let mut entries = Vec::with_capacity(count);
    let mut dropped = Vec::new();
    let mut p = HEADER_V0_LEN;
    for _ in 0..count {
        if p + ENTRY_V0_LEN > buf.len() {
            dropped.push(Reject::Truncated);
            break;
        }
        let e = &buf[p..p + ENTRY_V0_LEN];
        // Version 0 flags are 16 bits, taken whole but for HASHED.
        let flags = (be16(e, 20) as u32 | flags::SYNC) & !flags::HASHED;
        let seq = if flags & flags::SEQ_MASK != 0 {
            if p + ENTRY_V0_LEN + SEQ_DATA_LEN > buf.len() {
                dropped.push(Reject::SeqTruncated);
                break;
            }
            Some(seq_at(buf, p + ENTRY_V0_LEN, u32::from_le_bytes))
        } else {
            None
        };
        p += ENTRY_V0_LEN + if seq.is_some() { SEQ_DATA_LEN } else { 0 };
        let protocol = e[1];
        let state = be16(e, 22);
        if let Err(r) = check_proto_state(flags, protocol, state) {
            dropped.push(r);
            continue;
        }
        entries.push(ConnEntry {
            protocol,
            flags,
            state,
            cport: be16(e, 2),
            vport: be16(e, 4),
            dport: be16(e, 6),
            fwmark: 0,
            timeout: 0,
            addrs: ConnAddrs::V4 {
                caddr: v4(e, 8),
                vaddr: v4(e, 12),
                daddr: v4(e, 16),
            },
            seq,
            pe: None,
        });
    }
    Decoded {
        message: SyncMessage {
            syncid,
            version: Version::V0,
            entries,
        },
        dropped,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    // ---- Golden bytes, written from the kernel's structs (ip_vs_sync.c) field by field. ----

    /// struct ip_vs_sync_v4 of a DR connection 192.168.0.1:54321 -> 10.0.0.1:80 -> 192.168.1.16:8080.
    #[rustfmt::skip]
    const E4: [u8; 36] = [
        0x00,                   // type: 0, IPv4
        0x06,                   // protocol: TCP
        0x00, 0x24,             // ver_size: version 0, length 36
        0x00, 0x00, 0x00, 0x03, // flags: DROUTE (HASHED cleared)
        0x00, 0x01,             // state: ESTABLISHED
        0xd4, 0x31,             // cport 54321
        0x00, 0x50,             // vport 80
        0x1f, 0x90,             // dport 8080
        0x00, 0x00, 0x00, 0x00, // fwmark 0
        0x00, 0x00, 0x03, 0x84, // timeout 900 s
        0xc0, 0xa8, 0x00, 0x01, // caddr 192.168.0.1
        0x0a, 0x00, 0x00, 0x01, // vaddr 10.0.0.1
        0xc0, 0xa8, 0x01, 0x10, // daddr 192.168.1.16
    ];

    fn e4() -> ConnEntry {
        ConnEntry {
            protocol: proto::TCP,
            flags: flags::DROUTE | flags::HASHED,
            state: tcp::ESTABLISHED,
            cport: 54321,
            vport: 80,
            dport: 8080,
            fwmark: 0,
            timeout: 900,
            addrs: ConnAddrs::V4 {
                caddr: Ipv4Addr::new(192, 168, 0, 1),
                vaddr: Ipv4Addr::new(10, 0, 0, 1),
                daddr: Ipv4Addr::new(192, 168, 1, 16),
            },
            seq: None,
            pe: None,
        }
    }

    /// struct ip_vs_sync_v6 of a TUN UDP flow [2001:db8::1]:40000 -> [2001:db8::100]:53 -> [fd00::10]:53.
    #[rustfmt::skip]
    const E6: [u8; 72] = [
        0x01,                   // type: STYPE_F_INET6
        0x11,                   // protocol: UDP
        0x00, 0x48,             // ver_size: version 0, length 72
        0x00, 0x00, 0x00, 0x02, // flags: TUNNEL
        0x00, 0x00,             // state: UDP NORMAL
        0x9c, 0x40,             // cport 40000
        0x00, 0x35,             // vport 53
        0x00, 0x35,             // dport 53
        0x00, 0x00, 0x00, 0x00, // fwmark 0
        0x00, 0x00, 0x01, 0x2c, // timeout 300 s
        // caddr 2001:db8::1
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x01,
        // vaddr 2001:db8::100
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00,
        // daddr fd00::10
        0xfd, 0x00, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x10,
    ];

    fn e6() -> ConnEntry {
        ConnEntry {
            protocol: proto::UDP,
            flags: flags::TUNNEL,
            state: udp::NORMAL,
            cport: 40000,
            vport: 53,
            dport: 53,
            fwmark: 0,
            timeout: 300,
            addrs: ConnAddrs::V6 {
                caddr: "2001:db8::1".parse().unwrap(),
                vaddr: "2001:db8::100".parse().unwrap(),
                daddr: "fd00::10".parse().unwrap(),
            },
            seq: None,
            pe: None,
        }
    }

    /// struct ip_vs_sync_v4 of a NAT FTP control connection with sequence adjustment, then the
    /// IPVS_OPT_SEQ_DATA option holding struct ip_vs_sync_conn_options in network order.
    #[rustfmt::skip]
    const ES: [u8; 62] = [
        0x00,                   // type: IPv4
        0x06,                   // protocol: TCP
        0x00, 0x3e,             // ver_size: version 0, length 62 = 36 + 2 + 24
        0x00, 0x00, 0x06, 0x00, // flags: MASQ | OUT_SEQ | IN_SEQ
        0x00, 0x01,             // state: ESTABLISHED
        0x04, 0x01,             // cport 1025
        0x00, 0x15,             // vport 21
        0x00, 0x15,             // dport 21
        0x00, 0x00, 0x00, 0x00, // fwmark 0
        0x00, 0x00, 0x03, 0x84, // timeout 900 s
        0xc0, 0xa8, 0x00, 0x02, // caddr 192.168.0.2
        0x0a, 0x00, 0x00, 0x01, // vaddr 10.0.0.1
        0xc0, 0xa8, 0x01, 0x11, // daddr 192.168.1.17
        0x01,                   // option type: IPVS_OPT_SEQ_DATA
        0x18,                   // option length: 24
        0x11, 0x22, 0x33, 0x44, // in_seq.init_seq
        0x00, 0x00, 0x00, 0x10, // in_seq.delta
        0x00, 0x00, 0x00, 0x08, // in_seq.previous_delta
        0xaa, 0xbb, 0xcc, 0xdd, // out_seq.init_seq
        0xff, 0xff, 0xff, 0xf0, // out_seq.delta
        0x00, 0x00, 0x00, 0x00, // out_seq.previous_delta
    ];

    fn seq_data() -> SeqData {
        SeqData {
            in_seq: SeqDelta {
                init_seq: 0x1122_3344,
                delta: 0x10,
                previous_delta: 0x08,
            },
            out_seq: SeqDelta {
                init_seq: 0xaabb_ccdd,
                delta: 0xffff_fff0,
                previous_delta: 0,
            },
        }
    }

    fn es() -> ConnEntry {
        ConnEntry {
            protocol: proto::TCP,
            flags: flags::MASQ | flags::SEQ_MASK,
            state: tcp::ESTABLISHED,
            cport: 1025,
            vport: 21,
            dport: 21,
            fwmark: 0,
            timeout: 900,
            addrs: ConnAddrs::V4 {
                caddr: Ipv4Addr::new(192, 168, 0, 2),
                vaddr: Ipv4Addr::new(10, 0, 0, 1),
                daddr: Ipv4Addr::new(192, 168, 1, 17),
            },
            seq: Some(seq_data()),
            pe: None,
        }
    }

    /// struct ip_vs_sync_v4 of a SIP persistence template, then IPVS_OPT_PE_DATA (the Call-ID)
    /// and IPVS_OPT_PE_NAME ("sip"), unpadded: 57 bytes.
    #[rustfmt::skip]
    const EP: [u8; 57] = [
        0x00,                   // type: IPv4
        0x11,                   // protocol: UDP
        0x00, 0x39,             // ver_size: version 0, length 57 = 36 + 2 + 14 + 2 + 3
        0x00, 0x00, 0x10, 0x03, // flags: TEMPLATE | DROUTE
        0x00, 0x00,             // state: IP_VS_CTPL_S_NONE
        0x00, 0x00,             // cport 0
        0x13, 0xc4,             // vport 5060
        0x13, 0xc4,             // dport 5060
        0x00, 0x00, 0x00, 0x00, // fwmark 0
        0x00, 0x00, 0x01, 0x68, // timeout 360 s
        0xc0, 0xa8, 0x00, 0x03, // caddr 192.168.0.3
        0x0a, 0x00, 0x00, 0x02, // vaddr 10.0.0.2
        0xc0, 0xa8, 0x01, 0x12, // daddr 192.168.1.18
        0x02,                   // option type: IPVS_OPT_PE_DATA
        0x0e,                   // option length: 14
        b'a', b'8', b'4', b'b', b'4', b'c', b'7', b'6', b'e', b'6', b'6', b'7', b'1', b'0',
        0x03,                   // option type: IPVS_OPT_PE_NAME
        0x03,                   // option length: 3
        b's', b'i', b'p',
    ];

    fn ep() -> ConnEntry {
        ConnEntry {
            protocol: proto::UDP,
            flags: flags::TEMPLATE | flags::DROUTE,
            state: template::NONE,
            cport: 0,
            vport: 5060,
            dport: 5060,
            fwmark: 0,
            timeout: 360,
            addrs: ConnAddrs::V4 {
                caddr: Ipv4Addr::new(192, 168, 0, 3),
                vaddr: Ipv4Addr::new(10, 0, 0, 2),
                daddr: Ipv4Addr::new(192, 168, 1, 18),
            },
            seq: None,
            pe: PeInfo::new(b"sip", b"a84b4c76e66710"),
        }
    }

    /// struct ip_vs_sync_v4 of the template of fwmark service 1: protocol IPPROTO_IP, the mark as
    /// the virtual address, no ports but the real server's.
    #[rustfmt::skip]
    const ET: [u8; 36] = [
        0x00,                   // type: IPv4
        0x00,                   // protocol: IPPROTO_IP
        0x00, 0x24,             // ver_size: version 0, length 36
        0x00, 0x00, 0x10, 0x00, // flags: TEMPLATE | MASQ
        0x00, 0x01,             // state: IP_VS_CTPL_S_ASSURED
        0x00, 0x00,             // cport 0
        0x00, 0x00,             // vport 0
        0x00, 0x50,             // dport 80
        0x00, 0x00, 0x00, 0x01, // fwmark 1
        0x00, 0x00, 0x01, 0x2c, // timeout 300 s
        0xc0, 0xa8, 0x00, 0x04, // caddr 192.168.0.4
        0x00, 0x00, 0x00, 0x01, // vaddr 0.0.0.1 (the fwmark)
        0xc0, 0xa8, 0x01, 0x10, // daddr 192.168.1.16
    ];

    fn et() -> ConnEntry {
        ConnEntry {
            protocol: 0,
            flags: flags::TEMPLATE | flags::MASQ,
            state: template::ASSURED,
            cport: 0,
            vport: 0,
            dport: 80,
            fwmark: 1,
            timeout: 300,
            addrs: ConnAddrs::V4 {
                caddr: Ipv4Addr::new(192, 168, 0, 4),
                vaddr: Ipv4Addr::new(0, 0, 0, 1),
                daddr: Ipv4Addr::new(192, 168, 1, 16),
            },
            seq: None,
            pe: None,
        }
    }

    /// struct ip_vs_sync_mesg for syncid 7: {reserved 0, syncid, size BE16, nr_conns, version 1,
    /// spare 0}.
    fn header(size: u16, count: u8) -> Vec<u8> {
        let s = size.to_be_bytes();
        vec![0x00, 0x07, s[0], s[1], count, 0x01, 0x00, 0x00]
    }

    fn v1(entries: Vec<ConnEntry>) -> SyncMessage {
        SyncMessage {
            syncid: 7,
            version: Version::V1,
            entries,
        }
    }

    fn golden(entry: ConnEntry, bytes: &[u8]) {
        let mut expect = header(8 + bytes.len() as u16, 1);
        expect.extend_from_slice(bytes);
        let msg = v1(vec![entry.clone()]);
        let got = encode(&msg).unwrap();
        assert_eq!(got, expect);
        let d = decode(&got, 7).unwrap();
        assert_eq!(d.dropped, vec![]);
        assert_eq!(d.message.entries, vec![entry.as_received()]);
        assert_eq!(d.message.syncid, 7);
        assert_eq!(d.message.version, Version::V1);
    }

    #[test]
    fn golden_v1_ipv4() {
        golden(e4(), &E4);
        // Received: HASHED is not kept, SYNC is added.
        let d = decode(&encode(&v1(vec![e4()])).unwrap(), 0).unwrap();
        assert_eq!(d.message.entries[0].flags, flags::DROUTE | flags::SYNC);
    }

    #[test]
    fn golden_v1_ipv6() {
        golden(e6(), &E6);
        assert_eq!(e6().wire_len(), ENTRY_V6_LEN);
    }

    #[test]
    fn golden_v1_seq_data() {
        golden(es(), &ES);
        let d = decode(&encode(&v1(vec![es()])).unwrap(), 7).unwrap();
        assert_eq!(d.message.entries[0].seq, Some(seq_data()));
        // The option follows the flags, as the kernel's: SEQ flags without data send zeros.
        let mut bare = es();
        bare.seq = None;
        let got = encode(&v1(vec![bare])).unwrap();
        assert_eq!(&got[8 + 38..], &[0u8; 24]);
    }

    #[test]
    fn golden_v1_pe_options() {
        golden(ep(), &EP);
        let d = decode(&encode(&v1(vec![ep()])).unwrap(), 7).unwrap();
        let pe = d.message.entries[0].pe.clone().unwrap();
        assert_eq!(pe.name(), b"sip");
        assert_eq!(pe.data(), b"a84b4c76e66710");
    }

    #[test]
    fn golden_v1_template() {
        golden(et(), &ET);
        let d = decode(&encode(&v1(vec![et()])).unwrap(), 7).unwrap();
        assert!(d.message.entries[0].is_template());
    }

    #[test]
    fn golden_v1_multi_entry() {
        // EP (57 bytes) is padded to 60 so that E4 starts at offset 68, a multiple of 4; E4 ends
        // at 104, already aligned, so E6 follows at once; the last entry is not padded.
        let mut expect = header(176, 3);
        expect.extend_from_slice(&EP); // 8..65
        expect.extend_from_slice(&[0, 0, 0]); // 65..68, padding
        expect.extend_from_slice(&E4); // 68..104
        expect.extend_from_slice(&E6); // 104..176
        assert_eq!(expect.len(), 176);
        let msg = v1(vec![ep(), e4(), e6()]);
        let got = encode(&msg).unwrap();
        assert_eq!(got, expect);
        let d = decode(&got, 7).unwrap();
        assert_eq!(d.dropped, vec![]);
        assert_eq!(
            d.message.entries,
            msg.entries
                .iter()
                .map(ConnEntry::as_received)
                .collect::<Vec<_>>()
        );
        // The packer writes the same datagram when it all fits.
        assert_eq!(pack(7, 1472, &msg.entries), vec![expect]);
    }

    /// struct ip_vs_sync_mesg_v0 {nr_conns 2, syncid 7, size 76}, then two
    /// struct ip_vs_sync_conn_v0, the second followed by struct ip_vs_sync_conn_options copied in
    /// an x86 kernel's host (little-endian) order.
    #[rustfmt::skip]
    const V0: [u8; 76] = [
        0x02,                   // nr_conns
        0x07,                   // syncid
        0x00, 0x4c,             // size 76
        // entry 1
        0x00,                   // reserved
        0x06,                   // protocol: TCP
        0xd4, 0x31,             // cport 54321
        0x00, 0x50,             // vport 80
        0x1f, 0x90,             // dport 8080
        0xc0, 0xa8, 0x00, 0x01, // caddr 192.168.0.1
        0x0a, 0x00, 0x00, 0x01, // vaddr 10.0.0.1
        0xc0, 0xa8, 0x01, 0x10, // daddr 192.168.1.16
        0x00, 0x03,             // flags: DROUTE
        0x00, 0x01,             // state: ESTABLISHED
        // entry 2
        0x00,                   // reserved
        0x06,                   // protocol: TCP
        0x04, 0x01,             // cport 1025
        0x00, 0x15,             // vport 21
        0x00, 0x15,             // dport 21
        0xc0, 0xa8, 0x00, 0x02, // caddr 192.168.0.2
        0x0a, 0x00, 0x00, 0x01, // vaddr 10.0.0.1
        0xc0, 0xa8, 0x01, 0x11, // daddr 192.168.1.17
        0x06, 0x00,             // flags: MASQ | OUT_SEQ | IN_SEQ
        0x00, 0x01,             // state: ESTABLISHED
        0x44, 0x33, 0x22, 0x11, // in_seq.init_seq
        0x10, 0x00, 0x00, 0x00, // in_seq.delta
        0x08, 0x00, 0x00, 0x00, // in_seq.previous_delta
        0xdd, 0xcc, 0xbb, 0xaa, // out_seq.init_seq
        0xf0, 0xff, 0xff, 0xff, // out_seq.delta
        0x00, 0x00, 0x00, 0x00, // out_seq.previous_delta
    ];

    /// What a version 0 receiver gets of an entry: no timeout, fwmark or PE data, flags as
    /// 16 bits with SYNC added and HASHED removed.
    fn as_received_v0(e: &ConnEntry) -> ConnEntry {
        let mut r = e.clone();
        r.flags = ((e.flags & 0xffff) | flags::SYNC) & !flags::HASHED;
        r.seq = (e.flags & flags::SEQ_MASK != 0).then(|| e.seq.unwrap_or_default());
        r.timeout = 0;
        r.fwmark = 0;
        r.pe = None;
        r
    }

    #[test]
    fn golden_v0() {
        let d = decode(&V0, 0).unwrap();
        assert_eq!(d.dropped, vec![]);
        assert_eq!(d.message.version, Version::V0);
        assert_eq!(d.message.syncid, 7);
        assert_eq!(
            d.message.entries,
            vec![as_received_v0(&e4()), as_received_v0(&es())]
        );
        assert_eq!(d.message.entries[1].seq, Some(seq_data()));
        assert_eq!(d.message.entries[0].timeout, 0);
        let msg = SyncMessage {
            syncid: 7,
            version: Version::V0,
            entries: vec![e4(), es()],
        };
        assert_eq!(encode(&msg).unwrap(), V0.to_vec());
        let mut v6 = msg.clone();
        v6.entries.push(e6());
        assert_eq!(encode(&v6), Err(EncodeError::Ipv6InV0));
    }

    #[test]
    fn constants_match_the_data_plane() {
        use rvs_common::tcp_state;
        assert_eq!(tcp::ESTABLISHED, tcp_state::ESTABLISHED as u16);
        assert_eq!(tcp::SYN_RECV, tcp_state::SYN_RECV as u16);
        assert_eq!(tcp::TIME_WAIT, tcp_state::TIME_WAIT as u16);
        assert_eq!(tcp::SYNACK, tcp_state::SYNACK as u16);
        assert_eq!(tcp::LAST as usize, tcp_state::COUNT);
        assert_eq!(flags::BACKUP_MASK, 0x1f87);
        assert_eq!(MAX_ENTRY_LEN, 373);
    }

    #[test]
    fn maxlen_follows_start_sync_thread() {
        assert_eq!(sync_maxlen(Role::Master, false, 9000, 0), 1472);
        assert_eq!(sync_maxlen(Role::Master, true, 1500, 0), 1452);
        assert_eq!(sync_maxlen(Role::Backup, false, 9000, 0), 8972);
        assert_eq!(sync_maxlen(Role::Backup, false, 1280, 0), 1472);
        assert_eq!(sync_maxlen(Role::Master, false, 1500, 100), 100);
        assert_eq!(sync_maxlen(Role::Backup, false, 1500, 100), 1024);
        assert_eq!(sync_maxlen(Role::Master, false, 1500, 70000), 65507);
        assert_eq!(sync_maxlen(Role::Backup, true, 1500, 70000), 65487);
    }

    /// The longest entry there is.
    fn p_big() -> ConnEntry {
        let mut big = e6();
        big.flags |= flags::SEQ_MASK;
        big.pe = PeInfo::new(&[b'n'; 16], &[7; 255]);
        big
    }

    #[test]
    fn packer_splits_at_maxlen_and_255_entries() {
        let entries = vec![e4(); 100];
        // 8 + 40 * 36 = 1448 <= 1472 < 1448 + 36: forty entries a datagram.
        let mut d = Vec::new();
        assert_eq!(pack_one(7, 1472, &entries, &mut d), 40);
        assert_eq!(d.len(), 1448);
        let all = pack(7, 1472, &entries);
        assert_eq!(
            all.iter().map(|d| d[4]).collect::<Vec<_>>(),
            vec![40, 40, 20]
        );
        // A large maxlen still stops at 255 entries.
        let many = vec![e4(); 600];
        let all = pack(7, 65507, &many);
        assert_eq!(
            all.iter().map(|d| d[4]).collect::<Vec<_>>(),
            vec![255, 255, 90]
        );
        // The 16-bit size field bounds maxlen: 255 of the longest entries would not fit it.
        let big = p_big();
        assert_eq!(big.wire_len(), MAX_ENTRY_LEN);
        let all = pack(7, usize::MAX, &vec![big.clone(); 300]);
        assert!(all.iter().all(|d| d.len() <= u16::MAX as usize));
        let n: usize = all
            .iter()
            .map(|d| decode(d, 7).unwrap().message.entries.len())
            .sum();
        assert_eq!(n, 300);
        let mut p = Packer::new(7, usize::MAX);
        let mut out: Vec<Vec<u8>> = vec![big; 300].iter().filter_map(|e| p.push(e)).collect();
        out.extend(p.flush());
        assert_eq!(out, all);
        assert_eq!(encode(&v1(vec![e4(); 255])).unwrap().len(), 8 + 255 * 36);
        assert_eq!(
            encode(&v1(vec![e4(); 256])),
            Err(EncodeError::TooManyEntries)
        );
        assert_eq!(encode(&v1(vec![p_big(); 255])), Err(EncodeError::TooLong));
        // An entry larger than maxlen travels alone, as the kernel sizes its buffer for it.
        let all = pack(7, 20, &[e4(), e4()]);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].len(), 44);
        // The incremental packer agrees.
        let mut p = Packer::new(7, 1472);
        let mut out: Vec<Vec<u8>> = entries.iter().filter_map(|e| p.push(e)).collect();
        out.extend(p.flush());
        assert_eq!(out, pack(7, 1472, &entries));
        assert!(p.is_empty());
        assert_eq!(p.flush(), None);
    }

    // ---- One test per reason. ----

    /// A version 1 datagram of syncid 7 from raw entries, padded and sized as the kernel does.
    fn raw_v1(count: u8, entries: &[&[u8]]) -> Vec<u8> {
        let mut out = header(0, count);
        for e in entries {
            out.resize(out.len() + pad4(out.len()), 0);
            out.extend_from_slice(e);
        }
        let size = (out.len() as u16).to_be_bytes();
        out[2..4].copy_from_slice(&size);
        out
    }

    /// `base` with `extra` bytes appended and its length set to match.
    fn with_opts(base: &[u8], extra: &[u8]) -> Vec<u8> {
        let mut e = base.to_vec();
        e.extend_from_slice(extra);
        let len = (e.len() as u16).to_be_bytes();
        e[2..4].copy_from_slice(&len);
        e
    }

    fn dropped(buf: &[u8]) -> (usize, Vec<Reject>) {
        let d = decode(buf, 0).unwrap();
        (d.message.entries.len(), d.dropped)
    }

    #[test]
    fn reject_short_header() {
        assert_eq!(decode(&[], 0), Err(Reject::ShortHeader));
        assert_eq!(decode(&[0, 7, 0], 0), Err(Reject::ShortHeader));
    }

    #[test]
    fn reject_bad_size() {
        let mut m = raw_v1(1, &[&E4]);
        m[3] += 1;
        assert_eq!(decode(&m, 0), Err(Reject::BadSize));
        let mut m = raw_v1(1, &[&E4]);
        m.push(0);
        assert_eq!(decode(&m, 0), Err(Reject::BadSize));
    }

    #[test]
    fn reject_other_syncid() {
        let m = raw_v1(1, &[&E4]);
        assert_eq!(decode(&m, 8), Err(Reject::OtherSyncid));
        assert!(decode(&m, 7).is_ok());
        assert!(decode(&m, 0).is_ok());
        assert_eq!(decode(&V0, 9), Err(Reject::OtherSyncid));
    }

    #[test]
    fn reject_bad_version() {
        let mut m = raw_v1(1, &[&E4]);
        m[5] = 2;
        assert_eq!(decode(&m, 0), Err(Reject::BadVersion));
        let mut m = raw_v1(1, &[&E4]);
        m[7] = 1;
        assert_eq!(decode(&m, 0), Err(Reject::BadVersion));
        // First byte 0 and too short for a version 1 header.
        assert_eq!(decode(&[0, 7, 0, 4], 0), Err(Reject::BadVersion));
        assert_eq!(Reject::BadVersion.scope(), Scope::Message);
    }

    #[test]
    fn reject_truncated() {
        // Two entries announced, one present: the first is kept.
        let m = raw_v1(2, &[&E4]);
        assert_eq!(dropped(&m), (1, vec![Reject::Truncated]));
        // Version 0: the same.
        let mut m = V0[..4 + 24].to_vec();
        m[3] = 28;
        assert_eq!(dropped(&m), (1, vec![Reject::Truncated]));
    }

    #[test]
    fn reject_bad_entry_len() {
        let mut e = E4;
        e[2..4].copy_from_slice(&200u16.to_be_bytes());
        assert_eq!(dropped(&raw_v1(1, &[&e])), (0, vec![Reject::BadEntryLen]));
    }

    #[test]
    fn reject_entry_version() {
        let mut e = E4;
        e[2] = 0x10;
        assert_eq!(dropped(&raw_v1(1, &[&e])), (0, vec![Reject::EntryVersion]));
    }

    #[test]
    fn reject_bad_family() {
        let mut e = E4;
        e[0] = 2;
        assert_eq!(
            dropped(&raw_v1(2, &[&E4, &e, &E4])),
            (1, vec![Reject::BadFamily])
        );
        // Type 3 has bit 0 set: it is IPv6.
        let mut e = E6;
        e[0] = 3;
        assert_eq!(dropped(&raw_v1(1, &[&e])), (1, vec![]));
    }

    #[test]
    fn reject_entry_too_short() {
        let mut e = E4;
        e[3] = 30;
        assert_eq!(dropped(&raw_v1(1, &[&e])), (0, vec![Reject::EntryTooShort]));
        // An IPv4-sized entry marked IPv6.
        let mut e = E4;
        e[0] = 1;
        assert_eq!(dropped(&raw_v1(1, &[&e])), (0, vec![Reject::EntryTooShort]));
    }

    #[test]
    fn reject_option_truncated() {
        let e = with_opts(&E4, &[0x41]);
        assert_eq!(
            dropped(&raw_v1(1, &[&e])),
            (0, vec![Reject::OptionTruncated])
        );
    }

    #[test]
    fn reject_bad_option_len() {
        let e = with_opts(&E4, &[0x41, 0]);
        assert_eq!(dropped(&raw_v1(1, &[&e])), (0, vec![Reject::BadOptionLen]));
        let e = with_opts(&E4, &[0x42, 3, 1, 2]);
        assert_eq!(dropped(&raw_v1(1, &[&e])), (0, vec![Reject::BadOptionLen]));
    }

    #[test]
    fn reject_bad_seq_len() {
        let e = with_opts(
            &E4,
            &[opt::SEQ_DATA, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        );
        assert_eq!(dropped(&raw_v1(1, &[&e])), (0, vec![Reject::BadSeqLen]));
    }

    #[test]
    fn reject_duplicate_option() {
        let e = with_opts(&EP, &[opt::PE_NAME, 3, b's', b'i', b'p']);
        assert_eq!(
            dropped(&raw_v1(1, &[&e])),
            (0, vec![Reject::DuplicateOption])
        );
        let e = with_opts(&ES, &ES[36..]);
        assert_eq!(
            dropped(&raw_v1(1, &[&e])),
            (0, vec![Reject::DuplicateOption])
        );
        let e = with_opts(&EP, &EP[36..52]);
        assert_eq!(
            dropped(&raw_v1(1, &[&e])),
            (0, vec![Reject::DuplicateOption])
        );
    }

    #[test]
    fn reject_pe_name_too_long() {
        let mut o = vec![opt::PE_NAME, 17];
        o.extend_from_slice(&[b'x'; 17]);
        let e = with_opts(&EP[..52], &o);
        assert_eq!(dropped(&raw_v1(1, &[&e])), (0, vec![Reject::PeNameTooLong]));
    }

    #[test]
    fn reject_seq_truncated() {
        // Version 0 entry 2 announces sequence data it does not carry.
        let mut m = V0[..4 + 48].to_vec();
        m[3] = 52;
        assert_eq!(dropped(&m), (1, vec![Reject::SeqTruncated]));
    }

    #[test]
    fn reject_unknown_option() {
        // Unknown and mandatory: this entry goes, the next one is read.
        let e = with_opts(&E4, &[9, 2, 0, 0]);
        assert_eq!(
            dropped(&raw_v1(2, &[&e, &E6])),
            (1, vec![Reject::UnknownOption])
        );
        // Unknown and optional: skipped.
        let e = with_opts(&E4, &[9 | opt::F_OPTIONAL, 2, 0, 0]);
        assert_eq!(dropped(&raw_v1(1, &[&e])), (1, vec![]));
        // The optional bit on a known type still means that type.
        let mut e = ES;
        e[36] |= opt::F_OPTIONAL;
        let d = decode(&raw_v1(1, &[&e]), 0).unwrap();
        assert_eq!(d.message.entries[0].seq, Some(seq_data()));
    }

    #[test]
    fn reject_unknown_protocol() {
        let mut e = E4;
        e[1] = 0;
        assert_eq!(
            dropped(&raw_v1(2, &[&e, &E4])),
            (1, vec![Reject::UnknownProtocol])
        );
        // Templates are not checked: ET has protocol 0.
        assert_eq!(dropped(&raw_v1(1, &[&ET])), (1, vec![]));
        let mut m = V0;
        m[5] = 99;
        assert_eq!(dropped(&m), (1, vec![Reject::UnknownProtocol]));
    }

    #[test]
    fn reject_bad_state() {
        let mut e = E4;
        e[9] = tcp::LAST as u8;
        assert_eq!(dropped(&raw_v1(1, &[&e])), (0, vec![Reject::BadState]));
        let mut e = E6;
        e[9] = 1;
        assert_eq!(dropped(&raw_v1(1, &[&e])), (0, vec![Reject::BadState]));
        // A template's state is not checked.
        let mut e = ET;
        e[9] = 9;
        assert_eq!(dropped(&raw_v1(1, &[&e])), (1, vec![]));
        let mut m = V0;
        m[27] = 12;
        assert_eq!(dropped(&m), (1, vec![Reject::BadState]));
    }

    #[test]
    fn reject_pe_without_name() {
        let e = with_opts(&EP[..36], &EP[36..52]);
        assert_eq!(
            dropped(&raw_v1(2, &[&e, &E4])),
            (1, vec![Reject::PeWithoutName])
        );
        // A name without data is ignored.
        let e = with_opts(&EP[..36], &EP[52..]);
        let d = decode(&raw_v1(1, &[&e]), 0).unwrap();
        assert_eq!(d.message.entries[0].pe, None);
    }

    #[test]
    fn reject_names_are_unique_and_indexed() {
        for (i, r) in Reject::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert_eq!(r.to_string(), r.name());
        }
        let mut names: Vec<_> = Reject::ALL.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Reject::ALL.len());
    }

    #[test]
    fn pe_info_bounds() {
        assert!(PeInfo::new(b"", b"x").is_none());
        assert!(PeInfo::new(b"sip", b"").is_none());
        assert!(PeInfo::new(&[b'x'; 17], b"x").is_none());
        assert!(PeInfo::new(b"sip", &[0; 256]).is_none());
        assert!(PeInfo::new(&[b'x'; 16], &[0; 255]).is_some());
    }

    // ---- Properties. ----

    fn addrs() -> impl Strategy<Value = ConnAddrs> {
        prop_oneof![
            any::<[[u8; 4]; 3]>().prop_map(|[c, v, d]| ConnAddrs::V4 {
                caddr: c.into(),
                vaddr: v.into(),
                daddr: d.into(),
            }),
            any::<[u128; 3]>().prop_map(|[c, v, d]| ConnAddrs::V6 {
                caddr: c.into(),
                vaddr: v.into(),
                daddr: d.into(),
            }),
        ]
    }

    prop_compose! {
        /// An entry a kernel master could send: a known protocol and a state in range unless it is
        /// a template, sequence data exactly when the flags ask for it.
        fn entry()(
            proto_seed in any::<u8>(),
            is_template in any::<bool>(),
            raw_flags in any::<u32>(),
            state_seed in any::<u16>(),
            ports in any::<[u16; 3]>(),
            fwmark in any::<u32>(),
            timeout in any::<u32>(),
            addrs in addrs(),
            seq in any::<[u32; 6]>(),
            pe in proptest::option::of((
                proptest::collection::vec(any::<u8>(), 1..=PE_NAME_MAXLEN),
                proptest::collection::vec(any::<u8>(), 1..=PE_DATA_MAXLEN),
            )),
        ) -> ConnEntry {
            const KNOWN: [u8; 5] = [proto::TCP, proto::UDP, proto::SCTP, proto::AH, proto::ESP];
            let (protocol, state) = if is_template {
                (proto_seed, state_seed)
            } else {
                let p = KNOWN[proto_seed as usize % KNOWN.len()];
                (p, state_seed % num_states(p).unwrap())
            };
            let flags = (raw_flags & !flags::TEMPLATE) | if is_template { flags::TEMPLATE } else { 0 };
            let seq = (flags & flags::SEQ_MASK != 0).then(|| SeqData {
                in_seq: SeqDelta { init_seq: seq[0], delta: seq[1], previous_delta: seq[2] },
                out_seq: SeqDelta { init_seq: seq[3], delta: seq[4], previous_delta: seq[5] },
            });
            ConnEntry {
                protocol,
                flags,
                state,
                cport: ports[0],
                vport: ports[1],
                dport: ports[2],
                fwmark,
                timeout,
                addrs,
                seq,
                pe: pe.and_then(|(n, d)| PeInfo::new(&n, &d)),
            }
        }
    }

    /// What holds of any decode result: no more entries than announced, every entry-level drop
    /// before at most one that ends the datagram.
    fn check_decoded(buf: &[u8], d: &Decoded) {
        let announced = buf[0].max(if buf[0] == 0 { buf[4] } else { 0 }) as usize;
        assert!(d.message.entries.len() + d.dropped.len() <= announced);
        if let Some((last, before)) = d.dropped.split_last() {
            assert_ne!(last.scope(), Scope::Message);
            assert!(before.iter().all(|r| r.scope() == Scope::Entry));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn decoding_arbitrary_bytes_never_panics(
            buf in proptest::collection::vec(any::<u8>(), 0..1600),
            our in any::<u8>(),
            fix_size in any::<bool>(),
        ) {
            let mut buf = buf;
            if fix_size && buf.len() >= 4 {
                let size = (buf.len() as u16).to_be_bytes();
                buf[2..4].copy_from_slice(&size);
            }
            if let Ok(d) = decode(&buf, our) {
                check_decoded(&buf, &d);
            }
        }

        #[test]
        fn decoding_mutated_messages_never_panics(
            entries in proptest::collection::vec(entry(), 1..8),
            edits in proptest::collection::vec((any::<u16>(), any::<u8>()), 1..6),
            cut in any::<u16>(),
        ) {
            let mut buf = encode(&v1(entries)).unwrap();
            for (at, b) in edits {
                let at = at as usize % buf.len();
                buf[at] = b;
            }
            buf.truncate(buf.len() - (cut as usize % 4).min(buf.len() - 4));
            let size = (buf.len() as u16).to_be_bytes();
            buf[2..4].copy_from_slice(&size);
            if let Ok(d) = decode(&buf, 0) {
                check_decoded(&buf, &d);
            }
        }

        #[test]
        fn decode_inverts_encode(
            entries in proptest::collection::vec(entry(), 0..24),
            syncid in any::<u8>(),
        ) {
            let msg = SyncMessage { syncid, version: Version::V1, entries };
            let buf = encode(&msg).unwrap();
            prop_assert_eq!(u16::from_be_bytes([buf[2], buf[3]]) as usize, buf.len());
            let d = decode(&buf, syncid).unwrap();
            prop_assert_eq!(&d.dropped, &vec![]);
            let received: Vec<ConnEntry> = msg.entries.iter().map(ConnEntry::as_received).collect();
            prop_assert_eq!(&d.message.entries, &received);
            // On entries as a receiver holds them, encode then decode is the identity.
            let again = SyncMessage { syncid, version: Version::V1, entries: received };
            prop_assert_eq!(decode(&encode(&again).unwrap(), 0).unwrap().message, again);
        }

        #[test]
        fn decode_inverts_encode_v0(
            entries in proptest::collection::vec(entry(), 0..24),
        ) {
            let entries: Vec<ConnEntry> = entries.into_iter().filter(|e| !e.is_ipv6()).collect();
            let msg = SyncMessage { syncid: 3, version: Version::V0, entries };
            let buf = encode(&msg).unwrap();
            // An empty version 0 message starts with 0 and reads as a bad version 1 header.
            prop_assume!(!msg.entries.is_empty());
            let d = decode(&buf, 3).unwrap();
            prop_assert_eq!(&d.dropped, &vec![]);
            let received: Vec<ConnEntry> = msg.entries.iter().map(as_received_v0).collect();
            prop_assert_eq!(d.message.entries, received);
        }

        #[test]
        fn packer_never_exceeds_maxlen(
            entries in proptest::collection::vec(entry(), 0..300),
            maxlen in (HEADER_LEN + MAX_ENTRY_LEN)..4000usize,
        ) {
            let all = pack(9, maxlen, &entries);
            let mut seen = Vec::new();
            for (i, d) in all.iter().enumerate() {
                prop_assert!(d.len() <= maxlen);
                let got = decode(d, 9).unwrap();
                prop_assert_eq!(&got.dropped, &vec![]);
                prop_assert!(!got.message.entries.is_empty());
                seen.extend(got.message.entries);
                // Every datagram but the last is full: the next entry did not fit.
                if i + 1 < all.len() {
                    let next = &entries[seen.len()];
                    prop_assert!(
                        d[4] as usize == MAX_ENTRIES
                            || d.len() + pad4(d.len()) + next.wire_len() > maxlen
                    );
                }
            }
            let received: Vec<ConnEntry> = entries.iter().map(ConnEntry::as_received).collect();
            prop_assert_eq!(seen, received);
            let mut p = Packer::new(9, maxlen);
            let mut inc: Vec<Vec<u8>> = entries.iter().filter_map(|e| p.push(e)).collect();
            inc.extend(p.flush());
            prop_assert_eq!(inc, all);
        }

        #[test]
        fn packer_below_an_entry_sends_it_alone(
            entries in proptest::collection::vec(entry(), 1..20),
            maxlen in 0..(HEADER_LEN + MAX_ENTRY_LEN),
        ) {
            for d in pack(9, maxlen, &entries) {
                prop_assert!(d.len() <= maxlen || d[4] == 1);
            }
        }
    }
}
