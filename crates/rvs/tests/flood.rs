//! A SYN flood from random sources against a director with a small connection table: established
//! flows keep working while the flood fills the embryonic table and is counted; once it stops,
//! idle handshakes are shed and new clients are served again. With an admission limit, the flood
//! is refused at the door and counted.

mod common;

use std::{
    net::{Ipv4Addr, SocketAddrV4},
    time::Duration,
};

use common::Lab;
use rvs_common::csum::checksum;
use rvs_testbed::{Netns, poll_until};

const PORT: u16 = 80;

/// Sends `count` TCP SYNs to `dst` from random sources in 198.19.0.0/16 (not routable back, so
/// the real server's answers go nowhere), through a raw socket in `ns`.
fn syn_flood(ns: &Netns, dst: SocketAddrV4, count: u32) {
    let fd = ns
        .enter(raw::socket)
        .expect("entering the client namespace");
    let mut seed: u32 = 0x1234_5678;
    let mut packet = [0u8; 40];
    for _ in 0..count {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let src = Ipv4Addr::new(198, 19, (seed >> 8) as u8, seed as u8);
        let sport = 1024 + (seed >> 16) as u16 % 60000;
        build_syn(&mut packet, src, sport, *dst.ip(), dst.port(), seed);
        raw::send_to(&fd, &packet, *dst.ip());
    }
}

fn build_syn(p: &mut [u8; 40], src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, seq: u32) {
    *p = [0; 40];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&40u16.to_be_bytes());
    p[6] = 0x40; // DF
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let c = checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let t = &mut p[20..];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = 0x02; // SYN
    t[14..16].copy_from_slice(&64240u16.to_be_bytes());
    let mut pseudo = Vec::with_capacity(32);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 6, 0, 20]);
    pseudo.extend_from_slice(&p[20..40]);
    let c = checksum(&pseudo);
    p[36..38].copy_from_slice(&c.to_be_bytes());
}

/// A raw IPv4 socket (IP_HDRINCL) with plain libc calls.
mod raw {
    use std::net::Ipv4Addr;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    pub fn socket() -> OwnedFd {
        // SAFETY: plain socket call; the result is checked.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
        assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
        // SAFETY: a fresh descriptor we own.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }

    pub fn send_to(fd: &OwnedFd, packet: &[u8], dst: Ipv4Addr) {
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(dst.octets()),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: the buffer and the address are valid for the call.
        unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                packet.as_ptr() as *const _,
                packet.len(),
                0,
                &addr as *const _ as *const libc::sockaddr,
                size_of::<libc::sockaddr_in>() as u32,
            );
        }
    }
}

fn counter(lab: &Lab, name: &str) -> u64 {
    lab.ok(&["--dataplane"])
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{name} "))
                .map(|v| v.parse().unwrap())
        })
        .unwrap()
}

fn setup(lab: &Lab) {
    let vip = lab.vip_port(PORT);
    lab.ok(&["-A", "-t", &vip, "-s", "rr"]);
    lab.ok(&["-a", "-t", &vip, "-r", &format!("{}:{PORT}", lab.rs_ip(0))]);
}

#[test]
fn established_flows_survive_a_syn_flood_that_fills_the_embryonic_table() {
    // 4096 flows: 1024 embryonic.
    let lab = Lab::with(1, PORT, 24, &["--conn-table-size", "4096"]);
    setup(&lab);
    let mut established = lab.cluster.client().open_tcp(lab.vip(), PORT).unwrap();
    assert_eq!(established.ask("before").unwrap(), "rs0");

    let vip = SocketAddrV4::new(lab.cluster.vip(), PORT);
    syn_flood(lab.cluster.client().netns(), vip, 20_000);
    // The embryonic table filled up: further SYNs could not be recorded, and were counted.
    assert!(
        counter(&lab, "drop_conn_insert") > 10_000,
        "{}",
        lab.ok(&["--dataplane"])
    );
    // The established flow lives in the other table and did not notice.
    assert_eq!(established.ask("during").unwrap(), "rs0");

    // Idle handshakes are shed first once the flood stops; new clients get in again.
    poll_until(
        Duration::from_secs(15),
        "idle handshakes to be shed",
        || Ok((counter(&lab, "drop_embryonic") > 0).then_some(())),
    )
    .unwrap();
    let served = poll_until(Duration::from_secs(10), "a new client to be served", || {
        Ok(lab
            .cluster
            .client()
            .tcp_request(lab.vip(), PORT)
            .ok()
            .map(drop))
    });
    if let Err(e) = served {
        panic!(
            "{e:#}\n{}\n{}\nconns: {}\n{}",
            lab.ok(&["--dataplane"]),
            lab.ok(&["-L", "-n"]),
            lab.ok(&["-L", "-c", "-n"]).lines().count(),
            lab.rvsd_log()
        );
    }
    assert_eq!(established.ask("after").unwrap(), "rs0");
}

#[test]
fn an_admission_limit_turns_a_flood_away_at_the_door() {
    let lab = Lab::with(1, PORT, 24, &["--new-flow-rate", "200"]);
    setup(&lab);
    let mut established = lab.cluster.client().open_tcp(lab.vip(), PORT).unwrap();
    established.ask("before").unwrap();
    let vip = SocketAddrV4::new(lab.cluster.vip(), PORT);
    syn_flood(lab.cluster.client().netns(), vip, 5_000);
    assert!(
        counter(&lab, "drop_admission") > 1_000,
        "{}",
        lab.ok(&["--dataplane"])
    );
    assert_eq!(counter(&lab, "drop_conn_insert"), 0);
    assert_eq!(established.ask("during").unwrap(), "rs0");
}
