//! Load exchange and tunnel balancing between clusters (keepalived.conf's `rvs_cluster`, issue
//! 14), end to end: two clusters, each a director running rvsd from its keepalived.conf with two
//! direct-routing real servers, sending each other their load every second. Cluster 1 is
//! overloaded by connections held open (capacity_per_weight 2, two servers of weight 1: 6 held
//! connections are a load of 1.5); cluster 2 is idle. A share of the new connections then goes
//! through an IPIP tunnel to cluster 2's director, which schedules them onto its own real
//! servers; the held connections stay where they are; once they close, forwarding stops (the
//! tunnel destination's weight goes to 0) and cluster 1 serves everything again. Forged reports
//! are dropped and counted.
//!
//! The topology is [`HaCluster`]'s without VRRP: `director0` (198.18.0.2, holding the VIP on
//! `eth0`) with `rs0` and `rs1` is cluster 1, `director1` (198.18.0.3) with `rs2` and `rs3`
//! cluster 2; every real server holds the VIP silently and answers the client (behind the
//! router) directly. The two "data centres" share a LAN here; the tunnel goes from director to
//! director all the same.

mod common;

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr, UdpSocket},
    sync::Arc,
    time::Duration,
};

use common::{
    ha::Side,
    keepalived::{ConfDir, KaLab, service_dests},
};
use rvs::daemon::{
    cluster::wire::{Report, seal},
    sync::auth::Key,
};
use rvs_testbed::{HaCluster, TcpConn, TcpServer};

const PORT: u16 = 80;
const REPORT_PORT: u16 = 7240;
const KEY: &str = "the two clusters' shared secret\n";
/// Bound on a decision we wait for (reports every second, decisions every second).
const DECISION_BOUND: Duration = Duration::from_secs(15);
/// Connections held open on cluster 1: a load of 6 / (2 × 1 × 2) = 1.5.
const HELD: usize = 6;

/// One cluster's keepalived.conf: the VIP's service over `servers`, and `rvs_cluster` naming
/// the other cluster as its peer.
fn conf(c: &HaCluster, me: usize, servers: &[usize], capacity: u32, algo: &str) -> String {
    let other = 1 - me;
    let vip = c.vips()[0];
    let mut s = format!(
        "virtual_server {vip} {PORT} {{\n    lb_algo {algo}\n    lb_kind DR\n    protocol TCP\n"
    );
    for &i in servers {
        s.push_str(&format!(
            "    real_server {} {PORT} {{\n        weight 1\n    }}\n",
            c.real_servers()[i].ip()
        ));
    }
    s.push_str("}\n");
    let d = |i: usize| c.directors()[i].ip();
    s.push_str(&format!(
        "rvs_cluster {{\n    name idc{}\n    listen {}:{REPORT_PORT}\n    key_file {{DIR}}/cluster.key\n    \
         period 1\n    capacity_per_weight {capacity}\n    start_above 1.1\n    stop_at 1.0\n    \
         remote_below 0.7\n    peer idc{} {{\n        address {}:{REPORT_PORT}\n        director {}\n        \
         weight 1\n        services {vip}:{PORT}\n    }}\n}}\n",
        me + 1,
        d(me),
        other + 1,
        d(other),
        d(other),
    ));
    s
}

fn lab(c: &Arc<HaCluster>, i: usize, servers: &[usize], capacity: u32) -> KaLab<Side> {
    let dir = ConfDir::new();
    dir.write("cluster.key", KEY, false);
    KaLab::on(
        Side { c: c.clone(), i },
        PORT,
        dir,
        &conf(c, i, servers, capacity, "rr"),
    )
}

/// `rvsadm --cluster`.
fn cluster(k: &KaLab<Side>) -> String {
    k.lab.ok(&["--cluster"])
}

/// The weight of the tunnel destination at `director` in the VIP's service, if there.
fn tunnel_weight(k: &KaLab<Side>, c: &HaCluster, director: usize) -> Option<(String, i64)> {
    let want = format!("{}:{PORT}", c.directors()[director].ip());
    service_dests(
        &k.lab.ok(&["-L", "-n"]),
        "TCP",
        &format!("{}:{PORT}", c.vips()[0]),
    )
    .into_iter()
    .find(|(a, _, _)| *a == want)
    .map(|(_, fwd, w)| (fwd, w))
}

