//! BGP-4 messages on the wire, through netgauze-bgp-pkt (RFC 4271, 4-octet AS numbers from RFC
//! 6793, multiprotocol IPv6 unicast from RFC 4760, graceful restart from RFC 4724). This file
//! only frames the TCP stream, builds the few messages a speaker that only announces sends, and
//! maps a decoding error to the NOTIFICATION RFC 4271 §6 asks for (netgauze's own mapping).
//! Everything here is pure and never panics on any input: [`decode`] is a fuzzing target.

use std::net::{IpAddr, Ipv4Addr};

use netgauze_bgp_pkt::{
    BgpMessage,
    capabilities::{
        BgpCapability, FourOctetAsCapability, GracefulRestartAddressFamily,
        GracefulRestartCapability, MultiProtocolExtensionsCapability,
    },
    nlri::{Ipv4Unicast, Ipv4UnicastAddress, Ipv6Unicast, Ipv6UnicastAddress},
    notification::{BgpNotificationMessage, CeaseError},
    open::{BgpOpenMessage, BgpOpenMessageParameter},
    path_attribute::{
        As2PathSegment, As4Path, As4PathSegment, AsPath, AsPathSegmentType, Communities,
        LocalPreference, MpReach, MpUnreach, MultiExitDiscriminator, NextHop, Origin,
        PathAttribute, PathAttributeValue,
    },
    update::BgpUpdateMessage,
    wire::deserializer::BgpParsingContext,
};
use netgauze_iana::address_family::AddressType;
use netgauze_parse_utils::{WritablePdu, reader::SliceReader, traits::ParseFromWithOneInput};

use crate::keepalived::bgp::IpPrefix;

/// RFC 4271 §4.1: a message is 19..4096 bytes.
pub const HEADER_LEN: usize = 19;
pub const MAX_MESSAGE_LEN: usize = 4096;
/// RFC 6793: the 2-octet stand-in for a 4-octet AS number.
pub const AS_TRANS: u16 = 23456;

/// The length of the first whole message at the start of `buf`, None while more bytes are
/// needed; an impossible length is returned as is for [`decode`] to refuse.
pub fn frame_len(buf: &[u8]) -> Option<usize> {
    if buf.len() < HEADER_LEN {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([buf[16], buf[17]]));
    if !(HEADER_LEN..=MAX_MESSAGE_LEN).contains(&len) {
        // Decoding the header alone reports the bad length.
        return Some(HEADER_LEN);
    }
    (buf.len() >= len).then_some(len)
}

/// One whole message; an error is the NOTIFICATION to send before closing.
pub fn decode(frame: &[u8], asn4: bool) -> Result<BgpMessage, BgpNotificationMessage> {
    // What the peer announces is never used: only the framing and the OPEN must be right, so
    // attribute, NLRI and capability errors that RFC 7606 would treat as withdraw (or that
    // netgauze does not know) do not reset the session.
    let mut ctx = BgpParsingContext::new(
        asn4,
        Default::default(),
        Default::default(),
        false,
        false,
        false,
        false,
    );
    let mut reader = SliceReader::new(frame);
    BgpMessage::parse(&mut reader, &mut ctx).map_err(BgpNotificationMessage::from)
}

/// The message's bytes; an empty vector for a message netgauze cannot write (none that this
/// file builds), which [`send_bytes`] refuses to send.
pub fn encode(msg: &BgpMessage) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len());
    if msg.write(&mut out).is_err() {
        out.clear();
    }
    out
}

/// The bytes to send, or an error for a message that would not encode.
pub fn send_bytes(msg: &BgpMessage) -> std::io::Result<Vec<u8>> {
    let b = encode(msg);
    if b.len() < HEADER_LEN {
        return Err(std::io::Error::other(format!(
            "a {:?} message would not encode",
            msg.get_type()
        )));
    }
    Ok(b)
}

/// What this speaker says of itself in its OPEN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenParams {
    pub local_as: u32,
    pub hold_time: u16,
    pub router_id: Ipv4Addr,
    pub ipv4: bool,
    pub ipv6: bool,
    /// Restart time, when graceful restart is on.
    pub graceful_restart: Option<u16>,
    /// This OPEN follows a restart (the R bit): the peer kept our routes as stale.
    pub restarted: bool,
}

