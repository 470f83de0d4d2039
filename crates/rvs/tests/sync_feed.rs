//! Connection sync's data-plane side, end to end over real packets in namespaces: the director
//! reports flows due for sync in its ring buffer (turned on by a direct write of the data
//! plane's settings through `DirectorMaps`, as rvsd's sync task will), and a flow written by the
//! sync writer is forwarded, counted and expired as one the director recorded itself.

mod common;

use std::{net::IpAddr, time::Duration};

use common::{Lab, dest_rows};
use rvs::{
    daemon::expiry::monotonic_ns,
    dataplane::{
        DirectorMaps, Field, ip_words,
        sync_feed::{SyncFeed, SyncRule, set_sync},
        synced::{Outcome, SyncedFlow, write_synced},
    },
};
use rvs_common::{
    AF_INET, IPPROTO_TCP, IPPROTO_UDP,
    conn::{ConnKey, KIND_CONN, conn_flags},
    sync::{SyncEvent, sync_reason},
    tcp_state,
};

const PORT: u16 = 80;
const DNS: u16 = 53;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn key(lab: &Lab, proto: u8, cport: u16, vport: u16) -> ConnKey {
    ConnKey {
        caddr: ip_words(&IpAddr::V4(lab.cluster.client().ip())),
        vaddr: ip_words(&lab.vip()),
        cport: cport.to_be(),
        vport: vport.to_be(),
        proto,
        af: AF_INET,
        kind: KIND_CONN,
        _pad0: 0,
    }
}

/// The events of `k` that arrive within `wait` (bounded).
fn events_of(
    rt: &tokio::runtime::Runtime,
    feed: &mut SyncFeed,
    k: &ConnKey,
    wait: Duration,
    until: impl Fn(&[SyncEvent]) -> bool,
) -> Vec<SyncEvent> {
    let deadline = std::time::Instant::now() + wait;
    let mut got = Vec::new();
    while std::time::Instant::now() < deadline && !until(&got) {
        let batch = rt
            .block_on(feed.batch_within(256, Duration::from_millis(200)))
            .unwrap();
        got.extend(batch.into_iter().filter(|e| e.key == *k));
    }
    got
}

