//! rvsd's BGP speaker under hostile input, over real TCP in namespaces: the test is a peer that
//! connects to rvsd's listener (a passive neighbor) and sends bytes no BGP speaker should. Each
//! must be answered with the NOTIFICATION RFC 4271 names, the session reset and counted, and
//! rvsd must go on serving; a connection from an address that is not a neighbor is refused
//! and counted.

mod common;

use std::{
    io::{Read, Write},
    net::{IpAddr, SocketAddr, TcpStream},
    time::Duration,
};

use common::keepalived::{ConfDir, KaLab};
use rvs_testbed::{DrCluster, Host};

const PORT: u16 = 80;
const PEER_AS: u32 = 65001;

fn conf(cluster: &DrCluster, peer: IpAddr) -> String {
    format!(
        "virtual_server {vip} {PORT} {{\n    lb_algo rr\n    lb_kind DR\n    protocol TCP\n    \
         real_server {rs} {PORT} {{\n        weight 1\n    }}\n}}\n\
         rvs_bgp {{\n    local_as 65005\n    router_id {dir}\n    hold_time 30\n    \
         neighbor {peer} {{\n        remote_as {PEER_AS}\n        passive\n    }}\n    \
         prefix {vip}/32\n}}\n",
        vip = cluster.vip(),
        rs = cluster.real_servers()[0].ip(),
        dir = cluster.director().ip(),
    )
}

fn header(len: usize, kind: u8) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend((len as u16).to_be_bytes());
    m.push(kind);
    m
}

/// An OPEN: version 4, `asn` as 2 octets, hold time 30, no optional parameters.
fn open(asn: u16, id: [u8; 4]) -> Vec<u8> {
    let mut m = header(29, 1);
    m.push(4);
    m.extend(asn.to_be_bytes());
    m.extend(30u16.to_be_bytes());
    m.extend(id);
    m.push(0);
    m
}

fn keepalive() -> Vec<u8> {
    header(19, 4)
}

/// Reads whole messages for at most 10 s, until one that `pick` takes (None at the end of
/// the stream or of the time).
fn first_message(s: &mut TcpStream, pick: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        while buf.len() >= 19 {
            let len = usize::from(u16::from_be_bytes([buf[16], buf[17]])).max(19);
            if buf.len() < len {
                break;
            }
            let msg: Vec<u8> = buf.drain(..len).collect();
            if pick(&msg) {
                return Some(msg);
            }
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend(&chunk[..n]),
        }
    }
    None
}

/// The first NOTIFICATION's code and subcode.
fn notification(s: &mut TcpStream) -> Option<(u8, u8)> {
    first_message(s, |m| m[18] == 3 && m.len() >= 21).map(|m| (m[19], m[20]))
}

