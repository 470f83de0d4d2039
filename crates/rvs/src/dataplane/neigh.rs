//! Next hops of real servers: the interface, source MAC and destination MAC a frame to a real
//! server needs. The route is looked up with rtnetlink; the neighbour entry is created as a
//! kernel-"managed" one (NTF_EXT_MANAGED), which the kernel resolves at once and keeps resolved,
//! so the XDP program never meets a real server whose MAC went stale.

use std::{net::IpAddr, time::Duration};

use anyhow::{Context, Result, anyhow, bail};
use futures::{StreamExt, TryStreamExt};
use netlink_packet_core::{NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    link::LinkAttribute,
    neighbour::{
        NeighbourAddress, NeighbourAttribute, NeighbourExtFlags, NeighbourMessage, NeighbourState,
    },
    route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteType},
};
use rtnetlink::Handle;

/// Where frames to one real server go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextHop {
    pub ifindex: u32,
    pub smac: [u8; 6],
    pub dmac: [u8; 6],
    /// The director's source address on that route (the outer source of tunnelled packets).
    pub src: Option<IpAddr>,
    /// The egress link's MTU.
    pub mtu: u32,
}

/// An rtnetlink connection in the calling task's network namespace.
#[derive(Clone)]
pub struct Neighbours {
    handle: Handle,
}

impl Neighbours {
    /// Opens the connection; must be called inside a tokio runtime.
    pub fn new() -> Result<Neighbours> {
        let (conn, handle, _) = rtnetlink::new_connection().context("opening rtnetlink")?;
        tokio::spawn(conn);
        Ok(Neighbours { handle })
    }

