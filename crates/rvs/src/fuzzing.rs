//! The fuzz targets' entry points (fuzz/fuzz_targets/, one per parser rvsd or rvsadm runs on
//! input it does not control). Each takes arbitrary bytes and goes where a hostile file, client
//! or peer would: a panic, a hang or a runaway allocation is the finding. The unit test below
//! runs every entry over the seed corpus (fuzz/corpus/), so the corpus is checked in every test
//! run; `scripts/fuzz` runs the fuzzers themselves.

use std::net::IpAddr;

use crate::{
    daemon::{
        Director, DirectorOptions, bgp, l7,
        sync::wire as sync_wire,
        vrrp::wire::{self as vrrp_wire, Auth, Expect, Received},
    },
    dataplane::memory::MemoryMaps,
    model::Model,
};

/// keepalived.conf as `rvsd -f` and `--check-config` read it.
pub fn keepalived_conf(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    // An include would read whatever files the fuzzer names (a glob over the whole file system
    // takes seconds); the include rules are tested in keepalived/tests.rs.
    if text.contains("include") {
        return;
    }
    if let Ok(cfg) = crate::keepalived::parse_str("fuzz.conf", &text) {
        // What rvsd derives from a configuration that loads must not fail either.
        let _ = crate::keepalived::desired_services(&cfg);
        for s in &cfg.l7_servers {
            for (i, p) in s.pools.iter().enumerate() {
                let _ = crate::keepalived::l7_pool_service(&cfg, p, i as u32 + 1);
            }
        }
    }
}

/// A restore file (`rvsadm -R`): every line an ipvsadm command line.
pub fn rvsadm_restore(data: &[u8]) {
    crate::ipvsadm::fuzz_restore(data);
}

/// Lines of the control protocol, as the control socket reads them, applied in order to a
/// director over in-memory maps (every request is checked by the daemon, not only by rvsadm).
pub fn control_requests(data: &[u8]) {
    let mut director = Director::new(
        Model::new(rvs_common::maps::MAX_SERVICES, rvs_common::maps::MAX_DESTS),
        Box::new(MemoryMaps::new()),
        DirectorOptions {
            state_file: None,
            conn_table_size: 4096,
        },
    );
    for line in data.split(|b| *b == b'\n').take(64) {
        if let Ok(req) = serde_json::from_slice::<crate::control::proto::Request>(line) {
            let _ = director.handle(req);
        }
    }
}

/// The state file rvsd loads at start, checked as it is there.
pub fn state_file(data: &[u8]) {
    if let Ok(m) = serde_json::from_slice::<Model>(data) {
        let _ = m.checked(rvs_common::maps::MAX_SERVICES, rvs_common::maps::MAX_DESTS);
    }
}

/// A VRRP advert (v2 and v3, both families), as an instance judges it.
pub fn vrrp_advert(data: &[u8]) {
    let addresses: [IpAddr; 2] = [[198, 18, 0, 100].into(), "2001:db8::100".parse().unwrap()];
    let ipv4 = vrrp_wire::split_ipv4(data);
    for (src, dst) in [
        (IpAddr::from([198, 18, 0, 2]), IpAddr::from([224, 0, 0, 18])),
        ("fe80::2".parse().unwrap(), "ff02::12".parse().unwrap()),
    ] {
        let rx = Received {
            src,
            dst,
            ttl: Some(255),
            message: data,
        };
        for version in [2, 3] {
            for auth in [Auth::None, Auth::Pass(*b"secret\0\0")] {
                let expect = Expect {
                    version,
                    vrid: 51,
                    auth,
                    interval_cs: 100,
                    addresses: &addresses,
                    check_ttl: true,
                };
                let _ = vrrp_wire::decode(&rx, &expect);
                if let Ok(r) = &ipv4 {
                    let _ = vrrp_wire::decode(r, &expect);
                }
            }
        }
    }
}

