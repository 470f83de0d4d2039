//! Creating a NAT topology: LANs, hosts, the director's second subnet, routes and sysctls.

use std::net::IpAddr;

use anyhow::{Context, Result};

use super::{BACK_IFNAME, NatCluster, builder::NatPlan};
use crate::{
    DEFAULT_DIRECTOR_IP, DEFAULT_VIP, Host,
    addr::{PREFIX6_LEN, Subnet},
    host::IFNAME,
    lan,
    link::{LinkAddrs, add_ip6},
    names,
};

/// Builds the topology of `plan`. On failure, what was created is dropped, so deleted.
pub(crate) fn build(plan: NatPlan) -> Result<NatCluster> {
    let id = names::new_topology_id();
    let front = lan::create(&id, if plan.one_armed { "lan" } else { "front" })?;
    let back = match plan.one_armed {
        true => None,
        false => Some(lan::create(&id, "back")?),
    };
    let back_lan = back.as_ref().unwrap_or(&front);
    let addrs = |subnet: Subnet, ip| LinkAddrs {
        ip,
        prefix_len: subnet.prefix_len,
        ip6: plan.ip6(subnet, ip),
    };

    let clients = (plan.clients.iter().enumerate())
        .map(|(i, &ip)| Host::create(&id, &front, &format!("client{i}"), addrs(plan.front, ip)))
        .collect::<Result<Vec<_>>>()?;
    let director_front = addrs(plan.front, DEFAULT_DIRECTOR_IP);
    let director_back = addrs(plan.back, plan.director_back);
    let vip = LinkAddrs {
        prefix_len: 32,
        ..addrs(plan.front, DEFAULT_VIP)
    };
    let mut director = Host::create(&id, &front, "director", director_front)?;
    match &back {
        Some(back) => director.plug(back, BACK_IFNAME, director_back)?,
        None => add_addrs(&director, director_back, PREFIX6_LEN)?,
    }
    add_addrs(&director, vip, 128)?;
    forward(&director)?;

    let real_servers = (plan.real_servers.iter().enumerate())
        .map(|(i, &ip)| Host::create(&id, back_lan, &format!("rs{i}"), addrs(plan.back, ip)))
        .collect::<Result<Vec<_>>>()?;
    for rs in &real_servers {
        refuse_redirects(rs)?;
        add_route(rs, "default", director_back.ip.into())?;
        if let Some(gateway) = director_back.ip6 {
            add_route(rs, "default", gateway.into())?;
        }
    }
    for client in &clients {
        refuse_redirects(client)?;
        let back4 = format!("{}/{}", plan.back.net, plan.back.prefix_len);
        add_route(client, &back4, director_front.ip.into())?;
        if let Some(gateway) = director_front.ip6 {
            let back6 = format!("{}/{PREFIX6_LEN}", plan.back.net6);
            add_route(client, &back6, gateway.into())?;
        }
    }

    let mut pass_programs = Vec::new();
    if plan.pass_program {
        // Every veth the director transmits into: toward the clients and toward the servers.
        pass_programs.push(lan::attach_pass(&front, director.eth0())?);
        if let (Some(back), Some(eth1)) = (&back, director.link(BACK_IFNAME)) {
            pass_programs.push(lan::attach_pass(back, eth1)?);
        }
    }
    let cluster = NatCluster {
        pass_programs,
        id,
        clients,
        director,
        real_servers,
        front,
        back,
        vip: vip.ip,
        vip6: vip.ip6,
        back_ip: director_back.ip,
        back_ip6: director_back.ip6,
    };
    lan::wait_ready(cluster.hosts().flat_map(Host::links))?;
    Ok(cluster)
}

/// Adds `addrs` to the host's `eth0`: IPv4 with its prefix length, IPv6 with `prefix6_len`.
fn add_addrs(host: &Host, addrs: LinkAddrs, prefix6_len: u8) -> Result<()> {
    let v4 = format!("{}/{}", addrs.ip, addrs.prefix_len);
    host.netns().ip(&["addr", "add", &v4, "dev", IFNAME])?;
    if let Some(ip6) = addrs.ip6 {
        add_ip6(host.netns(), IFNAME, ip6, prefix6_len)?;
    }
    Ok(())
}

/// Makes the director a router, in its namespace only. It sends no ICMP redirects: one-armed,
/// it forwards out of the interface packets came in by, and a redirect would teach clients to
/// reach the real servers around it.
fn forward(director: &Host) -> Result<()> {
    let mut settings = vec![
        "net.ipv4.ip_forward=1".to_owned(),
        "net.ipv6.conf.all.forwarding=1".to_owned(),
    ];
    // The kernel sends redirects if `all` or the interface says so.
    for dev in ["all", "default"]
        .into_iter()
        .chain(director.links().iter().map(|l| l.ifname()))
    {
        settings.push(format!("net.ipv4.conf.{dev}.send_redirects=0"));
    }
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    director
        .netns()
        .sysctl(&settings)
        .context("cannot make the director forward")
}

/// Makes a host ignore ICMP redirects, which IPv6 routers send without a way to turn them off.
fn refuse_redirects(host: &Host) -> Result<()> {
    let mut settings = Vec::new();
    for family in ["ipv4", "ipv6"] {
        for dev in ["all", "default", IFNAME] {
            settings.push(format!("net.{family}.conf.{dev}.accept_redirects=0"));
        }
    }
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    host.netns().sysctl(&settings)
}

/// Routes `dest` (a prefix or `default`) through `gateway` on a host.
fn add_route(host: &Host, dest: &str, gateway: IpAddr) -> Result<()> {
    let family = if gateway.is_ipv4() { "-4" } else { "-6" };
    let gateway = gateway.to_string();
    host.netns()
        .ip(&[family, "route", "add", dest, "via", &gateway])
        .with_context(|| format!("cannot route {dest} via {gateway} on {}", host.name()))
        .map(drop)
}
