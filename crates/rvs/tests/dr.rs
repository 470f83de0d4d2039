//! Direct routing end to end, over real packets in namespaces: a client talks to the VIP, the
//! director's XDP program picks a real server and re-addresses the frame, the real server answers
//! the client itself.

mod common;

use std::net::IpAddr;

use common::{Lab, dest_rows, stderr, tally};
use rvs::{
    model::DestAddr,
    sched::reference::{KernelRr, KernelWrr, RefDest},
};

const PORT: u16 = 80;

fn ref_dest(lab: &Lab, i: usize, weight: i32) -> RefDest {
    RefDest {
        addr: DestAddr {
            addr: IpAddr::V4(lab.rs_ip(i)),
            port: PORT,
        },
        weight,
    }
}

fn name_of(lab: &Lab, addr: &DestAddr) -> String {
    let i = (0..lab.cluster.real_servers().len())
        .find(|&i| IpAddr::V4(lab.rs_ip(i)) == addr.addr)
        .unwrap();
    lab.cluster.real_servers()[i].name().to_owned()
}

/// Adds real servers 0..n in order with the given weights (the kernel's list is then n-1..0).
fn add_servers(lab: &Lab, vip: &str, weights: &[i32]) {
    for (i, w) in weights.iter().enumerate() {
        lab.ok(&[
            "-a",
            "-t",
            vip,
            "-r",
            &format!("{}:{PORT}", lab.rs_ip(i)),
            "-g",
            "-w",
            &w.to_string(),
        ]);
    }
}

#[test]
fn wrr_3_2_1_gives_30_20_10_in_the_kernels_order() {
    let lab = Lab::new(3, PORT);
    let vip = lab.vip_port(PORT);
    lab.ok(&["-A", "-t", &vip, "-s", "wrr"]);
    add_servers(&lab, &vip, &[3, 2, 1]);

    let picks: Vec<String> = (0..60).map(|_| lab.ask(PORT)).collect();
    let counts = tally(&picks);
    assert_eq!(counts["rs0"], 30, "{counts:?}");
    assert_eq!(counts["rs1"], 20, "{counts:?}");
    assert_eq!(counts["rs2"], 10, "{counts:?}");

    // The exact sequence is the kernel's: replay the same adds through the literal ip_vs_wrr.c.
    let mut list = Vec::new();
    let mut k = KernelWrr::init(&list);
    for (i, w) in [3, 2, 1].iter().enumerate() {
        list.insert(0, ref_dest(&lab, i, *w));
        k.dest_changed(&list);
    }
    let expected: Vec<String> = (0..60)
        .map(|_| name_of(&lab, &k.schedule(&list).unwrap()))
        .collect();
    assert_eq!(picks, expected);

    // Every answer came from the real server itself: the director forwarded only the client's
    // packets, and the real servers saw the client's own address.
    let stats = lab.ok(&["-L", "-n", "--stats", "--exact"]);
    let svc_line = stats.lines().find(|l| l.starts_with("TCP")).unwrap();
    let cols: Vec<&str> = svc_line.split_whitespace().collect();
    assert_eq!(cols[2], "60", "60 connections scheduled: {stats}");
    assert!(
        cols[3].parse::<u64>().unwrap() >= 60 * 3,
        "client packets counted: {stats}"
    );
    assert_eq!(cols[4], "0", "no outgoing packets in DR: {stats}");
    assert_eq!(cols[6], "0", "no outgoing bytes in DR: {stats}");
    for server in &lab.tcp {
        assert!(server.connections() > 0);
    }
}

