//! Persistence over real packets: a client's connections stay on one real server while its
//! template lives; the template shows in `-L -c`, expires once idle and uncontrolling; `-M` groups a
//! client network; a port-zero service takes every port; `-o` schedules each UDP datagram.

mod common;

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

use common::Lab;
use rvs_testbed::poll_until;

const PORT: u16 = 80;

fn add_rr(lab: &Lab, vip: &str, n: usize, port: u16, extra: &[&str]) {
    let mut args = vec!["-A", "-t", vip, "-s", "rr"];
    args.extend_from_slice(extra);
    lab.ok(&args);
    for i in 0..n {
        lab.ok(&["-a", "-t", vip, "-r", &format!("{}:{port}", lab.rs_ip(i))]);
    }
}

#[test]
fn a_client_stays_with_its_server_until_the_template_expires() {
    let lab = Lab::new(2, PORT);
    let vip = lab.vip_port(PORT);
    // Closed connections sit in FIN_WAIT: a 2 s tcpfin timeout lets them (and then the
    // template) expire quickly.
    lab.ok(&["--set", "60", "2", "60"]);
    add_rr(&lab, &vip, 2, PORT, &["-p", "2"]);
    let first = lab.ask(PORT);
    for _ in 0..5 {
        assert_eq!(
            lab.ask(PORT),
            first,
            "persistence keeps the client on one server"
        );
    }
    let listing = lab.ok(&["-L", "-n"]);
    assert!(
        listing.contains("TCP  198.18.0.100:80 rr persistent 2"),
        "{listing}"
    );
    let conns = lab.ok(&["-L", "-c", "-n"]);
    let template = conns
        .lines()
        .find(|l| l.contains(" NONE "))
        .unwrap_or_else(|| panic!("no template in\n{conns}"));
    assert!(
        template.contains("198.18.0.1:0"),
        "client port 0 in the template: {template}"
    );
    let pc = lab.ok(&["-L", "-n", "--persistent-conn"]);
    assert!(
        pc.lines()
            .any(|l| l.contains(":80") && l.split_whitespace().nth(2) == Some("1")),
        "{pc}"
    );

    // Once its connections are gone and it has been idle 2 s, the template goes too.
    poll_until(Duration::from_secs(15), "the template to expire", || {
        Ok(lab.ok(&["-L", "-c", "-n"]).lines().count() == 2).map(|done| done.then_some(()))
    })
    .unwrap();
    // rr moved on once: the next client connection goes to the other server.
    assert_ne!(lab.ask(PORT), first);
}

#[test]
fn a_netmask_groups_a_client_network() {
    let lab = Lab::with(2, PORT, 16, &[]);
    let client = lab.cluster.client();
    let a = IpAddr::V4(Ipv4Addr::new(198, 18, 1, 10));
    let b = IpAddr::V4(Ipv4Addr::new(198, 18, 1, 20));
    let c = IpAddr::V4(Ipv4Addr::new(198, 18, 2, 5));
    for ip in [a, b, c] {
        client.add_address(ip).unwrap();
    }
    let vip = lab.vip_port(PORT);
    add_rr(&lab, &vip, 2, PORT, &["-p", "60", "-M", "255.255.255.0"]);
    let ask = |src| {
        let mut conn = client
            .open_tcp_from(SocketAddr::new(src, 0), lab.vip(), PORT)
            .unwrap();
        conn.ask("x").unwrap()
    };
    let first = ask(a);
    assert_eq!(ask(b), first, "198.18.1.10 and .20 share a /24 template");
    assert_ne!(
        ask(c),
        first,
        "198.18.2.5 is another network: rr's next server"
    );
    assert_eq!(ask(a), first);
    let listing = lab.ok(&["-L", "-n"]);
    assert!(
        listing.contains("rr persistent 60 mask 255.255.255.0"),
        "{listing}"
    );
}

#[test]
fn a_port_zero_service_takes_every_port_of_its_vip() {
    let mut lab = Lab::new(2, PORT);
    lab.tcp.extend(lab.cluster.serve_tcp(8080).unwrap());
    let vip = format!("{}:0", lab.cluster.vip());
    add_rr(&lab, &vip, 2, 0, &["-p", "30"]);
    let on_80 = lab.ask(PORT);
    assert_eq!(lab.ask(8080), on_80, "one template covers every port");
    assert_eq!(lab.ask(PORT), on_80);
    let listing = lab.ok(&["-L", "-n"]);
    assert!(
        listing.contains("TCP  198.18.0.100:0 rr persistent 30"),
        "{listing}"
    );
}

#[test]
fn one_packet_scheduling_schedules_every_datagram() {
    let mut lab = Lab::new(2, PORT);
    lab.udp = lab.cluster.serve_udp(53).unwrap();
    let vip = lab.vip_port(53);
    lab.ok(&["-A", "-u", &vip, "-s", "rr", "-o"]);
    for i in 0..2 {
        lab.ok(&["-a", "-u", &vip, "-r", &format!("{}:53", lab.rs_ip(i))]);
    }
    let client = lab.cluster.client();
    let answers: Vec<String> = (0..4)
        .map(|_| client.udp_request(lab.vip(), 53, b"q", 30000).unwrap())
        .collect();
    assert_eq!(
        answers,
        ["rs1", "rs0", "rs1", "rs0"],
        "one flow, every datagram scheduled"
    );
    assert!(
        lab.ok(&["-L", "-n"])
            .contains("UDP  198.18.0.100:53 rr ops")
    );
    // Nothing is recorded.
    assert_eq!(lab.ok(&["-L", "-c", "-n"]).lines().count(), 2);
}
