//! Connection states and timers over real packets: `-L -c` follows a connection's handshake and
//! close with IPVS's timeouts (and `--set`'s), ActiveConn/InActConn move with it, flows expire;
//! thresholds set and clear OVERLOAD by the kernel's rule.

mod common;

use std::time::Duration;

use common::{Lab, counts};
use rvs_testbed::poll_until;

const PORT: u16 = 80;

/// The connection rows of `rvsadm -L -c -n` (after the two header lines).
fn conn_rows(lab: &Lab) -> Vec<Vec<String>> {
    lab.ok(&["-L", "-c", "-n"])
        .lines()
        .skip(2)
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// "MM:SS" as seconds.
fn secs(expire: &str) -> u64 {
    let (m, s) = expire.split_once(':').unwrap();
    m.parse::<u64>().unwrap() * 60 + s.parse::<u64>().unwrap()
}

#[test]
fn a_connections_state_and_timer_follow_its_life() {
    let lab = Lab::new(1, PORT);
    let vip = lab.vip_port(PORT);
    lab.ok(&["-A", "-t", &vip, "-s", "rr"]);
    lab.ok(&["-a", "-t", &vip, "-r", &format!("{}:{PORT}", lab.rs_ip(0))]);
    assert_eq!(
        lab.ok(&["-L", "--timeout"]),
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    );

    let mut conn = lab.cluster.client().open_tcp(lab.vip(), PORT).unwrap();
    conn.ask("hello").unwrap();
    let rows = conn_rows(&lab);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(
        (r[0].as_str(), r[2].as_str()),
        ("TCP", "ESTABLISHED"),
        "{r:?}"
    );
    // Rounded down as the kernel shows it: never the full 15:00 once a packet has passed.
    assert!(
        (890..900).contains(&secs(&r[1])),
        "15 minutes for ESTABLISHED: {r:?}"
    );
    assert_eq!(
        r[3],
        format!("198.18.0.1:{}", conn.local_addr().unwrap().port())
    );
    assert_eq!(
        (r[4].as_str(), r[5].as_str()),
        ("198.18.0.100:80", "198.18.0.11:80")
    );
    assert_eq!(
        counts(&lab.ok(&["-L", "-n"]))[0],
        ("198.18.0.11:80".to_owned(), 1, 0)
    );

    lab.ok(&["--set", "30", "3", "20"]);
    assert_eq!(
        lab.ok(&["-L", "--timeout"]),
        "Timeout (tcp tcpfin udp): 30 3 20\n"
    );
    conn.ask("again").unwrap();
    assert!(secs(&conn_rows(&lab)[0][1]) <= 30);

    // The client closes: FIN_WAIT (inactive) with the tcpfin timeout, then gone.
    drop(conn);
    poll_until(Duration::from_secs(5), "FIN_WAIT", || {
        let rows = conn_rows(&lab);
        Ok((rows.len() == 1 && rows[0][2] == "FIN_WAIT").then_some(()))
    })
    .unwrap();
    assert!(secs(&conn_rows(&lab)[0][1]) <= 3);
    assert_eq!(
        counts(&lab.ok(&["-L", "-n"]))[0],
        ("198.18.0.11:80".to_owned(), 0, 1)
    );
    poll_until(Duration::from_secs(10), "the flow to expire", || {
        Ok(conn_rows(&lab).is_empty().then_some(()))
    })
    .unwrap();
    assert_eq!(
        counts(&lab.ok(&["-L", "-n"]))[0],
        ("198.18.0.11:80".to_owned(), 0, 0)
    );
}

#[test]
fn udp_flows_live_for_the_udp_timeout() {
    let mut lab = Lab::new(1, PORT);
    lab.udp = lab.cluster.serve_udp(53).unwrap();
    let vip = lab.vip_port(53);
    lab.ok(&["-A", "-u", &vip, "-s", "rr"]);
    lab.ok(&["-a", "-u", &vip, "-r", &format!("{}:53", lab.rs_ip(0))]);
    lab.ok(&["--set", "0", "0", "2"]);
    lab.cluster
        .client()
        .udp_request(lab.vip(), 53, b"q", 31000)
        .unwrap();
    let rows = conn_rows(&lab);
    assert_eq!(
        (rows[0][0].as_str(), rows[0][2].as_str()),
        ("UDP", "UDP"),
        "{rows:?}"
    );
    assert!(secs(&rows[0][1]) <= 2);
    poll_until(Duration::from_secs(10), "the UDP flow to expire", || {
        Ok(conn_rows(&lab).is_empty().then_some(()))
    })
    .unwrap();
}

#[test]
fn the_upper_threshold_overloads_and_the_lower_one_clears() {
    let lab = Lab::new(2, PORT);
    let vip = lab.vip_port(PORT);
    lab.ok(&["--set", "60", "2", "60"]);
    // fo sends everything to the heaviest server that is not overloaded.
    lab.ok(&["-A", "-t", &vip, "-s", "fo"]);
    lab.ok(&[
        "-a",
        "-t",
        &vip,
        "-r",
        &format!("{}:{PORT}", lab.rs_ip(0)),
        "-w",
        "5",
        "-x",
        "2",
        "-y",
        "1",
    ]);
    lab.ok(&[
        "-a",
        "-t",
        &vip,
        "-r",
        &format!("{}:{PORT}", lab.rs_ip(1)),
        "-w",
        "1",
    ]);
    let thresholds = lab.ok(&["-L", "-n", "--thresholds"]);
    assert!(
        thresholds
            .lines()
            .any(|l| l.contains("198.18.0.11:80") && l.split_whitespace().nth(2) == Some("2")),
        "{thresholds}"
    );

    let client = lab.cluster.client();
    let mut a = client.open_tcp(lab.vip(), PORT).unwrap();
    let mut b = client.open_tcp(lab.vip(), PORT).unwrap();
    assert_eq!(
        (a.ask("1").unwrap(), b.ask("2").unwrap()),
        ("rs0".into(), "rs0".into())
    );
    // Two connections reach the upper threshold: rs0 is overloaded, new flows go to rs1.
    assert_eq!(lab.ask(PORT), "rs1");
    // Closing them does not clear it until they are gone (unbound) and the total is below 1.
    drop(a);
    drop(b);
    poll_until(
        Duration::from_secs(15),
        "rs0's connections to expire",
        || {
            let c = counts(&lab.ok(&["-L", "-n"]));
            Ok(c.iter()
                .any(|r| r.0 == "198.18.0.11:80" && r.1 + r.2 == 0)
                .then_some(()))
        },
    )
    .unwrap();
    assert_eq!(
        lab.ask(PORT),
        "rs0",
        "OVERLOAD cleared below the lower threshold"
    );
}

#[test]
fn a_deleted_server_drains_its_flows_by_default() {
    let lab = Lab::new(2, PORT);
    let vip = lab.vip_port(PORT);
    lab.ok(&["-A", "-t", &vip, "-s", "rr"]);
    lab.ok(&["-a", "-t", &vip, "-r", &format!("{}:{PORT}", lab.rs_ip(0))]);
    let mut conn = lab.cluster.client().open_tcp(lab.vip(), PORT).unwrap();
    assert_eq!(conn.ask("before").unwrap(), "rs0");
    lab.ok(&["-a", "-t", &vip, "-r", &format!("{}:{PORT}", lab.rs_ip(1))]);
    lab.ok(&["-d", "-t", &vip, "-r", &format!("{}:{PORT}", lab.rs_ip(0))]);
    assert!(
        !lab.ok(&["-L", "-n"]).contains("198.18.0.11"),
        "rs0 left the table"
    );
    // Its flow goes on until it ends; new flows go elsewhere.
    assert_eq!(conn.ask("after").unwrap(), "rs0");
    assert_eq!(lab.ask(PORT), "rs1");
}

#[test]
fn expire_nodest_conn_ends_a_deleted_servers_flows() {
    let lab = Lab::with(2, PORT, 24, &["--expire-nodest-conn"]);
    let vip = lab.vip_port(PORT);
    lab.ok(&["-A", "-t", &vip, "-s", "rr"]);
    lab.ok(&["-a", "-t", &vip, "-r", &format!("{}:{PORT}", lab.rs_ip(0))]);
    let mut conn = lab.cluster.client().open_tcp(lab.vip(), PORT).unwrap();
    assert_eq!(conn.ask("before").unwrap(), "rs0");
    lab.ok(&["-a", "-t", &vip, "-r", &format!("{}:{PORT}", lab.rs_ip(1))]);
    lab.ok(&["-d", "-t", &vip, "-r", &format!("{}:{PORT}", lab.rs_ip(0))]);
    // The next packet of the flow finds its server gone: the flow ends, the packet is dropped.
    assert!(
        conn.ask("after").is_err(),
        "the flow to a deleted server should have ended"
    );
    assert_eq!(lab.ask(PORT), "rs1");
}

#[test]
fn a_syn_on_a_deleted_servers_draining_flow_is_a_new_connection() {
    let lab = Lab::new(2, PORT);
    let client = lab.cluster.client();
    // The client reconnects from the port of its closed connection (still in TIME_WAIT there).
    client.netns().sysctl(&["net.ipv4.tcp_tw_reuse=1"]).unwrap();
    let from = std::net::SocketAddr::new(client.ip().into(), 40404);
    let vip = lab.vip_port(PORT);
    lab.ok(&["-A", "-t", &vip, "-s", "rr"]);
    lab.ok(&["-a", "-t", &vip, "-r", &format!("{}:{PORT}", lab.rs_ip(0))]);
    let mut conn = client.open_tcp_from(from, lab.vip(), PORT).unwrap();
    assert_eq!(conn.ask("first").unwrap(), "rs0");
    // The client closes: the director sees its FIN, never the server's; the flow waits in
    // FIN_WAIT.
    drop(conn);
    poll_until(Duration::from_secs(5), "FIN_WAIT", || {
        let rows = conn_rows(&lab);
        Ok((rows.len() == 1 && rows[0][2] == "FIN_WAIT").then_some(()))
    })
    .unwrap();
    // The service is made again with another server (as `-C` then `-R` would).
    lab.ok(&["-D", "-t", &vip]);
    lab.ok(&["-A", "-t", &vip, "-s", "rr"]);
    lab.ok(&["-a", "-t", &vip, "-r", &format!("{}:{PORT}", lab.rs_ip(1))]);
    // A SYN on the same ports is scheduled afresh, and its connection outlives the flush of the
    // old service's flows (a sweep a second).
    std::thread::sleep(Duration::from_millis(1100));
    let mut conn = client.open_tcp_from(from, lab.vip(), PORT).unwrap();
    assert_eq!(conn.ask("second").unwrap(), "rs1");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(conn.ask("still there").unwrap(), "rs1");
}