/// A connection-sync datagram (v0 and v1).
pub fn sync_message(data: &[u8]) {
    for syncid in [0, 51] {
        let _ = sync_wire::decode(data, syncid);
    }
}

/// A BGP message from a peer, with and without 4-octet AS numbers.
pub fn bgp_message(data: &[u8]) {
    for asn4 in [true, false] {
        let _ = bgp::wire::decode(data, asn4);
    }
}

/// An HTTP request head from a client, and what rvsd would send on; a response head from a
/// real server, and what the client would get.
pub fn http_heads(data: &[u8]) {
    if let Ok(Some(h)) = l7::head::parse_request(data, 16 * 1024) {
        let _ = h.path();
        let _ = h.cookie("RVSID");
        let _ = h.for_upstream(Some([198, 18, 0, 5].into()));
    }
    for method in ["GET", "HEAD"] {
        if let Ok(Some(r)) = l7::head::parse_response(data, method, 64 * 1024) {
            let _ = r.for_client(true, &["Set-Cookie: RVSID=1".to_owned()], false);
            let _ = r.for_client(false, &[], true);
        }
    }
}

/// A TLS ClientHello, for its server name.
pub fn tls_client_hello(data: &[u8]) {
    let _ = l7::tls::server_name(data);
}

/// A target: arbitrary bytes in.
pub type Target = fn(&[u8]);

/// Every target by name, as fuzz/ and the corpus test call them.
pub const TARGETS: &[(&str, Target)] = &[
    ("keepalived_conf", keepalived_conf),
    ("rvsadm_restore", rvsadm_restore),
    ("control_requests", control_requests),
    ("state_file", state_file),
    ("vrrp_advert", vrrp_advert),
    ("sync_message", sync_message),
    ("bgp_message", bgp_message),
    ("http_heads", http_heads),
    ("tls_client_hello", tls_client_hello),
];

#[cfg(test)]
mod tests {
    use super::Model;
    use std::{
        net::{IpAddr, Ipv4Addr},
        path::PathBuf,
    };