pub fn open(p: &OpenParams) -> BgpMessage {
    let mut caps = Vec::new();
    if p.ipv4 {
        caps.push(BgpCapability::MultiProtocolExtensions(
            MultiProtocolExtensionsCapability::new(AddressType::Ipv4Unicast),
        ));
    }
    if p.ipv6 {
        caps.push(BgpCapability::MultiProtocolExtensions(
            MultiProtocolExtensionsCapability::new(AddressType::Ipv6Unicast),
        ));
    }
    caps.push(BgpCapability::FourOctetAs(FourOctetAsCapability::new(
        p.local_as,
    )));
    if let Some(time) = p.graceful_restart {
        // The data plane is pinned: after a restart that found it (R bit), it has kept
        // forwarding (F bit); on a cold start neither is set.
        let mut fams = Vec::new();
        if p.ipv4 {
            fams.push(GracefulRestartAddressFamily::new(
                p.restarted,
                AddressType::Ipv4Unicast,
            ));
        }
        if p.ipv6 {
            fams.push(GracefulRestartAddressFamily::new(
                p.restarted,
                AddressType::Ipv6Unicast,
            ));
        }
        caps.push(BgpCapability::GracefulRestartCapability(
            GracefulRestartCapability::new(p.restarted, false, time, fams),
        ));
    }
    let my_as = u16::try_from(p.local_as).unwrap_or(AS_TRANS);
    BgpMessage::Open(BgpOpenMessage::new(
        my_as,
        p.hold_time,
        p.router_id,
        vec![BgpOpenMessageParameter::new_capabilities(caps)],
    ))
}

/// What a peer's OPEN offered that matters here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerOpen {
    pub version: u8,
    pub asn: u32,
    pub hold_time: u16,
    pub router_id: Ipv4Addr,
    pub asn4: bool,
    /// The families of its multiprotocol capabilities; none at all means IPv4 unicast only.
    pub ipv4: bool,
    pub ipv6: bool,
    pub graceful_restart: bool,
}

pub fn peer_open(o: &BgpOpenMessage) -> PeerOpen {
    let caps = o.capabilities();
    let mp: Vec<AddressType> = caps
        .iter()
        .filter_map(|c| match c {
            BgpCapability::MultiProtocolExtensions(m) => Some(m.address_type()),
            _ => None,
        })
        .collect();
    PeerOpen {
        version: o.version(),
        asn: o.my_asn4(),
        hold_time: o.hold_time(),
        router_id: o.bgp_id(),
        asn4: caps
            .iter()
            .any(|c| matches!(c, BgpCapability::FourOctetAs(_))),
        ipv4: mp.is_empty() || mp.contains(&AddressType::Ipv4Unicast),
        ipv6: mp.contains(&AddressType::Ipv6Unicast),
        graceful_restart: caps
            .iter()
            .any(|c| matches!(c, BgpCapability::GracefulRestartCapability(_))),
    }
}

/// The path attributes of one announced route, as sent to one peer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteAttrs {
    pub next_hop: IpAddr,
    /// AS numbers, nearest first (ours, repeated by prepend; empty on iBGP).
    pub as_path: Vec<u32>,
    pub med: Option<u32>,
    pub communities: Vec<u32>,
    /// iBGP sessions carry LOCAL_PREF (RFC 4271 §5.1.5).
    pub local_pref: Option<u32>,
}

fn attr(optional: bool, transitive: bool, v: PathAttributeValue) -> Option<PathAttribute> {
    // The attributes that can outgrow 255 bytes (many NLRI, many communities) always carry a
    // two-octet length: netgauze writes one for a long value but flags it only when asked.
    let extended = matches!(
        v,
        PathAttributeValue::MpReach(_)
            | PathAttributeValue::MpUnreach(_)
            | PathAttributeValue::Communities(_)
            | PathAttributeValue::AsPath(_)
            | PathAttributeValue::As4Path(_)
    );
    PathAttribute::from(optional, transitive, false, extended, v).ok()
}

/// AS_PATH as the session carries it: 4-octet numbers when both sides said so; otherwise
/// 2-octet with AS_TRANS for the large ones and the real path in AS4_PATH (RFC 6793 §4.2.2).
fn as_path_attrs(path: &[u32], asn4: bool) -> Vec<PathAttribute> {
    let mut out = Vec::new();
    let segs = |p: &[u32]| {
        if p.is_empty() {
            vec![]
        } else {
            vec![As4PathSegment::new(
                AsPathSegmentType::AsSequence,
                p.to_vec(),
            )]
        }
    };
    if asn4 {
        out.extend(attr(
            false,
            true,
            PathAttributeValue::AsPath(AsPath::As4PathSegments(segs(path).into())),
        ));
        return out;
    }
    let two: Vec<u16> = path
        .iter()
        .map(|a| u16::try_from(*a).unwrap_or(AS_TRANS))
        .collect();
    let seg2 = if two.is_empty() {
        vec![]
    } else {
        vec![As2PathSegment::new(AsPathSegmentType::AsSequence, two)]
    };
    out.extend(attr(
        false,
        true,
        PathAttributeValue::AsPath(AsPath::As2PathSegments(seg2.into())),
    ));
    if path.iter().any(|a| *a > u32::from(u16::MAX)) {
        out.extend(attr(
            true,
            true,
            PathAttributeValue::As4Path(As4Path::new(segs(path))),
        ));
    }
    out
}

