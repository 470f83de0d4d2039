//! Choosing a DR cluster's shape and addresses, and checking them before anything is created.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{Result, ensure};

use crate::{
    addr::{Subnet, TEST_NET_PREFIX, TEST_NET6, check_unique, nth_after},
    cluster::{self, DrCluster},
};

/// The first client's address; further clients get 198.18.0.31, .32...
pub const DEFAULT_CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The director's own address.
pub const DEFAULT_DIRECTOR_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The first real server's address; the others follow: 198.18.0.12, .13...
pub const DEFAULT_REAL_SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
/// The virtual service address.
pub const DEFAULT_VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
/// The LAN's IPv6 subnet (a /64) when IPv6 is on.
pub const LAN6: Ipv6Addr = TEST_NET6;

/// Describes a [`DrCluster`]; [`DrClusterBuilder::build`] creates it.
#[derive(Clone, Debug)]
pub struct DrClusterBuilder {
    clients: usize,
    real_servers: usize,
    client_ips: Option<Vec<Ipv4Addr>>,
    real_server_ips: Option<Vec<Ipv4Addr>>,
    director_ip: Ipv4Addr,
    vip: Ipv4Addr,
    prefix_len: u8,
    ipv6: bool,
    pass_program: bool,
}

/// The checked addresses of a cluster to build.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub clients: Vec<Ipv4Addr>,
    pub director: Ipv4Addr,
    pub real_servers: Vec<Ipv4Addr>,
    pub vip: Ipv4Addr,
    pub prefix_len: u8,
    pub ipv6: bool,
    pub pass_program: bool,
}

impl Default for DrClusterBuilder {
    /// One client, two real servers, the default addresses in 198.18.0.0/24, and the pass
    /// program on the director's bridge port.
    fn default() -> Self {
        Self {
            clients: 1,
            real_servers: 2,
            client_ips: None,
            real_server_ips: None,
            director_ip: DEFAULT_DIRECTOR_IP,
            vip: DEFAULT_VIP,
            prefix_len: 24,
            ipv6: false,
            pass_program: true,
        }
    }
}

impl DrClusterBuilder {
    /// The number of clients, each in its own namespace, at the default addresses.
    pub fn clients(mut self, n: usize) -> Self {
        self.clients = n;
        self.client_ips = None;
        self
    }

    /// The number of real servers, at the default addresses.
    pub fn real_servers(mut self, n: usize) -> Self {
        self.real_servers = n;
        self.real_server_ips = None;
        self
    }

    /// One client at each of these addresses.
    pub fn client_ips(mut self, ips: impl IntoIterator<Item = Ipv4Addr>) -> Self {
        self.client_ips = Some(ips.into_iter().collect());
        self
    }

    /// One real server at each of these addresses.
    pub fn real_server_ips(mut self, ips: impl IntoIterator<Item = Ipv4Addr>) -> Self {
        self.real_server_ips = Some(ips.into_iter().collect());
        self
    }

    /// The director's own address.
    pub fn director_ip(mut self, ip: Ipv4Addr) -> Self {
        self.director_ip = ip;
        self
    }

    /// The virtual service address.
    pub fn vip(mut self, ip: Ipv4Addr) -> Self {
        self.vip = ip;
        self
    }

    /// The LAN's prefix length (every address must be in one such subnet).
    pub fn prefix_len(mut self, len: u8) -> Self {
        self.prefix_len = len;
        self
    }

    /// Whether every host also gets an IPv6 address in [`LAN6`] (off by default): the twin of
    /// its IPv4 address, which reads alike (198.18.0.11 → 2001:db8::11, the VIP 198.18.0.100 →
    /// 2001:db8::100), so the defaults are client 2001:db8::1, director 2001:db8::2, real
    /// servers 2001:db8::11...
    pub fn ipv6(mut self, on: bool) -> Self {
        self.ipv6 = on;
        self
    }

    /// Whether to attach the pass-all XDP program to the director's bridge port, which the
    /// director's XDP_TX needs (on by default).
    pub fn pass_program(mut self, on: bool) -> Self {
        self.pass_program = on;
        self
    }

    /// Creates the namespaces, links and addresses, and waits until the LAN passes traffic.
    pub fn build(self) -> Result<DrCluster> {
        cluster::build(self.plan()?)
    }