#[test]
fn flows_are_reported_at_the_threshold_and_on_fin_only_with_sync_on() {
    let mut lab = Lab::new(1, PORT);
    lab.udp = lab.cluster.serve_udp(DNS).unwrap();
    let vip = lab.vip_port(PORT);
    lab.ok(&["-A", "-t", &vip, "-s", "rr"]);
    lab.ok(&[
        "-a",
        "-t",
        &vip,
        "-r",
        &format!("{}:{PORT}", lab.rs_ip(0)),
        "-g",
    ]);
    let dns = lab.vip_port(DNS);
    lab.ok(&["-A", "-u", &dns, "-s", "rr"]);
    lab.ok(&[
        "-a",
        "-u",
        &dns,
        "-r",
        &format!("{}:{DNS}", lab.rs_ip(0)),
        "-g",
    ]);
    let rt = runtime();
    let mut feed = {
        let _in_rt = rt.enter();
        SyncFeed::open(&lab.pin_dir).unwrap()
    };
    let mut maps = DirectorMaps::open(&lab.pin_dir).unwrap();
    let client = lab.cluster.client();

    // Sync off: a whole connection reports nothing.
    let mut c = client.open_tcp(lab.vip(), PORT).unwrap();
    let k_off = key(&lab, IPPROTO_TCP, c.local_addr().unwrap().port(), PORT);
    c.ask("one").unwrap();
    c.ask("two").unwrap();
    drop(c);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        rt.block_on(feed.batch_within(256, Duration::from_millis(300)))
            .unwrap()
            .is_empty(),
        "sync is off"
    );
    assert_eq!(
        maps.conns.get(&k_off, 0).map(|c| c.state).ok(),
        Some(tcp_state::FIN_WAIT)
    );

    set_sync(&mut maps, Some(SyncRule::default())).unwrap();
    let mut c = client.open_tcp(lab.vip(), PORT).unwrap();
    let k = key(&lab, IPPROTO_TCP, c.local_addr().unwrap().port(), PORT);
    // SYN (1), ACK (2): established but below the threshold, nothing yet.
    std::thread::sleep(Duration::from_millis(200));
    assert!(events_of(&rt, &mut feed, &k, Duration::from_millis(400), |_| false).is_empty());
    // The request is the third packet.
    c.ask("one").unwrap();
    let got = events_of(&rt, &mut feed, &k, Duration::from_secs(3), |g| {
        !g.is_empty()
    });
    assert_eq!(got.len(), 1, "{got:?}");
    let e = got[0];
    assert_eq!(
        (e.conn.state, e.reason, e.conn.in_pkts),
        (tcp_state::ESTABLISHED, sync_reason::PACKETS, 3)
    );
    assert_eq!(
        e.conn.flags & conn_flags::NOOUTPUT,
        conn_flags::NOOUTPUT,
        "DR"
    );
    let svc = maps.conns.get(&k, 0).unwrap();
    assert_eq!((e.conn.dest_id, e.conn.svc_id), (svc.dest_id, svc.svc_id));
    // The client's FIN: reported at once.
    drop(c);
    let got = events_of(&rt, &mut feed, &k, Duration::from_secs(3), |g| {
        g.iter().any(|e| e.conn.state == tcp_state::FIN_WAIT)
    });
    let fin = got
        .iter()
        .find(|e| e.conn.state == tcp_state::FIN_WAIT)
        .unwrap_or_else(|| panic!("no FIN_WAIT report: {got:?}"));
    assert_eq!(fin.reason, sync_reason::STATE);
    assert_ne!(fin.conn.flags & conn_flags::INACTIVE, 0);

    // UDP: reported when its third datagram arrives, not before.
    let k_udp = key(&lab, IPPROTO_UDP, 40053, DNS);
    for _ in 0..2 {
        client.udp_request(lab.vip(), DNS, b"q", 40053).unwrap();
    }
    assert!(
        events_of(&rt, &mut feed, &k_udp, Duration::from_millis(400), |_| {
            false
        })
        .is_empty()
    );
    client.udp_request(lab.vip(), DNS, b"q", 40053).unwrap();
    let got = events_of(&rt, &mut feed, &k_udp, Duration::from_secs(3), |g| {
        !g.is_empty()
    });
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0].conn.state, got[0].conn.in_pkts),
        (tcp_state::UDP, 3)
    );

    // Off again: nothing more.
    set_sync(&mut maps, None).unwrap();
    for _ in 0..3 {
        client.udp_request(lab.vip(), DNS, b"q", 40054).unwrap();
    }
    let k2 = key(&lab, IPPROTO_UDP, 40054, DNS);
    assert!(events_of(&rt, &mut feed, &k2, Duration::from_millis(400), |_| false).is_empty());
    assert_eq!(lab.counter("sync_ring_full"), 0);
}

/// Active connections of each real server, from `rvsadm -L -n`, by address.
fn active(lab: &Lab) -> Vec<(String, u64)> {
    dest_rows(&lab.ok(&["-L", "-n"]))
        .into_iter()
        .map(|(addr, _, _, a, _)| (addr, a))
        .collect()
}

fn active_of(lab: &Lab, rs: &str) -> u64 {
    active(lab)
        .into_iter()
        .find(|(a, _)| a == rs)
        .map_or(0, |(_, n)| n)
}

