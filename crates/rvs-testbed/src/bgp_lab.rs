//! The BGP lab of the seed (§4.2, figure 2.6): one VIP prefix announced from two data centres,
//! AS5's two LVS clusters, through four routers of three other ASes to a client, which reaches
//! the nearer cluster and fails over to the other when the nearer one stops announcing.
//!
//! ```text
//!                           client .100
//!                              | eth0          198.18.3.0/24
//!                         eth2 |
//!   AS3                [r32] .32 ---- iBGP, 198.18.33.0/24 ---- .31 [r31]
//!                    eth0 |     eth1                        eth1     | eth0
//!          198.18.23.0/24 |                                          | 198.18.13.0/24
//!                    eth1 |                                          | eth1
//!   AS2                [r22] .22 ---------- 198.18.12.0/24 ---- .11 [r11]           AS1
//!                    eth0 |     eth2                         eth2    | eth0
//!          198.18.25.0/24 |                                          | 198.18.15.0/24
//!                    eth0 | .52                                  .51 | eth0
//!   AS5                 [lb2]  (IDC2)                        (IDC1)  [lb1]
//!                    eth1 | .52                                  .51 | eth1
//!          198.18.52.0/24 |                                          | 198.18.51.0/24
//!               rs2-1 .11, rs2-2 .12                       rs1-1 .11, rs1-2 .12
//!
//!   VIP 198.19.4.1 in 198.19.4.0/24, VIP6 2001:db8:4::1 in 2001:db8:4::/64 (AS5's prefixes)
//! ```
//!
//! Every box is a namespace; every line a LAN of its own (a bridge in a namespace), dual-stack:
//! the IPv6 subnet of 198.18.N.0/24 is 2001:db8:N::/64 (N read as hex digits) and each host's
//! IPv6 address reads like its IPv4 one (r22 on 198.18.25.0/24: 198.18.25.22 and
//! 2001:db8:25::22). A host's last octet is the same on each of its links: r11 .11, r22 .22,
//! r31 .31, r32 .32, lb1 .51, lb2 .52, the client .100.
//!
//! **Routing.** Each router runs BIRD ([`BgpLab::start_routers`]): one BGP session per link to
//! another router (eBGP between ASes, iBGP `next hop self` between r31 and r32), each a single
//! session between the IPv4 addresses carrying IPv4 and IPv6 routes (multiprotocol BGP);
//! `protocol direct` on every interface, so the link subnets and the client's 198.18.3.0/24 are
//! announced (AS3 originates the client's subnet), everything exported, and what BGP learns
//! written to the namespace's kernel tables, so packets follow the routes. The sessions to the
//! LBs are set by [`LabBgp`]: by default one session between IPv4 addresses with both families,
//! or IPv4-only, IPv6-only, both over IPv6, or one per family ([`LbSessions`]). The LBs are AS5
//! (or [`BgpLabBuilder::lb_as`]) and run nothing: a test starts rvsd there (or BIRD as a
//! stand-in, [`BgpLab::standin_config`]) to announce the VIP prefix to [`BgpLab::peering`].
//!
//! With both LBs announcing, r32 prefers r22's eBGP route (AS path `2 5`) to r31's iBGP one
//! (`1 5`, equal length, iBGP loses): the client's path is AS 3 2 5, to lb2. With lb2 silent,
//! r22 has only `1 5` (from r11) and sends r32 `2 1 5`, longer than r31's `1 5`: the path is
//! 3 1 5, to lb1. BIRD shows a path as received, without its own AS: r32's best route has the
//! AS path `[2, 5]`, the client's path is `[3, 2, 5]` ([`BgpLab::client_as_path`]).
//!
//! **Data path.** Each LB has a static default route (both families) to its router: rvsd's
//! speaker need not install what it learns. The real servers are set up for direct routing (the
//! VIPs on `lo`, arp_ignore=1 and arp_announce=2 in their namespaces) with their default routes
//! to their LB's LAN address: the LB forwards their replies (source the VIP) with its kernel
//! (forwarding on, rp_filter off, accept_local on, so a reply is forwarded even if the LB holds
//! the VIP too), through its router back to the client. rvsd's XDP program attaches to the LB's
//! `eth0` (uplink) and `eth1` (the servers' LAN); the pass program is on both bridge ports.
//! The LBs hold no VIP: a router reaches the VIP prefix through the LB's address (the BGP next
//! hop), so no one needs to ARP for the VIP.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use rvs::dataplane::PassProgram;

