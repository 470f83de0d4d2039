//! IPVS's `sync_refresh_period` and `sync_retries` (the time rule of ip_vs_sync_conn_needed):
//! a flow reported again while its expiry moved less than min(refresh period, max(timeout / 2,
//! 10 s)) since it was last sent is not sent, except for up to `sync_retries` repeats, each at
//! least refresh period / 8 after the previous one (against lost messages). A state change other
//! than to ESTABLISHED always goes. The kernel keeps the last expiry sent in each connection;
//! the data plane has no room for it, so rvsd keeps it here, per flow, until the flow expires.

use std::collections::HashMap;

use rvs_common::{conn::ConnKey, sync::sync_reason};

/// How often expired flows are forgotten.
const SWEEP_EVERY_MS: u64 = 10_000;

/// What was last sent of a flow.
#[derive(Clone, Copy, Debug)]
struct Sent {
    /// When it would expire as sent (ms on the sender's clock).
    end_ms: u64,
    /// The repeats sent since the expiry last moved enough.
    tries: u8,
}

/// The refresh rule's memory of the flows sent.
pub struct Refresh {
    period_ms: u64,
    retries: u8,
    sent: HashMap<ConnKey, Sent>,
    swept_ms: u64,
}

impl Refresh {
    /// `period_s` 0: every reported flow goes.
    pub fn new(period_s: u32, retries: u8) -> Refresh {
        Refresh {
            period_ms: u64::from(period_s) * 1000,
            retries,
            sent: HashMap::new(),
            swept_ms: 0,
        }
    }

    /// Whether flow `key`, reported for `reason` at `now_ms` with `timeout_s` left, goes out.
    pub fn admit(&mut self, key: &ConnKey, reason: u8, timeout_s: u32, now_ms: u64) -> bool {
        if self.period_ms == 0 {
            return true;
        }
        self.sweep(now_ms);
        let timeout_ms = u64::from(timeout_s) * 1000;
        let end_ms = now_ms + timeout_ms;
        let mut tries = 0;
        if reason != sync_reason::STATE
            && let Some(last) = self.sent.get(key)
        {
            let moved = end_ms.abs_diff(last.end_ms);
            let enough = self.period_ms.min((timeout_ms / 2).max(10_000));
            if moved < enough {
                if last.tries >= self.retries {
                    return false;
                }
                let last_sent_ms = last.end_ms.saturating_sub(timeout_ms);
                if now_ms < last_sent_ms + self.period_ms / 8 {
                    return false;
                }
                tries = last.tries + 1;
            }
        }
        self.sent.insert(*key, Sent { end_ms, tries });
        true
    }

    /// Forgets the flows whose last expiry sent has passed.
    fn sweep(&mut self, now_ms: u64) {
        if now_ms < self.swept_ms + SWEEP_EVERY_MS {
            return;
        }
        self.swept_ms = now_ms;
        self.sent.retain(|_, s| s.end_ms > now_ms);
    }

    /// Flows remembered.
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.sent.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_common::sync::sync_reason::{PACKETS, STATE};

    fn key(port: u16) -> ConnKey {
        ConnKey {
            cport: port,
            ..ConnKey::default()
        }
    }

    #[test]
    fn without_a_refresh_period_everything_goes() {
        let mut r = Refresh::new(0, 0);
        for t in 0..5 {
            assert!(r.admit(&key(1), PACKETS, 900, t));
        }
        assert_eq!(r.remembered(), 0);
    }

    #[test]
    fn a_busy_flow_goes_once_per_refresh_period() {
        // ESTABLISHED, 900 s: min(60 s, max(450 s, 10 s)) = 60 s.
        let mut r = Refresh::new(60, 0);
        assert!(r.admit(&key(1), PACKETS, 900, 1_000));
        assert!(!r.admit(&key(1), PACKETS, 900, 2_000));
        assert!(!r.admit(&key(1), PACKETS, 900, 60_999));
        assert!(r.admit(&key(1), PACKETS, 900, 61_000));
        assert!(!r.admit(&key(1), PACKETS, 900, 62_000));
        // Another flow is its own.
        assert!(r.admit(&key(2), PACKETS, 900, 62_000));
    }

    #[test]
    fn a_short_timeout_bounds_the_wait_by_ten_seconds_or_half_of_it() {
        // UDP 30 s: min(60 s, max(15 s, 10 s)) = 15 s.
        let mut r = Refresh::new(60, 0);
        assert!(r.admit(&key(1), PACKETS, 30, 0));
        assert!(!r.admit(&key(1), PACKETS, 30, 14_999));
        assert!(r.admit(&key(1), PACKETS, 30, 15_000));
    }

    #[test]
    fn state_changes_always_go_and_a_new_timeout_counts_as_moved() {
        let mut r = Refresh::new(60, 0);
        assert!(r.admit(&key(1), PACKETS, 900, 0));
        assert!(r.admit(&key(1), STATE, 120, 1_000));
        assert!(!r.admit(&key(1), PACKETS, 120, 2_000));
        // Back to a 900 s timeout: the expiry moved by 779 s.
        assert!(r.admit(&key(1), PACKETS, 900, 3_000));
    }

    #[test]
    fn retries_repeat_at_an_eighth_of_the_period() {
        let mut r = Refresh::new(80, 2);
        assert!(r.admit(&key(1), PACKETS, 900, 0));
        assert!(!r.admit(&key(1), PACKETS, 900, 9_999));
        assert!(r.admit(&key(1), PACKETS, 900, 10_000), "first retry");
        assert!(!r.admit(&key(1), PACKETS, 900, 19_999));
        assert!(r.admit(&key(1), PACKETS, 900, 20_000), "second retry");
        assert!(!r.admit(&key(1), PACKETS, 900, 30_000), "retries spent");
        assert!(!r.admit(&key(1), PACKETS, 900, 99_999));
        assert!(
            r.admit(&key(1), PACKETS, 900, 100_000),
            "moved a whole period"
        );
    }

    #[test]
    fn expired_flows_are_forgotten() {
        let mut r = Refresh::new(60, 0);
        assert!(r.admit(&key(1), PACKETS, 30, 0));
        assert!(r.admit(&key(2), PACKETS, 900, 0));
        assert!(r.admit(&key(3), PACKETS, 900, 31_000));
        assert_eq!(r.remembered(), 2, "the first one's 30 s ran out");
    }
}
