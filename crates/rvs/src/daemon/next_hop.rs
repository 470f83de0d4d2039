//! The next-hop refresh task: every few seconds the next hop of every real server is looked up
//! again (route, interface, neighbour), outside the director, and what it found is handed to the
//! director, which rewrites the servers whose MAC or interface changed or that were unresolved.
//!
//! With NAT real servers it also keeps the gateways of the director's routes resolved: NAT
//! replies leave towards the client's next hop, which the data plane finds in the kernel's
//! neighbour table (`bpf_fib_lookup`). A director that takes over a VIP (VRRP) was never asked
//! for it by the router, so nothing would have resolved the router there; and the data plane's
//! fallback, handing the rewritten reply to the kernel to forward, cannot resolve it either: the
//! kernel drops a packet whose source (the VIP) is one of its own addresses. Kept resolved, the
//! gateway is known before the takeover and replies go out from the first one.

use std::time::Duration;

use tracing::warn;

use super::DirectorHandle;
use crate::{dataplane::Neighbours, model::FwdMethod};

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
        if model.every_dest().any(|d| d.config.fwd == FwdMethod::Masq) {
            keep_gateways_resolved(&neigh).await;
        }
    }
}

async fn keep_gateways_resolved(neigh: &Neighbours) {
    let gateways = match neigh.gateways().await {
        Ok(g) => g,
        Err(e) => return warn!("listing the gateways for NAT replies: {e:#}"),
    };
    for gateway in gateways {
        if let Err(e) = neigh.keep_resolved(gateway).await {
            warn!("gateway {gateway} (NAT replies): {e:#}");
        }
    }
}
