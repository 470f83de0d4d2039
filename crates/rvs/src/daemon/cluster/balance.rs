//! The decision to forward new connections to a peer cluster, as plain data with the time given
//! (a fake clock in tests): the seed's hysteresis, per peer.
//!
//! - Forwarding **starts** when the local load is above `start_above` (1.1) and the peer's last
//!   report, not stale, is below `remote_below` (0.7).
//! - It **stops** when the local load falls to `stop_at` (1.0) or below, when the peer's load
//!   reaches `remote_below`, or when the peer's report goes stale (older than
//!   [`STALE_PERIODS`] periods, or none ever came): a peer whose load is unknown is not sent
//!   anything new.
//! - Between `stop_at` and `start_above` the state stays as it is.
//!
//! Loads are thousandths (1000 = at capacity); `None` is a load that cannot be measured.

use std::net::IpAddr;

/// A report older than this many periods is stale.
pub const STALE_PERIODS: u64 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    pub start_above: u32,
    pub stop_at: u32,
    pub remote_below: u32,
    /// A report older than this (milliseconds) is unknown.
    pub stale_after_ms: u64,
}

/// Why the state is what it is, for the status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Nothing decided yet.
    Start,
    /// On: local above start_above, remote below remote_below.
    Overloaded,
    /// Off: the local load fell to stop_at.
    LocalRelieved,
    /// Off (or never on): the local load is not above start_above.
    LocalNotOverloaded,
    /// Off: the peer's load reached remote_below.
    RemoteBusy,
    /// Off: no recent report from the peer.
    RemoteUnknown,
}

impl Reason {
    pub fn describe(self) -> &'static str {
        match self {
            Reason::Start => "starting",
            Reason::Overloaded => "local load above start_above, remote below remote_below",
            Reason::LocalRelieved => "local load fell to stop_at",
            Reason::LocalNotOverloaded => "local load not above start_above",
            Reason::RemoteBusy => "remote load not below remote_below",
            Reason::RemoteUnknown => "no recent report from the peer",
        }
    }
}

/// One peer's side of the decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerBalance {
    pub forwarding: bool,
    pub reason: Reason,
    /// When `forwarding` last changed (or the decision began), in the caller's clock.
    pub since_ms: u64,
    /// The peer's last load and when it came, in the caller's clock.
    pub remote: Option<(u32, u64)>,
}

impl PeerBalance {
    pub fn new(now_ms: u64) -> PeerBalance {
        PeerBalance {
            forwarding: false,
            reason: Reason::Start,
            since_ms: now_ms,
            remote: None,
        }
    }

    pub fn report(&mut self, load: u32, now_ms: u64) {
        self.remote = Some((load, now_ms));
    }

    /// The peer's load if its report is recent.
    pub fn remote_load(&self, t: &Thresholds, now_ms: u64) -> Option<u32> {
        self.remote
            .filter(|(_, at)| now_ms.saturating_sub(*at) <= t.stale_after_ms)
            .map(|(l, _)| l)
    }

    /// Decides with the local load now; true when `forwarding` changed.
    pub fn decide(&mut self, t: &Thresholds, local: Option<u32>, now_ms: u64) -> bool {
        let remote = self.remote_load(t, now_ms);
        let (on, reason) = match (self.forwarding, local, remote) {
            (_, _, None) => (false, Reason::RemoteUnknown),
            (_, _, Some(r)) if r >= t.remote_below => (false, Reason::RemoteBusy),
            // A local load that cannot be measured changes nothing.
            (was, None, _) => (was, self.reason),
            (true, Some(l), _) if l <= t.stop_at => (false, Reason::LocalRelieved),
            (true, Some(_), _) => (true, Reason::Overloaded),
            (false, Some(l), _) if l > t.start_above => (true, Reason::Overloaded),
            (false, Some(_), _) => (false, Reason::LocalNotOverloaded),
        };
        let changed = on != self.forwarding;
        if changed || self.reason == Reason::Start {
            self.since_ms = now_ms;
        }
        self.forwarding = on;
        // A director relieved is also "not overloaded": the status goes on saying why it
        // stopped until something else is the reason.
        let keep =
            !on && self.reason == Reason::LocalRelieved && reason == Reason::LocalNotOverloaded;
        if !keep {
            self.reason = reason;
        }
        changed
    }
}

