//! The order of `-L` and `-S`: glibc's `qsort` (a stable top-down merge sort, `msort`) with
//! libipvs's comparators. The comparators subtract and truncate to `int`, so addresses more than
//! 2^31 apart compare "backwards" and the relation is not transitive; only the same algorithm
//! gives the same order.

use std::net::IpAddr;

use crate::control::proto::{DestView, ServiceView};
use crate::model::ServiceId;

const AF_INET: i32 = 2;
const AF_INET6: i32 = 10;

/// glibc's `msort_with_tmp`: split at n/2, sort both halves, merge taking the left element
/// while `cmp(left, right) <= 0`.
pub fn msort<T: Clone>(items: &mut [T], cmp: &dyn Fn(&T, &T) -> i32) {
    let n = items.len();
    if n <= 1 {
        return;
    }
    let n1 = n / 2;
    msort(&mut items[..n1], cmp);
    msort(&mut items[n1..], cmp);
    let mut merged = Vec::with_capacity(n);
    let (mut i, mut j) = (0, n1);
    while i < n1 && j < n {
        if cmp(&items[i], &items[j]) <= 0 {
            merged.push(items[i].clone());
            i += 1;
        } else {
            merged.push(items[j].clone());
            j += 1;
        }
    }
    merged.extend_from_slice(&items[i..n1]);
    merged.extend_from_slice(&items[j..]);
    items.clone_from_slice(&merged);
}

/// An address as four host-order 32-bit words; IPv4 sits in the first (as in `nf_inet_addr`).
fn words(addr: IpAddr) -> [u32; 4] {
    match addr {
        IpAddr::V4(a) => [u32::from(a), 0, 0, 0],
        IpAddr::V6(a) => {
            let o = a.octets();
            std::array::from_fn(|i| {
                u32::from_be_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]])
            })
        }
    }
}

/// `ntohl(a1) - ntohl(a2)` as an `int`, word by word for IPv6 (chosen by the first address).
fn cmp_addr(a: IpAddr, b: IpAddr) -> i32 {
    let (wa, wb) = (words(a), words(b));
    let count = if a.is_ipv6() { 4 } else { 1 };
    wa.iter()
        .zip(wb.iter())
        .take(count)
        .map(|(x, y)| x.wrapping_sub(*y) as i32)
        .find(|&r| r != 0)
        .unwrap_or(0)
}

/// The fields `ipvs_cmp_services` looks at, as the kernel reports them (fwmark services have
/// protocol 0, address 0 and port 0).
struct SvcKey {
    fwmark: u32,
    af: i32,
    protocol: i32,
    addr: IpAddr,
    port: i32,
}

fn svc_key(id: &ServiceId) -> SvcKey {
    let af = if id.is_ipv6() { AF_INET6 } else { AF_INET };
    match *id {
        ServiceId::Inet { proto, addr, port } => SvcKey {
            fwmark: 0,
            af,
            protocol: proto.number().into(),
            addr,
            port: port.into(),
        },
        ServiceId::Fwmark { mark, ipv6 } => SvcKey {
            fwmark: mark,
            af,
            protocol: 0,
            addr: if ipv6 {
                IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
            },
            port: 0,
        },
    }
}

/// `ipvs_cmp_services`.
pub fn cmp_services(a: &ServiceId, b: &ServiceId) -> i32 {
    let (a, b) = (svc_key(a), svc_key(b));
    let steps = [
        a.fwmark.wrapping_sub(b.fwmark) as i32,
        a.af - b.af,
        a.protocol - b.protocol,
        cmp_addr(a.addr, b.addr),
        a.port - b.port,
    ];
    steps.into_iter().find(|&r| r != 0).unwrap_or(0)
}

/// `ipvs_cmp_dests`: address, then port.
pub fn cmp_dests(a: &DestView, b: &DestView) -> i32 {
    match cmp_addr(a.dest.addr, b.dest.addr) {
        0 => i32::from(a.dest.port) - i32::from(b.dest.port),
        r => r,
    }
}

pub fn sort_services(services: &mut [ServiceView]) {
    msort(services, &|a: &ServiceView, b: &ServiceView| {
        cmp_services(&a.service, &b.service)
    });
}

pub fn sort_dests(dests: &mut [DestView]) {
    msort(dests, &cmp_dests);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;

    fn inet(proto: Protocol, addr: &str, port: u16) -> ServiceId {
        ServiceId::Inet {
            proto,
            addr: addr.parse().unwrap(),
            port,
        }
    }

    #[test]
    fn msort_is_stable_merge() {
        let mut v = vec![(3, 'a'), (1, 'b'), (3, 'c'), (2, 'd'), (1, 'e')];
        msort(&mut v, &|a: &(i32, char), b: &(i32, char)| a.0 - b.0);
        assert_eq!(v, vec![(1, 'b'), (1, 'e'), (2, 'd'), (3, 'a'), (3, 'c')]);
    }

    /// The spec's verified example: wrap-around puts far addresses and high marks first.
    #[test]
    fn wrapping_order_matches_ipvsadm() {
        use Protocol::*;
        let mut ids = vec![
            ServiceId::Fwmark {
                mark: 2,
                ipv6: false,
            },
            inet(Tcp, "10.9.9.9", 443),
            inet(Udp, "1.0.0.1", 80),
            inet(Tcp, "2001:db8::1", 80),
            ServiceId::Fwmark {
                mark: 3_000_000_000,
                ipv6: false,
            },
            inet(Tcp, "1.0.0.1", 80),
            inet(Tcp, "200.0.0.1", 80),
            ServiceId::Fwmark {
                mark: 1,
                ipv6: true,
            },
            inet(Tcp, "10.9.9.9", 80),
            inet(Tcp, "::1", 80),
            inet(Tcp, "100.0.0.1", 80),
        ];
        msort(&mut ids, &cmp_services);
        let expected = vec![
            ServiceId::Fwmark {
                mark: 3_000_000_000,
                ipv6: false,
            },
            inet(Tcp, "200.0.0.1", 80),
            inet(Tcp, "1.0.0.1", 80),
            inet(Tcp, "10.9.9.9", 80),
            inet(Tcp, "10.9.9.9", 443),
            inet(Tcp, "100.0.0.1", 80),
            inet(Udp, "1.0.0.1", 80),
            inet(Tcp, "::1", 80),
            inet(Tcp, "2001:db8::1", 80),
            ServiceId::Fwmark {
                mark: 1,
                ipv6: true,
            },
            ServiceId::Fwmark {
                mark: 2,
                ipv6: false,
            },
        ];
        assert_eq!(ids, expected);
    }

    #[test]
    fn address_subtraction_wraps() {
        let a: IpAddr = "200.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(cmp_addr(a, b) < 0, "more than 2^31 apart: backwards");
        let c: IpAddr = "100.0.0.1".parse().unwrap();
        assert!(cmp_addr(c, b) > 0);
    }
}
