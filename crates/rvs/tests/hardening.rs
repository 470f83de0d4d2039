//! rvsd against a hostile local user and hostile requests: who may use the control socket, the
//! modes of what rvsd creates, one daemon per pin directory, requests that are too long,
//! malformed or ask for what rvsadm would refuse, a saved state that lies, and a daemon out of
//! file descriptors. Each test failed before its fix.

mod common;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::IpAddr,
    os::unix::{fs::MetadataExt, net::UnixStream},
    path::Path,
    process::{Command, Output},
    time::Duration,
};

use common::{Lab, RVSADM, stderr};
use rvs::{
    control::proto::{Request, Response},
    model::{DestAddr, DestConfig, FwdMethod, Protocol, ServiceConfig, ServiceId},
};

/// The user and group `nobody`/`nogroup` of Debian.
const NOBODY: u32 = 65534;
const NOGROUP: u32 = 65534;
/// A group nobody is in.
const OTHER_GROUP: u32 = 54321;
const NOT_ROOT: &str = "Can't initialize ipvs: Permission denied (you must be root)";

/// rvsadm run as uid `NOBODY` with primary group `gid` and supplementary `groups`.
fn rvsadm_as(lab: &Lab, gid: u32, groups: &[u32], args: &[&str]) -> Output {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={gid}"));
    if groups.is_empty() {
        cmd.arg("--clear-groups");
    } else {
        let list: Vec<String> = groups.iter().map(u32::to_string).collect();
        cmd.arg(format!("--groups={}", list.join(",")));
    }
    cmd.arg(RVSADM)
        .args(args)
        .env("RVS_SOCKET", lab.socket())
        .output()
        .expect("running setpriv")
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .mode()
        & 0o777
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn assert_refused(out: &Output, what: &str) {
    assert!(!out.status.success(), "{what}: rvsadm succeeded");
    assert!(stderr(out).contains(NOT_ROOT), "{what}: {:?}", stderr(out));
}

#[test]
fn files_are_private_whatever_the_umask_and_other_users_are_refused() {
    let mut lab = Lab::new(1, 80);
    lab.stop_rvsd();
    // The most permissive umask a careless service manager could pass on.
    lab.umask = Some(0);
    lab.start_rvsd();
    let vip = lab.vip_port(80);
    lab.ok(&["-A", "-t", &vip, "-s", "rr"]);
    assert_eq!(mode(&lab.socket()), 0o600, "the control socket");
    assert_eq!(mode(&lab.dir.join("state.json")), 0o600, "the state file");

    // The socket's mode keeps another user out, in ipvsadm's words.
    assert_refused(&rvsadm_as(&lab, NOGROUP, &[], &["-L", "-n"]), "socket 0600");

    // Opened to everyone (as by a wrong chmod), rvsd itself still checks who connects.
    chmod(&lab.socket(), 0o666);
    assert_refused(&rvsadm_as(&lab, NOGROUP, &[], &["-L", "-n"]), "a listing");
    let other = format!("{}:81", lab.vip());
    assert_refused(
        &rvsadm_as(&lab, NOGROUP, &[], &["-A", "-t", &other, "-s", "rr"]),
        "a change",
    );
    let listing = lab.ok(&["-L", "-n"]);
    assert!(
        !listing.contains(":81"),
        "the refused change was made:\n{listing}"
    );
    assert!(
        lab.rvsd_log().contains(&format!("refused uid {NOBODY}")),
        "{}",
        lab.rvsd_log()
    );
}

#[test]
fn a_socket_group_lets_its_members_in_and_no_one_else() {
    let lab = Lab::with(1, 80, 24, &["--socket-group", "nogroup"]);
    let meta = std::fs::metadata(lab.socket()).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), NOGROUP);

    let primary = rvsadm_as(&lab, NOGROUP, &[], &["-L", "-n"]);
    assert!(primary.status.success(), "{}", stderr(&primary));
    let supplementary = rvsadm_as(&lab, OTHER_GROUP, &[NOGROUP], &["-L", "-n"]);
    assert!(supplementary.status.success(), "{}", stderr(&supplementary));
    assert_refused(
        &rvsadm_as(&lab, OTHER_GROUP, &[], &["-L", "-n"]),
        "no group",
    );

    // Past the file's mode, rvsd reads the peer's groups from the kernel (SO_PEERGROUPS).
    chmod(&lab.socket(), 0o666);
    assert_refused(
        &rvsadm_as(&lab, OTHER_GROUP, &[], &["-L", "-n"]),
        "no group, socket 0666",
    );
    let member = rvsadm_as(&lab, OTHER_GROUP, &[NOGROUP], &["-L", "-n"]);
    assert!(member.status.success(), "{}", stderr(&member));
}

