//! rvsd's BGP speaker against the real peer, BIRD 2, over real TCP in namespaces: BIRD runs in
//! the client's namespace and peers with the director, which announces the VIPs' prefixes by
//! the health of the services behind them (keepalived.conf's TCP_CHECKs on two DR real servers).
//! What BIRD holds is read with `birdc show route ... all`.

mod common;

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use common::keepalived::{ConfDir, KaLab, short_timers};
use rvs_testbed::{
    DrCluster,
    bird::{BgpPeer, Bird, BirdConfig, Channel, Filter, Route},
};

const PORT: u16 = 80;
const LOCAL_AS: u32 = 4_200_000_005;
const PEER_AS: u32 = 65001;
const WAIT: Duration = Duration::from_secs(20);

/// The director holds both VIPs on eth0, the real servers on lo; the prefixes announced are
/// the VIPs themselves (/32 and /128, as Katran-style directors announce them).
fn cluster() -> DrCluster {
    DrCluster::builder()
        .real_servers(2)
        .ipv6(true)
        .build()
        .expect("building the cluster")
}

fn prefix4(c: &DrCluster) -> String {
    format!("{}/32", c.vip())
}

fn prefix6(c: &DrCluster) -> String {
    format!("{}/128", c.vip6().unwrap())
}

/// Both VIPs with TCP_CHECKs on both real servers, and an rvs_bgp block (`bgp_extra` inside
/// it, `prefix_extra` inside the IPv4 prefix's block).
fn conf(c: &DrCluster, bgp_extra: &str, prefix_extra: &str, neighbor_extra: &str) -> String {
    let mut s = String::new();
    for v6 in [false, true] {
        let vip: IpAddr = if v6 {
            c.vip6().unwrap().into()
        } else {
            c.vip().into()
        };
        s.push_str(&format!(
            "virtual_server {vip} {PORT} {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind DR\n    protocol TCP\n"
        ));
        // The director holds VIP6 as a /128, which the kernel would pick as the source of
        // the IPv6 checks (the longest match): the real servers, holding it too, would answer
        // themselves. bindto gives the checks the director's own address.
        let bindto = match v6 {
            true => format!("\n            bindto {}", c.director().ip6().unwrap()),
            false => String::new(),
        };
        for rs in c.real_servers() {
            let ip: IpAddr = if v6 {
                rs.ip6().unwrap().into()
            } else {
                rs.ip().into()
            };
            s.push_str(&format!(
                "    real_server {ip} {PORT} {{\n        weight 1\n        TCP_CHECK {{\n            {}{bindto}\n        }}\n    }}\n",
                short_timers()
            ));
        }
        s.push_str("}\n");
    }
    let d = c.director();
    s.push_str(&format!(
        "rvs_bgp {{\n    local_as {LOCAL_AS}\n    router_id {dip}\n    hold_time 6\n    connect_retry 1\n{bgp_extra}\
         \n    neighbor {cip} {{\n        remote_as {PEER_AS}\n        local_address {dip}\n        next_hop6 {dip6}\n{neighbor_extra}\n    }}\n\
         \n    prefix {p4} {{\n        med 10\n        community 65005:100\n{prefix_extra}\n    }}\n    prefix {p6}\n}}\n",
        p4 = prefix4(c),
        p6 = prefix6(c),
        dip = d.ip(),
        dip6 = d.ip6().unwrap(),
        cip = c.client().ip(),
    ));
    s
}

/// BIRD in the client's namespace, importing both families from rvsd and sending it nothing.
fn bird(lab: &KaLab, peer: impl FnOnce(BgpPeer) -> BgpPeer) -> Bird {
    let c = &lab.lab.cluster;
    let p = BgpPeer::new("rvs", PEER_AS, c.director().ip().into(), LOCAL_AS)
        .local(c.client().ip().into())
        .both(Channel::new(Filter::All, Filter::None));
    let cfg = BirdConfig::new(c.client().ip()).bgp(&peer(p));
    Bird::start_on(c.client(), &cfg).expect("starting BIRD")
}

fn route(b: &Bird, prefix: &str) -> Option<Route> {
    b.route(prefix).expect("birdc")
}

fn wait_route(b: &Bird, prefix: &str, what: &str, f: impl Fn(&Route) -> bool) -> Route {
    b.wait_until(WAIT, what, |b| Ok(b.route(prefix)?.filter(|r| f(r))))
        .unwrap_or_else(|e| panic!("{e:#}"))
}

fn wait_gone(b: &Bird, prefix: &str, what: &str) -> Duration {
    let t0 = Instant::now();
    b.wait_until(WAIT, what, |b| Ok(b.route(prefix)?.is_none().then_some(())))
        .unwrap_or_else(|e| panic!("{e:#}"));
    t0.elapsed()
}

fn has(r: &Route, needle: &str) -> bool {
    r.attributes
        .iter()
        .any(|(k, v)| format!("{k}: {v}").contains(needle))
}

