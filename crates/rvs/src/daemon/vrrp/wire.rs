//! VRRP advertisements on the wire: version 2 (RFC 3768, IPv4) and version 3 (RFC 5798, IPv4
//! and IPv6), as keepalived sends and checks them. Pure: bytes in, an [`Advert`] or the
//! [`Reject`] reason out, never a panic.
//!
//! ```text
//!  0       4       8              16              24             31
//! +-------+-------+---------------+---------------+---------------+
//! |Version| Type  |    VRID       |   Priority    | Count IP Addrs|
//! +-------+-------+---------------+---------------+---------------+
//! v2: | Auth Type | Adver Int (s) |  v3: |rsvd| Max Adver Int (cs)|   Checksum
//! +---------------------------------------------------------------+
//! |   IPv4 or IPv6 addresses ...  (v2 only: 8 bytes of auth data)  |
//! ```
//!
//! Checksums: v2 covers the VRRP message only. v3 adds the IP pseudo-header, for IPv6 by
//! definition and for IPv4 as RFC 5798 reads and keepalived does by default;
//! `v3_checksum_as_v2` leaves it out for IPv4 (RFC 9568's reading), and keepalived before 1.3.6
//! put the multicast group in the pseudo-header of unicast adverts (`old_unicast_checksum`).
//! A received v3 IPv4 advert is accepted with any of the three, so that peers configured either
//! way interoperate during a migration.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IP protocol number of VRRP.
pub const PROTOCOL: u8 = 112;
/// The IPv4 multicast group of VRRP.
pub const MCAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The IPv6 multicast group of VRRP.
pub const MCAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// TTL / hop limit an advert is sent with and must arrive with (multicast).
pub const TTL: u8 = 255;
/// The advertisement type, the only one there is.
const TYPE_ADVERT: u8 = 1;
const HEADER_LEN: usize = 8;
const AUTH_LEN: usize = 8;
/// v3 carries the interval in 12 bits of centiseconds.
pub const MAX_INTERVAL_CS: u16 = 0x0fff;

/// v2 authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Auth {
    #[default]
    None,
    /// The password, zero-padded to 8 bytes.
    Pass([u8; 8]),
}

impl Auth {
    /// keepalived keeps the first 8 bytes of a longer password.
    pub fn pass(password: &str) -> Auth {
        let mut b = [0u8; 8];
        let p = password.as_bytes();
        let n = p.len().min(8);
        b[..n].copy_from_slice(&p[..n]);
        Auth::Pass(b)
    }

    fn type_code(&self) -> u8 {
        match self {
            Auth::None => 0,
            Auth::Pass(_) => 1,
        }
    }
}

/// How the v3 checksum of an IPv4 advert is computed when sending.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum V3Ipv4Checksum {
    /// With the IPv4 pseudo-header (RFC 5798, keepalived's default).
    #[default]
    PseudoHeader,
    /// Over the message only (`v3_checksum_as_v2`).
    MessageOnly,
    /// With 224.0.0.18 as the pseudo-header's destination (`old_unicast_checksum`).
    MulticastDestination,
}

/// An advertisement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advert {
    /// 2 or 3.
    pub version: u8,
    pub vrid: u8,
    pub priority: u8,
    /// The advertisement interval in centiseconds (v2 carries whole seconds: ×100).
    pub interval_cs: u16,
    /// v2 only.
    pub auth: Auth,
    /// All IPv4 or all IPv6.
    pub addresses: Vec<IpAddr>,
}

/// Why a received packet is not taken as an advert for this instance. Each is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reject {
    /// Shorter than its headers or its address count says.
    Truncated,
    /// Not an IPv4 packet of protocol 112 (the IPv4 header is malformed).
    BadIpHeader,
    /// Version other than 2 or 3, or not the instance's.
    Version,
    /// Type other than advertisement.
    Type,
    Checksum,
    /// Another virtual router's advert (same interface, another VRID).
    Vrid,
    /// v2 authentication type differs from ours.
    AuthType,
    /// v2 PASS authentication with another password.
    Password,
    /// Multicast advert with a TTL / hop limit other than 255.
    Ttl,
    /// v2 advert interval other than ours; v3 interval 0.
    Interval,
    /// Another number of addresses than we advertise.
    AddressCount,
    /// The same number, other addresses.
    AddressList,
    /// An advert we sent ourselves (looped back).
    OwnAdvert,
}