#[test]
fn rr_cycles_in_ipvsadm_list_order() {
    let lab = Lab::new(3, PORT);
    let vip = lab.vip_port(PORT);
    lab.ok(&["-A", "-t", &vip, "-s", "rr"]);
    add_servers(&lab, &vip, &[1, 1, 1]);
    let picks: Vec<String> = (0..9).map(|_| lab.ask(PORT)).collect();
    // ipvsadm adds at the list head: the cycle is the reverse of the order of adding.
    let cycle = ["rs2", "rs1", "rs0"];
    let expected: Vec<String> = cycle
        .iter()
        .cycle()
        .take(9)
        .map(|s| s.to_string())
        .collect();
    assert_eq!(picks, expected);

    // Deleting the server the cursor stands on moves the cursor back, as ip_vs_rr_del_dest does.
    let mut list: Vec<RefDest> = (0..3).rev().map(|i| ref_dest(&lab, i, 1)).collect();
    let mut k = KernelRr::default();
    for _ in 0..9 {
        k.schedule(&list);
    }
    let gone = list.remove(2);
    k.del_dest(&gone.addr, 2, &list);
    lab.ok(&["-d", "-t", &vip, "-r", &format!("{}:{PORT}", lab.rs_ip(0))]);
    let picks: Vec<String> = (0..4).map(|_| lab.ask(PORT)).collect();
    let expected: Vec<String> = (0..4)
        .map(|_| name_of(&lab, &k.schedule(&list).unwrap()))
        .collect();
    assert_eq!(picks, expected);
}

#[test]
fn an_open_connection_keeps_its_server_while_the_table_changes() {
    let lab = Lab::new(4, PORT);
    let vip = lab.vip_port(PORT);
    lab.ok(&["-A", "-t", &vip, "-s", "wrr"]);
    add_servers(&lab, &vip, &[1, 1, 1]);
    let mut conn = lab.cluster.client().open_tcp(lab.vip(), PORT).unwrap();
    let first = conn.ask("first").unwrap();
    for (i, w) in [5, 0, 2].iter().enumerate() {
        lab.ok(&[
            "-e",
            "-t",
            &vip,
            "-r",
            &format!("{}:{PORT}", lab.rs_ip(i)),
            "-w",
            &w.to_string(),
        ]);
    }
    lab.ok(&[
        "-a",
        "-t",
        &vip,
        "-r",
        &format!("{}:{PORT}", lab.rs_ip(3)),
        "-w",
        "9",
    ]);
    for i in 0..5 {
        // New connections meanwhile follow the new weights...
        let _ = lab.ask(PORT);
        // ...and the open one stays where it was.
        assert_eq!(conn.ask(&format!("again {i}")).unwrap(), first);
    }
}

#[test]
fn udp_datagrams_are_balanced_per_flow() {
    let mut lab = Lab::new(3, PORT);
    lab.udp = lab.cluster.serve_udp(53).unwrap();
    let vip = lab.vip_port(53);
    lab.ok(&["-A", "-u", &vip, "-s", "rr"]);
    for i in 0..3 {
        lab.ok(&["-a", "-u", &vip, "-r", &format!("{}:53", lab.rs_ip(i))]);
    }
    let client = lab.cluster.client();
    let mut firsts = Vec::new();
    for flow in 0..30u16 {
        let port = 20000 + flow;
        let first = client.udp_request(lab.vip(), 53, b"q", port).unwrap();
        for _ in 0..3 {
            assert_eq!(
                client.udp_request(lab.vip(), 53, b"q", port).unwrap(),
                first,
                "flow {port} moved"
            );
        }
        firsts.push(first);
    }
    let counts = tally(&firsts);
    assert_eq!(
        counts.values().copied().collect::<Vec<_>>(),
        vec![10, 10, 10],
        "{counts:?}"
    );
    let listing = lab.ok(&["-L", "-n"]);
    assert!(listing.contains("UDP  198.18.0.100:53 rr"), "{listing}");
    // UDP connections are never active: all 30 flows are InActConn.
    let inactive: u64 = dest_rows(&listing).iter().map(|r| r.4).sum();
    assert_eq!(inactive, 30, "{listing}");
}