use crate::{
    Host, Netns,
    addr::Subnet,
    bird::{BgpPeer, Bird, BirdConfig, Channel, Family, Filter},
    cluster::hold_vip_silently,
    lan,
    link::LinkAddrs,
    names,
};

/// AS5's IPv4 prefix, announced by both LBs.
pub const LAB_PREFIX: &str = "198.19.4.0/24";
/// The VIP, in [`LAB_PREFIX`].
pub const LAB_VIP: Ipv4Addr = Ipv4Addr::new(198, 19, 4, 1);
/// AS5's IPv6 prefix.
pub const LAB_PREFIX6: &str = "2001:db8:4::/64";
/// The IPv6 VIP, in [`LAB_PREFIX6`].
pub const LAB_VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 4, 0, 0, 0, 0, 1);
/// The client's subnet behind r32, originated by AS3.
pub const LAB_CLIENT_NET: &str = "198.18.3.0/24";
/// The LBs' AS unless [`BgpLabBuilder::lb_as`] says otherwise.
pub const LAB_LB_AS: u32 = 5;
/// How long the routers' sessions to each other may take to come up.
const ROUTERS_TIMEOUT: Duration = Duration::from_secs(30);

/// The routers: name, AS, last octet of their addresses.
const ROUTERS: [(&str, u32, u8); 4] = [
    ("r11", 1, 11),
    ("r22", 2, 22),
    ("r31", 3, 31),
    ("r32", 3, 32),
];
const LBS: [(&str, u8); 2] = [("lb1", 51), ("lb2", 52)];
const CLIENT: (&str, u8) = ("client", 100);
/// The LANs: name, third octet of 198.18.N.0/24 (and of 2001:db8:N::/64 read as hex), and the
/// hosts on it, in the order their interfaces are numbered (each host's eth0 first).
const LANS: [(&str, u8, &[&str]); 8] = [
    ("l-r11-lb1", 15, &["r11", "lb1"]),
    ("l-r22-lb2", 25, &["r22", "lb2"]),
    ("l-r31-r11", 13, &["r31", "r11"]),
    ("l-r32-r22", 23, &["r32", "r22"]),
    ("l-r32-r31", 33, &["r32", "r31"]),
    ("l-r11-r22", 12, &["r11", "r22"]),
    ("l-client", 3, &["client", "r32"]),
    // The real servers are added to these by `build`.
    ("idc1", 51, &["lb1"]),
];
const IDC2: (&str, u8) = ("idc2", 52);

/// How the routers talk to the LBs (what rvsd's speaker must meet).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LbSessions {
    /// One session between the IPv4 addresses carrying IPv4 and IPv6 routes (multiprotocol
    /// BGP), as the routers talk to each other.
    #[default]
    DualStackOverIpv4,
    /// One session between the IPv6 addresses carrying both families.
    DualStackOverIpv6,
    /// Two sessions: IPv4 routes between the IPv4 addresses, IPv6 routes between the IPv6 ones.
    PerFamily,
    /// One session between the IPv4 addresses, IPv4 routes only.
    Ipv4Only,
    /// One session between the IPv6 addresses, IPv6 routes only.
    Ipv6Only,
}