#[test]
fn a_second_rvsd_on_the_same_pins_is_refused_and_the_first_keeps_serving() {
    let lab = Lab::new(2, 80);
    let vip = lab.vip_port(80);
    lab.ok(&["-A", "-t", &vip, "-s", "rr"]);
    for i in 0..2 {
        lab.ok(&["-a", "-t", &vip, "-r", &lab.rs_ip(i).to_string(), "-g"]);
    }
    let before = lab.ok(&["-L", "-n"]);

    let log = lab.rvsd_refuses(&lab.dir.join("second.sock"), &lab.dir.join("second.json"));
    assert!(
        log.contains(&format!(
            "another rvsd owns the pinned maps in {}",
            lab.pin_dir.display()
        )),
        "{log}"
    );
    // --cleanup of a running daemon's pins is refused the same way.
    let cleanup = Command::new(common::RVSD)
        .args(["--cleanup", "--pin-dir"])
        .arg(&lab.pin_dir)
        .arg("--state-file")
        .arg(lab.dir.join("second.json"))
        .arg("--socket")
        .arg(lab.dir.join("second.sock"))
        .output()
        .unwrap();
    assert!(!cleanup.status.success());
    assert!(
        stderr(&cleanup).contains("another rvsd owns"),
        "{}",
        stderr(&cleanup)
    );

    assert_eq!(lab.ok(&["-L", "-n"]), before);
    let mut names: Vec<String> = (0..4).map(|_| lab.ask(80)).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 2, "both real servers still answer: {names:?}");
}

/// One request line over the control socket, and rvsd's answer (None: it closed).
fn exchange(lab: &Lab, line: &[u8]) -> Option<String> {
    let mut s = UnixStream::connect(lab.socket()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // rvsd may answer and close before it has read everything: a broken pipe is fine.
    let _ = s.write_all(line);
    let mut answer = String::new();
    let mut r = BufReader::new(s);
    match r.read_line(&mut answer) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(answer),
    }
}

fn request(r: &Request) -> Vec<u8> {
    let mut v = serde_json::to_vec(r).unwrap();
    v.push(b'\n');
    v
}

