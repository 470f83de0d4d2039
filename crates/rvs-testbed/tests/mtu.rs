//! MTU control: one host's link, and the whole back LAN of a NAT cluster with traffic routed
//! between two MTUs. Needs root.

use std::net::IpAddr;

use rvs::dataplane::attach_pass_program;
use rvs_testbed::{DrCluster, Link, NatCluster};

const PORT: u16 = 8080;

/// The MTU of `dev` in the namespace `ns`, as `ip` shows it.
fn shown_mtu(ns: &str, dev: &str) -> u32 {
    let out = std::process::Command::new("ip")
        .args(["-n", ns, "-o", "link", "show", "dev", dev])
        .output()
        .unwrap();
    let out = String::from_utf8(out.stdout).unwrap();
    let mut words = out.split_whitespace().skip_while(|&w| w != "mtu");
    words.nth(1).unwrap().parse().unwrap()
}

/// Both ends of `link`, host end first.
fn both_ends(host_ns: &str, link: &Link) -> (u32, u32) {
    (
        shown_mtu(host_ns, link.ifname()),
        shown_mtu(link.lan(), link.bridge_port()),
    )
}

#[test]
fn set_mtu_changes_both_ends_of_one_link() {
    let cluster = DrCluster::builder().real_servers(2).build().unwrap();
    let _servers = cluster.serve_tcp(PORT).unwrap();
    let (rs0, rs1) = (&cluster.real_servers()[0], &cluster.real_servers()[1]);
    rs0.set_mtu(1400).unwrap();
    assert_eq!(rs0.mtu().unwrap(), 1400);
    assert_eq!(both_ends(rs0.netns().name(), rs0.eth0()), (1400, 1400));
    assert_eq!(both_ends(rs1.netns().name(), rs1.eth0()), (1500, 1500));
    assert_eq!(cluster.client().tcp_request(rs0.ip(), PORT).unwrap(), "rs0");
    assert!(rs0.set_mtu(10).is_err(), "below the minimum");
}

#[test]
fn an_mtu_one_end_refuses_changes_neither() {
    let cluster = DrCluster::builder().real_servers(1).build().unwrap();
    let rs = &cluster.real_servers()[0];
    // An XDP program on the host end (rvs-rs's decapsulation, say) caps the bridge end's MTU.
    let ifindex = rs.eth0().ifindex();
    let xdp = rs.netns().enter(|| attach_pass_program(ifindex)).unwrap();
    let _xdp = xdp.unwrap();
    let err = rs.set_mtu(9000).unwrap_err();
    assert!(format!("{err:#}").contains(rs.bridge_port()), "{err:#}");
    assert_eq!(both_ends(rs.netns().name(), rs.eth0()), (1500, 1500));
    // The director's bridge port has the pass program: its own end is capped.
    assert!(cluster.director().set_mtu(9000).is_err());
    let director = cluster.director();
    assert_eq!(
        both_ends(director.netns().name(), director.eth0()),
        (1500, 1500)
    );
}

#[test]
fn a_nat_director_routes_between_two_mtus() {
    let cluster = NatCluster::builder().ipv6(true).build().unwrap();
    cluster.set_back_mtu(1280).unwrap();
    let director = cluster.director();
    let name = director.netns().name();
    assert_eq!(both_ends(name, cluster.director_back()), (1280, 1280));
    assert_eq!(both_ends(name, cluster.director_front()), (1500, 1500));
    assert_eq!(cluster.client().mtu().unwrap(), 1500);
    for rs in cluster.real_servers() {
        assert_eq!(both_ends(rs.netns().name(), rs.eth0()), (1280, 1280));
    }
    let rs = &cluster.real_servers()[1];
    let _server = rs.serve_tcp(PORT).unwrap();
    let client = cluster.client();
    for ip in [IpAddr::V4(rs.ip()), IpAddr::V6(rs.ip6().unwrap())] {
        assert_eq!(client.bulk_download(ip, PORT, 4_000_000).unwrap(), "rs1");
        assert_eq!(client.bulk_upload(ip, PORT, 4_000_000).unwrap(), "rs1");
    }
}