impl LbSessions {
    /// The sessions: the family of the addresses each runs between, and the families it carries.
    pub fn sessions(self) -> Vec<(Family, Vec<Family>)> {
        use Family::{Ipv4, Ipv6};
        match self {
            LbSessions::DualStackOverIpv4 => vec![(Ipv4, vec![Ipv4, Ipv6])],
            LbSessions::DualStackOverIpv6 => vec![(Ipv6, vec![Ipv4, Ipv6])],
            LbSessions::PerFamily => vec![(Ipv4, vec![Ipv4]), (Ipv6, vec![Ipv6])],
            LbSessions::Ipv4Only => vec![(Ipv4, vec![Ipv4])],
            LbSessions::Ipv6Only => vec![(Ipv6, vec![Ipv6])],
        }
    }

    /// The name of the session over `over` to `peer` in BIRD: `peer` over IPv4, `peer_v6` over
    /// IPv6 (so `show protocols` at r11 lists `lb1`, or `lb1_v6`, or both).
    pub fn protocol_name(peer: &str, over: Family) -> String {
        match over {
            Family::Ipv4 => peer.to_owned(),
            Family::Ipv6 => format!("{peer}_v6"),
        }
    }
}

/// The routers' side of the sessions to the LBs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabBgp {
    pub lb_sessions: LbSessions,
    /// What a router accepts from its LB (all by default).
    pub import_from_lb: Filter,
    /// What a router sends its LB (all by default: the client's subnet, the link subnets, the
    /// other LB's prefix, which the LB drops for its own AS in the path).
    pub export_to_lb: Filter,
    /// Graceful restart towards the LBs with this restart time (BIRD's default, aware only, if
    /// `None`).
    pub lb_graceful_restart: Option<u32>,
    /// The routers only wait for the LBs to connect.
    pub lb_passive: bool,
    /// The hold time the routers offer the LBs (3 s by default).
    pub lb_hold_time: u16,
}

impl Default for LabBgp {
    fn default() -> Self {
        Self {
            lb_sessions: LbSessions::default(),
            import_from_lb: Filter::All,
            export_to_lb: Filter::All,
            lb_graceful_restart: None,
            lb_passive: false,
            lb_hold_time: crate::bird::FAST_HOLD_TIME,
        }
    }
}

/// What an LB needs to peer with its router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LbPeering {
    /// `r11` for lb1, `r22` for lb2.
    pub router: String,
    pub router_as: u32,
    pub router_ip: Ipv4Addr,
    pub router_ip6: Ipv6Addr,
    pub lb_as: u32,
    pub lb_ip: Ipv4Addr,
    pub lb_ip6: Ipv6Addr,
    /// The LB's interface towards the router, `eth0`.
    pub uplink: &'static str,
}

/// One neighbour of a router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbor {
    /// The neighbour's name (`r31`, `lb1`), also the name of the BIRD protocol (for an LB, of the
    /// session over IPv4; see [`LbSessions::protocol_name`]).
    pub name: String,
    pub asn: u32,
    pub ip: Ipv4Addr,
    pub ip6: Ipv6Addr,
    pub local_ip: Ipv4Addr,
    pub local_ip6: Ipv6Addr,
    /// The router's interface towards it.
    pub ifname: String,
    pub is_lb: bool,
}

/// A router of the lab: its host, AS, neighbours and, once started, its BIRD.
#[derive(Debug)]
pub struct BgpRouter {
    // Before `host`: BIRD stops before its namespace goes.
    bird: Option<Bird>,
    host: Host,
    asn: u32,
    router_id: Ipv4Addr,
    neighbors: Vec<Neighbor>,
}

