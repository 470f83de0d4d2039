//! What rvsd does when keepalived's checkers change their minds, end to end: inhibit_on_failure
//! keeps a failed server at weight 0, losing quorum swaps the real servers for the sorry server
//! (and back), notify_up/notify_down and quorum_up/quorum_down scripts run, mail reaches an
//! SMTP server in another namespace with keepalived's subjects, `omega` runs the down notifiers
//! at shutdown, and a service the director refuses leaves the others running.

mod common;

use std::{
    net::{Ipv6Addr, SocketAddr},
    time::{Duration, Instant},
};

use common::keepalived::{ConfDir, DELAY_LOOP, KaLab, short_timers};
use rvs_testbed::{DrCluster, ReceivedMail, SmtpServer};

const PORT: u16 = 80;

fn cluster(real_servers: usize) -> DrCluster {
    DrCluster::builder()
        .real_servers(real_servers)
        .build()
        .expect("building the cluster")
}

/// A script that appends its arguments to `{DIR}/notify.log`.
fn notify_script(dir: &ConfDir) {
    let log = dir.path("notify.log");
    dir.write(
        "notify.sh",
        &format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display()),
        true,
    );
}

/// A real server block with a TCP_CHECK on the short timers and `extra` lines.
fn real_server(ip: impl std::fmt::Display, weight: i32, extra: &str) -> String {
    format!(
        "    real_server {ip} {PORT} {{\n        weight {weight}\n        {extra}\n        \
         TCP_CHECK {{\n            {}\n        }}\n    }}\n",
        short_timers()
    )
}

fn virtual_server(c: &DrCluster, extra: &str, real_servers: &str) -> String {
    format!(
        "virtual_server {} {PORT} {{\n    delay_loop {DELAY_LOOP}\n    lb_algo wrr\n    \
         lb_kind DR\n    protocol TCP\n    {extra}\n{real_servers}}}\n",
        c.vip()
    )
}

#[test]
fn inhibit_on_failure_keeps_the_server_at_weight_zero() {
    let c = cluster(2);
    let servers: String = (c.real_servers().iter())
        .map(|rs| real_server(rs.ip(), 2, "inhibit_on_failure"))
        .collect();
    let text = virtual_server(&c, "", &servers);
    let mut lab = KaLab::on(c, PORT, ConfDir::new(), &text);
    let vip = lab.lab.vip_port(PORT);
    let rs0 = lab.rs(0, PORT);
    lab.expect_weight("TCP", &vip, &rs0, 2);

    let t0 = Instant::now();
    drop(lab.lab.tcp.remove(0));
    lab.expect_within("rs0 to drop to weight 0", t0, || {
        lab.weight("TCP", &vip, &rs0) == Some(0)
    });
    let names: Vec<String> = (0..6).map(|_| lab.lab.ask(PORT)).collect();
    assert!(names.iter().all(|n| n == "rs1"), "{names:?}");
    lab.expect_log(&format!(
        "Disabling service [{}]:80 of VS [{}]:tcp:80 (TCP_CHECK on",
        lab.lab.rs_ip(0),
        lab.lab.vip()
    ));

    let server = lab.lab.cluster.real_servers()[0].serve_tcp(PORT).unwrap();
    lab.lab.tcp.insert(0, server);
    lab.expect_weight("TCP", &vip, &rs0, 2);
    let names: Vec<String> = (0..4).map(|_| lab.lab.ask(PORT)).collect();
    assert!(names.iter().any(|n| n == "rs0"), "{names:?}");
}

