//! Connection sync started and stopped at run time with ipvsadm's `--start-daemon` and
//! `--stop-daemon` (issue 12), and what a backup does with sync messages it must not trust:
//! forged, replayed, unauthenticated, from a foreign address or of another syncid. Two rvs
//! directors of a [`HaCluster`] without VRRP; the datagrams of the second part are built by the
//! test and sent from the namespaces of the addresses they claim.

mod common;

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket},
    sync::Arc,
    time::Duration,
};

use common::{Lab, ha::Side, stderr, stdout};
use rvs::daemon::sync::{
    auth::Key,
    wire::{self, ConnAddrs, ConnEntry},
};
use rvs_testbed::{HaCluster, Host, TcpConn, poll_until};

const PORT: u16 = 80;
const BOUND: Duration = Duration::from_secs(20);
const SYNCID: &str = "9";

fn director(c: &Arc<HaCluster>, i: usize, args: &[&str]) -> Lab<Side> {
    let lab = Lab::on(Side { c: c.clone(), i }, PORT, args);
    let vip = c.vips()[0];
    lab.ok(&["-A", "-t", &format!("{vip}:{PORT}"), "-s", "rr"]);
    for rs in c.real_servers() {
        lab.ok(&[
            "-a",
            "-t",
            &format!("{vip}:{PORT}"),
            "-r",
            &format!("{}:{PORT}", rs.ip()),
            "-g",
        ]);
    }
    lab
}

/// Exit code, stdout and stderr of an rvsadm line.
fn run(lab: &Lab<Side>, args: &[&str]) -> (i32, String, String) {
    let o = lab.rvsadm(args);
    (o.status.code().unwrap_or(-1), stdout(&o), stderr(&o))
}

/// `--start-daemon ROLE --mcast-interface eth0 --syncid SYNCID`.
fn start_daemon(lab: &Lab<Side>, role: &str, syncid: &str) -> (i32, String, String) {
    run(
        lab,
        &[
            "--start-daemon",
            role,
            "--mcast-interface",
            "eth0",
            "--syncid",
            syncid,
        ],
    )
}

/// The connection entries of `lab` whose client is `client`.
fn conns_from(lab: &Lab<Side>, client: &str) -> usize {
    lab.ok(&["-L", "-c", "-n"])
        .lines()
        .filter(|l| l.contains(&format!(" {client}:")))
        .count()
}

fn wait_conns(lab: &Lab<Side>, client: &str, n: usize) {
    poll_until(BOUND, &format!("{n} connections from {client}"), || {
        Ok((conns_from(lab, client) >= n).then_some(()))
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}\n{}\n{}",
            lab.ok(&["-L", "-c", "-n"]),
            lab.ok(&["--sync"])
        )
    });
}

/// `n` connections through the VIP, each past the sync threshold.
fn open(c: &HaCluster, n: usize) -> Vec<TcpConn> {
    let vip = IpAddr::V4(c.vips()[0]);
    (0..n)
        .map(|i| {
            let mut conn = c.client().open_tcp(vip, PORT).expect("a connection");
            for k in 0..3 {
                conn.ask(&format!("warm {i} {k}")).expect("an answer");
            }
            conn
        })
        .collect()
}

fn client_ip(c: &HaCluster) -> String {
    c.client().ip().to_string()
}