#[test]
fn weight_zero_takes_no_new_flows_but_keeps_open_ones() {
    let lab = Lab::new(3, PORT);
    let vip = lab.vip_port(PORT);
    lab.ok(&["-A", "-t", &vip, "-s", "wrr"]);
    add_servers(&lab, &vip, &[1, 1, 1]);
    let mut conn = lab.cluster.client().open_tcp(lab.vip(), PORT).unwrap();
    let held = conn.ask("hold").unwrap();
    let idx: usize = held.trim_start_matches("rs").parse().unwrap();
    let target = format!("{}:{PORT}", lab.rs_ip(idx));
    lab.ok(&["-e", "-t", &vip, "-r", &target, "-w", "0"]);

    let picks: Vec<String> = (0..20).map(|_| lab.ask(PORT)).collect();
    assert!(
        !picks.contains(&held),
        "a quiescent server got a new flow: {picks:?}"
    );
    assert_eq!(conn.ask("still there").unwrap(), held);

    let listing = lab.ok(&["-L", "-n"]);
    let row = dest_rows(&listing)
        .into_iter()
        .find(|r| r.0 == target)
        .unwrap();
    assert_eq!(row.2, 0, "weight shown as 0: {listing}");
    assert_eq!(row.3, 1, "the open connection is active: {listing}");
}

#[test]
fn restarting_rvsd_keeps_an_open_connection() {
    let mut lab = Lab::new(2, PORT);
    let vip = lab.vip_port(PORT);
    lab.ok(&["-A", "-t", &vip, "-s", "rr"]);
    add_servers(&lab, &vip, &[1, 1]);
    let mut conn = lab.cluster.client().open_tcp(lab.vip(), PORT).unwrap();
    let held = conn.ask("before").unwrap();
    let before = lab.ok(&["-L", "-n"]);

    lab.stop_rvsd();
    // Stopped, it left the director attached, forwarding what the maps hold...
    assert!(attached(&lab), "the stopped rvsd detached its director");
    assert_eq!(conn.ask("while stopped").unwrap(), held);
    lab.start_rvsd();

    // ...and the restarted one took it over with the pinned connection table and the saved
    // services.
    assert_eq!(conn.ask("after").unwrap(), held);
    assert_eq!(lab.ok(&["-L", "-n"]), before);
    let log = lab.rvsd_log();
    assert!(log.contains("connections carried over"), "{log}");
    // New connections are still balanced over both.
    let picks: Vec<String> = (0..4).map(|_| lab.ask(PORT)).collect();
    assert_eq!(tally(&picks).len(), 2, "{picks:?}");

    // `rvsd --detach` takes a stopped rvsd's director off and keeps its maps; refused while
    // rvsd runs.
    let pin_dir = lab.pin_dir.clone();
    let detach = || {
        std::process::Command::new(common::RVSD)
            .arg("--detach")
            .arg("--pin-dir")
            .arg(&pin_dir)
            .output()
            .unwrap()
    };
    assert!(!detach().status.success(), "--detach of a running rvsd");
    assert!(attached(&lab));
    lab.stop_rvsd();
    let out = detach();
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(!attached(&lab), "still attached after --detach");
    lab.start_rvsd();
    assert!(lab.rvsd_log().contains("connections carried over"));
    assert_eq!(conn.ask("after a detach").unwrap(), held);

    // --detach-on-exit: a stop detaches, as before.
    lab.rvsd_args.push("--detach-on-exit".into());
    lab.stop_rvsd();
    lab.start_rvsd();
    lab.stop_rvsd();
    assert!(
        !attached(&lab),
        "--detach-on-exit left the director attached"
    );
    lab.start_rvsd();
}

/// Whether the director program is attached to the director's `eth0`.
fn attached(lab: &Lab) -> bool {
    let link = lab
        .cluster
        .director()
        .netns()
        .ip(&["link", "show", "eth0"])
        .unwrap();
    link.contains("prog/xdp")
}

