//! The director's XDP programs under generated and mutated frames, run by the kernel itself with
//! BPF_PROG_TEST_RUN (as Katran tests its balancer), thousands of frames in a second, beside the
//! slower end-to-end tests over veth. Each frame starts from a well-formed packet to a service
//! (IPv4 and IPv6, TCP SYN, TCP without SYN, UDP, ICMP) and is cut, has fields set to odd values
//! or random bytes written over its headers. Checked after every frame:
//! - the program never aborts, and answers only PASS, DROP, TX or REDIRECT;
//! - it forwards (TX or REDIRECT) only what an independent parser here judges well formed for a
//!   service: never a truncated, inconsistent, TTL-expired, fragmented or (for a new IPv4 flow)
//!   wrongly summed packet;
//! - a frame passed or dropped leaves no flow entry behind; a forwarded one counts `forwarded`
//!   exactly once, and a dropped one counts some `drop_*`.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
};

mod common;

use common::inet_checksum;
use rvs::{
    control::proto::{Request, Response},
    daemon::{Director, DirectorOptions},
    dataplane::{AttachMode, Dataplane, DirectorMaps, LoadOptions, MapsRead, NextHop},
    model::{DestAddr, DestConfig, Model, Protocol, ServiceConfig, ServiceId},
};
use rvs_common::stats::Counter;
use rvs_testbed::Netns;

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 7);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 7);
const RS: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
const RS6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11);
const FRAMES: usize = 4000;

const XDP_ABORTED: u32 = 0;
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const XDP_REDIRECT: u32 = 4;

/// xorshift64*: reproducible frames (the seed is printed on failure).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Ethernet to `dmac`, then IPv4 or IPv6 to the service, then `l4` (ports, flags filled in).
fn frame(dmac: [u8; 6], v6: bool, proto: u8, syn: bool, cport: u16) -> Vec<u8> {
    let mut l4 = match proto {
        6 => {
            let mut t = vec![0u8; 20];
            t[0..2].copy_from_slice(&cport.to_be_bytes());
            t[2..4].copy_from_slice(&80u16.to_be_bytes());
            t[12] = 5 << 4;
            t[13] = if syn { 0x02 } else { 0x10 };
            t
        }
        17 => {
            let mut u = vec![0u8; 8 + 12];
            u[0..2].copy_from_slice(&cport.to_be_bytes());
            u[2..4].copy_from_slice(&53u16.to_be_bytes());
            u[4..6].copy_from_slice(&20u16.to_be_bytes());
            u
        }
        // ICMP echo (v4 type 8, v6 type 128).
        _ => vec![if v6 { 128 } else { 8 }, 0, 0, 0, 0, 1, 0, 1],
    };
    let mut f = dmac.to_vec();
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x07]);
    if v6 {
        f.extend_from_slice(&0x86ddu16.to_be_bytes());
        let mut ip = vec![0x60, 0, 0, 0];
        ip.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        ip.push(if proto == 1 { 58 } else { proto });
        ip.push(64);
        ip.extend_from_slice(&CLIENT6.octets());
        ip.extend_from_slice(&VIP6.octets());
        if proto != 1 {
            // Over the IPv6 pseudo-header (addresses, length, next header) and the segment.
            let mut summed = ip[8..40].to_vec();
            summed.extend_from_slice(&(l4.len() as u32).to_be_bytes());
            summed.extend_from_slice(&[0, 0, 0, proto]);
            summed.extend_from_slice(&l4);
            let at = if proto == 6 { 16 } else { 6 };
            let c = inet_checksum(&summed);
            l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
        f.extend_from_slice(&ip);
    } else {
        f.extend_from_slice(&0x0800u16.to_be_bytes());
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
        ip.extend_from_slice(&CLIENT.octets());
        ip.extend_from_slice(&VIP.octets());
        let c = inet_checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
    }
    f.extend_from_slice(&l4);
    f
}

/// The flow a frame belongs to, as far as its headers say: addresses, ports, protocol.
fn flow_key(f: &[u8]) -> Option<Vec<u8>> {
    if f.len() < 14 {
        return None;
    }
    let (addrs, proto, l4) = match u16::from_be_bytes([f[12], f[13]]) {
        0x0800 if f.len() >= 34 => (&f[26..34], f[23], 14 + (f[14] & 0xf) as usize * 4),
        0x86dd if f.len() >= 54 => (&f[22..54], f[20], 54),
        _ => return None,
    };
    let ports = f.get(l4..l4 + 4)?;
    Some([addrs, &[proto], ports].concat())
}

