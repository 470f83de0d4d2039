//! Load exchange and tunnel balancing between clusters (keepalived.conf's `rvs_cluster`, an rvs
//! extension; the Chinese LVS paper §4.3). Directors of clusters in different data centres send
//! each other their load every `period`; while this cluster's load is above `start_above` and a
//! peer's below `remote_below`, the peer's director is a tunnel (IPIP) destination of the
//! forwarded virtual services with the configured weight, so a share of the NEW connections goes
//! through the tunnel to that director, which schedules them onto its own real servers (rvsd
//! there accepts tunnelled packets for its services); when the local load falls to `stop_at` or
//! the peer's passes `remote_below`, its weight goes to 0 (quiesced, as IPVS does it: the
//! connections it has keep going through the tunnel until they end). Established connections
//! are never moved: the connection table pins them. A packet bounced between directors dies by
//! TTL, which every hop decrements.
//!
//! - [`wire`]: the report and its authentication (sync's HMAC envelope);
//! - [`balance`]: the decision (hysteresis, stale reports) and the load, pure;
//! - [`task`]: the task (sending, receiving, deciding, applying through the director);
//! - [`status`]: what `rvsadm --cluster`, the JSON API and the metrics show.
//!
//! The remote directors' destinations belong to this task: the keepalived task leaves tunnel
//! destinations at a peer's director alone ([`ClusterSettings::directors`]). They are removed
//! with their services, or by hand; a restarted rvsd starts with them at weight 0.

pub mod balance;
pub mod status;
pub mod task;
pub mod wire;

use std::net::IpAddr;

use anyhow::{Context, Result};

pub use status::ClusterStatus;

use crate::{
    daemon::sync::auth::Key,
    keepalived::{ClusterBlock, KeepalivedConfig},
    model::ServiceId,
};

/// A load in thousandths as the configuration writes it: `1.100`.
pub fn show_load(milli: u32) -> String {
    format!("{}.{:03}", milli / 1000, milli % 1000)
}

/// What the cluster task runs with: the block, its key, and the services it concerns.
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    pub block: ClusterBlock,
    pub key: Key,
    /// The configured virtual services: their real servers make the local load.
    pub services: Vec<ServiceId>,
    /// Per peer, in the block's order: the services it may take new connections of.
    pub forwarded: Vec<Vec<ServiceId>>,
}

impl ClusterSettings {
    /// The settings of `cfg`'s `rvs_cluster`, with its key read; None without the block.
    pub fn from_keepalived(cfg: &KeepalivedConfig) -> Result<Option<ClusterSettings>> {
        let Some(block) = cfg.cluster.clone() else {
            return Ok(None);
        };
        let bytes = std::fs::read(&block.key_file)
            .with_context(|| format!("reading the cluster key {}", block.key_file.display()))?;
        let key = Key::new(&bytes).map_err(|e| {
            anyhow::anyhow!(
                "{}: {}",
                block.key_file.display(),
                e.replace("a sync key", "a cluster key")
            )
        })?;
        let services = crate::keepalived::desired_services(cfg)
            .into_iter()
            .map(|s| s.service)
            .collect();
        let forwarded = block
            .peers
            .iter()
            .map(|p| crate::keepalived::forwarded_services(cfg, p))
            .collect();
        Ok(Some(ClusterSettings {
            block,
            key,
            services,
            forwarded,
        }))
    }

    /// The peers' directors: the tunnel destinations this task owns.
    pub fn directors(&self) -> Vec<IpAddr> {
        self.block.peers.iter().map(|p| p.director).collect()
    }
}

/// Whether two `rvs_cluster` blocks say the same, wherever they stand in the file.
pub fn same_block(a: Option<&ClusterBlock>, b: Option<&ClusterBlock>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) if a.peers.len() == b.peers.len() => {
            let mut a = a.clone();
            a.pos = b.pos.clone();
            for (p, q) in a.peers.iter_mut().zip(&b.peers) {
                p.pos = q.pos.clone();
            }
            a == *b
        }
        _ => false,
    }
}

/// The directors of `cfg`'s peers (none without `rvs_cluster`): tunnel destinations at these
/// addresses are the cluster task's, and the keepalived task leaves them alone.
pub fn owned_directors(cfg: &KeepalivedConfig) -> Vec<IpAddr> {
    cfg.cluster
        .iter()
        .flat_map(|c| c.peers.iter().map(|p| p.director))
        .collect()
}
