//! `/metrics`: OpenMetrics text made with prometheus-client. node_exporter's IPVS metrics under
//! its names and labels (so dashboards built for node_exporter work unchanged), and rvs's own:
//! per-service and per-server counters, the data plane's drops by reason, the connection table,
//! VRRP, connection sync and the checkers' health. No client address is ever a label.
//!
//! Every value is read at scrape time from what rvsadm reads (the director's view and the
//! maps), into a registry made for that scrape: the counters are the data plane's, not counted
//! here.

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::{
    control::proto::{ServiceView, StatsView},
    daemon::{cluster::ClusterStatus, health::ServerHealth, sync::SyncStatus, vrrp::VrrpStatus},
    model::ServiceId,
};

/// What one scrape shows.
pub struct Snapshot {
    pub services: Vec<ServiceView>,
    /// The data plane's event counters, by name (`rvsadm --dataplane`).
    pub counters: Vec<(String, u64)>,
    pub conn_table_size: u32,
    pub vrrp: VrrpStatus,
    pub sync: SyncStatus,
    /// None: no BGP speaker runs.
    pub bgp: Option<crate::daemon::bgp::BgpStatus>,
    /// None: no L7 task runs.
    pub l7: Option<crate::daemon::l7::L7Status>,
    /// None: no `rvs_cluster` runs.
    pub cluster: Option<ClusterStatus>,
    /// None: no checkers run.
    pub health: Option<Vec<ServerHealth>>,
}

/// node_exporter's labels of a real server.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Backend {
    local_address: String,
    local_port: String,
    remote_address: String,
    remote_port: String,
    proto: String,
    local_mark: String,
}

