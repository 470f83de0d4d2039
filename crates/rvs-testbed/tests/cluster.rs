//! The DR topology without rvsd: addressing, reachability of the real servers, the test servers
//! and clients, and cleanup. Needs root.

use std::{
    collections::HashSet, net::Ipv4Addr, os::unix::fs::MetadataExt, path::Path, process::Command,
    sync::Mutex, thread, time::Duration,
};

use rvs_testbed::{DrCluster, Mac, PREFIX, cleanup_stale, poll_until};

const TCP_PORT: u16 = 8080;
const UDP_PORT: u16 = 5353;

fn gone(names: &[String]) -> bool {
    names
        .iter()
        .all(|n| !Path::new("/run/netns").join(n).exists())
}

#[test]
fn clients_reach_every_real_server_directly() {
    let cluster = DrCluster::builder()
        .clients(2)
        .real_servers(3)
        .build()
        .unwrap();
    let tcp = cluster.serve_tcp(TCP_PORT).unwrap();
    let udp = cluster.serve_udp(UDP_PORT).unwrap();
    for client in cluster.clients() {
        for (i, rs) in cluster.real_servers().iter().enumerate() {
            assert_eq!(rs.name(), format!("rs{i}"));
            assert_eq!(client.tcp_request(rs.ip(), TCP_PORT).unwrap(), rs.name());
            assert_eq!(client.http_get(rs.ip(), TCP_PORT).unwrap(), rs.name());
            let mut conn = client.open_tcp(rs.ip(), TCP_PORT).unwrap();
            for n in 0..3 {
                assert_eq!(conn.ask(&format!("line {n}")).unwrap(), rs.name());
            }
            for from_port in [40000, 40001] {
                let answer = client
                    .udp_request(rs.ip(), UDP_PORT, b"hi", from_port)
                    .unwrap();
                assert_eq!(answer, rs.name());
            }
        }
    }
    for server in &tcp {
        // Per client: one request, one GET, one long-lived connection of three lines.
        assert_eq!(server.connections(), 2 * 3);
        assert_eq!(server.requests(), 2 * 5);
    }
    for server in &udp {
        assert_eq!(server.datagrams(), 2 * 2);
    }
}

#[test]
fn addresses_follow_the_plan() {
    let cluster = DrCluster::builder()
        .clients(2)
        .real_servers(2)
        .build()
        .unwrap();
    let ip = |d| Ipv4Addr::new(198, 18, 0, d);
    let ips: Vec<Ipv4Addr> = cluster.hosts().map(|h| h.ip()).collect();
    assert_eq!(ips, [ip(1), ip(31), ip(2), ip(11), ip(12)]);
    assert_eq!(cluster.vip(), ip(100));
    for host in cluster.hosts() {
        assert_eq!(host.mac(), Mac::for_ipv4(host.ip()));
        let link = host
            .netns()
            .ip(&["-o", "link", "show", "dev", "eth0"])
            .unwrap();
        assert!(link.contains(&host.mac().to_string()), "{link}");
    }
    assert_eq!(
        cluster.director_ifindex(),
        cluster.director().ifindex().unwrap()
    );
    let vip = "198.18.0.100/32";
    let director = cluster
        .director()
        .netns()
        .ip(&["-o", "addr", "show", "dev", "eth0"])
        .unwrap();
    assert!(director.contains(vip), "{director}");
    for rs in cluster.real_servers() {
        let lo = rs.netns().ip(&["-o", "addr", "show", "dev", "lo"]).unwrap();
        assert!(lo.contains(vip), "{lo}");
        for key in ["all", "lo", "eth0"].map(|d| format!("net.ipv4.conf.{d}.arp_ignore")) {
            assert_eq!(
                rs.netns().exec(&["sysctl", "-n", &key]).unwrap().trim(),
                "1"
            );
        }
        for key in ["all", "lo", "eth0"].map(|d| format!("net.ipv4.conf.{d}.arp_announce")) {
            assert_eq!(
                rs.netns().exec(&["sysctl", "-n", &key]).unwrap().trim(),
                "2"
            );
        }
    }
    let port = cluster
        .lan()
        .ip(&["link", "show", "dev", cluster.director().bridge_port()])
        .unwrap();
    assert!(cluster.has_pass_program() && port.contains("xdp"), "{port}");
}