#[test]
fn hostile_requests_are_bounded_answered_and_change_nothing() {
    let lab = Lab::new(1, 80);
    let vip = lab.vip_port(80);
    lab.ok(&["-A", "-t", &vip, "-s", "wrr"]);
    let before = lab.ok(&["-L", "-n"]);

    // A line without end: cut at 64 KiB, answered, closed.
    let mut s = UnixStream::connect(lab.socket()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let chunk = vec![b'x'; 1 << 16];
    for _ in 0..16 {
        if s.write_all(&chunk).is_err() {
            break;
        }
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(
        answer.contains("request longer than 65536 bytes"),
        "{:?}",
        &answer[..answer.len().min(300)]
    );

    // A malformed request quoting a long name: the answer does not echo it all.
    let long = format!("{{\"op\":\"{}\"}}\n", "y".repeat(30_000));
    let answer = exchange(&lab, long.as_bytes()).expect("an answer");
    assert!(answer.contains("malformed request"), "{answer}");
    assert!(answer.len() < 600, "{} bytes echoed back", answer.len());

    // What rvsadm would refuse is refused by rvsd too: a weight above 65535.
    let service = ServiceId::Inet {
        proto: Protocol::Tcp,
        addr: lab.vip(),
        port: 80,
    };
    let add = Request::AddDest {
        service,
        dest: DestAddr {
            addr: IpAddr::V4(lab.rs_ip(0)),
            port: 80,
        },
        config: DestConfig {
            fwd: FwdMethod::Route,
            weight: i32::MAX,
            ..DestConfig::default()
        },
    };
    let answer = exchange(&lab, &request(&add)).expect("an answer");
    let response: Response = serde_json::from_str(&answer).unwrap();
    match response {
        Response::Error { errno, detail } => {
            assert_eq!(errno, libc::ERANGE, "{detail}");
            assert!(detail.contains("above 65535"), "{detail}");
        }
        other => panic!("a weight of 2^31-1 was taken: {other:?}"),
    }
    // Nor may a raw service name an unknown scheduler.
    let bad = Request::AddService {
        service: ServiceId::Inet {
            proto: Protocol::Tcp,
            addr: lab.vip(),
            port: 82,
        },
        config: ServiceConfig::new("no-such-scheduler", false),
    };
    let answer = exchange(&lab, &request(&bad)).expect("an answer");
    assert!(answer.contains("\"error\""), "{answer}");

    assert_eq!(
        lab.ok(&["-L", "-n"]),
        before,
        "a refused request changed the table"
    );
}

#[test]
fn a_saved_state_that_rvsadm_could_not_have_made_is_refused_at_start() {
    let mut lab = Lab::new(1, 80);
    let vip = lab.vip_port(80);
    lab.ok(&["-A", "-t", &vip, "-s", "wrr"]);
    lab.ok(&[
        "-a",
        "-t",
        &vip,
        "-r",
        &lab.rs_ip(0).to_string(),
        "-g",
        "-w",
        "3",
    ]);
    let before = lab.ok(&["-L", "-n"]);
    lab.stop_rvsd();

    let state = lab.dir.join("state.json");
    let good = std::fs::read_to_string(&state).unwrap();
    assert!(good.contains("\"weight\": 3"), "{good}");
    std::fs::write(
        &state,
        good.replace("\"weight\": 3", "\"weight\": 2147483647"),
    )
    .unwrap();
    let log = lab.rvsd_refuses(&lab.socket(), &state);
    assert!(
        log.contains("weight 2147483647 above 65535") && log.contains("not loaded"),
        "{log}"
    );

    std::fs::write(&state, &good).unwrap();
    lab.start_rvsd();
    assert_eq!(lab.ok(&["-L", "-n"]), before);
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
fn out_of_descriptors_the_control_socket_waits_and_logs_once_a_second() {
    let lab = Lab::new(1, 80);
    let pid = lab.rvsd.as_ref().unwrap().pid();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let f: Vec<&str> = line.split_whitespace().collect();
    let (soft, hard) = (f[3].to_owned(), f[4].to_owned());
    let prlimit = |soft: &str| {
        let st = Command::new("prlimit")
            .arg(format!("--pid={pid}"))
            .arg(format!("--nofile={soft}:{hard}"))
            .status()
            .unwrap();
        assert!(st.success());
    };
    // Room for two more descriptors, then more clients than that.
    prlimit(&(open_fds(pid) + 2).to_string());
    let clients: Vec<UnixStream> = (0..8)
        .map(|_| UnixStream::connect(lab.socket()).unwrap())
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let log = lab.rvsd_log();
    let warnings = log.matches("control socket accept").count();
    prlimit(&soft);
    drop(clients);
    assert!(
        (1..=8).contains(&warnings),
        "{warnings} accept warnings in 3 s"
    );
    // Descriptors back, the queued and new clients are served.
    rvs_testbed::poll_until(Duration::from_secs(30), "rvsadm served again", || {
        Ok(lab.rvsadm(&["-L", "-n"]).status.success().then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", lab.rvsd_log()));
}

/// Real servers whose neighbour never answers (addresses on the LAN with no host) hold up only
/// the request that adds them, for the resolution wait, and never the other clients; a restart
/// with many of them saved resolves them all at once. The figures are printed, not asserted.
#[test]
fn silent_real_servers_hold_up_only_their_own_request() {
    use std::{
        sync::{
            Arc,
            atomic::{AtomicBool, Ordering},
        },
        time::Instant,
    };
    let mut lab = Lab::new(1, 80);
    let vip = lab.vip_port(80);
    lab.ok(&["-A", "-t", &vip, "-s", "wlc"]);
    let silent = |i: u8| format!("198.18.0.{}:80", 200 + i);

    // One silent server added by one client while another lists.
    let done = Arc::new(AtomicBool::new(false));
    let adder = {
        let (socket, done, vip, rs) = (lab.socket(), done.clone(), vip.clone(), silent(0));
        std::thread::spawn(move || {
            let t = Instant::now();
            let out = Command::new(RVSADM)
                .args(["-a", "-t", &vip, "-r", &rs, "-g"])
                .env("RVS_SOCKET", socket)
                .output()
                .unwrap();
            done.store(true, Ordering::SeqCst);
            (out, t.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let listing = lab.ok(&["-L", "-n"]);
    let listed_while_adding = !done.load(Ordering::SeqCst);
    let (out, first) = adder.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        listed_while_adding,
        "the listing waited for the silent server's add:\n{listing}"
    );

    // Five more one after the other, then a restore of ten.
    let mut each = vec![first];
    for i in 1..6 {
        let t = Instant::now();
        lab.ok(&["-a", "-t", &vip, "-r", &silent(i), "-g"]);
        each.push(t.elapsed());
    }
    let restore: String = (6..16)
        .map(|i| format!("-a -t {vip} -r {} -g\n", silent(i)))
        .collect();
    let t = Instant::now();
    let out = lab.rvsadm_with_stdin(&["-R"], &restore);
    assert!(out.status.success(), "{}", stderr(&out));
    let restored = t.elapsed();
    assert_eq!(common::dest_rows(&lab.ok(&["-L", "-n"])).len(), 16);

    // A restart with the sixteen saved: resolved together, once each.
    lab.stop_rvsd();
    let t = Instant::now();
    lab.start_rvsd();
    let restarted = t.elapsed();
    assert_eq!(common::dest_rows(&lab.ok(&["-L", "-n"])).len(), 16);
    eprintln!(
        "silent real servers: each add {:?}; a restore of 10: {restored:.1?}; a restart with 16 \
         saved: {restarted:.1?}",
        each.iter()
            .map(|d| format!("{:.1}s", d.as_secs_f64()))
            .collect::<Vec<_>>()
    );
}
