//! IP tunnelling end to end: the director wraps the client's packet in an outer IP header (IPIP,
//! or UDP with GUE) to the real server, which unwraps it (here with `rvs-rs up --decap`, since
//! this kernel has no ipip or fou module) and answers the client itself from the VIP. Also
//! across families (an IPv4 VIP on an IPv6 real server and back), and path MTU discovery for the
//! bytes the outer header adds.

mod common;

use std::{net::IpAddr, process::Command};

use common::{BULK, Lab, RVS_RS, bracket, service_stats, tally};
use rvs_testbed::{DrCluster, Host};

const PORT: u16 = 80;
const GUE_PORT: &str = "6080";

fn lab() -> Lab {
    let cluster = DrCluster::builder()
        .real_servers(2)
        .ipv6(true)
        .build()
        .unwrap();
    Lab::on(cluster, PORT, &[])
}

fn rvs_rs(host: &Host, args: &[&str]) {
    host.run(Command::new(RVS_RS).args(args))
        .unwrap_or_else(|e| panic!("rvs-rs {args:?} on {}: {e:#}", host.name()));
}

/// `rvs-rs up` on every real server for both VIPs, with `decap` (`ipip`, or `gue` which also
/// takes IPIP).
fn prepare_real_servers(lab: &Lab, decap: &str) {
    let vip4 = lab.cluster.vip().to_string();
    let vip6 = lab.cluster.vip6().unwrap().to_string();
    for rs in lab.cluster.real_servers() {
        let mut args = vec!["up", "--vip", &vip4, "--vip", &vip6, "--interface", "eth0"];
        args.extend(["--decap", decap]);
        if decap == "gue" {
            args.extend(["--gue-port", GUE_PORT]);
        }
        rvs_rs(rs, &args);
    }
}

/// A TCP service `vip:80` tunnelled to every real server's address of `rs_family_v6`.
fn tunnel_service(lab: &Lab, vip: IpAddr, rs_v6: bool, tun: &[&str]) -> String {
    let svc = format!("{}:{PORT}", bracket(vip));
    lab.ok(&["-A", "-t", &svc, "-s", "rr"]);
    for rs in lab.cluster.real_servers() {
        let ip: IpAddr = if rs_v6 {
            rs.ip6().unwrap().into()
        } else {
            rs.ip().into()
        };
        let dest = format!("{}:{PORT}", bracket(ip));
        let mut args = vec!["-a", "-t", &svc, "-r", &dest, "-i"];
        args.extend(tun);
        lab.ok(&args);
    }
    svc
}

fn check_round_robin(lab: &Lab, vip: IpAddr) {
    let names: Vec<String> = (0..4).map(|_| lab.ask_at(vip, PORT)).collect();
    assert_eq!(
        tally(&names).values().copied().collect::<Vec<_>>(),
        [2, 2],
        "{names:?}"
    );
}

#[test]
fn ipip_reaches_real_servers_only_through_the_tunnel() {
    let lab = lab();
    let vip = lab.vip();
    tunnel_service(&lab, vip, false, &[]);
    // The real servers hold the VIP, as for direct routing, but cannot read IPIP yet: nothing
    // gets through, which shows that the packets are encapsulated.
    assert!(
        lab.cluster.client().tcp_request(vip, PORT).is_err(),
        "a tunnelled packet was answered without decapsulation"
    );
    prepare_real_servers(&lab, "ipip");
    check_round_robin(&lab, vip);
    // `rvs-rs down` undoes it.
    let vip4 = lab.cluster.vip().to_string();
    for rs in lab.cluster.real_servers() {
        rvs_rs(rs, &["down", "--vip", &vip4, "--interface", "eth0"]);
    }
    assert!(lab.cluster.client().tcp_request(vip, PORT).is_err());
}

#[test]
fn ipip_gue_and_gre_on_both_families_and_across_them() {
    let lab = lab();
    prepare_real_servers(&lab, "gue");
    let vip4 = lab.vip();
    let vip6: IpAddr = lab.cluster.vip6().unwrap().into();
    let gue = ["--tun-type", "gue", "--tun-port", GUE_PORT];
    let gre = ["--tun-type", "gre"];
    let gre_csum = ["--tun-type", "gre", "--tun-csum"];
    let cases: [(&str, IpAddr, bool, &[&str]); 9] = [
        ("ipip 4in4", vip4, false, &[]),
        ("ipip 6in6", vip6, true, &[]),
        ("gue 4in4", vip4, false, &gue),
        (
            "gue 6in6 without checksum",
            vip6,
            true,
            &["--tun-type", "gue", "--tun-port", GUE_PORT, "--tun-nocsum"],
        ),
        ("ipip 4in6", vip4, true, &[]),
        ("gue 6in4", vip6, false, &gue),
        ("gre 4in4", vip4, false, &gre),
        ("gre 6in6 with checksum", vip6, true, &gre_csum),
        ("gre 4in6 with checksum", vip4, true, &gre_csum),
    ];
    for (what, vip, rs_v6, tun) in cases {
        let svc = tunnel_service(&lab, vip, rs_v6, tun);
        check_round_robin(&lab, vip);
        // Only the client's packets pass the director: nothing is counted out.
        let stats = lab.ok(&["-L", "-n", "--stats", "--exact"]);
        let [conns, inpkts, outpkts, ..] = service_stats(&stats, "TCP", &svc);
        assert!(conns >= 4 && inpkts >= 4 && outpkts == 0, "{what}: {stats}");
        lab.ok(&["-D", "-t", &svc]);
    }
}

