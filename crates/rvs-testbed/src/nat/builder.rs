//! Choosing a NAT cluster's shape, and its addresses, checked before anything is created.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{Result, ensure};

use crate::{
    DEFAULT_DIRECTOR_IP, DEFAULT_VIP, LAN6,
    addr::{Subnet, check_unique, nth_after},
    builder::default_client_ip,
    nat::{self, NatCluster},
};

/// The real servers' IPv6 subnet (a /64), beside the clients' [`LAN6`].
pub const BACK6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0);
/// The director's address on the back LAN of a two-armed cluster, and the first real server's.
const TWO_ARMED_BACK: [Ipv4Addr; 2] = [Ipv4Addr::new(198, 19, 0, 1), Ipv4Addr::new(198, 19, 0, 11)];
/// The director's second address on the one LAN of a one-armed cluster, and the first real
/// server's.
const ONE_ARMED_BACK: [Ipv4Addr; 2] = [Ipv4Addr::new(198, 18, 1, 1), Ipv4Addr::new(198, 18, 1, 11)];

/// Describes a [`NatCluster`]; [`NatClusterBuilder::build`] creates it.
///
/// Clients are in 198.18.0.0/24 (2001:db8::/64) as in a DR cluster: the first at 198.18.0.1,
/// the director at 198.18.0.2 with the VIP 198.18.0.100. The real servers are in the back
/// subnet, 198.19.0.0/24 (2001:db8:1::/64), from .11 up, and the director is .1 there. A
/// one-armed cluster puts both subnets on one LAN and uses 198.18.1.0/24 for the back one.
#[derive(Clone, Debug)]
pub struct NatClusterBuilder {
    clients: usize,
    real_servers: usize,
    one_armed: bool,
    ipv6: bool,
    pass_program: bool,
}

/// The checked addresses of a NAT cluster to build.
#[derive(Clone, Debug)]
pub(crate) struct NatPlan {
    pub clients: Vec<Ipv4Addr>,
    pub real_servers: Vec<Ipv4Addr>,
    pub front: Subnet,
    pub back: Subnet,
    pub director_back: Ipv4Addr,
    pub one_armed: bool,
    pub ipv6: bool,
    pub pass_program: bool,
}

impl Default for NatClusterBuilder {
    /// One client, two real servers, two arms, IPv4 only, and the pass program on the
    /// director's bridge ports.
    fn default() -> Self {
        Self {
            clients: 1,
            real_servers: 2,
            one_armed: false,
            ipv6: false,
            pass_program: true,
        }
    }
}

impl NatClusterBuilder {
    /// The number of clients.
    pub fn clients(mut self, n: usize) -> Self {
        self.clients = n;
        self
    }

    /// The number of real servers.
    pub fn real_servers(mut self, n: usize) -> Self {
        self.real_servers = n;
        self
    }

    /// One LAN, the director's `eth0` holding both subnets, instead of a front LAN on `eth0`
    /// and a back LAN on `eth1` (off by default).
    pub fn one_armed(mut self, on: bool) -> Self {
        self.one_armed = on;
        self
    }

    /// Whether every host also gets the IPv6 twin of its IPv4 address (see
    /// [`crate::DrClusterBuilder::ipv6`]): clients 2001:db8::1..., director 2001:db8::2 and
    /// 2001:db8:1::1, VIP6 2001:db8::100, real servers 2001:db8:1::11... (off by default).
    pub fn ipv6(mut self, on: bool) -> Self {
        self.ipv6 = on;
        self
    }

    /// Whether to attach the pass-all XDP program to the bridge ports of the director's
    /// interfaces, which its XDP_TX and redirects need (on by default).
    pub fn pass_program(mut self, on: bool) -> Self {
        self.pass_program = on;
        self
    }

    /// Creates the namespaces, links, addresses and routes, and waits until the LANs pass
    /// traffic.
    pub fn build(self) -> Result<NatCluster> {
        nat::build(self.plan()?)
    }

    pub(crate) fn plan(&self) -> Result<NatPlan> {
        let [director_back, first_rs] = match self.one_armed {
            true => ONE_ARMED_BACK,
            false => TWO_ARMED_BACK,
        };
        let plan = NatPlan {
            clients: (0..self.clients)
                .map(default_client_ip)
                .collect::<Result<_>>()?,
            real_servers: (0..self.real_servers)
                .map(|i| nth_after(first_rs, i))
                .collect::<Result<_>>()?,
            front: Subnet::of(DEFAULT_DIRECTOR_IP, 24, LAN6),
            back: Subnet::of(director_back, 24, BACK6),
            director_back,
            one_armed: self.one_armed,
            ipv6: self.ipv6,
            pass_program: self.pass_program,
        };
        plan.check()?;
        Ok(plan)
    }
}

impl NatPlan {
    /// The IPv6 twin of `ip` in `subnet` if IPv6 is on.
    pub fn ip6(&self, subnet: Subnet, ip: Ipv4Addr) -> Option<Ipv6Addr> {
        self.ipv6.then(|| subnet.twin(ip))
    }

    fn check(&self) -> Result<()> {
        ensure!(!self.clients.is_empty(), "a cluster needs a client");
        let front = self
            .clients
            .iter()
            .chain([&DEFAULT_DIRECTOR_IP, &DEFAULT_VIP]);
        for &ip in front {
            self.front.check_host(ip)?;
        }
        for &ip in self.real_servers.iter().chain([&self.director_back]) {
            self.back.check_host(ip)?;
        }
        let all = (self.clients.iter().chain(&self.real_servers)).chain([
            &DEFAULT_DIRECTOR_IP,
            &DEFAULT_VIP,
            &self.director_back,
        ]);
        check_unique(all.map(|&ip| IpAddr::V4(ip)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_shapes_follow_the_documented_plan() {
        let two = NatClusterBuilder::default().real_servers(3).plan().unwrap();
        let ip = |a, b, c, d| Ipv4Addr::new(a, b, c, d);
        assert_eq!(two.clients, [ip(198, 18, 0, 1)]);
        assert_eq!(two.director_back, ip(198, 19, 0, 1));
        assert_eq!(
            two.real_servers,
            [ip(198, 19, 0, 11), ip(198, 19, 0, 12), ip(198, 19, 0, 13)]
        );
        assert_eq!(two.ip6(two.back, two.director_back), None);

        let one = NatClusterBuilder::default().one_armed(true).ipv6(true);
        let one = one.plan().unwrap();
        assert_eq!(one.director_back, ip(198, 18, 1, 1));
        assert_eq!(one.real_servers[1], ip(198, 18, 1, 12));
        let ip6 = |subnet, ip| one.ip6(subnet, ip).unwrap().to_string();
        assert_eq!(ip6(one.back, one.real_servers[0]), "2001:db8:1::11");
        assert_eq!(ip6(one.back, one.director_back), "2001:db8:1::1");
        assert_eq!(ip6(one.front, DEFAULT_VIP), "2001:db8::100");
    }

    #[test]
    fn too_many_hosts_are_refused() {
        let b = NatClusterBuilder::default;
        assert!(b().real_servers(244).plan().is_ok());
        assert!(b().real_servers(245).plan().is_err());
        assert!(b().clients(0).plan().is_err());
        assert!(b().clients(70).plan().is_ok());
        assert!(
            b().clients(71).plan().is_err(),
            "the 71st would take the VIP"
        );
    }
}
