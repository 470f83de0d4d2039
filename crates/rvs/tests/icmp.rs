//! ICMP errors about a flow, end to end: an error a router on the client's side sends about the
//! real server's answer (addressed to the VIP) reaches that real server by the flow's method (NAT:
//! outer and inner headers rewritten to the real server's address and port); a NAT real server's
//! error about the client's packet reaches the client from the VIP, so the client's socket sees
//! it. tcpdump on the wire to the real server shows what arrives.

mod common;

use std::{
    net::{IpAddr, SocketAddr},
    process::{Child, Command, Stdio},
    time::Duration,
};

use common::{Lab, RVS_RS, Topology, bracket, wait_output};
use rvs_testbed::{DrCluster, Host, NatCluster, Netns};

const PORT: u16 = 80;

/// tcpdump on `port` of the LAN `lan`, printing ICMP with its embedded packet. (The filters
/// name the ICMPv6 type: neighbour discovery is ICMPv6 too.)
fn capture(lan: &Netns, port: &str, filter: &[&str]) -> Child {
    let mut args = vec!["-l", "-n", "-v", "-c", "1", "-i", port];
    args.extend(filter);
    let child = lan
        .spawn(
            Command::new("tcpdump")
                .args(&args)
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    child
}

/// The error a router would send about `about` (a TCP or UDP packet from `src` to `dst`): IPv4
/// "fragmentation needed" with MTU 1300, or ICMPv6 "packet too big", sent from the client to
/// `about`'s source (the VIP) through a raw socket.
fn send_too_big(client: &Host, proto: u8, src: SocketAddr, dst: SocketAddr) {
    let mut l4 = Vec::new();
    l4.extend(src.port().to_be_bytes());
    l4.extend(dst.port().to_be_bytes());
    l4.extend([0, 0, 0, 1]);
    let (family, icmp_proto, msg) = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut ip = vec![0x45, 0, 0, 60, 0, 0, 0x40, 0, 64, proto, 0, 0];
            ip.extend(s.octets());
            ip.extend(d.octets());
            let mut m = vec![3, 4, 0, 0, 0, 0];
            m.extend(1300u16.to_be_bytes());
            m.extend(ip);
            m.extend(&l4);
            let c = common::inet_checksum(&m);
            m[2..4].copy_from_slice(&c.to_be_bytes());
            (libc::AF_INET, libc::IPPROTO_ICMP, m)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut ip = vec![0x60, 0, 0, 0, 0, 40, proto, 64];
            ip.extend(s.octets());
            ip.extend(d.octets());
            // The kernel fills in an ICMPv6 checksum.
            let mut m = vec![2, 0, 0, 0];
            m.extend(1300u32.to_be_bytes());
            m.extend(ip);
            m.extend(&l4);
            (libc::AF_INET6, libc::IPPROTO_ICMPV6, m)
        }
        _ => unreachable!(),
    };
    client
        .netns()
        .enter(|| {
            // SAFETY: plain socket calls on buffers valid for their lengths.
            unsafe {
                let fd = libc::socket(family, libc::SOCK_RAW, icmp_proto);
                assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
                let n = match src.ip() {
                    IpAddr::V4(a) => {
                        let mut sin: libc::sockaddr_in = std::mem::zeroed();
                        sin.sin_family = libc::AF_INET as u16;
                        sin.sin_addr.s_addr = u32::from_ne_bytes(a.octets());
                        libc::sendto(
                            fd,
                            msg.as_ptr().cast(),
                            msg.len(),
                            0,
                            (&raw const sin).cast(),
                            size_of::<libc::sockaddr_in>() as u32,
                        )
                    }
                    IpAddr::V6(a) => {
                        let mut sin6: libc::sockaddr_in6 = std::mem::zeroed();
                        sin6.sin6_family = libc::AF_INET6 as u16;
                        sin6.sin6_addr.s6_addr = a.octets();
                        libc::sendto(
                            fd,
                            msg.as_ptr().cast(),
                            msg.len(),
                            0,
                            (&raw const sin6).cast(),
                            size_of::<libc::sockaddr_in6>() as u32,
                        )
                    }
                };
                assert_eq!(
                    n,
                    msg.len() as isize,
                    "sendto: {}",
                    std::io::Error::last_os_error()
                );
                libc::close(fd);
            }
        })
        .unwrap();
}

