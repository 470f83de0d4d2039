//! What readers see of the director, and the answers to requests that only read: services with
//! counters, rates and connection counts; the connection table; the data plane's event counters;
//! timeouts and mark rules. The director publishes a [`DirectorView`] after every change; these
//! answers combine it with the live counters read from the maps, so no reader ever waits for the
//! director (rvsadm's listings, and later the monitor and the metrics, read the same view).

use std::{collections::HashMap, sync::Arc};

use rvs_common::{IPPROTO_TCP, conn::KIND_TEMPLATE, stats::COUNTER_NAMES, stats::Stats, tcp_state};

use super::expiry::{monotonic_ns, timeout_secs};
use crate::{
    control::proto::{
        ConnView, DestView, Info, RateView, Request, Response, ServiceView, StatsView,
    },
    dataplane::{MapsRead, ip_from_words},
    model::{Dest, Model, Protocol, ServiceId},
};

/// Which estimator: a service (by index) or a real server (by id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EstKey {
    Service(u32),
    Dest(u32),
}

/// The director as of its last change.
#[derive(Clone, Debug, Default)]
pub struct DirectorView {
    pub model: Arc<Model>,
    pub rates: Arc<HashMap<EstKey, RateView>>,
    pub dropped_embryonic: u64,
    pub conn_table_size: u32,
}

/// The answer to `req` if it only reads; None for a change (the director's to make).
pub fn answer_read(view: &DirectorView, maps: &dyn MapsRead, req: &Request) -> Option<Response> {
    Some(match req {
        Request::Info => Response::Info(Info {
            ipvs_version: crate::IPVS_VERSION.to_owned(),
            rvs_version: crate::VERSION.to_owned(),
            conn_table_size: view.conn_table_size,
        }),
        Request::ListServices { service } => services(view, maps, *service),
        Request::ListConns => conns(view, maps),
        Request::Counters => counters(view, maps),
        Request::GetTimeouts => Response::Timeouts {
            timeouts: view.model.timeouts,
        },
        Request::ListMarkRules => Response::MarkRules {
            rules: view.model.mark_rules.clone(),
        },
        // The VRRP task's own published status, not the director's.
        Request::Vrrp => super::vrrp::status_response(),
        Request::Bgp => Response::Bgp {
            status: super::bgp::status::current(),
        },
        Request::L7 => Response::L7 {
            status: super::l7::status::current(),
        },
        Request::SyncStatus => Response::Sync {
            status: Box::new(super::sync::status::current()),
        },
        Request::Cluster => Response::Cluster {
            status: super::cluster::status::current().map(Box::new),
        },
        // Not the model's: the drain is a watch the BGP speaker follows.
        Request::Drain { action } => Response::Drain {
            status: super::drain::apply(*action, maps),
        },
        _ => return None,
    })
}

pub fn stats_view(s: Stats) -> StatsView {
    StatsView {
        conns: s.conns,
        inpkts: s.inpkts,
        outpkts: s.outpkts,
        inbytes: s.inbytes,
        outbytes: s.outbytes,
    }
}

pub fn services(dir: &DirectorView, maps: &dyn MapsRead, only: Option<ServiceId>) -> Response {
    if let Some(id) = &only
        && dir.model.service(id).is_none()
    {
        return Response::Error {
            errno: libc::ESRCH,
            detail: format!("service {id} does not exist"),
        };
    }
    let rate = |k: EstKey| dir.rates.get(&k).copied().unwrap_or_default();
    let services = dir
        .model
        .services
        .iter()
        .filter(|s| only.is_none_or(|id| s.id == id))
        .map(|s| {
            let stats = stats_view(maps.service_stats(s.index));
            ServiceView {
                service: s.id,
                config: s.config.clone(),
                stats,
                rate: rate(EstKey::Service(s.index)),
                dests: s
                    .dests
                    .iter()
                    .map(|d| dest_view(maps, d, rate(EstKey::Dest(d.id))))
                    .collect(),
            }
        })
        .collect();
    Response::Services { services }
}

fn dest_view(maps: &dyn MapsRead, d: &Dest, rate: RateView) -> DestView {
    let (active, inactive, persist) = maps.dest_conn_counts(d.id);
    let stats = stats_view(maps.dest_stats(d.id));
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

pub fn conns(dir: &DirectorView, maps: &dyn MapsRead) -> Response {
    let now = monotonic_ns();
    // Looked up once per flow: indexed first, so a walk of millions of flows stays linear.
    let dests: HashMap<u32, crate::model::DestAddr> =
        dir.model.every_dest().map(|d| (d.id, d.addr)).collect();
    let timeouts: HashMap<u32, u64> = dir
        .model
        .services
        .iter()
        .map(|s| (s.index, s.config.timeout as u64))
        .collect();
    let dest_of = |id: u32| dests.get(&id).copied();
    let persist_timeout = |index: u32| timeouts.get(&index).copied().unwrap_or(0);
    let mut conns = Vec::new();
    maps.for_each_conn(&mut |key, conn| {
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
        // The remaining time rounded down, as the kernel shows it (a new SYN's 60 s: 00:59).
        let idle_ns = now.saturating_sub(conn.last_seen_ns);
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
            // A template of a port-zero service has no port of its own; a flow shows the port it
            // reaches its server on (the client's, for a server without a port), as the kernel's.
            dest_port: if template {
                if key.vport == 0 { 0 } else { dest.port }
            } else {
                u16::from_be(key.server_port(dest.port.to_be(), conn.flags))
            },
            state: state.to_owned(),
            expires: (ttl * 1_000_000_000).saturating_sub(idle_ns) / 1_000_000_000,
            pe_name: None,
            pe_data: None,
        });
    });
    Response::Conns { conns }
}

pub fn counters(dir: &DirectorView, maps: &dyn MapsRead) -> Response {
    let values = maps.event_counters();
    let mut counters: Vec<(String, u64)> = COUNTER_NAMES
        .iter()
        .enumerate()
        .map(|(i, n)| ((*n).to_owned(), values.get(i).copied().unwrap_or(0)))
        .collect();
    counters.push(("drop_embryonic".to_owned(), dir.dropped_embryonic));
    Response::Counters { counters }
}
