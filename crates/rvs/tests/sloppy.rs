//! Sloppy TCP (IPVS's sloppy_tcp, per service or for all): a director that receives the middle
//! of a TCP connection it never saw schedules it and forwards it, instead of passing it to its
//! kernel. Behind ECMP such a packet belongs to a connection another director opened; with mh
//! (the same table on every director) it reaches the same real server, so the connection goes
//! on.
//!
//! The topology is [`HaCluster`]'s (two directors and three real servers on one LAN for direct
//! routing, the client behind a router), without VRRP and without connection sync: director 0
//! holds the VIP while the streams open, then the VIP moves to director 1 — as an ECMP router
//! moves flows to another director when the group changes. Director 1 has no entry for any of
//! them. Sloppy, every connection goes on byte for byte on its own real server; without it
//! (the control), director 1's kernel resets them.

mod common;

use std::{net::Ipv4Addr, sync::Arc, time::Duration};

use common::{Lab, ha::Side};
use rvs_testbed::{
    HaCluster, poll_until,
    stream::{ClientConfig, Report, ServeConfig, StreamClient, StreamServer},
};

const PORT: u16 = 80;
/// Client addresses, so that mh (by source address) spreads the connections over the servers.
const SOURCES: [Ipv4Addr; 4] = [
    Ipv4Addr::new(198, 19, 0, 21),
    Ipv4Addr::new(198, 19, 0, 22),
    Ipv4Addr::new(198, 19, 0, 23),
    Ipv4Addr::new(198, 19, 0, 24),
];
const CONNS_PER_SOURCE: u32 = 8;
const BOUND: Duration = Duration::from_secs(20);

/// Everything a run holds, dropped in order: clients, servers, rvsds, namespaces.
struct Run {
    clients: Vec<StreamClient>,
    _servers: Vec<StreamServer>,
    a: Lab<Side>,
    b: Lab<Side>,
    c: Arc<HaCluster>,
}

impl Drop for Run {
    fn drop(&mut self) {
        for c in &self.clients {
            c.signal_stop();
        }
    }
}

/// Both directors with the same mh service (`service_opts` added to `-A`), rvsd started with
/// `rvsd_args`; director 0 holds the VIP and the streams run through it.
fn start(service_opts: &[&str], rvsd_args: &[&str]) -> Run {
    let c = Arc::new(HaCluster::build(3, 1, false).expect("building the cluster"));
    let servers = c
        .real_servers()
        .iter()
        .map(|rs| StreamServer::start_in(rs.netns(), &ServeConfig::new(rs.name(), PORT)))
        .collect::<Result<Vec<_>, _>>()
        .expect("stream servers");
    let a = Lab::on(Side { c: c.clone(), i: 0 }, PORT, rvsd_args);
    let b = Lab::on(Side { c: c.clone(), i: 1 }, PORT, rvsd_args);
    let svc = format!("{}:{PORT}", c.vips()[0]);
    for lab in [&a, &b] {
        let mut add = vec!["-A", "-t", &svc, "-s", "mh"];
        add.extend(service_opts);
        lab.ok(&add);
        // In the same order on both: mh's table is then the same.
        for rs in c.real_servers() {
            let dest = format!("{}:{PORT}", rs.ip());
            lab.ok(&["-a", "-t", &svc, "-r", &dest, "-g"]);
        }
    }
    hold_vip(&c, 0, true);
    let ns = c.client().netns();
    let mut clients = Vec::new();
    for (n, &source) in SOURCES.iter().enumerate() {
        c.client().add_address(source.into()).unwrap();
        let mut config = ClientConfig::new(c.vips()[0].into(), PORT, CONNS_PER_SOURCE);
        config.stall = Duration::from_secs(4);
        config.drain = Some(Duration::from_secs(4));
        config.seed = n as u64 + 1;
        clients.push(StreamClient::start_in(ns, config.from(source.into())).unwrap());
    }
    for client in &clients {
        client
            .wait_streaming(Duration::from_secs(60))
            .expect("the streams through director 0");
    }
    Run {
        clients,
        _servers: servers,
        a,
        b,
        c,
    }
}

/// Director `i` holds (or gives up) the VIP on its LAN interface.
fn hold_vip(c: &HaCluster, i: usize, hold: bool) {
    let vip = format!("{}/32", c.vips()[0]);
    let verb = if hold { "add" } else { "del" };
    c.directors()[i]
        .netns()
        .ip(&["addr", verb, &vip, "dev", "eth0"])
        .unwrap();
}