    fn corpus() -> PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus")
    }

    /// Writes the binary seeds from rvs's own encoders (run once, by hand:
    /// `cargo test -p rvs --features fuzzing --lib write_binary_seeds -- --ignored`).
    #[test]
    #[ignore]
    fn write_binary_seeds() {
        use crate::daemon::{
            bgp::wire as bgp_wire,
            sync::wire::{ConnAddrs, ConnEntry, SyncMessage, Version},
            vrrp::wire::{Advert, Auth, V3Ipv4Checksum},
        };
        let put = |target: &str, name: &str, bytes: &[u8]| {
            let dir = corpus().join(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), bytes).unwrap();
        };
        for (name, version, auth) in [
            ("v2_none", 2, Auth::None),
            ("v2_pass", 2, Auth::pass("secret")),
            ("v3", 3, Auth::None),
        ] {
            let a = Advert {
                version,
                vrid: 51,
                priority: 100,
                interval_cs: 100,
                auth,
                addresses: vec![IpAddr::from([198, 18, 0, 100])],
            };
            let m = a.encode(
                [198, 18, 0, 2].into(),
                [224, 0, 0, 18].into(),
                V3Ipv4Checksum::PseudoHeader,
            );
            put("vrrp_advert", name, &m);
        }
        let entry = ConnEntry {
            protocol: 6,
            flags: 0x100,
            state: 1,
            cport: 40000,
            vport: 80,
            dport: 8080,
            fwmark: 0,
            timeout: 900,
            addrs: ConnAddrs::V4 {
                caddr: Ipv4Addr::new(198, 18, 1, 5),
                vaddr: Ipv4Addr::new(198, 18, 0, 100),
                daddr: Ipv4Addr::new(198, 19, 0, 11),
            },
            seq: None,
            pe: None,
        };
        for (name, version) in [("v0", Version::V0), ("v1", Version::V1)] {
            let msg = SyncMessage {
                syncid: 51,
                version,
                entries: vec![entry.clone(), entry.clone()],
            };
            put(
                "sync_message",
                name,
                &crate::daemon::sync::wire::encode(&msg).unwrap(),
            );
        }
        let open = bgp_wire::open(&bgp_wire::OpenParams {
            local_as: 4200000005,
            hold_time: 90,
            router_id: Ipv4Addr::new(198, 18, 0, 2),
            ipv4: true,
            ipv6: true,
            graceful_restart: Some(120),
            restarted: false,
        });
        put("bgp_message", "open", &bgp_wire::encode(&open));
        let prefix = crate::keepalived::bgp::IpPrefix::parse("198.18.0.100/32").unwrap();
        let attrs = bgp_wire::RouteAttrs {
            next_hop: [198, 18, 0, 2].into(),
            as_path: vec![4200000005],
            med: Some(10),
            communities: vec![0xfde8_0001],
            local_pref: None,
        };
        for (i, m) in bgp_wire::announce(&[prefix], &attrs, true)
            .iter()
            .enumerate()
        {
            put("bgp_message", &format!("update{i}"), &bgp_wire::encode(m));
        }
        let n = bgp_wire::cease_shutdown();
        put(
            "bgp_message",
            "notification",
            &bgp_wire::encode(&netgauze_bgp_pkt::BgpMessage::Notification(n)),
        );
        // Control requests as rvsadm sends them: a service, two real servers, an edit, a
        // listing, a delete.
        use crate::{
            control::proto::Request,
            model::{DestAddr, DestConfig, Protocol, ServiceConfig, ServiceId},
        };
        let service = ServiceId::Inet {
            proto: Protocol::Tcp,
            addr: [198, 18, 0, 100].into(),
            port: 80,
        };
        let dest = |i: u8| DestAddr {
            addr: [198, 19, 0, i].into(),
            port: 8080,
        };
        let requests = [
            Request::AddService {
                service,
                config: ServiceConfig::new("wrr", false),
            },
            Request::AddDest {
                service,
                dest: dest(11),
                config: DestConfig::default(),
            },
            Request::AddDest {
                service,
                dest: dest(12),
                config: DestConfig {
                    weight: 3,
                    ..DestConfig::default()
                },
            },
            Request::EditService {
                service,
                config: ServiceConfig::new("mh", false),
            },
            Request::ListServices { service: None },
            Request::DeleteDest {
                service,
                dest: dest(11),
            },
            Request::DeleteService { service },
        ];
        let lines: Vec<String> = requests
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect();
        put(
            "control_requests",
            "session",
            (lines.join("\n") + "\n").as_bytes(),
        );
        // The state file a director saves after the first four of them.
        std::fs::create_dir_all(corpus().join("state_file")).unwrap();
        let mut d = crate::daemon::Director::new(
            Model::new(64, 64),
            Box::new(crate::dataplane::memory::MemoryMaps::new()),
            crate::daemon::DirectorOptions {
                state_file: Some(corpus().join("state_file/three_servers")),
                conn_table_size: 4096,
            },
        );
        for r in requests.iter().take(4) {
            d.handle(r.clone());
        }
        // A real ClientHello with a server name, from rustls.
        let config = std::sync::Arc::new(
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
        );
        let name = rustls::pki_types::ServerName::try_from("api.example.com").unwrap();
        let mut c = rustls::ClientConnection::new(config, name).unwrap();
        let mut hello = Vec::new();
        c.write_tls(&mut hello).unwrap();
        put("tls_client_hello", "sni", &hello);
    }

    /// The seed corpus in the repository goes through every target without a panic (and each
    /// target has seeds).
    #[test]
    fn the_seed_corpus_passes_every_target() {
        let root = corpus();
        for (name, target) in super::TARGETS {
            let dir = root.join(name);
            let seeds: Vec<_> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|e| e.unwrap().path())
                .collect();
            assert!(!seeds.is_empty(), "no seeds for {name}");
            for seed in seeds {
                target(&std::fs::read(&seed).unwrap());
            }
        }
    }
}
