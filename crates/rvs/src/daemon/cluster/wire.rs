//! The load report one cluster's director sends another's, by UDP, every `period`. Pure encode
//! and decode; [`decode`] takes any bytes and never panics (a fuzz target).
//!
//! ```text
//! | "RVSL" | version 1 | name length N | flags (0) | reserved (0) | load (BE32, thousandths) |
//! | sent at (BE64, Unix ms) | name (N bytes, [A-Za-z0-9._-]) |
//! ```
//!
//! On the wire the report is sealed in sync's authenticated envelope ([`super::super::sync::auth`]:
//! `"RVSA"`, a sequence number, HMAC-SHA256 over the sender's address, the report, the magic and
//! the sequence number), so a report is only taken from the address it was sealed for, with the
//! shared key, and only once ([`open`]).

use std::net::IpAddr;

use crate::daemon::sync::auth::{AuthReject, Key, ReplayGuard};

pub const MAGIC: &[u8; 4] = b"RVSL";
pub const VERSION: u8 = 1;
/// The fixed part before the name.
pub const HEADER_LEN: usize = 20;
/// The longest cluster name.
pub const MAX_NAME: usize = 64;

/// One cluster's load at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub cluster: String,
    /// Thousandths: 1000 is a cluster at its capacity.
    pub load: u32,
    /// The sender's wall clock, Unix milliseconds.
    pub sent_at_ms: u64,
}

/// Why a datagram is not a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    Short,
    BadMagic,
    BadVersion,
    BadName,
    BadLength,
    /// Flags or reserved bits set (a later version's).
    Reserved,
}

impl WireError {
    pub fn name(self) -> &'static str {
        match self {
            WireError::Short => "short",
            WireError::BadMagic => "bad_magic",
            WireError::BadVersion => "bad_version",
            WireError::BadName => "bad_name",
            WireError::BadLength => "bad_length",
            WireError::Reserved => "reserved_bits",
        }
    }
}

/// A cluster name as reports carry it.
pub fn valid_name(name: &[u8]) -> bool {
    (1..=MAX_NAME).contains(&name.len())
        && name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b))
}

/// The report's bytes (before the envelope). A name that is not valid is the caller's bug: the
/// configuration refuses it.
pub fn encode(r: &Report) -> Vec<u8> {
    let name = r.cluster.as_bytes();
    debug_assert!(valid_name(name), "cluster name {:?}", r.cluster);
    let name = &name[..name.len().min(MAX_NAME)];
    let mut out = Vec::with_capacity(HEADER_LEN + name.len());
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(name.len() as u8);
    out.push(0);
    out.push(0);
    out.extend_from_slice(&r.load.to_be_bytes());
    out.extend_from_slice(&r.sent_at_ms.to_be_bytes());
    out.extend_from_slice(name);
    out
}

/// The report in `bytes`, or why not; any input is safe.
pub fn decode(bytes: &[u8]) -> Result<Report, WireError> {
    let Some((header, name)) = bytes.split_first_chunk::<HEADER_LEN>() else {
        return Err(WireError::Short);
    };
    if &header[..4] != MAGIC {
        return Err(WireError::BadMagic);
    }
    if header[4] != VERSION {
        return Err(WireError::BadVersion);
    }
    if header[6] != 0 || header[7] != 0 {
        return Err(WireError::Reserved);
    }
    if usize::from(header[5]) != name.len() {
        return Err(WireError::BadLength);
    }
    if !valid_name(name) {
        return Err(WireError::BadName);
    }
    let load = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
    let mut at = [0u8; 8];
    at.copy_from_slice(&header[12..20]);
    Ok(Report {
        // valid_name admits ASCII only.
        cluster: name.iter().map(|&b| b as char).collect(),
        load,
        sent_at_ms: u64::from_be_bytes(at),
    })
}

/// `report`, sealed for sending from `sender` with sequence number `seq`.
pub fn seal(key: &Key, sender: IpAddr, report: &Report, seq: u64) -> Vec<u8> {
    key.seal(sender, &encode(report), seq)
}

/// Why a received datagram was dropped (counted under [`Drop::name`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drop {
    /// From an address that is no configured peer.
    UnknownPeer,
    Auth(AuthReject),
    Malformed(WireError),
    /// Authenticated, but naming another cluster than the peer at that address.
    WrongName,
}

impl Drop {
    pub fn name(self) -> &'static str {
        match self {
            Drop::UnknownPeer => "unknown_peer",
            Drop::Auth(a) => a.name(),
            Drop::Malformed(_) => "malformed",
            Drop::WrongName => "wrong_name",
        }
    }
}