/// The name of the server that answers each of `n` new connections.
fn ask_many(c: &HaCluster, n: usize) -> BTreeMap<String, usize> {
    let vip: IpAddr = c.vips()[0].into();
    let mut names = BTreeMap::new();
    for _ in 0..n {
        let name = c.client().tcp_request(vip, PORT).expect("a new connection");
        *names.entry(name).or_default() += 1;
    }
    names
}

/// Whether `host` holds an established TCP connection from `client` (its own socket's view).
fn sees(host: &rvs_testbed::Host, client: SocketAddr) -> bool {
    let out = host
        .exec(&["ss", "-Htn", "state", "established"])
        .unwrap_or_default();
    let (ip, port) = (client.ip().to_string(), format!(":{}", client.port()));
    out.lines().any(|l| {
        l.split_whitespace()
            .any(|f| f.contains(&ip) && f.ends_with(&port))
    })
}

/// A report from cluster 2's address sealed with the wrong key, and one from the client's.
fn forge(c: &HaCluster) {
    let to = SocketAddr::new(c.directors()[0].ip().into(), REPORT_PORT);
    let report = Report {
        cluster: "idc2".into(),
        load: 0,
        sent_at_ms: 1,
    };
    let wrong = Key::new(b"not the clusters' secret at all").unwrap();
    for (host, from) in [
        (&c.directors()[1], IpAddr::from(c.directors()[1].ip())),
        (c.client(), IpAddr::from(c.client().ip())),
    ] {
        let socket = host
            .netns()
            .enter(|| UdpSocket::bind(SocketAddr::new(from, 0)))
            .unwrap()
            .unwrap();
        let forged = seal(&wrong, from, &report, u64::MAX / 2);
        socket.send_to(&forged, to).unwrap();
    }
}

fn wait(k: &KaLab<Side>, what: &str, f: impl FnMut() -> bool) {
    k.wait(what, DECISION_BOUND, f);
}

