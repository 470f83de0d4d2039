//! The director's rules against in-memory maps: every command, every error path, the
//! generation swap of scheduler tables, a refused change leaving nothing half-written (the maps
//! refuse the n-th write, for every n), trash and revival, and the state file.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr},
    path::PathBuf,
};

use rvs_common::service::{SchedDest, ServiceEntry, ServiceKey};

use super::{Director, DirectorOptions};
use crate::{
    control::proto::{Request, Response},
    daemon::{expiry::Sweep, state},
    dataplane::{
        NextHop, ip_words,
        memory::{MemoryMaps, Tables},
    },
    model::{DestAddr, DestConfig, MarkRule, Model, Protocol, ServiceConfig, ServiceId, Timeouts},
};

fn vip() -> ServiceId {
    ServiceId::Inet {
        proto: Protocol::Tcp,
        addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100)),
        port: 80,
    }
}

fn rs(last: u8) -> DestAddr {
    DestAddr {
        addr: IpAddr::V4(Ipv4Addr::new(198, 18, 1, last)),
        port: 80,
    }
}

fn hop() -> NextHop {
    NextHop {
        ifindex: 2,
        smac: [2, 0, 0, 0, 0, 1],
        dmac: [2, 0, 0, 0, 0, 2],
        src: None,
        mtu: 1500,
    }
}

fn director_with(state_file: Option<PathBuf>) -> (Director, MemoryMaps) {
    let maps = MemoryMaps::new();
    let mut d = Director::new(
        Model::new(16, 64),
        Box::new(maps.clone()),
        DirectorOptions {
            state_file,
            conn_table_size: 4096,
        },
    );
    d.learn_next_hops((1..=20).map(|i| (rs(i).addr, Some(hop()))));
    (d, maps)
}

fn director() -> (Director, MemoryMaps) {
    director_with(None)
}

fn ok(d: &mut Director, req: Request) {
    let r = d.handle(req.clone());
    assert_eq!(r, Response::Ok, "{req:?}");
}

fn errno(d: &mut Director, req: Request) -> i32 {
    match d.handle(req) {
        Response::Error { errno, .. } => errno,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn add_service(sched: &str) -> Request {
    Request::AddService {
        service: vip(),
        config: ServiceConfig::new(sched, false),
    }
}

fn add_dest(last: u8, weight: i32) -> Request {
    Request::AddDest {
        service: vip(),
        dest: rs(last),
        config: DestConfig {
            weight,
            ..DestConfig::default()
        },
    }
}

/// What the data plane can observe of one service: its entry without the bookkeeping that a
/// rewrite changes (generation, list offset, counter base), its slots in order, its list.
type Observed = (ServiceEntry, Vec<u32>, Vec<SchedDest>);

/// Everything the data plane can observe, independent of where tables happen to sit.
fn observable(t: &Tables) -> (BTreeMap<String, Observed>, Tables) {
    let mut services = BTreeMap::new();
    for (key, e) in &t.services {
        let slots = (0..e.table_len)
            .map(|i| t.slots[&(e.id, e.table_gen, i)])
            .collect();
        let list = (e.list_off..e.list_off + e.list_len)
            .map(|i| t.list[&i])
            .collect();
        let mut plain = *e;
        plain.table_gen = 0;
        plain.list_off = 0;
        plain.counter_base = 0;
        services.insert(format!("{key:?}"), (plain, slots, list));
    }
    let rest = Tables {
        services: Vec::new(),
        slots: BTreeMap::new(),
        list: BTreeMap::new(),
        ..t.clone()
    };
    (services, rest)
}

fn service_entry(maps: &MemoryMaps) -> ServiceEntry {
    let key: ServiceKey = crate::dataplane::service_key(&vip());
    maps.tables()
        .services
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, e)| *e)
        .expect("the service is in the maps")
}

