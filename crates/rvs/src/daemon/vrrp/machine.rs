//! The VRRP state machine of one instance, as keepalived runs it (RFC 3768 §6.4 / RFC 5798
//! §6.4 with keepalived's choices). Pure: it is fed events with the time they happen and
//! answers with actions; the task does the I/O and asks [`Machine::deadline`] when to wake it.
//!
//! - Skew = (256 − priority) · Master_Adver_Int / 256 (v2: the interval is 1 s in the formula),
//!   Master_Down = 3 · Master_Adver_Int + Skew; a v3 backup adopts the master's interval.
//! - A backup accepts an advert (restarts its down timer) when it is `nopreempt`, the advert's
//!   priority is at least its own, or it is still within `preempt_delay`; otherwise it ignores
//!   it and preempts when the timer runs out. Priority 0 (the master leaving) cuts the timer to
//!   the skew.
//! - A master yields to a higher priority, or an equal one from a higher primary address, with a
//!   priority-0 advert; to a lower one, or a priority 0, it answers at once with its own advert
//!   and re-announces its addresses. So a partition that heals leaves one master within one
//!   interval, and the LAN follows it whichever advert crossed first (rvs's choice: keepalived
//!   yields silently and re-announces only on lower-priority adverts).
//! - Priority 255 (the address owner) with `state MASTER` starts as MASTER; tracking never moves
//!   it. Others start as BACKUP and become MASTER when no master speaks.
//! - A fault (tracked interface or weight-0 script down) is FAULT: a master leaves with a
//!   priority-0 advert and drops its addresses.

use std::{fmt, net::IpAddr, time::Duration};

/// A point in time: how long after the task's start.
pub type Time = Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum State {
    Init,
    Backup,
    Master,
    Fault,
}

impl State {
    /// As keepalived names it in notify arguments.
    pub fn name(self) -> &'static str {
        match self {
            State::Init => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the notify scripts are told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifyState {
    Master,
    Backup,
    Fault,
    Stop,
}

impl NotifyState {
    pub fn name(self) -> &'static str {
        match self {
            NotifyState::Master => "MASTER",
            NotifyState::Backup => "BACKUP",
            NotifyState::Fault => "FAULT",
            NotifyState::Stop => "STOP",
        }
    }
}

/// Why a transition happened, for the log and the status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    Startup,
    /// Priority 255 with `state MASTER`.
    AddressOwner,
    /// No advert within Master_Down.
    MasterDown {
        after: Duration,
    },
    /// The master said it is leaving (priority 0): taken over after the skew.
    MasterLeft,
    /// A lower-priority master was ignored until the timer ran out.
    Preempt,
    HigherPriority {
        from: IpAddr,
        priority: u8,
    },
    EqualPriorityHigherAddress {
        from: IpAddr,
    },
    Fault,
    FaultCleared,
    SyncGroup,
    Shutdown,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Startup => write!(f, "startup"),
            Reason::AddressOwner => write!(f, "address owner (priority 255)"),
            Reason::MasterDown { after } => {
                write!(f, "no advert from the master for {} ms", after.as_millis())
            }
            Reason::MasterLeft => write!(f, "the master sent priority 0 (leaving)"),
            Reason::Preempt => write!(f, "preempting a lower-priority master"),
            Reason::HigherPriority { from, priority } => {
                write!(f, "advert of higher priority {priority} from {from}")
            }
            Reason::EqualPriorityHigherAddress { from } => {
                write!(f, "advert of equal priority from higher address {from}")
            }
            Reason::Fault => write!(f, "a tracked interface or script failed"),
            Reason::FaultCleared => write!(f, "tracked interfaces and scripts are up"),
            Reason::SyncGroup => write!(f, "sync group member changed state"),
            Reason::Shutdown => write!(f, "shutdown"),
        }
    }
}

/// What the machine is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Start,
    /// A valid advert for this instance.
    Advert {
        from: IpAddr,
        priority: u8,
        interval_cs: u16,
    },
    /// The deadline passed (early or late wakeups are harmless).
    Timer,
    /// The tracked interfaces and scripts: FAULT or not, and the sum of the weights.
    Tracking {
        fault: bool,
        shift: i32,
    },
    /// A member of our sync group became MASTER or BACKUP.
    Sync(State),
    Shutdown,
}

