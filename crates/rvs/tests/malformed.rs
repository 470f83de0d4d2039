//! Malformed and unusual packets addressed to a service, written byte by byte onto the client's
//! wire with a packet socket: the director forwards what is valid (IPv4 options included),
//! passes fragments to the kernel (rvs does not reassemble), drops and counts truncated or
//! inconsistent headers, and carries on serving.

mod common;

use std::{net::Ipv4Addr, os::fd::AsRawFd};

use common::Lab;

const PORT: u16 = 80;
const UDP_PORT: u16 = 53;

/// An IPv4 packet in an Ethernet frame. `options` go after the 20-byte header (a multiple of
/// 4); `tot_len` overrides the IP length; `frags` is the flags/offset field.
struct V4 {
    proto: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    options: Vec<u8>,
    payload: Vec<u8>,
    tot_len: Option<u16>,
    ihl: Option<u8>,
    frags: u16,
}

impl V4 {
    fn new(proto: u8, src: Ipv4Addr, dst: Ipv4Addr, payload: Vec<u8>) -> V4 {
        V4 {
            proto,
            src,
            dst,
            options: vec![],
            payload,
            tot_len: None,
            ihl: None,
            frags: 0x4000,
        }
    }

    fn frame(&self, dmac: [u8; 6], smac: [u8; 6]) -> Vec<u8> {
        let hlen = 20 + self.options.len();
        let tot = self.tot_len.unwrap_or((hlen + self.payload.len()) as u16);
        let ihl = self.ihl.unwrap_or((hlen / 4) as u8);
        let mut ip = vec![0x40 | ihl, 0];
        ip.extend(tot.to_be_bytes());
        ip.extend([0x12, 0x34]);
        ip.extend(self.frags.to_be_bytes());
        ip.extend([64, self.proto, 0, 0]);
        ip.extend(self.src.octets());
        ip.extend(self.dst.octets());
        ip.extend(&self.options);
        let c = common::inet_checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let mut f = Vec::new();
        f.extend(dmac);
        f.extend(smac);
        f.extend([0x08, 0x00]);
        f.extend(ip);
        f.extend(&self.payload);
        f
    }
}

/// A TCP header: ports, SYN, data offset `doff` words.
fn tcp(sport: u16, dport: u16, doff: u8) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend(sport.to_be_bytes());
    h.extend(dport.to_be_bytes());
    h.extend(1000u32.to_be_bytes());
    h.extend(0u32.to_be_bytes());
    h.extend([doff << 4, 0x02]);
    h.extend(64240u16.to_be_bytes());
    h.extend([0, 0, 0, 0]);
    h
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend(sport.to_be_bytes());
    h.extend(dport.to_be_bytes());
    h.extend(((8 + payload.len()) as u16).to_be_bytes());
    h.extend([0, 0]);
    h.extend(payload);
    h
}

/// Sends raw frames out of the client's eth0.
fn send_frames(lab: &Lab, frames: &[Vec<u8>]) {
    let client = lab.cluster.client();
    let ifindex = client.eth0().ifindex();
    let fd = client
        .netns()
        .enter(|| {
            // SAFETY: plain socket(2).
            let fd = unsafe {
                libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW,
                    (libc::ETH_P_ALL as u16).to_be() as i32,
                )
            };
            assert!(
                fd >= 0,
                "AF_PACKET socket: {}",
                std::io::Error::last_os_error()
            );
            // SAFETY: fd was just opened and is owned here.
            unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }
        })
        .unwrap();
    for f in frames {
        // SAFETY: an all-zero sockaddr_ll, then filled in.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = ifindex as i32;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&f[..6]);
        // SAFETY: the buffer and the address are valid for the lengths given.
        let n = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                f.as_ptr().cast(),
                f.len(),
                0,
                (&raw const sll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(
            n,
            f.len() as isize,
            "sendto: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[test]
fn malformed_packets_are_counted_and_dropped_valid_odd_ones_are_served() {
    let mut lab = Lab::new(1, PORT);
    lab.udp = lab.cluster.serve_udp(UDP_PORT).unwrap();
    let vip = lab.cluster.vip();
    let svc = lab.vip_port(PORT);
    let udp_svc = lab.vip_port(UDP_PORT);
    let rs = format!("{}:{PORT}", lab.rs_ip(0));
    lab.ok(&["-A", "-t", &svc, "-s", "rr"]);
    lab.ok(&["-a", "-t", &svc, "-r", &rs, "-g"]);
    lab.ok(&["-A", "-u", &udp_svc, "-s", "rr"]);
    lab.ok(&["-a", "-u", &udp_svc, "-r", &lab.rs_ip(0).to_string(), "-g"]);
    // Learn each other's MACs the normal way first.
    assert_eq!(lab.ask(PORT), "rs0");

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
    send_frames(&lab, &frames);

    let delta = |name: &str| lab.counter(name) - before[name];
    common::poll(|| delta("drop_malformed") >= 5);
    let now = lab.dataplane();
    let changed: Vec<(String, u64)> = now
        .iter()
        .filter(|(k, v)| before[k.as_str()] != **v)
        .map(|(k, v)| (k.clone(), v - before[k.as_str()]))
        .collect();
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