#[test]
fn a_service_and_its_real_servers_reach_the_maps() {
    let (mut d, maps) = director();
    ok(&mut d, add_service("wrr"));
    ok(&mut d, add_dest(1, 3));
    ok(&mut d, add_dest(2, 1));
    let e = service_entry(&maps);
    assert_eq!(e.list_len, 2);
    let t = maps.tables();
    // wrr 3:1 is a sequence of four slots.
    assert_eq!(e.table_len, 4);
    let ids: Vec<u32> = d.model().services[0].dests.iter().map(|x| x.id).collect();
    for id in &ids {
        let dest = t.dests[id];
        assert_ne!(dest.flags & rvs_common::dest::dest_flags::AVAILABLE, 0);
        assert_ne!(dest.flags & rvs_common::dest::dest_flags::NEIGH_OK, 0);
        assert_eq!(dest.dmac, hop().dmac);
    }
    assert_eq!(t.dests[&ids[1]].weight, 3);
    match d.handle(Request::ListServices { service: None }) {
        Response::Services { services } => {
            assert_eq!(services.len(), 1);
            assert_eq!(services[0].dests.len(), 2);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_change_swaps_the_table_generation_and_deletes_the_old_slots() {
    let (mut d, maps) = director();
    ok(&mut d, add_service("rr"));
    ok(&mut d, add_dest(1, 1));
    let first = service_entry(&maps);
    ok(&mut d, add_dest(2, 1));
    let second = service_entry(&maps);
    assert_eq!(second.table_gen, first.table_gen.wrapping_add(1));
    let t = maps.tables();
    assert!(t.slots.keys().all(|(_, g, _)| *g == second.table_gen));
    assert_eq!(t.slots.len(), second.table_len as usize);
    // A change to settings only keeps the table.
    let mut config = ServiceConfig::new("rr", false);
    config.flags |= crate::model::svc_flags::PERSISTENT;
    config.timeout = 300;
    ok(
        &mut d,
        Request::EditService {
            service: vip(),
            config,
        },
    );
    let third = service_entry(&maps);
    assert_eq!(third.table_gen, second.table_gen);
    assert_eq!(third.persist_timeout, 300);
}

#[test]
fn model_errors_are_the_kernels_and_change_nothing() {
    let (mut d, maps) = director();
    assert_eq!(
        errno(&mut d, add_dest(1, 1)),
        libc::ESRCH,
        "no such service"
    );
    assert_eq!(errno(&mut d, add_service("fastest")), libc::ENOENT);
    ok(&mut d, add_service("rr"));
    assert_eq!(errno(&mut d, add_service("rr")), libc::EEXIST);
    ok(&mut d, add_dest(1, 1));
    let before = maps.tables();
    assert_eq!(errno(&mut d, add_dest(1, 1)), libc::EEXIST);
    assert_eq!(
        errno(
            &mut d,
            Request::DeleteDest {
                service: vip(),
                dest: rs(9)
            }
        ),
        libc::ENOENT
    );
    assert_eq!(
        errno(
            &mut d,
            Request::EditDest {
                service: vip(),
                dest: rs(9),
                config: DestConfig::default()
            }
        ),
        libc::ENOENT
    );
    assert_eq!(
        errno(
            &mut d,
            Request::Zero {
                service: Some(ServiceId::Fwmark {
                    mark: 7,
                    ipv6: false
                })
            }
        ),
        libc::ESRCH
    );
    assert_eq!(maps.tables(), before);
}

/// Runs `change` against a director set up by `setup`, with the maps refusing the n-th write
/// (once) for every n until the change goes through: each refusal must leave what the data plane sees,
/// and the model, as they were; and the final success must change them.
fn refused_at_every_write(setup: &[Request], change: Request) {
    let mut n = 0;
    loop {
        let (mut d, maps) = director();
        for r in setup {
            ok(&mut d, r.clone());
        }
        let before = observable(&maps.tables());
        let model_before = serde_json::to_string(d.model()).unwrap();
        maps.refuse_after(Some(n));
        let r = d.handle(change.clone());
        maps.refuse_after(None);
        match r {
            Response::Ok => {
                assert_ne!(
                    observable(&maps.tables()),
                    before,
                    "{change:?} changed nothing"
                );
                assert!(n > 0, "{change:?} needs no write at all?");
                return;
            }
            Response::Error { errno, .. } => {
                assert_eq!(errno, libc::EIO);
                assert_eq!(
                    observable(&maps.tables()),
                    before,
                    "{change:?} refused at write {n} left something half-written"
                );
                assert_eq!(serde_json::to_string(d.model()).unwrap(), model_before);
            }
            other => panic!("{other:?}"),
        }
        // Every write of small changes; a sample of the thousands a Maglev table takes.
        n += if n < 64 { 1 } else { 97 };
        assert!(n < 20_000, "{change:?} never went through");
    }
}

#[test]
fn a_refused_change_leaves_nothing_half_written() {
    let base = [add_service("wrr"), add_dest(1, 2), add_dest(2, 1)];
    refused_at_every_write(&base, add_dest(3, 5));
    refused_at_every_write(
        &base,
        Request::EditDest {
            service: vip(),
            dest: rs(1),
            config: DestConfig {
                weight: 7,
                ..DestConfig::default()
            },
        },
    );
    refused_at_every_write(
        &base,
        Request::DeleteDest {
            service: vip(),
            dest: rs(2),
        },
    );
    refused_at_every_write(&base, Request::DeleteService { service: vip() });
    refused_at_every_write(&[], add_service("mh"));
    refused_at_every_write(
        &base,
        Request::EditService {
            service: vip(),
            config: ServiceConfig::new("mh", false),
        },
    );
}

#[test]
fn a_deleted_server_drains_then_is_revived_or_freed() {
    let (mut d, maps) = director();
    ok(&mut d, add_service("rr"));
    ok(&mut d, add_dest(1, 1));
    ok(&mut d, add_dest(2, 1));
    let id = d.model().services[0].dest(&rs(2)).unwrap().id;
    ok(
        &mut d,
        Request::DeleteDest {
            service: vip(),
            dest: rs(2),
        },
    );
    // Still forwarding its flows, not available to new ones.
    let entry = maps.tables().dests[&id];
    assert_eq!(entry.flags & rvs_common::dest::dest_flags::AVAILABLE, 0);
    assert_eq!(service_entry(&maps).list_len, 1);
    // Back again: the same id, with its counters.
    ok(&mut d, add_dest(2, 1));
    assert_eq!(d.model().services[0].dest(&rs(2)).unwrap().id, id);
    assert!(d.model().trash.is_empty());
    // Deleted again, and no flow refers to it in a complete walk: freed.
    ok(
        &mut d,
        Request::DeleteDest {
            service: vip(),
            dest: rs(2),
        },
    );
    let trash = d.model().trash.iter().map(|t| t.dest.id).collect();
    let referenced_walk = Sweep {
        complete: true,
        referenced: [id].into(),
        ..Sweep::default()
    };
    d.expiry_done(&referenced_walk, &trash);
    assert_eq!(d.model().trash.len(), 1, "a referenced server stays");
    let free_walk = Sweep {
        complete: true,
        ..Sweep::default()
    };
    d.expiry_done(&free_walk, &trash);
    assert!(d.model().trash.is_empty());
    assert!(!maps.tables().dests.contains_key(&id));
}

#[test]
fn clear_marks_timeouts_and_zero() {
    let (mut d, maps) = director();
    ok(&mut d, add_service("rr"));
    ok(&mut d, add_dest(1, 1));
    let rule = MarkRule {
        mark: 5,
        proto: None,
        addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 0)),
        prefix_len: 24,
        port_lo: 0,
        port_hi: 65535,
    };
    ok(&mut d, Request::AddMarkRule { rule });
    assert_eq!(maps.tables().marks.len(), 1);
    assert_eq!(
        d.handle(Request::ListMarkRules),
        Response::MarkRules { rules: vec![rule] }
    );
    assert_eq!(errno(&mut d, Request::AddMarkRule { rule }), libc::EEXIST);
    ok(
        &mut d,
        Request::SetTimeouts {
            timeouts: Timeouts {
                tcp: 10,
                tcp_fin: 0,
                udp: 20,
            },
        },
    );
    match d.handle(Request::GetTimeouts) {
        Response::Timeouts { timeouts } => {
            assert_eq!((timeouts.tcp, timeouts.udp), (10, 20));
            assert_eq!(timeouts.tcp_fin, Timeouts::default().tcp_fin);
        }
        other => panic!("{other:?}"),
    }
    let index = d.model().services[0].index;
    maps.with(|t| {
        t.svc_stats.insert(
            index,
            rvs_common::stats::Stats {
                conns: 5,
                ..Default::default()
            },
        );
    });
    ok(&mut d, Request::Zero { service: None });
    assert!(maps.tables().svc_stats.is_empty());
    ok(&mut d, Request::Clear);
    assert!(d.model().services.is_empty());
    assert!(maps.tables().services.is_empty());
    assert!(maps.tables().marks.is_empty());
    assert!(maps.tables().slots.is_empty());
    match d.handle(Request::Info) {
        Response::Info(i) => assert_eq!(i.conn_table_size, 4096),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_state_file_follows_every_change() {
    let dir = tempdir();
    let path = dir.join("state.json");
    let (mut d, _maps) = director_with(Some(path.clone()));
    ok(&mut d, add_service("wrr"));
    ok(&mut d, add_dest(1, 2));
    let saved = state::load(&path).unwrap().expect("saved");
    assert_eq!(
        serde_json::to_string(&saved).unwrap(),
        serde_json::to_string(d.model()).unwrap()
    );
    // A restarted director over the same maps resumes the saved model.
    let maps = MemoryMaps::new();
    let mut again = Director::new(
        saved,
        Box::new(maps.clone()),
        DirectorOptions {
            state_file: None,
            conn_table_size: 4096,
        },
    );
    again.reconcile(false).unwrap();
    assert_eq!(service_entry(&maps).list_len, 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_failed_save_is_reported_and_changes_nothing() {
    let dir = tempdir();
    let path = dir.join("state.json");
    let (mut d, maps) = director_with(Some(path.clone()));
    ok(&mut d, add_service("rr"));
    ok(&mut d, add_dest(1, 1));
    let before = observable(&maps.tables());
    let model_before = serde_json::to_string(d.model()).unwrap();
    // The state file's directory becomes a file: every save fails from now on.
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::write(&dir, b"not a directory").unwrap();
    for req in [
        add_dest(2, 1),
        Request::DeleteService { service: vip() },
        Request::SetTimeouts {
            timeouts: Timeouts {
                tcp: 5,
                tcp_fin: 5,
                udp: 5,
            },
        },
    ] {
        match d.handle(req.clone()) {
            Response::Error { errno, detail } => {
                assert_eq!(errno, libc::EIO);
                assert!(detail.contains("saving the model failed"), "{detail}");
            }
            other => panic!("{req:?}: {other:?}"),
        }
        assert_eq!(observable(&maps.tables()), before, "{req:?}");
        assert_eq!(serde_json::to_string(d.model()).unwrap(), model_before);
    }
    let _ = std::fs::remove_file(&dir);
}

#[test]
fn a_server_without_a_next_hop_is_written_waiting_and_fixed_by_the_refresh() {
    let (mut d, maps) = director();
    ok(&mut d, add_service("rr"));
    let far = DestAddr {
        addr: IpAddr::V4(Ipv4Addr::new(198, 19, 9, 9)),
        port: 80,
    };
    ok(
        &mut d,
        Request::AddDest {
            service: vip(),
            dest: far,
            config: DestConfig::default(),
        },
    );
    let id = d.model().services[0].dests[0].id;
    let flags = maps.tables().dests[&id].flags;
    assert_eq!(flags & rvs_common::dest::dest_flags::NEIGH_OK, 0);
    d.next_hops(vec![(far.addr, Some(hop()))]);
    let entry = maps.tables().dests[&id];
    assert_ne!(entry.flags & rvs_common::dest::dest_flags::NEIGH_OK, 0);
    assert_eq!(entry.addr, ip_words(&far.addr));
}

/// A fresh directory under the system's temporary one.
fn tempdir() -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "rvs-director-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