#[test]
fn a_synced_flow_is_forwarded_counted_and_expired_as_the_data_planes_own() {
    let lab = Lab::new(2, PORT);
    let vip = lab.vip_port(PORT);
    lab.ok(&["-A", "-t", &vip, "-s", "rr"]);
    for i in 0..2 {
        lab.ok(&[
            "-a",
            "-t",
            &vip,
            "-r",
            &format!("{}:{PORT}", lab.rs_ip(i)),
            "-g",
        ]);
    }
    let mut maps = DirectorMaps::open(&lab.pin_dir).unwrap();
    let client = lab.cluster.client();
    let mut kept = client.open_tcp(lab.vip(), PORT).unwrap();
    let server = kept.ask("hello").unwrap();
    let mut idle = client.open_tcp(lab.vip(), PORT).unwrap();
    let idle_server = idle.ask("hello").unwrap();
    assert_ne!(server, idle_server, "rr spread them");
    let k_kept = key(&lab, IPPROTO_TCP, kept.local_addr().unwrap().port(), PORT);
    let k_idle = key(&lab, IPPROTO_TCP, idle.local_addr().unwrap().port(), PORT);

    // The director forgets both flows, as a backup that never saw them: entry and count gone.
    let mut flows = Vec::new();
    for k in [k_kept, k_idle] {
        let c = maps.conns.get(&k, 0).unwrap();
        assert_eq!(c.state, tcp_state::ESTABLISHED);
        maps.conns.remove(&k).unwrap();
        maps.dest_conns.add(c.dest_id, Field::Active, u64::MAX);
        flows.push(c);
    }
    assert!(
        active(&lab).iter().all(|(_, n)| *n == 0),
        "{:?}",
        active(&lab)
    );
    let rs_of = |id: u32| {
        let d = maps.dests.get(&id, 0).unwrap();
        format!(
            "{}:{PORT}",
            std::net::Ipv4Addr::from(d.addr[0].to_ne_bytes())
        )
    };
    let (rs_kept, rs_idle) = (rs_of(flows[0].dest_id), rs_of(flows[1].dest_id));

    // Synced as the kernel would send them: ESTABLISHED, with a few seconds left.
    let now = monotonic_ns();
    let synced = |k: ConnKey, c: &rvs_common::conn::Conn, left| SyncedFlow {
        key: k,
        dest_id: c.dest_id,
        svc_id: c.svc_id,
        state: tcp_state::ESTABLISHED,
        flags: conn_flags::NOOUTPUT,
        timeout_s: left,
        ttl_s: 900,
    };
    let kept_flow = synced(k_kept, &flows[0], 30);
    let idle_flow = synced(k_idle, &flows[1], 3);
    assert_eq!(
        write_synced(&mut maps, &kept_flow, now).unwrap(),
        Outcome::Inserted
    );
    assert_eq!(
        write_synced(&mut maps, &idle_flow, now).unwrap(),
        Outcome::Inserted
    );
    // The same again changes nothing, counters included.
    assert_eq!(
        write_synced(&mut maps, &kept_flow, now).unwrap(),
        Outcome::Unchanged
    );
    assert_eq!(active_of(&lab, &rs_kept), 1);
    assert_eq!(active_of(&lab, &rs_idle), 1);
    let entry = maps.conns.get(&k_kept, 0).unwrap();
    assert_ne!(entry.flags & conn_flags::SYNC, 0);
    assert_eq!(
        entry.in_pkts, 3,
        "counts on from the threshold, as the kernel's backup"
    );

    // The connection's next packets go to the same real server, through the synced entry.
    let passed = lab.counter("pass_no_conn");
    assert_eq!(kept.ask("after sync").unwrap(), server);
    assert_eq!(kept.ask("and again").unwrap(), server);
    assert_eq!(lab.counter("pass_no_conn"), passed);
    let entry = maps.conns.get(&k_kept, 0).unwrap();
    assert_eq!(
        entry.flags & conn_flags::SYNC,
        0,
        "now the data plane's own"
    );
    assert!(entry.in_pkts > 3);
    // Forwarded here, so a peer's older view of it is not taken.
    assert_eq!(
        write_synced(&mut maps, &kept_flow, monotonic_ns()).unwrap(),
        Outcome::LocalNewer
    );

    // The idle one expires when its synced timeout runs out, and its count goes with it.
    lab.eventually("the idle synced flow expires", || {
        maps.conns.get(&k_idle, 0).is_err()
    });
    assert!(monotonic_ns() >= now + 3_000_000_000, "not before its time");
    assert_eq!(active_of(&lab, &rs_idle), 0);
    assert_eq!(active_of(&lab, &rs_kept), 1);

    // An update that moves the kept flow out of ESTABLISHED moves its count (once it is idle
    // here for longer than the writer's grace).
    std::thread::sleep(Duration::from_millis(3200));
    let fin = SyncedFlow {
        state: tcp_state::FIN_WAIT,
        flags: conn_flags::NOOUTPUT | conn_flags::INACTIVE,
        timeout_s: 60,
        ttl_s: 120,
        ..kept_flow
    };
    assert_eq!(
        write_synced(&mut maps, &fin, monotonic_ns()).unwrap(),
        Outcome::Updated
    );
    let rows = dest_rows(&lab.ok(&["-L", "-n"]));
    let row = rows.iter().find(|r| r.0 == rs_kept).unwrap();
    assert_eq!((row.3, row.4), (0, 1), "{rows:?}");
}
