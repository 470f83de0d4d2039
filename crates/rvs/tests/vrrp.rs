//! Director failover by VRRP (issue 11), end to end: two directors on one LAN
//! ([`rvs_testbed::HaCluster`]), each running rvsd (or keepalived, for interop) from one
//! keepalived.conf with the same direct-routing virtual service, real servers holding the VIPs
//! silently, a client behind a router (whose neighbour cache must follow the MASTER). Every
//! wait is bounded and generous: these tests check what happens, not how fast.

mod common;

use std::{net::IpAddr, path::PathBuf, process::Command, sync::Arc, time::Duration};

use common::{Lab, ha::Side, keepalived::ConfDir, service_stats};
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use rvs_testbed::{HaCluster, Host, NsProcess, TcpServer, poll_until};

const PORT: u16 = 80;
/// Bound on any state change we wait for ("did not hang", not a timing assertion).
const STATE_BOUND: Duration = Duration::from_secs(15);

/// A `vrrp_instance` block.
#[derive(Clone)]
struct Inst {
    name: &'static str,
    vrid: u8,
    priority: u8,
    version: u8,
    advert_int: &'static str,
    vips: Vec<String>,
    extra: String,
}

impl Inst {
    fn v3(name: &'static str, vrid: u8, priority: u8, vip: IpAddr) -> Inst {
        Inst {
            name,
            vrid,
            priority,
            version: 3,
            advert_int: "0.2",
            vips: vec![vip.to_string()],
            extra: String::new(),
        }
    }

    fn with(mut self, line: &str) -> Inst {
        self.extra.push_str("    ");
        self.extra.push_str(line);
        self.extra.push('\n');
        self
    }

    fn text(&self) -> String {
        let vips: String = self.vips.iter().map(|v| format!("        {v}\n")).collect();
        format!(
            "vrrp_instance {} {{\n    state BACKUP\n    interface eth0\n    virtual_router_id {}\n    \
             priority {}\n    version {}\n    advert_int {}\n    garp_master_delay 1\n{}    \
             virtual_ipaddress {{\n{vips}    }}\n}}\n",
            self.name, self.vrid, self.priority, self.version, self.advert_int, self.extra
        )
    }
}

/// The DR virtual service on `vip`, the same on both directors.
fn service(c: &HaCluster, vip: IpAddr) -> String {
    let vip_text = vip.to_string();
    let mut s = format!(
        "virtual_server {vip_text} {PORT} {{\n    lb_algo rr\n    lb_kind DR\n    protocol TCP\n"
    );
    for rs in c.real_servers() {
        let ip: IpAddr = match vip {
            IpAddr::V4(_) => IpAddr::V4(rs.ip()),
            IpAddr::V6(_) => IpAddr::V6(rs.ip6().expect("IPv6 on")),
        };
        s.push_str(&format!(
            "    real_server {ip} {PORT} {{\n        weight 1\n    }}\n"
        ));
    }
    s + "}\n"
}

/// Two real servers, `vips` VIPs, and the real servers' TCP servers on [`PORT`] (dropped before
/// the cluster, since they are declared after it).
fn cluster(vips: usize, ipv6: bool) -> (Arc<HaCluster>, Vec<TcpServer>) {
    let c = Arc::new(HaCluster::build(2, vips, ipv6).expect("building the cluster"));
    let tcp = c.serve_tcp(PORT).expect("starting TCP servers");
    (c, tcp)
}

fn v4(c: &HaCluster, i: usize) -> IpAddr {
    IpAddr::V4(c.vips()[i])
}

/// Starts rvsd on director `i` with `conf` (written into `dir`).
fn rvsd(c: &Arc<HaCluster>, i: usize, dir: &ConfDir, conf: &str) -> Lab<Side> {
    let path = dir.write(&format!("rvsd{i}.conf"), conf, false);
    let side = Side { c: c.clone(), i };
    Lab::on(side, PORT, &["-f", path.to_str().unwrap()])
}

