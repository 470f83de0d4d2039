//! The table and cache schedulers over real packets: sh, mh and dh pick, for clients at many
//! addresses (and ports), exactly the server the reference tables pick; quiescing a server under
//! mh moves only its own clients; twos never picks a quiescent server; lblc and lblcr follow
//! their reference caches.

mod common;

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
};

use common::Lab;
use rvs::{
    model::{Dest, DestAddr, DestConfig},
    sched::{candidate::Candidate, dh, lblc, lblcr, mh, sh},
};

const PORT: u16 = 80;

/// The client's extra source addresses.
fn sources(n: u8) -> Vec<IpAddr> {
    (1..=n)
        .map(|i| IpAddr::V4(Ipv4Addr::new(198, 18, 1, i)))
        .collect()
}

/// A lab on a /16 LAN whose client owns `n` extra addresses.
fn lab_with_sources(real_servers: usize, n: u8) -> Lab {
    let lab = Lab::with(real_servers, PORT, 16, &[]);
    for a in sources(n) {
        lab.cluster.client().add_address(a).unwrap();
    }
    lab
}

/// Adds rs0..rsN with `weights`; returns the kernel list (newest first) as reference dests whose
/// ids are the server indexes.
fn add(lab: &Lab, vip: &str, weights: &[i32]) -> Vec<Dest> {
    for (i, w) in weights.iter().enumerate() {
        lab.ok(&[
            "-a",
            "-t",
            vip,
            "-r",
            &format!("{}:{PORT}", lab.rs_ip(i)),
            "-w",
            &w.to_string(),
        ]);
    }
    (0..weights.len())
        .rev()
        .map(|i| Dest {
            addr: DestAddr {
                addr: IpAddr::V4(lab.rs_ip(i)),
                port: PORT,
            },
            config: DestConfig {
                weight: weights[i],
                ..DestConfig::default()
            },
            id: i as u32,
            last_weight: weights[i],
        })
        .collect()
}

/// The server (index) answering a new connection from `src:sport`.
fn ask_from(lab: &Lab, src: IpAddr, sport: u16) -> u32 {
    let mut c = lab
        .cluster
        .client()
        .open_tcp_from(SocketAddr::new(src, sport), lab.vip(), PORT)
        .unwrap_or_else(|e| panic!("from {src}:{sport}: {e:#}\n{}", lab.rvsd_log()));
    c.ask("who")
        .unwrap()
        .trim_start_matches("rs")
        .parse()
        .unwrap()
}

#[test]
fn sh_picks_the_reference_bucket_with_and_without_port() {
    let lab = lab_with_sources(3, 20);
    let vip = lab.vip_port(PORT);
    lab.ok(&["-A", "-t", &vip, "-s", "sh"]);
    let dests = add(&lab, &vip, &[1, 2, 3]);
    let table = sh::table(&dests);
    for src in sources(20) {
        let want = sh::pick(&table, &src, 0, false, |_| true).unwrap();
        assert_eq!(ask_from(&lab, src, 0), want, "client {src}");
        // Without sh-port the source port does not matter.
        assert_eq!(ask_from(&lab, src, 40000), want, "client {src}:40000");
    }
    lab.ok(&["-E", "-t", &vip, "-s", "sh", "-b", "sh-port"]);
    for (k, src) in sources(10).into_iter().enumerate() {
        let port = 20000 + k as u16 * 7;
        let want = sh::pick(&table, &src, port, false, |_| true).unwrap();
        assert_eq!(
            ask_from(&lab, src, port),
            want,
            "client {src}:{port} with sh-port"
        );
    }
}

#[test]
fn mh_picks_the_reference_slot_and_quiescing_moves_only_that_servers_clients() {
    let lab = lab_with_sources(3, 20);
    let vip = lab.vip_port(PORT);
    lab.ok(&["-A", "-t", &vip, "-s", "mh", "-b", "mh-fallback"]);
    let mut dests = add(&lab, &vip, &[1, 1, 1]);
    let table = mh::table(&dests);
    let mut before = HashMap::new();
    for src in sources(20) {
        let want = mh::pick(&table, &src, 0, true, |_| true).unwrap();
        let got = ask_from(&lab, src, 0);
        assert_eq!(got, want, "client {src}");
        before.insert(src, got);
    }
    // Quiesce rs1: the table stays (built from the last weight); its clients are rehashed.
    lab.ok(&[
        "-e",
        "-t",
        &vip,
        "-r",
        &format!("{}:{PORT}", lab.rs_ip(1)),
        "-w",
        "0",
    ]);
    dests.iter_mut().find(|d| d.id == 1).unwrap().config.weight = 0;
    assert_eq!(mh::table(&dests), table);
    for src in sources(20) {
        let want = mh::pick(&table, &src, 0, true, |id| id != 1).unwrap();
        let got = ask_from(&lab, src, 0);
        assert_eq!(got, want, "client {src} after quiescing rs1");
        if before[&src] != 1 {
            assert_eq!(
                got, before[&src],
                "client {src} moved though its server stayed"
            );
        }
    }
}

