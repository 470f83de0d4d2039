//! The seed's BGP lab (003 §4.2, figure 2.6) with rvsd as the speaker of both clusters: AS5's
//! LB1 (behind AS1's r11) and LB2 (behind AS2's r22) each run rvsd with a keepalived.conf (a DR
//! virtual server on the VIP and the IPv6 VIP, port 80, over its two real servers with
//! TCP_CHECK, and an rvs_bgp block announcing AS5's two prefixes to its router). The client
//! behind AS3's r32 sees the AS path 3 2 5 and is served by cluster 2; when LB2's rvsd stops
//! (SIGTERM: a Cease), the path becomes 3 1 5 and cluster 1 serves; when it starts again the
//! path and the service come back. Then cluster 2's real servers stop serving while its rvsd
//! runs: the checkers fail, the services lose quorum, rvsd withdraws the prefixes and cluster 1
//! serves; repaired, it returns. Each step's convergence time is printed (stderr), never
//! asserted beyond a generous bound: this test is also the scenario `scripts/scenario-bgp-lab`
//! runs. Needs root and Debian's bird2.

mod common;

use std::{
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use common::{
    Topology,
    keepalived::{ConfDir, DELAY_LOOP, KaLab, short_timers},
};
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use rvs_testbed::{BgpLab, Host, TcpServer, UdpServer, poll_until};

const PORT: u16 = 80;
/// "Did not hang": every change must settle within this.
const BOUND: Duration = Duration::from_secs(30);

/// One cluster of the lab (its LB as the director), as a [`common::Lab`] sees a topology. The
/// real servers' TCP servers belong to the test, which breaks and repairs them.
struct Site {
    lab: Arc<BgpLab>,
    i: usize,
}

impl Topology for Site {
    fn director(&self) -> &Host {
        self.lab.lb(self.i)
    }
    fn client(&self) -> &Host {
        self.lab.client()
    }
    fn real_servers(&self) -> &[Host] {
        self.lab.real_servers(self.i)
    }
    fn vip(&self) -> std::net::Ipv4Addr {
        self.lab.vip()
    }
    fn interfaces(&self) -> Vec<String> {
        self.lab
            .lb_interfaces()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }
    fn serve_tcp(&self, _port: u16) -> anyhow::Result<Vec<TcpServer>> {
        Ok(Vec::new())
    }
    fn serve_udp(&self, _port: u16) -> anyhow::Result<Vec<UdpServer>> {
        Ok(Vec::new())
    }
}

/// LB `i`'s keepalived.conf: the two DR services and the rvs_bgp block.
fn conf(lab: &BgpLab, i: usize) -> String {
    let p = lab.peering(i);
    let mut s = String::new();
    for vip in [IpAddr::V4(lab.vip()), IpAddr::V6(lab.vip6())] {
        s.push_str(&format!(
            "virtual_server {vip} {PORT} {{\n    delay_loop {DELAY_LOOP}\n    lb_algo rr\n    \
             lb_kind DR\n    protocol TCP\n"
        ));
        for rs in lab.real_servers(i) {
            let ip: IpAddr = match vip {
                IpAddr::V4(_) => rs.ip().into(),
                IpAddr::V6(_) => rs.ip6().expect("dual-stack").into(),
            };
            s.push_str(&format!(
                "    real_server {ip} {PORT} {{\n        weight 1\n        TCP_CHECK {{\n            \
                 {}\n        }}\n    }}\n",
                short_timers()
            ));
        }
        s.push_str("}\n");
    }
    s.push_str(&format!(
        "rvs_bgp {{\n    router_id {lb}\n    local_as {asn}\n    hold_time 3\n    \
         connect_retry 1\n    neighbor {router} {{\n        remote_as {router_as}\n        \
         local_address {lb}\n        next_hop6 {lb6}\n    }}\n    prefix {prefix}\n    \
         prefix {prefix6}\n}}\n",
        lb = p.lb_ip,
        asn = lab.lb_as(),
        router = p.router_ip,
        router_as = p.router_as,
        lb6 = p.lb_ip6,
        prefix = lab.prefix(),
        prefix6 = lab.prefix6(),
    ));
    s
}

/// The cluster (1 or 2) of a real server's name (`rs2-1`).
fn cluster_of(name: &str) -> Option<usize> {
    name.strip_prefix("rs")?.split('-').next()?.parse().ok()
}

/// The scenario's clock and its report.
struct Clock {
    start: Instant,
    times: Vec<(String, Duration)>,
}

impl Clock {
    fn say(&self, what: &str) {
        eprintln!("[{:>6.1}s] {what}", self.start.elapsed().as_secs_f64());
    }

    fn measured(&mut self, what: &str, took: Duration) {
        self.say(&format!("{what}: {:.2} s", took.as_secs_f64()));
        self.times.push((what.to_owned(), took));
    }
}

struct Scenario {
    lab: Arc<BgpLab>,
}

impl Scenario {
    fn path(&self, addr: IpAddr) -> Option<Vec<u32>> {
        self.lab
            .client_as_path(&addr.to_string())
            .expect("asking r32")
    }

    /// Waits until the client's path to `addr` is `want`; how long it took from `since`.
    fn wait_path(
        &self,
        addr: IpAddr,
        want: &[u32],
        since: Instant,
        logs: &[&KaLab<Site>],
    ) -> Duration {
        let r = poll_until(
            BOUND,
            &format!("the client's path to {addr} to be {want:?}"),
            || {
                let p = self.path(addr);
                if p.as_deref() == Some(want) {
                    return Ok(Some(()));
                }
                std::thread::sleep(Duration::from_millis(20));
                Ok(None)
            },
        );
        if let Err(e) = r {
            fail(&format!("{e:#} (it is {:?})", self.path(addr)), logs);
        }
        since.elapsed()
    }

    /// Waits until a new connection from the client to `vip` is answered by a real server of
    /// `cluster`; how long it took from `since`, and who answered.
    fn wait_served(
        &self,
        vip: IpAddr,
        cluster: usize,
        since: Instant,
        logs: &[&KaLab<Site>],
    ) -> (Duration, String) {
        let r = poll_until(
            BOUND,
            &format!("cluster {cluster} to serve {vip}"),
            || match self.lab.client().tcp_request(vip, PORT) {
                Ok(name) if cluster_of(&name) == Some(cluster) => Ok(Some(name)),
                _ => {
                    std::thread::sleep(Duration::from_millis(20));
                    Ok(None)
                }
            },
        );
        match r {
            Ok(name) => (since.elapsed(), name),
            Err(e) => fail(&format!("{e:#}"), logs),
        }
    }

    /// Every one of `n` new connections to `vip` is served by `cluster`: who answered.
    fn all_served_by(&self, vip: IpAddr, cluster: usize, n: usize) -> Vec<String> {
        let names: Vec<String> = (0..n)
            .map(|_| {
                self.lab
                    .client()
                    .tcp_request(vip, PORT)
                    .unwrap_or_else(|e| panic!("request to {vip}: {e:#}"))
            })
            .collect();
        assert!(
            names.iter().all(|n| cluster_of(n) == Some(cluster)),
            "{vip}: expected cluster {cluster}, answered by {names:?}"
        );
        names
    }

    /// The AS path of r22's best route to `prefix` (`[5]` while lb2 announces it).
    fn r22_path(&self, prefix: &str) -> Option<Vec<u32>> {
        self.lab
            .bird("r22")
            .unwrap()
            .route(prefix)
            .unwrap()
            .map(|r| r.as_path)
    }
}

fn fail(what: &str, logs: &[&KaLab<Site>]) -> ! {
    let mut text = String::new();
    for (i, k) in logs.iter().enumerate() {
        text.push_str(&format!("\nrvsd log of lb{}:\n{}", i + 1, k.lab.rvsd_log()));
    }
    panic!("{what}{text}");
}

/// `line` without its terminal colour sequences (`ESC [ ... m`).
fn plain(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The line of `rvsadm --bgp` that starts with `key` (a neighbor's or a prefix's address).
fn bgp_line(status: &str, key: &str) -> String {
    status
        .lines()
        .find(|l| l.split_whitespace().next() == Some(key))
        .unwrap_or_else(|| panic!("no line for {key} in\n{status}"))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Waits until rvsd's `rvsadm --bgp` has the neighbor Established and both prefixes in
/// `state` (`announced` or `withdrawn`) with reasons containing `why`; returns the output.
fn wait_bgp(ka: &KaLab<Site>, lab: &BgpLab, i: usize, state: &str, why: &str) -> String {
    let router = lab.peering(i).router_ip.to_string();
    let mut last = String::new();
    let r = poll_until(
        BOUND,
        &format!("lb{}'s rvsadm --bgp: {state}", i + 1),
        || {
            last = ka.lab.ok(&["--bgp"]);
            let ok = last
                .lines()
                .any(|l| l.split_whitespace().next() == Some(&router) && l.contains("Established"))
                && [lab.prefix(), lab.prefix6()].iter().all(|p| {
                    last.lines().any(|l| {
                        let mut f = l.split_whitespace();
                        f.next() == Some(p) && f.next() == Some(state) && l.contains(why)
                    })
                });
            if !ok {
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(ok.then_some(()))
        },
    );
    if let Err(e) = r {
        panic!("{e:#}\n{last}\nrvsd log:\n{}", ka.lab.rvsd_log());
    }
    last
}

#[test]
fn the_seed_lab_with_rvsd_converges_and_fails_over() {
    let mut clock = Clock {
        start: Instant::now(),
        times: Vec::new(),
    };
    let mut lab = BgpLab::build().unwrap();
    lab.start_routers().unwrap();
    let lab = Arc::new(lab);
    clock.say(&format!(
        "lab {} built: routers r11 (AS1), r22 (AS2), r31 and r32 (AS3) Established; LBs in AS{}",
        lab.id(),
        lab.lb_as()
    ));
    let s = Scenario { lab: lab.clone() };
    let (vip, vip6): (IpAddr, IpAddr) = (lab.vip().into(), lab.vip6().into());
    let mut servers: Vec<Vec<TcpServer>> = (0..2)
        .map(|i| {
            lab.real_servers(i)
                .iter()
                .map(|rs| rs.serve_tcp(PORT).unwrap())
                .collect()
        })
        .collect();

    let start = Instant::now();
    let ka1 = KaLab::on(
        Site {
            lab: lab.clone(),
            i: 0,
        },
        PORT,
        ConfDir::new(),
        &conf(&lab, 0),
    );
    let mut ka2 = KaLab::on(
        Site {
            lab: lab.clone(),
            i: 1,
        },
        PORT,
        ConfDir::new(),
        &conf(&lab, 1),
    );
    for i in 0..2 {
        lab.wait_lb_sessions(i, Default::default(), BOUND)
            .unwrap_or_else(|e| fail(&format!("{e:#}"), &[&ka1, &ka2]));
    }
    clock.measured(
        "both rvsd started -> sessions to r11 and r22 Established",
        start.elapsed(),
    );

    // Both announce: the client goes through AS2 to cluster 2.
    s.wait_path(vip, &[3, 2, 5], start, &[&ka1, &ka2]);
    let took = s.wait_path(vip6, &[3, 2, 5], start, &[&ka1, &ka2]);
    clock.measured(
        "start -> the client's paths (IPv4 and IPv6) are 3 2 5",
        took,
    );
    for i in 0..2 {
        let st = wait_bgp(
            if i == 0 { &ka1 } else { &ka2 },
            &lab,
            i,
            "announced",
            "announced: 1 of 1 services up",
        );
        clock.say(&format!("lb{}: rvsadm --bgp\n{st}", i + 1));
    }
    let r22 = lab.bird("r22").unwrap();
    let route = r22.route(lab.prefix()).unwrap().unwrap();
    assert_eq!(route.protocol, "lb2");
    assert_eq!(route.as_path, [5]);
    assert_eq!(route.via, Some(lab.peering(1).lb_ip.into()));
    let route6 = r22.route(lab.prefix6()).unwrap().unwrap();
    assert_eq!(route6.via, Some(lab.peering(1).lb_ip6.into()));
    for ip in [vip, vip6] {
        let (_, who) = s.wait_served(ip, 2, start, &[&ka1, &ka2]);
        let names = s.all_served_by(ip, 2, 4);
        clock.say(&format!(
            "client -> {ip}:{PORT}: path {:?}, answered by {who}, then {names:?}",
            s.path(ip).unwrap()
        ));
    }

    // SIGTERM to lb2's rvsd: it ends its session with a Cease, r22 withdraws at once.
    let pid = ka2.lab.rvsd.as_ref().unwrap().pid();
    let t0 = Instant::now();
    kill(Pid::from_raw(pid as i32), Signal::SIGTERM).unwrap();
    clock.say("SIGTERM to lb2's rvsd");
    let path_took = s.wait_path(vip, &[3, 1, 5], t0, &[&ka1, &ka2]);
    let (served_took, who) = s.wait_served(vip, 1, t0, &[&ka1, &ka2]);
    let path6_took = s.wait_path(vip6, &[3, 1, 5], t0, &[&ka1, &ka2]);
    let (served6_took, who6) = s.wait_served(vip6, 1, t0, &[&ka1, &ka2]);
    ka2.lab.stop_rvsd();
    clock.say(&format!(
        "lb2's rvsd exited {:.2} s after SIGTERM (or sooner)",
        t0.elapsed().as_secs_f64()
    ));
    clock.measured("SIGTERM -> the client's IPv4 path is 3 1 5", path_took);
    clock.measured("SIGTERM -> the client's IPv6 path is 3 1 5", path6_took);
    clock.measured(
        &format!("SIGTERM -> first IPv4 request served by cluster 1 ({who})"),
        served_took,
    );
    clock.measured(
        &format!("SIGTERM -> first IPv6 request served by cluster 1 ({who6})"),
        served6_took,
    );
    assert!(!r22.protocol("lb2").unwrap().unwrap().is_established());
    assert_eq!(s.r22_path(lab.prefix()), Some(vec![1, 5]));
    for ip in [vip, vip6] {
        let names = s.all_served_by(ip, 1, 4);
        clock.say(&format!(
            "client -> {ip}:{PORT}: path {:?}, answered by {names:?}",
            s.path(ip).unwrap()
        ));
    }

    // lb2's rvsd again: it connects to r22, announces, the path returns.
    let t0 = Instant::now();
    ka2.lab.start_rvsd();
    clock.measured(
        "restart -> lb2's rvsd serving (configuration loaded, XDP attached)",
        t0.elapsed(),
    );
    if let Err(e) = lab.wait_lb_sessions(1, Default::default(), BOUND) {
        fail(&format!("{e:#}"), &[&ka1, &ka2]);
    }
    clock.measured("restart -> r22's session to lb2 Established", t0.elapsed());
    let path_took = s.wait_path(vip, &[3, 2, 5], t0, &[&ka1, &ka2]);
    let path6_took = s.wait_path(vip6, &[3, 2, 5], t0, &[&ka1, &ka2]);
    let (served_took, who) = s.wait_served(vip, 2, t0, &[&ka1, &ka2]);
    let (served6_took, who6) = s.wait_served(vip6, 2, t0, &[&ka1, &ka2]);
    clock.measured(
        "restart -> the client's IPv4 path is 3 2 5 again",
        path_took,
    );
    clock.measured(
        "restart -> the client's IPv6 path is 3 2 5 again",
        path6_took,
    );
    clock.measured(
        &format!("restart -> first IPv4 request served by cluster 2 ({who})"),
        served_took,
    );
    clock.measured(
        &format!("restart -> first IPv6 request served by cluster 2 ({who6})"),
        served6_took,
    );
    wait_bgp(&ka2, &lab, 1, "announced", "announced: 1 of 1 services up");
    for ip in [vip, vip6] {
        s.all_served_by(ip, 2, 4);
    }

    // Cluster 2's real servers stop serving while its rvsd runs: the checkers fail, both
    // services lose quorum, rvsd withdraws both prefixes (the session stays).
    let t0 = Instant::now();
    servers[1].clear();
    clock.say("cluster 2's TCP servers stopped (rs2-1, rs2-2)");
    let r = poll_until(BOUND, "lb2's withdrawal at r22", || {
        if s.r22_path(lab.prefix()) != Some(vec![5]) && s.r22_path(lab.prefix6()) != Some(vec![5]) {
            return Ok(Some(()));
        }
        std::thread::sleep(Duration::from_millis(20));
        Ok(None)
    });
    if let Err(e) = r {
        fail(&format!("{e:#}"), &[&ka1, &ka2]);
    }
    clock.measured(
        "service broken -> lb2's prefixes withdrawn at r22",
        t0.elapsed(),
    );
    let path_took = s.wait_path(vip, &[3, 1, 5], t0, &[&ka1, &ka2]);
    let (served_took, who) = s.wait_served(vip, 1, t0, &[&ka1, &ka2]);
    s.wait_path(vip6, &[3, 1, 5], t0, &[&ka1, &ka2]);
    s.wait_served(vip6, 1, t0, &[&ka1, &ka2]);
    clock.measured("service broken -> the client's path is 3 1 5", path_took);
    clock.measured(
        &format!("service broken -> first request served by cluster 1 ({who})"),
        served_took,
    );
    let st = wait_bgp(
        &ka2,
        &lab,
        1,
        "withdrawn",
        "withdrawn: 1 of 1 services down",
    );
    clock.say(&format!("lb2: rvsadm --bgp\n{st}"));
    assert!(
        r22.protocol("lb2").unwrap().unwrap().is_established(),
        "the session stays up"
    );
    let router = lab.peering(1).router_ip.to_string();
    assert!(bgp_line(&st, &router).contains("Established"), "{st}");
    for ip in [vip, vip6] {
        s.all_served_by(ip, 1, 4);
    }

    // Repaired: the checkers pass, quorum is back, rvsd announces again.
    let t0 = Instant::now();
    servers[1] = lab
        .real_servers(1)
        .iter()
        .map(|rs| rs.serve_tcp(PORT).unwrap())
        .collect();
    clock.say("cluster 2's TCP servers started again");
    let path_took = s.wait_path(vip, &[3, 2, 5], t0, &[&ka1, &ka2]);
    let (served_took, who) = s.wait_served(vip, 2, t0, &[&ka1, &ka2]);
    s.wait_path(vip6, &[3, 2, 5], t0, &[&ka1, &ka2]);
    s.wait_served(vip6, 2, t0, &[&ka1, &ka2]);
    clock.measured(
        "service repaired -> the client's path is 3 2 5 again",
        path_took,
    );
    clock.measured(
        &format!("service repaired -> first request served by cluster 2 ({who})"),
        served_took,
    );
    let st = wait_bgp(&ka2, &lab, 1, "announced", "announced: 1 of 1 services up");
    clock.say(&format!("lb2: rvsadm --bgp\n{st}"));
    for ip in [vip, vip6] {
        s.all_served_by(ip, 2, 4);
    }

    eprintln!("\nlb2's rvsd log (BGP):");
    for l in ka2.lab.rvsd_log().lines().filter(|l| l.contains("BGP")) {
        eprintln!("  {}", plain(l));
    }
    eprintln!("r22's BIRD log (lb2):");
    for l in r22
        .log()
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("lb2"))
    {
        eprintln!("  {l}");
    }
    eprintln!("\nConvergence times:");
    for (what, took) in &clock.times {
        eprintln!("  {:>6.2} s  {what}", took.as_secs_f64());
        assert!(*took < BOUND, "{what}: {took:?}");
    }
    drop(ka2);
    drop(ka1);
    drop(servers);
}
