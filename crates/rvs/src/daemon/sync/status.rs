//! What the sync task shows of itself: its settings, messages and connections sent and
//! received, what it dropped and why, and how the bulk sync went. Published on a watch channel
//! that the control socket reads (`rvsadm -L --daemon`, `rvsadm --sync`), never the director.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    sync::{Mutex, OnceLock},
};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncStatus {
    /// None: no sync daemon runs.
    pub daemon: Option<DaemonView>,
    pub sent_msgs: u64,
    pub sent_conns: u64,
    /// UDP payload bytes of the datagrams sent (each destination counted), and received.
    #[serde(default)]
    pub sent_bytes: u64,
    pub recv_msgs: u64,
    pub recv_conns: u64,
    #[serde(default)]
    pub recv_bytes: u64,
    /// Dropped messages and entries, by reason.
    pub dropped: BTreeMap<String, u64>,
    pub bulk: BulkState,
}

/// The settings a running daemon uses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DaemonView {
    pub roles: super::Roles,
    pub interface: String,
    pub syncid: u8,
    pub maxlen: u32,
    pub group: IpAddr,
    pub port: u16,
    pub ttl: u8,
    pub peers: Vec<IpAddr>,
    pub authenticated: bool,
}

/// Where the bulk sync of a starting director stands.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum BulkState {
    /// Not asked for.
    #[default]
    Off,
    /// Asking the peers, or receiving from one.
    Running { from: Option<IpAddr>, received: u64 },
    /// The whole table came.
    Done {
        from: IpAddr,
        received: u64,
        millis: u64,
    },
    /// No peer answered: this director starts alone.
    NoPeer,
    /// It took too long: VRRP starts with what came.
    TimedOut { received: u64 },
}

impl BulkState {
    /// The bulk sync is over (well or not): VRRP may start.
    pub fn settled(&self) -> bool {
        !matches!(self, BulkState::Running { .. })
    }
}

impl SyncStatus {
    pub fn drop(&mut self, reason: &str) {
        *self.dropped.entry(reason.to_owned()).or_default() += 1;
    }
}

static PUBLISHED: OnceLock<Mutex<Option<watch::Receiver<SyncStatus>>>> = OnceLock::new();

/// Makes `rx` the status the control socket reports.
pub fn publish(rx: watch::Receiver<SyncStatus>) {
    *PUBLISHED
        .get_or_init(Default::default)
        .lock()
        .expect("sync status") = Some(rx);
}

/// No daemon runs any more.
pub fn clear() {
    publish(watch::channel(SyncStatus::default()).1);
}

/// The status last published (the default when no sync daemon runs).
pub fn current() -> SyncStatus {
    PUBLISHED
        .get()
        .and_then(|p| p.lock().ok()?.as_ref().map(|rx| rx.borrow().clone()))
        .unwrap_or_default()
}

/// `ipvsadm -L --daemon`: one line per daemon running, as ipvsadm prints them.
pub fn render_daemons(s: &SyncStatus) -> String {
    let Some(d) = &s.daemon else {
        return String::new();
    };
    let mut out = String::new();
    for (role, on) in [("master", d.roles.master), ("backup", d.roles.backup)] {
        if !on {
            continue;
        }
        out.push_str(&format!(
            "{role} sync daemon (mcast={}, syncid={}, maxlen={}, group={}, port={}, ttl={})\n",
            d.interface, d.syncid, d.maxlen, d.group, d.port, d.ttl
        ));
    }
    out
}

/// `rvsadm --sync` (rvs extension): the counters and the bulk sync.
pub fn render(s: &SyncStatus) -> String {
    if s.daemon.is_none() {
        return "no sync daemon\n".to_owned();
    }
    let mut out = render_daemons(s);
    if let Some(d) = &s.daemon {
        if !d.peers.is_empty() {
            let peers: Vec<String> = d.peers.iter().map(|p| p.to_string()).collect();
            out.push_str(&format!("peers {}\n", peers.join(" ")));
        }
        out.push_str(&format!(
            "authenticated {}\n",
            if d.authenticated { "yes" } else { "no" }
        ));
    }
    out.push_str(&format!(
        "sent {} messages {} connections {} bytes\nreceived {} messages {} connections {} bytes\n",
        s.sent_msgs, s.sent_conns, s.sent_bytes, s.recv_msgs, s.recv_conns, s.recv_bytes
    ));
    for (reason, n) in &s.dropped {
        out.push_str(&format!("dropped {reason} {n}\n"));
    }
    out.push_str(&match &s.bulk {
        BulkState::Off => "bulk off\n".to_owned(),
        BulkState::Running { from, received } => match from {
            Some(f) => format!("bulk running from {f}: {received} connections\n"),
            None => "bulk asking\n".to_owned(),
        },
        BulkState::Done {
            from,
            received,
            millis,
        } => format!("bulk done from {from}: {received} connections in {millis} ms\n"),
        BulkState::NoPeer => "bulk no peer answered\n".to_owned(),
        BulkState::TimedOut { received } => {
            format!("bulk timed out after {received} connections\n")
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(roles: super::super::Roles) -> SyncStatus {
        SyncStatus {
            daemon: Some(DaemonView {
                roles,
                interface: "eth0".into(),
                syncid: 7,
                maxlen: 1472,
                group: "224.0.0.81".parse().unwrap(),
                port: 8848,
                ttl: 1,
                peers: Vec::new(),
                authenticated: false,
            }),
            ..SyncStatus::default()
        }
    }

    #[test]
    fn one_line_per_daemon_running_as_ipvsadm_prints_them() {
        use super::super::Roles;
        let line = |role: &str| {
            format!(
                "{role} sync daemon (mcast=eth0, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
            )
        };
        assert_eq!(
            render_daemons(&view(Roles::BOTH)),
            line("master") + &line("backup")
        );
        let backup = Roles {
            master: false,
            backup: true,
        };
        assert_eq!(render_daemons(&view(backup)), line("backup"));
        assert_eq!(render_daemons(&SyncStatus::default()), "");
    }
}