/// A cluster's load: the active connections of the real servers of `services` over their
/// capacity, Σ weight × `capacity_per_weight` over those of weight above 0, in thousandths,
/// leaving out the tunnel destinations in `remote` (the peers' directors). None when no service
/// has capacity (no real server of weight above 0): nothing can be taken, and no connection is
/// counted either; [`u32::MAX`] when connections are held without capacity.
pub fn local_load(
    services: &[crate::control::proto::ServiceView],
    only: &[crate::model::ServiceId],
    remote: &[IpAddr],
    capacity_per_weight: u32,
) -> Option<u32> {
    let mut active: u64 = 0;
    let mut capacity: u64 = 0;
    for s in services.iter().filter(|s| only.contains(&s.service)) {
        for d in &s.dests {
            if remote.contains(&d.dest.addr) && d.config.fwd == crate::model::FwdMethod::Tunnel {
                continue;
            }
            active += u64::from(d.active_conns);
            if d.config.weight > 0 {
                capacity += d.config.weight as u64 * u64::from(capacity_per_weight);
            }
        }
    }
    if capacity == 0 {
        return (active > 0).then_some(u32::MAX);
    }
    Some((active * 1000 / capacity).min(u64::from(u32::MAX)) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        control::proto::{DestView, RateView, ServiceView, StatsView},
        model::{DestAddr, DestConfig, FwdMethod, Protocol, ServiceConfig, ServiceId},
    };

    const T: Thresholds = Thresholds {
        start_above: 1100,
        stop_at: 1000,
        remote_below: 700,
        stale_after_ms: 3000,
    };

    #[test]
    fn the_seeds_hysteresis() {
        let mut p = PeerBalance::new(0);
        p.report(300, 0);
        // 1.05: between the thresholds, off stays off.
        assert!(!p.decide(&T, Some(1050), 100));
        assert_eq!(p.reason, Reason::LocalNotOverloaded);
        // 1.1 is not above 1.1.
        assert!(!p.decide(&T, Some(1100), 200));
        assert!(p.decide(&T, Some(1101), 300));
        assert!(p.forwarding);
        assert_eq!((p.reason, p.since_ms), (Reason::Overloaded, 300));
        // On stays on down to 1.0 (exclusive).
        assert!(!p.decide(&T, Some(1001), 400));
        assert!(p.forwarding);
        assert_eq!(p.since_ms, 300);
        assert!(p.decide(&T, Some(1000), 500));
        assert!(!p.forwarding);
        assert_eq!((p.reason, p.since_ms), (Reason::LocalRelieved, 500));
        // Still relieved while between the thresholds.
        assert!(!p.decide(&T, Some(1050), 600));
        assert_eq!((p.reason, p.since_ms), (Reason::LocalRelieved, 500));
        assert!(p.decide(&T, Some(2000), 700));
    }

    #[test]
    fn a_busy_remote_is_not_sent_anything_new() {
        let mut p = PeerBalance::new(0);
        p.report(700, 0);
        assert!(!p.decide(&T, Some(5000), 10));
        assert_eq!(p.reason, Reason::RemoteBusy);
        p.report(699, 20);
        assert!(p.decide(&T, Some(5000), 30));
        // The remote passes 0.7 while the local load is still high: off.
        p.report(800, 40);
        assert!(p.decide(&T, Some(5000), 50));
        assert_eq!(p.reason, Reason::RemoteBusy);
    }

    #[test]
    fn a_stale_or_missing_report_is_unknown() {
        let mut p = PeerBalance::new(0);
        assert!(!p.decide(&T, Some(5000), 10));
        assert_eq!(p.reason, Reason::RemoteUnknown);
        p.report(100, 1000);
        assert!(p.decide(&T, Some(5000), 1000));
        assert_eq!(p.remote_load(&T, 4000), Some(100));
        assert!(!p.decide(&T, Some(5000), 4000));
        assert_eq!(p.remote_load(&T, 4001), None);
        assert!(p.decide(&T, Some(5000), 4001));
        assert!(!p.forwarding);
        assert_eq!((p.reason, p.since_ms), (Reason::RemoteUnknown, 4001));
    }

    #[test]
    fn an_unmeasured_local_load_changes_nothing() {
        let mut p = PeerBalance::new(0);
        p.report(100, 0);
        assert!(p.decide(&T, Some(5000), 10));
        assert!(!p.decide(&T, None, 20));
        assert!(p.forwarding);
    }

    fn dest(addr: &str, fwd: FwdMethod, weight: i32, active: u32) -> DestView {
        DestView {
            dest: DestAddr {
                addr: addr.parse().unwrap(),
                port: 80,
            },
            config: DestConfig {
                fwd,
                weight,
                ..DestConfig::default()
            },
            active_conns: active,
            inactive_conns: 7,
            persist_conns: 0,
            stats: StatsView::default(),
            rate: RateView::default(),
        }
    }

    fn svc(last: u8, dests: Vec<DestView>) -> ServiceView {
        ServiceView {
            service: ServiceId::Inet {
                proto: Protocol::Tcp,
                addr: [198, 19, 4, last].into(),
                port: 80,
            },
            config: ServiceConfig::new("wlc", false),
            stats: StatsView::default(),
            rate: RateView::default(),
            dests,
        }
    }

    #[test]
    fn load_is_active_connections_over_weighted_capacity() {
        let remote: IpAddr = "198.18.2.1".parse().unwrap();
        let services = vec![
            svc(
                1,
                vec![
                    dest("198.18.1.11", FwdMethod::Route, 2, 150),
                    dest("198.18.1.12", FwdMethod::Route, 1, 60),
                    // Quiesced: its connections count, its weight does not.
                    dest("198.18.1.13", FwdMethod::Route, 0, 15),
                    // The remote director is not this cluster's capacity.
                    dest("198.18.2.1", FwdMethod::Tunnel, 5, 400),
                ],
            ),
            // Not configured (added by hand): left out.
            svc(2, vec![dest("198.18.1.11", FwdMethod::Route, 1, 999)]),
        ];
        let only = vec![services[0].service];
        // (150 + 60 + 15) / (3 × 100) = 0.75.
        assert_eq!(local_load(&services, &only, &[remote], 100), Some(750));
        assert_eq!(local_load(&services, &only, &[remote], 50), Some(1500));
        // Without the remote director excluded, its weight and connections would count.
        assert_eq!(local_load(&services, &only, &[], 100), Some(781));
        let empty = vec![svc(1, vec![dest("198.18.1.13", FwdMethod::Route, 0, 0)])];
        assert_eq!(local_load(&empty, &only, &[], 100), None);
        let held = vec![svc(1, vec![dest("198.18.1.13", FwdMethod::Route, 0, 3)])];
        assert_eq!(local_load(&held, &only, &[], 100), Some(u32::MAX));
    }
}