impl Reject {
    pub const ALL: [Reject; 13] = [
        Reject::Truncated,
        Reject::BadIpHeader,
        Reject::Version,
        Reject::Type,
        Reject::Checksum,
        Reject::Vrid,
        Reject::AuthType,
        Reject::Password,
        Reject::Ttl,
        Reject::Interval,
        Reject::AddressCount,
        Reject::AddressList,
        Reject::OwnAdvert,
    ];

    /// The counter's name.
    pub fn name(self) -> &'static str {
        match self {
            Reject::Truncated => "truncated",
            Reject::BadIpHeader => "bad_ip_header",
            Reject::Version => "version",
            Reject::Type => "type",
            Reject::Checksum => "checksum",
            Reject::Vrid => "vrid",
            Reject::AuthType => "auth_type",
            Reject::Password => "password",
            Reject::Ttl => "ttl",
            Reject::Interval => "interval",
            Reject::AddressCount => "address_count",
            Reject::AddressList => "address_list",
            Reject::OwnAdvert => "own_advert",
        }
    }
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reject::Truncated => "truncated packet",
            Reject::BadIpHeader => "malformed IP header",
            Reject::Version => "wrong VRRP version",
            Reject::Type => "not an advertisement",
            Reject::Checksum => "bad checksum",
            Reject::Vrid => "another virtual router id",
            Reject::AuthType => "authentication type mismatch",
            Reject::Password => "wrong password",
            Reject::Ttl => "TTL/hop limit not 255",
            Reject::Interval => "advert interval mismatch",
            Reject::AddressCount => "address count mismatch",
            Reject::AddressList => "address list mismatch",
            Reject::OwnAdvert => "our own advert",
        })
    }
}

/// A received VRRP message with what the IP layer said about it.
#[derive(Clone, Copy, Debug)]
pub struct Received<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// TTL / hop limit; None when the kernel did not say.
    pub ttl: Option<u8>,
    /// The VRRP message (the IP payload).
    pub message: &'a [u8],
}

/// What the instance expects of an advert.
#[derive(Clone, Debug)]
pub struct Expect<'a> {
    pub version: u8,
    pub vrid: u8,
    pub auth: Auth,
    /// Ours, checked for v2.
    pub interval_cs: u16,
    /// The addresses we advertise, in any order.
    pub addresses: &'a [IpAddr],
    /// Multicast mode: the TTL / hop limit must be 255.
    pub check_ttl: bool,
}

/// Splits a packet as an IPv4 raw socket receives it into its header's facts and the message.
pub fn split_ipv4(packet: &[u8]) -> Result<Received<'_>, Reject> {
    if packet.len() < 20 {
        return Err(Reject::Truncated);
    }
    let ihl = usize::from(packet[0] & 0x0f) * 4;
    if packet[0] >> 4 != 4 || ihl < 20 || packet[9] != PROTOCOL {
        return Err(Reject::BadIpHeader);
    }
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    if total < ihl || packet.len() < total {
        return Err(Reject::Truncated);
    }
    let addr =
        |at: usize| Ipv4Addr::new(packet[at], packet[at + 1], packet[at + 2], packet[at + 3]);
    Ok(Received {
        src: IpAddr::V4(addr(12)),
        dst: IpAddr::V4(addr(16)),
        ttl: Some(packet[8]),
        message: &packet[ihl..total],
    })
}

