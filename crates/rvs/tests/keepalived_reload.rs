//! SIGHUP: rvsd re-reads keepalived.conf and applies only the differences. A service whose
//! configuration did not change keeps its real servers, counters and flows (an open connection
//! keeps working and is still counted); a changed one is edited in place; a removed one goes and
//! a new one comes, with its checkers running. A file that does not load is reported with its
//! position and changes nothing.

mod common;

use std::time::Instant;

use common::{
    dest_rows,
    keepalived::{ConfDir, DELAY_LOOP, KaLab, service_dests, service_line, short_timers},
    service_stats,
};
use rvs_testbed::{DrCluster, TcpServer};

fn vs(c: &DrCluster, port: u16, sched: &str, servers: &[(usize, i32)]) -> String {
    let mut s = format!(
        "virtual_server {} {port} {{\n    delay_loop {DELAY_LOOP}\n    lb_algo {sched}\n    \
         lb_kind DR\n    protocol TCP\n",
        c.vip()
    );
    for &(i, weight) in servers {
        s.push_str(&format!(
            "    real_server {} {port} {{\n        weight {weight}\n        TCP_CHECK {{\n            \
             {}\n        }}\n    }}\n",
            c.real_servers()[i].ip(),
            short_timers()
        ));
    }
    s + "}\n"
}

/// global_defs with `lvs_timeouts tcp {tcp} udp 50`, and the VRRP and sync parts rvsd reads
/// but does not run yet.
fn global(tcp: u32) -> String {
    format!(
        "global_defs {{\n    router_id rvs-test\n    lvs_timeouts tcp {tcp} udp 50\n    \
         lvs_sync_daemon eth0 VI_1\n}}\n\
         vrrp_script chk_web {{\n    script \"/bin/true\"\n    interval 2\n}}\n\
         vrrp_instance VI_1 {{\n    state MASTER\n    interface eth0\n    virtual_router_id 51\n    \
         priority 100\n    virtual_ipaddress {{\n        198.18.0.100\n    }}\n    \
         track_script {{\n        chk_web\n    }}\n}}\n\
         vrrp_sync_group G1 {{\n    group {{\n        VI_1\n    }}\n}}\n"
    )
}

