//! Addresses and ports as ipvsadm reads and writes them.

use std::net::{IpAddr, Ipv4Addr};

use super::resolve::{Resolver, ntop, pton6};

/// IP protocol numbers as ipvsadm keeps them (0 when there is none, e.g. fwmark services).
pub const PROTO_TCP: u16 = 6;
pub const PROTO_UDP: u16 = 17;
pub const PROTO_SCTP: u16 = 132;

/// The protocol name for getservbyname/getservbyport, if the protocol has one.
pub fn service_db_proto(protocol: u16) -> Option<&'static str> {
    match protocol {
        PROTO_TCP => Some("tcp"),
        PROTO_UDP => Some("udp"),
        PROTO_SCTP => Some("sctp"),
        _ => None,
    }
}

/// What `parse_service` found: an address, and a port if the text had one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostPort {
    pub addr: IpAddr,
    pub port: Option<u16>,
}

/// `host[:port]`, `[v6]:port` or a bare IPv6 address (ipvsadm's `parse_service`). `protocol`
/// picks the services database for port names. `None` is ipvsadm's SERVICE_NONE.
pub fn parse_service(text: &str, protocol: u16, resolver: &dyn Resolver) -> Option<HostPort> {
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // `[host]:port`: the port comes from after the bracket, but only if the host is IPv6; for
    // anything else the colon search below only sees the bracketed text, so a port is dropped.
    let (host, mut port_text) = match text.strip_prefix('[') {
        Some(inner) => {
            let (host, after) = inner.split_once(']')?;
            (host, Some(after.strip_prefix(':')?))
        }
        None => (text, None),
    };
    let addr = match pton6(host) {
        Some(v6) => IpAddr::V6(v6),
        None => {
            let host = match host.rsplit_once(':') {
                Some((h, p)) => {
                    port_text = Some(p);
                    h
                }
                None => {
                    port_text = None;
                    host
                }
            };
            IpAddr::V4(inet_aton(host).or_else(|| resolver.host_v4(host))?)
        }
    };
    let port = match port_text {
        None => None,
        Some(p) => Some(parse_port(p, protocol, resolver)?),
    };
    Some(HostPort { addr, port })
}

fn parse_port(text: &str, protocol: u16, resolver: &dyn Resolver) -> Option<u16> {
    if let Some(n) = string_to_number(text, 0, 65535) {
        return u16::try_from(n).ok();
    }
    resolver.service_port(text, service_db_proto(protocol)?)
}

/// `-M` for IPv4 services: a dotted mask in any inet_aton form, or a host name (!), in host
/// order. Nothing checks that the mask is contiguous.
pub fn parse_netmask(text: &str, resolver: &dyn Resolver) -> Option<u32> {
    inet_aton(text)
        .or_else(|| resolver.host_v4(text))
        .map(u32::from)
}

/// glibc's `inet_aton`: one to four parts, each decimal, octal (`0` prefix) or hex (`0x`); the
/// last part fills the remaining bytes (`10.2` is 10.0.0.2); whitespace may follow the address,
/// and then anything.
pub fn inet_aton(text: &str) -> Option<Ipv4Addr> {
    let bytes = text.as_bytes();
    let mut parts: Vec<u32> = Vec::with_capacity(4);
    let mut pos = 0;
    let last = loop {
        if !bytes.get(pos).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        let (value, used) = strtoul_auto(&bytes[pos..])?;
        pos += used;
        if bytes.get(pos) == Some(&b'.') {
            if parts.len() > 2 || value > 0xff {
                return None;
            }
            parts.push(value);
            pos += 1;
        } else {
            break value;
        }
    };
    if bytes
        .get(pos)
        .is_some_and(|&c| !c.is_ascii_whitespace() && c != 0x0b)
    {
        return None;
    }
    let max = [0xffff_ffff, 0xff_ffff, 0xffff, 0xff][parts.len()];
    if last > max {
        return None;
    }
    let high = parts
        .iter()
        .enumerate()
        .fold(0u32, |acc, (i, &p)| acc | (p << (24 - 8 * i)));
    Some(Ipv4Addr::from(high | last))
}

