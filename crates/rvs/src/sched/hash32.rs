//! The kernel's hash_32 and IPVS's address folding for `IpAddr`s (the arithmetic itself lives in
//! rvs_common::hash, shared with the data plane).

use std::net::IpAddr;

pub use rvs_common::hash::hash_32;

/// An address folded to 32 bits (IPv6: XOR of its four words), in host order (ntohl).
pub fn fold(addr: &IpAddr) -> u32 {
    match addr {
        IpAddr::V4(a) => u32::from_be_bytes(a.octets()),
        IpAddr::V6(a) => {
            let o = a.octets();
            let w = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            w(0) ^ w(4) ^ w(8) ^ w(12)
        }
    }
}