/// One instance's row of `rvsadm --vrrp`: state, effective priority, master.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    state: String,
    effective: u8,
    master: String,
}

fn row(lab: &Lab<Side>, name: &str) -> Option<Row> {
    let out = lab.rvsadm(&["--vrrp"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))?;
    let f: Vec<&str> = line.split_whitespace().collect();
    Some(Row {
        state: f.get(4)?.to_string(),
        effective: f.get(6)?.parse().ok()?,
        master: f.get(7)?.to_string(),
    })
}

fn wait_state(lab: &Lab<Side>, name: &str, state: &str) -> Row {
    poll_until(STATE_BOUND, &format!("{name} to be {state}"), || {
        Ok(row(lab, name).filter(|r| r.state == state))
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}\nrvsadm --vrrp:\n{}\nrvsd log:\n{}",
            String::from_utf8_lossy(&lab.rvsadm(&["--vrrp"]).stdout),
            lab.rvsd_log()
        )
    })
}

fn has_addr(h: &Host, ip: IpAddr) -> bool {
    h.netns()
        .ip(&["addr", "show", "dev", "eth0"])
        .map(|s| s.contains(&format!("{ip}/")))
        .unwrap_or(false)
}

/// New connections from the client succeed (bounded retries while ARP settles).
#[track_caller]
fn connects(c: &HaCluster, vip: IpAddr) -> String {
    let r = poll_until(
        Duration::from_secs(10),
        &format!("a connection to {vip}"),
        || Ok(c.client().tcp_request(vip, PORT).ok()),
    );
    r.unwrap_or_else(|e| {
        let show = |h: &Host, what: &[&str]| h.netns().ip(what).unwrap_or_default();
        panic!(
            "{e:#}\nrouter neighbours:\n{}\ndirector0:\n{}\ndirector1:\n{}",
            show(c.router(), &["neigh"]),
            show(&c.directors()[0], &["addr", "show", "eth0"]),
            show(&c.directors()[1], &["addr", "show", "eth0"]),
        )
    })
}

fn conns(lab: &Lab<Side>, vip: IpAddr) -> u64 {
    let listing = lab.ok(&["-L", "-n", "--stats"]);
    let addr = match vip {
        IpAddr::V4(a) => format!("{a}:{PORT}"),
        IpAddr::V6(a) => format!("[{a}]:{PORT}"),
    };
    service_stats(&listing, "TCP", &addr)[0]
}

fn kill9(lab: &mut Lab<Side>) {
    let p = lab.rvsd.take().expect("rvsd running");
    kill(Pid::from_raw(p.pid() as i32), Signal::SIGKILL).unwrap();
    drop(p); // reaps it
}