impl BgpRouter {
    pub fn name(&self) -> &str {
        self.host.name()
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    pub fn asn(&self) -> u32 {
        self.asn
    }

    /// 198.18.255.N, N its last octet (an id, not an address of the lab).
    pub fn router_id(&self) -> Ipv4Addr {
        self.router_id
    }

    pub fn neighbors(&self) -> &[Neighbor] {
        &self.neighbors
    }

    /// Its BIRD, once [`BgpLab::start_routers`] has run.
    pub fn bird(&self) -> Result<&Bird> {
        self.bird
            .as_ref()
            .with_context(|| format!("{}'s BIRD is not started", self.name()))
    }

    /// Its BIRD configuration for `bgp`.
    pub fn config(&self, bgp: &LabBgp) -> BirdConfig {
        let mut config = BirdConfig::new(self.router_id)
            .direct(&Family::BOTH, &["eth*"])
            .kernel_bgp();
        for n in &self.neighbors {
            if !n.is_lb {
                let mut channel = Channel::all();
                if n.asn == self.asn {
                    channel = channel.next_hop_self();
                }
                let peer = BgpPeer::new(&n.name, self.asn, n.ip.into(), n.asn)
                    .local(n.local_ip.into())
                    .both(channel);
                config = config.bgp(&peer);
                continue;
            }
            let channel = Channel::new(bgp.import_from_lb.clone(), bgp.export_to_lb.clone());
            for (over, families) in bgp.lb_sessions.sessions() {
                let (neighbor, local): (IpAddr, IpAddr) = match over {
                    Family::Ipv4 => (n.ip.into(), n.local_ip.into()),
                    Family::Ipv6 => (n.ip6.into(), n.local_ip6.into()),
                };
                let mut peer = BgpPeer::new(
                    LbSessions::protocol_name(&n.name, over),
                    self.asn,
                    neighbor,
                    n.asn,
                )
                .local(local)
                .families(&families, &channel)
                .hold_time(bgp.lb_hold_time)
                .passive(bgp.lb_passive);
                if let Some(time) = bgp.lb_graceful_restart {
                    peer = peer.graceful_restart(time);
                }
                config = config.bgp(&peer);
            }
        }
        config
    }
}

/// Describes a [`BgpLab`].
#[derive(Clone, Debug)]
pub struct BgpLabBuilder {
    lb_as: u32,
    real_servers: usize,
}

impl Default for BgpLabBuilder {
    fn default() -> Self {
        Self {
            lb_as: LAB_LB_AS,
            real_servers: 2,
        }
    }
}

impl BgpLabBuilder {
    /// The LBs' AS (5 by default; a 4-octet one such as 4200000005 works too).
    pub fn lb_as(mut self, asn: u32) -> Self {
        self.lb_as = asn;
        self
    }

    /// Real servers per cluster (2 by default; at most 200).
    pub fn real_servers(mut self, n: usize) -> Self {
        self.real_servers = n;
        self
    }

    /// Creates the namespaces, links, addresses and routes, and waits until the LANs pass
    /// traffic. The routers' BIRDs are not started ([`BgpLab::start_routers`]).
    pub fn build(self) -> Result<BgpLab> {
        BgpLab::build_with(self)
    }
}

/// The built lab. Dropping it stops the routers' BIRDs and deletes every namespace.
pub struct BgpLab {
    // Fields drop in order: the programs are detached before their interfaces go away, the
    // BIRDs stop before their namespaces.
    _pass_programs: Vec<PassProgram>,
    routers: Vec<BgpRouter>,
    lbs: Vec<Host>,
    real_servers: Vec<Vec<Host>>,
    client: Host,
    lans: Vec<Netns>,
    id: String,
    lb_as: u32,
}

impl fmt::Debug for BgpLab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BgpLab")
            .field("id", &self.id)
            .field("routers", &self.routers)
            .field("lbs", &self.lbs)
            .field("real_servers", &self.real_servers)
            .field("client", &self.client)
            .finish()
    }
}

/// The subnets of LAN 198.18.`octet`.0/24.
fn subnet(octet: u8) -> Subnet {
    // 2001:db8:N:: with N's decimal digits as hex, as twins read.
    let group = u16::from_str_radix(&octet.to_string(), 16).expect("decimal digits are hex");
    Subnet::of(
        Ipv4Addr::new(198, 18, octet, 0),
        24,
        Ipv6Addr::new(0x2001, 0xdb8, group, 0, 0, 0, 0, 0),
    )
}