/// ORIGIN, AS_PATH, NEXT_HOP (IPv4 only), MED, LOCAL_PREF, COMMUNITIES: ascending type order
/// (RFC 4271 §5).
fn common_attrs(a: &RouteAttrs, asn4: bool, next_hop: Option<Ipv4Addr>) -> Vec<PathAttribute> {
    let mut out = Vec::new();
    out.extend(attr(false, true, PathAttributeValue::Origin(Origin::IGP)));
    out.extend(as_path_attrs(&a.as_path, asn4));
    if let Some(nh) = next_hop {
        out.extend(attr(
            false,
            true,
            PathAttributeValue::NextHop(NextHop::new(nh)),
        ));
    }
    if let Some(m) = a.med {
        out.extend(attr(
            true,
            false,
            PathAttributeValue::MultiExitDiscriminator(MultiExitDiscriminator::new(m)),
        ));
    }
    if let Some(lp) = a.local_pref {
        out.extend(attr(
            false,
            true,
            PathAttributeValue::LocalPreference(LocalPreference::new(lp)),
        ));
    }
    if !a.communities.is_empty() {
        let c: Vec<_> = a
            .communities
            .iter()
            .map(|c| netgauze_bgp_pkt::community::Community::new(*c))
            .collect();
        out.extend(attr(
            true,
            true,
            PathAttributeValue::Communities(Communities::new(c)),
        ));
    }
    out
}

fn v4_nlri(p: &IpPrefix) -> Option<Ipv4UnicastAddress> {
    let IpAddr::V4(a) = p.addr else { return None };
    let net = ipnet::Ipv4Net::new(a, p.len).ok()?;
    Some(Ipv4UnicastAddress::new_no_path_id(
        Ipv4Unicast::from_net(net).ok()?,
    ))
}

fn v6_nlri(p: &IpPrefix) -> Option<Ipv6UnicastAddress> {
    let IpAddr::V6(a) = p.addr else { return None };
    let net = ipnet::Ipv6Net::new(a, p.len).ok()?;
    Some(Ipv6UnicastAddress::new(
        None,
        Ipv6Unicast::from_net(net).ok()?,
    ))
}

/// NLRI a message carries, well under 4096 bytes with the attributes (5 bytes per IPv4
/// prefix, 17 per IPv6 one at most).
const V4_PER_UPDATE: usize = 500;
const V6_PER_UPDATE: usize = 150;

/// UPDATEs announcing `prefixes` (one family, one set of attributes). IPv4 goes in the classic
/// NLRI field with NEXT_HOP; IPv6 in MP_REACH_NLRI.
pub fn announce(prefixes: &[IpPrefix], a: &RouteAttrs, asn4: bool) -> Vec<BgpMessage> {
    let v4: Vec<_> = prefixes.iter().filter_map(v4_nlri).collect();
    let v6: Vec<_> = prefixes.iter().filter_map(v6_nlri).collect();
    let mut out = Vec::new();
    for chunk in v4.chunks(V4_PER_UPDATE) {
        let IpAddr::V4(nh) = a.next_hop else { break };
        let attrs = common_attrs(a, asn4, Some(nh));
        out.push(BgpMessage::Update(BgpUpdateMessage::new(
            vec![],
            attrs,
            chunk.to_vec(),
        )));
    }
    for chunk in v6.chunks(V6_PER_UPDATE) {
        let IpAddr::V6(nh) = a.next_hop else { break };
        let mut attrs = vec![];
        // MP_REACH_NLRI first, as BIRD and most speakers send it.
        attrs.extend(attr(
            true,
            false,
            PathAttributeValue::MpReach(MpReach::Ipv6Unicast {
                next_hop_global: nh,
                next_hop_local: None,
                nlri: chunk.to_vec().into(),
            }),
        ));
        attrs.extend(common_attrs(a, asn4, None));
        out.push(BgpMessage::Update(BgpUpdateMessage::new(
            vec![],
            attrs,
            vec![],
        )));
    }
    out
}