/// Decodes and checks a received advert against what the instance expects.
pub fn decode(rx: &Received<'_>, expect: &Expect<'_>) -> Result<Advert, Reject> {
    let m = rx.message;
    if m.len() < HEADER_LEN {
        return Err(Reject::Truncated);
    }
    let version = m[0] >> 4;
    if version != 2 && version != 3 {
        return Err(Reject::Version);
    }
    if m[0] & 0x0f != TYPE_ADVERT {
        return Err(Reject::Type);
    }
    let v6 = rx.src.is_ipv6();
    if version == 2 && v6 {
        return Err(Reject::Version);
    }
    let count = usize::from(m[3]);
    let addr_len = if v6 { 16 } else { 4 };
    let need = HEADER_LEN + count * addr_len + if version == 2 { AUTH_LEN } else { 0 };
    if m.len() < need {
        return Err(Reject::Truncated);
    }
    if !checksum_ok(version, rx, m) {
        return Err(Reject::Checksum);
    }
    if version != expect.version {
        return Err(Reject::Version);
    }
    if expect.check_ttl && rx.ttl.is_some_and(|t| t != TTL) {
        return Err(Reject::Ttl);
    }
    let vrid = m[1];
    if vrid != expect.vrid {
        return Err(Reject::Vrid);
    }
    let addresses: Vec<IpAddr> = m[HEADER_LEN..HEADER_LEN + count * addr_len]
        .chunks_exact(addr_len)
        .map(|c| match <[u8; 16]>::try_from(c) {
            Ok(b) => IpAddr::V6(Ipv6Addr::from(b)),
            Err(_) => IpAddr::V4(Ipv4Addr::new(c[0], c[1], c[2], c[3])),
        })
        .collect();
    let (interval_cs, auth) = if version == 2 {
        let at = HEADER_LEN + count * addr_len;
        let auth = match m[4] {
            0 => Auth::None,
            1 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&m[at..at + AUTH_LEN]);
                Auth::Pass(b)
            }
            _ => return Err(Reject::AuthType),
        };
        if auth.type_code() != expect.auth.type_code() {
            return Err(Reject::AuthType);
        }
        if auth != expect.auth {
            return Err(Reject::Password);
        }
        let cs = u16::from(m[5]) * 100;
        if cs != expect.interval_cs {
            return Err(Reject::Interval);
        }
        (cs, auth)
    } else {
        let cs = u16::from_be_bytes([m[4], m[5]]) & MAX_INTERVAL_CS;
        if cs == 0 {
            return Err(Reject::Interval);
        }
        (cs, Auth::None)
    };
    if addresses.len() != expect.addresses.len() {
        return Err(Reject::AddressCount);
    }
    if !addresses.iter().all(|a| expect.addresses.contains(a)) {
        return Err(Reject::AddressList);
    }
    Ok(Advert {
        version,
        vrid,
        priority: m[2],
        interval_cs,
        auth,
        addresses,
    })
}

fn checksum_ok(version: u8, rx: &Received<'_>, m: &[u8]) -> bool {
    if version == 2 {
        return sum_is_zero(&[], m);
    }
    match (rx.src, rx.dst) {
        (IpAddr::V6(s), IpAddr::V6(d)) => sum_is_zero(&pseudo_v6(s, d, m.len()), m),
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            sum_is_zero(&pseudo_v4(s, d, m.len()), m)
                || sum_is_zero(&[], m)
                || sum_is_zero(&pseudo_v4(s, MCAST_V4, m.len()), m)
        }
        _ => false,
    }
}