/// This test's own judgement: may a director forward `f`? Only a frame to this director's MAC
/// whose IP header is consistent with the frame, not a fragment, with TTL above 1 and (IPv4) a
/// correct header checksum, carrying a whole TCP header (data offset within the packet) or a UDP
/// header whose length fits, or an ICMP message.
fn forwardable(f: &[u8], dmac: [u8; 6], known: bool) -> Result<(), &'static str> {
    if f.len() < 14 || f[..6] != dmac {
        return Err("not addressed here");
    }
    let (proto, l4, ip_end) = match u16::from_be_bytes([f[12], f[13]]) {
        0x0800 => {
            let ip = &f[14..];
            if ip.len() < 20 || ip[0] >> 4 != 4 {
                return Err("short or not v4");
            }
            let ihl = (ip[0] & 0xf) as usize * 4;
            let tot = u16::from_be_bytes([ip[2], ip[3]]) as usize;
            if ihl < 20 || ip.len() < ihl || tot < ihl || tot > ip.len() {
                return Err("IPv4 lengths");
            }
            if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
                return Err("fragment");
            }
            if ip[8] <= 1 {
                return Err("TTL");
            }
            if !known && inet_checksum(&ip[..ihl]) != 0 {
                // A known flow's packets are not summed again; a new one's are.
                return Err("IPv4 checksum");
            }
            (ip[9], 14 + ihl, 14 + tot)
        }
        0x86dd => {
            let ip = &f[14..];
            if ip.len() < 40 || ip[0] >> 4 != 6 {
                return Err("short or not v6");
            }
            let plen = u16::from_be_bytes([ip[4], ip[5]]) as usize;
            if 40 + plen > ip.len() {
                return Err("IPv6 length");
            }
            if ip[7] <= 1 {
                return Err("hop limit");
            }
            (ip[6], 14 + 40, 14 + 40 + plen)
        }
        _ => return Err("not IP"),
    };
    let seg = &f[l4..ip_end];
    match proto {
        6 => {
            if seg.len() < 20 {
                return Err("short TCP");
            }
            let doff = (seg[12] >> 4) as usize * 4;
            if doff < 20 || doff > seg.len() {
                return Err("TCP data offset");
            }
        }
        17 => {
            let ulen = if seg.len() >= 8 {
                u16::from_be_bytes([seg[4], seg[5]]) as usize
            } else {
                0
            };
            if seg.len() < 8 || ulen < 8 || ulen > seg.len() {
                return Err("UDP length");
            }
        }
        1 | 58 => {}
        _ => return Err("not TCP, UDP or ICMP"),
    }
    Ok(())
}

/// One mutation of a well-formed frame.
fn mutate(rng: &mut Rng, f: &mut Vec<u8>) {
    let ip = 14;
    // Field mutations need the whole IP header; a cut frame gets bytes or a tail.
    let whole = f.len() >= if f[12] == 0x08 { ip + 20 } else { ip + 40 };
    let pick = if whole {
        rng.below(10)
    } else {
        [0, 1, 9][rng.below(3)]
    };
    match pick {
        0 => {
            let n = rng.below(f.len());
            f.truncate(n);
        }
        1 => {
            // Random bytes over the IP and transport headers.
            for _ in 0..1 + rng.below(4) {
                let at = ip + rng.below(f.len() - ip);
                f[at] = rng.next() as u8;
            }
        }
        2 if f[12] == 0x08 => f[ip] = 0x40 | rng.below(16) as u8,
        3 if f[12] == 0x08 => {
            let v = rng.next() as u16;
            f[ip + 2..ip + 4].copy_from_slice(&v.to_be_bytes());
        }
        3 => {
            let v = rng.next() as u16;
            f[ip + 4..ip + 6].copy_from_slice(&v.to_be_bytes());
        }
        4 => {
            let ttl = if f[12] == 0x08 { ip + 8 } else { ip + 7 };
            f[ttl] = rng.below(3) as u8;
        }
        5 if f[12] == 0x08 => {
            f[ip + 6] = rng.next() as u8;
            f[ip + 7] = rng.next() as u8;
        }
        6 => {
            // An 802.1Q tag before the IP header.
            let mut tagged = f[..12].to_vec();
            tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
            tagged.extend_from_slice(&f[12..]);
            *f = tagged;
        }
        7 if f[12] == 0x86 => {
            // An extension-header chain: hop-by-hop options, then the transport.
            let next = f[ip + 6];
            f[ip + 6] = 0;
            let ext = [next, 0, 1, 4, 0, 0, 0, 0];
            let mut v = f[..ip + 40].to_vec();
            v.extend_from_slice(&ext);
            v.extend_from_slice(&f[ip + 40..]);
            let plen = u16::from_be_bytes([v[ip + 4], v[ip + 5]]) + 8;
            v[ip + 4..ip + 6].copy_from_slice(&plen.to_be_bytes());
            *f = v;
        }
        8 => {
            // The TCP data offset or UDP length.
            let l4 = if f[12] == 0x08 { ip + 20 } else { ip + 40 };
            if f.len() > l4 + 12 {
                f[l4 + 12] = (rng.below(16) as u8) << 4;
                f[l4 + 4] = rng.next() as u8;
                f[l4 + 5] = rng.next() as u8;
            }
        }
        _ => f.extend((0..rng.below(64)).map(|_| rng.next() as u8)),
    }
}