#[test]
fn the_director_alone_answers_arp_for_the_vip() {
    let cluster = DrCluster::builder().real_servers(2).build().unwrap();
    let _servers = cluster.serve_tcp(TCP_PORT).unwrap();
    // Without rvsd the director's own stack gets the SYN and, listening nowhere, refuses it.
    let err = cluster
        .client()
        .tcp_request(cluster.vip(), TCP_PORT)
        .unwrap_err();
    assert!(format!("{err:#}").contains("refused"), "{err:#}");
    let vip = cluster.vip().to_string();
    let neigh = cluster
        .client()
        .netns()
        .ip(&["neigh", "show", &vip])
        .unwrap();
    assert!(
        neigh.contains(&cluster.director().mac().to_string()),
        "{neigh}"
    );
}

#[test]
fn namespaces_are_deleted_on_drop() {
    let cluster = DrCluster::builder().build().unwrap();
    let names = cluster.netns_names();
    assert_eq!(names.len(), 1 + 1 + 2 + 1);
    assert!(
        names
            .iter()
            .all(|n| n.starts_with(cluster.id()) && n.starts_with(PREFIX))
    );
    assert!(!gone(&names));
    drop(cluster);
    assert!(gone(&names));
}

#[test]
fn clusters_built_in_parallel_do_not_collide() {
    let clusters: Vec<DrCluster> = thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|_| s.spawn(|| DrCluster::builder().build().unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let names: Vec<String> = clusters.iter().flat_map(DrCluster::netns_names).collect();
    assert_eq!(names.iter().collect::<HashSet<_>>().len(), names.len());
    // Same addresses in every cluster, yet each LAN is its own.
    thread::scope(|s| {
        for cluster in &clusters {
            s.spawn(|| {
                let _servers = cluster.serve_tcp(TCP_PORT).unwrap();
                let rs = &cluster.real_servers()[1];
                assert_eq!(
                    cluster.client().tcp_request(rs.ip(), TCP_PORT).unwrap(),
                    rs.name()
                );
            });
        }
    });
    drop(clusters);
    assert!(gone(&names));
}

#[test]
fn a_panicking_test_leaves_nothing_behind() {
    let names = Mutex::new(Vec::new());
    let result = std::panic::catch_unwind(|| {
        let cluster = DrCluster::builder().build().unwrap();
        let _server = cluster.real_servers()[0].serve_tcp(TCP_PORT).unwrap();
        *names.lock().unwrap() = cluster.netns_names();
        panic!("the test fails");
    });
    assert!(result.is_err());
    let names = names.into_inner().unwrap();
    assert!(!names.is_empty() && gone(&names));
}

#[test]
fn cleanup_removes_namespaces_of_dead_processes_only() {
    let dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait_with_output().unwrap();
    let stale = format!("{PREFIX}{dead_pid}-0-stale");
    let out = Command::new("ip")
        .args(["netns", "add", &stale])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut sleeper = Command::new("ip")
        .args(["netns", "exec", &stale, "sleep", "30"])
        .spawn()
        .unwrap();
    let inode = |path: String| std::fs::metadata(path).map(|m| m.ino()).ok();
    let stale_inode = inode(format!("/run/netns/{stale}"));
    poll_until(
        Duration::from_secs(2),
        "sleep to enter the namespace",
        || {
            let inside = inode(format!("/proc/{}/ns/net", sleeper.id())) == stale_inode;
            Ok(inside.then_some(()))
        },
    )
    .unwrap();
    let alive = DrCluster::builder().real_servers(1).build().unwrap();

    let deleted = cleanup_stale().unwrap();
    assert!(deleted.contains(&stale), "{deleted:?}");
    assert!(gone(&[stale]));
    assert!(!sleeper.wait().unwrap().success(), "killed");
    assert!(
        !gone(&alive.netns_names()),
        "a live process's namespaces stay"
    );
}

#[test]
fn invalid_plans_are_refused() {
    let err = DrCluster::builder()
        .vip(Ipv4Addr::new(10, 0, 0, 1))
        .build()
        .unwrap_err();
    assert!(format!("{err:#}").contains("198.18.0.0/15"), "{err:#}");
}
