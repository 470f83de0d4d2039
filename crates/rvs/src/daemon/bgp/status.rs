//! What the BGP task shows of itself: each neighbor's session and counters, and each prefix's
//! decision, published for rvsadm --bgp, the monitor and the metrics (readers never wait on
//! the sessions).

use std::{
    net::IpAddr,
    sync::{Mutex, OnceLock},
};

use serde::{Deserialize, Serialize};

use super::session::State;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BgpStatus {
    pub router_id: String,
    pub local_as: u32,
    pub neighbors: Vec<NeighborStatus>,
    pub prefixes: Vec<PrefixStatus>,
    /// Connections from addresses that are not passive neighbors, closed at once.
    pub refused: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NeighborStatus {
    pub address: IpAddr,
    pub remote_as: u32,
    pub passive: bool,
    pub state: State,
    /// When the state last changed, milliseconds since the Unix epoch.
    pub since_unix_ms: u64,
    /// Why the last session ended.
    pub last_error: Option<String>,
    pub hold_time: Option<u64>,
    pub graceful_restart: bool,
    /// The prefixes this session carries now.
    pub announced: Vec<String>,
    pub established: u64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub updates_out: u64,
    pub notifications_in: u64,
    pub notifications_out: u64,
    /// Messages that would not decode (each answered with a NOTIFICATION).
    pub malformed: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrefixStatus {
    pub prefix: String,
    pub announced: bool,
    pub why: String,
    pub since_unix_ms: u64,
}

static PUBLISHED: OnceLock<Mutex<Option<BgpStatus>>> = OnceLock::new();

fn slot() -> &'static Mutex<Option<BgpStatus>> {
    PUBLISHED.get_or_init(Default::default)
}

/// Changes the published status (a speaker runs from now on).
pub fn update(f: impl FnOnce(&mut BgpStatus)) {
    let mut s = slot().lock().expect("bgp status");
    f(s.get_or_insert_with(Default::default));
}

pub fn update_neighbor(address: IpAddr, f: impl FnOnce(&mut NeighborStatus)) {
    update(|s| {
        if let Some(n) = s.neighbors.iter_mut().find(|n| n.address == address) {
            f(n);
        }
    });
}

/// The speaker stopped.
pub fn clear() {
    *slot().lock().expect("bgp status") = None;
}

/// The latest status; None when no speaker runs.
pub fn current() -> Option<BgpStatus> {
    slot().lock().ok()?.clone()
}

fn age(since_unix_ms: u64, now_unix_ms: u64) -> String {
    let s = now_unix_ms.saturating_sub(since_unix_ms) / 1000;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// `rvsadm --bgp`.
pub fn render(status: Option<&BgpStatus>, now_unix_ms: u64) -> String {
    use std::fmt::Write;
    let Some(s) = status else {
        return "No BGP speaker runs (rvsd's keepalived.conf has no rvs_bgp block)\n".into();
    };
    let mut out = format!(
        "BGP router id {}, local AS {}\n{:<26} {:>10} {:<12} {:>8} {:>8}  Last error\n",
        s.router_id, s.local_as, "Neighbor", "AS", "State", "Since", "Prefixes"
    );
    for n in &s.neighbors {
        let _ = writeln!(
            out,
            "{:<26} {:>10} {:<12} {:>8} {:>8}  {}",
            format!("{}{}", n.address, if n.passive { " (passive)" } else { "" }),
            n.remote_as,
            n.state.name(),
            age(n.since_unix_ms, now_unix_ms),
            n.announced.len(),
            n.last_error.as_deref().unwrap_or("-")
        );
        let _ = writeln!(
            out,
            "  messages in {} out {}, updates out {}, notifications in {} out {}, malformed {}, established {} times",
            n.messages_in,
            n.messages_out,
            n.updates_out,
            n.notifications_in,
            n.notifications_out,
            n.malformed,
            n.established
        );
    }
    let _ = writeln!(out, "{:<26} {:<10} {:>8}  Why", "Prefix", "State", "Since");
    for p in &s.prefixes {
        let _ = writeln!(
            out,
            "{:<26} {:<10} {:>8}  {}",
            p.prefix,
            if p.announced {
                "announced"
            } else {
                "withdrawn"
            },
            age(p.since_unix_ms, now_unix_ms),
            p.why
        );
    }
    let _ = writeln!(out, "Refused connections: {}", s.refused);
    out
}