#[test]
fn bulk_transfers_are_intact_and_the_outer_header_is_discovered_by_pmtu() {
    let lab = lab();
    prepare_real_servers(&lab, "gue");
    let vip4 = lab.vip();
    let vip6: IpAddr = lab.cluster.vip6().unwrap().into();
    let client = lab.cluster.client();
    let gue = ["--tun-type", "gue", "--tun-port", GUE_PORT, "--tun-csum"];
    for (what, vip, tun) in [("ipip", vip4, &[][..]), ("gue", vip6, &gue[..])] {
        let svc = tunnel_service(&lab, vip, vip.is_ipv6(), tun);
        let before = lab.counter("icmp_too_big_sent");
        // The client's full-size segments do not fit with the outer header: the director answers
        // them with ICMP and the client's TCP shrinks them.
        client
            .bulk_upload(vip, PORT, BULK)
            .unwrap_or_else(|e| panic!("{what} upload: {e:#}\n{}", lab.rvsd_log()));
        assert!(
            lab.counter("icmp_too_big_sent") > before,
            "{what}: {:?}",
            lab.dataplane()
        );
        client
            .bulk_download(vip, PORT, BULK)
            .unwrap_or_else(|e| panic!("{what} download: {e:#}\n{}", lab.rvsd_log()));
        lab.ok(&["-D", "-t", &svc]);
    }
    assert_eq!(lab.counter("drop_too_big"), 0);
}

#[test]
fn gue_outer_udp_checksums_are_valid_when_asked_for() {
    // The receiver here does not check the outer checksum (rvs-rs strips it in XDP), so tcpdump
    // on the wire to the real server does: "[udp sum ok]" for every datagram, or "[no cksum]"
    // when the tunnel is configured without.
    let lab = lab();
    prepare_real_servers(&lab, "gue");
    let rs0_port = lab.cluster.real_servers()[0].bridge_port().to_owned();
    for (vip, csum, expect) in [
        (lab.vip(), "--tun-csum", "[udp sum ok]"),
        (
            lab.cluster.vip6().unwrap().into(),
            "--tun-csum",
            "[udp sum ok]",
        ),
        (lab.vip(), "--tun-nocsum", "[no cksum]"),
    ] {
        let svc = format!("{}:{PORT}", bracket(vip));
        lab.ok(&["-A", "-t", &svc, "-s", "rr"]);
        let rs = &lab.cluster.real_servers()[0];
        let ip: IpAddr = if vip.is_ipv6() {
            rs.ip6().unwrap().into()
        } else {
            rs.ip().into()
        };
        let dest = format!("{}:{PORT}", bracket(ip));
        lab.ok(&[
            "-a",
            "-t",
            &svc,
            "-r",
            &dest,
            "-i",
            "--tun-type",
            "gue",
            "--tun-port",
            GUE_PORT,
            csum,
        ]);
        let mut tcpdump = lab
            .cluster
            .lan()
            .spawn(
                Command::new("tcpdump")
                    .args([
                        "-l", "-n", "-vv", "-c", "8", "-i", &rs0_port, "udp", "dst", "port",
                        GUE_PORT,
                    ])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped()),
            )
            .unwrap();
        std::thread::sleep(std::time::Duration::from_secs(1));
        // Eight datagrams at least: two small requests and a transfer of a few segments.
        lab.ask_at(vip, PORT);
        lab.ask_at(vip, PORT);
        lab.cluster.client().bulk_upload(vip, PORT, 20_000).unwrap();
        let out = common::wait_output(&mut tcpdump, std::time::Duration::from_secs(10));
        // The port as tcpdump ends an address with it (a time stamp may hold "6080" too).
        let port = format!(".{GUE_PORT}:");
        let lines: Vec<&str> = out.lines().filter(|l| l.contains(&port)).collect();
        assert!(lines.len() >= 8, "{out}");
        for l in &lines {
            assert!(l.contains(expect), "{csum}: expected {expect}: {l}\n{out}");
        }
        lab.ok(&["-D", "-t", &svc]);
    }
}

