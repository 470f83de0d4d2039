//! The PROXY protocol version 2 header (haproxy's proxy-protocol.txt, §2.2): how a pool with
//! `forward_for proxy_v2` tells a real server (nginx `listen ... proxy_protocol`, HAProxy
//! `accept-proxy`) the client's address and port for the whole connection. Written by hand: it
//! is 28 or 52 fixed bytes, and the crates for it parse more than they build.

use std::net::{IpAddr, SocketAddr};

const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Version 2, command PROXY.
const V2_PROXY: u8 = 0x21;
const TCP4: u8 = 0x11;
const TCP6: u8 = 0x21;

/// The header for a connection from `client` to `local` (the VIP:port it reached).
pub fn header(client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    let mut out = SIGNATURE.to_vec();
    out.push(V2_PROXY);
    match (client.ip(), local.ip()) {
        (IpAddr::V4(c), IpAddr::V4(l)) => {
            out.push(TCP4);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&c.octets());
            out.extend_from_slice(&l.octets());
        }
        (c, l) => {
            let v6 = |a: IpAddr| match a {
                IpAddr::V4(a) => a.to_ipv6_mapped(),
                IpAddr::V6(a) => a,
            };
            out.push(TCP6);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&v6(c).octets());
            out.extend_from_slice(&v6(l).octets());
        }
    }
    out.extend_from_slice(&client.port().to_be_bytes());
    out.extend_from_slice(&local.port().to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_and_ipv6_headers() {
        let h = header(
            "198.18.0.5:40000".parse().unwrap(),
            "198.18.0.100:80".parse().unwrap(),
        );
        assert_eq!(h.len(), 28);
        assert_eq!(&h[12..16], &[0x21, 0x11, 0, 12]);
        assert_eq!(&h[16..20], &[198, 18, 0, 5]);
        assert_eq!(&h[24..28], &[0x9c, 0x40, 0, 80]);
        let h = header(
            "[2001:db8::5]:1".parse().unwrap(),
            "[2001:db8::100]:443".parse().unwrap(),
        );
        assert_eq!((h.len(), h[13]), (52, 0x21));
    }
}