/// What the task must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    SendAdvert {
        priority: u8,
    },
    AddAddresses,
    RemoveAddresses,
    /// A burst of gratuitous ARPs / unsolicited neighbour advertisements.
    Announce,
    /// The periodic burst of `garp_master_refresh` (its own repeat count).
    Refresh,
    Notify(NotifyState),
    Transition {
        from: State,
        to: State,
        reason: Reason,
    },
}

/// The instance's settings the machine needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    pub version: u8,
    pub priority: u8,
    pub advert_int_cs: u16,
    pub start_master: bool,
    pub nopreempt: bool,
    pub preempt_delay: Duration,
    /// Our address in adverts, compared on equal priorities.
    pub primary: IpAddr,
    /// The second announce burst after becoming MASTER (None: no second burst).
    pub garp_delay: Option<Duration>,
    /// Announce again this often while MASTER.
    pub garp_refresh: Option<Duration>,
}

pub const OWNER: u8 = 255;

#[derive(Clone, Debug)]
pub struct Machine {
    p: Params,
    state: State,
    shift: i32,
    fault: bool,
    master_int_cs: u16,
    /// BACKUP: when the master is declared down.
    down_at: Option<Time>,
    /// Whether `down_at` was cut short by a priority-0 advert.
    master_left: bool,
    /// MASTER: the next advert.
    advert_at: Option<Time>,
    garp_at: Option<Time>,
    refresh_at: Option<Time>,
    /// preempt_delay: a lower-priority master is tolerated until then.
    preempt_at: Option<Time>,
    master: Option<IpAddr>,
    master_priority: Option<u8>,
    last_transition: Time,
    last_reason: Reason,
}

fn cs(c: u16) -> Duration {
    Duration::from_millis(u64::from(c) * 10)
}

