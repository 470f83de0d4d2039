//! `rvsd -f keepalived.conf` from the user's side: the configuration of seed document 001 (its
//! text kept, only the addresses changed to the test network's) starts rvsd and balances as it
//! says; a broken file is refused with its position before the data plane is touched;
//! `--check-config` validates without root or an interface.

mod common;

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use common::{
    Lab, RVSD, dest_rows,
    keepalived::{ConfDir, service_line},
    stderr, tally,
};
use rvs_testbed::{DrCluster, Netns, poll_until};

const PORT: u16 = 80;

fn seed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keepalived/e2e/seed_001.conf")
}

#[test]
fn seed_001_balances_wrr_3_3_with_persistence_and_tcp_check() {
    let cluster = DrCluster::builder()
        .real_servers(2)
        .build()
        .expect("building the cluster");
    // The fixture names the test network's addresses for the seed's 61.164.122.8/.9/.10.
    let text = std::fs::read_to_string(seed()).unwrap();
    assert!(text.contains(&format!("virtual_server {} 80 {{", cluster.vip())));
    for rs in cluster.real_servers() {
        assert!(text.contains(&format!("real_server {} 80 {{", rs.ip())));
    }
    let mut lab = Lab::on(cluster, PORT, &["-f", seed().to_str().unwrap()]);

    // What the seed's `watch ipvsadm -ln` shows, in rvsadm's sorted order.
    let listing = lab.ok(&["-L", "-n"]);
    assert_eq!(
        service_line(&listing, "TCP", &lab.vip_port(PORT)).as_deref(),
        Some(format!("TCP {} wrr persistent 60", lab.vip_port(PORT)).as_str()),
        "{listing}"
    );
    let rows: Vec<_> = dest_rows(&listing)
        .into_iter()
        .map(|r| (r.0, r.1, r.2))
        .collect();
    assert_eq!(
        rows,
        [
            (format!("{}:80", lab.rs_ip(0)), "Route".to_owned(), 3),
            (format!("{}:80", lab.rs_ip(1)), "Route".to_owned(), 3),
        ],
        "{listing}"
    );
    let log = lab.rvsd_log();
    // VRRP runs the seed's instance (issue 11); the VIP the testbed put there stays.
    lab.rvsd
        .as_mut()
        .unwrap()
        .wait_for_log("VRRP VI_1: vrid 51 v2 on eth0", Duration::from_secs(5))
        .unwrap();
    assert!(!log.contains("not active"), "{log}");

    // Six clients: wrr 3:3 hands them out evenly, and persistence keeps each on its server.
    let client = lab.cluster.client();
    let mut firsts = Vec::new();
    for i in 0..6u8 {
        let ip = Ipv4Addr::new(198, 18, 0, 51 + i);
        client.add_address(IpAddr::V4(ip)).unwrap();
        let from = SocketAddr::new(IpAddr::V4(ip), 0);
        let names: Vec<String> = (0..3)
            .map(|_| {
                let mut c = client.open_tcp_from(from, lab.vip(), PORT).unwrap();
                c.ask("hello").unwrap()
            })
            .collect();
        assert!(names.iter().all(|n| *n == names[0]), "{ip}: {names:?}");
        firsts.push(names[0].clone());
    }
    let counts = tally(&firsts);
    assert_eq!(counts.get("rs0"), Some(&3), "{counts:?}");
    assert_eq!(counts.get("rs1"), Some(&3), "{counts:?}");

    // TCP_CHECK connects to both (delay_loop 6: within two loops), and neither leaves.
    let client_conns =
        |i: usize| firsts.iter().filter(|n| **n == format!("rs{i}")).count() as u64 * 3;
    poll_until(Duration::from_secs(14), "TCP_CHECK to reach both", || {
        Ok((0..2)
            .all(|i| lab.tcp[i].connections() > client_conns(i))
            .then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", lab.rvsd_log()));
    assert_eq!(dest_rows(&lab.ok(&["-L", "-n"])).len(), 2);
    assert!(!lab.rvsd_log().contains("Removing service"));
}

/// A copy of the seed with one value broken, and where the error must point.
fn broken_seed(dir: &ConfDir) -> (PathBuf, String) {
    let text = std::fs::read_to_string(seed()).unwrap();
    let (line_no, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains("weight 3"))
        .unwrap();
    let col = line.chars().position(|c| c == '3').unwrap() + 1;
    let broken = text.replacen("weight 3", "weight three", 1);
    let path = dir.write("keepalived.conf", &broken, false);
    let at = format!("{}:{}:{col}:", path.display(), line_no + 1);
    (path, at)
}

#[test]
fn a_broken_file_stops_rvsd_before_the_data_plane() {
    let dir = ConfDir::new();
    let (path, at) = broken_seed(&dir);
    let ns = Netns::new("director").unwrap();
    // A veth pair inside the namespace: an interface rvsd could attach to.
    ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
    ])
    .unwrap();
    ns.ip(&["link", "set", "eth0", "up"]).unwrap();
    let pin_dir = PathBuf::from(format!(
        "/sys/fs/bpf/rvs-test-ka-{}-broken",
        std::process::id()
    ));
    let socket = dir.path("rvsd.sock");
    let mut cmd = Command::new(RVSD);
    cmd.args(["--interface", "eth0", "-f"])
        .arg(&path)
        .arg("--pin-dir")
        .arg(&pin_dir)
        .arg("--socket")
        .arg(&socket)
        .arg("--state-file")
        .arg(dir.path("state.json"));
    let mut p = rvs_testbed::spawn_in(&ns, &mut cmd, dir.path("rvsd.log")).unwrap();
    let status = poll_until(Duration::from_secs(10), "rvsd to exit", || p.try_wait()).unwrap();
    let log = p.log().unwrap();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!("rvsd: {at} ")),
        "the error names {at}:\n{log}"
    );
    // Nothing was set up: no pins, no socket, no XDP program on the interface.
    assert!(!pin_dir.exists());
    assert!(!socket.exists());
    let link = ns.ip(&["-d", "link", "show", "eth0"]).unwrap();
    assert!(!link.contains("xdp"), "{link}");

    // --use-file is the same option.
    let out = Command::new(RVSD)
        .args(["--check-config", "--use-file"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn check_config_validates_without_root_or_interface() {
    let dir = ConfDir::new();
    let (broken, at) = broken_seed(&dir);
    let good = dir.write(
        "good.conf",
        &std::fs::read_to_string(seed()).unwrap(),
        false,
    );
    // As nobody: validation needs neither root nor an interface.
    let run = |file: &Path| {
        Command::new(RVSD)
            .args(["--check-config", "-f"])
            .arg(file)
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    };
    let ok = run(&good);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let err = stderr(&ok);
    // The seed's vrrp_instance runs now (issue 11); its TCP_CHECKs' nb_get_retry is no
    // keyword there for keepalived, which warns and keeps the default retry: so does rvsd.
    assert!(
        err.contains("configuration OK (1 virtual services, 2 warnings)"),
        "{err}"
    );
    assert!(
        err.contains("'nb_get_retry' is not a TCP_CHECK keyword"),
        "{err}"
    );

    let bad = run(&broken);
    assert_eq!(bad.status.code(), Some(1), "{}", stderr(&bad));
    assert!(stderr(&bad).contains(&at), "{}", stderr(&bad));

    let missing = run(&dir.path("absent.conf"));
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("absent.conf"));
}

#[test]
fn check_config_dump_shows_the_effective_settings() {
    // seed 001 (its addresses moved into the test range): delay_loop 6 is the virtual server's,
    // inherited by its checkers; nb_get_retry is no TCP_CHECK keyword, so retry keeps its default.
    let out = Command::new(RVSD)
        .args(["--check-config", "--dump", "-f"])
        .arg(seed())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let dump = String::from_utf8(out.stdout).unwrap();
    for line in [
        "virtual_server [198.18.0.100]:tcp:80 (TCP 198.18.0.100:80) lvs_sched wrr persistence_timeout 60 quorum 1 hysteresis 0",
        "  real_server 198.18.0.11:80 lvs_method DR weight 3",
        "    TCP_CHECK 198.18.0.11:80 connect_timeout 10s retry 1 delay_before_retry 3s delay_loop 6s warmup 6s",
        "  real_server 198.18.0.12:80 lvs_method DR weight 3",
    ] {
        assert!(
            dump.lines().any(|l| l == line),
            "missing {line:?} in:\n{dump}"
        );
    }
}
