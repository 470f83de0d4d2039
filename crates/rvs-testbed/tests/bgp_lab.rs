//! The BGP lab's wiring, with BIRD in the LBs standing in for rvsd's speaker (this checks the
//! lab, not rvs), and the BIRD helpers. Needs root and Debian's bird2.

use std::{
    net::{IpAddr, UdpSocket},
    path::Path,
    time::Duration,
};

use rvs_testbed::{
    BgpLab, Bird, Host, LAB_PREFIX, LAB_VIP, LAB_VIP6, LabBgp, LbSessions, Netns, poll_until,
};

const PORT: u16 = 8080;
/// How long BGP may take to settle after a change.
const CONVERGE: Duration = Duration::from_secs(20);

fn vip() -> String {
    LAB_VIP.to_string()
}

fn vip6() -> String {
    LAB_VIP6.to_string()
}

/// Puts the VIPs on the LB's `lo`, so the LB itself answers what the routes bring it.
fn hold_vips(lb: &Host) {
    let ns = lb.netns();
    ns.ip(&["addr", "add", &format!("{LAB_VIP}/32"), "dev", "lo"])
        .unwrap();
    ns.ip(&["-6", "addr", "add", &format!("{LAB_VIP6}/128"), "dev", "lo"])
        .unwrap();
}

/// Waits until the client's TCP requests to `ip` are answered by `host`.
fn answered_by(lab: &BgpLab, ip: IpAddr, host: &str) {
    poll_until(
        Duration::from_secs(10),
        &format!("{host} to answer {ip}"),
        || Ok((lab.client().tcp_request(ip, PORT).ok().as_deref() == Some(host)).then_some(())),
    )
    .unwrap();
}

/// A datagram a real server sends from the VIP (as a direct-routing reply) reaches the client,
/// through its LB's kernel and the routers.
fn dr_reply_reaches_client(lab: &BgpLab, rs: &Host, vip: IpAddr, client: IpAddr) {
    let sock = lab
        .client()
        .netns()
        .enter(|| UdpSocket::bind((client, 0)))
        .unwrap()
        .unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let to = sock.local_addr().unwrap();
    let from = rs
        .netns()
        .enter(|| UdpSocket::bind((vip, 0)))
        .unwrap()
        .unwrap();
    let mut buf = [0u8; 16];
    poll_until(
        Duration::from_secs(5),
        &format!("{}'s reply from {vip}", rs.name()),
        || {
            from.send_to(b"reply", to)?;
            match sock.recv_from(&mut buf) {
                Ok((n, src)) => Ok(Some((buf[..n].to_vec(), src.ip()))),
                Err(_) => Ok(None),
            }
        },
    )
    .map(|(data, src)| {
        assert_eq!(data, b"reply");
        assert_eq!(src, vip);
    })
    .unwrap();
}

#[test]
fn the_client_follows_the_nearer_cluster_and_fails_over() {
    let mut lab = BgpLab::build().unwrap();
    lab.start_routers().unwrap();
    let names: Vec<String> = lab
        .hosts()
        .map(|h| h.netns().name().to_owned())
        .chain(lab.lans().iter().map(|l| l.name().to_owned()))
        .collect();
    assert_eq!(names.len(), 4 + 2 + 4 + 1 + 9);

    for lb in lab.lbs() {
        hold_vips(lb);
    }
    let _servers: Vec<_> = lab
        .lbs()
        .iter()
        .map(|lb| lb.serve_tcp(PORT).unwrap())
        .collect();
    let sessions = LbSessions::default();
    let lb1 = Bird::start_on(lab.lb(0), &lab.standin_config(0, sessions)).unwrap();
    let lb2 = Bird::start_on(lab.lb(1), &lab.standin_config(1, sessions)).unwrap();
    for i in 0..2 {
        lab.wait_lb_sessions(i, sessions, CONVERGE).unwrap();
    }
    let r32 = lab.bird("r32").unwrap();

    // Both announce: r32 prefers r22's eBGP route to r31's iBGP one.
    let route = r32.wait_as_path(&vip(), &[2, 5], CONVERGE).unwrap();
    assert_eq!(route.network, LAB_PREFIX);
    assert_eq!(route.protocol, "r22");
    assert_eq!(route.via, Some("198.18.23.22".parse().unwrap()));
    assert_eq!(route.interface.as_deref(), Some("eth0"));
    assert_eq!(lab.client_as_path(&vip()).unwrap(), Some(vec![3, 2, 5]));
    // r31's path, learned over iBGP, is there too, not chosen.
    r32.wait_until(CONVERGE, "r31's route as an alternative", |b| {
        let routes = b.routes_for(&vip())?;
        Ok(routes
            .iter()
            .any(|r| !r.best && r.protocol == "r31" && r.as_path == [1, 5])
            .then_some(()))
    })
    .unwrap();
    r32.wait_as_path(&vip6(), &[2, 5], CONVERGE).unwrap();
    lab.wait_client_as_path(&vip6(), &[3, 2, 5], CONVERGE)
        .unwrap();
    // The data path follows the routes, for both families; the real servers' replies get out.
    answered_by(&lab, LAB_VIP.into(), "lb2");
    answered_by(&lab, LAB_VIP6.into(), "lb2");
    for i in 0..2 {
        for rs in lab.real_servers(i) {
            dr_reply_reaches_client(&lab, rs, LAB_VIP.into(), lab.client().ip().into());
            dr_reply_reaches_client(
                &lab,
                rs,
                LAB_VIP6.into(),
                lab.client().ip6().unwrap().into(),
            );
        }
    }

    // lb2 dies (SIGKILL: no NOTIFICATION, only the TCP connection closes).
    let pid = lb2.pid();
    let dir = lb2.dir().to_owned();
    lb2.kill().unwrap();
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    assert!(!dir.exists());
    r32.wait_as_path(&vip(), &[1, 5], CONVERGE).unwrap();
    lab.wait_client_as_path(&vip(), &[3, 1, 5], CONVERGE)
        .unwrap();
    lab.wait_client_as_path(&vip6(), &[3, 1, 5], CONVERGE)
        .unwrap();
    let r22 = lab.bird("r22").unwrap();
    assert!(!r22.protocol("lb2").unwrap().unwrap().is_established());
    r22.wait_as_path(&vip(), &[1, 5], CONVERGE).unwrap();
    answered_by(&lab, LAB_VIP.into(), "lb1");
    answered_by(&lab, LAB_VIP6.into(), "lb1");

    // lb2 is back.
    let lb2 = Bird::start_on(lab.lb(1), &lab.standin_config(1, sessions)).unwrap();
    lab.wait_client_as_path(&vip(), &[3, 2, 5], CONVERGE)
        .unwrap();
    lab.wait_client_as_path(&vip6(), &[3, 2, 5], CONVERGE)
        .unwrap();
    answered_by(&lab, LAB_VIP.into(), "lb2");
    answered_by(&lab, LAB_VIP6.into(), "lb2");

    // lb1 stops cleanly (SIGTERM: BIRD sends a Cease): r11 falls back to r22's path.
    lb1.stop().unwrap();
    lab.bird("r11")
        .unwrap()
        .wait_as_path(&vip(), &[2, 5], CONVERGE)
        .unwrap();
    assert_eq!(lab.client_as_path(&vip()).unwrap(), Some(vec![3, 2, 5]));
    // With neither, the prefix is gone everywhere.
    drop(lb2);
    r32.wait_no_route(&vip(), CONVERGE).unwrap();
    assert_eq!(lab.client_as_path(&vip()).unwrap(), None);

    drop(lab);
    for name in names {
        assert!(!Path::new("/run/netns").join(&name).exists(), "{name}");
    }
}