#[test]
fn sighup_applies_only_the_differences() {
    let c = DrCluster::builder()
        .real_servers(2)
        .build()
        .expect("building the cluster");
    // Line servers for the other services (the lab serves port 80).
    let mut extra: Vec<TcpServer> = [81, 82, 83]
        .into_iter()
        .flat_map(|p| c.serve_tcp(p).unwrap())
        .collect();
    let a = vs(&c, 80, "rr", &[(0, 1), (1, 1)]);
    let v1 = [
        global(7200).as_str(),
        &a,
        &vs(&c, 81, "rr", &[(0, 1)]),
        &vs(&c, 82, "rr", &[(1, 1)]),
    ]
    .concat();
    // Service 80 unchanged (but now after 81); 81 changes scheduler and gains rs1; 82 goes,
    // 83 comes.
    let v2 = [
        global(3600).as_str(),
        &vs(&c, 81, "wrr", &[(0, 1), (1, 2)]),
        &a,
        &vs(&c, 83, "rr", &[(0, 1)]),
    ]
    .concat();
    let mut lab = KaLab::on(c, 80, ConfDir::new(), &v1);
    let (vip_ip, rs_ips) = (lab.lab.vip(), [lab.lab.rs_ip(0), lab.lab.rs_ip(1)]);
    let vip = |p: u16| format!("{vip_ip}:{p}");
    let ip = |i: usize| rs_ips[i];
    lab.expect_weight("TCP", &vip(82), &lab.rs(1, 82), 1);
    let log = lab.lab.rvsd_log();
    // The VRRP blocks run (issue 11): no "not active" warning for them.
    assert!(
        !log.contains("vrrp_instance 'VI_1' is parsed but not active"),
        "{log}"
    );
    assert!(log.contains("VRRP VI_1: vrid 51 v2 on eth0"), "{log}");
    // lvs_sync_daemon runs too (issue 12): alone on the LAN, its bulk sync finds no peer.
    assert!(
        log.contains("connection sync (master and backup) on eth0 (198.18.0.2) syncid 51 with 224.0.0.81:8848"),
        "{log}"
    );
    assert!(log.contains("bulk sync: no peer answered"), "{log}");
    let timeouts = |lab: &KaLab| lab.lab.ok(&["-L", "--timeout"]);
    assert_eq!(timeouts(&lab), "Timeout (tcp tcpfin udp): 7200 120 50\n");

    // Open connections to the service that stays and the one that changes.
    let client = lab.lab.cluster.client();
    let mut conn80 = client.open_tcp(lab.lab.vip(), 80).unwrap();
    let held = conn80.ask("before").unwrap();
    let mut conn81 = client.open_tcp(lab.lab.vip(), 81).unwrap();
    assert_eq!(conn81.ask("before").unwrap(), "rs0");
    let listing = lab.lab.ok(&["-L", "-n"]);
    let rows80 = service_dests(&listing, "TCP", &vip(80));
    let stats = lab.lab.ok(&["-L", "-n", "--stats", "--exact"]);
    let stats80 = service_stats(&stats, "TCP", &vip(80));
    assert_eq!(stats80[0], 1, "{stats}");

    lab.rewrite(&v2);
    lab.reload();
    lab.expect_log(&format!(
        "{}: reloaded: 1 services unchanged, 1 changed, 1 added",
        lab.conf_path().display()
    ));

    assert_eq!(timeouts(&lab), "Timeout (tcp tcpfin udp): 3600 120 50\n");
    let listing = lab.lab.ok(&["-L", "-n"]);
    // 80: untouched, its open flow still counted against its server.
    assert_eq!(
        service_dests(&listing, "TCP", &vip(80)),
        rows80,
        "{listing}"
    );
    let active: Vec<(String, u64)> = dest_rows(&listing)
        .into_iter()
        .filter(|r| r.3 > 0)
        .map(|r| (r.0, r.3))
        .collect();
    let held_ip = if held == "rs0" { ip(0) } else { ip(1) };
    assert!(
        active.contains(&(format!("{held_ip}:80"), 1)),
        "{active:?}\n{listing}"
    );
    // Counters go on (a service added afresh would start from zero).
    let stats = lab.lab.ok(&["-L", "-n", "--stats", "--exact"]);
    let now80 = service_stats(&stats, "TCP", &vip(80));
    assert_eq!(now80[0], 1, "{stats}");
    assert!(now80[1] >= stats80[1], "{stats}");
    assert_eq!(conn80.ask("after").unwrap(), held);
    // 81: edited in place; rs0 kept its flow, rs1 came in.
    assert_eq!(
        service_line(&listing, "TCP", &vip(81)).as_deref(),
        Some(format!("TCP {} wrr", vip(81)).as_str())
    );
    assert!(
        active.contains(&(format!("{}:81", ip(0)), 1)),
        "{active:?}\n{listing}"
    );
    assert_eq!(
        service_dests(&listing, "TCP", &vip(81)),
        [
            (format!("{}:81", ip(0)), "Route".to_owned(), 1),
            (format!("{}:81", ip(1)), "Route".to_owned(), 2)
        ]
    );
    assert_eq!(conn81.ask("after").unwrap(), "rs0");
    // 82 gone, 83 here.
    assert_eq!(service_line(&listing, "TCP", &vip(82)), None, "{listing}");
    assert_eq!(
        service_dests(&listing, "TCP", &vip(83)),
        [(format!("{}:83", ip(0)), "Route".to_owned(), 1)]
    );
    let log = lab.lab.rvsd_log();
    assert_eq!(
        log.matches(&format!("added service TCP {}", vip(80)))
            .count(),
        1,
        "{log}"
    );
    // The new service's checkers run: its server's service dies, it leaves.
    let t0 = Instant::now();
    // Servers come per port, rs0 then rs1: [4] is rs0's on 83.
    assert_eq!(extra[4].local_addr().port(), 83);
    drop(extra.remove(4));
    lab.expect_removed("TCP", &vip(83), &lab.rs(0, 83), t0);

    // A broken file: reported with its position, nothing changes.
    let before = lab.lab.ok(&["-L", "-n"]);
    let broken = v2.replacen("weight 2", "weight two", 1);
    let (line, text) = (broken.lines().enumerate())
        .find(|(_, l)| l.contains("weight two"))
        .unwrap();
    let col = text.find("two").unwrap() + 1;
    lab.rewrite(&broken);
    lab.reload();
    lab.expect_log(&format!(
        "{}:{}:{col}: ",
        lab.conf_path().display(),
        line + 1
    ));
    lab.expect_log("not reloaded; the running configuration stays");
    assert_eq!(lab.lab.ok(&["-L", "-n"]), before);
    assert_eq!(conn80.ask("still").unwrap(), held);

    // A restarted rvsd finds the services in its saved model and resumes them as they are.
    let rows80 = service_dests(&before, "TCP", &vip(80));
    lab.rewrite(&v2);
    lab.lab.stop_rvsd();
    lab.lab.start_rvsd();
    assert_eq!(conn80.ask("restarted").unwrap(), held);
    let listing = lab.lab.ok(&["-L", "-n"]);
    assert_eq!(
        service_dests(&listing, "TCP", &vip(80)),
        rows80,
        "{listing}"
    );
    let log = lab.lab.rvsd_log();
    assert!(!log.contains("added service"), "{log}");
    assert!(!log.contains(":tcp:80: "), "nothing to change in 80: {log}");
}

