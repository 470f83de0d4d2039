//! Malformed and unusual packets addressed to a service, written byte by byte onto the client's
//! wire with a packet socket: the director forwards what is valid (IPv4 options included),
//! passes fragments to the kernel (rvs does not reassemble), drops and counts truncated or
//! inconsistent headers, and carries on serving.

mod common;

use std::collections::BTreeMap;

use common::{
    Lab,
    frames::{V4, send_frames, tcp, udp},
};

const PORT: u16 = 80;
const UDP_PORT: u16 = 53;

/// A director serving TCP :80 and UDP :53 by DR from one real server, MACs learnt.
fn serving_lab() -> Lab {
    let mut lab = Lab::new(1, PORT);
    lab.udp = lab.cluster.serve_udp(UDP_PORT).unwrap();
    let svc = lab.vip_port(PORT);
    let udp_svc = lab.vip_port(UDP_PORT);
    let rs = format!("{}:{PORT}", lab.rs_ip(0));
    lab.ok(&["-A", "-t", &svc, "-s", "rr"]);
    lab.ok(&["-a", "-t", &svc, "-r", &rs, "-g"]);
    lab.ok(&["-A", "-u", &udp_svc, "-s", "rr"]);
    lab.ok(&["-a", "-u", &udp_svc, "-r", &lab.rs_ip(0).to_string(), "-g"]);
    // Learn each other's MACs the normal way first.
    assert_eq!(lab.ask(PORT), "rs0");
    lab
}

/// The counters that changed since `before`, by how much.
fn changes(lab: &Lab, before: &BTreeMap<String, u64>) -> Vec<(String, u64)> {
    lab.dataplane()
        .into_iter()
        .filter(|(k, v)| before[k.as_str()] != *v)
        .map(|(k, v)| {
            let d = v - before[k.as_str()];
            (k, d)
        })
        .collect()
}

#[test]
fn malformed_packets_are_counted_and_dropped_valid_odd_ones_are_served() {
    let lab = serving_lab();
    let vip = lab.cluster.vip();
    let svc = lab.vip_port(PORT);

    let client = lab.cluster.client();
    let (dmac, smac) = (lab.cluster.director().mac().octets(), client.mac().octets());
    let src = client.ip();
    let before = lab.dataplane();
    let conns_before = lab.ok(&["-L", "-n", "--stats", "--exact"]);

    let mut with_options = V4::new(6, src, vip, tcp(50001, PORT, 5));
    with_options.options = vec![1, 1, 1, 0]; // NOP NOP NOP EOL: a 24-byte header
    let mut truncated_tcp = V4::new(6, src, vip, tcp(50002, PORT, 5)[..8].to_vec());
    truncated_tcp.tot_len = Some(40);
    let mut too_long = V4::new(6, src, vip, tcp(50003, PORT, 5));
    too_long.tot_len = Some(1000);
    let bad_doff = V4::new(6, src, vip, tcp(50004, PORT, 2));
    let mut short_ip_len = V4::new(6, src, vip, tcp(50005, PORT, 5));
    short_ip_len.tot_len = Some(30);
    let mut fragment = V4::new(6, src, vip, tcp(50006, PORT, 5));
    fragment.frags = 0x2000; // more fragments, offset 0
    let mut truncated_udp = V4::new(17, src, vip, udp(50007, UDP_PORT, b"x")[..6].to_vec());
    truncated_udp.tot_len = Some(34);
    let mut bad_ihl = V4::new(6, src, vip, tcp(50008, PORT, 5));
    bad_ihl.ihl = Some(3);

    let frames: Vec<Vec<u8>> = [
        &with_options,
        &truncated_tcp,
        &too_long,
        &bad_doff,
        &short_ip_len,
        &fragment,
        &truncated_udp,
        &bad_ihl,
    ]
    .iter()
    .map(|p| p.frame(dmac, smac))
    .collect();
    send_frames(lab.cluster.client(), &frames);

    let delta = |name: &str| lab.counter(name) - before[name];
    common::poll(|| delta("drop_malformed") >= 5);
    let changed = changes(&lab, &before);
    assert_eq!(
        delta("drop_malformed"),
        5,
        "counters that changed: {changed:?}"
    );
    assert_eq!(delta("pass_fragment"), 1, "{:?}", lab.dataplane());
    // The SYN with options was forwarded like any other and made a connection entry; the rest
    // made none.
    let conns = |listing: &str| common::service_stats(listing, "TCP", &svc)[0];
    let after = lab.ok(&["-L", "-n", "--stats", "--exact"]);
    assert_eq!(conns(&after) - conns(&conns_before), 1, "{after}");
    assert!(delta("forwarded") >= 1);
    // The director is none the worse.
    assert_eq!(lab.ask(PORT), "rs0");
    assert_eq!(client.udp_request(vip, UDP_PORT, b"hi", 0).unwrap(), "rs0");
}

