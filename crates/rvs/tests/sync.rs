//! Connection sync between two rvs directors under VRRP (issue 12), end to end, for direct
//! routing and for NAT: 100 long-lived TCP connections streaming a checked pattern both ways, UDP
//! flows, and persistent clients (TCP and UDP) run through the MASTER. It is killed (kill -9)
//! and its links taken down: the BACKUP takes over, and every connection and flow goes on, byte
//! for byte, with no reset, on the real server it had; each persistent client's new connections
//! and flows reach the server its template names. Then the old MASTER comes back, takes the whole
//! table by bulk sync, preempts, and again nothing is lost. Without sync the same failover breaks
//! the connections (the control that shows the test can fail).
//!
//! The streams are `rvs_testbed::stream`'s (the `rvs-stream` tool's logic), run in-process: the
//! servers in the real servers' namespaces, the clients in the client's.

mod common;

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use common::{Lab, ha::Side, keepalived::ConfDir};
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use rvs_testbed::{
    HaCluster, INSIDE_DIRECTOR_IPS, INSIDE_GATEWAY, poll_until,
    stream::{
        ClientConfig, Report, ServeConfig, StreamClient, StreamServer, tcp_server_of, udp_server_of,
    },
};

/// The streamed service, TCP and UDP, round robin.
const PORT: u16 = 9000;
/// The persistent service, TCP and UDP.
const STICKY_PORT: u16 = 9100;
/// Bound on every wait: VRRP transitions, sync, a takeover, connections moving on.
const BOUND: Duration = Duration::from_secs(30);
/// TCP connections and UDP flows of the main client.
const CONNS: u32 = 100;
const FLOWS: u32 = 8;
/// Persistent clients (each its own address), each with this many connections and flows.
const STICKY_CLIENTS: u8 = 3;
const STICKY_CONNS: u32 = 4;
const STICKY_FLOWS: u32 = 2;
/// A connection with no echo this long is stalled: a generous "did not hang" bound.
const STALL: Duration = Duration::from_secs(20);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Dr,
    Nat,
}

/// The VRRP instances of one director.
fn instances(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Dr => &["VI_1"],
        Kind::Nat => &["VI_VIP", "VI_GW"],
    }
}

/// The address of director `i` on the sync interface.
fn sync_addr(kind: Kind, i: usize) -> Ipv4Addr {
    match kind {
        Kind::Dr => rvs_testbed::DIRECTOR_IPS[i],
        Kind::Nat => INSIDE_DIRECTOR_IPS[i],
    }
}

/// One `virtual_server` block over every real server.
fn service(c: &HaCluster, kind: Kind, proto: &str, port: u16, persistent: bool) -> String {
    let lb_kind = match kind {
        Kind::Dr => "DR",
        Kind::Nat => "NAT",
    };
    let persistence = if persistent {
        "    persistence_timeout 300\n"
    } else {
        ""
    };
    let servers: String = (c.real_servers().iter())
        .map(|rs| {
            format!(
                "    real_server {} {port} {{\n        weight 1\n    }}\n",
                rs.ip()
            )
        })
        .collect();
    format!(
        "virtual_server {} {port} {{\n    lb_algo rr\n    lb_kind {lb_kind}\n    protocol {proto}\n\
         {persistence}{servers}}}\n",
        c.vips()[0]
    )
}

fn instance(name: &str, interface: &str, vrid: u8, priority: u8, address: &str) -> String {
    format!(
        "vrrp_instance {name} {{\n    state BACKUP\n    interface {interface}\n    \
         virtual_router_id {vrid}\n    priority {priority}\n    version 3\n    advert_int 0.2\n    \
         garp_master_delay 1\n    virtual_ipaddress {{\n        {address}\n    }}\n}}\n"
    )
}

/// keepalived.conf of one director at `priority`, with the sync daemon if `sync`.
///
/// DR: one instance holds the VIP, and the sync daemon follows it on the LAN.
/// NAT: a `vrrp_sync_group` of the outside VIP (eth0) and the real servers' gateway (eth1), so
/// that the two move together; the sync daemon follows the gateway's instance, on the inside LAN
/// where the other director is reachable whichever side is up.
fn conf(c: &HaCluster, kind: Kind, priority: u8, sync: bool) -> String {
    let vip = c.vips()[0];
    let mut s = String::new();
    if sync {
        let daemon = match kind {
            Kind::Dr => "eth0 VI_1",
            Kind::Nat => "eth1 VI_GW",
        };
        s.push_str(&format!(
            "global_defs {{\n    lvs_sync_daemon {daemon}\n}}\n"
        ));
    }
    for (proto, port, persistent) in [
        ("TCP", PORT, false),
        ("UDP", PORT, false),
        ("TCP", STICKY_PORT, true),
        ("UDP", STICKY_PORT, true),
    ] {
        s.push_str(&service(c, kind, proto, port, persistent));
    }
    match kind {
        Kind::Dr => s.push_str(&instance("VI_1", "eth0", 51, priority, &vip.to_string())),
        Kind::Nat => {
            s.push_str(
                "vrrp_sync_group G {\n    group {\n        VI_VIP\n        VI_GW\n    }\n}\n",
            );
            s.push_str(&instance("VI_VIP", "eth0", 51, priority, &vip.to_string()));
            s.push_str(&instance(
                "VI_GW",
                "eth1",
                52,
                priority,
                &format!("{INSIDE_GATEWAY}/24"),
            ));
        }
    }
    s
}