    pub(crate) fn plan(&self) -> Result<Plan> {
        let clients = match &self.client_ips {
            Some(ips) => ips.clone(),
            None => (0..self.clients)
                .map(default_client_ip)
                .collect::<Result<_>>()?,
        };
        let real_servers = match &self.real_server_ips {
            Some(ips) => ips.clone(),
            None => (0..self.real_servers)
                .map(|i| nth_after(DEFAULT_REAL_SERVER_IP, i))
                .collect::<Result<_>>()?,
        };
        let plan = Plan {
            clients,
            director: self.director_ip,
            real_servers,
            vip: self.vip,
            prefix_len: self.prefix_len,
            ipv6: self.ipv6,
            pass_program: self.pass_program,
        };
        plan.check()?;
        Ok(plan)
    }
}

impl Plan {
    /// The LAN's subnets.
    pub fn subnet(&self) -> Subnet {
        Subnet::of(self.director, self.prefix_len, LAN6)
    }

    /// The IPv6 twin of `ip` if IPv6 is on.
    pub fn ip6(&self, ip: Ipv4Addr) -> Option<Ipv6Addr> {
        self.ipv6.then(|| self.subnet().twin(ip))
    }

    fn check(&self) -> Result<()> {
        ensure!(!self.clients.is_empty(), "a cluster needs a client");
        ensure!(
            (TEST_NET_PREFIX..=30).contains(&self.prefix_len),
            "prefix length {} is outside {TEST_NET_PREFIX}..=30",
            self.prefix_len
        );
        let all: Vec<Ipv4Addr> = (self.clients.iter().chain(&self.real_servers))
            .chain([&self.director, &self.vip])
            .copied()
            .collect();
        // Everything on one link, so the client resolves the VIP by ARP like any neighbour.
        for &ip in &all {
            self.subnet().check_host(ip)?;
        }
        // Distinct IPv4 hosts of one subnet have distinct twins, so this covers IPv6 too.
        check_unique(all.into_iter().map(IpAddr::V4))
    }
}

pub(crate) fn default_client_ip(i: usize) -> Result<Ipv4Addr> {
    // .1 as the brief promises; the rest above the real servers' default range.
    match i {
        0 => Ok(DEFAULT_CLIENT_IP),
        _ => nth_after(Ipv4Addr::new(198, 18, 0, 30), i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_documented_plan() {
        let plan = DrClusterBuilder::default()
            .clients(3)
            .real_servers(3)
            .plan()
            .unwrap();
        let ip = |d| Ipv4Addr::new(198, 18, 0, d);
        assert_eq!(plan.clients, [ip(1), ip(31), ip(32)]);
        assert_eq!(plan.director, ip(2));
        assert_eq!(plan.real_servers, [ip(11), ip(12), ip(13)]);
        assert_eq!(plan.vip, ip(100));
        assert_eq!(plan.ip6(plan.vip), None);
    }

    #[test]
    fn ipv6_twins_follow_the_documented_plan() {
        let plan = DrClusterBuilder::default().ipv6(true).plan().unwrap();
        let ip6 = |ip: Ipv4Addr| plan.ip6(ip).unwrap().to_string();
        assert_eq!(ip6(plan.clients[0]), "2001:db8::1");
        assert_eq!(ip6(plan.director), "2001:db8::2");
        assert_eq!(ip6(plan.real_servers[1]), "2001:db8::12");
        assert_eq!(ip6(plan.vip), "2001:db8::100");
    }

    #[test]
    fn rejects_collisions_and_foreign_addresses() {
        let b = DrClusterBuilder::default;
        assert!(b().clients(2).real_servers(21).plan().is_err());
        assert!(b().vip(Ipv4Addr::new(198, 18, 0, 11)).plan().is_err());
        assert!(b().vip(Ipv4Addr::new(10, 0, 0, 1)).plan().is_err());
        assert!(b().vip(Ipv4Addr::new(198, 18, 1, 100)).plan().is_err());
        assert!(b().vip(Ipv4Addr::new(198, 18, 0, 255)).plan().is_err());
        assert!(b().clients(0).plan().is_err());
        assert!(b().prefix_len(8).plan().is_err());
        assert!(b().real_servers(300).plan().is_err());
    }
}
