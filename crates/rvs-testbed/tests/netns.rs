//! `Netns` on its own: entering, spawning, deleting. Needs root.

use std::{
    net::{TcpListener, TcpStream},
    path::Path,
    process::Command,
    time::Duration,
};

use rvs_testbed::{Netns, poll_until};

#[test]
fn sockets_made_inside_belong_to_the_namespace() {
    let a = Netns::new("enter-a").unwrap();
    let b = Netns::new("enter-b").unwrap();
    let listener = a
        .enter(|| TcpListener::bind("127.0.0.1:0"))
        .unwrap()
        .unwrap();
    let addr = listener.local_addr().unwrap();
    assert!(a.enter(|| TcpStream::connect(addr)).unwrap().is_ok());
    let err = b.enter(|| TcpStream::connect(addr)).unwrap().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    assert_eq!(a.ifindex("lo").unwrap(), 1);
    assert!(a.ifindex("eth0").is_err());
}

#[test]
fn the_thread_returns_to_its_namespace_after_a_panic() {
    let ns = Netns::new("unwind").unwrap();
    let before = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    let result = std::panic::catch_unwind(|| ns.enter(|| panic!("inside")));
    assert!(result.is_err());
    assert_eq!(
        std::fs::read_link("/proc/thread-self/ns/net").unwrap(),
        before
    );
}

#[test]
fn spawn_changes_only_the_network_namespace() {
    let ns = Netns::new("spawn").unwrap();
    let out = ns
        .spawn(
            Command::new("sh")
                .args(["-c", "ip -o link; stat -f -c %T /sys/fs/bpf"])
                .stdout(std::process::Stdio::piped()),
        )
        .unwrap()
        .wait_with_output()
        .unwrap();
    let out = String::from_utf8(out.stdout).unwrap();
    let links: Vec<&str> = out.lines().filter(|l| l.contains("link/")).collect();
    assert_eq!(links.len(), 1, "only lo inside: {out}");
    assert!(links[0].contains(": lo:"), "{out}");
    // `ip netns exec` would have mounted a fresh sysfs over /sys, hiding bpffs.
    assert!(out.contains("bpf_fs"), "/sys/fs/bpf is the host's: {out}");
    assert!(
        ns.exec(&["stat", "-f", "-c", "%T", "/sys/fs/bpf"])
            .unwrap()
            .contains("sysfs")
    );
}

#[test]
fn run_prepares_a_namespace_and_reports_failures() {
    let ns = Netns::new("run").unwrap();
    // Like `rvs-rs up`: sysctls of this namespace, addresses, and the machine's bpffs.
    let script = "echo 1 > /proc/sys/net/ipv4/conf/lo/arp_ignore && \
        ip addr add 198.18.0.100/32 dev lo && stat -f -c %T /sys/fs/bpf";
    let out = ns
        .run(
            Command::new("sh").args(["-c", script]),
            Duration::from_secs(5),
        )
        .unwrap();
    assert_eq!(out.trim(), "bpf_fs");
    let lo = ns.ip(&["-o", "addr", "show", "dev", "lo"]).unwrap();
    assert!(lo.contains("198.18.0.100/32"), "{lo}");
    let arp_ignore = ns
        .exec(&["sysctl", "-n", "net.ipv4.conf.lo.arp_ignore"])
        .unwrap();
    assert_eq!(arp_ignore.trim(), "1");

    let failing = ["-c", "echo no such VIP >&2; exit 2"];
    let err = ns
        .run(Command::new("sh").args(failing), Duration::from_secs(5))
        .unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains("no such VIP") && err.contains("exit status: 2"),
        "{err}"
    );

    let start = std::time::Instant::now();
    let err = ns
        .run(Command::new("sleep").arg("30"), Duration::from_millis(200))
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "killed at the deadline"
    );
    assert!(format!("{err:#}").contains("timed out"), "{err:#}");
    assert!(ns.pids().unwrap().is_empty(), "nothing left running");
}

#[test]
fn drop_kills_processes_and_deletes_the_namespace() {
    let ns = Netns::new("drop").unwrap();
    let path = ns.path();
    let mut child = ns.spawn(Command::new("sleep").arg("30")).unwrap();
    assert_eq!(ns.pids().unwrap(), [child.id() as i32]);
    drop(ns);
    assert!(!path.exists());
    let status = poll_until(Duration::from_secs(2), "sleep to be reaped", || {
        Ok(child.try_wait()?)
    })
    .unwrap();
    assert!(!status.success());
}

#[test]
fn delete_reports_and_removes() {
    let ns = Netns::new("delete").unwrap();
    let path = ns.path();
    assert!(path.starts_with("/run/netns"));
    assert!(Path::new(&path).exists());
    ns.delete().unwrap();
    assert!(!path.exists());
}