#[test]
fn a_killed_rvsd_leaves_the_director_forwarding_and_the_next_one_takes_it_over() {
    let mut lab = Lab::new(2, PORT);
    let vip = lab.vip_port(PORT);
    lab.ok(&["-A", "-t", &vip, "-s", "rr"]);
    add_servers(&lab, &vip, &[1, 1]);
    let mut conn = lab.cluster.client().open_tcp(lab.vip(), PORT).unwrap();
    let held = conn.ask("before").unwrap();

    // Killed without a word: the data plane goes on with what it holds, as IPVS does when
    // keepalived dies, rather than leaving the VIP's packets to the kernel.
    let p = lab.rvsd.take().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(p.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    drop(p);
    assert!(attached(&lab), "the killed rvsd's program went with it");
    assert_eq!(conn.ask("while rvsd is dead").unwrap(), held);
    let picks: Vec<String> = (0..4).map(|_| lab.ask(PORT)).collect();
    assert_eq!(
        tally(&picks).len(),
        2,
        "new flows still balanced: {picks:?}"
    );

    // The next rvsd replaces the program in place: the connection never notices.
    lab.start_rvsd();
    let log = lab.rvsd_log();
    assert!(
        log.contains("replaced the director a previous rvsd left on eth0"),
        "{log}"
    );
    assert_eq!(conn.ask("after").unwrap(), held);

    // A clean stop leaves it attached too (restarting_rvsd_keeps_an_open_connection).
    lab.stop_rvsd();
    assert!(attached(&lab), "stopped, the program went with rvsd");

    // And `rvsd --cleanup` detaches what a killed one left.
    lab.start_rvsd();
    let p = lab.rvsd.take().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(p.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    drop(p);
    assert!(attached(&lab));
    let out = std::process::Command::new(common::RVSD)
        .arg("--cleanup")
        .arg("--pin-dir")
        .arg(&lab.pin_dir)
        .arg("--state-file")
        .arg(lab.dir.join("state.json"))
        .arg("--socket")
        .arg(lab.socket())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!attached(&lab), "--cleanup left the program attached");
}

#[test]
fn save_clear_restore_gives_the_same_listing() {
    let lab = Lab::new(3, PORT);
    let vip = lab.vip_port(PORT);
    lab.ok(&["-A", "-t", &vip, "-s", "wrr"]);
    add_servers(&lab, &vip, &[3, 2, 1]);
    let udp = lab.vip_port(53);
    lab.ok(&["-A", "-u", &udp, "-s", "rr"]);
    lab.ok(&[
        "-a",
        "-u",
        &udp,
        "-r",
        &format!("{}:53", lab.rs_ip(1)),
        "-w",
        "4",
    ]);
    lab.ok(&[
        "-a",
        "-u",
        &udp,
        "-r",
        &format!("{}:53", lab.rs_ip(2)),
        "-w",
        "0",
    ]);

    let listing = lab.ok(&["-L", "-n"]);
    let saved = lab.ok(&["-S", "-n"]);
    lab.ok(&["-C"]);
    let empty = lab.ok(&["-L", "-n"]);
    assert_eq!(
        empty.lines().count(),
        3,
        "only banner and headers after -C: {empty}"
    );
    let out = lab.rvsadm_with_stdin(&["-R"], &saved);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(lab.ok(&["-L", "-n"]), listing);
    assert_eq!(lab.ok(&["-S", "-n"]), saved);
    // And the restored table forwards.
    let picks: Vec<String> = (0..6).map(|_| lab.ask(PORT)).collect();
    assert_eq!(tally(&picks).values().sum::<usize>(), 6);
}

#[test]
fn bad_commands_say_what_ipvsadm_says_and_change_nothing() {
    let lab = Lab::new(1, PORT);
    let vip = lab.vip_port(PORT);
    lab.ok(&["-A", "-t", &vip, "-s", "rr"]);
    lab.ok(&["-a", "-t", &vip, "-r", &format!("{}:{PORT}", lab.rs_ip(0))]);
    let before = lab.ok(&["-S", "-n"]);
    let cases: &[(&[&str], &str, i32)] = &[
        (
            &["-A", "-t", &vip, "-s", "rr"],
            "Service already exists\n",
            255,
        ),
        (
            &["-a", "-t", "198.18.0.100:81", "-r", "198.18.0.11:81"],
            "Service not defined\n",
            255,
        ),
        (
            &["-a", "-t", &vip, "-r", "198.18.0.11:80"],
            "Destination already exists\n",
            255,
        ),
        (
            &["-d", "-t", &vip, "-r", "198.18.0.99:80"],
            "No such destination\n",
            255,
        ),
        (&["-D", "-t", "198.18.0.100:81"], "No such service\n", 255),
        (
            &["-A", "-t", "198.18.0.100:82", "-s", "nosuch"],
            "Scheduler or persistence engine not found\n",
            255,
        ),
        (
            &["-a", "-t", &vip, "-r", "198.18.0.12:80", "-w", "70000"],
            "illegal weight specified\n",
            2,
        ),
        (
            &["-A", "-t", "198.18.0.100"],
            "Zero port specified for non-persistent service\n",
            2,
        ),
        (
            &["-L", "-s", "rr"],
            "Illegal 'scheduler' option with the 'list' command\n",
            2,
        ),
        (
            &["-a", "-t", &vip],
            "You need to supply the 'real-server' option for the 'add-server' command\n",
            2,
        ),
        // The broadcast address of the director's LAN is no real server (the kernel's
        // inet_addr_type check), nor is a multicast one.
        (
            &["-a", "-t", &vip, "-r", "198.18.0.255:80"],
            "Invalid operation.  Possibly wrong module version, address not unicast, ...\n",
            255,
        ),
        (
            &["-a", "-t", &vip, "-r", "224.0.0.18:80"],
            "Invalid operation.  Possibly wrong module version, address not unicast, ...\n",
            255,
        ),
    ];
    for (args, message, code) in cases {
        let out = lab.rvsadm(args);
        assert_eq!(stderr(&out), *message, "rvsadm {args:?}");
        assert_eq!(out.status.code(), Some(*code), "rvsadm {args:?}");
        assert_eq!(
            lab.ok(&["-S", "-n"]),
            before,
            "rvsadm {args:?} changed the table"
        );
    }
    assert_eq!(lab.ask(PORT), "rs0");
}

#[test]
fn rates_come_from_the_two_second_estimator_and_zero_resets_counters() {
    let lab = Lab::new(2, PORT);
    let vip = lab.vip_port(PORT);
    lab.ok(&["-A", "-t", &vip, "-s", "rr"]);
    add_servers(&lab, &vip, &[1, 1]);
    // Connections spread over a little more than two estimator ticks.
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_millis(4500) {
        lab.ask(PORT);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let rate = lab.ok(&["-L", "-n", "--rate"]);
    let svc: Vec<&str> = rate
        .lines()
        .find(|l| l.starts_with("TCP"))
        .unwrap()
        .split_whitespace()
        .collect();
    let cps: u64 = svc[2].parse().unwrap();
    assert!(cps > 0, "the estimator saw connections: {rate}");
    assert_eq!(svc[4], "0", "no outgoing packets in DR: {rate}");

    lab.ok(&["-Z", "-t", &vip]);
    let stats = lab.ok(&["-L", "-n", "--stats"]);
    for line in stats.lines().skip(3) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // Service rows are "TCP addr n n n n n", real-server rows "-> addr n n n n n".
        assert!(cols[2..].iter().all(|n| *n == "0"), "zeroed: {stats}");
    }
}

#[test]
fn traffic_that_is_not_for_a_service_reaches_the_director_untouched() {
    let lab = Lab::new(1, PORT);
    let vip = lab.vip_port(PORT);
    lab.ok(&["-A", "-t", &vip, "-s", "rr"]);
    add_servers(&lab, &vip, &[1]);
    // Another port of the VIP is not a service: the director's own stack answers (a reset).
    let err = lab.cluster.client().tcp_request(lab.vip(), 81).unwrap_err();
    let refused = err
        .chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
    assert!(refused, "expected the director's kernel to refuse: {err:#}");
    // And the director still talks for itself.
    let ping = lab
        .cluster
        .client()
        .netns()
        .exec(&["ping", "-c", "1", "-W", "2", "198.18.0.2"]);
    assert!(ping.is_ok(), "{ping:?}");
    assert_eq!(lab.ask(PORT), "rs0");
    // The data plane forwarded exactly the packets the service counted, and passed the rest.
    // (The connection's last packets may still be on their way: compare once both settle.)
    let read = || {
        let counters = lab.ok(&["--dataplane"]);
        let forwarded: u64 = counters
            .lines()
            .find_map(|l| l.strip_prefix("forwarded "))
            .unwrap()
            .parse()
            .unwrap();
        let stats = lab.ok(&["-L", "-n", "--stats", "--exact"]);
        let inpkts: u64 = stats
            .lines()
            .find(|l| l.starts_with("TCP"))
            .unwrap()
            .split_whitespace()
            .nth(3)
            .unwrap()
            .parse()
            .unwrap();
        (forwarded, inpkts)
    };
    lab.eventually("forwarded == InPkts", || {
        let (f, i) = read();
        f == i && f >= 3
    });
}

/// A frame a switch floods to the director although it is for another host's MAC (a backup
/// director's, after the MASTER's link went, or any MAC a bridge has not learnt) is not the
/// director's to forward: the kernel would drop it, and so does rvs.
#[test]
fn a_frame_for_another_hosts_mac_is_not_forwarded() {
    let lab = Lab::new(1, PORT);
    let vip = lab.vip_port(PORT);
    lab.ok(&["-A", "-t", &vip, "-s", "rr"]);
    add_servers(&lab, &vip, &[1]);
    assert_eq!(lab.ask(PORT), "rs0");
    let client = lab.cluster.client();
    let neigh = |args: &[&str]| client.netns().ip(args).unwrap();
    let vip_ip = lab.vip().to_string();
    // The client sends the VIP's frames to a MAC nobody has: the LAN bridge floods them.
    neigh(&[
        "neigh",
        "replace",
        &vip_ip,
        "lladdr",
        "02:00:00:00:00:99",
        "dev",
        "eth0",
        "nud",
        "permanent",
    ]);
    let addr = std::net::SocketAddr::new(lab.vip(), PORT);
    let forwarded = |lab: &Lab| lab.counter("forwarded");
    let before = forwarded(&lab);
    let connected = client
        .netns()
        .enter(|| std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2)))
        .unwrap();
    assert!(
        connected.is_err(),
        "a flooded SYN went through: {connected:?}"
    );
    assert_eq!(
        forwarded(&lab),
        before,
        "the director forwarded a frame for another MAC"
    );
    // Its own MAC again: served.
    neigh(&["neigh", "del", &vip_ip, "dev", "eth0"]);
    assert_eq!(lab.ask(PORT), "rs0");
}