impl Advert {
    /// The VRRP message, its checksum computed for a packet from `src` to `dst`.
    pub fn encode(&self, src: IpAddr, dst: IpAddr, v4_mode: V3Ipv4Checksum) -> Vec<u8> {
        let mut m = vec![(self.version << 4) | TYPE_ADVERT, self.vrid, self.priority];
        m.push(u8::try_from(self.addresses.len()).unwrap_or(u8::MAX));
        if self.version == 2 {
            m.push(self.auth.type_code());
            m.push(
                u8::try_from(self.interval_cs / 100)
                    .unwrap_or(u8::MAX)
                    .max(1),
            );
        } else {
            m.extend_from_slice(&(self.interval_cs.min(MAX_INTERVAL_CS)).to_be_bytes());
        }
        m.extend_from_slice(&[0, 0]);
        for a in self.addresses.iter().take(usize::from(u8::MAX)) {
            match a {
                IpAddr::V4(a) => m.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => m.extend_from_slice(&a.octets()),
            }
        }
        if self.version == 2 {
            match self.auth {
                Auth::None => m.extend_from_slice(&[0; AUTH_LEN]),
                Auth::Pass(p) => m.extend_from_slice(&p),
            }
        }
        let pseudo = match (self.version, src, dst) {
            (2, _, _) => Vec::new(),
            (_, IpAddr::V6(s), IpAddr::V6(d)) => pseudo_v6(s, d, m.len()),
            (_, IpAddr::V4(s), IpAddr::V4(d)) => match v4_mode {
                V3Ipv4Checksum::PseudoHeader => pseudo_v4(s, d, m.len()),
                V3Ipv4Checksum::MessageOnly => Vec::new(),
                V3Ipv4Checksum::MulticastDestination => pseudo_v4(s, MCAST_V4, m.len()),
            },
            _ => Vec::new(),
        };
        let sum = internet_checksum(&pseudo, &m);
        m[6..8].copy_from_slice(&sum.to_be_bytes());
        m
    }
}

fn pseudo_v4(src: Ipv4Addr, dst: Ipv4Addr, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(12);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&[0, PROTOCOL]);
    p.extend_from_slice(&(len as u16).to_be_bytes());
    p
}

fn pseudo_v6(src: Ipv6Addr, dst: Ipv6Addr, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(40);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&(len as u32).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, PROTOCOL]);
    p
}

/// RFC 1071 one's complement sum over `pseudo` then `data` (both even-aligned pieces).
fn ones_sum(pseudo: &[u8], data: &[u8]) -> u32 {
    let mut sum: u32 = 0;
    for part in [pseudo, data] {
        let mut chunks = part.chunks_exact(2);
        for c in &mut chunks {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            sum += u32::from(*last) << 8;
        }
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
    }
    sum
}

fn internet_checksum(pseudo: &[u8], data: &[u8]) -> u16 {
    !(ones_sum(pseudo, data) as u16)
}