#[test]
fn announces_while_healthy_withdraws_when_the_real_servers_fail_and_when_rvsd_stops() {
    let c = cluster();
    let (p4, p6) = (prefix4(&c), prefix6(&c));
    let (prefix_v4, prefix_v6) = (p4.as_str(), p6.as_str());
    let text = conf(&c, "", "", "");
    let mut lab = KaLab::on(c, PORT, ConfDir::new(), &text);
    let b = bird(&lab, |p| p);
    let dip: IpAddr = lab.lab.cluster.director().ip().into();
    let dip6: IpAddr = lab.lab.cluster.director().ip6().unwrap().into();

    // Both prefixes, from AS 4200000005 (4-octet), with the MED, the community and next hops.
    let r4 = wait_route(&b, prefix_v4, "the IPv4 prefix", |_| true);
    assert_eq!(r4.as_path, vec![LOCAL_AS], "{r4:?}");
    assert_eq!(r4.next_hop, vec![dip], "{r4:?}");
    assert!(has(&r4, "BGP.med: 10") && has(&r4, "(65005,100)"), "{r4:?}");
    let r6 = wait_route(&b, prefix_v6, "the IPv6 prefix", |_| true);
    assert_eq!(r6.as_path, vec![LOCAL_AS], "{r6:?}");
    assert_eq!(r6.next_hop.first(), Some(&dip6), "{r6:?}");
    let status = lab.lab.ok(&["--bgp"]);
    assert!(status.contains("Established"), "{status}");
    assert!(status.contains("announced: 1 of 1 services up"), "{status}");

    // The client reaches the VIP on the route's next hop (the director).
    assert!(lab.lab.ask(PORT).starts_with("rs"));

    // Drained: both prefixes withdrawn, healthy as they are, while the director goes on
    // forwarding and says how many flows still arrive; undrained: announced again.
    let out = lab.lab.ok(&["--drain"]);
    assert!(out.starts_with("Draining for 0 s"), "{out}");
    wait_gone(&b, prefix_v4, "the IPv4 prefix to be withdrawn by --drain");
    wait_gone(&b, prefix_v6, "the IPv6 prefix to be withdrawn by --drain");
    let status = lab.lab.ok(&["--bgp"]);
    assert!(
        status.contains("withdrawn: this director drains (rvsadm --drain)"),
        "{status}"
    );
    assert!(lab.lab.ask(PORT).starts_with("rs"));
    let out = lab.lab.ok(&["--drain"]);
    let arriving: u64 = out
        .split_once(" flows still arriving")
        .and_then(|(head, _)| head.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(arriving >= 1, "{out}");
    let out = lab.lab.ok(&["--undrain"]);
    assert!(out.starts_with("Not draining"), "{out}");
    wait_route(
        &b,
        prefix_v4,
        "the IPv4 prefix back after --undrain",
        |_| true,
    );
    wait_route(
        &b,
        prefix_v6,
        "the IPv6 prefix back after --undrain",
        |_| true,
    );

    // One real server down: quorum (1) still met, the route stays.
    let t0 = Instant::now();
    drop(lab.lab.tcp.remove(0));
    lab.expect_removed("TCP", &lab.lab.vip_port(PORT), &lab.rs(0, PORT), t0);
    assert!(route(&b, prefix_v4).is_some());

    // Both down: the services lose quorum and both prefixes are withdrawn.
    let t0 = Instant::now();
    drop(lab.lab.tcp.remove(0));
    let took = wait_gone(&b, prefix_v4, "the IPv4 prefix to be withdrawn");
    wait_gone(&b, prefix_v6, "the IPv6 prefix to be withdrawn");
    eprintln!(
        "withdrawn {:?} after the last real server stopped (the checker's part: {took:?} of it)",
        t0.elapsed()
    );
    let status = lab.lab.ok(&["--bgp"]);
    assert!(
        status.contains(&format!(
            "withdrawn: 1 of 1 services down (TCP {}:{PORT})",
            lab.lab.cluster.vip()
        )),
        "{status}"
    );

    // Back up: announced again.
    for rs in lab.lab.cluster.real_servers() {
        lab.lab.tcp.push(rs.serve_tcp(PORT).unwrap());
    }
    wait_route(&b, prefix_v4, "the IPv4 prefix back", |_| true);
    wait_route(&b, prefix_v6, "the IPv6 prefix back", |_| true);

    // rvsd stops: a Cease, and BIRD drops the routes at once.
    let t0 = Instant::now();
    lab.lab.stop_rvsd();
    wait_gone(&b, prefix_v4, "the routes to go with rvsd");
    assert!(route(&b, prefix_v6).is_none());
    eprintln!("withdrawn {:?} after SIGTERM", t0.elapsed());
    let p = b.protocol("rvs").unwrap().unwrap();
    let all = b.birdc("show protocols all rvs").unwrap();
    assert!(all.contains("Administrative shutdown"), "{p:?}\n{all}");
}

#[test]
fn graceful_restart_keeps_the_route_while_rvsd_restarts() {
    let c = cluster();
    let (p4, p6) = (prefix4(&c), prefix6(&c));
    let (prefix_v4, prefix_v6) = (p4.as_str(), p6.as_str());
    let text = conf(&c, "    graceful_restart 30\n", "", "");
    let mut lab = KaLab::on(c, PORT, ConfDir::new(), &text);
    let b = bird(&lab, |p| p.graceful_restart(30));
    let before = wait_route(&b, prefix_v4, "the IPv4 prefix", |_| true);
    assert!(lab.lab.ok(&["--bgp"]).contains("Established"));

    // rvsd dies without a NOTIFICATION (its data plane, pinned, goes on forwarding): BIRD keeps
    // the routes as stale while the restart time runs.
    lab.lab.rvsd.take().unwrap().kill().unwrap();
    b.wait_until(WAIT, "BIRD to notice the connection closed", |b| {
        Ok(b.protocol("rvs")?
            .filter(|p| !p.is_established())
            .map(|_| ()))
    })
    .unwrap();
    let during = route(&b, prefix_v4).expect("the route was dropped during the restart");
    let gr = "Neighbor graceful restart active";
    let all = b.birdc("show protocols all rvs").unwrap();
    assert!(all.contains(gr), "BIRD is not in graceful restart:\n{all}");
    assert_eq!(during.as_path, before.as_path);
    assert!(
        lab.lab.ask(PORT).starts_with("rs"),
        "the VIP stopped answering"
    );

    // Back: the session returns, End-of-RIB ends the restart, the route is fresh.
    lab.lab.start_rvsd();
    b.wait_established("rvs", WAIT).unwrap();
    let after = wait_route(&b, prefix_v4, "the IPv4 prefix after the restart", |_| true);
    assert_eq!(after.as_path, vec![LOCAL_AS]);
    std::thread::sleep(Duration::from_secs(1));
    let all = b.birdc("show route all").unwrap();
    assert!(
        !all.contains("stale"),
        "stale routes after End-of-RIB:\n{all}"
    );
    assert!(route(&b, prefix_v6).is_some());
}

#[test]
fn without_graceful_restart_a_dead_rvsd_loses_its_route() {
    let c = cluster();
    let p4 = prefix4(&c);
    let prefix_v4 = p4.as_str();
    let text = conf(&c, "", "", "");
    let mut lab = KaLab::on(c, PORT, ConfDir::new(), &text);
    let b = bird(&lab, |p| p);
    wait_route(&b, prefix_v4, "the IPv4 prefix", |_| true);
    lab.lab.rvsd.take().unwrap().kill().unwrap();
    wait_gone(&b, prefix_v4, "the route to go with the session");
}

#[test]
fn md5_vrrp_backup_med_and_a_reload_that_keeps_the_session() {
    let c = cluster();
    // VRRP on the director's LAN: BACKUP first (3 adverts' time), then MASTER.
    let vrrp = "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 51\n    priority 100\n    \
         advert_int 1\n    virtual_ipaddress {\n        198.19.41.1\n    }\n}\n";
    let p4 = prefix4(&c);
    let prefix_v4 = p4.as_str();
    let md5 = "        md5_password \"s3cret-key\"";
    let prefix = "        vrrp_instance VI_1\n        backup med 500";
    let text = format!("{vrrp}{}", conf(&c, "", prefix, md5));
    let lab = KaLab::on(c, PORT, ConfDir::new(), &text);
    let b = bird(&lab, |p| p.option("password \"s3cret-key\""));

    // While BACKUP the prefix goes out with the backup's MED; as MASTER with its own.
    wait_route(&b, prefix_v4, "the MASTER's MED", |r| has(r, "BGP.med: 10"));
    let status = lab.lab.ok(&["--bgp"]);
    assert!(status.contains("VI_1 MASTER"), "{status}");

    // A reload that changes only the prefix's MED: the session stays, the new MED is sent.
    let established = |s: &str| {
        s.split("established ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap()
    };
    assert_eq!(established(&lab.lab.ok(&["--bgp"])), 1);
    let c = &lab.lab.cluster;
    let text = format!("{vrrp}{}", conf(c, "", prefix, md5)).replace("med 10", "med 20");
    lab.rewrite(&text);
    lab.reload();
    wait_route(&b, prefix_v4, "the new MED", |r| has(r, "BGP.med: 20"));
    assert_eq!(
        established(&lab.lab.ok(&["--bgp"])),
        1,
        "the session was reset"
    );

    // A wrong key on BIRD's side: no session at all (the kernel drops segments whose
    // signature does not match), and the route goes.
    let cfg = std::fs::read_to_string(b.config_path()).unwrap();
    b.reconfigure(&cfg.replace("s3cret-key", "wrong-key"))
        .unwrap();
    b.wait_until(WAIT, "the session to go with the key", |b| {
        Ok(b.route(prefix_v4)?.is_none().then_some(()))
    })
    .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(!b.protocol("rvs").unwrap().unwrap().is_established());
}