#[test]
fn direct_routing_on_both_families_carries_bulk_transfers_intact() {
    let cluster = rvs_testbed::DrCluster::builder()
        .real_servers(2)
        .ipv6(true)
        .build()
        .unwrap();
    let mut lab = common::Lab::on(cluster, PORT, &[]);
    lab.udp = lab.cluster.serve_udp(53).unwrap();
    let vip6: IpAddr = lab.cluster.vip6().unwrap().into();
    for vip in [lab.vip(), vip6] {
        for flag in ["-t", "-u"] {
            let port = if flag == "-t" { PORT } else { 53 };
            let svc = format!("{}:{port}", common::bracket(vip));
            lab.ok(&["-A", flag, &svc, "-s", "rr"]);
            for rs in lab.cluster.real_servers() {
                let ip: IpAddr = if vip.is_ipv6() {
                    rs.ip6().unwrap().into()
                } else {
                    rs.ip().into()
                };
                // ipvsadm takes a bare IPv6 address without a port, but not "[addr]".
                lab.ok(&["-a", flag, &svc, "-r", &ip.to_string(), "-g"]);
            }
        }
        let tcp: Vec<String> = (0..4).map(|_| lab.ask_at(vip, PORT)).collect();
        assert_eq!(
            tally(&tcp).values().copied().collect::<Vec<_>>(),
            [2, 2],
            "{tcp:?}"
        );
        let udp: Vec<String> = (0..4)
            .map(|i| {
                lab.cluster
                    .client()
                    .udp_request(vip, 53, b"hi", 41000 + i)
                    .unwrap()
            })
            .collect();
        assert_eq!(
            tally(&udp).values().copied().collect::<Vec<_>>(),
            [2, 2],
            "{udp:?}"
        );
        let client = lab.cluster.client();
        client.bulk_download(vip, PORT, common::BULK).unwrap();
        client.bulk_upload(vip, PORT, common::BULK).unwrap();
        // Direct routing sees only the client's half of each connection.
        let stats = lab.ok(&["-L", "-n", "--stats", "--exact"]);
        let [_, inpkts, outpkts, ..] =
            common::service_stats(&stats, "TCP", &format!("{}:{PORT}", common::bracket(vip)));
        assert!(inpkts > 0 && outpkts == 0, "{stats}");
    }
}