/// The report in a datagram from `from`, if `from` is a peer (`peer_name` gives its configured
/// name), the HMAC is right, the sequence number is new (then `guard` remembers it) and the
/// report well formed and from that peer.
pub fn open(
    key: &Key,
    guard: &mut ReplayGuard,
    from: IpAddr,
    datagram: &[u8],
    peer_name: impl Fn(IpAddr) -> Option<String>,
) -> Result<Report, Drop> {
    let name = peer_name(from).ok_or(Drop::UnknownPeer)?;
    let (message, seq) = key.open(from, datagram).map_err(Drop::Auth)?;
    let report = decode(message).map_err(Drop::Malformed)?;
    if report.cluster != name {
        return Err(Drop::WrongName);
    }
    // Only a report that is whole and from that peer moves its sequence number on.
    guard.accept(from, seq).map_err(Drop::Auth)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            cluster: "idc2".into(),
            load: 1234,
            sent_at_ms: 1_700_000_000_123,
        }
    }

    fn key() -> Key {
        Key::new(b"the clusters' shared secret").unwrap()
    }

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 2, 1));

    fn peers(a: IpAddr) -> Option<String> {
        (a == PEER).then(|| "idc2".to_owned())
    }

    #[test]
    fn reports_round_trip_byte_for_byte() {
        let bytes = encode(&report());
        assert_eq!(bytes.len(), HEADER_LEN + 4);
        assert_eq!(&bytes[..8], b"RVSL\x01\x04\x00\x00");
        assert_eq!(&bytes[8..12], &1234u32.to_be_bytes());
        assert_eq!(&bytes[20..], b"idc2");
        assert_eq!(decode(&bytes), Ok(report()));
    }

    #[test]
    fn malformed_reports_say_why() {
        let good = encode(&report());
        assert_eq!(decode(&good[..HEADER_LEN - 1]), Err(WireError::Short));
        let mut b = good.clone();
        b[0] = b'X';
        assert_eq!(decode(&b), Err(WireError::BadMagic));
        let mut b = good.clone();
        b[4] = 2;
        assert_eq!(decode(&b), Err(WireError::BadVersion));
        let mut b = good.clone();
        b[6] = 1;
        assert_eq!(decode(&b), Err(WireError::Reserved));
        assert_eq!(decode(&good[..good.len() - 1]), Err(WireError::BadLength));
        let mut b = good.clone();
        b.push(b'x');
        assert_eq!(decode(&b), Err(WireError::BadLength));
        let mut b = good.clone();
        b[21] = b' ';
        assert_eq!(decode(&b), Err(WireError::BadName));
        let mut b = good[..HEADER_LEN].to_vec();
        b[5] = 0;
        assert_eq!(decode(&b), Err(WireError::BadName));
    }

    #[test]
    fn any_bytes_decode_without_panicking() {
        // Every length up to a little past the longest report, with patterned contents, and
        // every single-byte change of a good report.
        let mut seed = 0x1234_5678u32;
        for len in 0..HEADER_LEN + MAX_NAME + 8 {
            for _ in 0..64 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                        (seed >> 16) as u8
                    })
                    .collect();
                let _ = decode(&bytes);
                let mut framed = encode(&report());
                framed.truncate(len.min(framed.len()));
                let _ = decode(&framed);
            }
        }
        let good = encode(&report());
        for i in 0..good.len() {
            for v in [0u8, 0x7f, 0x80, 0xff] {
                let mut b = good.clone();
                b[i] = v;
                if let Ok(r) = decode(&b) {
                    assert_eq!(encode(&r), b);
                }
            }
        }
    }

    #[test]
    fn only_sealed_reports_from_the_peer_open_once() {
        let mut guard = ReplayGuard::default();
        let sealed = seal(&key(), PEER, &report(), 10);
        assert_eq!(open(&key(), &mut guard, PEER, &sealed, peers), Ok(report()));
        assert_eq!(
            open(&key(), &mut guard, PEER, &sealed, peers),
            Err(Drop::Auth(AuthReject::Replayed))
        );
        let stranger: IpAddr = "198.18.9.9".parse().unwrap();
        assert_eq!(
            open(&key(), &mut guard, stranger, &sealed, peers),
            Err(Drop::UnknownPeer)
        );
        let forged = seal(
            &Key::new(b"not the right secret at all").unwrap(),
            PEER,
            &report(),
            11,
        );
        assert_eq!(
            open(&key(), &mut guard, PEER, &forged, peers),
            Err(Drop::Auth(AuthReject::BadMac))
        );
        assert_eq!(
            open(&key(), &mut guard, PEER, &encode(&report()), peers),
            Err(Drop::Auth(AuthReject::Unauthenticated))
        );
        let garbage = key().seal(PEER, b"RVSL", 12);
        assert_eq!(
            open(&key(), &mut guard, PEER, &garbage, peers),
            Err(Drop::Malformed(WireError::Short))
        );
        let other = Report {
            cluster: "idc3".into(),
            ..report()
        };
        let sealed = seal(&key(), PEER, &other, 13);
        assert_eq!(
            open(&key(), &mut guard, PEER, &sealed, peers),
            Err(Drop::WrongName)
        );
        // Neither the malformed nor the misnamed one used up their sequence numbers' places.
        let sealed = seal(&key(), PEER, &report(), 12);
        assert_eq!(open(&key(), &mut guard, PEER, &sealed, peers), Ok(report()));
        assert_eq!(Drop::Auth(AuthReject::BadMac).name(), "bad_mac");
    }
}
