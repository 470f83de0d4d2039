//! The next-hop refresh task: every few seconds the next hop of every real server is looked up
//! again (route, interface, neighbour), outside the director, and what it found is handed to the
//! director, which rewrites the servers whose MAC or interface changed or that were unresolved.

use std::time::Duration;

use tracing::warn;

use super::DirectorHandle;
use crate::dataplane::Neighbours;

/// How often next hops are looked up again.
pub const INTERVAL: Duration = Duration::from_secs(5);

pub async fn task(director: DirectorHandle, neigh: Neighbours) {
    let mut tick = tokio::time::interval(INTERVAL);
    loop {
        tick.tick().await;
        let model = director.view().model;
        let mut addrs: Vec<_> = model
            .services
            .iter()
            .flat_map(|s| s.dests.iter())
            .map(|d| d.addr.addr)
            .collect();
        addrs.sort();
        addrs.dedup();
        let mut found = Vec::with_capacity(addrs.len());
        for addr in addrs {
            match neigh.resolve(addr, Duration::ZERO).await {
                Ok(hop) => found.push((addr, hop)),
                Err(e) => warn!("real server {addr}: {e:#}"),
            }
        }
        director.next_hops(found).await;
    }
}
