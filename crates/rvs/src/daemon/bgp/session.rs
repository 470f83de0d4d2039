//! One BGP session's state machine (RFC 4271 §8), pure: the task hands it the events (the
//! connection is up, a message arrived or failed to decode, time passed, stop) with the time
//! they happened, and carries out what it answers (send, close). Connect-retry and the choice
//! between active and passive stay with the task, since they concern the TCP connection, not
//! the session.

use std::time::{Duration, Instant};

use netgauze_bgp_pkt::{
    BgpMessage,
    notification::{
        BgpNotificationMessage, FiniteStateMachineError, HoldTimerExpiredError, OpenMessageError,
    },
};
use serde::{Deserialize, Serialize};

use super::wire::{self, OpenParams, PeerOpen};

/// RFC 4271 §8: the hold time while the OPEN is awaited.
pub const LARGE_HOLD_TIME: Duration = Duration::from_secs(240);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::Active => "Active",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        }
    }
}

/// What both OPENs agreed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    pub hold_time: Duration,
    pub keepalive: Duration,
    pub asn4: bool,
    pub ipv4: bool,
    pub ipv6: bool,
    /// Both sides do graceful restart: the End-of-RIB markers are sent.
    pub graceful_restart: bool,
    pub peer: PeerOpen,
}

/// What the task does next.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    Send(BgpMessage),
    /// The session is up: announce the table, then the End-of-RIB markers if agreed.
    Established(Negotiated),
    /// Close the connection, for this reason (after sending what came before).
    Close(String),
}

pub struct Session {
    ours: OpenParams,
    remote_as: u32,
    state: State,
    negotiated: Option<Negotiated>,
    hold_deadline: Option<Instant>,
    keepalive_due: Option<Instant>,
}

