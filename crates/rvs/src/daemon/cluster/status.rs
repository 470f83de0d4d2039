//! What the cluster task shows of itself: the loads seen (local, and each peer's with the age of
//! its report), the decision per peer and since when, the share of new connections forwarded,
//! and the reports dropped by reason. Published for the control socket (`rvsadm --cluster`) and
//! the monitor, never read from the director.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    sync::{Mutex, OnceLock},
};

use serde::{Deserialize, Serialize};

use super::{balance::Reason, show_load};
use crate::model::ServiceId;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub name: String,
    pub listen: Option<SocketAddr>,
    pub period_ms: u64,
    pub capacity_per_weight: u32,
    pub start_above: u32,
    pub stop_at: u32,
    pub remote_below: u32,
    /// Thousandths; None: no capacity configured (no real server of weight above 0).
    pub local_load: Option<u32>,
    pub reports_sent: u64,
    pub send_errors: u64,
    pub reports_received: u64,
    /// Received datagrams dropped, by reason (`unknown_peer`, `bad_mac`, `replayed`, ...).
    pub dropped: BTreeMap<String, u64>,
    pub peers: Vec<PeerStatus>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub name: String,
    pub address: SocketAddr,
    pub director: IpAddr,
    pub weight: i32,
    /// Its last reported load, and when it came (this host's wall clock, Unix ms).
    pub load: Option<u32>,
    pub report_unix_ms: Option<u64>,
    /// The report is older than the stale limit (the load counts as unknown).
    pub stale: bool,
    pub forwarding: bool,
    pub reason: Reason,
    pub since_unix_ms: u64,
    /// The services whose new connections may go to it.
    pub services: Vec<ServiceId>,
    /// Connections scheduled to its tunnel destination, and to those services in all, from
    /// the counters (since they were last zeroed); and the same per second now.
    pub forwarded_conns: u64,
    pub total_conns: u64,
    pub forwarded_cps: u64,
    pub total_cps: u64,
}

impl ClusterStatus {
    pub fn drop(&mut self, reason: &str) {
        *self.dropped.entry(reason.to_owned()).or_default() += 1;
    }
}

static PUBLISHED: OnceLock<Mutex<Option<ClusterStatus>>> = OnceLock::new();

fn slot() -> &'static Mutex<Option<ClusterStatus>> {
    PUBLISHED.get_or_init(Default::default)
}

/// Makes `s` the status `rvsadm --cluster` reports.
pub fn publish(s: ClusterStatus) {
    *slot().lock().expect("cluster status") = Some(s);
}

/// The status last published; None when no `rvs_cluster` runs.
pub fn current() -> Option<ClusterStatus> {
    slot().lock().ok()?.clone()
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".to_owned()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

fn ago(ms: u64) -> String {
    format!("{}.{}s", ms / 1000, (ms % 1000) / 100)
}

fn load(l: Option<u32>) -> String {
    match l {
        Some(u32::MAX) => "overloaded (no capacity)".to_owned(),
        Some(l) => show_load(l),
        None => "unknown".to_owned(),
    }
}

/// `rvsadm --cluster` (rvs extension), at `now_unix_ms`.
pub fn render(s: Option<&ClusterStatus>, now_unix_ms: u64) -> String {
    let Some(s) = s else {
        return "No cluster balancing runs (rvsd's keepalived.conf has no rvs_cluster)\n"
            .to_owned();
    };
    let mut out = String::new();
    out.push_str(&format!(
        "cluster {} listen {} period {} capacity_per_weight {}\n",
        s.name,
        s.listen.map_or("-".to_owned(), |l| l.to_string()),
        ago(s.period_ms),
        s.capacity_per_weight
    ));
    out.push_str(&format!(
        "local load {} (start above {}, stop at {}, remote below {})\n",
        load(s.local_load),
        show_load(s.start_above),
        show_load(s.stop_at),
        show_load(s.remote_below)
    ));
    for p in &s.peers {
        out.push_str(&format!(
            "peer {} address {} director {} weight {}\n",
            p.name, p.address, p.director, p.weight
        ));
        let report = match p.report_unix_ms {
            Some(at) => format!(
                "load {} reported {} ago{}",
                load(p.load),
                ago(now_unix_ms.saturating_sub(at)),
                if p.stale { " (stale)" } else { "" }
            ),
            None => "load unknown (no report yet)".to_owned(),
        };
        out.push_str(&format!("  {report}\n"));
        out.push_str(&format!(
            "  forwarding {} since {} ago ({})\n",
            if p.forwarding { "yes" } else { "no" },
            ago(now_unix_ms.saturating_sub(p.since_unix_ms)),
            p.reason.describe()
        ));
        out.push_str(&format!(
            "  forwarded {} of {} connections ({}), now {} of {} conn/s ({})\n",
            p.forwarded_conns,
            p.total_conns,
            pct(p.forwarded_conns, p.total_conns),
            p.forwarded_cps,
            p.total_cps,
            pct(p.forwarded_cps, p.total_cps)
        ));
    }
    out.push_str(&format!(
        "reports sent {} (errors {}) received {}\n",
        s.reports_sent, s.send_errors, s.reports_received
    ));
    for (reason, n) in &s.dropped {
        out.push_str(&format!("dropped {reason} {n}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_loads_decisions_and_drops() {
        let mut s = ClusterStatus {
            name: "idc1".into(),
            listen: Some("198.18.0.2:7240".parse().unwrap()),
            period_ms: 1000,
            capacity_per_weight: 2,
            start_above: 1100,
            stop_at: 1000,
            remote_below: 700,
            local_load: Some(1500),
            reports_sent: 4,
            reports_received: 3,
            peers: vec![PeerStatus {
                name: "idc2".into(),
                address: "198.18.0.3:7240".parse().unwrap(),
                director: "198.18.0.3".parse().unwrap(),
                weight: 1,
                load: Some(250),
                report_unix_ms: Some(10_000),
                stale: false,
                forwarding: true,
                reason: Reason::Overloaded,
                since_unix_ms: 8_000,
                services: Vec::new(),
                forwarded_conns: 3,
                total_conns: 12,
                forwarded_cps: 1,
                total_cps: 4,
            }],
            ..ClusterStatus::default()
        };
        s.drop("bad_mac");
        s.drop("bad_mac");
        assert_eq!(
            render(Some(&s), 10_400),
            "cluster idc1 listen 198.18.0.2:7240 period 1.0s capacity_per_weight 2\n\
             local load 1.500 (start above 1.100, stop at 1.000, remote below 0.700)\n\
             peer idc2 address 198.18.0.3:7240 director 198.18.0.3 weight 1\n  \
             load 0.250 reported 0.4s ago\n  \
             forwarding yes since 2.4s ago (local load above start_above, remote below remote_below)\n  \
             forwarded 3 of 12 connections (25.0%), now 1 of 4 conn/s (25.0%)\n\
             reports sent 4 (errors 0) received 3\n\
             dropped bad_mac 2\n"
        );
        assert!(render(None, 0).starts_with("No cluster balancing runs"));
    }
}
