//! Every health checker of keepalived.conf against a real service in a real server's namespace,
//! run by rvsd from the director's namespace. Each test starts the checkers in `alpha` mode, so
//! the real servers enter the table only once a check has passed; then it breaks one server's
//! service, which must leave the table within keepalived's bound (retry+1)·connect_timeout +
//! retry·delay_before_retry + delay_loop and get no new connection, and repairs it, which must
//! bring it back.

mod common;

use std::{
    io::{BufRead, BufReader},
    net::{IpAddr, SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use common::keepalived::{ConfDir, DELAY_LOOP, KaLab, short_timers};
use md5::{Digest, Md5};
use rvs_testbed::{DnsServer, DrCluster, HttpServer, SmtpServer};

/// A virtual server of the cluster's VIP with both real servers, each with the checker block
/// `checker(i)`.
fn conf(
    cluster: &DrCluster,
    port: u16,
    protocol: &str,
    checker: impl Fn(usize) -> String,
) -> String {
    let mut s = format!(
        "global_defs {{\n    router_id rvs-test\n}}\n\n\
         virtual_server {} {port} {{\n    delay_loop {DELAY_LOOP}\n    lb_algo wrr\n    \
         lb_kind DR\n    protocol {protocol}\n",
        cluster.vip()
    );
    for (i, rs) in cluster.real_servers().iter().enumerate() {
        s.push_str(&format!(
            "    real_server {} {port} {{\n        weight 1\n        {}\n    }}\n",
            rs.ip(),
            checker(i)
        ));
    }
    s.push_str("}\n");
    s
}

/// A checker block with the short timers, starting failed (`alpha`): a server enters the
/// table only after a check passed.
fn checker(kind: &str, body: &str) -> String {
    format!(
        "{kind} {{\n            {}\n            alpha\n            {body}\n        }}",
        short_timers()
    )
}

fn cluster() -> DrCluster {
    DrCluster::builder()
        .real_servers(2)
        .build()
        .expect("building the cluster")
}

/// rvsd on `cluster` running `conf` (the lab's line servers on `lab_port`), once both real
/// servers of `proto` VIP:`port` passed their first check.
fn launch(
    cluster: DrCluster,
    lab_port: u16,
    dir: ConfDir,
    conf: &str,
    proto: &str,
    port: u16,
) -> KaLab {
    let lab = KaLab::on(cluster, lab_port, dir, conf);
    let vip = lab.lab.vip_port(port);
    for i in 0..2 {
        lab.expect_weight(proto, &vip, &lab.rs(i, port), 1);
    }
    lab
}

/// `n` answers from the VIP, each on a new connection.
fn names(n: usize, ask: impl Fn() -> String) -> Vec<String> {
    (0..n).map(|_| ask()).collect()
}

#[test]
fn tcp_check() {
    const PORT: u16 = 80;
    let c = cluster();
    let text = conf(&c, PORT, "TCP", |_| checker("TCP_CHECK", ""));
    let mut lab = launch(c, PORT, ConfDir::new(), &text, "TCP", PORT);
    let vip = lab.lab.vip_port(PORT);
    let before = names(4, || lab.lab.ask(PORT));
    assert!(before.iter().any(|n| n == "rs0"), "{before:?}");

    let t0 = Instant::now();
    drop(lab.lab.tcp.remove(0));
    lab.expect_removed("TCP", &vip, &lab.rs(0, PORT), t0);
    let after = names(6, || lab.lab.ask(PORT));
    assert!(after.iter().all(|n| n == "rs1"), "{after:?}");

    let server = lab.lab.cluster.real_servers()[0].serve_tcp(PORT).unwrap();
    lab.lab.tcp.insert(0, server);
    lab.expect_weight("TCP", &vip, &lab.rs(0, PORT), 1);
    let back = names(4, || lab.lab.ask(PORT));
    assert!(back.iter().any(|n| n == "rs0"), "{back:?}");
    lab.expect_log(&format!(
        "Removing service [{rs}]:80 from VS [{}]:tcp:80 (TCP_CHECK on {rs}:80 failed after 1 retries: ",
        lab.lab.vip(),
        rs = lab.lab.rs_ip(0),
    ));
    lab.expect_log(&format!(
        "Adding service [{rs}]:80 to VS [{}]:tcp:80 (TCP_CHECK on {rs}:80 succeeded",
        lab.lab.vip(),
        rs = lab.lab.rs_ip(0),
    ));
}

fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn any(port: u16) -> SocketAddr {
    (std::net::Ipv6Addr::UNSPECIFIED, port).into()
}

/// Port of the lab's line servers when the service is another protocol's.
const UNUSED: u16 = 8081;

#[test]
fn http_get_status_and_digest() {
    const PORT: u16 = 80;
    let c = cluster();
    // Body `<name>\n`; each real server's checker knows its digest.
    let http: Vec<HttpServer> = (c.real_servers().iter())
        .map(|rs| HttpServer::start(rs.netns(), rs.name(), any(PORT)).unwrap())
        .collect();
    let text = conf(&c, PORT, "TCP", |i| {
        checker(
            "HTTP_GET",
            &format!(
                "url {{\n                path /health\n                status_code 200-204 301\n                digest {}\n            }}",
                md5_hex(&format!("rs{i}\n"))
            ),
        )
    });
    let lab = launch(c, UNUSED, ConfDir::new(), &text, "TCP", PORT);
    let vip = lab.lab.vip_port(PORT);
    let rs0 = lab.rs(0, PORT);
    let client = lab.lab.cluster.client();
    let get = || client.http_get(lab.lab.vip(), PORT).unwrap();
    assert!(names(4, get).iter().any(|n| n == "rs0"));

    // A status outside the accepted ones.
    let t0 = Instant::now();
    http[0].set_status(500);
    lab.expect_removed("TCP", &vip, &rs0, t0);
    let after = names(6, get);
    assert!(after.iter().all(|n| n == "rs1"), "{after:?}");
    // 301 is in the list.
    http[0].set_status(301);
    lab.expect_weight("TCP", &vip, &rs0, 1);
    lab.expect_log("HTTP status 500");

    // An accepted status, another body: the digest no longer matches.
    let t0 = Instant::now();
    http[0].set_body("rs0 is sick\n");
    lab.expect_removed("TCP", &vip, &rs0, t0);
    http[0].set_status(200);
    let seen = http[0].connections_from(lab.client_ip());
    let after = names(6, get);
    assert!(after.iter().all(|n| n == "rs1"), "{after:?}");
    assert_eq!(http[0].connections_from(lab.client_ip()), seen);
    http[0].set_body("rs0\n");
    lab.expect_weight("TCP", &vip, &rs0, 1);
    assert!(names(4, get).iter().any(|n| n == "rs0"));
}

/// Opens and closes a TCP connection from the client to VIP:`port`.
fn touch(lab: &KaLab, port: u16) {
    let to = SocketAddr::from((lab.lab.vip(), port));
    let client = lab.lab.cluster.client().netns();
    client
        .enter(|| TcpStream::connect_timeout(&to, Duration::from_secs(2)))
        .unwrap()
        .unwrap_or_else(|e| panic!("connecting to {to}: {e}"));
}

#[test]
fn ssl_get_with_sni() {
    const PORT: u16 = 443;
    let c = cluster();
    let cert = rcgen::generate_simple_self_signed(vec!["www.example.test".into()]).unwrap();
    let (der, key) = (cert.cert.der().to_vec(), cert.signing_key.serialize_der());
    let https: Vec<HttpServer> = (c.real_servers().iter())
        .map(|rs| {
            HttpServer::start_tls(rs.netns(), rs.name(), any(PORT), der.clone(), key.clone())
                .unwrap()
        })
        .collect();
    let text = conf(&c, PORT, "TCP", |_| {
        checker(
            "SSL_GET",
            "enable_sni\n            url {\n                path /\n                virtualhost www.example.test\n            }",
        )
    });
    let lab = launch(c, UNUSED, ConfDir::new(), &text, "TCP", PORT);
    let vip = lab.lab.vip_port(PORT);
    let rs0 = lab.rs(0, PORT);
    assert!(
        https[0].sni().iter().any(|n| n == "www.example.test"),
        "SNI sent: {:?}",
        https[0].sni()
    );

    let t0 = Instant::now();
    https[0].set_status(503);
    lab.expect_removed("TCP", &vip, &rs0, t0);
    // New connections from the client all reach rs1.
    let reached = |i: usize| https[i].connections_from(lab.client_ip());
    let (before0, before1) = (reached(0), reached(1));
    for _ in 0..6 {
        touch(&lab, PORT);
    }
    lab.wait("rs1 to see 6 connections", Duration::from_secs(5), || {
        reached(1) >= before1 + 6
    });
    assert_eq!(reached(0), before0);

    https[0].set_status(200);
    lab.expect_weight("TCP", &vip, &rs0, 1);
    for _ in 0..4 {
        touch(&lab, PORT);
    }
    lab.wait(
        "rs0 to see connections again",
        Duration::from_secs(5),
        || reached(0) > before0,
    );
}

/// The first line a server sends on a new connection to VIP:`port`.
fn banner(lab: &KaLab, port: u16) -> String {
    let to = SocketAddr::from((lab.lab.vip(), port));
    let stream = (lab.lab.cluster.client().netns())
        .enter(|| TcpStream::connect_timeout(&to, Duration::from_secs(2)))
        .unwrap()
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    line
}

#[test]
fn smtp_check() {
    const PORT: u16 = 25;
    let c = cluster();
    let smtp: Vec<SmtpServer> = (c.real_servers().iter())
        .map(|rs| SmtpServer::start(rs.netns(), rs.name(), any(PORT)).unwrap())
        .collect();
    let text = conf(&c, PORT, "TCP", |_| {
        checker("SMTP_CHECK", "helo_name director.example.test")
    });
    let lab = launch(c, UNUSED, ConfDir::new(), &text, "TCP", PORT);
    let vip = lab.lab.vip_port(PORT);
    let rs0 = lab.rs(0, PORT);
    let before = names(4, || banner(&lab, PORT));
    assert!(
        before.iter().any(|l| l.starts_with("220 rs0 ")),
        "{before:?}"
    );

    let t0 = Instant::now();
    smtp[0].set_banner(554);
    lab.expect_removed("TCP", &vip, &rs0, t0);
    let after = names(6, || banner(&lab, PORT));
    assert!(after.iter().all(|l| l.starts_with("220 rs1 ")), "{after:?}");
    smtp[0].set_banner(220);
    lab.expect_weight("TCP", &vip, &rs0, 1);
    lab.expect_log("bad greeting banner: 554 instead of 220");
}

#[test]
fn dns_check() {
    const PORT: u16 = 80;
    let c = cluster();
    let dns: Vec<DnsServer> = (c.real_servers().iter())
        .map(|rs| DnsServer::start(rs.netns(), any(53)).unwrap())
        .collect();
    let text = conf(&c, PORT, "TCP", |_| {
        checker(
            "DNS_CHECK",
            "connect_port 53\n            type A\n            name www.example.test",
        )
    });
    let director = c.director().ip();
    let lab = launch(c, PORT, ConfDir::new(), &text, "TCP", PORT);
    let vip = lab.lab.vip_port(PORT);
    let rs0 = lab.rs(0, PORT);
    // The director asked for the configured name and type, recursion desired.
    let (from, q) = dns[0].queries()[0].clone();
    assert_eq!(from, IpAddr::V4(director));
    assert_eq!(q[2] & 0x01, 1, "RD");
    assert!(
        q.ends_with(b"\x03www\x07example\x04test\x00\x00\x01\x00\x01"),
        "{q:?}"
    );

    let t0 = Instant::now();
    dns[0].set_rcode(2);
    lab.expect_removed("TCP", &vip, &rs0, t0);
    let after = names(6, || lab.lab.ask(PORT));
    assert!(after.iter().all(|n| n == "rs1"), "{after:?}");
    dns[0].set_rcode(0);
    lab.expect_weight("TCP", &vip, &rs0, 1);
    lab.expect_log("reply with RCODE 2");
}

#[test]
fn udp_check_with_required_reply() {
    const PORT: u16 = 5300;
    let c = cluster();
    // The servers answer their name: "rs" is 72 73, then a digit (3X).
    let text = conf(&c, PORT, "UDP", |_| {
        checker(
            "UDP_CHECK",
            "payload 68 65 6c 6c 6f\n            require_reply 72 73 3X\n            min_reply_length 3",
        )
    });
    let mut udp = c.serve_udp(PORT).unwrap();
    let lab = KaLab::on(c, UNUSED, ConfDir::new(), &text);
    let vip = lab.lab.vip_port(PORT);
    let rs0 = lab.rs(0, PORT);
    lab.expect_weight("UDP", &vip, &rs0, 1);
    lab.expect_weight("UDP", &vip, &lab.rs(1, PORT), 1);
    let client = lab.lab.cluster.client();
    let ask = |from: u16| {
        client
            .udp_request(lab.lab.vip(), PORT, b"hi", from)
            .unwrap()
    };
    let before: Vec<String> = (0..4).map(|i| ask(41000 + i)).collect();
    assert!(before.iter().any(|n| n == "rs0"), "{before:?}");

    // Gone: the real server answers port unreachable.
    let t0 = Instant::now();
    drop(udp.remove(0));
    lab.expect_removed("UDP", &vip, &rs0, t0);
    let after: Vec<String> = (0..6).map(|i| ask(42000 + i)).collect();
    assert!(after.iter().all(|n| n == "rs1"), "{after:?}");
    let server = lab.lab.cluster.real_servers()[0].serve_udp(PORT).unwrap();
    udp.insert(0, server);
    lab.expect_weight("UDP", &vip, &rs0, 1);
    let back: Vec<String> = (0..4).map(|i| ask(43000 + i)).collect();
    assert!(back.iter().any(|n| n == "rs0"), "{back:?}");
}

#[test]
fn ping_check() {
    const PORT: u16 = 80;
    let c = cluster();
    let text = conf(&c, PORT, "TCP", |_| checker("PING_CHECK", ""));
    let lab = launch(c, PORT, ConfDir::new(), &text, "TCP", PORT);
    let vip = lab.lab.vip_port(PORT);
    let rs0 = lab.rs(0, PORT);
    let ns = lab.lab.cluster.real_servers()[0].netns();

    // rs0 stops answering echo requests (its TCP service still runs).
    let t0 = Instant::now();
    ns.sysctl(&["net.ipv4.icmp_echo_ignore_all=1"]).unwrap();
    lab.expect_removed("TCP", &vip, &rs0, t0);
    let after = names(6, || lab.lab.ask(PORT));
    assert!(after.iter().all(|n| n == "rs1"), "{after:?}");
    ns.sysctl(&["net.ipv4.icmp_echo_ignore_all=0"]).unwrap();
    lab.expect_weight("TCP", &vip, &rs0, 1);
    assert!(names(4, || lab.lab.ask(PORT)).iter().any(|n| n == "rs0"));
}

#[test]
fn misc_check_dynamic_weights() {
    const PORT: u16 = 80;
    let c = cluster();
    let dir = ConfDir::new();
    // The script exits with what the state file of its real server says.
    let script = dir.write("check.sh", "#!/bin/sh\nexit \"$(cat \"$1\")\"\n", true);
    for i in 0..2 {
        dir.write(&format!("rs{i}.state"), "3", false);
    }
    let text = conf(&c, PORT, "TCP", |i| {
        checker(
            "MISC_CHECK",
            &format!(
                "misc_path \"{} {{DIR}}/rs{i}.state\"\n            misc_dynamic",
                script.display(),
            ),
        )
    });
    // Exit 3: up with weight 3 - 2 = 1.
    let lab = launch(c, PORT, dir, &text, "TCP", PORT);
    let vip = lab.lab.vip_port(PORT);
    let rs0 = lab.rs(0, PORT);

    // Exit 6: weight 4, the server staying in.
    lab.dir.write("rs0.state", "6", false);
    lab.expect_weight("TCP", &vip, &rs0, 4);
    lab.expect_log("Changing weight from 1 to 4 for active service");
    let picks = names(10, || lab.lab.ask(PORT));
    let to_rs0 = picks.iter().filter(|n| *n == "rs0").count();
    assert!(to_rs0 >= 7, "wrr 4:1 over 10 new connections: {picks:?}");

    // Exit 1: down.
    let t0 = Instant::now();
    lab.dir.write("rs0.state", "1", false);
    lab.expect_removed("TCP", &vip, &rs0, t0);
    let after = names(6, || lab.lab.ask(PORT));
    assert!(after.iter().all(|n| n == "rs1"), "{after:?}");

    // Exit 4: back, with weight 2.
    lab.dir.write("rs0.state", "4", false);
    lab.expect_weight("TCP", &vip, &rs0, 2);
}