#[test]
fn tunnel_options_survive_save_and_restore() {
    let lab = lab();
    let vip = lab.vip();
    tunnel_service(
        &lab,
        vip,
        false,
        &["--tun-type", "gue", "--tun-port", GUE_PORT, "--tun-remcsum"],
    );
    let saved = lab.ok(&["-S", "-n"]);
    assert!(
        saved.contains("-i -w 1 --tun-type gue --tun-port 6080 --tun-remcsum"),
        "{saved}"
    );
    lab.ok(&["-C"]);
    lab.rvsadm_with_stdin(&["-R"], &saved);
    assert_eq!(lab.ok(&["-S", "-n"]), saved);
    let listing = lab.ok(&["-L", "-n", "--tun-info"]);
    assert!(listing.contains("gue"), "{listing}");
}

#[test]
fn udp_is_tunnelled_on_both_families() {
    let mut lab = lab();
    lab.udp = lab.cluster.serve_udp(53).unwrap();
    prepare_real_servers(&lab, "gue");
    let vip4 = lab.vip();
    let vip6: IpAddr = lab.cluster.vip6().unwrap().into();
    for (vip, tun) in [
        (vip4, vec![]),
        (vip6, vec!["--tun-type", "gue", "--tun-port", GUE_PORT]),
    ] {
        let svc = format!("{}:53", bracket(vip));
        lab.ok(&["-A", "-u", &svc, "-s", "rr"]);
        for rs in lab.cluster.real_servers() {
            let ip: IpAddr = if vip.is_ipv6() {
                rs.ip6().unwrap().into()
            } else {
                rs.ip().into()
            };
            let mut args = vec!["-a", "-u", &svc, "-r"];
            let dest = ip.to_string();
            args.push(&dest);
            args.push("-i");
            args.extend(&tun);
            lab.ok(&args);
        }
        let names: Vec<String> = (0..4)
            .map(|i| {
                lab.cluster
                    .client()
                    .udp_request(vip, 53, b"hello", 43000 + i)
                    .unwrap_or_else(|e| panic!("{vip}: {e:#}\n{}", lab.rvsd_log()))
            })
            .collect();
        assert_eq!(
            tally(&names).values().copied().collect::<Vec<_>>(),
            [2, 2],
            "{names:?}"
        );
    }
    let listing = lab.ok(&["-L", "-n"]);
    assert!(listing.contains("Tunnel"), "{listing}");
}

#[test]
fn gre_checksums_are_valid_when_asked_for() {
    // rvs-rs does not check GRE checksums, so the test does, over the bytes tcpdump saw on the
    // wire to the real server: the GRE header and everything after it must sum to 0xffff.
    let lab = lab();
    prepare_real_servers(&lab, "gre");
    let vip = lab.vip();
    let svc = tunnel_service(&lab, vip, false, &["--tun-type", "gre", "--tun-csum"]);
    let rs0_port = lab.cluster.real_servers()[0].bridge_port().to_owned();
    let mut tcpdump = lab
        .cluster
        .lan()
        .spawn(
            Command::new("tcpdump")
                .args([
                    "-l", "-n", "-x", "-c", "12", "-i", &rs0_port, "ip", "proto", "47",
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null()),
        )
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(1));
    for _ in 0..4 {
        lab.ask_at(vip, PORT);
    }
    lab.cluster.client().bulk_upload(vip, PORT, 30_000).unwrap();
    let out = common::wait_output(&mut tcpdump, std::time::Duration::from_secs(10));
    let packets: Vec<Vec<u8>> = out
        .split("\n")
        .fold(Vec::new(), |mut acc: Vec<String>, line| {
            if line.trim_start().starts_with("0x") {
                if let Some(last) = acc.last_mut() {
                    last.push_str(line.split_once(':').map_or("", |(_, h)| h));
                }
            } else if !line.is_empty() {
                acc.push(String::new());
            }
            acc
        })
        .iter()
        .map(|hex| {
            hex.split_whitespace()
                .flat_map(|w| {
                    (0..w.len())
                        .step_by(2)
                        .map(move |i| u8::from_str_radix(&w[i..i + 2], 16).unwrap())
                })
                .collect()
        })
        .filter(|p: &Vec<u8>| !p.is_empty())
        .collect();
    assert!(packets.len() >= 8, "{out}");
    for p in &packets {
        let ihl = (p[0] & 0x0f) as usize * 4;
        assert_eq!(p[9], 47, "not GRE: {p:02x?}");
        assert_eq!(p[ihl] & 0x80, 0x80, "no checksum option: {p:02x?}");
        assert_eq!(
            common::inet_checksum(&p[ihl..]),
            0,
            "bad GRE checksum: {p:02x?}"
        );
    }
    lab.ok(&["-D", "-t", &svc]);
}