fn addrs(subnet: &Subnet, host: u8) -> LinkAddrs {
    let ip = Ipv4Addr::from(u32::from(subnet.net) | u32::from(host));
    LinkAddrs {
        ip,
        prefix_len: 24,
        ip6: Some(subnet.twin(ip)),
    }
}

fn host_octet(name: &str) -> u8 {
    ROUTERS
        .iter()
        .map(|&(n, _, o)| (n, o))
        .chain(LBS)
        .chain([CLIENT])
        .find(|&(n, _)| n == name)
        .map(|(_, o)| o)
        .expect("a host of the lab")
}

impl BgpLab {
    /// A builder: LBs in AS5, two real servers per cluster.
    pub fn builder() -> BgpLabBuilder {
        BgpLabBuilder::default()
    }

    /// The lab with the defaults.
    pub fn build() -> Result<BgpLab> {
        Self::builder().build()
    }

    fn build_with(b: BgpLabBuilder) -> Result<BgpLab> {
        if b.real_servers > 200 {
            bail!(
                "at most 200 real servers per cluster, not {}",
                b.real_servers
            );
        }
        let id = names::new_topology_id();
        let mut lans: Vec<Netns> = Vec::new();
        let mut hosts: Vec<Host> = Vec::new();
        // Which interface of which host is on which LAN: (host, ifname, lan octet).
        let mut ifaces: Vec<(String, String, u8)> = Vec::new();
        let idc2_members: &[&str] = &["lb2"];
        for (name, octet, members) in LANS.iter().copied().chain([(IDC2.0, IDC2.1, idc2_members)]) {
            let lan = lan::create(&id, name)?;
            let net = subnet(octet);
            for &member in members {
                let a = addrs(&net, host_octet(member));
                match hosts.iter_mut().find(|h| h.name() == member) {
                    Some(h) => {
                        let ifname = format!("eth{}", h.links().len());
                        h.plug(&lan, &ifname, a)?;
                        ifaces.push((member.to_owned(), ifname, octet));
                    }
                    None => {
                        hosts.push(Host::create(&id, &lan, member, a)?);
                        ifaces.push((member.to_owned(), "eth0".to_owned(), octet));
                    }
                }
            }
            lans.push(lan);
        }
        let take = |hosts: &mut Vec<Host>, name: &str| {
            let i = hosts
                .iter()
                .position(|h| h.name() == name)
                .expect("created");
            hosts.swap_remove(i)
        };
        let client = take(&mut hosts, CLIENT.0);
        let lbs: Vec<Host> = LBS.iter().map(|&(n, _)| take(&mut hosts, n)).collect();
        let mut routers = Vec::new();
        for &(name, asn, octet) in &ROUTERS {
            let host = take(&mut hosts, name);
            let mut neighbors = Vec::new();
            for (_, ifname, lan_octet) in ifaces.iter().filter(|(h, _, _)| h == name) {
                let net = subnet(*lan_octet);
                let (peer, _, _) = ifaces
                    .iter()
                    .find(|(h, _, o)| o == lan_octet && h != name)
                    .expect("every router link has two ends");
                if peer == CLIENT.0 {
                    continue;
                }
                let is_lb = LBS.iter().any(|&(n, _)| n == peer);
                let peer_asn = match is_lb {
                    true => b.lb_as,
                    false => ROUTERS.iter().find(|r| r.0 == peer).expect("a router").1,
                };
                let (mine, theirs) = (addrs(&net, octet), addrs(&net, host_octet(peer)));
                neighbors.push(Neighbor {
                    name: peer.clone(),
                    asn: peer_asn,
                    ip: theirs.ip,
                    ip6: theirs.ip6.expect("dual-stack"),
                    local_ip: mine.ip,
                    local_ip6: mine.ip6.expect("dual-stack"),
                    ifname: ifname.clone(),
                    is_lb,
                });
            }
            forward(&host, false)?;
            routers.push(BgpRouter {
                bird: None,
                host,
                asn,
                router_id: Ipv4Addr::new(198, 18, 255, octet),
                neighbors,
            });
        }

        let mut pass_programs = Vec::new();
        let mut real_servers = Vec::new();
        for (i, lb) in lbs.iter().enumerate() {
            forward(lb, true)?;
            let uplink = subnet(if i == 0 { 15 } else { 25 });
            let router = ROUTERS[i].2;
            let gw = addrs(&uplink, router);
            default_route(lb, gw.ip, gw.ip6.expect("dual-stack"))?;
            for link in lb.links() {
                let lan = lans
                    .iter()
                    .find(|l| l.name() == link.lan())
                    .expect("the LB's LANs");
                pass_programs.push(lan::attach_pass(lan, link)?);
            }
            let (idc_name, idc_octet) = if i == 0 { ("idc1", 51) } else { IDC2 };
            let idc = lans
                .iter()
                .find(|l| l.name() == names::netns_name(&id, idc_name))
                .expect("created");
            let net = subnet(idc_octet);
            let lb_lan = addrs(&net, idc_octet);
            let mut servers = Vec::new();
            for k in 0..b.real_servers {
                let name = format!("rs{}-{}", i + 1, k + 1);
                let rs = Host::create(&id, idc, &name, addrs(&net, 11 + k as u8))?;
                hold_vip_silently(&rs, LAB_VIP, Some(LAB_VIP6))?;
                default_route(&rs, lb_lan.ip, lb_lan.ip6.expect("dual-stack"))?;
                servers.push(rs);
            }
            real_servers.push(servers);
        }
        default_route(
            &client,
            Ipv4Addr::new(198, 18, 3, 32),
            subnet(3).twin(Ipv4Addr::new(198, 18, 3, 32)),
        )?;

        let lab = BgpLab {
            _pass_programs: pass_programs,
            routers,
            lbs,
            real_servers,
            client,
            lans,
            id,
            lb_as: b.lb_as,
        };
        lan::wait_ready(lab.hosts().flat_map(Host::links))?;
        Ok(lab)
    }

