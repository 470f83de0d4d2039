//! What the health checkers found, published for the monitor and the metrics: each checked real
//! server's verdict, why, since when and how often it changed. The keepalived task records every
//! checker verdict here (it never waits on a reader); with no keepalived.conf there is nothing
//! to show and [`current`] says so with None.

use std::{
    collections::BTreeMap,
    sync::{Mutex, OnceLock},
};

use serde::Serialize;

use crate::model::{DestAddr, ServiceId};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServerHealth {
    pub service: ServiceId,
    pub dest: DestAddr,
    /// All of the server's checkers pass.
    pub up: bool,
    /// The checker that decided it and why.
    pub reason: String,
    pub since_unix_ms: u64,
    /// Changes of `up` since rvsd started.
    pub transitions: u64,
}

/// Each configured service and whether it has quorum, for the BGP speaker, which announces a
/// prefix only while the services behind it are up; a watch, so a change reaches it at once.
static QUORUM: OnceLock<tokio::sync::watch::Sender<Vec<(ServiceId, bool)>>> = OnceLock::new();

fn quorum_sender() -> &'static tokio::sync::watch::Sender<Vec<(ServiceId, bool)>> {
    QUORUM.get_or_init(|| tokio::sync::watch::channel(Vec::new()).0)
}

/// The keepalived task's services and their quorum, after every change.
pub fn publish_quorum(services: Vec<(ServiceId, bool)>) {
    quorum_sender().send_if_modified(|q| {
        let changed = *q != services;
        *q = services;
        changed
    });
}

/// Follows [`publish_quorum`].
pub fn quorum() -> tokio::sync::watch::Receiver<Vec<(ServiceId, bool)>> {
    quorum_sender().subscribe()
}

type Table = BTreeMap<(String, String), ServerHealth>;

static PUBLISHED: OnceLock<Mutex<Option<Table>>> = OnceLock::new();

fn table() -> &'static Mutex<Option<Table>> {
    PUBLISHED.get_or_init(Default::default)
}

/// The checkers run (keepalived.conf is loaded): from now on there is health to show.
pub fn enable() {
    table()
        .lock()
        .expect("health")
        .get_or_insert_with(Default::default);
}

/// A checker's verdict on `dest` of `service`.
pub fn record(service: ServiceId, dest: DestAddr, up: bool, reason: &str, now_unix_ms: u64) {
    let mut t = table().lock().expect("health");
    let t = t.get_or_insert_with(Default::default);
    let key = (service.to_string(), dest.to_string());
    match t.get_mut(&key) {
        Some(h) if h.up == up => h.reason = reason.to_owned(),
        Some(h) => {
            h.up = up;
            h.reason = reason.to_owned();
            h.since_unix_ms = now_unix_ms;
            h.transitions += 1;
        }
        None => {
            t.insert(
                key,
                ServerHealth {
                    service,
                    dest,
                    up,
                    reason: reason.to_owned(),
                    since_unix_ms: now_unix_ms,
                    transitions: 0,
                },
            );
        }
    }
}

/// Every checked server's health, or None when no checkers run.
pub fn current() -> Option<Vec<ServerHealth>> {
    let t = table().lock().expect("health");
    t.as_ref().map(|t| t.values().cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;

    #[test]
    fn transitions_are_counted() {
        let svc = ServiceId::Inet {
            proto: Protocol::Tcp,
            addr: "198.18.0.100".parse().unwrap(),
            port: 80,
        };
        let dest = DestAddr {
            addr: "198.19.0.12".parse().unwrap(),
            port: 80,
        };
        record(svc, dest, true, "up", 1);
        record(svc, dest, true, "still up", 2);
        record(svc, dest, false, "refused", 3);
        let h = current().unwrap();
        let h = h.iter().find(|h| h.dest == dest).unwrap();
        assert_eq!((h.up, h.since_unix_ms, h.transitions), (false, 3, 1));
        assert_eq!(h.reason, "refused");
    }
}