impl Machine {
    pub fn new(p: Params) -> Machine {
        Machine {
            master_int_cs: p.advert_int_cs,
            p,
            state: State::Init,
            shift: 0,
            fault: false,
            down_at: None,
            master_left: false,
            advert_at: None,
            garp_at: None,
            refresh_at: None,
            preempt_at: None,
            master: None,
            master_priority: None,
            last_transition: Duration::ZERO,
            last_reason: Reason::Startup,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn params(&self) -> &Params {
        &self.p
    }

    /// The priority in our adverts: the configured one moved by tracker weights, within 1..254;
    /// the owner's 255 never moves.
    pub fn effective_priority(&self) -> u8 {
        if self.p.priority == OWNER {
            return OWNER;
        }
        (i32::from(self.p.priority) + self.shift).clamp(1, 254) as u8
    }

    /// The current master's address (ours when MASTER), if known.
    pub fn master(&self) -> Option<IpAddr> {
        match self.state {
            State::Master => Some(self.p.primary),
            State::Backup => self.master,
            _ => None,
        }
    }

    pub fn master_priority(&self) -> Option<u8> {
        match self.state {
            State::Master => Some(self.effective_priority()),
            State::Backup => self.master_priority,
            _ => None,
        }
    }

    /// The interval in use: ours as MASTER, the master's (v3) as BACKUP.
    pub fn master_interval(&self) -> Duration {
        cs(self.master_int_cs)
    }

    pub fn last_transition(&self) -> (Time, &Reason) {
        (self.last_transition, &self.last_reason)
    }

    fn skew(&self) -> Duration {
        let base = if self.p.version == 2 {
            Duration::from_secs(1)
        } else {
            cs(self.master_int_cs)
        };
        base * u32::from(256 - u16::from(self.effective_priority())) / 256
    }

    /// Master_Down_Interval.
    pub fn master_down(&self) -> Duration {
        cs(self.master_int_cs) * 3 + self.skew()
    }

    /// When the task must next feed [`Event::Timer`].
    pub fn deadline(&self) -> Option<Time> {
        [self.down_at, self.advert_at, self.garp_at, self.refresh_at]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn handle(&mut self, ev: Event, now: Time) -> Vec<Action> {
        let mut out = Vec::new();
        match ev {
            Event::Start => self.start(now, &mut out),
            Event::Advert {
                from,
                priority,
                interval_cs,
            } => self.advert(from, priority, interval_cs, now, &mut out),
            Event::Timer => self.timer(now, &mut out),
            Event::Tracking { fault, shift } => self.tracking(fault, shift, now, &mut out),
            Event::Sync(to) => self.sync(to, now, &mut out),
            Event::Shutdown => self.shutdown(now, &mut out),
        }
        out
    }

    fn start(&mut self, now: Time, out: &mut Vec<Action>) {
        if self.state != State::Init {
            return;
        }
        if self.fault {
            self.become_fault(now, Reason::Fault, out);
        } else if self.p.start_master && self.p.priority == OWNER {
            self.become_master(now, Reason::AddressOwner, out);
        } else {
            self.become_backup(now, Reason::Startup, out);
        }
    }

    fn advert(
        &mut self,
        from: IpAddr,
        prio: u8,
        interval_cs: u16,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        match self.state {
            State::Backup => {
                if prio == 0 {
                    self.down_at = Some(now + self.skew());
                    self.master_left = true;
                    return;
                }
                let mine = self.effective_priority();
                let delaying =
                    !self.p.preempt_delay.is_zero() && self.preempt_at.is_none_or(|t| now < t);
                if self.p.nopreempt || prio >= mine || delaying {
                    if self.p.version == 3 {
                        self.master_int_cs = interval_cs;
                    }
                    if !self.p.preempt_delay.is_zero() {
                        if prio >= mine {
                            self.preempt_at = None;
                        } else if self.preempt_at.is_none() {
                            self.preempt_at = Some(now + self.p.preempt_delay);
                        }
                    }
                    self.master = Some(from);
                    self.master_priority = Some(prio);
                    self.master_left = false;
                    self.down_at = Some(now + self.master_down());
                }
                // Otherwise a lower priority is ignored: the timer runs out and we preempt.
            }
            State::Master => {
                let mine = self.effective_priority();
                if prio == 0 {
                    // Another master stepped down (a partition healed, or it stops): assert
                    // ourselves, and re-announce in case the LAN followed it.
                    self.send_advert(now, out);
                    out.push(Action::Announce);
                    return;
                }
                let yields = prio > mine || (prio == mine && addr_greater(from, self.p.primary));
                if yields {
                    if self.p.version == 3 {
                        self.master_int_cs = interval_cs;
                    }
                    self.master = Some(from);
                    self.master_priority = Some(prio);
                    let reason = if prio > mine {
                        Reason::HigherPriority {
                            from,
                            priority: prio,
                        }
                    } else {
                        Reason::EqualPriorityHigherAddress { from }
                    };
                    // Saying so lets the winner re-announce when the LAN had followed us (after
                    // a partition it may never hear our lower-priority adverts otherwise).
                    out.push(Action::SendAdvert { priority: 0 });
                    out.push(Action::RemoveAddresses);
                    self.become_backup(now, reason, out);
                } else {
                    // Another master of lower priority: assert ourselves at once.
                    self.send_advert(now, out);
                    out.push(Action::Announce);
                }
            }
            State::Init | State::Fault => {}
        }
    }

    fn timer(&mut self, now: Time, out: &mut Vec<Action>) {
        match self.state {
            State::Backup => {
                if self.down_at.is_some_and(|t| now >= t) {
                    let reason = if self.master_left {
                        Reason::MasterLeft
                    } else if self.master.is_some()
                        && self.master_priority < Some(self.effective_priority())
                        && !self.p.nopreempt
                    {
                        Reason::Preempt
                    } else {
                        Reason::MasterDown {
                            after: self.master_down(),
                        }
                    };
                    self.become_master(now, reason, out);
                }
            }
            State::Master => {
                if self.advert_at.is_some_and(|t| now >= t) {
                    self.send_advert(now, out);
                }
                if self.garp_at.is_some_and(|t| now >= t) {
                    self.garp_at = None;
                    out.push(Action::Announce);
                }
                if let (Some(t), Some(every)) = (self.refresh_at, self.p.garp_refresh)
                    && now >= t
                {
                    self.refresh_at = Some(now + every);
                    out.push(Action::Refresh);
                }
            }
            State::Init | State::Fault => {}
        }
    }

    fn tracking(&mut self, fault: bool, shift: i32, now: Time, out: &mut Vec<Action>) {
        self.shift = shift;
        let was = self.fault;
        self.fault = fault;
        match (was, fault, self.state) {
            (_, true, State::Backup | State::Master) => self.become_fault(now, Reason::Fault, out),
            (true, false, State::Fault) => {
                if self.p.start_master && self.p.priority == OWNER {
                    self.become_master(now, Reason::FaultCleared, out);
                } else {
                    self.become_backup(now, Reason::FaultCleared, out);
                }
            }
            _ => {}
        }
    }

    fn sync(&mut self, to: State, now: Time, out: &mut Vec<Action>) {
        match (self.state, to) {
            (State::Backup, State::Master) => self.become_master(now, Reason::SyncGroup, out),
            (State::Master, State::Backup) => {
                out.push(Action::SendAdvert { priority: 0 });
                out.push(Action::RemoveAddresses);
                self.master = None;
                self.master_priority = None;
                self.become_backup(now, Reason::SyncGroup, out);
            }
            _ => {}
        }
    }

    fn shutdown(&mut self, now: Time, out: &mut Vec<Action>) {
        if self.state == State::Master {
            out.push(Action::SendAdvert { priority: 0 });
            out.push(Action::RemoveAddresses);
        }
        self.set_state(State::Init, now, Reason::Shutdown, out);
        out.push(Action::Notify(NotifyState::Stop));
    }

    fn send_advert(&mut self, now: Time, out: &mut Vec<Action>) {
        out.push(Action::SendAdvert {
            priority: self.effective_priority(),
        });
        self.advert_at = Some(now + cs(self.p.advert_int_cs));
    }

    fn clear_timers(&mut self) {
        self.down_at = None;
        self.advert_at = None;
        self.garp_at = None;
        self.refresh_at = None;
        self.master_left = false;
    }

    fn set_state(&mut self, to: State, now: Time, reason: Reason, out: &mut Vec<Action>) {
        let from = self.state;
        self.clear_timers();
        self.state = to;
        self.last_transition = now;
        self.last_reason = reason.clone();
        out.push(Action::Transition { from, to, reason });
    }

    fn become_master(&mut self, now: Time, reason: Reason, out: &mut Vec<Action>) {
        self.set_state(State::Master, now, reason, out);
        self.master_int_cs = self.p.advert_int_cs;
        self.preempt_at = None;
        self.send_advert(now, out);
        out.push(Action::AddAddresses);
        out.push(Action::Announce);
        self.garp_at = self.p.garp_delay.filter(|d| !d.is_zero()).map(|d| now + d);
        self.refresh_at = self
            .p
            .garp_refresh
            .filter(|d| !d.is_zero())
            .map(|d| now + d);
        out.push(Action::Notify(NotifyState::Master));
    }

    fn become_backup(&mut self, now: Time, reason: Reason, out: &mut Vec<Action>) {
        self.set_state(State::Backup, now, reason, out);
        if !self.p.preempt_delay.is_zero() && self.preempt_at.is_none() {
            self.preempt_at = Some(now + self.p.preempt_delay);
        }
        self.down_at = Some(now + self.master_down());
        out.push(Action::Notify(NotifyState::Backup));
    }

    fn become_fault(&mut self, now: Time, reason: Reason, out: &mut Vec<Action>) {
        if self.state == State::Master {
            out.push(Action::SendAdvert { priority: 0 });
            out.push(Action::RemoveAddresses);
        }
        self.master = None;
        self.master_priority = None;
        self.set_state(State::Fault, now, reason, out);
        out.push(Action::Notify(NotifyState::Fault));
    }
}

/// RFC 5798: on equal priority the higher primary address wins, compared as unsigned integers.
fn addr_greater(a: IpAddr, b: IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => u32::from(a) > u32::from(b),
        (IpAddr::V6(a), IpAddr::V6(b)) => u128::from(a) > u128::from(b),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "198.18.0.2";
    const PEER: &str = "198.18.0.3";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn params(priority: u8) -> Params {
        Params {
            version: 3,
            priority,
            advert_int_cs: 100,
            start_master: false,
            nopreempt: false,
            preempt_delay: Duration::ZERO,
            primary: ip(ME),
            garp_delay: Some(Duration::from_secs(5)),
            garp_refresh: None,
        }
    }

    fn ms(n: u64) -> Time {
        Duration::from_millis(n)
    }

    fn advert(m: &mut Machine, prio: u8, at: Time) -> Vec<Action> {
        m.handle(
            Event::Advert {
                from: ip(PEER),
                priority: prio,
                interval_cs: 100,
            },
            at,
        )
    }

    fn became(actions: &[Action]) -> Option<State> {
        actions.iter().find_map(|a| match a {
            Action::Transition { to, .. } => Some(*to),
            _ => None,
        })
    }

    #[test]
    fn timers_follow_the_rfc() {
        let m = Machine::new(params(100));
        // Skew = 156/256 s at 1 s, Master_Down = 3 s + skew.
        assert_eq!(m.skew(), Duration::from_millis(1000) * 156 / 256);
        assert_eq!(m.master_down(), Duration::from_secs(3) + m.skew());
        let mut v2 = params(254);
        v2.version = 2;
        v2.advert_int_cs = 300;
        let m = Machine::new(v2);
        // v2: the skew does not scale with the interval.
        assert_eq!(m.skew(), Duration::from_secs(2) / 256);
    }

    #[test]
    fn backup_becomes_master_when_no_master_speaks() {
        let mut m = Machine::new(params(100));
        let a = m.handle(Event::Start, ms(0));
        assert_eq!(became(&a), Some(State::Backup));
        assert!(a.contains(&Action::Notify(NotifyState::Backup)));
        let down = m.master_down();
        assert_eq!(m.deadline(), Some(down));
        // Adverts of a higher priority keep it backup.
        advert(&mut m, 150, ms(1000));
        assert_eq!(m.deadline(), Some(ms(1000) + down));
        assert!(m.handle(Event::Timer, ms(1000) + down - ms(1)).is_empty());
        let a = m.handle(Event::Timer, ms(1000) + down);
        assert_eq!(became(&a), Some(State::Master));
        assert_eq!(
            &a[1..],
            [
                Action::SendAdvert { priority: 100 },
                Action::AddAddresses,
                Action::Announce,
                Action::Notify(NotifyState::Master)
            ]
        );
        // Adverts every interval, the second announce burst after garp_master_delay.
        assert_eq!(m.deadline(), Some(ms(1000) + down + ms(1000)));
        let t = ms(1000) + down + ms(1000);
        assert_eq!(
            m.handle(Event::Timer, t),
            [Action::SendAdvert { priority: 100 }]
        );
        let a = m.handle(Event::Timer, ms(1000) + down + ms(5000));
        assert!(a.contains(&Action::Announce));
    }

    #[test]
    fn owner_starts_as_master_and_priority_zero_cuts_to_the_skew() {
        let mut p = params(255);
        p.start_master = true;
        let mut m = Machine::new(p);
        assert_eq!(became(&m.handle(Event::Start, ms(0))), Some(State::Master));
        // Tracking weights do not move the owner.
        m.handle(
            Event::Tracking {
                fault: false,
                shift: -50,
            },
            ms(10),
        );
        assert_eq!(m.effective_priority(), 255);

        let mut b = Machine::new(params(100));
        b.handle(Event::Start, ms(0));
        advert(&mut b, 255, ms(100));
        advert(&mut b, 0, ms(200));
        assert_eq!(b.deadline(), Some(ms(200) + b.skew()));
        let a = b.handle(Event::Timer, ms(200) + b.skew());
        assert_eq!(became(&a), Some(State::Master));
        assert!(matches!(
            &a[0],
            Action::Transition {
                reason: Reason::MasterLeft,
                ..
            }
        ));
    }

    #[test]
    fn master_yields_to_higher_priority_and_answers_lower() {
        let mut m = Machine::new(params(100));
        m.handle(Event::Start, ms(0));
        m.handle(Event::Timer, m.master_down());
        assert_eq!(m.state(), State::Master);
        let a = advert(&mut m, 50, ms(4000));
        assert_eq!(a, [Action::SendAdvert { priority: 100 }, Action::Announce]);
        // Another master stepping down (priority 0): the same.
        let a = advert(&mut m, 0, ms(4050));
        assert_eq!(a, [Action::SendAdvert { priority: 100 }, Action::Announce]);
        let a = advert(&mut m, 150, ms(4100));
        assert_eq!(
            &a[..2],
            [Action::SendAdvert { priority: 0 }, Action::RemoveAddresses]
        );
        assert_eq!(became(&a), Some(State::Backup));
        assert_eq!(m.master(), Some(ip(PEER)));
    }

    #[test]
    fn equal_priority_goes_to_the_higher_address() {
        let mut m = Machine::new(params(100));
        m.handle(Event::Start, ms(0));
        m.handle(Event::Timer, m.master_down());
        // PEER (.3) is above ME (.2).
        let a = advert(&mut m, 100, ms(4000));
        assert!(matches!(
            &a[2],
            Action::Transition {
                reason: Reason::EqualPriorityHigherAddress { .. },
                ..
            }
        ));
        let mut p = params(100);
        p.primary = ip("198.18.0.9");
        let mut m = Machine::new(p);
        m.handle(Event::Start, ms(0));
        m.handle(Event::Timer, m.master_down());
        let a = advert(&mut m, 100, ms(4000));
        assert_eq!(became(&a), None);
    }

    #[test]
    fn backup_preempts_a_lower_master_unless_nopreempt() {
        let mut m = Machine::new(params(150));
        m.handle(Event::Start, ms(0));
        advert(&mut m, 100, ms(100));
        // Ignored: the timer set at start runs out and we preempt.
        let down = m.master_down();
        assert_eq!(m.deadline(), Some(down));
        let a = m.handle(Event::Timer, down);
        assert_eq!(became(&a), Some(State::Master));

        let mut p = params(150);
        p.nopreempt = true;
        let mut m = Machine::new(p);
        m.handle(Event::Start, ms(0));
        for t in (100..20_000).step_by(1000) {
            advert(&mut m, 100, ms(t));
            assert!(m.handle(Event::Timer, ms(t + 1)).is_empty());
        }
        assert_eq!(m.state(), State::Backup);
    }

    #[test]
    fn preempt_delay_tolerates_a_lower_master_for_a_while() {
        let mut p = params(150);
        p.preempt_delay = Duration::from_secs(10);
        let mut m = Machine::new(p);
        m.handle(Event::Start, ms(0));
        let mut t = 100;
        while m.state() == State::Backup && t < 30_000 {
            advert(&mut m, 100, ms(t));
            m.handle(Event::Timer, ms(t + 500));
            t += 1000;
        }
        assert_eq!(m.state(), State::Master);
        // Not before the delay, and within a master-down after it.
        assert!(t > 10_000 && t < 10_000 + 5_000, "{t}");
    }

    #[test]
    fn v3_backup_adopts_the_master_interval() {
        let mut m = Machine::new(params(100));
        m.handle(Event::Start, ms(0));
        m.handle(
            Event::Advert {
                from: ip(PEER),
                priority: 200,
                interval_cs: 10,
            },
            ms(50),
        );
        assert_eq!(m.master_interval(), ms(100));
        assert_eq!(m.deadline(), Some(ms(50) + ms(300) + ms(100) * 156 / 256));
        // As MASTER it speaks at its own interval again.
        let d = m.deadline().unwrap();
        m.handle(Event::Timer, d);
        assert_eq!(m.master_interval(), ms(1000));
    }

    #[test]
    fn tracking_moves_priority_and_fault() {
        let mut m = Machine::new(params(100));
        m.handle(Event::Start, ms(0));
        m.handle(Event::Timer, m.master_down());
        m.handle(
            Event::Tracking {
                fault: false,
                shift: -30,
            },
            ms(4000),
        );
        assert_eq!(m.effective_priority(), 70);
        let a = m.handle(
            Event::Tracking {
                fault: true,
                shift: -30,
            },
            ms(4100),
        );
        assert_eq!(
            &a[..2],
            [Action::SendAdvert { priority: 0 }, Action::RemoveAddresses]
        );
        assert_eq!(became(&a), Some(State::Fault));
        assert!(a.contains(&Action::Notify(NotifyState::Fault)));
        assert_eq!(m.deadline(), None);
        assert!(advert(&mut m, 50, ms(4200)).is_empty());
        let a = m.handle(
            Event::Tracking {
                fault: false,
                shift: 0,
            },
            ms(5000),
        );
        assert_eq!(became(&a), Some(State::Backup));
        assert_eq!(m.effective_priority(), 100);
        // Clamped to 1..254.
        m.handle(
            Event::Tracking {
                fault: false,
                shift: 500,
            },
            ms(5100),
        );
        assert_eq!(m.effective_priority(), 254);
    }

    #[test]
    fn sync_group_and_shutdown() {
        let mut m = Machine::new(params(100));
        m.handle(Event::Start, ms(0));
        let a = m.handle(Event::Sync(State::Master), ms(10));
        assert_eq!(became(&a), Some(State::Master));
        assert!(m.handle(Event::Sync(State::Master), ms(20)).is_empty());
        let a = m.handle(Event::Sync(State::Backup), ms(30));
        assert_eq!(
            &a[..2],
            [Action::SendAdvert { priority: 0 }, Action::RemoveAddresses]
        );
        m.handle(Event::Sync(State::Master), ms(40));
        let a = m.handle(Event::Shutdown, ms(50));
        assert_eq!(
            &a[..2],
            [Action::SendAdvert { priority: 0 }, Action::RemoveAddresses]
        );
        assert_eq!(a.last(), Some(&Action::Notify(NotifyState::Stop)));
    }
}