fn sum_is_zero(pseudo: &[u8], data: &[u8]) -> bool {
    ones_sum(pseudo, data) as u16 == 0xffff
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn advert(version: u8, addrs: &[&str]) -> Advert {
        Advert {
            version,
            vrid: 51,
            priority: 100,
            interval_cs: 100,
            auth: if version == 2 {
                Auth::pass("1111")
            } else {
                Auth::None
            },
            addresses: addrs.iter().map(|a| v4(a)).collect(),
        }
    }

    fn expect<'a>(a: &Advert, addresses: &'a [IpAddr]) -> Expect<'a> {
        Expect {
            version: a.version,
            vrid: a.vrid,
            auth: a.auth,
            interval_cs: a.interval_cs,
            addresses,
            check_ttl: true,
        }
    }

    fn rx<'a>(src: &str, dst: &str, ttl: u8, m: &'a [u8]) -> Received<'a> {
        Received {
            src: v4(src),
            dst: v4(dst),
            ttl: Some(ttl),
            message: m,
        }
    }

    #[test]
    fn v2_pass_round_trip_and_known_bytes() {
        let a = advert(2, &["198.18.0.100"]);
        let m = a.encode(
            v4("198.18.0.2"),
            IpAddr::V4(MCAST_V4),
            V3Ipv4Checksum::default(),
        );
        // Version 2 type 1, VRID 51, priority 100, 1 address, PASS, 1 s.
        assert_eq!(&m[..6], &[0x21, 51, 100, 1, 1, 1]);
        assert_eq!(&m[12..], b"1111\0\0\0\0");
        assert_eq!(m.len(), 20);
        let addrs = a.addresses.clone();
        let got = decode(
            &rx("198.18.0.2", "224.0.0.18", 255, &m),
            &expect(&a, &addrs),
        )
        .unwrap();
        assert_eq!(got, a);
    }

    #[test]
    fn v2_checksum_is_over_the_message_only() {
        let a = advert(2, &["198.18.0.100"]);
        let m1 = a.encode(
            v4("198.18.0.2"),
            IpAddr::V4(MCAST_V4),
            V3Ipv4Checksum::default(),
        );
        let m2 = a.encode(
            v4("198.18.0.3"),
            v4("198.18.0.9"),
            V3Ipv4Checksum::default(),
        );
        assert_eq!(m1, m2);
        assert!(sum_is_zero(&[], &m1));
    }

    #[test]
    fn v3_ipv4_checksum_variants() {
        let a = advert(3, &["198.18.0.100", "198.18.0.101"]);
        let (s, d) = (v4("198.18.0.2"), v4("198.18.0.3"));
        let pseudo = a.encode(s, d, V3Ipv4Checksum::PseudoHeader);
        let plain = a.encode(s, d, V3Ipv4Checksum::MessageOnly);
        let mcast = a.encode(s, d, V3Ipv4Checksum::MulticastDestination);
        assert_ne!(pseudo[6..8], plain[6..8]);
        assert_ne!(pseudo[6..8], mcast[6..8]);
        assert!(sum_is_zero(
            &pseudo_v4(v4s(s), v4s(d), pseudo.len()),
            &pseudo
        ));
        assert!(sum_is_zero(&[], &plain));
        let addrs = a.addresses.clone();
        let e = expect(&a, &addrs);
        for m in [&pseudo, &plain, &mcast] {
            assert_eq!(
                decode(&rx("198.18.0.2", "198.18.0.3", 255, m), &e).unwrap(),
                a
            );
        }
        // v3 carries centiseconds in 12 bits.
        assert_eq!(u16::from_be_bytes([pseudo[4], pseudo[5]]), 100);
        // The pseudo-header binds the addresses: from elsewhere the sum fails.
        assert_eq!(
            decode(&rx("198.18.0.7", "198.18.0.3", 255, &pseudo), &e),
            Err(Reject::Checksum)
        );
    }

    fn v4s(a: IpAddr) -> Ipv4Addr {
        match a {
            IpAddr::V4(a) => a,
            IpAddr::V6(_) => unreachable!(),
        }
    }

    #[test]
    fn v3_ipv6_round_trip() {
        let a = Advert {
            version: 3,
            vrid: 7,
            priority: 200,
            interval_cs: 10,
            auth: Auth::None,
            addresses: vec!["2001:db8::100".parse().unwrap()],
        };
        let src: IpAddr = "fe80::1".parse().unwrap();
        let m = a.encode(src, IpAddr::V6(MCAST_V6), V3Ipv4Checksum::default());
        assert_eq!(m.len(), 8 + 16);
        let addrs = a.addresses.clone();
        let r = Received {
            src,
            dst: IpAddr::V6(MCAST_V6),
            ttl: Some(255),
            message: &m,
        };
        assert_eq!(decode(&r, &expect(&a, &addrs)).unwrap(), a);
        let mut bad = m.clone();
        bad[2] ^= 1;
        let r = Received { message: &bad, ..r };
        assert_eq!(decode(&r, &expect(&a, &addrs)), Err(Reject::Checksum));
    }

    #[test]
    fn every_rejection_has_its_reason() {
        let a = advert(2, &["198.18.0.100"]);
        let addrs = a.addresses.clone();
        let e = expect(&a, &addrs);
        let good = a.encode(
            v4("198.18.0.2"),
            IpAddr::V4(MCAST_V4),
            V3Ipv4Checksum::default(),
        );
        let from = |m: &[u8], ttl| decode(&rx("198.18.0.2", "224.0.0.18", ttl, m), &e);
        assert_eq!(from(&good[..7], 255), Err(Reject::Truncated));
        assert_eq!(from(&good[..19], 255), Err(Reject::Truncated));
        assert_eq!(from(&good, 254), Err(Reject::Ttl));
        let mut m = good.clone();
        m[6] ^= 0xff;
        assert_eq!(from(&m, 255), Err(Reject::Checksum));
        let re = |f: &dyn Fn(&mut Advert)| {
            let mut b = a.clone();
            f(&mut b);
            b.encode(
                v4("198.18.0.2"),
                IpAddr::V4(MCAST_V4),
                V3Ipv4Checksum::default(),
            )
        };
        assert_eq!(from(&re(&|b| b.vrid = 52), 255), Err(Reject::Vrid));
        assert_eq!(
            from(&re(&|b| b.auth = Auth::None), 255),
            Err(Reject::AuthType)
        );
        assert_eq!(
            from(&re(&|b| b.auth = Auth::pass("2222")), 255),
            Err(Reject::Password)
        );
        assert_eq!(
            from(&re(&|b| b.interval_cs = 200), 255),
            Err(Reject::Interval)
        );
        assert_eq!(
            from(&re(&|b| b.addresses.push(v4("198.18.0.101"))), 255),
            Err(Reject::AddressCount)
        );
        assert_eq!(
            from(&re(&|b| b.addresses = vec![v4("198.18.0.99")]), 255),
            Err(Reject::AddressList)
        );
        assert_eq!(from(&re(&|b| b.version = 3), 255), Err(Reject::Version));
        let mut t = good.clone();
        t[0] = 0x22;
        assert_eq!(from(&t, 255), Err(Reject::Type));
        let e_unicast = Expect {
            check_ttl: false,
            ..e.clone()
        };
        assert!(decode(&rx("198.18.0.2", "198.18.0.3", 64, &good), &e_unicast).is_ok());
    }

    #[test]
    fn ipv4_header_split() {
        let a = advert(2, &["198.18.0.100"]);
        let m = a.encode(
            v4("198.18.0.2"),
            IpAddr::V4(MCAST_V4),
            V3Ipv4Checksum::default(),
        );
        let mut p = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 255, PROTOCOL, 0, 0, 198, 18, 0, 2, 224, 0, 0, 18,
        ];
        let total = (p.len() + m.len()) as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&m);
        let r = split_ipv4(&p).unwrap();
        assert_eq!(
            (r.src, r.dst, r.ttl),
            (v4("198.18.0.2"), v4("224.0.0.18"), Some(255))
        );
        assert_eq!(r.message, &m[..]);
        assert_eq!(split_ipv4(&p[..10]).err(), Some(Reject::Truncated));
        p[9] = 6;
        assert_eq!(split_ipv4(&p).err(), Some(Reject::BadIpHeader));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            v6 in any::<bool>(),
            version in 2u8..4,
            vrid in any::<u8>(),
            ttl in proptest::option::of(any::<u8>()),
        ) {
            let addrs: Vec<IpAddr> = vec![v4("198.18.0.100")];
            let e = Expect {
                version,
                vrid,
                auth: Auth::pass("x"),
                interval_cs: 100,
                addresses: &addrs,
                check_ttl: true,
            };
            let (src, dst): (IpAddr, IpAddr) = if v6 {
                ("fe80::1".parse().unwrap(), IpAddr::V6(MCAST_V6))
            } else {
                (v4("198.18.0.2"), IpAddr::V4(MCAST_V4))
            };
            let _ = decode(&Received { src, dst, ttl, message: &bytes }, &e);
            if let Ok(r) = split_ipv4(&bytes) {
                let _ = decode(&r, &e);
            }
        }

        #[test]
        fn encoded_adverts_decode_to_themselves(
            vrid in 1u8..=255,
            priority in any::<u8>(),
            secs in 1u16..=255,
            n in 0usize..20,
            v3 in any::<bool>(),
        ) {
            let addresses: Vec<IpAddr> =
                (0..n).map(|i| IpAddr::V4(Ipv4Addr::new(198, 18, 1, i as u8))).collect();
            let a = Advert {
                version: if v3 { 3 } else { 2 },
                vrid,
                priority,
                interval_cs: secs * if v3 { 1 } else { 100 },
                auth: if v3 { Auth::None } else { Auth::pass("pw") },
                addresses: addresses.clone(),
            };
            let m = a.encode(v4("198.18.0.2"), IpAddr::V4(MCAST_V4), V3Ipv4Checksum::default());
            let got = decode(&rx("198.18.0.2", "224.0.0.18", 255, &m), &expect(&a, &addresses));
            prop_assert_eq!(got, Ok(a));
        }
    }
}
