//! Tunnelled traffic into a director (`rvsd --accept-tunnelled`): director A forwards a service's
//! connections by TUN to director B, whose XDP program strips the outer header and handles the
//! inner packet as if it had arrived directly, here forwarding it to its own real servers by
//! direct routing. The client's address reaches the real server, the replies go from the real
//! server to the client, and two directors tunnelling to each other end the bounce by TTL.
//!
//! The topology is [`HaCluster`]'s (two directors and the real servers on one LAN, the client
//! behind a router), without VRRP: director A (`director0`) holds the VIPs on `eth0`. Odd
//! tunnelled packets are written by hand onto a one-director cluster's wire.

mod common;

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use common::{
    Lab, bracket,
    frames::{V4, send_frames, tcp},
    ha::Side,
    service_stats,
};
use rvs_testbed::{HaCluster, Host, TcpServer, poll_until};

const PORT: u16 = 80;
const GUE_PORT: &str = "6080";
/// The size of the transfers that check the path in both directions.
const TRANSFER: u64 = 5_000_000;

/// Two directors on one cluster. Fields drop in order: the rvsds first, then the servers.
struct Pair {
    a: Lab<Side>,
    b: Lab<Side>,
    _tcp: Vec<TcpServer>,
    c: Arc<HaCluster>,
}

impl Pair {
    /// rvsd on both directors, B with `b_args`; A holds the VIPs.
    fn new(a_args: &[&str], b_args: &[&str]) -> Pair {
        let c = Arc::new(HaCluster::build(2, 1, true).expect("building the cluster"));
        let tcp = c.serve_tcp(PORT).expect("starting TCP servers");
        let a = Lab::on(Side { c: c.clone(), i: 0 }, PORT, a_args);
        let b = Lab::on(Side { c: c.clone(), i: 1 }, PORT, b_args);
        let ns = c.directors()[0].netns();
        ns.ip(&["addr", "add", &format!("{}/32", c.vips()[0]), "dev", "eth0"])
            .unwrap();
        let vip6 = format!("{}/128", c.vip6(0).unwrap());
        ns.ip(&["-6", "addr", "add", &vip6, "dev", "eth0", "nodad"])
            .unwrap();
        Pair { a, b, _tcp: tcp, c }
    }

    fn vip(&self, v6: bool) -> IpAddr {
        match v6 {
            false => self.c.vips()[0].into(),
            true => self.c.vip6(0).unwrap().into(),
        }
    }

    fn director(&self, i: usize) -> &Host {
        &self.c.directors()[i]
    }
}

fn address(h: &Host, v6: bool) -> IpAddr {
    match v6 {
        false => h.ip().into(),
        true => h.ip6().unwrap().into(),
    }
}

/// `-A -t VIP:80 -s rr` on `lab` with one TUN destination `to` (`tun`: extra options).
fn tunnel_to(lab: &Lab<Side>, vip: IpAddr, to: IpAddr, tun: &[&str]) -> String {
    let svc = format!("{}:{PORT}", bracket(vip));
    lab.ok(&["-A", "-t", &svc, "-s", "rr"]);
    let dest = format!("{}:{PORT}", bracket(to));
    let mut args = vec!["-a", "-t", &svc, "-r", &dest, "-i"];
    args.extend(tun);
    lab.ok(&args);
    svc
}

/// `-A -t VIP:80` on `lab` to every real server by direct routing.
fn direct_to_real_servers(lab: &Lab<Side>, c: &HaCluster, vip: IpAddr) -> String {
    let svc = format!("{}:{PORT}", bracket(vip));
    lab.ok(&["-A", "-t", &svc, "-s", "rr"]);
    for rs in c.real_servers() {
        let dest = format!("{}:{PORT}", bracket(address(rs, vip.is_ipv6())));
        lab.ok(&["-a", "-t", &svc, "-r", &dest, "-g"]);
    }
    svc
}

