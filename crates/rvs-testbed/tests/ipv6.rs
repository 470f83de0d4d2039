//! The DR topology with IPv6, without rvsd: addresses, reachability over IPv6, and the VIP6
//! held silently by the real servers. Needs root.

use std::net::{IpAddr, Ipv6Addr, UdpSocket};

use rvs_testbed::{DrCluster, Host};

const TCP_PORT: u16 = 8080;
const UDP_PORT: u16 = 5353;

fn v6_cluster(real_servers: usize) -> DrCluster {
    DrCluster::builder()
        .real_servers(real_servers)
        .ipv6(true)
        .build()
        .unwrap()
}

fn sysctl(host: &Host, key: &str) -> String {
    host.exec(&["sysctl", "-n", key]).unwrap().trim().to_owned()
}

/// A counter of the host's namespace from /proc/net/snmp6.
fn snmp6(host: &Host, counter: &str) -> u64 {
    let table = host.exec(&["cat", "/proc/net/snmp6"]).unwrap();
    let line = table.lines().find(|l| l.starts_with(counter)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn addresses_follow_the_plan_and_are_usable_at_once() {
    let cluster = v6_cluster(2);
    let ip6s: Vec<String> = cluster
        .hosts()
        .map(|h| h.ip6().unwrap().to_string())
        .collect();
    assert_eq!(
        ip6s,
        ["2001:db8::1", "2001:db8::2", "2001:db8::11", "2001:db8::12"]
    );
    let vip6 = cluster.vip6().unwrap();
    assert_eq!(vip6.to_string(), "2001:db8::100");
    let shows = |host: &Host, dev: &str, addr: String| {
        let out = host
            .exec(&["ip", "-6", "-o", "addr", "show", "dev", dev])
            .unwrap();
        assert!(out.contains(&addr), "{} {dev}: {out}", host.name());
    };
    shows(cluster.director(), "eth0", format!("{vip6}/128"));
    for host in cluster.hosts() {
        shows(host, "eth0", format!("{}/64", host.ip6().unwrap()));
        let tentative = host
            .exec(&["ip", "-6", "addr", "show", "tentative"])
            .unwrap();
        assert!(tentative.is_empty(), "{}: {tentative}", host.name());
        for dev in ["all", "eth0", "lo"] {
            assert_eq!(
                sysctl(host, &format!("net.ipv6.conf.{dev}.accept_dad")),
                "0"
            );
        }
    }
    for rs in cluster.real_servers() {
        shows(rs, "lo", format!("{vip6}/128"));
    }
    // Off by default.
    let v4_only = DrCluster::builder().real_servers(1).build().unwrap();
    assert!(v4_only.vip6().is_none() && v4_only.client().ip6().is_none());
}

#[test]
fn clients_reach_every_real_server_over_both_families() {
    let cluster = v6_cluster(2);
    let _tcp = cluster.serve_tcp(TCP_PORT).unwrap();
    let _udp = cluster.serve_udp(UDP_PORT).unwrap();
    let client = cluster.client();
    for rs in cluster.real_servers() {
        for ip in [IpAddr::V6(rs.ip6().unwrap()), IpAddr::V4(rs.ip())] {
            assert_eq!(client.tcp_request(ip, TCP_PORT).unwrap(), rs.name());
            assert_eq!(client.http_get(ip, TCP_PORT).unwrap(), rs.name());
            let answer = client.udp_request(ip, UDP_PORT, b"hi", 0).unwrap();
            assert_eq!(answer, rs.name());
        }
    }
}

#[test]
fn a_real_server_answers_for_the_vip_from_the_vip() {
    let cluster = v6_cluster(2);
    let _tcp = cluster.serve_tcp(TCP_PORT).unwrap();
    let _udp = cluster.serve_udp(UDP_PORT).unwrap();
    let (client, rs) = (cluster.client(), &cluster.real_servers()[1]);
    // What a direct-routing director does: frames for the VIP go to a real server's MAC.
    let (vip, vip6) = (cluster.vip(), cluster.vip6().unwrap());
    let via = |vip: String, gateway: String| {
        client
            .exec(&["ip", "route", "add", &vip, "via", &gateway])
            .unwrap();
    };
    via(format!("{vip}/32"), rs.ip().to_string());
    via(format!("{vip6}/128"), rs.ip6().unwrap().to_string());
    for ip in [IpAddr::V6(vip6), IpAddr::V4(vip)] {
        assert_eq!(client.tcp_request(ip, TCP_PORT).unwrap(), rs.name());
        // The client's socket is connected to the VIP: an answer from elsewhere would be dropped.
        let answer = client.udp_request(ip, UDP_PORT, b"hi", 0).unwrap();
        assert_eq!(answer, rs.name(), "{ip}");
    }
}

#[test]
fn only_the_director_answers_neighbour_discovery_for_vip6() {
    let cluster = v6_cluster(2);
    let (client, vip6) = (cluster.client(), cluster.vip6().unwrap());
    let neighbour = || {
        client
            .exec(&["ip", "-6", "neigh", "show", &vip6.to_string()])
            .unwrap()
    };
    // A real server sending from VIP6 resolves the client with a solicitation from its own
    // address, which does not teach the client that VIP6 is there.
    for rs in cluster.real_servers() {
        let sent = rs.netns().enter(|| {
            let socket = UdpSocket::bind((vip6, 0))?;
            socket.send_to(b"from the vip", (client.ip6().unwrap(), 9))
        });
        sent.unwrap().unwrap();
    }
    let answers_before: Vec<u64> = (cluster.real_servers().iter())
        .map(|rs| snmp6(rs, "Icmp6OutNeighborAdvertisements"))
        .collect();
    // Without rvsd the director's own stack refuses; what matters is who was asked.
    let err = client.tcp_request(vip6, TCP_PORT).unwrap_err();
    assert!(format!("{err:#}").contains("refused"), "{err:#}");
    let entry = neighbour();
    assert!(
        entry.contains(&cluster.director().mac().to_string()),
        "{entry}"
    );
    for (rs, before) in cluster.real_servers().iter().zip(answers_before) {
        assert!(!entry.contains(&rs.mac().to_string()), "{entry}");
        assert_eq!(
            snmp6(rs, "Icmp6OutNeighborAdvertisements"),
            before,
            "{}",
            rs.name()
        );
    }
    assert_ne!(vip6, Ipv6Addr::UNSPECIFIED);
}
