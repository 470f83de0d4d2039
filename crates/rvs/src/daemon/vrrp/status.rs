//! What the VRRP task shows of itself: a snapshot per instance, published on a
//! `tokio::sync::watch` that rvsadm (through the control socket), the logs and later the
//! monitor read without waiting on anything else.

use std::{
    net::IpAddr,
    sync::{Mutex, OnceLock},
};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::machine::State;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VrrpStatus {
    pub instances: Vec<InstanceStatus>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    pub version: u8,
    pub state: State,
    /// As configured.
    pub priority: u8,
    /// Moved by tracker weights.
    pub effective_priority: u8,
    /// The current master (ourselves when MASTER).
    pub master: Option<IpAddr>,
    pub master_priority: Option<u8>,
    /// When the last transition happened, milliseconds since the Unix epoch.
    pub last_transition_unix_ms: u64,
    /// Why.
    pub reason: String,
    pub sync_group: Option<String>,
    /// `adverts_rx`, `adverts_tx`, `became_master`, and `rx_<reason>` per rejected packet.
    pub counters: Vec<(String, u64)>,
}

static PUBLISHED: OnceLock<Mutex<Option<watch::Receiver<VrrpStatus>>>> = OnceLock::new();

/// Makes `rx` the status the control socket answers `--vrrp` from.
pub fn publish(rx: watch::Receiver<VrrpStatus>) {
    *PUBLISHED
        .get_or_init(Default::default)
        .lock()
        .expect("vrrp status") = Some(rx);
}

/// Shows every instance of `plan` as BACKUP, waiting for the bulk sync before the VRRP task
/// starts (until then no advert is sent, and none is answered).
pub fn publish_waiting(plan: &super::instance::Plan, now_unix_ms: u64) {
    let instances = plan
        .instances
        .iter()
        .map(|i| InstanceStatus {
            name: i.name.clone(),
            interface: i.interface.clone(),
            vrid: i.vrid,
            version: i.version,
            state: State::Backup,
            priority: i.priority,
            effective_priority: i.priority,
            master: None,
            master_priority: None,
            last_transition_unix_ms: now_unix_ms,
            reason: "waiting for the bulk sync of connections".into(),
            sync_group: i.sync_group.map(|g| plan.groups[g].name.clone()),
            counters: Vec::new(),
        })
        .collect();
    publish(watch::channel(VrrpStatus { instances }).1);
}

/// Follows the status, once the VRRP task publishes one.
pub fn subscribe() -> Option<watch::Receiver<VrrpStatus>> {
    PUBLISHED.get()?.lock().ok()?.clone()
}

/// The latest snapshot, or an empty one when no VRRP instance runs. Never waits.
pub fn current() -> VrrpStatus {
    PUBLISHED
        .get()
        .and_then(|p| p.lock().ok()?.as_ref().map(|rx| rx.borrow().clone()))
        .unwrap_or_default()
}

/// `rvsadm --vrrp`: one line per instance, its counters indented below.
pub fn render(status: &VrrpStatus, now_unix_ms: u64) -> String {
    if status.instances.is_empty() {
        return "No VRRP instance runs (rvsd's keepalived.conf has no vrrp_instance)\n".into();
    }
    let mut s = format!(
        "{:<16} {:<10} {:>4} {:>3} {:<6} {:>4} {:>4} {:<30} {:>9}  {}\n",
        "Instance", "Interface", "VRID", "Ver", "State", "Prio", "Eff", "Master", "For", "Reason"
    );
    for i in &status.instances {
        let master = match (i.master, i.master_priority) {
            (Some(m), Some(p)) => format!("{m} ({p})"),
            (Some(m), None) => m.to_string(),
            _ => "-".into(),
        };
        let secs = now_unix_ms.saturating_sub(i.last_transition_unix_ms) as f64 / 1000.0;
        s.push_str(&format!(
            "{:<16} {:<10} {:>4} {:>3} {:<6} {:>4} {:>4} {:<30} {:>8.1}s  {}\n",
            i.name,
            i.interface,
            i.vrid,
            i.version,
            i.state.name(),
            i.priority,
            i.effective_priority,
            master,
            secs,
            i.reason
        ));
        if let Some(g) = &i.sync_group {
            s.push_str(&format!("  sync group {g}\n"));
        }
        let counters: Vec<String> = i
            .counters
            .iter()
            .filter(|(n, v)| *v > 0 || !n.starts_with("rx_"))
            .map(|(n, v)| format!("{n} {v}"))
            .collect();
        s.push_str(&format!("  {}\n", counters.join(", ")));
    }
    s
}

/// Milliseconds since the Unix epoch, now.
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_shows_state_master_age_reason_and_counters() {
        let st = VrrpStatus {
            instances: vec![InstanceStatus {
                name: "VI_1".into(),
                interface: "eth0".into(),
                vrid: 51,
                version: 3,
                state: State::Backup,
                priority: 100,
                effective_priority: 90,
                master: Some("198.18.0.2".parse().unwrap()),
                master_priority: Some(150),
                last_transition_unix_ms: 10_000,
                reason: "startup".into(),
                sync_group: Some("G".into()),
                counters: vec![
                    ("adverts_rx".into(), 7),
                    ("rx_checksum".into(), 2),
                    ("rx_ttl".into(), 0),
                ],
            }],
        };
        let text = render(&st, 22_500);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("Instance"), "{text}");
        let f: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            f,
            [
                "VI_1",
                "eth0",
                "51",
                "3",
                "BACKUP",
                "100",
                "90",
                "198.18.0.2",
                "(150)",
                "12.5s",
                "startup"
            ]
        );
        assert_eq!(lines[2], "  sync group G");
        // Reject counters that never moved are left out.
        assert_eq!(lines[3], "  adverts_rx 7, rx_checksum 2");
    }
}