/// UPDATEs withdrawing `prefixes` (either family).
pub fn withdraw(prefixes: &[IpPrefix]) -> Vec<BgpMessage> {
    let v4: Vec<_> = prefixes.iter().filter_map(v4_nlri).collect();
    let v6: Vec<_> = prefixes.iter().filter_map(v6_nlri).collect();
    let mut out = Vec::new();
    for chunk in v4.chunks(V4_PER_UPDATE) {
        out.push(BgpMessage::Update(BgpUpdateMessage::new(
            chunk.to_vec(),
            vec![],
            vec![],
        )));
    }
    for chunk in v6.chunks(V6_PER_UPDATE) {
        out.extend(
            attr(
                true,
                false,
                PathAttributeValue::MpUnreach(MpUnreach::Ipv6Unicast {
                    nlri: chunk.to_vec().into(),
                }),
            )
            .map(|a| BgpMessage::Update(BgpUpdateMessage::new(vec![], vec![a], vec![]))),
        );
    }
    out
}

/// End-of-RIB markers (RFC 4724 §2): the peer may now drop what it kept as stale.
pub fn end_of_rib(ipv4: bool, ipv6: bool) -> Vec<BgpMessage> {
    let mut out = Vec::new();
    if ipv4 {
        out.push(BgpMessage::Update(BgpUpdateMessage::new(
            vec![],
            vec![],
            vec![],
        )));
    }
    if ipv6 {
        out.extend(
            attr(
                true,
                false,
                PathAttributeValue::MpUnreach(MpUnreach::Ipv6Unicast {
                    nlri: vec![].into(),
                }),
            )
            .map(|a| BgpMessage::Update(BgpUpdateMessage::new(vec![], vec![a], vec![]))),
        );
    }
    out
}

pub fn cease_shutdown() -> BgpNotificationMessage {
    BgpNotificationMessage::CeaseError(CeaseError::AdministrativeShutdown {
        value: vec![].into(),
    })
}

/// A NOTIFICATION's code and subcode, for logs and counters (`2/2` is a bad peer AS).
pub fn notification_code(n: &BgpNotificationMessage) -> (u8, u8) {
    let mut bytes = encode(&BgpMessage::Notification(n.clone()));
    bytes.resize(HEADER_LEN + 2, 0);
    (bytes[HEADER_LEN], bytes[HEADER_LEN + 1])
}