#[test]
fn master_holds_the_vip_and_the_backup_takes_over_on_kill_and_link_down() {
    let (c, _tcp) = cluster(1, false);
    let dir = ConfDir::new();
    let vip = v4(&c, 0);
    let conf = |prio| service(&c, vip) + &Inst::v3("VI_1", 51, prio, vip).text();
    let mut a = rvsd(&c, 0, &dir, &conf(150));
    let b = rvsd(&c, 1, &dir, &conf(100));
    let ra = wait_state(&a, "VI_1", "MASTER");
    assert_eq!(ra.master, "198.18.0.2");
    let rb = wait_state(&b, "VI_1", "BACKUP");
    poll_until(STATE_BOUND, "the backup to learn the master", || {
        Ok(row(&b, "VI_1")
            .filter(|r| r.master == "198.18.0.2")
            .map(|_| ()))
    })
    .unwrap_or_else(|e| panic!("{e:#}: {rb:?}"));
    assert!(has_addr(&c.directors()[0], vip));
    assert!(!has_addr(&c.directors()[1], vip));
    let names: Vec<String> = (0..4).map(|_| connects(&c, vip)).collect();
    assert!(
        names.iter().any(|n| n == "rs0") && names.iter().any(|n| n == "rs1"),
        "{names:?}"
    );
    assert!(conns(&a, vip) >= 4);

    // kill -9: no priority 0, the backup waits out Master_Down and takes over.
    kill9(&mut a);
    wait_state(&b, "VI_1", "MASTER");
    assert!(has_addr(&c.directors()[1], vip));
    let before = conns(&b, vip);
    for _ in 0..4 {
        connects(&c, vip);
    }
    assert!(conns(&b, vip) >= before + 4, "the new master forwards");
    let log = b.rvsd_log();
    assert!(
        log.contains("VRRP VI_1 (vrid 51 on eth0): BACKUP -> MASTER: no advert from the master"),
        "{log}"
    );

    // The killed director comes back (its leftover VIP is removed as BACKUP) and, with the
    // higher priority, preempts.
    a.start_rvsd();
    wait_state(&a, "VI_1", "MASTER");
    wait_state(&b, "VI_1", "BACKUP");
    assert!(!has_addr(&c.directors()[1], vip));

    // Its link goes down: FAULT there, MASTER here; back up, it preempts again.
    c.directors()[0]
        .netns()
        .ip(&["link", "set", "eth0", "down"])
        .unwrap();
    wait_state(&a, "VI_1", "FAULT");
    wait_state(&b, "VI_1", "MASTER");
    let before = conns(&b, vip);
    connects(&c, vip);
    assert!(conns(&b, vip) > before);
    c.directors()[0]
        .netns()
        .ip(&["link", "set", "eth0", "up"])
        .unwrap();
    wait_state(&a, "VI_1", "MASTER");
    wait_state(&b, "VI_1", "BACKUP");
    connects(&c, vip);
}

#[test]
fn nopreempt_keeps_the_running_master_and_shutdown_hands_over_at_once() {
    let (c, _tcp) = cluster(1, false);
    let dir = ConfDir::new();
    let vip = v4(&c, 0);
    let stopped = dir.path("stopped.log");
    let notify = dir.write(
        "notify.sh",
        &format!("#!/bin/sh\necho \"$*\" >> {}\n", stopped.display()),
        true,
    );
    let conf = |prio| {
        let stop = format!("notify_stop \"{} stop-only\"", notify.display());
        service(&c, vip)
            + &Inst::v3("VI_1", 51, prio, vip)
                .with("nopreempt")
                .with(&stop)
                .with(&format!("notify \"{}\"", notify.display()))
                .text()
    };
    let mut b = rvsd(&c, 1, &dir, &conf(100));
    wait_state(&b, "VI_1", "MASTER");
    // The higher priority arrives later and stays BACKUP: nopreempt.
    let mut a = rvsd(&c, 0, &dir, &conf(150));
    wait_state(&a, "VI_1", "BACKUP");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(row(&a, "VI_1").unwrap().state, "BACKUP");
    assert_eq!(row(&b, "VI_1").unwrap().state, "MASTER");
    // SIGTERM: priority 0 and the addresses removed; the other takes over.
    b.stop_rvsd();
    assert!(
        !has_addr(&c.directors()[1], vip),
        "addresses removed on stop"
    );
    wait_state(&a, "VI_1", "MASTER");
    // Taken over on the priority 0, not on a silent master's timeout.
    assert!(
        a.rvsd_log()
            .contains("BACKUP -> MASTER: the master sent priority 0 (leaving)"),
        "{}",
        a.rvsd_log()
    );
    // notify_stop and the generic notify ran before rvsd exited.
    let text = std::fs::read_to_string(&stopped).unwrap_or_default();
    assert!(
        text.contains("stop-only") && text.contains("INSTANCE VI_1 STOP 100"),
        "{text}"
    );
    connects(&c, vip);
    drop(b);
    a.stop_rvsd();
}

/// keepalived's VRRP part alone, in director `i`'s namespace (TOOLCHAIN.md).
struct Keepalived {
    p: Option<NsProcess>,
}

