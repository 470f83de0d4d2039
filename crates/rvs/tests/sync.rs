//! Connection sync between two rvs directors under VRRP (issue 12), end to end: long-lived TCP
//! connections opened through the MASTER keep their real server and see no reset when the
//! MASTER is killed (and its link taken down) and the BACKUP takes over, and again when the
//! old MASTER comes back, takes the whole table by bulk sync and preempts. Without sync the same
//! failover breaks them (the control that shows the test can fail).

mod common;

use std::{net::IpAddr, sync::Arc, time::Duration};

use common::{Lab, ha::Side, keepalived::ConfDir};
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use rvs_testbed::{HaCluster, TcpConn, poll_until};

const PORT: u16 = 80;
const BOUND: Duration = Duration::from_secs(20);
/// Connections held open across the failovers.
const CONNS: usize = 20;

/// keepalived.conf of one director: a DR service over both real servers, a VRRPv3 instance of
/// `priority` and, with `sync`, the sync daemon following it.
fn conf(c: &HaCluster, priority: u8, sync: bool) -> String {
    let vip = c.vips()[0];
    let servers: String = c
        .real_servers()
        .iter()
        .map(|rs| {
            format!(
                "    real_server {} {PORT} {{\n        weight 1\n    }}\n",
                rs.ip()
            )
        })
        .collect();
    let global = if sync {
        "global_defs {\n    lvs_sync_daemon eth0 VI_1\n}\n"
    } else {
        ""
    };
    format!(
        "{global}virtual_server {vip} {PORT} {{\n    lb_algo rr\n    lb_kind DR\n    protocol TCP\n\
         {servers}}}\nvrrp_instance VI_1 {{\n    state BACKUP\n    interface eth0\n    \
         virtual_router_id 51\n    priority {priority}\n    version 3\n    advert_int 0.2\n    \
         garp_master_delay 1\n    virtual_ipaddress {{\n        {vip}\n    }}\n}}\n"
    )
}

fn rvsd(c: &Arc<HaCluster>, i: usize, dir: &ConfDir, text: &str) -> Lab<Side> {
    let path = dir.write(&format!("rvsd{i}.conf"), text, false);
    Lab::on(
        Side { c: c.clone(), i },
        PORT,
        &["-f", path.to_str().unwrap()],
    )
}

fn state(lab: &Lab<Side>) -> Option<String> {
    let out = String::from_utf8_lossy(&lab.rvsadm(&["--vrrp"]).stdout).into_owned();
    let line = out.lines().find(|l| l.starts_with("VI_1"))?.to_owned();
    line.split_whitespace().nth(4).map(str::to_owned)
}

fn wait_state(lab: &Lab<Side>, want: &str) {
    poll_until(BOUND, &format!("VI_1 to be {want}"), || {
        Ok((state(lab).as_deref() == Some(want)).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", lab.rvsd_log()));
}

/// ActiveConn summed over the real servers of the service.
fn active(lab: &Lab<Side>) -> i64 {
    common::dest_rows(&lab.ok(&["-L", "-n"]))
        .iter()
        .map(|r| r.3 as i64)
        .sum()
}

fn kill9(lab: &mut Lab<Side>) {
    let p = lab.rvsd.take().expect("rvsd running");
    kill(Pid::from_raw(p.pid() as i32), Signal::SIGKILL).unwrap();
    drop(p);
}

fn link(c: &HaCluster, i: usize, up: &str) {
    c.directors()[i]
        .netns()
        .ip(&["link", "set", "eth0", up])
        .unwrap();
}

/// A new connection gets through (the router has learnt the new MASTER).
fn reachable(c: &HaCluster) {
    let vip = IpAddr::V4(c.vips()[0]);
    poll_until(BOUND, "a new connection to the VIP", || {
        Ok(c.client().tcp_request(vip, PORT).ok())
    })
    .unwrap();
}

/// Each connection answers again, from the real server it had.
fn all_answer(conns: &mut [(TcpConn, String)], when: &str) -> usize {
    let mut broken = 0;
    for (i, (conn, server)) in conns.iter_mut().enumerate() {
        match conn.ask(&format!("{when} {i}")) {
            Ok(name) if name == *server => {}
            Ok(name) => panic!("connection {i} moved from {server} to {name} {when}"),
            Err(e) => {
                eprintln!("connection {i} {when}: {e:#}");
                broken += 1;
            }
        }
    }
    broken
}

/// Two directors, `CONNS` connections through director 0, which is then killed.
fn failover(sync: bool) -> (usize, usize) {
    let c = Arc::new(HaCluster::build(2, 1, false).expect("building the cluster"));
    let _tcp = c.serve_tcp(PORT).expect("starting TCP servers");
    let dir = ConfDir::new();
    let mut a = rvsd(&c, 0, &dir, &conf(&c, 150, sync));
    wait_state(&a, "MASTER");
    let b = rvsd(&c, 1, &dir, &conf(&c, 100, sync));
    wait_state(&b, "BACKUP");
    reachable(&c);

    let vip = IpAddr::V4(c.vips()[0]);
    let mut conns: Vec<(TcpConn, String)> = (0..CONNS)
        .map(|i| {
            let mut conn = c
                .client()
                .open_tcp(vip, PORT)
                .expect("opening a connection");
            let name = conn.ask(&format!("hello {i}")).expect("a first answer");
            (conn, name)
        })
        .collect();
    // A few packets each: past the sync threshold (3 packets from the client).
    assert_eq!(all_answer(&mut conns, "warming up"), 0);
    assert_eq!(all_answer(&mut conns, "warming up"), 0);
    if sync {
        poll_until(BOUND, "the backup to hold every connection", || {
            Ok((active(&b) >= CONNS as i64).then_some(()))
        })
        .unwrap_or_else(|e| panic!("{e:#}\n{}\n{}", b.ok(&["-L", "-n"]), b.ok(&["--sync"])));
    }

    // The MASTER dies without a word, and its link goes.
    kill9(&mut a);
    link(&c, 0, "down");
    wait_state(&b, "MASTER");
    reachable(&c);
    let after_failover = all_answer(&mut conns, "after the failover");
    if !sync {
        return (after_failover, 0);
    }

    // It comes back, takes the table from the new MASTER, and preempts.
    link(&c, 0, "up");
    a.start_rvsd();
    wait_state(&a, "MASTER");
    wait_state(&b, "BACKUP");
    let sync_status = a.ok(&["--sync"]);
    assert!(
        sync_status.contains("bulk done from 198.18.0.3"),
        "{sync_status}"
    );
    reachable(&c);
    let after_failback = all_answer(&mut conns, "after the failback");
    (after_failover, after_failback)
}

#[test]
fn no_connection_is_lost_on_failover_nor_on_failback() {
    assert_eq!(failover(true), (0, 0));
}

#[test]
fn without_sync_the_same_failover_breaks_connections() {
    let (broken, _) = failover(false);
    assert!(
        broken > 0,
        "the control: without sync the backup cannot know the flows"
    );
}
