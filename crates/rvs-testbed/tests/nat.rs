//! The NAT topologies without rvsd: addresses and routes, and clients reaching the real servers'
//! own addresses through the director's kernel forwarding. Needs root.

use std::{net::IpAddr, path::Path};

use rvs_testbed::{Host, NatCluster};

const TCP_PORT: u16 = 8080;
const UDP_PORT: u16 = 5353;

fn build(one_armed: bool) -> NatCluster {
    NatCluster::builder()
        .one_armed(one_armed)
        .ipv6(true)
        .build()
        .unwrap()
}

fn addrs(host: &Host, dev: &str) -> String {
    host.exec(&["ip", "-o", "addr", "show", "dev", dev])
        .unwrap()
}

fn routes(host: &Host, family: &str) -> String {
    host.exec(&["ip", family, "route", "show"]).unwrap()
}

/// How many packets the director's kernel has forwarded, IPv4 and IPv6.
fn forwarded(director: &Host) -> (u64, u64) {
    let counter = |file: &str, header: &str, name: &str| -> u64 {
        let text = director.exec(&["cat", file]).unwrap();
        let mut lines = text.lines().filter(|l| l.starts_with(header));
        match (lines.next(), lines.next()) {
            // /proc/net/snmp: a line of names, then a line of values.
            (Some(names), Some(values)) => {
                let i = names.split_whitespace().position(|n| n == name).unwrap();
                values.split_whitespace().nth(i).unwrap().parse().unwrap()
            }
            // /proc/net/snmp6: one `name value` line each.
            _ => text
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap()
                .trim()
                .parse()
                .unwrap(),
        }
    };
    (
        counter("/proc/net/snmp", "Ip:", "ForwDatagrams"),
        counter(
            "/proc/net/snmp6",
            "Ip6OutForwDatagrams",
            "Ip6OutForwDatagrams",
        ),
    )
}

/// Every client reaches every real server's own addresses, over TCP and UDP, both families,
/// and the director forwarded the packets both ways.
fn reach_through_the_director(cluster: &NatCluster) {
    let _tcp = cluster.serve_tcp(TCP_PORT).unwrap();
    let _udp = cluster.serve_udp(UDP_PORT).unwrap();
    let before = forwarded(cluster.director());
    for client in cluster.clients() {
        for rs in cluster.real_servers() {
            for ip in [IpAddr::V4(rs.ip()), IpAddr::V6(rs.ip6().unwrap())] {
                assert_eq!(client.tcp_request(ip, TCP_PORT).unwrap(), rs.name());
                let answer = client.udp_request(ip, UDP_PORT, b"hi", 0).unwrap();
                assert_eq!(answer, rs.name());
            }
        }
    }
    let after = forwarded(cluster.director());
    let exchanges = (cluster.clients().len() * cluster.real_servers().len()) as u64;
    // Each TCP exchange is at least 8 packets (3 to open, 2 of data, 3 to close), and a UDP one 2.
    assert!(after.0 - before.0 >= exchanges * 10, "{before:?} {after:?}");
    assert!(after.1 - before.1 >= exchanges * 10, "{before:?} {after:?}");
}

#[test]
fn two_armed_clients_reach_the_real_servers_through_the_director() {
    let cluster = NatCluster::builder()
        .clients(2)
        .real_servers(2)
        .ipv6(true)
        .build()
        .unwrap();
    reach_through_the_director(&cluster);
}

#[test]
fn one_armed_clients_reach_the_real_servers_through_the_director() {
    let cluster = build(true);
    reach_through_the_director(&cluster);
    // The director sent no redirect: the client still goes through it.
    let route = (cluster.client())
        .exec(&[
            "ip",
            "route",
            "get",
            &cluster.real_servers()[0].ip().to_string(),
        ])
        .unwrap();
    assert!(route.contains("via 198.18.0.2"), "{route}");
}