impl Session {
    pub fn new(ours: OpenParams, remote_as: u32) -> Session {
        Session {
            ours,
            remote_as,
            state: State::Idle,
            negotiated: None,
            hold_deadline: None,
            keepalive_due: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// Whether the peer's messages carry 4-octet AS numbers (for decoding).
    pub fn asn4(&self) -> bool {
        self.negotiated.as_ref().is_some_and(|n| n.asn4)
    }

    /// The TCP connection is up: send our OPEN.
    pub fn connected(&mut self, now: Instant) -> Vec<Output> {
        self.state = State::OpenSent;
        self.hold_deadline = Some(now + LARGE_HOLD_TIME);
        self.keepalive_due = None;
        vec![Output::Send(wire::open(&self.ours))]
    }

    /// The earliest time [`Session::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.hold_deadline, self.keepalive_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn tick(&mut self, now: Instant) -> Vec<Output> {
        if self.hold_deadline.is_some_and(|d| now >= d) {
            return self.fail(BgpNotificationMessage::HoldTimerExpiredError(
                HoldTimerExpiredError::Unspecific {
                    sub_code: 0,
                    value: vec![].into(),
                },
            ));
        }
        let mut out = Vec::new();
        if let Some(due) = self.keepalive_due
            && now >= due
        {
            out.push(Output::Send(BgpMessage::KeepAlive));
            self.keepalive_due = self.negotiated.as_ref().map(|n| now + n.keepalive);
        }
        out
    }

    /// A message that would not decode: its NOTIFICATION, then close.
    pub fn malformed(&mut self, notification: BgpNotificationMessage) -> Vec<Output> {
        self.fail(notification)
    }

    /// Stop the session: a Cease, then close.
    pub fn stop(&mut self, notification: BgpNotificationMessage) -> Vec<Output> {
        let why = format!("stopped: sent {}", wire::notification_name(&notification));
        self.reset();
        vec![
            Output::Send(BgpMessage::Notification(notification)),
            Output::Close(why),
        ]
    }

    /// The connection closed under us.
    pub fn disconnected(&mut self) {
        self.reset();
    }

    pub fn received(&mut self, msg: BgpMessage, now: Instant) -> Vec<Output> {
        match (self.state, msg) {
            (_, BgpMessage::Notification(n)) => {
                let why = format!("received {}", wire::notification_name(&n));
                self.reset();
                vec![Output::Close(why)]
            }
            (State::OpenSent, BgpMessage::Open(o)) => {
                let peer = wire::peer_open(&o);
                if let Err(n) = self.check_open(&peer) {
                    return self.fail(n);
                }
                let hold = self.ours.hold_time.min(peer.hold_time);
                let hold_time = Duration::from_secs(hold.into());
                let n = Negotiated {
                    hold_time,
                    keepalive: hold_time / 3,
                    asn4: peer.asn4,
                    ipv4: self.ours.ipv4 && peer.ipv4,
                    ipv6: self.ours.ipv6 && peer.ipv6,
                    graceful_restart: self.ours.graceful_restart.is_some() && peer.graceful_restart,
                    peer,
                };
                self.state = State::OpenConfirm;
                // A hold time of 0 means neither timer runs (RFC 4271 §4.2).
                self.hold_deadline = (hold > 0).then(|| now + hold_time);
                self.keepalive_due = (hold > 0).then(|| now + n.keepalive);
                self.negotiated = Some(n);
                vec![Output::Send(BgpMessage::KeepAlive)]
            }
            (State::OpenConfirm, BgpMessage::KeepAlive) => {
                self.state = State::Established;
                self.refresh_hold(now);
                let n = self.negotiated.clone().expect("negotiated in OpenConfirm");
                vec![Output::Established(n)]
            }
            (State::Established, BgpMessage::KeepAlive | BgpMessage::Update(_))
            | (State::Established, BgpMessage::RouteRefresh(_)) => {
                // Routes received are never installed (this speaker only announces); a route
                // refresh needs nothing either, since the table is sent whole on every change.
                self.refresh_hold(now);
                Vec::new()
            }
            (state, _) => self.fail(BgpNotificationMessage::FiniteStateMachineError(
                match state {
                    State::OpenSent => {
                        FiniteStateMachineError::ReceiveUnexpectedMessageInOpenSentState {
                            value: vec![].into(),
                        }
                    }
                    State::OpenConfirm => {
                        FiniteStateMachineError::ReceiveUnexpectedMessageInOpenConfirmState {
                            value: vec![].into(),
                        }
                    }
                    State::Established => {
                        FiniteStateMachineError::ReceiveUnexpectedMessageInEstablishedState {
                            value: vec![].into(),
                        }
                    }
                    _ => FiniteStateMachineError::Unspecific {
                        value: vec![].into(),
                    },
                },
            )),
        }
    }

    /// RFC 4271 §6.2's checks of an OPEN, and RFC 6793's AS number.
    fn check_open(&self, peer: &PeerOpen) -> Result<(), BgpNotificationMessage> {
        let open_error = |e| Err(BgpNotificationMessage::OpenMessageError(e));
        if peer.version != 4 {
            // The data is the largest version supported here.
            return open_error(OpenMessageError::UnsupportedVersionNumber {
                value: vec![0, 4].into(),
            });
        }
        if peer.asn != self.remote_as {
            return open_error(OpenMessageError::BadPeerAs {
                value: vec![].into(),
            });
        }
        if peer.hold_time == 1 || peer.hold_time == 2 {
            return open_error(OpenMessageError::UnacceptableHoldTime {
                value: vec![].into(),
            });
        }
        let id = u32::from(peer.router_id);
        if id == 0
            || (self.remote_as == self.ours.local_as && peer.router_id == self.ours.router_id)
        {
            return open_error(OpenMessageError::BadBgpIdentifier {
                value: vec![].into(),
            });
        }
        Ok(())
    }

    fn refresh_hold(&mut self, now: Instant) {
        if let Some(n) = &self.negotiated
            && !n.hold_time.is_zero()
        {
            self.hold_deadline = Some(now + n.hold_time);
        }
    }

    fn fail(&mut self, n: BgpNotificationMessage) -> Vec<Output> {
        let why = format!("sent {}", wire::notification_name(&n));
        self.reset();
        vec![
            Output::Send(BgpMessage::Notification(n)),
            Output::Close(why),
        ]
    }

    fn reset(&mut self) {
        self.state = State::Idle;
        self.negotiated = None;
        self.hold_deadline = None;
        self.keepalive_due = None;
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn ours() -> OpenParams {
        OpenParams {
            local_as: 65005,
            hold_time: 9,
            router_id: Ipv4Addr::new(198, 18, 1, 1),
            ipv4: true,
            ipv6: true,
            graceful_restart: None,
            restarted: false,
        }
    }

    fn peer_open(asn: u32, hold: u16) -> BgpMessage {
        wire::open(&OpenParams {
            local_as: asn,
            hold_time: hold,
            router_id: Ipv4Addr::new(198, 18, 1, 254),
            ipv4: true,
            ipv6: false,
            graceful_restart: None,
            restarted: false,
        })
    }

    fn sent_codes(out: &[Output]) -> Vec<(u8, u8)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send(BgpMessage::Notification(n)) => Some(wire::notification_code(n)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn open_keepalive_established_then_timers() {
        let t0 = Instant::now();
        let mut s = Session::new(ours(), 65001);
        assert!(matches!(
            s.connected(t0)[..],
            [Output::Send(BgpMessage::Open(_))]
        ));
        assert_eq!(s.state(), State::OpenSent);
        let out = s.received(peer_open(65001, 30), t0);
        assert_eq!(out, vec![Output::Send(BgpMessage::KeepAlive)]);
        let out = s.received(BgpMessage::KeepAlive, t0);
        let [Output::Established(n)] = &out[..] else {
            panic!("{out:?}")
        };
        // The smaller hold time wins; keepalives every third of it; IPv6 not offered back.
        assert_eq!(n.hold_time, Duration::from_secs(9));
        assert!(n.ipv4 && !n.ipv6 && n.asn4);
        assert_eq!(
            s.tick(t0 + Duration::from_secs(3)),
            vec![Output::Send(BgpMessage::KeepAlive)]
        );
        // A keepalive from the peer pushes the hold timer on.
        s.received(BgpMessage::KeepAlive, t0 + Duration::from_secs(8));
        assert!(sent_codes(&s.tick(t0 + Duration::from_secs(10))).is_empty());
        let out = s.tick(t0 + Duration::from_secs(18));
        assert_eq!(sent_codes(&out), vec![(4, 0)]);
        assert_eq!(s.state(), State::Idle);
    }

    #[test]
    fn open_errors_get_their_subcodes() {
        let t0 = Instant::now();
        let mut s = Session::new(ours(), 65001);
        s.connected(t0);
        assert_eq!(
            sent_codes(&s.received(peer_open(65099, 30), t0)),
            vec![(2, 2)]
        );
        s.connected(t0);
        assert_eq!(
            sent_codes(&s.received(peer_open(65001, 2), t0)),
            vec![(2, 6)]
        );
    }

    #[test]
    fn unexpected_messages_are_fsm_errors_and_notifications_close() {
        let t0 = Instant::now();
        let mut s = Session::new(ours(), 65001);
        s.connected(t0);
        assert_eq!(
            sent_codes(&s.received(BgpMessage::KeepAlive, t0)),
            vec![(5, 1)]
        );
        s.connected(t0);
        s.received(peer_open(65001, 30), t0);
        s.received(BgpMessage::KeepAlive, t0);
        assert_eq!(
            sent_codes(&s.received(peer_open(65001, 30), t0)),
            vec![(5, 3)]
        );
        s.connected(t0);
        let out = s.received(BgpMessage::Notification(wire::cease_shutdown()), t0);
        assert!(matches!(&out[..], [Output::Close(w)] if w.contains("cease (6/2)")));
    }

    #[test]
    fn no_open_within_the_large_hold_time_resets() {
        let t0 = Instant::now();
        let mut s = Session::new(ours(), 65001);
        s.connected(t0);
        assert!(s.tick(t0 + Duration::from_secs(239)).is_empty());
        assert_eq!(sent_codes(&s.tick(t0 + LARGE_HOLD_TIME)), vec![(4, 0)]);
    }
}