#[test]
fn per_family_sessions_with_a_four_octet_as_and_graceful_restart() {
    const AS: u32 = 4_200_000_005;
    let mut lab = BgpLab::builder().lb_as(AS).real_servers(1).build().unwrap();
    let bgp = LabBgp {
        lb_sessions: LbSessions::PerFamily,
        lb_graceful_restart: Some(5),
        ..LabBgp::default()
    };
    lab.start_routers_with(&bgp).unwrap();
    let p = lab.peering(1);
    assert_eq!((p.router.as_str(), p.router_as, p.lb_as), ("r22", 2, AS));
    assert_eq!(p.router_ip.to_string(), "198.18.25.22");
    assert_eq!(p.router_ip6.to_string(), "2001:db8:25::22");
    assert_eq!(
        (p.lb_ip.to_string(), p.lb_ip6.to_string()),
        ("198.18.25.52".into(), "2001:db8:25::52".into())
    );
    let _lbs: Vec<Bird> = (0..2)
        .map(|i| Bird::start_on(lab.lb(i), &lab.standin_config(i, LbSessions::PerFamily)).unwrap())
        .collect();
    for i in 0..2 {
        lab.wait_lb_sessions(i, LbSessions::PerFamily, CONVERGE)
            .unwrap();
    }
    let r22 = lab.bird("r22").unwrap();
    let names: Vec<String> = r22
        .protocols()
        .unwrap()
        .into_iter()
        .filter(|p| p.proto == "BGP")
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["lb2", "lb2_v6", "r32", "r11"]);
    let gr = r22.birdc("show protocols all lb2").unwrap();
    assert!(gr.contains("Graceful restart"), "{gr}");
    lab.wait_client_as_path(&vip(), &[3, 2, AS], CONVERGE)
        .unwrap();
    lab.wait_client_as_path(&vip6(), &[3, 2, AS], CONVERGE)
        .unwrap();
    // Over the IPv6 session: the IPv6 route's next hop is lb2's IPv6 address.
    let route = r22.route(lab.prefix6()).unwrap().unwrap();
    assert_eq!(route.protocol, "lb2_v6");
    assert_eq!(route.via, Some(p.lb_ip6.into()));
    assert_eq!(r22.route(LAB_PREFIX).unwrap().unwrap().protocol, "lb2");
}

#[test]
fn a_bad_configuration_is_refused_with_its_reason() {
    let ns = Netns::new("bird-bad").unwrap();
    let err = Bird::start(
        &ns,
        "bad",
        "router id 198.18.255.1;\nprotocol nonsense {}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("rejects"), "{err}");
    assert!(err.contains("   2 protocol nonsense"), "{err}");
    // A good one answers, and dropping it removes its process and files.
    let bird = Bird::start(&ns, "good", "router id 198.18.255.1;\nprotocol device {}\n").unwrap();
    let (pid, dir) = (bird.pid(), bird.dir().to_owned());
    assert!(bird.birdc("show status").unwrap().contains("Daemon is up"));
    assert_eq!(bird.protocols().unwrap()[0].proto, "Device");
    assert_eq!(bird.route_for("198.19.4.1").unwrap(), None);
    drop(bird);
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    assert!(!dir.exists());
}