/// Connects from `host` to rvsd's BGP port, sends `first` and then `then`, and returns the
/// NOTIFICATION rvsd answered with, and whether it then closed the connection.
fn exchange(host: &Host, director: SocketAddr, msgs: Vec<Vec<u8>>) -> (Option<(u8, u8)>, bool) {
    host.netns()
        .enter(move || {
            let mut s = TcpStream::connect_timeout(&director, Duration::from_secs(5)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            for m in msgs {
                if s.write_all(&m).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let n = notification(&mut s);
            let mut rest = [0u8; 64];
            let closed = matches!(s.read(&mut rest), Ok(0) | Err(_));
            (n, closed)
        })
        .unwrap()
}

fn bgp_status(lab: &KaLab) -> String {
    lab.lab.ok(&["--bgp"])
}

fn counter(status: &str, name: &str) -> u64 {
    status
        .split([',', '\n'])
        .find_map(|part| part.trim().strip_prefix(&format!("{name} ")))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{status}"))
}

/// What is sent, the messages, and the NOTIFICATION's code and subcode expected.
type Case = (&'static str, Vec<Vec<u8>>, (u8, u8));

#[test]
fn malformed_messages_get_their_notification_and_reset_the_session() {
    let cluster = DrCluster::builder().real_servers(1).build().unwrap();
    let client = cluster.client().ip();
    let text = conf(&cluster, IpAddr::V4(client));
    let lab = KaLab::on(cluster, PORT, ConfDir::new(), &text);
    let director = SocketAddr::new(lab.lab.cluster.director().ip().into(), 179);
    let peer = lab.lab.cluster.client();
    let id = [198, 18, 99, 1];
    let cases: Vec<Case> = vec![
        (
            "a marker that is not all ones",
            vec![{
                let mut m = open(PEER_AS as u16, id);
                m[3] = 0;
                m
            }],
            (1, 1),
        ),
        (
            "a length under 19",
            vec![{
                let mut m = keepalive();
                m[17] = 18;
                m
            }],
            (1, 2),
        ),
        (
            "an unknown message type",
            vec![{
                let mut m = keepalive();
                m[18] = 42;
                m
            }],
            (1, 3),
        ),
        ("an OPEN from the wrong AS", vec![open(65099, id)], (2, 2)),
        (
            "an OPEN with version 3",
            vec![{
                let mut m = open(PEER_AS as u16, id);
                m[19] = 3;
                m
            }],
            (2, 1),
        ),
        (
            "an OPEN with hold time 1",
            vec![{
                let mut m = open(PEER_AS as u16, id);
                m[22..24].copy_from_slice(&1u16.to_be_bytes());
                m
            }],
            (2, 6),
        ),
        ("a KEEPALIVE before any OPEN", vec![keepalive()], (5, 1)),
        (
            "a KEEPALIVE with a body",
            vec![open(PEER_AS as u16, id), {
                let mut m = header(20, 4);
                m.push(0);
                m
            }],
            (1, 2),
        ),
        (
            "an UPDATE whose withdrawn length overruns it",
            vec![open(PEER_AS as u16, id), keepalive(), {
                let mut m = header(23, 2);
                m.extend([0x10, 0x00, 0x00, 0x00]);
                m
            }],
            (3, 1),
        ),
    ];
    let mut expected_malformed = 0;
    for (what, msgs, code) in cases {
        let (got, closed) = exchange(peer, director, msgs);
        assert_eq!(
            got,
            Some(code),
            "{what}: rvsd answered {got:?}\n{}",
            lab.lab.rvsd_log()
        );
        assert!(closed, "{what}: rvsd kept the connection open");
        // All but a well-formed OPEN from the wrong AS and a message out of order are refused
        // by the decoder (netgauze checks the version and hold time as it reads the OPEN).
        if what != "an OPEN from the wrong AS" && code.0 != 5 {
            expected_malformed += 1;
        }
        // rvsd goes on: rvsadm is served and the table is intact.
        assert!(lab.lab.ok(&["-L", "-n"]).contains(&lab.lab.vip_port(PORT)));
    }
    // A NOTIFICATION too short to read is not answered with one (RFC 4271 §6.4): rvsd closes.
    let mut short = header(20, 3);
    short.push(6);
    let (got, closed) = exchange(peer, director, vec![open(PEER_AS as u16, id), short]);
    assert_eq!(
        got, None,
        "a malformed NOTIFICATION was answered with {got:?}"
    );
    assert!(closed);
    expected_malformed += 1;

    let status = bgp_status(&lab);
    assert_eq!(
        counter(&status, "malformed"),
        expected_malformed,
        "{status}"
    );
    let sent = status
        .split("notifications in ")
        .nth(1)
        .and_then(|r| {
            r.split(" out ")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or_else(|| panic!("no notifications in\n{status}"));
    assert_eq!(sent, 9, "{status}");

    // A well-behaved peer still gets its session and the route, after all that.
    let got = peer
        .netns()
        .enter(move || {
            let mut s = TcpStream::connect_timeout(&director, Duration::from_secs(5)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(&open(PEER_AS as u16, id)).unwrap();
            s.write_all(&keepalive()).unwrap();
            // OPEN, KEEPALIVE, then an UPDATE carrying the VIP.
            first_message(&mut s, |m| m[18] == 2 && m.len() > 23).is_some()
        })
        .unwrap();
    assert!(got, "no UPDATE for a good peer\n{}", lab.lab.rvsd_log());
}

#[test]
fn a_connection_from_an_address_that_is_no_neighbor_is_refused() {
    let cluster = DrCluster::builder().real_servers(1).build().unwrap();
    // The neighbor is some other address of the LAN: the client is not it.
    let neighbor: IpAddr = "198.18.0.250".parse().unwrap();
    let text = conf(&cluster, neighbor);
    let lab = KaLab::on(cluster, PORT, ConfDir::new(), &text);
    let director = SocketAddr::new(lab.lab.cluster.director().ip().into(), 179);
    let (got, closed) = exchange(
        lab.lab.cluster.client(),
        director,
        vec![open(PEER_AS as u16, [198, 18, 99, 1])],
    );
    assert_eq!(
        got, None,
        "an unknown peer got a NOTIFICATION, not a refusal"
    );
    assert!(closed);
    lab.wait("the refusal to be counted", Duration::from_secs(5), || {
        bgp_status(&lab).contains("Refused connections: 1")
    });
}