fn rvsd(c: &Arc<HaCluster>, i: usize, dir: &ConfDir, text: &str) -> Lab<Side> {
    let path = dir.write(&format!("rvsd{i}.conf"), text, false);
    Lab::on(
        Side { c: c.clone(), i },
        PORT,
        &["-f", path.to_str().unwrap()],
    )
}

fn state(lab: &Lab<Side>, name: &str) -> Option<String> {
    let out = String::from_utf8_lossy(&lab.rvsadm(&["--vrrp"]).stdout).into_owned();
    let line = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))?
        .to_owned();
    line.split_whitespace().nth(4).map(str::to_owned)
}

/// Waits until every instance of the director is `want`.
fn wait_state(lab: &Lab<Side>, kind: Kind, want: &str) {
    for name in instances(kind) {
        poll_until(BOUND, &format!("{name} to be {want}"), || {
            Ok((state(lab, name).as_deref() == Some(want)).then_some(()))
        })
        .unwrap_or_else(|e| panic!("{e:#}\n{}\n{}", lab.ok(&["--vrrp"]), lab.rvsd_log()));
    }
}

/// (ActiveConn, InActConn) summed over every real server of every service.
fn conns(lab: &Lab<Side>) -> (u64, u64) {
    (common::dest_rows(&lab.ok(&["-L", "-n"])).iter()).fold((0, 0), |(a, i), r| (a + r.3, i + r.4))
}

fn kill9(lab: &mut Lab<Side>) {
    let p = lab.rvsd.take().expect("rvsd running");
    kill(Pid::from_raw(p.pid() as i32), Signal::SIGKILL).unwrap();
    drop(p);
}

fn vip(c: &HaCluster, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(c.vips()[0]), port)
}

/// A new connection from the client reaches a real server (the router has learnt the MASTER).
fn reachable(c: &HaCluster) {
    poll_until(BOUND, "a new connection to the VIP", || {
        Ok(c.client()
            .netns()
            .enter(|| tcp_server_of(None, vip(c, PORT), Duration::from_secs(1)))?
            .ok())
    })
    .unwrap();
}

/// A persistent client: its address, the servers its template names for TCP and UDP, and its
/// streams.
struct Sticky {
    source: IpAddr,
    tcp: String,
    udp: String,
    client: StreamClient,
}

impl Sticky {
    /// New connections and flows still reach the servers of the client's templates.
    fn check(&self, c: &HaCluster, when: &str) {
        let now = servers_of(c, self.source).unwrap_or_else(|e| panic!("{when}: {e:#}"));
        assert_eq!(
            now,
            (self.tcp.clone(), self.udp.clone()),
            "persistent client {} {when}",
            self.source
        );
    }
}

/// The servers a new connection and a new flow from `source` reach now.
fn servers_of(c: &HaCluster, source: IpAddr) -> anyhow::Result<(String, String)> {
    let ns = c.client().netns();
    let limit = Duration::from_secs(5);
    let addr = vip(c, STICKY_PORT);
    let tcp = ns.enter(|| tcp_server_of(Some(source), addr, limit))??;
    let udp = ns.enter(|| udp_server_of(Some(source), 0, addr, limit))??;
    Ok((tcp, udp))
}

fn stream_config(addr: SocketAddr, conns: u32, flows: u32) -> ClientConfig {
    let mut config = ClientConfig::new(addr.ip(), addr.port(), conns).udp(addr.port(), flows);
    config.stall = STALL;
    config.drain = Some(Duration::from_secs(5));
    // Datagrams sent while no director forwards are lost; a flow must not move, and must go on.
    config.udp_max_lost = u64::MAX;
    config.seed = u64::from(addr.port());
    config
}

