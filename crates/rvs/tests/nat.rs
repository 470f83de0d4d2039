//! NAT end to end: the director rewrites the client's packets to the real server's address and
//! port, and the real server's answers (routed back through the director) to the VIP and the
//! virtual port. Two-armed (clients and real servers on two subnets) and one-armed (one LAN),
//! IPv4 and IPv6, TCP and UDP, and path MTU discovery when the real servers' link is smaller.

mod common;

use std::net::IpAddr;

use common::{BULK, Lab, bracket, service_stats, tally};
use rvs_testbed::NatCluster;

/// The real servers listen here; the services are on 80 and 53: NAT maps the ports.
const RS_TCP: u16 = 8080;
const RS_UDP: u16 = 5353;

/// A service `vip` (TCP :80 and UDP :53) over every real server by NAT, addresses of `family`.
fn nat_services(lab: &Lab<NatCluster>, vip: IpAddr) {
    let v6 = vip.is_ipv6();
    for (flag, vport, rport) in [("-t", 80, RS_TCP), ("-u", 53, RS_UDP)] {
        let svc = format!("{}:{vport}", bracket(vip));
        lab.ok(&["-A", flag, &svc, "-s", "rr"]);
        for rs in lab.cluster.real_servers() {
            let ip: IpAddr = if v6 {
                rs.ip6().unwrap().into()
            } else {
                rs.ip().into()
            };
            lab.ok(&[
                "-a",
                flag,
                &svc,
                "-r",
                &format!("{}:{rport}", bracket(ip)),
                "-m",
            ]);
        }
    }
}

/// Four TCP connections and four UDP flows to `vip` go round robin over the two real servers,
/// and the answers come from the VIP and the virtual ports (the client's sockets accept nothing
/// else: TCP would not connect, the UDP socket is connected to VIP:53).
fn check_round_robin(lab: &Lab<NatCluster>, vip: IpAddr) {
    let client = lab.cluster.client();
    let tcp: Vec<String> = (0..4).map(|_| lab.ask_at(vip, 80)).collect();
    assert_eq!(
        tally(&tcp).values().copied().collect::<Vec<_>>(),
        [2, 2],
        "{tcp:?}"
    );
    let udp: Vec<String> = (0..4)
        .map(|i| {
            client
                .udp_request(vip, 53, b"hello", 40000 + i)
                .unwrap_or_else(|e| panic!("UDP to {vip}: {e:#}\n{}", lab.rvsd_log()))
        })
        .collect();
    assert_eq!(
        tally(&udp).values().copied().collect::<Vec<_>>(),
        [2, 2],
        "{udp:?}"
    );
}

/// Every byte of a 50 MB download and a 50 MB upload through the VIP arrives intact.
fn check_bulk(lab: &Lab<NatCluster>, vip: IpAddr) {
    let client = lab.cluster.client();
    client
        .bulk_download(vip, 80, BULK)
        .unwrap_or_else(|e| panic!("download from {vip}: {e:#}\n{}", lab.rvsd_log()));
    client
        .bulk_upload(vip, 80, BULK)
        .unwrap_or_else(|e| panic!("upload to {vip}: {e:#}\n{}", lab.rvsd_log()));
}

/// NAT counts both directions, as IPVS does: packets out are the real servers' answers.
fn check_both_directions_counted(lab: &Lab<NatCluster>, vip: IpAddr) {
    let stats = lab.ok(&["-L", "-n", "--stats", "--exact"]);
    for (proto, port) in [("TCP", 80), ("UDP", 53)] {
        let [conns, inpkts, outpkts, inbytes, outbytes] =
            service_stats(&stats, proto, &format!("{}:{port}", bracket(vip)));
        assert!(conns >= 4 && inpkts >= 4 && inbytes > 0, "{proto}: {stats}");
        assert!(
            outpkts >= 4 && outbytes > 0,
            "{proto} answers not counted: {stats}"
        );
    }
}