#[test]
fn two_armed_addresses_and_routes_follow_the_plan() {
    let root_forwarding = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let cluster = build(false);
    assert!(!cluster.is_one_armed());
    let director = cluster.director();
    let (front, back) = (cluster.director_front(), cluster.director_back());
    assert_eq!((front.ifname(), back.ifname()), ("eth0", "eth1"));
    assert_eq!(cluster.director_ifindex(), front.ifindex());
    assert_eq!(director.netns().ifindex("eth1").unwrap(), back.ifindex());
    assert_eq!(cluster.director_back_ip().to_string(), "198.19.0.1");
    assert_eq!(
        cluster.director_back_ip6().unwrap().to_string(),
        "2001:db8:1::1"
    );
    assert_eq!(back.ip(), cluster.director_back_ip());
    let eth0 = addrs(director, "eth0");
    for addr in [
        "198.18.0.2/24",
        "198.18.0.100/32",
        "2001:db8::2/64",
        "2001:db8::100/128",
    ] {
        assert!(eth0.contains(addr), "{eth0}");
    }
    let eth1 = addrs(director, "eth1");
    for addr in ["198.19.0.1/24", "2001:db8:1::1/64"] {
        assert!(eth1.contains(addr), "{eth1}");
    }
    for key in ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"] {
        assert_eq!(director.exec(&["sysctl", "-n", key]).unwrap().trim(), "1");
    }
    let client = cluster.client();
    assert!(routes(client, "-4").contains("198.19.0.0/24 via 198.18.0.2"));
    assert!(routes(client, "-6").contains("2001:db8:1::/64 via 2001:db8::2"));
    for (i, rs) in cluster.real_servers().iter().enumerate() {
        assert_eq!(rs.ip().to_string(), format!("198.19.0.{}", 11 + i));
        assert_eq!(
            rs.ip6().unwrap().to_string(),
            format!("2001:db8:1::{}", 11 + i)
        );
        assert!(routes(rs, "-4").contains("default via 198.19.0.1"));
        assert!(routes(rs, "-6").contains("default via 2001:db8:1::1"));
        let lo = addrs(rs, "lo");
        assert!(
            !lo.contains("198.18.0.100") && !lo.contains("2001:db8::100"),
            "{lo}"
        );
        assert_eq!(rs.link("eth0").unwrap().lan(), cluster.back_lan().name());
    }
    // The pass program on the far end of both of the director's interfaces.
    for link in [front, back] {
        let lan = if link.ifname() == "eth0" {
            cluster.front_lan()
        } else {
            cluster.back_lan()
        };
        let port = lan
            .ip(&["link", "show", "dev", link.bridge_port()])
            .unwrap();
        assert!(port.contains("xdp"), "{port}");
    }
    assert!(cluster.has_pass_program());
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        root_forwarding
    );
}

#[test]
fn one_armed_addresses_and_routes_follow_the_plan() {
    let cluster = build(true);
    assert!(cluster.is_one_armed());
    let director = cluster.director();
    assert_eq!(director.links().len(), 1);
    assert_eq!(cluster.director_back().ifname(), "eth0");
    assert_eq!(cluster.back_lan().name(), cluster.front_lan().name());
    let eth0 = addrs(director, "eth0");
    let plan = [
        "198.18.0.2/24",
        "198.18.1.1/24",
        "198.18.0.100/32",
        "2001:db8::2/64",
        "2001:db8:1::1/64",
        "2001:db8::100/128",
    ];
    for addr in plan {
        assert!(eth0.contains(addr), "{eth0}");
    }
    let client = cluster.client();
    assert!(routes(client, "-4").contains("198.18.1.0/24 via 198.18.0.2"));
    assert!(routes(client, "-6").contains("2001:db8:1::/64 via 2001:db8::2"));
    let rs = &cluster.real_servers()[1];
    assert_eq!(rs.ip().to_string(), "198.18.1.12");
    assert_eq!(rs.ip6().unwrap().to_string(), "2001:db8:1::12");
    assert!(routes(rs, "-4").contains("default via 198.18.1.1"));
    assert!(routes(rs, "-6").contains("default via 2001:db8:1::1"));
    let send_redirects = "net.ipv4.conf.eth0.send_redirects";
    assert_eq!(
        director
            .exec(&["sysctl", "-n", send_redirects])
            .unwrap()
            .trim(),
        "0"
    );
}

#[test]
fn namespaces_are_deleted_on_drop() {
    for one_armed in [false, true] {
        let cluster = NatCluster::builder().one_armed(one_armed).build().unwrap();
        let names = cluster.netns_names();
        // Client, director, two real servers, and one LAN or two.
        assert_eq!(names.len(), 4 + if one_armed { 1 } else { 2 });
        assert!(names.iter().all(|n| n.starts_with(cluster.id())));
        drop(cluster);
        assert!(
            names
                .iter()
                .all(|n| !Path::new("/run/netns").join(n).exists())
        );
    }
}