    /// Resolves the next hop towards `dst`, waiting up to `wait` for address resolution.
    /// `Ok(None)` means the route is known but the neighbour did not answer in time.
    pub async fn resolve(&self, dst: IpAddr, wait: Duration) -> Result<Option<NextHop>> {
        let (ifindex, via, src) = self.route(dst).await?;
        let (smac, mtu) = self.link(ifindex).await?;
        let deadline = tokio::time::Instant::now() + wait;
        let mut asked = false;
        loop {
            match self.neighbour(ifindex, via).await? {
                Some(dmac) => {
                    return Ok(Some(NextHop {
                        ifindex,
                        smac,
                        dmac,
                        src,
                        mtu,
                    }));
                }
                None if !asked => {
                    self.add_managed(ifindex, via).await?;
                    asked = true;
                }
                None => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The gateways of the routes in the main table, both families (`ip route show`'s `via`s,
    /// multipath ones too).
    pub async fn gateways(&self) -> Result<Vec<IpAddr>> {
        let mut routes = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut msg = RouteMessage::default();
            msg.header.address_family = family;
            let mut dump = self.handle.route().get(msg).execute();
            while let Some(route) = dump.try_next().await.context("listing the routes")? {
                routes.push(route);
            }
        }
        Ok(route_gateways(&routes))
    }

    /// Keeps the next hop `addr` resolved (a managed neighbour entry, as for a real server):
    /// for a gateway that NAT replies go through.
    pub async fn keep_resolved(&self, addr: IpAddr) -> Result<()> {
        let (ifindex, via, _) = self.route(addr).await?;
        if self.neighbour(ifindex, via).await?.is_none() {
            self.add_managed(ifindex, via).await?;
        }
        Ok(())
    }

    /// The output interface, next-hop address and preferred source of the route to `dst`
    /// (`ip route get`).
    async fn route(&self, dst: IpAddr) -> Result<(u32, IpAddr, Option<IpAddr>)> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family(&dst);
        msg.header.destination_prefix_length = if dst.is_ipv4() { 32 } else { 128 };
        msg.attributes
            .push(RouteAttribute::Destination(route_address(&dst)));
        let mut routes = self.handle.route().get(msg).execute();
        let route = routes
            .try_next()
            .await
            .with_context(|| format!("no route to {dst}"))?
            .ok_or_else(|| anyhow!("no route to {dst}"))?;
        if route.header.kind == RouteType::Local {
            bail!("{dst} is an address of this host; a real server must be another machine");
        }
        let mut oif = None;
        let mut via = dst;
        let mut src = None;
        for attr in &route.attributes {
            match attr {
                RouteAttribute::Oif(i) => oif = Some(*i),
                RouteAttribute::Gateway(RouteAddress::Inet(a)) => via = IpAddr::V4(*a),
                RouteAttribute::Gateway(RouteAddress::Inet6(a)) => via = IpAddr::V6(*a),
                RouteAttribute::PrefSource(RouteAddress::Inet(a)) => src = Some(IpAddr::V4(*a)),
                RouteAttribute::PrefSource(RouteAddress::Inet6(a)) => src = Some(IpAddr::V6(*a)),
                _ => {}
            }
        }
        let oif = oif.ok_or_else(|| anyhow!("the route to {dst} names no interface"))?;
        Ok((oif, via, src))
    }

    /// The MAC address and MTU of an interface.
    async fn link(&self, ifindex: u32) -> Result<([u8; 6], u32)> {
        let mut links = self.handle.link().get().match_index(ifindex).execute();
        let link = links
            .try_next()
            .await?
            .ok_or_else(|| anyhow!("no interface with index {ifindex}"))?;
        let mut mac = None;
        let mut mtu = 1500;
        for attr in link.attributes {
            match attr {
                LinkAttribute::Address(a) if a.len() == 6 => {
                    mac = Some(<[u8; 6]>::try_from(a.as_slice()).expect("length checked"))
                }
                LinkAttribute::Mtu(m) => mtu = m,
                _ => {}
            }
        }
        let mac = mac.ok_or_else(|| anyhow!("interface {ifindex} has no Ethernet address"))?;
        Ok((mac, mtu))
    }

    /// The MAC of a usable neighbour entry for `addr` on `ifindex`. One entry is asked for (as
    /// `ip neigh get` does), not the table dumped: with a thousand real servers a dump per lookup
    /// made adding them quadratic.
    async fn neighbour(&self, ifindex: u32, addr: IpAddr) -> Result<Option<[u8; 6]>> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = family(&addr);
        msg.header.ifindex = ifindex;
        msg.attributes
            .push(NeighbourAttribute::Destination(match addr {
                IpAddr::V4(a) => NeighbourAddress::Inet(a),
                IpAddr::V6(a) => NeighbourAddress::Inet6(a),
            }));
        let mut req = NetlinkMessage::from(RouteNetlinkMessage::GetNeighbour(msg));
        req.header.flags = NLM_F_REQUEST;
        let mut replies = self
            .handle
            .clone()
            .request(req)
            .context("asking for a neighbour entry")?;
        while let Some(reply) = replies.next().await {
            let n = match reply.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(n)) => n,
                NetlinkPayload::Error(e) if e.raw_code() == -libc::ENOENT => return Ok(None),
                NetlinkPayload::Error(e) => {
                    return Err(anyhow!("neighbour entry for {addr}: {e}"));
                }
                _ => continue,
            };
            if n.header.ifindex != ifindex
                || !matches!(
                    n.header.state,
                    NeighbourState::Reachable
                        | NeighbourState::Stale
                        | NeighbourState::Delay
                        | NeighbourState::Probe
                        | NeighbourState::Permanent
                        | NeighbourState::Noarp
                )
            {
                return Ok(None);
            }
            return Ok(n.attributes.iter().find_map(|attr| match attr {
                NeighbourAttribute::LinkLayerAddress(l) if l.len() == 6 => {
                    Some(<[u8; 6]>::try_from(l.as_slice()).expect("length checked"))
                }
                _ => None,
            }));
        }
        Ok(None)
    }

    /// Asks the kernel to resolve and keep resolving `addr` (`ip neigh add ADDR dev IF managed`).
    /// An entry that exists already (made by traffic or by hand) is left as it is.
    async fn add_managed(&self, ifindex: u32, addr: IpAddr) -> Result<()> {
        let mut req = self.handle.neighbours().add(ifindex, addr);
        let msg: &mut NeighbourMessage = req.message_mut();
        msg.header.state = NeighbourState::None;
        msg.attributes
            .push(NeighbourAttribute::ExtFlags(NeighbourExtFlags::Managed));
        match req.execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => Ok(()),
            Err(e) => Err(e).with_context(|| format!("adding a managed neighbour for {addr}")),
        }
    }
}