/// Bytes the LAN's bridge has delivered to director `i`, whatever its XDP program did with them.
fn delivered_to(p: &Pair, i: usize) -> u64 {
    let port = p.director(i).bridge_port().to_owned();
    p.c.lan()
        .exec(&["cat", &format!("/sys/class/net/{port}/statistics/tx_bytes")])
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Whether a real server holds an established TCP connection from `client`, as its own socket
/// sees it.
fn real_server_sees(c: &HaCluster, client: SocketAddr) -> bool {
    let port = format!(":{}", client.port());
    let ip = client.ip().to_string();
    c.real_servers().iter().any(|rs| {
        let out = rs.exec(&["ss", "-Htn", "state", "established"]).unwrap();
        out.lines().any(|l| {
            l.split_whitespace()
                .any(|f| f.contains(&ip) && f.ends_with(&port))
        })
    })
}

#[test]
fn a_director_serves_connections_tunnelled_from_another() {
    let p = Pair::new(&[], &["--accept-tunnelled", "--accept-gue-port", GUE_PORT]);
    let gue = ["--tun-type", "gue", "--tun-port", GUE_PORT];
    let b_svcs = [false, true].map(|v6| direct_to_real_servers(&p.b, &p.c, p.vip(v6)));
    let cases: [(&str, bool, bool, &[&str], bool); 5] = [
        // (what, VIP is IPv6, tunnel to B's IPv6 address, options, bulk transfers)
        ("ipip 4in4", false, false, &[], true),
        ("ipip 6in6", true, true, &[], true),
        ("gue 4in4", false, false, &gue, false),
        ("gue 6in6", true, true, &gue, false),
        ("ipip 4in6", false, true, &[], false),
    ];
    for (what, v6, outer6, tun, bulk) in cases {
        let vip = p.vip(v6);
        let svc = tunnel_to(&p.a, vip, address(p.director(1), outer6), tun);
        let before = p.b.counter("tunnel_decap");
        let b_svc = &b_svcs[v6 as usize];
        let b_conns = service_stats(&p.b.ok(&["-L", "-n", "--stats", "--exact"]), "TCP", b_svc)[0];

        let client = p.c.client();
        let mut conn = client.open_tcp(vip, PORT).unwrap_or_else(|e| {
            panic!(
                "{what}: {e:#}\nA: {:?}\nB: {:?}",
                p.a.dataplane(),
                p.b.dataplane()
            )
        });
        for i in 0..3 {
            conn.ask(&format!("{what} {i}"))
                .unwrap_or_else(|e| panic!("{what}: {e:#}"));
        }
        // The real server sees the client's own address and port.
        let local = conn.local_addr().unwrap();
        let from = SocketAddr::new(address(client, v6), local.port());
        assert!(
            real_server_sees(&p.c, from),
            "{what}: no connection from {from}"
        );
        drop(conn);

        // B decapsulated every packet of it and counted the connection; A forwarded them.
        let decapsulated = p.b.counter("tunnel_decap") - before;
        assert!(decapsulated >= 4, "{what}: {:?}", p.b.dataplane());
        let stats = p.b.ok(&["-L", "-n", "--stats", "--exact"]);
        assert!(
            service_stats(&stats, "TCP", b_svc)[0] > b_conns,
            "{what}: {stats}"
        );
        assert_eq!(p.a.counter("tunnel_decap"), 0, "{what}");

        if bulk {
            // Downloads come back from the real server to the client through the router: neither
            // director is handed more than the client's acknowledgements.
            let delivered = [0, 1].map(|i| delivered_to(&p, i));
            client
                .bulk_download(vip, PORT, TRANSFER)
                .unwrap_or_else(|e| panic!("{what} download: {e:#}"));
            for (i, before) in delivered.iter().enumerate() {
                let got = delivered_to(&p, i) - before;
                assert!(
                    got < TRANSFER / 4,
                    "{what}: director{i} was handed {got} bytes"
                );
            }
            // Uploads cross both directors, full-size segments shrunk for the tunnel's header.
            client
                .bulk_upload(vip, PORT, TRANSFER)
                .unwrap_or_else(|e| panic!("{what} upload: {e:#}\nA: {:?}", p.a.dataplane()));
        }
        p.a.ok(&["-D", "-t", &svc]);
    }
    for (lab, name) in [(&p.a, "A"), (&p.b, "B")] {
        let d = lab.dataplane();
        assert_eq!(d["drop_tunnel_ttl"], 0, "{name}: {d:?}");
        assert_eq!(d["drop_malformed"], 0, "{name}: {d:?}");
    }
}

#[test]
fn tunnelled_packets_for_no_service_are_left_alone() {
    let p = Pair::new(&[], &["--accept-tunnelled"]);
    // B has a service on port 81 only: A's tunnelled port-80 packets are none of its business,
    // and its kernel (without an ipip device) cannot read them.
    let vip = p.vip(false);
    tunnel_to(&p.a, vip, p.director(1).ip().into(), &[]);
    p.b.ok(&["-A", "-t", &format!("{vip}:81"), "-s", "rr"]);
    assert!(p.c.client().tcp_request(vip, PORT).is_err());
    assert!(p.a.counter("forwarded") > 0);
    assert_eq!(p.b.counter("tunnel_decap"), 0, "{:?}", p.b.dataplane());
    assert_eq!(p.b.counter("forwarded"), 0);
}

#[test]
fn without_accept_tunnelled_nothing_is_decapsulated() {
    let p = Pair::new(&[], &[]);
    for v6 in [false, true] {
        let vip = p.vip(v6);
        tunnel_to(&p.a, vip, address(p.director(1), v6), &[]);
        let b_svc = direct_to_real_servers(&p.b, &p.c, vip);
        assert!(p.c.client().tcp_request(vip, PORT).is_err(), "v6 {v6}");
        let stats = p.b.ok(&["-L", "-n", "--stats", "--exact"]);
        assert_eq!(service_stats(&stats, "TCP", &b_svc), [0; 5], "{stats}");
    }
    assert!(p.a.counter("forwarded") > 0);
    assert_eq!(p.b.counter("tunnel_decap"), 0, "{:?}", p.b.dataplane());
    assert_eq!(p.b.counter("forwarded"), 0);
}

#[test]
fn directors_tunnelling_to_each_other_end_the_bounce_by_ttl() {
    let both = ["--accept-tunnelled"];
    let p = Pair::new(&both, &both);
    // TTL 63 from the client, 62 past the router: A's forwarding makes it 61, and each bounce
    // takes two (B's decapsulation, then its forwarding), so it runs out at a decapsulation.
    p.c.client()
        .netns()
        .sysctl(&[
            "net.ipv4.ip_default_ttl=63",
            "net.ipv6.conf.all.hop_limit=63",
            "net.ipv6.conf.eth0.hop_limit=63",
        ])
        .unwrap();
    let sum = |name: &str| p.a.counter(name) + p.b.counter(name);
    for v6 in [false, true] {
        let vip = p.vip(v6);
        let a_svc = tunnel_to(&p.a, vip, address(p.director(1), v6), &[]);
        let b_svc = tunnel_to(&p.b, vip, address(p.director(0), v6), &[]);
        let (decap0, ttl0) = (sum("tunnel_decap"), sum("drop_tunnel_ttl"));
        // The connect fails within its own timeout (2 s: a SYN and a retransmission or two).
        assert!(p.c.client().tcp_request(vip, PORT).is_err(), "v6 {v6}");
        // And the bounce is over: the counters stop moving.
        let mut last = sum("tunnel_decap");
        poll_until(Duration::from_secs(10), "the bounce to end", || {
            std::thread::sleep(Duration::from_millis(500));
            let now = sum("tunnel_decap");
            let still = now == last;
            last = now;
            Ok(still.then_some(()))
        })
        .unwrap();
        let decapsulated = last - decap0;
        let expired = sum("drop_tunnel_ttl") - ttl0;
        // Each SYN (one and its retransmissions) is decapsulated at TTL 61, 59, ..., 3 and
        // dropped at 1: 30 times, then counted once.
        assert!(
            expired > 0,
            "v6 {v6}: A {:?} B {:?}",
            p.a.dataplane(),
            p.b.dataplane()
        );
        assert_eq!(
            decapsulated,
            30 * expired,
            "v6 {v6}: {decapsulated} decapsulations for {expired} expired SYNs"
        );
        assert_eq!(sum("drop_ttl"), 0);
        p.a.ok(&["-D", "-t", &a_svc]);
        p.b.ok(&["-D", "-t", &b_svc]);
    }
}

#[test]
fn odd_tunnelled_packets_are_passed_dropped_or_counted() {
    let lab = Lab::with(1, PORT, 24, &["--accept-tunnelled"]);
    let vip = lab.cluster.vip();
    let svc = lab.vip_port(PORT);
    lab.ok(&["-A", "-t", &svc, "-s", "rr"]);
    lab.ok(&[
        "-a",
        "-t",
        &svc,
        "-r",
        &format!("{}:{PORT}", lab.rs_ip(0)),
        "-g",
    ]);
    // Learn each other's MACs the normal way first.
    assert_eq!(lab.ask(PORT), "rs0");

    let client = lab.cluster.client();
    let director = lab.cluster.director();
    let (dmac, smac) = (director.mac().octets(), client.mac().octets());
    let src = client.ip();
    let syn = |sport: u16, ttl: u8| V4 {
        ttl,
        ..V4::new(6, src, vip, tcp(sport, PORT, 5))
    };
    // IPIP from the client's address to the director's.
    let ipip = |inner: Vec<u8>| V4::new(4, src, director.ip(), inner);
    let before = lab.dataplane();

    let valid = ipip(syn(50001, 64).packet());
    let ttl_1 = ipip(syn(50002, 1).packet());
    // Decapsulated (to TTL 1), then dropped by forwarding, as a packet arriving with TTL 1 is.
    let ttl_2 = ipip(syn(50003, 2).packet());
    let truncated_inner = ipip(syn(50004, 64).packet()[..16].to_vec());
    let mut outer_beyond_frame = ipip(syn(50005, 64).packet());
    outer_beyond_frame.tot_len = Some(1000);
    let mut outer_shorter_than_inner = ipip(syn(50006, 64).packet());
    outer_shorter_than_inner.tot_len = Some(50);
    let no_service = ipip(V4::new(6, src, vip, tcp(50007, 81, 5)).packet());
    let mut outer_fragment = ipip(syn(50008, 64).packet());
    outer_fragment.frags = 0x2000;
    // Decapsulated, then dropped as the same packet arriving directly is.
    let truncated_tcp = ipip(V4::new(6, src, vip, tcp(50009, PORT, 5)[..8].to_vec()).packet());
    let frames: Vec<Vec<u8>> = [
        &valid,
        &ttl_1,
        &ttl_2,
        &truncated_inner,
        &outer_beyond_frame,
        &outer_shorter_than_inner,
        &no_service,
        &outer_fragment,
        &truncated_tcp,
    ]
    .iter()
    .map(|p| p.frame(dmac, smac))
    .collect();
    send_frames(client, &frames);

    let delta = |name: &str| lab.counter(name) - before[name];
    common::poll(|| delta("drop_malformed") >= 3 && delta("tunnel_decap") >= 3);
    let now = lab.dataplane();
    let changed: Vec<(&String, u64)> = now
        .iter()
        .filter(|(k, v)| before[k.as_str()] != **v)
        .map(|(k, v)| (k, v - before[k.as_str()]))
        .collect();
    assert_eq!(delta("tunnel_decap"), 3, "changed: {changed:?}");
    assert_eq!(delta("drop_tunnel_ttl"), 1, "changed: {changed:?}");
    assert_eq!(delta("drop_ttl"), 1, "changed: {changed:?}");
    assert_eq!(delta("drop_malformed"), 3, "changed: {changed:?}");
    assert_eq!(delta("pass_fragment"), 0, "changed: {changed:?}");
    assert!(delta("forwarded") >= 1, "changed: {changed:?}");
    // The director is none the worse.
    assert_eq!(lab.ask(PORT), "rs0");
}