#[test]
fn rvs_rs_prepares_a_direct_routing_real_server() {
    let cluster = rvs_testbed::DrCluster::builder()
        .real_servers(1)
        .ipv6(true)
        .build()
        .unwrap();
    let lab = common::Lab::on(cluster, PORT, &[]);
    let rs = &lab.cluster.real_servers()[0];
    let vip6: IpAddr = lab.cluster.vip6().unwrap().into();
    let (v4, v6) = (lab.vip().to_string(), vip6.to_string());
    // Undo what the testbed prepared, so the real server is as it comes: without the VIPs it
    // drops what direct routing hands it.
    rs.exec(&["ip", "addr", "del", &format!("{v4}/32"), "dev", "lo"])
        .unwrap();
    rs.exec(&["ip", "addr", "del", &format!("{v6}/128"), "dev", "lo"])
        .unwrap();
    rs.netns()
        .sysctl(&[
            "net.ipv4.conf.all.arp_ignore=0",
            "net.ipv4.conf.all.arp_announce=0",
        ])
        .unwrap();
    for vip in [lab.vip(), vip6] {
        let svc = format!("{}:{PORT}", common::bracket(vip));
        lab.ok(&["-A", "-t", &svc, "-s", "rr"]);
        let ip: IpAddr = if vip.is_ipv6() {
            rs.ip6().unwrap().into()
        } else {
            rs.ip().into()
        };
        lab.ok(&["-a", "-t", &svc, "-r", &ip.to_string(), "-g"]);
        assert!(lab.cluster.client().tcp_request(vip, PORT).is_err());
    }
    let up = ["up", "--vip", &v4, "--vip", &v6, "--interface", "eth0"];
    rs.run(std::process::Command::new(common::RVS_RS).args(up))
        .unwrap();
    // Twice is the same as once.
    rs.run(std::process::Command::new(common::RVS_RS).args(up))
        .unwrap();
    for vip in [lab.vip(), vip6] {
        assert_eq!(lab.ask_at(vip, PORT), rs.name());
    }
    let sysctl = |key: &str| rs.exec(&["sysctl", "-n", key]).unwrap().trim().to_owned();
    assert_eq!(sysctl("net.ipv4.conf.all.arp_ignore"), "1");
    assert_eq!(sysctl("net.ipv4.conf.eth0.arp_announce"), "2");
    let lo = rs.exec(&["ip", "addr", "show", "dev", "lo"]).unwrap();
    assert!(
        lo.contains(&format!("{v4}/32")) && lo.contains(&format!("{v6}/128")),
        "{lo}"
    );
    let down = ["down", "--vip", &v4, "--vip", &v6, "--interface", "eth0"];
    rs.run(std::process::Command::new(common::RVS_RS).args(down))
        .unwrap();
    assert!(lab.cluster.client().tcp_request(lab.vip(), PORT).is_err());
}

