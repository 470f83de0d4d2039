//! Draining this director out of an ECMP group (`rvsadm --drain`, an rvs extension): the BGP
//! speaker withdraws every prefix, so the router moves the flows to the other directors, while
//! the data plane goes on forwarding whatever still reaches it; rvsadm says how many flows still
//! arrive, so the operator knows when the director can be stopped. `rvsadm --undrain` announces
//! again. The state is a watch the BGP task follows, as it follows the checkers' quorum; it is
//! not saved (a restarted rvsd announces again).

use std::{sync::OnceLock, time::Instant};

use rvs_common::conn::{KIND_TEMPLATE, conn_flags};
use serde::{Deserialize, Serialize};

use super::expiry::monotonic_ns;
use crate::dataplane::MapsRead;

/// A flow seen within this long still arrives here.
pub const ARRIVING_NS: u64 = 10_000_000_000;

/// What `rvsadm --drain` / `--undrain` asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrainOp {
    Start,
    Stop,
}

/// What rvsadm shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainStatus {
    pub draining: bool,
    /// Seconds since the drain began.
    pub for_s: u64,
    /// Flows (not persistence templates) in the connection tables.
    pub flows: u64,
    /// Of them, those that had a packet in the last 10 s.
    pub arriving: u64,
}

/// Since when this director drains; None while it does not.
static DRAIN: OnceLock<tokio::sync::watch::Sender<Option<Instant>>> = OnceLock::new();

fn sender() -> &'static tokio::sync::watch::Sender<Option<Instant>> {
    DRAIN.get_or_init(|| tokio::sync::watch::channel(None).0)
}

/// Follows the drain state (the BGP speaker withdraws while it is set).
pub fn subscribe() -> tokio::sync::watch::Receiver<Option<Instant>> {
    sender().subscribe()
}

pub fn draining() -> bool {
    sender().borrow().is_some()
}

/// Starts (a second start keeps the first one's time) or stops the drain, and says where it is.
pub fn apply(op: DrainOp, maps: &dyn MapsRead) -> DrainStatus {
    sender().send_if_modified(|since| match (op, since.is_some()) {
        (DrainOp::Start, false) => {
            *since = Some(Instant::now());
            tracing::info!("draining: BGP routes withdrawn, forwarding goes on");
            true
        }
        (DrainOp::Stop, true) => {
            *since = None;
            tracing::info!("drain ended: BGP routes announced again");
            true
        }
        _ => false,
    });
    let (flows, arriving) = count_flows(maps, monotonic_ns());
    DrainStatus {
        draining: draining(),
        for_s: sender().borrow().map_or(0, |t| t.elapsed().as_secs()),
        flows,
        arriving,
    }
}

/// (flows, flows this data plane forwarded a packet of in the last [`ARRIVING_NS`]) at
/// monotonic time `now`. A flow written by connection sync and not seen here since
/// (`conn_flags::SYNC`) is another director's: its time is the sender's, not an arrival.
pub fn count_flows(maps: &dyn MapsRead, now: u64) -> (u64, u64) {
    let (mut flows, mut arriving) = (0, 0);
    maps.for_each_conn(&mut |key, conn| {
        if key.kind == KIND_TEMPLATE {
            return;
        }
        flows += 1;
        if conn.flags & conn_flags::SYNC == 0 && now.saturating_sub(conn.last_seen_ns) < ARRIVING_NS
        {
            arriving += 1;
        }
    });
    (flows, arriving)
}

/// rvsadm's text.
pub fn render(s: &DrainStatus) -> String {
    if s.draining {
        format!(
            "Draining for {} s: BGP routes withdrawn, forwarding goes on; {} flows still \
             arriving (a packet in the last 10 s), {} in the table\n",
            s.for_s, s.arriving, s.flows
        )
    } else {
        format!(
            "Not draining: BGP routes announced by health; {} flows arriving (a packet in the \
             last 10 s), {} in the table\n",
            s.arriving, s.flows
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_says_how_many_flows_still_arrive() {
        let s = DrainStatus {
            draining: true,
            for_s: 3,
            flows: 120,
            arriving: 42,
        };
        assert!(
            render(&s).contains("42 flows still arriving"),
            "{}",
            render(&s)
        );
        let s = DrainStatus {
            draining: false,
            ..s
        };
        assert!(render(&s).starts_with("Not draining"));
        assert!(!render(&s).contains("still arriving"));
    }
}