#[test]
fn ipvsadm_starts_and_stops_the_sync_daemons_at_run_time() {
    let c = Arc::new(HaCluster::build(2, 1, false).expect("building the cluster"));
    let _tcp = c.serve_tcp(PORT).expect("starting TCP servers");
    let a = director(&c, 0, &[]);
    let b = director(&c, 1, &["--sync-bulk-timeout", "5"]);
    // No VRRP here: director 0 holds the VIP.
    c.directors()[0]
        .netns()
        .ip(&["addr", "add", &format!("{}/32", c.vips()[0]), "dev", "eth0"])
        .unwrap();

    let start = start_daemon;
    assert_eq!(
        start(&a, "master", SYNCID),
        (0, String::new(), String::new())
    );
    let daemons = a.ok(&["-L", "--daemon"]);
    assert_eq!(
        daemons,
        "master sync daemon (mcast=eth0, syncid=9, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
    );
    // ipvsadm's refusals, in its words.
    assert_eq!(
        start(&a, "master", SYNCID),
        (255, String::new(), "Daemon has already run\n".into())
    );
    assert_eq!(
        run(&a, &["--stop-daemon", "backup"]),
        (255, String::new(), "No daemon is running\n".into())
    );
    assert_eq!(
        run(
            &b,
            &["--start-daemon", "backup", "--mcast-interface", "nosuch0"]
        ),
        (255, String::new(), "No such device\n".into())
    );
    assert_eq!(b.ok(&["--sync"]), "no sync daemon\n");

    // Connections opened before the backup starts come by its bulk sync.
    let client = client_ip(&c);
    let mut early = open(&c, 5);
    assert_eq!(start(&b, "backup", SYNCID).0, 0);
    assert_eq!(
        b.ok(&["-L", "--daemon"]),
        "backup sync daemon (mcast=eth0, syncid=9, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
    );
    wait_conns(&b, &client, 5);
    poll_until(BOUND, "the bulk sync to be done", || {
        Ok(b.ok(&["--sync"])
            .contains("bulk done from 198.18.0.2")
            .then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", b.ok(&["--sync"])));
    // Those opened after come as they pass the threshold.
    let mut late = open(&c, 5);
    wait_conns(&b, &client, 10);
    for conn in early.iter_mut().chain(late.iter_mut()) {
        conn.ask("still there")
            .expect("an answer through the master");
    }

    // Stopped, the backup lists no daemon; started with another syncid it drops the master's
    // messages and counts them.
    assert_eq!(run(&b, &["--stop-daemon", "backup"]).0, 0);
    assert_eq!(b.ok(&["-L", "--daemon"]), "");
    assert_eq!(b.ok(&["--sync"]), "no sync daemon\n");
    assert_eq!(start(&b, "backup", "8").0, 0);
    let _more = open(&c, 2);
    poll_until(BOUND, "the master's messages to be dropped", || {
        Ok(b.ok(&["--sync"])
            .contains("dropped other_syncid")
            .then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", b.ok(&["--sync"])));
    // The master's reports stop with its daemon.
    assert_eq!(run(&a, &["--stop-daemon", "master"]).0, 0);
    assert_eq!(a.ok(&["-L", "--daemon"]), "");
}

/// A DR connection entry of a client `198.19.0.77:cport` to the VIP, on real server 0.
fn entry(c: &HaCluster, cport: u16) -> ConnEntry {
    ConnEntry {
        protocol: 6,
        flags: wire::flags::DROUTE,
        state: wire::tcp::ESTABLISHED,
        cport,
        vport: PORT,
        dport: PORT,
        fwmark: 0,
        timeout: 900,
        addrs: ConnAddrs::V4 {
            caddr: FORGED_CLIENT,
            vaddr: c.vips()[0],
            daddr: c.real_servers()[0].ip(),
        },
        seq: None,
        pe: None,
    }
}

const FORGED_CLIENT: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 77);

fn message(syncid: u8, e: &ConnEntry) -> Vec<u8> {
    wire::pack(syncid, 1472, std::slice::from_ref(e))
        .pop()
        .unwrap()
}

/// A socket in `host`'s namespace, from its address.
fn socket_on(host: &Host) -> (UdpSocket, IpAddr) {
    let ip = IpAddr::V4(host.ip());
    let s = host
        .netns()
        .enter(|| UdpSocket::bind(SocketAddr::new(ip, 0)))
        .unwrap()
        .unwrap();
    (s, ip)
}

fn dropped(lab: &Lab<Side>, reason: &str) -> u64 {
    lab.ok(&["--sync"])
        .lines()
        .find_map(|l| l.strip_prefix(&format!("dropped {reason} ")))
        .map_or(0, |n| n.parse().unwrap())
}

fn wait_dropped(lab: &Lab<Side>, reason: &str, n: u64) {
    poll_until(BOUND, &format!("{n} dropped as {reason}"), || {
        Ok((dropped(lab, reason) >= n).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", lab.ok(&["--sync"])));
}

/// The client ports of the forged client that `lab` holds.
fn forged_ports(lab: &Lab<Side>) -> Vec<u16> {
    let prefix = format!(" {FORGED_CLIENT}:");
    let mut ports: Vec<u16> = lab
        .ok(&["-L", "-c", "-n"])
        .lines()
        .filter_map(|l| {
            let at = l.find(&prefix)? + prefix.len();
            l[at..].split_whitespace().next()?.parse().ok()
        })
        .collect();
    ports.sort();
    ports
}

#[test]
fn forged_replayed_and_foreign_messages_change_nothing_and_are_counted() {
    let c = Arc::new(HaCluster::build(2, 1, false).expect("building the cluster"));
    let dir = tempfile_dir();
    let key_file = dir.join("sync.key");
    let secret = b"the pair's shared sync secret";
    std::fs::write(&key_file, secret).unwrap();
    let b = director(
        &c,
        1,
        &[
            "--sync-key",
            key_file.to_str().unwrap(),
            "--sync-bulk-timeout",
            "0",
        ],
    );
    assert_eq!(start_daemon(&b, "backup", SYNCID).0, 0);
    assert!(b.ok(&["--sync"]).contains("authenticated yes"));
    let to = SocketAddr::new(IpAddr::V4(c.directors()[1].ip()), 8848);
    let (from_a, a) = socket_on(&c.directors()[0]);
    let (from_rs, _) = socket_on(&c.real_servers()[0]);
    let key = Key::new(secret).unwrap();
    let wrong = Key::new(b"not the pair's secret at all").unwrap();
    let seq = 1_000_000u64;
    let send = |s: &UdpSocket, d: &[u8]| {
        s.send_to(d, to).unwrap();
    };

    // The control: sealed with the key, from the address it names, it goes in.
    let genuine = key.seal(a, &message(9, &entry(&c, 4001)), seq);
    send(&from_a, &genuine);
    poll_until(BOUND, "the genuine entry", || {
        Ok((forged_ports(&b) == [4001]).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", b.ok(&["--sync"])));
    // The same datagram again: a replay.
    send(&from_a, &genuine);
    // Another key.
    send(
        &from_a,
        &wrong.seal(a, &message(9, &entry(&c, 4002)), seq + 1),
    );
    // No trailer at all.
    send(&from_a, &message(9, &entry(&c, 4003)));
    // Sealed for A's address, sent from a real server's.
    send(
        &from_rs,
        &key.seal(a, &message(9, &entry(&c, 4004)), seq + 2),
    );
    // A byte changed after sealing (the client port, 4005 to 4006).
    let mut tampered = key.seal(a, &message(9, &entry(&c, 4005)), seq + 3);
    let at = tampered
        .windows(2)
        .position(|w| w == 4005u16.to_be_bytes())
        .unwrap();
    tampered[at + 1] ^= 0x03;
    send(&from_a, &tampered);

    wait_dropped(&b, "replayed", 1);
    wait_dropped(&b, "bad_mac", 3);
    wait_dropped(&b, "unauthenticated", 1);
    assert_eq!(forged_ports(&b), [4001], "{}", b.ok(&["-L", "-c", "-n"]));
    // A genuine one after all that still goes in: the backup is unharmed.
    send(
        &from_a,
        &key.seal(a, &message(9, &entry(&c, 4007)), seq + 4),
    );
    poll_until(BOUND, "the second genuine entry", || {
        Ok((forged_ports(&b) == [4001, 4007]).then_some(()))
    })
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_a_key_only_the_configured_peer_and_syncid_are_heard() {
    let c = Arc::new(HaCluster::build(2, 1, false).expect("building the cluster"));
    let a_ip = c.directors()[0].ip().to_string();
    let b = director(&c, 1, &["--sync-peer", &a_ip, "--sync-bulk-timeout", "0"]);
    assert_eq!(start_daemon(&b, "backup", SYNCID).0, 0);
    let to = SocketAddr::new(IpAddr::V4(c.directors()[1].ip()), 8848);
    let (from_a, _) = socket_on(&c.directors()[0]);
    let (from_rs, _) = socket_on(&c.real_servers()[0]);
    from_a.send_to(&message(9, &entry(&c, 5001)), to).unwrap();
    poll_until(BOUND, "the peer's entry", || {
        Ok((forged_ports(&b) == [5001]).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", b.ok(&["--sync"])));
    from_rs.send_to(&message(9, &entry(&c, 5002)), to).unwrap();
    from_a.send_to(&message(7, &entry(&c, 5003)), to).unwrap();
    let mut short = message(9, &entry(&c, 5004));
    short.truncate(20);
    from_a.send_to(&short, to).unwrap();
    wait_dropped(&b, "not_a_peer", 1);
    wait_dropped(&b, "other_syncid", 1);
    poll_until(BOUND, "the truncated message to be dropped", || {
        Ok((dropped(&b, "bad_size") + dropped(&b, "truncated") >= 1).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", b.ok(&["--sync"])));
    assert_eq!(forged_ports(&b), [5001]);
}

/// A directory of this test's own.
fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "rvs-sync-daemon-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Connections the master has sent so far.
fn sent_conns(lab: &Lab<Side>) -> u64 {
    lab.ok(&["--sync"])
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix("sent ")?;
            let words: Vec<&str> = rest.split_whitespace().collect();
            words.get(2)?.parse().ok()
        })
        .unwrap_or(0)
}

/// What the master sends of one connection asked `asks` times, `gap` apart, with rvsd started
/// with `args`. The connection stays open in `kept`: closed, its FIN would be reported in the
/// next round.
fn sent_for_one_busy_connection(
    c: &HaCluster,
    lab: &mut Lab<Side>,
    args: &[&str],
    (asks, gap): (usize, Duration),
    kept: &mut Vec<TcpConn>,
) -> u64 {
    if lab.rvsd.is_some() {
        lab.stop_rvsd();
    }
    lab.rvsd_args = args.iter().map(|a| a.to_string()).collect();
    lab.start_rvsd();
    let started = start_daemon(lab, "master", SYNCID);
    assert_eq!(started.0, 0, "{started:?}");
    let vip = IpAddr::V4(c.vips()[0]);
    let mut conn = c.client().open_tcp(vip, PORT).expect("a connection");
    for i in 0..asks {
        conn.ask(&format!("busy {i}")).expect("an answer");
        std::thread::sleep(gap);
    }
    // Past the flush of the last datagram.
    std::thread::sleep(Duration::from_millis(300));
    kept.push(conn);
    sent_conns(lab)
}

#[test]
fn the_refresh_period_holds_back_resends_of_a_busy_connection() {
    let c = Arc::new(HaCluster::build(2, 1, false).expect("building the cluster"));
    let _tcp = c.serve_tcp(PORT).expect("starting TCP servers");
    let mut a = director(&c, 0, &[]);
    c.directors()[0]
        .netns()
        .ip(&["addr", "add", &format!("{}/32", c.vips()[0]), "dev", "eth0"])
        .unwrap();
    let kept = &mut Vec::new();
    let busy = (120, Duration::ZERO);
    let spread = (12, Duration::from_millis(300));
    // IPVS's default (threshold 3, period 50): at packets 3, 53, 103, ... of the ~2 per ask.
    let by_packets = sent_for_one_busy_connection(&c, &mut a, &[], busy, kept);
    assert!(by_packets >= 3, "sent {by_packets}");
    // A refresh period of 60 s: once.
    let args = ["--sync-refresh-period", "60"];
    assert_eq!(
        sent_for_one_busy_connection(&c, &mut a, &args, busy, kept),
        1
    );
    // Period 0: once at the threshold; with a refresh period of 1 s, again each second the
    // connection is busy (the data plane then reports every packet and rvsd keeps the time).
    let args = ["--sync-period", "0"];
    assert_eq!(
        sent_for_one_busy_connection(&c, &mut a, &args, spread, kept),
        1
    );
    let args = ["--sync-period", "0", "--sync-refresh-period", "1"];
    let by_time = sent_for_one_busy_connection(&c, &mut a, &args, spread, kept);
    assert!(by_time >= 2, "sent {by_time}");
}

#[test]
fn a_full_connection_table_takes_what_fits_and_counts_the_rest() {
    let c = Arc::new(HaCluster::build(2, 1, false).expect("building the cluster"));
    let b = director(
        &c,
        1,
        &["--conn-table-size", "4", "--sync-bulk-timeout", "0"],
    );
    assert_eq!(start_daemon(&b, "backup", SYNCID).0, 0);
    let entries: Vec<ConnEntry> = (6001..6011).map(|p| entry(&c, p)).collect();
    let datagram = wire::pack(9, 1472, &entries).pop().unwrap();
    let (from_a, _) = socket_on(&c.directors()[0]);
    let to = SocketAddr::new(IpAddr::V4(c.directors()[1].ip()), 8848);
    from_a.send_to(&datagram, to).unwrap();
    wait_dropped(&b, "table_full", 6);
    assert_eq!(forged_ports(&b).len(), 4, "{}", b.ok(&["-L", "-c", "-n"]));
    assert!(
        b.ok(&["--sync"])
            .contains("received 1 messages 4 connections")
    );
}