    /// The prefix of all its namespaces' names, `rvs-<pid>-<n>`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Every host: routers, LBs, real servers, the client.
    pub fn hosts(&self) -> impl Iterator<Item = &Host> {
        self.routers
            .iter()
            .map(BgpRouter::host)
            .chain(&self.lbs)
            .chain(self.real_servers.iter().flatten())
            .chain([&self.client])
    }

    /// The namespaces of its LANs (`...-l-r11-lb1`, `...-idc1`...).
    pub fn lans(&self) -> &[Netns] {
        &self.lans
    }

    /// `r11`, `r22`, `r31`, `r32`.
    pub fn routers(&self) -> &[BgpRouter] {
        &self.routers
    }

    /// The router named `name` (`r11`, `r22`, `r31`, `r32`); panics for another name.
    pub fn router(&self, name: &str) -> &BgpRouter {
        self.routers
            .iter()
            .find(|r| r.name() == name)
            .unwrap_or_else(|| panic!("no router {name} in the BGP lab"))
    }

    /// The BIRD of router `name`, once started.
    pub fn bird(&self, name: &str) -> Result<&Bird> {
        self.router(name).bird()
    }

    /// LB `i`: 0 is `lb1` (IDC1, behind r11), 1 is `lb2` (IDC2, behind r22).
    pub fn lb(&self, i: usize) -> &Host {
        &self.lbs[i]
    }

    pub fn lbs(&self) -> &[Host] {
        &self.lbs
    }

    /// The interfaces of an LB rvsd attaches to: `eth0` (to the router), `eth1` (the servers').
    pub fn lb_interfaces(&self) -> [&'static str; 2] {
        ["eth0", "eth1"]
    }