#[test]
fn losing_quorum_brings_the_sorry_server_and_back() {
    let c = cluster(3);
    let dir = ConfDir::new();
    notify_script(&dir);
    let servers: String = (c.real_servers()[..2].iter())
        .map(|rs| real_server(rs.ip(), 1, ""))
        .collect();
    let extra = format!(
        "quorum 2\n    sorry_server {} {PORT}\n    quorum_up \"{{DIR}}/notify.sh quorum up\"\n    \
         quorum_down \"{{DIR}}/notify.sh quorum down\"",
        c.real_servers()[2].ip()
    );
    let text = virtual_server(&c, &extra, &servers);
    let mut lab = KaLab::on(c, PORT, dir, &text);
    let vip = lab.lab.vip_port(PORT);
    let (rs0, rs1, sorry) = (lab.rs(0, PORT), lab.rs(1, PORT), lab.rs(2, PORT));
    let listed = |lab: &KaLab| {
        let mut v: Vec<String> = (lab.dests("TCP", &vip).into_iter())
            .map(|(a, _)| a)
            .collect();
        v.sort();
        v
    };
    assert_eq!(listed(&lab), [rs0.clone(), rs1.clone()]);

    // One of two servers of weight 1 left: 1 < quorum 2.
    let t0 = Instant::now();
    drop(lab.lab.tcp.remove(0));
    lab.expect_within("the sorry server to stand in", t0, || {
        listed(&lab) == [sorry.clone()]
    });
    let names: Vec<String> = (0..6).map(|_| lab.lab.ask(PORT)).collect();
    assert!(names.iter().all(|n| n == "rs2"), "{names:?}");
    let svc = format!("[{}]:tcp:80", lab.lab.vip());
    lab.expect_log(&format!("Lost quorum 2-0=2 > 1 for VS {svc}"));
    lab.expect_log(&format!(
        "Adding sorry server [{}]:80 to VS {svc}",
        lab.lab.rs_ip(2)
    ));
    lab.wait("quorum_down to run", Duration::from_secs(5), || {
        lab.dir.read("notify.log").contains("quorum down")
    });

    let server = lab.lab.cluster.real_servers()[0].serve_tcp(PORT).unwrap();
    lab.lab.tcp.insert(0, server);
    lab.wait(
        "the real servers to return",
        Duration::from_secs(10),
        || listed(&lab) == [rs0.clone(), rs1.clone()],
    );
    let names: Vec<String> = (0..4).map(|_| lab.lab.ask(PORT)).collect();
    assert!(names.iter().all(|n| n != "rs2"), "{names:?}");
    lab.expect_log(&format!("Gained quorum 2+0=2 <= 2 for VS {svc}"));
    lab.wait("quorum_up to run", Duration::from_secs(5), || {
        lab.dir.read("notify.log").contains("quorum up")
    });
    assert_eq!(
        lab.dir.read("notify.log").lines().collect::<Vec<_>>(),
        ["quorum down", "quorum up"]
    );
}