/// Every client moves on (echoes and answers) within the bound after `when`.
fn all_move_on(run: &Run, when: &str) {
    let clients = run.clients();
    let before: Vec<_> = clients.iter().map(|c| c.progress()).collect();
    for (client, before) in clients.iter().zip(&before) {
        if let Err(e) = client.wait_progress(before, BOUND) {
            panic!(
                "{when}: {e:#}\ndirector0:\n{}\ndirector1:\n{}\n{}\n{}\n{}",
                run.a.rvsd_log(),
                run.b.rvsd_log(),
                run.b.ok(&["--sync"]),
                run.b.ok(&["--dataplane"]),
                run.b.ok(&["-L", "-n", "-c"])
            );
        }
    }
}

/// A report with nothing lost: every connection streamed to the end byte for byte without a reset
/// or a stall, every flow answered by one server throughout.
fn assert_intact(report: &Report, what: &str) {
    let json = report.to_json();
    assert_eq!(report.ok, report.conns as usize, "{what}: {json}");
    assert_eq!(
        (
            report.reset,
            report.eof,
            report.mismatch,
            report.stalled,
            report.unfinished
        ),
        (0, 0, 0, 0, 0),
        "{what}: {json}"
    );
    assert_eq!(report.bytes_echoed, report.bytes_sent, "{what}: {json}");
    assert_eq!(report.udp_ok, report.udp_flows as usize, "{what}: {json}");
    assert_eq!(
        (report.udp_moved, report.udp_mismatch),
        (0, 0),
        "{what}: {json}"
    );
}

/// Everything the scenario runs, so that a failure drops it in order: clients, servers, rvsd,
/// namespaces.
struct Run {
    main: Option<StreamClient>,
    sticky: Vec<Sticky>,
    _servers: Vec<StreamServer>,
    a: Lab<Side>,
    b: Lab<Side>,
    c: Arc<HaCluster>,
    _dir: ConfDir,
}

/// Two directors (0 MASTER, 1 BACKUP), the streams opened through director 0 and, with sync,
/// every connection known to director 1.
fn start(kind: Kind, sync: bool) -> Run {
    let c = Arc::new(
        match kind {
            Kind::Dr => HaCluster::build(2, 1, false),
            Kind::Nat => HaCluster::build_nat(2, 1),
        }
        .expect("building the cluster"),
    );
    let mut servers = Vec::new();
    for rs in c.real_servers() {
        for port in [PORT, STICKY_PORT] {
            let config = ServeConfig::new(rs.name(), port).udp(port);
            servers.push(StreamServer::start_in(rs.netns(), &config).expect("a stream server"));
        }
    }
    let dir = ConfDir::new();
    let a = rvsd(&c, 0, &dir, &conf(&c, kind, 150, sync));
    wait_state(&a, kind, "MASTER");
    let b = rvsd(&c, 1, &dir, &conf(&c, kind, 100, sync));
    wait_state(&b, kind, "BACKUP");
    reachable(&c);

    let ns = c.client().netns();
    let main = StreamClient::start_in(ns, stream_config(vip(&c, PORT), CONNS, FLOWS))
        .expect("starting the streams");
    let mut sticky = Vec::new();
    for n in 0..STICKY_CLIENTS {
        let source = IpAddr::V4(Ipv4Addr::new(198, 19, 0, 11 + n));
        c.client().add_address(source).unwrap();
        // The first connection and flow make the templates; the streams follow them.
        let (tcp, udp) = poll_until(BOUND, "a persistent client's first answers", || {
            Ok(servers_of(&c, source).ok())
        })
        .unwrap();
        let config = stream_config(vip(&c, STICKY_PORT), STICKY_CONNS, STICKY_FLOWS);
        let s = Sticky {
            source,
            tcp,
            udp,
            client: StreamClient::start_in(ns, config.from(source)).unwrap(),
        };
        sticky.push(s);
    }
    main.wait_streaming(Duration::from_secs(60)).unwrap();
    for s in &sticky {
        s.client.wait_streaming(BOUND).unwrap();
    }
    let run = Run {
        main: Some(main),
        sticky,
        _servers: servers,
        a,
        b,
        c,
        _dir: dir,
    };
    if sync {
        // The main and persistent streams, and every flow; closed connections add inactive ones.
        let tcp = u64::from(CONNS + u32::from(STICKY_CLIENTS) * STICKY_CONNS);
        let udp = u64::from(FLOWS + u32::from(STICKY_CLIENTS) * STICKY_FLOWS);
        poll_until(
            BOUND,
            "the backup to hold every connection and flow",
            || {
                let (active, inactive) = conns(&run.b);
                Ok((active >= tcp && inactive >= udp).then_some(()))
            },
        )
        .unwrap_or_else(|e| {
            panic!(
                "{e:#}\n{}\n{}",
                run.b.ok(&["-L", "-n"]),
                run.b.ok(&["--sync"])
            )
        });
    }
    run
}