/// Hostile files: a depth that would overflow the loader's stack, an include of a FIFO that
/// would block it for ever, includes that double at each level. `--check-config` refuses each
/// with its reason, a SIGHUP with it keeps the running configuration (rvsadm served all along),
/// and a good file reloads afterwards.
#[test]
fn hostile_files_are_refused_on_reload_and_block_nothing() {
    let c = DrCluster::builder()
        .real_servers(1)
        .build()
        .expect("building the cluster");
    let good = vs(&c, 80, "rr", &[(0, 1)]);
    let better = vs(&c, 80, "wrr", &[(0, 1)]);
    let lab = KaLab::on(c, 80, ConfDir::new(), &good);
    let before = lab.lab.ok(&["-L", "-n"]);
    let pipe = lab.dir.path("pipe.conf");
    nix::unistd::mkfifo(&pipe, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    for level in 0..24 {
        let next = lab.dir.path(&format!("l{}.conf", level + 1));
        let text = format!("include {0}\ninclude {0}\n", next.display());
        lab.dir.write(&format!("l{level}.conf"), &text, false);
    }
    lab.dir.write("l24.conf", "! the end\n", false);
    let cases = [
        (
            format!("{good}{}{}", "a {\n".repeat(100_000), "}\n".repeat(100_000)),
            "blocks nested deeper than 32",
        ),
        (
            format!("{good}include {}\n", pipe.display()),
            "not a regular file",
        ),
        (
            format!("{good}include {}\n", lab.dir.path("l0.conf").display()),
            "more than 4096 files read",
        ),
    ];
    for (text, why) in cases {
        lab.rewrite(&text);
        let check = std::process::Command::new(common::RVSD)
            .arg("--check-config")
            .arg("-f")
            .arg(lab.conf_path())
            .output()
            .unwrap();
        assert!(!check.status.success(), "--check-config took it ({why})");
        assert!(
            common::stderr(&check).contains(why),
            "{}",
            common::stderr(&check)
        );
        lab.reload();
        lab.expect_log(why);
        assert_eq!(lab.lab.ok(&["-L", "-n"]), before, "{why}");
    }
    lab.rewrite(&better);
    lab.reload();
    lab.expect_log("reloaded: 0 services unchanged, 1 changed, 0 added");
}