#[test]
fn dh_picks_by_destination_and_refuses_a_quiescent_bucket() {
    let lab = lab_with_sources(2, 3);
    let vip = lab.vip_port(PORT);
    lab.ok(&["-A", "-t", &vip, "-s", "dh"]);
    let dests = add(&lab, &vip, &[1, 1]);
    let table = dh::table(&dests);
    let want = table[dh::bucket(&lab.vip())];
    // Every flow to this VIP hashes the same destination address.
    for src in sources(3) {
        assert_eq!(ask_from(&lab, src, 0), want);
    }
    lab.ok(&[
        "-e",
        "-t",
        &vip,
        "-r",
        &format!("{}:{PORT}", lab.rs_ip(want as usize)),
        "-w",
        "0",
    ]);
    let c = lab.cluster.client().open_tcp(lab.vip(), PORT);
    assert!(
        c.is_err(),
        "dh has no fallback: no server for this destination"
    );
    let counters = lab.ok(&["--dataplane"]);
    let dropped: u64 = counters
        .lines()
        .find_map(|l| l.strip_prefix("drop_no_dest "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(dropped >= 1, "{counters}");
}

#[test]
fn twos_never_picks_a_quiescent_server_and_uses_the_others() {
    let lab = Lab::new(3, PORT);
    let vip = lab.vip_port(PORT);
    lab.ok(&["-A", "-t", &vip, "-s", "twos"]);
    add(&lab, &vip, &[2, 0, 3]);
    let picks: Vec<String> = (0..30).map(|_| lab.ask(PORT)).collect();
    assert!(!picks.iter().any(|p| p == "rs1"), "{picks:?}");
    assert!(
        picks.iter().any(|p| p == "rs0") && picks.iter().any(|p| p == "rs2"),
        "{picks:?}"
    );
}

#[test]
fn lblc_sticks_to_a_destinations_server_until_it_overflows() {
    let lab = Lab::new(2, PORT);
    let vip = lab.vip_port(PORT);
    lab.ok(&["-A", "-t", &vip, "-s", "lblc"]);
    add(&lab, &vip, &[2, 2]);
    // Every flow has the VIP as destination: one cache entry decides. Open connections raise the
    // cached server's active count until it is above its weight while the other has room.
    let mut cache = lblc::Cache::default();
    let mut active = [0u32; 2];
    let mut open = Vec::new();
    for step in 0..6 {
        let list: Vec<Candidate> = [1usize, 0]
            .iter()
            .map(|&i| Candidate {
                weight: 2,
                active: active[i],
                inactive: 0,
                overloaded: false,
            })
            .collect();
        let want = [1usize, 0][cache.pick(&"vip", &list).unwrap()];
        let mut c = lab.cluster.client().open_tcp(lab.vip(), PORT).unwrap();
        let got: usize = c
            .ask("x")
            .unwrap()
            .trim_start_matches("rs")
            .parse()
            .unwrap();
        assert_eq!(got, want, "step {step}, active {active:?}");
        active[got] += 1;
        open.push(c);
    }
    assert!(
        active[0] > 0 && active[1] > 0,
        "the cache moved once the first server overflowed"
    );
}

#[test]
fn lblcr_grows_its_set_when_a_member_overflows() {
    let lab = Lab::new(2, PORT);
    let vip = lab.vip_port(PORT);
    lab.ok(&["-A", "-t", &vip, "-s", "lblcr"]);
    add(&lab, &vip, &[1, 2]);
    let mut cache = lblcr::Cache {
        expiration: u64::MAX / 2,
        ..lblcr::Cache::default()
    };
    let mut active = [0u32; 2];
    let mut open = Vec::new();
    for step in 0..7 {
        let list: Vec<Candidate> = [1usize, 0]
            .iter()
            .map(|&i| Candidate {
                weight: [1, 2][i],
                active: active[i],
                inactive: 0,
                overloaded: false,
            })
            .collect();
        let want = [1usize, 0][cache.pick(&"vip", &list, step).unwrap()];
        let mut c = lab.cluster.client().open_tcp(lab.vip(), PORT).unwrap();
        let got: usize = c
            .ask("x")
            .unwrap()
            .trim_start_matches("rs")
            .parse()
            .unwrap();
        assert_eq!(got, want, "step {step}, active {active:?}");
        active[got] += 1;
        open.push(c);
    }
    assert_eq!(
        cache.sets["vip"].members.len(),
        2,
        "the set grew to both servers"
    );
}
