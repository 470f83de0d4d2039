//! Answers to listing requests: services with counters, rates and connection counts; the
//! connection table; the data plane's event counters.

use std::os::fd::AsFd;

use aya::maps::IterableMap;
use rvs_common::{
    IPPROTO_TCP,
    conn::{Conn, ConnKey, KIND_TEMPLATE},
    stats::{COUNTER_NAMES, Stats},
    tcp_state,
};

use super::{
    director::{Director, EstKey},
    expiry::{monotonic_ns, timeout_secs},
};
use crate::{
    control::proto::{ConnView, DestView, RateView, Response, ServiceView, StatsView},
    dataplane::{batch, ip_from_words},
    model::{Dest, Protocol, ServiceId},
};

pub fn stats_view(s: Stats) -> StatsView {
    StatsView {
        conns: s.conns,
        inpkts: s.inpkts,
        outpkts: s.outpkts,
        inbytes: s.inbytes,
        outbytes: s.outbytes,
    }
}

pub fn services(dir: &Director, only: Option<ServiceId>) -> Response {
    if let Some(id) = &only
        && dir.model.service(id).is_none()
    {
        return Response::Error {
            errno: libc::ESRCH,
            detail: format!("service {id} does not exist"),
        };
    }
    let rate = |k: EstKey| {
        dir.estimators
            .get(&k)
            .map(|e| e.rates())
            .unwrap_or_default()
    };
    let services = dir
        .model
        .services
        .iter()
        .filter(|s| only.is_none_or(|id| s.id == id))
        .map(|s| {
            let stats = dir
                .plane
                .as_ref()
                .map(|p| stats_view(p.maps.service_stats(s.index)))
                .unwrap_or_default();
            ServiceView {
                service: s.id,
                config: s.config.clone(),
                stats,
                rate: rate(EstKey::Service(s.index)),
                dests: s
                    .dests
                    .iter()
                    .map(|d| dest_view(dir, d, rate(EstKey::Dest(d.id))))
                    .collect(),
            }
        })
        .collect();
    Response::Services { services }
}

fn dest_view(dir: &Director, d: &Dest, rate: RateView) -> DestView {
    let (active, inactive, persist, stats) = match &dir.plane {
        Some(p) => {
            let (a, i, t) = p.maps.dest_conn_counts(d.id);
            (a, i, t, stats_view(p.maps.dest_stats(d.id)))
        }
        None => (0, 0, 0, StatsView::default()),
    };
    DestView {
        dest: d.addr,
        config: d.config.clone(),
        active_conns: active,
        inactive_conns: inactive,
        persist_conns: persist,
        stats,
        rate,
    }
}

pub fn conns(dir: &Director) -> Response {
    let Some(plane) = &dir.plane else {
        return Response::Conns { conns: Vec::new() };
    };
    let now = monotonic_ns();
    let dest_of = |id: u32| {
        dir.model
            .services
            .iter()
            .flat_map(|s| s.dests.iter())
            .chain(dir.model.trash.iter().map(|t| &t.dest))
            .find(|d| d.id == id)
            .map(|d| d.addr)
    };
    let persist_timeout = |index: u32| {
        dir.model
            .services
            .iter()
            .find(|s| s.index == index)
            .map_or(0, |s| s.config.timeout as u64)
    };
    let mut conns = Vec::new();
    for table in [&plane.maps.conns_new, &plane.maps.conns] {
        let _ = batch::for_each::<ConnKey, Conn>(table.map().fd().as_fd(), 4096, |key, conn| {
            let Some(dest) = dest_of(conn.dest_id) else {
                return;
            };
            let ipv6 = key.af == rvs_common::AF_INET6;
            let template = key.kind == KIND_TEMPLATE;
            let ttl = if template {
                persist_timeout(conn.svc_id)
            } else {
                timeout_secs(key.proto, conn.state, &dir.model.timeouts)
            };
            let idle = now.saturating_sub(conn.last_seen_ns) / 1_000_000_000;
            let state = if template {
                "NONE"
            } else if key.proto == IPPROTO_TCP {
                tcp_state::name(conn.state)
            } else {
                "UDP"
            };
            conns.push(ConnView {
                protocol: Protocol::from_number(key.proto),
                client: ip_from_words(&key.caddr, ipv6),
                client_port: u16::from_be(key.cport),
                virtual_addr: ip_from_words(&key.vaddr, ipv6),
                virtual_port: u16::from_be(key.vport),
                dest: dest.addr,
                // A template of a port-zero service has no port of its own.
                dest_port: if template && key.vport == 0 {
                    0
                } else {
                    dest.port
                },
                state: state.to_owned(),
                expires: ttl.saturating_sub(idle),
                pe_name: None,
                pe_data: None,
            });
        });
    }
    Response::Conns { conns }
}

pub fn counters(dir: &Director) -> Response {
    let values = dir
        .plane
        .as_ref()
        .map(|p| p.maps.event_counters())
        .unwrap_or_default();
    let mut counters: Vec<(String, u64)> = COUNTER_NAMES
        .iter()
        .enumerate()
        .map(|(i, n)| ((*n).to_owned(), values.get(i).copied().unwrap_or(0)))
        .collect();
    counters.push(("drop_embryonic".to_owned(), dir.dropped_embryonic));
    Response::Counters { counters }
}