/// The same, for a service.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Service {
    local_address: String,
    local_port: String,
    proto: String,
    local_mark: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Peer {
    peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Event {
    event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Neighbor {
    neighbor: String,
    remote_as: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NeighborEvent {
    neighbor: String,
    event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Prefix {
    prefix: String,
}

/// Labels of the L7 metrics: the server (`ADDR:PORT`) and, as they apply, a rule, pool, real
/// server or refusal status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct L7Labels {
    server: String,
    rule: String,
    pool: String,
    backend: String,
    status: String,
}

/// Layer-7 dispatch: requests and refusals per server, hits per rule, requests and 503s per
/// pool, requests, failures and health per real server.
fn l7_metrics(reg: &mut Registry, l7: &crate::daemon::l7::L7Status) {
    let family = |reg: &mut Registry, name: &str, help: &str| {
        let f: Family<L7Labels, Counter> = Family::default();
        reg.register(name, help, f.clone());
        f
    };
    let requests = family(
        reg,
        "rvs_l7_requests",
        "Requests (tls mode: connections) read by the L7 server",
    );
    let connections = family(reg, "rvs_l7_connections", "Client connections accepted");
    let refused = family(
        reg,
        "rvs_l7_refused",
        "Requests refused before routing, by the status answered",
    );
    let unrouted = family(
        reg,
        "rvs_l7_unrouted",
        "Requests no rule and no default pool took (404)",
    );
    let rules = family(
        reg,
        "rvs_l7_rule_requests",
        "Requests each rule (or the default pool) took",
    );
    let pools = family(reg, "rvs_l7_pool_requests", "Requests routed to the pool");
    let unavailable = family(
        reg,
        "rvs_l7_pool_unavailable",
        "Requests answered 503: no usable real server, no sorry server",
    );
    let sorry = family(
        reg,
        "rvs_l7_pool_sorry",
        "Requests sent to the pool's sorry server",
    );
    let backend_requests = family(
        reg,
        "rvs_l7_backend_requests",
        "Requests sent to the real server",
    );
    let failures = family(
        reg,
        "rvs_l7_backend_failures",
        "Requests the real server failed (no connection, closed, bad or late answer)",
    );
    let up: Family<L7Labels, Gauge> = Family::default();
    reg.register(
        "rvs_l7_backend_up",
        "1 while the real server's checkers pass",
        up.clone(),
    );
    let active: Family<L7Labels, Gauge> = Family::default();
    reg.register(
        "rvs_l7_backend_active",
        "Requests in flight on the real server",
        active.clone(),
    );
    for s in &l7.servers {
        let l = |rule: &str, pool: &str, backend: &str, status: &str| L7Labels {
            server: s.address.clone(),
            rule: rule.to_owned(),
            pool: pool.to_owned(),
            backend: backend.to_owned(),
            status: status.to_owned(),
        };
        requests
            .get_or_create(&l("", "", "", ""))
            .inc_by(s.requests);
        connections
            .get_or_create(&l("", "", "", ""))
            .inc_by(s.connections);
        unrouted
            .get_or_create(&l("", "", "", ""))
            .inc_by(s.unrouted);
        for (status, n) in &s.refused {
            refused
                .get_or_create(&l("", "", "", &status.to_string()))
                .inc_by(*n);
        }
        for r in s.rules.iter().chain(&s.default_pool) {
            rules
                .get_or_create(&l(&r.rule, &r.pool, "", ""))
                .inc_by(r.hits);
        }
        for p in &s.pools {
            pools
                .get_or_create(&l("", &p.name, "", ""))
                .inc_by(p.requests);
            unavailable
                .get_or_create(&l("", &p.name, "", ""))
                .inc_by(p.unavailable);
            sorry
                .get_or_create(&l("", &p.name, "", ""))
                .inc_by(p.to_sorry);
            for b in &p.servers {
                let labels = l("", &p.name, &b.address, "");
                backend_requests.get_or_create(&labels).inc_by(b.requests);
                failures.get_or_create(&labels).inc_by(b.failures);
                up.get_or_create(&labels).set(b.up as i64);
                active.get_or_create(&labels).set(b.active as i64);
            }
        }
    }
}

/// The BGP speaker: each session up or not, each prefix announced or not, and the counters.
fn bgp_metrics(reg: &mut Registry, b: &crate::daemon::bgp::BgpStatus) {
    let up: Family<Neighbor, Gauge> = Family::default();
    let events: Family<NeighborEvent, Counter> = Family::default();
    let announced: Family<Prefix, Gauge> = Family::default();
    reg.register(
        "rvs_bgp_session_established",
        "1 while the BGP session with the neighbor is Established",
        up.clone(),
    );
    reg.register(
        "rvs_bgp_events",
        "BGP messages in and out, UPDATEs and NOTIFICATIONs sent, malformed messages, sessions established",
        events.clone(),
    );
    reg.register(
        "rvs_bgp_prefix_announced",
        "1 while the prefix is announced (its services up)",
        announced.clone(),
    );
    for n in &b.neighbors {
        up.get_or_create(&Neighbor {
            neighbor: n.address.to_string(),
            remote_as: n.remote_as.to_string(),
        })
        .set((n.state == crate::daemon::bgp::session::State::Established) as i64);
        for (event, v) in [
            ("messages_in", n.messages_in),
            ("messages_out", n.messages_out),
            ("updates_out", n.updates_out),
            ("notifications_in", n.notifications_in),
            ("notifications_out", n.notifications_out),
            ("malformed", n.malformed),
            ("established", n.established),
        ] {
            events
                .get_or_create(&NeighborEvent {
                    neighbor: n.address.to_string(),
                    event: event.to_owned(),
                })
                .inc_by(v);
        }
    }
    for p in &b.prefixes {
        announced
            .get_or_create(&Prefix {
                prefix: p.prefix.clone(),
            })
            .set(p.announced as i64);
    }
    let refused = Counter::<u64>::default();
    refused.inc_by(b.refused);
    reg.register(
        "rvs_bgp_refused_connections",
        "Connections to the BGP listener from addresses that are not passive neighbors",
        refused,
    );
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Instance {
    instance: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceState {
    instance: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceEvent {
    instance: String,
    event: String,
}

fn service_labels(id: &ServiceId) -> Service {
    match id {
        ServiceId::Inet { proto, addr, port } => Service {
            local_address: addr.to_string(),
            local_port: port.to_string(),
            proto: proto.name().to_owned(),
            local_mark: String::new(),
        },
        // As node_exporter reads /proc/net/ip_vs: no address, port 0, protocol FWM.
        ServiceId::Fwmark { mark, .. } => Service {
            local_address: String::new(),
            local_port: "0".to_owned(),
            proto: "FWM".to_owned(),
            local_mark: mark.to_string(),
        },
    }
}

fn backend_labels(s: &Service, addr: std::net::IpAddr, port: u16) -> Backend {
    Backend {
        local_address: s.local_address.clone(),
        local_port: s.local_port.clone(),
        remote_address: addr.to_string(),
        remote_port: port.to_string(),
        proto: s.proto.clone(),
        local_mark: s.local_mark.clone(),
    }
}

/// Five counter families of [`StatsView`], registered under `prefix`.
struct StatsFamilies<
    L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
> {
    conns: Family<L, Counter>,
    inpkts: Family<L, Counter>,
    outpkts: Family<L, Counter>,
    inbytes: Family<L, Counter>,
    outbytes: Family<L, Counter>,
}

impl<L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static>
    StatsFamilies<L>
{
    fn register(reg: &mut Registry, prefix: &str, what: &str) -> Self {
        let f = StatsFamilies {
            conns: Family::default(),
            inpkts: Family::default(),
            outpkts: Family::default(),
            inbytes: Family::default(),
            outbytes: Family::default(),
        };
        let items = [
            ("connections", "connections", &f.conns),
            ("incoming_packets", "incoming packets", &f.inpkts),
            ("outgoing_packets", "outgoing packets", &f.outpkts),
            ("incoming_bytes", "incoming bytes", &f.inbytes),
            ("outgoing_bytes", "outgoing bytes", &f.outbytes),
        ];
        for (name, help, fam) in items {
            reg.register(
                format!("{prefix}_{name}"),
                format!("The total number of {help} {what}"),
                fam.clone(),
            );
        }
        f
    }

    fn add(&self, l: &L, s: &StatsView) {
        self.conns.get_or_create(l).inc_by(s.conns);
        self.inpkts.get_or_create(l).inc_by(s.inpkts);
        self.outpkts.get_or_create(l).inc_by(s.outpkts);
        self.inbytes.get_or_create(l).inc_by(s.inbytes);
        self.outbytes.get_or_create(l).inc_by(s.outbytes);
    }
}

/// The OpenMetrics exposition of `snap`.
pub fn render(snap: &Snapshot) -> String {
    let mut reg = Registry::default();

    // node_exporter's IPVS collector: totals without labels, per-backend gauges.
    let active: Family<Backend, Gauge> = Family::default();
    let inactive: Family<Backend, Gauge> = Family::default();
    let weight: Family<Backend, Gauge> = Family::default();
    reg.register(
        "node_ipvs_backend_connections_active",
        "The current active connections by local and remote address",
        active.clone(),
    );
    reg.register(
        "node_ipvs_backend_connections_inactive",
        "The current inactive connections by local and remote address",
        inactive.clone(),
    );
    reg.register(
        "node_ipvs_backend_weight",
        "The current backend weight by local and remote address",
        weight.clone(),
    );
    let per_service = StatsFamilies::<Service>::register(&mut reg, "rvs_service", "of the service");
    let per_backend =
        StatsFamilies::<Backend>::register(&mut reg, "rvs_backend", "of the real server");

    let mut all = StatsView::default();
    let mut flows: i64 = 0;
    for s in &snap.services {
        let sl = service_labels(&s.service);
        all.conns += s.stats.conns;
        all.inpkts += s.stats.inpkts;
        all.outpkts += s.stats.outpkts;
        all.inbytes += s.stats.inbytes;
        all.outbytes += s.stats.outbytes;
        per_service.add(&sl, &s.stats);
        for d in &s.dests {
            let bl = backend_labels(&sl, d.dest.addr, d.dest.port);
            active.get_or_create(&bl).set(d.active_conns as i64);
            inactive.get_or_create(&bl).set(d.inactive_conns as i64);
            weight.get_or_create(&bl).set(d.config.weight as i64);
            per_backend.add(&bl, &d.stats);
            flows += (d.active_conns + d.inactive_conns + d.persist_conns) as i64;
        }
    }
    for (name, help, v) in [
        ("connections", "connections", all.conns),
        ("incoming_packets", "incoming packets", all.inpkts),
        ("outgoing_packets", "outgoing packets", all.outpkts),
        ("incoming_bytes", "incoming bytes", all.inbytes),
        ("outgoing_bytes", "outgoing bytes", all.outbytes),
    ] {
        let c = Counter::<u64>::default();
        c.inc_by(v);
        reg.register(
            format!("node_ipvs_{name}"),
            format!("The total number of {help} made"),
            c,
        );
    }

    // The data plane.
    let drops: Family<Reason, Counter> = Family::default();
    let events: Family<Event, Counter> = Family::default();
    reg.register(
        "rvs_dataplane_drops",
        "Packets the XDP director dropped, by reason",
        drops.clone(),
    );
    reg.register(
        "rvs_dataplane_events",
        "The XDP director's other events (forwarded, passed to the kernel, ...)",
        events.clone(),
    );
    for (name, v) in &snap.counters {
        match name.strip_prefix("drop_") {
            Some(reason) => drops
                .get_or_create(&Reason {
                    reason: reason.to_owned(),
                })
                .inc_by(*v),
            None => events
                .get_or_create(&Event {
                    event: name.clone(),
                })
                .inc_by(*v),
        };
    }
    let size = Gauge::<i64>::default();
    size.set(snap.conn_table_size as i64);
    reg.register(
        "rvs_conn_table_size",
        "Capacity of the connection table (flows)",
        size,
    );
    let used = Gauge::<i64>::default();
    used.set(flows);
    reg.register(
        "rvs_conn_table_flows",
        "Flows and persistence templates held for the real servers in the table",
        used,
    );

    // VRRP.
    let state: Family<InstanceState, Gauge> = Family::default();
    let prio: Family<Instance, Gauge> = Family::default();
    let vevents: Family<InstanceEvent, Counter> = Family::default();
    reg.register(
        "rvs_vrrp_state",
        "1 for the VRRP instance's current state, 0 for the others",
        state.clone(),
    );
    reg.register(
        "rvs_vrrp_effective_priority",
        "The VRRP instance's priority after tracking",
        prio.clone(),
    );
    reg.register(
        "rvs_vrrp_events",
        "VRRP adverts sent and received, transitions to MASTER and rejected packets by reason",
        vevents.clone(),
    );
    for i in &snap.vrrp.instances {
        for s in ["INIT", "BACKUP", "MASTER", "FAULT"] {
            state
                .get_or_create(&InstanceState {
                    instance: i.name.clone(),
                    state: s.to_owned(),
                })
                .set((i.state.name() == s) as i64);
        }
        prio.get_or_create(&Instance {
            instance: i.name.clone(),
        })
        .set(i.effective_priority as i64);
        for (event, v) in &i.counters {
            vevents
                .get_or_create(&InstanceEvent {
                    instance: i.name.clone(),
                    event: event.clone(),
                })
                .inc_by(*v);
        }
    }

    if let Some(b) = &snap.bgp {
        bgp_metrics(&mut reg, b);
    }
    if let Some(l) = &snap.l7 {
        l7_metrics(&mut reg, l);
    }

    // Connection sync.
    let running = Gauge::<i64>::default();
    running.set(snap.sync.daemon.is_some() as i64);
    reg.register(
        "rvs_sync_daemon_running",
        "1 when connection sync runs",
        running,
    );
    for (name, help, v) in [
        (
            "rvs_sync_sent_messages",
            "Sync messages sent",
            snap.sync.sent_msgs,
        ),
        (
            "rvs_sync_sent_connections",
            "Connections sent in sync messages",
            snap.sync.sent_conns,
        ),
        (
            "rvs_sync_received_messages",
            "Sync messages received",
            snap.sync.recv_msgs,
        ),
        (
            "rvs_sync_received_connections",
            "Connections received in sync messages",
            snap.sync.recv_conns,
        ),
    ] {
        let c = Counter::<u64>::default();
        c.inc_by(v);
        reg.register(name, help, c);
    }
    let sdrops: Family<Reason, Counter> = Family::default();
    reg.register(
        "rvs_sync_dropped",
        "Received sync messages or connections dropped, by reason",
        sdrops.clone(),
    );
    for (reason, v) in &snap.sync.dropped {
        sdrops
            .get_or_create(&Reason {
                reason: reason.clone(),
            })
            .inc_by(*v);
    }

    // Cluster balancing.
    if let Some(c) = &snap.cluster {
        cluster_metrics(&mut reg, c);
    }

    // Health checks.
    let checkers = Gauge::<i64>::default();
    checkers.set(snap.health.is_some() as i64);
    reg.register(
        "rvs_health_checkers",
        "1 when health checkers run (keepalived.conf), 0 when not",
        checkers,
    );
    let up: Family<Backend, Gauge> = Family::default();
    let transitions: Family<Backend, Counter> = Family::default();
    reg.register(
        "rvs_health_up",
        "1 when every checker of the real server passes, 0 when one fails",
        up.clone(),
    );
    reg.register(
        "rvs_health_transitions",
        "Changes of a real server's health since rvsd started",
        transitions.clone(),
    );
    for h in snap.health.iter().flatten() {
        let bl = backend_labels(&service_labels(&h.service), h.dest.addr, h.dest.port);
        up.get_or_create(&bl).set(h.up as i64);
        transitions.get_or_create(&bl).inc_by(h.transitions);
    }

    let mut out = String::new();
    encode(&mut out, &reg).expect("writing to a String");
    out
}

/// `rvs_cluster`'s loads (as ratios: 1 is a cluster at capacity), decisions, forwarded
/// connections and dropped reports.
fn cluster_metrics(reg: &mut Registry, c: &ClusterStatus) {
    let ratio = |l: u32| f64::from(l) / 1000.0;
    let local = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    if let Some(l) = c.local_load {
        local.set(ratio(l));
        reg.register(
            "rvs_cluster_local_load",
            "This cluster's load: active connections over weight x capacity_per_weight",
            local,
        );
    }
    let load: Family<Peer, Gauge<f64, std::sync::atomic::AtomicU64>> = Family::default();
    let forwarding: Family<Peer, Gauge> = Family::default();
    let forwarded: Family<Peer, Counter> = Family::default();
    let total: Family<Peer, Counter> = Family::default();
    reg.register(
        "rvs_cluster_peer_load",
        "The load a peer cluster last reported",
        load.clone(),
    );
    reg.register(
        "rvs_cluster_forwarding",
        "1 while new connections are forwarded to the peer cluster",
        forwarding.clone(),
    );
    reg.register(
        "rvs_cluster_forwarded_connections",
        "Connections scheduled to the peer's director (tunnel)",
        forwarded.clone(),
    );
    reg.register(
        "rvs_cluster_forwardable_connections",
        "Connections of the services that may be forwarded to the peer",
        total.clone(),
    );
    for p in &c.peers {
        let l = Peer {
            peer: p.name.clone(),
        };
        if let Some(v) = p.load.filter(|_| !p.stale) {
            load.get_or_create(&l).set(ratio(v));
        }
        forwarding.get_or_create(&l).set(p.forwarding as i64);
        forwarded.get_or_create(&l).inc_by(p.forwarded_conns);
        total.get_or_create(&l).inc_by(p.total_conns);
    }
    for (name, help, v) in [
        (
            "rvs_cluster_reports_sent",
            "Load reports sent to peers",
            c.reports_sent,
        ),
        (
            "rvs_cluster_reports_received",
            "Load reports accepted from peers",
            c.reports_received,
        ),
    ] {
        let counter = Counter::<u64>::default();
        counter.inc_by(v);
        reg.register(name, help, counter);
    }
    let drops: Family<Reason, Counter> = Family::default();
    reg.register(
        "rvs_cluster_reports_dropped",
        "Received load reports dropped, by reason",
        drops.clone(),
    );
    for (reason, v) in &c.dropped {
        drops
            .get_or_create(&Reason {
                reason: reason.clone(),
            })
            .inc_by(*v);
    }
}

/// The content type of [`render`]'s output.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of [`to_prometheus_text`]'s.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The same exposition in Prometheus's older text format (0.0.4), for scrapers and tools that
/// do not ask for OpenMetrics (promtool 2.42's `check metrics` reads only this one). The two
/// differ in what concerns us only in that a counter's HELP and TYPE lines name the
/// `_total` sample itself, and in the `# UNIT` and `# EOF` lines; prometheus-client writes
/// only OpenMetrics, so this small rewrite is done by hand.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let lines: Vec<&str> = openmetrics.lines().collect();
    let mut out = String::with_capacity(openmetrics.len() + 1024);
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line == "# EOF" || line.starts_with("# UNIT ") {
            i += 1;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or("");
            let counter = lines
                .get(i + 1)
                .is_some_and(|t| *t == format!("# TYPE {name} counter"));
            if counter && !name.ends_with("_total") {
                out.push_str(&format!("# HELP {name}_total{}\n", &rest[name.len()..]));
                out.push_str(&format!("# TYPE {name}_total counter\n"));
                i += 2;
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        control::proto::{DestView, RateView},
        model::{DestAddr, DestConfig, Protocol, ServiceConfig},
    };

    fn snapshot() -> Snapshot {
        let service = ServiceId::Inet {
            proto: Protocol::Tcp,
            addr: "198.18.0.100".parse().unwrap(),
            port: 80,
        };
        let stats = StatsView {
            conns: 3,
            inpkts: 30,
            outpkts: 0,
            inbytes: 3000,
            outbytes: 0,
        };
        Snapshot {
            services: vec![ServiceView {
                service,
                config: ServiceConfig::new("wrr", false),
                stats,
                rate: RateView::default(),
                dests: vec![DestView {
                    dest: DestAddr {
                        addr: "198.19.0.12".parse().unwrap(),
                        port: 8080,
                    },
                    config: DestConfig {
                        weight: 3,
                        ..DestConfig::default()
                    },
                    active_conns: 2,
                    inactive_conns: 1,
                    persist_conns: 0,
                    stats,
                    rate: RateView::default(),
                }],
            }],
            counters: vec![("forwarded".into(), 30), ("drop_ttl".into(), 4)],
            conn_table_size: 65536,
            vrrp: VrrpStatus::default(),
            sync: SyncStatus::default(),
            bgp: None,
            l7: None,
            cluster: None,
            health: None,
        }
    }

    #[test]
    fn node_exporter_names_and_labels() {
        let text = render(&snapshot());
        assert!(text.ends_with("# EOF\n"));
        for line in [
            "node_ipvs_connections_total 3",
            "node_ipvs_incoming_packets_total 30",
            "node_ipvs_incoming_bytes_total 3000",
            "node_ipvs_backend_weight{local_address=\"198.18.0.100\",local_port=\"80\",remote_address=\"198.19.0.12\",remote_port=\"8080\",proto=\"TCP\",local_mark=\"\"} 3",
            "node_ipvs_backend_connections_active{local_address=\"198.18.0.100\",local_port=\"80\",remote_address=\"198.19.0.12\",remote_port=\"8080\",proto=\"TCP\",local_mark=\"\"} 2",
            "rvs_dataplane_drops_total{reason=\"ttl\"} 4",
            "rvs_dataplane_events_total{event=\"forwarded\"} 30",
            "rvs_conn_table_flows 3",
            "rvs_health_checkers 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }

    #[test]
    fn l7_rules_pools_and_servers() {
        use crate::daemon::l7::status::{
            BackendStatus, L7Status, PoolStatus, RuleStatus, ServerStatus,
        };
        let mut snap = snapshot();
        snap.l7 = Some(L7Status {
            servers: vec![ServerStatus {
                address: "198.18.0.100:80".into(),
                mode: "http".into(),
                connections: 5,
                active_connections: 1,
                requests: 9,
                rate: 4,
                unrouted: 1,
                refused: vec![(400, 2), (431, 1)],
                bytes_in: 0,
                bytes_out: 0,
                rules: vec![RuleStatus {
                    rule: "host api.example.com".into(),
                    pool: "api".into(),
                    hits: 6,
                    rate: 3,
                }],
                default_pool: Some(RuleStatus {
                    rule: "default".into(),
                    pool: "web".into(),
                    hits: 2,
                    rate: 1,
                }),
                pools: vec![PoolStatus {
                    name: "api".into(),
                    scheduler: "rr".into(),
                    persistence: "none".into(),
                    forward_for: "proxy_v2".into(),
                    quorum: true,
                    requests: 6,
                    rate: 3,
                    unavailable: 1,
                    to_sorry: 0,
                    servers: vec![BackendStatus {
                        address: "198.19.0.12:8080".into(),
                        up: true,
                        weight: 1,
                        active: 0,
                        requests: 5,
                        rate: 2,
                        failures: 1,
                        idle_connections: 2,
                    }],
                    sorry_server: None,
                }],
            }],
        });
        let text = render(&snap);
        for line in [
            "rvs_l7_requests_total{server=\"198.18.0.100:80\",rule=\"\",pool=\"\",backend=\"\",status=\"\"} 9",
            "rvs_l7_refused_total{server=\"198.18.0.100:80\",rule=\"\",pool=\"\",backend=\"\",status=\"431\"} 1",
            "rvs_l7_rule_requests_total{server=\"198.18.0.100:80\",rule=\"host api.example.com\",pool=\"api\",backend=\"\",status=\"\"} 6",
            "rvs_l7_rule_requests_total{server=\"198.18.0.100:80\",rule=\"default\",pool=\"web\",backend=\"\",status=\"\"} 2",
            "rvs_l7_pool_unavailable_total{server=\"198.18.0.100:80\",rule=\"\",pool=\"api\",backend=\"\",status=\"\"} 1",
            "rvs_l7_backend_failures_total{server=\"198.18.0.100:80\",rule=\"\",pool=\"api\",backend=\"198.19.0.12:8080\",status=\"\"} 1",
            "rvs_l7_backend_up{server=\"198.18.0.100:80\",rule=\"\",pool=\"api\",backend=\"198.19.0.12:8080\",status=\"\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }

    /// The measure: `/metrics` for 100 services of 10 real servers each.
    #[test]
    fn renders_100_services_of_10_real_servers() {
        let one = snapshot();
        let mut snap = snapshot();
        snap.services = (0..100u16)
            .map(|i| {
                let mut s = one.services[0].clone();
                s.service = ServiceId::Inet {
                    proto: Protocol::Tcp,
                    addr: "198.18.0.100".parse().unwrap(),
                    port: 1000 + i,
                };
                s.dests = (0..10u8)
                    .map(|j| {
                        let mut d = one.services[0].dests[0].clone();
                        d.dest.addr = std::net::IpAddr::from([198, 19, 1, j]);
                        d
                    })
                    .collect();
                s
            })
            .collect();
        let start = std::time::Instant::now();
        let text = to_prometheus_text(&render(&snap));
        let took = start.elapsed();
        eprintln!("/metrics for 100 x 10: {} bytes in {took:?}", text.len());
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("node_ipvs_backend_weight{"))
                .count(),
            1000
        );
        // Not a speed check (the benchmark measures it: `rvs-bench --only monitor`): only that
        // it did not hang.
        assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    }

    #[test]
    fn bgp_sessions_and_prefixes() {
        use crate::daemon::bgp::{
            BgpStatus,
            session::State,
            status::{NeighborStatus, PrefixStatus},
        };
        let mut snap = snapshot();
        snap.bgp = Some(BgpStatus {
            router_id: "198.18.1.1".into(),
            local_as: 65005,
            neighbors: vec![NeighborStatus {
                address: "198.18.1.254".parse().unwrap(),
                remote_as: 65001,
                passive: false,
                state: State::Established,
                since_unix_ms: 0,
                last_error: None,
                hold_time: Some(9),
                graceful_restart: true,
                announced: vec!["198.19.4.0/24".into()],
                established: 1,
                messages_in: 5,
                messages_out: 7,
                updates_out: 2,
                notifications_in: 0,
                notifications_out: 0,
                malformed: 1,
            }],
            prefixes: vec![PrefixStatus {
                prefix: "198.19.4.0/24".into(),
                announced: true,
                why: "announced".into(),
                since_unix_ms: 0,
            }],
            refused: 2,
        });
        let text = to_prometheus_text(&render(&snap));
        for line in [
            "rvs_bgp_session_established{neighbor=\"198.18.1.254\",remote_as=\"65001\"} 1",
            "rvs_bgp_events_total{neighbor=\"198.18.1.254\",event=\"malformed\"} 1",
            "rvs_bgp_prefix_announced{prefix=\"198.19.4.0/24\"} 1",
            "rvs_bgp_refused_connections_total 2",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }

    #[test]
    fn cluster_loads_decisions_and_drops() {
        use crate::daemon::cluster::{balance::Reason as Why, status::PeerStatus};
        let mut snap = snapshot();
        let mut c = ClusterStatus {
            name: "idc1".into(),
            local_load: Some(1250),
            reports_sent: 5,
            peers: vec![PeerStatus {
                name: "idc2".into(),
                address: "198.18.0.3:7240".parse().unwrap(),
                director: "198.18.0.3".parse().unwrap(),
                weight: 1,
                load: Some(300),
                report_unix_ms: Some(1),
                stale: false,
                forwarding: true,
                reason: Why::Overloaded,
                since_unix_ms: 1,
                services: Vec::new(),
                forwarded_conns: 4,
                total_conns: 10,
                forwarded_cps: 0,
                total_cps: 0,
            }],
            ..ClusterStatus::default()
        };
        c.drop("bad_mac");
        snap.cluster = Some(c);
        let text = render(&snap);
        for line in [
            "rvs_cluster_local_load 1.25",
            "rvs_cluster_peer_load{peer=\"idc2\"} 0.3",
            "rvs_cluster_forwarding{peer=\"idc2\"} 1",
            "rvs_cluster_forwarded_connections_total{peer=\"idc2\"} 4",
            "rvs_cluster_forwardable_connections_total{peer=\"idc2\"} 10",
            "rvs_cluster_reports_sent_total 5",
            "rvs_cluster_reports_dropped_total{reason=\"bad_mac\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        assert!(!render(&snapshot()).contains("rvs_cluster"));
    }

    #[test]
    fn prometheus_text_names_counters_by_their_sample() {
        let text = to_prometheus_text(&render(&snapshot()));
        assert!(text.contains("# TYPE node_ipvs_connections_total counter\n"));
        assert!(text.contains("# HELP node_ipvs_connections_total The total"));
        assert!(text.contains("# TYPE node_ipvs_backend_weight gauge\n"));
        assert!(!text.contains("# EOF"));
    }
}