/// Packets that would open a flow but cannot be forwarded, or that the kernel would not take:
/// a SYN with a wrong IPv4 header checksum (the kernel's ip_rcv drops it before IPVS), SYNs
/// with TTL 1 and 0, UDP whose length field is below its header or beyond the IP payload.
/// Each is dropped and counted, and none leaves a connection behind.
#[test]
fn packets_that_cannot_be_forwarded_open_no_flow() {
    let lab = serving_lab();
    let vip = lab.cluster.vip();
    let svc = lab.vip_port(PORT);
    let udp_svc = lab.vip_port(UDP_PORT);

    let client = lab.cluster.client();
    let (dmac, smac) = (lab.cluster.director().mac().octets(), client.mac().octets());
    let src = client.ip();
    let before = lab.dataplane();
    let stats_before = lab.ok(&["-L", "-n", "--stats", "--exact"]);

    let mut bad_checksum = V4::new(6, src, vip, tcp(50101, PORT, 5)).frame(dmac, smac);
    bad_checksum[14 + 10] ^= 0x5a;
    let mut ttl1 = V4::new(6, src, vip, tcp(50102, PORT, 5));
    ttl1.ttl = 1;
    let mut ttl0 = V4::new(6, src, vip, tcp(50103, PORT, 5));
    ttl0.ttl = 0;
    let mut short_udp = udp(50104, UDP_PORT, b"hello");
    short_udp[4..6].copy_from_slice(&4u16.to_be_bytes());
    let mut long_udp = udp(50105, UDP_PORT, b"hello");
    long_udp[4..6].copy_from_slice(&200u16.to_be_bytes());
    let frames = vec![
        bad_checksum,
        ttl1.frame(dmac, smac),
        ttl0.frame(dmac, smac),
        V4::new(17, src, vip, short_udp).frame(dmac, smac),
        V4::new(17, src, vip, long_udp).frame(dmac, smac),
    ];
    send_frames(client, &frames);

    let delta = |name: &str| lab.counter(name) - before[name];
    common::poll(|| {
        delta("drop_ip_checksum") >= 1 && delta("drop_ttl") >= 2 && delta("drop_malformed") >= 2
    });
    let changed = changes(&lab, &before);
    assert_eq!(delta("drop_ip_checksum"), 1, "{changed:?}");
    assert_eq!(delta("drop_ttl"), 2, "{changed:?}");
    assert_eq!(delta("drop_malformed"), 2, "{changed:?}");
    assert_eq!(delta("forwarded"), 0, "{changed:?}");
    let stats = lab.ok(&["-L", "-n", "--stats", "--exact"]);
    for (proto, s) in [("TCP", &svc), ("UDP", &udp_svc)] {
        let conns = |listing: &str| common::service_stats(listing, proto, s)[0];
        assert_eq!(conns(&stats), conns(&stats_before), "{proto}: {stats}");
    }
    let table = lab.ok(&["-L", "-n", "-c"]);
    for port in 50101..=50105 {
        assert!(
            !table.contains(&format!(":{port} ")),
            "a flow from port {port}:\n{table}"
        );
    }
    assert_eq!(lab.ask(PORT), "rs0");
    assert_eq!(client.udp_request(vip, UDP_PORT, b"hi", 0).unwrap(), "rs0");
}