/// The gateways of the unicast routes of the main table among `routes`, each once.
fn route_gateways(routes: &[RouteMessage]) -> Vec<IpAddr> {
    let gateway = |attr: &RouteAttribute| match attr {
        RouteAttribute::Gateway(RouteAddress::Inet(a)) => Some(IpAddr::V4(*a)),
        RouteAttribute::Gateway(RouteAddress::Inet6(a)) => Some(IpAddr::V6(*a)),
        _ => None,
    };
    let mut out: Vec<IpAddr> = Vec::new();
    for route in routes {
        let table = (route.attributes.iter())
            .find_map(|a| match a {
                RouteAttribute::Table(t) => Some(*t),
                _ => None,
            })
            .unwrap_or(route.header.table as u32);
        if table != RouteHeader::RT_TABLE_MAIN as u32 || route.header.kind != RouteType::Unicast {
            continue;
        }
        for attr in &route.attributes {
            let found: Vec<IpAddr> = match attr {
                RouteAttribute::MultiPath(hops) => (hops.iter())
                    .flat_map(|h| h.attributes.iter().filter_map(gateway))
                    .collect(),
                other => gateway(other).into_iter().collect(),
            };
            for a in found {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
    }
    out
}

fn family(a: &IpAddr) -> AddressFamily {
    if a.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

fn route_address(a: &IpAddr) -> RouteAddress {
    match a {
        IpAddr::V4(v4) => RouteAddress::Inet(*v4),
        IpAddr::V6(v6) => RouteAddress::Inet6(*v6),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use netlink_packet_route::route::RouteNextHop;

    use super::*;

    fn route(table: u8, kind: RouteType, attributes: Vec<RouteAttribute>) -> RouteMessage {
        let mut r = RouteMessage::default();
        r.header.table = table;
        r.header.kind = kind;
        r.attributes = attributes;
        r
    }

    fn via4(a: [u8; 4]) -> RouteAttribute {
        RouteAttribute::Gateway(RouteAddress::Inet(Ipv4Addr::from(a)))
    }

    #[test]
    fn the_gateways_of_the_main_table_s_unicast_routes_each_once() {
        let main = RouteHeader::RT_TABLE_MAIN;
        let v6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let mut hop = RouteNextHop::default();
        hop.attributes.push(via4([198, 18, 0, 253]));
        let routes = [
            // default via 198.18.0.254, and a prefix through the same router
            route(main, RouteType::Unicast, vec![via4([198, 18, 0, 254])]),
            route(main, RouteType::Unicast, vec![via4([198, 18, 0, 254])]),
            // an on-link route: no gateway
            route(main, RouteType::Unicast, vec![]),
            // another table, by the header or by the attribute: not the director's
            route(100, RouteType::Unicast, vec![via4([198, 18, 9, 1])]),
            route(
                0,
                RouteType::Unicast,
                vec![RouteAttribute::Table(1000), via4([198, 18, 9, 2])],
            ),
            // not unicast
            route(main, RouteType::BlackHole, vec![via4([198, 18, 9, 3])]),
            // multipath and IPv6
            route(
                main,
                RouteType::Unicast,
                vec![RouteAttribute::MultiPath(vec![hop])],
            ),
            route(
                main,
                RouteType::Unicast,
                vec![RouteAttribute::Gateway(RouteAddress::Inet6(v6))],
            ),
        ];
        assert_eq!(
            route_gateways(&routes),
            [
                IpAddr::from([198, 18, 0, 254]),
                IpAddr::from([198, 18, 0, 253]),
                IpAddr::V6(v6),
            ]
        );
    }
}