/// Opens a connection to `vip` and sends an error about the server's answers on it; returns
/// what tcpdump saw on the way to the real server that serves it and the connection's client
/// address.
fn error_about_a_flow<T: Topology>(
    lab: &Lab<T>,
    lan: &Netns,
    vip: IpAddr,
    filter: &[&str],
) -> (String, SocketAddr) {
    let client = lab.cluster.client();
    let mut conn = client.open_tcp(vip, PORT).unwrap();
    let name = conn.ask("hello").unwrap();
    let rs = lab
        .cluster
        .real_servers()
        .iter()
        .find(|h| h.name() == name)
        .unwrap();
    let mut dump = capture(lan, rs.bridge_port(), filter);
    let before = lab.counter("icmp_forwarded");
    let local = conn.local_addr().unwrap();
    send_too_big(client, 6, SocketAddr::new(vip, PORT), local);
    let out = wait_output(&mut dump, Duration::from_secs(5));
    assert_eq!(
        lab.counter("icmp_forwarded"),
        before + 1,
        "{:?}",
        lab.dataplane()
    );
    (out, local)
}

/// The packet bytes of tcpdump's `-x` output.
fn hex_bytes(out: &str) -> Vec<u8> {
    out.lines()
        .filter_map(|l| l.trim_start().strip_prefix("0x"))
        .flat_map(|l| {
            let hex = l.split_once(':').map_or("", |(_, h)| h);
            hex.split_whitespace()
                .flat_map(|w| {
                    (0..w.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(&w[i..i + 2], 16).unwrap())
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn errors_about_direct_routing_and_tunnelled_flows_reach_their_real_server() {
    let cluster = DrCluster::builder()
        .real_servers(2)
        .ipv6(true)
        .build()
        .unwrap();
    let lab = Lab::on(cluster, PORT, &[]);
    let vip4 = lab.vip();
    let vip6: IpAddr = lab.cluster.vip6().unwrap().into();
    for vip in [vip4, vip6] {
        let svc = format!("{}:{PORT}", bracket(vip));
        lab.ok(&["-A", "-t", &svc, "-s", "rr"]);
        for rs in lab.cluster.real_servers() {
            let ip: IpAddr = if vip.is_ipv6() {
                rs.ip6().unwrap().into()
            } else {
                rs.ip().into()
            };
            lab.ok(&["-a", "-t", &svc, "-r", &ip.to_string(), "-g"]);
        }
    }
    let (out, local) = error_about_a_flow(&lab, lab.cluster.lan(), vip4, &["icmp"]);
    assert!(out.contains("need to frag (mtu 1300)"), "{out}");
    assert!(
        out.contains(&format!("{vip4}.{PORT} > {}.{}", local.ip(), local.port())),
        "{out}"
    );
    let (out, _) = error_about_a_flow(
        &lab,
        lab.cluster.lan(),
        vip6,
        &["icmp6", "and", "ip6[40]", "==", "2"],
    );
    assert!(
        out.contains("packet too big") && out.contains("mtu 1300"),
        "{out}"
    );

    // The same through a tunnel: the error arrives encapsulated, and the real server unwraps it.
    let vip4_text = vip4.to_string();
    for rs in lab.cluster.real_servers() {
        rs.run(Command::new(RVS_RS).args([
            "up",
            "--vip",
            &vip4_text,
            "--interface",
            "eth0",
            "--decap",
            "ipip",
        ]))
        .unwrap();
    }
    let svc = format!("{vip4}:{PORT}");
    lab.ok(&["-D", "-t", &svc]);
    lab.ok(&["-A", "-t", &svc, "-s", "rr"]);
    for rs in lab.cluster.real_servers() {
        lab.ok(&["-a", "-t", &svc, "-r", &rs.ip().to_string(), "-i"]);
    }
    let (out, _) = error_about_a_flow(&lab, lab.cluster.lan(), vip4, &["ip", "proto", "4"]);
    assert!(out.contains("need to frag (mtu 1300)"), "{out}");
}

#[test]
fn nat_rewrites_errors_both_ways() {
    let cluster = NatCluster::builder()
        .real_servers(2)
        .ipv6(true)
        .build()
        .unwrap();
    let mut lab = Lab::on(cluster, 8080, &[]);
    lab.udp = lab.cluster.serve_udp(5353).unwrap();
    let vip4 = lab.vip();
    let vip6: IpAddr = lab.cluster.vip6().unwrap().into();
    for vip in [vip4, vip6] {
        let v6 = vip.is_ipv6();
        let rs_ip = |rs: &Host| -> IpAddr {
            if v6 {
                rs.ip6().unwrap().into()
            } else {
                rs.ip().into()
            }
        };
        let svc = format!("{}:{PORT}", bracket(vip));
        lab.ok(&["-A", "-t", &svc, "-s", "rr"]);
        // UDP to a port where the real servers run nothing: they answer "port unreachable".
        let closed = format!("{}:54", bracket(vip));
        lab.ok(&["-A", "-u", &closed, "-s", "rr"]);
        for rs in lab.cluster.real_servers() {
            lab.ok(&[
                "-a",
                "-t",
                &svc,
                "-r",
                &format!("{}:8080", bracket(rs_ip(rs))),
                "-m",
            ]);
            lab.ok(&[
                "-a",
                "-u",
                &closed,
                "-r",
                &format!("{}:5999", bracket(rs_ip(rs))),
                "-m",
            ]);
        }
    }
    // Client side to real server: outer destination and inner source become the real server's.
    let (out, local) = error_about_a_flow(&lab, lab.cluster.back_lan(), vip4, &["icmp"]);
    assert!(out.contains("need to frag (mtu 1300)"), "{out}");
    let served_by = lab
        .cluster
        .real_servers()
        .iter()
        .map(|rs| rs.ip())
        .find(|ip| out.contains(&format!("{ip}.8080 > {}.{}", local.ip(), local.port())))
        .unwrap_or_else(|| panic!("inner header not rewritten to a real server:\n{out}"));
    assert!(out.contains(&format!("> {served_by}: ICMP")), "{out}");
    // tcpdump does not decode the packet inside "packet too big": read the bytes (-x).
    let (out, local) = error_about_a_flow(
        &lab,
        lab.cluster.back_lan(),
        vip6,
        &["-x", "icmp6", "and", "ip6[40]", "==", "2"],
    );
    assert!(
        out.contains("packet too big") && out.contains("[icmp6 sum ok]"),
        "{out}"
    );
    let bytes = hex_bytes(&out);
    // Outer IPv6 (40) + ICMPv6 (8), then the embedded header: source at 8..24, then the ports.
    let inner = &bytes[48..];
    let served_by = lab
        .cluster
        .real_servers()
        .iter()
        .find(|rs| inner[8..24] == rs.ip6().unwrap().octets())
        .unwrap_or_else(|| panic!("inner source not rewritten to a real server:\n{out}"));
    assert_eq!(
        &bytes[24..40],
        &served_by.ip6().unwrap().octets(),
        "outer destination"
    );
    assert_eq!(
        u16::from_be_bytes([inner[40], inner[41]]),
        8080,
        "inner source port"
    );
    assert_eq!(
        u16::from_be_bytes([inner[42], inner[43]]),
        local.port(),
        "inner destination port"
    );

    // Real server to client: the client's connected socket learns the port is closed, which it
    // only does if the error comes from VIP:54 about its own datagram.
    for vip in [vip4, vip6] {
        let before = lab.counter("icmp_forwarded");
        let err = lab
            .cluster
            .client()
            .udp_request(vip, 54, b"anyone?", 0)
            .expect_err("nothing listens there");
        let io = err
            .chain()
            .find_map(|e| e.downcast_ref::<std::io::Error>())
            .unwrap_or_else(|| panic!("{err:#}"));
        assert_eq!(
            io.kind(),
            std::io::ErrorKind::ConnectionRefused,
            "{vip}: {err:#}"
        );
        assert_eq!(lab.counter("icmp_forwarded"), before + 1);
    }
}