fn conn_count(maps: &DirectorMaps) -> usize {
    let mut n = 0;
    maps.for_each_conn(&mut |_, _| n += 1);
    n
}

fn counter(c: &[u64], which: Counter) -> u64 {
    c.get(which as usize).copied().unwrap_or(0)
}

fn drops(c: &[u64]) -> u64 {
    [
        Counter::DropNoDest,
        Counter::DropNoNeigh,
        Counter::DropTtl,
        Counter::DropMalformed,
        Counter::DropConnInsert,
        Counter::DropBadDest,
        Counter::DropRedirect,
        Counter::DropAdmission,
        Counter::DropTailCall,
        Counter::DropTooBig,
        Counter::DropTunnelTtl,
        Counter::DropIpChecksum,
    ]
    .iter()
    .map(|w| counter(c, *w))
    .sum()
}

#[test]
fn random_and_mutated_frames_never_forward_a_malformed_packet() {
    let ns = Netns::new("testrun").unwrap();
    ns.exec(&[
        "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
    ])
    .unwrap();
    // A MAC of our own: /sys/class/net shows the root namespace's devices, not these.
    ns.exec(&["ip", "link", "set", "eth0", "address", "02:00:00:00:00:01"])
        .unwrap();
    for dev in ["eth0", "eth1"] {
        ns.exec(&["ip", "link", "set", dev, "up"]).unwrap();
    }
    let pin_dir = PathBuf::from(format!("/sys/fs/bpf/rvs-testrun-{}", std::process::id()));
    let _cleanup = Cleanup(pin_dir.clone());
    ns.enter(|| run(&pin_dir)).unwrap();
}

struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = rvs::dataplane::cleanup_pins(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(pin_dir: &std::path::Path) {
    let ifindex = nix::net::if_::if_nametoindex("eth0").unwrap();
    let dmac = [0x02, 0, 0, 0, 0, 0x01];
    let mut program = Dataplane::load(&LoadOptions {
        pin_dir: pin_dir.to_path_buf(),
        interfaces: vec!["eth0".into()],
        mode: AttachMode::Generic,
        conn_table_size: 65536,
    })
    .expect("loading the director");
    let mut director = Director::new(
        Model::new(rvs_common::maps::MAX_SERVICES, rvs_common::maps::MAX_DESTS),
        Box::new(DirectorMaps::open(pin_dir).unwrap()),
        DirectorOptions {
            state_file: None,
            conn_table_size: 65536,
        },
    );
    let hop = NextHop {
        ifindex,
        smac: dmac,
        dmac: [0x02, 0, 0, 0, 0, 0x11],
        src: None,
        mtu: 1500,
    };
    director.learn_next_hops([(IpAddr::V4(RS), Some(hop)), (IpAddr::V6(RS6), Some(hop))]);
    director.reconcile(false).unwrap();
    let services = [
        (Protocol::Tcp, IpAddr::V4(VIP), 80, IpAddr::V4(RS)),
        (Protocol::Udp, IpAddr::V4(VIP), 53, IpAddr::V4(RS)),
        (Protocol::Tcp, IpAddr::V6(VIP6), 80, IpAddr::V6(RS6)),
        (Protocol::Udp, IpAddr::V6(VIP6), 53, IpAddr::V6(RS6)),
    ];
    for (proto, addr, port, rs) in services {
        let service = ServiceId::Inet { proto, addr, port };
        for req in [
            Request::AddService {
                service,
                config: ServiceConfig::new("rr", addr.is_ipv6()),
            },
            Request::AddDest {
                service,
                dest: DestAddr { addr: rs, port },
                config: DestConfig::default(),
            },
        ] {
            let r = director.handle(req);
            assert!(!matches!(r, Response::Error { .. }), "{r:?}");
        }
    }
    let maps = DirectorMaps::open(pin_dir).unwrap();
    let mut rng = Rng(0x5eed_0000_0000_0001 ^ std::process::id() as u64);
    let seed = rng.0;
    let mut out = vec![0u8; 4096];
    let mut tally = std::collections::BTreeMap::<(u32, bool), u64>::new();
    // Flows the program forwarded: a later packet of one is a known flow's, not summed again.
    let mut flows = std::collections::HashSet::new();
    // The well-formed starting points forward (and make a flow): the set-up works.
    for (v6, proto) in [(false, 6), (false, 17), (true, 6), (true, 17)] {
        let f = frame(dmac, v6, proto, true, 1000);
        let (action, _) = program.test_run(&f, ifindex, &mut out).unwrap();
        let seen: Vec<String> = maps
            .event_counters()
            .iter()
            .zip(rvs_common::stats::COUNTER_NAMES)
            .filter(|(v, _)| **v > 0)
            .map(|(v, n)| format!("{n}={v}"))
            .collect();
        assert!(
            matches!(action, XDP_TX | XDP_REDIRECT),
            "v6 {v6} proto {proto}: action {action}, counters {seen:?}, {} services",
            maps.service_keys().len()
        );
        flows.extend(flow_key(&f));
    }
    for i in 0..FRAMES {
        let v6 = rng.below(2) == 1;
        let proto = [6, 6, 17, 1][rng.below(4)];
        let syn = rng.below(4) != 0;
        // A new client port each time: each frame, if forwarded, opens a flow of its own.
        let cport = 2000 + i as u16;
        let mut f = frame(dmac, v6, proto, syn, cport);
        for _ in 0..1 + rng.below(2) {
            if !f.is_empty() && f.len() > 14 {
                mutate(&mut rng, &mut f);
            }
        }
        if f.len() < 14 {
            // Shorter than an Ethernet header: the kernel refuses to run on it (no NIC hands
            // such a frame to XDP).
            continue;
        }
        let before_conns = conn_count(&maps);
        let before = maps.event_counters();
        let (action, _) = program.test_run(&f, ifindex, &mut out).unwrap();
        let after = maps.event_counters();
        let after_conns = conn_count(&maps);
        let key = flow_key(&f);
        let known = key.as_ref().is_some_and(|k| flows.contains(k));
        let judged = forwardable(&f, dmac, known);
        let ctx =
            || format!("frame {i} (seed {seed:#x}): {f:02x?}, action {action}, judged {judged:?}");
        assert_ne!(action, XDP_ABORTED, "{}", ctx());
        assert!(action <= XDP_REDIRECT, "{}", ctx());
        let forwarded = matches!(action, XDP_TX | XDP_REDIRECT);
        if forwarded {
            assert!(judged.is_ok(), "forwarded a malformed frame: {}", ctx());
            let sent =
                |c: &[u64]| counter(c, Counter::Forwarded) + counter(c, Counter::IcmpForwarded);
            assert_eq!(sent(&after) - sent(&before), 1, "{}", ctx());
            flows.extend(key);
        } else {
            assert_eq!(
                after_conns,
                before_conns,
                "a flow entry for a frame not forwarded: {}",
                ctx()
            );
        }
        if action == XDP_DROP {
            assert!(
                drops(&after) > drops(&before),
                "a drop no counter says: {}",
                ctx()
            );
        }
        *tally.entry((action, judged.is_ok())).or_default() += 1;
    }
    eprintln!("{FRAMES} frames (seed {seed:#x}): (action, judged well formed) -> count: {tally:?}");
    // The mutations reach every outcome: the test does look at drops, passes and forwards.
    for a in [XDP_DROP, XDP_PASS] {
        assert!(
            tally.keys().any(|(k, _)| *k == a),
            "no frame got action {a}: {tally:?}"
        );
    }
    assert!(
        tally
            .keys()
            .any(|(k, _)| matches!(*k, XDP_TX | XDP_REDIRECT)),
        "{tally:?}"
    );
}