#[test]
fn two_armed_nat_maps_addresses_and_ports_both_ways_on_both_families() {
    let cluster = NatCluster::builder()
        .real_servers(2)
        .ipv6(true)
        .build()
        .unwrap();
    let mut lab = Lab::on(cluster, RS_TCP, &[]);
    lab.udp = lab.cluster.serve_udp(RS_UDP).unwrap();
    let vip4 = lab.vip();
    let vip6: IpAddr = lab.cluster.vip6().unwrap().into();
    nat_services(&lab, vip4);
    nat_services(&lab, vip6);

    let listing = lab.ok(&["-L", "-n"]);
    assert!(
        listing.contains("198.19.0.11:8080             Masq    1"),
        "{listing}"
    );
    for vip in [vip4, vip6] {
        check_round_robin(&lab, vip);
        check_bulk(&lab, vip);
        check_both_directions_counted(&lab, vip);
    }
    // The director's kernel routed none of it: the answers were rewritten and sent by XDP.
    let dp = lab.dataplane();
    assert_eq!(dp["drop_malformed"], 0, "{dp:?}");
    assert!(dp["forwarded"] > 2 * BULK / 1500, "{dp:?}");
}

#[test]
fn one_armed_nat_works_on_a_single_lan() {
    let cluster = NatCluster::builder()
        .real_servers(2)
        .one_armed(true)
        .build()
        .unwrap();
    let mut lab = Lab::on(cluster, RS_TCP, &[]);
    lab.udp = lab.cluster.serve_udp(RS_UDP).unwrap();
    let vip = lab.vip();
    nat_services(&lab, vip);
    check_round_robin(&lab, vip);
    check_bulk(&lab, vip);
    check_both_directions_counted(&lab, vip);
}

#[test]
fn a_smaller_link_to_the_real_servers_is_discovered_by_the_client() {
    // Only the director's side of the back LAN is small: the real servers still announce an MSS
    // for 1500 bytes, so the client's full-size segments reach the director and must be
    // answered with "fragmentation needed" (IPv4) or "packet too big" (IPv6).
    let cluster = NatCluster::builder()
        .real_servers(1)
        .ipv6(true)
        .build()
        .unwrap();
    cluster.director_back().set_mtu(1280).unwrap();
    let lab = Lab::on(cluster, RS_TCP, &[]);
    let vip4 = lab.vip();
    let vip6: IpAddr = lab.cluster.vip6().unwrap().into();
    nat_services(&lab, vip4);
    nat_services(&lab, vip6);
    for vip in [vip4, vip6] {
        let before = lab.counter("icmp_too_big_sent");
        lab.cluster
            .client()
            .bulk_upload(vip, 80, 4_000_000)
            .unwrap_or_else(|e| panic!("upload to {vip}: {e:#}\n{}", lab.rvsd_log()));
        assert!(
            lab.counter("icmp_too_big_sent") > before,
            "no ICMP too-big for {vip}: {:?}",
            lab.dataplane()
        );
    }
    assert_eq!(lab.counter("drop_too_big"), 0);
}

