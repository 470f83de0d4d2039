//! The sync feed: flows the data plane reports for connection sync, read from its pinned ring
//! buffer (aya's `RingBuf`) in a tokio task; and turning the reports on and off in the data
//! plane's settings.

use std::{path::Path, time::Duration};

use anyhow::{Context, Result};
use aya::maps::{Map, MapData, RingBuf};
use rvs_common::{
    maps::{self as names, Config, SYNC_FEED_POLL_MS, config_flags},
    sync::{DEFAULT_SYNC_PERIOD, DEFAULT_SYNC_THRESHOLD, SyncEvent},
};
use tokio::io::unix::AsyncFd;

use super::store::MapsWrite;

/// When the data plane reports a flow: IPVS's sync_threshold and sync_period, and whether a
/// period of 0 reports every packet (`by_time`: rvsd's refresh period decides).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncRule {
    pub threshold: u32,
    pub period: u32,
    pub by_time: bool,
}

impl Default for SyncRule {
    fn default() -> SyncRule {
        SyncRule {
            threshold: DEFAULT_SYNC_THRESHOLD,
            period: DEFAULT_SYNC_PERIOD,
            by_time: false,
        }
    }
}

/// The data plane's settings with sync reports on (by `rule`) or off (None).
pub fn with_sync(mut config: Config, rule: Option<SyncRule>) -> Config {
    match rule {
        Some(r) => {
            config.flags |= config_flags::SYNC_ACTIVE;
            if r.by_time {
                config.flags |= config_flags::SYNC_BY_TIME;
            } else {
                config.flags &= !config_flags::SYNC_BY_TIME;
            }
            config.sync_threshold = r.threshold;
            config.sync_period = r.period;
        }
        None => config.flags &= !(config_flags::SYNC_ACTIVE | config_flags::SYNC_BY_TIME),
    }
    config
}

/// Turns the data plane's sync reports on (by `rule`) or off, keeping its other settings.
pub fn set_sync(maps: &mut dyn MapsWrite, rule: Option<SyncRule>) -> Result<()> {
    let config = with_sync(maps.config(), rule);
    maps.set_config(config)
}

/// The reader of the sync ring buffer. One reader per ring: the kernel keeps one consumer
/// position.
pub struct SyncFeed {
    ring: AsyncFd<RingBuf<MapData>>,
}

impl SyncFeed {
    /// Opens the ring pinned under `pin_dir`. Must be called within a tokio runtime.
    pub fn open(pin_dir: &Path) -> Result<SyncFeed> {
        let path = pin_dir.join(names::SYNC_RING);
        let data = MapData::from_pin(&path)
            .with_context(|| format!("opening pinned map {}", path.display()))?;
        let ring: RingBuf<MapData> = Map::from_map_data(data)?
            .try_into()
            .context("the sync ring is not a ring buffer")?;
        // SAFETY: the ring owns its map's descriptor, which stays open and the same for as long
        // as the AsyncFd owns the ring.
        let ring = unsafe { AsyncFd::register(ring) }
            .map_err(|e| anyhow::anyhow!("registering the sync ring with tokio: {e}"))?;
        Ok(SyncFeed { ring })
    }

    /// The events waiting now, at most `max`, without blocking.
    pub fn drain(&mut self, max: usize) -> Vec<SyncEvent> {
        let mut out = Vec::new();
        let ring = self.ring.get_mut();
        while out.len() < max {
            let Some(item) = ring.next() else { break };
            if let Some(e) = decode(&item) {
                out.push(e);
            }
        }
        out
    }

    /// Waits until events are there and returns them, at most `max`. The data plane wakes
    /// this reader only when the ring fills up (`SYNC_RING_WAKE_AT`), so it also looks every
    /// `SYNC_FEED_POLL_MS`.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<SyncEvent>> {
        loop {
            let batch = self.drain(max);
            if !batch.is_empty() {
                return Ok(batch);
            }
            let woken = tokio::time::timeout(
                Duration::from_millis(SYNC_FEED_POLL_MS),
                self.ring.readable_mut(),
            )
            .await;
            if let Ok(guard) = woken {
                // Cleared before the next drain: a record submitted after it wakes the next wait.
                guard.context("waiting on the sync ring")?.clear_ready();
            }
        }
    }

    /// Like `next_batch`, but gives up after `wait` with what it has (possibly nothing).
    pub async fn batch_within(&mut self, max: usize, wait: Duration) -> Result<Vec<SyncEvent>> {
        match tokio::time::timeout(wait, self.next_batch(max)).await {
            Ok(r) => r,
            Err(_) => Ok(Vec::new()),
        }
    }
}

/// A ring record as an event (records of another size are not ours and are skipped).
fn decode(bytes: &[u8]) -> Option<SyncEvent> {
    if bytes.len() < size_of::<SyncEvent>() {
        return None;
    }
    // SAFETY: SyncEvent is plain data of integers; the read is unaligned-safe and in bounds.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr() as *const SyncEvent) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_on_and_off_keeps_the_other_settings() {
        let base = Config {
            flags: config_flags::NAT_ACTIVE,
            new_flow_rate: 7,
            ..Config::default()
        };
        let on = with_sync(base, Some(SyncRule::default()));
        assert_eq!(
            on.flags,
            config_flags::NAT_ACTIVE | config_flags::SYNC_ACTIVE
        );
        assert_eq!((on.sync_threshold, on.sync_period), (3, 50));
        assert_eq!(on.new_flow_rate, 7);
        let off = with_sync(on, None);
        assert_eq!(off.flags, config_flags::NAT_ACTIVE);
        let by_time = SyncRule {
            period: 0,
            by_time: true,
            ..SyncRule::default()
        };
        let on = with_sync(base, Some(by_time));
        assert_ne!(on.flags & config_flags::SYNC_BY_TIME, 0);
        assert_eq!(with_sync(on, None).flags, config_flags::NAT_ACTIVE);
    }

    #[test]
    fn short_records_are_skipped() {
        assert_eq!(decode(&[0u8; 10]), None);
        let e = SyncEvent {
            reason: 1,
            ..SyncEvent::default()
        };
        // SAFETY: viewing a plain-data value as bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts(&raw const e as *const u8, size_of::<SyncEvent>())
        };
        assert_eq!(decode(bytes), Some(e));
    }
}
