//! The testbed's address blocks, subnets of them, and the IPv6 twin of every IPv4 address.

use std::{
    collections::HashSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use anyhow::{Context, Result, bail, ensure};

/// The IPv4 block the testbed takes its addresses from: 198.18.0.0/15, reserved for
/// benchmarking (RFC 2544), so a test address never means a real host.
pub const TEST_NET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);
pub const TEST_NET_PREFIX: u8 = 15;
/// The IPv6 block, 2001:db8::/32, reserved for documentation (RFC 3849).
pub const TEST_NET6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0);
/// Every IPv6 subnet of the testbed is a /64.
pub const PREFIX6_LEN: u8 = 64;

/// One LAN's IPv4 subnet and the IPv6 /64 beside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subnet {
    pub net: Ipv4Addr,
    pub prefix_len: u8,
    pub net6: Ipv6Addr,
}

impl Subnet {
    /// The subnet of `ip`/`prefix_len`, with the /64 `net6`.
    pub fn of(ip: Ipv4Addr, prefix_len: u8, net6: Ipv6Addr) -> Self {
        Self {
            net: network(ip, prefix_len),
            prefix_len,
            net6,
        }
    }

    /// Fails unless `ip` is a host address of this subnet inside [`TEST_NET`].
    pub fn check_host(&self, ip: Ipv4Addr) -> Result<()> {
        ensure!(
            network(ip, TEST_NET_PREFIX) == TEST_NET,
            "{ip} is outside {TEST_NET}/{TEST_NET_PREFIX}, the only block the testbed uses"
        );
        let broadcast = Ipv4Addr::from(u32::from(self.net) | !mask(self.prefix_len));
        ensure!(
            network(ip, self.prefix_len) == self.net && ip != self.net && ip != broadcast,
            "{ip} is not a host of the subnet {}/{}",
            self.net,
            self.prefix_len
        );
        Ok(())
    }

    /// The IPv6 twin of `ip`: the host part of `ip`, octet by octet, with its decimal digits
    /// read as hex groups of `net6`, so that both read alike: 198.18.0.11/24 gives `net6::11`,
    /// 198.18.1.5/23 gives `net6::1:5`. Distinct hosts get distinct twins.
    pub fn twin(&self, ip: Ipv4Addr) -> Ipv6Addr {
        let host = u32::from(ip) & !mask(self.prefix_len);
        let iid = host
            .to_be_bytes()
            .iter()
            .fold(0u128, |iid, &octet| (iid << 16) | decimal_as_hex(octet));
        Ipv6Addr::from(u128::from(self.net6) | iid)
    }
}

/// 255 → 0x255.
fn decimal_as_hex(octet: u8) -> u128 {
    let (h, t, o) = (octet / 100, octet / 10 % 10, octet % 10);
    u128::from(h) << 8 | u128::from(t) << 4 | u128::from(o)
}

/// Fails if an address appears twice.
pub fn check_unique(ips: impl IntoIterator<Item = IpAddr>) -> Result<()> {
    let mut seen = HashSet::new();
    for ip in ips {
        if !seen.insert(ip) {
            bail!("{ip} is given to two hosts");
        }
    }
    Ok(())
}

/// The `n`th address after `first` (`first` itself for 0).
pub fn nth_after(first: Ipv4Addr, n: usize) -> Result<Ipv4Addr> {
    u32::try_from(n)
        .ok()
        .and_then(|n| u32::from(first).checked_add(n))
        .map(Ipv4Addr::from)
        .with_context(|| format!("no address {n} after {first}"))
}

fn mask(prefix_len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix_len))
        .unwrap_or(0)
}

fn network(ip: Ipv4Addr, prefix_len: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(ip) & mask(prefix_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twins_read_like_their_ipv4_address() {
        let net6: Ipv6Addr = "2001:db8:1::".parse().unwrap();
        let lan = Subnet::of(Ipv4Addr::new(198, 19, 0, 1), 24, net6);
        let twin = |d| lan.twin(Ipv4Addr::new(198, 19, 0, d)).to_string();
        assert_eq!(twin(1), "2001:db8:1::1");
        assert_eq!(twin(11), "2001:db8:1::11");
        assert_eq!(twin(100), "2001:db8:1::100");
        assert_eq!(twin(255), "2001:db8:1::255");
        let wide = Subnet::of(Ipv4Addr::new(198, 18, 0, 0), 15, TEST_NET6);
        assert_eq!(
            wide.twin(Ipv4Addr::new(198, 19, 2, 7)).to_string(),
            "2001:db8::1:2:7"
        );
    }

    #[test]
    fn hosts_must_be_inside_their_subnet() {
        let lan = Subnet::of(Ipv4Addr::new(198, 18, 0, 2), 24, TEST_NET6);
        assert!(lan.check_host(Ipv4Addr::new(198, 18, 0, 254)).is_ok());
        for bad in [
            [198, 18, 0, 0],
            [198, 18, 0, 255],
            [198, 18, 1, 1],
            [10, 0, 0, 1],
        ] {
            assert!(lan.check_host(Ipv4Addr::from(bad)).is_err(), "{bad:?}");
        }
        let ip = IpAddr::from([198, 18, 0, 1]);
        assert!(check_unique([ip, ip]).is_err());
    }
}