/// A persistent service without a port of its own (port zero, or fwmark) sends each connection
/// to the port the client asked for, even to a real server given with a port, as the kernel's
/// ip_vs_sched_persist does (it uses the server's port only when the client asked for the
/// service's port, which such a service does not have): the multi-port fwmark set-up (one mark
/// for several ports, persistent) relies on it. The real servers listen on 7777 only; their
/// entries say 8080. Both service kinds, both families; `-L -c` shows the port used.
#[test]
fn persistent_port_zero_and_fwmark_services_keep_the_clients_port() {
    const ASKED: u16 = 7777;
    let cluster = NatCluster::builder()
        .real_servers(1)
        .ipv6(true)
        .build()
        .unwrap();
    let lab = Lab::on(cluster, ASKED, &[]);
    let rs = &lab.cluster.real_servers()[0];
    let vip4 = lab.vip();
    let vip6: IpAddr = lab.cluster.vip6().unwrap().into();
    let (rs4, rs6): (IpAddr, IpAddr) = (rs.ip().into(), rs.ip6().unwrap().into());

    // Port zero: -A -t VIP:0 -p, the real server with a port.
    for (vip, rs_ip) in [(vip4, rs4), (vip6, rs6)] {
        let svc = format!("{}:0", bracket(vip));
        lab.ok(&["-A", "-t", &svc, "-s", "rr", "-p", "60"]);
        let dest = format!("{}:8080", bracket(rs_ip));
        lab.ok(&["-a", "-t", &svc, "-r", &dest, "-m"]);
        assert_eq!(lab.ask_at(vip, ASKED), "rs0", "{vip}");
        let conns = lab.ok(&["-L", "-n", "-c"]);
        let used = format!("{}:{ASKED}", bracket(rs_ip));
        assert!(conns.contains(&used), "{conns}");
        lab.ok(&["-D", "-t", &svc]);
    }

    // fwmark: one mark for a port range, persistent; the real server with a port.
    for (mark, vip, rs_ip, family) in [("7", vip4, rs4, None), ("8", vip6, rs6, Some("-6"))] {
        let prefix = if vip.is_ipv6() { 128 } else { 32 };
        let rule = format!("tcp:{}/{prefix}:7000-7999", bracket(vip));
        lab.ok(&["--add-mark", "-f", mark, "--match", &rule]);
        let mut add = vec!["-A", "-f", mark];
        add.extend(family);
        add.extend(["-s", "rr", "-p", "60"]);
        lab.ok(&add);
        let dest = format!("{}:8080", bracket(rs_ip));
        let mut add = vec!["-a", "-f", mark];
        add.extend(family);
        add.extend(["-r", &dest, "-m"]);
        lab.ok(&add);
        assert_eq!(lab.ask_at(vip, ASKED), "rs0", "{vip}");
        // A bulk transfer both ways: the replies from port 7777 are matched and rewritten.
        lab.cluster
            .client()
            .bulk_download(vip, ASKED, 2_000_000)
            .unwrap_or_else(|e| panic!("{e:#}\n{}", lab.rvsd_log()));
        let conns = lab.ok(&["-L", "-n", "-c"]);
        let used = format!("{}:{ASKED}", bracket(rs_ip));
        assert!(conns.contains(&used), "{conns}");
    }
}

/// A stopped rvsd leaves its director attached: ten busy NAT connections streaming through a
/// stop, two seconds without rvsd and a start go on byte for byte (the program used to be
/// detached on SIGTERM, and the director's own stack, which holds the VIP, reset all ten).
#[test]
fn a_restart_loses_no_packet_of_busy_nat_connections() {
    use rvs_testbed::stream::{ClientConfig, ServeConfig, StreamClient, StreamServer};
    const STREAM_PORT: u16 = 9090;
    let cluster = NatCluster::builder().real_servers(2).build().unwrap();
    let mut lab = Lab::on(cluster, RS_TCP, &[]);
    let vip = lab.vip();
    let svc = format!("{vip}:80");
    lab.ok(&["-A", "-t", &svc, "-s", "rr"]);
    for rs in lab.cluster.real_servers() {
        lab.ok(&[
            "-a",
            "-t",
            &svc,
            "-r",
            &format!("{}:{STREAM_PORT}", rs.ip()),
            "-m",
        ]);
    }
    let _servers: Vec<StreamServer> = (lab.cluster.real_servers().iter())
        .map(|rs| StreamServer::start_in(rs.netns(), &ServeConfig::new(rs.name(), STREAM_PORT)))
        .collect::<Result<_, _>>()
        .unwrap();
    let client =
        StreamClient::start_in(lab.cluster.client().netns(), ClientConfig::new(vip, 80, 10))
            .unwrap();
    client
        .wait_streaming(std::time::Duration::from_secs(30))
        .unwrap();

    let log = lab.stop_rvsd();
    assert!(log.contains("the director stays attached"), "{log}");
    let during = client.progress();
    client
        .wait_progress(&during, std::time::Duration::from_secs(10))
        .expect("the streams go on while no rvsd runs");
    std::thread::sleep(std::time::Duration::from_secs(2));
    lab.start_rvsd();
    let after = client.progress();
    client
        .wait_progress(&after, std::time::Duration::from_secs(10))
        .unwrap_or_else(|e| {
            panic!(
                "after the restart: {e:#}\n{}\n{:?}\n{}",
                lab.rvsd_log(),
                lab.dataplane(),
                lab.ok(&["-L", "-n", "-c"])
            )
        });
    let report = client.stop().unwrap();
    assert_eq!(report.conns, 10);
    assert!(report.all_ok(), "{}", report.to_json());
    assert!(
        lab.rvsd_log().contains("connections carried over"),
        "{}",
        lab.rvsd_log()
    );
}