impl Drop for Run {
    fn drop(&mut self) {
        // All at once: each then ends within its drain time, together.
        for c in self.clients() {
            c.signal_stop();
        }
    }
}

impl Run {
    fn clients(&self) -> Vec<&StreamClient> {
        (self.main.iter())
            .chain(self.sticky.iter().map(|s| &s.client))
            .collect()
    }

    /// The MASTER dies without a word, and its links go; the BACKUP takes over.
    fn fail_over(&mut self, kind: Kind) {
        kill9(&mut self.a);
        self.c.set_director_links(0, false).unwrap();
        eprintln!("sync test: director0 killed, its links down");
        wait_state(&self.b, kind, "MASTER");
        eprintln!("sync test: director1 MASTER");
        reachable(&self.c);
    }

    /// The old MASTER comes back, takes the table from the new one, and preempts.
    fn fail_back(&mut self, kind: Kind) {
        self.c.set_director_links(0, true).unwrap();
        self.a.start_rvsd();
        eprintln!("sync test: director0 back");
        wait_state(&self.a, kind, "MASTER");
        wait_state(&self.b, kind, "BACKUP");
        eprintln!("sync test: director0 MASTER again");
        let status = self.a.ok(&["--sync"]);
        let from = format!("bulk done from {}", sync_addr(kind, 1));
        assert!(status.contains(&from), "{status}");
        reachable(&self.c);
    }

    /// Stops every client: the main report, and each persistent client's.
    fn reports(&mut self) -> (Report, Vec<(IpAddr, String, String, Report)>) {
        for c in self.clients() {
            c.signal_stop();
        }
        let main = self.main.take().unwrap().stop().unwrap();
        let sticky = (self.sticky.drain(..))
            .map(|s| (s.source, s.tcp, s.udp, s.client.stop().unwrap()))
            .collect();
        (main, sticky)
    }
}

fn failover_and_failback_lose_nothing(kind: Kind) {
    let mut run = start(kind, true);
    run.fail_over(kind);
    all_move_on(&run, "after the failover");
    for s in &run.sticky {
        s.check(&run.c, "after the failover");
    }
    run.fail_back(kind);
    all_move_on(&run, "after the failback");
    for s in &run.sticky {
        s.check(&run.c, "after the failback");
    }
    let (main, sticky) = run.reports();
    eprintln!("the streams: {}", main.to_json());
    assert_intact(&main, "the streams");
    // Round robin spread them over both servers; none moved (a moved flow is not ok).
    assert_eq!(main.servers.len(), 2, "{}", main.to_json());
    for (source, tcp, udp, report) in sticky {
        eprintln!("persistent client {source}: {}", report.to_json());
        assert_intact(&report, &format!("persistent client {source}"));
        let want = |name: &str, n| [(name.to_owned(), n)].into_iter().collect();
        assert_eq!(
            report.servers,
            want(&tcp, STICKY_CONNS),
            "{source}: {}",
            report.to_json()
        );
        assert_eq!(
            report.udp_servers,
            want(&udp, STICKY_FLOWS),
            "{source}: {}",
            report.to_json()
        );
    }
}

/// The same failover without sync: the backup does not know the connections, and leaves their
/// packets to its kernel, which has no socket for them (a reset, or silence where the director
/// has no route back to the client): they break.
fn without_sync_connections_break(kind: Kind) {
    let mut run = start(kind, false);
    run.fail_over(kind);
    let main = run.main.take().unwrap();
    for s in &run.sticky {
        s.client.signal_stop();
    }
    // Long enough for the survivors to show they go on; the others are cut or unfinished.
    let before = main.progress();
    let _ = main.wait_progress(&before, Duration::from_secs(3));
    let report = main.stop().unwrap();
    eprintln!("the streams: {}", report.to_json());
    assert!(
        report.ok < report.conns as usize,
        "the control: without sync the backup cannot know the flows: {}",
        report.to_json()
    );
}

#[test]
fn dr_no_connection_is_lost_on_failover_nor_on_failback() {
    failover_and_failback_lose_nothing(Kind::Dr);
}

#[test]
fn dr_without_sync_the_same_failover_breaks_connections() {
    without_sync_connections_break(Kind::Dr);
}

#[test]
fn nat_no_connection_is_lost_on_failover_nor_on_failback() {
    failover_and_failback_lose_nothing(Kind::Nat);
}

#[test]
fn nat_without_sync_the_same_failover_breaks_connections() {
    without_sync_connections_break(Kind::Nat);
}