    /// The real servers of LB `i`'s cluster (`rs1-1`, `rs1-2` for lb1).
    pub fn real_servers(&self, i: usize) -> &[Host] {
        &self.real_servers[i]
    }

    /// The client, behind r32 (198.18.3.100).
    pub fn client(&self) -> &Host {
        &self.client
    }

    pub fn vip(&self) -> Ipv4Addr {
        LAB_VIP
    }

    pub fn vip6(&self) -> Ipv6Addr {
        LAB_VIP6
    }

    /// AS5's IPv4 prefix, [`LAB_PREFIX`].
    pub fn prefix(&self) -> &'static str {
        LAB_PREFIX
    }

    /// AS5's IPv6 prefix, [`LAB_PREFIX6`].
    pub fn prefix6(&self) -> &'static str {
        LAB_PREFIX6
    }

    /// The LBs' AS.
    pub fn lb_as(&self) -> u32 {
        self.lb_as
    }

    /// The AS of router `name`.
    pub fn router_as(&self, name: &str) -> u32 {
        self.router(name).asn()
    }

    /// What LB `i` peers with: its router's addresses and AS, its own.
    pub fn peering(&self, i: usize) -> LbPeering {
        let lb = self.lbs[i].name();
        let router = &self.routers[i];
        let n = router
            .neighbors
            .iter()
            .find(|n| n.name == lb)
            .expect("each LB has its router");
        LbPeering {
            router: router.name().to_owned(),
            router_as: router.asn,
            router_ip: n.local_ip,
            router_ip6: n.local_ip6,
            lb_as: self.lb_as,
            lb_ip: n.ip,
            lb_ip6: n.ip6,
            uplink: "eth0",
        }
    }

    /// A BIRD configuration for LB `i` that stands in for rvsd's speaker: it announces
    /// [`LAB_PREFIX`] and [`LAB_PREFIX6`] (static unreachable routes here) to its router over
    /// `sessions`, named after the router (`r11`, `r11_v6`), and imports what it is sent.
    pub fn standin_config(&self, i: usize, sessions: LbSessions) -> BirdConfig {
        let p = self.peering(i);
        let mut config = BirdConfig::new(Ipv4Addr::new(198, 18, 255, LBS[i].1))
            .originate(&[LAB_PREFIX, LAB_PREFIX6]);
        for (over, families) in sessions.sessions() {
            let (neighbor, local): (IpAddr, IpAddr) = match over {
                Family::Ipv4 => (p.router_ip.into(), p.lb_ip.into()),
                Family::Ipv6 => (p.router_ip6.into(), p.lb_ip6.into()),
            };
            let peer = BgpPeer::new(
                LbSessions::protocol_name(&p.router, over),
                p.lb_as,
                neighbor,
                p.router_as,
            )
            .local(local)
            .families(&families, &Channel::announce_static());
            config = config.bgp(&peer);
        }
        config
    }

    /// Starts the four routers' BIRDs with [`LabBgp::default`] and waits until the sessions
    /// between routers are Established (not those to the LBs).
    pub fn start_routers(&mut self) -> Result<()> {
        self.start_routers_with(&LabBgp::default())
    }

    /// [`BgpLab::start_routers`] with the LB sessions of `bgp`. Routers already started are
    /// restarted.
    pub fn start_routers_with(&mut self, bgp: &LabBgp) -> Result<()> {
        for r in &mut self.routers {
            drop(r.bird.take());
            let config = r.config(bgp);
            r.bird = Some(Bird::start_on(&r.host, &config)?);
        }
        for r in &self.routers {
            let bird = r.bird()?;
            for n in r.neighbors.iter().filter(|n| !n.is_lb) {
                bird.wait_established(&n.name, ROUTERS_TIMEOUT)?;
            }
        }
        Ok(())
    }

    /// Stops every router's BIRD.
    pub fn stop_routers(&mut self) -> Result<()> {
        for r in &mut self.routers {
            if let Some(bird) = r.bird.take() {
                bird.stop()?;
            }
        }
        Ok(())
    }

    /// The AS path from the client to `addr`: AS3 (r32's, the client's AS), then the path of
    /// r32's best route (BIRD shows a path without its own AS). `None` without a route.
    pub fn client_as_path(&self, addr: &str) -> Result<Option<Vec<u32>>> {
        let r32 = self.router("r32");
        Ok(r32.bird()?.route_for(addr)?.map(|route| {
            let mut path = vec![r32.asn];
            path.extend(route.as_path);
            path
        }))
    }

    /// Waits until [`BgpLab::client_as_path`] for `addr` is `path`.
    pub fn wait_client_as_path(&self, addr: &str, path: &[u32], timeout: Duration) -> Result<()> {
        let r32 = self.router("r32");
        let first = *path.first().context("an empty path")?;
        if first != r32.asn {
            bail!("the client's path starts at AS{}, not AS{first}", r32.asn);
        }
        r32.bird()?
            .wait_as_path(addr, &path[1..], timeout)
            .map(drop)
    }

    /// Waits until LB `i`'s router has its sessions to the LB (`sessions`) Established.
    pub fn wait_lb_sessions(
        &self,
        i: usize,
        sessions: LbSessions,
        timeout: Duration,
    ) -> Result<()> {
        let p = self.peering(i);
        let bird = self.bird(&p.router)?;
        for (over, _) in sessions.sessions() {
            bird.wait_established(
                &LbSessions::protocol_name(self.lbs[i].name(), over),
                timeout,
            )?;
        }
        Ok(())
    }
}