/// `strtoul(s, &end, 0)` on text starting with a digit: value (None past 32 bits, which
/// inet_aton refuses anyway) and the number of bytes used.
fn strtoul_auto(s: &[u8]) -> Option<(u32, usize)> {
    let (radix, start) = match s {
        [b'0', b'x' | b'X', c, ..] if c.is_ascii_hexdigit() => (16, 2),
        [b'0', ..] => (8, 0),
        _ => (10, 0),
    };
    let mut value: u64 = 0;
    let mut pos = start;
    while let Some(d) = s.get(pos).and_then(|&c| char::from(c).to_digit(radix)) {
        value = (value * u64::from(radix) + u64::from(d)).min(1 << 40);
        pos += 1;
    }
    Some((u32::try_from(value).ok()?, pos))
}

/// ipvsadm's `string_to_number`: `strtol` base 10 over the whole text (leading whitespace and
/// a sign allowed), within `min..=max`.
pub fn string_to_number(text: &str, min: i64, max: i64) -> Option<i64> {
    let (value, rest) = strtol(text)?;
    (rest.is_empty() && (min..=max).contains(&value)).then_some(value)
}

/// `strtol(text, &end, 10)`: the value and the unparsed rest; `None` when no digits were found
/// or the value does not fit a `long` (ERANGE).
pub fn strtol(text: &str) -> Option<(i64, &str)> {
    let t = text.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b');
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let magnitude: i128 = t[..digits].bytes().try_fold(0i128, |acc, d| {
        let v = acc * 10 + i128::from(d - b'0');
        (v <= i128::from(i64::MAX) + 1).then_some(v)
    })?;
    let value = if negative { -magnitude } else { magnitude };
    Some((i64::try_from(value).ok()?, &t[digits..]))
}

/// `atoi`: leading whitespace, a sign, digits; anything after is ignored, nothing parses as 0.
pub fn atoi(text: &str) -> i64 {
    let t = text.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b');
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let magnitude = t
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0i64, |acc, d| {
            acc.saturating_mul(10).saturating_add(i64::from(d - b'0'))
        });
    if negative { -magnitude } else { magnitude }
}

/// `addrport_to_anyname`: `host:port`, `[v6]:port`, with names unless `numeric` (the port name
/// comes from `protocol`'s services database; IPv6 host names keep their brackets). At most 59
/// bytes, as ipvsadm's 60-byte buffer.
pub fn addrport_to_anyname(
    addr: IpAddr,
    port: u16,
    protocol: u16,
    numeric: bool,
    resolver: &dyn Resolver,
) -> String {
    let (open, close) = if addr.is_ipv4() { ("", "") } else { ("[", "]") };
    let text = if numeric {
        format!("{open}{}{close}:{port}", ntop(addr))
    } else {
        let host = resolver.host_name(addr).unwrap_or_else(|| ntop(addr));
        let service = service_db_proto(protocol)
            .and_then(|p| resolver.service_name(port, p))
            .unwrap_or_else(|| port.to_string());
        format!("{open}{host}{close}:{service}")
    };
    truncate_bytes(text, 59)
}

