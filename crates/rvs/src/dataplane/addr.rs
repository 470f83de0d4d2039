//! Addresses and ports in the layout of the map keys: four 32-bit words holding the address
//! bytes as they are on the wire, and ports in network byte order.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub fn ip_words(addr: &IpAddr) -> [u32; 4] {
    match addr {
        IpAddr::V4(v4) => [u32::from_ne_bytes(v4.octets()), 0, 0, 0],
        IpAddr::V6(v6) => {
            let o = v6.octets();
            let w = |i: usize| u32::from_ne_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            [w(0), w(4), w(8), w(12)]
        }
    }
}

pub fn ip_from_words(words: &[u32; 4], ipv6: bool) -> IpAddr {
    if ipv6 {
        let mut o = [0u8; 16];
        for (i, w) in words.iter().enumerate() {
            o[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
        }
        IpAddr::V6(Ipv6Addr::from(o))
    } else {
        IpAddr::V4(Ipv4Addr::from(words[0].to_ne_bytes()))
    }
}

pub fn port_be(port: u16) -> u16 {
    port.to_be()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for a in ["198.18.0.100", "2001:db8::1", "2001:db8:1:2:3:4:5:6"] {
            let ip: IpAddr = a.parse().unwrap();
            assert_eq!(ip_from_words(&ip_words(&ip), ip.is_ipv6()), ip);
        }
        // Word 0 holds the bytes in wire order.
        let w = ip_words(&"198.18.0.1".parse().unwrap());
        assert_eq!(w[0].to_ne_bytes(), [198, 18, 0, 1]);
    }
}