impl Keepalived {
    fn start(c: &HaCluster, i: usize, dir: &ConfDir, conf: &str, tag: &str) -> Keepalived {
        let path = dir.write(&format!("ka-{tag}.conf"), conf, false);
        let pid: PathBuf = dir.path(&format!("ka-{tag}.pid"));
        let vpid: PathBuf = dir.path(&format!("ka-{tag}-vrrp.pid"));
        let mut cmd = Command::new("keepalived");
        cmd.args(["-n", "-l", "-D", "--vrrp", "-f"])
            .arg(&path)
            .arg("-p")
            .arg(&pid)
            .arg("-r")
            .arg(&vpid);
        let p = c.directors()[i]
            .spawn(&mut cmd, dir.path(&format!("ka-{tag}.log")))
            .expect("starting keepalived (is it installed? scripts/install-deps)");
        Keepalived { p: Some(p) }
    }

    fn log(&self) -> String {
        self.p
            .as_ref()
            .and_then(|p| p.log().ok())
            .unwrap_or_default()
    }

    fn wait_log(&mut self, needle: &str) {
        self.p
            .as_mut()
            .unwrap()
            .wait_for_log(needle, STATE_BOUND)
            .unwrap_or_else(|e| panic!("{e:#}\nkeepalived log:\n{}", self.log()));
    }

    /// SIGTERM: keepalived sends priority 0 and removes its addresses.
    fn stop(&mut self) {
        if let Some(p) = self.p.take() {
            p.stop(Duration::from_secs(10))
                .expect("stopping keepalived");
        }
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        self.stop();
    }
}