/// Makes `host` a router in its namespace: forwarding, no reverse-path filter (paths may be
/// asymmetric), no redirects; for an LB also accept_local (see the module's comment).
fn forward(host: &Host, lb: bool) -> Result<()> {
    let mut settings: Vec<String> = [
        "net.ipv4.ip_forward=1",
        "net.ipv6.conf.all.forwarding=1",
        "net.ipv4.conf.all.rp_filter=0",
        "net.ipv4.conf.default.rp_filter=0",
        "net.ipv4.conf.all.send_redirects=0",
    ]
    .map(str::to_owned)
    .into();
    for link in host.links() {
        let dev = link.ifname();
        settings.push(format!("net.ipv4.conf.{dev}.rp_filter=0"));
        settings.push(format!("net.ipv4.conf.{dev}.send_redirects=0"));
        if lb {
            settings.push(format!("net.ipv4.conf.{dev}.accept_local=1"));
        }
    }
    if lb {
        settings.push("net.ipv4.conf.all.accept_local=1".to_owned());
    }
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    host.netns().sysctl(&settings)
}

fn default_route(h: &Host, via: Ipv4Addr, via6: Ipv6Addr) -> Result<()> {
    h.netns()
        .ip(&["route", "add", "default", "via", &via.to_string()])?;
    h.netns()
        .ip(&["-6", "route", "add", "default", "via", &via6.to_string()])
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_and_twins_read_alike() {
        let net = subnet(25);
        let a = addrs(&net, 22);
        assert_eq!(a.ip, Ipv4Addr::new(198, 18, 25, 22));
        assert_eq!(a.ip6.unwrap().to_string(), "2001:db8:25::22");
        assert_eq!(
            addrs(&subnet(3), 100).ip6.unwrap().to_string(),
            "2001:db8:3::100"
        );
    }

    #[test]
    fn the_lb_sessions_have_their_families() {
        assert_eq!(LbSessions::PerFamily.sessions().len(), 2);
        assert_eq!(LbSessions::protocol_name("lb1", Family::Ipv6), "lb1_v6");
        assert_eq!(
            LbSessions::Ipv6Only.sessions(),
            vec![(Family::Ipv6, vec![Family::Ipv6])]
        );
    }
}
