//! The sync task's two ends in the data plane: the feed of flows to send (the ring buffer the
//! XDP program fills, with the persistence template of each controlled flow looked up and sent
//! along, as the kernel syncs templates with the connections they control), and the store that
//! writes received flows into the connection tables and reads the live table for a bulk sync.

use std::{path::Path, sync::Arc};

use anyhow::Result;
use futures::future::BoxFuture;
use rvs_common::{
    conn::{Conn, ConnKey, conn_flags},
    sync::sync_reason,
};
use tokio::sync::mpsc;
use tracing::warn;

use super::{
    convert::LocalFlow,
    task::{FlowStore, Reported},
};
use crate::{
    daemon::{DirectorHandle, expiry},
    dataplane::{
        DirectorMaps,
        sync_feed::SyncFeed,
        synced::{self, Outcome, SyncedFlow},
    },
    model::Model,
};

/// Events taken from the ring at a time.
const BATCH: usize = 1024;
/// Room for flows waiting to be packed.
const QUEUE: usize = 16_384;

/// The connection tables, for the sync task.
pub struct PlaneStore(DirectorMaps);

impl PlaneStore {
    pub fn open(pin_dir: &Path) -> Result<PlaneStore> {
        Ok(PlaneStore(DirectorMaps::open(pin_dir)?))
    }
}

impl FlowStore for PlaneStore {
    fn write(&mut self, flow: &LocalFlow) -> Result<(), &'static str> {
        let mut flags = flow.conn.flags & (conn_flags::TEMPLATE | conn_flags::KEEP_PORT);
        if flow.controlled {
            flags |= conn_flags::CONTROLLED;
        }
        let synced = SyncedFlow {
            key: flow.key,
            dest_id: flow.conn.dest_id,
            svc_id: flow.conn.svc_id,
            state: flow.conn.state,
            flags,
            timeout_s: flow.timeout,
            ttl_s: flow.ttl,
        };
        match synced::write_synced(&mut self.0, &synced, expiry::monotonic_ns()) {
            Ok(Outcome::LocalNewer) => Err("local_newer"),
            Ok(Outcome::TableFull) => Err("table_full"),
            Ok(_) => Ok(()),
            Err(e) => {
                warn!("writing a synced flow: {e:#}");
                Err("write_failed")
            }
        }
    }

    fn live(&self, model: &Model) -> Vec<(ConnKey, Conn, u32)> {
        let ttl = |k: &ConnKey, c: &Conn| {
            if k.kind == rvs_common::conn::KIND_TEMPLATE {
                model
                    .services
                    .iter()
                    .find(|s| s.index == c.svc_id && s.config.persistent())
                    .map(|s| s.config.timeout)
            } else {
                Some(expiry::timeout_secs(k.proto, c.state, &model.timeouts) as u32)
            }
        };
        synced::live_flows(&self.0, expiry::monotonic_ns(), ttl).unwrap_or_else(|e| {
            warn!("reading the connection tables for a bulk sync: {e}");
            Vec::new()
        })
    }
}

/// The reader of the ring under `pin_dir` (to run as a task: the ring has one reader, so it
/// must end with the daemon) and the queue it fills: each reported flow, and the template of
/// each controlled one.
pub fn feed(
    pin_dir: &Path,
    director: DirectorHandle,
) -> Result<(mpsc::Receiver<Reported>, BoxFuture<'static, ()>)> {
    let mut ring = SyncFeed::open(pin_dir)?;
    let maps = Arc::new(DirectorMaps::open(pin_dir)?);
    let (tx, rx) = mpsc::channel(QUEUE);
    let reader = Box::pin(async move {
        loop {
            let events = match ring.next_batch(BATCH).await {
                Ok(e) => e,
                Err(e) => {
                    warn!("connection sync feed: {e:#}");
                    return;
                }
            };
            let model = director.view().model;
            let rules = expiry::persist_rules(&model);
            for e in events {
                let template = (e.conn.flags & conn_flags::CONTROLLED != 0)
                    .then(|| rules.get(&e.conn.svc_id))
                    .flatten()
                    .and_then(|rule| {
                        let key = expiry::template_key(&e.key, rule);
                        let found = maps
                            .conns
                            .get(&key, 0)
                            .or_else(|_| maps.conns_new.get(&key, 0))
                            .ok();
                        // A template goes by its own refresh, never as a state change.
                        found.map(|c| Reported {
                            key,
                            conn: c,
                            reason: sync_reason::PACKETS,
                        })
                    });
                let flow = Reported {
                    key: e.key,
                    conn: e.conn,
                    reason: e.reason,
                };
                for flow in std::iter::once(flow).chain(template) {
                    // A full queue waits for the sender: meanwhile the ring holds the reports,
                    // and one that finds it full is counted by the data plane
                    // (`sync_ring_full`). Dropping here instead lost a fifth of a burst of new
                    // flows without a trace.
                    if tx.send(flow).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    Ok((rx, reader))
}