fn interop(version: u8, ipv6: bool) {
    let (c, _tcp) = cluster(1, ipv6);
    let dir = ConfDir::new();
    let vip = if ipv6 {
        IpAddr::V6(c.vip6(0).unwrap())
    } else {
        v4(&c, 0)
    };
    let inst = |prio| {
        let mut i = Inst::v3("VI_1", 51, prio, vip);
        i.version = version;
        if version == 2 {
            i.advert_int = "1";
            i = i.with("authentication {\n        auth_type PASS\n        auth_pass s3cret\n    }");
        }
        i.text()
    };
    let tag = format!("v{version}{}", if ipv6 { "-6" } else { "" });

    // keepalived MASTER (150), rvs BACKUP (100).
    let mut ka = Keepalived::start(&c, 0, &dir, &inst(150), &format!("{tag}-a"));
    ka.wait_log("Entering MASTER STATE");
    let b = rvsd(&c, 1, &dir, &(service(&c, vip) + &inst(100)));
    wait_state(&b, "VI_1", "BACKUP");
    let master = poll_until(STATE_BOUND, "rvs to hear keepalived", || {
        Ok(row(&b, "VI_1")
            .filter(|r| r.master != "-")
            .map(|r| r.master))
    })
    .unwrap();
    if !ipv6 {
        assert_eq!(master, "198.18.0.2");
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        row(&b, "VI_1").unwrap().state,
        "BACKUP",
        "no split brain:\n{}",
        b.rvsd_log()
    );
    // keepalived leaves: rvs takes over and forwards.
    ka.stop();
    wait_state(&b, "VI_1", "MASTER");
    let before = conns(&b, vip);
    connects(&c, vip);
    assert!(conns(&b, vip) > before);
    // keepalived returns with the higher priority and preempts rvs.
    let mut ka = Keepalived::start(&c, 0, &dir, &inst(150), &format!("{tag}-b"));
    ka.wait_log("Entering MASTER STATE");
    wait_state(&b, "VI_1", "BACKUP");
    assert!(!has_addr(&c.directors()[1], vip));
    ka.stop();
    drop(b);

    // The other way round: rvs MASTER (150), keepalived BACKUP (100).
    let a = rvsd(&c, 1, &dir, &(service(&c, vip) + &inst(150)));
    wait_state(&a, "VI_1", "MASTER");
    let mut kb = Keepalived::start(&c, 0, &dir, &inst(100), &format!("{tag}-c"));
    kb.wait_log("Entering BACKUP STATE");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !kb.log().contains("Entering MASTER STATE"),
        "keepalived stays BACKUP:\n{}",
        kb.log()
    );
    connects(&c, vip);
    // rvs stops (priority 0): keepalived takes over.
    let mut a = a;
    a.stop_rvsd();
    kb.wait_log("Entering MASTER STATE");
    poll_until(STATE_BOUND, "keepalived to add the VIP", || {
        Ok(has_addr(&c.directors()[0], vip).then_some(()))
    })
    .unwrap();
    // And rvs, back with the higher priority, takes it from keepalived.
    a.start_rvsd();
    wait_state(&a, "VI_1", "MASTER");
    poll_until(STATE_BOUND, "keepalived to go back to BACKUP", || {
        Ok((kb.log().matches("Entering BACKUP STATE").count() >= 2).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", kb.log()));
    connects(&c, vip);
}

#[test]
fn interop_with_keepalived_vrrpv2_pass() {
    interop(2, false);
}

#[test]
fn interop_with_keepalived_vrrpv3_ipv4() {
    interop(3, false);
}

#[test]
fn interop_with_keepalived_vrrpv3_ipv6() {
    interop(3, true);
}

#[test]
fn unicast_peers_work_with_multicast_dropped_on_the_lan() {
    let (c, _tcp) = cluster(1, false);
    // The LAN drops VRRP multicast, as many clouds do.
    for rule in [
        "add table bridge vrrp_test",
        "add chain bridge vrrp_test lanfilter { type filter hook forward priority 0 ; }",
        "add rule bridge vrrp_test lanfilter ip daddr 224.0.0.18 counter drop",
    ] {
        let argv: Vec<&str> = std::iter::once("nft").chain(rule.split(' ')).collect();
        c.lan().exec(&argv).unwrap();
    }
    let dir = ConfDir::new();
    let vip = v4(&c, 0);
    let conf = |prio, me: &str, peer: &str| {
        service(&c, vip)
            + &Inst::v3("VI_1", 51, prio, vip)
                .with(&format!("unicast_src_ip {me}"))
                .with(&format!("unicast_peer {{\n        {peer}\n    }}"))
                .text()
    };
    let mut a = rvsd(&c, 0, &dir, &conf(150, "198.18.0.2", "198.18.0.3"));
    let b = rvsd(&c, 1, &dir, &conf(100, "198.18.0.3", "198.18.0.2"));
    wait_state(&a, "VI_1", "MASTER");
    wait_state(&b, "VI_1", "BACKUP");
    poll_until(
        STATE_BOUND,
        "the backup to hear the master by unicast",
        || {
            Ok(row(&b, "VI_1")
                .filter(|r| r.master == "198.18.0.2")
                .map(|_| ()))
        },
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(row(&b, "VI_1").unwrap().state, "BACKUP", "no split brain");
    connects(&c, vip);
    kill9(&mut a);
    wait_state(&b, "VI_1", "MASTER");
    let before = conns(&b, vip);
    connects(&c, vip);
    assert!(conns(&b, vip) > before);
}

#[test]
fn a_sync_group_moves_together_and_track_script_faults_it() {
    let (c, _tcp) = cluster(2, false);
    let dir = ConfDir::new();
    let (vip1, vip2) = (v4(&c, 0), v4(&c, 1));
    let up = dir.path("director0-up");
    std::fs::write(&up, "").unwrap();
    let log = dir.path("group-notify.log");
    let notify = dir.write(
        "notify.sh",
        &format!("#!/bin/sh\necho \"$*\" >> {}\n", log.display()),
        true,
    );
    let conf = |prio, script: bool| {
        let mut s = service(&c, vip1) + &service(&c, vip2);
        s.push_str(&format!(
            "vrrp_sync_group G {{\n    group {{\n        VI_1\n        VI_2\n    }}\n    \
             notify \"{}\"\n}}\n",
            notify.display()
        ));
        let mut vi2 = Inst::v3("VI_2", 52, prio, vip2);
        if script {
            s.push_str(&format!(
                "vrrp_script chk {{\n    script \"/usr/bin/test -e {}\"\n    interval 0.2\n    fall 1\n    rise 1\n}}\n",
                up.display()
            ));
            vi2 = vi2.with("track_script {\n        chk\n    }");
        }
        s + &Inst::v3("VI_1", 51, prio, vip1).text() + &vi2.text()
    };
    let a = rvsd(&c, 0, &dir, &conf(150, true));
    let b = rvsd(&c, 1, &dir, &conf(100, false));
    for name in ["VI_1", "VI_2"] {
        wait_state(&a, name, "MASTER");
        wait_state(&b, name, "BACKUP");
    }
    // VI_2's script fails: the whole group goes to FAULT here and MASTER there.
    std::fs::remove_file(&up).unwrap();
    for name in ["VI_1", "VI_2"] {
        wait_state(&a, name, "FAULT");
        wait_state(&b, name, "MASTER");
    }
    for vip in [vip1, vip2] {
        connects(&c, vip);
        assert!(has_addr(&c.directors()[1], vip));
    }
    std::fs::write(&up, "").unwrap();
    for name in ["VI_1", "VI_2"] {
        wait_state(&a, name, "MASTER");
        wait_state(&b, name, "BACKUP");
    }
    // The group's generic notify, with keepalived's arguments (priority 0 for a group), from
    // both directors.
    let text = poll_until(STATE_BOUND, "the group notify scripts", || {
        let t = std::fs::read_to_string(&log).unwrap_or_default();
        let want = ["GROUP G MASTER 0", "GROUP G FAULT 0", "GROUP G BACKUP 0"];
        Ok(want.iter().all(|w| t.contains(w)).then_some(t))
    })
    .unwrap();
    assert!(!text.contains("INSTANCE"), "{text}");
}

#[test]
fn track_script_weight_moves_mastership_and_notify_gets_keepalived_s_arguments() {
    let (c, _tcp) = cluster(1, false);
    let dir = ConfDir::new();
    let vip = v4(&c, 0);
    let up = dir.path("director0-up");
    std::fs::write(&up, "").unwrap();
    let log = dir.path("notify.log");
    let notify = dir.write(
        "notify.sh",
        &format!("#!/bin/sh\necho \"$*\" >> {}\n", log.display()),
        true,
    );
    let a_conf = service(&c, vip)
        + &format!(
            "vrrp_script chk {{\n    script \"/usr/bin/test -e {}\"\n    interval 0.2\n    weight -60\n}}\n",
            up.display()
        )
        + &Inst::v3("VI_1", 51, 150, vip)
            .with("track_script {\n        chk\n    }")
            .text();
    let b_conf = service(&c, vip)
        + &Inst::v3("VI_1", 51, 100, vip)
            .with(&format!(
                "notify_master \"{} master-only\"",
                notify.display()
            ))
            .with(&format!("notify \"{}\"", notify.display()))
            .text();
    let a = rvsd(&c, 0, &dir, &a_conf);
    let b = rvsd(&c, 1, &dir, &b_conf);
    wait_state(&a, "VI_1", "MASTER");
    wait_state(&b, "VI_1", "BACKUP");
    std::fs::remove_file(&up).unwrap();
    // 150 − 60 = 90 < 100: the other director preempts.
    wait_state(&b, "VI_1", "MASTER");
    let ra = wait_state(&a, "VI_1", "BACKUP");
    assert_eq!(ra.effective, 90);
    connects(&c, vip);
    let text = poll_until(STATE_BOUND, "the notify scripts to run", || {
        let t = std::fs::read_to_string(&log).unwrap_or_default();
        Ok((t.contains("master-only") && t.contains("INSTANCE VI_1 MASTER 100")).then_some(t))
    })
    .unwrap();
    assert!(text.contains("INSTANCE VI_1 BACKUP 100"), "{text}");
}

/// Sends `messages` as VRRP packets from a host on the directors' LAN (rs0, a stranger to VRRP)
/// to 224.0.0.18 with `ttl`.
fn send_raw(c: &HaCluster, ttl: u8, messages: &[Vec<u8>]) {
    let stranger = &c.real_servers()[0];
    stranger
        .netns()
        .enter(|| {
            // SAFETY: plain socket calls on a descriptor this closure owns and closes.
            unsafe {
                let fd = libc::socket(libc::AF_INET, libc::SOCK_RAW, 112);
                assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
                let mreq = libc::ip_mreqn {
                    imr_multiaddr: libc::in_addr { s_addr: 0 },
                    imr_address: libc::in_addr { s_addr: 0 },
                    imr_ifindex: stranger.eth0().ifindex() as i32,
                };
                let t: libc::c_int = ttl.into();
                let sz = |n: usize| n as libc::socklen_t;
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_IP,
                    libc::IP_MULTICAST_IF,
                    (&mreq as *const libc::ip_mreqn).cast(),
                    sz(std::mem::size_of::<libc::ip_mreqn>()),
                );
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_IP,
                    libc::IP_MULTICAST_TTL,
                    (&t as *const libc::c_int).cast(),
                    sz(4),
                );
                let dst = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: 0,
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes([224, 0, 0, 18]),
                    },
                    sin_zero: [0; 8],
                };
                for m in messages {
                    let n = libc::sendto(
                        fd,
                        m.as_ptr().cast(),
                        m.len(),
                        0,
                        (&dst as *const libc::sockaddr_in).cast(),
                        sz(std::mem::size_of::<libc::sockaddr_in>()),
                    );
                    assert!(n >= 0, "sendto: {}", std::io::Error::last_os_error());
                }
                libc::close(fd);
            }
        })
        .unwrap();
}

