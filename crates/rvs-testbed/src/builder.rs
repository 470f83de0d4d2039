//! Choosing a DR cluster's shape and addresses, and checking them before anything is created.

use std::{collections::HashSet, net::Ipv4Addr};

use anyhow::{Context, Result, bail, ensure};

use crate::cluster::{self, DrCluster};

/// The block the testbed takes its addresses from: 198.18.0.0/15, reserved for benchmarking
/// (RFC 2544), so a test address never means a real host.
const TEST_NET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);
const TEST_NET_PREFIX: u8 = 15;

/// The first client's address; further clients get 198.18.0.31, .32...
pub const DEFAULT_CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The director's own address.
pub const DEFAULT_DIRECTOR_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The first real server's address; the others follow: 198.18.0.12, .13...
pub const DEFAULT_REAL_SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
/// The virtual service address.
pub const DEFAULT_VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);

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
            pass_program: self.pass_program,
        };
        plan.check()?;
        Ok(plan)
    }
}

impl Plan {
    fn check(&self) -> Result<()> {
        ensure!(!self.clients.is_empty(), "a cluster needs a client");
        ensure!(
            (TEST_NET_PREFIX..=30).contains(&self.prefix_len),
            "prefix length {} is outside {TEST_NET_PREFIX}..=30",
            self.prefix_len
        );
        let subnet = network(self.director, self.prefix_len);
        let broadcast = Ipv4Addr::from(u32::from(subnet) | !mask(self.prefix_len));
        let all = self
            .clients
            .iter()
            .chain(&self.real_servers)
            .chain([&self.director, &self.vip]);
        let mut seen = HashSet::new();
        for &ip in all {
            ensure!(
                network(ip, TEST_NET_PREFIX) == TEST_NET,
                "{ip} is outside {TEST_NET}/{TEST_NET_PREFIX}, the only block the testbed uses"
            );
            // Everything on one link, so the client resolves the VIP by ARP like any neighbour.
            ensure!(
                network(ip, self.prefix_len) == subnet && ip != subnet && ip != broadcast,
                "{ip} is not a host of the director's subnet {subnet}/{}",
                self.prefix_len
            );
            if !seen.insert(ip) {
                bail!("{ip} is given to two hosts");
            }
        }
        Ok(())
    }
}

fn default_client_ip(i: usize) -> Result<Ipv4Addr> {
    // .1 as the brief promises; the rest above the real servers' default range.
    match i {
        0 => Ok(DEFAULT_CLIENT_IP),
        _ => nth_after(Ipv4Addr::new(198, 18, 0, 30), i),
    }
}

fn nth_after(first: Ipv4Addr, n: usize) -> Result<Ipv4Addr> {
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
