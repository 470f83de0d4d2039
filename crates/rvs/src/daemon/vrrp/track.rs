//! What moves an instance's priority or puts it in FAULT: `vrrp_script` results (with rise and
//! fall) and tracked interfaces, each with its weight. The arithmetic is pure; the scripts run
//! on tasks of their own and report each change.

use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::instance::Script;

/// A script's health with keepalived's rise/fall counting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    pub ok: bool,
    rise: u32,
    fall: u32,
    /// Consecutive results against the current state.
    against: u32,
}

impl Health {
    pub fn new(rise: u32, fall: u32, init_fail: bool) -> Health {
        Health {
            ok: !init_fail,
            rise: rise.max(1),
            fall: fall.max(1),
            against: 0,
        }
    }

    /// Records one result; true when the state changed.
    pub fn record(&mut self, success: bool) -> bool {
        if success == self.ok {
            self.against = 0;
            return false;
        }
        self.against += 1;
        let needed = if self.ok { self.fall } else { self.rise };
        if self.against >= needed {
            self.ok = success;
            self.against = 0;
            return true;
        }
        false
    }
}

/// A tracked thing's effect: weight 0 means FAULT when down; otherwise a positive weight is
/// added while up and a negative one while down (`reverse` swaps up and down).
pub fn effect(up: bool, weight: i32, reverse: bool) -> (bool, i32) {
    let up = up != reverse;
    match weight {
        0 => (!up, 0),
        w if w > 0 => (false, if up { w } else { 0 }),
        w => (false, if up { 0 } else { w }),
    }
}

/// Runs `script` every interval and sends `(index, ok)` whenever its health changes (and once
/// at the first result).
pub async fn run_script(index: usize, script: Script, tx: mpsc::Sender<(usize, bool)>) {
    let mut health = Health::new(script.rise, script.fall, script.init_fail);
    let mut tick = tokio::time::interval(script.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let argv: Vec<String> = script
        .command
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let mut first = true;
    loop {
        tick.tick().await;
        let ok = run_once(&argv, script.timeout).await;
        let changed = health.record(ok);
        if changed {
            debug!(
                "vrrp_script {} is now {}",
                script.name,
                if health.ok { "up" } else { "down" }
            );
        }
        if changed || first {
            first = false;
            if tx.send((index, health.ok)).await.is_err() {
                return;
            }
        }
    }
}

async fn run_once(argv: &[String], timeout: Duration) -> bool {
    let Some((program, args)) = argv.split_first() else {
        return false;
    };
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            warn!("vrrp_script '{}': {e}", argv.join(" "));
            return false;
        }
    };
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => status.success(),
        Ok(Err(_)) => false,
        Err(_) => {
            let _ = child.kill().await;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rise_and_fall_count_consecutive_results() {
        let mut h = Health::new(2, 3, false);
        assert!(!h.record(false) && !h.record(false));
        assert!(!h.record(true), "a success resets the count");
        assert!(!h.record(false) && !h.record(false));
        assert!(h.record(false) && !h.ok);
        assert!(!h.record(true));
        assert!(h.record(true) && h.ok);
        assert!(!Health::new(1, 1, true).ok);
    }

    #[test]
    fn weights_as_keepalived_applies_them() {
        assert_eq!(effect(false, 0, false), (true, 0));
        assert_eq!(effect(true, 0, false), (false, 0));
        assert_eq!(effect(true, 10, false), (false, 10));
        assert_eq!(effect(false, 10, false), (false, 0));
        assert_eq!(effect(false, -10, false), (false, -10));
        assert_eq!(effect(true, -10, false), (false, 0));
        assert_eq!(effect(true, -10, true), (false, -10));
    }
}