/// The counters line of an instance in `rvsadm --vrrp`, by name.
fn counters(lab: &Lab<Side>, name: &str) -> std::collections::BTreeMap<String, u64> {
    let text = lab.ok(&["--vrrp"]);
    let mut lines = text.lines();
    lines
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"));
    let line = lines.next().unwrap_or_default();
    line.split(", ")
        .filter_map(|kv| {
            let (k, v) = kv.trim().split_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

#[test]
fn malformed_and_foreign_adverts_are_counted_and_change_nothing() {
    use rvs::daemon::vrrp::wire::{Advert, Auth, V3Ipv4Checksum};
    let (c, _tcp) = cluster(1, false);
    let dir = ConfDir::new();
    let vip = v4(&c, 0);
    let a = rvsd(
        &c,
        0,
        &dir,
        &(service(&c, vip) + &Inst::v3("VI_1", 51, 100, vip).text()),
    );
    wait_state(&a, "VI_1", "MASTER");
    let from: IpAddr = "198.18.0.11".parse().unwrap();
    let group: IpAddr = "224.0.0.18".parse().unwrap();
    // Each would win if it were taken: priority 254 against our 100.
    let good = Advert {
        version: 3,
        vrid: 51,
        priority: 254,
        interval_cs: 20,
        auth: Auth::None,
        addresses: vec![vip],
    };
    let enc = |a: &Advert| a.encode(from, group, V3Ipv4Checksum::PseudoHeader);
    let mut bad_sum = enc(&good);
    bad_sum[6] ^= 0x55;
    let other_vrid = enc(&Advert {
        vrid: 52,
        ..good.clone()
    });
    let v2 = enc(&Advert {
        version: 2,
        interval_cs: 100,
        auth: Auth::pass("x"),
        ..good.clone()
    });
    let other_addrs = enc(&Advert {
        addresses: vec!["198.18.0.199".parse().unwrap()],
        ..good.clone()
    });
    let mut garbage: Vec<Vec<u8>> = (0..50u32)
        .map(|i| (0..(i * 7 % 40)).map(|j| (i * 31 + j * 17) as u8).collect())
        .collect();
    garbage.push(vec![0x31, 51, 254]);
    send_raw(&c, 255, &[bad_sum, other_vrid, v2, other_addrs]);
    send_raw(&c, 255, &garbage);
    // The right advert with the wrong TTL: it could come from off the LAN.
    send_raw(&c, 64, &[enc(&good)]);
    let n = poll_until(STATE_BOUND, "the rejects to be counted", || {
        let n = counters(&a, "VI_1");
        let all = [
            "rx_checksum",
            "rx_vrid",
            "rx_version",
            "rx_address_list",
            "rx_ttl",
        ]
        .iter()
        .all(|k| n.get(*k).copied().unwrap_or(0) >= 1);
        Ok(all.then_some(n))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", a.ok(&["--vrrp"])));
    assert!(n["rx_truncated"] >= 1, "{n:?}");
    assert_eq!(n["adverts_rx"], 0, "{n:?}");
    assert_eq!(row(&a, "VI_1").unwrap().state, "MASTER");
    assert!(
        a.rvsd_log().contains("ignored an advert"),
        "logged (rate-limited)"
    );
    // And the right one is taken: the master yields to it.
    send_raw(&c, 255, &[enc(&good)]);
    wait_state(&a, "VI_1", "BACKUP");
    assert_eq!(counters(&a, "VI_1")["adverts_rx"], 1);
}

#[test]
fn a_healed_partition_leaves_one_master_that_re_announces() {
    let (c, _tcp) = cluster(1, false);
    let dir = ConfDir::new();
    let vip = v4(&c, 0);
    let conf = |prio| service(&c, vip) + &Inst::v3("VI_1", 51, prio, vip).text();
    let a = rvsd(&c, 0, &dir, &conf(150));
    let b = rvsd(&c, 1, &dir, &conf(100));
    wait_state(&a, "VI_1", "MASTER");
    wait_state(&b, "VI_1", "BACKUP");
    connects(&c, vip);
    // Partition: the directors stop hearing each other; both become MASTER.
    for rule in [
        "add table bridge split",
        "add chain bridge split lanfilter { type filter hook forward priority 0 ; }",
        "add rule bridge split lanfilter ip daddr 224.0.0.18 drop",
    ] {
        let argv: Vec<&str> = std::iter::once("nft").chain(rule.split(' ')).collect();
        c.lan().exec(&argv).unwrap();
    }
    wait_state(&b, "VI_1", "MASTER");
    assert_eq!(row(&a, "VI_1").unwrap().state, "MASTER", "split brain");
    // B announced itself last; let the router's neighbour cache lock time pass.
    let neigh = || {
        c.router()
            .netns()
            .ip(&["neigh", "show", &vip.to_string()])
            .unwrap_or_default()
    };
    poll_until(STATE_BOUND, "the router to follow B", || {
        Ok(neigh()
            .contains(&c.directors()[1].mac().to_string())
            .then_some(()))
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // Healed: B yields to A's advert, A answers B's with its own and re-announces.
    c.lan()
        .exec(&["nft", "delete", "table", "bridge", "split"])
        .unwrap();
    wait_state(&b, "VI_1", "BACKUP");
    assert_eq!(row(&a, "VI_1").unwrap().state, "MASTER");
    poll_until(STATE_BOUND, "the router to follow A again", || {
        Ok(neigh()
            .contains(&c.directors()[0].mac().to_string())
            .then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e:#}: {}", neigh()));
    assert!(!has_addr(&c.directors()[1], vip));
    let before = conns(&a, vip);
    connects(&c, vip);
    assert!(conns(&a, vip) > before);
}