/// Cuts `text` to at most `max` bytes (backing off to a character boundary).
pub fn truncate_bytes(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvsadm::testing::FakeResolver;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    #[test]
    fn inet_aton_forms() {
        let ok = |t: &str| inet_aton(t).map(|a| a.to_string());
        assert_eq!(ok("10.2").as_deref(), Some("10.0.0.2"));
        assert_eq!(ok("167772162").as_deref(), Some("10.0.0.2"));
        assert_eq!(ok("0x0ffffff").as_deref(), Some("0.255.255.255"));
        assert_eq!(ok("16").as_deref(), Some("0.0.0.16"));
        assert_eq!(ok("010.0.0.1").as_deref(), Some("8.0.0.1"));
        assert_eq!(ok("1.2.0x10").as_deref(), Some("1.2.0.16"));
        assert_eq!(ok("1.2.3.4 trailing").as_deref(), Some("1.2.3.4"));
        assert_eq!(ok("1.2.3.4\tx").as_deref(), Some("1.2.3.4"));
        for bad in [
            "",
            "1.2.3.4.5",
            "256.1.1.1",
            "1.2.3.256",
            "1.2.65536",
            "08",
            "0x",
            "4294967296",
            "1..2",
            "a.b.c.d",
            "1.2.3.4x",
            " 1.2.3.4",
            "+1.2.3.4",
        ] {
            assert_eq!(inet_aton(bad), None, "{bad}");
        }
        assert_eq!(ok("4294967295").as_deref(), Some("255.255.255.255"));
    }

    #[test]
    fn numbers() {
        assert_eq!(string_to_number("15", 0, 65535), Some(15));
        assert_eq!(string_to_number("+15", 0, 65535), Some(15));
        assert_eq!(string_to_number(" 15", 0, 65535), Some(15));
        assert_eq!(string_to_number("-0", 0, 65535), Some(0));
        assert_eq!(string_to_number("15 ", 0, 65535), None);
        assert_eq!(string_to_number("", 0, 65535), None);
        assert_eq!(string_to_number("+", 0, 65535), None);
        assert_eq!(string_to_number("0x10", 0, 65535), None);
        assert_eq!(string_to_number("65536", 0, 65535), None);
        assert_eq!(string_to_number("99999999999999999999", 0, i64::MAX), None);
        assert_eq!(strtol("-9223372036854775808"), Some((i64::MIN, "")));
        assert_eq!(atoi("64abc"), 64);
        assert_eq!(atoi(" -3"), -3);
        assert_eq!(atoi("abc"), 0);
    }

    #[test]
    fn service_forms() {
        let r = FakeResolver;
        let hp = |t: &str, proto| parse_service(t, proto, &r);
        assert_eq!(
            hp("10.0.0.1:80", PROTO_TCP),
            Some(HostPort {
                addr: v4(10, 0, 0, 1),
                port: Some(80)
            })
        );
        assert_eq!(
            hp("10.0.0.1", PROTO_TCP),
            Some(HostPort {
                addr: v4(10, 0, 0, 1),
                port: None
            })
        );
        assert_eq!(
            hp("16909060:80", PROTO_TCP).map(|h| h.addr),
            Some(v4(1, 2, 3, 4))
        );
        assert_eq!(
            hp("10.0.0.1:http", PROTO_TCP).and_then(|h| h.port),
            Some(80)
        );
        assert_eq!(hp("10.0.0.1:http", 0), None, "no protocol, no port names");
        assert_eq!(hp("10.0.0.1:+15", PROTO_TCP).and_then(|h| h.port), Some(15));
        assert_eq!(hp("10.0.0.1:0", PROTO_TCP).and_then(|h| h.port), Some(0));
        assert_eq!(
            hp("[2001:db8::1]:80", PROTO_TCP).and_then(|h| h.port),
            Some(80)
        );
        assert_eq!(
            hp("2001:db8::1:80", PROTO_TCP),
            Some(HostPort {
                addr: "2001:db8::1:80".parse().unwrap(),
                port: None
            })
        );
        assert_eq!(
            hp("[1.2.3.4]:80", PROTO_TCP),
            Some(HostPort {
                addr: v4(1, 2, 3, 4),
                port: None
            }),
            "the port of a bracketed IPv4 address is dropped"
        );
        assert_eq!(
            hp("web.example:443", PROTO_TCP).map(|h| h.addr),
            Some(v4(192, 0, 2, 80))
        );
        for bad in [
            "80",
            "",
            "[::1]",
            "[::1]x80",
            "[::1",
            "10.0.0.1:",
            "10.0.0.1:65536",
            "10.0.0.1:nosuch",
            "nosuchhost:80",
            ":80",
            "[::1]:",
        ] {
            assert_eq!(hp(bad, PROTO_TCP), None, "{bad}");
        }
    }

    #[test]
    fn formatting() {
        let r = FakeResolver;
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            addrport_to_anyname(v4(10, 0, 0, 1), 80, PROTO_TCP, true, &r),
            "10.0.0.1:80"
        );
        assert_eq!(
            addrport_to_anyname(v6, 80, PROTO_TCP, true, &r),
            "[2001:db8::1]:80"
        );
        assert_eq!(
            addrport_to_anyname(v4(10, 0, 0, 1), 80, PROTO_TCP, false, &r),
            "10.0.0.1:http"
        );
        assert_eq!(
            addrport_to_anyname(v4(10, 0, 0, 1), 80, 0, false, &r),
            "10.0.0.1:80"
        );
        assert_eq!(
            addrport_to_anyname(v6, 80, PROTO_TCP, false, &r),
            "[v6host.example]:http"
        );
        let long = addrport_to_anyname(v4(192, 0, 2, 99), 443, PROTO_TCP, false, &r);
        assert_eq!(long.len(), 59);
        assert!(long.starts_with("a-very-long-host-name"));
    }
}