#[test]
fn notify_scripts_run_and_mail_reaches_the_smtp_server() {
    let c = cluster(2);
    let dir = ConfDir::new();
    notify_script(&dir);
    // The mail server is on the client's side of the LAN.
    let mail = SmtpServer::start(
        c.client().netns(),
        "mail.example.test",
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, 2525)),
    )
    .unwrap();
    let global = format!(
        "global_defs {{\n    notification_email {{\n        ops@example.test\n    }}\n    \
         notification_email_from lvs@example.test\n    smtp_server {} 2525\n    \
         smtp_connect_timeout 5\n    router_id rvs-test\n}}\n\n",
        c.client().ip()
    );
    let servers: String = (c.real_servers().iter())
        .map(|rs| {
            real_server(
                rs.ip(),
                1,
                &format!(
                    "notify_up \"{{DIR}}/notify.sh up {n}\"\n        notify_down \"{{DIR}}/notify.sh down {n}\"",
                    n = rs.name()
                ),
            )
        })
        .collect();
    let text = global + &virtual_server(&c, "omega", &servers);
    let mut lab = KaLab::on(c, PORT, dir, &text);
    let vip = lab.lab.vip_port(PORT);
    let rs0 = lab.rs(0, PORT);
    lab.expect_weight("TCP", &vip, &rs0, 1);
    let (rs0_ip, vip_ip) = (lab.lab.rs_ip(0), lab.lab.vip());
    let subject = |state: &str| {
        format!("[rvs-test] Realserver [{rs0_ip}]:80 of virtual server [{vip_ip}]:tcp:80 - {state}")
    };
    let mail_with = |subject: &str| -> Option<ReceivedMail> {
        (mail.mails().into_iter()).find(|m| m.header("Subject") == Some(subject))
    };

    let t0 = Instant::now();
    drop(lab.lab.tcp.remove(0));
    lab.expect_removed("TCP", &vip, &rs0, t0);
    lab.wait("notify_down to run", Duration::from_secs(5), || {
        lab.dir.read("notify.log").contains("down rs0")
    });
    lab.wait("the DOWN mail", Duration::from_secs(10), || {
        mail_with(&subject("DOWN")).is_some()
    });
    let down = mail_with(&subject("DOWN")).unwrap();
    assert_eq!(down.from, "lvs@example.test");
    assert_eq!(down.to, ["ops@example.test"]);
    assert_eq!(down.header("From"), Some("lvs@example.test"));
    let body = format!(
        "=> TCP_CHECK on {}:80 failed after 1 retries: ",
        lab.lab.rs_ip(0)
    );
    assert!(down.data.contains(&body), "{}", down.data);

    let server = lab.lab.cluster.real_servers()[0].serve_tcp(PORT).unwrap();
    lab.lab.tcp.insert(0, server);
    lab.expect_weight("TCP", &vip, &rs0, 1);
    lab.wait("the UP mail", Duration::from_secs(10), || {
        mail_with(&subject("UP")).is_some()
    });
    lab.wait("notify_up to run", Duration::from_secs(5), || {
        lab.dir.read("notify.log").contains("up rs0")
    });
    // rs1 never changed: nothing ran or was mailed for it.
    assert_eq!(
        lab.dir.read("notify.log").lines().collect::<Vec<_>>(),
        ["down rs0", "up rs0"]
    );
    assert_eq!(mail.mails().len(), 2, "{:?}", mail.mails());

    // omega: stopping rvsd runs the down notifiers of the servers still up.
    lab.lab.stop_rvsd();
    lab.wait("omega notifiers", Duration::from_secs(5), || {
        lab.dir.read("notify.log").lines().count() == 4
    });
    let mut lines: Vec<String> = (lab.dir.read("notify.log").lines())
        .map(str::to_owned)
        .collect();
    lines[2..].sort();
    assert_eq!(lines, ["down rs0", "up rs0", "down rs0", "down rs1"]);
    let shutdown = (mail.mails().into_iter())
        .filter(|m| m.data.contains("=> Shutting down <="))
        .count();
    assert_eq!(shutdown, 2, "{:?}", mail.mails());
}

#[test]
fn a_service_the_director_refuses_is_logged_and_the_others_run() {
    let c = cluster(2);
    let servers: String = (c.real_servers().iter())
        .map(|rs| real_server(rs.ip(), 1, ""))
        .collect();
    // SCTP services are refused by this rvs; the TCP one after it must still run.
    let text = virtual_server(&c, "", &servers).replace("protocol TCP", "protocol SCTP")
        + &virtual_server(&c, "", &servers);
    let lab = KaLab::on(c, PORT, ConfDir::new(), &text);
    let vip = lab.lab.vip_port(PORT);
    lab.expect_log(&format!(
        "VS [{}]:sctp:80: cannot be added (",
        lab.lab.vip()
    ));
    lab.expect_log("1 virtual services configured, 2 real servers checked");
    assert_eq!(lab.dests("TCP", &vip).len(), 2);
    let names: Vec<String> = (0..4).map(|_| lab.lab.ask(PORT)).collect();
    assert!(names.iter().any(|n| n == "rs0") && names.iter().any(|n| n == "rs1"));
}