#[test]
fn an_overloaded_cluster_forwards_new_connections_to_an_idle_one() {
    let c = Arc::new(HaCluster::build(4, 1, false).expect("building the clusters"));
    let _servers: Vec<TcpServer> = c.serve_tcp(PORT).expect("starting TCP servers");
    let vip: IpAddr = c.vips()[0].into();
    c.directors()[0]
        .netns()
        .ip(&["addr", "add", &format!("{vip}/32"), "dev", "eth0"])
        .unwrap();
    let local = |n: &str| n == "rs0" || n == "rs1";
    let remote = |n: &str| n == "rs2" || n == "rs3";

    // Cluster 1 alone: it hears from no peer, so it forwards nothing while it fills up.
    let one = lab(&c, 0, &[0, 1], 2);
    let mut held: Vec<(TcpConn, String)> = (0..HELD)
        .map(|_| {
            let mut conn = c.client().open_tcp(vip, PORT).expect("a held connection");
            let name = conn.ask("held").expect("an answer on a held connection");
            assert!(local(&name), "{name} answered a held connection");
            (conn, name)
        })
        .collect();
    wait(&one, "cluster 1's load to reach 1.5", || {
        cluster(&one).contains("local load 1.500")
    });
    assert!(cluster(&one).contains("load unknown (no report yet)"));
    assert_eq!(tunnel_weight(&one, &c, 1), None);

    // Cluster 2 comes up idle: cluster 1 starts forwarding to it.
    let two = lab(&c, 1, &[2, 3], 10);
    wait(&one, "cluster 1 to forward to cluster 2", || {
        cluster(&one).contains("forwarding yes")
    });
    let status = cluster(&one);
    eprintln!("cluster 1 while forwarding:\n{status}");
    assert!(status.contains("peer idc2 address 198.18.0.3:7240 director 198.18.0.3 weight 1"));
    assert!(status.contains("load 0.000 reported"), "{status}");
    assert!(status.contains("(local load above start_above, remote below remote_below)"));
    assert_eq!(
        tunnel_weight(&one, &c, 1),
        Some(("Tunnel".to_owned(), 1)),
        "{}",
        one.lab.ok(&["-L", "-n"])
    );
    // Cluster 2 is not overloaded: it forwards nothing back.
    wait(&two, "cluster 2 to hear cluster 1", || {
        cluster(&two).contains("load 1.500 reported")
    });
    assert!(cluster(&two).contains("forwarding no"));
    assert_eq!(tunnel_weight(&two, &c, 0), None);

    // A reload that changes the service (rr to wrr) leaves the cluster task's destination as
    // it is: the keepalived task does not count it as one of its real servers.
    one.rewrite(&conf(&c, 0, &[0, 1], 2, "wrr"));
    one.reload();
    assert!(
        one.lab.rvsd_log().contains("1 changed"),
        "{}",
        one.lab.rvsd_log()
    );
    assert!(
        !one.lab
            .rvsd_log()
            .contains("rvs_cluster is read at start only")
    );
    assert_eq!(tunnel_weight(&one, &c, 1), Some(("Tunnel".to_owned(), 1)));

    // A share of the new connections is served by cluster 2's real servers.
    let names = ask_many(&c, 30);
    eprintln!("while forwarding: {names:?}");
    let (to_local, to_remote): (usize, usize) = names.iter().fold((0, 0), |(l, r), (n, k)| {
        (l + local(n) as usize * k, r + remote(n) as usize * k)
    });
    assert_eq!(to_local + to_remote, 30, "{names:?}");
    // wrr over rs0, rs1 and the tunnel, all of weight 1: a third each.
    assert_eq!(to_remote, 10, "{names:?}");
    // Cluster 2's real server sees the client's own address.
    let mut found = None;
    for _ in 0..6 {
        let mut conn = c.client().open_tcp(vip, PORT).unwrap();
        let name = conn.ask("where").unwrap();
        if remote(&name) {
            found = Some((conn, name));
            break;
        }
    }
    let (mut far, far_name) = found.expect("a connection to cluster 2 within 6");
    let rs = &c.real_servers()[if far_name == "rs2" { 2 } else { 3 }];
    assert!(
        sees(rs, far.local_addr().unwrap()),
        "{far_name} does not hold a connection from {}",
        far.local_addr().unwrap()
    );
    wait(&one, "the status to count 11 connections forwarded", || {
        cluster(&one).contains("  forwarded 11 of ")
    });
    eprintln!("cluster 1 after 11 forwarded:\n{}", cluster(&one));

    // The held connections stayed on cluster 1 and still work.
    for (conn, name) in &mut held {
        assert_eq!(conn.ask("still there").expect("a held connection"), *name);
    }

    // Forged reports are dropped and counted.
    forge(&c);
    wait(&one, "the forged reports to be counted", || {
        let s = cluster(&one);
        s.contains("dropped bad_mac 1") && s.contains("dropped unknown_peer 1")
    });
    assert!(cluster(&one).contains("forwarding yes"));

    // The held connections close: cluster 1's load falls to 0, forwarding stops, and the
    // tunnel destination is quiesced (weight 0) with the connection it still carries.
    drop(held);
    wait(&one, "cluster 1 to stop forwarding", || {
        let s = cluster(&one);
        s.contains("forwarding no") && s.contains("(local load fell to stop_at)")
    });
    wait(&one, "the tunnel destination at weight 0", || {
        tunnel_weight(&one, &c, 1) == Some(("Tunnel".to_owned(), 0))
    });
    let names = ask_many(&c, 12);
    eprintln!("after forwarding stopped: {names:?}");
    assert!(names.keys().all(|n| local(n)), "{names:?}");
    // The connection through the tunnel goes on until it ends.
    assert_eq!(
        far.ask("after").expect("the tunnelled connection"),
        far_name
    );
    eprintln!("cluster 1 at the end:\n{}", cluster(&one));
    drop(far);
    drop(two);
    drop(one);
}