impl Run {
    /// The VIP moves to director 1, and the router's neighbour entry with it: every flow now
    /// reaches a director that never saw it.
    fn move_to_b(&self) {
        hold_vip(&self.c, 0, false);
        hold_vip(&self.c, 1, true);
        let mac = self.c.directors()[1].mac().to_string();
        let vip = self.c.vips()[0].to_string();
        self.c
            .router()
            .netns()
            .ip(&[
                "neigh",
                "replace",
                &vip,
                "lladdr",
                &mac,
                "dev",
                "eth1",
                "nud",
                "reachable",
            ])
            .unwrap();
    }

    /// Lets the streams run on for a while after the move, then stops them; also returns director
    /// 1's connection listing from before the stop.
    fn finish(mut self) -> (Report, String, Run) {
        std::thread::sleep(Duration::from_secs(3));
        let listing = self.b.ok(&["-L", "-n", "-c"]);
        let mut reports = Report::default();
        for client in std::mem::take(&mut self.clients) {
            let r = client.stop().expect("the streams' report");
            reports.conns += r.conns;
            reports.ok += r.ok;
            reports.reset += r.reset;
            reports.eof += r.eof;
            reports.mismatch += r.mismatch;
            reports.stalled += r.stalled;
            reports.bytes_sent += r.bytes_sent;
            reports.bytes_echoed += r.bytes_echoed;
            for (server, n) in r.servers {
                *reports.servers.entry(server).or_default() += n;
            }
        }
        (reports, listing, self)
    }

    fn counter(lab: &Lab<Side>, name: &str) -> u64 {
        lab.counter(name)
    }
}

/// The streams went on after the move: every connection ok, byte for byte, on its server.
fn assert_kept(report: &Report, listing: &str, run: &Run) {
    let conns = SOURCES.len() as u32 * CONNS_PER_SOURCE;
    assert_eq!(report.conns, conns);
    let diag = || {
        format!(
            "{}\n{}\n{}",
            report.to_json(),
            run.b.ok(&["--dataplane"]),
            run.b.ok(&["-L", "-n", "-c"])
        )
    };
    assert_eq!(report.ok, conns as usize, "{}", diag());
    assert_eq!(
        (report.reset, report.eof, report.mismatch, report.stalled),
        (0, 0, 0, 0),
        "{}",
        diag()
    );
    assert_eq!(report.bytes_echoed, report.bytes_sent, "{}", diag());
    // mh spread the sources: more than one server carried connections.
    assert!(report.servers.len() > 1, "{}", diag());
    // Director 1 took each connection in the middle, and knows it as ESTABLISHED.
    assert!(
        Run::counter(&run.b, "sloppy_scheduled") >= u64::from(conns),
        "{}",
        diag()
    );
    assert_eq!(Run::counter(&run.b, "pass_no_conn"), 0, "{}", diag());
    let established = listing
        .lines()
        .filter(|l| l.contains("ESTABLISHED"))
        .count();
    assert!(established >= conns as usize, "{listing}");
}

/// Each director's progress after the move, or a panic with both directors' view.
fn wait_moving_on(run: &Run) {
    for client in &run.clients {
        let before = client.progress();
        if let Err(e) = client.wait_progress(&before, BOUND) {
            panic!(
                "{e:#}\n{}\n{}",
                run.b.ok(&["--dataplane"]),
                run.b.ok(&["-L", "-n", "-c"])
            );
        }
    }
}

#[test]
fn a_sloppy_service_keeps_connections_another_director_opened() {
    let run = start(&["--sloppy-tcp"], &[]);
    let listing = run.a.ok(&["-L", "-n"]);
    assert!(listing.contains(" mh sloppy_tcp"), "{listing}");
    let saved = run.a.ok(&["-S", "-n"]);
    assert!(saved.contains(" -s mh --sloppy-tcp"), "{saved}");
    run.move_to_b();
    wait_moving_on(&run);
    let (report, listing, run) = run.finish();
    assert_kept(&report, &listing, &run);
}

#[test]
fn rvsd_wide_sloppy_tcp_does_the_same_for_every_service() {
    let run = start(&[], &["--sloppy-tcp"]);
    run.move_to_b();
    wait_moving_on(&run);
    let (report, listing, run) = run.finish();
    assert_kept(&report, &listing, &run);
}

/// The control: without sloppy_tcp, director 1 passes the packets to its kernel, and no
/// connection goes on — what the option prevents.
#[test]
fn without_sloppy_tcp_no_moved_connection_goes_on() {
    let run = start(&[], &[]);
    run.move_to_b();
    let b = &run.b;
    poll_until(BOUND, "director 1 to pass what it does not know", || {
        Ok((b.counter("pass_no_conn") > 0).then_some(()))
    })
    .unwrap();
    let (report, _, run) = run.finish();
    assert_eq!(report.ok, 0, "{}", report.to_json());
    assert_eq!(Run::counter(&run.b, "sloppy_scheduled"), 0);
}