/// RFC 4271 §4.5's names of the error codes.
pub fn notification_name(n: &BgpNotificationMessage) -> String {
    let (code, sub) = notification_code(n);
    let name = match code {
        1 => "message header error",
        2 => "OPEN message error",
        3 => "UPDATE message error",
        4 => "hold timer expired",
        5 => "finite state machine error",
        6 => "cease",
        7 => "route refresh error",
        _ => "unknown error",
    };
    format!("{name} ({code}/{sub})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> IpPrefix {
        IpPrefix::parse(s).unwrap()
    }

    fn params() -> OpenParams {
        OpenParams {
            local_as: 4_200_000_005,
            hold_time: 9,
            router_id: Ipv4Addr::new(198, 18, 1, 1),
            ipv4: true,
            ipv6: true,
            graceful_restart: Some(120),
            restarted: false,
        }
    }

    #[test]
    fn open_round_trips_with_4_octet_as_and_capabilities() {
        let bytes = encode(&open(&params()));
        assert_eq!(frame_len(&bytes), Some(bytes.len()));
        let BgpMessage::Open(o) = decode(&bytes, false).unwrap() else {
            panic!()
        };
        assert_eq!(o.my_as(), AS_TRANS);
        let peer = peer_open(&o);
        assert_eq!(peer.asn, 4_200_000_005);
        assert!(peer.asn4 && peer.ipv4 && peer.ipv6 && peer.graceful_restart);
        assert_eq!(peer.hold_time, 9);
    }

    #[test]
    fn updates_round_trip_both_families() {
        let a = RouteAttrs {
            next_hop: "198.18.1.1".parse().unwrap(),
            as_path: vec![65005, 65005],
            med: Some(10),
            communities: vec![65005 << 16 | 100],
            local_pref: None,
        };
        let msgs = announce(&[p("198.19.4.0/24"), p("198.19.5.1/32")], &a, true);
        assert_eq!(msgs.len(), 1);
        let bytes = encode(&msgs[0]);
        let BgpMessage::Update(u) = decode(&bytes, true).unwrap() else {
            panic!()
        };
        assert_eq!(u.nlri().len(), 2);
        let a6 = RouteAttrs {
            next_hop: "2001:db8::1".parse().unwrap(),
            ..a
        };
        let msgs = announce(&[p("2001:db8:4::/48")], &a6, true);
        let BgpMessage::Update(u) = decode(&encode(&msgs[0]), true).unwrap() else {
            panic!()
        };
        assert!(
            u.path_attributes()
                .iter()
                .any(|x| matches!(x.value(), PathAttributeValue::MpReach(_)))
        );
        for m in withdraw(&[p("198.19.4.0/24"), p("2001:db8:4::/48")])
            .iter()
            .chain(end_of_rib(true, true).iter())
        {
            decode(&encode(m), true).unwrap();
        }
    }

    #[test]
    fn many_prefixes_fit_in_messages_of_at_most_4096_bytes() {
        let a = RouteAttrs {
            next_hop: "198.18.1.1".parse().unwrap(),
            as_path: vec![65005],
            med: None,
            communities: vec![],
            local_pref: None,
        };
        let many: Vec<_> = (0..2000u32)
            .map(|i| IpPrefix {
                addr: IpAddr::V4(Ipv4Addr::from(0xc612_0000 | (i << 8))),
                len: 24,
            })
            .collect();
        let msgs = announce(&many, &a, true);
        assert_eq!(msgs.len(), 4);
        let v6: Vec<_> = (0..400u128)
            .map(|i| IpPrefix {
                addr: IpAddr::V6(std::net::Ipv6Addr::from((0x2001_0db8u128 << 96) | i)),
                len: 128,
            })
            .collect();
        let a6 = RouteAttrs {
            next_hop: "2001:db8::1".parse().unwrap(),
            communities: (0..64).collect(),
            ..a
        };
        let msgs6 = announce(&v6, &a6, true);
        assert_eq!(msgs6.len(), 3);
        for m in msgs
            .iter()
            .chain(withdraw(&many).iter())
            .chain(msgs6.iter())
            .chain(withdraw(&v6).iter())
        {
            let b = send_bytes(m).unwrap();
            assert!(b.len() <= MAX_MESSAGE_LEN, "{}", b.len());
            assert_eq!(frame_len(&b), Some(b.len()));
            assert_eq!(
                decode(&b, true).unwrap(),
                *m,
                "a message does not read back"
            );
        }
    }

    #[test]
    fn bad_input_gets_the_notification_rfc_4271_names() {
        // Marker not all ones: message header error / connection not synchronized.
        let mut bytes = encode(&BgpMessage::KeepAlive);
        bytes[0] = 0;
        assert_eq!(
            notification_code(&decode(&bytes, true).unwrap_err()),
            (1, 1)
        );
        // Bad length.
        let mut bytes = encode(&BgpMessage::KeepAlive);
        bytes[17] = 20;
        bytes.push(0);
        assert_eq!(
            notification_code(&decode(&bytes, true).unwrap_err()),
            (1, 2)
        );
        // Bad type.
        let mut bytes = encode(&BgpMessage::KeepAlive);
        bytes[18] = 9;
        assert_eq!(
            notification_code(&decode(&bytes, true).unwrap_err()),
            (1, 3)
        );
        // A length the framer cannot believe is handed over whole, to be refused.
        let mut bytes = encode(&BgpMessage::KeepAlive);
        bytes[16] = 0xff;
        assert_eq!(frame_len(&bytes), Some(HEADER_LEN));
        assert!(decode(&bytes, true).is_err());
    }

    #[test]
    fn decode_never_panics_on_noise() {
        let mut seed = 0x1234_5678u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        let a = RouteAttrs {
            next_hop: "198.18.1.1".parse().unwrap(),
            as_path: vec![65005, 4_200_000_005],
            med: Some(1),
            communities: vec![7, 8],
            local_pref: Some(100),
        };
        let a6 = RouteAttrs {
            next_hop: "2001:db8::1".parse().unwrap(),
            ..a.clone()
        };
        let mut bases = vec![
            encode(&open(&params())),
            encode(&BgpMessage::Notification(cease_shutdown())),
        ];
        for m in announce(&[p("198.19.4.0/24"), p("198.19.5.0/25")], &a, false)
            .iter()
            .chain(announce(&[p("2001:db8:4::/48")], &a6, true).iter())
            .chain(withdraw(&[p("198.19.4.0/24"), p("2001:db8:4::/48")]).iter())
        {
            bases.push(encode(m));
        }
        for _ in 0..40_000 {
            let mut b = bases[next() as usize % bases.len()].clone();
            for _ in 0..(next() % 6) {
                let i = next() as usize % b.len();
                b[i] = next() as u8;
            }
            b.truncate(next() as usize % (b.len() + 1));
            if let Some(l) = frame_len(&b) {
                let _ = decode(&b[..l.min(b.len())], next() % 2 == 0);
            }
        }
    }
}
