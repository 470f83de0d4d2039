//! fwmark services end to end: rvs's own mark rules (protocol, destination prefix, port range)
//! classify packets in the data plane, as iptables' MARK rules do for IPVS, and the fwmark
//! service balances them: several ports under one persistence template, IPv6, NAT keeping the
//! client's port, and a mark taking precedence over an address service as in IPVS.

mod common;

use std::net::IpAddr;

use common::{Lab, bracket, tally};
use rvs_testbed::{DrCluster, NatCluster};

fn dr_lab() -> Lab {
    let cluster = DrCluster::builder()
        .real_servers(2)
        .ipv6(true)
        .build()
        .unwrap();
    let mut lab = Lab::on(cluster, 80, &[]);
    lab.tcp.extend(lab.cluster.serve_tcp(443).unwrap());
    lab.udp = lab.cluster.serve_udp(53).unwrap();
    lab
}

#[test]
fn one_persistent_mark_covers_several_ports() {
    let lab = dr_lab();
    let vip = lab.cluster.vip();
    lab.ok(&["--add-mark", "-f", "1", "--match", &format!("tcp:{vip}:80")]);
    lab.ok(&[
        "--add-mark",
        "-f",
        "1",
        "--match",
        &format!("tcp:{vip}:443"),
    ]);
    lab.ok(&["-A", "-f", "1", "-s", "rr", "-p", "60"]);
    for i in 0..2 {
        lab.ok(&["-a", "-f", "1", "-r", &lab.rs_ip(i).to_string(), "-g"]);
    }
    // The first connection picks a server; every later one, to either port, follows it: one
    // template for the mark, whatever the port.
    let first = lab.ask(80);
    for port in [443, 80, 443, 443, 80] {
        assert_eq!(lab.ask(port), first, "port {port}");
    }
    let listing = lab.ok(&["-L", "-n"]);
    assert!(listing.contains("FWM  1 rr persistent 60"), "{listing}");
    let conns = lab.ok(&["-L", "-n", "-c"]);
    assert!(
        conns
            .lines()
            .any(|l| l.starts_with("IP ") && l.contains("0.0.0.1:0")),
        "no template for mark 1:\n{conns}"
    );
    // A port no rule covers is not the service's: the director's kernel answers (refuses).
    assert!(lab.cluster.client().tcp_request(vip, 8080).is_err());
}

#[test]
fn marks_for_udp_ranges_and_ipv6_balance_round_robin() {
    let lab = dr_lab();
    let vip = lab.cluster.vip();
    let vip6: IpAddr = lab.cluster.vip6().unwrap().into();
    lab.ok(&[
        "--add-mark",
        "-f",
        "2",
        "--match",
        &format!("udp:{vip}/32:50-60"),
    ]);
    lab.ok(&["-A", "-f", "2", "-s", "rr"]);
    lab.ok(&[
        "--add-mark",
        "-f",
        "3",
        "--match",
        &format!("tcp:{}/64:80", bracket(vip6)),
    ]);
    lab.ok(&["-A", "-f", "3", "-6", "-s", "rr"]);
    for rs in lab.cluster.real_servers() {
        lab.ok(&["-a", "-f", "2", "-r", &rs.ip().to_string(), "-g"]);
        lab.ok(&[
            "-a",
            "-f",
            "3",
            "-6",
            "-r",
            &rs.ip6().unwrap().to_string(),
            "-g",
        ]);
    }
    let udp: Vec<String> = (0..4)
        .map(|i| {
            lab.cluster
                .client()
                .udp_request(vip, 53, b"hi", 42000 + i)
                .unwrap()
        })
        .collect();
    assert_eq!(
        tally(&udp).values().copied().collect::<Vec<_>>(),
        [2, 2],
        "{udp:?}"
    );
    let tcp6: Vec<String> = (0..4).map(|_| lab.ask_at(vip6, 80)).collect();
    assert_eq!(
        tally(&tcp6).values().copied().collect::<Vec<_>>(),
        [2, 2],
        "{tcp6:?}"
    );
    // Marks are per family, as in IPVS: mark 3 is an IPv6 service, and IPv4 packets to port 80
    // match no rule of it.
    assert!(lab.cluster.client().tcp_request(vip, 80).is_err());
}

#[test]
fn a_mark_takes_precedence_over_an_address_service_and_rules_can_be_removed() {
    let lab = dr_lab();
    let vip = lab.cluster.vip();
    let svc = lab.vip_port(80);
    lab.ok(&["-A", "-t", &svc, "-s", "rr"]);
    lab.ok(&["-a", "-t", &svc, "-r", &lab.rs_ip(0).to_string(), "-g"]);
    lab.ok(&["-A", "-f", "7", "-s", "rr"]);
    lab.ok(&["-a", "-f", "7", "-r", &lab.rs_ip(1).to_string(), "-g"]);
    assert_eq!(lab.ask(80), "rs0");
    let rule = format!("any:{vip}/24");
    lab.ok(&["--add-mark", "-f", "7", "--match", &rule]);
    assert_eq!(lab.ask(80), "rs1");
    assert_eq!(lab.ask(443), "rs1");
    // -S saves the services as ipvsadm does, --save-marks the rule; -C clears both; -R of the
    // two brings both back.
    let mut saved = lab.ok(&["-S", "-n"]);
    assert!(!saved.contains("--add-mark"), "{saved}");
    let marks = lab.ok(&["--save-marks"]);
    assert_eq!(marks, "--add-mark -f 7 --match any:198.18.0.0/24\n");
    saved.push_str(&marks);
    lab.ok(&["-C"]);
    assert_eq!(lab.ok(&["--list-marks"]).lines().count(), 2);
    let out = lab.rvsadm_with_stdin(&["-R"], &saved);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(lab.ask(443), "rs1");
    lab.ok(&["--del-mark", "-f", "7", "--match", &rule]);
    assert_eq!(lab.ask(80), "rs0");
    // A bad rule is refused with the reason and changes nothing.
    let out = lab.rvsadm(&["--add-mark", "-f", "7", "--match", "tcp:198.18.0.300"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        common::stderr(&out).contains("is not an IP address"),
        "{}",
        common::stderr(&out)
    );
    assert_eq!(lab.ask(80), "rs0");
}

#[test]
fn nat_mark_service_keeps_the_clients_port_for_servers_without_one() {
    let cluster = NatCluster::builder().real_servers(2).build().unwrap();
    let lab = Lab::on(cluster, 8080, &[]);
    let vip = lab.cluster.vip();
    lab.ok(&[
        "--add-mark",
        "-f",
        "9",
        "--match",
        &format!("tcp:{vip}:8000-8100"),
    ]);
    lab.ok(&["-A", "-f", "9", "-s", "rr"]);
    for rs in lab.cluster.real_servers() {
        lab.ok(&["-a", "-f", "9", "-r", &rs.ip().to_string(), "-m"]);
    }
    let names: Vec<String> = (0..4).map(|_| lab.ask(8080)).collect();
    assert_eq!(
        tally(&names).values().copied().collect::<Vec<_>>(),
        [2, 2],
        "{names:?}"
    );
    lab.cluster
        .client()
        .bulk_download(vip, 8080, 5_000_000)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", lab.rvsd_log()));
    // -L -c shows the port each flow reaches its port-less server on, as the kernel does.
    let conns = lab.ok(&["-L", "-n", "-c"]);
    let rs0 = format!("{}:8080", lab.cluster.real_servers()[0].ip());
    assert!(conns.contains(&rs0), "{conns}");
    assert!(!conns.contains(":0\n"), "{conns}");
}