#[test]
fn hundreds_of_real_servers_come_and_go_in_one_restore() {
    // 400 lists of up to 403 entries outgrow the list array (2 × 16384) many times over.
    const FAKE: usize = 400;
    let lab = Lab::with(3, PORT, 16, &[]);
    let vip = lab.vip_port(PORT);
    lab.ok(&["-A", "-t", &vip, "-s", "rr"]);
    add_servers(&lab, &vip, &[1, 1, 1]);
    // Hundreds more on the LAN, quiescent so that the three real ones still answer; their MACs
    // are given to the director so that adding them does not wait on address resolution.
    let fake = |i: usize| format!("198.18.{}.{}", 4 + i / 250, i % 250 + 1);
    let director = lab.cluster.director();
    let neigh: String = (0..FAKE)
        .map(|i| {
            format!(
                "neigh add {} lladdr 02:00:00:00:{:02x}:{:02x} dev {} nud permanent\n",
                fake(i),
                i / 256,
                i % 256,
                director.ifname()
            )
        })
        .collect();
    let batch = std::env::temp_dir().join(format!("rvs-neigh-{}", std::process::id()));
    std::fs::write(&batch, neigh).unwrap();
    director
        .netns()
        .ip(&["-batch", batch.to_str().unwrap()])
        .unwrap();
    std::fs::remove_file(&batch).unwrap();

    // Every add rewrites the service's list and retires the old one: the list space must keep up.
    let adds: String = (0..FAKE)
        .map(|i| format!("-a -t {vip} -r {}:{PORT} -g -w 0\n", fake(i)))
        .collect();
    let out = lab.rvsadm_with_stdin(&["-R"], &adds);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(dest_rows(&lab.ok(&["-L", "-n"])).len(), FAKE + 3);
    let picks: Vec<String> = (0..6).map(|_| lab.ask(PORT)).collect();
    assert_eq!(
        tally(&picks).values().copied().collect::<Vec<_>>(),
        [2, 2, 2]
    );

    let dels: String = (0..FAKE)
        .map(|i| format!("-d -t {vip} -r {}:{PORT}\n", fake(i)))
        .collect();
    let out = lab.rvsadm_with_stdin(&["-R"], &dels);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(dest_rows(&lab.ok(&["-L", "-n"])).len(), 3);
    let picks: Vec<String> = (0..6).map(|_| lab.ask(PORT)).collect();
    assert_eq!(
        tally(&picks).values().copied().collect::<Vec<_>>(),
        [2, 2, 2]
    );
}

/// `-s none` is the kernel's service without a scheduler: it is listed as such and a new
/// connection finds no real server (dropped and counted), while a scheduling service beside it
/// works.
#[test]
fn a_service_without_a_scheduler_picks_no_server() {
    let lab = Lab::new(1, PORT);
    let vip = lab.vip_port(PORT);
    lab.ok(&["-A", "-t", &vip, "-s", "none"]);
    lab.ok(&["-a", "-t", &vip, "-r", &format!("{}:{PORT}", lab.rs_ip(0))]);
    let listing = lab.ok(&["-L", "-n"]);
    assert!(listing.contains(&format!("TCP  {vip} none\n")), "{listing}");
    assert!(lab.cluster.client().tcp_request(lab.vip(), PORT).is_err());
    assert!(lab.counter("drop_no_dest") >= 1);
    lab.ok(&["-E", "-t", &vip, "-s", "rr"]);
    assert_eq!(lab.ask(PORT), "rs0");
}
